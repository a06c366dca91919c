//! blkfwd's destination by ARP, against the Linux stack: an emulated port
//! on a `tap:` wire whose interface lives in a network namespace this test
//! creates (addresses only inside it, removed at the end). Needs root and
//! `ip` (iproute2): skipped with a message otherwise; CI runs it as root.
#![forbid(unsafe_code)]

mod common;

use common::{assert_one_line_error, run};
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");

const TAP: &str = "kbarp0";
/// The kernel's side of the wire, and ours.
const HOST_IP: &str = "10.77.0.1";
const OUR_IP: &str = "10.77.0.2";
const OUR_MAC: &str = "02:77:00:00:00:02";

/// A network namespace holding a persistent TAP interface `TAP` with
/// `HOST_IP`/24, up; deleted (with the interface) on drop.
struct Netns(String);

impl Netns {
    /// None (after saying why) when this host cannot make one.
    fn create(tag: &str) -> Option<Netns> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
            });
        if uid.as_deref() != Some("0") {
            println!("skipped: needs root (network namespaces, TAP interfaces)");
            return None;
        }
        if !matches!(Command::new("ip").arg("-V").output(), Ok(o) if o.status.success()) {
            println!("skipped: `ip` (iproute2) is missing");
            return None;
        }
        let name = format!("kbarp-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["tuntap", "add", "dev", TAP, "mode", "tap"]);
        ns.ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", TAP]);
        ns.ip(&["link", "set", "dev", TAP, "up"]);
        // Unicast IP in an Ethernet broadcast is dropped: a datagram that
        // reaches a socket here came to the interface's own MAC.
        for conf in ["all", TAP] {
            ns.exec(&[
                "sh",
                "-c",
                &format!("echo 1 > /proc/sys/net/ipv4/conf/{conf}/drop_unicast_in_l2_multicast"),
            ]);
        }
        Some(ns)
    }

    /// `ip -n NS ARGS`, which must succeed; its stdout.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.0];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Run a command inside the namespace; it must succeed.
    fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.0];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// A command to run inside the namespace.
    fn command(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, prog]).args(args);
        c
    }

    /// The TAP interface's MAC address.
    fn tap_mac(&self) -> String {
        let out = self.ip(&["-o", "link", "show", "dev", TAP]);
        let mut words = out.split_whitespace();
        words
            .find(|w| *w == "link/ether")
            .and_then(|_| words.next())
            .unwrap_or_else(|| panic!("no MAC in: {out}"))
            .to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn blkfwd_resolves_the_kernel_by_arp_and_answers_its_arp() {
    let Some(ns) = Netns::create("ok") else {
        return;
    };
    let tap_mac = ns.tap_mac();
    let port = apps::net::BLKFWD_PORT.to_string();
    // The kernel's socket receives the stream and checks every byte of lap 0.
    let mut recv = ns
        .command(
            BLKRECV,
            &[
                &format!("udp:{HOST_IP}:{port}"),
                "--laps",
                "1",
                "--wait",
                "30",
                "--idle-exit",
                "5",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut recv_out = BufReader::new(recv.stdout.take().unwrap());
    let mut banner = String::new();
    recv_out.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("blkrecv: udp:"), "{banner}");
    let nic = format!("emu:ixgbe,wire=tap:{TAP},mac={OUR_MAC}");
    let mut fwd = ns
        .command(
            BLKFWD,
            &[
                "--nvme",
                "emu:nvme,size=4M",
                "--nic",
                &nic,
                "--recv",
                "none",
                "--length",
                "1m",
                "--src-ip",
                OUR_IP,
                "--dst-ip",
                HOST_IP,
                "--loop",
                "--time",
                "4",
                "--rate",
                "20",
                "--quiet",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut fwd_out = BufReader::new(fwd.stdout.take().unwrap());
    let mut seen = String::new();
    let want = format!("blkfwd: --dst-ip {HOST_IP} is at {tap_mac} (ARP on {nic})");
    loop {
        let mut line = String::new();
        if fwd_out.read_line(&mut line).unwrap() == 0 {
            let _ = recv.kill();
            let err = std::io::read_to_string(fwd.stderr.take().unwrap()).unwrap();
            panic!("blkfwd ended without resolving {HOST_IP}: {seen}{err}");
        }
        seen.push_str(&line);
        if line.trim_end() == want {
            break;
        }
    }
    // While blkfwd streams: the kernel forgets us and asks again; only
    // blkfwd's ARP reply can teach it our MAC now (it sends no request
    // after the one it resolved with).
    ns.ip(&["neigh", "flush", "dev", TAP]);
    ns.exec(&["bash", "-c", &format!("echo hello > /dev/udp/{OUR_IP}/9")]);
    let deadline = Instant::now() + Duration::from_secs(3);
    let neigh = loop {
        let n = ns.ip(&["neigh", "show", OUR_IP, "dev", TAP]);
        if n.contains(&format!("lladdr {OUR_MAC}")) || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        neigh.contains(&format!("lladdr {OUR_MAC}")),
        "the kernel did not learn {OUR_MAC} for {OUR_IP} by ARP: `{}`",
        neigh.trim()
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut fwd_out, &mut rest).unwrap();
    let status = fwd.wait().unwrap();
    let err = std::io::read_to_string(fwd.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "blkfwd: {status}: {seen}{rest}{err}");
    assert!(rest.contains("errors:      0 range(s) not sent"), "{rest}");
    let mut recv_rest = String::new();
    std::io::Read::read_to_string(&mut recv_out, &mut recv_rest).unwrap();
    let status = recv.wait().unwrap();
    // Every byte of the lap reached the kernel's socket: addressed to the
    // TAP's own MAC (broadcast would be dropped, see Netns::create).
    assert!(status.success(), "blkrecv: {status}: {recv_rest}");
    assert!(recv_rest.contains("complete: yes"), "{recv_rest}");
    assert!(
        recv_rest.contains("verified: 1048576 bytes, 0 mismatched"),
        "{recv_rest}"
    );
}

#[test]
fn nobody_answering_is_one_error_line_within_the_timeout() {
    // Anywhere: --dst-mac arp on a pair wire whose other end is not open.
    let started = Instant::now();
    let out = run(
        BLKFWD,
        &[
            "--nvme",
            "emu:nvme,size=1M",
            "--nic",
            "emu:igb,wire=pair:arp-nobody",
            "--recv",
            "none",
            "--dst-mac",
            "arp",
            "--dst-ip",
            "10.77.0.9",
            "--arp-timeout",
            "1",
        ],
    );
    assert_one_line_error(
        &out,
        &[
            "no ARP reply from --dst-ip 10.77.0.9 on emu:igb,wire=pair:arp-nobody",
            "--dst-mac",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Against the kernel: an address in its subnet that nobody has.
    let Some(ns) = Netns::create("none") else {
        return;
    };
    let nic = format!("emu:igb,wire=tap:{TAP}");
    let started = Instant::now();
    let out = ns
        .command(
            BLKFWD,
            &[
                "--nvme",
                "emu:nvme,size=1M",
                "--nic",
                &nic,
                "--recv",
                "none",
                "--src-ip",
                OUR_IP,
                "--dst-ip",
                "10.77.0.9",
            ],
        )
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_one_line_error(
        &out,
        &[
            &format!("no ARP reply from --dst-ip 10.77.0.9 on {nic} (3 request(s)"),
            "--dst-mac",
        ],
    );
    // The default --arp-timeout is 3 s; the rest is start-up.
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "{took:?}: {}",
        text(&out)
    );
}

#[test]
fn broadcast_is_sent_only_when_asked_on_a_tap_wire() {
    let Some(ns) = Netns::create("bcast") else {
        return;
    };
    let nic = format!("emu:igb,wire=tap:{TAP}");
    let out = ns
        .command(
            BLKFWD,
            &[
                "--nvme",
                "emu:nvme,size=1M",
                "--nic",
                &nic,
                "--recv",
                "none",
                "--dst-mac",
                "broadcast",
                "--src-ip",
                OUR_IP,
                "--dst-ip",
                HOST_IP,
                "--quiet",
            ],
        )
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("ARP on"), "no ARP when --dst-mac is given: {t}");
    assert!(t.contains("blkfwd: bytes=1048576 "), "{t}");
}

/// `Udp: ... NoPorts ...` of /proc/net/snmp inside the namespace.
fn udp_no_ports(ns: &Netns) -> u64 {
    let snmp = ns.exec(&["cat", "/proc/net/snmp"]);
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "NoPorts")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn pktgen_resolves_the_kernel_by_arp() {
    const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
    let Some(ns) = Netns::create("pktgen") else {
        return;
    };
    let tap_mac = ns.tap_mac();
    let before = udp_no_ports(&ns);
    let dev = format!("emu:igb,wire=tap:{TAP},mac={OUR_MAC}");
    let out = ns
        .command(
            PKTGEN,
            &[
                &dev, "--src-ip", OUR_IP, "--dst-ip", HOST_IP, "--count", "200", "--rate", "2000",
            ],
        )
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "pktgen: --dst-ip {HOST_IP} is at {tap_mac} (ARP on {dev})"
        )),
        "{t}"
    );
    // No socket listens on pktgen's port: each datagram that reached UDP
    // (so came to the TAP's own MAC, with good checksums) is a NoPorts.
    let got = udp_no_ports(&ns) - before;
    assert_eq!(got, 200, "{t}");
}
