//! The trace of one app run: `--trace FILE`, `--trace-events N` and
//! `--step`, shared by every app.
//!
//! An app flattens [`TraceArgs`] into its command line, calls [`start`]
//! before it opens any device (a file name of unknown format is refused
//! there, before anything else happens), and [`finish`] when it ends;
//! [`crate::exit_on_error`] finishes the trace on an error exit as well, and
//! the apps that stop on SIGINT or SIGTERM end normally, so the file is
//! written then too. Between the two, the device openers of [`crate::open`]
//! register each device they open ([`device`]) and put the tap on its BAR,
//! its driver's options and (emulated) its model.
//!
//! One session per process: one [`Tracer`], so that every device lands in
//! one timeline.
#![forbid(unsafe_code)]

use super::step::{EventSource, Stepper};
use super::{chrome, jsonl, pcapng, Format, TraceFile};
use crate::AppResult;
use drivers::trace::{DeviceInfo, DeviceKind, Event, Tap, Tracer, DEFAULT_CAPACITY};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The trace options of every app.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct TraceArgs {
    /// Record every register access and descriptor of the run (and, on an
    /// emulated device, what the device did) into FILE at exit; the format
    /// comes from the extension: .jsonl (JSON lines), .json (Chrome trace,
    /// for ui.perfetto.dev) or .pcapng (Wireshark).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Events kept per device; later ones are dropped (and counted) after
    /// one "truncated" event.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CAPACITY, value_parser = parse_events)]
    pub trace_events: usize,
    /// After each doorbell or tail write, print the events it caused and a
    /// picture of the ring, then wait for Enter (end of input: run on).
    /// Emulated devices in mode=inline only.
    #[arg(long)]
    pub step: bool,
}

/// `--trace-events`: a count of at least 1.
fn parse_events(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of events; give 1 or more, e.g. --trace-events 100000"
        )),
    }
}

/// How a [`TraceFile`] is written to a file.
type Writer = fn(&TraceFile, &mut BufWriter<File>) -> std::io::Result<()>;

/// The writer of `format`: the one place that maps a format to its writer.
fn writer(format: Format) -> Writer {
    match format {
        Format::JsonLines => jsonl::write,
        Format::Chrome => chrome::write,
        Format::Pcapng => pcapng::write,
    }
}

/// Where the trace goes.
struct Output {
    path: PathBuf,
    file: File,
    write: Writer,
}

/// The process's trace.
pub struct Session {
    tracer: Arc<Tracer>,
    /// The file, until [`finish`] writes it; None with `--step` alone.
    out: Mutex<Option<Output>>,
    /// Events taken from the tracer early (by the stepper), kept for the file.
    taken: Mutex<Vec<Event>>,
    stepper: Option<Stepper>,
}

static SESSION: OnceLock<Session> = OnceLock::new();

/// Start the process's trace as `args` ask (nothing without `--trace` or
/// `--step`). Refuses, before any device is opened, a file name of unknown
/// format and a file that cannot be created.
pub fn start(args: &TraceArgs) -> AppResult<()> {
    if args.trace.is_none() && !args.step {
        return Ok(());
    }
    let out = match &args.trace {
        None => None,
        Some(path) => {
            let format = Format::from_path(path)?;
            let write = writer(format);
            let file = File::create(path).map_err(|e| {
                format!(
                    "trace file {}: cannot create it ({e}); give a path in a directory you may write",
                    path.display()
                )
            })?;
            Some(Output {
                path: path.clone(),
                file,
                write,
            })
        }
    };
    let session = Session {
        tracer: Tracer::new(args.trace_events),
        out: Mutex::new(out),
        taken: Mutex::new(Vec::new()),
        stepper: args.step.then(Stepper::new),
    };
    SESSION
        .set(session)
        .map_err(|_| "the trace was started twice in one process (a bug)".into())
}

/// The process's trace, if one was started.
pub fn current() -> Option<&'static Session> {
    SESSION.get()
}

/// Whether `--step` was given.
pub fn stepping() -> bool {
    current().is_some_and(|s| s.stepper.is_some())
}

/// Refuse `--step` for the device `device` unless it is emulated and
/// inline (`inline`): only there is the device's work for a doorbell done
/// by the time the write returns.
pub fn check_step(device: &str, inline: bool) -> AppResult<()> {
    if stepping() && !inline {
        return Err(format!(
            "--step needs an emulated device in mode=inline (e.g. emu:nvme,mode=inline or \
             emu:igb,mode=inline); {device} is not one"
        )
        .into());
    }
    Ok(())
}

/// Register the device opened by `name` and return the tap its BAR, driver
/// and model record through ([`Tap::OFF`] when no trace was started).
pub fn device(name: &str, kind: DeviceKind, emulated: bool) -> Tap {
    match current() {
        None => Tap::OFF,
        Some(s) => s.tracer.device(DeviceInfo {
            name: name.to_string(),
            kind,
            emulated,
        }),
    }
}

impl Session {
    /// The tracer.
    pub fn tracer(&self) -> &Arc<Tracer> {
        &self.tracer
    }

    /// The stepper, with `--step`.
    pub fn stepper(&self) -> Option<&Stepper> {
        self.stepper.as_ref()
    }

    /// With `--step`: the stepper and where its hooks take the events from
    /// (this session, which keeps them for the file too).
    pub fn step_parts(&'static self) -> Option<(&'static Stepper, EventSource)> {
        let stepper = self.stepper.as_ref()?;
        let source: EventSource = Arc::new(move || (self.tracer.devices(), self.take_new()));
        Some((stepper, source))
    }

    /// The events recorded since the last call (in order), kept for the
    /// file as well.
    pub fn take_new(&self) -> Vec<Event> {
        let new = self.tracer.drain();
        self.taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(&new);
        new
    }

    /// Everything recorded, for the file.
    fn trace_file(&self) -> TraceFile {
        let mut t = TraceFile::take(&self.tracer);
        let taken = std::mem::take(&mut *self.taken.lock().unwrap_or_else(|p| p.into_inner()));
        if !taken.is_empty() {
            t.events.extend(taken);
            t.events.sort_unstable_by_key(|e| e.seq);
        }
        t
    }
}

/// Write the trace file, if `--trace` was given and it was not written yet,
/// and say so on standard error in one line: `trace: N events written to
/// FILE`, with the number dropped when a device's buffer filled. A run
/// that opened no device leaves no file. False if the file could not be
/// written (the line then says why).
pub fn finish() -> bool {
    let Some(s) = current() else { return true };
    let Some(out) = s.out.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return true;
    };
    let t = s.trace_file();
    if t.devices.is_empty() {
        // Refused before any device was opened: nothing to show.
        drop(out.file);
        let _ = std::fs::remove_file(&out.path);
        return true;
    }
    let mut w = BufWriter::new(out.file);
    let written = (out.write)(&t, &mut w).and_then(|()| w.flush());
    match written {
        Ok(()) => {
            eprintln!("{}", summary(&t, &out.path));
            true
        }
        Err(e) => {
            eprintln!(
                "error: trace file {}: writing failed ({e}); give a path on a file system with room",
                out.path.display()
            );
            false
        }
    }
}

/// [`finish`] at the end of a run: exit with status 1 if the file could not
/// be written.
pub fn end() {
    if !finish() {
        std::process::exit(1);
    }
}

/// `trace: N events written to FILE (K dropped after the C-event buffer filled)`.
fn summary(t: &TraceFile, path: &Path) -> String {
    let dropped: usize = t.dropped.iter().sum();
    let mut line = format!(
        "trace: {} events written to {}",
        t.events.len(),
        path.display()
    );
    if dropped > 0 {
        line.push_str(&format!(
            " ({dropped} dropped after the {}-event buffer filled)",
            t.capacity
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_counts_are_at_least_one() {
        assert_eq!(parse_events("10"), Ok(10));
        for bad in ["0", "-1", "many", ""] {
            assert!(parse_events(bad).unwrap_err().contains("number of events"));
        }
    }

    #[test]
    fn the_summary_names_what_was_dropped() {
        let t = TraceFile {
            devices: Vec::new(),
            threads: Vec::new(),
            capacity: 10,
            dropped: vec![4, 3],
            events: vec![Event::new(drivers::trace::Kind::Truncated); 11],
        };
        assert_eq!(
            summary(&t, Path::new("t.jsonl")),
            "trace: 11 events written to t.jsonl (7 dropped after the 10-event buffer filled)"
        );
        let t = TraceFile {
            dropped: vec![0],
            ..t
        };
        assert_eq!(
            summary(&t, Path::new("t.jsonl")),
            "trace: 11 events written to t.jsonl"
        );
    }
}
