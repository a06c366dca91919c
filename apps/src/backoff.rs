//! Polling loops that back off when idle: spin first (lowest latency), then
//! yield, then sleep briefly, so that idle apps and emulated devices do not
//! starve each other of the cores.

use std::time::Duration;

/// Empty polls before yielding, and before sleeping.
const SPIN: u32 = 2_000;
const YIELD: u32 = 20_000;

/// Counts empty polls of a loop.
#[derive(Debug, Default)]
pub struct Backoff {
    idle: u32,
}

impl Backoff {
    /// A loop that found work: spin again.
    #[inline]
    pub fn reset(&mut self) {
        self.idle = 0;
    }

    /// A loop that found nothing: wait a little, longer the longer it idles.
    #[inline]
    pub fn idle(&mut self) {
        self.idle = self.idle.saturating_add(1);
        if self.idle < SPIN {
            std::hint::spin_loop();
        } else if self.idle < YIELD {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}
