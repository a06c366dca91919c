//! The emulated NVMe controller: a software model of an NVMe 1.4 controller
//! with the NVM command set, backed by RAM or a file, that the NVMe driver
//! runs against exactly as against real hardware.
//!
//! What it implements (NVMe 1.4 base specification):
//! - registers (§3.1): CAP, VS, INTMS/INTMC (no interrupts are ever sent),
//!   CC (enable with configuration checks, reset, shutdown), CSTS (RDY
//!   follows CC.EN at once; CFS; SHST), AQA, ASQ, ACQ, doorbells with the
//!   CAP.DSTRD stride;
//! - admin commands (§5): Identify (controller, namespace, active namespace
//!   list), Set/Get Features Number of Queues, Create/Delete I/O SQ and CQ,
//!   Abort (never aborts), Get Log Page (zeroed error, SMART and firmware logs);
//! - I/O commands: Read, Write, Flush, with PRPs and PRP lists (§4.3), MDTS,
//!   LBA range and namespace checks;
//! - completion queues with phase tags that never overwrite an entry the host
//!   has not consumed;
//! - fault injection ([`Fault`]), a seeded hostile mode ([`Hostility`])
//!   and its half of the descriptor trace ([`EmuNvme::set_tap`]).
//!
//! Not implemented: interrupts (MSI-X), SGLs, metadata, fused commands,
//! asynchronous events, namespace management, Format NVM, Dataset
//! Management, Write Zeroes, Compare, NVM subsystem reset, CMB/PMR.
//!
//! The files mirror the driver's, with the controller's state apart from
//! what acts on it: `model` (the controller's state and identity),
//! `doorbells`, `fault` (injectable faults), `engine` (queue state),
//! `processing` (fetch, execute, complete), `controller` (registers, CC,
//! doorbell writes), `admin`, `io`, `command`, `prp`, `medium` (namespace
//! storage), `config`, `events` (the trace events it records). Imports go
//! one way, from the top down: `controller`, `processing`, `admin` and
//! `io`, `model`, `engine`/`doorbells`/`fault`, `medium`, `prp`,
//! `command`/`config`/`events`.
#![forbid(unsafe_code)]

mod admin;
mod command;
mod config;
mod controller;
mod doorbells;
mod engine;
mod events;
mod fault;
mod hostile;
mod inspect;
mod io;
mod medium;
mod model;
mod processing;
mod prp;
#[cfg(test)]
mod tests;

pub use config::{Backing, ModelError, NamespaceConfig, NvmeModelConfig};
pub use fault::Fault;
pub use hostile::Hostility;
pub use inspect::{CqView, DoorbellOf, SqView};
pub use model::{NvmeModel, PCI_IDS};

use crate::{DeviceDma, DeviceThread, EmuBar, EmuPciFunction, RunMode};
use dma::EmuIommu;
use drivers::trace::Tap;
use std::sync::Arc;

/// A whole emulated NVMe controller: the model, its PCI function and BAR0,
/// the IOMMU it reaches memory through and, in
/// [`RunMode::Threaded`], its device thread.
///
/// Keep it alive as long as a driver uses the controller: dropping it stops
/// the device thread, after which a threaded controller completes nothing.
pub struct EmuNvme {
    // Dropped first: the thread stops before anything else goes.
    thread: Option<DeviceThread>,
    model: Arc<NvmeModel>,
    iommu: Arc<EmuIommu>,
    pci: Arc<EmuPciFunction>,
}

impl EmuNvme {
    /// A controller with its own IOMMU. Bus mastering starts disabled, as
    /// after power-on: the driver's open enables it ([`EmuPciFunction::enable`]).
    pub fn new(cfg: NvmeModelConfig, mode: RunMode) -> Result<EmuNvme, ModelError> {
        Self::with_iommu(cfg, mode, Arc::new(EmuIommu::new()))
    }

    /// A controller that shares `iommu` with other devices of the process
    /// (like one VFIO container for all of them).
    pub fn with_iommu(
        cfg: NvmeModelConfig,
        mode: RunMode,
        iommu: Arc<EmuIommu>,
    ) -> Result<EmuNvme, ModelError> {
        let pci = Arc::new(EmuPciFunction::new(PCI_IDS));
        let dma = DeviceDma::new(iommu.clone(), pci.clone());
        let model = Arc::new(NvmeModel::new(cfg, mode, dma)?);
        let thread = match mode {
            RunMode::Inline => None,
            RunMode::Threaded => {
                Some(DeviceThread::spawn("emu-nvme", model.clone()).map_err(ModelError::Thread)?)
            }
        };
        Ok(EmuNvme {
            thread,
            model,
            iommu,
            pci,
        })
    }

    /// BAR0, for the driver.
    pub fn bar(&self) -> EmuBar<NvmeModel> {
        EmuBar::new(self.model.clone())
    }

    /// The IOMMU the controller's DMA goes through.
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

    /// Record what the controller does (fetches, PRP lists, data runs,
    /// write-backs, faults, notes) in `tap`: the device half of the
    /// descriptor trace, with the driver's half (`NvmeOptions::trace`) and
    /// the register accesses (`EmuBar::set_trace`) in the same tracer
    /// device. Set once, before the driver starts; a second call is refused
    /// (false).
    pub fn set_tap(&self, tap: Tap) -> bool {
        self.model.dma.set_tap(tap)
    }

    /// Inject a fault.
    pub fn inject(&self, fault: Fault) {
        self.model.inject(fault)
    }

    /// Remove all injected faults.
    pub fn clear_faults(&self) {
        self.model.clear_faults()
    }

    /// The model.
    pub fn model(&self) -> &Arc<NvmeModel> {
        &self.model
    }

    /// Whether a device thread runs the model.
    pub fn is_threaded(&self) -> bool {
        self.thread.is_some()
    }

    /// Read the medium of namespace `nsid` directly, bypassing DMA (tests).
    pub fn read_backing(
        &self,
        nsid: u32,
        byte_offset: u64,
        buf: &mut [u8],
    ) -> Result<(), ModelError> {
        self.model.read_backing(nsid, byte_offset, buf)
    }

    /// Write the medium of namespace `nsid` directly, bypassing DMA (tests).
    pub fn write_backing(&self, nsid: u32, byte_offset: u64, buf: &[u8]) -> Result<(), ModelError> {
        self.model.write_backing(nsid, byte_offset, buf)
    }
}
