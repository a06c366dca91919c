//! Statistics: the datasheet counters the data path adds to, the per-queue
//! counter map, and clear-on-read register reads.
#![forbid(unsafe_code)]

use super::layout::{Ctr, Half};
use super::model::NicModel;
use std::sync::atomic::Ordering;

impl NicModel {
    // ---- statistics ----

    /// Add `n` to the statistics counter `c`.
    #[inline]
    pub(super) fn count(&self, c: Ctr, n: u64) {
        self.stats[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The per-queue statistics counter of queue `q` (82599: RQSMR map).
    #[inline]
    pub(super) fn queue_counter(&self, q: u16) -> Option<usize> {
        let n = match self.layout.rqsmr {
            Some(rqsmr) => {
                use spec::nic::ixgbe::{RQSMR_COUNTER_MASK, RQSMR_QUEUES_PER_REG};
                let q = q as usize;
                let word = self.load(rqsmr(q / RQSMR_QUEUES_PER_REG));
                (word.to_le_bytes()[q % RQSMR_QUEUES_PER_REG] & RQSMR_COUNTER_MASK) as usize
            }
            None => q as usize,
        };
        (n < self.queue_drop.len()).then_some(n)
    }

    pub(super) fn read_counter(&self, c: Ctr, half: Half) -> u32 {
        let i = c as usize;
        match half {
            Half::Whole => self.stats[i].swap(0, Ordering::AcqRel).min(u32::MAX as u64) as u32,
            Half::Low => {
                let v = self.stats[i].swap(0, Ordering::AcqRel);
                self.latches[i].store((v >> 32) as u32, Ordering::Release);
                v as u32
            }
            Half::High => self.latches[i].swap(0, Ordering::AcqRel),
        }
    }
}
