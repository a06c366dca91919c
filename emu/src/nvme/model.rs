//! The controller's state: configuration, registers, doorbells, fault flags
//! and the engine behind its mutex, with the accessors the register side
//! (`controller`) and command processing share.
#![forbid(unsafe_code)]

use super::command::Status;
use super::config::{ModelError, NvmeModelConfig};
use super::doorbells::Doorbells;
use super::engine::Engine;
use super::events;
use super::fault::{Fault, IoFault, Lies};
use super::hostile::Hostile;
use super::medium::Namespace;
use super::prp::PAGE;
use crate::{DeviceDma, DeviceWaker, DmaError, PciIds, RunMode};
use drivers::trace::Tap;
use spec::nvme::reg::{self, cap, cc, csts};
use spec::nvme::{cqe, sqe, PCI_CLASS_NVME};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// PCI identity of the model: QEMU's NVMe controller IDs (1b36:0010).
pub const PCI_IDS: PciIds = PciIds {
    vendor: 0x1b36,
    device: 0x0010,
    class: PCI_CLASS_NVME,
};

/// The version the model implements: NVMe 1.4.0 (§3.1.2).
pub(super) const VERSION: u32 = reg::vs::MJR.value(1) | reg::vs::MNR.value(4);

/// The emulated NVMe controller: the MMIO side of BAR0
/// ([`MmioDevice`](crate::MmioDevice)) and the device work
/// ([`Pollable`](crate::Pollable)). Build one with [`super::EmuNvme`], which
/// also provides the IOMMU, PCI function and device thread.
pub struct NvmeModel {
    pub(super) cfg: NvmeModelConfig,
    pub(super) cap: u64,
    pub(super) mode: RunMode,
    pub(super) dma: DeviceDma,
    /// Bytes between doorbells.
    pub(super) stride: usize,
    pub(super) bar_size: usize,
    /// Largest data transfer (MDTS), None: no limit.
    pub(super) max_transfer: Option<u64>,
    /// Whether any namespace has a volatile cache (a file's page cache).
    pub(super) volatile_cache: bool,
    pub(super) cc: AtomicU32,
    pub(super) aqa: AtomicU32,
    pub(super) asq: AtomicU64,
    pub(super) acq: AtomicU64,
    pub(super) intms: AtomicU32,
    /// CSTS.RDY and CSTS.SHST; CFS comes from the fault flags.
    pub(super) status: AtomicU32,
    /// A fatal error of the controller's own (bad configuration at enable,
    /// host memory unreachable); a reset clears it.
    pub(super) fatal: AtomicBool,
    /// [`Fault::FatalStatus`] was injected.
    pub(super) injected_fatal: AtomicBool,
    /// [`Fault::StopResponding`] was injected.
    pub(super) stopped: AtomicBool,
    /// Whether `io_faults` may hold anything (keeps its lock off the hot path).
    io_armed: AtomicBool,
    io_faults: Mutex<Vec<IoFault>>,
    /// What CAP and Identify report instead of the truth.
    lies: Mutex<Lies>,
    /// [`Fault::Hostile`].
    pub(super) hostile: Hostile,
    pub(super) doorbells: Doorbells,
    engine: Mutex<Engine>,
    /// Wakes the device thread: every register write (doorbells) and fault
    /// cleared. All the controller's work starts with one of those.
    pub(super) waker: DeviceWaker,
}

impl NvmeModel {
    /// A controller configured by `cfg` whose DMA goes through `dma`. In
    /// [`RunMode::Threaded`] something must call
    /// [`Pollable::poll`](crate::Pollable::poll) (a
    /// [`crate::DeviceThread`]); [`super::EmuNvme::new`] arranges that.
    pub fn new(cfg: NvmeModelConfig, mode: RunMode, dma: DeviceDma) -> Result<Self, ModelError> {
        cfg.validate()?;
        let namespaces = cfg
            .namespaces
            .iter()
            .enumerate()
            .map(|(i, ns)| Namespace::open(i as u32 + 1, ns))
            .collect::<Result<Vec<_>, _>>()?;
        let volatile_cache = namespaces.iter().any(Namespace::is_file);
        let queues = cfg.max_io_queues as usize + 1;
        let stride = reg::doorbell_stride(u32::from(cfg.dstrd));
        let bar_size = (reg::DOORBELL_BASE + 2 * queues * stride).next_power_of_two();
        let cap = cap::MQES.value(u64::from(cfg.mqes))
            | cap::CQR.bit()
            | cap::TO.value(u64::from(cfg.timeout_500ms))
            | cap::DSTRD.value(u64::from(cfg.dstrd))
            | cap::CSS.value(cap::CSS_NVM)
            | cap::MPSMIN.value(0)
            | cap::MPSMAX.value(0);
        let max_transfer = (cfg.mdts != 0).then(|| PAGE << cfg.mdts);
        Ok(NvmeModel {
            cap,
            mode,
            dma,
            stride,
            bar_size,
            max_transfer,
            volatile_cache,
            cc: AtomicU32::new(0),
            aqa: AtomicU32::new(0),
            asq: AtomicU64::new(0),
            acq: AtomicU64::new(0),
            intms: AtomicU32::new(0),
            status: AtomicU32::new(0),
            fatal: AtomicBool::new(false),
            injected_fatal: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            io_armed: AtomicBool::new(false),
            io_faults: Mutex::new(Vec::new()),
            lies: Mutex::new(Lies::default()),
            hostile: Hostile::default(),
            doorbells: Doorbells::new(queues),
            engine: Mutex::new(Engine::new(cfg.max_io_queues, namespaces)),
            waker: DeviceWaker::new(true),
            cfg,
        })
    }

    /// How the device work is run.
    pub fn mode(&self) -> RunMode {
        self.mode
    }

    /// Where the controller records what it does: the device side of the
    /// descriptor trace ([`drivers::trace`]; off until set on its DMA).
    pub fn tap(&self) -> &Tap {
        self.dma.tap()
    }

    /// Record a note (its first 64 bytes: the point first). `what` runs
    /// only when tracing is on.
    pub(super) fn note(&self, what: impl FnOnce() -> String) {
        self.dma.tap().record(|| events::note(&what()));
    }

    pub(super) fn engine(&self) -> MutexGuard<'_, Engine> {
        // A panic in another thread while it held the engine leaves the
        // queues as they were; the model keeps going, as hardware would.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Let a pass of the device thread that is under way end: it checked
    /// [`Self::processing`] before a stop was set and may still fetch what
    /// a doorbell rings meanwhile; every later pass sees the stop. So once
    /// `inject` returns, no command submitted after it is processed.
    fn wait_for_pass(&self) {
        drop(self.engine());
    }

    /// Inject a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        match fault {
            Fault::FatalStatus => {
                self.injected_fatal.store(true, Ordering::Release);
                self.wait_for_pass();
                self.note(|| "injected fault: controller fatal status (CSTS.CFS)".into());
            }
            Fault::StopResponding => {
                self.stopped.store(true, Ordering::Release);
                self.wait_for_pass();
                self.note(|| "injected fault: controller stops responding".into());
            }
            Fault::IoError {
                nsid,
                lba,
                sct,
                sc,
                count,
            } => {
                let mut faults = self.io_faults.lock().unwrap_or_else(|p| p.into_inner());
                faults.push(IoFault {
                    nsid,
                    lba,
                    status: Status {
                        sct,
                        sc,
                        dnr: false,
                    },
                    count,
                });
                self.io_armed.store(true, Ordering::Release);
                self.note(|| format!(
                    "injected fault: {count} I/Os at namespace {nsid} LBA {lba} fail with SCT {sct:#x} SC {sc:#x}"
                ));
            }
            Fault::CapDstrd(dstrd) => {
                self.lies().dstrd = Some(dstrd & 0xf);
                self.note(|| format!("injected fault: CAP.DSTRD reads {}", dstrd & 0xf));
            }
            Fault::NamespaceCount(nn) => {
                self.lies().nn = Some(nn);
                self.note(|| {
                    format!("injected fault: Identify reports NN = {nn:#x} and lists every NSID")
                });
            }
            Fault::NamespaceSizes {
                nsid,
                nsze,
                ncap,
                nuse,
            } => {
                self.lies().sizes.push((nsid, [nsze, ncap, nuse]));
                self.note(|| {
                    format!(
                        "injected fault: Identify Namespace {nsid} reports NSZE {nsze}, \
                         NCAP {ncap}, NUSE {nuse}"
                    )
                });
            }
            Fault::Hostile(h) => {
                self.hostile.arm(h);
                self.note(|| format!("injected fault: hostile mode {h:?}"));
            }
        }
    }

    /// How many lies hostile mode ([`Fault::Hostile`]) has told.
    pub fn hostile_acts(&self) -> u64 {
        self.hostile.acts()
    }

    /// What the injected faults make CAP and Identify report.
    pub(super) fn lies(&self) -> MutexGuard<'_, Lies> {
        self.lies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// CAP as the host reads it: with an injected DSTRD, if any.
    pub(super) fn cap(&self) -> u64 {
        match self.lies().dstrd {
            Some(d) => cap::DSTRD.set(self.cap, u64::from(d)),
            None => self.cap,
        }
    }

    /// Remove every injected fault: the controller works again (a host
    /// still has to reset it if it gave up on it).
    pub fn clear_faults(&self) {
        self.injected_fatal.store(false, Ordering::Release);
        self.stopped.store(false, Ordering::Release);
        self.io_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.io_armed.store(false, Ordering::Release);
        *self.lies() = Lies::default();
        self.hostile.disarm();
        self.note(|| "injected faults cleared".into());
        // Commands submitted while the controller was stopped go now.
        self.waker.wake();
    }

    /// The status of an injected I/O error for a command on `nsid` covering
    /// blocks `slba..slba + nlb`, counting it down.
    #[inline]
    pub(super) fn injected_io_error(&self, nsid: u32, slba: u64, nlb: u64) -> Option<Status> {
        if !self.io_armed.load(Ordering::Acquire) {
            return None;
        }
        let mut faults = self.io_faults.lock().unwrap_or_else(|p| p.into_inner());
        let i = faults
            .iter()
            .position(|f| f.nsid == nsid && f.lba >= slba && f.lba - slba < nlb && f.count > 0)?;
        let status = faults[i].status;
        faults[i].count -= 1;
        if faults[i].count == 0 {
            faults.remove(i);
        }
        if faults.is_empty() {
            self.io_armed.store(false, Ordering::Release);
        }
        Some(status)
    }

    /// Copy `buf.len()` bytes of namespace `nsid` from `byte_offset` on,
    /// bypassing DMA: what is on the medium (tests and tools).
    pub fn read_backing(
        &self,
        nsid: u32,
        byte_offset: u64,
        buf: &mut [u8],
    ) -> Result<(), ModelError> {
        let engine = self.engine();
        let ns = Self::medium_range(&engine, nsid, byte_offset, buf.len())?;
        ns.read_bytes(byte_offset, buf)
    }

    /// Put `buf` on namespace `nsid` at `byte_offset`, bypassing DMA (to
    /// prepare a medium for a test).
    pub fn write_backing(&self, nsid: u32, byte_offset: u64, buf: &[u8]) -> Result<(), ModelError> {
        let mut engine = self.engine();
        Self::medium_range(&engine, nsid, byte_offset, buf.len())?;
        engine.namespaces[nsid as usize - 1].write_bytes(byte_offset, buf)
    }

    fn medium_range(
        engine: &Engine,
        nsid: u32,
        offset: u64,
        len: usize,
    ) -> Result<&Namespace, ModelError> {
        let ns = nsid
            .checked_sub(1)
            .and_then(|i| engine.namespaces.get(i as usize))
            .ok_or(ModelError::NoSuchNamespace(nsid))?;
        let size = ns.size_bytes();
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            return Err(ModelError::OutOfRange {
                nsid,
                offset,
                len,
                size,
            });
        }
        Ok(ns)
    }

    /// Whether commands may be fetched: enabled and ready, not shut down, no
    /// fatal error, not hung.
    #[inline]
    pub(super) fn processing(&self) -> bool {
        self.status.load(Ordering::Acquire) == csts::RDY.bit()
            && !self.fatal.load(Ordering::Relaxed)
            && !self.injected_fatal.load(Ordering::Relaxed)
            && !self.stopped.load(Ordering::Relaxed)
    }

    /// The controller could not read a command or write a completion: it
    /// cannot tell the host anything through the queues, so it reports a
    /// fatal status (§9.5) and stops.
    pub(super) fn cannot_reach_host(&self, doing: &str, e: &DmaError) {
        self.fatal.store(true, Ordering::Release);
        self.note(|| format!("CFS: DMA failed {doing}: {e}"));
    }

    /// CC.IOSQES and CC.IOCQES as the host set them.
    pub(super) fn queue_entry_sizes(&self) -> (u32, u32) {
        let v = self.cc.load(Ordering::Acquire);
        (cc::IOSQES.get(v), cc::IOCQES.get(v))
    }
}

/// Entry sizes the model supports, as CC.IOSQES / CC.IOCQES values.
pub(super) const SQES: u8 = sqe::SIZE_LOG2;
/// See [`SQES`].
pub(super) const CQES: u8 = cqe::SIZE_LOG2;
