//! The receive side: the [`Verifier`] a receiver feeds frames to, which
//! says which bytes of the range arrived, once, intact ([`Report`]), and
//! what they are compared with ([`Expect`]).
#![forbid(unsafe_code)]

use super::format::{parse_datagram, parse_frame, Corruption, FrameError, StreamHeader};
use super::pattern::{pattern_mismatches, DEFAULT_SEED};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::fs::FileExt;

/// What the received bytes are compared with.
#[derive(Debug)]
pub enum Expect {
    /// The pattern of emulated drives ([`pattern_fill`](super::pattern::pattern_fill)) with this seed.
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
    /// (lap, end): the sender stopped there (a deadline), see
    /// [`Verifier::sender_stopped_at`].
    cut: Option<(u32, u64)>,
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
            cut: None,
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

    /// The sender stopped on purpose (a deadline) after byte `end` of lap
    /// `lap`: that lap is due up to `end` only (no LAST frame), later laps
    /// not at all; the bytes after the cut were not sent, so not missing.
    pub fn sender_stopped_at(&mut self, lap: u32, end: u64) {
        self.cut = Some((lap, end));
    }

    /// The laps due and where lap `n` of them ends: `(laps, end of lap n)`.
    fn due(&self, start: u64, end: u64, seen: u64) -> (u64, impl Fn(u32) -> u64) {
        let cut = self.cut.map(|(l, e)| (l, e.clamp(start, end)));
        let laps = match cut {
            Some((l, e)) => (l as u64 + u64::from(e > start)).max(seen),
            None => seen,
        };
        (laps, move |n: u32| match cut {
            Some((l, e)) if n == l => e,
            _ => end,
        })
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
        if let (Some(_), Some((start, end))) = (self.cut, self.range) {
            let seen = self.laps.keys().next_back().map_or(0, |&m| m as u64 + 1);
            let (laps, lap_end) = self.due(start, end, seen);
            return (0..laps as u32).all(|n| match self.laps.get(&n) {
                Some(lap) if lap_end(n) == end => lap.complete,
                Some(lap) => lap.got.holes(start, lap_end(n), 1).is_empty(),
                None => false,
            });
        }
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
            stopped_at: self.cut,
            complete: self.is_complete(),
        };
        let (Some((start, end)), Some(&max)) = (self.range, self.laps.keys().next_back()) else {
            return r;
        };
        let (laps, lap_end) = self.due(start, end, max as u64 + 1);
        r.laps = laps;
        r.received = self.laps.values().map(|l| l.got.bytes()).sum();
        for n in 0..laps as u32 {
            let hi = lap_end(n);
            let room = REPORT_FIRST - r.first_missing.len();
            let Some(lap) = self.laps.get(&n) else {
                // A lap of which no frame came is missing whole.
                r.missing += hi - start;
                if room > 0 && hi > start {
                    r.first_missing.push((n, start, hi));
                }
                continue;
            };
            r.missing += (hi - start).saturating_sub(lap.got.bytes());
            for (a, b) in lap.got.holes(start, hi, room) {
                r.first_missing.push((n, a, b));
            }
            // A lap cut by the sender's stop has no LAST frame.
            if !lap.last && hi == end && r.without_last.len() < REPORT_FIRST {
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
    /// Where the sender stopped on purpose ([`Verifier::sender_stopped_at`]).
    pub stopped_at: Option<(u32, u64)>,
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
        if let Some((lap, end)) = self.stopped_at {
            writeln!(
                f,
                "stopped: the sender stopped in lap {lap} at byte {end}; what follows was not \
                 sent, so not missing"
            )?;
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
    use crate::stream::pattern::{pattern_fill, splitmix64};
    use crate::stream::tests::header;

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
}
