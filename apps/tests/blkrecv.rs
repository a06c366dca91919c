//! blkrecv as a user runs it: captures of stream frames, whole or damaged,
//! give the report and exit status they should; a UDP socket and an
//! emulated NIC port receive a stream sent by the test; bad input is one
//! error line.
#![forbid(unsafe_code)]

mod common;
use common::{assert_one_line_error, run, tmpdir};

use apps::net::{self, Flow};
use apps::stream::{build_headers, pattern_fill, StreamHeader, DEFAULT_SEED, FLAG_LAST};
use emu::wire::{PcapWire, Wire};
use spec::net::{ethernet, ipv4};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");

/// Payload bytes per frame at MTU 1500.
const PER: u64 = 1432;

fn flow() -> Flow {
    Flow {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: [10, 0, 0, 1],
        dst_ip: [10, 0, 0, 2],
        src_port: 4000,
        dst_port: 9000,
    }
}

/// The frames of lap `lap` over disk bytes [start, end), with the pattern
/// of `seed` and checksums as the NIC's offload fills them in.
fn lap(lap: u32, start: u64, end: u64, seed: u64) -> Vec<Vec<u8>> {
    lap_of(&flow(), lap, start, end, seed)
}

/// [`lap`] of another flow.
fn lap_of(flow: &Flow, lap: u32, start: u64, end: u64, seed: u64) -> Vec<Vec<u8>> {
    (start..end)
        .step_by(PER as usize)
        .map(|o| {
            let len = PER.min(end - o) as u32;
            let h = StreamHeader {
                stream: 0,
                flags: if o + len as u64 == end { FLAG_LAST } else { 0 },
                lap,
                len,
                offset: o,
                start,
                end,
            };
            let mut f = vec![0u8; 82 + len as usize];
            let at = build_headers(&mut f, flow, &h);
            pattern_fill(&mut f[at..], o, seed);
            net::offload_checksums_in_software(&mut f);
            f
        })
        .collect()
}

/// Write `frames` as a capture with the pcap wire (our `pcap:` captures).
fn capture(path: &Path, frames: &[Vec<u8>]) -> String {
    let w = PcapWire::create(path).unwrap();
    for f in frames {
        w.send(f).unwrap();
    }
    w.flush().unwrap();
    format!("pcap:{}", path.display())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The run ended with `status`, no panic, and stdout holds every line.
fn reports(out: &Output, status: i32, lines: &[&str]) {
    let s = stdout(out);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "{s}{e}");
    assert!(!e.contains("panicked"), "{e}");
    for l in lines {
        assert!(s.lines().any(|x| x == *l), "line '{l}' missing:\n{s}");
    }
}

/// 100 000 bytes from disk offset 1 MiB: 70 frames, the last of 1192 bytes.
const START: u64 = 1 << 20;
const END: u64 = START + 100_000;

#[test]
fn a_complete_capture_verifies_and_each_problem_is_reported() {
    let dir = tmpdir("blkrecv-pcap");
    let good = lap(0, START, END, DEFAULT_SEED);
    assert_eq!(good.len(), 70);
    let src = capture(&dir.join("good.pcap"), &good);
    let out = run(BLKRECV, &[&src, "--quiet"]);
    reports(
        &out,
        0,
        &[
            "stream: range [1048576, 1148576) (97.66 KiB), 1 lap (1 complete), 1 stream",
            "frames: 70 stream, 0 not stream, 0 bad",
            "verified: 100000 bytes, 0 mismatched",
            "missing: 0 bytes",
            "duplicate: 0 bytes",
            "complete: yes",
        ],
    );
    assert!(stdout(&out).starts_with(&format!("blkrecv: {src}, expect pattern\n")));
    assert!(stdout(&out).contains("ended: end of the capture after"));

    // Frame 3 lost: its bytes are missing, the run fails.
    let mut f = good.clone();
    f.remove(3);
    let src = capture(&dir.join("missing.pcap"), &f);
    let a = START + 3 * PER;
    reports(
        &run(BLKRECV, &[&src]),
        1,
        &[
            "verified: 98568 bytes, 0 mismatched",
            &format!("missing: 1432 bytes (first: lap 0 [{a}, {}))", a + PER),
            "complete: no (1432 bytes missing)",
        ],
    );

    // Frames 5 and 69 (the short LAST one) twice: counted, not a failure.
    let mut f = good.clone();
    f.insert(40, good[5].clone());
    f.push(good[69].clone());
    let src = capture(&dir.join("dup.pcap"), &f);
    reports(
        &run(BLKRECV, &[&src]),
        0,
        &[
            "frames: 72 stream, 0 not stream, 0 bad",
            "verified: 100000 bytes, 0 mismatched",
            "duplicate: 2624 bytes",
            "complete: yes",
        ],
    );

    // The sender read one wrong byte (checksums made over it: the NIC
    // computes them): a mismatch at its disk offset.
    let mut f = good.clone();
    let at = 82 + 100;
    f[10][at] ^= 0x01;
    let mut fixed = f[10].clone();
    let l4 = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    // Redo the checksums over the changed byte: back to the pseudo-header
    // sum, then the offload's work.
    let mut headers_only = vec![0u8; fixed.len()];
    net::write_udp_headers(&mut headers_only, fixed.len(), &flow());
    fixed[l4 + 6..l4 + 8].copy_from_slice(&headers_only[l4 + 6..l4 + 8]);
    fixed[ethernet::HEADER_LEN + 10..ethernet::HEADER_LEN + 12].fill(0);
    net::offload_checksums_in_software(&mut fixed);
    f[10] = fixed;
    let src = capture(&dir.join("wrong-byte.pcap"), &f);
    reports(
        &run(BLKRECV, &[&src]),
        1,
        &[
            &format!(
                "verified: 99999 bytes, 1 mismatched (first: lap 0 offset {})",
                START + 10 * PER + 100
            ),
            "missing: 0 bytes",
            "complete: yes",
        ],
    );

    // A byte damaged on the way: the UDP checksum refuses the frame, so
    // its bytes are missing, not accepted.
    let mut f = good.clone();
    f[20][82 + 7] ^= 0x40;
    let src = capture(&dir.join("bad-checksum.pcap"), &f);
    reports(
        &run(BLKRECV, &[&src]),
        1,
        &[
            "frames: 69 stream, 0 not stream, 1 bad (1 UDP checksum)",
            "verified: 98568 bytes, 0 mismatched",
            "missing: 1432 bytes (first: lap 0 [1077216, 1078648))",
        ],
    );

    // Other traffic on the wire (ARP, a UDP frame without the magic) is
    // counted and ignored.
    let mut f = good.clone();
    let mut arp = good[0][..60].to_vec();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut udp = vec![0u8; 100];
    net::write_udp_headers(&mut udp, 100, &flow());
    net::offload_checksums_in_software(&mut udp);
    f.insert(0, arp);
    f.insert(30, udp);
    let src = capture(&dir.join("other.pcap"), &f);
    reports(
        &run(BLKRECV, &[&src]),
        0,
        &[
            "frames: 70 stream, 2 not stream, 0 bad",
            "verified: 100000 bytes, 0 mismatched",
        ],
    );

    // Another seed than the sender's: almost nothing matches.
    let src = capture(&dir.join("good2.pcap"), &good);
    let out = run(BLKRECV, &[&src, "--expect", "pattern:0x5eee"]);
    assert_eq!(out.status.code(), Some(1));
    let s = stdout(&out);
    let v = s.lines().find(|l| l.starts_with("verified: ")).unwrap();
    let n: u64 = v["verified: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n < 1000, "{v}");
    assert!(v.contains(&format!("{} mismatched", 100_000 - n)), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_disk_image_is_the_expectation_and_a_wrong_one_fails() {
    let dir = tmpdir("blkrecv-file");
    let src = capture(&dir.join("s.pcap"), &lap(0, START, END, DEFAULT_SEED));
    let mut img = vec![0u8; END as usize];
    pattern_fill(&mut img, 0, DEFAULT_SEED);
    let right = dir.join("disk.img");
    std::fs::write(&right, &img).unwrap();
    reports(
        &run(
            BLKRECV,
            &[&src, "--expect", &format!("file:{}", right.display())],
        ),
        0,
        &["verified: 100000 bytes, 0 mismatched", "complete: yes"],
    );
    // An image of another drive (another seed) with one equal stretch.
    let mut other = vec![0u8; END as usize];
    pattern_fill(&mut other, 0, 7);
    other[START as usize..START as usize + 4000]
        .copy_from_slice(&img[START as usize..START as usize + 4000]);
    let wrong = dir.join("other.img");
    std::fs::write(&wrong, &other).unwrap();
    let out = run(
        BLKRECV,
        &[&src, "--expect", &format!("file:{}", wrong.display())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let s = stdout(&out);
    let v = s.lines().find(|l| l.starts_with("verified: ")).unwrap();
    assert!(
        v.contains(&format!("mismatched (first: lap 0 offset {}", START + 4000)),
        "{v}"
    );
    // An image too short for the range: the bytes past its end mismatch.
    let short = dir.join("short.img");
    std::fs::write(&short, &img[..END as usize - 10]).unwrap();
    reports(
        &run(
            BLKRECV,
            &[&src, "--expect", &format!("file:{}", short.display())],
        ),
        1,
        &[
            "verified: 99990 bytes, 10 mismatched (first: lap 0 offset 1148566, lap 0 offset \
             1148567, lap 0 offset 1148568, lap 0 offset 1148569, lap 0 offset 1148570)",
            "note: the expected file ends at byte 1148566: bytes after it count as mismatched",
        ],
    );
    // With no expectation only the coverage counts.
    reports(
        &run(BLKRECV, &[&src, "--expect", "none"]),
        0,
        &[
            "received: 100000 bytes, not compared (--expect none)",
            "complete: yes",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dst_port_picks_one_of_several_streams_in_a_capture() {
    let dir = tmpdir("blkrecv-port");
    // Two streams interleaved, as two blkfwd runs on one wire: the first to
    // port 9000 over [START, END), the second to port 9001 over another
    // range of another drive (seed); and other UDP traffic to port 9001
    // (pktgen's frames, no stream magic) and a later IPv4 fragment (no UDP
    // header to tell its port).
    let a = lap(0, START, END, DEFAULT_SEED);
    let other = Flow {
        dst_port: 9001,
        ..flow()
    };
    let b = lap_of(&other, 0, 0, 30_000, 7);
    assert_eq!((a.len(), b.len()), (70, 21));
    let mut udp = vec![0u8; 100];
    net::write_udp_headers(&mut udp, 100, &other);
    net::offload_checksums_in_software(&mut udp);
    let mut frag = a[0].clone();
    let f = ethernet::HEADER_LEN + ipv4::field::FLAGS_FRAGMENT.start;
    frag[f..f + 2].copy_from_slice(&185u16.to_be_bytes());
    let mut frames = vec![udp.clone(), frag];
    for (i, f) in a.iter().enumerate() {
        frames.push(f.clone());
        if let Some(g) = b.get(i) {
            frames.push(g.clone());
        }
    }
    frames.push(udp);
    let src = capture(&dir.join("two.pcap"), &frames);

    // Without --dst-port the first stream's range is the one checked; the
    // other's frames are bad ("other range"), the UDP frames not stream.
    reports(
        &run(BLKRECV, &[&src]),
        0,
        &[
            "stream: range [1048576, 1148576) (97.66 KiB), 1 lap (1 complete), 1 stream",
            "frames: 70 stream, 3 not stream, 21 bad (21 other range)",
            "verified: 100000 bytes, 0 mismatched",
        ],
    );
    // Each stream on its own, the rest ignored.
    reports(
        &run(BLKRECV, &[&src, "--dst-port", "9000"]),
        0,
        &[
            "dst-port: 24 frames not to UDP port 9000 ignored (--dst-port)",
            "stream: range [1048576, 1148576) (97.66 KiB), 1 lap (1 complete), 1 stream",
            "frames: 70 stream, 0 not stream, 0 bad",
            "verified: 100000 bytes, 0 mismatched",
            "missing: 0 bytes",
            "complete: yes",
        ],
    );
    reports(
        &run(
            BLKRECV,
            &[&src, "--dst-port", "9001", "--expect", "pattern:7"],
        ),
        0,
        &[
            "dst-port: 71 frames not to UDP port 9001 ignored (--dst-port)",
            "stream: range [0, 30000) (29.30 KiB), 1 lap (1 complete), 1 stream",
            "frames: 21 stream, 2 not stream, 0 bad",
            "verified: 30000 bytes, 0 mismatched",
            "complete: yes",
        ],
    );
    // The second stream checked against the first one's drive: mismatches.
    let out = run(BLKRECV, &[&src, "--dst-port", "9001"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // A port nothing was sent to: no stream, a failing report.
    reports(
        &run(BLKRECV, &[&src, "--dst-port", "9002"]),
        1,
        &[
            "dst-port: 94 frames not to UDP port 9002 ignored (--dst-port)",
            "stream: no stream frame seen",
            "complete: no (no stream frame)",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn laps_count_and_capture_formats() {
    let dir = tmpdir("blkrecv-laps");
    let mut frames = lap(0, 0, 10_000, DEFAULT_SEED);
    frames.extend(lap(1, 0, 10_000, DEFAULT_SEED));
    frames.extend(lap(2, 0, 10_000, DEFAULT_SEED).into_iter().take(1));
    let path = dir.join("laps.pcap");
    let src = capture(&path, &frames);
    // The third lap has begun only: incomplete.
    reports(
        &run(BLKRECV, &[&src]),
        1,
        &["stream: range [0, 10000) (9.77 KiB), 3 laps (2 complete), 1 stream"],
    );
    // --laps 2 stops when two are complete, before the third.
    let out = run(BLKRECV, &[&src, "--laps", "2"]);
    reports(
        &out,
        0,
        &["verified: 20000 bytes, 0 mismatched", "complete: yes"],
    );
    assert!(stdout(&out).contains("ended: --laps laps complete"));
    // --laps 3: the capture ends first.
    reports(
        &run(BLKRECV, &[&src, "--laps", "3"]),
        1,
        &["laps: 2 of the 3 asked for (--laps) complete"],
    );
    // --count stops after 5 frames: incomplete.
    let out = run(BLKRECV, &[&src, "--count", "5"]);
    reports(&out, 1, &["frames: 5 stream, 0 not stream, 0 bad"]);
    assert!(stdout(&out).contains("ended: --count frames received"));

    // The same capture big-endian with nanosecond timestamps (as other
    // writers make them) reads the same.
    let d = std::fs::read(&path).unwrap();
    let mut be = Vec::with_capacity(d.len());
    be.extend(0xa1b2_3c4du32.to_be_bytes());
    be.extend(2u16.to_be_bytes());
    be.extend(4u16.to_be_bytes());
    be.extend([0; 8]);
    be.extend(65535u32.to_be_bytes());
    be.extend(1u32.to_be_bytes());
    let mut off = 24;
    while off < d.len() {
        let w = |i: usize| u32::from_le_bytes(d[off + i..off + i + 4].try_into().unwrap());
        let incl = w(8) as usize;
        for v in [w(0), w(4) * 1000, w(8), w(12)] {
            be.extend(v.to_be_bytes());
        }
        be.extend(&d[off + 16..off + 16 + incl]);
        off += 16 + incl;
    }
    let bep = dir.join("be-ns.pcap");
    std::fs::write(&bep, be).unwrap();
    reports(
        &run(
            BLKRECV,
            &[&format!("pcap:{}", bep.display()), "--laps", "2"],
        ),
        0,
        &["verified: 20000 bytes, 0 mismatched"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_one_error_line() {
    let dir = tmpdir("blkrecv-errors");
    let absent = dir.join("absent.pcap");
    let out = run(BLKRECV, &[&format!("pcap:{}", absent.display())]);
    assert_one_line_error(&out, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "error: cannot open pcap file {}: No such file or directory",
            absent.display()
        )
    );
    let text = dir.join("text.pcap");
    std::fs::write(&text, "this is not a capture, it is a sentence").unwrap();
    assert_one_line_error(
        &run(BLKRECV, &[&format!("pcap:{}", text.display())]),
        &["text.pcap: not a pcap file", "editcap -F pcap"],
    );
    let cut = dir.join("cut.pcap");
    capture(&cut, &lap(0, 0, 5000, DEFAULT_SEED));
    let d = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &d[..d.len() - 10]).unwrap();
    assert_one_line_error(
        &run(BLKRECV, &[&format!("pcap:{}", cut.display())]),
        &["cut.pcap: record 3: 786 bytes, file ends first"],
    );
    assert_one_line_error(
        &run(
            BLKRECV,
            &["pcap:x", "--expect", "file:/nonexistent/disk.img"],
        ),
        &["cannot open expected disk image /nonexistent/disk.img: No such file or directory"],
    );
    assert_one_line_error(
        &run(BLKRECV, &["pcap:x", "--expect", "zeros"]),
        &["--expect zeros: unknown; use pattern, pattern:SEED, file:PATH or none"],
    );
    assert_one_line_error(
        &run(BLKRECV, &["udp:256.0.0.1:9000"]),
        &["cannot bind UDP socket 256.0.0.1:9000"],
    );
    assert_one_line_error(&run(BLKRECV, &["pcap:"]), &["write pcap:FILE"]);
    assert_one_line_error(
        &run(BLKRECV, &["udp:127.0.0.1:9000", "--dst-port", "9001"]),
        &["--dst-port 9001 with udp:127.0.0.1:9000: a UDP socket receives only"],
    );
    assert_one_line_error(&run(BLKRECV, &["emu:nvme,size=1M"]), &["not a NIC"]);
    // Bad usage is clap's: exit status 2.
    assert_eq!(run(BLKRECV, &[]).status.code(), Some(2));
    assert_eq!(
        run(BLKRECV, &["pcap:x", "--laps", "0"]).status.code(),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start blkrecv with `args`; return it and its first stdout line (printed
/// once it receives).
fn start(
    args: &[&str],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    let mut child = Command::new(BLKRECV)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    (child, out, first)
}

/// The rest of the run's stdout, and its exit status.
fn finish(
    mut child: std::process::Child,
    mut out: BufReader<std::process::ChildStdout>,
) -> (String, i32) {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    (rest, status.code().unwrap_or(-1))
}

#[test]
fn a_udp_socket_receives_the_stream() {
    // No --laps: the run ends when the sender has been quiet for a second.
    let (child, out, first) = start(&["udp:127.0.0.1:0", "--idle-exit", "1"]);
    // "blkrecv: udp:127.0.0.1:PORT, expect pattern"
    let addr = first
        .strip_prefix("blkrecv: udp:")
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let frames = lap(0, 0, 64 * 1024, DEFAULT_SEED);
    for f in &frames {
        // A socket gets the UDP payload: stream header and disk bytes.
        tx.send_to(&f[net::PAYLOAD..], &addr).unwrap();
        // Loopback drops what the receive buffer cannot hold; pace a little.
        std::thread::sleep(Duration::from_micros(200));
    }
    let (rest, status) = finish(child, out);
    assert_eq!(status, 0, "{rest}");
    for l in [
        "frames: 46 stream, 0 not stream, 0 bad",
        "verified: 65536 bytes, 0 mismatched",
        "complete: yes",
    ] {
        assert!(rest.lines().any(|x| x == l), "'{l}' missing:\n{rest}");
    }
    assert!(
        rest.contains("ended: no frame for 1 s (--idle-exit)"),
        "{rest}"
    );
}

#[test]
fn a_source_that_stays_silent_ends_the_run_with_a_failing_report() {
    let out = run(BLKRECV, &["udp:127.0.0.1:0", "--wait", "0.3", "--quiet"]);
    reports(
        &out,
        1,
        &[
            "stream: no stream frame seen",
            "frames: 0 stream, 0 not stream, 0 bad",
            "complete: no (no stream frame)",
        ],
    );
    assert!(stdout(&out).contains("ended: no frame within 0.3 s (--wait)"));
}

#[test]
fn an_emulated_nic_port_receives_the_stream() {
    let dir = tmpdir("blkrecv-nic");
    let local = dir.join("port");
    let peer = dir.join("test");
    let sock = std::os::unix::net::UnixDatagram::bind(&peer).unwrap();
    let dev = format!("emu:igb,wire=unix:{}>{}", local.display(), peer.display());
    let (child, out, first) = start(&[&dev, "--laps", "1", "--idle-exit", "5"]);
    assert!(
        first.starts_with(&format!("blkrecv: {dev} (emulated 82576")),
        "{first}"
    );
    let mut frames = lap(0, 0, 200 * PER, DEFAULT_SEED);
    // Reordered and with a duplicate, as several queues deliver them.
    frames.swap(10, 50);
    frames.insert(100, frames[7].clone());
    for f in &frames {
        // A blocking send waits while the port's socket queue is full.
        sock.send_to(f, &local).unwrap();
    }
    let (rest, status) = finish(child, out);
    assert_eq!(status, 0, "{rest}");
    for l in [
        "frames: 201 stream, 0 not stream, 0 bad",
        "verified: 286400 bytes, 0 mismatched",
        "duplicate: 1432 bytes",
        "complete: yes",
    ] {
        assert!(rest.lines().any(|x| x == l), "'{l}' missing:\n{rest}");
    }
    assert!(
        rest.contains("device: 201 frames received, 0 dropped"),
        "{rest}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
