//! The emulated device core: an emulated PCI function whose BAR0 is an MMIO
//! handler, DMA that goes only through the emulated IOMMU, a trace of device
//! events, and the two ways to run a device model (inline and threaded).
//!
//! The device models themselves live in [`crate::models`].

mod bar;
mod dma;
mod pci;
mod runner;
mod trace;

pub use bar::{EmuBar, MmioDevice};
pub use dma::{DeviceDma, DmaError};
pub use pci::{EmuPciFunction, PciIds};
pub use runner::{DeviceThread, Pollable, RunMode};
pub use trace::{Trace, TraceEvent};
