//! Drivers: device access (VFIO and emulated), the NVMe driver and the
//! device models that emulate the hardware.
#![deny(missing_docs)]

pub mod device;
pub mod emu;
pub mod models;
pub mod nic;
pub mod nvme;
pub mod pci;
pub mod regs;
pub mod vfio;
pub mod wire;
