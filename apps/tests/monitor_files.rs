//! `--stats FILE` and `--prometheus FILE` of every app that takes them,
//! read back: the Prometheus file checked line by line against the text
//! exposition format (0.0.4, as node_exporter's textfile collector reads
//! it) by a checker written here, the JSON lines with the monitor's strict
//! reader, and the final values of both against the app's printed report.
#![forbid(unsafe_code)]

mod common;
use apps::monitor::{parse_json, JsonValue};
use common::{assert_one_line_error, run, tmpdir};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
const FWD: &str = env!("CARGO_BIN_EXE_fwd");
const PCAP: &str = env!("CARGO_BIN_EXE_pcap");
const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");
const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
const PERF: &str = env!("CARGO_BIN_EXE_nvme-perf");

/// One sample line of a Prometheus text file.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// A sample value as Go's ParseFloat takes it in this format: a decimal
/// float, or `+Inf`, `-Inf`, `NaN` (Rust's "inf", "nan" spellings are
/// not allowed).
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits_dot = mant.chars().all(|c| c.is_ascii_digit() || c == '.')
        && mant.chars().filter(|&c| c == '.').count() <= 1
        && mant.chars().any(|c| c.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if !digits_dot || !exp_ok {
        return Err(format!("bad value {s:?}"));
    }
    s.parse().map_err(|_| format!("bad value {s:?}"))
}

/// A label value up to its closing quote: only `\\`, `\"` and `\n`
/// escapes. Returns the value and the rest after the quote.
fn label_value(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match it.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("bad escape {other:?} in a label value")),
            },
            '\n' => return Err("raw line feed in a label value".into()),
            c => out.push(c),
        }
    }
    Err("unterminated label value".into())
}

/// HELP text: only `\\` and `\n` escapes.
fn check_help(s: &str) -> Result<(), String> {
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
            return Err(format!("bad escape in HELP text {s:?}"));
        }
    }
    Ok(())
}

/// Check `text` line by line against the text exposition format as the
/// textfile collector reads it, and return its samples and each family's
/// type. Rules: every line ends with a line feed and none is blank;
/// `# HELP name text` at most once per family; `# TYPE name type` exactly
/// once per family, before its samples; a sample is
/// `name{label="value",...} value` with no timestamp (the collector refuses
/// them), its family typed, its family's lines in one group, no label
/// twice, no series twice; counters are not negative.
fn check_textfile(text: &str) -> Result<(Vec<Sample>, HashMap<String, String>), String> {
    if !text.ends_with('\n') {
        return Err("the last line has no line feed".into());
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut series: HashSet<String> = HashSet::new();
    // Families whose group has ended (another family's line came after).
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut enter = |family: &str, current: &mut Option<String>| -> Result<(), String> {
        if current.as_deref() != Some(family) {
            if closed.contains(family) {
                return Err(format!("family {family} is not in one group"));
            }
            if let Some(prev) = current.replace(family.to_string()) {
                closed.insert(prev);
            }
        }
        Ok(())
    };
    for (n, line) in text.split_terminator('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("blank line".into()));
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("comment without a space".into()))?;
            let mut parts = rest.splitn(3, ' ');
            let kw = parts.next().unwrap_or("");
            if kw != "HELP" && kw != "TYPE" {
                continue; // another comment: ignored by the format
            }
            let name = parts.next().ok_or_else(|| at("no metric name".into()))?;
            let arg = parts
                .next()
                .ok_or_else(|| at(format!("{kw} without text")))?;
            if !is_metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            enter(name, &mut current).map_err(at)?;
            if kw == "HELP" {
                check_help(arg).map_err(at)?;
                if !helps.insert(name.to_string()) {
                    return Err(at("a second HELP".into()));
                }
            } else {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                    return Err(at(format!("bad type {arg:?}")));
                }
                if samples.iter().any(|s: &Sample| s.name == name) {
                    return Err(at("TYPE after the family's samples".into()));
                }
                if types.insert(name.to_string(), arg.to_string()).is_some() {
                    return Err(at("a second TYPE".into()));
                }
            }
            continue;
        }
        let end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let mut rest = &line[end..];
        let mut labels: Vec<(String, String)> = Vec::new();
        if let Some(mut l) = rest.strip_prefix('{') {
            loop {
                if let Some(r) = l.strip_prefix('}') {
                    rest = r;
                    break;
                }
                if !labels.is_empty() {
                    l = l
                        .strip_prefix(',')
                        .ok_or_else(|| at("labels not separated by ','".into()))?;
                }
                let eq = l.find('=').ok_or_else(|| at("label without '='".into()))?;
                let lname = &l[..eq];
                if !is_label_name(lname) {
                    return Err(at(format!("bad label name {lname:?}")));
                }
                let v = l[eq + 1..]
                    .strip_prefix('"')
                    .ok_or_else(|| at("label value not quoted".into()))?;
                let (value, r) = label_value(v).map_err(at)?;
                if labels.iter().any(|(k, _)| k == lname) {
                    return Err(at(format!("label {lname} twice")));
                }
                labels.push((lname.to_string(), value));
                l = r;
            }
        }
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let fields: Vec<&str> = rest.split(' ').collect();
        match fields.len() {
            1 => {}
            2 => {
                return Err(at(
                    "a timestamp (the textfile collector refuses them)".into()
                ))
            }
            _ => return Err(at("text after the value".into())),
        }
        let value = parse_value(fields[0]).map_err(at)?;
        // The family: the name itself, or a histogram's or summary's base.
        let family = if types.contains_key(name) {
            name.to_string()
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|b| {
                    matches!(
                        types.get(*b).map(String::as_str),
                        Some("histogram" | "summary")
                    )
                })
                .map(str::to_string)
                .ok_or_else(|| at("no TYPE line before the sample".into()))?
        };
        enter(&family, &mut current).map_err(at)?;
        if types[&family] == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("a counter below 0 or NaN".into()));
        }
        let mut key: Vec<_> = labels.clone();
        key.sort();
        if !series.insert(format!("{name}{key:?}")) {
            return Err(at("the same series twice".into()));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok((samples, types))
}

/// The checker refuses what the format refuses.
#[test]
fn the_checker_refuses_what_is_not_the_format() {
    let good = "# HELP a_total x \\\\ y\\n\n# TYPE a_total counter\na_total{app=\"q\\\"\\\\\\n\",b=\"\"} 1.5e3\n# TYPE g gauge\ng -Inf\n";
    let (s, t) = check_textfile(good).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].labels[0].1, "q\"\\\n");
    assert_eq!(s[0].value, 1500.0);
    assert_eq!(t["g"], "gauge");
    for bad in [
        "a 1",                                                     // no line feed
        "a 1\n",                                                   // no TYPE
        "# TYPE a gauge\na 1 1700000000\n",                        // a timestamp
        "# TYPE a gauge\na{b=\"1\",b=\"2\"} 1\n",                  // label twice
        "# TYPE a gauge\na{b=\"1\"} 1\na{b=\"1\"} 2\n",            // series twice
        "# TYPE a gauge\na{1b=\"1\"} 1\n",                         // label name
        "# TYPE a gauge\na{__b=\"1\"} 1\n",                        // reserved
        "# TYPE 1a gauge\n1a 1\n",                                 // metric name
        "# TYPE a-b gauge\na-b 1\n",                               // metric name
        "# TYPE a gauge\na{b=\"\\x\"} 1\n",                        // escape
        "# TYPE a gauge\na{b=\"1} 1\n",                            // unterminated
        "# TYPE a gauge\na{b=1} 1\n",                              // not quoted
        "# TYPE a gauge\na inf\n",                                 // Rust's inf
        "# TYPE a gauge\na nan\n",                                 // Rust's nan
        "# TYPE a gauge\na 1.2.3\n",                               // value
        "# TYPE a gauge\na\n",                                     // no value
        "# TYPE a gauge\n# TYPE a counter\na 1\n",                 // TYPE twice
        "# TYPE a gauge\na 1\n# TYPE a gauge\n",                   // TYPE after
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{c=\"\"} 2\n", // two groups
        "# TYPE a wibble\na 1\n",                                  // type
        "# TYPE a counter\na -1\n",                                // counter < 0
        "# HELP a x\\y\n# TYPE a gauge\na 1\n",                    // HELP escape
        "# TYPE a gauge\n\na 1\n",                                 // blank line
        "# TYPE a gauge\na{b=\"1\";c=\"2\"} 1\n",                  // separator
    ] {
        assert!(check_textfile(bad).is_err(), "{bad:?} accepted");
    }
}

/// The Prometheus file `path` checked; its samples by name and labels,
/// every sample labelled with `app`.
struct Prom {
    samples: Vec<Sample>,
    types: HashMap<String, String>,
}

impl Prom {
    fn read(path: &Path, app: &str) -> Prom {
        let text = std::fs::read_to_string(path).unwrap();
        let (samples, types) =
            check_textfile(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
        for s in &samples {
            assert_eq!(s.labels[0], ("app".into(), app.into()), "{s:?}");
        }
        promtool(path);
        Prom { samples, types }
    }

    /// The value of `name` whose labels include every one of `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// `promtool check metrics` too, if it is installed.
fn promtool(path: &Path) {
    let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
    else {
        eprintln!("promtool not installed: only the hand-written checker ran");
        return;
    };
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

/// The number after `prefix` in the printed report.
fn printed(out: &str, prefix: &str) -> u64 {
    let at = out
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in:\n{out}"))
        + prefix.len();
    let digits: String = out[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{prefix:?} has no number in:\n{out}"))
}

fn num(v: &JsonValue, key: &str) -> f64 {
    v.get(key)
        .and_then(JsonValue::as_f64)
        .unwrap_or_else(|| panic!("{key} is not a number in {v:?}"))
}

/// The JSON lines: per-second lines, then the final report. The NIC apps'
/// lines have one `ports` entry per port with the device's counters.
fn read_json(path: &Path, app: &str, ports: usize) -> (Vec<JsonValue>, JsonValue) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<JsonValue> = text
        .lines()
        .map(|l| parse_json(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let fin = lines.pop().expect("a final report");
    assert_eq!(fin.get("type"), Some(&JsonValue::String("final".into())));
    for l in lines.iter().chain([&fin]) {
        assert_eq!(l.get("app"), Some(&JsonValue::String(app.into())));
        let Some(JsonValue::Array(p)) = l.get("ports") else {
            panic!("no ports array in {l:?}")
        };
        assert_eq!(p.len(), ports, "{l:?}");
        for p in p {
            assert_eq!(
                p.get("device").unwrap().keys(),
                [
                    "rx_packets",
                    "tx_packets",
                    "rx_bytes",
                    "tx_bytes",
                    "rx_missed",
                    "rx_no_desc",
                    "rx_no_buffer",
                    "rx_crc_errors"
                ]
            );
        }
    }
    for l in &lines {
        assert_eq!(l.get("type"), Some(&JsonValue::String("second".into())));
    }
    (lines, fin)
}

/// The device counters of JSON port `p` are the Prometheus file's.
fn same_device_counters(prom: &Prom, prefix: &str, p: &JsonValue) {
    let JsonValue::String(port) = p.get("port").unwrap() else {
        panic!("port is not a string")
    };
    let dev = p.get("device").unwrap();
    for k in dev.keys() {
        assert_eq!(
            prom.get(&format!("{prefix}_device_{k}_total"), &[("port", port)]),
            num(dev, k),
            "{k} of {port}"
        );
    }
    for k in ["rx_packets", "tx_packets", "rx_bytes", "tx_bytes"] {
        assert_eq!(
            prom.get(
                &format!("{prefix}_port_{k}_total"),
                &[("port", port), ("queue", "0")]
            ),
            num(p, k),
            "{k} of {port}"
        );
    }
}

/// Only the files given are in `dir`: no temporary file is left.
fn only_files(dir: &Path, want: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn pktgen_files_match_its_report() {
    let dir = tmpdir("mon-pktgen");
    let (json, prom) = (dir.join("s.jsonl"), dir.join("p.prom"));
    let dev = format!("emu:ixgbe,wire=pcap:{}", dir.join("out.pcap").display());
    let out = stdout_of(&run(
        PKTGEN,
        &[
            &dev,
            "--rate",
            "2000",
            "--count",
            "3000",
            "--stats",
            json.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    ));
    let (lines, fin) = read_json(&json, "pktgen", 1);
    // 1.5 s at 2000 frames/s: a line at one second.
    assert!(!lines.is_empty());
    assert!(num(&lines[0], "frames") > 0.0 && num(&lines[0], "frames") < 3000.0);
    let p = Prom::read(&prom, "pktgen");
    let sent = printed(&out, "sent:");
    let dev_frames = printed(&out, "device:");
    let dev_bytes = printed(&out[out.find("device:").unwrap()..], "frames,");
    assert_eq!(sent, 3000);
    assert_eq!(num(&fin, "frames"), 3000.0);
    assert_eq!(num(&fin, "device_tx_packets") as u64, dev_frames);
    assert_eq!(num(&fin, "device_tx_bytes") as u64, dev_bytes);
    assert_eq!(fin.get("ok"), Some(&JsonValue::Bool(true)));
    assert_eq!(p.get("pktgen_frames_total", &[]), 3000.0);
    assert_eq!(p.get("pktgen_bytes_total", &[]), 3000.0 * 60.0);
    assert_eq!(
        p.get("pktgen_device_tx_packets_total", &[]) as u64,
        dev_frames
    );
    assert_eq!(p.get("pktgen_device_tx_bytes_total", &[]) as u64, dev_bytes);
    assert_eq!(p.get("pktgen_finished", &[]), 1.0);
    assert_eq!(p.get("pktgen_ok", &[]), 1.0);
    assert_eq!(p.get("pktgen_pool_capacity", &[("pool", "tx")]), 2048.0);
    assert!(p.get("pktgen_rss_bytes", &[]) > 0.0);
    assert_eq!(p.types["pktgen_frames_total"], "counter");
    assert_eq!(p.types["pktgen_rss_bytes"], "gauge");
    assert!(!p.has("pktgen_ios_total"), "pktgen does no I/O");
    let JsonValue::Array(ports) = fin.get("ports").unwrap() else {
        panic!()
    };
    same_device_counters(&p, "pktgen", &ports[0]);
    only_files(&dir, &["s.jsonl", "p.prom", "out.pcap"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fwd_and_pcap_files_match_their_reports() {
    let dir = tmpdir("mon-fwd");
    let (json, prom) = (dir.join("f.jsonl"), dir.join("f.prom"));
    let a = "emu:ixgbe,wire=loop,mac=02:00:00:00:00:01";
    let b = "emu:ixgbe,wire=loop,mac=02:00:00:00:00:02";
    let out = stdout_of(&run(
        FWD,
        &[
            a,
            b,
            "--inject",
            "64",
            "--time",
            "1.5",
            "--quiet",
            "--stats",
            json.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    ));
    let (lines, fin) = read_json(&json, "fwd", 2);
    assert!(!lines.is_empty());
    let p = Prom::read(&prom, "fwd");
    let forwarded = printed(&out, "forwarded:");
    assert!(forwarded > 64, "{out}");
    assert_eq!(num(&fin, "frames") as u64, forwarded);
    assert_eq!(p.get("fwd_frames_total", &[]) as u64, forwarded);
    assert_eq!(p.get("fwd_bytes_total", &[]), num(&fin, "bytes"));
    let JsonValue::Array(ports) = fin.get("ports").unwrap() else {
        panic!()
    };
    for port in ports {
        same_device_counters(&p, "fwd", port);
    }
    // Each port's device sent what fwd sent on it (and the injected ones).
    let sent_b = p.get("fwd_device_tx_packets_total", &[("port", b)]);
    assert_eq!(
        sent_b,
        p.get("fwd_port_tx_packets_total", &[("port", b)]) + 64.0
    );
    assert_eq!(
        p.get("fwd_drops_total", &[]),
        ["rx_missed", "rx_no_desc"]
            .iter()
            .map(|k| {
                p.get(&format!("fwd_device_{k}_total"), &[("port", a)])
                    + p.get(&format!("fwd_device_{k}_total"), &[("port", b)])
            })
            .sum::<f64>()
    );

    // pcap, receiving from pktgen in another process over a unix: wire
    // (flow control on: nothing is dropped however the two are scheduled).
    let port = format!("emu:igb,wire=unix:{},pause=on", dir.join("w").display());
    let (json, prom) = (dir.join("c.jsonl"), dir.join("c.prom"));
    let log = dir.join("pcap.log");
    let mut pcap = Command::new(PCAP)
        .args([
            &port,
            dir.join("cap.pcap").to_str().unwrap(),
            "--count",
            "300",
            "--time",
            "30",
            "--quiet",
            "--stats",
            json.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Its port takes frames once it has printed its banner.
    let t = Instant::now();
    let ready = || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("pcap: "));
    while !ready() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stdout_of(&run(PKTGEN, &[&port, "--count", "300", "--rate", "200"]));
    let status = pcap.wait().unwrap();
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{out}");
    let (_, fin) = read_json(&json, "pcap", 1);
    let p = Prom::read(&prom, "pcap");
    let captured = printed(&out, "captured:");
    let bytes = printed(&out, "frames,");
    assert_eq!(captured, 300, "{out}");
    assert_eq!(num(&fin, "frames") as u64, captured);
    assert_eq!(p.get("pcap_frames_total", &[]) as u64, captured);
    assert_eq!(p.get("pcap_bytes_total", &[]) as u64, bytes);
    let dev_rx = p.get("pcap_device_rx_packets_total", &[]);
    assert_eq!(dev_rx as u64, captured, "the port counted what pcap took");
    assert_eq!(p.get("pcap_drops_total", &[]), 0.0);
    let JsonValue::Array(ports) = fin.get("ports").unwrap() else {
        panic!()
    };
    same_device_counters(&p, "pcap", &ports[0]);
    only_files(
        &dir,
        &[
            "f.jsonl", "f.prom", "pcap.log", "c.jsonl", "c.prom", "cap.pcap",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn blkfwd_and_blkrecv_files_match_their_reports() {
    let dir = tmpdir("mon-blk");
    let stream = dir.join("stream.pcap");
    let (json, prom) = (dir.join("b.jsonl"), dir.join("b.prom"));
    let out = stdout_of(&run(
        BLKFWD,
        &[
            "--nvme",
            "emu:nvme,size=1M",
            "--nic",
            &format!("emu:igb,wire=pcap:{}", stream.display()),
            "--recv",
            "none",
            "--quiet",
            "--stats",
            json.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    ));
    let (_, fin) = read_json(&json, "blkfwd", 1);
    let p = Prom::read(&prom, "blkfwd");
    let bytes = printed(&out, "blkfwd: bytes=");
    let frames = printed(&out, " frames=");
    let ios = printed(&out, " ios=");
    assert_eq!(bytes, 1 << 20);
    // The sending port: the app's frames and the device's own counters
    // (a pcap: wire is no network, so no ARP frame went out with them).
    let JsonValue::Array(ports) = fin.get("ports").unwrap() else {
        panic!()
    };
    same_device_counters(&p, "blkfwd", &ports[0]);
    let dev = ports[0].get("device").unwrap();
    assert_eq!(num(&ports[0], "tx_packets") as u64, frames);
    assert_eq!(num(dev, "tx_packets") as u64, frames);
    assert_eq!(p.get("blkfwd_device_tx_packets_total", &[]) as u64, frames);
    // Device octets count the FCS, the app's bytes do not.
    assert_eq!(
        num(dev, "tx_bytes") as u64,
        num(&ports[0], "tx_bytes") as u64 + 4 * frames
    );
    assert_eq!(
        num(&ports[0], "tx_bytes") as u64,
        bytes + frames * apps::stream::FRAME_HEADERS as u64
    );
    assert_eq!(num(&fin, "bytes") as u64, bytes);
    assert_eq!(p.get("blkfwd_bytes_total", &[]) as u64, bytes);
    assert_eq!(p.get("blkfwd_frames_total", &[]) as u64, frames);
    assert_eq!(p.get("blkfwd_ios_total", &[]) as u64, ios);
    assert_eq!(p.get("blkfwd_reads_total", &[]) as u64, ios);
    assert_eq!(p.get("blkfwd_errors_total", &[]), 0.0);
    assert_eq!(p.get("blkfwd_ok", &[]), 1.0);
    assert!(!p.has("blkfwd_drops_total"));
    assert_eq!(p.types["blkfwd_pool_free"], "gauge");
    assert_eq!(
        p.get("blkfwd_pool_free", &[("pool", "read-0")]),
        p.get("blkfwd_pool_capacity", &[("pool", "read-0")])
    );

    // blkrecv from the capture (no port: no device counters), then on a
    // NIC port fed by a second blkfwd over a unix: wire.
    let port = format!("emu:igb,wire=unix:{},pause=on", dir.join("w").display());
    for (source, ports) in [(format!("pcap:{}", stream.display()), 0), (port.clone(), 1)] {
        let (json, prom) = (dir.join("r.jsonl"), dir.join("r.prom"));
        let log = dir.join("recv.log");
        let mut recv = Command::new(BLKRECV)
            .args([
                &source,
                "--laps",
                "1",
                "--quiet",
                "--stats",
                json.to_str().unwrap(),
                "--prometheus",
                prom.to_str().unwrap(),
            ])
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        if ports == 1 {
            let t = Instant::now();
            let ready = || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("blkrecv: "));
            while !ready() && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            stdout_of(&run(
                BLKFWD,
                &[
                    "--nvme",
                    "emu:nvme,size=1M",
                    "--nic",
                    &port,
                    "--recv",
                    "none",
                    "--quiet",
                ],
            ));
        }
        let status = recv.wait().unwrap();
        let stdout = std::fs::read_to_string(&log).unwrap();
        assert!(status.success(), "{stdout}");
        let (_, fin) = read_json(&json, "blkrecv", ports);
        let p = Prom::read(&prom, "blkrecv");
        assert_eq!(fin.get("ok"), Some(&JsonValue::Bool(true)), "{stdout}");
        assert_eq!(p.get("blkrecv_ok", &[]), 1.0);
        let frames = printed(&stdout, "s; ");
        assert_eq!(frames, printed(&out, " frames="), "{stdout}");
        assert_eq!(num(&fin, "frames") as u64, frames, "{stdout}");
        assert_eq!(num(&fin, "verified") as u64, bytes, "{stdout}");
        assert_eq!(p.get("blkrecv_frames_total", &[]) as u64, frames);
        assert_eq!(p.get("blkrecv_bytes_total", &[]) as u64, bytes);
        if ports == 1 {
            let JsonValue::Array(pp) = fin.get("ports").unwrap() else {
                panic!()
            };
            same_device_counters(&p, "blkrecv", &pp[0]);
            assert_eq!(p.get("blkrecv_device_rx_packets_total", &[]) as u64, frames);
            assert_eq!(p.get("blkrecv_drops_total", &[]), 0.0);
        } else {
            assert!(!p.has("blkrecv_device_rx_packets_total"));
        }
    }
    only_files(
        &dir,
        &[
            "stream.pcap",
            "b.jsonl",
            "b.prom",
            "r.jsonl",
            "r.prom",
            "recv.log",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nvme_perf_prometheus_file_matches_its_report() {
    let dir = tmpdir("mon-perf");
    let prom = dir.join("n.prom");
    let out = stdout_of(&run(
        PERF,
        &[
            "emu:nvme,size=8M",
            "--count",
            "2000",
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    ));
    let p = Prom::read(&prom, "nvme-perf");
    let ios = printed(&out, "I/Os:");
    assert_eq!(ios, 2000);
    assert_eq!(p.get("nvme_perf_ios_total", &[]) as u64, ios);
    assert_eq!(p.get("nvme_perf_reads_total", &[]) as u64, ios);
    assert_eq!(p.get("nvme_perf_bytes_total", &[]), 2000.0 * 4096.0);
    assert_eq!(p.get("nvme_perf_finished", &[]), 1.0);
    assert!(!p.has("nvme_perf_frames_total"));
    only_files(&dir, &["n.prom"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_prometheus_path_is_one_line() {
    let bad = "/nonexistent-dir/x.prom";
    let cases: [(&str, Vec<&str>); 6] = [
        (PKTGEN, vec!["emu:igb,wire=loop", "--count", "1"]),
        (
            FWD,
            vec![
                "emu:igb,wire=pair:mon-a",
                "emu:igb,wire=pair:mon-b",
                "--count",
                "1",
            ],
        ),
        (PCAP, vec!["emu:igb,wire=loop", "/dev/null", "--count", "1"]),
        (BLKRECV, vec!["emu:igb,wire=loop", "--count", "1"]),
        (BLKFWD, vec!["--nvme", "emu:nvme,size=1M", "--quiet"]),
        (PERF, vec!["emu:nvme,size=8M", "--count", "10"]),
    ];
    for (app, mut args) in cases {
        args.extend(["--prometheus", bad]);
        let out = run(app, &args);
        assert_one_line_error(&out, &["--prometheus /nonexistent-dir/x.prom", "writable"]);
    }
}
