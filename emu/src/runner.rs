#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// How a device model does its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// During the doorbell write, on the caller's thread: deterministic, for
    /// tests and for stepping through descriptor handling.
    #[default]
    Inline,
    /// On a device thread of its own, concurrently with the driver, as
    /// hardware does.
    Threaded,
}

/// A model that can be driven by a [`DeviceThread`].
pub trait Pollable: Send + Sync + 'static {
    /// Do whatever work is pending (fetch commands, move data, post
    /// completions). Returns true if anything was done.
    fn poll(&self) -> bool;

    /// What wakes the model's thread when work arrives, if anything: the
    /// thread registers itself there and, when idle, sleeps until woken
    /// instead of polling (see [`DeviceWaker`]). None: the thread polls.
    fn waker(&self) -> Option<&DeviceWaker> {
        None
    }

    /// The thread slept and is back: the next poll must look at everything
    /// (a model that skips cheap-to-miss checks while idle stops skipping).
    fn woke(&self) {}
}

/// The doorbell of a device thread: what a model calls when something gave
/// it work (a register write, a frame that arrived on its wire, an injected
/// fault cleared), so that its idle thread need not poll. As hardware: a
/// device sits idle until the host writes a doorbell.
///
/// Waking costs one atomic swap while the thread runs, and a futex wake
/// only when it sleeps. A thread that never registered (inline mode) makes
/// [`wake`](Self::wake) a no-op.
#[derive(Debug, Default)]
pub struct DeviceWaker {
    thread: OnceLock<Thread>,
    /// Whether every event that gives the model work calls `wake`; if not
    /// (frames that arrive on a socket or TAP wire), the thread checks on a
    /// short timer when idle.
    complete: AtomicBool,
}

impl DeviceWaker {
    /// A waker with no thread yet. `complete`: whether every event that
    /// gives the model work will call [`wake`](Self::wake).
    pub fn new(complete: bool) -> Self {
        DeviceWaker {
            thread: OnceLock::new(),
            complete: AtomicBool::new(complete),
        }
    }

    /// Say whether every event that gives the model work calls `wake`.
    pub fn set_complete(&self, complete: bool) {
        self.complete.store(complete, Ordering::Release);
    }

    /// Wake the thread if it sleeps (or make its next sleep return at once).
    #[inline]
    pub fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    fn complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }
}

/// The thread of a threaded device model. It polls the model while there is
/// work; when idle it spins briefly and then sleeps until the model's
/// [`DeviceWaker`] wakes it (a doorbell, a frame), so that an idle emulated
/// device gives its core to the driver and the other devices: on a 2-core
/// machine a device that spins starves the very threads that would give it
/// work. A model without a complete waker is checked on a short timer
/// instead (after a while of yielding). Dropping it stops and joins the
/// thread.
pub struct DeviceThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Idle polls spent spinning before the thread yields or sleeps: a few
/// microseconds, about the time a driver takes to come back with more work
/// when it is running on the other core.
const SPIN_POLLS: u32 = 64;
/// Idle polls after which a thread without a complete waker stops yielding
/// and sleeps [`POLL_SLEEP`] at a time.
const YIELD_POLLS: u32 = 2_000;

/// How long an idle device thread sleeps at a time.
#[derive(Debug, Clone, Copy)]
struct Naps {
    /// With a complete waker: a safety net only, every event that gives
    /// the model work wakes it.
    woken: Duration,
    /// Without: the thread must look for work itself (a frame on a socket
    /// wakes nobody).
    polling: Duration,
}

impl Naps {
    /// The device threads' sleeps. In this crate's own tests the safety
    /// net is a minute, so that a wake that went missing shows as a test
    /// that times out instead of one that is merely slower.
    const DEFAULT: Naps = Naps {
        woken: if cfg!(test) {
            Duration::from_secs(60)
        } else {
            Duration::from_millis(1)
        },
        polling: Duration::from_micros(50),
    };
}

impl DeviceThread {
    /// Start polling `model` on a new thread called `name`.
    pub fn spawn<P: Pollable>(name: &str, model: Arc<P>) -> std::io::Result<DeviceThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let model2 = model.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(&*model2, &stop2, Naps::DEFAULT))?;
        if let Some(w) = model.waker() {
            // Set once: a model has one device thread.
            let _ = w.thread.set(handle.thread().clone());
            // The thread may have gone to sleep before it was registered.
            handle.thread().unpark();
        }
        Ok(DeviceThread {
            stop,
            handle: Some(handle),
        })
    }
}

/// The device thread's loop: poll while there is work; when idle spin, then
/// sleep until woken (complete waker) or yield and then sleep briefly.
fn run<P: Pollable>(model: &P, stop: &AtomicBool, naps: Naps) {
    let mut idle: u32 = 0;
    while !stop.load(Ordering::Acquire) {
        if model.poll() {
            idle = 0;
            continue;
        }
        idle = idle.saturating_add(1);
        if idle < SPIN_POLLS {
            std::hint::spin_loop();
            continue;
        }
        let waker = model.waker().filter(|w| w.thread.get().is_some());
        match waker {
            // A wake between the empty poll above and this park makes the
            // park return at once (the token of `Thread::unpark`): no event
            // is lost.
            Some(w) if w.complete() => std::thread::park_timeout(naps.woken),
            _ if idle < YIELD_POLLS => {
                std::thread::yield_now();
                continue;
            }
            Some(_) => std::thread::park_timeout(naps.polling),
            None => std::thread::sleep(naps.polling),
        }
        // Back from a sleep, woken or timed out: look at everything, and
        // spin a little before the next sleep.
        model.woke();
        idle = 0;
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    /// A model with one kind of work (a flag) and a count of its polls.
    struct Flag {
        work: AtomicBool,
        done: AtomicU64,
        polls: AtomicU64,
        waker: Option<DeviceWaker>,
    }

    impl Flag {
        fn new(waker: Option<DeviceWaker>) -> Arc<Flag> {
            Arc::new(Flag {
                work: AtomicBool::new(false),
                done: AtomicU64::new(0),
                polls: AtomicU64::new(0),
                waker,
            })
        }

        /// Give the model work, as a doorbell write does.
        fn ring(&self) {
            self.work.store(true, Ordering::Release);
            if let Some(w) = &self.waker {
                w.wake();
            }
        }

        fn wait_done(&self, n: u64, within: Duration) -> bool {
            let deadline = Instant::now() + within;
            while self.done.load(Ordering::Acquire) < n {
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            true
        }
    }

    impl Pollable for Flag {
        fn poll(&self) -> bool {
            self.polls.fetch_add(1, Ordering::Relaxed);
            let did = self.work.swap(false, Ordering::AcqRel);
            if did {
                self.done.fetch_add(1, Ordering::Release);
            }
            did
        }

        fn waker(&self) -> Option<&DeviceWaker> {
            self.waker.as_ref()
        }
    }

    #[test]
    fn an_idle_thread_with_a_waker_sleeps_instead_of_polling() {
        let m = Flag::new(Some(DeviceWaker::new(true)));
        let _t = DeviceThread::spawn("emu-test", m.clone()).unwrap();
        m.ring();
        assert!(m.wait_done(1, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        let before = m.polls.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        let idle_polls = m.polls.load(Ordering::Relaxed) - before;
        // Asleep until woken: (almost) no poll; a spinning thread makes
        // millions in 200 ms, one that naps 50 µs thousands.
        assert!(
            idle_polls < 1000,
            "{idle_polls} polls of an idle thread in 200 ms"
        );
    }

    #[test]
    fn every_wake_is_seen_at_once() {
        // The safety-net sleep is a minute in tests: a wake that got lost
        // between the thread's last empty poll and its sleep would leave
        // the work undone for that long.
        let m = Flag::new(Some(DeviceWaker::new(true)));
        let _t = DeviceThread::spawn("emu-test", m.clone()).unwrap();
        for i in 1..=200u64 {
            m.ring();
            assert!(
                m.wait_done(i, Duration::from_secs(10)),
                "work {i} not done 10 s after its wake"
            );
            if i % 20 == 0 {
                // Now and then let the thread fall asleep first.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    #[test]
    fn a_model_without_a_complete_waker_still_finds_its_work() {
        // Work that wakes nobody (a frame on a socket): found by polling.
        for waker in [None, Some(DeviceWaker::new(false))] {
            let m = Flag::new(waker);
            let _t = DeviceThread::spawn("emu-test", m.clone()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            m.work.store(true, Ordering::Release);
            assert!(m.wait_done(1, Duration::from_secs(10)));
        }
    }

    #[test]
    fn dropping_the_thread_stops_a_sleeping_one_at_once() {
        let m = Flag::new(Some(DeviceWaker::new(true)));
        let t = DeviceThread::spawn("emu-test", m.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        drop(t);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "join waited for the safety net"
        );
    }
}
