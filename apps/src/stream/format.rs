//! The stream's frame format: Ethernet (14) / IPv4 (20, no options, DF,
//! TTL 64) / UDP (8) / stream header (40, big-endian, fields in [`field`])
//! / payload; building headers (once per run of frames: [`HeaderTemplate`])
//! and parsing received frames and datagrams.
#![forbid(unsafe_code)]

use crate::net::{self, Flow, PAYLOAD};
use spec::net::ethernet::{self, ethertype, HEADER_LEN as ETH_LEN};
use spec::net::ipv4::{self, HEADER_LEN as IPV4_LEN};
use spec::net::udp::HEADER_LEN as UDP_LEN;
use spec::net::{EthernetFrame, Ipv4Packet, UdpDatagram};
use std::fmt;

/// "BLK1": the first four bytes of every stream header.
pub const MAGIC: u32 = 0x424C_4B31;
/// Length of the stream header.
pub const HEADER_LEN: usize = 40;
/// `flags` bit: this frame carries the last byte of the range (in its lap).
pub const FLAG_LAST: u16 = 1;
/// Bytes before the payload in a frame: Ethernet, IPv4, UDP, stream header (82).
pub const FRAME_HEADERS: usize = PAYLOAD + HEADER_LEN;

/// Stream header field offsets, from the start of the UDP payload.
pub mod field {
    use std::ops::Range;
    /// Magic, [`super::MAGIC`].
    pub const MAGIC: Range<usize> = 0..4;
    /// Stream id (one per sender thread or queue).
    pub const STREAM: Range<usize> = 4..6;
    /// Flags ([`super::FLAG_LAST`]).
    pub const FLAGS: Range<usize> = 6..8;
    /// Pass over the range: 0, then +1 per `--loop` pass.
    pub const LAP: Range<usize> = 8..12;
    /// Payload bytes in this frame.
    pub const LEN: Range<usize> = 12..16;
    /// Disk byte offset of the first payload byte.
    pub const OFFSET: Range<usize> = 16..24;
    /// Range start (disk bytes).
    pub const START: Range<usize> = 24..32;
    /// Range end (disk bytes, exclusive).
    pub const END: Range<usize> = 32..40;
}

/// The stream header of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// Stream id (one per sender thread or queue).
    pub stream: u16,
    /// Flags: [`FLAG_LAST`].
    pub flags: u16,
    /// Pass over the range, from 0.
    pub lap: u32,
    /// Payload bytes in the frame.
    pub len: u32,
    /// Disk byte offset of the first payload byte (absolute).
    pub offset: u64,
    /// Range start (disk bytes).
    pub start: u64,
    /// Range end (disk bytes, exclusive).
    pub end: u64,
}

fn be_u16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn be_u32(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[r]);
    u32::from_be_bytes(v)
}

fn be_u64(b: &[u8], r: std::ops::Range<usize>) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[r]);
    u64::from_be_bytes(v)
}

impl StreamHeader {
    /// Write the header into `b[..HEADER_LEN]`.
    pub fn write_to(&self, b: &mut [u8]) {
        b[field::MAGIC].copy_from_slice(&MAGIC.to_be_bytes());
        b[field::STREAM].copy_from_slice(&self.stream.to_be_bytes());
        b[field::FLAGS].copy_from_slice(&self.flags.to_be_bytes());
        b[field::LAP].copy_from_slice(&self.lap.to_be_bytes());
        b[field::LEN].copy_from_slice(&self.len.to_be_bytes());
        b[field::OFFSET].copy_from_slice(&self.offset.to_be_bytes());
        b[field::START].copy_from_slice(&self.start.to_be_bytes());
        b[field::END].copy_from_slice(&self.end.to_be_bytes());
    }

    /// Read a header from the start of `b` and check the magic and that it
    /// is consistent ([`StreamHeader::check`]).
    pub fn parse(b: &[u8]) -> Result<StreamHeader, String> {
        if b.len() < HEADER_LEN {
            return Err(format!(
                "{} bytes, too short for a stream header ({HEADER_LEN})",
                b.len()
            ));
        }
        let magic = be_u32(b, field::MAGIC);
        if magic != MAGIC {
            return Err(format!("magic {magic:08x}, want {MAGIC:08x}"));
        }
        let h = StreamHeader {
            stream: be_u16(b, field::STREAM),
            flags: be_u16(b, field::FLAGS),
            lap: be_u32(b, field::LAP),
            len: be_u32(b, field::LEN),
            offset: be_u64(b, field::OFFSET),
            start: be_u64(b, field::START),
            end: be_u64(b, field::END),
        };
        h.check()?;
        Ok(h)
    }

    /// Whether the fields agree: `start <= end`, the payload within the
    /// range, and a LAST frame ending where the range does.
    pub fn check(&self) -> Result<(), String> {
        let end = self.offset.checked_add(self.len as u64);
        if self.start > self.end {
            return Err(format!(
                "range start {} after its end {}",
                self.start, self.end
            ));
        }
        if self.offset < self.start || end.is_none_or(|e| e > self.end) {
            return Err(format!(
                "bytes [{}, +{}) outside the range [{}, {})",
                self.offset, self.len, self.start, self.end
            ));
        }
        if self.is_last() && end != Some(self.end) {
            return Err(format!(
                "LAST frame ends at {}, not at the range end {}",
                self.offset + self.len as u64,
                self.end
            ));
        }
        Ok(())
    }

    /// Whether this frame carries the last byte of the range.
    pub fn is_last(&self) -> bool {
        self.flags & FLAG_LAST != 0
    }
}

/// Payload bytes per frame at IP MTU `mtu`: what is left after the IPv4,
/// UDP and stream headers (1500 -> 1432, 9000 -> 8932); 0 below 69.
pub fn payload_per_frame(mtu: usize) -> usize {
    mtu.saturating_sub(IPV4_LEN + UDP_LEN + HEADER_LEN)
}

/// Write the Ethernet, IPv4 (DF), UDP and stream headers of a frame of
/// `hdr.len` payload bytes into `buf[..FRAME_HEADERS]`, for sending with
/// the NIC's checksum offload: IPv4 checksum 0, UDP checksum field = the
/// pseudo-header sum (as [`net::write_udp_headers`] leaves it). Returns
/// the header bytes, [`FRAME_HEADERS`].
pub fn build_headers(buf: &mut [u8], flow: &Flow, hdr: &StreamHeader) -> usize {
    let frame_len = FRAME_HEADERS + hdr.len as usize;
    net::write_udp_headers(buf, frame_len, flow);
    // DF does not enter the pseudo-header sum, and the IPv4 checksum is
    // the NIC's to fill in.
    Ipv4Packet::new_unchecked(&mut buf[ETH_LEN..PAYLOAD]).set_flags_fragment(ipv4::flags::DF);
    hdr.write_to(&mut buf[PAYLOAD..FRAME_HEADERS]);
    FRAME_HEADERS
}

/// The headers of a run of frames that differ only in their byte offset
/// (every full-size frame of one lap): built once with [`build_headers`],
/// then each frame's headers are a copy with the offset patched in. The
/// checksums do not cover the offset in a way the sender computes: the
/// IPv4 and UDP checksums are the NIC's to fill in (offload).
#[derive(Debug, Clone)]
pub struct HeaderTemplate {
    bytes: [u8; FRAME_HEADERS],
    /// The header the template was built from (offset 0).
    pub hdr: StreamHeader,
}

impl HeaderTemplate {
    /// The template for frames like `hdr` (its offset is ignored).
    pub fn new(flow: &Flow, hdr: &StreamHeader) -> HeaderTemplate {
        let hdr = StreamHeader { offset: 0, ..*hdr };
        let mut bytes = [0u8; FRAME_HEADERS];
        build_headers(&mut bytes, flow, &hdr);
        HeaderTemplate { bytes, hdr }
    }

    /// Whether a frame with these fields can use this template.
    #[inline]
    pub fn fits(&self, lap: u32, len: u32, flags: u16) -> bool {
        self.hdr.lap == lap && self.hdr.len == len && self.hdr.flags == flags
    }

    /// Write the headers of the frame at disk byte `offset` into
    /// `buf[..FRAME_HEADERS]`; returns [`FRAME_HEADERS`].
    #[inline]
    pub fn write(&self, buf: &mut [u8], offset: u64) -> usize {
        let out = &mut buf[..FRAME_HEADERS];
        out.copy_from_slice(&self.bytes);
        Self::patch_offset(out, offset);
        FRAME_HEADERS
    }

    /// Patch the offset of headers a template wrote into
    /// `buf[..FRAME_HEADERS]` earlier ([`Self::write`]): the same headers
    /// for the frame at disk byte `offset`, without copying the rest. The
    /// patch is the same for every template, so a caller that knows by
    /// other means (a slot's stamp) what `buf` holds needs none at hand.
    #[inline]
    pub fn patch_offset(buf: &mut [u8], offset: u64) {
        let at = PAYLOAD + field::OFFSET.start..PAYLOAD + field::OFFSET.end;
        buf[at].copy_from_slice(&offset.to_be_bytes());
    }
}

/// How a frame that claims to be a stream frame is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The IPv4 header checksum is wrong.
    IpChecksum,
    /// The UDP checksum is wrong.
    UdpChecksum,
    /// An IPv4 fragment: some link on the way has a smaller MTU than the sender's.
    Fragment,
    /// The IPv4, UDP and stream header lengths and the frame disagree.
    Length,
    /// The stream header is inconsistent (what is wrong with it).
    Header(String),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::IpChecksum => write!(f, "bad IPv4 header checksum"),
            Corruption::UdpChecksum => write!(f, "bad UDP checksum"),
            Corruption::Fragment => write!(
                f,
                "IPv4 fragment (a link on the way has a smaller MTU than the sender's)"
            ),
            Corruption::Length => write!(f, "lengths of IPv4, UDP and stream header disagree"),
            Corruption::Header(why) => write!(f, "bad stream header: {why}"),
        }
    }
}

/// Why a frame is not taken as stream data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not a stream frame at all (ARP, other traffic): ignored, counted.
    NotStream,
    /// A stream frame (the magic is there) that is damaged: its bytes are
    /// not taken.
    Corrupt(Corruption),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NotStream => write!(f, "not a stream frame"),
            FrameError::Corrupt(c) => write!(f, "corrupt stream frame: {c}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Parse the UDP payload of a stream frame (what a UDP socket receives):
/// the header and the payload bytes it announces.
pub fn parse_datagram(d: &[u8]) -> Result<(StreamHeader, &[u8]), FrameError> {
    if d.len() < field::MAGIC.end || be_u32(d, field::MAGIC) != MAGIC {
        return Err(FrameError::NotStream);
    }
    if d.len() < HEADER_LEN {
        return Err(FrameError::Corrupt(Corruption::Length));
    }
    let h = StreamHeader::parse(d).map_err(|e| FrameError::Corrupt(Corruption::Header(e)))?;
    let payload = &d[HEADER_LEN..];
    if payload.len() != h.len as usize {
        return Err(FrameError::Corrupt(Corruption::Length));
    }
    Ok((h, payload))
}

/// Parse a received Ethernet frame: a stream frame's header and payload.
/// A frame is a stream frame when it is IPv4 (no options) / UDP with the
/// magic at the start of the UDP payload; such a frame must then have good
/// checksums (a UDP checksum of 0 means none was sent, RFC 768) and
/// consistent lengths, or it is [`FrameError::Corrupt`].
pub fn parse_frame(frame: &[u8]) -> Result<(StreamHeader, &[u8]), FrameError> {
    if frame.len() < PAYLOAD + field::MAGIC.end {
        return Err(FrameError::NotStream);
    }
    let ip = Ipv4Packet::new_unchecked(&frame[ethernet::HEADER_LEN..]);
    if EthernetFrame::new_unchecked(frame).ethertype() != ethertype::IPV4
        || ip.version() != 4
        || ip.header_len() != IPV4_LEN
        || ip.protocol() != ipv4::protocol::UDP
    {
        return Err(FrameError::NotStream);
    }
    if ip.frag_offset() != 0 {
        // A later fragment has no UDP header: nobody can tell whose it is.
        return Err(FrameError::NotStream);
    }
    if be_u32(frame, PAYLOAD..PAYLOAD + 4) != MAGIC {
        return Err(FrameError::NotStream);
    }
    let corrupt = |c| Err(FrameError::Corrupt(c));
    if !ip.verify_checksum() {
        return corrupt(Corruption::IpChecksum);
    }
    if ip.flags_fragment() & ipv4::flags::MF != 0 {
        return corrupt(Corruption::Fragment);
    }
    // Bytes past the IPv4 total length are Ethernet padding, not data.
    let total = ip.total_len() as usize;
    if total < IPV4_LEN + UDP_LEN || ETH_LEN + total > frame.len() {
        return corrupt(Corruption::Length);
    }
    let l4 = UdpDatagram::new_unchecked(&frame[ETH_LEN + IPV4_LEN..ETH_LEN + total]);
    if l4.length() as usize != total - IPV4_LEN {
        return corrupt(Corruption::Length);
    }
    if !l4.verify_checksum(ip.src_addr(), ip.dst_addr()) {
        return corrupt(Corruption::UdpChecksum);
    }
    parse_datagram(&l4.into_inner()[UDP_LEN..])
}
