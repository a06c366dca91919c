//! pcap-check: check a capture of pktgen's frames: how many, which sequence
//! numbers are missing or seen twice, and whether the checksums and the
//! payload are good.
#![forbid(unsafe_code)]

use apps::net::parse_test_frame;
use apps::{exit_on_error, AppResult};
use clap::Parser;
use emu::pcap::PcapReader;
use std::collections::BTreeMap;

/// Check the pktgen test frames in a pcap file (as the pcap app, tshark or
/// QEMU's filter-dump write it): count them, find missing and duplicate
/// sequence numbers, bad IPv4/UDP checksums and damaged payloads. Prints one
/// summary line; exits 1 on any problem.
#[derive(Debug, Parser)]
#[command(
    name = "pcap-check",
    version,
    after_help = "The digest (FNV-1a of the test frames' bytes, in sequence order) is \
the same for two captures of the same frames, wherever they were taken.\n\n\
Frames that are not pktgen's (another EtherType, no 'kbpg' magic) are counted \
as 'other': an error unless --allow-other is given.\n\n\
Examples:\n  pcap-check cap.pcap --expect 500 --size 60\n  \
pcap-check wire.pcap --expect 500 --allow-other"
)]
struct Args {
    /// The pcap file.
    file: String,
    /// Require exactly this many test frames, with sequence numbers 0..N-1
    /// each once (default: whatever range was seen, each once).
    #[arg(long)]
    expect: Option<u64>,
    /// Require every test frame to be this long (bytes without FCS).
    #[arg(long, value_parser = parse_frame_size)]
    size: Option<usize>,
    /// Ignore frames that are not pktgen's instead of failing on them.
    #[arg(long)]
    allow_other: bool,
}

/// `--size`: a length a test frame can have, from the shortest test frame
/// to the longest frame a pcap record holds. `--size 0` would otherwise
/// only fail later as a mismatch on every frame.
fn parse_frame_size(s: &str) -> Result<usize, String> {
    let min = apps::net::MIN_TEST_FRAME;
    let hint = "write the frame length without FCS, e.g. 60 or 1514";
    let v: usize = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of bytes; {hint}"))?;
    if !(min..=65535).contains(&v) {
        return Err(format!(
            "--size {v} is no test frame's length ({min} to 65535 bytes); {hint}"
        ));
    }
    Ok(v)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64 bit) of `data`, continuing from `h`.
fn fnv1a(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// "3 missing (first: 5 9 12)" for a list of sequence numbers.
fn list(what: &str, v: &[u64]) -> String {
    let first: Vec<String> = v.iter().take(5).map(|s| s.to_string()).collect();
    format!("{} {what} (first: {})", v.len(), first.join(" "))
}

#[derive(Debug, Default)]
struct Report {
    frames: usize,
    other: usize,
    /// Per sequence number: times seen, FNV-1a of the first frame.
    seqs: BTreeMap<u64, (u32, u64)>,
    bad_ip: Vec<u64>,
    bad_udp: Vec<u64>,
    bad_payload: Vec<u64>,
    bad_size: Vec<u64>,
}

fn check(a: &Args) -> AppResult<()> {
    let mut pcap = PcapReader::open(&a.file)?;
    let mut r = Report::default();
    let mut frame = Vec::new();
    while pcap.next_into(&mut frame)?.is_some() {
        let f = &frame;
        r.frames += 1;
        let Some(t) = parse_test_frame(f) else {
            r.other += 1;
            continue;
        };
        r.seqs.entry(t.seq).or_insert((0, fnv1a(FNV_OFFSET, f))).0 += 1;
        if !t.ip_checksum_ok {
            r.bad_ip.push(t.seq);
        }
        if !t.udp_checksum_ok {
            r.bad_udp.push(t.seq);
        }
        if !t.payload_ok {
            r.bad_payload.push(t.seq);
        }
        if a.size.is_some_and(|s| s != f.len()) {
            r.bad_size.push(t.seq);
        }
    }
    let test: u64 = r.seqs.values().map(|&(n, _)| n as u64).sum();
    let want = a
        .expect
        .unwrap_or_else(|| r.seqs.keys().next_back().map_or(0, |&m| m + 1));
    let missing: Vec<u64> = (0..want).filter(|s| !r.seqs.contains_key(s)).collect();
    let dup: Vec<u64> = r
        .seqs
        .iter()
        .filter(|&(_, &(n, _))| n > 1)
        .map(|(&s, _)| s)
        .collect();
    let extra: Vec<u64> = r.seqs.range(want..).map(|(&s, _)| s).collect();
    let mut problems = Vec::new();
    if a.expect.is_some_and(|n| n != test) {
        problems.push(format!("{test} test frames, want {want}"));
    }
    for (what, v) in [
        ("missing", &missing),
        ("duplicate", &dup),
        ("beyond the expected range", &extra),
        ("with a bad IPv4 checksum", &r.bad_ip),
        ("with a bad UDP checksum", &r.bad_udp),
        ("with a damaged payload", &r.bad_payload),
        ("of the wrong size", &r.bad_size),
    ] {
        if !v.is_empty() {
            problems.push(list(what, v));
        }
    }
    if r.other > 0 && !a.allow_other {
        problems.push(format!(
            "{} other frames (not pktgen's; --allow-other ignores them)",
            r.other
        ));
    }
    if test == 0 && a.expect != Some(0) {
        problems.push("no test frames".to_string());
    }
    if !problems.is_empty() {
        return Err(format!(
            "{}: {} frames, {test} test frames: {}",
            a.file,
            r.frames,
            problems.join("; ")
        )
        .into());
    }
    let range = if want == 0 {
        "none".to_string()
    } else {
        format!("0..{}", want - 1)
    };
    let size = a.size.map_or(String::new(), |s| format!(" of {s} B"));
    // One digest of every test frame's bytes in sequence order: two
    // captures of the same traffic (both ends of a wire) print the same.
    let digest = r
        .seqs
        .values()
        .fold(FNV_OFFSET, |h, &(_, f)| fnv1a(h, &f.to_le_bytes()));
    println!(
        "pcap-check: {}: {test} test frames{size}, seq {range} each once, checksums and payload good, digest {digest:016x} ({} other frames)",
        a.file, r.other
    );
    Ok(())
}

fn main() {
    apps::restore_sigpipe();
    let args: Args = apps::parse_args();
    exit_on_error(check(&args));
}
