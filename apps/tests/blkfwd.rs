//! blkfwd as a user runs it: an emulated drive streamed through an emulated
//! port to an in-process receiver that checks every byte (ranges, jumbo
//! frames, threads, laps, a file-backed drive), a capture that blkrecv
//! verifies, and one-line errors for bad input. Drives are small (8 MiB or
//! less) so each run takes a fraction of a second.
#![forbid(unsafe_code)]

mod common;
use common::{assert_clap_error, assert_one_line_error, run, tmpdir};

use apps::stream::pattern::pseudo_random;
use std::collections::HashMap;
use std::process::Output;

const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");

/// 8 MiB: the drive of most tests.
const SIZE: u64 = 8 << 20;
const DRIVE: &str = "emu:nvme,size=8M";

/// Two threads with few reads in flight each, so that neither can take a
/// small drive's whole range (8 MiB: 64 reads) before the other starts.
const TWO_SMALL_THREADS: [&str; 6] = ["--threads", "2", "--queue-depth", "2", "--buffers", "4"];

fn blkfwd(args: &[&str]) -> Output {
    let mut all = vec!["--quiet"];
    all.extend_from_slice(args);
    run(BLKFWD, &all)
}

/// The run succeeded without a panic or any stderr; its stdout.
fn success(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    stdout
}

/// `stdout` has the whole line `line`.
fn has_line(stdout: &str, line: &str) {
    assert!(
        stdout.lines().any(|l| l == line),
        "line '{line}' missing:\n{stdout}"
    );
}

/// The `key=value` fields of the machine line `blkfwd: bytes=...`.
fn machine(stdout: &str) -> HashMap<String, String> {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("blkfwd: bytes="))
        .collect();
    assert_eq!(lines.len(), 1, "one machine line wanted:\n{stdout}");
    lines[0]["blkfwd: ".len()..]
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The receiver verified `bytes` bytes of the range, all of them intact,
/// and the sender sent as many without errors.
fn verified_whole(stdout: &str, bytes: u64) {
    has_line(stdout, &format!("verified: {bytes} bytes, 0 mismatched"));
    has_line(stdout, "missing: 0 bytes");
    has_line(stdout, "duplicate: 0 bytes");
    has_line(stdout, "complete: yes");
    has_line(
        stdout,
        "errors:      0 range(s) not sent, 0 read(s) retried",
    );
    let m = machine(stdout);
    assert_eq!(m["bytes"], bytes.to_string(), "{stdout}");
    assert_eq!(m["errors"], "0", "{stdout}");
}

#[test]
fn a_small_drive_streams_whole_and_verified() {
    let out = blkfwd(&["--nvme", DRIVE]);
    let s = success(&out);
    verified_whole(&s, SIZE);
    has_line(&s, "frames: 5888 stream, 0 not stream, 0 bad");
    // 64 reads of 128 KiB, each cut into 92 frames of at most 1432 bytes.
    assert!(
        s.contains("blkfwd: bytes=8388608 frames=5888 ios=64 errors=0 retries=0 "),
        "{s}"
    );
    assert!(
        s.lines()
            .next()
            .unwrap()
            .contains("checks against pattern:0x5eed"),
        "{s}"
    );
}

#[test]
fn jumbo_frames_and_a_range_off_the_buffer_boundaries() {
    // Block 3 on (byte 1536), 1953 blocks: 15 reads of 64 KiB and a short one.
    let out = blkfwd(&[
        "--nvme",
        DRIVE,
        "--mtu",
        "9000",
        "--start",
        "3",
        "--length",
        "999936",
        "--io-size",
        "64k",
    ]);
    let s = success(&out);
    verified_whole(&s, 999_936);
    has_line(
        &s,
        "stream: range [1536, 1001472) (976.50 KiB), 1 lap (1 complete), 1 stream",
    );
    // At 8932 payload bytes a frame: 8 frames per 64 KiB read, 2 for the
    // last 16896 bytes; at MTU 1500 it would take 704.
    let m = machine(&s);
    assert_eq!((m["frames"].as_str(), m["ios"].as_str()), ("122", "16"));
}

/// The progress lines of two threads add both threads' frames and reads:
/// 8 MiB at 24 Mbit/s takes about 2.8 s, so at least two lines come, each
/// with a rate no larger than the stream's (a counter that went backwards
/// would show as an absurd rate, or a panic in a debug build).
#[test]
fn progress_lines_count_every_thread() {
    let out = run(
        BLKFWD,
        &[
            &[
                "--nvme",
                DRIVE,
                "--nic",
                "emu:ixgbe,wire=pair:progress,pause=on",
            ][..],
            &TWO_SMALL_THREADS,
            &["--rate", "24"],
        ]
        .concat(),
    );
    let s = success(&out);
    verified_whole(&s, SIZE);
    // "   1.0 s   0.003 GiB/s   0.002 Mpps   2 I/Os in flight  ..."
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| l.contains(" I/Os in flight"))
        .collect();
    assert!(lines.len() >= 2, "{s}");
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let gib: f64 = f[2].parse().unwrap();
        let mpps: f64 = f[4].parse().unwrap();
        let in_flight: u64 = f[6].parse().unwrap();
        assert!(gib > 0.0 && gib < 0.01, "{l}");
        assert!(mpps > 0.0 && mpps < 0.01, "{l}");
        assert!(in_flight <= 4, "{l}: two threads of queue depth 2");
    }
}

/// `--rate` is the payload rate over all threads: 4 MiB at 40 Mbit/s
/// (5,000,000 bytes/s) takes at least (4 MiB - the two first reads, which
/// go at once) / rate = 0.79 s, and not twice that (each thread limited to
/// the whole rate by the other's bytes too); unlimited it takes well under
/// 0.2 s here.
#[test]
fn the_rate_limit_holds_over_all_threads() {
    let out = blkfwd(
        &[
            &[
                "--nvme",
                "emu:nvme,size=4M",
                "--nic",
                "emu:ixgbe,wire=pair:rate,pause=on",
            ][..],
            &TWO_SMALL_THREADS,
            &["--rate", "40"],
        ]
        .concat(),
    );
    let s = success(&out);
    verified_whole(&s, 4 << 20);
    let secs: f64 = machine(&s)["secs"].parse().unwrap();
    let floor = ((4 << 20) - 2 * (128 << 10)) as f64 / 5e6;
    assert!(
        secs >= floor,
        "{secs} s: faster than --rate allows ({floor} s)"
    );
    assert!(
        secs < 1.5 * floor,
        "{secs} s: much slower than --rate asks\n{s}"
    );
}

/// The machine line counts the worker's idle rounds (passes that found
/// nothing to do) beside its sleeps. Held back by --rate, a worker idles:
/// by default it spins the pacer's few rounds and then sleeps, one idle
/// round per sleep; with --spin it never sleeps and only spins.
#[test]
fn idle_rounds_are_counted_apart_from_sleeps() {
    let drive = ["--nvme", "emu:nvme,size=1M", "--rate", "100"];
    let s = success(&blkfwd(&drive));
    verified_whole(&s, 1 << 20);
    let m = machine(&s);
    let sleeps: u64 = m["sleeps"].parse().unwrap();
    let idle: u64 = m["idle_rounds"].parse().unwrap();
    assert!(sleeps > 0, "{s}");
    assert!(
        idle >= sleeps + u64::from(apps::backoff::PACER_SPINS),
        "{idle} idle rounds, {sleeps} sleeps\n{s}"
    );
    let s = success(&blkfwd(&[&drive[..], &["--spin"]].concat()));
    verified_whole(&s, 1 << 20);
    let m = machine(&s);
    assert_eq!(m["sleeps"], "0", "{s}");
    // 1 MiB at 100 Mbit/s takes about 80 ms: far more idle passes than
    // the 736 frames, each pass well under a microsecond.
    let idle: u64 = m["idle_rounds"].parse().unwrap();
    assert!(idle > 736, "{idle} idle rounds\n{s}");
}

/// Inline NIC models cannot carry a blkfwd stream: the sender's model moves
/// frames only on a TDT write, which blkfwd no longer makes once its TX ring
/// is full behind an XOFF, and an inline receiver's model only on an RDT
/// write, which never comes while its ring is full of empty buffers (README:
/// "Apps use threaded ports"). So the threads run with threaded ports here,
/// with the drive inline.
#[test]
fn two_threads_with_an_inline_drive() {
    let out = blkfwd(
        &[
            &["--nvme", "emu:nvme,size=8M,mode=inline"][..],
            &TWO_SMALL_THREADS,
            &["--nic", "emu:igb,wire=pair:t3,pause=on"],
        ]
        .concat(),
    );
    let s = success(&out);
    verified_whole(&s, SIZE);
    let first = s.lines().next().unwrap();
    assert!(first.contains("emulated (inline)"), "{first}");
    assert!(first.contains("2 thread(s)"), "{first}");
    assert!(
        first.contains("receiver emu:igb,wire=pair:t3,pause=on"),
        "{first}"
    );
    // Each thread is its own stream id.
    has_line(
        &s,
        "stream: range [0, 8388608) (8 MiB), 1 lap (1 complete), 2 streams",
    );
}

#[test]
fn two_laps_verify_twice_the_drive() {
    let out = blkfwd(&["--nvme", DRIVE, "--laps", "2"]);
    let s = success(&out);
    verified_whole(&s, 2 * SIZE);
    has_line(
        &s,
        "stream: range [0, 8388608) (8 MiB), 2 laps (2 complete), 1 stream",
    );
    assert_eq!(machine(&s)["ios"], "128");
}

#[test]
fn a_file_backed_drive_is_checked_against_its_file() {
    let dir = tmpdir("blkfwd-file");
    let img = dir.join("disk.img");
    let data = pseudo_random(3, 4 << 20);
    std::fs::write(&img, &data).unwrap();
    let nvme = format!("emu:nvme,file={}", img.display());
    let out = blkfwd(&["--nvme", &nvme]);
    let s = success(&out);
    verified_whole(&s, data.len() as u64);
    let first = s.lines().next().unwrap();
    assert!(
        first.ends_with(&format!("checks against file:{}", img.display())),
        "{first}"
    );
    // blkfwd fills only RAM drives with the pattern: the image is untouched.
    assert!(std::fs::read(&img).unwrap() == data, "the image changed");
    // The receiver really compares: the pattern is not what the file holds.
    let out = blkfwd(&["--nvme", &nvme, "--expect", "pattern"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{s}");
    let line = s
        .lines()
        .find(|l| l.starts_with("verified: "))
        .unwrap_or_else(|| panic!("no verified line:\n{s}"));
    let verified: u64 = line["verified: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(verified < data.len() as u64 / 100, "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_one_line_naming_the_fix() {
    // --start past the end: 8 MiB is 16384 blocks of 512 bytes.
    let out = blkfwd(&["--nvme", DRIVE, "--start", "16384"]);
    assert_one_line_error(&out, &["--start 16384", "past the end", "16384 blocks"]);
    // A range that starts inside but runs past the end.
    let out = blkfwd(&["--nvme", DRIVE, "--start", "16383", "--length", "1024"]);
    assert_one_line_error(&out, &["past the end", "--start", "--length"]);
    let out = blkfwd(&["--nvme", DRIVE, "--length", "9m"]);
    assert_one_line_error(&out, &["0..9437184", "past the end", "--length"]);
    // An MTU the 82576 (9728-byte frames at most) cannot carry.
    let out = blkfwd(&[
        "--nvme",
        DRIVE,
        "--nic",
        "emu:igb,wire=pair:m,pause=on",
        "--mtu",
        "16000",
    ]);
    assert_one_line_error(&out, &["MTU 16000", "82576", "9728", "--mtu"]);
    // The same device as the drive and the NIC.
    let out = blkfwd(&[
        "--nvme",
        "emu:ixgbe,wire=pair:s",
        "--nic",
        "emu:ixgbe,wire=pair:s",
    ]);
    assert_one_line_error(&out, &["emu:ixgbe,wire=pair:s", "both", "--nvme", "--nic"]);
    // A capture file in a directory that does not exist.
    let out = blkfwd(&[
        "--nvme",
        DRIVE,
        "--nic",
        "emu:ixgbe,wire=pcap:/nonexistent-dir/x.pcap",
    ]);
    assert_one_line_error(&out, &["/nonexistent-dir/x.pcap", "writable"]);
    // An NVMe controller given as the NIC.
    let out = blkfwd(&["--nvme", DRIVE, "--nic", "emu:nvme"]);
    assert_one_line_error(&out, &["emu:nvme", "not a NIC", "emu:igb"]);
    // An emulated drive with a real NIC: no IOMMU both reach.
    let out = blkfwd(&["--nvme", "emu:nvme", "--nic", "0000:03:00.0"]);
    assert_one_line_error(&out, &["both be emulated or both real"]);
    // --time is for --loop.
    let out = blkfwd(&["--nvme", DRIVE, "--time", "1"]);
    assert_one_line_error(&out, &["--time", "--loop", "--laps"]);
    // Any number of bytes is a range now (odd_offsets_and_lengths_...);
    // past the end by one byte is still refused.
    let out = blkfwd(&["--nvme", DRIVE, "--offset", "1", "--length", "8m"]);
    assert_one_line_error(&out, &["1..8388609", "past the end", "--length"]);
}

/// `--recv none` on the default port: nobody drains the pair, so the
/// default drops flow control (which would hold every frame until the TX
/// timeout) and the wire drops what does not fit; every byte is sent.
#[test]
fn no_receiver_on_the_default_port_streams_everything() {
    let out = blkfwd(&["--nvme", DRIVE, "--recv", "none"]);
    let s = success(&out);
    let m = machine(&s);
    assert_eq!(
        (m["bytes"].as_str(), m["errors"].as_str()),
        ("8388608", "0"),
        "{s}"
    );
    assert!(!s.contains("verified:"), "no receiver wanted:\n{s}");
}

#[test]
fn a_capture_of_the_stream_verifies_in_blkrecv() {
    let dir = tmpdir("blkfwd-pcap");
    let cap = dir.join("out.pcap");
    let nic = format!("emu:ixgbe,wire=pcap:{}", cap.display());
    let out = blkfwd(&["--nvme", DRIVE, "--nic", &nic, "--recv", "none"]);
    let s = success(&out);
    assert!(!s.contains("receiver"), "no receiver wanted:\n{s}");
    assert!(!s.contains("verified:"), "no receiver wanted:\n{s}");
    let m = machine(&s);
    assert_eq!(
        (m["bytes"].as_str(), m["errors"].as_str()),
        ("8388608", "0")
    );
    let source = format!("pcap:{}", cap.display());
    let out = run(BLKRECV, &[&source, "--expect", "pattern", "--quiet"]);
    let r = success(&out);
    has_line(&r, "frames: 5888 stream, 0 not stream, 0 bad");
    has_line(&r, "verified: 8388608 bytes, 0 mismatched");
    has_line(&r, "missing: 0 bytes");
    has_line(&r, "complete: yes");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run blkfwd; a run still going after `secs` is killed and fails the test.
fn blkfwd_within(args: &[&str], secs: u64) -> Output {
    let mut child = std::process::Command::new(BLKFWD)
        .arg("--quiet")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("blkfwd runs");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(secs) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("blkfwd {args:?} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn fewer_buffers_than_reads_in_flight_is_one_error_line() {
    // Each read in flight needs a buffer: 0, or fewer than --queue-depth,
    // was raised to the queue depth without a word.
    let out = blkfwd(&["--nvme", DRIVE, "--buffers", "0"]);
    assert_one_line_error(
        &out,
        &[
            "--buffers 0",
            "--queue-depth 64",
            "at least 64",
            "--buffers 64 or more",
        ],
    );
    let out = blkfwd(&["--nvme", DRIVE, "--queue-depth", "8", "--buffers", "7"]);
    assert_one_line_error(
        &out,
        &["--buffers 7", "--queue-depth 8", "--buffers 8 or more"],
    );
    // The queue depth itself is enough.
    let out = blkfwd(&["--nvme", DRIVE, "--queue-depth", "8", "--buffers", "8"]);
    let s = success(&out);
    has_line(&s, "complete: yes");
}

#[test]
fn zero_laps_is_one_error_line_not_an_endless_run() {
    let out = blkfwd_within(&["--nvme", DRIVE, "--laps", "0"], 20);
    assert_clap_error(&out, &["--laps", "0 laps", "1 or more", "--loop"]);
}

#[test]
fn a_loop_that_ends_at_its_deadline_exits_0() {
    // The deadline cuts the last lap: what was sent before it is verified,
    // the rest was never sent, so it is not missing (this exited 1 with
    // the cut lap's tail counted missing).
    let out = blkfwd_within(&["--nvme", DRIVE, "--loop", "--time", "0.5"], 30);
    let s = success(&out);
    let ended: Vec<&str> = s.lines().filter(|l| l.starts_with("ended:")).collect();
    assert_eq!(ended.len(), 1, "one ended: line wanted:\n{s}");
    assert!(ended[0].contains("at the --time deadline (0.5 s)"), "{s}");
    has_line(&s, "missing: 0 bytes");
    has_line(&s, "complete: yes");
    let m = machine(&s);
    assert_eq!(m["errors"], "0");
    let bytes: u64 = m["bytes"].parse().unwrap();
    assert!(bytes > 0, "{s}");
    has_line(&s, &format!("verified: {bytes} bytes, 0 mismatched"));
}

/// Reads of `io` bytes cover the whole blocks (of `lba` bytes) holding
/// `[offset, offset + len)`, from the block holding `offset`.
fn reads_for(offset: u64, len: u64, lba: u64, io: u64) -> u64 {
    let first = offset - offset % lba;
    (offset + len)
        .div_ceil(lba)
        .saturating_mul(lba)
        .saturating_sub(first)
        .div_ceil(io)
}

/// Any byte offset and length: whole blocks are read, only the asked bytes
/// arrive, each checked byte for byte against the drive's pattern; with
/// 512-byte and 4 KiB blocks, reads of the default size and of two blocks
/// (so a range spans many reads with a head and a tail cut).
#[test]
fn odd_offsets_and_lengths_verify_byte_for_byte() {
    const SMALL: u64 = 1 << 20;
    for lba in [512u64, 4096] {
        let nvme = format!("emu:nvme,size=1M,lba={lba}");
        for (i, offset) in [1u64, 511, 513, 4095].into_iter().enumerate() {
            for (j, len) in [1u64, 7, 1499, 65537].into_iter().enumerate() {
                // Half the runs with reads of two blocks.
                let io = if (i + j) % 2 == 0 { 128 << 10 } else { 2 * lba };
                let (o, l, io_s) = (offset.to_string(), len.to_string(), io.to_string());
                let mut args = vec!["--nvme", &nvme, "--offset", &o, "--length", &l];
                if io != 128 << 10 {
                    args.extend(["--io-size", &io_s]);
                }
                let s = success(&blkfwd(&args));
                let what = format!("lba {lba} offset {offset} length {len} io {io}");
                verified_whole(&s, len);
                has_line(
                    &s,
                    &format!(
                        "stream: range [{offset}, {}) ({}), 1 lap (1 complete), 1 stream",
                        offset + len,
                        apps::human_bytes(len)
                    ),
                );
                let m = machine(&s);
                assert_eq!(
                    m["ios"],
                    reads_for(offset, len, lba, io).to_string(),
                    "{what}:\n{s}"
                );
            }
        }
        // Ranges that end at the namespace's last byte (the default length)
        // and one that ends inside the last block.
        for (offset, len) in [
            (SMALL - 1, None),
            (SMALL - 7, None),
            (SMALL - lba - 1, None),
            (SMALL - 70001, None),
            (SMALL - 5000, Some(4999u64)),
        ] {
            let o = offset.to_string();
            let l = len.map(|l| l.to_string());
            let mut args = vec!["--nvme", &nvme, "--offset", &o];
            if let Some(l) = &l {
                args.extend(["--length", l.as_str()]);
            }
            let s = success(&blkfwd(&args));
            let len = len.unwrap_or(SMALL - offset);
            verified_whole(&s, len);
            let first = s.lines().next().unwrap();
            assert!(
                first.contains(&format!("bytes {offset}..{} of namespace 1", offset + len)),
                "{first}"
            );
            assert_eq!(
                machine(&s)["ios"],
                reads_for(offset, len, lba, 128 << 10).to_string(),
                "lba {lba} offset {offset}:\n{s}"
            );
        }
    }
}

/// An odd range of a file-backed drive, captured on a pcap wire, verifies
/// in blkrecv against the image; the same capture against another image
/// does not.
#[test]
fn an_odd_range_on_a_pcap_wire_verifies_in_blkrecv_against_the_image() {
    let dir = tmpdir("blkfwd-odd-pcap");
    let img = dir.join("disk.img");
    let data = pseudo_random(11, 1 << 20);
    std::fs::write(&img, &data).unwrap();
    let cap = dir.join("out.pcap");
    let nvme = format!("emu:nvme,file={},lba=4096", img.display());
    let nic = format!("emu:igb,wire=pcap:{}", cap.display());
    let out = blkfwd(&[
        "--nvme",
        &nvme,
        "--nic",
        &nic,
        "--recv",
        "none",
        "--offset",
        "4095",
        "--length",
        "65537",
        "--io-size",
        "16k",
    ]);
    let s = success(&out);
    let m = machine(&s);
    assert_eq!(
        (m["bytes"].as_str(), m["errors"].as_str(), m["ios"].as_str()),
        ("65537", "0", "5"),
        "{s}"
    );
    let source = format!("pcap:{}", cap.display());
    let expect = format!("file:{}", img.display());
    let r = success(&run(BLKRECV, &[&source, "--expect", &expect, "--quiet"]));
    has_line(
        &r,
        "stream: range [4095, 69632) (64.00 KiB), 1 lap (1 complete), 1 stream",
    );
    has_line(&r, "verified: 65537 bytes, 0 mismatched");
    has_line(&r, "missing: 0 bytes");
    has_line(&r, "complete: yes");
    // A one-byte shift of the image is caught.
    let shifted = dir.join("shifted.img");
    std::fs::write(&shifted, &data[1..]).unwrap();
    let expect = format!("file:{}", shifted.display());
    let out = run(BLKRECV, &[&source, "--expect", &expect, "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "a shifted image must fail");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A drive that takes 8 KiB in one command (MDTS 1): the default io-size
/// follows it and the stream is whole; an --io-size above it is one error
/// line naming the limit and the fix.
#[test]
fn io_size_follows_a_drive_with_a_small_mdts() {
    for lba in ["512", "4096"] {
        let nvme = format!("emu:nvme,size=1M,lba={lba},mdts=1");
        let s = success(&blkfwd(&["--nvme", &nvme, "--offset", "513"]));
        let first = s.lines().next().unwrap();
        assert!(
            first.contains(", 8 KiB per read (default: the drive's largest read up to 128 KiB), "),
            "{first}"
        );
        verified_whole(&s, (1 << 20) - 513);
        assert_eq!(machine(&s)["ios"], "128", "{s}");
        let out = blkfwd(&["--nvme", &nvme, "--io-size", "16k"]);
        assert_one_line_error(
            &out,
            &[
                "--io-size 16384",
                "largest transfer (8192 bytes)",
                "--io-size 8192 or less",
            ],
        );
    }
    // An explicit size the drive takes is used as given, without the note.
    let s = success(&blkfwd(&[
        "--nvme",
        "emu:nvme,size=1M,mdts=1",
        "--io-size",
        "4k",
    ]));
    let first = s.lines().next().unwrap();
    assert!(first.contains(", 4 KiB per read, "), "{first}");
    assert_eq!(machine(&s)["ios"], "256", "{s}");
    // Without an MDTS limit below it, the default stays 128 KiB.
    let s = success(&blkfwd(&["--nvme", "emu:nvme,size=1M,mdts=0"]));
    assert!(
        s.lines()
            .next()
            .unwrap()
            .contains(", 128 KiB per read (default"),
        "{s}"
    );
}

/// A --loop at an odd range cut by its deadline: the cut lap is due up to
/// where the sender stopped, computed from the read chunks of the range.
#[test]
fn a_loop_over_an_odd_range_ends_at_its_deadline_complete() {
    let out = blkfwd_within(
        &[
            "--nvme",
            DRIVE,
            "--loop",
            "--time",
            "0.5",
            "--offset",
            "511",
            "--length",
            "100001",
            "--io-size",
            "8k",
        ],
        30,
    );
    let s = success(&out);
    has_line(&s, "missing: 0 bytes");
    has_line(&s, "complete: yes");
    assert_eq!(machine(&s)["errors"], "0");
}

/// --offset and --start name the same thing two ways; an offset at the
/// end of the namespace is nothing to stream.
#[test]
fn offset_errors_are_one_line() {
    let out = blkfwd(&["--nvme", DRIVE, "--offset", "1", "--start", "1"]);
    assert_clap_error(&out, &["--offset", "--start"]);
    let out = blkfwd(&["--nvme", DRIVE, "--offset", "8m"]);
    assert_one_line_error(&out, &["--offset 8388608", "past the end", "8388608 bytes"]);
    let out = blkfwd(&["--nvme", DRIVE, "--offset", "8388607", "--length", "2"]);
    assert_one_line_error(&out, &["8388607..8388609", "past the end", "--length"]);
}
