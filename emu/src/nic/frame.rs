//! What the receive and transmit paths need to know about a frame's
//! headers: the flow for RSS, the packet type for the write-back. Only the
//! first VLAN tag, IPv4 and IPv6 without extension headers are parsed.
#![forbid(unsafe_code)]

use spec::net::ethernet::{self, ethertype};
use spec::net::{ipv4, EthernetFrame, Ipv4Packet};
use spec::nic::adv_desc::rx::packet_type as ptype;

/// Length of an Ethernet header without VLAN tag (the receive path's name for it).
pub(crate) use spec::net::ethernet::HEADER_LEN as ETH_HLEN;
/// Length of an IPv6 header.
const IPV6_HLEN: usize = 40;

/// The transport header, if one was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L4 {
    /// TCP with its ports.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// UDP with its ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// Anything else, or a header cut short.
    Other,
}

/// The network-layer flow of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// IPv4.
    Ipv4 {
        /// Source address.
        src: [u8; 4],
        /// Destination address.
        dst: [u8; 4],
        /// Transport header (of the first fragment only).
        l4: L4,
        /// The datagram is a fragment (MF set or a non-zero offset).
        fragment: bool,
    },
    /// IPv6 (no extension headers parsed).
    Ipv6 {
        /// Source address.
        src: [u8; 16],
        /// Destination address.
        dst: [u8; 16],
        /// Transport header.
        l4: L4,
    },
    /// Not IP, or an IP header cut short.
    Other,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The offset of the network header and its EtherType (after one VLAN tag).
pub(crate) fn l3(frame: &[u8]) -> Option<(usize, u16)> {
    let ty = EthernetFrame::new_checked(frame).ok()?.ethertype();
    if ty == ethertype::VLAN || ty == ethertype::QINQ {
        // The tag's TCI, then the EtherType of what the tag carries.
        let tagged = ETH_HLEN + ethernet::VLAN_TAG_LEN;
        Some((tagged, be16(frame, tagged - 2)?))
    } else {
        Some((ETH_HLEN, ty))
    }
}

fn ports(frame: &[u8], at: usize, proto: u8) -> L4 {
    let (Some(sport), Some(dport)) = (be16(frame, at), be16(frame, at + 2)) else {
        return L4::Other;
    };
    match proto {
        ipv4::protocol::TCP => L4::Tcp { sport, dport },
        ipv4::protocol::UDP => L4::Udp { sport, dport },
        _ => L4::Other,
    }
}

/// Parse the headers of `frame`.
pub(crate) fn parse(frame: &[u8]) -> Flow {
    let Some((off, ty)) = l3(frame) else {
        return Flow::Other;
    };
    let ip = &frame[off.min(frame.len())..];
    match ty {
        ethertype::IPV4 => {
            // Too short, or an IHL below 5 or past the frame: not parsed.
            let Ok(p) = Ipv4Packet::new_checked(ip) else {
                return Flow::Other;
            };
            if p.version() != 4 {
                return Flow::Other;
            }
            // Only the first fragment carries the transport header.
            let l4 = if p.frag_offset() == 0 {
                ports(ip, p.header_len(), p.protocol())
            } else {
                L4::Other
            };
            Flow::Ipv4 {
                src: p.src_addr(),
                dst: p.dst_addr(),
                l4,
                fragment: p.is_fragment(),
            }
        }
        ethertype::IPV6 if ip.len() >= IPV6_HLEN && ip[0] >> 4 == 6 => {
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            Flow::Ipv6 {
                src,
                dst,
                l4: ports(ip, IPV6_HLEN, ip[6]),
            }
        }
        _ => Flow::Other,
    }
}

/// The PACKET_TYPE value of the write-back for `flow`.
pub(crate) fn packet_type(flow: &Flow) -> u32 {
    let (l3, l4) = match flow {
        Flow::Ipv4 { l4, .. } => (ptype::IPV4, l4),
        Flow::Ipv6 { l4, .. } => (ptype::IPV6, l4),
        Flow::Other => return 0,
    };
    l3 | match l4 {
        L4::Tcp { .. } => ptype::TCP,
        L4::Udp { .. } => ptype::UDP,
        L4::Other => 0,
    }
}

/// The IEEE 802.3 CRC-32 (reflected polynomial 0xEDB88320), one table
/// lookup per byte.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The Ethernet FCS of `frame`, as the 4 bytes that follow it on the wire.
pub(crate) fn fcs(frame: &[u8]) -> [u8; 4] {
    let mut c = !0u32;
    for &b in frame {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    (!c).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(vlan: bool, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn parses_ipv4_udp_with_and_without_vlan() {
        for vlan in [false, true] {
            let flow = parse(&ipv4_udp(vlan, 0));
            assert_eq!(
                flow,
                Flow::Ipv4 {
                    src: [10, 0, 0, 1],
                    dst: [10, 0, 0, 2],
                    l4: L4::Udp {
                        sport: 12345,
                        dport: 53
                    },
                    fragment: false
                }
            );
            assert_eq!(packet_type(&flow), ptype::IPV4 | ptype::UDP);
        }
    }

    #[test]
    fn fragments_and_short_or_foreign_frames() {
        // First fragment (MF): ports known, but a fragment.
        match parse(&ipv4_udp(false, 0x2000)) {
            Flow::Ipv4 { l4, fragment, .. } => {
                assert!(fragment);
                assert!(matches!(l4, L4::Udp { .. }));
            }
            other => panic!("{other:?}"),
        }
        // Later fragment: no ports.
        match parse(&ipv4_udp(false, 0x0010)) {
            Flow::Ipv4 { l4, fragment, .. } => {
                assert!(fragment);
                assert_eq!(l4, L4::Other);
            }
            other => panic!("{other:?}"),
        }
        let f = ipv4_udp(false, 0);
        assert_eq!(parse(&f[..20]), Flow::Other);
        assert_eq!(parse(&f[..10]), Flow::Other);
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(&arp), Flow::Other);
        assert_eq!(packet_type(&Flow::Other), 0);
        // Transport header cut short: IPv4 without ports.
        match parse(&f[..36]) {
            Flow::Ipv4 { l4, .. } => assert_eq!(l4, L4::Other),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fcs_matches_the_crc32_check_value() {
        // The standard CRC-32 check: "123456789" -> 0xCBF43926.
        assert_eq!(fcs(b"123456789"), 0xcbf4_3926u32.to_le_bytes());
    }

    #[test]
    fn parses_ipv6_tcp() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        f.extend((1..=16).map(|i| i as u8));
        f.extend((17..=32).map(|i| i as u8));
        f.extend_from_slice(&[0x01, 0xbb, 0xc0, 0x00]);
        f.resize(f.len() + 16, 0);
        match parse(&f) {
            Flow::Ipv6 { src, dst, l4 } => {
                assert_eq!(src[0], 1);
                assert_eq!(dst[15], 32);
                assert_eq!(
                    l4,
                    L4::Tcp {
                        sport: 443,
                        dport: 0xc000
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
