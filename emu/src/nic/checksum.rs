//! Transmit checksum offload (82576 datasheet §7.2.5, 82599 datasheet
//! §7.2.5): the IPv4 header checksum (POPTS.IXSM) and the TCP/UDP checksum
//! (POPTS.TXSM), placed by the offsets of a context descriptor.
//!
//! For the L4 checksum the hardware does not know the pseudo-header: the
//! driver puts the pseudo-header sum (not complemented) in the checksum
//! field, and the device sums from the start of the L4 header to the end of
//! the packet, that field included, and writes the complement there.
#![forbid(unsafe_code)]

use spec::net::checksum::{fold, sum};
use spec::net::{ipv4, udp};

/// Offset of the header checksum in an IPv4 header.
const IPV4_CSUM: usize = ipv4::field::CHECKSUM.start;
/// Offset of the checksum in a UDP header.
const UDP_CSUM: usize = udp::field::CHECKSUM.start;
/// Offset of the checksum in a TCP header, and the smallest header (RFC 793).
const TCP_CSUM: usize = 16;
const TCP_MIN_HLEN: usize = 20;

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
        if ctx.iplen < ipv4::HEADER_LEN || l4 > len {
            return Err(OffloadError::HeadersOutsidePacket {
                need: l4.max(ip + ipv4::HEADER_LEN),
                len,
            });
        }
        pkt[ip + IPV4_CSUM..ip + IPV4_CSUM + 2].fill(0);
        let c = !fold(sum(&pkt[ip..l4], 0));
        pkt[ip + IPV4_CSUM..ip + IPV4_CSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
    if txsm {
        let (off, hlen) = match ctx.l4 {
            L4Type::Udp => (UDP_CSUM, udp::HEADER_LEN),
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
