//! Scripted fakes to test driver code without a device: [`FakeDevice`] is a
//! register file of an igb (82576, I350) or ixgbe (82599) port with just
//! enough behaviour for the NIC driver's init sequences, which logs every
//! write so a test can check their order and values; [`FakeRegs`] is its
//! [`RegisterAccess`] side for the driver.
//!
//! The driver's own unit tests use them. Other crates get them with the
//! `test-utils` feature, as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! drivers = { path = "...", features = ["test-utils"] }
//! ```
//!
//! ```ignore
//! use drivers::nic::{Chip, Nic, NicOptions};
//! use drivers::testing::{FakeDevice, FakeRegs, MAC};
//!
//! let dev = FakeDevice::new(Chip::I82576);
//! let nic = Nic::init(FakeRegs(dev.clone()), mapper, Chip::I82576, options)?;
//! assert_eq!(nic.mac(), MAC);
//! assert!(dev.writes_to(spec::nic::igb::CTRL).iter().any(|v| v & spec::nic::igb::ctrl::RST.bit() != 0));
//! ```
//!
//! (`drivers/tests/test_utils.rs` is this example as a test, built with the
//! feature.) Descriptor rings and DMA are not faked: pair the fake with
//! `dma::EmuIommu` and play the device side by reading and writing its memory.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use crate::nic::Chip;
use crate::regs::RegisterAccess;
use spec::nic::{igb as g, ixgbe as x};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The MAC address the fake's EEPROM left in receive address 0 (RAL0/RAH0,
/// with the address-valid bit): what [`Nic::mac`](crate::nic::Nic::mac) must report.
pub const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

/// A register file with just enough behaviour for the init sequences:
/// self-clearing reset, auto-read and DMA-init done, link up, a MAC in
/// receive address 0, MDIC always ready. Every write is logged in order.
/// [`FakeDevice::remove`] makes it a surprise-removed device: every read
/// returns FFFFFFFFh from then on.
///
/// Drivers reach it through [`FakeRegs`]; the test keeps the `Arc` to look
/// at the registers and the write log afterwards.
pub struct FakeDevice {
    // The crate's own tests read these directly; users have `set` and `get`.
    pub(crate) chip: Chip,
    pub(crate) regs: Mutex<HashMap<usize, u32>>,
    writes: Mutex<Vec<(usize, u32)>>,
    stuck_reset: bool,
    no_eeprom: bool,
    no_dma_init: bool,
    removed: AtomicBool,
}

/// The register side of a [`FakeDevice`], to hand to a driver
/// (`Nic::init(FakeRegs(dev.clone()), ...)`); clones share the device.
#[derive(Clone)]
pub struct FakeRegs(pub Arc<FakeDevice>);

impl FakeDevice {
    /// A healthy `chip`: reset clears itself, the EEPROM and DMA init finish.
    pub fn new(chip: Chip) -> Arc<FakeDevice> {
        Self::with(chip, false, false, false)
    }

    /// A `chip` with faults: a reset bit that never clears (`stuck_reset`),
    /// an EEPROM auto-read that never completes (`no_eeprom`), and on the
    /// 82599 a receive DMA init that never finishes (`no_dma_init`).
    pub fn with(
        chip: Chip,
        stuck_reset: bool,
        no_eeprom: bool,
        no_dma_init: bool,
    ) -> Arc<FakeDevice> {
        let mut regs = HashMap::new();
        let lo = u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]]);
        let hi = u16::from_le_bytes([MAC[4], MAC[5]]) as u32 | (1 << 31);
        if chip.is_igb() {
            regs.insert(g::ral(0), lo);
            regs.insert(g::rah(0), hi);
        } else {
            regs.insert(x::ral(0), lo);
            regs.insert(x::rah(0), hi);
            // Reset values with reserved bits set, to see that they survive.
            regs.insert(x::DTXMXSZRQ, 0x0001_0010);
            regs.insert(x::dca_rxctrl(0), 0x0000_1200);
            regs.insert(x::dca_rxctrl(1), 0x0000_1200);
            regs.insert(x::RDRXCTL, 0x0010_0880);
            regs.insert(x::srrctl(0), 0x0000_0402);
        }
        Arc::new(FakeDevice {
            chip,
            regs: Mutex::new(regs),
            writes: Mutex::new(Vec::new()),
            stuck_reset,
            no_eeprom,
            no_dma_init,
            removed: AtomicBool::new(false),
        })
    }

    /// The value last written to the register at `off` (its reset value, or
    /// 0, if never written), without the bits the fake adds on reads.
    pub fn get(&self, off: usize) -> u32 {
        *self.regs.lock().unwrap().get(&off).unwrap_or(&0)
    }

    /// Set the register at `off` as the device would (not logged as a
    /// driver write): to script a state before the driver looks, e.g. an
    /// EEPROM that loaded no MAC address.
    pub fn set(&self, off: usize, value: u32) {
        self.regs.lock().unwrap().insert(off, value);
    }

    /// Pull the device off the bus (PCIe surprise removal, or a function
    /// put in D3cold): from now on every register read returns FFFFFFFFh,
    /// as reads of a gone PCIe function complete with all ones, and writes
    /// are logged but change nothing. [`get`](FakeDevice::get) still shows
    /// the register file as it was.
    pub fn remove(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// Whether [`remove`](FakeDevice::remove) was called.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Every write so far, as (offset, value), in order.
    pub fn writes(&self) -> Vec<(usize, u32)> {
        self.writes.lock().unwrap().clone()
    }

    /// Position of the first write to `off` for which `pred` holds.
    pub fn first_write(&self, off: usize, pred: impl Fn(u32) -> bool) -> Option<usize> {
        self.writes().iter().position(|&(o, v)| o == off && pred(v))
    }

    /// The values written to `off`, in order.
    pub fn writes_to(&self, off: usize) -> Vec<u32> {
        self.writes()
            .iter()
            .filter(|(o, _)| *o == off)
            .map(|(_, v)| *v)
            .collect()
    }
}

impl RegisterAccess for FakeRegs {
    fn read32(&self, off: usize) -> u32 {
        let d = &self.0;
        if d.is_removed() {
            return u32::MAX;
        }
        let v = d.get(off);
        if d.chip.is_igb() {
            match off {
                g::EECD if !d.no_eeprom => v | g::eecd::AUTO_RD.bit(),
                g::STATUS => g::status::LU.bit() | g::status::FD.bit() | (0b10 << 6),
                g::MDIC => v | g::mdic::READY.bit(),
                _ => v,
            }
        } else {
            match off {
                x::EEC if !d.no_eeprom => v | x::eec::ARD.bit(),
                x::RDRXCTL if !d.no_dma_init => v | x::rdrxctl::DMAIDONE.bit(),
                x::LINKS => x::links::LINK_UP.bit() | (0b11 << 28),
                x::SECRXSTAT => x::secrx::SECRX_RDY.bit(),
                _ => v,
            }
        }
    }

    fn write32(&self, off: usize, mut v: u32) {
        let d = &self.0;
        d.writes.lock().unwrap().push((off, v));
        if d.is_removed() {
            return;
        }
        let ctrl = if d.chip.is_igb() { g::CTRL } else { x::CTRL };
        let rst = if d.chip.is_igb() {
            g::ctrl::RST.bit()
        } else {
            x::ctrl::RST_MASK
        };
        if off == ctrl && !d.stuck_reset {
            v &= !rst;
        }
        d.regs.lock().unwrap().insert(off, v);
    }

    fn read64(&self, off: usize) -> u64 {
        self.read32(off) as u64 | (self.read32(off + 4) as u64) << 32
    }

    fn write64(&self, off: usize, v: u64) {
        self.write32(off, v as u32);
        self.write32(off + 4, (v >> 32) as u32);
    }

    fn bar_size(&self) -> usize {
        if self.0.chip.is_igb() {
            g::BAR0_SIZE
        } else {
            x::BAR0_SIZE
        }
    }
}
