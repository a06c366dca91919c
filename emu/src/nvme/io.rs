//! I/O commands of the NVM command set: Read, Write, Flush.
#![forbid(unsafe_code)]

use super::command::{Outcome, Sqe, Status};
use super::engine::Engine;
use super::model::NvmeModel;
use spec::nvme::{io, sqe, NSID_BROADCAST};

impl Engine {
    /// Execute an I/O command.
    #[inline]
    pub(super) fn io(&mut self, m: &NvmeModel, cmd: &Sqe) -> Outcome {
        // No fused operations are supported (Identify FUSES = 0).
        if cmd.fuse() != 0 {
            return Err(Status::INVALID_FIELD);
        }
        match cmd.opcode() {
            io::READ => self.read_write(m, cmd, false),
            io::WRITE => self.read_write(m, cmd, true),
            io::FLUSH => self.flush(cmd),
            _ => Err(Status::INVALID_OPCODE),
        }
    }

    /// Read or Write (NVM Command Set §3.2.4, §3.2.6): SLBA in CDW10-11,
    /// NLB (0's based) in CDW12, data through PRPs.
    fn read_write(&mut self, m: &NvmeModel, cmd: &Sqe, write: bool) -> Outcome {
        let nsid = cmd.nsid();
        let ns = nsid
            .checked_sub(1)
            .and_then(|i| self.namespaces.get_mut(i as usize))
            .ok_or(Status::INVALID_NAMESPACE)?;
        // Only PRPs: Identify SGLS = 0.
        if cmd.psdt() != 0 {
            return Err(Status::INVALID_FIELD);
        }
        let slba = cmd.slba();
        let nlb = u64::from(sqe::rw::NLB.get(cmd.cdw12())) + 1;
        if slba.checked_add(nlb).is_none_or(|end| end > ns.blocks()) {
            return Err(Status::LBA_OUT_OF_RANGE);
        }
        let len = nlb << ns.lba_shift();
        if m.max_transfer.is_some_and(|max| len > max) {
            return Err(Status::INVALID_FIELD);
        }
        if let Some(status) = m.injected_io_error(nsid, slba, nlb) {
            return Err(status);
        }
        let segments = self.prp.walk(&m.dma, cmd.prp1(), cmd.prp2(), len)?;
        let offset = slba << ns.lba_shift();
        if write {
            ns.write_from_host(&m.dma, offset, segments, &mut self.bounce)?;
            if sqe::rw::FUA.is_set(cmd.cdw12()) {
                ns.flush().map_err(|_| Status::INTERNAL_ERROR)?;
            }
        } else {
            ns.read_to_host(&m.dma, offset, segments, &mut self.bounce)?;
        }
        Ok(0)
    }

    /// Flush (NVM Command Set §3.2.3): one namespace, or all of them with
    /// NSID FFFFFFFFh.
    fn flush(&mut self, cmd: &Sqe) -> Outcome {
        let nsid = cmd.nsid();
        let result = if nsid == NSID_BROADCAST {
            self.namespaces.iter().try_for_each(|ns| ns.flush())
        } else {
            nsid.checked_sub(1)
                .and_then(|i| self.namespaces.get(i as usize))
                .ok_or(Status::INVALID_NAMESPACE)?
                .flush()
        };
        result.map_err(|_| Status::INTERNAL_ERROR)?;
        Ok(0)
    }
}
