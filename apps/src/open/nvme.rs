//! Opening an NVMe controller from a device string, real or emulated, and
//! handing it to code that is generic over the register access (static
//! dispatch: the emulated path costs the real one nothing).
#![forbid(unsafe_code)]

use crate::open::device::{DeviceSpec, EmuNvmeSpec};
use crate::trace::{session, step};
use crate::AppResult;
use dma::{EmuIommu, PageSize, RegionOptions};
use drivers::nvme::{NvmeController, NvmeOptions};
use drivers::regs::RegisterAccess;
use drivers::trace::DeviceKind;
use emu::nvme::{Backing, EmuNvme, NamespaceConfig, NvmeModel, NvmeModelConfig};
use emu::RunMode;
use std::sync::Arc;

/// An NVMe controller in the trace's device table; the driver sets
/// CAP.DSTRD once it has read CAP.
const NVME_KIND: DeviceKind = DeviceKind::Nvme { dstrd: 0 };

/// What was opened, for messages.
#[derive(Clone)]
pub struct Opened {
    /// The device string as given.
    pub name: String,
    /// "vfio" or "emulated (threaded)" and so on.
    pub backend: String,
    /// The device model, for an emulated controller (its backing store
    /// can be filled before a run).
    pub model: Option<Arc<NvmeModel>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .field("emulated", &self.model.is_some())
            .finish()
    }
}

/// Work to do with an opened controller.
pub trait NvmeJob {
    /// The job's result.
    type Output;
    /// Run the job. `ctrl` is shared so that worker threads can create queue pairs.
    fn run<R: RegisterAccess + 'static>(
        self,
        ctrl: Arc<NvmeController<R>>,
        opened: &Opened,
    ) -> AppResult<Self::Output>;
}

/// The model configuration an `emu:nvme` string asks for.
pub fn emu_nvme_config(spec: &EmuNvmeSpec) -> AppResult<NvmeModelConfig> {
    let size = match (&spec.file, spec.size) {
        (_, Some(s)) => s,
        (Some(path), None) => match std::fs::metadata(path) {
            Ok(m) if m.len() >= spec.lba_size as u64 => {
                let lba = spec.lba_size as u64;
                let whole = m.len() - m.len() % lba;
                if whole != m.len() {
                    // A disk image with a tail: the namespace is its whole
                    // blocks, as a loop device would make it.
                    eprintln!(
                        "warning: backing file {} is {} bytes, not a multiple of the {lba}-byte LBA \
                         size; the namespace is its {} whole block(s) ({whole} bytes) and the last {} \
                         bytes are out of reach",
                        path.display(),
                        m.len(),
                        whole / lba,
                        m.len() - whole
                    );
                }
                whole
            }
            Ok(m) if m.len() > 0 => {
                return Err(format!(
                    "backing file {} is {} bytes, smaller than one block of {} bytes; give a \
                     larger file, or its size with size=, e.g. emu:nvme,file={},size=1G",
                    path.display(),
                    m.len(),
                    spec.lba_size,
                    path.display()
                )
                .into())
            }
            Ok(_) => {
                return Err(format!(
                    "backing file {} is empty; give its size with size=, e.g. emu:nvme,file={},size=1G",
                    path.display(),
                    path.display()
                )
                .into())
            }
            Err(_) => {
                return Err(format!(
                    "backing file {} does not exist; create it by giving a size, e.g. emu:nvme,file={},size=1G",
                    path.display(),
                    path.display()
                )
                .into())
            }
        },
        (None, None) => 1 << 30,
    };
    if size < spec.lba_size as u64 {
        return Err(format!(
            "namespace size {size} is smaller than one block of {} bytes",
            spec.lba_size
        )
        .into());
    }
    let backing = match &spec.file {
        Some(p) => Backing::File(p.clone()),
        None => Backing::Ram,
    };
    Ok(NvmeModelConfig {
        namespaces: (0..spec.namespaces)
            .map(|_| NamespaceConfig {
                size_bytes: size,
                lba_size: spec.lba_size,
                backing: backing.clone(),
            })
            .collect(),
        mdts: spec.mdts,
        mqes: (spec.queue_entries - 1) as u16,
        max_io_queues: spec.max_io_queues,
        ..NvmeModelConfig::default()
    })
}

/// Open the NVMe controller named by `device` and run `job` on it, with DMA
/// memory on 2 MiB hugepages.
pub fn with_nvme<J: NvmeJob>(device: &str, job: J) -> AppResult<J::Output> {
    with_nvme_pages(device, PageSize::Huge2M, job)
}

/// Parse a hugepage size option: `2M` or `1G`.
pub fn parse_page_size(s: &str) -> Result<PageSize, String> {
    match s.to_ascii_uppercase().as_str() {
        "2M" | "2MB" | "2MIB" => Ok(PageSize::Huge2M),
        "1G" | "1GB" | "1GIB" => Ok(PageSize::Huge1G),
        _ => Err(format!("'{s}' is not a hugepage size; use 2M or 1G")),
    }
}

/// Like [`with_nvme`], with DMA memory on hugepages of `page_size` (1 GiB
/// pages must be reserved at boot on most systems).
pub fn with_nvme_pages<J: NvmeJob>(
    device: &str,
    page_size: PageSize,
    job: J,
) -> AppResult<J::Output> {
    with_nvme_in(device, page_size, None, job)
}

/// Like [`with_nvme_pages`]; an emulated controller is put behind `iommu`
/// when one is given, so that other emulated devices of the process (NIC
/// ports opened with [`crate::open::with_nics_in`]) can DMA into the
/// same buffers, as devices behind one VFIO container do.
pub fn with_nvme_in<J: NvmeJob>(
    device: &str,
    page_size: PageSize,
    iommu: Option<Arc<EmuIommu>>,
    job: J,
) -> AppResult<J::Output> {
    let spec: DeviceSpec = device.parse()?;
    match spec {
        DeviceSpec::EmuNic(n) => Err(format!(
            "{device} is an emulated NIC ({:?}), not an NVMe controller; give emu:nvme[,options] \
             or the PCI address of an NVMe drive",
            n.chip
        )
        .into()),
        DeviceSpec::EmuNvme(e) => {
            session::check_step(device, e.mode == RunMode::Inline)?;
            let iommu = iommu.unwrap_or_else(|| Arc::new(EmuIommu::new()));
            let emu = EmuNvme::with_iommu(emu_nvme_config(&e)?, e.mode, iommu)?;
            // What the VFIO open does on hardware: memory space and bus mastering on.
            emu.pci().enable();
            let mut bar = emu.bar();
            let trace = session::device(device, NVME_KIND, true);
            if trace.is_on() {
                bar.set_trace(trace.clone());
                emu.set_tap(trace.clone());
            }
            if let Some(hook) =
                session::current()
                    .and_then(|s| s.step_parts())
                    .map(|(stepper, source)| {
                        step::nvme_hook(stepper, source, emu.model().clone(), emu.iommu().clone())
                    })
            {
                bar.set_step(hook);
            }
            let ctrl = NvmeController::init(
                bar,
                emu.mapper(),
                NvmeOptions {
                    region: RegionOptions {
                        page_size,
                        ..RegionOptions::EMULATED
                    },
                    trace,
                    ..NvmeOptions::default()
                },
            )?;
            let opened = Opened {
                name: device.to_string(),
                backend: format!("emulated ({:?})", e.mode).to_lowercase(),
                model: Some(emu.model().clone()),
            };
            let out = job.run(Arc::new(ctrl), &opened);
            drop(emu);
            out
        }
        DeviceSpec::Pci(addr) => {
            session::check_step(device, false)?;
            let dev = drivers::vfio::VfioPciDevice::open(&addr)?;
            let class = dev.class();
            if class != spec::nvme::PCI_CLASS_NVME {
                return Err(format!(
                    "{addr} is not an NVMe controller (PCI class {class:06x}, {:04x}:{:04x}); \
                     list NVMe drives with `hw-setup/devbind.sh status`",
                    dev.vendor_id(),
                    dev.device_id()
                )
                .into());
            }
            let mut bar = dev.bar0().clone();
            let trace = session::device(device, NVME_KIND, false);
            if trace.is_on() {
                bar.set_trace(trace.clone());
            }
            let ctrl = NvmeController::init(
                bar,
                dev.mapper(),
                NvmeOptions {
                    region: RegionOptions {
                        page_size,
                        ..RegionOptions::HARDWARE
                    },
                    trace,
                    ..NvmeOptions::default()
                },
            )?;
            let opened = Opened {
                name: device.to_string(),
                backend: "vfio".into(),
                model: None,
            };
            job.run(Arc::new(ctrl), &opened)
        }
    }
}
