//! kcopy end to end: every copy method delivers exactly repeat x size
//! bytes (the program itself checks the receiver's count and checksum and
//! fails otherwise), counts at least one system call per chunk it moves,
//! puts its temp file in $TMPDIR and leaves nothing there, and refuses bad
//! input with one line.
#![forbid(unsafe_code)]

// The apps' command-line test helpers, shared rather than copied, so kcopy's
// errors are held to the same one-line rule as the other programs'.
#[path = "../../../apps/tests/common/mod.rs"]
mod common;
use common::{assert_one_line_error, run, tmpdir};

use apps::stream::pattern::pseudo_random;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const KCOPY: &str = env!("CARGO_BIN_EXE_kcopy");

/// Run kcopy with TMPDIR set to `dir`.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(KCOPY)
        .args(args)
        .env("TMPDIR", dir)
        .output()
        .expect("kcopy runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kcopy failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The `kcopy: method=...` lines, as key -> value maps, in order.
fn machine_lines(text: &str) -> Vec<HashMap<String, String>> {
    text.lines()
        .filter_map(|l| l.strip_prefix("kcopy: "))
        .map(|l| {
            l.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("key=value");
                    (k.to_string(), v.to_string())
                })
                .collect()
        })
        .collect()
}

fn num(m: &HashMap<String, String>, key: &str) -> f64 {
    m.get(key)
        .unwrap_or_else(|| panic!("no {key} in {m:?}"))
        .parse()
        .unwrap()
}

/// The methods kcopy reported it cannot run here.
fn unsupported_methods(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("kcopy: unsupported method="))
        .map(|r| r.split(' ').next().unwrap().to_string())
        .collect()
}

/// "N zero-copy completions, C of them ..." of a method: (N, C).
fn zc_completions(text: &str, method: &str) -> Option<(u64, u64)> {
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{method}: ")))?;
    let words: Vec<&str> = rest.split(' ').collect();
    Some((words[0].parse().unwrap(), words[3].parse().unwrap()))
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn every_method_delivers_every_byte_and_counts_its_calls() {
    let dir = tmpdir("kcopy-all");
    let size = 8u64 << 20;
    let chunk = 100_000u64;
    let out = run_in(
        &dir,
        &[
            "--method",
            "all",
            "--size",
            "8m",
            "--repeat",
            "2",
            "--chunk",
            "100000",
            "--placement",
            "same",
        ],
    );
    let text = stdout(&out);
    let measured = text.lines().find(|l| l.starts_with("measured: ")).unwrap();
    assert!(
        measured.contains(&format!("temp file {}", dir.display())),
        "the temp file is not in TMPDIR: {measured}"
    );
    assert!(text.contains("receiver check: every method delivered 16777216 bytes"));
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("method "))
        .skip(1)
        .take(4)
        .collect();
    let lines = machine_lines(&text);
    let names: Vec<&str> = lines.iter().map(|m| m["method"].as_str()).collect();
    // `all` is the four TCP methods, then the three UDP ones, less any the
    // kernel here cannot run (reported as such: see the UDP test below).
    let unsupported = unsupported_methods(&text);
    let expected: Vec<&str> = [
        "read-write",
        "mmap-write",
        "sendfile",
        "splice",
        "udp-gso",
        "udp-gso-zerocopy",
        "io-uring",
    ]
    .into_iter()
    .filter(|n| !unsupported.contains(&n.to_string()))
    .collect();
    assert_eq!(names, expected);
    // Chunks per pass, and the fewest data-path calls each method can make
    // for 2 passes: read-write a read and a write per chunk; mmap-write a
    // write per chunk plus mmap and munmap; sendfile one; splice two (file
    // -> pipe, pipe -> socket; the pipe holds a whole chunk).
    let chunks = size.div_ceil(chunk) as f64;
    let least = [4.0 * chunks, 2.0 * chunks + 4.0, 2.0 * chunks, 4.0 * chunks];
    for ((m, least), row) in lines.iter().zip(least).zip(&rows) {
        let name = &m["method"];
        assert!(row.starts_with(name.as_str()), "row {row} for {name}");
        assert_eq!(num(m, "bytes"), (2 * size) as f64, "{name}");
        let calls = num(m, "syscalls");
        // Blocking sockets and no signals: partial writes are rare, so more
        // than twice the least means the counting is wrong.
        assert!(
            calls >= least && calls <= 2.0 * least,
            "{name}: {calls} calls, least {least}"
        );
        let per_gib = calls / (2.0 * size as f64 / (1u64 << 30) as f64);
        assert!((num(m, "syscalls_per_gib") - per_gib).abs() < 1.0, "{name}");
        assert!(num(m, "cpu_s") > 0.0, "{name}: no CPU time measured");
        assert!(num(m, "secs") > 0.0, "{name}");
        let split = num(m, "user_s") + num(m, "sys_s");
        assert!(split <= num(m, "cpu_s") * 1.5 + 0.01, "{name}: {m:?}");
    }
    assert!(is_empty(&dir), "kcopy left files in {}", dir.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_given_file_is_sent_whole_or_in_part_and_kept() {
    let dir = tmpdir("kcopy-file");
    let path = dir.join("data.bin");
    let data = pseudo_random(2, (3 << 20) + 123);
    std::fs::write(&path, &data).unwrap();
    let p = path.to_str().unwrap();

    let out = run(
        KCOPY,
        &[
            "--file",
            p,
            "--method",
            "sendfile,splice",
            "--chunk",
            "64k",
            "--placement",
            "free",
        ],
    );
    let lines = machine_lines(&stdout(&out));
    assert_eq!(lines.len(), 2);
    for m in &lines {
        assert_eq!(num(m, "bytes"), data.len() as f64, "{m:?}");
    }

    let out = run(
        KCOPY,
        &[
            "--file",
            p,
            "--method",
            "read-write",
            "--method",
            "mmap-write",
            "--size",
            "1000",
            "--repeat",
            "3",
            "--placement",
            "same",
        ],
    );
    let lines = machine_lines(&stdout(&out));
    let got: Vec<(&str, f64)> = lines
        .iter()
        .map(|m| (m["method"].as_str(), num(m, "bytes")))
        .collect();
    assert_eq!(got, [("read-write", 3000.0), ("mmap-write", 3000.0)]);
    assert_eq!(std::fs::read(&path).unwrap(), data, "the file was changed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gets_one_line_errors() {
    let dir = tmpdir("kcopy-bad");
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let small = dir.join("small");
    std::fs::write(&small, [1u8; 4096]).unwrap();
    let missing = dir.join("missing");
    let d = dir.to_str().unwrap();

    assert_one_line_error(&run(KCOPY, &["--size", "0"]), &["--size 0"]);
    assert_one_line_error(&run(KCOPY, &["--chunk", "0"]), &["--chunk 0"]);
    assert_one_line_error(&run(KCOPY, &["--chunk", "1g"]), &["--chunk", "256 MiB"]);
    assert_one_line_error(
        &run(KCOPY, &["--file", missing.to_str().unwrap()]),
        &["cannot open", "missing", "No such file"],
    );
    assert_one_line_error(&run(KCOPY, &["--file", d]), &["not a regular file"]);
    assert_one_line_error(
        &run(KCOPY, &["--file", empty.to_str().unwrap()]),
        &["is empty"],
    );
    assert_one_line_error(
        &run(KCOPY, &["--file", small.to_str().unwrap(), "--size", "8k"]),
        &["--size 8192", "4096 bytes"],
    );
    // clap's usage errors exit with 2.
    let out = run(KCOPY, &["--method", "carrier-pigeon"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_room_for_the_temp_file_is_refused_and_nothing_is_left() {
    let dir = tmpdir("kcopy-room");
    let out = run_in(&dir, &["--size", "1000t"]);
    assert_one_line_error(
        &out,
        &["not enough free space", dir.to_str().unwrap(), "TMPDIR"],
    );
    assert!(is_empty(&dir));

    let gone = dir.join("no-such-dir");
    let out = run_in(&gone, &["--size", "1m"]);
    assert_one_line_error(&out, &["no-such-dir", "not usable", "TMPDIR"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_temp_file_is_unlinked_while_running_so_a_kill_leaves_nothing() {
    let dir = tmpdir("kcopy-kill");
    // Terabytes to send: it is still running when killed.
    let mut child = Command::new(KCOPY)
        .args([
            "--method", "sendfile", "--size", "16m", "--repeat", "200000",
        ])
        .env("TMPDIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The explanation line comes after the file is made and read.
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("measured: "), "{first}");
    assert!(first.contains(dir.to_str().unwrap()), "{first}");
    assert!(child.try_wait().unwrap().is_none(), "kcopy ended too soon");
    assert!(is_empty(&dir), "the temp file is visible while kcopy runs");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(is_empty(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_udp_methods_deliver_every_byte_in_datagrams_and_count_their_calls() {
    let dir = tmpdir("kcopy-udp");
    let size = 8u64 << 20;
    let out = run_in(
        &dir,
        &[
            "--method",
            "udp-gso,udp-gso-zerocopy,io-uring",
            "--size",
            "8m",
            "--repeat",
            "2",
            "--placement",
            "apart",
        ],
    );
    let text = stdout(&out);
    assert!(text.contains("UDP methods: 1472 B datagrams, GSO sends of 64768 B"));
    let unsupported = unsupported_methods(&text);
    // UDP_SEGMENT is Linux 4.18; what cannot run must say why.
    assert!(!unsupported.contains(&"udp-gso".to_string()), "{text}");
    for u in &unsupported {
        assert!(
            text.contains(&format!("kcopy: unsupported method={u} reason=")),
            "{text}"
        );
    }
    let lines = machine_lines(&text);
    assert_eq!(lines.len() + unsupported.len(), 3, "{text}");
    // GSO sends per pass (64768 bytes each), io_uring reads of 64 KiB each
    // sent as two pieces (64768 + 768 bytes).
    let sends = 2 * size.div_ceil(64_768);
    let reads = 2 * size.div_ceil(65_536);
    for m in &lines {
        let name = m["method"].as_str();
        assert_eq!(num(m, "bytes"), (2 * size) as f64, "{name}");
        assert!(num(m, "cpu_s") > 0.0, "{name}: no CPU time measured");
        let calls = num(m, "syscalls") as u64;
        match name {
            // A pread and a send per GSO send; 16 MiB in all is within the
            // window, so the sender never waits.
            "udp-gso" => assert_eq!(calls, 2 * sends, "{name}"),
            // The same plus at least one error-queue read per send.
            "udp-gso-zerocopy" => {
                assert!(calls >= 3 * sends && calls <= 6 * sends, "{name}: {calls}");
                assert_eq!(zc_completions(&text, name).unwrap().0, sends, "{name}");
            }
            // Each io_uring_enter waits for a completion: at most one per
            // read, send and notification, and far fewer than a call per
            // datagram.
            "io-uring" => {
                assert!(calls >= 1 && calls <= 5 * reads, "{name}: {calls}");
                assert_eq!(zc_completions(&text, name).unwrap().0, 2 * reads, "{name}");
            }
            other => panic!("unexpected method {other}"),
        }
    }
    assert!(is_empty(&dir), "kcopy left files in {}", dir.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_placement_pins_both_threads_and_gives_a_row() {
    let dir = tmpdir("kcopy-placement");
    let cpus = std::thread::available_parallelism().unwrap().get();
    // The default: one CPU for both threads, then two (where there are two).
    let text = stdout(&run_in(&dir, &["--method", "sendfile", "--size", "4m"]));
    let lines = machine_lines(&text);
    let got: Vec<&str> = lines.iter().map(|m| m["placement"].as_str()).collect();
    assert_eq!(
        got,
        if cpus >= 2 {
            vec!["same", "apart"]
        } else {
            vec!["same"]
        }
    );
    for m in &lines {
        assert_eq!(m["method"], "sendfile");
        let (s, r) = (&m["send_cpu"], &m["recv_cpu"]);
        assert!(
            s.parse::<usize>().is_ok() && r.parse::<usize>().is_ok(),
            "{m:?}"
        );
        match m["placement"].as_str() {
            "same" => assert_eq!(s, r, "{m:?}"),
            _ => assert_ne!(s, r, "{m:?}"),
        }
    }
    // Each placement once, in the order given; `free` pins nothing.
    let text = stdout(&run_in(
        &dir,
        &[
            "--method",
            "read-write,udp-gso",
            "--size",
            "4m",
            "--placement",
            "free,same,free",
        ],
    ));
    let got: Vec<(String, String, String)> = machine_lines(&text)
        .into_iter()
        .map(|m| {
            (
                m["method"].clone(),
                m["placement"].clone(),
                m["send_cpu"].clone(),
            )
        })
        .collect();
    let same_cpu = got[1].2.clone();
    assert_ne!(same_cpu, "-");
    let want = [
        ("read-write", "free", "-"),
        ("read-write", "same", same_cpu.as_str()),
        ("udp-gso", "free", "-"),
        ("udp-gso", "same", same_cpu.as_str()),
    ];
    let got: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(got, want, "{text}");
    assert!(is_empty(&dir), "kcopy left files in {}", dir.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn apart_on_one_cpu_is_refused_with_the_fix() {
    // taskset (util-linux) gives kcopy one CPU; without it there is
    // nothing to run this against.
    let out = Command::new("taskset")
        .args(["-c", "0", KCOPY, "--placement", "apart", "--size", "1m"])
        .output()
        .expect("taskset runs (util-linux)");
    assert_one_line_error(&out, &["--placement apart", "two CPUs", "--placement same"]);
    // With one CPU the default is `same` alone, and it runs.
    let out = Command::new("taskset")
        .args(["-c", "0", KCOPY, "--method", "splice", "--size", "1m"])
        .output()
        .expect("taskset runs (util-linux)");
    let lines = machine_lines(&stdout(&out));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["placement"], "same");
    assert_eq!(lines[0]["send_cpu"], "0");
}
