//! The device work: the data path entry points (a TX ring processed, frames
//! moved from the wire), the rounds of a poll and the inline mode's
//! receive work ([`Pollable`]).
#![forbid(unsafe_code)]

use super::model::NicModel;
use super::queue_state::ACTIVE;
use crate::{DeviceWaker, Pollable, RunMode};
use std::sync::atomic::Ordering;

/// Frames moved from the wire per poll, and descriptors processed per TX
/// queue per poll, in threaded mode (bounds the time a poll holds a lock).
pub(super) const RX_BUDGET: usize = 64;
pub(super) const TX_BUDGET: usize = 256;

/// Threaded polls with nothing to do after which the wire is checked only
/// on every [`IDLE_WIRE_EVERY`]th poll: a check of a socket or TAP wire is a
/// system call, and a device thread spins through thousands of idle polls
/// before it backs off, so cheap idle polls give the CPU back sooner.
const IDLE_POLLS_BEFORE_THROTTLE: u32 = 64;
const IDLE_WIRE_EVERY: u32 = 16;

impl NicModel {
    /// Move frames and descriptors until nothing is left to do (or a bound
    /// on rounds is reached, for wires that never run dry). True if
    /// anything was done.
    pub fn poll_until_idle(&self) -> bool {
        let mut any = false;
        for _ in 0..1024 {
            if !self.poll_round(true) {
                break;
            }
            any = true;
        }
        any
    }

    /// One round of device work: every TX ring up to its budget, then the
    /// wire (always when `check_wire`, else as the idle throttle allows).
    fn poll_round(&self, check_wire: bool) -> bool {
        if self.is_removed() {
            return false;
        }
        self.hostile_act();
        let mut did = false;
        for q in 0..self.tx_span.load(Ordering::Acquire).min(self.queues) {
            did |= self.tx_process(q, TX_BUDGET);
        }
        let idle = self.idle_polls.load(Ordering::Relaxed);
        if check_wire
            || did
            || idle < IDLE_POLLS_BEFORE_THROTTLE
            || idle.is_multiple_of(IDLE_WIRE_EVERY)
        {
            did |= self.rx_poll(RX_BUDGET);
        }
        let next = if did { 0 } else { idle.saturating_add(1) };
        self.idle_polls.store(next, Ordering::Relaxed);
        did
    }

    // ---- the data path entry points ----

    /// Process the TX ring of queue `q` up to `budget` descriptors. True if
    /// anything was done.
    pub(super) fn tx_process(&self, q: u16, budget: usize) -> bool {
        let s = &self.txq[q as usize];
        if s.state.load(Ordering::Acquire) != ACTIVE
            || s.tail.load(Ordering::Acquire) == s.head.load(Ordering::Acquire)
            || !self.bit(self.layout.tx_enable)
            || self.tx_paused.load(Ordering::Acquire)
        {
            return false;
        }
        let mut guard = self.tx_ring(q);
        match guard.as_mut() {
            Some(ring) => ring.run(self, q, budget),
            None => false,
        }
    }

    /// Move up to `budget` frames from the wire into the receive rings.
    pub(super) fn rx_poll(&self, budget: usize) -> bool {
        self.rx_engine().poll(self, budget)
    }

    /// In inline mode, the receive work the access rules promise: frames
    /// waiting on the wire go into the rings now.
    #[inline]
    pub(super) fn deliver_inline(&self) {
        if self.mode == RunMode::Inline {
            while self.rx_poll(RX_BUDGET) {}
        }
    }
}

impl Pollable for NicModel {
    fn poll(&self) -> bool {
        self.poll_round(false)
    }

    /// None while hostile mode is on: its acts happen in device rounds,
    /// idle ones included (a DD withheld is ended by a later act), so the
    /// thread keeps polling then.
    fn waker(&self) -> Option<&DeviceWaker> {
        (!self.hostile.on.load(Ordering::Acquire)).then_some(&*self.waker)
    }

    /// The wire throttle of idle rounds ends: a thread woken by a frame's
    /// arrival must look at the wire in its first round.
    fn woke(&self) {
        self.idle_polls.store(0, Ordering::Relaxed);
    }
}
