//! Admin commands (NVMe 1.4 §5): Identify, features, queue management, logs.
#![forbid(unsafe_code)]

use super::command::{Outcome, Sqe, Status};
use super::engine::{CompletionQueue, Engine, SubmissionQueue};
use super::events;
use super::medium::ZEROS;
use super::model::{NvmeModel, CQES, PCI_IDS, SQES, VERSION};
use super::prp::PAGE;
use crate::DmaError;
use spec::nvme::{admin, cns, create_queue, feature, get_log_page, id_ctrl, id_ns, NSID_BROADCAST};

/// PCI subsystem vendor ID reported by Identify (as QEMU's controller does).
const SUBSYSTEM_VENDOR: u16 = 0x1af4;
/// Controller ID.
const CNTLID: u16 = 1;
/// Abort Command Limit and Asynchronous Event Request Limit, 0's based (§5.15.2.2: 4 recommended).
const ACL: u8 = 3;
const AERL: u8 = 3;
/// CNTRLTYPE: I/O controller.
const IO_CONTROLLER: u8 = 1;
/// Largest Get Log Page transfer when MDTS sets no limit.
const MAX_LOG_TRANSFER: u64 = 16 << 20;

impl Engine {
    /// Execute an admin command.
    pub(super) fn admin(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        // Admin commands are never fused and always use PRPs (§4.2).
        if cmd.fuse() != 0 || cmd.psdt() != 0 {
            return Err(Status::INVALID_FIELD);
        }
        match cmd.opcode() {
            admin::IDENTIFY => self.identify(m, cmd),
            admin::SET_FEATURES => self.set_features(m, cmd),
            admin::GET_FEATURES => self.get_features(m, cmd),
            admin::CREATE_IO_CQ => self.create_cq(m, cmd),
            admin::CREATE_IO_SQ => self.create_sq(m, cmd),
            admin::DELETE_IO_SQ => self.delete_sq(m, cmd),
            admin::DELETE_IO_CQ => self.delete_cq(m, cmd),
            // Every command completes as soon as it is fetched, so there is
            // never one to abort: DW0 bit 0 = 1, "not aborted" (§5.1).
            admin::ABORT => Ok(1),
            admin::GET_LOG_PAGE => self.get_log_page(m, cmd),
            _ => Err(Status::INVALID_OPCODE),
        }
    }

    /// Copy `data` to the host buffer that the command's PRPs describe.
    fn copy_to_host(&mut self, m: &NvmeModel, cmd: &Sqe, data: &[u8]) -> Result<(), Status> {
        let segments = self
            .prp
            .walk(&m.dma, cmd.prp1(), cmd.prp2(), data.len() as u64)?;
        let mut done = 0;
        for seg in segments {
            let n = seg.len as usize;
            m.dma
                .write(seg.iova, &data[done..done + n])
                .map_err(|e| transfer_error(m, &e))?;
            m.dma.tap().record(|| events::data(seg.iova, seg.len, true));
            done += n;
        }
        Ok(())
    }

    /// Identify (§5.15): a 4096-byte data structure chosen by CNS.
    fn identify(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        let mut data = [0u8; cns::DATA_SIZE];
        match cns::CNS.get(cmd.cdw10()) {
            cns::CONTROLLER => self.identify_controller(m, &mut data),
            cns::NAMESPACE => self.identify_namespace(m, cmd.nsid(), &mut data)?,
            cns::ACTIVE_NAMESPACES => {
                // NSIDs greater than CDW1.NSID, ascending (§5.15.2.3).
                let after = cmd.nsid();
                if after >= NSID_BROADCAST - 1 {
                    return Err(Status::INVALID_NAMESPACE);
                }
                let count = self.namespace_count(m);
                for (slot, nsid) in ((after + 1)..=count)
                    .take(cns::NAMESPACE_LIST_ENTRIES)
                    .enumerate()
                {
                    data[slot * 4..slot * 4 + 4].copy_from_slice(&nsid.to_le_bytes());
                }
            }
            _ => return Err(Status::INVALID_FIELD),
        }
        m.hostile.identify(cns::CNS.get(cmd.cdw10()), &mut data);
        self.copy_to_host(m, cmd, &data)?;
        Ok(0)
    }

    fn identify_controller(&self, m: &NvmeModel, d: &mut [u8; cns::DATA_SIZE]) {
        let put16 = |d: &mut [u8; cns::DATA_SIZE], at: usize, v: u16| {
            d[at..at + 2].copy_from_slice(&v.to_le_bytes())
        };
        let text = |d: &mut [u8; cns::DATA_SIZE], range: std::ops::Range<usize>, s: &str| {
            // ASCII, space padded (§1.5 "ASCII string"); checked by the config.
            d[range.clone()].fill(b' ');
            d[range.start..range.start + s.len()].copy_from_slice(s.as_bytes());
        };
        put16(d, id_ctrl::VID, PCI_IDS.vendor);
        put16(d, id_ctrl::SSVID, SUBSYSTEM_VENDOR);
        text(d, id_ctrl::SN, &m.cfg.serial);
        text(d, id_ctrl::MN, &m.cfg.model);
        text(d, id_ctrl::FR, &m.cfg.firmware);
        d[id_ctrl::MDTS] = m.cfg.mdts;
        put16(d, id_ctrl::CNTLID, CNTLID);
        d[id_ctrl::VER..id_ctrl::VER + 4].copy_from_slice(&VERSION.to_le_bytes());
        d[id_ctrl::CNTRLTYPE] = IO_CONTROLLER;
        d[id_ctrl::ACL] = ACL;
        d[id_ctrl::AERL] = AERL;
        // Required and maximum entry sizes are both 64 and 16 bytes.
        let sizes =
            |log2| id_ctrl::ENTRY_SIZE_MIN.value(log2) | id_ctrl::ENTRY_SIZE_MAX.value(log2);
        d[id_ctrl::SQES] = sizes(SQES);
        d[id_ctrl::CQES] = sizes(CQES);
        let nn = self.namespace_count(m);
        d[id_ctrl::NN..id_ctrl::NN + 4].copy_from_slice(&nn.to_le_bytes());
        d[id_ctrl::VWC] = id_ctrl::VWC_PRESENT.value(u8::from(m.volatile_cache));
    }

    /// NN: the configured namespaces, or what [`Fault::NamespaceCount`](super::Fault) says.
    fn namespace_count(&self, m: &NvmeModel) -> u32 {
        m.lies().nn.unwrap_or(self.namespaces.len() as u32)
    }

    fn identify_namespace(
        &self,
        m: &NvmeModel,
        nsid: u32,
        d: &mut [u8; cns::DATA_SIZE],
    ) -> Result<(), Status> {
        let lies = m.lies();
        let real = nsid
            .checked_sub(1)
            .and_then(|i| self.namespaces.get(i as usize));
        // An injected NN: the phantom NSIDs up to it identify as namespace 1.
        let phantom = || match lies.nn {
            Some(nn) if (1..=nn).contains(&nsid) => self.namespaces.first(),
            _ => None,
        };
        let ns = real.or_else(phantom).ok_or(Status::INVALID_NAMESPACE)?;
        let blocks = ns.blocks();
        let sizes = lies
            .sizes
            .iter()
            .rev()
            .find(|(n, _)| *n == nsid)
            .map_or([blocks; 3], |(_, s)| *s);
        for (at, v) in [id_ns::NSZE, id_ns::NCAP, id_ns::NUSE]
            .into_iter()
            .zip(sizes)
        {
            d[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        // Two LBA formats, 512 and 4096 bytes without metadata; FLBAS names
        // the one the namespace is formatted with.
        let formats = [9u32, 12];
        d[id_ns::NLBAF] = formats.len() as u8 - 1;
        for (i, lbads) in formats.iter().enumerate() {
            let entry = id_ns::LBAF_LBADS.value(*lbads).to_le_bytes();
            d[id_ns::LBAF0 + 4 * i..id_ns::LBAF0 + 4 * i + 4].copy_from_slice(&entry);
        }
        let index = formats
            .iter()
            .position(|&s| s == ns.lba_shift())
            .unwrap_or(0);
        d[id_ns::FLBAS] = id_ns::FLBAS_INDEX.value(index as u8);
        Ok(())
    }

    /// Set Features (§5.21): Number of Queues only.
    fn set_features(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        match feature::FID.get(cmd.cdw10()) {
            feature::NUMBER_OF_QUEUES => {
                // "Shall only be issued ... prior to creation of any I/O
                // Submission and/or Completion Queues" (§5.21.1.7).
                if self.has_io_queues() {
                    return Err(Status::COMMAND_SEQUENCE_ERROR);
                }
                let nsqr = feature::NSQ.get(cmd.cdw11());
                let ncqr = feature::NCQ.get(cmd.cdw11());
                // 65535 (0's based) asks for 65536 queues: reserved.
                if nsqr == 0xffff || ncqr == 0xffff {
                    return Err(Status::INVALID_FIELD);
                }
                let max = u32::from(m.cfg.max_io_queues);
                let nsq = (nsqr + 1).min(max) as u16;
                let ncq = (ncqr + 1).min(max) as u16;
                self.granted = Some((nsq, ncq));
                Ok(queue_count_result(nsq, ncq))
            }
            _ => Err(Status::INVALID_FIELD),
        }
    }

    /// Get Features (§5.14): Number of Queues only.
    fn get_features(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        match feature::FID.get(cmd.cdw10()) {
            feature::NUMBER_OF_QUEUES => {
                let max = m.cfg.max_io_queues;
                let (nsq, ncq) = self.granted.unwrap_or((max, max));
                Ok(queue_count_result(nsq, ncq))
            }
            _ => Err(Status::INVALID_FIELD),
        }
    }

    /// The highest I/O queue IDs the host may create: (SQ, CQ).
    fn queue_limits(&self, m: &NvmeModel) -> (u16, u16) {
        let max = m.cfg.max_io_queues;
        self.granted.unwrap_or((max, max))
    }

    /// Create I/O Completion Queue (§5.3).
    fn create_cq(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        let (_, cq_limit) = self.queue_limits(m);
        let qid = create_queue::QID.get(cmd.cdw10()) as u16;
        let qsize = create_queue::QSIZE.get(cmd.cdw10());
        if m.queue_entry_sizes().1 != u32::from(CQES) {
            return Err(Status::INVALID_FIELD);
        }
        if qid == 0 || qid > cq_limit || self.cqs[qid as usize].is_some() {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        check_queue(m, cmd, qsize)?;
        let entries = qsize + 1;
        self.cqs[qid as usize] = Some(CompletionQueue::new(cmd.prp1(), entries));
        m.doorbells.open_cq(qid, entries);
        Ok(0)
    }

    /// Create I/O Submission Queue (§5.4).
    fn create_sq(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        let (sq_limit, _) = self.queue_limits(m);
        let qid = create_queue::QID.get(cmd.cdw10()) as u16;
        let qsize = create_queue::QSIZE.get(cmd.cdw10());
        let cqid = create_queue::CQID.get(cmd.cdw11()) as u16;
        if m.queue_entry_sizes().0 != u32::from(SQES) {
            return Err(Status::INVALID_FIELD);
        }
        if qid == 0 || qid > sq_limit || self.sqs[qid as usize].is_some() {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        // The admin CQ takes admin completions only.
        if cqid == 0 || self.cqs.get(cqid as usize).is_none_or(Option::is_none) {
            return Err(Status::COMPLETION_QUEUE_INVALID);
        }
        check_queue(m, cmd, qsize)?;
        let entries = qsize + 1;
        self.add_sq(
            qid,
            SubmissionQueue {
                base: cmd.prp1(),
                entries,
                head: 0,
                cqid,
            },
        );
        m.doorbells.open_sq(qid, entries);
        Ok(0)
    }

    /// Delete I/O Submission Queue (§5.6).
    fn delete_sq(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        let qid = create_queue::QID.get(cmd.cdw10()) as u16;
        if qid == 0 || !self.remove_sq(qid) {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        m.doorbells.close_sq(qid);
        Ok(0)
    }

    /// Delete I/O Completion Queue (§5.5): not while an SQ still uses it.
    fn delete_cq(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        let qid = create_queue::QID.get(cmd.cdw10()) as u16;
        let slot = match self.cqs.get_mut(qid as usize) {
            Some(slot) if qid != 0 => slot,
            _ => return Err(Status::INVALID_QUEUE_IDENTIFIER),
        };
        match slot {
            None => Err(Status::INVALID_QUEUE_IDENTIFIER),
            Some(cq) if cq.users > 0 => Err(Status::INVALID_QUEUE_DELETION),
            Some(_) => {
                *slot = None;
                m.doorbells.close_cq(qid);
                Ok(0)
            }
        }
    }

    /// Get Log Page (§5.14): error information, SMART / health and firmware
    /// slot logs, all zeros (no errors, no wear, nothing to report).
    fn get_log_page(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        let lid = get_log_page::LID.get(cmd.cdw10());
        // NUMDU continues NUMDL: a 32-bit count, and the byte length needs 64.
        let numd = u64::from(get_log_page::NUMDL.get(cmd.cdw10()))
            | u64::from(get_log_page::NUMDU.get(cmd.cdw11())) << get_log_page::NUMDL.width;
        let len = (numd + 1) * 4;
        if !matches!(
            lid,
            get_log_page::ERROR_INFORMATION
                | get_log_page::SMART_HEALTH
                | get_log_page::FIRMWARE_SLOT
        ) {
            return Err(Status::INVALID_LOG_PAGE);
        }
        if len > m.max_transfer.unwrap_or(MAX_LOG_TRANSFER) {
            return Err(Status::INVALID_FIELD);
        }
        let segments = self.prp.walk(&m.dma, cmd.prp1(), cmd.prp2(), len)?;
        for seg in segments {
            let (mut iova, mut left) = (seg.iova, seg.len);
            while left > 0 {
                let n = left.min(ZEROS.len() as u64);
                m.dma
                    .write(iova, &ZEROS[..n as usize])
                    .map_err(|e| transfer_error(m, &e))?;
                (iova, left) = (iova + n, left - n);
            }
            m.dma.tap().record(|| events::data(seg.iova, seg.len, true));
        }
        Ok(0)
    }
}

/// A data DMA that did not happen: recorded, and Data Transfer Error.
fn transfer_error(m: &NvmeModel, e: &DmaError) -> Status {
    events::fault(&m.dma, e);
    Status::DATA_TRANSFER_ERROR
}

/// Checks shared by both Create I/O Queue commands: size, contiguity, base.
fn check_queue(m: &NvmeModel, cmd: &Sqe, qsize: u32) -> Result<(), Status> {
    if qsize == 0 || qsize > u32::from(m.cfg.mqes) {
        return Err(Status::INVALID_QUEUE_SIZE);
    }
    // CAP.CQR = 1: queues must be physically contiguous.
    if !create_queue::PC.is_set(cmd.cdw11()) {
        return Err(Status::INVALID_FIELD);
    }
    let base = cmd.prp1();
    if base == 0 || !base.is_multiple_of(PAGE) {
        return Err(Status::PRP_OFFSET_INVALID);
    }
    Ok(())
}

/// DW0 of Number of Queues: NCQA and NSQA, 0's based.
fn queue_count_result(nsq: u16, ncq: u16) -> u32 {
    feature::NSQ.value(u32::from(nsq) - 1) | feature::NCQ.value(u32::from(ncq) - 1)
}
