//! The controller: its registers (NVMe 1.4 §3.1), doorbells, state
//! transitions and fault injection. Command processing is in the engine.
#![forbid(unsafe_code)]

use super::command::Status;
use super::config::{ModelError, NvmeModelConfig};
use super::engine::Engine;
use super::medium::Namespace;
use super::prp::PAGE;
use crate::{DeviceDma, DmaError, MmioDevice, Pollable, RunMode, Trace, TraceEvent};
use spec::nvme::reg::{self, aqa, cap, cc, csts};
use spec::nvme::{cqe, sqe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The version the model implements: NVMe 1.4.0 (§3.1.2).
pub(super) const VERSION: u32 = reg::vs::MJR.value(1) | reg::vs::MNR.value(4);

/// A fault to inject into an emulated controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Set CSTS.CFS now; the controller stops processing commands and
    /// ignores CC writes, so a reset does not recover it (until
    /// [`NvmeModel::clear_faults`]).
    FatalStatus,
    /// The controller hangs: it neither fetches nor completes commands and
    /// ignores CC writes (CSTS.RDY no longer follows CC.EN); registers
    /// still read.
    StopResponding,
    /// The next `count` reads or writes of namespace `nsid` whose block range
    /// includes `lba` complete with status type `sct` and code `sc`, without
    /// moving data.
    IoError {
        /// Namespace.
        nsid: u32,
        /// A block in the range of the commands that fail.
        lba: u64,
        /// Status Code Type.
        sct: u8,
        /// Status Code.
        sc: u8,
        /// How many commands fail.
        count: u32,
    },
}

/// An armed [`Fault::IoError`].
#[derive(Debug, Clone, Copy)]
struct IoFault {
    nsid: u32,
    lba: u64,
    status: Status,
    count: u32,
}

/// The doorbell registers: written by the host at any time, read by the engine.
pub(super) struct Doorbells {
    sq_tail: Box<[AtomicU32]>,
    cq_head: Box<[AtomicU32]>,
    /// Entries of each SQ, 0 if it does not exist: lets a doorbell write be
    /// checked without the engine lock.
    sq_entries: Box<[AtomicU32]>,
    cq_entries: Box<[AtomicU32]>,
}

fn atomics(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

impl Doorbells {
    fn new(queues: usize) -> Self {
        Doorbells {
            sq_tail: atomics(queues),
            cq_head: atomics(queues),
            sq_entries: atomics(queues),
            cq_entries: atomics(queues),
        }
    }

    /// The host's tail of SQ `qid` (acquire: the entries it wrote before are visible).
    #[inline]
    pub(super) fn sq_tail(&self, qid: u16) -> u32 {
        self.sq_tail[qid as usize].load(Ordering::Acquire)
    }

    /// The host's head of CQ `qid`.
    #[inline]
    pub(super) fn cq_head(&self, qid: u16) -> u32 {
        self.cq_head[qid as usize].load(Ordering::Acquire)
    }

    /// SQ `qid` now exists with `entries` entries and tail 0.
    pub(super) fn open_sq(&self, qid: u16, entries: u32) {
        self.sq_tail[qid as usize].store(0, Ordering::Relaxed);
        self.sq_entries[qid as usize].store(entries, Ordering::Release);
    }

    /// CQ `qid` now exists with `entries` entries and head 0.
    pub(super) fn open_cq(&self, qid: u16, entries: u32) {
        self.cq_head[qid as usize].store(0, Ordering::Relaxed);
        self.cq_entries[qid as usize].store(entries, Ordering::Release);
    }

    /// SQ `qid` is gone: its doorbell is ignored from now on.
    pub(super) fn close_sq(&self, qid: u16) {
        self.sq_entries[qid as usize].store(0, Ordering::Release);
        self.sq_tail[qid as usize].store(0, Ordering::Relaxed);
    }

    /// CQ `qid` is gone.
    pub(super) fn close_cq(&self, qid: u16) {
        self.cq_entries[qid as usize].store(0, Ordering::Release);
        self.cq_head[qid as usize].store(0, Ordering::Relaxed);
    }

    fn close_all(&self) {
        for qid in 0..self.sq_tail.len() {
            self.close_sq(qid as u16);
            self.close_cq(qid as u16);
        }
    }
}

/// The emulated NVMe controller: the MMIO side of BAR0 ([`MmioDevice`]) and
/// the device work ([`Pollable`]). Build one with [`super::EmuNvme`], which
/// also provides the IOMMU, PCI function and device thread.
pub struct NvmeModel {
    pub(super) cfg: NvmeModelConfig,
    cap: u64,
    mode: RunMode,
    pub(super) dma: DeviceDma,
    /// Bytes between doorbells.
    stride: usize,
    bar_size: usize,
    /// Largest data transfer (MDTS), None: no limit.
    pub(super) max_transfer: Option<u64>,
    /// Whether any namespace has a volatile cache (a file's page cache).
    pub(super) volatile_cache: bool,
    cc: AtomicU32,
    aqa: AtomicU32,
    asq: AtomicU64,
    acq: AtomicU64,
    intms: AtomicU32,
    /// CSTS.RDY and CSTS.SHST; CFS comes from the fault flags.
    status: AtomicU32,
    /// A fatal error of the controller's own (bad configuration at enable,
    /// host memory unreachable); a reset clears it.
    fatal: AtomicBool,
    /// [`Fault::FatalStatus`] was injected.
    injected_fatal: AtomicBool,
    /// [`Fault::StopResponding`] was injected.
    stopped: AtomicBool,
    /// Whether `io_faults` may hold anything (keeps its lock off the hot path).
    io_armed: AtomicBool,
    io_faults: Mutex<Vec<IoFault>>,
    pub(super) doorbells: Doorbells,
    engine: Mutex<Engine>,
}

impl NvmeModel {
    /// A controller configured by `cfg` whose DMA goes through `dma`. In
    /// [`RunMode::Threaded`] something must call [`Pollable::poll`] (a
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
            doorbells: Doorbells::new(queues),
            engine: Mutex::new(Engine::new(cfg.max_io_queues, namespaces)),
            cfg,
        })
    }

    /// How the device work is run.
    pub fn mode(&self) -> RunMode {
        self.mode
    }

    /// The trace of device events.
    pub fn trace(&self) -> &Arc<Trace> {
        self.dma.trace()
    }

    fn note(&self, what: impl FnOnce() -> String) {
        self.dma.trace().record(|| TraceEvent::Note(what()));
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        // A panic in another thread while it held the engine leaves the
        // queues as they were; the model keeps going, as hardware would.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inject a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        match fault {
            Fault::FatalStatus => {
                self.injected_fatal.store(true, Ordering::Release);
                self.note(|| "injected fault: controller fatal status (CSTS.CFS)".into());
            }
            Fault::StopResponding => {
                self.stopped.store(true, Ordering::Release);
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
        self.note(|| "injected faults cleared".into());
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

    /// CSTS as the host reads it.
    fn csts(&self) -> u32 {
        let fatal =
            self.fatal.load(Ordering::Acquire) || self.injected_fatal.load(Ordering::Acquire);
        self.status.load(Ordering::Acquire) | csts::CFS.value(u32::from(fatal))
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
        self.note(|| format!("controller fatal status: DMA failed while {doing}: {e}"));
    }

    /// CC.IOSQES and CC.IOCQES as the host set them.
    pub(super) fn queue_entry_sizes(&self) -> (u32, u32) {
        let v = self.cc.load(Ordering::Acquire);
        (cc::IOSQES.get(v), cc::IOCQES.get(v))
    }

    fn read32(&self, offset: usize) -> u32 {
        let lo = |v: u64| v as u32;
        let hi = |v: u64| (v >> 32) as u32;
        match offset {
            reg::CAP => lo(self.cap),
            o if o == reg::CAP + 4 => hi(self.cap),
            reg::VS => VERSION,
            reg::INTMS | reg::INTMC => self.intms.load(Ordering::Acquire),
            reg::CC => self.cc.load(Ordering::Acquire),
            reg::CSTS => self.csts(),
            reg::AQA => self.aqa.load(Ordering::Acquire),
            reg::ASQ => lo(self.asq.load(Ordering::Acquire)),
            o if o == reg::ASQ + 4 => hi(self.asq.load(Ordering::Acquire)),
            reg::ACQ => lo(self.acq.load(Ordering::Acquire)),
            o if o == reg::ACQ + 4 => hi(self.acq.load(Ordering::Acquire)),
            // NSSR reads 0 (no subsystem reset support), doorbells and
            // reserved offsets read 0.
            _ => 0,
        }
    }

    fn write32(&self, offset: usize, value: u32) {
        let set_half = |r: &AtomicU64, high: bool| {
            let (shift, mask) = if high {
                (32, 0xffff_ffff)
            } else {
                (0, !0xffff_ffffu64)
            };
            let _ = r.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some((old & mask) | (value as u64) << shift)
            });
        };
        match offset {
            reg::CC => self.write_cc(value),
            reg::AQA => {
                let keep = aqa::ASQS.mask() | aqa::ACQS.mask();
                self.aqa.store(value & keep, Ordering::Release);
            }
            reg::ASQ => set_half(&self.asq, false),
            o if o == reg::ASQ + 4 => set_half(&self.asq, true),
            reg::ACQ => set_half(&self.acq, false),
            o if o == reg::ACQ + 4 => set_half(&self.acq, true),
            reg::INTMS => {
                self.intms.fetch_or(value, Ordering::AcqRel);
            }
            reg::INTMC => {
                self.intms.fetch_and(!value, Ordering::AcqRel);
            }
            // CAP, VS and CSTS are read-only; NSSR is not supported
            // (CAP.NSSRS = 0); anything else is reserved.
            _ => {}
        }
    }

    /// A write of CC (§3.1.5, §7.6): enable, reset, shutdown.
    fn write_cc(&self, new: u32) {
        let mut engine = self.engine();
        if self.stopped.load(Ordering::Acquire) || self.injected_fatal.load(Ordering::Acquire) {
            // A hung or dead controller ignores the write altogether, so that
            // CC and the controller state still agree once the fault is cleared.
            self.note(|| format!("CC write {new:#x} ignored: the controller is faulted"));
            return;
        }
        let old = self.cc.swap(new, Ordering::AcqRel);
        match (cc::EN.get(old), cc::EN.get(new)) {
            (0, 1) => self.enable(&mut engine, new),
            (1, 0) => self.reset(&mut engine),
            _ => {}
        }
        match (cc::SHN.get(old), cc::SHN.get(new)) {
            (0, shn) if shn != 0 => self.shutdown(&engine),
            (shn, 0) if shn != 0 => {
                let keep = !csts::SHST.mask();
                self.status.fetch_and(keep, Ordering::AcqRel);
            }
            _ => {}
        }
    }

    /// CC.EN 0 -> 1: check the configuration, create the admin queues, RDY = 1.
    /// A configuration the controller cannot use is a fatal status (CFS).
    fn enable(&self, engine: &mut Engine, cc_value: u32) {
        let aqa_value = self.aqa.load(Ordering::Acquire);
        let asq = self.asq.load(Ordering::Acquire);
        let acq = self.acq.load(Ordering::Acquire);
        let problem = if cc::MPS.get(cc_value) != 0 {
            Some(format!(
                "CC.MPS {} selects a page size outside CAP.MPSMIN..=MPSMAX (only 4 KiB)",
                cc::MPS.get(cc_value)
            ))
        } else if cc::CSS.get(cc_value) != cc::CSS_NVM {
            Some(format!(
                "CC.CSS {} selects a command set the controller does not support",
                cc::CSS.get(cc_value)
            ))
        } else if asq == 0 || !asq.is_multiple_of(PAGE) {
            Some(format!("ASQ {asq:#x} is zero or not page aligned"))
        } else if acq == 0 || !acq.is_multiple_of(PAGE) {
            Some(format!("ACQ {acq:#x} is zero or not page aligned"))
        } else if aqa::ASQS.get(aqa_value) == 0 || aqa::ACQS.get(aqa_value) == 0 {
            Some(format!(
                "AQA {aqa_value:#x} gives an admin queue of 1 entry (at least 2 needed)"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.fatal.store(true, Ordering::Release);
            self.note(|| format!("enable failed, controller fatal status: {problem}"));
            return;
        }
        let sq_entries = aqa::ASQS.get(aqa_value) + 1;
        let cq_entries = aqa::ACQS.get(aqa_value) + 1;
        engine.enable(asq, sq_entries, acq, cq_entries);
        self.doorbells.close_all();
        self.doorbells.open_sq(0, sq_entries);
        self.doorbells.open_cq(0, cq_entries);
        self.status.store(csts::RDY.bit(), Ordering::Release);
        self.note(|| "controller enabled (CSTS.RDY = 1)".into());
    }

    /// CC.EN 1 -> 0: controller reset (§7.3.2). Queues are deleted, RDY, SHST
    /// and the controller's own fatal status clear.
    fn reset(&self, engine: &mut Engine) {
        engine.reset();
        self.doorbells.close_all();
        self.fatal.store(false, Ordering::Release);
        self.status.store(0, Ordering::Release);
        self.note(|| "controller reset (CC.EN = 0, CSTS.RDY = 0)".into());
    }

    /// CC.SHN set: flush the media and report shutdown complete at once
    /// (§7.6.2). The controller fetches nothing more until reset.
    fn shutdown(&self, engine: &Engine) {
        for (i, ns) in engine.namespaces.iter().enumerate() {
            if let Err(e) = ns.flush() {
                self.note(|| format!("shutdown: flushing namespace {} failed: {e}", i + 1));
            }
        }
        let _ = self
            .status
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(csts::SHST.set(s, csts::SHST_COMPLETE))
            });
        self.note(|| "shutdown complete (CSTS.SHST = 2)".into());
    }

    /// A doorbell write (§3.1.24-25). One for a queue that does not exist,
    /// or with a value past the queue's end, is ignored (a controller would
    /// post an Invalid Doorbell asynchronous event; the trace gets a note).
    fn doorbell(&self, offset: usize, value: u32) {
        let rel = offset - reg::DOORBELL_BASE;
        if !rel.is_multiple_of(self.stride) {
            return;
        }
        let index = rel / self.stride;
        let (qid, is_cq) = (index / 2, index % 2 == 1);
        self.dma.trace().record(|| TraceEvent::Doorbell {
            queue: index as u32,
            value,
        });
        if qid >= self.doorbells.sq_tail.len() {
            self.note(|| format!("doorbell write {value} for queue {qid} ignored: no such queue"));
            return;
        }
        let (entries, target) = if is_cq {
            (
                &self.doorbells.cq_entries[qid],
                &self.doorbells.cq_head[qid],
            )
        } else {
            (
                &self.doorbells.sq_entries[qid],
                &self.doorbells.sq_tail[qid],
            )
        };
        let entries = entries.load(Ordering::Acquire);
        if value >= entries {
            self.note(|| {
                format!(
                    "{} doorbell write {value} for queue {qid} ignored: {}",
                    if is_cq { "CQ head" } else { "SQ tail" },
                    if entries == 0 {
                        "the queue does not exist".to_string()
                    } else {
                        format!("the queue has {entries} entries")
                    }
                )
            });
            return;
        }
        target.store(value, Ordering::Release);
        if self.mode == RunMode::Inline && self.processing() {
            self.engine().run(self, true);
        }
    }
}

impl MmioDevice for NvmeModel {
    fn bar_size(&self) -> usize {
        self.bar_size
    }

    fn mmio_read(&self, offset: usize, size: u8) -> u64 {
        match size {
            // 64-bit registers (CAP, ASQ, ACQ) read as their two halves.
            8 => self.read32(offset) as u64 | (self.read32(offset + 4) as u64) << 32,
            _ => self.read32(offset) as u64,
        }
    }

    fn mmio_write(&self, offset: usize, size: u8, value: u64) {
        if offset >= reg::DOORBELL_BASE {
            self.doorbell(offset, value as u32);
            if size == 8 {
                self.doorbell(offset + 4, (value >> 32) as u32);
            }
            return;
        }
        self.dma
            .trace()
            .record(|| TraceEvent::RegWrite { offset, value });
        match (offset, size) {
            (reg::ASQ, 8) => self.asq.store(value, Ordering::Release),
            (reg::ACQ, 8) => self.acq.store(value, Ordering::Release),
            (_, 8) => {
                self.write32(offset, value as u32);
                self.write32(offset + 4, (value >> 32) as u32);
            }
            _ => self.write32(offset, value as u32),
        }
    }
}

impl Pollable for NvmeModel {
    fn poll(&self) -> bool {
        if !self.processing() {
            return false;
        }
        self.engine().run(self, false)
    }
}

/// Entry sizes the model supports, as CC.IOSQES / CC.IOCQES values.
pub(super) const SQES: u8 = sqe::SIZE_LOG2;
/// See [`SQES`].
pub(super) const CQES: u8 = cqe::SIZE_LOG2;
