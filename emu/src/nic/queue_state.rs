//! What the register side and the data path share about a queue: its
//! direction ([`Dir`]), its state (`DISABLED`, `ACTIVE`, `ERROR`) and the
//! registers the data path reads without its lock ([`QueueShared`]).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU8};

/// Queue state: not enabled (or not yet configured).
pub(super) const DISABLED: u8 = 0;
/// Queue state: enabled with a valid ring; the device works on it.
pub(super) const ACTIVE: u8 = 1;
/// Queue state: stopped after a bad ring register or an unreachable ring.
/// Leaves it by disabling and re-enabling the queue, or by a device reset.
pub(super) const ERROR: u8 = 2;

/// Which way a queue goes, for messages and the trace's queue names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Rx,
    Tx,
}

impl Dir {
    pub(super) fn name(self) -> &'static str {
        match self {
            Dir::Rx => "RX",
            Dir::Tx => "TX",
        }
    }
}

/// The registers of one queue that the register side writes and the data
/// path reads without taking the data path's lock.
#[derive(Debug, Default)]
pub(super) struct QueueShared {
    /// The device's head (RDH/TDH as read).
    pub head: AtomicU32,
    /// The driver's tail (RDT/TDT as written).
    pub tail: AtomicU32,
    /// Descriptors in the ring while ACTIVE, else 0.
    pub entries: AtomicU32,
    /// DISABLED, ACTIVE or ERROR.
    pub state: AtomicU8,
}
