//! Ethernet / IPv4 / UDP frames: building the test traffic of pktgen and
//! checking it on the receive side. Field offsets are named once here.
#![forbid(unsafe_code)]

/// Ethernet header length (no VLAN tag).
pub const ETH_LEN: usize = 14;
/// IPv4 header length without options.
pub const IPV4_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// Offset of the UDP payload in our frames.
pub const PAYLOAD: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
/// Smallest frame without FCS (64 bytes on the wire with it).
pub const MIN_FRAME: usize = 60;
/// Our payload starts with this magic, then a u64 sequence number.
pub const MAGIC: [u8; 4] = *b"kbpg";
/// Smallest frame that holds the magic and the sequence number.
pub const MIN_TEST_FRAME: usize = PAYLOAD + 12;

/// Ethernet field offsets.
pub mod eth {
    /// Destination MAC.
    pub const DST: std::ops::Range<usize> = 0..6;
    /// Source MAC.
    pub const SRC: std::ops::Range<usize> = 6..12;
    /// EtherType.
    pub const TYPE: std::ops::Range<usize> = 12..14;
    /// IPv4 EtherType.
    pub const TYPE_IPV4: u16 = 0x0800;
}

/// IPv4 field offsets, from the start of the IPv4 header.
pub mod ipv4 {
    /// Version and header length.
    pub const VER_IHL: usize = 0;
    /// Total length.
    pub const TOTAL_LEN: std::ops::Range<usize> = 2..4;
    /// Identification.
    pub const ID: std::ops::Range<usize> = 4..6;
    /// Flags (3 bits) and fragment offset (13 bits, in 8-byte units).
    pub const FLAGS_FRAGMENT: std::ops::Range<usize> = 6..8;
    /// Don't Fragment, in the flags-and-fragment-offset field (RFC 791).
    pub const DF: u16 = 0x4000;
    /// More Fragments, in the same field.
    pub const MF: u16 = 0x2000;
    /// The fragment offset part of that field.
    pub const FRAGMENT_OFFSET: u16 = 0x1fff;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol.
    pub const PROTO: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: std::ops::Range<usize> = 10..12;
    /// Source address.
    pub const SRC: std::ops::Range<usize> = 12..16;
    /// Destination address.
    pub const DST: std::ops::Range<usize> = 16..20;
    /// UDP.
    pub const PROTO_UDP: u8 = 17;
}

/// UDP field offsets, from the start of the UDP header.
pub mod udp {
    /// Source port.
    pub const SRC_PORT: std::ops::Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: std::ops::Range<usize> = 2..4;
    /// Length (header + payload).
    pub const LEN: std::ops::Range<usize> = 4..6;
    /// Checksum.
    pub const CHECKSUM: std::ops::Range<usize> = 6..8;
}

/// Where a test flow goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source IPv4 address.
    pub src_ip: [u8; 4],
    /// Destination IPv4 address.
    pub dst_ip: [u8; 4],
    /// Source UDP port.
    pub src_port: u16,
    /// Destination UDP port.
    pub dst_port: u16,
}

fn put16(b: &mut [u8], r: std::ops::Range<usize>, v: u16) {
    b[r].copy_from_slice(&v.to_be_bytes());
}

/// The big-endian 16-bit field `r` of `b` (a header field range).
pub fn get16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// Ones' complement sum of 16-bit big-endian words (not folded, not inverted).
pub fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

/// Fold a 32-bit ones' complement sum to 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Write the headers of a UDP test frame of `frame_len` bytes into
/// `frame[..PAYLOAD]`, with the checksums left to the NIC's offload: IPv4
/// checksum 0, UDP checksum = the pseudo-header sum (not inverted), as the
/// Intel datasheets ask for.
pub fn write_udp_headers(frame: &mut [u8], frame_len: usize, flow: &Flow) {
    let ip = &mut frame[..PAYLOAD];
    ip[eth::DST].copy_from_slice(&flow.dst_mac);
    ip[eth::SRC].copy_from_slice(&flow.src_mac);
    put16(ip, eth::TYPE, eth::TYPE_IPV4);
    let l3 = &mut ip[ETH_LEN..];
    l3[..IPV4_LEN].fill(0);
    l3[ipv4::VER_IHL] = 0x45;
    put16(l3, ipv4::TOTAL_LEN, (frame_len - ETH_LEN) as u16);
    l3[ipv4::TTL] = 64;
    l3[ipv4::PROTO] = ipv4::PROTO_UDP;
    l3[ipv4::SRC].copy_from_slice(&flow.src_ip);
    l3[ipv4::DST].copy_from_slice(&flow.dst_ip);
    let udp_len = (frame_len - ETH_LEN - IPV4_LEN) as u16;
    let l4 = &mut l3[IPV4_LEN..];
    put16(l4, udp::SRC_PORT, flow.src_port);
    put16(l4, udp::DST_PORT, flow.dst_port);
    put16(l4, udp::LEN, udp_len);
    let pseudo = pseudo_header_sum(&flow.src_ip, &flow.dst_ip, udp_len as usize);
    put16(l4, udp::CHECKSUM, fold(pseudo));
}

/// The ones' complement sum of the UDP pseudo-header (RFC 768) of a
/// datagram of `udp_len` bytes from IPv4 address `src` to `dst`.
fn pseudo_header_sum(src: &[u8], dst: &[u8], udp_len: usize) -> u32 {
    let s = sum16(src, 0);
    sum16(dst, s) + ipv4::PROTO_UDP as u32 + udp_len as u32
}

/// Whether the header checksum of the IPv4 header at the start of `l3`
/// (20 bytes, no options) is valid.
pub fn ipv4_checksum_ok(l3: &[u8]) -> bool {
    fold(sum16(&l3[..IPV4_LEN], 0)) == 0xffff
}

/// Whether the checksum of UDP datagram `l4` (header and payload, exactly
/// the UDP length) is valid for the addresses of IPv4 header `l3`. A
/// checksum of 0 means the sender computed none (RFC 768), which is valid.
pub fn udp_checksum_ok(l3: &[u8], l4: &[u8]) -> bool {
    get16(l4, udp::CHECKSUM) == 0
        || fold(sum16(
            l4,
            pseudo_header_sum(&l3[ipv4::SRC], &l3[ipv4::DST], l4.len()),
        )) == 0xffff
}

/// Fill in the IPv4 header checksum and the UDP checksum of a frame whose
/// headers [`write_udp_headers`] wrote (UDP field = pseudo-header sum), as
/// the NIC's checksum offload does: for frames that are not sent through a
/// NIC (test captures, software paths). The frame ends where its UDP
/// datagram ends.
pub fn offload_checksums_in_software(frame: &mut [u8]) {
    let l3 = ETH_LEN;
    let c = !fold(sum16(&frame[l3..l3 + IPV4_LEN], 0));
    put16(&mut frame[l3..], ipv4::CHECKSUM, c);
    // The UDP field holds the pseudo-header sum, so summing the datagram
    // with it in place gives the full checksum.
    let l4 = l3 + IPV4_LEN;
    let c = !fold(sum16(&frame[l4..], 0));
    // A computed 0 goes out as all ones: 0 would mean "no checksum" (RFC 768).
    let c = if c == 0 { 0xffff } else { c };
    put16(&mut frame[l4..], udp::CHECKSUM, c);
}

/// Write magic and `seq` at the start of the payload, and a fill pattern after.
pub fn write_test_payload(frame: &mut [u8], seq: u64) {
    frame[PAYLOAD..PAYLOAD + 4].copy_from_slice(&MAGIC);
    frame[PAYLOAD + 4..PAYLOAD + 12].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in frame[PAYLOAD + 12..].iter_mut().enumerate() {
        *b = i as u8;
    }
}

/// Overwrite only the sequence number (the rest of a reused buffer stands).
#[inline]
pub fn set_seq(frame: &mut [u8], seq: u64) {
    frame[PAYLOAD + 4..PAYLOAD + 12].copy_from_slice(&seq.to_le_bytes());
}

/// What a received frame holds, if it is one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFrame {
    /// Sequence number.
    pub seq: u64,
    /// IPv4 header checksum is valid.
    pub ip_checksum_ok: bool,
    /// UDP checksum is valid (or 0: none).
    pub udp_checksum_ok: bool,
    /// The fill pattern after the sequence number is intact.
    pub payload_ok: bool,
}

/// Parse one of pktgen's frames; None if it is something else.
pub fn parse_test_frame(frame: &[u8]) -> Option<TestFrame> {
    if frame.len() < MIN_TEST_FRAME
        || get16(frame, eth::TYPE) != eth::TYPE_IPV4
        || frame[ETH_LEN + ipv4::VER_IHL] != 0x45
        || frame[ETH_LEN + ipv4::PROTO] != ipv4::PROTO_UDP
        || frame[PAYLOAD..PAYLOAD + 4] != MAGIC
    {
        return None;
    }
    let l3 = &frame[ETH_LEN..];
    let total = get16(l3, ipv4::TOTAL_LEN) as usize;
    if total < IPV4_LEN + UDP_LEN || ETH_LEN + total > frame.len() {
        return None;
    }
    let ip_checksum_ok = ipv4_checksum_ok(l3);
    let l4 = &l3[IPV4_LEN..total];
    let udp_len = get16(l4, udp::LEN) as usize;
    let udp_checksum_ok = udp_len == l4.len() && udp_checksum_ok(l3, l4);
    let seq = u64::from_le_bytes(frame[PAYLOAD + 4..PAYLOAD + 12].try_into().ok()?);
    let payload_ok = frame[PAYLOAD + 12..ETH_LEN + total]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == i as u8);
    Some(TestFrame {
        seq,
        ip_checksum_ok,
        udp_checksum_ok,
        payload_ok,
    })
}

/// Parse `a.b.c.d`.
pub fn parse_ipv4(s: &str) -> Result<[u8; 4], String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| format!("'{s}' is not an IPv4 address like 10.0.0.2"))
}

/// Parse `aa:bb:cc:dd:ee:ff` (the device-string parser, with a message for clap).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    crate::open::device::parse_mac(s)
        .ok_or_else(|| format!("'{s}' is not a MAC address like 02:00:00:00:00:02"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [10, 0, 0, 1],
            dst_ip: [10, 0, 0, 2],
            src_port: 1234,
            dst_port: 5678,
        }
    }

    #[test]
    fn built_frames_parse_and_checksums_need_the_offload() {
        let mut f = vec![0u8; 128];
        write_udp_headers(&mut f, 128, &flow());
        write_test_payload(&mut f, 42);
        let t = parse_test_frame(&f).unwrap();
        assert_eq!(t.seq, 42);
        assert!(t.payload_ok);
        assert!(!t.ip_checksum_ok, "checksum must be left to the NIC");
        offload_checksums_in_software(&mut f);
        let t = parse_test_frame(&f).unwrap();
        assert!(t.ip_checksum_ok && t.udp_checksum_ok);
        set_seq(&mut f, 43);
        let t = parse_test_frame(&f).unwrap();
        assert_eq!(t.seq, 43);
        assert!(
            !t.udp_checksum_ok,
            "seq change without new checksum is detected"
        );
        f[100] ^= 0xff;
        assert!(!parse_test_frame(&f).unwrap().payload_ok);
    }

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // The IPv4 header example used in many references (checksum b861).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!fold(sum16(&h, 0)), 0xb861);
    }

    #[test]
    fn other_frames_are_not_ours() {
        assert_eq!(parse_test_frame(&[0u8; 60]), None);
        assert_eq!(parse_test_frame(&[0u8; 10]), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_ipv4("10.0.0.2"), Ok([10, 0, 0, 2]));
        assert!(parse_ipv4("10.0.0").is_err());
        assert!(parse_ipv4("10.0.0.256").is_err());
        assert!(parse_ipv4("10.0.0.x.2").is_err());
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Ok([2, 0, 0, 0, 0, 10]));
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:0a:zz").is_err());
    }
}
