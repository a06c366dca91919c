//! How polling loops wait when they find nothing to do: spin first (lowest
//! latency), then yield the core, then sleep, so that an idle loop and the
//! threads it waits for (an emulated device, the other app threads) do not
//! starve each other. The drivers' wait loops, the emulated devices'
//! threads and the apps' forwarding loops all wait this way, each with its
//! own thresholds. It lives here because this is the lowest crate all of
//! them depend on.

use std::time::Duration;

/// Counts the empty polls of one loop and waits accordingly.
#[derive(Debug, Clone)]
pub struct Backoff {
    idle: u32,
    spin: u32,
    yield_until: u32,
    sleep: Option<Duration>,
}

impl Default for Backoff {
    /// The apps' loops: 2,000 spins, yields up to 20,000 empty polls, then
    /// 20 µs sleeps.
    fn default() -> Self {
        Backoff::new(2_000, 20_000, Some(Duration::from_micros(20)))
    }
}

impl Backoff {
    /// Empty polls number 1, 2, ...: below `spin` a poll spins, below
    /// `yield_until` it yields, after that it sleeps `sleep` (or, with
    /// None, keeps yielding).
    pub const fn new(spin: u32, yield_until: u32, sleep: Option<Duration>) -> Backoff {
        Backoff {
            idle: 0,
            spin,
            yield_until,
            sleep,
        }
    }

    /// A loop that found work: spin again.
    #[inline]
    pub fn reset(&mut self) {
        self.idle = 0;
    }

    /// A loop that found nothing: wait a little, longer the longer it idles.
    #[inline]
    pub fn idle(&mut self) {
        self.idle = self.idle.saturating_add(1);
        if self.idle < self.spin {
            std::hint::spin_loop();
        } else if self.idle < self.yield_until {
            std::thread::yield_now();
        } else if let Some(d) = self.sleep {
            std::thread::sleep(d);
        } else {
            std::thread::yield_now();
        }
    }

    /// Empty polls since the last [`reset`](Self::reset) (saturating).
    pub fn idle_polls(&self) -> u32 {
        self.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn spins_then_yields_then_sleeps() {
        // The sleep is long beside a yield, even on a loaded 2-core machine
        // where a yield may wait for a time slice.
        let sleep = Duration::from_millis(300);
        let mut b = Backoff::new(3, 5, Some(sleep));
        let t = Instant::now();
        for _ in 0..4 {
            b.idle();
        }
        assert_eq!(b.idle_polls(), 4);
        assert!(t.elapsed() < sleep, "spins and yields do not sleep");
        let t = Instant::now();
        b.idle();
        assert!(t.elapsed() >= sleep, "the fifth empty poll sleeps");
        b.reset();
        assert_eq!(b.idle_polls(), 0);
    }
}
