//! The doorbell registers (NVMe 1.4 §3.1.24-25): what the host last wrote
//! to each one, and which queues exist to take such writes.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The doorbell registers: written by the host at any time, read by the engine.
pub(super) struct Doorbells {
    pub(super) sq_tail: Box<[AtomicU32]>,
    pub(super) cq_head: Box<[AtomicU32]>,
    /// Entries of each SQ, 0 if it does not exist: lets a doorbell write be
    /// checked without the engine lock.
    pub(super) sq_entries: Box<[AtomicU32]>,
    pub(super) cq_entries: Box<[AtomicU32]>,
}

fn atomics(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

impl Doorbells {
    pub(super) fn new(queues: usize) -> Self {
        Doorbells {
            sq_tail: atomics(queues),
            cq_head: atomics(queues),
            sq_entries: atomics(queues),
            cq_entries: atomics(queues),
        }
    }

    /// The host's tail of SQ `qid` (acquire: the entries it wrote before are visible).
    #[inline]
    pub(super) fn sq_tail(&self, qid: u16) -> u32 {
        self.sq_tail[qid as usize].load(Ordering::Acquire)
    }

    /// The host's head of CQ `qid`.
    #[inline]
    pub(super) fn cq_head(&self, qid: u16) -> u32 {
        self.cq_head[qid as usize].load(Ordering::Acquire)
    }

    /// SQ `qid` now exists with `entries` entries and tail 0.
    pub(super) fn open_sq(&self, qid: u16, entries: u32) {
        self.sq_tail[qid as usize].store(0, Ordering::Relaxed);
        self.sq_entries[qid as usize].store(entries, Ordering::Release);
    }

    /// CQ `qid` now exists with `entries` entries and head 0.
    pub(super) fn open_cq(&self, qid: u16, entries: u32) {
        self.cq_head[qid as usize].store(0, Ordering::Relaxed);
        self.cq_entries[qid as usize].store(entries, Ordering::Release);
    }

    /// SQ `qid` is gone: its doorbell is ignored from now on.
    pub(super) fn close_sq(&self, qid: u16) {
        self.sq_entries[qid as usize].store(0, Ordering::Release);
        self.sq_tail[qid as usize].store(0, Ordering::Relaxed);
    }

    /// CQ `qid` is gone.
    pub(super) fn close_cq(&self, qid: u16) {
        self.cq_entries[qid as usize].store(0, Ordering::Release);
        self.cq_head[qid as usize].store(0, Ordering::Relaxed);
    }

    pub(super) fn close_all(&self) {
        for qid in 0..self.sq_tail.len() {
            self.close_sq(qid as u16);
            self.close_cq(qid as u16);
        }
    }
}
