//! The controller: reset and enable (NVMe 1.4 §7.6.1), Identify, the
//! number of queues, I/O queue pair creation and deletion, shutdown.
#![forbid(unsafe_code)]

use super::admin::AdminQueue;
use super::command::Command;
use super::error::NvmeError;
use super::identify::{
    parse_namespace_list, ready_timeout, ControllerInfo, IdentifyData, NamespaceInfo,
};
use super::io_queue::IoQueuePair;
use super::options::NvmeOptions;
use super::prp::{list_pages_needed, PAGE_SIZE};
use super::queue::{controller_failure, QueueCore};
use super::shared::{active_nsids, disable, wait_ready, AdminState, Shared};
use super::status::StatusKind;
use crate::regs::RegisterAccess;
use crate::trace::DeviceKind;
use dma::{Mapper, RegionOptions};
use spec::nvme::{cns, cqe, feature, reg, sqe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An initialized NVMe controller. It owns the admin queue (behind a mutex,
/// so queue pairs can be created and deleted from any thread while others
/// do I/O) and hands out [`IoQueuePair`]s. Register access is `&self`.
///
/// Dropping it (after the last queue pair) disables the controller, so it
/// stops all DMA before the queue memory is freed.
pub struct NvmeController<R: RegisterAccess> {
    shared: Arc<Shared<R>>,
}

impl<R: RegisterAccess> std::fmt::Debug for NvmeController<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmeController")
            .field("info", &self.shared.info)
            .field("namespaces", &self.shared.namespaces.len())
            .finish()
    }
}

/// Check CAP for what this driver needs.
fn check_capabilities(cap: u64) -> Result<(), NvmeError> {
    if cap == u64::MAX {
        return Err(NvmeError::Unsupported(
            "CAP reads all ones: the device does not answer on BAR0 (memory space disabled, \
             device in D3 or removed); reset the function or re-bind it"
                .into(),
        ));
    }
    if reg::cap::CSS.get(cap) & reg::cap::CSS_NVM == 0 {
        return Err(NvmeError::Unsupported(format!(
            "CAP.CSS is {:#x}: the controller does not support the NVM command set",
            reg::cap::CSS.get(cap)
        )));
    }
    let mpsmin = reg::cap::MPSMIN.get(cap);
    if mpsmin != 0 {
        return Err(NvmeError::Unsupported(format!(
            "CAP.MPSMIN is {} KiB: the smallest memory page the controller takes is larger \
             than the 4 KiB pages this driver uses",
            4u64 << mpsmin
        )));
    }
    if reg::cap::MQES.get(cap) == 0 {
        return Err(NvmeError::DeviceMisbehaved(
            "CAP.MQES is 0 (a queue of 1 entry), which the specification forbids".into(),
        ));
    }
    Ok(())
}

/// Check that the doorbells of queues 0 (admin) to `last_qid` lie inside
/// BAR0. Their offsets follow from CAP.DSTRD (NVMe 1.4 §3.1.1, §3.1.24-25),
/// a device value: a stride the BAR cannot hold would otherwise make a
/// doorbell write an access outside the BAR. Checked once, at init, so the
/// doorbell writes of the I/O path need no check.
fn check_doorbells(
    bar_size: usize,
    dstrd: u32,
    last_qid: u16,
    queues: &str,
) -> Result<(), NvmeError> {
    // The last one is the CQ head doorbell of `last_qid`, 4 bytes wide. In
    // u64: 0x1000 + (2 * 65534 + 1) * (4 << 15) + 4 needs 35 bits.
    let stride = 4u64 << dstrd;
    let end = reg::DOORBELL_BASE as u64 + (2 * u64::from(last_qid) + 1) * stride + 4;
    if end > bar_size as u64 {
        return Err(NvmeError::DeviceMisbehaved(format!(
            "CAP.DSTRD is {dstrd} (doorbells {stride} bytes apart), so the doorbells of {queues} \
             end at {end:#x}, beyond BAR0's {bar_size:#x} bytes (NVMe 1.4 §3.1.24-25); \
             its CAP does not match its BAR (ask for fewer I/O queues if only those do not fit)"
        )));
    }
    Ok(())
}

/// Most active namespaces enumerated: NN is a device value (up to
/// FFFFFFFEh), and each namespace costs an Identify command at init and
/// memory for as long as the controller lives. 4096 is 4 pages of the
/// active namespace list (§5.15.2.3), more than controllers ship with.
const MAX_NAMESPACES: usize = 4096;
/// Active namespace list pages read: the ones `MAX_NAMESPACES` fills, and
/// one more to see whether any namespace lies beyond them.
const MAX_NAMESPACE_LIST_PAGES: usize = MAX_NAMESPACES / cns::NAMESPACE_LIST_ENTRIES + 1;
/// Most NSIDs probed one by one when the controller has no namespace list.
const MAX_PROBED_NSIDS: u32 = 1024;
fn identify_namespaces<R: RegisterAccess>(
    regs: &R,
    admin: &mut AdminQueue,
    nn: u32,
    timeout: Duration,
    data: &mut IdentifyData,
) -> Result<Vec<NamespaceInfo>, NvmeError> {
    let mut nsids = Vec::new();
    let mut probing = false;
    let mut after = 0;
    for _ in 0..MAX_NAMESPACE_LIST_PAGES {
        match admin.identify(
            regs,
            cns::ACTIVE_NAMESPACES,
            after,
            "identify active namespace list",
            timeout,
            data,
        ) {
            Ok(()) => {}
            // Controllers before NVMe 1.1 have no namespace list: probe each NSID.
            Err(NvmeError::Status { status, .. })
                if after == 0 && status.kind() == StatusKind::InvalidField =>
            {
                nsids = (1..=nn.min(MAX_PROBED_NSIDS)).collect();
                probing = true;
                break;
            }
            Err(e) => return Err(e),
        }
        let (list, full) = parse_namespace_list(data, after, nn)?;
        if nsids.len() + list.len() > MAX_NAMESPACES {
            return Err(NvmeError::Unsupported(format!(
                "the controller has more than {MAX_NAMESPACES} active namespaces (NN = {nn}); \
                 this driver enumerates at most {MAX_NAMESPACES}: detach or delete namespaces \
                 down to {MAX_NAMESPACES}"
            )));
        }
        nsids.extend_from_slice(&list);
        match (full, list.last()) {
            // A full page ending at NN: no NSID can follow.
            (true, Some(&last)) if last < nn => after = last,
            _ => break,
        }
    }
    let mut namespaces = Vec::with_capacity(nsids.len());
    for nsid in nsids {
        admin.identify(
            regs,
            cns::NAMESPACE,
            nsid,
            "identify namespace",
            timeout,
            data,
        )?;
        // An inactive NSID identifies as all zeros; skip those when probing.
        if probing && data[..8].iter().all(|&b| b == 0) {
            continue;
        }
        namespaces.push(NamespaceInfo::parse(nsid, data)?);
    }
    Ok(namespaces)
}

impl<R: RegisterAccess> NvmeController<R> {
    /// Reset and enable the controller, identify it and all its active
    /// namespaces, and negotiate the number of I/O queues.
    ///
    /// The PCI function must have memory space and bus mastering enabled
    /// (the VFIO open does it; for a model, `EmuPciFunction::enable`).
    pub fn init(regs: R, mapper: Arc<dyn Mapper>, opts: NvmeOptions) -> Result<Self, NvmeError> {
        let cap = regs.read64(reg::CAP);
        check_capabilities(cap)?;
        let rdy_timeout = ready_timeout(cap);
        let dstrd = reg::cap::DSTRD.get(cap) as u32;
        // The trace names doorbells by this stride from now on.
        opts.trace.set_kind(DeviceKind::Nvme { dstrd });
        // Before any doorbell write: the admin queue's doorbells.
        check_doorbells(regs.bar_size(), dstrd, 0, "the admin queue")?;
        disable(&regs, rdy_timeout)?;

        let mqes = reg::cap::MQES.get(cap) + 1;
        let max_admin = mqes.min(u64::from(reg::aqa::ASQS.mask()) + 1) as u16;
        let admin_depth = opts.admin_depth.clamp(2, max_admin);
        let mut admin = AdminQueue::new(mapper.clone(), opts.region, admin_depth, dstrd)?;
        admin.set_tap(opts.trace.clone());
        let entries = u32::from(admin_depth) - 1;
        let aqa = reg::aqa::ASQS.value(entries) | reg::aqa::ACQS.value(entries);
        regs.write32(reg::AQA, aqa);
        regs.write64(reg::ASQ, admin.sq_iova());
        regs.write64(reg::ACQ, admin.cq_iova());
        // NVM command set, 4 KiB pages (MPS 0), round robin, 64-byte
        // submission and 16-byte completion entries.
        let cc = reg::cc::CSS.value(reg::cc::CSS_NVM)
            | reg::cc::MPS.value(PAGE_SIZE.trailing_zeros() - 12)
            | reg::cc::AMS.value(0)
            | reg::cc::IOSQES.value(u32::from(sqe::SIZE_LOG2))
            | reg::cc::IOCQES.value(u32::from(cqe::SIZE_LOG2))
            | reg::cc::EN.bit();
        regs.write32(reg::CC, cc);

        let configured = wait_ready(&regs, true, rdy_timeout)
            .and_then(|()| Self::configure(&regs, &mut admin, cap, &opts));
        let (info, namespaces) = match configured {
            Ok(c) => c,
            Err(e) => {
                // Stop the controller before the admin queue memory goes.
                let _ = disable(&regs, rdy_timeout);
                return Err(e);
            }
        };
        let mut qid_used = vec![false; info.io_queues as usize + 1];
        qid_used[0] = true;
        Ok(NvmeController {
            shared: Arc::new(Shared {
                regs,
                admin: Mutex::new(AdminState {
                    queue: admin,
                    qid_used,
                }),
                info,
                namespaces,
                mapper,
                opts,
                dstrd,
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// The admin commands of init, once the controller is ready.
    fn configure(
        regs: &R,
        admin: &mut AdminQueue,
        cap: u64,
        opts: &NvmeOptions,
    ) -> Result<(ControllerInfo, Vec<NamespaceInfo>), NvmeError> {
        let timeout = opts.command_timeout;
        let mut data: Box<IdentifyData> = Box::new([0; cns::DATA_SIZE]);
        admin.identify(
            regs,
            cns::CONTROLLER,
            0,
            "identify controller",
            timeout,
            &mut data,
        )?;
        let vs = regs.read32(reg::VS);
        let mut info = ControllerInfo::parse(&data, cap, vs, opts.max_transfer)?;
        let namespaces = identify_namespaces(regs, admin, info.nn, timeout, &mut data)?;

        let want = opts.io_queues.clamp(1, u16::MAX - 1);
        let dw0 = admin.execute(
            regs,
            Command::set_number_of_queues(want),
            false,
            "set features (number of queues)",
            timeout,
        )?;
        // Both counts are 0's based; the controller may grant fewer (or more).
        let granted = feature::NSQ.get(dw0).min(feature::NCQ.get(dw0)) + 1;
        info.io_queues = granted.min(u32::from(u16::MAX) - 1) as u16;
        // Queue pairs get identifiers 1..=io_queues: all their doorbells must fit.
        check_doorbells(
            regs.bar_size(),
            u32::from(info.dstrd),
            info.io_queues,
            &format!(
                "I/O queue {} (of the {} granted)",
                info.io_queues, info.io_queues
            ),
        )?;
        Ok((info, namespaces))
    }

    /// Identify Controller and what was negotiated.
    pub fn info(&self) -> &ControllerInfo {
        &self.shared.info
    }

    /// The active namespaces, by increasing NSID.
    pub fn namespaces(&self) -> &[NamespaceInfo] {
        &self.shared.namespaces
    }

    /// The namespace `nsid`.
    pub fn namespace(&self, nsid: u32) -> Result<&NamespaceInfo, NvmeError> {
        let all = &self.shared.namespaces;
        // By increasing NSID (as enumerated): a binary search.
        all.binary_search_by_key(&nsid, |n| n.nsid)
            .map(|i| &all[i])
            .map_err(|_| {
                NvmeError::InvalidRequest(format!(
                    "namespace {nsid} is not an active namespace of this controller (active: {})",
                    active_nsids(all.iter().map(|n| n.nsid))
                ))
            })
    }

    /// Largest transfer of one command, in bytes (MDTS and the driver's cap).
    pub fn max_transfer(&self) -> u64 {
        self.shared.info.max_transfer
    }

    /// Deepest queue pair [`Self::create_io_queue_pair`] makes (CAP.MQES + 1, at most 65535).
    pub fn queue_limit(&self) -> u16 {
        self.shared.info.mqes.min(u16::MAX as u32) as u16
    }

    /// The mapper queue memory is mapped with (for buffer pools of the same device).
    pub fn mapper(&self) -> &Arc<dyn Mapper> {
        &self.shared.mapper
    }

    /// Where DMA memory comes from (the options' `region`).
    pub fn region_options(&self) -> RegionOptions {
        self.shared.opts.region
    }

    /// The options the controller runs with.
    pub fn options(&self) -> &NvmeOptions {
        &self.shared.opts
    }

    /// Create an I/O queue pair of `depth` entries (at most `depth - 1`
    /// commands in flight), capped at [`Self::queue_limit`]. The completion
    /// queue is created before its submission queue (§7.6.1). Safe to call
    /// from any thread while other queue pairs are in use.
    pub fn create_io_queue_pair(&self, depth: u16) -> Result<IoQueuePair<R>, NvmeError> {
        let s = &self.shared;
        let depth = depth.min(self.queue_limit());
        if depth < 2 {
            return Err(NvmeError::InvalidRequest(format!(
                "queue depth {depth}: a queue pair needs at least 2 entries (1 command in flight)"
            )));
        }
        let qid = {
            let mut a = s.admin();
            let free = (1..a.qid_used.len()).find(|&q| !a.qid_used[q]);
            let Some(qid) = free else {
                return Err(NvmeError::InvalidRequest(format!(
                    "all {} I/O queue pairs the controller granted are in use; delete one first",
                    s.info.io_queues
                )));
            };
            a.qid_used[qid] = true;
            qid as u16
        };
        // Allocate outside the lock: other threads may use the admin queue meanwhile.
        let pages_per_cmd = list_pages_needed(s.info.max_transfer, PAGE_SIZE);
        let core = QueueCore::new(
            s.mapper.clone(),
            s.opts.region,
            qid,
            depth,
            s.dstrd,
            pages_per_cmd,
            0,
        );
        let mut core = match core {
            Ok(c) => c,
            Err(e) => {
                s.admin().qid_used[qid as usize] = false;
                return Err(e);
            }
        };
        core.set_tap(s.opts.trace.clone());
        let timeout = s.opts.command_timeout;
        let mut a = s.admin();
        let created = a
            .queue
            .execute(
                &s.regs,
                Command::create_io_cq(qid, depth, core.cq_iova()),
                false,
                "create I/O completion queue",
                timeout,
            )
            .map_err(|e| (e, false))
            .and_then(|_| {
                a.queue
                    .execute(
                        &s.regs,
                        Command::create_io_sq(qid, depth, core.sq_iova()),
                        false,
                        "create I/O submission queue",
                        timeout,
                    )
                    .map_err(|e| (e, true))
            });
        match created {
            Ok(_) => {
                drop(a);
                Ok(IoQueuePair::new(core, s.clone()))
            }
            Err((e, cq_exists)) => {
                // The queue identifier may be reused only if the controller
                // certainly has no queue under it.
                let mut clean = matches!(e, NvmeError::Status { .. });
                if clean && cq_exists {
                    clean = a
                        .queue
                        .execute(
                            &s.regs,
                            Command::delete_io_cq(qid),
                            false,
                            "delete I/O completion queue",
                            timeout,
                        )
                        .is_ok();
                }
                if clean {
                    a.qid_used[qid as usize] = false;
                }
                Err(e)
            }
        }
    }

    /// Delete a queue pair: its submission queue, then its completion queue
    /// (§7.6.1). Commands still in flight are aborted by the controller;
    /// their buffers are not returned (they count as quarantined in their pool).
    pub fn delete_io_queue_pair(&self, mut qp: IoQueuePair<R>) -> Result<(), NvmeError> {
        if !Arc::ptr_eq(qp.shared(), &self.shared) {
            return Err(NvmeError::InvalidRequest(
                "the queue pair belongs to another controller; delete it there".into(),
            ));
        }
        qp.delete()
    }

    /// Ok unless the controller reports a fatal status (CSTS.CFS) or no
    /// longer answers (CSTS all ones: [`NvmeError::NotResponding`]).
    pub fn check_fatal(&self) -> Result<(), NvmeError> {
        match controller_failure(&self.shared.regs) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Normal shutdown (CC.SHN = 01b), waiting for CSTS.SHST = complete
    /// within CAP.TO, so a volatile write cache is flushed to the medium.
    /// Delete the queue pairs first: any left are unusable afterwards.
    pub fn shutdown(self) -> Result<(), NvmeError> {
        let s = &self.shared;
        // Hold the admin lock: no admin command may be in flight meanwhile.
        let _admin = s.admin();
        let cc = s.regs.read32(reg::CC);
        s.regs
            .write32(reg::CC, reg::cc::SHN.set(cc, reg::cc::SHN_NORMAL));
        s.shut_down.store(true, Ordering::Release);
        let start = Instant::now();
        loop {
            let csts = s.regs.read32(reg::CSTS);
            if reg::csts::CFS.is_set(csts) {
                return Err(NvmeError::ControllerFatal);
            }
            if reg::csts::SHST.get(csts) == reg::csts::SHST_COMPLETE {
                return Ok(());
            }
            let waited = start.elapsed();
            if waited >= s.info.ready_timeout {
                return Err(NvmeError::Timeout {
                    op: "shutdown",
                    after: waited,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
