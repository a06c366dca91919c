//! Submission queue entries: the 64-byte commands (NVMe 1.4 §4.2) and the
//! constructors of the admin and I/O commands this driver sends.
#![forbid(unsafe_code)]

use dma::DmaRegion;
use spec::nvme::{admin, cns, create_queue, feature, io, sqe};

/// One command before it is written into a submission queue. The command
/// identifier is added when it is written (it is the queue's business).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Command {
    pub opcode: u8,
    pub nsid: u32,
    pub prp1: u64,
    pub prp2: u64,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
}

// The entry is written as eight little-endian qwords in order: CDW0+NSID,
// reserved DW2-3, MPTR, PRP1, PRP2, then the pairs of dwords that share one.
const _: () = {
    assert!(sqe::CDW0 == 0 && RESERVED_DW2 == 8 && sqe::MPTR == 16);
    assert!(sqe::PRP1 == 24 && sqe::PRP2 == 32 && sqe::CDW10 == 40);
    assert!(sqe::CDW12 == 48 && sqe::CDW14 == 56);
    assert!(sqe::NSID == sqe::CDW0 + 4);
    assert!(sqe::CDW11 == sqe::CDW10 + 4);
    assert!(sqe::CDW13 == sqe::CDW12 + 4);
    assert!(sqe::CDW15 == sqe::CDW14 + 4);
    assert!(sqe::SIZE == 64);
};

/// Dwords 2 and 3 of an entry: reserved (§4.2).
const RESERVED_DW2: usize = 8;

#[inline]
fn pair(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

impl Command {
    /// Write the entry at `offset` of `mem` with command identifier `cid`:
    /// eight atomic qword writes, every byte of the 64 (a reused slot must
    /// not keep fields of its previous command). PSDT = 0: PRPs, no SGLs;
    /// FUSE = 0; no metadata pointer.
    #[inline]
    pub fn write_to(&self, mem: &DmaRegion, offset: usize, cid: u16) {
        let cdw0 =
            sqe::cdw0::OPC.value(u32::from(self.opcode)) | sqe::cdw0::CID.value(u32::from(cid));
        // One bounds check for the entry, then eight stores in field order.
        mem.write_u64s(
            offset + sqe::CDW0,
            &[
                pair(cdw0, self.nsid),
                0,
                0,
                self.prp1,
                self.prp2,
                pair(self.cdw10, self.cdw11),
                pair(self.cdw12, self.cdw13),
                pair(self.cdw14, self.cdw15),
            ],
        );
    }

    /// Identify (§5.15) with the given CNS; the 4 KiB result goes to the
    /// command's data buffer.
    pub fn identify(cns_value: u32, nsid: u32) -> Command {
        Command {
            opcode: admin::IDENTIFY,
            nsid,
            cdw10: cns::CNS.value(cns_value),
            ..Command::default()
        }
    }

    /// Set Features, Number of Queues (§5.21.1.7): ask for `count` I/O
    /// submission and completion queues (1..=65535).
    pub fn set_number_of_queues(count: u16) -> Command {
        let n = u32::from(count.max(1)) - 1;
        Command {
            opcode: admin::SET_FEATURES,
            cdw10: feature::FID.value(feature::NUMBER_OF_QUEUES),
            cdw11: feature::NSQ.value(n) | feature::NCQ.value(n),
            ..Command::default()
        }
    }

    /// Create I/O Completion Queue (§5.3): physically contiguous, polled
    /// (interrupts disabled).
    pub fn create_io_cq(qid: u16, entries: u16, iova: u64) -> Command {
        let cdw10 = create_queue::QID.value(u32::from(qid))
            | create_queue::QSIZE.value(u32::from(entries) - 1);
        let cdw11 = create_queue::PC.bit();
        Command {
            opcode: admin::CREATE_IO_CQ,
            prp1: iova,
            cdw10,
            cdw11,
            ..Command::default()
        }
    }

    /// Create I/O Submission Queue (§5.4): physically contiguous, completing
    /// to the completion queue of the same identifier.
    pub fn create_io_sq(qid: u16, entries: u16, iova: u64) -> Command {
        let cdw10 = create_queue::QID.value(u32::from(qid))
            | create_queue::QSIZE.value(u32::from(entries) - 1);
        let cdw11 = create_queue::PC.bit() | create_queue::CQID.value(u32::from(qid));
        Command {
            opcode: admin::CREATE_IO_SQ,
            prp1: iova,
            cdw10,
            cdw11,
            ..Command::default()
        }
    }

    /// Delete I/O Submission Queue (§5.7).
    pub fn delete_io_sq(qid: u16) -> Command {
        Command {
            opcode: admin::DELETE_IO_SQ,
            cdw10: create_queue::QID.value(u32::from(qid)),
            ..Command::default()
        }
    }

    /// Delete I/O Completion Queue (§5.6).
    pub fn delete_io_cq(qid: u16) -> Command {
        Command {
            opcode: admin::DELETE_IO_CQ,
            cdw10: create_queue::QID.value(u32::from(qid)),
            ..Command::default()
        }
    }

    /// Read or Write (NVM Command Set §3.2.4, §3.2.6) of `blocks`
    /// (1..=65536) logical blocks from `lba`.
    #[inline]
    pub fn read_write(opcode: u8, nsid: u32, lba: u64, blocks: u32) -> Command {
        debug_assert!(opcode == io::READ || opcode == io::WRITE);
        debug_assert!((1..=1 << sqe::rw::NLB.width).contains(&blocks));
        Command {
            opcode,
            nsid,
            cdw10: lba as u32,
            cdw11: (lba >> 32) as u32,
            cdw12: sqe::rw::NLB.value(blocks - 1),
            ..Command::default()
        }
    }

    /// Flush (NVM Command Set §3.2.2).
    pub fn flush(nsid: u32) -> Command {
        Command {
            opcode: io::FLUSH,
            nsid,
            ..Command::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dma::{EmuIommu, RegionOptions};
    use std::sync::Arc;

    #[test]
    fn entries_are_laid_out_as_the_spec_says() {
        let mem =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        mem.fill(0, 128, 0xff);
        let mut cmd = Command::read_write(io::WRITE, 3, 0x1_2345_6789, 8);
        cmd.prp1 = 0xaaaa_0004;
        cmd.prp2 = 0xbbbb_0000;
        cmd.write_to(&mem, 64, 0x1234);
        assert_eq!(mem.read_u32(64 + sqe::CDW0), 0x1234_0001);
        assert_eq!(mem.read_u32(64 + sqe::NSID), 3);
        assert_eq!(mem.read_u64(64 + RESERVED_DW2), 0);
        assert_eq!(mem.read_u64(64 + sqe::MPTR), 0);
        assert_eq!(mem.read_u64(64 + sqe::PRP1), 0xaaaa_0004);
        assert_eq!(mem.read_u64(64 + sqe::PRP2), 0xbbbb_0000);
        assert_eq!(mem.read_u32(64 + sqe::CDW10), 0x2345_6789);
        assert_eq!(mem.read_u32(64 + sqe::CDW11), 1);
        assert_eq!(mem.read_u32(64 + sqe::CDW12), 7);
        for off in [sqe::CDW13, sqe::CDW14, sqe::CDW15] {
            assert_eq!(mem.read_u32(64 + off), 0);
        }
        // The neighbouring entry is untouched.
        assert_eq!(mem.read_u32(0), 0xffff_ffff);
    }

    #[test]
    fn queue_commands_carry_zero_based_sizes() {
        let c = Command::create_io_cq(5, 64, 0x1000);
        assert_eq!(c.cdw10, 5 | 63 << 16);
        assert_eq!(c.cdw11, 1);
        let s = Command::create_io_sq(5, 64, 0x2000);
        assert_eq!(s.cdw10, 5 | 63 << 16);
        assert_eq!(s.cdw11, 1 | 5 << 16);
        assert_eq!(Command::set_number_of_queues(64).cdw11, 63 | 63 << 16);
        assert_eq!(Command::identify(cns::ACTIVE_NAMESPACES, 0).cdw10, 2);
    }
}
