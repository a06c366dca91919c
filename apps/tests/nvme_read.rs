//! nvme-read against the emulated controller backed by a file: the bytes it
//! prints are exactly the file's, for any offset and length, on both LBA
//! sizes; bad ranges get one error line. (The real-VFIO lane runs it against
//! QEMU's controller: hw-setup/vm/run.sh.)
#![forbid(unsafe_code)]

mod common;
use common::{assert_clap_error, assert_one_line_error};

use apps::stream::pattern::pseudo_random;
use std::path::PathBuf;
use std::process::Command;

const READ: &str = env!("CARGO_BIN_EXE_nvme-read");

/// A file of `len` bytes of a fixed pseudo-random pattern.
fn image(name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let path = std::env::temp_dir().join(format!("nvme-read-{}-{name}.img", std::process::id()));
    let data = pseudo_random(4, len);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

fn read(dev: &str, args: &[&str]) -> std::process::Output {
    Command::new(READ)
        .arg(dev)
        .args(args)
        .output()
        .expect("nvme-read runs")
}

#[test]
fn ranges_read_back_exactly_on_both_lba_sizes() {
    let (path, data) = image("ranges", 4 << 20);
    for lba in [512, 4096] {
        let dev = format!("emu:nvme,file={},lba={lba}", path.display());
        for (offset, length) in [
            (0usize, 4096usize),
            (1, 1),
            (1234567, 777777),
            (511, 513),
            ((4 << 20) - 4096, 4096),
            (100, (4 << 20) - 100),
        ] {
            let out = read(
                &dev,
                &[
                    "--offset",
                    &offset.to_string(),
                    "--length",
                    &length.to_string(),
                    "--bs",
                    "64k",
                ],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "lba {lba}, {offset}+{length}: {stderr}"
            );
            assert!(
                out.stdout == data[offset..offset + length],
                "lba {lba}: bytes {offset}+{length} differ"
            );
        }
    }
    // The whole namespace by default, and --out.
    let out_path = path.with_extension("out");
    let dev = format!("emu:nvme,file={}", path.display());
    let out = read(&dev, &["--out", out_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&out_path).unwrap() == data);
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_range_past_the_end_is_one_error_line() {
    let (path, _) = image("past", 1 << 20);
    let dev = format!("emu:nvme,file={}", path.display());
    // At the end: nothing is left to read (it advised "--length 0 or less",
    // and --length 0 read nothing and exited 0).
    let out = read(&dev, &["--offset", "1M", "--length", "1"]);
    assert_one_line_error(
        &out,
        &["--offset 1048576 is at or past the end", "nothing to read"],
    );
    let out = read(&dev, &["--offset", "1023k", "--length", "2k"]);
    assert_one_line_error(&out, &["--length 1024 or less"]);
    let out = read(&dev, &["--offset", "2M"]);
    assert_one_line_error(&out, &["past the end of namespace 1"]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_block_size_the_drive_cannot_take_is_one_error_line() {
    // The rule nvme-perf applies: whole LBAs, at most the largest transfer
    // (128 KiB on the model by default). 0 is not a size for a command.
    let (path, _) = image("bs", 1 << 20);
    let dev = format!("emu:nvme,file={}", path.display());
    let out = read(&dev, &["--length", "4k", "--bs", "0"]);
    assert_clap_error(&out, &["--bs", "above 0"]);
    let out = read(&dev, &["--length", "4k", "--bs", "3"]);
    assert_one_line_error(&out, &["--bs 3", "multiple of namespace 1's LBA size 512"]);
    let dev4k = format!("{dev},lba=4096");
    let out = read(&dev4k, &["--length", "4k", "--bs", "512"]);
    assert_one_line_error(&out, &["--bs 512", "LBA size 4096", "--bs 4096"]);
    let out = read(&dev, &["--length", "4k", "--bs", "1G"]);
    assert_one_line_error(
        &out,
        &[
            "--bs 1 GiB",
            "largest transfer (128 KiB",
            "--bs 128 KiB or less",
        ],
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_backing_file_of_partial_blocks_is_refused_or_warned() {
    // Smaller than one LBA: an error naming the file and the fix (was a
    // one-block namespace from 1000 bytes with lba=4096, silently).
    let (path, _) = image("partial-small", 1000);
    let p = path.display().to_string();
    let out = read(&format!("emu:nvme,file={p},lba=4096"), &[]);
    assert_one_line_error(
        &out,
        &[&p, "1000 bytes", "smaller than one block of 4096", "size="],
    );
    // Not a multiple of the LBA size: the whole blocks, and a warning.
    let out = read(&format!("emu:nvme,file={p}"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning wanted: {stderr}");
    for n in [
        p.as_str(),
        "1000 bytes",
        "512-byte LBA",
        "1 whole block(s) (512 bytes)",
        "last 488 bytes",
    ] {
        assert!(warnings[0].contains(n), "'{n}' missing: {stderr}");
    }
    assert_eq!(out.stdout.len(), 512);
    let _ = std::fs::remove_file(path);
}
