//! How to run a controller: the options of [`super::NvmeController::init`].
#![forbid(unsafe_code)]

use crate::trace::Tap;
use dma::RegionOptions;
use std::time::Duration;

/// How to run a controller.
#[derive(Debug, Clone)]
pub struct NvmeOptions {
    /// Where queue memory comes from: [`RegionOptions::HARDWARE`] for a real
    /// device, [`RegionOptions::EMULATED`] for a model.
    pub region: RegionOptions,
    /// Entries of the admin queues (2..=4096, capped by CAP.MQES + 1). Default 32.
    pub admin_depth: u16,
    /// How long a command may take before it counts as lost. Default 5 s.
    pub command_timeout: Duration,
    /// I/O queue pairs to ask for with Set Features (Number of Queues). Default 64.
    pub io_queues: u16,
    /// The driver's own limit on one command's transfer, in bytes (rounded
    /// down to 4 KiB). MDTS limits it further; it matters when MDTS is large
    /// or 0 (no limit). Every command slot gets enough PRP list pages for
    /// this size, chained when more than one page is needed: the default,
    /// 2 MiB, needs exactly one list page (512 entries) per slot.
    pub max_transfer: u64,
    /// Where the driver records what it writes and reads back (off by
    /// default; see [`crate::trace`]).
    pub trace: Tap,
}

impl Default for NvmeOptions {
    fn default() -> Self {
        NvmeOptions {
            region: RegionOptions::HARDWARE,
            admin_depth: 32,
            command_timeout: Duration::from_secs(5),
            io_queues: 64,
            max_transfer: 2 << 20,
            trace: Tap::OFF,
        }
    }
}
