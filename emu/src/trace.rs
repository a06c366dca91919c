#![forbid(unsafe_code)]

use dma::IommuFault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One thing a device model did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// The CPU wrote a register (doorbells are reported as [`TraceEvent::Doorbell`]).
    RegWrite {
        /// Offset in BAR0.
        offset: usize,
        /// Value written.
        value: u64,
    },
    /// The CPU rang a doorbell: `queue` is the device's queue number
    /// (for NVMe: `2 * qid` for a submission tail, `2 * qid + 1` for a
    /// completion head), `value` the new tail or head.
    Doorbell {
        /// Queue number.
        queue: u32,
        /// Value written.
        value: u32,
    },
    /// The device fetched a command or descriptor.
    Fetch {
        /// Queue it came from.
        queue: u32,
        /// Its index in the ring.
        index: u32,
        /// IOVA it was read from.
        iova: u64,
    },
    /// The device read memory by DMA.
    DmaRead {
        /// First IOVA.
        iova: u64,
        /// Length in bytes.
        len: usize,
    },
    /// The device wrote memory by DMA.
    DmaWrite {
        /// First IOVA.
        iova: u64,
        /// Length in bytes.
        len: usize,
    },
    /// The device posted a completion or write-back.
    Completion {
        /// Queue it was posted to.
        queue: u32,
        /// Command identifier or descriptor index.
        id: u32,
        /// Status as the device reports it (0: success).
        status: u32,
    },
    /// A DMA the IOMMU stopped.
    Fault(IommuFault),
    /// Anything else worth telling (a reset, a fatal error).
    Note(String),
}

/// A record of device events, off by default (then recording costs one
/// relaxed load). A test or tool turns it on, runs, and takes the events.
#[derive(Debug, Default)]
pub struct Trace {
    enabled: AtomicBool,
    events: Mutex<Vec<TraceEvent>>,
}

impl Trace {
    /// A disabled, empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start or stop recording.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }

    /// Whether recording is on.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Record the event that `f` builds, if recording is on.
    #[inline]
    pub fn record(&self, f: impl FnOnce() -> TraceEvent) {
        if self.enabled() {
            let e = f();
            self.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e);
        }
    }

    /// Take the events recorded so far.
    pub fn take(&self) -> Vec<TraceEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
