//! The emulated Intel NICs (82576, I350, 82599): the logic the chips share
//! (descriptor processing, RSS, checksum offload, statistics), driven by a
//! per-chip register map from the private `igb` and `ixgbe` modules, and
//! [`EmuNic`], a whole emulated port: model, PCI function, BAR0, IOMMU,
//! wire, trace and device thread.
//!
//! # What the model does
//! - Registers with their datasheet behaviour: CTRL.RST resets everything
//!   and self-clears; the EEPROM auto-read (EECD.AUTO_RD / EEC.ARD) and the
//!   82599 DMA initialization (RDRXCTL.DMAIDONE) are done at once; the link
//!   (STATUS.LU, LINKS) follows [`NicModelConfig::link_up`] and
//!   [`EmuNic::set_link`]; statistics clear on read (a read of a low half,
//!   GORCL, takes the whole 64-bit counter and latches the high half for
//!   GORCH; an 8-byte read at GORCL takes it in one access); RXDCTL/TXDCTL
//!   ENABLE read back (0 for a queue in the error state); RAL/RAH\[0\] hold
//!   the configured MAC after reset. [`EmuNic::surprise_remove`] takes the
//!   port off the bus: every read returns all ones, as on PCIe.
//! - Receive: destination filter (unicast/multicast promiscuous, broadcast
//!   accept, exact addresses, multicast table), maximum frame size (LPE /
//!   JUMBOEN), RSS (Toeplitz over IPv4/IPv6 addresses and TCP/UDP ports as
//!   MRQC selects; RETA picks the queue; the hash and type are written back
//!   when RXCSUM.PCSD is set), CRC stripping (else the FCS is stored and
//!   counted in the length), frames longer than the SRRCTL buffer spread over
//!   several descriptors with EOP on the last, advanced write-back (length,
//!   DD, EOP, RSS type, packet type, hash; DD written last with release
//!   ordering). No free descriptor: dropped and counted (RNBC, and
//!   RQDPC/QPRDC with SRRCTL.DROP_EN, else MPC).
//! - Transmit: advanced context and data descriptors, scatter-gather up to
//!   EOP, IPv4 header and TCP/UDP checksum insertion (the L4 field carries the
//!   pseudo-header sum, as the datasheets require), padding to 60 bytes
//!   (TCTL.PSP / HLREG0.TXPADEN), DD written back only where RS is set.
//!   While the link is down the engine fetches nothing: descriptors wait in
//!   the ring and go out when the link is back up.
//! - Everything the driver gives is checked: ring base and length (128-byte
//!   multiples), head and tail inside the ring, SRRCTL.DESCTYPE, descriptor
//!   types. A bad value puts that queue in an error state (traced, counted in
//!   [`ModelCounters::queue_errors`]); the device never panics.
//! - All memory access goes through [`DeviceDma`] (IOMMU-checked, traced).
//!   A packet buffer the IOMMU refuses: on RX the frame is dropped, its
//!   descriptor written back with EOP and the RX data error bit (RXE) and
//!   length 0; on TX the queue stops (error state) without sending or
//!   completing the packet, so no frame that did not go out is taken for
//!   sent. Both are counted ([`ModelCounters`]) and traced. A ring the IOMMU
//!   refuses stops its queue (error state) too.
//!
//! Not modelled: interrupts (masks are stored, nothing is raised), legacy
//! descriptors, header split, TSO, VLAN insertion/stripping and filtering,
//! RX checksum offload status, SCTP CRC offload, VMDq/DCB/SR-IOV, the
//! flow-control registers (PAUSE frames are not put on the wire: with the
//! device option `pause=on` the wire itself holds, see
//! [`NicModelConfig::flow_control`]), the head write-back (TDWBAL), EEPROM
//! reads through EERD, flow director, timestamps, loopback modes.
//!
//! # When the device works (run modes)
//! - [`RunMode::Inline`]: on the caller's thread, deterministic. A TDT write
//!   processes that TX ring to the tail before it returns. Frames move from
//!   the wire into the RX rings (1) on every RDT write, (2) after the TX
//!   work of every TDT write (so a port on a `loop` wire gets its own frames
//!   back), (3) on reads of RDH and of the statistics registers, and (4) on
//!   [`EmuNic::poll`]. A driver that only polls descriptor memory needs (4).
//! - [`RunMode::Threaded`]: a [`DeviceThread`] polls every enabled TX ring
//!   (up to 256 descriptors per ring per round) and the wire (up to 64
//!   frames per round); register writes only record the new tails. After
//!   64 rounds with nothing to do, the wire is checked every 16th round (a
//!   check of a socket or TAP wire is a system call), so an idle thread
//!   backs off sooner; any work resets that.
//!
//! # Trace
//! The device's half of the descriptor trace ([`drivers::trace`], through
//! [`EmuNic::set_tap`]; register accesses are recorded by the BAR, the
//! driver's half by the driver), by engine (`device/rxN`, `device/txN`,
//! `device/wire`, `device/controller` for the port as a whole) and queue
//! (`RXn`, `TXn`): `fetch` per descriptor read, with its 16 bytes;
//! `dma_read` per TX buffer segment and `dma_write` per RX buffer, with
//! IOVA and length; `write_back` per descriptor written back, with the 16
//! bytes it holds afterwards (a TX write-back writes only the status
//! dword); `frame` when a frame leaves (`TXn`) or arrives for a queue
//! (`RXn`), with its length and first 64 bytes; `fault` for IOMMU faults;
//! `note` for resets, queue state changes, drops and errors.
//!
//! # Files
//! The files mirror the driver's (`drivers::nic`), with the model's state
//! apart from what acts on it: `model` (the [`NicModel`] struct, its
//! constructor, accessors and register storage), `queue_state` (queue
//! direction, state and the registers shared with the data path),
//! `counters` (the model's own counters), `rx_state` and `tx_state` (the
//! rings and the receive engine), `rx` and `tx` (the data path), `mmio`
//! (register dispatch by offset), `queue` (queue control), `reset`, `phy`
//! (link and PHY), `stats`, `poll` (the device work), `trace` (the device's
//! trace events), and the chip-specific
//! `igb`, `ixgbe` and `layout`, `config`, `rss`, `frame`, `checksum`.
//! Imports go one way, from the top down: `mmio`, `queue`, `reset`, `phy`,
//! `stats`, `poll`, `rx`, `tx`, then `model`, then `rx_state`/`tx_state`/
//! `queue_state`/`counters`, `config`, `layout`, `rss`, `checksum`, `frame`.
#![forbid(unsafe_code)]

mod checksum;
mod config;
mod counters;
mod frame;
mod hostile;
mod hostile_acts;
mod igb;
mod inspect;
mod ixgbe;
mod layout;
mod mmio;
mod model;
mod phy;
mod poll;
mod queue;
mod queue_state;
mod reset;
mod rss;
mod rx;
mod rx_state;
mod stats;
#[cfg(test)]
mod tests;
mod trace;
mod tx;
mod tx_state;
mod tx_stop;

pub use config::{ModelCounters, ModelError, NicModelConfig};
pub use hostile::HostileConfig;
pub use inspect::{RingView, TailOf};
pub use model::NicModel;

use crate::wire::Wire;
use crate::{DeviceDma, DeviceThread, EmuBar, EmuPciFunction, RunMode, Trace};
use dma::EmuIommu;
use drivers::nic::Chip;
use std::sync::Arc;

/// See [`EmuNic::poller`].
#[derive(Clone)]
pub struct NicPoller(Arc<NicModel>);

impl NicPoller {
    /// [`EmuNic::poll`].
    pub fn poll(&self) -> bool {
        self.0.poll_until_idle()
    }
}

/// A whole emulated NIC port: the model, its PCI function and BAR0, the
/// IOMMU it reaches memory through, its wire, its trace and, in
/// [`RunMode::Threaded`], its device thread.
///
/// Keep it alive as long as a driver uses the port: dropping it stops the
/// device thread, after which a threaded port moves no more frames.
pub struct EmuNic {
    // Dropped first: the thread stops before anything else goes.
    thread: Option<DeviceThread>,
    model: Arc<NicModel>,
    iommu: Arc<EmuIommu>,
    pci: Arc<EmuPciFunction>,
    trace: Arc<Trace>,
}

impl EmuNic {
    /// A port of `chip` with its own IOMMU, plugged into `wire`. Bus
    /// mastering starts disabled, as after power-on: the driver's open
    /// enables it ([`EmuPciFunction::enable`]).
    pub fn new(
        chip: Chip,
        cfg: NicModelConfig,
        wire: Arc<dyn Wire>,
        mode: RunMode,
    ) -> Result<EmuNic, ModelError> {
        Self::with_iommu(chip, cfg, wire, mode, Arc::new(EmuIommu::new()))
    }

    /// A port that shares `iommu` with other devices of the process (like
    /// one VFIO container for all of them), so buffers of one pool can go
    /// to several ports.
    pub fn with_iommu(
        chip: Chip,
        cfg: NicModelConfig,
        wire: Arc<dyn Wire>,
        mode: RunMode,
        iommu: Arc<EmuIommu>,
    ) -> Result<EmuNic, ModelError> {
        cfg.validate()?;
        let queues = cfg.queues_for(chip, chip.max_queues())?;
        let layout = match chip {
            Chip::I82576 | Chip::I350 => igb::layout(chip, queues),
            Chip::X82599 => ixgbe::layout(chip, queues),
        };
        let trace = Arc::new(Trace::new());
        let pci = Arc::new(EmuPciFunction::new(layout.pci));
        let dma = DeviceDma::new(iommu.clone(), pci.clone(), trace.clone());
        let model = Arc::new(NicModel::new(layout, &cfg, queues, mode, dma, wire));
        let thread = match mode {
            RunMode::Inline => None,
            RunMode::Threaded => {
                let name = format!("emu-{}", chip.name());
                Some(DeviceThread::spawn(&name, model.clone()).map_err(ModelError::Thread)?)
            }
        };
        Ok(EmuNic {
            thread,
            model,
            iommu,
            pci,
            trace,
        })
    }

    /// BAR0, for the driver.
    pub fn bar(&self) -> EmuBar<NicModel> {
        EmuBar::new(self.model.clone())
    }

    /// The IOMMU the port's DMA goes through.
    pub fn iommu(&self) -> &Arc<EmuIommu> {
        &self.iommu
    }

    /// The IOMMU as a mapper, for the driver's DMA memory.
    pub fn mapper(&self) -> Arc<dyn dma::Mapper> {
        self.iommu.clone()
    }

    /// The PCI function (config space, bus mastering).
    pub fn pci(&self) -> &Arc<EmuPciFunction> {
        &self.pci
    }

    /// The trace of device events (off until enabled).
    pub fn trace(&self) -> &Arc<Trace> {
        &self.trace
    }

    /// Record what the device does (descriptor fetches, buffer DMA,
    /// write-backs, frames, faults, notes) in `tap` from now on: the
    /// model's half of the descriptor trace ([`drivers::trace`]). Set once,
    /// before the driver starts; a second call is refused (false).
    pub fn set_tap(&self, tap: drivers::trace::Tap) -> bool {
        self.model.dma.set_tap(tap)
    }

    /// The model.
    pub fn model(&self) -> &Arc<NicModel> {
        &self.model
    }

    /// The chip modelled.
    pub fn chip(&self) -> Chip {
        self.model.layout.chip
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.model.mac
    }

    /// The wire the port is plugged into.
    pub fn wire(&self) -> &Arc<dyn Wire> {
        &self.model.wire
    }

    /// Whether a device thread runs the model.
    pub fn is_threaded(&self) -> bool {
        self.thread.is_some()
    }

    /// Do the device work now, on this thread, until nothing is left: send
    /// what the TX rings hold and move the frames waiting on the wire into
    /// the RX rings. True if anything was done. The way an inline port's
    /// driver (or test) lets frames arrive; harmless on a threaded port.
    pub fn poll(&self) -> bool {
        self.model.poll_until_idle()
    }

    /// A handle that does [`Self::poll`] from another thread, for as long
    /// as it lives (it keeps the model, not the port, alive).
    pub fn poller(&self) -> NicPoller {
        NicPoller(self.model.clone())
    }

    /// Bring the link up or down.
    pub fn set_link(&self, up: bool) {
        self.model.set_link(up)
    }

    /// Stop the transmit engine after `frames` more frames, or clear that
    /// fault with None ([`NicModel::stop_tx_after`]): a NIC that stops
    /// sending, with nothing in its registers to say so.
    pub fn stop_tx_after(&self, frames: Option<u64>) {
        self.model.stop_tx_after(frames)
    }

    /// Hold or resume transmission (802.3x flow control from the link
    /// partner): a stalled NIC, for backpressure tests.
    pub fn set_tx_paused(&self, paused: bool) {
        self.model.set_tx_paused(paused)
    }

    /// The model's own counters (drops, faults, errors).
    pub fn counters(&self) -> ModelCounters {
        self.model.counters()
    }

    /// Pull the port off the bus for good: BAR0 reads all ones, writes are
    /// lost, no more device work ([`NicModel::surprise_remove`]).
    pub fn surprise_remove(&self) {
        self.model.surprise_remove()
    }

    /// Turn hostile-device mode on (seeded, attacking what `cfg` names) or,
    /// with `None`, off ([`NicModel::set_hostile`]; what it does is listed
    /// in the `hostile` module).
    pub fn set_hostile(&self, seed: u64, cfg: Option<HostileConfig>) {
        self.model.set_hostile(seed, cfg)
    }
}
