//! Ethernet / IPv4 / UDP frames: building the test traffic of pktgen and
//! checking it on the receive side. The header layouts are
//! [`spec::net`]'s; this module knows what our test frames hold.
#![forbid(unsafe_code)]

use spec::net::checksum::{checksum, fold, pseudo_header_sum, sum};
use spec::net::ethernet::{self, ethertype};
use spec::net::{ipv4, udp, EthernetFrame, Ipv4Packet, MacAddr, UdpDatagram};

/// Offset of the UDP payload in our frames (no VLAN tag, no IPv4 options).
pub const PAYLOAD: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// Our payload starts with this magic, then a u64 sequence number.
pub const MAGIC: [u8; 4] = *b"kbpg";
/// Smallest frame that holds the magic and the sequence number.
pub const MIN_TEST_FRAME: usize = PAYLOAD + 12;

/// blkfwd's default UDP port, source and destination: in
/// the dynamic range (49152-65535, RFC 6335 §6), so no well-known or
/// registered protocol's, and above Linux's ephemeral ports (32768-60999)
/// so that no socket of the receiving host holds it by chance.
pub const BLKFWD_PORT: u16 = 61890;
/// pktgen's default UDP destination port, chosen as [`BLKFWD_PORT`].
pub const PKTGEN_PORT: u16 = 61891;
/// pktgen's first source port; flow `i` uses `PKTGEN_SRC_PORT + i`.
pub const PKTGEN_SRC_PORT: u16 = 61900;

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

/// Write the headers of a UDP test frame of `frame_len` bytes into
/// `frame[..PAYLOAD]`, with the checksums left to the NIC's offload: IPv4
/// checksum 0, UDP checksum = the pseudo-header sum (not inverted), as the
/// Intel datasheets ask for.
pub fn write_udp_headers(frame: &mut [u8], frame_len: usize, flow: &Flow) {
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..PAYLOAD]);
    eth.set_dst_addr(MacAddr(flow.dst_mac));
    eth.set_src_addr(MacAddr(flow.src_mac));
    eth.set_ethertype(ethertype::IPV4);
    let l3 = eth.payload_mut();
    l3[..ipv4::HEADER_LEN].fill(0);
    let mut ip = Ipv4Packet::new_unchecked(l3);
    ip.set_version_and_header_len(ipv4::HEADER_LEN);
    ip.set_total_len((frame_len - ethernet::HEADER_LEN) as u16);
    ip.set_ttl(64);
    ip.set_protocol(ipv4::protocol::UDP);
    ip.set_src_addr(flow.src_ip);
    ip.set_dst_addr(flow.dst_ip);
    let udp_len = (frame_len - ethernet::HEADER_LEN - ipv4::HEADER_LEN) as u16;
    let mut l4 = UdpDatagram::new_unchecked(ip.payload_mut());
    l4.set_src_port(flow.src_port);
    l4.set_dst_port(flow.dst_port);
    l4.set_length(udp_len);
    let pseudo = pseudo_header_sum(
        flow.src_ip,
        flow.dst_ip,
        ipv4::protocol::UDP,
        udp_len as usize,
    );
    l4.set_checksum(fold(pseudo));
}

/// Fill in the IPv4 header checksum and the UDP checksum of a frame whose
/// headers [`write_udp_headers`] wrote (UDP field = pseudo-header sum), as
/// the NIC's checksum offload does: for frames that are not sent through a
/// NIC (test captures, software paths). The frame ends where its UDP
/// datagram ends.
pub fn offload_checksums_in_software(frame: &mut [u8]) {
    let l3 = ethernet::HEADER_LEN;
    // Summed with the field as write_udp_headers left it (0), as a NIC does.
    let c = checksum(&frame[l3..l3 + ipv4::HEADER_LEN]);
    Ipv4Packet::new_unchecked(&mut frame[l3..]).set_checksum(c);
    // The UDP field holds the pseudo-header sum, so summing the datagram
    // with it in place gives the full checksum.
    let l4 = l3 + ipv4::HEADER_LEN;
    let c = !fold(sum(&frame[l4..], 0));
    // A computed 0 goes out as all ones: 0 would mean "no checksum" (RFC 768).
    let c = if c == 0 { 0xffff } else { c };
    UdpDatagram::new_unchecked(&mut frame[l4..]).set_checksum(c);
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
    if frame.len() < MIN_TEST_FRAME {
        return None;
    }
    let ip = Ipv4Packet::new_unchecked(&frame[ethernet::HEADER_LEN..]);
    if EthernetFrame::new_unchecked(frame).ethertype() != ethertype::IPV4
        || ip.version() != 4
        || ip.header_len() != ipv4::HEADER_LEN
        || ip.protocol() != ipv4::protocol::UDP
        || frame[PAYLOAD..PAYLOAD + 4] != MAGIC
    {
        return None;
    }
    let total = ip.total_len() as usize;
    if total < ipv4::HEADER_LEN + udp::HEADER_LEN || ethernet::HEADER_LEN + total > frame.len() {
        return None;
    }
    let ip_checksum_ok = ip.verify_checksum();
    let l4 = UdpDatagram::new_unchecked(&ip.payload()[..total - ipv4::HEADER_LEN]);
    let udp_checksum_ok = l4.length() as usize == total - ipv4::HEADER_LEN
        && l4.verify_checksum(ip.src_addr(), ip.dst_addr());
    let seq = u64::from_le_bytes(frame[PAYLOAD + 4..PAYLOAD + 12].try_into().ok()?);
    let payload_ok = frame[PAYLOAD + 12..ethernet::HEADER_LEN + total]
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
    s.parse::<MacAddr>()
        .map(<[u8; 6]>::from)
        .map_err(|_| format!("'{s}' is not a MAC address like 02:00:00:00:00:02"))
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
