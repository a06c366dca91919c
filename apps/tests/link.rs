//! The link as the NIC apps handle it, on emulated ports whose cable is
//! pulled from the device string (`link-down=AT[:FOR]`): each port's link
//! is waited for at start (`--link-timeout`) and named with speed and
//! duplex; blkfwd pauses while the link is down mid-stream and resumes with
//! every byte delivered, or, down for good, ends after `--tx-timeout` with
//! every unsent byte listed.
#![forbid(unsafe_code)]

mod common;
use common::{assert_clap_error, assert_one_line_error, run};

use std::process::Output;
use std::time::{Duration, Instant};

const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
const PCAP: &str = env!("CARGO_BIN_EXE_pcap");

/// 16 MiB at 80 Mbit/s: about 1.7 s of stream, long enough for a cable
/// pulled 0.5 s after the ports open to land mid-stream.
const SIZE: u64 = 16 << 20;
const DRIVE: &str = "emu:nvme,size=16M";
const RATE: &str = "80";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The number after `prefix` in the line that contains it.
fn number_after(s: &str, prefix: &str) -> u64 {
    let at = s
        .find(prefix)
        .unwrap_or_else(|| panic!("'{prefix}' missing from:\n{s}"));
    s[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after '{prefix}' in:\n{s}"))
}

/// Seconds in "... after 0.5 s, ..." on the line containing `needle`.
fn seconds_on_line(s: &str, needle: &str, before: &str) -> f64 {
    let line = s
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with '{needle}' in:\n{s}"));
    let at = line.find(before).expect("the time's prefix") + before.len();
    line[at..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in: {line}"))
}

fn blkfwd(nic: &str, extra: &[&str]) -> (Output, Duration) {
    let mut args = vec!["--nvme", DRIVE, "--nic", nic, "--rate", RATE, "--quiet"];
    args.extend_from_slice(extra);
    let t0 = Instant::now();
    let out = run(BLKFWD, &args);
    (out, t0.elapsed())
}

#[test]
fn link_down_half_a_second_mid_stream_pauses_and_resumes_with_every_byte_delivered() {
    let nic = "emu:ixgbe,wire=pair:link-flap,pause=on,link-down=0.5:0.5";
    let (out, _) = blkfwd(nic, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    // The events, in order, named with the port.
    let down = stdout
        .find(&format!("port {nic}: link down at "))
        .unwrap_or_else(|| panic!("no link-down line:\n{stdout}"));
    assert!(stdout[down..].contains(", sending paused\n"), "{stdout}");
    let up = stdout
        .find(&format!("port {nic}: link up again after "))
        .unwrap_or_else(|| panic!("no link-up line:\n{stdout}"));
    assert!(up > down, "{stdout}");
    assert!(stdout[up..].contains(" s, resuming\n"), "{stdout}");
    // Seen from the worker's housekeeping: the 0.5 s the cable was out,
    // give or take a loaded machine's scheduling.
    let after = seconds_on_line(&stdout, "link up again after", "after ");
    assert!(
        (0.3..=3.0).contains(&after),
        "down for {after} s:\n{stdout}"
    );
    // Every byte of the range arrived once, with the disk's content.
    assert!(
        stdout.contains(&format!("verified: {SIZE} bytes, 0 mismatched")),
        "{stdout}"
    );
    assert!(stdout.contains("missing: 0 bytes"), "{stdout}");
    assert!(stdout.contains("duplicate: 0 bytes"), "{stdout}");
    assert!(stdout.contains("complete: yes"), "{stdout}");
    assert!(
        stdout.contains("errors:      0 range(s) not sent"),
        "{stdout}"
    );
    assert_eq!(number_after(&stdout, "blkfwd: bytes="), SIZE, "{stdout}");
}

#[test]
fn link_down_for_good_fails_after_the_tx_timeout_with_every_unsent_byte_listed() {
    let nic = "emu:ixgbe,wire=pair:link-gone,pause=on,link-down=0.5";
    let (out, took) = blkfwd(nic, &["--tx-timeout", "1"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        took < Duration::from_secs(20),
        "took {took:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("port {nic}: link down at ")),
        "{stdout}"
    );
    assert!(!stdout.contains("link up again"), "{stdout}");
    // One line on stderr: not sent + sent = the range, and the cause.
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(line.starts_with("blkfwd: "), "{line}");
    assert!(line.ends_with("its link is down"), "{line}");
    let not_sent = number_after(line, "blkfwd: ");
    let sent = number_after(line, "range(s), ");
    assert!(not_sent > 0, "{line}");
    assert_eq!(not_sent + sent, SIZE, "{line}");
    // The ranges listed in the report add up to the bytes not sent (the
    // report shows the first ten; the total is on its errors line), and the
    // receiver got exactly the bytes counted as sent, none twice.
    let ranges = number_after(line, "not sent in ");
    assert!(
        stdout.contains(&format!("errors:      {ranges} range(s) not sent")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("verified: {sent} bytes, 0 mismatched")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("missing: {not_sent} bytes")),
        "{stdout}"
    );
    assert!(stdout.contains("duplicate: 0 bytes"), "{stdout}");
}

#[test]
fn start_with_the_link_down_past_the_link_timeout_is_one_line_naming_the_port() {
    let nic = "emu:ixgbe,wire=pair:link-none,link-down=0";
    let t0 = Instant::now();
    let out = run(
        BLKFWD,
        &["--nvme", DRIVE, "--nic", nic, "--link-timeout", "0.5"],
    );
    let took = t0.elapsed();
    assert_one_line_error(
        &out,
        &[&format!(
            "port {nic}: no link after 0.5 s (cable, peer, or --link-timeout)"
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    // Bounded by the timeout (plus start-up), not the driver's 10 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("port {nic}: link down, waiting up to 0.5 s")),
        "{stdout}"
    );
    // The same for pktgen, with the default timeout's wording.
    let out = run(
        PKTGEN,
        &[
            "emu:igb,link-down=0",
            "--count",
            "1",
            "--link-timeout",
            "0.2",
        ],
    );
    assert_one_line_error(
        &out,
        &["port emu:igb,link-down=0: no link after 0.2 s (cable, peer, or --link-timeout)"],
    );
}

#[test]
fn start_with_the_link_down_within_the_link_timeout_waits_and_runs() {
    let nic = "emu:ixgbe,wire=pair:link-late,pause=on,link-down=0:0.8";
    let t0 = Instant::now();
    let out = run(
        BLKFWD,
        &[
            "--nvme",
            "emu:nvme,size=4M",
            "--nic",
            nic,
            "--link-timeout",
            "5",
            "--quiet",
        ],
    );
    let took = t0.elapsed();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(took >= Duration::from_millis(800), "took {took:?}");
    assert!(
        stdout.contains(&format!("port {nic}: link down, waiting up to 5 s")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("port {nic}: link up, 10 Gb/s full duplex (after ")),
        "{stdout}"
    );
    let waited = seconds_on_line(&stdout, "full duplex (after", "(after ");
    assert!(waited >= 0.7, "waited {waited} s:\n{stdout}");
    assert!(stdout.contains("complete: yes"), "{stdout}");
    assert!(stdout.contains("missing: 0 bytes"), "{stdout}");
    assert!(!stdout.contains("link down at"), "{stdout}");
}

#[test]
fn each_port_names_its_speed_and_duplex_at_start() {
    for (dev, line) in [
        ("emu:igb", "port emu:igb: link up, 1 Gb/s full duplex\n"),
        ("emu:i350", "port emu:i350: link up, 1 Gb/s full duplex\n"),
        (
            "emu:ixgbe",
            "port emu:ixgbe: link up, 10 Gb/s full duplex\n",
        ),
    ] {
        let out = run(PKTGEN, &[dev, "--count", "1"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        // The second line, after pktgen's own.
        let second = stdout.lines().nth(1).map(|l| format!("{l}\n"));
        assert_eq!(second.as_deref(), Some(line), "{dev}:\n{stdout}");
    }
}

#[test]
fn bad_link_options_are_refused_with_what_to_write() {
    let out = run(PKTGEN, &["emu:igb", "--link-timeout", "soon"]);
    assert_clap_error(&out, &["--link-timeout", "not a number"]);
    let out = run(PKTGEN, &["emu:igb,link-down=2:x"]);
    assert_one_line_error(&out, &["link-down", "AT[:FOR]"]);
}

#[test]
fn pktgen_pauses_while_the_link_is_down() {
    // 1000 frames/s for 1.5 s, the cable pulled after 0.3 s for good:
    // without the pause pktgen would fill the 512-descriptor ring (some
    // 800 frames counted sent); with it, it stops at the frames sent before
    // the link was seen down.
    let dev = "emu:igb,link-down=0.3";
    let out = run(PKTGEN, &[dev, "--time", "1.5", "--rate", "1000"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stderr.contains("panicked"), "{stderr}");
    let down = seconds_on_line(&stdout, "sending paused", "link down at ");
    let sent = number_after(&stdout, "sent:        ");
    assert!(
        (sent as f64) <= (down + 0.1) * 1000.0 + 32.0,
        "{sent} frames sent, link down at {down} s:\n{stdout}"
    );
    assert!(!stdout.contains("link up again"), "{stdout}");
}

/// The apps that receive or forward read their ports' link from their idle
/// path too: pcap on a port whose cable is pulled 0.5 s into the run for
/// 0.5 s prints the down and the up event with their times, and goes on
/// to its --time end.
#[test]
fn pcap_prints_a_link_down_and_up_mid_run() {
    let dir = std::env::temp_dir().join(format!("link-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cap = dir.join("cap.pcap");
    let out = run(
        PCAP,
        &[
            "emu:igb,wire=loop,link-down=0.5:0.5",
            cap.to_str().unwrap(),
            "--time",
            "2",
            "--quiet",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let name = "port emu:igb,wire=loop,link-down=0.5:0.5";
    let down = seconds_on_line(&stdout, &format!("{name}: link down at"), "down at ");
    let up = seconds_on_line(&stdout, &format!("{name}: link up again"), "after ");
    assert!((0.2..=1.2).contains(&down), "{stdout}");
    assert!((0.3..=1.0).contains(&up), "{stdout}");
    assert!(
        !stdout.contains("sending paused"),
        "pcap sends nothing: {stdout}"
    );
    assert!(stdout.contains("captured:"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
