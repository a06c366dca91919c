//! How polling loops wait when they find nothing to do.
//!
//! [`Backoff`] (shared with the drivers and the emulated devices, from
//! [`dma`]): spin first (lowest latency), then yield, then sleep briefly,
//! so that idle apps and emulated devices do not starve each other of the
//! cores. [`Pacer`]: for a loop that keeps device queues fed, sleeps whose
//! length is tuned so that a queue is about half drained at each wake: few
//! wakes per byte (each costs a system call and two context switches) and
//! no queue left idle.
#![forbid(unsafe_code)]

use std::time::Duration;

/// The one polling back-off (its `default()` is the apps' thresholds).
pub use dma::Backoff;

/// Empty polls a [`Pacer`] spins before it sleeps.
pub const PACER_SPINS: u32 = 2;
/// Shortest and longest sleep of a [`Pacer`].
pub const PACER_MIN: Duration = Duration::from_micros(10);
/// See [`PACER_MIN`].
pub const PACER_MAX: Duration = Duration::from_millis(40);

/// Sleeps of a length that follows the devices' pace.
///
/// After [`PACER_SPINS`] empty polls the loop sleeps. On waking it reports
/// (with [`Pacer::woke`]) the largest fraction of a queue's outstanding
/// work that the device finished meanwhile: nearly all of it means the
/// queue may have run dry, so the next sleep is halved; less than 40 %
/// means the wake came early, so the next sleep is a quarter longer (twice
/// as long if nothing at all was done). The length settles where a wake
/// finds about half of a queue done.
#[derive(Debug)]
pub struct Pacer {
    empty: u32,
    sleep: Duration,
    max: Duration,
}

impl Default for Pacer {
    /// Starts at 50 µs, at most [`PACER_MAX`].
    fn default() -> Self {
        Pacer::new(Duration::from_micros(50), PACER_MAX)
    }
}

impl Pacer {
    /// A pacer whose first sleep is `start` and whose sleeps never exceed
    /// `max` (nor go below [`PACER_MIN`]): a loop that must answer a burst
    /// after a long idle time within `max` (a receiver whose ring holds
    /// about that much traffic) bounds it so.
    pub fn new(start: Duration, max: Duration) -> Pacer {
        let max = max.max(PACER_MIN);
        Pacer {
            empty: 0,
            sleep: start.clamp(PACER_MIN, max),
            max,
        }
    }

    /// The loop found work.
    #[inline]
    pub fn busy(&mut self) {
        self.empty = 0;
    }

    /// The loop found nothing: spin, or sleep. True if it slept; the caller
    /// should then call [`Self::woke`] after its next poll.
    #[inline]
    pub fn idle(&mut self) -> bool {
        self.empty = self.empty.saturating_add(1);
        if self.empty <= PACER_SPINS {
            std::hint::spin_loop();
            false
        } else {
            std::thread::sleep(self.sleep);
            true
        }
    }

    /// What the first poll after a sleep found: `drained` is the largest
    /// fraction (0 to 1) of a device queue's outstanding work completed
    /// during the sleep.
    pub fn woke(&mut self, drained: f64) {
        if drained >= 0.9 {
            self.sleep = (self.sleep / 2).max(PACER_MIN);
        } else if drained == 0.0 {
            // Nothing at all: devices that complete in bursts leave no
            // hint when the next one comes; double until it is found.
            self.sleep = (self.sleep * 2).min(self.max);
        } else if drained < 0.4 {
            self.sleep = (self.sleep * 5 / 4).min(self.max);
        }
    }

    /// The current sleep length.
    pub fn sleep_len(&self) -> Duration {
        self.sleep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_halves_after_a_dry_queue_and_grows_after_an_early_wake() {
        let mut p = Pacer::default();
        let start = p.sleep_len();
        p.woke(1.0);
        assert_eq!(p.sleep_len(), start / 2);
        p.woke(0.6);
        assert_eq!(p.sleep_len(), start / 2, "about half drained: keep");
        p.woke(0.2);
        assert_eq!(p.sleep_len(), start / 2 * 5 / 4);
        p.woke(0.0);
        assert_eq!(p.sleep_len(), start / 2 * 5 / 4 * 2, "nothing done: twice");
        for _ in 0..100 {
            p.woke(0.0);
        }
        assert_eq!(p.sleep_len(), PACER_MAX);
        for _ in 0..100 {
            p.woke(1.0);
        }
        assert_eq!(p.sleep_len(), PACER_MIN);
    }

    #[test]
    fn pacer_new_bounds_the_sleep() {
        let max = Duration::from_micros(800);
        let mut p = Pacer::new(Duration::from_millis(5), max);
        assert_eq!(p.sleep_len(), max, "the start is clamped to the bound");
        for _ in 0..10 {
            p.woke(0.0);
        }
        assert_eq!(p.sleep_len(), max);
        p.woke(1.0);
        assert_eq!(p.sleep_len(), max / 2);
        let p = Pacer::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(p.sleep_len(), PACER_MIN, "never below PACER_MIN");
    }

    #[test]
    fn pacer_spins_before_it_sleeps_and_busy_resets() {
        let mut p = Pacer::default();
        for _ in 0..PACER_SPINS {
            assert!(!p.idle());
        }
        p.busy();
        for _ in 0..PACER_SPINS {
            assert!(!p.idle());
        }
        assert!(p.idle(), "sleeps after the spins");
        assert!(p.idle(), "and again while idle");
    }
}
