//! Submission queue entries: the 64-byte commands (NVMe 1.4 §4.2) and the
//! constructors of the admin and I/O commands this driver sends.
#![forbid(unsafe_code)]

use spec::nvme::{admin, cns, create_queue, feature, io, sqe};

/// The name of I/O command `opcode` in messages.
pub(crate) fn io_op_name(opcode: u8) -> &'static str {
    match opcode {
        io::READ => "read",
        io::WRITE => "write",
        io::FLUSH => "flush",
        _ => "I/O command",
    }
}

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
const fn pair(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

/// A submission queue entry as it is written: eight little-endian qwords
/// (CDW0+NSID, reserved DW2-3, MPTR, PRP1, PRP2, CDW10-11, CDW12-13,
/// CDW14-15), everything but the command identifier, which the queue adds
/// when it writes the entry. PSDT = 0 (PRPs, no SGLs), FUSE = 0, no
/// metadata pointer.
///
/// An I/O queue pair keeps the first qword of one per namespace and
/// operation ([`RwTemplate`]): submitting a read or write adds the LBA, the
/// block count and the PRPs and writes the eight words, with no field
/// packed per I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sqe {
    words: [u64; 8],
}

/// The qwords of an entry that carry per-I/O fields.
const W_CDW0: usize = sqe::CDW0 / 8;
const W_PRP1: usize = sqe::PRP1 / 8;
const W_PRP2: usize = sqe::PRP2 / 8;
const W_CDW10: usize = sqe::CDW10 / 8;
const W_CDW12: usize = sqe::CDW12 / 8;

impl Sqe {
    /// An entry of `opcode` for namespace `nsid`, every other field 0.
    #[inline]
    pub const fn template(opcode: u8, nsid: u32) -> Sqe {
        let mut words = [0; 8];
        words[W_CDW0] = pair(sqe::cdw0::OPC.value(opcode as u32), nsid);
        Sqe { words }
    }

    /// With PRP1 and PRP2 set.
    #[inline]
    pub fn with_prps(self, prp1: u64, prp2: u64) -> Sqe {
        let mut words = self.words;
        words[W_PRP1] = prp1;
        words[W_PRP2] = prp2;
        Sqe { words }
    }

    /// The entry's opcode.
    #[inline]
    pub fn opcode(&self) -> u8 {
        sqe::cdw0::OPC.get(self.words[W_CDW0] as u32) as u8
    }

    /// The eight words of the entry under command identifier `cid`: every
    /// byte of the 64 (a reused slot must not keep fields of its previous
    /// command).
    #[inline]
    pub fn words(&self, cid: u16) -> [u64; 8] {
        let mut words = self.words;
        words[W_CDW0] |= u64::from(sqe::cdw0::CID.value(u32::from(cid)));
        words
    }
}

/// A namespace's Read or Write entry before its per-I/O fields: an entry
/// of [`Sqe::template`] is 0 but for its first qword (CDW0 and the NSID),
/// so that qword is all an I/O queue pair keeps per namespace and
/// operation, and an I/O's entry is built from it without reading a
/// 64-byte template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RwTemplate {
    cdw0_nsid: u64,
}

impl RwTemplate {
    /// The template of `opcode` (Read or Write) for namespace `nsid`.
    #[inline]
    pub const fn new(opcode: u8, nsid: u32) -> RwTemplate {
        RwTemplate {
            cdw0_nsid: Sqe::template(opcode, nsid).words[W_CDW0],
        }
    }

    /// The entry for `blocks` (1..=65536) logical blocks from `lba` (NVM
    /// Command Set §3.2.4, §3.2.6: SLBA in CDW10-11, NLB zero-based in
    /// CDW12; CDW12's flags are 0), PRPs not yet set.
    #[inline]
    pub fn read_write(self, lba: u64, blocks: u32) -> Sqe {
        debug_assert!((1..=1 << sqe::rw::NLB.width).contains(&blocks));
        let mut words = [0; 8];
        words[W_CDW0] = self.cdw0_nsid;
        words[W_CDW10] = lba;
        words[W_CDW12] = u64::from(sqe::rw::NLB.value(blocks - 1));
        Sqe { words }
    }
}

impl From<Command> for Sqe {
    fn from(c: Command) -> Sqe {
        let mut words = Sqe::template(c.opcode, c.nsid).words;
        words[W_PRP1] = c.prp1;
        words[W_PRP2] = c.prp2;
        words[W_CDW10] = pair(c.cdw10, c.cdw11);
        words[W_CDW12] = pair(c.cdw12, c.cdw13);
        words[sqe::CDW14 / 8] = pair(c.cdw14, c.cdw15);
        Sqe { words }
    }
}

impl Command {
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
    use dma::{DmaRegion, EmuIommu, RegionOptions};
    use std::sync::Arc;

    #[test]
    fn entries_are_laid_out_as_the_spec_says() {
        let mem =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        mem.fill(0, 128, 0xff);
        let sqe = RwTemplate::new(io::WRITE, 3)
            .read_write(0x1_2345_6789, 8)
            .with_prps(0xaaaa_0004, 0xbbbb_0000);
        mem.write_u64s(64, &sqe.words(0x1234));
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
        // The largest count and the CID's full width.
        let w = RwTemplate::new(io::READ, 1)
            .read_write(0, 65536)
            .words(0xffff);
        assert_eq!(w[0], 0x0000_0001_ffff_0002);
        assert_eq!(w[W_CDW12], 0xffff);
    }

    #[test]
    fn commands_become_entries_field_by_field() {
        let c = Command {
            opcode: 0x06,
            nsid: 0x0102_0304,
            prp1: 0x1000,
            prp2: 0x2000,
            cdw10: 10,
            cdw11: 11,
            cdw12: 12,
            cdw13: 13,
            cdw14: 14,
            cdw15: 15,
        };
        let w = Sqe::from(c).words(7);
        assert_eq!(
            w,
            [
                0x0102_0304_0007_0006,
                0,
                0,
                0x1000,
                0x2000,
                11 << 32 | 10,
                13 << 32 | 12,
                15 << 32 | 14
            ]
        );
        // A read or write template is an entry of that opcode and namespace.
        assert_eq!(
            Sqe::template(io::READ, 5),
            Sqe::from(Command {
                opcode: io::READ,
                nsid: 5,
                ..Command::default()
            })
        );
        // And a read or write built from its first qword is that entry
        // with the LBA and the zero-based count set, nothing else.
        assert_eq!(
            RwTemplate::new(io::WRITE, 5).read_write(0x1_0000_0002, 3),
            Sqe::from(Command {
                opcode: io::WRITE,
                nsid: 5,
                cdw10: 2,
                cdw11: 1,
                cdw12: 2,
                ..Command::default()
            })
        );
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
