//! nvme-read: copy a byte range of an NVMe namespace (real or emulated)
//! through our driver to a file or to standard output, in the manner of
//! `dd if=/dev/nvme0n1 bs=1 skip=X count=Y`, with progress on stderr.

// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::open::{with_nvme, NvmeJob, Opened};
use apps::{exit_on_error, human_bytes, AppResult};
use clap::Parser;
use dma::Pool;
use drivers::nvme::NvmeController;
use drivers::regs::RegisterAccess;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read a byte range of an NVMe namespace through the user-space driver.
#[derive(Debug, Parser)]
#[command(
    name = "nvme-read",
    version,
    after_help = "DEV is a PCI address bound to vfio-pci (0000:03:00.0) or an emulated \
controller (emu:nvme,file=disk.img). OFFSET and LENGTH are bytes, any alignment \
(the driver reads the whole blocks around them).\n\nExamples:\n  \
nvme-read 0000:03:00.0 --nsid 1 --offset 1M --length 4k | sha256sum\n  \
nvme-read emu:nvme,file=disk.img --out copy.img"
)]
struct Args {
    /// The device: PCI address or emu:nvme[,options].
    device: String,
    /// Namespace to read.
    #[arg(long, default_value_t = 1)]
    nsid: u32,
    /// First byte to read (e.g. 0, 4096, 1M).
    #[arg(long, default_value = "0", value_parser = apps::parse_size)]
    offset: u64,
    /// Bytes to read (default: to the end of the namespace).
    #[arg(long, value_parser = apps::parse_nonzero_size)]
    length: Option<u64>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bytes per read command: a multiple of the LBA size, at most the
    /// controller's largest transfer (MDTS). Default: 128k, or the largest
    /// transfer if that is smaller.
    #[arg(long, value_parser = apps::parse_nonzero_size)]
    bs: Option<u64>,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

struct Read(Args);

impl NvmeJob for Read {
    type Output = ();

    fn run<R: RegisterAccess + 'static>(
        self,
        ctrl: Arc<NvmeController<R>>,
        opened: &Opened,
    ) -> AppResult<()> {
        let a = self.0;
        let ns = ctrl.namespace(a.nsid)?.clone();
        let lba_size = ns.lba_size as u64;
        let ns_bytes = ns.size_blocks * lba_size;
        if a.offset >= ns_bytes {
            return Err(format!(
                "--offset {} is at or past the end of namespace {} ({} bytes): nothing to read; \
                 use an offset below it",
                a.offset, a.nsid, ns_bytes
            )
            .into());
        }
        let length = a.length.unwrap_or(ns_bytes - a.offset);
        if a.offset
            .checked_add(length)
            .is_none_or(|end| end > ns_bytes)
        {
            return Err(format!(
                "--offset {} --length {} ends past the end of namespace {} ({} bytes); use \
                 --length {} or less",
                a.offset,
                length,
                a.nsid,
                ns_bytes,
                ns_bytes - a.offset
            )
            .into());
        }
        // The rule nvme-perf applies to --bs: whole blocks, at most the
        // largest transfer.
        let max = ctrl.info().max_transfer;
        let chunk = match a.bs {
            Some(bs) => {
                apps::check_block_size(bs, lba_size, a.nsid, max)?;
                bs
            }
            None => (max.min(128 << 10) / lba_size).max(1) * lba_size,
        };
        if chunk > max {
            return Err(format!(
                "one block of {lba_size} B is larger than the controller's largest transfer ({})",
                human_bytes(max)
            )
            .into());
        }
        let dest = a
            .out
            .as_ref()
            .map_or("standard output".to_string(), |p| p.display().to_string());
        let mut out: Box<dyn Write> = match &a.out {
            Some(path) => Box::new(io::BufWriter::new(File::create(path).map_err(|e| {
                format!("cannot create {}: {e}; check the path", path.display())
            })?)),
            None => {
                // SAFETY: isatty only inspects the descriptor.
                if unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1 {
                    return Err(
                        "standard output is a terminal; give --out FILE or pipe the \
                                output, e.g. `| sha256sum` or `| xxd | less`"
                            .into(),
                    );
                }
                Box::new(io::BufWriter::new(io::stdout().lock()))
            }
        };
        eprintln!(
            "nvme-read: {} ({}), namespace {}: {} blocks of {} B; reading {} bytes at offset {}",
            opened.name, opened.backend, a.nsid, ns.size_blocks, lba_size, length, a.offset
        );

        let mut qp = ctrl.create_io_queue_pair(2)?;
        let pool = Pool::new(
            ctrl.mapper().clone(),
            1,
            chunk.next_multiple_of(4096) as usize,
            ctrl.region_options(),
        )?;
        let mut buf = pool.alloc().ok_or("the DMA buffer pool is empty (a bug)")?;

        let start = Instant::now();
        let mut last = start;
        let end = a.offset + length;
        let mut pos = a.offset;
        let mut lba = a.offset / lba_size;
        while pos < end {
            let block_start = lba * lba_size;
            let blocks = (end - block_start).div_ceil(lba_size).min(chunk / lba_size);
            buf.set_len((blocks * lba_size) as usize);
            buf = qp
                .read(a.nsid, lba, buf)
                .map_err(|e| format!("reading {blocks} block(s) at LBA {lba} failed: {e}"))?;
            let from = (pos - block_start) as usize;
            let to = (end - block_start).min(blocks * lba_size) as usize;
            out.write_all(&buf.as_slice()[from..to])
                .map_err(|e| format!("writing {dest} failed: {e}; check that it takes data"))?;
            pos = block_start + to as u64;
            lba += blocks;
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                eprintln!(
                    "  {} of {} ({:.0}%)",
                    human_bytes(pos - a.offset),
                    human_bytes(length),
                    (pos - a.offset) as f64 * 100.0 / length.max(1) as f64
                );
            }
        }
        out.flush()
            .map_err(|e| format!("writing {dest} failed: {e}; check that it takes data"))?;
        drop(buf);
        ctrl.delete_io_queue_pair(qp)?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "nvme-read: {length} bytes in {secs:.2} s ({:.1} MiB/s)",
            length as f64 / secs.max(1e-9) / (1 << 20) as f64
        );
        Ok(())
    }
}

fn main() {
    apps::restore_sigpipe();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    let device = args.device.clone();
    exit_on_error(with_nvme(&device, Read(args)));
    apps::trace::session::end();
}
