//! MMIO dispatch: BAR0 reads and writes ([`MmioDevice`]), decoded by
//! offset into the register kinds of the layout.
#![forbid(unsafe_code)]

use super::layout::{Ctr, Half, Reg};
use super::model::NicModel;
use crate::{MmioDevice, RunMode};
use std::sync::atomic::Ordering;

impl NicModel {
    // ---- register reads and writes ----

    fn read32(&self, offset: usize) -> u32 {
        let Some(slot) = self.layout.slots.get(offset / 4) else {
            return 0;
        };
        let stored = || self.regs[slot.store as usize].load(Ordering::Acquire);
        match slot.reg {
            Reg::Plain
            | Reg::RxConfig
            | Reg::MaskSet
            | Reg::TxEnable
            | Reg::Ctrl
            | Reg::Autoc
            | Reg::Mdic => stored(),
            Reg::Rdrxctl => stored() | self.layout.dma_init_done,
            Reg::AbsentQueue => 0,
            Reg::MaskClear => 0,
            Reg::Status => self.read_status(),
            Reg::Eeprom => stored() | self.layout.eeprom_done,
            Reg::Links => self.read_links(),
            Reg::SecRxStat => self.layout.secrx_ready,
            Reg::ClearOnRead => self.regs[slot.store as usize].swap(0, Ordering::AcqRel),
            Reg::Counter(c, half) => {
                self.deliver_inline();
                self.read_counter(c, half)
            }
            Reg::QueueDrop(n) => {
                self.deliver_inline();
                self.queue_drop[n as usize]
                    .swap(0, Ordering::AcqRel)
                    .min(u32::MAX as u64) as u32
            }
            Reg::QueueRx(n) => {
                self.deliver_inline();
                self.queue_rx[n as usize]
                    .swap(0, Ordering::AcqRel)
                    .min(u32::MAX as u64) as u32
            }
            Reg::Rx(reg, q) => self.read_rx(reg, q, stored()),
            Reg::Tx(reg, q) => self.read_tx(reg, q, stored()),
        }
    }

    fn write32(&self, offset: usize, value: u32) {
        let Some(&slot) = self.layout.slots.get(offset / 4) else {
            return;
        };
        let reg = &self.regs[slot.store as usize];
        match slot.reg {
            Reg::Plain | Reg::Eeprom | Reg::Rdrxctl => reg.store(value, Ordering::Release),
            Reg::Ctrl => self.write_ctrl(value),
            Reg::Autoc => reg.store(value & !self.layout.autoc_self_clear, Ordering::Release),
            Reg::Mdic => self.write_mdic(offset, value),
            // Read-only or computed registers ignore writes.
            Reg::Status
            | Reg::Links
            | Reg::SecRxStat
            | Reg::Counter(..)
            | Reg::QueueDrop(_)
            | Reg::QueueRx(_) => {}
            // Write 1 to clear (no cause is ever raised, so this is moot).
            Reg::ClearOnRead => {
                reg.fetch_and(!value, Ordering::AcqRel);
            }
            Reg::MaskSet => {
                reg.fetch_or(value, Ordering::AcqRel);
            }
            Reg::MaskClear => {
                reg.fetch_and(!value, Ordering::AcqRel);
            }
            Reg::RxConfig => {
                reg.store(value, Ordering::Release);
                self.rx_config_gen.fetch_add(1, Ordering::AcqRel);
            }
            Reg::TxEnable => {
                reg.store(value, Ordering::Release);
                if self.mode == RunMode::Inline {
                    // Descriptors queued while transmit was off go now.
                    for q in 0..self.queues {
                        self.tx_process(q, usize::MAX);
                    }
                }
            }
            Reg::Rx(r, q) => self.write_rx(r, q, offset, value),
            Reg::Tx(r, q) => self.write_tx(r, q, offset, value),
            Reg::AbsentQueue => self.note(|| {
                format!(
                    "write {value:#x} to the queue control register at {offset:#x} ignored:                      the model was built with {} queues",
                    self.queues
                )
            }),
        }
    }
}

impl MmioDevice for NicModel {
    fn bar_size(&self) -> usize {
        self.layout.bar_size
    }

    fn mmio_read(&self, offset: usize, size: u8) -> u64 {
        if self.is_removed() {
            // What the root complex returns for a read of a gone function.
            return if size == 8 { u64::MAX } else { u32::MAX as u64 };
        }
        if let Some(v) = self.hostile_read(offset, size) {
            return v;
        }
        if size == 8 {
            if let Some(Slot64::Counter(c)) = self.counter64(offset) {
                // One 8-byte read takes the whole 64-bit counter.
                self.deliver_inline();
                return self.stats[c as usize].swap(0, Ordering::AcqRel);
            }
            return self.read32(offset) as u64 | (self.read32(offset + 4) as u64) << 32;
        }
        self.read32(offset) as u64
    }

    fn mmio_write(&self, offset: usize, size: u8, value: u64) {
        if self.is_removed() {
            return;
        }
        self.write32(offset, value as u32);
        if size == 8 {
            self.write32(offset + 4, (value >> 32) as u32);
        }
        self.hostile_act();
        // A tail write (a doorbell) or any other register write may give
        // the device work: its thread need not be polling to see it.
        self.waker.wake();
    }
}

/// What an 8-byte access at an offset means specially.
enum Slot64 {
    Counter(Ctr),
}

impl NicModel {
    fn counter64(&self, offset: usize) -> Option<Slot64> {
        match self.layout.slots.get(offset / 4)?.reg {
            Reg::Counter(c, Half::Low) => Some(Slot64::Counter(c)),
            _ => None,
        }
    }
}
