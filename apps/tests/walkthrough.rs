//! The walkthroughs in `docs/` are golden files: every `console` block in
//! them holds commands (`$ ` lines) and the output each printed, and this
//! test runs the commands and compares.
//!
//! - The commands of one document run in order in one fresh directory (a
//!   later command reads the trace an earlier one wrote), through `sh -c`,
//!   with this build's app binaries first on PATH, exactly as a reader
//!   pastes them.
//! - A command's output is its standard output followed by its standard
//!   error. It must exit with status 0.
//! - `[..]` in an expected line matches any text within that line: for
//!   what changes between runs (rates, times). Everything else must be
//!   equal; the runs use inline devices, which are deterministic, and
//!   `dmatrace show --no-time` prints sequence numbers instead of times.
//! - `WALKTHROUGH_UPDATE=1 cargo test --release -p apps --test walkthrough`
//!   rewrites the blocks with what the commands print now (keeping each
//!   `[..]` line whose pattern still matches). Reread the prose around a
//!   changed block afterwards: it explains those lines.
#![forbid(unsafe_code)]

mod common;

use common::tmpdir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The documents checked.
const DOCS: &[&str] = &["walkthrough-nvme.md", "walkthrough-nic.md"];

/// One `$ ` command of a console block and its expected output lines.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

/// A `console` block: its line range in the document (the lines between
/// the fences) and its steps.
#[derive(Debug)]
struct Block {
    first: usize,
    end: usize,
    steps: Vec<Step>,
}

/// The console blocks of a document's lines.
fn blocks(lines: &[&str]) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```console" {
            i += 1;
            continue;
        }
        let first = i + 1;
        let mut end = first;
        while end < lines.len() && lines[end].trim_end() != "```" {
            end += 1;
        }
        if end == lines.len() {
            return Err(format!("line {}: console block never closed", i + 1));
        }
        let mut steps: Vec<Step> = Vec::new();
        for (n, l) in lines[first..end].iter().enumerate() {
            if let Some(c) = l.strip_prefix("$ ") {
                steps.push(Step {
                    command: c.to_string(),
                    expected: Vec::new(),
                });
            } else if let Some(s) = steps.last_mut() {
                s.expected.push(l.to_string());
            } else {
                return Err(format!(
                    "line {}: a console block must start with a `$ ` command",
                    first + n + 1
                ));
            }
        }
        out.push(Block { first, end, steps });
        i = end + 1;
    }
    Ok(out)
}

/// Whether `line` matches `pattern`, where `[..]` matches any text.
fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || line.len() < first.len() + last.len() || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// A unified-style diff of expected and actual lines (`-` expected, `+`
/// actual), by longest common subsequence under [`matches`].
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if matches(&expected[i], &actual[j]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && matches(&expected[i], &actual[j]) {
            out.push_str(&format!("  {}\n", actual[j]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", expected[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", actual[j]));
            j += 1;
        }
    }
    out
}

/// The directory of this build's app binaries.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_dmatrace"))
        .parent()
        .expect("a binary lives in a directory")
        .to_path_buf()
}

/// Run `command` in `dir` as a reader would: its output lines (standard
/// output, then standard error), or why it failed.
fn run(command: &str, dir: &Path) -> Result<Vec<String>, String> {
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut all = vec![bin_dir()];
            all.extend(std::env::split_paths(&p));
            std::env::join_paths(all).expect("PATH entries join")
        }
        None => bin_dir().into_os_string(),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("sh did not run: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("exit status {}; it printed:\n{text}", out.status));
    }
    Ok(text.lines().map(str::to_string).collect())
}

/// The expected lines rewritten to `actual`, keeping each wildcard line
/// of `expected` that matches the actual line it stands for.
fn updated(expected: &[String], actual: &[String]) -> Vec<String> {
    let mut patterns = expected.iter().filter(|l| l.contains("[..]")).peekable();
    actual
        .iter()
        .map(|a| match patterns.peek() {
            Some(p) if matches(p, a) => patterns.next().cloned().unwrap_or_default(),
            _ => a.clone(),
        })
        .collect()
}

/// Check (or with `update`, rewrite) one document; the failures found.
fn check(doc: &str, update: bool) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(doc);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: cannot read it: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let blocks = match blocks(&lines) {
        Ok(b) => b,
        Err(e) => return vec![format!("{doc}: {e}")],
    };
    assert!(!blocks.is_empty(), "{doc} has no console block");
    let dir = tmpdir(&format!("walkthrough-{}", doc.trim_end_matches(".md")));
    let mut failures = Vec::new();
    let mut new_lines: Vec<String> = Vec::new();
    let mut at = 0;
    for b in &blocks {
        new_lines.extend(lines[at..b.first].iter().map(|l| l.to_string()));
        for s in &b.steps {
            new_lines.push(format!("$ {}", s.command));
            match run(&s.command, &dir) {
                Err(e) => {
                    failures.push(format!("{doc}:{}: `{}`: {e}", b.first + 1, s.command));
                    new_lines.extend(s.expected.iter().cloned());
                }
                Ok(actual) => {
                    let same = actual.len() == s.expected.len()
                        && s.expected.iter().zip(&actual).all(|(e, a)| matches(e, a));
                    if !same {
                        failures.push(format!(
                            "{doc}:{}: `{}` printed something else (- doc, + now):\n{}",
                            b.first + 1,
                            s.command,
                            diff(&s.expected, &actual)
                        ));
                    }
                    new_lines.extend(if same {
                        s.expected.clone()
                    } else {
                        updated(&s.expected, &actual)
                    });
                }
            }
        }
        at = b.end;
    }
    new_lines.extend(lines[at..].iter().map(|l| l.to_string()));
    if update {
        let mut out = new_lines.join("\n");
        out.push('\n');
        if out != text {
            std::fs::write(&path, out)
                .unwrap_or_else(|e| panic!("{}: cannot write it: {e}", path.display()));
            eprintln!("walkthrough: rewrote {}", path.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    failures
}

#[test]
fn walkthroughs_print_what_the_code_prints() {
    let update = std::env::var("WALKTHROUGH_UPDATE").is_ok_and(|v| v == "1");
    let failures: Vec<String> = DOCS.iter().flat_map(|d| check(d, update)).collect();
    if update {
        // Commands that failed are not rewritten; report them still.
        let failed: Vec<&String> = failures
            .iter()
            .filter(|f| f.contains("exit status"))
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
        return;
    }
    assert!(
        failures.is_empty(),
        "\n{}\nTo take the new output: WALKTHROUGH_UPDATE=1 cargo test --release -p apps \
         --test walkthrough (then reread the prose around each changed block). If only \
         addresses differ: the IOVAs are those of 2 MiB hugepage regions; without free \
         hugepages (HugePages_Free in /proc/meminfo) the apps fall back to 4 KiB pages and \
         the regions, so the addresses, are laid out differently.",
        failures.join("\n")
    );
}

#[test]
fn wildcards_match_within_a_line_only() {
    assert!(matches("I/Os: 1 in [..] s", "I/Os: 1 in 0.04 s"));
    assert!(matches("a[..]b[..]c", "a-x-b-y-c"));
    assert!(matches("[..]", ""));
    assert!(!matches("I/Os: 1 in [..] s", "I/Os: 2 in 0.04 s"));
    assert!(!matches("ab[..]ba", "aba"));
    assert!(!matches("plain", "plain "));
}

#[test]
fn blocks_are_commands_and_their_output() {
    let doc = [
        "text",
        "```console",
        "$ a",
        "out 1",
        "out 2",
        "$ b",
        "```",
        "more",
    ];
    let b = blocks(&doc).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].first, b[0].end), (2, 6));
    assert_eq!(b[0].steps[0].command, "a");
    assert_eq!(b[0].steps[0].expected, vec!["out 1", "out 2"]);
    assert!(b[0].steps[1].expected.is_empty());
    assert!(blocks(&["```console", "output first", "```"])
        .unwrap_err()
        .contains("must start with"));
    assert!(blocks(&["```console", "$ a"])
        .unwrap_err()
        .contains("never closed"));
}

#[test]
fn a_diff_marks_what_changed_and_an_update_keeps_matching_wildcards() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let d = diff(&s(&["a", "t [..] s", "c"]), &s(&["a", "t 1.0 s", "d"]));
    assert_eq!(d, "  a\n  t 1.0 s\n- c\n+ d\n");
    assert_eq!(
        updated(&s(&["a", "t [..] s", "c"]), &s(&["b", "t 2 s", "d"])),
        s(&["b", "t [..] s", "d"])
    );
}
