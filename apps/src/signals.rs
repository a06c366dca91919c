//! SIGINT and SIGTERM as a request to stop: the long-running apps (blkfwd,
//! blkrecv, pktgen, fwd, pcap, nvme-perf) call [`install`] once, check
//! [`stop_requested`] in their loops, stop issuing work, drain what is in
//! flight, print their final report and exit 0. A second signal while the
//! app drains ends it at once with status 128 + the signal's number, as a
//! shell reports a process killed by that signal.
//!
//! Ctrl-C in a terminal and `systemctl stop` (SIGTERM) both take this path.
//! A signal that comes within [`SAME_REQUEST`] of the first is the same
//! request delivered twice, not a second one: GNU `timeout` (and `kill` of
//! a process group) signal the process itself and then its group, so one
//! `timeout 60 blkfwd ...` delivers SIGTERM twice within microseconds.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The number of the first SIGINT or SIGTERM received; 0 while none came.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// When the first signal came: CLOCK_MONOTONIC in nanoseconds.
static FIRST_NS: AtomicU64 = AtomicU64::new(0);

/// Signals closer than this to the first one are the same request.
pub const SAME_REQUEST: std::time::Duration = std::time::Duration::from_millis(100);

/// CLOCK_MONOTONIC in nanoseconds (clock_gettime is async-signal-safe).
fn monotonic_ns() -> u64 {
    crate::cputime::clock(libc::CLOCK_MONOTONIC).as_nanos() as u64
}

/// Message written (with `write(2)`, which is async-signal-safe) before a
/// second signal ends the process.
const SECOND_SIGNAL_MESSAGE: &[u8] = b"second signal: exiting at once, without a report\n";

extern "C" fn on_signal(signo: libc::c_int) {
    // The first signal only records itself; the app's loop sees it. A
    // later one (the user asked twice) ends the process here, unless it is
    // the first delivered again (see the module docs).
    let now = monotonic_ns();
    if SIGNAL
        .compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        FIRST_NS.store(now, Ordering::SeqCst);
        return;
    }
    let first = FIRST_NS.load(Ordering::SeqCst);
    if first == 0 || now.saturating_sub(first) < SAME_REQUEST.as_nanos() as u64 {
        return;
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe (signal-
    // safety(7)); the buffer is a static byte string valid for its
    // length. _exit runs no destructors or atexit handlers, which is the
    // point: nothing that may be mid-update in the interrupted thread is
    // touched.
    unsafe {
        libc::write(
            libc::STDERR_FILENO,
            SECOND_SIGNAL_MESSAGE.as_ptr().cast(),
            SECOND_SIGNAL_MESSAGE.len(),
        );
        libc::_exit(128 + signo);
    }
}

/// Install the handler for SIGINT and SIGTERM. Call once, early in `main`.
/// `SA_RESTART` keeps blocking system calls (a UDP `recv`, a file write) from
/// failing with `EINTR`; loops that block must use a timeout to see a stop.
pub fn install() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for signo in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` is a plain C struct for which all-zero bytes
        // are a valid value (empty mask, no flags); it is fully initialised
        // before use, and the pointers passed to sigemptyset/sigaction point
        // to it and live for the calls. The handler only does async-signal-
        // safe work (an atomic, write, _exit).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signo, &action, std::ptr::null_mut());
        }
    }
}

/// Whether a SIGINT or SIGTERM asked the program to stop.
pub fn stop_requested() -> bool {
    SIGNAL.load(Ordering::Relaxed) != 0
}

/// The signal that asked the program to stop, if one did.
pub fn stop_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The name of the signal that asked the program to stop ("SIGINT",
/// "SIGTERM"), if one did: the `stopped_by` of the final reports.
pub fn stop_signal_name() -> Option<String> {
    stop_signal().map(signal_name)
}

/// The name of a stop signal: "SIGINT", "SIGTERM" (or "signal N").
pub fn signal_name(signo: i32) -> String {
    match signo {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// The report's line for a run ended by a signal, e.g. `stopped by SIGTERM
/// after 3.2 s` (`secs`: the run's length), or `None` when no signal came.
pub fn stopped_line(secs: f64) -> Option<String> {
    stop_signal_name().map(|name| format!("stopped by {name} after {secs:.1} s"))
}
