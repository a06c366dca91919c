//! How fast the trace's recording path takes events: `Tap::record` in a
//! tight loop on one or more threads into one tracer, with tracing on and
//! with tracing off, so that a bench (bench/trace.sh) can report the
//! in-process record rate apart from what the apps around it cost.
//!
//! ```text
//! cargo run --release -p drivers --example trace_rate -- [--events N] [--threads T] [--raw B]
//! ```
//!
//! Each thread records N events (default 2,000,000) of a descriptor-sized
//! payload (B raw bytes, default 16: a CQE or NIC descriptor; 64 for an
//! SQE) through its own device's tap (as a driver thread and a device
//! thread do), all devices in one tracer, whose capacity holds them all
//! (nothing is dropped). Prints one line per measure:
//!
//! ```text
//! on:  N events by T threads in S s: R M events/s (X ns per event per thread); CPU C ns per event
//! off: ...
//! ```
//!
//! Wall time depends on how much of the machine the threads get; the CPU
//! time per event (each thread's time on a CPU, from
//! /proc/thread-self/schedstat, user and system: the page faults of first
//! touching the buffer count) does much less.
#![forbid(unsafe_code)]

use drivers::trace::{DeviceInfo, DeviceKind, Event, Kind, Queue, Tap, Tracer};
use std::hint::black_box;
use std::io::Write;
use std::process::exit;
use std::time::Instant;

struct Args {
    events: usize,
    threads: usize,
    raw: usize,
}

fn usage() -> &'static str {
    "usage: trace_rate [--events N] [--threads T] [--raw B]\n\
     \x20 --events N   events each thread records (default 2000000)\n\
     \x20 --threads T  recording threads, each with its own device (default 1)\n\
     \x20 --raw B      raw bytes per event, 0 to 64 (default 16)"
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        events: 2_000_000,
        threads: 1,
        raw: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "-h" | "--help" => {
                println!("{}", usage());
                exit(0);
            }
            "--events" => &mut a.events,
            "--threads" => &mut a.threads,
            "--raw" => &mut a.raw,
            _ => return Err(format!("unknown argument '{flag}' (see --help)")),
        };
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a number (see --help)"))?;
        *slot = v
            .parse()
            .map_err(|_| format!("{flag} {v}: not a whole number (see --help)"))?;
    }
    if a.events == 0 || a.threads == 0 || a.raw > 64 {
        return Err(
            "--events and --threads must be at least 1 and --raw at most 64 (see --help)".into(),
        );
    }
    Ok(a)
}

/// Record `n` events through `tap`, each with `raw` bytes of `payload`.
fn record(tap: &Tap, n: usize, payload: &[u8]) {
    for i in 0..n {
        let i = black_box(i);
        tap.record(|| {
            Event::new(Kind::DescWrite)
                .queue(Queue::Sq(1))
                .index(i as u32 & 1023)
                .addr(0x1_0000_0000 + (i as u64 & 1023) * 64)
                .bytes(payload)
        });
    }
}

/// This thread's time on a CPU so far, in ns (the first field of
/// /proc/thread-self/schedstat); None where that file is missing.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Time `threads` threads recording `events` each through their taps;
/// returns the seconds from the first start to the last end and the CPU
/// ns the threads spent in all (None if not known).
fn run(taps: &[Tap], events: usize, payload: &[u8]) -> (f64, Option<u64>) {
    let start = Instant::now();
    let cpu = std::thread::scope(|s| {
        let threads: Vec<_> = taps
            .iter()
            .map(|tap| {
                s.spawn(move || {
                    let before = cpu_ns();
                    record(tap, events, payload);
                    Some(cpu_ns()? - before?)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().ok().flatten())
            .sum::<Option<u64>>()
    });
    (start.elapsed().as_secs_f64(), cpu)
}

fn report(what: &str, total: usize, threads: usize, (secs, cpu): (f64, Option<u64>)) {
    let cpu = cpu.map_or_else(
        || "CPU time unknown".to_string(),
        |ns| format!("CPU {:.1} ns per event", ns as f64 / total as f64),
    );
    // A closed standard output (| head) ends the report, not a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{what} {total} events by {threads} threads in {secs:.3} s: {:.2} M events/s ({:.1} ns per event per thread); {cpu}",
        total as f64 / secs / 1e6,
        secs * 1e9 * threads as f64 / total as f64
    );
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("trace_rate: {e}");
            exit(2);
        }
    };
    let payload: Vec<u8> = (0..a.raw as u8).collect();
    let total = a.events * a.threads;

    let tracer = Tracer::new(a.events);
    let taps: Vec<Tap> = (0..a.threads)
        .map(|i| {
            tracer.device(DeviceInfo {
                name: format!("bench{i}"),
                kind: DeviceKind::Nvme { dstrd: 0 },
                emulated: true,
            })
        })
        .collect();
    let on = run(&taps, a.events, &payload);
    let kept = tracer.drain().len();
    if kept != total {
        eprintln!("trace_rate: {kept} events kept of {total} recorded (a bug: none may drop)");
        exit(1);
    }
    report("on: ", total, a.threads, on);

    let off: Vec<Tap> = (0..a.threads).map(|_| Tap::OFF).collect();
    report("off:", total, a.threads, run(&off, a.events, &payload));
}
