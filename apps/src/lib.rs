//! Shared code of the command-line programs: opening devices from device
//! strings, latency histograms, thread CPU time, test frames ([`net`]),
//! the disk-to-wire stream and its patterns ([`stream`]), port statistics
//! ([`port_stats`]).
#![deny(missing_docs)]

pub mod backoff;
pub mod cputime;
pub mod histogram;
pub mod net;
pub mod open;
pub mod port_stats;
pub mod stream;

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

/// Print `error: MESSAGE` and exit with status 1. Apps call this from `main`
/// so a user sees one line naming the cause and the fix, never a panic.
pub fn exit_on_error<T>(r: AppResult<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// A size on the command line (`4096`, `128k`, `8m`, `1g`: the device
/// strings' syntax), as a clap value parser.
pub fn parse_size(s: &str) -> Result<u64, String> {
    crate::open::device::parse_size(s)
        .ok_or_else(|| format!("'{s}' is not a size; write e.g. 4096, 4k, 128k, 8m or 1g"))
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
