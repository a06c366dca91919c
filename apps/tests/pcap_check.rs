//! pcap-check as the VM lane runs it: a good capture of pktgen's frames
//! passes with one summary line; a missing, a duplicate or a damaged frame,
//! or a frame that is not pktgen's, fails with one error line naming it.
#![forbid(unsafe_code)]

mod common;
use common::{run, tmpdir};

use std::path::Path;
use std::process::Output;

const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
const CHECK: &str = env!("CARGO_BIN_EXE_pcap-check");

/// The file header and the records (16-byte header + frame) of a pcap file.
fn split(path: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let d = std::fs::read(path).unwrap();
    let mut recs = Vec::new();
    let mut off = 24;
    while off < d.len() {
        let incl = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        recs.push(d[off..off + 16 + incl].to_vec());
        off += 16 + incl;
    }
    (d[..24].to_vec(), recs)
}

fn write(path: &Path, head: &[u8], recs: &[Vec<u8>]) -> String {
    let mut d = head.to_vec();
    for r in recs {
        d.extend_from_slice(r);
    }
    std::fs::write(path, d).unwrap();
    path.to_str().unwrap().to_string()
}

fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(stderr.contains(needle), "'{needle}' missing: {stderr}");
}

#[test]
fn pcap_check_passes_a_good_capture_and_names_each_problem() {
    let dir = tmpdir("cli");
    let good = dir.join("good.pcap");
    let out = run(
        PKTGEN,
        &[
            &format!("emu:igb,wire=pcap:{}", good.display()),
            "--count",
            "200",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let g = good.to_str().unwrap();

    let out = run(CHECK, &[g, "--expect", "200", "--size", "60"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("200 test frames of 60 B, seq 0..199 each once"),
        "{stdout}"
    );
    fails_with(
        &run(CHECK, &[g, "--expect", "201"]),
        "1 missing (first: 200)",
    );
    fails_with(&run(CHECK, &[g, "--size", "64"]), "200 of the wrong size");

    let (head, recs) = split(&good);
    assert_eq!(recs.len(), 200);
    let edit = |name: &str, f: &dyn Fn(&mut Vec<Vec<u8>>)| {
        let mut r = recs.clone();
        f(&mut r);
        write(&dir.join(name), &head, &r)
    };
    let p = edit("missing.pcap", &|r| {
        r.remove(17);
    });
    fails_with(
        &run(CHECK, &[&p, "--expect", "200"]),
        "1 missing (first: 17)",
    );
    let p = edit("dup.pcap", &|r| {
        let x = r[5].clone();
        r.push(x);
    });
    fails_with(
        &run(CHECK, &[&p, "--expect", "200"]),
        "1 duplicate (first: 5)",
    );
    // The last payload byte of frame 9: the UDP checksum no longer matches,
    // and the fill pattern is broken.
    let p = edit("damaged.pcap", &|r| {
        *r[9].last_mut().unwrap() ^= 0x55;
    });
    let out = run(CHECK, &[&p, "--expect", "200"]);
    fails_with(&out, "1 with a bad UDP checksum (first: 9)");
    fails_with(&out, "1 with a damaged payload (first: 9)");
    // An ARP frame among ours: an error, unless other frames are allowed
    // (the wire of a QEMU hub).
    let p = edit("other.pcap", &|r| {
        let mut arp = r[0].clone();
        arp[16 + 12..16 + 14].copy_from_slice(&0x0806u16.to_be_bytes());
        r.insert(3, arp);
    });
    fails_with(&run(CHECK, &[&p, "--expect", "200"]), "1 other frames");
    let out = run(CHECK, &[&p, "--expect", "200", "--allow-other"]);
    assert!(out.status.success(), "{out:?}");
    let other = String::from_utf8_lossy(&out.stdout);
    assert!(other.contains("(1 other frames)"), "{other}");
    // The digest covers the test frames only, in sequence order: the same
    // with the ARP frame in, and the same for the frames in another order.
    let digest = |s: &str| s.split("digest ").nth(1).unwrap()[..16].to_string();
    assert_eq!(digest(&other), digest(&stdout));
    let p = edit("swapped.pcap", &|r| r.swap(0, 199));
    let out = run(CHECK, &[&p, "--expect", "200"]);
    assert_eq!(
        digest(&String::from_utf8_lossy(&out.stdout)),
        digest(&stdout)
    );

    // Not a pcap file, and a file cut short: one line each.
    let p = dir.join("text.pcap");
    std::fs::write(&p, "hello, this is not a capture file").unwrap();
    fails_with(&run(CHECK, &[p.to_str().unwrap()]), "not a pcap file");
    let d = std::fs::read(&good).unwrap();
    std::fs::write(&p, &d[..d.len() - 7]).unwrap();
    fails_with(&run(CHECK, &[p.to_str().unwrap()]), "file ends first");
    fails_with(
        &run(CHECK, &[dir.join("absent.pcap").to_str().unwrap()]),
        "absent.pcap",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pcap_check_help_says_what_it_checks() {
    let out = run(CHECK, &["--help"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for w in [
        "--expect",
        "--size",
        "--allow-other",
        "missing",
        "duplicate",
    ] {
        assert!(s.contains(w), "'{w}' missing from --help: {s}");
    }
}
