//! nvme-identify: what an NVMe controller (real or emulated) says about
//! itself and its namespaces, in the manner of `nvme id-ctrl` and
//! `spdk_nvme_identify`.
#![forbid(unsafe_code)]
// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::open::{with_nvme, NvmeJob, Opened};
use apps::{exit_on_error, human_bytes, AppResult};
use clap::Parser;
use drivers::nvme::NvmeController;
use drivers::regs::RegisterAccess;
use std::sync::Arc;

/// Print an NVMe controller's identity, limits and namespaces.
#[derive(Debug, Parser)]
#[command(
    name = "nvme-identify",
    version,
    after_help = "DEV is a PCI address bound to vfio-pci (0000:03:00.0) or an emulated \
controller (emu:nvme,size=1G; emu:nvme,file=disk.img,lba=4096; \
emu:nvme,namespaces=2,mdts=6).\n\nExample:\n  nvme-identify emu:nvme,size=1G"
)]
struct Args {
    /// The device: PCI address or emu:nvme[,options].
    device: String,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

struct Identify;

fn row(name: &str, value: impl std::fmt::Display) {
    println!("  {:<22} {value}", format!("{name}:"));
}

impl NvmeJob for Identify {
    type Output = ();

    fn run<R: RegisterAccess + 'static>(
        self,
        ctrl: Arc<NvmeController<R>>,
        opened: &Opened,
    ) -> AppResult<()> {
        let c = ctrl.info();
        println!("Controller {} ({})", opened.name, opened.backend);
        row("Vendor ID", format!("{:04x}", c.vid));
        row("Subsystem Vendor ID", format!("{:04x}", c.ssvid));
        row("Serial Number", &c.serial);
        row("Model Number", &c.model);
        row("Firmware Version", &c.firmware);
        row(
            "NVMe Version",
            format!(
                "{}.{}.{}",
                c.version.major, c.version.minor, c.version.tertiary
            ),
        );
        row("Controller ID", c.cntlid);
        match c.mdts_bytes {
            Some(b) => row(
                "Max Data Transfer",
                format!("{} (MDTS {})", human_bytes(b), b.trailing_zeros() - 12),
            ),
            None => row(
                "Max Data Transfer",
                format!(
                    "unlimited (MDTS 0); the driver uses {}",
                    human_bytes(c.max_transfer)
                ),
            ),
        }
        row("Max Queue Entries", format!("{} (CAP.MQES + 1)", c.mqes));
        row(
            "Max Outstanding Cmds",
            match c.maxcmd {
                0 => "not reported".to_string(),
                n => n.to_string(),
            },
        );
        row("Doorbell Stride", format!("{} bytes", 4u32 << c.dstrd));
        row("Ready Timeout", format!("{:?} (CAP.TO)", c.ready_timeout));
        row("I/O Queues Granted", c.io_queues);
        row(
            "Volatile Write Cache",
            if c.vwc { "present" } else { "not present" },
        );
        row("Namespaces (NN)", c.nn);
        for ns in ctrl.namespaces() {
            println!("Namespace {}", ns.nsid);
            row(
                "Size",
                format!(
                    "{} blocks of {} B ({})",
                    ns.size_blocks,
                    ns.lba_size,
                    human_bytes(ns.size_blocks * ns.lba_size as u64)
                ),
            );
            row("Capacity", format!("{} blocks", ns.capacity_blocks));
            row("Utilization", format!("{} blocks", ns.utilization_blocks));
            for (i, f) in ns.lba_formats.iter().enumerate() {
                row(
                    &format!("LBA Format {i}"),
                    format!(
                        "{} B data, {} B metadata{}",
                        f.data_size,
                        f.metadata_size,
                        if i == ns.formatted_index as usize {
                            " (in use)"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        if ctrl.namespaces().is_empty() {
            println!("No active namespaces.");
        }
        Ok(())
    }
}

fn main() {
    apps::restore_sigpipe();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    exit_on_error(with_nvme(&args.device, Identify));
    apps::trace::session::end();
}
