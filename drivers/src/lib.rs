//! Drivers: device access (VFIO and emulated), the NVMe driver and the
//! device models that emulate the hardware.
#![deny(missing_docs)]

pub mod regs;
