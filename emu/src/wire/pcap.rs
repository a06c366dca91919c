//! `pcap:FILE` (a capture of what a port sends) and `pcap-in:FILE` (a
//! replay of a capture into a port).
//!
//! The file format is [`crate::pcap`]'s.
#![forbid(unsafe_code)]

use super::{Wire, WireError, MAX_FRAME};
use crate::pcap::{
    global_header, parse_global_header, record_header, Format, HeaderError, PcapError, PcapReader,
    GLOBAL_HEADER_LEN, LINKTYPE_ETHERNET, MAX_RECORD, RECORD_HEADER_LEN, SNAPLEN,
};
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a written frame may sit in the buffer before it reaches the
/// file (checked on each send; dropping or flushing the wire writes all).
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

struct Writer {
    out: BufWriter<File>,
    last_flush: Instant,
}

/// `pcap:FILE`: every frame sent is appended to a capture file. Nothing is
/// received. While frames keep coming, each reaches the file at most
/// 100 ms after it was sent; all of them do on [`Wire::flush`] and on drop.
pub struct PcapWire {
    path: PathBuf,
    writer: Mutex<Writer>,
    frames: AtomicU64,
}

impl PcapWire {
    /// Create (or truncate) `path` and write the global header.
    pub fn create(path: impl AsRef<Path>) -> Result<PcapWire, WireError> {
        let path = path.as_ref().to_path_buf();
        let err = |source| WireError::PcapFile {
            path: path.clone(),
            source,
        };
        let file = File::create(&path).map_err(err)?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        // The header goes out at once: an empty capture is a valid file.
        out.write_all(&global_header()).map_err(err)?;
        out.flush().map_err(err)?;
        Ok(PcapWire {
            path,
            writer: Mutex::new(Writer {
                out,
                last_flush: Instant::now(),
            }),
            frames: AtomicU64::new(0),
        })
    }

    /// The capture file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wire for PcapWire {
    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        // A clock before 1970 is a broken host; record time 0 rather than fail.
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let caplen = frame.len().min(SNAPLEN as usize);
        let mut w = self.lock();
        w.out.write_all(&record_header(at, frame.len()))?;
        w.out.write_all(&frame[..caplen])?;
        self.frames.fetch_add(1, Ordering::Relaxed);
        if w.last_flush.elapsed() >= FLUSH_INTERVAL {
            w.out.flush()?;
            w.last_flush = Instant::now();
        }
        Ok(())
    }

    fn recv(&self, _buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        Ok(None)
    }

    fn describe(&self) -> String {
        format!("pcap:{}", self.path.display())
    }

    /// Nothing to register: nothing ever arrives, and the file always
    /// takes more.
    fn set_waker(&self, _waker: Arc<crate::DeviceWaker>) -> bool {
        true
    }

    fn flush(&self) -> std::io::Result<()> {
        let mut w = self.lock();
        w.last_flush = Instant::now();
        w.out.flush()
    }
}

impl Drop for PcapWire {
    fn drop(&mut self) {
        // Nobody is left to report an error to; the frames are lost either way.
        let _ = self.lock().out.flush();
    }
}

struct Reader {
    input: BufReader<File>,
    /// The end of the capture was reached (or it turned out corrupt).
    done: bool,
    /// Frames that did not fit the caller's buffer get this scratch space.
    scratch: Vec<u8>,
}

/// `pcap-in:FILE`: the frames of a capture are received, once each, in
/// file order, one per [`Wire::recv`], as fast as the port asks; timestamps
/// are ignored. The frames wait for the port ([`Wire::waits_for_receiver`]):
/// none is taken before its receiver is set up or while its rings are full. Frames sent are discarded and counted in [`Wire::drops`].
/// A record that is cut short or absurdly long ends the replay with one
/// `InvalidData` error from `recv`.
pub struct PcapReplayWire {
    path: PathBuf,
    format: Format,
    reader: Mutex<Reader>,
    replayed: AtomicU64,
    discarded: AtomicU64,
}

impl PcapReplayWire {
    /// Open the capture `path` and check its global header.
    pub fn open(path: impl AsRef<Path>) -> Result<PcapReplayWire, WireError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| WireError::PcapFile {
            path: path.clone(),
            source,
        })?;
        let mut input = BufReader::with_capacity(64 * 1024, file);
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        let bad = |why: String| WireError::PcapFormat {
            path: path.clone(),
            why,
        };
        input.read_exact(&mut h).map_err(|e| {
            bad(format!(
                "the {GLOBAL_HEADER_LEN}-byte global header cannot be read ({e})"
            ))
        })?;
        let format = parse_global_header(&h).map_err(|e| match e {
            HeaderError::Pcapng => bad("it is a pcapng file".into()),
            HeaderError::Magic(m) => bad(format!("unknown magic number {m:#010x}")),
            HeaderError::LinkType(linktype) => bad(format!(
                "its link type is {linktype}, not Ethernet ({LINKTYPE_ETHERNET})"
            )),
        })?;
        check_records(&path)?;
        Ok(PcapReplayWire {
            path,
            format,
            reader: Mutex::new(Reader {
                input,
                done: false,
                scratch: Vec::new(),
            }),
            replayed: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        })
    }

    /// Frames replayed so far.
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Whether the whole capture has been replayed.
    pub fn finished(&self) -> bool {
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).done
    }

    /// The next record into `buf`, with `r` locked.
    fn next(&self, r: &mut Reader, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let mut h = [0u8; RECORD_HEADER_LEN];
        match r.input.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                // A clean end (or a few stray bytes after the last record).
                r.done = true;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let caplen = self.format.record(&h).incl_len;
        let corrupt = |r: &mut Reader, why: String| {
            r.done = true;
            std::io::Error::new(
                ErrorKind::InvalidData,
                format!("capture {}: {why}", self.path.display()),
            )
        };
        if caplen as usize > MAX_RECORD {
            return Err(corrupt(
                r,
                format!("a record claims {caplen} bytes; the file is corrupt"),
            ));
        }
        let caplen = caplen as usize;
        let res = if caplen <= buf.len() {
            r.input.read_exact(&mut buf[..caplen])
        } else {
            // Read the whole record (to stay in step) and keep what fits.
            let mut scratch = std::mem::take(&mut r.scratch);
            scratch.resize(caplen, 0);
            let res = r.input.read_exact(&mut scratch);
            buf.copy_from_slice(&scratch[..buf.len()]);
            r.scratch = scratch;
            res
        };
        if let Err(e) = res {
            return Err(corrupt(r, format!("the last record is cut short ({e})")));
        }
        self.replayed.fetch_add(1, Ordering::Relaxed);
        Ok(Some(caplen.min(buf.len())))
    }
}

/// Walk every record of the capture `path` once with the pcap reader, so
/// that a record cut short or absurdly long is an error when the port opens
/// (for every app that replays a capture) instead of the replay ending
/// mid-run without a word. Records cut by a short snap length are replayed
/// as they are, so they pass.
fn check_records(path: &Path) -> Result<(), WireError> {
    let file = File::open(path).map_err(|source| WireError::PcapFile {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let mut reader = PcapReader::new(BufReader::new(file), &name).map_err(WireError::PcapRecord)?;
    let mut frame = Vec::new();
    loop {
        match reader.next_into(&mut frame) {
            Ok(Some(_)) | Err(PcapError::Truncated { .. }) => {}
            Ok(None) => return Ok(()),
            Err(e) => return Err(WireError::PcapRecord(e)),
        }
    }
}

impl Wire for PcapReplayWire {
    fn send(&self, _frame: &[u8]) -> std::io::Result<()> {
        self.discarded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let mut r = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if r.done {
            return Ok(None);
        }
        self.next(&mut r, buf)
    }

    fn describe(&self) -> String {
        format!("pcap-in:{}", self.path.display())
    }

    fn drops(&self) -> u64 {
        self.discarded.load(Ordering::Relaxed)
    }

    fn waits_for_receiver(&self) -> bool {
        true
    }
}

/// Frames of at most [`MAX_FRAME`] bytes are what the emulated ports carry;
/// the snap length keeps every one of them whole.
const _: () = assert!(MAX_FRAME <= SNAPLEN as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::open_wire;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("wire-{}-{name}", std::process::id()))
    }

    fn frame(i: u8, len: usize) -> Vec<u8> {
        (0..len).map(|j| i.wrapping_add(j as u8)).collect()
    }

    #[test]
    fn capture_has_a_valid_header_and_records() {
        let path = temp("cap.pcap");
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        {
            let w = open_wire(&format!("pcap:{}", path.display())).unwrap();
            w.send(&frame(1, 60)).unwrap();
            w.send(&frame(2, 1514)).unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(w.recv(&mut buf).unwrap(), None);
        }
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        // Global header, field by field (host byte order, as written).
        let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().unwrap());
        let u16_at = |o: usize| u16::from_ne_bytes(bytes[o..o + 2].try_into().unwrap());
        assert_eq!(u32_at(0), 0xa1b2_c3d4);
        assert_eq!((u16_at(4), u16_at(6)), (2, 4));
        assert_eq!((u32_at(8), u32_at(12)), (0, 0));
        assert_eq!(u32_at(16), 65535);
        assert_eq!(u32_at(20), 1);
        let mut off = 24;
        for (i, len) in [(1u8, 60usize), (2, 1514)] {
            let secs = u32_at(off) as u64;
            let usecs = u32_at(off + 4);
            assert!(secs >= before.as_secs() && secs <= after.as_secs());
            assert!(usecs < 1_000_000);
            assert_eq!(u32_at(off + 8) as usize, len);
            assert_eq!(u32_at(off + 12) as usize, len);
            assert_eq!(&bytes[off + 16..off + 16 + len], &frame(i, len)[..]);
            off += 16 + len;
        }
        assert_eq!(off, bytes.len());
    }

    #[test]
    fn capture_is_readable_by_the_replay_wire() {
        let path = temp("roundtrip.pcap");
        {
            let w = PcapWire::create(&path).unwrap();
            for i in 0..5 {
                w.send(&frame(i, 60 + i as usize * 100)).unwrap();
            }
            assert_eq!(w.frames(), 5);
        }
        let r = open_wire(&format!("pcap-in:{}", path.display())).unwrap();
        let mut buf = vec![0u8; MAX_FRAME];
        for i in 0..5u8 {
            let n = r.recv(&mut buf).unwrap().expect("a frame");
            assert_eq!(&buf[..n], &frame(i, 60 + i as usize * 100)[..]);
        }
        assert_eq!(r.recv(&mut buf).unwrap(), None);
        assert_eq!(r.recv(&mut buf).unwrap(), None);
        r.send(&[0; 60]).unwrap();
        assert_eq!(r.drops(), 1);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn replay_reads_byte_swapped_captures_and_truncates_to_the_buffer() {
        let path = temp("swapped.pcap");
        let mut f = Vec::new();
        f.extend_from_slice(&crate::pcap::MAGIC_NANOS.swap_bytes().to_ne_bytes());
        f.extend_from_slice(&2u16.swap_bytes().to_ne_bytes());
        f.extend_from_slice(&4u16.swap_bytes().to_ne_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.swap_bytes().to_ne_bytes());
        f.extend_from_slice(&1u32.swap_bytes().to_ne_bytes());
        for len in [100u32, 20] {
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&len.swap_bytes().to_ne_bytes());
            f.extend_from_slice(&len.swap_bytes().to_ne_bytes());
            f.extend(frame(len as u8, len as usize));
        }
        std::fs::write(&path, &f).unwrap();
        let r = PcapReplayWire::open(&path).unwrap();
        let mut small = [0u8; 50];
        assert_eq!(r.recv(&mut small).unwrap(), Some(50));
        assert_eq!(&small[..], &frame(100, 50)[..]);
        // The replay stayed in step: the next record comes out whole.
        assert_eq!(r.recv(&mut small).unwrap(), Some(20));
        assert_eq!(&small[..20], &frame(20, 20)[..]);
        assert!(!r.finished());
        assert_eq!(r.recv(&mut small).unwrap(), None);
        assert!(r.finished());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn replay_rejects_other_formats_and_reports_corruption() {
        let path = temp("bad.pcap");
        std::fs::write(&path, [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0]).unwrap();
        let e = PcapReplayWire::open(&path).err().expect("short header");
        assert!(e.to_string().contains("global header"), "{e}");
        let mut ng = vec![0x0a, 0x0d, 0x0d, 0x0a];
        ng.resize(24, 0);
        std::fs::write(&path, &ng).unwrap();
        let e = PcapReplayWire::open(&path).err().expect("pcapng");
        assert!(e.to_string().contains("pcapng"), "{e}");
        let mut h = global_header();
        h[20..24].copy_from_slice(&101u32.to_ne_bytes());
        std::fs::write(&path, h).unwrap();
        let e = PcapReplayWire::open(&path).err().expect("raw IP link type");
        assert!(e.to_string().contains("link type is 101"), "{e}");
        // A record that promises more bytes than the file has: refused when
        // the wire opens, naming the file and the record.
        let mut f = global_header().to_vec();
        f.extend_from_slice(&record_header(Duration::ZERO, 60));
        f.extend_from_slice(&[0; 10]);
        std::fs::write(&path, &f).unwrap();
        let e = PcapReplayWire::open(&path).err().expect("cut record");
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("record 0") && msg.contains("file ends first"),
            "{msg}"
        );
        // A capture cut while it is replayed (past what the reader has
        // buffered): the replay ends with one InvalidData error, then None.
        let mut f = global_header().to_vec();
        for _ in 0..100 {
            f.extend_from_slice(&record_header(Duration::ZERO, 1000));
            f.extend_from_slice(&[0; 1000]);
        }
        std::fs::write(&path, &f).unwrap();
        let r = PcapReplayWire::open(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(90_000)
            .unwrap();
        let mut buf = [0u8; 1000];
        let mut frames = 0;
        let e = loop {
            match r.recv(&mut buf) {
                Ok(Some(n)) => {
                    assert_eq!(n, 1000);
                    frames += 1;
                }
                Ok(None) => panic!("the replay ended cleanly after {frames} frames"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            frames,
            (90_000 - GLOBAL_HEADER_LEN) / (RECORD_HEADER_LEN + 1000)
        );
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert_eq!(r.recv(&mut buf).unwrap(), None);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unwritable_path_names_the_path_and_the_fix() {
        let e = open_wire("pcap:/nonexistent-dir/x.pcap")
            .err()
            .expect("must fail");
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent-dir/x.pcap"), "{msg}");
        assert!(msg.contains("writable"), "{msg}");
        let e = open_wire("pcap-in:/nonexistent-dir/x.pcap")
            .err()
            .expect("must fail");
        assert!(e.to_string().contains("/nonexistent-dir/x.pcap"));
    }

    #[test]
    fn tshark_reads_the_capture_when_installed() {
        let Ok(out) = std::process::Command::new("tshark").arg("-v").output() else {
            println!("skipped: tshark is not installed");
            return;
        };
        if !out.status.success() {
            println!("skipped: tshark -v failed");
            return;
        }
        let path = temp("tshark.pcap");
        {
            let w = PcapWire::create(&path).unwrap();
            let mut f = vec![0xffu8; 6];
            f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
            f.resize(60, 0);
            w.send(&f).unwrap();
            w.send(&f).unwrap();
        }
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    }
}
