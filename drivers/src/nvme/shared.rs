//! What the controller and its I/O queue pairs share: the registers, the
//! admin queue with the I/O queue identifiers in use, the Identify results,
//! and the register-level enable/disable handshake (NVMe 1.4 §7.6.1) that
//! both controller bring-up and the last user's drop go through. Its own
//! file so that `controller` (which creates queue pairs) and `io_queue`
//! (which holds a `Shared`) both depend on it instead of on each other.
#![forbid(unsafe_code)]

use super::admin::AdminQueue;
use super::command::Command;
use super::error::NvmeError;
use super::identify::{ControllerInfo, NamespaceInfo};
use super::options::NvmeOptions;
use super::queue::controller_fatal;
use crate::regs::RegisterAccess;
use dma::Mapper;
use spec::nvme::{reg, sqe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most blocks one Read or Write can move: NLB is a 0's based field
/// (NVM Command Set §3.2.4, §3.2.6), 16 bits wide.
pub(crate) const MAX_BLOCKS_PER_COMMAND: u64 = 1 << sqe::rw::NLB.width;

/// The active NSIDs for an error message: all of them up to 16, else the
/// first 16 and the count (there may be 4096: the count is the device's).
pub(crate) fn active_nsids(nsids: impl ExactSizeIterator<Item = u32>) -> String {
    const SHOWN: usize = 16;
    let count = nsids.len();
    let shown: Vec<u32> = nsids.take(SHOWN).collect();
    if count <= SHOWN {
        format!("{shown:?}")
    } else {
        format!("{shown:?} and {} more", count - SHOWN)
    }
}

/// The admin queue and the I/O queue identifiers, behind one lock.
pub(super) struct AdminState {
    pub(super) queue: AdminQueue,
    /// `qid_used[q]`: I/O queue `q` exists on the controller (or its fate is
    /// unknown after a failed deletion, so it is never reused). Index 0 is the admin queue.
    pub(super) qid_used: Vec<bool>,
}

/// What the controller and its queue pairs share.
pub(crate) struct Shared<R: RegisterAccess> {
    pub regs: R,
    pub(super) admin: Mutex<AdminState>,
    pub info: ControllerInfo,
    /// By strictly increasing NSID (the order of the active namespace
    /// list, §5.15.2.3, which init checks), so lookups binary search.
    pub namespaces: Vec<NamespaceInfo>,
    pub(super) mapper: Arc<dyn Mapper>,
    pub opts: NvmeOptions,
    pub(super) dstrd: u32,
    pub(super) shut_down: AtomicBool,
}

/// Poll CSTS until RDY equals `want`, for at most `timeout` (CAP.TO).
/// Waiting for RDY=1, a fatal status ends the wait at once. Waiting for
/// RDY=0 (a reset), it does not: clearing CC.EN is how a host recovers from
/// a fatal status; it is reported only if the reset does not finish.
pub(super) fn wait_ready<R: RegisterAccess>(
    regs: &R,
    want: bool,
    timeout: Duration,
) -> Result<(), NvmeError> {
    let start = Instant::now();
    loop {
        let csts = regs.read32(reg::CSTS);
        let fatal = reg::csts::CFS.is_set(csts);
        if want && fatal {
            return Err(NvmeError::ControllerFatal);
        }
        if reg::csts::RDY.is_set(csts) == want {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(if fatal {
                NvmeError::ControllerFatal
            } else {
                NvmeError::ReadyTimeout {
                    waiting_for: want,
                    after: waited,
                }
            });
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Clear CC.EN (if set) and wait for CSTS.RDY = 0: the controller is reset
/// and ready to be configured (§7.6.1). Never assumes it starts disabled.
pub(super) fn disable<R: RegisterAccess>(regs: &R, timeout: Duration) -> Result<(), NvmeError> {
    let cc = regs.read32(reg::CC);
    if reg::cc::EN.is_set(cc) {
        let csts = regs.read32(reg::CSTS);
        if !reg::csts::RDY.is_set(csts) && !reg::csts::CFS.is_set(csts) {
            // An enable still in progress: let it finish first, as clearing
            // EN before RDY is set is not defined (§3.1.5). If it never
            // finishes, clear EN anyway.
            let _ = wait_ready(regs, true, timeout);
        }
        regs.write32(reg::CC, reg::cc::EN.set(cc, 0));
    }
    wait_ready(regs, false, timeout)
}

impl<R: RegisterAccess> Shared<R> {
    pub(super) fn admin(&self) -> MutexGuard<'_, AdminState> {
        // A panic while holding the lock leaves the admin queue consistent
        // (every step is a complete command or none), so the state is usable.
        self.admin.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delete I/O queue `qid`: SQ first, then CQ. The identifier is reused
    /// only if both deletions succeeded.
    pub fn delete_queues(&self, qid: u16) -> Result<(), NvmeError> {
        if self.shut_down.load(Ordering::Acquire) {
            // A shut-down controller processes no commands; its queues go with the reset on drop.
            return Ok(());
        }
        if controller_fatal(&self.regs) {
            return Err(NvmeError::ControllerFatal);
        }
        let timeout = self.opts.command_timeout;
        let mut a = self.admin();
        a.queue.execute(
            &self.regs,
            Command::delete_io_sq(qid),
            false,
            "delete I/O submission queue",
            timeout,
        )?;
        a.queue.execute(
            &self.regs,
            Command::delete_io_cq(qid),
            false,
            "delete I/O completion queue",
            timeout,
        )?;
        a.qid_used[qid as usize] = false;
        Ok(())
    }
}

impl<R: RegisterAccess> Drop for Shared<R> {
    fn drop(&mut self) {
        // The last user is gone: stop the controller (and all its DMA)
        // before the admin queue memory is freed. Nothing to report to. A
        // fatal controller may never finish the reset: do not wait for it
        // (the IOMMU unmapping that follows still fences off its DMA).
        if controller_fatal(&self.regs) {
            let cc = self.regs.read32(reg::CC);
            self.regs.write32(reg::CC, reg::cc::EN.set(cc, 0));
        } else {
            let _ = disable(&self.regs, self.info.ready_timeout);
        }
    }
}
