//! An injected fault: a transmit engine that stops dead (a hung TX DMA
//! engine): after a given number of further frames it fetches no more
//! descriptors, writes nothing back and puts nothing on the wire, on every
//! queue, until the fault is cleared. Unlike a PAUSE hold
//! ([`NicModel::set_tx_paused`]) nothing about it is visible in a register:
//! the driver sees only that its frames never complete.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// Frames the TX engine still sends; `u64::MAX`: no fault armed.
#[derive(Debug)]
pub(super) struct TxStop(pub(super) AtomicU64);

impl Default for TxStop {
    fn default() -> Self {
        TxStop(AtomicU64::new(u64::MAX))
    }
}

impl TxStop {
    /// Whether the engine has stopped (no more descriptors are processed).
    #[inline]
    pub(super) fn stopped(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }

    /// A frame was finished (sent or dropped): one less before the stop.
    #[inline]
    pub(super) fn frame_done(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != 0 && n != u64::MAX).then(|| n - 1)
            });
    }
}
