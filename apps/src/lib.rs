//! Shared code of the command-line programs: opening devices from device
//! strings, latency histograms, thread CPU time, test frames ([`net`]),
//! the disk-to-wire stream and its patterns ([`stream`]), port statistics
//! ([`port_stats`]), the `--stats` JSON lines ([`monitor`]) and SIGINT and
//! SIGTERM as a request to stop ([`signals`]).
#![deny(missing_docs)]

pub mod arp;
pub mod backoff;
pub mod cputime;
pub mod histogram;
pub mod link;
pub mod monitor;
pub mod net;
pub mod open;
pub mod port_stats;
pub mod signals;
pub mod stream;
pub mod trace;

/// Result of app code: any error, printed as one line.
pub type AppResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Let a closed pipe end the program quietly, as it does other Unix tools
/// (`nvme-identify DEV | head`): Rust ignores SIGPIPE, so printing to a
/// closed pipe would otherwise panic.
pub fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to the default has no
    // preconditions; no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Print `error: MESSAGE`, write the `--trace` file if there is one, and
/// exit with status 1. Apps call this from `main` so a user sees one line
/// naming the cause and the fix, never a panic.
pub fn exit_on_error<T>(r: AppResult<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            // What was traced up to the error is what explains it.
            trace::session::finish();
            std::process::exit(1);
        }
    }
}

/// The command line parsed into `T`, as `T::parse()` does, except that a
/// refused command line is one `error:` line (clap spreads some over several:
/// the missing arguments, a tip, the usage) and clap's pointer to `--help`,
/// with clap's exit status 2. `--help` and `--version` print as usual.
pub fn parse_args<T: clap::Parser>() -> T {
    T::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            e.exit();
        }
        eprintln!(
            "{}\n\nFor more information, try '--help'.",
            one_line(&e.render().to_string())
        );
        std::process::exit(e.exit_code());
    })
}

/// Clap's rendered error as one line: its lines before the usage, joined.
fn one_line(rendered: &str) -> String {
    let mut line = String::new();
    for l in rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
    {
        if !line.is_empty() {
            line.push_str(if l.starts_with("tip:") { "; " } else { " " });
        }
        line.push_str(l);
    }
    line
}

/// A size on the command line (`4096`, `128k`, `8m`, `1g`: the device
/// strings' syntax), as a clap value parser.
pub fn parse_size(s: &str) -> Result<u64, String> {
    crate::open::device::parse_size(s)
        .ok_or_else(|| format!("'{s}' is not a size; write e.g. 4096, 4k, 128k, 8m or 1g"))
}

/// A size that must be above 0 (`--bs`, `--range`), as a clap value parser.
pub fn parse_nonzero_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!(
            "'{s}' is not a size above 0; write e.g. 4096, 4k, 128k or 1M"
        )),
        v => Ok(v),
    }
}

/// The rule for the bytes of one NVMe command given with `--bs` (nvme-perf,
/// nvme-read): a multiple of namespace `nsid`'s LBA size `lba_size`, at most
/// the controller's largest transfer `max_transfer` (from MDTS). The error
/// names the allowed values.
pub fn check_block_size(
    bs: u64,
    lba_size: u64,
    nsid: u32,
    max_transfer: u64,
) -> Result<(), String> {
    if bs == 0 || !bs.is_multiple_of(lba_size) {
        return Err(format!(
            "--bs {bs} is not a multiple of namespace {nsid}'s LBA size {lba_size}; use e.g. --bs {}",
            lba_size.max(4096).min(max_transfer.max(lba_size))
        ));
    }
    if bs > max_transfer {
        return Err(format!(
            "--bs {} is larger than the controller's largest transfer ({}, from MDTS); use --bs {} or less",
            human_bytes(bs),
            human_bytes(max_transfer),
            human_bytes(max_transfer)
        ));
    }
    Ok(())
}

/// The longest time a seconds option takes: 10 years. Longer is surely a
/// typo, and `Duration` arithmetic on the far future overflows.
pub const MAX_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// A number of seconds on the command line (`10`, `0.5`, `3600`), as a clap
/// value parser: a finite number from 0 to [`MAX_SECONDS`]. `nan`, `inf`,
/// negative and absurd values are refused here with one line, instead of
/// panicking later in `Duration::from_secs_f64`.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let hint = "write a number of seconds such as 10, 0.5 or 3600";
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number; {hint}"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' is not a time; {hint}"));
    }
    if v > MAX_SECONDS {
        return Err(format!(
            "{s} seconds is more than 10 years ({MAX_SECONDS:.0} s); {hint}"
        ));
    }
    Ok(v)
}

/// "4 KiB", "1.5 MiB", "1 GiB" for a byte count.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <DEV1>\n  <DEV2>\n\nUsage: fwd <DEV1> <DEV2>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: <DEV1> <DEV2>"
        );
        let rendered = "error: unexpected argument '--page-size' found\n\n  tip: a similar argument exists: '--hugepage-size'\n\nUsage: nvme-perf <DEVICE>\n";
        assert_eq!(
            one_line(rendered),
            "error: unexpected argument '--page-size' found; tip: a similar argument exists: '--hugepage-size'"
        );
    }

    #[test]
    fn seconds_are_finite_non_negative_and_bounded() {
        assert_eq!(parse_seconds("10"), Ok(10.0));
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert_eq!(parse_seconds("0"), Ok(0.0));
        assert_eq!(parse_seconds("315360000"), Ok(MAX_SECONDS));
        for bad in [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "infinity",
            "-1",
            "-0.1",
            "1e300",
            "315360001",
            "",
            "ten",
            "5s",
        ] {
            let e = parse_seconds(bad).expect_err(bad);
            assert!(e.contains("seconds"), "{bad}: {e}");
        }
    }
}
