//! The emulated backend: everything that lets the drivers run with no
//! hardware. An emulated PCI function whose BAR0 is an MMIO handler
//! ([`EmuBar`], [`MmioDevice`]), DMA that goes only through the emulated
//! IOMMU ([`DeviceDma`]), the two ways
//! to run a device model ([`RunMode`]: inline and threaded), the device
//! models themselves ([`nvme`]: the NVMe controller; [`nic`]: the igb and
//! ixgbe ports) and the wires the NIC ports are plugged into ([`wire`]), and the pcap
//! capture format the `pcap:` wires and the apps share ([`pcap`]).
//!
//! The drivers do not depend on this crate: a model implements
//! [`drivers::regs::RegisterAccess`] through [`EmuBar`] and the DMA side of
//! [`dma::Mapper`] through [`dma::EmuIommu`], the same two traits that VFIO
//! implements for real hardware.
#![deny(missing_docs)]

mod bar;
mod device_dma;
mod pci;
mod ram_chunk;
mod runner;

pub mod nic;
pub mod nvme;
pub mod pcap;
pub mod wire;

pub use bar::{EmuBar, MmioDevice, StepHook};
pub use device_dma::{DeviceDma, DmaError};
pub use pci::{EmuPciFunction, PciIds};
pub use runner::{DeviceThread, DeviceWaker, Pollable, RunMode};
