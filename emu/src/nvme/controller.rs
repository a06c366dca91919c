//! The controller's registers (NVMe 1.4 §3.1) and doorbell writes, and the
//! state transitions CC drives: enable, reset, shutdown. The state is in
//! `model`, command processing in `processing`.
#![forbid(unsafe_code)]

use super::engine::Engine;
use super::model::{NvmeModel, VERSION};
use super::prp::PAGE;
use crate::{DeviceWaker, MmioDevice, Pollable, RunMode};
use spec::nvme::reg::{self, aqa, cc, csts};
use std::sync::atomic::{AtomicU64, Ordering};

impl NvmeModel {
    /// CSTS as the host reads it.
    fn csts(&self) -> u32 {
        let fatal =
            self.fatal.load(Ordering::Acquire) || self.injected_fatal.load(Ordering::Acquire);
        self.status.load(Ordering::Acquire) | csts::CFS.value(u32::from(fatal))
    }

    fn read32(&self, offset: usize) -> u32 {
        let value = self.true_read32(offset);
        self.hostile.register(offset, value)
    }

    fn true_read32(&self, offset: usize) -> u32 {
        let lo = |v: u64| v as u32;
        let hi = |v: u64| (v >> 32) as u32;
        match offset {
            reg::CAP => lo(self.cap()),
            o if o == reg::CAP + 4 => hi(self.cap()),
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
                "CC.MPS {} outside CAP.MPSMIN..=MPSMAX (4 KiB only)",
                cc::MPS.get(cc_value)
            ))
        } else if cc::CSS.get(cc_value) != cc::CSS_NVM {
            Some(format!(
                "CC.CSS {} is not a supported command set",
                cc::CSS.get(cc_value)
            ))
        } else if asq == 0 || !asq.is_multiple_of(PAGE) {
            Some(format!("ASQ {asq:#x} is zero or not page aligned"))
        } else if acq == 0 || !acq.is_multiple_of(PAGE) {
            Some(format!("ACQ {acq:#x} is zero or not page aligned"))
        } else if aqa::ASQS.get(aqa_value) == 0 || aqa::ACQS.get(aqa_value) == 0 {
            Some(format!(
                "AQA {aqa_value:#x}: an admin queue of 1 entry (2 needed)"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.fatal.store(true, Ordering::Release);
            self.note(|| format!("CFS at enable: {problem}"));
            return;
        }
        let sq_entries = aqa::ASQS.get(aqa_value) + 1;
        let cq_entries = aqa::ACQS.get(aqa_value) + 1;
        engine.enable(asq, sq_entries, acq, cq_entries);
        self.doorbells.close_all();
        self.doorbells.open_sq(0, sq_entries);
        self.doorbells.open_cq(0, cq_entries);
        self.status.store(csts::RDY.bit(), Ordering::Release);
        self.note(|| "enabled (CSTS.RDY = 1)".into());
    }

    /// CC.EN 1 -> 0: controller reset (§7.3.2). Queues are deleted, RDY, SHST
    /// and the controller's own fatal status clear.
    fn reset(&self, engine: &mut Engine) {
        engine.reset();
        self.doorbells.close_all();
        self.fatal.store(false, Ordering::Release);
        self.status.store(0, Ordering::Release);
        self.note(|| "reset (CC.EN = 0, CSTS.RDY = 0)".into());
    }

    /// CC.SHN set: flush the media and report shutdown complete at once
    /// (§7.6.2). The controller fetches nothing more until reset.
    fn shutdown(&self, engine: &Engine) {
        for (i, ns) in engine.namespaces.iter().enumerate() {
            if let Err(e) = ns.flush() {
                self.note(|| format!("shutdown: flush of namespace {} failed: {e}", i + 1));
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
        let (qid, is_cq) = match reg::doorbell(offset, self.stride) {
            Some(reg::RegName::SqTail(q)) => (usize::from(q), false),
            Some(reg::RegName::CqHead(q)) => (usize::from(q), true),
            _ => return,
        };
        // The write itself is in the trace already (the BAR records it).
        let name = if is_cq { "head" } else { "tail" };
        let q = if is_cq { "CQ" } else { "SQ" };
        if qid >= self.doorbells.sq_tail.len() {
            self.note(|| format!("{q}{qid} {name} doorbell {value} ignored: no such queue"));
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
                    "{q}{qid} {name} doorbell {value} ignored: {}",
                    if entries == 0 {
                        "queue does not exist".to_string()
                    } else {
                        format!("queue has {entries} entries")
                    }
                )
            });
            return;
        }
        target.store(value, Ordering::Release);
        if self.mode == RunMode::Inline && self.processing() {
            let mut engine = self.engine();
            if is_cq && self.hostile.posts_unasked() {
                // Hostile mode: a completion the host never asked for, written
                // while it acknowledges the ones it got.
                engine.post_unasked(self);
            }
            engine.run(self, true);
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
            // The device thread sleeps when idle: the doorbell wakes it.
            self.waker.wake();
            return;
        }
        match (offset, size) {
            (reg::ASQ, 8) => self.asq.store(value, Ordering::Release),
            (reg::ACQ, 8) => self.acq.store(value, Ordering::Release),
            (_, 8) => {
                self.write32(offset, value as u32);
                self.write32(offset + 4, (value >> 32) as u32);
            }
            _ => self.write32(offset, value as u32),
        }
        self.waker.wake();
    }
}

impl Pollable for NvmeModel {
    fn poll(&self) -> bool {
        if !self.processing() {
            return false;
        }
        let mut engine = self.engine();
        let worked = engine.run(self, false);
        // Hostile mode: the device thread races the driver with completions
        // nobody asked for, right behind the real ones. Only in passes that
        // did work: the lies follow the commands (as the CQ head doorbell's
        // do inline), and an idle device thread still backs off instead of
        // flooding the queues and spinning a core.
        if worked && self.hostile.completions_on() && self.hostile.posts_unasked() {
            engine.post_unasked(self);
        }
        worked
    }

    fn waker(&self) -> Option<&DeviceWaker> {
        Some(&self.waker)
    }
}
