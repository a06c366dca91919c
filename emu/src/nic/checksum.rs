//! Transmit checksum offload (82576 datasheet §7.2.5, 82599 datasheet
//! §7.2.5): the IPv4 header checksum (POPTS.IXSM) and the TCP/UDP checksum
//! (POPTS.TXSM), placed by the offsets of a context descriptor.
//!
//! For the L4 checksum the hardware does not know the pseudo-header: the
//! driver puts the pseudo-header sum (not complemented) in the checksum
//! field, and the device sums from the start of the L4 header to the end of
//! the packet, that field included, and writes the complement there.
#![forbid(unsafe_code)]

/// Offset of the header checksum in an IPv4 header.
const IPV4_CSUM: usize = 10;
/// Smallest IPv4 header.
const IPV4_MIN_HLEN: usize = 20;
/// Offset of the checksum in a UDP header, and the header's length.
const UDP_CSUM: usize = 6;
const UDP_HLEN: usize = 8;
/// Offset of the checksum in a TCP header, and the smallest header.
const TCP_CSUM: usize = 16;
const TCP_MIN_HLEN: usize = 20;

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd last
/// byte is padded with zero), added to `acc`; fold with [`fold`].
pub(crate) fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        acc += (rest[i] as u64) << 8;
    }
    acc
}

/// Fold a sum to 16 bits (end-around carry).
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The L4 protocol a context descriptor names (TUCMD.L4T).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L4Type {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// SCTP (CRC32c: not modelled).
    Sctp,
    /// The reserved value.
    Reserved,
}

/// The offload state a context descriptor loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxContext {
    /// MACLEN: bytes before the IP header.
    pub maclen: usize,
    /// IPLEN: bytes of IP header.
    pub iplen: usize,
    /// TUCMD.IPV4.
    pub ipv4: bool,
    /// TUCMD.L4T.
    pub l4: L4Type,
}

/// Why an offload could not be applied (the packet is sent unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OffloadError {
    /// IXSM asked for, but the context says IPv6.
    IxsmWithoutIpv4,
    /// MACLEN + IPLEN (+ L4 header) runs past the packet, or IPLEN is too small.
    HeadersOutsidePacket {
        /// Bytes the offsets need.
        need: usize,
        /// Bytes in the packet.
        len: usize,
    },
    /// The L4 type has no checksum the model computes.
    UnsupportedL4(L4Type),
}

impl std::fmt::Display for OffloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffloadError::IxsmWithoutIpv4 => {
                write!(f, "POPTS.IXSM set but the context has TUCMD.IPV4 = 0")
            }
            OffloadError::HeadersOutsidePacket { need, len } => write!(
                f,
                "context offsets need {need} bytes of headers but the packet has {len}"
            ),
            OffloadError::UnsupportedL4(t) => {
                write!(f, "POPTS.TXSM with L4 type {t:?} is not modelled")
            }
        }
    }
}

/// Apply IXSM / TXSM to the assembled packet `pkt` as `ctx` describes.
pub(crate) fn apply(
    pkt: &mut [u8],
    ctx: &TxContext,
    ixsm: bool,
    txsm: bool,
) -> Result<(), OffloadError> {
    let len = pkt.len();
    let ip = ctx.maclen;
    let l4 = ctx.maclen + ctx.iplen;
    if ixsm {
        if !ctx.ipv4 {
            return Err(OffloadError::IxsmWithoutIpv4);
        }
        if ctx.iplen < IPV4_MIN_HLEN || l4 > len {
            return Err(OffloadError::HeadersOutsidePacket {
                need: l4.max(ip + IPV4_MIN_HLEN),
                len,
            });
        }
        pkt[ip + IPV4_CSUM..ip + IPV4_CSUM + 2].fill(0);
        let c = !fold(sum(&pkt[ip..l4], 0));
        pkt[ip + IPV4_CSUM..ip + IPV4_CSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
    if txsm {
        let (off, hlen) = match ctx.l4 {
            L4Type::Udp => (UDP_CSUM, UDP_HLEN),
            L4Type::Tcp => (TCP_CSUM, TCP_MIN_HLEN),
            other => return Err(OffloadError::UnsupportedL4(other)),
        };
        if l4 + hlen > len {
            return Err(OffloadError::HeadersOutsidePacket {
                need: l4 + hlen,
                len,
            });
        }
        let mut c = !fold(sum(&pkt[l4..], 0));
        // A UDP checksum of 0 means "none" (RFC 768): send its other form.
        if ctx.l4 == L4Type::Udp && c == 0 {
            c = 0xffff;
        }
        pkt[l4 + off..l4 + off + 2].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straightforward reference: 16-bit words one at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut acc = 0u32;
        for w in data.chunks(2) {
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                u16::from_be_bytes([w[0], 0])
            };
            acc += v as u32;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn sum_matches_the_word_by_word_reference_for_every_length() {
        let data: Vec<u8> = (0..97u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(fold(sum(&data[..n], 0)), reference(&data[..n]), "len {n}");
        }
        // RFC 1071 §3 example.
        let ex = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&ex, 0)), 0xddf2);
    }

    #[test]
    fn headers_outside_the_packet_are_refused() {
        let mut pkt = [0u8; 40];
        let ctx = TxContext {
            maclen: 14,
            iplen: 20,
            ipv4: true,
            l4: L4Type::Tcp,
        };
        assert_eq!(
            apply(&mut pkt, &ctx, false, true),
            Err(OffloadError::HeadersOutsidePacket { need: 54, len: 40 })
        );
        let v6 = TxContext { ipv4: false, ..ctx };
        assert_eq!(
            apply(&mut pkt, &v6, true, false),
            Err(OffloadError::IxsmWithoutIpv4)
        );
        let sctp = TxContext {
            l4: L4Type::Sctp,
            ..ctx
        };
        assert!(matches!(
            apply(&mut [0u8; 80], &sctp, false, true),
            Err(OffloadError::UnsupportedL4(L4Type::Sctp))
        ));
    }
}
