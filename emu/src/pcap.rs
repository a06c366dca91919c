//! The classic libpcap capture format, written by the `pcap:` wire and
//! read by the `pcap-in:` wire and the apps (`pcap-check`, `blkrecv`), as
//! tshark and QEMU's `filter-dump` also write it: either byte order,
//! microsecond or nanosecond timestamps, Ethernet link type.
//!
//! The format: a 24-byte global header (magic, version 2.4, time zone,
//! sigfigs, snap length, link type), then per frame a 16-byte record header
//! (seconds, fraction, captured length, original length) and the captured
//! bytes, all in the writer's byte order, which the magic tells. We write in
//! the host's byte order, as libpcap does.
//!
//! The codec is [`global_header`] / [`record_header`] to write and
//! [`parse_global_header`] / [`Format::record`] to read; [`PcapReader`]
//! reads a file record by record with one frame's memory.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::time::Duration;

/// Magic of a capture with microsecond timestamps.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic of a capture with nanosecond timestamps.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Block type of a pcapng section header, which is not a classic capture.
pub const PCAPNG_MAGIC: u32 = 0x0a0d_0d0a;
/// Format version 2.4.
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
/// Largest frame recorded in full.
pub const SNAPLEN: u32 = 65535;
/// LINKTYPE_ETHERNET: IEEE 802.3 frames starting at the destination MAC.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Length of the global header.
pub const GLOBAL_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Offsets in the global header.
const MAGIC: usize = 0;
const VERSION_MAJOR_AT: usize = 4;
const VERSION_MINOR_AT: usize = 6;
const SNAPLEN_AT: usize = 16;
const LINKTYPE: usize = 20;
/// Offsets in a record header.
const TS_SEC: usize = 0;
const TS_FRACTION: usize = 4;
const INCL_LEN: usize = 8;
const ORIG_LEN: usize = 12;
/// A record longer than this is a corrupt file, not a frame (the largest
/// jumbo frame is 16 KiB; 256 KiB leaves room for offloaded super-frames).
pub const MAX_RECORD: usize = 256 * 1024;

/// The 24-byte global header of a capture of Ethernet frames with
/// microsecond timestamps, in the host's byte order.
pub fn global_header() -> [u8; GLOBAL_HEADER_LEN] {
    let mut h = [0u8; GLOBAL_HEADER_LEN];
    h[MAGIC..MAGIC + 4].copy_from_slice(&MAGIC_MICROS.to_ne_bytes());
    h[VERSION_MAJOR_AT..VERSION_MAJOR_AT + 2].copy_from_slice(&VERSION_MAJOR.to_ne_bytes());
    h[VERSION_MINOR_AT..VERSION_MINOR_AT + 2].copy_from_slice(&VERSION_MINOR.to_ne_bytes());
    // thiszone (8..12) and sigfigs (12..16) are 0: timestamps are UTC.
    h[SNAPLEN_AT..SNAPLEN_AT + 4].copy_from_slice(&SNAPLEN.to_ne_bytes());
    h[LINKTYPE..LINKTYPE + 4].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
    h
}

/// The record header of a frame of `len` bytes captured at `at` (since
/// 1970), of which at most [`SNAPLEN`] bytes are recorded.
pub fn record_header(at: Duration, len: usize) -> [u8; RECORD_HEADER_LEN] {
    let caplen = (len as u64).min(SNAPLEN as u64) as u32;
    let mut h = [0u8; RECORD_HEADER_LEN];
    // The classic format has 32-bit seconds (good until 2106).
    h[TS_SEC..TS_SEC + 4].copy_from_slice(&(at.as_secs() as u32).to_ne_bytes());
    h[TS_FRACTION..TS_FRACTION + 4].copy_from_slice(&at.subsec_micros().to_ne_bytes());
    h[INCL_LEN..INCL_LEN + 4].copy_from_slice(&caplen.to_ne_bytes());
    h[ORIG_LEN..ORIG_LEN + 4].copy_from_slice(&(len.min(u32::MAX as usize) as u32).to_ne_bytes());
    h
}

/// The byte order and timestamp unit of a capture, from its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// The file is big-endian.
    pub big_endian: bool,
    /// Timestamps are in nanoseconds (else microseconds).
    pub nanos: bool,
}

/// Why a global header is not one of a capture we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is pcapng.
    Pcapng,
    /// An unknown magic number (the first four bytes, little-endian).
    Magic(u32),
    /// The frames are not Ethernet: the link type the file has.
    LinkType(u32),
}

/// Check a global header: a classic magic in either byte order, and the
/// Ethernet link type.
pub fn parse_global_header(h: &[u8; GLOBAL_HEADER_LEN]) -> Result<Format, HeaderError> {
    let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let format = match (le, le.swap_bytes()) {
        (MAGIC_MICROS, _) => Format {
            big_endian: false,
            nanos: false,
        },
        (MAGIC_NANOS, _) => Format {
            big_endian: false,
            nanos: true,
        },
        (_, MAGIC_MICROS) => Format {
            big_endian: true,
            nanos: false,
        },
        (_, MAGIC_NANOS) => Format {
            big_endian: true,
            nanos: true,
        },
        (PCAPNG_MAGIC, _) => return Err(HeaderError::Pcapng),
        (m, _) => return Err(HeaderError::Magic(m)),
    };
    let link = format.u32_at(h, LINKTYPE);
    if link != LINKTYPE_ETHERNET {
        return Err(HeaderError::LinkType(link));
    }
    Ok(format)
}

/// A record header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Capture time in nanoseconds since 1970.
    pub time_ns: u64,
    /// Bytes recorded.
    pub incl_len: u32,
    /// Bytes of the frame.
    pub orig_len: u32,
}

impl Format {
    /// The file's 32-bit field at `at` of `b`, in the file's byte order.
    fn u32_at(self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    /// The fields of record header `h`.
    pub fn record(self, h: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
        let sec = self.u32_at(h, TS_SEC) as u64;
        let frac = self.u32_at(h, TS_FRACTION) as u64;
        RecordHeader {
            time_ns: sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 },
            incl_len: self.u32_at(h, INCL_LEN),
            orig_len: self.u32_at(h, ORIG_LEN),
        }
    }
}

/// What can be wrong with a pcap file. Every message names the file.
#[derive(Debug)]
pub enum PcapError {
    /// The file cannot be opened.
    Open {
        /// The file.
        name: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Reading failed (not an early end: that is `HeaderCut`/`RecordCut`).
    Read {
        /// The file.
        name: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is shorter than the global header.
    ShortHeader {
        /// The file.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The magic number is not a classic pcap one.
    NotPcap {
        /// The file.
        name: String,
        /// The first four bytes, little-endian.
        magic: u32,
    },
    /// The frames are not Ethernet.
    LinkType {
        /// The file.
        name: String,
        /// The link type the file has.
        link: u32,
    },
    /// The file ends inside a record header.
    HeaderCut {
        /// The file.
        name: String,
        /// Index of the record (0 = first).
        record: u64,
        /// Byte offset of the record header in the file.
        at: u64,
    },
    /// The file ends inside a record's bytes.
    RecordCut {
        /// The file.
        name: String,
        /// Index of the record.
        record: u64,
        /// The bytes the record header promises.
        len: usize,
    },
    /// A record claims more bytes than any frame has.
    RecordTooLong {
        /// The file.
        name: String,
        /// Index of the record.
        record: u64,
        /// The bytes it claims.
        len: usize,
    },
    /// A record holds only part of its frame (the snap length was too small).
    Truncated {
        /// The file.
        name: String,
        /// Index of the record.
        record: u64,
        /// Bytes captured.
        incl: usize,
        /// Bytes of the frame.
        orig: usize,
    },
}

/// What an I/O error says, without Rust's " (os error N)" suffix.
pub fn os_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match e.raw_os_error() {
        Some(code) => s
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(s.clone(), str::to_string),
        None => s,
    }
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Open { name, source } => {
                write!(f, "cannot open pcap file {name}: {}", os_message(source))
            }
            PcapError::Read { name, source } => {
                write!(f, "cannot read pcap file {name}: {}", os_message(source))
            }
            PcapError::ShortHeader { name, len } => write!(
                f,
                "{name}: {len} bytes: too short for a pcap file header (24 bytes); give a \
                 complete capture file"
            ),
            PcapError::NotPcap { name, magic } => write!(
                f,
                "{name}: not a pcap file (magic {magic:08x}; pcapng is not read, convert with \
                 editcap -F pcap)"
            ),
            PcapError::LinkType { name, link } => write!(
                f,
                "{name}: link type {link}, want 1 (LINKTYPE_ETHERNET); capture on an Ethernet \
                 interface"
            ),
            PcapError::HeaderCut { name, record, at } => write!(
                f,
                "{name}: record {record}: header cut short at byte {at} (the file ends first: \
                 was the capture stopped cleanly?)"
            ),
            PcapError::RecordCut { name, record, len } => write!(
                f,
                "{name}: record {record}: {len} bytes, file ends first (was the capture \
                 stopped cleanly?)"
            ),
            PcapError::RecordTooLong { name, record, len } => write!(
                f,
                "{name}: record {record} claims {len} bytes, more than any frame \
                 ({MAX_RECORD}); the file is corrupt"
            ),
            PcapError::Truncated {
                name,
                record,
                incl,
                orig,
            } => write!(
                f,
                "{name}: record {record}: {incl} of {orig} bytes captured (truncated); capture \
                 with a snap length of at least the frame size (tshark -s 0)"
            ),
        }
    }
}

impl std::error::Error for PcapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PcapError::Open { source, .. } | PcapError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One record's facts besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Capture time in nanoseconds since 1970 (microsecond files: a multiple of 1000).
    pub time_ns: u64,
}

/// Reads the records of a classic pcap file of Ethernet frames, in order.
pub struct PcapReader<R: Read> {
    input: R,
    name: String,
    format: Format,
    records: u64,
    /// Bytes of the file consumed so far.
    offset: u64,
}

impl PcapReader<BufReader<File>> {
    /// Open `path` and check its global header.
    pub fn open(path: &str) -> Result<Self, PcapError> {
        let file = File::open(path).map_err(|source| PcapError::Open {
            name: path.to_string(),
            source,
        })?;
        PcapReader::new(BufReader::with_capacity(256 * 1024, file), path)
    }
}

/// Read until `buf` is full or the input ends: the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> PcapReader<R> {
    /// Read and check the global header from `input`; `name` names the
    /// file in errors.
    pub fn new(mut input: R, name: &str) -> Result<Self, PcapError> {
        let name = name.to_string();
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        let n = read_full(&mut input, &mut h).map_err(|source| PcapError::Read {
            name: name.clone(),
            source,
        })?;
        if n < GLOBAL_HEADER_LEN {
            return Err(PcapError::ShortHeader { name, len: n });
        }
        let h: &[u8; GLOBAL_HEADER_LEN] = &h;
        let format = match parse_global_header(h) {
            Ok(f) => f,
            Err(HeaderError::Pcapng) => {
                return Err(PcapError::NotPcap {
                    name,
                    magic: PCAPNG_MAGIC,
                })
            }
            Err(HeaderError::Magic(magic)) => return Err(PcapError::NotPcap { name, magic }),
            Err(HeaderError::LinkType(link)) => return Err(PcapError::LinkType { name, link }),
        };
        Ok(PcapReader {
            input,
            name,
            format,
            records: 0,
            offset: GLOBAL_HEADER_LEN as u64,
        })
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The next record's frame into `frame` (resized to it): its facts, or
    /// None at the end of the file.
    pub fn next_into(&mut self, frame: &mut Vec<u8>) -> Result<Option<Record>, PcapError> {
        let read_err = |name: &str, source| PcapError::Read {
            name: name.to_string(),
            source,
        };
        let mut h = [0u8; RECORD_HEADER_LEN];
        let n = read_full(&mut self.input, &mut h).map_err(|e| read_err(&self.name, e))?;
        if n == 0 {
            return Ok(None);
        }
        let record = self.records;
        if n < RECORD_HEADER_LEN {
            return Err(PcapError::HeaderCut {
                name: self.name.clone(),
                record,
                at: self.offset,
            });
        }
        let rec = self.format.record(&h);
        let (incl, orig) = (rec.incl_len as usize, rec.orig_len as usize);
        if incl > MAX_RECORD {
            return Err(PcapError::RecordTooLong {
                name: self.name.clone(),
                record,
                len: incl,
            });
        }
        frame.resize(incl, 0);
        let n = read_full(&mut self.input, frame).map_err(|e| read_err(&self.name, e))?;
        if n < incl {
            return Err(PcapError::RecordCut {
                name: self.name.clone(),
                record,
                len: incl,
            });
        }
        if incl != orig {
            return Err(PcapError::Truncated {
                name: self.name.clone(),
                record,
                incl,
                orig,
            });
        }
        self.records += 1;
        self.offset += (RECORD_HEADER_LEN + incl) as u64;
        Ok(Some(Record {
            time_ns: rec.time_ns,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capture in the given byte order and timestamp unit, of `frames`.
    fn capture(big_endian: bool, nanos: bool, frames: &[Vec<u8>]) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut d = Vec::new();
        d.extend(w(if nanos { MAGIC_NANOS } else { MAGIC_MICROS }));
        d.extend(w16(2));
        d.extend(w16(4));
        d.extend([0; 8]);
        d.extend(w(65535));
        d.extend(w(1));
        for (i, f) in frames.iter().enumerate() {
            d.extend(w(1_700_000_000 + i as u32));
            d.extend(w(123));
            d.extend(w(f.len() as u32));
            d.extend(w(f.len() as u32));
            d.extend(f);
        }
        d
    }

    fn frames() -> Vec<Vec<u8>> {
        (0..3u8).map(|i| vec![i; 60 + i as usize * 700]).collect()
    }

    fn read_all(d: &[u8]) -> Result<Vec<(Record, Vec<u8>)>, PcapError> {
        let mut r = PcapReader::new(d, "t.pcap")?;
        let mut out = Vec::new();
        let mut f = Vec::new();
        while let Some(rec) = r.next_into(&mut f)? {
            out.push((rec, f.clone()));
        }
        assert_eq!(r.records(), out.len() as u64);
        Ok(out)
    }

    #[test]
    fn reads_both_byte_orders_and_both_timestamp_units() {
        for big in [false, true] {
            for nanos in [false, true] {
                let got = read_all(&capture(big, nanos, &frames())).unwrap();
                let want_frac = if nanos { 123 } else { 123_000 };
                assert_eq!(got.len(), 3);
                for (i, (rec, f)) in got.iter().enumerate() {
                    assert_eq!(f, &frames()[i], "big {big} nanos {nanos}");
                    assert_eq!(
                        rec.time_ns,
                        (1_700_000_000 + i as u64) * 1_000_000_000 + want_frac
                    );
                }
            }
        }
        assert!(read_all(&capture(false, false, &[])).unwrap().is_empty());
    }

    #[test]
    fn the_pcap_wires_captures_read_back() {
        let path = std::env::temp_dir().join(format!("pcapfile-{}.pcap", std::process::id()));
        {
            let w = crate::wire::PcapWire::create(&path).unwrap();
            use crate::wire::Wire;
            for f in frames() {
                w.send(&f).unwrap();
            }
        }
        let mut r = PcapReader::open(path.to_str().unwrap()).unwrap();
        let mut f = Vec::new();
        for want in frames() {
            r.next_into(&mut f).unwrap().expect("a record");
            assert_eq!(f, want);
        }
        assert_eq!(r.next_into(&mut f).unwrap(), None);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn each_kind_of_damage_has_its_error() {
        let good = capture(false, false, &frames());
        let msg = |d: &[u8]| read_all(d).expect_err("an error").to_string();
        assert!(msg(&good[..10]).contains("10 bytes: too short"));
        let mut ng = good.clone();
        ng[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        assert!(msg(&ng).contains("not a pcap file (magic 0a0d0d0a; pcapng"));
        let mut raw = good.clone();
        raw[20] = 101;
        assert!(msg(&raw).contains("link type 101, want 1"));
        assert!(msg(&good[..24 + 5]).contains("record 0: header cut short at byte 24"));
        assert!(msg(&good[..good.len() - 1]).contains("record 2: 1460 bytes, file ends first"));
        let mut long = good.clone();
        long[24 + 8..24 + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(msg(&long).contains("record 0 claims 1073741824 bytes"));
        let mut cut = good.clone();
        cut[24 + 12..24 + 16].copy_from_slice(&1514u32.to_le_bytes());
        assert!(msg(&cut).contains("record 0: 60 of 1514 bytes captured (truncated)"));
        for m in [msg(&good[..10]), msg(&cut)] {
            assert!(m.starts_with("t.pcap: "), "{m}");
        }
    }

    #[test]
    fn a_missing_file_is_one_plain_line() {
        let e = PcapReader::open("/nonexistent-dir/x.pcap").err().unwrap();
        assert_eq!(
            e.to_string(),
            "cannot open pcap file /nonexistent-dir/x.pcap: No such file or directory"
        );
    }
}
