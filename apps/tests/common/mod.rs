//! What the command-line tests of the apps share.
#![forbid(unsafe_code)]
// Each test file uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Run an app binary to completion with `args`.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .expect("the app binary runs")
}

/// The error is one line on stderr (warnings aside), starts with "error:",
/// contains every `needle`, the exit status is non-zero, and nothing panicked.
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status must be non-zero: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .collect();
    assert_eq!(lines.len(), 1, "want one error line, got: {stderr}");
    assert!(lines[0].starts_with("error:"), "got: {stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {stderr}");
    }
}

/// A new empty directory for test `name` of this process.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("apps-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A value clap's parser refused: exit status 2, the error line with every
/// `needle`, then only clap's pointer to --help; nothing panicked.
pub fn assert_clap_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines.len(),
        2,
        "want clap's error and --help lines: {stderr}"
    );
    assert!(lines[0].starts_with("error:"), "got: {stderr}");
    assert!(lines[1].contains("--help"), "got: {stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {stderr}");
    }
}

/// Whether tshark (an independent parser of captures) is installed. On CI
/// it must be (`.ci/run` installs it): a missing one fails there instead
/// of skipping. Elsewhere a test without it says so and skips.
pub fn have_tshark() -> bool {
    if Command::new("tshark").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tshark is missing on CI: .ci/run must install it"
    );
    eprintln!("skipped: tshark is not installed (apt-get install tshark)");
    false
}
