//! The NVMe driver: controller reset and enable, Identify, I/O queue pairs
//! with PRP lists up to MDTS, completion polling by phase tag, typed status
//! decoding and timeouts. Generic over [`crate::regs::RegisterAccess`], so
//! the same code drives a real controller through VFIO and the emulated one
//! in the `emu` crate (`emu::nvme`).
//!
//! ```text
//! NvmeController::init(regs, mapper, opts)      reset, enable, identify, number of queues
//!   .create_io_queue_pair(depth) -> IoQueuePair  CQ then SQ; one per thread
//!      submit_read/submit_write/submit_flush     fill entries (no doorbell)
//!      ring_doorbell()                           one tail write per batch
//!      poll(max, |Completion| ..)                phase tag, validated, one head write
//!      read/write/flush                          blocking, split at MDTS, bounded waits
//! ```
//!
//! Files: `controller` (init, admin commands, queue pair lifetime),
//! `options` (how to run it), `shared` (what the controller and its queue
//! pairs share, and the enable/disable handshake), `admin` (the admin queue), `io_queue` (the I/O queue pair API), `queue` (a queue
//! pair's memory, submission and completion validation), `ring` (SQ/CQ index
//! arithmetic), `slots` (per-command state), `command` (entry layout), `prp`
//! (PRP construction), `identify` (Identify data parsing), `events` (what
//! the queues record in the descriptor trace), `status` and `error`. Every number comes from `spec`.
#![forbid(unsafe_code)]

mod admin;
mod command;
mod controller;
mod error;
mod events;
mod identify;
mod io_queue;
mod options;
pub mod prp;
mod queue;
mod ring;
mod shared;
mod slots;
mod status;

pub use controller::NvmeController;
pub use error::NvmeError;
pub use identify::{ControllerInfo, LbaFormat, NamespaceInfo, NvmeVersion};
pub use io_queue::{Completion, IoQueuePair, RwFailed};
pub use options::NvmeOptions;
pub use status::{NvmeStatus, StatusKind};
