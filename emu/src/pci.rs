#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU16, Ordering};

/// Identity of an emulated PCI function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciIds {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code (base class, subclass, programming interface), 24 bits.
    pub class: u32,
}

/// PCI command register bits (PCI Local Bus 3.0 §6.2.2).
const CMD_MEMORY_SPACE: u16 = 1 << 1;
const CMD_BUS_MASTER: u16 = 1 << 2;

/// The configuration-space side of an emulated PCI function: IDs, and the
/// command register whose bus-master bit gates every DMA of the device, as
/// on real hardware (a driver that forgets to set it gets DMA errors here
/// too, not silent success).
#[derive(Debug)]
pub struct EmuPciFunction {
    ids: PciIds,
    command: AtomicU16,
}

impl EmuPciFunction {
    /// A function with the given IDs, memory space and bus mastering off.
    pub fn new(ids: PciIds) -> Self {
        EmuPciFunction {
            ids,
            command: AtomicU16::new(0),
        }
    }

    /// The IDs.
    pub fn ids(&self) -> PciIds {
        self.ids
    }

    /// Read a 16- or 32-bit config register (only the standard header fields we model).
    pub fn config_read(&self, offset: usize) -> u32 {
        match offset {
            0x00 => self.ids.vendor as u32 | (self.ids.device as u32) << 16,
            0x04 => self.command.load(Ordering::Acquire) as u32,
            0x08 => self.ids.class << 8,
            _ => 0,
        }
    }

    /// Write a config register; only the command register is writable.
    pub fn config_write(&self, offset: usize, value: u32) {
        if offset == 0x04 {
            self.command.store(value as u16, Ordering::Release);
        }
    }

    /// Set memory space and bus mastering, as a driver's open does.
    pub fn enable(&self) {
        self.command
            .fetch_or(CMD_MEMORY_SPACE | CMD_BUS_MASTER, Ordering::AcqRel);
    }

    /// Whether the device may master the bus (do DMA).
    #[inline]
    pub fn bus_master(&self) -> bool {
        self.command.load(Ordering::Relaxed) & CMD_BUS_MASTER != 0
    }
}
