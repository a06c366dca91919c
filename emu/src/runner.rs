#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
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
}

/// The thread of a threaded device model. It polls the model, spinning
/// while there is work and backing off to short sleeps when idle, so that
/// idle emulated devices do not eat the cores a test suite needs. Dropping
/// it stops and joins the thread.
pub struct DeviceThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Idle polls before the thread starts yielding, then sleeping.
const SPIN_POLLS: u32 = 20_000;
const YIELD_POLLS: u32 = 40_000;

impl DeviceThread {
    /// Start polling `model` on a new thread called `name`.
    pub fn spawn<P: Pollable>(name: &str, model: Arc<P>) -> std::io::Result<DeviceThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut backoff =
                    dma::Backoff::new(SPIN_POLLS, YIELD_POLLS, Some(Duration::from_micros(50)));
                while !stop2.load(Ordering::Relaxed) {
                    if model.poll() {
                        backoff.reset();
                    } else {
                        backoff.idle();
                    }
                }
            })?;
        Ok(DeviceThread {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
