//! The link and the PHY: the link bits of STATUS and LINKS, and MDIC, the
//! window onto the PHY's registers.
#![forbid(unsafe_code)]

use super::layout::LinkReport;
use super::model::NicModel;
use std::sync::atomic::Ordering;

impl NicModel {
    pub(super) fn read_status(&self) -> u32 {
        let l = &self.layout;
        let mut v = self.load(l.status);
        if self.load(l.ctrl) & l.gio_disable == 0 {
            // No master request is ever pending, so a disable takes effect at once.
            v |= l.status_gio_enable;
        }
        let up = self.link_up();
        match l.link {
            LinkReport::Igb {
                lu,
                fd,
                speed,
                speed_value,
            } => {
                if up {
                    v |= lu | fd;
                    v = speed.set(v, speed_value);
                }
            }
            LinkReport::Ixgbe { status_up, .. } => {
                if up {
                    v |= status_up;
                }
            }
        }
        v
    }

    pub(super) fn read_links(&self) -> u32 {
        match self.layout.link {
            LinkReport::Ixgbe {
                links_up,
                speed,
                speed_value,
                ..
            } if self.link_up() => speed.set(links_up, speed_value),
            _ => 0,
        }
    }

    /// MDIC (82576 §8.2.4): the PHY access completes within the write.
    pub(super) fn write_mdic(&self, offset: usize, value: u32) {
        let Some(phy) = self.layout.phy else {
            self.store(offset, value);
            return;
        };
        let v = value;
        let reg = phy.regadd.get(v);
        let result = if phy.phyadd.get(v) != phy.phy_addr {
            value | phy.error
        } else if phy.op.get(v) == phy.op_read {
            let data = if reg == phy.control {
                self.phy_control.load(Ordering::Acquire)
            } else if reg == phy.status {
                if self.link_up() {
                    phy.status_link
                } else {
                    0
                }
            } else {
                0
            };
            phy.data.set(v, data.into())
        } else if phy.op.get(v) == phy.op_write {
            if reg == phy.control {
                let data = phy.data.get(v) as u16 & !phy.control_self_clear;
                self.phy_control.store(data, Ordering::Release);
            }
            value
        } else {
            value | phy.error
        };
        self.store(offset, result | phy.ready);
    }
}
