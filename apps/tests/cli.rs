//! The apps as a new user meets them: bad input gets one line naming the
//! cause and the fix, a non-zero exit code, and never a panic.
#![forbid(unsafe_code)]

mod common;
use common::{assert_one_line_error, run};

const PERF: &str = env!("CARGO_BIN_EXE_nvme-perf");
const IDENTIFY: &str = env!("CARGO_BIN_EXE_nvme-identify");

#[test]
fn malformed_pci_address() {
    for app in [PERF, IDENTIFY] {
        let out = run(app, &["0000:03:00"]);
        assert_one_line_error(&out, &["0000:03:00", "0000:03:00.0", "emu:nvme"]);
        let out = run(app, &["03:zz.0"]);
        assert_one_line_error(&out, &["03:zz.0"]);
    }
}

#[test]
fn pci_address_that_does_not_exist() {
    let out = run(IDENTIFY, &["0000:7f:1f.7"]);
    assert_one_line_error(&out, &["0000:7f:1f.7", "devbind.sh status"]);
}

/// A PCI device that exists but is driven by a kernel driver (on a CI
/// machine: the virtio devices).
#[test]
fn device_not_bound_to_vfio_pci() {
    let Some((addr, driver)) = std::fs::read_dir("/sys/bus/pci/devices")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|d| {
            let drv = std::fs::read_link(d.path().join("driver")).ok()?;
            let name = drv.file_name()?.to_string_lossy().to_string();
            (name != "vfio-pci").then(|| (d.file_name().to_string_lossy().to_string(), name))
        })
    else {
        eprintln!("skipped: this machine has no PCI device bound to a kernel driver");
        return;
    };
    let out = run(IDENTIFY, &[&addr]);
    assert_one_line_error(&out, &[&addr, &driver, "devbind.sh bind"]);
}

#[test]
fn unknown_emulated_model_and_option() {
    let out = run(PERF, &["emu:floppy"]);
    assert_one_line_error(&out, &["floppy", "emu:nvme"]);
    let out = run(PERF, &["emu:nvme,speed=fast"]);
    assert_one_line_error(&out, &["speed", "size="]);
    let out = run(IDENTIFY, &["emu:nvme,size=12x"]);
    assert_one_line_error(&out, &["12x", "1G"]);
}

#[test]
fn command_lines_that_make_no_sense() {
    // Block size not a multiple of the LBA size.
    let out = run(
        PERF,
        &["emu:nvme,size=64M,lba=4096", "--bs", "512", "--time", "0.1"],
    );
    assert_one_line_error(&out, &["--bs", "4096"]);
    // Block size beyond MDTS (128 KiB by default).
    let out = run(PERF, &["emu:nvme,size=64M", "--bs", "1M", "--time", "0.1"]);
    assert_one_line_error(&out, &["--bs", "128 KiB"]);
    // A namespace that does not exist.
    let out = run(PERF, &["emu:nvme,size=64M", "--nsid", "9", "--time", "0.1"]);
    assert_one_line_error(&out, &["9"]);
    // A range past the namespace.
    let out = run(
        PERF,
        &["emu:nvme,size=64M", "--range", "1G", "--time", "0.1"],
    );
    assert_one_line_error(&out, &["--range"]);
    // clap's own errors are non-zero too.
    let out = run(PERF, &["emu:nvme", "--qd", "0"]);
    assert!(!out.status.success());
    let out = run(PERF, &["emu:nvme", "--bs", "lots"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("4k"));
}

#[test]
fn help_explains_device_strings() {
    for app in [PERF, IDENTIFY] {
        let out = run(app, &["--help"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("emu:nvme"), "{text}");
        assert!(text.contains("0000:03:00.0"), "{text}");
    }
}

#[test]
fn perf_verify_on_an_emulated_drive_passes_and_reports() {
    let out = run(
        PERF,
        &[
            "emu:nvme,size=16M,mode=inline",
            "--verify",
            "--workload",
            "mixed",
            "--count",
            "20000",
            "--qd",
            "16",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for field in [
        "IOPS:",
        "bandwidth:",
        "p99.9",
        "driver CPU:",
        "0 mismatched",
    ] {
        assert!(stdout.contains(field), "'{field}' missing:\n{stdout}");
    }
    assert!(stdout.contains("I/Os:        20000 "), "{stdout}");
}

#[test]
fn identify_describes_an_emulated_controller() {
    let out = run(
        IDENTIFY,
        &["emu:nvme,size=64M,lba=4096,namespaces=2,mdts=6"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "Max Data Transfer:     256 KiB (MDTS 6)",
        "Namespace 1",
        "Namespace 2",
        "16384 blocks of 4096 B (64 MiB)",
    ] {
        assert!(stdout.contains(want), "'{want}' missing:\n{stdout}");
    }
}

/// Every seconds option of every app goes through one parser: `nan`, `inf`,
/// negative, absurd and non-numeric values are one-line errors (clap's
/// exit code 2), never the panic of `Duration::from_secs_f64`.
#[test]
fn seconds_options_refuse_what_is_not_a_time() {
    const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
    const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");
    const FWD: &str = env!("CARGO_BIN_EXE_fwd");
    const PCAP: &str = env!("CARGO_BIN_EXE_pcap");
    const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
    // (app, the arguments before the option, the option)
    let options: [(&str, &[&str], &str); 10] = [
        (PERF, &["emu:nvme"], "--time"),
        (BLKFWD, &["--loop"], "--time"),
        (BLKFWD, &[], "--tx-timeout"),
        (BLKRECV, &["pcap:x.pcap"], "--idle-exit"),
        (BLKRECV, &["pcap:x.pcap"], "--wait"),
        (FWD, &["emu:igb", "emu:igb"], "--time"),
        (FWD, &["emu:igb", "emu:igb"], "--idle-exit"),
        (PCAP, &["emu:igb", "x.pcap"], "--time"),
        (PCAP, &["emu:igb", "x.pcap"], "--idle-exit"),
        (PKTGEN, &["emu:igb"], "--time"),
    ];
    let mut tried = 0;
    for (app, before, option) in options {
        for bad in ["nan", "inf", "-1", "1e300", "ten"] {
            // --option=VALUE: clap would take a bare "-1" for a flag.
            let arg = format!("{option}={bad}");
            let mut args = before.to_vec();
            args.push(&arg);
            let out = run(app, &args);
            assert_eq!(out.status.code(), Some(2), "{app} {args:?}");
            // clap's shape: the error line, then only its pointer to --help.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{app} {args:?}: {stderr}");
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), 2, "{app} {args:?}: {stderr}");
            assert!(lines[0].starts_with("error:"), "{app} {args:?}: {stderr}");
            for needle in [bad, option, "seconds"] {
                assert!(lines[0].contains(needle), "'{needle}' missing: {stderr}");
            }
            assert!(lines[1].contains("--help"), "{app} {args:?}: {stderr}");
            tried += 1;
        }
    }
    assert_eq!(tried, 50);
}
