//! Receive-side scaling: the Toeplitz hash and what it is computed over
//! (82576 datasheet §7.1.1.7, 82599 datasheet §7.1.2.8).
//!
//! The hash input is the source address, destination address and, for TCP
//! or UDP when the MRQC field selection allows it, the source and
//! destination ports, all in network byte order. The 40-byte key comes from
//! RSSRK (byte 0 in bits 7:0 of RSSRK\[0\]); the low 7 bits of the hash
//! index the 128-entry redirection table (RETA).
#![forbid(unsafe_code)]

use super::frame::{Flow, L4};
use spec::nic::adv_desc::rx::rss_type;
use spec::nic::{RETA_ENTRIES, RSS_KEY};

/// Length of the RSS key in bytes.
pub(crate) const KEY_LEN: usize = RSS_KEY.len();

/// The Toeplitz hash of `input` under `key`: for every set bit of the input
/// (most significant bit of byte 0 first), XOR in the 32 key bits that start
/// at the same bit position. `key` must be at least `input.len() + 4` bytes.
pub(crate) fn toeplitz(key: &[u8; KEY_LEN], input: &[u8]) -> u32 {
    debug_assert!(input.len() + 4 <= KEY_LEN);
    let mut hash = 0u32;
    // The 32-bit key window at the current bit, plus the next key byte to shift in.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().enumerate() {
        let next = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | ((next >> (7 - bit)) & 1) as u32;
        }
    }
    hash
}

/// Which hash functions MRQC enables (the field-select bits; the bit
/// positions come from the chip's register map).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RssFields {
    /// Hash IPv4 addresses.
    pub ipv4: bool,
    /// Hash IPv4 addresses and TCP ports.
    pub ipv4_tcp: bool,
    /// Hash IPv4 addresses and UDP ports.
    pub ipv4_udp: bool,
    /// Hash IPv6 addresses.
    pub ipv6: bool,
    /// Hash IPv6 addresses and TCP ports.
    pub ipv6_tcp: bool,
    /// Hash IPv6 addresses and UDP ports.
    pub ipv6_udp: bool,
}

/// The RSS state the receive path uses, rebuilt when the driver writes
/// MRQC, RSSRK or RETA.
#[derive(Debug, Clone)]
pub(crate) struct RssConfig {
    /// Enabled hash functions.
    pub fields: RssFields,
    /// RSSRK as bytes.
    pub key: [u8; KEY_LEN],
    /// RETA as bytes (one entry per byte).
    pub reta: [u8; RETA_ENTRIES],
    /// Bits of a RETA entry that name the queue.
    pub reta_mask: u8,
}

/// The result of hashing one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RssResult {
    /// The hash (0 if none was computed).
    pub hash: u32,
    /// The RSS type for the write-back (`rss_type::NONE` if none).
    pub kind: u32,
    /// The queue RETA names.
    pub queue: u16,
}

impl RssConfig {
    /// Hash `flow` with the enabled functions, most specific first (ports
    /// when allowed, else addresses only, else no hash: queue 0). Fragments
    /// carry no reliable ports, so they hash on addresses only.
    pub(crate) fn classify(&self, flow: &Flow) -> RssResult {
        let none = RssResult {
            hash: 0,
            kind: rss_type::NONE,
            queue: 0,
        };
        let mut input = [0u8; 36];
        let (kind, len) = match flow {
            Flow::Ipv4 {
                src,
                dst,
                l4,
                fragment,
            } => {
                input[0..4].copy_from_slice(src);
                input[4..8].copy_from_slice(dst);
                let ports = (!fragment).then_some(l4).and_then(|l4| match *l4 {
                    L4::Tcp { sport, dport } if self.fields.ipv4_tcp => {
                        Some((rss_type::IPV4_TCP, sport, dport))
                    }
                    L4::Udp { sport, dport } if self.fields.ipv4_udp => {
                        Some((rss_type::IPV4_UDP, sport, dport))
                    }
                    _ => None,
                });
                match ports {
                    Some((kind, sport, dport)) => {
                        input[8..10].copy_from_slice(&sport.to_be_bytes());
                        input[10..12].copy_from_slice(&dport.to_be_bytes());
                        (kind, 12)
                    }
                    None if self.fields.ipv4 => (rss_type::IPV4, 8),
                    None => return none,
                }
            }
            Flow::Ipv6 { src, dst, l4 } => {
                input[0..16].copy_from_slice(src);
                input[16..32].copy_from_slice(dst);
                let ports = match *l4 {
                    L4::Tcp { sport, dport } if self.fields.ipv6_tcp => {
                        Some((rss_type::IPV6_TCP, sport, dport))
                    }
                    L4::Udp { sport, dport } if self.fields.ipv6_udp => {
                        Some((rss_type::IPV6_UDP, sport, dport))
                    }
                    _ => None,
                };
                match ports {
                    Some((kind, sport, dport)) => {
                        input[32..34].copy_from_slice(&sport.to_be_bytes());
                        input[34..36].copy_from_slice(&dport.to_be_bytes());
                        (kind, 36)
                    }
                    None if self.fields.ipv6 => (rss_type::IPV6, 32),
                    None => return none,
                }
            }
            Flow::Other => return none,
        };
        let hash = toeplitz(&self.key, &input[..len]);
        let entry = self.reta[hash as usize % RETA_ENTRIES];
        RssResult {
            hash,
            kind,
            queue: (entry & self.reta_mask) as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> [u8; 4] {
        s.parse::<std::net::Ipv4Addr>().unwrap().octets()
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    /// The RSS verification suite published by Microsoft ("Verifying the RSS
    /// Hash Calculation") and reproduced in the 82599 datasheet §7.1.2.8.3:
    /// (source, source port, destination, destination port, hash over the
    /// addresses, hash over addresses and ports), with the key [`RSS_KEY`].
    const V4: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "66.9.149.187",
            2794,
            "161.142.100.80",
            1766,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            "199.92.111.2",
            14230,
            "65.69.140.83",
            4739,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            "24.19.198.95",
            12898,
            "12.22.207.184",
            38024,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            "38.27.205.30",
            48228,
            "209.142.163.6",
            2217,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            "153.39.163.191",
            44251,
            "202.188.127.2",
            1303,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];

    const V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:1fff::7",
            2794,
            "3ffe:2501:200:3::1",
            1766,
            0x2cc1_8cd5,
            0x4020_7d3d,
        ),
        (
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            "ff02::1",
            4739,
            0x0f0c_461c,
            0xdde5_1bbf,
        ),
        (
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            "fe80::200:f8ff:fe21:67cf",
            38024,
            0x4b61_e985,
            0x02d1_feef,
        ),
    ];

    #[test]
    fn toeplitz_matches_the_published_ipv4_vectors() {
        for (src, sport, dst, dport, h2, h4) in V4 {
            let mut input = Vec::new();
            input.extend_from_slice(&v4(src));
            input.extend_from_slice(&v4(dst));
            assert_eq!(toeplitz(&RSS_KEY, &input), h2, "{src} -> {dst}");
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(
                toeplitz(&RSS_KEY, &input),
                h4,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    #[test]
    fn toeplitz_matches_the_published_ipv6_vectors() {
        for (src, sport, dst, dport, h2, h4) in V6 {
            let mut input = Vec::new();
            input.extend_from_slice(&v6(src));
            input.extend_from_slice(&v6(dst));
            assert_eq!(toeplitz(&RSS_KEY, &input), h2, "{src} -> {dst}");
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz(&RSS_KEY, &input), h4, "{src} -> {dst} with ports");
        }
    }

    fn config(fields: RssFields) -> RssConfig {
        let mut reta = [0u8; RETA_ENTRIES];
        for (i, e) in reta.iter_mut().enumerate() {
            *e = (i % 4) as u8 | 0xf0;
        }
        RssConfig {
            fields,
            key: RSS_KEY,
            reta,
            reta_mask: 0x0f,
        }
    }

    #[test]
    fn classify_uses_ports_only_when_enabled_and_not_fragmented() {
        let (src, sport, dst, dport, h2, h4) = V4[0];
        let flow = |fragment| Flow::Ipv4 {
            src: v4(src),
            dst: v4(dst),
            l4: L4::Tcp { sport, dport },
            fragment,
        };
        let all = RssFields {
            ipv4: true,
            ipv4_tcp: true,
            ..RssFields::default()
        };
        let r = config(all).classify(&flow(false));
        assert_eq!((r.hash, r.kind), (h4, rss_type::IPV4_TCP));
        // RETA entry h4 & 127, masked to the queue bits.
        assert_eq!(r.queue, ((h4 as usize % RETA_ENTRIES) % 4) as u16);
        let r = config(all).classify(&flow(true));
        assert_eq!((r.hash, r.kind), (h2, rss_type::IPV4));
        let addr_only = RssFields {
            ipv4: true,
            ..RssFields::default()
        };
        let r = config(addr_only).classify(&flow(false));
        assert_eq!((r.hash, r.kind), (h2, rss_type::IPV4));
        let r = config(RssFields::default()).classify(&flow(false));
        assert_eq!((r.hash, r.kind, r.queue), (0, rss_type::NONE, 0));
        // UDP needs its own field bit.
        let udp = Flow::Ipv4 {
            src: v4(src),
            dst: v4(dst),
            l4: L4::Udp { sport, dport },
            fragment: false,
        };
        assert_eq!(config(all).classify(&udp).kind, rss_type::IPV4);
        let with_udp = RssFields {
            ipv4_udp: true,
            ..all
        };
        let r = config(with_udp).classify(&udp);
        assert_eq!((r.hash, r.kind), (h4, rss_type::IPV4_UDP));
    }
}
