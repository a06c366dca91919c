//! `--trace FILE`, `--trace-events N` and `--step` on every app, run as a
//! user would against emulated devices: the file is read back with the
//! JSON-lines reader and must hold the devices the run opened and the
//! register events they saw; `--step` must draw rings and refuse what it
//! cannot step.
#![forbid(unsafe_code)]

mod common;

use apps::trace::{jsonl, TraceFile};
use common::{assert_one_line_error, run, tmpdir};
use drivers::trace::{DeviceKind, Kind};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const IDENTIFY: &str = env!("CARGO_BIN_EXE_nvme-identify");
const PERF: &str = env!("CARGO_BIN_EXE_nvme-perf");
const READ: &str = env!("CARGO_BIN_EXE_nvme-read");
const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
const FWD: &str = env!("CARGO_BIN_EXE_fwd");
const PCAP: &str = env!("CARGO_BIN_EXE_pcap");
const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");

/// The run succeeded, and its stderr's last line is the trace's summary
/// for `file`; the trace read back.
fn traced(out: &Output, file: &Path) -> TraceFile {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let t = jsonl::read(std::io::BufReader::new(
        std::fs::File::open(file).expect("the trace file exists"),
    ))
    .expect("the JSON-lines reader takes the file");
    let want = format!(
        "trace: {} events written to {}",
        t.events.len(),
        file.display()
    );
    assert_eq!(stderr.lines().last(), Some(want.as_str()), "{stderr}");
    t
}

/// The devices of `t`: (name, kind name, emulated).
fn devices(t: &TraceFile) -> Vec<(String, &'static str, bool)> {
    t.devices
        .iter()
        .map(|d| (d.name.clone(), d.kind.name(), d.emulated))
        .collect()
}

/// Names of the registers device `dev` wrote, in order, repeats collapsed.
fn writes(t: &TraceFile, dev: u16) -> Vec<String> {
    let mut names: Vec<String> = t
        .events
        .iter()
        .filter(|e| e.dev == dev && e.kind == Kind::RegWrite)
        .map(|e| {
            t.reg_name(dev, e.addr)
                .unwrap_or_else(|| format!("{:#x}", e.addr))
        })
        .collect();
    names.dedup();
    names
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn nvme_identify_traces_the_controller_bring_up() {
    let dir = tmpdir("trace-identify");
    let file = dir.join("t.jsonl");
    let dev = "emu:nvme,size=1M,mode=inline";
    let t = traced(&run(IDENTIFY, &[dev, "--trace", s(&file)]), &file);
    assert_eq!(devices(&t), vec![(dev.to_string(), "nvme", true)]);
    assert_eq!(t.capacity, drivers::trace::DEFAULT_CAPACITY);
    assert_eq!(t.dropped, vec![0]);
    assert!(t.events.windows(2).all(|w| w[0].seq < w[1].seq));
    let w = writes(&t, 0);
    // The admin queues are set up and the controller enabled (NVMe 1.4
    // §7.6.1), then Identify is submitted: an SQ0 tail doorbell.
    let at = |n: &str| {
        w.iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} in {w:?}"))
    };
    assert!(
        at("AQA") < at("CC") && at("ASQ") < at("CC") && at("ACQ") < at("CC"),
        "{w:?}"
    );
    assert!(at("CC") < at("SQ0 tail doorbell"), "{w:?}");
    assert!(w.iter().any(|x| x == "CQ0 head doorbell"), "{w:?}");
    assert!(t
        .events
        .iter()
        .any(|e| e.kind == Kind::RegRead && t.reg_name(0, e.addr).as_deref() == Some("CSTS")));
}

#[test]
fn nvme_read_and_nvme_perf_trace_their_io_queues() {
    let dir = tmpdir("trace-nvme-io");
    let file = dir.join("read.jsonl");
    let out = run(
        READ,
        &[
            "emu:nvme,size=1M,mode=inline",
            "--length",
            "8k",
            "--out",
            s(&dir.join("data")),
            "--trace",
            s(&file),
        ],
    );
    let t = traced(&out, &file);
    assert_eq!(devices(&t).len(), 1);
    assert!(
        writes(&t, 0).iter().any(|x| x == "SQ1 tail doorbell"),
        "{:?}",
        writes(&t, 0)
    );

    let file = dir.join("perf.jsonl");
    let out = run(
        PERF,
        &["emu:nvme,size=1M", "--count", "64", "--trace", s(&file)],
    );
    let t = traced(&out, &file);
    assert_eq!(devices(&t), vec![("emu:nvme,size=1M".into(), "nvme", true)]);
    let doorbells = t
        .events
        .iter()
        .filter(|e| {
            e.kind == Kind::RegWrite
                && t.reg_name(0, e.addr).as_deref() == Some("SQ1 tail doorbell")
        })
        .count();
    assert!(doorbells >= 1, "{:?}", writes(&t, 0));
}

#[test]
fn pktgen_pcap_fwd_blkfwd_and_blkrecv_trace_their_ports() {
    let dir = tmpdir("trace-nic");
    // pktgen sends 4 frames into a capture...
    let frames = dir.join("frames.pcap");
    let file = dir.join("pktgen.jsonl");
    let port = format!("emu:igb,wire=pcap:{}", frames.display());
    let t = traced(
        &run(
            PKTGEN,
            &[&port, "--count", "4", "--batch", "1", "--trace", s(&file)],
        ),
        &file,
    );
    assert_eq!(devices(&t), vec![(port.clone(), "igb", true)]);
    assert!(
        writes(&t, 0).iter().any(|x| x == "TDT[0]"),
        "{:?}",
        writes(&t, 0)
    );

    // ... which pcap receives from a port that plays it in.
    let file = dir.join("pcap.jsonl");
    let port = format!("emu:ixgbe,wire=pcap-in:{}", frames.display());
    let t = traced(
        &run(
            PCAP,
            &[
                &port,
                s(&dir.join("cap.pcap")),
                "--count",
                "4",
                "--time",
                "20",
                "--trace",
                s(&file),
            ],
        ),
        &file,
    );
    assert_eq!(devices(&t), vec![(port, "ixgbe", true)]);
    assert!(
        writes(&t, 0).iter().any(|x| x == "RDT[0]"),
        "{:?}",
        writes(&t, 0)
    );

    // fwd: two ports, two devices in one timeline.
    let file = dir.join("fwd.jsonl");
    let (a, b) = ("emu:igb,wire=pair:tr-fwd-a", "emu:igb,wire=pair:tr-fwd-b");
    let t = traced(
        &run(
            FWD,
            &[a, b, "--time", "0.3", "--quiet", "--trace", s(&file)],
        ),
        &file,
    );
    assert_eq!(
        devices(&t),
        vec![(a.into(), "igb", true), (b.into(), "igb", true)]
    );
    assert!(t.events.iter().any(|e| e.dev == 0) && t.events.iter().any(|e| e.dev == 1));

    // blkfwd: the drive and the port; its stream goes to a capture ...
    let stream = dir.join("blk.pcap");
    let file = dir.join("blkfwd.jsonl");
    let nic = format!("emu:igb,wire=pcap:{}", stream.display());
    let out = run(
        BLKFWD,
        &[
            "--quiet",
            "--nvme",
            "emu:nvme,size=256k",
            "--nic",
            &nic,
            "--recv",
            "none",
            "--trace",
            s(&file),
        ],
    );
    let t = traced(&out, &file);
    let kinds: Vec<&str> = devices(&t).iter().map(|d| d.1).collect();
    assert_eq!(kinds, vec!["nvme", "igb"]);
    assert!(writes(&t, 0).iter().any(|x| x == "SQ1 tail doorbell"));
    assert!(writes(&t, 1).iter().any(|x| x == "TDT[0]"));

    // ... that blkrecv checks from a port that plays it in.
    let file = dir.join("blkrecv.jsonl");
    let port = format!("emu:igb,wire=pcap-in:{}", stream.display());
    let out = run(
        BLKRECV,
        &[&port, "--quiet", "--wait", "20", "--trace", s(&file)],
    );
    let t = traced(&out, &file);
    assert_eq!(devices(&t), vec![(port, "igb", true)]);
    assert!(writes(&t, 0).iter().any(|x| x == "RDT[0]"));
}

#[test]
fn a_small_buffer_ends_in_one_truncated_event_and_a_dropped_count() {
    let dir = tmpdir("trace-small");
    let file = dir.join("t.jsonl");
    let out = run(
        IDENTIFY,
        &[
            "emu:nvme,size=1M",
            "--trace",
            s(&file),
            "--trace-events",
            "10",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let t = jsonl::read(std::io::BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    assert_eq!(t.capacity, 10);
    assert_eq!(t.events.len(), 11);
    assert!(t.events[..10].iter().all(|e| e.kind != Kind::Truncated));
    assert_eq!(t.events[10].kind, Kind::Truncated);
    assert_eq!(t.events[10].value, 10);
    let dropped = t.dropped[0];
    assert!(dropped > 0);
    let want = format!(
        "trace: 11 events written to {} ({dropped} dropped after the 10-event buffer filled)",
        file.display()
    );
    assert_eq!(stderr.lines().last(), Some(want.as_str()), "{stderr}");
}

#[test]
fn the_trace_is_written_on_an_error_exit_too() {
    let dir = tmpdir("trace-error");
    let file = dir.join("t.jsonl");
    // Namespace 2 does not exist: the controller came up, then the read failed.
    let out = run(
        READ,
        &["emu:nvme,size=1M", "--nsid", "2", "--trace", s(&file)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("error:")), "{stderr}");
    let t = jsonl::read(std::io::BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    assert!(matches!(t.devices[0].kind, DeviceKind::Nvme { .. }));
    assert!(writes(&t, 0).iter().any(|x| x == "CC"));
    let want = format!(
        "trace: {} events written to {}",
        t.events.len(),
        file.display()
    );
    assert_eq!(lines.last(), Some(&want.as_str()), "{stderr}");
}

#[test]
fn an_unknown_extension_is_one_error_line_and_no_device_is_opened() {
    let dir = tmpdir("trace-ext");
    let file = dir.join("t.txt");
    let out = run(IDENTIFY, &["emu:nvme,size=1M", "--trace", s(&file)]);
    assert_one_line_error(&out, &["t.txt: unknown format", ".jsonl", ".pcapng"]);
    assert!(out.stdout.is_empty(), "nothing was opened");
    assert!(!file.exists());
}

/// Run `bin` with `args`, `stdin` on its standard input.
fn run_with_input(bin: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the app binary runs");
    let mut input = child.stdin.take().unwrap();
    // The app reads a line per step; the writes may outlast its reads.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn step_draws_the_nvme_queue_pair_after_each_doorbell() {
    let out = run_with_input(
        IDENTIFY,
        &["emu:nvme,size=1M,mode=inline", "--step"],
        &b"\n".repeat(100),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let steps: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("step: SQ0"))
        .collect();
    assert_eq!(steps[0], "step: SQ0 tail doorbell <- 1", "{stderr}");
    // After the first doorbell the inline controller has fetched the
    // command and posted its completion with phase tag 1 in slot 0.
    let first = stderr.split("step: CQ0 head doorbell").next().unwrap();
    // The events are decoded as dmatrace show decodes them.
    assert!(
        first.contains("driver/0           reg_write SQ0 tail doorbell (0x1000) = 0x1\n"),
        "{first}"
    );
    assert!(
        first.contains(
            "device/controller  SQ0[0] fetch @0x100000000: OPC=06h Identify CID=0 NSID=0 \
             PRP1=0x100002000 PRP2=0x0 CNS=1\n"
        ),
        "{first}"
    );
    assert!(
        first.contains("SQ0: 32 entries")
            && first.contains("head 1 (next the device fetches), tail 1"),
        "{first}"
    );
    assert!(first.contains("CQ0: 32 entries"), "{first}");
    assert!(
        first.contains("head 0 (driver), tail 1 (next the device writes), phase 1"),
        "{first}"
    );
    assert!(
        first.contains("        0 10000000000000000000000000000000\n          ht\n"),
        "{first}"
    );
    assert!(
        first.contains("step: Enter for the next doorbell"),
        "{first}"
    );
    // Identify controller, namespace list, namespace: each its doorbells.
    assert!(steps.len() >= 3, "{stderr}");
    assert!(stderr.contains("step: CQ0 head doorbell <- 1"), "{stderr}");
}

#[test]
fn step_on_end_of_input_runs_on_and_draws_nic_rings() {
    let dir = tmpdir("trace-step-nic");
    let port = format!(
        "emu:igb,wire=pcap:{},mode=inline",
        dir.join("o.pcap").display()
    );
    let file = dir.join("t.jsonl");
    let out = run_with_input(
        PKTGEN,
        &[
            &port,
            "--count",
            "2",
            "--batch",
            "1",
            "--step",
            "--trace",
            s(&file),
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // One prompt: at the first step input ended, so the run went on.
    assert_eq!(stderr.matches("step: Enter").count(), 1, "{stderr}");
    assert!(stderr.contains("step: TDT[0] <- "), "{stderr}");
    assert!(stderr.contains("TX0: 512 descriptors @0x"), "{stderr}");
    assert!(stderr.contains("RX0: 512 descriptors @0x"), "{stderr}");
    assert!(stderr.contains("    64-447 all 0"), "{stderr}");
    // The events shown by the steps are in the file as well.
    let t = jsonl::read(std::io::BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    assert!(t.events.windows(2).all(|w| w[0].seq < w[1].seq));
    let shown = stderr.lines().filter(|l| l.starts_with("  #")).count();
    assert!(
        shown > 0 && shown <= t.events.len(),
        "{shown} {}",
        t.events.len()
    );
    assert_eq!(t.events[0].seq, 0);
}

#[test]
fn step_refuses_threaded_and_real_devices_in_one_line() {
    for (bin, args) in [
        (IDENTIFY, vec!["emu:nvme,size=1M", "--step"]),
        (IDENTIFY, vec!["emu:nvme,size=1M,mode=threaded", "--step"]),
        (IDENTIFY, vec!["0000:7f:1f.7", "--step"]),
        (PKTGEN, vec!["emu:igb,wire=loop", "--step", "--count", "1"]),
    ] {
        let out = run(bin, &args);
        assert_one_line_error(&out, &["--step needs an emulated device in mode=inline"]);
    }
}

#[test]
fn a_run_stopped_by_sigint_or_sigterm_writes_its_trace() {
    let dir = tmpdir("trace-signal");
    for signal in ["INT", "TERM"] {
        let file = dir.join(format!("{signal}.jsonl"));
        let mut child = Command::new(PERF)
            .args(["emu:nvme,size=1M", "--time", "60", "--trace", s(&file)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nvme-perf runs");
        // The first per-second line (on stderr): the controller is up and
        // I/O runs.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut stderr = String::new();
        while !stderr.contains("IOPS") {
            let n = std::io::BufRead::read_line(&mut err, &mut stderr).unwrap();
            assert!(n > 0, "{signal}: nvme-perf ended early: {stderr}");
        }
        // kill(1) sends it: libc::kill is an unsafe fn, and this file forbids unsafe.
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{signal}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("stopped by SIG{signal}")),
            "{stdout}"
        );
        let t = jsonl::read(std::io::BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
        assert!(writes(&t, 0).iter().any(|x| x == "SQ1 tail doorbell"));
        let want = format!(
            "trace: {} events written to {}",
            t.events.len(),
            file.display()
        );
        assert!(
            stderr.lines().any(|l| l.starts_with(&want)),
            "{signal}: {stderr}"
        );
    }
}
