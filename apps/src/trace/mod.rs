//! Trace files: what `--trace FILE` writes and `dmatrace` reads.
//!
//! A trace is a [`TraceFile`]: the device table, the driver threads' names
//! and the events of [`drivers::trace`] in recording order. Three formats,
//! chosen by the file's extension ([`Format::from_path`]):
//! - `.jsonl` ([`jsonl`]): one JSON object a line, the stable schema that
//!   tests and tools read (documented in `docs/trace-format.md`);
//! - `.json` ([`chrome`]): the Chrome trace-event format (Perfetto, chrome://tracing);
//! - `.pcapng` ([`pcapng`]): frames and DMA events on one timeline for Wireshark.
#![forbid(unsafe_code)]

pub mod chrome;
pub mod jsonl;
pub mod lua;
pub mod pcapng;

use drivers::trace::{DeviceInfo, Event, Tracer};
use std::path::Path;

/// The version of the trace schema written in every file's header.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFile {
    /// The devices, by [`Event::dev`].
    pub devices: Vec<DeviceInfo>,
    /// Driver threads' names, by the number in [`drivers::trace::Agent::Driver`].
    pub threads: Vec<String>,
    /// Events each device could keep.
    pub capacity: usize,
    /// Events dropped per device after its buffer filled.
    pub dropped: Vec<usize>,
    /// The events, in recording order.
    pub events: Vec<Event>,
}

impl TraceFile {
    /// Everything `tracer` holds now (its events are taken).
    pub fn take(tracer: &Tracer) -> TraceFile {
        let events = tracer.drain();
        TraceFile {
            devices: tracer.devices(),
            threads: drivers::trace::threads(),
            capacity: tracer.capacity(),
            dropped: tracer.dropped(),
            events,
        }
    }

    /// The register name of `offset` on device `dev`, from the spec tables.
    pub fn reg_name(&self, dev: u16, offset: u64) -> Option<String> {
        self.devices.get(dev as usize)?.kind.reg_name(offset)
    }
}

/// A trace file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines (`.jsonl`).
    JsonLines,
    /// Chrome trace-event JSON (`.json`).
    Chrome,
    /// pcapng (`.pcapng`).
    Pcapng,
}

impl Format {
    /// The format named by `path`'s extension, or an error naming the
    /// three that are known.
    pub fn from_path(path: &Path) -> Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") => Ok(Format::JsonLines),
            Some("json") => Ok(Format::Chrome),
            Some("pcapng") => Ok(Format::Pcapng),
            _ => Err(format!(
                "trace file {}: unknown format; name it .jsonl (JSON lines), .json (Chrome \
                 trace, for ui.perfetto.dev) or .pcapng (Wireshark)",
                path.display()
            )),
        }
    }
}
