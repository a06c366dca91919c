//! Queue control: the per-queue registers (ring base and length, head,
//! tail, RXDCTL/TXDCTL), enabling a queue (its ring registers checked and
//! latched), disabling it, and the error state.
#![forbid(unsafe_code)]

use super::counters::bump;
use super::layout::{RxReg, TxReg};
use super::model::NicModel;
use super::queue_state::{Dir, QueueShared, ACTIVE, DISABLED, ERROR};
use super::rx_state::RxRing;
use super::tx_state::TxRing;
use crate::RunMode;
use spec::nic::adv_desc::{DESC_SIZE, RING_ALIGN};
use std::sync::atomic::Ordering;

/// Largest ring: RDLEN/TDLEN are 20-bit byte counts (multiples of 128).
const MAX_RING_BYTES: u64 = 1 << 20;

impl NicModel {
    pub(super) fn read_rx(&self, reg: RxReg, q: u16, stored: u32) -> u32 {
        let s = &self.rxq[q as usize];
        match reg {
            RxReg::Head => {
                self.deliver_inline();
                s.head.load(Ordering::Acquire)
            }
            RxReg::Tail => s.tail.load(Ordering::Acquire),
            RxReg::Dctl => self.read_dctl(s, stored, self.layout.rxdctl_enable),
            _ => stored,
        }
    }

    pub(super) fn read_tx(&self, reg: TxReg, q: u16, stored: u32) -> u32 {
        let s = &self.txq[q as usize];
        match reg {
            TxReg::Head => s.head.load(Ordering::Acquire),
            TxReg::Tail => s.tail.load(Ordering::Acquire),
            TxReg::Dctl => self.read_dctl(s, stored, self.layout.txdctl_enable),
            _ => stored,
        }
    }

    /// RXDCTL/TXDCTL: ENABLE reads back as written, except that a queue in
    /// the error state reads 0 (it is not running).
    fn read_dctl(&self, s: &QueueShared, stored: u32, enable: u32) -> u32 {
        if s.state.load(Ordering::Acquire) == ERROR {
            stored & !enable
        } else {
            stored
        }
    }

    pub(super) fn write_rx(&self, reg: RxReg, q: u16, offset: usize, value: u32) {
        let s = &self.rxq[q as usize];
        match reg {
            RxReg::Tail => {
                self.write_tail(Dir::Rx, q, s, value);
                self.deliver_inline();
            }
            RxReg::Head => self.write_head(Dir::Rx, q, s, value),
            RxReg::Dctl => {
                self.store(offset, value);
                let enable = value & self.layout.rxdctl_enable != 0;
                let state = s.state.load(Ordering::Acquire);
                if enable && state != ACTIVE {
                    self.enable_rx(q);
                } else if !enable && state != DISABLED {
                    self.rx_engine().close(q as usize);
                    self.disable(s);
                    self.note(|| format!("RX queue {q} disabled"));
                }
            }
            RxReg::Srrctl => {
                self.store(offset, value);
                self.rx_config_gen.fetch_add(1, Ordering::AcqRel);
            }
            RxReg::Bal | RxReg::Bah | RxReg::Len => self.store(offset, value),
        }
    }

    pub(super) fn write_tx(&self, reg: TxReg, q: u16, offset: usize, value: u32) {
        let s = &self.txq[q as usize];
        match reg {
            TxReg::Tail => {
                self.write_tail(Dir::Tx, q, s, value);
                if self.mode == RunMode::Inline {
                    self.tx_process(q, usize::MAX);
                    self.deliver_inline();
                }
            }
            TxReg::Head => self.write_head(Dir::Tx, q, s, value),
            TxReg::Dctl => {
                self.store(offset, value);
                let enable = value & self.layout.txdctl_enable != 0;
                let state = s.state.load(Ordering::Acquire);
                if enable && state != ACTIVE {
                    self.enable_tx(q);
                    if self.mode == RunMode::Inline {
                        self.tx_process(q, usize::MAX);
                    }
                } else if !enable && state != DISABLED {
                    *self.tx_ring(q) = None;
                    self.disable(s);
                    self.note(|| format!("TX queue {q} disabled"));
                }
            }
            TxReg::Bal | TxReg::Bah | TxReg::Len => self.store(offset, value),
        }
    }

    /// RDT/TDT: checked against the ring while it runs (a value past the
    /// end is a driver bug: the queue stops in the error state); stored as
    /// is while the queue is disabled and checked when it is enabled.
    fn write_tail(&self, dir: Dir, q: u16, s: &QueueShared, value: u32) {
        let entries = s.entries.load(Ordering::Acquire);
        if entries != 0 && value >= entries {
            self.queue_error(dir, q, s, || {
                format!(
                    "tail {value} written, but the ring has {entries} descriptors (0..{entries})"
                )
            });
            return;
        }
        s.tail.store(value, Ordering::Release);
    }

    /// RDH/TDH: the driver may set the head only while the queue is disabled.
    fn write_head(&self, dir: Dir, q: u16, s: &QueueShared, value: u32) {
        if s.state.load(Ordering::Acquire) == ACTIVE {
            self.note(|| {
                format!(
                    "{} queue {q}: head write {value} ignored: the queue is enabled (write the \
                     head only while the queue is disabled)",
                    dir.name()
                )
            });
            return;
        }
        s.head.store(value, Ordering::Release);
    }

    fn disable(&self, s: &QueueShared) {
        s.entries.store(0, Ordering::Release);
        s.state.store(DISABLED, Ordering::Release);
    }

    /// A queue stops: state ERROR, traced and counted. The driver gets it
    /// back by disabling and re-enabling the queue (or a device reset).
    pub(super) fn queue_error(
        &self,
        dir: Dir,
        q: u16,
        s: &QueueShared,
        why: impl FnOnce() -> String,
    ) {
        s.entries.store(0, Ordering::Release);
        s.state.store(ERROR, Ordering::Release);
        bump(&self.counters.queue_errors);
        self.note_by(dir.engine(q), || {
            format!("{} queue {q} stopped (error state): {}", dir.name(), why())
        });
    }

    /// Read and check the ring registers of a queue about to be enabled:
    /// (base IOVA, descriptors, head, tail), or why they are unusable.
    fn ring_registers(
        &self,
        s: &QueueShared,
        bal: usize,
        bah: usize,
        len: usize,
    ) -> Result<(u64, u32, u32, u32), String> {
        let base = self.load(bal) as u64 | (self.load(bah) as u64) << 32;
        let bytes = self.load(len) as u64;
        let head = s.head.load(Ordering::Acquire);
        let tail = s.tail.load(Ordering::Acquire);
        if bytes == 0 || !bytes.is_multiple_of(RING_ALIGN as u64) || bytes >= MAX_RING_BYTES {
            return Err(format!(
                "length register {bytes} is not a non-zero multiple of {RING_ALIGN} bytes below \
                 {MAX_RING_BYTES}; program the base and length registers before setting ENABLE"
            ));
        }
        if !base.is_multiple_of(RING_ALIGN as u64) {
            return Err(format!(
                "ring base {base:#x} is not {RING_ALIGN}-byte aligned"
            ));
        }
        let entries = (bytes / DESC_SIZE as u64) as u32;
        if head >= entries || tail >= entries {
            return Err(format!(
                "head {head} / tail {tail} outside the ring of {entries} descriptors"
            ));
        }
        Ok((base, entries, head, tail))
    }

    /// RXDCTL.ENABLE set: latch the ring (82576 §4.5.9, 82599 §4.6.7).
    fn enable_rx(&self, q: u16) {
        let s = &self.rxq[q as usize];
        let lay = &self.layout;
        let mut engine = self.rx_engine();
        let srrctl = self.load(lay.rx_queues.addr(q, RxReg::Srrctl));
        let desctype = lay.srrctl.desctype.get(srrctl);
        let regs = self.ring_registers(
            s,
            lay.rx_queues.addr(q, RxReg::Bal),
            lay.rx_queues.addr(q, RxReg::Bah),
            lay.rx_queues.addr(q, RxReg::Len),
        );
        let regs = regs.and_then(|r| {
            if desctype == lay.srrctl.desctype_adv {
                Ok(r)
            } else {
                Err(format!(
                    "SRRCTL.DESCTYPE is {desctype}: only the advanced one-buffer descriptor \
                     ({}) is modelled; set it before enabling the queue",
                    lay.srrctl.desctype_adv
                ))
            }
        });
        match regs {
            Ok((base, entries, head, tail)) => {
                engine.open(q as usize, RxRing::new(base, entries, head));
                s.entries.store(entries, Ordering::Release);
                s.state.store(ACTIVE, Ordering::Release);
                self.note(|| {
                    format!(
                        "RX queue {q} enabled: {entries} descriptors at {base:#x}, head {head}, \
                         tail {tail}"
                    )
                });
            }
            Err(why) => {
                engine.close(q as usize);
                drop(engine);
                self.queue_error(Dir::Rx, q, s, || why);
            }
        }
    }

    /// TXDCTL.ENABLE set: latch the ring.
    fn enable_tx(&self, q: u16) {
        let s = &self.txq[q as usize];
        let mut ring = self.tx_ring(q);
        let regs = self.ring_registers(
            s,
            self.layout.tx_queues.addr(q, TxReg::Bal),
            self.layout.tx_queues.addr(q, TxReg::Bah),
            self.layout.tx_queues.addr(q, TxReg::Len),
        );
        match regs {
            Ok((base, entries, head, tail)) => {
                *ring = Some(TxRing::new(base, entries, head));
                self.tx_span.fetch_max(q + 1, Ordering::AcqRel);
                s.entries.store(entries, Ordering::Release);
                s.state.store(ACTIVE, Ordering::Release);
                self.note(|| {
                    format!(
                        "TX queue {q} enabled: {entries} descriptors at {base:#x}, head {head}, \
                         tail {tail}"
                    )
                });
            }
            Err(why) => {
                *ring = None;
                drop(ring);
                self.queue_error(Dir::Tx, q, s, || why);
            }
        }
    }
}
