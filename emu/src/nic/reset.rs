//! Device reset: the power-on / reset values of the registers and CTRL.RST.
#![forbid(unsafe_code)]

use super::model::NicModel;
use super::queue_state::DISABLED;
use std::sync::atomic::Ordering;

impl NicModel {
    /// Power-on / reset values of every register.
    pub(super) fn load_reset_values(&self) {
        for r in self.regs.iter() {
            r.store(0, Ordering::Relaxed);
        }
        for &(offset, value) in &self.layout.reset_values {
            self.store(offset, value);
        }
        // The MAC address the "EEPROM" holds lands in receive address 0.
        let m = self.mac;
        self.store(
            (self.layout.ral)(0),
            u32::from_le_bytes([m[0], m[1], m[2], m[3]]),
        );
        self.store(
            (self.layout.rah)(0),
            u16::from_le_bytes([m[4], m[5]]) as u32 | self.layout.rah_av,
        );
        if let Some(phy) = &self.layout.phy {
            self.phy_control.store(phy.control_reset, Ordering::Relaxed);
        }
    }

    // ---- device reset ----

    /// CTRL.RST (82576 §4.3.1, 82599 §4.2.1.4): every register to its
    /// reset value, every queue disabled, statistics cleared, receive
    /// address 0 reloaded from the EEPROM. The EEPROM auto-read and the
    /// 82599 DMA initialization complete at once.
    fn reset(&self) {
        let mut rx = self.rx_engine();
        let mut txs: Vec<_> = (0..self.queues).map(|q| self.tx_ring(q)).collect();
        self.load_reset_values();
        for q in self.rxq.iter().chain(self.txq.iter()) {
            q.head.store(0, Ordering::Relaxed);
            q.tail.store(0, Ordering::Relaxed);
            q.entries.store(0, Ordering::Relaxed);
            q.state.store(DISABLED, Ordering::Release);
        }
        rx.reset();
        // Under every TX ring lock: no enable is under way.
        self.tx_span.store(0, Ordering::Release);
        for t in txs.iter_mut() {
            **t = None;
        }
        for c in self.stats.iter().chain(self.queue_drop.iter()) {
            c.store(0, Ordering::Relaxed);
        }
        for c in self.queue_rx.iter() {
            c.store(0, Ordering::Relaxed);
        }
        for l in self.latches.iter() {
            l.store(0, Ordering::Relaxed);
        }
        self.rx_config_gen.fetch_add(1, Ordering::AcqRel);
        self.note(|| {
            format!(
                "device reset (CTRL.RST): MAC {}, link {}",
                spec::net::MacAddr(self.mac),
                if self.link_up() { "up" } else { "down" }
            )
        });
    }

    pub(super) fn write_ctrl(&self, value: u32) {
        let l = &self.layout;
        self.store(l.ctrl, value & !l.ctrl_self_clear);
        if value & l.ctrl_rst != 0 {
            self.reset();
        }
    }
}
