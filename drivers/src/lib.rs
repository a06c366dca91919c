//! Drivers: register access, PCI and VFIO, the NVMe driver and the igb and
//! ixgbe NIC drivers. The same driver code runs on real hardware (VFIO) and
//! on the device models of the `emu` crate: both implement
//! [`regs::RegisterAccess`] and [`dma::Mapper`].
#![deny(missing_docs)]

pub mod nic;
pub mod nvme;
pub mod pci;
pub mod regs;
pub mod trace;
// Scripted fakes for tests, here and (with the feature) in other crates.
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod vfio;
