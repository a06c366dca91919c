//! The NIC model's state: the [`NicModel`] struct (register file,
//! statistics, link, queue registers, the data path's locked state), its
//! constructor and accessors, and register storage. What acts on it is
//! elsewhere: `mmio` (register dispatch), `reset`, `phy`, `stats`, `queue`
//! (queue control), `poll` (the device work), `rx` and `tx` (the data path).
#![forbid(unsafe_code)]

use super::config::{ModelCounters, NicModelConfig};
use super::counters::Counters;
use super::layout::{Layout, CTRS};
use super::queue_state::QueueShared;
use super::rx_state::RxEngine;
use super::tx_state::TxRing;
use super::tx_stop::TxStop;
use crate::wire::Wire;
use crate::{DeviceDma, DeviceWaker, RunMode};
use drivers::trace::Engine;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// An emulated Intel NIC port: the MMIO side of BAR0 ([`MmioDevice`](crate::MmioDevice)) and
/// the device work ([`Pollable`](crate::Pollable)). Build one with [`super::EmuNic`], which
/// also provides the IOMMU, PCI function, wire and device thread.
pub struct NicModel {
    pub(super) layout: Layout,
    pub(super) mac: [u8; 6],
    pub(super) queues: u16,
    pub(super) mode: RunMode,
    pub(super) dma: DeviceDma,
    pub(super) wire: Arc<dyn Wire>,
    /// Register storage, one word per decoded offset.
    pub(super) regs: Box<[AtomicU32]>,
    pub(super) link_up: AtomicBool,
    /// Transmission held, as by 802.3x PAUSE frames from the link partner.
    pub(super) tx_paused: AtomicBool,
    /// 802.3x flow control with the peer (see [`NicModelConfig::flow_control`]).
    pub(super) flow_control: bool,
    /// Datasheet statistics (clear on read), by [`Ctr`](super::layout::Ctr).
    pub(super) stats: Box<[AtomicU64]>,
    /// High halves latched by reads of the low registers, by [`Ctr`](super::layout::Ctr).
    pub(super) latches: Box<[AtomicU32]>,
    /// Per-queue drop counters (RQDPC / QPRDC).
    pub(super) queue_drop: Box<[AtomicU64]>,
    /// Per-queue received packets (QPRC).
    pub(super) queue_rx: Box<[AtomicU64]>,
    pub(super) rxq: Box<[QueueShared]>,
    pub(super) txq: Box<[QueueShared]>,
    /// Bumped by every write of a receive configuration register.
    pub(super) rx_config_gen: AtomicU64,
    pub(super) rx: Mutex<RxEngine>,
    pub(super) tx: Box<[Mutex<Option<TxRing>>]>,
    /// One more than the highest TX queue enabled since the last reset:
    /// the device rounds look at queues below it only (the 82599 has 128,
    /// a driver typically enables one or two).
    pub(super) tx_span: AtomicU16,
    /// Wakes the device thread: register writes, frames arriving on a wire
    /// that signals them, injected events.
    pub(super) waker: Arc<DeviceWaker>,
    /// Consecutive threaded polls that found nothing to do.
    pub(super) idle_polls: AtomicU32,
    /// PHY CONTROL register (82576 / I350).
    pub(super) phy_control: AtomicU16,
    /// Pulled off the bus ([`NicModel::surprise_remove`]): BAR0 reads all
    /// ones, writes are lost, no device work.
    pub(super) removed: AtomicBool,
    /// The injected TX engine stop ([`NicModel::stop_tx_after`]).
    pub(super) tx_stop: TxStop,
    pub(super) counters: Counters,
    /// Hostile-device mode (off unless [`NicModel::set_hostile`]).
    pub(super) hostile: super::hostile::Hostile,
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
            tx_span: AtomicU16::new(0),
            waker: Arc::new(DeviceWaker::new(false)),
            idle_polls: AtomicU32::new(0),
            phy_control: AtomicU16::new(0),
            removed: AtomicBool::new(false),
            tx_stop: TxStop::default(),
            counters: Counters::default(),
            hostile: Default::default(),
            layout,
        };
        model.load_reset_values();
        if mode == RunMode::Threaded {
            // The thread sleeps when idle only if the wire wakes it for
            // arriving frames (and for room freed with flow control).
            let complete = model.wire.set_waker(model.waker.clone());
            model.waker.set_complete(complete);
        }
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
            self.waker.wake();
        }
    }

    /// Hold or resume transmission on every queue, as a link partner does
    /// with 802.3x PAUSE frames (flow control): while held, the device
    /// fetches no TX descriptor, so the driver's TX rings fill up.
    pub fn set_tx_paused(&self, paused: bool) {
        let was = self.tx_paused.swap(paused, Ordering::AcqRel);
        if was != paused {
            self.note(|| format!("transmission {}", if paused { "paused" } else { "resumed" }));
            self.waker.wake();
        }
    }

    /// Pull the device off the bus, for good (PCIe surprise removal, or a
    /// function put in D3cold): from now on every BAR0 read returns all
    /// ones, as a read of a gone PCIe function completes with all ones,
    /// writes are dropped, and the device does no more work (no DMA, no
    /// frames on or off the wire).
    pub fn surprise_remove(&self) {
        if !self.removed.swap(true, Ordering::AcqRel) {
            self.note(|| "surprise removal: BAR0 reads all ones from now on".into());
        }
    }

    /// Whether [`NicModel::surprise_remove`] was called.
    #[inline]
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
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

    /// Record a note about the device as a whole in the trace.
    pub(super) fn note(&self, f: impl FnOnce() -> String) {
        self.note_by(Engine::Controller, f);
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
    pub(super) fn store(&self, offset: usize, value: u32) {
        if let Some(s) = self.layout.slots.get(offset / 4) {
            self.regs[s.store as usize].store(value, Ordering::Release);
        }
    }

    /// Whether `bit` is set in the register at `offset`.
    #[inline]
    pub(super) fn bit(&self, (offset, bit): (usize, u32)) -> bool {
        self.load(offset) & bit != 0
    }

    // ---- the data path locks ----

    pub(super) fn rx_engine(&self) -> MutexGuard<'_, RxEngine> {
        // A panic in the data path (a bug) leaves rings in a state the next
        // enable or reset rebuilds; keep the device usable.
        self.rx.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn tx_ring(&self, q: u16) -> MutexGuard<'_, Option<TxRing>> {
        self.tx[q as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl NicModel {
    /// Stop the transmit engine after `frames` more frames (`Some(0)`: at
    /// once); `None` clears the fault and the engine goes on where it
    /// stopped.
    pub fn stop_tx_after(&self, frames: Option<u64>) {
        self.tx_stop
            .0
            .store(frames.unwrap_or(u64::MAX), Ordering::Release);
        self.note(|| match frames {
            Some(n) => format!("injected fault: the TX engine stops after {n} more frame(s)"),
            None => "TX engine fault cleared".into(),
        });
        self.waker.wake();
    }
}
