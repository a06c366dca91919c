//! The disk-to-wire stream of blkfwd: the frame format (one UDP datagram
//! per frame, a 40-byte stream header before the disk bytes), the byte
//! pattern of emulated drives, and the [`Verifier`] a receiver feeds
//! frames to, which says which bytes of the range arrived, once, intact.
//!
//! Frame: Ethernet (14) / IPv4 (20, no options, DF, TTL 64) / UDP (8) /
//! stream header (40, big-endian, fields in [`field`]) / payload.

use crate::net::{self, Flow, PAYLOAD};
use spec::net::ethernet::{self, ethertype, HEADER_LEN as ETH_LEN};
use spec::net::ipv4::{self, HEADER_LEN as IPV4_LEN};
use spec::net::udp::HEADER_LEN as UDP_LEN;
use spec::net::{EthernetFrame, Ipv4Packet, UdpDatagram};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;

/// "BLK1": the first four bytes of every stream header.
pub const MAGIC: u32 = 0x424C_4B31;
/// Length of the stream header.
pub const HEADER_LEN: usize = 40;
/// `flags` bit: this frame carries the last byte of the range (in its lap).
pub const FLAG_LAST: u16 = 1;
/// Bytes before the payload in a frame: Ethernet, IPv4, UDP, stream header (82).
pub const FRAME_HEADERS: usize = PAYLOAD + HEADER_LEN;
/// Seed of the byte pattern of emulated drives unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x5EED;

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
        let at = PAYLOAD + field::OFFSET.start..PAYLOAD + field::OFFSET.end;
        out[at].copy_from_slice(&offset.to_be_bytes());
        FRAME_HEADERS
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

/// splitmix64 (Steele, Lea, Flood 2014): the word of the pattern.
#[inline]
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The pattern's word `w` (disk bytes `8w..8w+8`, little-endian).
#[inline]
fn pattern_word(w: u64, seed: u64) -> u64 {
    splitmix64(w ^ seed)
}

/// The pattern's byte at disk offset `o`.
#[inline]
fn pattern_byte(o: u64, seed: u64) -> u8 {
    (pattern_word(o / 8, seed) >> (8 * (o % 8))) as u8
}

/// Bytes of `buf` (at disk offset `disk_offset`) before the first
/// word-aligned one.
#[inline]
fn unaligned_head(len: usize, disk_offset: u64) -> usize {
    ((8 - disk_offset % 8) % 8).min(len as u64) as usize
}

/// Fill `buf` with the pattern of the disk bytes from `disk_offset` on:
/// byte `o` is byte `o % 8` (little-endian) of `splitmix64(o / 8 ^ seed)`.
pub fn pattern_fill(buf: &mut [u8], disk_offset: u64, seed: u64) {
    let len = buf.len();
    let head = unaligned_head(len, disk_offset);
    let (first, rest) = buf.split_at_mut(head);
    for (i, b) in first.iter_mut().enumerate() {
        *b = pattern_byte(disk_offset + i as u64, seed);
    }
    let w0 = (disk_offset + head as u64) / 8;
    let mut words = rest.chunks_exact_mut(8);
    for (k, c) in (&mut words).enumerate() {
        c.copy_from_slice(&pattern_word(w0 + k as u64, seed).to_le_bytes());
    }
    let tail = words.into_remainder();
    let at = disk_offset + (len - tail.len()) as u64;
    for (i, b) in tail.iter_mut().enumerate() {
        *b = pattern_byte(at + i as u64, seed);
    }
}

/// Call `bad(index)` for the bytes of `buf` that differ from the pattern
/// of the disk bytes from `disk_offset` on, in order, until it breaks.
/// Whole words are compared at once; only a differing word is looked at
/// byte by byte.
fn pattern_scan(
    buf: &[u8],
    disk_offset: u64,
    seed: u64,
    mut bad: impl FnMut(usize) -> ControlFlow<()>,
) {
    let mut bytes = |from: usize, part: &[u8]| -> ControlFlow<()> {
        for (i, &b) in part.iter().enumerate() {
            if b != pattern_byte(disk_offset + (from + i) as u64, seed) {
                bad(from + i)?;
            }
        }
        ControlFlow::Continue(())
    };
    let head = unaligned_head(buf.len(), disk_offset);
    if bytes(0, &buf[..head]).is_break() {
        return;
    }
    let w0 = (disk_offset + head as u64) / 8;
    let mut words = buf[head..].chunks_exact(8);
    for (k, c) in (&mut words).enumerate() {
        let got = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if got != pattern_word(w0 + k as u64, seed) && bytes(head + 8 * k, c).is_break() {
            return;
        }
    }
    let tail = words.remainder();
    let _ = bytes(buf.len() - tail.len(), tail);
}

/// Index of the first byte of `buf` that differs from the pattern of the
/// disk bytes from `disk_offset` on, or None when all match.
pub fn pattern_check(buf: &[u8], disk_offset: u64, seed: u64) -> Option<usize> {
    let mut first = None;
    pattern_scan(buf, disk_offset, seed, |i| {
        first = Some(i);
        ControlFlow::Break(())
    });
    first
}

/// Call `bad(index)` for every byte of `buf` that differs from the pattern.
fn pattern_mismatches(buf: &[u8], disk_offset: u64, seed: u64, mut bad: impl FnMut(usize)) {
    pattern_scan(buf, disk_offset, seed, |i| {
        bad(i);
        ControlFlow::Continue(())
    });
}

/// What the received bytes are compared with.
#[derive(Debug)]
pub enum Expect {
    /// The pattern of emulated drives ([`pattern_fill`]) with this seed.
    Pattern {
        /// The seed.
        seed: u64,
    },
    /// A disk image: the byte at disk offset `o` is the file's byte `o`.
    File(std::fs::File),
    /// Nothing: only which bytes arrived is checked.
    None,
}

/// Parse a seed: decimal or 0x-prefixed hex.
fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Expect {
    /// `pattern`, `pattern:SEED` (decimal or 0x hex), `file:PATH` (opened
    /// here) or `none`.
    pub fn parse(arg: &str) -> Result<Expect, String> {
        if arg == "none" {
            return Ok(Expect::None);
        }
        if arg == "pattern" {
            return Ok(Expect::Pattern { seed: DEFAULT_SEED });
        }
        if let Some(s) = arg.strip_prefix("pattern:") {
            return parse_seed(s)
                .map(|seed| Expect::Pattern { seed })
                .ok_or_else(|| {
                    format!("--expect pattern:{s}: '{s}' is not a seed; give a number like 0x5eed")
                });
        }
        if let Some(p) = arg.strip_prefix("file:") {
            return std::fs::File::open(p).map(Expect::File).map_err(|e| {
                format!(
                    "cannot open expected disk image {p}: {}; give the image the stream was read \
                     from",
                    emu::pcap::os_message(&e)
                )
            });
        }
        Err(format!(
            "--expect {arg}: unknown; use pattern, pattern:SEED, file:PATH or none"
        ))
    }
}

/// A set of disjoint byte ranges `[a, b)`, adjacent ones merged, keyed by
/// start: what arrived of a range of any size, in memory that grows with
/// the number of holes, not with the bytes.
#[derive(Debug, Default)]
struct IntervalSet {
    map: BTreeMap<u64, u64>,
    bytes: u64,
}

impl IntervalSet {
    /// Add `[a, b)`; push onto `new` the parts of it that were not in the
    /// set before, in order.
    fn insert(&mut self, a: u64, b: u64, new: &mut Vec<(u64, u64)>) {
        if a >= b {
            return;
        }
        // The intervals that overlap or touch [a, b) are the ones starting
        // at or before b whose end is at or after a: a run at the end of
        // the keys up to b, since the set is disjoint and sorted.
        let mut touching: Vec<(u64, u64)> = Vec::new();
        for (&s, &e) in self.map.range(..=b).rev() {
            if e < a {
                break;
            }
            touching.push((s, e));
        }
        touching.reverse();
        let first = new.len();
        let mut cursor = a;
        for &(s, e) in &touching {
            if s > cursor {
                new.push((cursor, s.min(b)));
            }
            cursor = cursor.max(e);
        }
        if cursor < b {
            new.push((cursor, b));
        }
        self.bytes += new[first..].iter().map(|(s, e)| e - s).sum::<u64>();
        let lo = touching.first().map_or(a, |&(s, _)| s.min(a));
        let hi = touching.last().map_or(b, |&(_, e)| e.max(b));
        for (s, _) in touching {
            self.map.remove(&s);
        }
        self.map.insert(lo, hi);
    }

    /// Bytes in the set.
    fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The holes of the set within `[lo, hi)`, in order, at most `max`.
    fn holes(&self, lo: u64, hi: u64, max: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut cursor = lo;
        for (&s, &e) in &self.map {
            if out.len() >= max {
                return out;
            }
            if s > cursor {
                out.push((cursor, s.min(hi)));
            }
            cursor = cursor.max(e);
        }
        if cursor < hi && out.len() < max {
            out.push((cursor, hi));
        }
        out
    }
}

/// One pass over the range.
#[derive(Debug, Default)]
struct Lap {
    got: IntervalSet,
    last: bool,
    complete: bool,
}

/// Frames that were not taken, by cause.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BadFrames {
    /// Bad IPv4 header checksum.
    pub ip_checksum: u64,
    /// Bad UDP checksum.
    pub udp_checksum: u64,
    /// IPv4 fragments of stream frames.
    pub fragment: u64,
    /// Lengths that disagree.
    pub length: u64,
    /// Inconsistent stream headers.
    pub header: u64,
    /// Stream frames for another range than the first frame's.
    pub other_range: u64,
}

impl BadFrames {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.ip_checksum
            + self.udp_checksum
            + self.fragment
            + self.length
            + self.header
            + self.other_range
    }

    fn count(&mut self, c: &Corruption) {
        match c {
            Corruption::IpChecksum => self.ip_checksum += 1,
            Corruption::UdpChecksum => self.udp_checksum += 1,
            Corruption::Fragment => self.fragment += 1,
            Corruption::Length => self.length += 1,
            Corruption::Header(_) => self.header += 1,
        }
    }
}

impl fmt::Display for BadFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bad", self.total())?;
        let parts: Vec<String> = [
            (self.ip_checksum, "IPv4 checksum"),
            (self.udp_checksum, "UDP checksum"),
            (self.fragment, "fragment"),
            (self.length, "length"),
            (self.header, "stream header"),
            (self.other_range, "other range"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// How many offsets and ranges a report lists.
const REPORT_FIRST: usize = 5;
/// Chunk of the expected file read at a time.
const FILE_CHUNK: usize = 64 * 1024;

/// Checks the stream frames of a run: per lap, which bytes of the range
/// arrived (an interval set), how many twice, and whether they match the
/// expectation.
#[derive(Debug)]
pub struct Verifier {
    expect: Expect,
    /// `[start, end)` of the first stream frame; later frames must agree.
    range: Option<(u64, u64)>,
    laps: BTreeMap<u32, Lap>,
    complete_laps: u32,
    lap_limit: Option<u32>,
    later_laps: u64,
    streams: BTreeSet<u16>,
    frames: u64,
    payload_bytes: u64,
    not_stream: u64,
    bad: BadFrames,
    verified: u64,
    mismatched: u64,
    /// (lap, disk offset) of the first mismatched bytes.
    first_mismatches: Vec<(u32, u64)>,
    duplicate: u64,
    /// Where the expected file ended or failed to read, if it did.
    file_note: Option<String>,
    scratch: Vec<u8>,
    new: Vec<(u64, u64)>,
}

impl Verifier {
    /// A verifier comparing with `expect`.
    pub fn new(expect: Expect) -> Self {
        Verifier {
            expect,
            range: None,
            laps: BTreeMap::new(),
            complete_laps: 0,
            lap_limit: None,
            later_laps: 0,
            streams: BTreeSet::new(),
            frames: 0,
            payload_bytes: 0,
            not_stream: 0,
            bad: BadFrames::default(),
            verified: 0,
            mismatched: 0,
            first_mismatches: Vec::new(),
            duplicate: 0,
            file_note: None,
            scratch: Vec::new(),
            new: Vec::new(),
        }
    }

    /// Take a received Ethernet frame: parse it, then accept or count it.
    pub fn accept_frame(&mut self, frame: &[u8]) {
        match parse_frame(frame) {
            Ok((h, p)) => self.accept(&h, p),
            Err(e) => self.reject(&e),
        }
    }

    /// Take a received UDP payload (from a socket): parse it, then accept
    /// or count it.
    pub fn accept_datagram(&mut self, d: &[u8]) {
        match parse_datagram(d) {
            Ok((h, p)) => self.accept(&h, p),
            Err(e) => self.reject(&e),
        }
    }

    /// Count a frame that [`parse_frame`] refused.
    pub fn reject(&mut self, e: &FrameError) {
        match e {
            FrameError::NotStream => self.not_stream += 1,
            FrameError::Corrupt(c) => self.bad.count(c),
        }
    }

    /// Take the payload of a stream frame whose header is `hdr` (as
    /// [`parse_frame`] returns them). An inconsistent header or a payload
    /// of another length than it says counts as a bad frame.
    pub fn accept(&mut self, hdr: &StreamHeader, payload: &[u8]) {
        if payload.len() != hdr.len as usize {
            self.bad.length += 1;
            return;
        }
        if let Err(e) = hdr.check() {
            self.bad.count(&Corruption::Header(e));
            return;
        }
        let range = *self.range.get_or_insert((hdr.start, hdr.end));
        if range != (hdr.start, hdr.end) {
            self.bad.other_range += 1;
            return;
        }
        if self.lap_limit.is_some_and(|n| hdr.lap >= n) {
            self.later_laps += 1;
            return;
        }
        self.frames += 1;
        self.payload_bytes += hdr.len as u64;
        self.streams.insert(hdr.stream);
        let mut new = std::mem::take(&mut self.new);
        new.clear();
        let lap = self.laps.entry(hdr.lap).or_default();
        lap.last |= hdr.is_last();
        lap.got
            .insert(hdr.offset, hdr.offset + hdr.len as u64, &mut new);
        if !lap.complete && lap.last && lap.got.bytes() == range.1 - range.0 {
            lap.complete = true;
            self.complete_laps += 1;
        }
        // Walk the payload: parts new in this lap, and duplicates between.
        let at = |o: u64| (o - hdr.offset) as usize;
        let mut cursor = hdr.offset;
        let end = hdr.offset + hdr.len as u64;
        for &(a, b) in new.iter().chain(std::iter::once(&(end, end))) {
            if a > cursor {
                self.mismatched += self.compare(hdr.lap, cursor, &payload[at(cursor)..at(a)]);
                self.duplicate += a - cursor;
            }
            if b > a {
                let bad = self.compare(hdr.lap, a, &payload[at(a)..at(b)]);
                self.mismatched += bad;
                self.verified += (b - a) - bad;
            }
            cursor = b;
        }
        self.new = new;
    }

    /// Mismatched bytes of `got`, the disk bytes from `a` on in lap `lap`,
    /// noting the first few.
    fn compare(&mut self, lap: u32, a: u64, got: &[u8]) -> u64 {
        let mut n = 0u64;
        let first = &mut self.first_mismatches;
        let mut note = |i: usize| {
            n += 1;
            if first.len() < REPORT_FIRST {
                first.push((lap, a + i as u64));
            }
        };
        match &self.expect {
            Expect::None => {}
            Expect::Pattern { seed } => pattern_mismatches(got, a, *seed, note),
            Expect::File(f) => {
                for (k, part) in got.chunks(FILE_CHUNK).enumerate() {
                    let at = a + (k * FILE_CHUNK) as u64;
                    self.scratch.resize(part.len(), 0);
                    let mut have = 0;
                    while have < part.len() {
                        match f.read_at(&mut self.scratch[have..], at + have as u64) {
                            Ok(0) => {
                                self.file_note.get_or_insert_with(|| {
                                    format!(
                                        "the expected file ends at byte {}: bytes after it count \
                                         as mismatched",
                                        at + have as u64
                                    )
                                });
                                break;
                            }
                            Ok(r) => have += r,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                self.file_note.get_or_insert_with(|| {
                                    format!(
                                        "reading the expected file at byte {} failed: {}: those \
                                         bytes count as mismatched",
                                        at + have as u64,
                                        emu::pcap::os_message(&e)
                                    )
                                });
                                break;
                            }
                        }
                    }
                    let base = k * FILE_CHUNK;
                    for (i, (g, w)) in part[..have].iter().zip(&self.scratch[..have]).enumerate() {
                        if g != w {
                            note(base + i);
                        }
                    }
                    for i in have..part.len() {
                        note(base + i);
                    }
                }
            }
        }
        n
    }

    /// Ignore frames of lap `n` and later (counted, not checked): a
    /// receiver that stops after `n` laps of a sender that goes on.
    pub fn limit_laps(&mut self, n: u32) {
        self.lap_limit = Some(n);
    }

    /// Laps whose every byte arrived, LAST frame included.
    pub fn complete_laps(&self) -> u32 {
        self.complete_laps
    }

    /// Payload bytes taken so far, duplicates included.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Whether a stream frame was seen and every lap up to the highest one
    /// seen has the whole range, its LAST frame included.
    pub fn is_complete(&self) -> bool {
        match self.laps.keys().next_back() {
            Some(&max) => self.complete_laps as u64 == max as u64 + 1,
            None => false,
        }
    }

    /// What was received, so far.
    pub fn report(&self) -> Report {
        let compared = !matches!(self.expect, Expect::None);
        let mut r = Report {
            range: self.range,
            laps: 0,
            complete_laps: self.complete_laps,
            streams: self.streams.len(),
            frames: self.frames,
            not_stream: self.not_stream,
            bad: self.bad,
            later_laps: self.later_laps,
            compared,
            received: 0,
            // Nothing is verified without an expectation.
            verified: if compared { self.verified } else { 0 },
            mismatched: self.mismatched,
            first_mismatches: self.first_mismatches.clone(),
            missing: 0,
            first_missing: Vec::new(),
            without_last: Vec::new(),
            duplicate: self.duplicate,
            note: self.file_note.clone(),
            complete: self.is_complete(),
        };
        let (Some((start, end)), Some(&max)) = (self.range, self.laps.keys().next_back()) else {
            return r;
        };
        let len = end - start;
        r.laps = max as u64 + 1;
        r.received = self.laps.values().map(|l| l.got.bytes()).sum();
        // Laps of which no frame came are missing whole.
        r.missing = (r.laps - self.laps.len() as u64) * len;
        let mut expected = 0u64;
        for (&n, lap) in &self.laps {
            while expected < n as u64 && r.first_missing.len() < REPORT_FIRST {
                r.first_missing.push((expected as u32, start, end));
                expected += 1;
            }
            expected = n as u64 + 1;
            r.missing += len - lap.got.bytes();
            let room = REPORT_FIRST - r.first_missing.len();
            for (a, b) in lap.got.holes(start, end, room) {
                r.first_missing.push((n, a, b));
            }
            if !lap.last && r.without_last.len() < REPORT_FIRST {
                r.without_last.push(n);
            }
        }
        r
    }
}

/// What a [`Verifier`] found. Byte counts are of disk bytes in the range,
/// summed over laps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The range `[start, end)`, once a stream frame was seen.
    pub range: Option<(u64, u64)>,
    /// Laps expected: the highest lap seen + 1.
    pub laps: u64,
    /// Laps complete.
    pub complete_laps: u32,
    /// Distinct stream ids seen.
    pub streams: usize,
    /// Stream frames taken.
    pub frames: u64,
    /// Frames that were not stream frames (ignored).
    pub not_stream: u64,
    /// Stream frames not taken (damaged or inconsistent).
    pub bad: BadFrames,
    /// Stream frames of laps past [`Verifier::limit_laps`] (ignored).
    pub later_laps: u64,
    /// Whether bytes were compared with an expectation (not `--expect none`).
    pub compared: bool,
    /// Bytes that arrived (once or more).
    pub received: u64,
    /// Bytes that arrived and matched the expectation on their first arrival.
    pub verified: u64,
    /// Bytes that differed from the expectation (duplicates included).
    pub mismatched: u64,
    /// (lap, disk offset) of the first mismatched bytes.
    pub first_mismatches: Vec<(u32, u64)>,
    /// Bytes of the range that did not arrive, over all expected laps.
    pub missing: u64,
    /// (lap, start, end) of the first missing ranges.
    pub first_missing: Vec<(u32, u64, u64)>,
    /// The first laps whose LAST frame did not arrive.
    pub without_last: Vec<u32>,
    /// Bytes that arrived more than once in the same lap (the extra copies).
    pub duplicate: u64,
    /// Trouble with the expected file, if any.
    pub note: Option<String>,
    /// [`Verifier::is_complete`].
    pub complete: bool,
}

/// "1 lap", "2 laps".
fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.range {
            Some((s, e)) => writeln!(
                f,
                "stream: range [{s}, {e}) ({}), {} ({} complete), {}",
                crate::human_bytes(e - s),
                count(self.laps, "lap"),
                self.complete_laps,
                count(self.streams as u64, "stream")
            )?,
            None => writeln!(f, "stream: no stream frame seen")?,
        }
        write!(
            f,
            "frames: {} stream, {} not stream, {}",
            self.frames, self.not_stream, self.bad
        )?;
        if self.later_laps > 0 {
            write!(f, ", {} of later laps ignored", self.later_laps)?;
        }
        writeln!(f)?;
        if self.compared {
            write!(
                f,
                "verified: {} bytes, {} mismatched",
                self.verified, self.mismatched
            )?;
            if !self.first_mismatches.is_empty() {
                let first: Vec<String> = self
                    .first_mismatches
                    .iter()
                    .map(|(lap, o)| format!("lap {lap} offset {o}"))
                    .collect();
                write!(f, " (first: {})", first.join(", "))?;
            }
            writeln!(f)?;
        } else {
            writeln!(
                f,
                "received: {} bytes, not compared (--expect none)",
                self.received
            )?;
        }
        write!(f, "missing: {} bytes", self.missing)?;
        if !self.first_missing.is_empty() {
            let first: Vec<String> = self
                .first_missing
                .iter()
                .map(|(lap, a, b)| format!("lap {lap} [{a}, {b})"))
                .collect();
            write!(f, " (first: {})", first.join(", "))?;
        }
        writeln!(f)?;
        writeln!(f, "duplicate: {} bytes", self.duplicate)?;
        if let Some(n) = &self.note {
            writeln!(f, "note: {n}")?;
        }
        if self.complete {
            write!(f, "complete: yes")
        } else {
            let mut why = Vec::new();
            if self.range.is_none() {
                why.push("no stream frame".to_string());
            }
            if self.missing > 0 {
                why.push(format!("{} bytes missing", self.missing));
            }
            if !self.without_last.is_empty() {
                let laps: Vec<String> = self.without_last.iter().map(|l| l.to_string()).collect();
                why.push(format!("no LAST frame in lap {}", laps.join(", ")));
            }
            write!(f, "complete: no ({})", why.join("; "))
        }
    }
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
            src_port: 4000,
            dst_port: 5000,
        }
    }

    fn header(lap: u32, offset: u64, len: u32, start: u64, end: u64) -> StreamHeader {
        StreamHeader {
            stream: 0,
            flags: if offset + len as u64 == end {
                FLAG_LAST
            } else {
                0
            },
            lap,
            len,
            offset,
            start,
            end,
        }
    }

    #[test]
    fn template_headers_equal_built_headers_at_any_offset() {
        let t = HeaderTemplate::new(&flow(), &header(3, 0, 1458, 0, 1 << 30));
        for offset in [0u64, 1458, 7 * 1458 + 512, (1 << 30) - 2 * 1458] {
            let h = header(3, offset, 1458, 0, 1 << 30);
            assert!(t.fits(h.lap, h.len, h.flags));
            let (mut a, mut b) = ([0u8; FRAME_HEADERS], [0xffu8; FRAME_HEADERS]);
            build_headers(&mut a, &flow(), &h);
            assert_eq!(t.write(&mut b, offset), FRAME_HEADERS);
            assert_eq!(a, b, "offset {offset}");
        }
        assert!(!t.fits(4, 1458, 0), "another lap");
        assert!(!t.fits(3, 100, 0), "another length");
        assert!(!t.fits(3, 1458, FLAG_LAST), "the last frame");
    }

    /// A frame as the NIC sends it: headers, pattern payload, checksums
    /// filled in as the offload does.
    fn frame(h: &StreamHeader, seed: u64) -> Vec<u8> {
        let mut f = vec![0u8; FRAME_HEADERS + h.len as usize];
        assert_eq!(build_headers(&mut f, &flow(), h), FRAME_HEADERS);
        pattern_fill(&mut f[FRAME_HEADERS..], h.offset, seed);
        net::offload_checksums_in_software(&mut f);
        f
    }

    /// The frames of one lap over [start, end), `per` payload bytes each.
    fn lap_frames(lap: u32, start: u64, end: u64, per: u64) -> Vec<Vec<u8>> {
        (start..end)
            .step_by(per as usize)
            .map(|o| {
                let len = per.min(end - o) as u32;
                frame(&header(lap, o, len, start, end), DEFAULT_SEED)
            })
            .collect()
    }

    fn verify(frames: &[Vec<u8>]) -> Verifier {
        let mut v = Verifier::new(Expect::Pattern { seed: DEFAULT_SEED });
        for f in frames {
            v.accept_frame(f);
        }
        v
    }

    #[test]
    fn header_round_trips_at_the_contracts_offsets() {
        let h = StreamHeader {
            stream: 0x0102,
            flags: FLAG_LAST,
            lap: 0x0304_0506,
            len: 1432,
            offset: 0x10_0000_0000 - 1432,
            start: 4096,
            end: 0x10_0000_0000,
        };
        let mut b = [0u8; HEADER_LEN];
        h.write_to(&mut b);
        assert_eq!(&b[..4], b"BLK1");
        assert_eq!(&b[4..8], &[1, 2, 0, 1]);
        assert_eq!(&b[8..12], &[3, 4, 5, 6]);
        assert_eq!(&b[12..16], &1432u32.to_be_bytes());
        assert_eq!(&b[32..40], &0x10_0000_0000u64.to_be_bytes());
        assert_eq!(StreamHeader::parse(&b), Ok(h));
        assert!(h.is_last());
        assert_eq!(payload_per_frame(1500), 1432);
        assert_eq!(payload_per_frame(9000), 8932);
    }

    #[test]
    fn inconsistent_headers_are_refused_with_the_reason() {
        let ok = header(0, 100, 10, 0, 200);
        let err = |h: StreamHeader| {
            let mut b = [0u8; HEADER_LEN];
            h.write_to(&mut b);
            StreamHeader::parse(&b).unwrap_err()
        };
        assert_eq!(
            err(StreamHeader { start: 300, ..ok }),
            "range start 300 after its end 200"
        );
        assert_eq!(
            err(StreamHeader { offset: 195, ..ok }),
            "bytes [195, +10) outside the range [0, 200)"
        );
        assert_eq!(
            err(StreamHeader {
                offset: u64::MAX - 2,
                end: u64::MAX,
                ..ok
            }),
            format!(
                "bytes [{}, +10) outside the range [0, {})",
                u64::MAX - 2,
                u64::MAX
            )
        );
        assert_eq!(
            err(StreamHeader {
                flags: FLAG_LAST,
                ..ok
            }),
            "LAST frame ends at 110, not at the range end 200"
        );
        assert!(StreamHeader::parse(&[0; 39])
            .unwrap_err()
            .contains("39 bytes"));
        let mut b = [0u8; HEADER_LEN];
        ok.write_to(&mut b);
        b[0] = b'X';
        assert_eq!(
            StreamHeader::parse(&b).unwrap_err(),
            "magic 584c4b31, want 424c4b31"
        );
    }

    #[test]
    fn built_headers_are_what_the_offload_expects() {
        let h = header(0, 0, 1432, 0, 1 << 20);
        let mut f = vec![0u8; FRAME_HEADERS + 1432];
        build_headers(&mut f, &flow(), &h);
        // Same Ethernet/IPv4/UDP bytes as pktgen's offloaded frames, but DF.
        let mut g = vec![0u8; f.len()];
        net::write_udp_headers(&mut g, f.len(), &flow());
        let l3 = ETH_LEN;
        assert_eq!(&f[l3 + 6..l3 + 8], &[0x40, 0], "DF");
        g[l3 + 6] = 0x40;
        assert_eq!(&f[..PAYLOAD], &g[..PAYLOAD]);
        assert_eq!(
            &f[l3 + 10..l3 + 12],
            &[0, 0],
            "IPv4 checksum left to the NIC"
        );
        assert_eq!(f[l3 + 8], 64, "TTL");
        assert_eq!(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]), 1500);
        // Without the offload's work the frame is corrupt; with it, good.
        assert_eq!(
            parse_frame(&f).unwrap_err(),
            FrameError::Corrupt(Corruption::IpChecksum)
        );
        pattern_fill(&mut f[FRAME_HEADERS..], 0, DEFAULT_SEED);
        net::offload_checksums_in_software(&mut f);
        let (got, payload) = parse_frame(&f).unwrap();
        assert_eq!(got, h);
        assert_eq!(payload, &f[FRAME_HEADERS..]);
        assert_eq!(parse_datagram(&f[PAYLOAD..]).unwrap().0, h);
    }

    #[test]
    fn damaged_and_foreign_frames_are_told_apart() {
        let good = frame(&header(0, 0, 100, 0, 100), 1);
        let l4 = ETH_LEN + IPV4_LEN;
        // One payload bit: the UDP checksum catches it.
        let mut f = good.clone();
        f[FRAME_HEADERS + 50] ^= 1;
        assert_eq!(
            parse_frame(&f).unwrap_err(),
            FrameError::Corrupt(Corruption::UdpChecksum)
        );
        // UDP checksum 0: none was computed; the frame is taken.
        f[l4 + 6..l4 + 8].fill(0);
        assert!(parse_frame(&f).is_ok());
        // Ethernet padding after the datagram is not payload.
        let mut f = good.clone();
        f.extend_from_slice(&[0xee; 6]);
        assert_eq!(parse_frame(&f).unwrap().1.len(), 100);
        // A frame cut short, and a UDP length that disagrees.
        assert_eq!(
            parse_frame(&good[..good.len() - 1]).unwrap_err(),
            FrameError::Corrupt(Corruption::Length)
        );
        // A first fragment, with its IPv4 checksum redone.
        let mut f = good.clone();
        f[ETH_LEN + 6] = 0x20;
        Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]).fill_checksum();
        assert_eq!(
            parse_frame(&f).unwrap_err(),
            FrameError::Corrupt(Corruption::Fragment)
        );
        // Not ours: ARP, TCP, UDP without the magic, a runt.
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let mut tcp = good.clone();
        tcp[ETH_LEN + 9] = 6;
        let mut other = good.clone();
        other[PAYLOAD] = b'k';
        for f in [&arp[..], &tcp, &other, &good[..40]] {
            assert_eq!(parse_frame(f).unwrap_err(), FrameError::NotStream);
        }
        // The magic but a stream header that lies about its length.
        let mut f = frame(&header(0, 0, 100, 0, 200), 1);
        f[PAYLOAD + 12..PAYLOAD + 16].copy_from_slice(&99u32.to_be_bytes());
        assert_eq!(
            parse_datagram(&f[PAYLOAD..]).unwrap_err(),
            FrameError::Corrupt(Corruption::Length)
        );
    }

    #[test]
    fn pattern_matches_the_contract_at_any_offset() {
        // splitmix64's first output from state 0 (a published test vector).
        let mut b = [0u8; 16];
        pattern_fill(&mut b, 0, 0);
        assert_eq!(
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            0xE220_A839_7B1D_CDAF
        );
        // Byte o is byte o % 8 of word o / 8 of seed-xored splitmix64.
        let mut whole = vec![0u8; 4096];
        pattern_fill(&mut whole, 1000, DEFAULT_SEED);
        for (i, &byte) in whole.iter().enumerate() {
            let o = 1000 + i as u64;
            let w = splitmix64((o / 8) ^ DEFAULT_SEED).to_le_bytes();
            assert_eq!(byte, w[(o % 8) as usize]);
        }
        for (from, len) in [(1003usize, 1), (1001, 13), (1017, 1432), (0, 4096)] {
            let at = 1000 + from as u64;
            let mut part = vec![0u8; len.min(4096 - from)];
            pattern_fill(&mut part, at, DEFAULT_SEED);
            assert_eq!(&part[..], &whole[from..from + part.len()]);
            assert_eq!(pattern_check(&part, at, DEFAULT_SEED), None);
        }
        whole[777] ^= 0x10;
        whole[900] ^= 1;
        assert_eq!(pattern_check(&whole, 1000, DEFAULT_SEED), Some(777));
        assert_eq!(pattern_check(&whole, 1000, DEFAULT_SEED + 1), Some(0));
        let mut bad = Vec::new();
        pattern_mismatches(&whole, 1000, DEFAULT_SEED, |i| bad.push(i));
        assert_eq!(bad, [777, 900]);
    }

    #[test]
    fn interval_set_agrees_with_a_bitmap() {
        let mut set = IntervalSet::default();
        let mut bits = vec![false; 1000];
        let mut x = 7u64;
        for _ in 0..3000 {
            x = splitmix64(x);
            let a = x % 1000;
            let b = (a + (x >> 32) % 40).min(1000);
            let mut new = Vec::new();
            set.insert(a, b, &mut new);
            let mut want = Vec::new();
            for i in a..b {
                if !bits[i as usize] {
                    match want.last_mut() {
                        Some((_, e)) if *e == i => *e = i + 1,
                        _ => want.push((i, i + 1)),
                    }
                    bits[i as usize] = true;
                }
            }
            assert_eq!(new, want, "insert [{a}, {b})");
            assert_eq!(set.bytes(), bits.iter().filter(|&&b| b).count() as u64);
            // Merged: no two intervals touch.
            let v: Vec<_> = set.map.iter().collect();
            assert!(v.windows(2).all(|w| w[0].1 < w[1].0), "{v:?}");
        }
        assert!(set.holes(0, 1000, 10).is_empty());
        assert_eq!(set.map.len(), 1);
    }

    #[test]
    fn holes_are_listed_in_order_up_to_the_limit() {
        let mut s = IntervalSet::default();
        let mut new = Vec::new();
        s.insert(10, 20, &mut new);
        s.insert(30, 40, &mut new);
        assert_eq!(s.holes(0, 50, 10), [(0, 10), (20, 30), (40, 50)]);
        assert_eq!(s.holes(0, 50, 2), [(0, 10), (20, 30)]);
        assert_eq!(s.holes(10, 40, 10), [(20, 30)]);
        s.insert(20, 30, &mut new);
        assert_eq!(s.map.len(), 1, "adjacent intervals merge");
    }

    #[test]
    fn a_whole_stream_in_any_order_verifies() {
        let mut frames = lap_frames(0, 4096, 4096 + 100_000, 1432);
        let v = verify(&frames);
        let r = v.report();
        assert!(v.is_complete());
        assert_eq!(r.verified, 100_000);
        assert_eq!((r.mismatched, r.missing, r.duplicate), (0, 0, 0));
        assert_eq!(
            r.to_string(),
            "stream: range [4096, 104096) (97.66 KiB), 1 lap (1 complete), 1 stream\n\
             frames: 70 stream, 0 not stream, 0 bad\n\
             verified: 100000 bytes, 0 mismatched\n\
             missing: 0 bytes\n\
             duplicate: 0 bytes\n\
             complete: yes"
        );
        // Reversed, with every fifth frame twice: same bytes, duplicates counted.
        frames.reverse();
        let twice: Vec<Vec<u8>> = frames.iter().step_by(5).cloned().collect();
        frames.extend(twice);
        let v = verify(&frames);
        let r = v.report();
        assert!(v.is_complete());
        assert_eq!(r.verified, 100_000);
        // The 14 copies include the short last frame (100000 - 69 * 1432 bytes).
        assert_eq!(r.duplicate, 13 * 1432 + (100_000 - 69 * 1432));
        assert_eq!(r.frames, 84);
    }

    #[test]
    fn missing_corrupt_and_foreign_frames_are_reported() {
        let mut frames = lap_frames(0, 0, 14320, 1432);
        frames.remove(3); // [4296, 5728)
        frames[5][FRAME_HEADERS + 7] ^= 0xff; // bad UDP checksum: not taken
        let mut arp = frames[0].clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        frames.push(arp);
        let v = verify(&frames);
        let r = v.report();
        assert!(!v.is_complete());
        assert_eq!(r.missing, 2 * 1432);
        assert_eq!(r.first_missing, [(0, 4296, 5728), (0, 8592, 10024)]);
        assert_eq!(r.verified, 14320 - 2 * 1432);
        let text = r.to_string();
        assert!(text.contains("frames: 8 stream, 1 not stream, 1 bad (1 UDP checksum)\n"));
        assert!(
            text.contains("missing: 2864 bytes (first: lap 0 [4296, 5728), lap 0 [8592, 10024))\n")
        );
        assert!(
            text.ends_with("complete: no (2864 bytes missing)"),
            "{text}"
        );
    }

    #[test]
    fn a_wrong_byte_with_a_good_checksum_is_a_mismatch() {
        // The sender read a wrong byte from the disk: checksums are good.
        let h = header(0, 0, 1000, 0, 1000);
        let mut f = vec![0u8; FRAME_HEADERS + 1000];
        build_headers(&mut f, &flow(), &h);
        pattern_fill(&mut f[FRAME_HEADERS..], 0, DEFAULT_SEED);
        f[FRAME_HEADERS + 123] ^= 4;
        f[FRAME_HEADERS + 124] ^= 4;
        net::offload_checksums_in_software(&mut f);
        let v = verify(&[f.clone()]);
        let r = v.report();
        assert_eq!((r.verified, r.mismatched, r.missing), (998, 2, 0));
        assert_eq!(r.first_mismatches, [(0, 123), (0, 124)]);
        assert!(r.to_string().contains(
            "verified: 998 bytes, 2 mismatched (first: lap 0 offset 123, lap 0 offset 124)\n"
        ));
        // Complete (every byte came) but not matching: complete says yes,
        // the mismatch is what fails the run.
        assert!(v.is_complete());
        // Another seed: only the bytes the two patterns share by chance match.
        let mut w = Verifier::new(Expect::Pattern { seed: 1 });
        w.accept_frame(&f);
        let mut other = vec![0u8; 1000];
        pattern_fill(&mut other, 0, 1);
        let same = f[FRAME_HEADERS..]
            .iter()
            .zip(&other)
            .filter(|(a, b)| a == b)
            .count() as u64;
        assert!(same < 20, "{same}");
        assert_eq!(
            (w.report().verified, w.report().mismatched),
            (same, 1000 - same)
        );
        // No expectation: received, not compared.
        let mut n = Verifier::new(Expect::None);
        n.accept_frame(&f);
        let r = n.report();
        assert_eq!((r.received, r.verified, r.mismatched), (1000, 0, 0));
        assert!(r
            .to_string()
            .contains("received: 1000 bytes, not compared (--expect none)\n"));
    }

    #[test]
    fn laps_are_checked_separately() {
        let mut frames = lap_frames(0, 0, 5000, 1432);
        frames.extend(lap_frames(1, 0, 5000, 1432));
        // Lap 2 lacks its LAST frame, lap 3 is absent, lap 4 is complete.
        let mut lap2 = lap_frames(2, 0, 5000, 1432);
        lap2.pop();
        frames.extend(lap2);
        frames.extend(lap_frames(4, 0, 5000, 1432));
        // A frame of the first lap again is a duplicate of lap 0 only.
        frames.push(frames[0].clone());
        let v = verify(&frames);
        let r = v.report();
        assert_eq!((r.laps, r.complete_laps), (5, 3));
        assert_eq!(r.duplicate, 1432);
        assert_eq!(r.missing, (5000 - 3 * 1432) + 5000);
        assert_eq!(r.first_missing, [(2, 4296, 5000), (3, 0, 5000)]);
        assert_eq!(r.without_last, [2]);
        assert!(!v.is_complete());
        assert!(r
            .to_string()
            .ends_with("complete: no (5704 bytes missing; no LAST frame in lap 2)"));
        // A receiver that stops after two laps ignores the later ones.
        let mut v = Verifier::new(Expect::Pattern { seed: DEFAULT_SEED });
        v.limit_laps(2);
        for f in &frames {
            v.accept_frame(f);
        }
        let r = v.report();
        assert!(v.is_complete());
        assert_eq!((r.laps, r.complete_laps, r.later_laps), (2, 2, 7));
        assert!(r.to_string().contains(", 7 of later laps ignored\n"));
    }

    #[test]
    fn headers_given_directly_are_checked_too() {
        let mut v = Verifier::new(Expect::None);
        v.accept(&header(0, 90, 20, 0, 100), &[0; 20]);
        v.accept(&header(0, 0, 20, 0, 100), &[0; 19]);
        let r = v.report();
        assert_eq!((r.bad.header, r.bad.length, r.frames), (1, 1, 0));
        assert_eq!(r.range, None);
    }

    #[test]
    fn a_frame_of_another_range_is_not_taken() {
        let mut frames = lap_frames(0, 0, 3000, 1432);
        frames.insert(1, frame(&header(0, 0, 1000, 0, 1000), DEFAULT_SEED));
        let v = verify(&frames);
        let r = v.report();
        assert_eq!(r.bad.other_range, 1);
        assert_eq!(r.verified, 3000);
        assert!(v.is_complete());
    }

    #[test]
    fn many_gib_with_holes_take_little_memory() {
        // A 64 GiB range of which a few frames arrive: the verifier holds
        // one interval per run of frames, not a bit per byte.
        let end = 64u64 << 30;
        let mut v = Verifier::new(Expect::None);
        let mut payload = vec![0u8; 8932];
        for i in 0..1000u64 {
            let o = i * 8932;
            pattern_fill(&mut payload, o, DEFAULT_SEED);
            v.accept(&header(0, o, 8932, 0, end), &payload);
        }
        let last = end - 8932;
        v.accept(&header(0, last, 8932, 0, end), &payload);
        let r = v.report();
        assert_eq!(v.laps[&0].got.map.len(), 2);
        assert_eq!(r.received, 1001 * 8932);
        assert_eq!(r.missing, end - 1001 * 8932);
        assert_eq!(r.first_missing, [(0, 1000 * 8932, last)]);
        assert!(r.without_last.is_empty());
        assert!(!v.is_complete());
    }

    #[test]
    fn an_expected_file_is_compared_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        // The image holds the pattern for [0, 8000) only.
        let mut img = vec![0u8; 8000];
        pattern_fill(&mut img, 0, DEFAULT_SEED);
        img[5000] ^= 1;
        std::fs::write(&path, &img).unwrap();
        let frames = lap_frames(0, 4000, 9000, 1432);
        let file = std::fs::File::open(&path).unwrap();
        let mut v = Verifier::new(Expect::File(file));
        for f in &frames {
            v.accept_frame(f);
        }
        let r = v.report();
        // Byte 5000 differs, and 1000 bytes lie past the file's end.
        assert_eq!(r.mismatched, 1 + 1000);
        assert_eq!(r.verified, 5000 - 1001);
        assert_eq!(r.first_mismatches[0], (0, 5000));
        assert_eq!(r.first_mismatches[1], (0, 8000));
        assert_eq!(
            r.note.as_deref(),
            Some("the expected file ends at byte 8000: bytes after it count as mismatched")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expect_arguments() {
        assert!(matches!(
            Expect::parse("pattern"),
            Ok(Expect::Pattern { seed: DEFAULT_SEED })
        ));
        assert!(matches!(
            Expect::parse("pattern:0x10"),
            Ok(Expect::Pattern { seed: 16 })
        ));
        assert!(matches!(
            Expect::parse("pattern:17"),
            Ok(Expect::Pattern { seed: 17 })
        ));
        assert!(matches!(Expect::parse("none"), Ok(Expect::None)));
        assert!(Expect::parse("pattern:x")
            .unwrap_err()
            .contains("not a seed"));
        assert!(Expect::parse("bytes").unwrap_err().contains("use pattern"));
        assert_eq!(
            Expect::parse("file:/nonexistent/disk.img").unwrap_err(),
            "cannot open expected disk image /nonexistent/disk.img: No such file or directory; \
             give the image the stream was read from"
        );
    }

    #[test]
    fn nothing_received_is_not_complete() {
        let v = Verifier::new(Expect::None);
        assert!(!v.is_complete());
        let r = v.report();
        assert!(r.to_string().starts_with("stream: no stream frame seen\n"));
        assert!(r.to_string().ends_with("complete: no (no stream frame)"));
    }
}
