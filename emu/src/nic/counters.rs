//! The model's own counters as atomics ([`Counters`]), and [`bump`].
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// The model's own counters ([`ModelCounters`](super::config::ModelCounters)) as atomics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub rx_frames: AtomicU64,
    pub rx_delivered: AtomicU64,
    pub rx_filtered: AtomicU64,
    pub rx_disabled: AtomicU64,
    pub rx_no_descriptor: AtomicU64,
    pub rx_oversize: AtomicU64,
    pub rx_runt: AtomicU64,
    pub rx_dma_faults: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_dma_faults: AtomicU64,
    pub tx_malformed: AtomicU64,
    pub tx_offload_errors: AtomicU64,
    pub tx_link_down: AtomicU64,
    pub queue_errors: AtomicU64,
    pub wire_errors: AtomicU64,
}

/// Add one to a counter.
#[inline]
pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
