//! `--stats FILE` of blkfwd and nvme-perf, read back line by line, and
//! nvme-perf's `--cycle-queues`: every line is one JSON object with the
//! documented keys, the final report's figures match the run, and queue
//! pairs deleted and created thousands of times leave no mapping behind.
#![forbid(unsafe_code)]

mod common;
use apps::monitor::{parse_json, JsonValue, SECOND_KEYS};
use common::{assert_clap_error, assert_one_line_error, run, tmpdir};
use std::path::Path;
use std::process::Output;

const PERF: &str = env!("CARGO_BIN_EXE_nvme-perf");
const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");

/// The keys every final report starts with (the app's own follow).
const FINAL_KEYS: [&str; 15] = [
    "type",
    "app",
    "time_s",
    "unix_s",
    "final",
    "ok",
    "rss_bytes",
    "iova_mappings",
    "iova_bytes",
    "iova_top",
    "pool_capacity",
    "pool_free",
    "pool_quarantined",
    "pools",
    "ports",
];

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

/// The file's lines, each parsed; per-second lines first, then exactly one
/// final report, last. Checks the keys of both.
fn read_stats(path: &Path, app: &str) -> (Vec<JsonValue>, JsonValue) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the last line is complete");
    let mut lines: Vec<JsonValue> = text
        .lines()
        .map(|l| parse_json(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.pop().expect("a final report");
    assert_eq!(last.get("type"), Some(&JsonValue::String("final".into())));
    assert_eq!(last.get("final"), Some(&JsonValue::Bool(true)));
    assert_eq!(last.get("app"), Some(&JsonValue::String(app.into())));
    assert_eq!(last.keys()[..15], FINAL_KEYS);
    for l in &lines {
        assert_eq!(l.keys(), SECOND_KEYS, "{l:?}");
        assert_eq!(l.get("app"), Some(&JsonValue::String(app.into())));
        assert!(num(l, "rss_bytes") > 0.0);
        assert!(num(l, "iova_bytes") > 0.0);
    }
    // Counters never go back.
    for w in lines.windows(2) {
        for k in ["bytes", "ios", "time_s"] {
            assert!(num(&w[1], k) >= num(&w[0], k), "{k} went back");
        }
    }
    (lines, last)
}

fn num(v: &JsonValue, key: &str) -> f64 {
    v.get(key)
        .and_then(JsonValue::as_f64)
        .unwrap_or_else(|| panic!("{key} is not a number in {v:?}"))
}

#[test]
fn nvme_perf_cycles_its_queues_and_leaves_no_mapping_behind() {
    let dir = tmpdir("perf-cycle");
    let plain = dir.join("plain.jsonl");
    let cycled = dir.join("cycled.jsonl");
    let common = [
        "emu:nvme,size=8M",
        "--qd",
        "4",
        "--count",
        "2000",
        "--verify",
        "--stats",
    ];
    let mut args = common.to_vec();
    args.push(plain.to_str().unwrap());
    ok(&run(PERF, &args));
    args.pop();
    args.extend([cycled.to_str().unwrap(), "--cycle-queues", "50"]);
    let out = ok(&run(PERF, &args));
    // A cycle after every 50 I/Os but the last 50 (the run ends there).
    assert!(
        out.contains("queues:      deleted and created again 39 time(s)"),
        "{out}"
    );
    assert!(out.contains("all read(s) checked, 0 mismatched"), "{out}");
    let (_, p) = read_stats(&plain, "nvme-perf");
    let (_, c) = read_stats(&cycled, "nvme-perf");
    assert_eq!(num(&c, "queue_cycles"), 39.0);
    assert_eq!(num(&p, "queue_cycles"), 0.0);
    for f in [&p, &c] {
        assert_eq!(num(f, "ios"), 2000.0);
        assert_eq!(num(f, "bytes"), 2000.0 * 4096.0);
        assert_eq!(num(f, "errors"), 0.0);
        assert_eq!(num(f, "mismatches"), 0.0);
        assert_eq!(f.get("ok"), Some(&JsonValue::Bool(true)));
        // Every buffer back, none quarantined.
        assert_eq!(num(f, "pool_free"), num(f, "pool_capacity"));
        assert_eq!(num(f, "pool_capacity"), 4.0);
        assert_eq!(num(f, "pool_quarantined"), 0.0);
    }
    // 39 deletes and creates later, the same mappings and IOVA space as
    // without: each queue pair gave back what it took.
    for k in ["iova_mappings", "iova_bytes", "iova_top"] {
        assert_eq!(num(&c, k), num(&p, k), "{k}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nvme_perf_writes_a_line_each_second() {
    let dir = tmpdir("perf-seconds");
    let path = dir.join("s.jsonl");
    ok(&run(
        PERF,
        &[
            "emu:nvme,size=8M",
            "--qd",
            "4",
            "--time",
            "2.5",
            "--workload",
            "mixed",
            "--cycle-queues",
            "200",
            "--stats",
            path.to_str().unwrap(),
        ],
    ));
    let (lines, fin) = read_stats(&path, "nvme-perf");
    let before = lines.iter().filter(|l| num(l, "time_s") < 2.5).count();
    assert_eq!(before, 2, "{lines:?}");
    for l in &lines {
        assert_eq!(l.get("frames"), Some(&JsonValue::Null));
        assert_eq!(l.get("drops"), Some(&JsonValue::Null));
        assert!(num(l, "reads") <= num(l, "ios"));
        assert!(num(l, "ios") > 0.0);
        let JsonValue::Array(pools) = l.get("pools").unwrap() else {
            panic!("pools is not an array");
        };
        assert_eq!(pools.len(), 1);
        assert_eq!(
            pools[0].get("name"),
            Some(&JsonValue::String("io-0".into()))
        );
    }
    // A mixed load reads about 70 %: some writes, some reads.
    let (ios, reads) = (num(&lines[1], "ios"), num(&lines[1], "reads"));
    assert!(reads > 0.0 && reads < ios, "{reads} of {ios}");
    assert!(num(&fin, "ios") >= ios);
    assert!(num(&fin, "queue_cycles") > 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn blkfwd_writes_lines_and_a_final_report_that_match_its_run() {
    let dir = tmpdir("blkfwd-stats");
    let path = dir.join("s.jsonl");
    let out = ok(&run(
        BLKFWD,
        &[
            "--nvme",
            "emu:nvme,size=8M",
            "--loop",
            "--time",
            "2.5",
            "--quiet",
            "--stats",
            path.to_str().unwrap(),
        ],
    ));
    let (lines, fin) = read_stats(&path, "blkfwd");
    // One line a second: two before the deadline, then more while what is
    // in flight drains (however long that takes on a busy machine).
    let before = lines.iter().filter(|l| num(l, "time_s") < 2.5).count();
    assert_eq!(before, 2, "{lines:?}");
    for l in &lines {
        assert!(num(l, "frames") > 0.0);
        assert_eq!(num(l, "reads"), num(l, "ios"));
        assert_eq!(l.get("drops"), Some(&JsonValue::Null));
        let JsonValue::Array(pools) = l.get("pools").unwrap() else {
            panic!("pools is not an array");
        };
        let names: Vec<_> = pools
            .iter()
            .map(|p| p.get("name").unwrap().clone())
            .collect();
        assert_eq!(
            names,
            ["read-0", "nic-tx", "recv"].map(|n| JsonValue::String(n.into()))
        );
    }
    assert_eq!(fin.get("ok"), Some(&JsonValue::Bool(true)));
    assert_eq!(fin.get("deadline"), Some(&JsonValue::Bool(true)));
    assert_eq!(num(&fin, "recv_missing"), 0.0);
    assert_eq!(num(&fin, "recv_mismatched"), 0.0);
    // The same figures as the machine-readable text line.
    let bytes = num(&fin, "bytes") as u64;
    let frames = num(&fin, "frames") as u64;
    assert!(
        out.contains(&format!("blkfwd: bytes={bytes} frames={frames} ")),
        "{out}"
    );
    assert_eq!(num(&fin, "recv_verified") as u64, bytes);
    // The read buffers and the receiver's are all back at the end.
    let JsonValue::Array(pools) = fin.get("pools").unwrap() else {
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
fn bad_stats_and_cycle_options_are_one_line() {
    for app in [PERF, BLKFWD] {
        let args: &[&str] = if app == PERF {
            &["emu:nvme,size=8M", "--count", "10", "--stats"]
        } else {
            &["--nvme", "emu:nvme,size=8M", "--quiet", "--stats"]
        };
        let mut a = args.to_vec();
        a.push("/nonexistent-dir/s.jsonl");
        let out = run(app, &a);
        assert_one_line_error(&out, &["--stats /nonexistent-dir/s.jsonl", "writable"]);
    }
    for bad in ["0", "-1", "x", ""] {
        let opt = format!("--cycle-queues={bad}");
        let out = run(PERF, &["emu:nvme,size=8M", &opt]);
        assert_clap_error(&out, &["--cycle-queues"]);
    }
}
