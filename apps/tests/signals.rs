//! SIGINT and SIGTERM as an operator sends them (Ctrl-C, `systemctl stop`):
//! every long-running app stops issuing work, drains what is in flight,
//! prints its final report saying which signal stopped it, and exits 0; a
//! second signal ends it at once with 128 + the signal's number.
#![forbid(unsafe_code)]

mod common;
use common::tmpdir;

use apps::monitor::{parse_json, JsonValue};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");
const FWD: &str = env!("CARGO_BIN_EXE_fwd");
const PCAP: &str = env!("CARGO_BIN_EXE_pcap");
const PERF: &str = env!("CARGO_BIN_EXE_nvme-perf");
const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");

/// A run of an app whose output goes to files in `dir` (so a test can
/// watch for its progress while it runs).
struct Running {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Running {
    fn start(dir: &Path, name: &str, bin: &str, args: &[&str]) -> Running {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Running { child, out, err }
    }

    fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default(),
        )
    }

    /// Wait until stdout or stderr contains `needle` (the app is running).
    fn wait_for(&mut self, needle: &str) {
        let t = Instant::now();
        loop {
            let (o, e) = self.output();
            if o.contains(needle) || e.contains(needle) {
                return;
            }
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("ended ({s}) before printing {needle:?}:\n{o}\n{e}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "never printed {needle:?}:\n{o}\n{e}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signo: i32) {
        let pid = self.child.id() as libc::pid_t;
        // kill(1) sends it: libc::kill is an unsafe fn, and this test file
        // has no business with unsafe code.
        let name = match signo {
            libc::SIGINT => "-INT",
            libc::SIGTERM => "-TERM",
            _ => unreachable!("only SIGINT and SIGTERM are sent"),
        };
        let st = Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {name} {pid}");
    }

    /// The exit code once it ended, within `limit`; kills it and fails the
    /// test otherwise.
    fn wait(mut self, limit: Duration) -> (Option<i32>, String, String, Duration) {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                let (o, e) = self.output();
                return (s.code(), o, e, t.elapsed());
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let (o, e) = self.output();
                panic!("still running {limit:?} after the signal:\n{o}\n{e}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn name(signo: i32) -> &'static str {
    if signo == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// Signal a running app once, after `ready` was printed, and check the
/// clean end: exit 0 within `limit`, no panic, stdout has every line of
/// `report` and the "stopped by SIG..." line; returns stdout.
fn stop_cleanly(
    dir: &Path,
    bin: &str,
    args: &[&str],
    ready: &str,
    signo: i32,
    report: &[&str],
) -> String {
    let label = Path::new(bin).file_name().unwrap().to_str().unwrap();
    let mut r = Running::start(dir, &format!("{label}-{signo}"), bin, args);
    r.wait_for(ready);
    // Mid-run: some work done, more issued.
    std::thread::sleep(Duration::from_millis(500));
    r.signal(signo);
    let (code, out, err, took) = r.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{label} {args:?}:\n{out}\n{err}");
    assert!(
        !err.contains("panicked") && !out.contains("panicked"),
        "{err}"
    );
    for line in report {
        assert!(out.contains(line), "{label}: no {line:?} in:\n{out}\n{err}");
    }
    let stopped = format!("stopped by {}", name(signo));
    assert!(out.contains(&stopped), "{label}: no {stopped:?}:\n{out}");
    // The drain is bounded well below the apps' own 10 s-and-more limits.
    assert!(took < Duration::from_secs(10), "{label} took {took:?}");
    out
}

/// The final object of a `--stats` file.
fn final_stats(path: &Path) -> JsonValue {
    let text = std::fs::read_to_string(path).unwrap();
    let last = text.lines().last().expect("a --stats line");
    let v = parse_json(last).unwrap();
    assert_eq!(v.get("type"), Some(&JsonValue::String("final".into())));
    v
}

fn num(v: &JsonValue, key: &str) -> f64 {
    v.get(key)
        .and_then(JsonValue::as_f64)
        .unwrap_or_else(|| panic!("{key} is not a number in {v:?}"))
}

/// blkfwd --loop on emulated devices: the receiver verified every byte the
/// sender sent, none missing (the unsent rest of the lap is not due), the
/// read buffers and the receiver's all back in their pools.
fn blkfwd_stops(signo: i32) {
    let dir = tmpdir(&format!("sig-blkfwd-{signo}"));
    let stats = dir.join("s.jsonl");
    let out = stop_cleanly(
        &dir,
        BLKFWD,
        &[
            "--nvme",
            "emu:nvme,size=8M",
            "--nic",
            &format!(
                "emu:ixgbe,wire=pair:sig{signo}-{},pause=on",
                std::process::id()
            ),
            "--loop",
            "--stats",
            stats.to_str().unwrap(),
        ],
        " s  ",
        signo,
        &[
            "sent:",
            "errors:      0 range(s) not sent",
            "complete: yes",
            "blkfwd: bytes=",
        ],
    );
    assert!(out.contains(", 0 mismatched"), "{out}");
    assert!(out.contains("missing: 0 bytes"), "{out}");
    assert!(out.contains("the sender stopped in lap"), "{out}");
    let f = final_stats(&stats);
    assert_eq!(f.get("ok"), Some(&JsonValue::Bool(true)));
    assert_eq!(f.get("deadline"), Some(&JsonValue::Bool(false)));
    assert_eq!(
        f.get("stopped_by"),
        Some(&JsonValue::String(name(signo).into()))
    );
    assert!(num(&f, "bytes") > 0.0);
    assert_eq!(num(&f, "recv_verified"), num(&f, "bytes"));
    assert_eq!(num(&f, "recv_missing"), 0.0);
    assert_eq!(num(&f, "recv_mismatched"), 0.0);
    assert_eq!(num(&f, "pool_quarantined"), 0.0);
    let JsonValue::Array(pools) = f.get("pools").unwrap() else {
        panic!("pools is not an array");
    };
    for p in pools {
        if p.get("name") != Some(&JsonValue::String("nic-tx".into())) {
            assert_eq!(num(p, "free"), num(p, "capacity"), "{p:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn blkfwd_loop_ends_on_sigint_with_every_byte_accounted() {
    blkfwd_stops(libc::SIGINT);
}

#[test]
fn blkfwd_loop_ends_on_sigterm_with_every_byte_accounted() {
    blkfwd_stops(libc::SIGTERM);
}

/// `blkfwd --loop --time S` stopped by a signal before S: the same clean end.
#[test]
fn blkfwd_loop_with_time_ends_on_a_signal_before_the_deadline() {
    let dir = tmpdir("sig-blkfwd-time");
    let out = stop_cleanly(
        &dir,
        BLKFWD,
        &[
            "--nvme",
            "emu:nvme,size=8M",
            "--nic",
            &format!(
                "emu:ixgbe,wire=pair:sigtime-{},pause=on",
                std::process::id()
            ),
            "--loop",
            "--time",
            "600",
        ],
        " s  ",
        libc::SIGTERM,
        &["missing: 0 bytes", "complete: yes"],
    );
    assert!(!out.contains("--time deadline"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn nvme_perf_stops(signo: i32) {
    let dir = tmpdir(&format!("sig-perf-{signo}"));
    let stats = dir.join("s.jsonl");
    let out = stop_cleanly(
        &dir,
        PERF,
        &[
            "emu:nvme,size=8M",
            "--qd",
            "8",
            "--time",
            "600",
            "--verify",
            "--stats",
            stats.to_str().unwrap(),
        ],
        "[run ",
        signo,
        &[
            "I/Os:",
            "IOPS:",
            "latency:",
            "all read(s) checked, 0 mismatched",
        ],
    );
    assert!(!out.contains("error:"), "{out}");
    let f = final_stats(&stats);
    assert_eq!(f.get("ok"), Some(&JsonValue::Bool(true)));
    assert_eq!(
        f.get("stopped_by"),
        Some(&JsonValue::String(name(signo).into()))
    );
    assert!(num(&f, "ios") > 0.0);
    assert_eq!(num(&f, "errors"), 0.0);
    // Every I/O in flight completed: all buffers back, none quarantined.
    assert_eq!(num(&f, "pool_free"), num(&f, "pool_capacity"));
    assert_eq!(num(&f, "pool_capacity"), 8.0);
    assert_eq!(num(&f, "pool_quarantined"), 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nvme_perf_ends_on_sigint_with_its_report() {
    nvme_perf_stops(libc::SIGINT);
}

#[test]
fn nvme_perf_ends_on_sigterm_with_its_report() {
    nvme_perf_stops(libc::SIGTERM);
}

#[test]
fn pktgen_ends_on_sigint_and_sigterm_with_its_report() {
    let dir = tmpdir("sig-pktgen");
    for signo in [libc::SIGINT, libc::SIGTERM] {
        // A pair wire without the other end: frames leave and are lost, as
        // on an unplugged cable; the TX ring keeps draining.
        let port = format!("emu:igb,wire=pair:sigpkt{signo}-{}", std::process::id());
        let out = stop_cleanly(
            &dir,
            PKTGEN,
            &[&port, "--time", "600", "--rate", "100000"],
            "[",
            signo,
            &["sent:", "device:"],
        );
        // Every frame counted sent is one the port sent: the ring drained.
        let sent: u64 = field(&out, "sent:        ", " frames");
        let dev: u64 = field(&out, "device:      ", " frames");
        assert!(sent > 0, "{out}");
        assert_eq!(sent, dev, "{out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The number between `before` and `after` on the line starting `before`.
fn field(out: &str, before: &str, after: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(before))
        .unwrap_or_else(|| panic!("no {before:?} in {out}"));
    let rest = &line[before.len()..];
    rest[..rest.find(after).unwrap()].trim().parse().unwrap()
}

/// fwd between two ports with frames circling (--inject on loop wires),
/// pcap on a port, and blkrecv on a port: each ends with its report.
#[test]
fn fwd_pcap_and_blkrecv_end_on_a_signal_with_their_report() {
    let dir = tmpdir("sig-nic");
    let out = stop_cleanly(
        &dir,
        FWD,
        &[
            "emu:igb,wire=loop",
            "emu:ixgbe,wire=loop",
            "--inject",
            "64",
            "--time",
            "600",
        ],
        "[",
        libc::SIGINT,
        &["forwarded:", "busy:"],
    );
    assert!(field(&out, "forwarded:   ", " frames") > 0, "{out}");
    let cap = dir.join("c.pcap");
    stop_cleanly(
        &dir,
        PCAP,
        &["emu:igb,wire=loop", cap.to_str().unwrap(), "--time", "600"],
        "pcap: ",
        libc::SIGTERM,
        &["captured:"],
    );
    // The capture was flushed: a whole pcap header at least.
    assert!(std::fs::metadata(&cap).unwrap().len() >= 24);
    stop_cleanly(
        &dir,
        BLKRECV,
        &["emu:igb,wire=loop", "--idle-exit", "0", "--wait", "0"],
        "blkrecv: ",
        libc::SIGTERM,
        &["ended: stopped by SIGTERM", "device:"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A second signal while the app drains ends it at once with 128 + the
/// signal's number, as a shell shows a process killed by it. Nobody is on
/// the other end of the pair (`--recv none`), so flow control holds the
/// NIC's frames and blkfwd's drain waits for them until its TX timeout
/// (5 s): the second signal, 0.2 s after the first, comes while it drains
/// however fast the emulated devices are.
#[test]
fn a_second_signal_exits_at_once() {
    let dir = tmpdir("sig-twice");
    for signo in [libc::SIGINT, libc::SIGTERM] {
        let mut r = Running::start(
            &dir,
            &format!("twice-{signo}"),
            BLKFWD,
            &[
                "--nvme",
                "emu:nvme,size=8M",
                "--nic",
                &format!(
                    "emu:ixgbe,wire=pair:sigtwice{signo}-{},pause=on",
                    std::process::id()
                ),
                "--recv",
                "none",
                "--loop",
            ],
        );
        r.wait_for(" s  ");
        r.signal(signo);
        std::thread::sleep(Duration::from_millis(200));
        r.signal(signo);
        let (code, out, err, took) = r.wait(Duration::from_secs(10));
        assert_eq!(code, Some(128 + signo), "{out}\n{err}");
        assert!(err.contains("second signal"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // No report: it was cut short.
        assert!(!out.contains("blkfwd: bytes="), "{out}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// GNU `timeout` signals the program and then its process group, so one
/// timeout may deliver SIGTERM twice (two signals merge only when the
/// second comes before the first is handled). A repeat within
/// `signals::SAME_REQUEST` (100 ms) is that one request, a clean stop with
/// the report; here the repeat comes 20 ms after the first, so it is
/// certainly handled separately.
#[test]
fn a_signal_repeated_at_once_is_one_request() {
    let dir = tmpdir("sig-repeat");
    let mut r = Running::start(
        &dir,
        "repeat",
        BLKFWD,
        &[
            "--nvme",
            "emu:nvme,size=8M",
            "--nic",
            &format!(
                "emu:ixgbe,wire=pair:sigrepeat-{},pause=on",
                std::process::id()
            ),
            "--loop",
        ],
    );
    r.wait_for(" s  ");
    r.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(20));
    r.signal(libc::SIGTERM);
    let (code, out, err, _) = r.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(!err.contains("second signal"), "{err}");
    assert!(out.contains("stopped by SIGTERM"), "{out}");
    assert!(out.contains("blkfwd: bytes="), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
