//! The README's section "Studying descriptor handling" is a list of
//! commands a newcomer pastes, each with a comment `# -> TEXT` saying what
//! it prints. This test runs every one of them, in order, from the top of
//! the repository with the freshly built apps first on PATH, and checks
//! that each exits with success and prints its TEXT (stdout or stderr).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

const SECTION: &str = "## Studying descriptor handling";

/// The repository's top directory.
fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("apps/ has a parent")
        .to_path_buf()
}

/// (command, expected text) of every line of the section's first `sh`
/// block, in order; a line without `# -> ` expects only success.
fn commands(readme: &str) -> Vec<(String, Option<String>)> {
    let at = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md has no section {SECTION:?}"));
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("the section has an sh block") + 6;
    let end = start + rest[start..].find("```").expect("the sh block ends");
    rest[start..end]
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| match l.split_once("  # -> ") {
            Some((cmd, want)) => (cmd.trim().to_string(), Some(want.to_string())),
            None => (l.trim().to_string(), None),
        })
        .collect()
}

#[test]
fn every_command_of_the_section_prints_what_it_says() {
    let top = top();
    let readme = std::fs::read_to_string(top.join("README.md")).expect("README.md is readable");
    let cmds = commands(&readme);
    assert!(cmds.len() >= 8, "too few commands found: {cmds:?}");
    // The apps this test was built with, first on PATH.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_dmatrace"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let have_tshark = Command::new("tshark").arg("--version").output().is_ok();
    let in_ci = std::env::var_os("CI").is_some();
    let mut ran = 0;
    for (cmd, want) in &cmds {
        if cmd.starts_with("export PATH=") {
            continue; // done above, with the test's own build
        }
        if cmd.starts_with("tshark") && !have_tshark {
            assert!(!in_ci, "tshark is missing in CI (.ci/run installs it)");
            eprintln!("skipped (no tshark here): {cmd}");
            continue;
        }
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", cmd])
            .current_dir(&top)
            .env("PATH", &path)
            .output()
            .expect("bash runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "`{cmd}` failed ({}):\n{text}",
            out.status
        );
        assert!(!text.contains("panicked"), "`{cmd}` panicked:\n{text}");
        if let Some(want) = want {
            assert!(
                text.contains(want.as_str()),
                "`{cmd}` does not print what the README says ({want:?}):\n{text}"
            );
        }
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} commands ran");
}

#[test]
fn the_command_list_is_read_as_the_readme_writes_it() {
    let text = "x\n## Studying descriptor handling\n\n```sh\nexport PATH=a:$PATH\n\
                # a comment\nfoo --x 1  # -> prints this\nbar\n```\n```sh\nnot this\n```\n";
    assert_eq!(
        commands(text),
        vec![
            ("export PATH=a:$PATH".to_string(), None),
            ("foo --x 1".to_string(), Some("prints this".to_string())),
            ("bar".to_string(), None),
        ]
    );
}
