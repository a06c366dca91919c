//! Reading classic pcap files record by record, as the `pcap` app, tshark
//! and QEMU's `filter-dump` write them: either byte order, microsecond or
//! nanosecond timestamps, Ethernet link type. A file of many GiB is read
//! with one frame's memory.
//!
//! The format: a 24-byte global header (magic, version, time zone,
//! sigfigs, snap length, link type), then per frame a 16-byte record
//! header (seconds, fraction, captured length, original length) and the
//! captured bytes, all in the writer's byte order, which the magic tells.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};

/// Magic of a capture with microsecond timestamps.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic of a capture with nanosecond timestamps.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET: frames start at the destination MAC.
const LINKTYPE_ETHERNET: u32 = 1;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// Offsets in the global header.
const LINKTYPE: usize = 20;
/// Offsets in a record header.
const TS_SEC: usize = 0;
const TS_FRACTION: usize = 4;
const INCL_LEN: usize = 8;
const ORIG_LEN: usize = 12;
/// A record longer than this is a corrupt file, not a frame (the largest
/// jumbo frame is 16 KiB; 256 KiB leaves room for offloaded super-frames).
pub const MAX_RECORD: usize = 256 * 1024;

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
    swapped: bool,
    nanos: bool,
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
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swapped, nanos) = match magic {
            MAGIC_MICROS => (false, false),
            MAGIC_NANOS => (false, true),
            m if m.swap_bytes() == MAGIC_MICROS => (true, false),
            m if m.swap_bytes() == MAGIC_NANOS => (true, true),
            m => return Err(PcapError::NotPcap { name, magic: m }),
        };
        let r = PcapReader {
            input,
            name,
            swapped,
            nanos,
            records: 0,
            offset: GLOBAL_HEADER_LEN as u64,
        };
        let link = r.u32_at(&h, LINKTYPE);
        if link != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType { name: r.name, link });
        }
        Ok(r)
    }

    /// The file's field at `at` of `b`, in the file's byte order.
    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.swapped {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
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
        let incl = self.u32_at(&h, INCL_LEN) as usize;
        let orig = self.u32_at(&h, ORIG_LEN) as usize;
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
        let sec = self.u32_at(&h, TS_SEC) as u64;
        let frac = self.u32_at(&h, TS_FRACTION) as u64;
        let time_ns = sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        Ok(Some(Record { time_ns }))
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
            let w = emu::wire::PcapWire::create(&path).unwrap();
            use emu::wire::Wire;
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
