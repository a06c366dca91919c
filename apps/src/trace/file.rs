//! Reading and writing a trace file by its path, the format chosen by the
//! extension ([`Format::from_path`]). Each format plugs in with one line in
//! [`read()`] and one in [`write()`].
#![forbid(unsafe_code)]

use super::{chrome, jsonl, pcapng, Format, TraceFile};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

/// Read the trace at `path`; errors name the file and the cause in one line.
pub fn read(path: &Path) -> Result<TraceFile, String> {
    let format = Format::from_path(path)?;
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(format!(
            "{} is a directory; give a trace file",
            path.display()
        ));
    }
    let input = BufReader::new(f);
    let read = match format {
        Format::JsonLines => jsonl::read(input),
        Format::Chrome => chrome::read(input),
        Format::Pcapng => pcapng::read(input),
    };
    read.map_err(|e| format!("{}: {e}", path.display()))
}

/// Write `t` to `path` (created or replaced); errors name the file. The
/// writer is chosen before the file is created, so an unknown format
/// leaves no empty file behind.
pub fn write(t: &TraceFile, path: &Path) -> Result<(), String> {
    type Writer = fn(&TraceFile, &mut BufWriter<File>) -> std::io::Result<()>;
    let format = Format::from_path(path)?;
    let writer: Writer = match format {
        Format::JsonLines => |t, out| jsonl::write(t, out),
        Format::Chrome => |t, out| chrome::write(t, out),
        Format::Pcapng => |t, out| pcapng::write(t, out),
    };
    let f = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut out = BufWriter::new(f);
    writer(t, &mut out).map_err(|e| format!("writing {} failed: {e}", path.display()))
}
