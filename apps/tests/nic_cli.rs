//! pktgen, fwd and pcap as a user runs them: frames on emulated ports,
//! captures that tshark reads, three processes chained over unix: wires,
//! and one-line errors for bad input.
#![forbid(unsafe_code)]

mod common;
use common::{assert_one_line_error, run, tmpdir};

use apps::net::parse_test_frame;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
const FWD: &str = env!("CARGO_BIN_EXE_fwd");
const PCAP: &str = env!("CARGO_BIN_EXE_pcap");

/// (timestamp in µs, frame) of every record of a pcap file, checking the header.
fn read_pcap(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let d = std::fs::read(path).unwrap();
    assert!(d.len() >= 24, "no pcap header");
    assert_eq!(&d[..4], &0xa1b2c3d4u32.to_le_bytes(), "magic");
    assert_eq!(
        u32::from_le_bytes(d[20..24].try_into().unwrap()),
        1,
        "LINKTYPE_ETHERNET"
    );
    let mut out = Vec::new();
    let mut off = 24;
    while off < d.len() {
        let w = |i: usize| u32::from_le_bytes(d[off + i..off + i + 4].try_into().unwrap());
        let (sec, usec, incl, orig) = (w(0), w(4), w(8) as usize, w(12) as usize);
        assert_eq!(incl, orig, "truncated record");
        assert!(usec < 1_000_000);
        out.push((
            sec as u64 * 1_000_000 + usec as u64,
            d[off + 16..off + 16 + incl].to_vec(),
        ));
        off += 16 + incl;
    }
    assert_eq!(off, d.len(), "trailing bytes");
    out
}

/// Every record is one of pktgen's frames with valid checksums and
/// payload; returns the sequence numbers in capture order.
fn check_frames(recs: &[(u64, Vec<u8>)], size: usize) -> Vec<u64> {
    recs.iter()
        .map(|(_, f)| {
            assert_eq!(f.len(), size);
            let t = parse_test_frame(f).expect("a pktgen frame");
            assert!(t.ip_checksum_ok, "IPv4 checksum (offloaded) invalid");
            assert!(t.udp_checksum_ok, "UDP checksum (offloaded) invalid");
            assert!(t.payload_ok, "payload corrupted");
            t.seq
        })
        .collect()
}

#[test]
fn pktgen_to_a_capture_file_with_offloaded_checksums() {
    let dir = tmpdir("pktgen");
    for (chip, size) in [("igb", 60), ("ixgbe", 1514), ("i350", 333)] {
        let file = dir.join(format!("{chip}.pcap"));
        let out = run(
            PKTGEN,
            &[
                &format!("emu:{chip},wire=pcap:{}", file.display()),
                "--count",
                "1000",
                "--size",
                &size.to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("sent:        1000 frames"), "{stdout}");
        assert!(stdout.contains("device:      1000 frames"), "{stdout}");
        let recs = read_pcap(&file);
        let seqs = check_frames(&recs, size);
        assert_eq!(seqs, (0..1000).collect::<Vec<u64>>());
        // Timestamps: in order, and taken now (not zero, not made up).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(recs.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(now - recs[0].0 < 120_000_000, "timestamp far from now");
    }
}

/// tshark (an independent parser) reads the capture and finds every IPv4
/// and UDP checksum the NIC model filled in good.
#[test]
fn tshark_reads_the_capture_and_agrees_on_checksums() {
    if !common::have_tshark() {
        return;
    }
    let dir = tmpdir("tshark");
    let file = dir.join("t.pcap");
    let out = run(
        PKTGEN,
        &[
            &format!("emu:ixgbe,wire=pcap:{}", file.display()),
            "--count",
            "500",
            "--size",
            "200",
            "--flows",
            "7",
        ],
    );
    assert!(out.status.success());
    let t = Command::new("tshark")
        .args([
            "-r",
            file.to_str().unwrap(),
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
        ])
        .args([
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.checksum.status",
        ])
        .args([
            "-e",
            "udp.checksum.status",
            "-e",
            "udp.srcport",
            "-e",
            "frame.len",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(t.status.success());
    let text = String::from_utf8_lossy(&t.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 500, "{text}");
    let mut ports = std::collections::HashSet::new();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(&f[..2], ["1", "1"], "checksum status not Good: {l}");
        assert_eq!(f[3], "200");
        ports.insert(f[2].to_string());
    }
    assert_eq!(ports.len(), 7, "one source port per flow");
}

fn spawn(bin: &str, args: &[&str], log: &Path) -> Child {
    Command::new(bin)
        .args(args)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap()
}

fn wait(mut c: Child, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(s) = c.try_wait().unwrap() {
            return s.success();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}

/// pktgen -> fwd -> pcap as three processes over unix: wires, as ixy's CI
/// chained three VMs: every sequence number arrives exactly once. pktgen
/// sends as fast as its port takes frames, far faster than pcap writes
/// them; with flow control (pause=on) on every port the chain holds back
/// instead of overrunning a ring, however the scheduler treats the three
/// processes (seven threads) on a loaded machine.
#[test]
fn three_processes_chained_over_unix_wires_deliver_every_frame_once() {
    const N: u64 = 20_000;
    let dir = tmpdir("chain");
    let (ab, bc) = (dir.join("ab"), dir.join("bc"));
    let cap = dir.join("out.pcap");
    let port = |wire: &Path| format!("emu:igb,wire=unix:{},pause=on", wire.display());
    let pcap = spawn(
        PCAP,
        &[
            &port(&bc),
            cap.to_str().unwrap(),
            "--count",
            &N.to_string(),
            "--time",
            "60",
            // A lost frame would leave it waiting: end the run sooner.
            "--idle-exit",
            "10",
            "--quiet",
        ],
        &dir.join("pcap.log"),
    );
    // A port takes frames once its process has bound its socket and its
    // driver has enabled RX, before the banner: each process is started
    // when the previous one has printed it. (Without a peer socket a frame
    // is lost, as on an unplugged cable.)
    let wait_for = |log: PathBuf, banner: &str| {
        let t = Instant::now();
        let ready = || std::fs::read_to_string(&log).is_ok_and(|s| s.contains(banner));
        while !ready() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ready(), "{} never printed {banner}", log.display());
    };
    wait_for(dir.join("pcap.log"), "pcap: ");
    let fwd = spawn(
        FWD,
        &[
            &port(&ab),
            &port(&bc),
            "--time",
            "60",
            "--count",
            &N.to_string(),
            "--idle-exit",
            "10",
            "--quiet",
        ],
        &dir.join("fwd.log"),
    );
    wait_for(dir.join("fwd.log"), "MAC");
    let gen = run(
        PKTGEN,
        &[&port(&ab), "--count", &N.to_string(), "--size", "100"],
    );
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    assert!(
        String::from_utf8_lossy(&gen.stdout).contains(&format!("sent:        {N} frames")),
        "{}",
        String::from_utf8_lossy(&gen.stdout)
    );
    let logs = || {
        ["fwd.log", "fwd.err", "pcap.log", "pcap.err"]
            .map(|f| {
                let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                format!("--- {f}:\n{text}")
            })
            .join("")
    };
    assert!(wait(fwd, Duration::from_secs(60)), "fwd failed\n{}", logs());
    assert!(
        wait(pcap, Duration::from_secs(60)),
        "pcap failed\n{}",
        logs()
    );
    let fwd_out = std::fs::read_to_string(dir.join("fwd.log")).unwrap();
    assert!(
        fwd_out.contains(&format!("forwarded:   {N} frames")),
        "{}",
        logs()
    );
    let seqs = check_frames(&read_pcap(&cap), 100);
    let mut seen = vec![0u32; N as usize];
    for &s in &seqs {
        assert!(s < N, "sequence number {s} was never sent");
        seen[s as usize] += 1;
    }
    let missing: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let twice: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "{} frames captured; {} lost (first: {:?}), {} duplicated (first: {:?})\n{}",
        seqs.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        twice.len(),
        &twice[..twice.len().min(10)],
        logs()
    );
    assert_eq!(seqs.len() as u64, N);
}

#[test]
fn bad_input_gets_one_line_with_the_fix() {
    let out = run(FWD, &["emu:nvme", "emu:igb"]);
    assert_one_line_error(&out, &["emu:nvme", "not a NIC"]);
    let out = run(PKTGEN, &["emu:igb,wire=warp:9", "--count", "1"]);
    assert_one_line_error(&out, &["warp:9", "pair:NAME"]);
    let out = run(
        PKTGEN,
        &["emu:igb,wire=pcap:/nonexistent-dir/x.pcap", "--count", "1"],
    );
    assert_one_line_error(&out, &["/nonexistent-dir/x.pcap", "writable"]);
    let out = run(
        PCAP,
        &["emu:igb", "/nonexistent-dir/y.pcap", "--count", "1"],
    );
    assert_one_line_error(&out, &["/nonexistent-dir/y.pcap"]);
    let out = run(PKTGEN, &["emu:igb", "--size", "9000", "--count", "1"]);
    assert_one_line_error(&out, &["--size 9000", "2048"]);
    let out = run(FWD, &["emu:igb,wire=loop", "0000:00:00.0"]);
    assert_one_line_error(&out, &["mixed"]);
    let out = run(FWD, &["0000:00:1f.7", "0000:00:1f.7"]);
    assert_one_line_error(&out, &["both ports"]);
    let out = run(PKTGEN, &["emu:igb", "--dst-mac", "zz"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("02:00:00:00:00:02"));
}

#[test]
fn fwd_from_a_cut_or_corrupt_replay_capture_is_one_error_line() {
    // A good capture of 10 frames, then the same cut inside its 7th record
    // and one whose first record claims an absurd length: fwd forwarded
    // nothing and exited 0 (the replay wire's error never reached it).
    let dir = tmpdir("fwd-pcap-in");
    let good = dir.join("good.pcap");
    let out = run(
        PKTGEN,
        &[
            &format!("emu:igb,wire=pcap:{}", good.display()),
            "--count",
            "10",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..500]).unwrap();
    let mut long = bytes.clone();
    long[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
    let corrupt = dir.join("corrupt.pcap");
    std::fs::write(&corrupt, &long).unwrap();
    for (file, why) in [(&cut, "file ends first"), (&corrupt, "claims")] {
        let port = format!("emu:igb,wire=pcap-in:{}", file.display());
        let out = run(
            FWD,
            &[&port, "emu:igb,wire=loop", "--idle-exit", "1", "--quiet"],
        );
        assert_one_line_error(&out, &[&file.display().to_string(), "record", why]);
        let out = run(
            PCAP,
            &[
                &port,
                dir.join("x.pcap").to_str().unwrap(),
                "--idle-exit",
                "1",
            ],
        );
        assert_one_line_error(&out, &[&file.display().to_string(), "record", why]);
    }
    // The good one still forwards its 10 frames (all of them: the replay
    // waits for the port's receiver).
    let port = format!("emu:igb,wire=pcap-in:{}", good.display());
    let out = run(
        FWD,
        &[&port, "emu:igb,wire=loop", "--idle-exit", "1", "--quiet"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{port} -> emu:igb,wire=loop: 10,")),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A port pulled off the bus mid-run (`remove-after=`, a surprise removal:
/// every register then reads all ones) ends pktgen, fwd, pcap and blkrecv
/// within a second or two with one error line naming the port, where the
/// per-second lines and final counters went on showing it as an idle port.
#[test]
fn a_port_removed_mid_run_ends_the_run_with_one_line_naming_it() {
    const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");
    let dir = tmpdir("removed");
    let cap = dir.join("o.pcap");
    let gone = "emu:igb,wire=pair:rm-a,remove-after=1";
    let runs: [(&str, Vec<&str>); 4] = [
        (PKTGEN, vec![gone, "--time", "20"]),
        (FWD, vec![gone, "emu:igb,wire=pair:rm-b", "--time", "20"]),
        (PCAP, vec![gone, cap.to_str().unwrap(), "--time", "20"]),
        (BLKRECV, vec![gone, "--wait", "3"]),
    ];
    for (app, args) in runs {
        let t = Instant::now();
        let out = run(app, &args);
        let took = t.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{app} {args:?}: {stderr}");
        assert!(
            took < Duration::from_secs(10),
            "{app} took {took:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Per-second lines ("[  1s] ...") before it, then the one error.
        let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('[')).collect();
        assert_eq!(errors.len(), 1, "{app} {args:?}: {stderr}");
        assert!(
            errors[0].starts_with(&format!("error: port {gone} is gone: NIC not responding")),
            "{app}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A capture pktgen wrote, replayed by pcap on a `pcap-in:` wire without
/// flow control: every frame arrives, byte for byte, in order. The replay
/// used to be taken (and dropped) by the port's model before the driver had
/// set up its receiver, so pcap captured 0 frames; 3000 frames are also
/// more than the port's RX ring holds, so the replay must wait for room.
#[test]
fn pcap_captures_a_whole_replay() {
    let dir = tmpdir("pcap-replay");
    let (gen, cap) = (dir.join("gen.pcap"), dir.join("cap.pcap"));
    let out = run(
        PKTGEN,
        &[
            &format!("emu:igb,wire=pcap:{},mac=02:00:00:00:00:01", gen.display()),
            "--count",
            "3000",
            "--dst-mac",
            "02:00:00:00:00:02",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        PCAP,
        &[
            &format!(
                "emu:igb,wire=pcap-in:{},mac=02:00:00:00:00:02",
                gen.display()
            ),
            cap.to_str().unwrap(),
            "--count",
            "3000",
            "--time",
            "20",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("captured:    3000 frames"), "{stdout}");
    let sent: Vec<Vec<u8>> = read_pcap(&gen).into_iter().map(|(_, f)| f).collect();
    let got: Vec<Vec<u8>> = read_pcap(&cap).into_iter().map(|(_, f)| f).collect();
    assert_eq!(sent.len(), 3000);
    assert!(got == sent, "the capture differs from what was replayed");
    std::fs::remove_dir_all(&dir).unwrap();
}
