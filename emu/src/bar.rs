#![forbid(unsafe_code)]

use drivers::regs::RegisterAccess;
use drivers::trace::{Event, Kind, Tap};
use std::sync::Arc;

/// The register side of a device model: what happens when the CPU reads or
/// writes its BAR0. Read-to-clear, write-one-to-clear and self-clearing bits
/// are the model's business, as in the datasheet. `size` is 4 or 8.
pub trait MmioDevice: Send + Sync {
    /// Size of BAR0 in bytes.
    fn bar_size(&self) -> usize;
    /// A read of `size` bytes at `offset`.
    fn mmio_read(&self, offset: usize, size: u8) -> u64;
    /// A write of `size` bytes at `offset`.
    fn mmio_write(&self, offset: usize, size: u8, value: u64);
}

/// An emulated BAR: register accesses become calls into the model's MMIO
/// handler. This is the emulated implementation of [`RegisterAccess`].
pub struct EmuBar<M: MmioDevice> {
    model: Arc<M>,
    tap: Tap,
    step: Option<StepHook>,
}

/// Called after the model has taken a register write (BAR0 offset, value),
/// on the writing thread: an inline model's work for it is done by then.
pub type StepHook = Arc<dyn Fn(usize, u64) + Send + Sync>;

impl<M: MmioDevice> Clone for EmuBar<M> {
    fn clone(&self) -> Self {
        EmuBar {
            model: self.model.clone(),
            tap: self.tap.clone(),
            step: self.step.clone(),
        }
    }
}

impl<M: MmioDevice> EmuBar<M> {
    /// BAR0 of `model`.
    pub fn new(model: Arc<M>) -> Self {
        EmuBar {
            model,
            tap: Tap::OFF,
            step: None,
        }
    }

    /// Record every register access through this BAR (and its later
    /// clones) in `tap`: writes before the model sees them, so that what an
    /// inline model does in answer follows the write in the trace.
    pub fn set_trace(&mut self, tap: Tap) {
        self.tap = tap;
    }

    /// Call `hook` after each register write through this BAR (and its
    /// later clones) has been handled by the model: for stepping through
    /// descriptor handling one doorbell at a time. Without a hook a write
    /// costs one test more.
    pub fn set_step(&mut self, hook: StepHook) {
        self.step = Some(hook);
    }

    #[inline]
    fn stepped(&self, offset: usize, value: u64) {
        if let Some(hook) = &self.step {
            hook(offset, value);
        }
    }

    /// The model behind the BAR (for tests and tools: its trace, fault injection).
    pub fn model(&self) -> &Arc<M> {
        &self.model
    }

    #[inline]
    fn check(&self, offset: usize, size: usize) {
        // A register offset comes from driver code, never from the device:
        // an offset outside the BAR is a driver bug.
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.model.bar_size(),
            "MMIO access of {size} bytes at {offset:#x} outside or misaligned in BAR0 of {:#x} bytes",
            self.model.bar_size()
        );
    }
}

impl<M: MmioDevice> RegisterAccess for EmuBar<M> {
    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        self.check(offset, 4);
        let v = self.model.mmio_read(offset, 4) as u32;
        self.tap
            .record(|| reg_event(Kind::RegRead, offset, 4, v as u64));
        v
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        self.check(offset, 4);
        self.tap
            .record(|| reg_event(Kind::RegWrite, offset, 4, value as u64));
        self.model.mmio_write(offset, 4, value as u64);
        self.stepped(offset, value as u64);
    }

    #[inline]
    fn read64(&self, offset: usize) -> u64 {
        self.check(offset, 8);
        let v = self.model.mmio_read(offset, 8);
        self.tap.record(|| reg_event(Kind::RegRead, offset, 8, v));
        v
    }

    #[inline]
    fn write64(&self, offset: usize, value: u64) {
        self.check(offset, 8);
        self.tap
            .record(|| reg_event(Kind::RegWrite, offset, 8, value));
        self.model.mmio_write(offset, 8, value);
        self.stepped(offset, value);
    }

    fn bar_size(&self) -> usize {
        self.model.bar_size()
    }
}

/// A driver-side register event.
#[inline]
pub(crate) fn reg_event(kind: Kind, offset: usize, width: u32, value: u64) -> Event {
    Event::new(kind).addr(offset as u64).len(width).value(value)
}
