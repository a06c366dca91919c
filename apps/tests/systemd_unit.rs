//! The systemd units in hw-setup/systemd/ against the tools they start: every
//! blkfwd option the service passes exists, every variable it uses is set in
//! the example environment file, every hw-setup script and subcommand it
//! runs exists, the service's command line runs (on emulated devices), and
//! `systemd-analyze verify` accepts the units where it is installed.
#![forbid(unsafe_code)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hw-setup/systemd")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(systemd_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `KEY=value` lines of a unit's section `[Service]` (all of them, in order).
fn service_lines<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The example environment file, as systemd reads it (`KEY=value`, `#`
/// comments, empty values allowed).
fn env_file() -> BTreeMap<String, String> {
    read("blkfwd.env")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Expand `${VAR}` (one word) and `$VAR` (split on white space) as systemd
/// does in `ExecStart=`, from `env`; a variable that is not set fails.
fn expand(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for word in line.split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            let v = env
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not set in blkfwd.env"));
            out.push(v.clone());
        } else if let Some(name) = word.strip_prefix('$') {
            let v = env
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not set in blkfwd.env"));
            out.extend(v.split_whitespace().map(str::to_string));
        } else {
            assert!(!word.contains('$'), "variable inside a word: {word}");
            out.push(word.to_string());
        }
    }
    out
}

fn help(program: &Path) -> String {
    let out = Command::new(program)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(out.status.success(), "{} --help failed", program.display());
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn blkfwd_service_passes_only_options_blkfwd_has_and_its_command_line_runs() {
    let unit = read("blkfwd.service");
    let env = env_file();
    let exec = service_lines(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart in blkfwd.service");
    let argv = expand(exec[0], &env);
    assert_eq!(argv[0], "/usr/local/bin/blkfwd");

    let help = help(Path::new(BLKFWD));
    let flags: Vec<&String> = argv.iter().filter(|a| a.starts_with("--")).collect();
    assert!(flags.len() >= 6, "{argv:?}");
    for flag in &flags {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "blkfwd.service passes {flag}, which blkfwd --help does not list"
        );
    }

    // The same command line, with the example's PCI addresses swapped for
    // emulated devices and a time limit, streams and ends cleanly.
    let mut args: Vec<String> = argv[1..].to_vec();
    for (flag, dev) in [
        ("--nvme", "emu:nvme,size=8M"),
        ("--nic", "emu:ixgbe,wire=pair:unit,pause=on"),
    ] {
        let i = args.iter().position(|a| a == flag).expect(flag);
        assert_eq!(args[i + 1], env[&flag[2..].to_uppercase()]);
        args[i + 1] = dev.to_string();
    }
    args.extend(["--time", "1"].map(str::to_string));
    let out = Command::new(BLKFWD)
        .args(&args)
        .output()
        .expect("blkfwd runs");
    assert!(
        out.status.success(),
        "the service's command line on emulated devices: {args:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prepare_service_runs_hw_setup_scripts_that_exist_with_their_subcommands() {
    let unit = read("blkfwd-prepare.service");
    let env = env_file();
    let hw_setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hw-setup");
    let mut commands = service_lines(&unit, "ExecStart");
    commands.extend(service_lines(&unit, "ExecStop"));
    assert!(commands.len() >= 3, "{commands:?}");
    for line in commands {
        let argv = expand(line, &env);
        let script = argv[0]
            .strip_prefix("/opt/blkfwd/hw-setup/")
            .unwrap_or_else(|| panic!("not a hw-setup script: {line}"));
        let path = hw_setup.join(script);
        assert!(path.is_file(), "{} does not exist", path.display());
        let usage = help(&path);
        assert!(
            usage.contains(&format!(" {} ", argv[1])) || usage.contains(&format!("{}:", argv[1])),
            "{script} has no subcommand {}: {usage}",
            argv[1]
        );
    }
    // Every variable either unit reads is set in the example file.
    for name in ["blkfwd.service", "blkfwd-prepare.service"] {
        let text = read(name);
        for line in text.lines().filter(|l| l.starts_with("Exec")) {
            expand(line.split_once('=').unwrap().1, &env);
        }
        assert!(
            service_lines(&text, "EnvironmentFile").contains(&"/etc/default/blkfwd"),
            "{name} reads /etc/default/blkfwd"
        );
    }
}

#[test]
fn systemd_accepts_the_units() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: verify skipped (the other unit tests ran)");
        return;
    };
    assert!(out.status.success());
    // verify checks that the programs exist: point them at this tree.
    let dir = common::tmpdir("systemd-units");
    let hw_setup = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hw-setup")
        .canonicalize()
        .unwrap();
    for name in ["blkfwd.service", "blkfwd-prepare.service"] {
        let text = read(name)
            .replace("/opt/blkfwd/hw-setup", hw_setup.to_str().unwrap())
            .replace("/usr/local/bin/blkfwd", BLKFWD);
        std::fs::write(dir.join(name), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("blkfwd.service"))
        .arg(dir.join("blkfwd-prepare.service"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about units outside ours (the host's own) are not ours to judge.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("blkfwd")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
