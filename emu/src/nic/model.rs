//! The NIC model's register side: the register file, MMIO dispatch, device
//! reset, link and PHY, statistics, and enabling and disabling queues. The
//! data path is in `rx` and `tx`.
#![forbid(unsafe_code)]

use super::config::{ModelCounters, NicModelConfig};
use super::layout::{Ctr, Half, Layout, LinkReport, Reg, RxReg, TxReg, CTRS};
use super::rx::{RxEngine, RxRing};
use super::tx::TxRing;
use crate::wire::Wire;
use crate::{DeviceDma, MmioDevice, Pollable, RunMode, TraceEvent};
use spec::nic::adv_desc::{DESC_SIZE, RING_ALIGN};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Queue state: not enabled (or not yet configured).
pub(super) const DISABLED: u8 = 0;
/// Queue state: enabled with a valid ring; the device works on it.
pub(super) const ACTIVE: u8 = 1;
/// Queue state: stopped after a bad ring register or an unreachable ring.
/// Leaves it by disabling and re-enabling the queue, or by a device reset.
pub(super) const ERROR: u8 = 2;

/// Largest ring: RDLEN/TDLEN are 20-bit byte counts (multiples of 128).
const MAX_RING_BYTES: u64 = 1 << 20;

/// Frames moved from the wire per poll, and descriptors processed per TX
/// queue per poll, in threaded mode (bounds the time a poll holds a lock).
pub(super) const RX_BUDGET: usize = 64;
pub(super) const TX_BUDGET: usize = 256;

/// Threaded polls with nothing to do after which the wire is checked only
/// on every [`IDLE_WIRE_EVERY`]th poll: a check of a socket or TAP wire is a
/// system call, and a device thread spins through thousands of idle polls
/// before it backs off, so cheap idle polls give the CPU back sooner.
const IDLE_POLLS_BEFORE_THROTTLE: u32 = 64;
const IDLE_WIRE_EVERY: u32 = 16;

/// Which way a queue goes, for messages and trace queue numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Rx,
    Tx,
}

impl Dir {
    /// The trace queue number: `2 * q` for RX, `2 * q + 1` for TX.
    pub(super) fn trace_queue(self, q: u16) -> u32 {
        2 * q as u32 + (self == Dir::Tx) as u32
    }

    fn name(self) -> &'static str {
        match self {
            Dir::Rx => "RX",
            Dir::Tx => "TX",
        }
    }
}

/// The registers of one queue that the register side writes and the data
/// path reads without taking the data path's lock.
#[derive(Debug, Default)]
pub(super) struct QueueShared {
    /// The device's head (RDH/TDH as read).
    pub head: AtomicU32,
    /// The driver's tail (RDT/TDT as written).
    pub tail: AtomicU32,
    /// Descriptors in the ring while ACTIVE, else 0.
    pub entries: AtomicU32,
    /// DISABLED, ACTIVE or ERROR.
    pub state: AtomicU8,
}

/// The model's own counters ([`ModelCounters`]) as atomics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub rx_frames: AtomicU64,
    pub rx_delivered: AtomicU64,
    pub rx_filtered: AtomicU64,
    pub rx_disabled: AtomicU64,
    pub rx_no_descriptor: AtomicU64,
    pub rx_oversize: AtomicU64,
    pub rx_runt: AtomicU64,
    pub rx_dma_faults: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_dma_faults: AtomicU64,
    pub tx_malformed: AtomicU64,
    pub tx_offload_errors: AtomicU64,
    pub tx_link_down: AtomicU64,
    pub queue_errors: AtomicU64,
    pub wire_errors: AtomicU64,
}

/// Add one to a counter.
#[inline]
pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// An emulated Intel NIC port: the MMIO side of BAR0 ([`MmioDevice`]) and
/// the device work ([`Pollable`]). Build one with [`super::EmuNic`], which
/// also provides the IOMMU, PCI function, wire and device thread.
pub struct NicModel {
    pub(super) layout: Layout,
    pub(super) mac: [u8; 6],
    pub(super) queues: u16,
    pub(super) mode: RunMode,
    pub(super) dma: DeviceDma,
    pub(super) wire: Arc<dyn Wire>,
    /// Register storage, one word per decoded offset.
    regs: Box<[AtomicU32]>,
    link_up: AtomicBool,
    /// Transmission held, as by 802.3x PAUSE frames from the link partner.
    tx_paused: AtomicBool,
    /// 802.3x flow control with the peer (see [`NicModelConfig::flow_control`]).
    pub(super) flow_control: bool,
    /// Datasheet statistics (clear on read), by [`Ctr`].
    stats: Box<[AtomicU64]>,
    /// High halves latched by reads of the low registers, by [`Ctr`].
    latches: Box<[AtomicU32]>,
    /// Per-queue drop counters (RQDPC / QPRDC).
    pub(super) queue_drop: Box<[AtomicU64]>,
    /// Per-queue received packets (QPRC).
    pub(super) queue_rx: Box<[AtomicU64]>,
    pub(super) rxq: Box<[QueueShared]>,
    pub(super) txq: Box<[QueueShared]>,
    /// Bumped by every write of a receive configuration register.
    pub(super) rx_config_gen: AtomicU64,
    rx: Mutex<RxEngine>,
    tx: Box<[Mutex<Option<TxRing>>]>,
    /// Consecutive threaded polls that found nothing to do.
    idle_polls: AtomicU32,
    /// PHY CONTROL register (82576 / I350).
    phy_control: AtomicU16,
    pub(super) counters: Counters,
}

impl NicModel {
    /// A model of the chip `layout` describes, reachable through `dma`,
    /// plugged into `wire`. Configuration checked by the caller.
    pub(super) fn new(
        layout: Layout,
        cfg: &NicModelConfig,
        queues: u16,
        mode: RunMode,
        dma: DeviceDma,
        wire: Arc<dyn Wire>,
    ) -> NicModel {
        let words = layout.slots.len();
        let qc = layout.queue_counters as usize;
        let model = NicModel {
            mac: cfg.mac,
            queues,
            mode,
            dma,
            wire,
            regs: (0..words).map(|_| AtomicU32::new(0)).collect(),
            link_up: AtomicBool::new(cfg.link_up),
            tx_paused: AtomicBool::new(false),
            flow_control: cfg.flow_control,
            stats: (0..CTRS).map(|_| AtomicU64::new(0)).collect(),
            latches: (0..CTRS).map(|_| AtomicU32::new(0)).collect(),
            queue_drop: (0..qc).map(|_| AtomicU64::new(0)).collect(),
            queue_rx: (0..qc).map(|_| AtomicU64::new(0)).collect(),
            rxq: (0..queues).map(|_| QueueShared::default()).collect(),
            txq: (0..queues).map(|_| QueueShared::default()).collect(),
            rx_config_gen: AtomicU64::new(1),
            rx: Mutex::new(RxEngine::new(queues)),
            tx: (0..queues).map(|_| Mutex::new(None)).collect(),
            idle_polls: AtomicU32::new(0),
            phy_control: AtomicU16::new(0),
            counters: Counters::default(),
            layout,
        };
        model.load_reset_values();
        model
    }

    /// How the device work is run.
    pub fn mode(&self) -> RunMode {
        self.mode
    }

    /// Whether the link is up.
    pub fn link_up(&self) -> bool {
        self.link_up.load(Ordering::Acquire)
    }

    /// Bring the link up or down (a cable plugged or pulled).
    pub fn set_link(&self, up: bool) {
        let was = self.link_up.swap(up, Ordering::AcqRel);
        if was != up {
            self.note(|| format!("link {}", if up { "up" } else { "down" }));
        }
    }

    /// Hold or resume transmission on every queue, as a link partner does
    /// with 802.3x PAUSE frames (flow control): while held, the device
    /// fetches no TX descriptor, so the driver's TX rings fill up.
    pub fn set_tx_paused(&self, paused: bool) {
        let was = self.tx_paused.swap(paused, Ordering::AcqRel);
        if was != paused {
            self.note(|| format!("transmission {}", if paused { "paused" } else { "resumed" }));
        }
    }

    /// The model's own counters.
    pub fn counters(&self) -> ModelCounters {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ModelCounters {
            rx_frames: l(&c.rx_frames),
            rx_delivered: l(&c.rx_delivered),
            rx_filtered: l(&c.rx_filtered),
            rx_disabled: l(&c.rx_disabled),
            rx_no_descriptor: l(&c.rx_no_descriptor),
            rx_oversize: l(&c.rx_oversize),
            rx_runt: l(&c.rx_runt),
            rx_dma_faults: l(&c.rx_dma_faults),
            tx_frames: l(&c.tx_frames),
            tx_dma_faults: l(&c.tx_dma_faults),
            tx_malformed: l(&c.tx_malformed),
            tx_offload_errors: l(&c.tx_offload_errors),
            tx_link_down: l(&c.tx_link_down),
            queue_errors: l(&c.queue_errors),
            wire_errors: l(&c.wire_errors),
        }
    }

    /// Move frames and descriptors until nothing is left to do (or a bound
    /// on rounds is reached, for wires that never run dry). True if
    /// anything was done.
    pub fn poll_until_idle(&self) -> bool {
        let mut any = false;
        for _ in 0..1024 {
            if !self.poll_round(true) {
                break;
            }
            any = true;
        }
        any
    }

    /// One round of device work: every TX ring up to its budget, then the
    /// wire (always when `check_wire`, else as the idle throttle allows).
    fn poll_round(&self, check_wire: bool) -> bool {
        let mut did = false;
        for q in 0..self.queues {
            did |= self.tx_process(q, TX_BUDGET);
        }
        let idle = self.idle_polls.load(Ordering::Relaxed);
        if check_wire
            || did
            || idle < IDLE_POLLS_BEFORE_THROTTLE
            || idle.is_multiple_of(IDLE_WIRE_EVERY)
        {
            did |= self.rx_poll(RX_BUDGET);
        }
        let next = if did { 0 } else { idle.saturating_add(1) };
        self.idle_polls.store(next, Ordering::Relaxed);
        did
    }

    /// Record a note in the trace.
    pub(super) fn note(&self, f: impl FnOnce() -> String) {
        self.dma.trace().record(|| TraceEvent::Note(f()));
    }

    // ---- register storage ----

    /// The stored value of the register at `offset` (through its alias).
    #[inline]
    pub(super) fn load(&self, offset: usize) -> u32 {
        match self.layout.slots.get(offset / 4) {
            Some(s) => self.regs[s.store as usize].load(Ordering::Acquire),
            None => 0,
        }
    }

    #[inline]
    fn store(&self, offset: usize, value: u32) {
        if let Some(s) = self.layout.slots.get(offset / 4) {
            self.regs[s.store as usize].store(value, Ordering::Release);
        }
    }

    /// Whether `bit` is set in the register at `offset`.
    #[inline]
    pub(super) fn bit(&self, (offset, bit): (usize, u32)) -> bool {
        self.load(offset) & bit != 0
    }

    /// Power-on / reset values of every register.
    fn load_reset_values(&self) {
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

    // ---- statistics ----

    /// Add `n` to the statistics counter `c`.
    #[inline]
    pub(super) fn count(&self, c: Ctr, n: u64) {
        self.stats[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The per-queue statistics counter of queue `q` (82599: RQSMR map).
    #[inline]
    pub(super) fn queue_counter(&self, q: u16) -> Option<usize> {
        let n = match self.layout.rqsmr {
            Some(rqsmr) => {
                use spec::nic::ixgbe::{RQSMR_COUNTER_MASK, RQSMR_QUEUES_PER_REG};
                let q = q as usize;
                let word = self.load(rqsmr(q / RQSMR_QUEUES_PER_REG));
                (word.to_le_bytes()[q % RQSMR_QUEUES_PER_REG] & RQSMR_COUNTER_MASK) as usize
            }
            None => q as usize,
        };
        (n < self.queue_drop.len()).then_some(n)
    }

    fn read_counter(&self, c: Ctr, half: Half) -> u32 {
        let i = c as usize;
        match half {
            Half::Whole => self.stats[i].swap(0, Ordering::AcqRel).min(u32::MAX as u64) as u32,
            Half::Low => {
                let v = self.stats[i].swap(0, Ordering::AcqRel);
                self.latches[i].store((v >> 32) as u32, Ordering::Release);
                v as u32
            }
            Half::High => self.latches[i].swap(0, Ordering::AcqRel),
        }
    }

    // ---- the data path locks ----

    pub(super) fn rx_engine(&self) -> MutexGuard<'_, RxEngine> {
        // A panic in the data path (a bug) leaves rings in a state the next
        // enable or reset rebuilds; keep the device usable.
        self.rx.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tx_ring(&self, q: u16) -> MutexGuard<'_, Option<TxRing>> {
        self.tx[q as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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

    fn write_ctrl(&self, value: u32) {
        let l = &self.layout;
        self.store(l.ctrl, value & !l.ctrl_self_clear);
        if value & l.ctrl_rst != 0 {
            self.reset();
        }
    }

    fn read_status(&self) -> u32 {
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

    fn read_links(&self) -> u32 {
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
    fn write_mdic(&self, offset: usize, value: u32) {
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

    fn read_rx(&self, reg: RxReg, q: u16, stored: u32) -> u32 {
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

    fn read_tx(&self, reg: TxReg, q: u16, stored: u32) -> u32 {
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

    fn write_rx(&self, reg: RxReg, q: u16, offset: usize, value: u32) {
        let s = &self.rxq[q as usize];
        match reg {
            RxReg::Tail => {
                self.dma.trace().record(|| TraceEvent::Doorbell {
                    queue: Dir::Rx.trace_queue(q),
                    value,
                });
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

    fn write_tx(&self, reg: TxReg, q: u16, offset: usize, value: u32) {
        let s = &self.txq[q as usize];
        match reg {
            TxReg::Tail => {
                self.dma.trace().record(|| TraceEvent::Doorbell {
                    queue: Dir::Tx.trace_queue(q),
                    value,
                });
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
        self.note(|| format!("{} queue {q} stopped (error state): {}", dir.name(), why()));
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

    // ---- the data path entry points ----

    /// Process the TX ring of queue `q` up to `budget` descriptors. True if
    /// anything was done.
    pub(super) fn tx_process(&self, q: u16, budget: usize) -> bool {
        let s = &self.txq[q as usize];
        if s.state.load(Ordering::Acquire) != ACTIVE
            || s.tail.load(Ordering::Acquire) == s.head.load(Ordering::Acquire)
            || !self.bit(self.layout.tx_enable)
            || self.tx_paused.load(Ordering::Acquire)
        {
            return false;
        }
        let mut guard = self.tx_ring(q);
        match guard.as_mut() {
            Some(ring) => ring.run(self, q, budget),
            None => false,
        }
    }

    /// Move up to `budget` frames from the wire into the receive rings.
    pub(super) fn rx_poll(&self, budget: usize) -> bool {
        self.rx_engine().poll(self, budget)
    }

    /// In inline mode, the receive work the access rules promise: frames
    /// waiting on the wire go into the rings now.
    #[inline]
    fn deliver_inline(&self) {
        if self.mode == RunMode::Inline {
            while self.rx_poll(RX_BUDGET) {}
        }
    }
}

impl MmioDevice for NicModel {
    fn bar_size(&self) -> usize {
        self.layout.bar_size
    }

    fn mmio_read(&self, offset: usize, size: u8) -> u64 {
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
        let is_doorbell = matches!(
            self.layout.slots.get(offset / 4).map(|s| s.reg),
            Some(Reg::Rx(RxReg::Tail, _)) | Some(Reg::Tx(TxReg::Tail, _))
        );
        if !is_doorbell {
            self.dma
                .trace()
                .record(|| TraceEvent::RegWrite { offset, value });
        }
        self.write32(offset, value as u32);
        if size == 8 {
            self.write32(offset + 4, (value >> 32) as u32);
        }
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

impl Pollable for NicModel {
    fn poll(&self) -> bool {
        self.poll_round(false)
    }
}
