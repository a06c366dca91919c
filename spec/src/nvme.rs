//! The NVMe register map, command and completion layouts, opcodes and status
//! codes: every number the NVMe driver and the emulated controller share,
//! named once. Section numbers are from the NVM Express Base Specification
//! 1.4 (register and queue layouts are unchanged in 2.0).
//!
//! Each field is a [`Field<W>`](crate::Field) of the width of the register or dword it
//! belongs to, so the driver and the model build and take apart words with
//! no casts; each structure also has a [`Layout`] (`LAYOUT`) so that a trace
//! decoder can print it field by field at run time.

use crate::{FieldInfo, Layout, Word};

/// A word of a layout: shorthand for the tables below.
const fn word(
    name: &'static str,
    offset: usize,
    bytes: usize,
    fields: &'static [FieldInfo],
) -> Word {
    Word {
        name,
        offset,
        bytes,
        fields,
    }
}

/// Controller registers in BAR0 (§3.1).
pub mod reg {
    use super::word;
    use crate::{Field, Layout};
    use core::fmt;

    /// Controller Capabilities, 64 bits.
    pub const CAP: usize = 0x00;
    /// Version.
    pub const VS: usize = 0x08;
    /// Interrupt Mask Set.
    pub const INTMS: usize = 0x0c;
    /// Interrupt Mask Clear.
    pub const INTMC: usize = 0x10;
    /// Controller Configuration.
    pub const CC: usize = 0x14;
    /// Controller Status.
    pub const CSTS: usize = 0x1c;
    /// NVM Subsystem Reset.
    pub const NSSR: usize = 0x20;
    /// Admin Queue Attributes.
    pub const AQA: usize = 0x24;
    /// Admin Submission Queue base address, 64 bits.
    pub const ASQ: usize = 0x28;
    /// Admin Completion Queue base address, 64 bits.
    pub const ACQ: usize = 0x30;
    /// First doorbell (§3.1.24, §3.1.25).
    pub const DOORBELL_BASE: usize = 0x1000;

    /// CAP fields (§3.1.1), of the 64-bit register.
    pub mod cap {
        use crate::Field;
        /// Maximum Queue Entries Supported, 0's based.
        pub const MQES: Field<u64> = Field::new("MQES", 0, 16);
        /// Contiguous Queues Required.
        pub const CQR: Field<u64> = Field::new("CQR", 16, 1);
        /// Arbitration Mechanism Supported.
        pub const AMS: Field<u64> = Field::new("AMS", 17, 2);
        /// Timeout for CSTS.RDY changes, in 500 ms units.
        pub const TO: Field<u64> = Field::new("TO", 24, 8);
        /// Doorbell Stride: doorbells are `4 << DSTRD` bytes apart.
        pub const DSTRD: Field<u64> = Field::new("DSTRD", 32, 4);
        /// NVM Subsystem Reset Supported.
        pub const NSSRS: Field<u64> = Field::new("NSSRS", 36, 1);
        /// Command Sets Supported (bit 0: NVM).
        pub const CSS: Field<u64> = Field::new("CSS", 37, 8);
        /// Boot Partition Support.
        pub const BPS: Field<u64> = Field::new("BPS", 45, 1);
        /// Memory Page Size Minimum: 2 ^ (12 + MPSMIN).
        pub const MPSMIN: Field<u64> = Field::new("MPSMIN", 48, 4);
        /// Memory Page Size Maximum.
        pub const MPSMAX: Field<u64> = Field::new("MPSMAX", 52, 4);
        /// Persistent Memory Region Supported.
        pub const PMRS: Field<u64> = Field::new("PMRS", 56, 1);
        /// Controller Memory Buffer Supported.
        pub const CMBS: Field<u64> = Field::new("CMBS", 57, 1);
        /// CSS bit: the NVM command set.
        pub const CSS_NVM: u64 = 1 << 0;
    }

    /// VS fields (§3.1.2).
    pub mod vs {
        use crate::Field;
        /// Major version.
        pub const MJR: Field<u32> = Field::new("MJR", 16, 16);
        /// Minor version.
        pub const MNR: Field<u32> = Field::new("MNR", 8, 8);
        /// Tertiary version.
        pub const TER: Field<u32> = Field::new("TER", 0, 8);
    }

    /// CC fields (§3.1.5).
    pub mod cc {
        use crate::Field;
        /// Enable.
        pub const EN: Field<u32> = Field::new("EN", 0, 1);
        /// I/O Command Set Selected (0: NVM).
        pub const CSS: Field<u32> = Field::new("CSS", 4, 3);
        /// Memory Page Size: 2 ^ (12 + MPS).
        pub const MPS: Field<u32> = Field::new("MPS", 7, 4);
        /// Arbitration Mechanism Selected.
        pub const AMS: Field<u32> = Field::new("AMS", 11, 3);
        /// Shutdown Notification.
        pub const SHN: Field<u32> = Field::new("SHN", 14, 2);
        /// I/O Submission Queue Entry Size: 2 ^ n (6 for 64 bytes).
        pub const IOSQES: Field<u32> = Field::new("IOSQES", 16, 4);
        /// I/O Completion Queue Entry Size: 2 ^ n (4 for 16 bytes).
        pub const IOCQES: Field<u32> = Field::new("IOCQES", 20, 4);
        /// SHN value: normal shutdown notification.
        pub const SHN_NORMAL: u32 = 0b01;
        /// CSS value: the NVM command set.
        pub const CSS_NVM: u32 = 0b000;
    }

    /// CSTS fields (§3.1.6).
    pub mod csts {
        use crate::Field;
        /// Ready.
        pub const RDY: Field<u32> = Field::new("RDY", 0, 1);
        /// Controller Fatal Status.
        pub const CFS: Field<u32> = Field::new("CFS", 1, 1);
        /// Shutdown Status.
        pub const SHST: Field<u32> = Field::new("SHST", 2, 2);
        /// NVM Subsystem Reset Occurred.
        pub const NSSRO: Field<u32> = Field::new("NSSRO", 4, 1);
        /// Processing Paused.
        pub const PP: Field<u32> = Field::new("PP", 5, 1);
        /// SHST value: shutdown processing complete.
        pub const SHST_COMPLETE: u32 = 0b10;
    }

    /// AQA fields (§3.1.8), both 0's based.
    pub mod aqa {
        use crate::Field;
        /// Admin Submission Queue Size.
        pub const ASQS: Field<u32> = Field::new("ASQS", 0, 12);
        /// Admin Completion Queue Size.
        pub const ACQS: Field<u32> = Field::new("ACQS", 16, 12);
    }

    /// ASQ field (§3.1.9): the page-aligned base of the admin submission queue.
    pub const ASQB: Field<u64> = Field::new("ASQB", 12, 52);
    /// ACQ field (§3.1.10): the page-aligned base of the admin completion queue.
    pub const ACQB: Field<u64> = Field::new("ACQB", 12, 52);

    /// The controller registers from CAP to ACQ (§3.1, Figure 78), each
    /// with its fields. Doorbells, whose offsets depend on CAP.DSTRD, are
    /// named by [`name`].
    pub const LAYOUT: Layout = Layout {
        name: "NVMe controller registers",
        section: "NVMe 1.4 §3.1",
        bytes: ACQ + 8,
        words: &[
            word(
                "CAP",
                CAP,
                8,
                &[
                    cap::MQES.info(),
                    cap::CQR.info(),
                    cap::AMS.info(),
                    cap::TO.info(),
                    cap::DSTRD.info(),
                    cap::NSSRS.info(),
                    cap::CSS.info(),
                    cap::BPS.info(),
                    cap::MPSMIN.info(),
                    cap::MPSMAX.info(),
                    cap::PMRS.info(),
                    cap::CMBS.info(),
                ],
            ),
            word(
                "VS",
                VS,
                4,
                &[vs::TER.info(), vs::MNR.info(), vs::MJR.info()],
            ),
            word("INTMS", INTMS, 4, &[]),
            word("INTMC", INTMC, 4, &[]),
            word(
                "CC",
                CC,
                4,
                &[
                    cc::EN.info(),
                    cc::CSS.info(),
                    cc::MPS.info(),
                    cc::AMS.info(),
                    cc::SHN.info(),
                    cc::IOSQES.info(),
                    cc::IOCQES.info(),
                ],
            ),
            word(
                "CSTS",
                CSTS,
                4,
                &[
                    csts::RDY.info(),
                    csts::CFS.info(),
                    csts::SHST.info(),
                    csts::NSSRO.info(),
                    csts::PP.info(),
                ],
            ),
            word("NSSR", NSSR, 4, &[]),
            word("AQA", AQA, 4, &[aqa::ASQS.info(), aqa::ACQS.info()]),
            word("ASQ", ASQ, 8, &[ASQB.info()]),
            word("ACQ", ACQ, 8, &[ACQB.info()]),
        ],
    };

    /// Bytes between two doorbells: `4 << CAP.DSTRD` (§3.1.1, §3.1.24).
    pub const fn doorbell_stride(dstrd: u32) -> usize {
        4 << dstrd
    }

    /// Offset of the submission queue `qid` tail doorbell.
    pub const fn sq_tail_doorbell(qid: u16, dstrd: u32) -> usize {
        DOORBELL_BASE + (2 * qid as usize) * doorbell_stride(dstrd)
    }

    /// Offset of the completion queue `qid` head doorbell.
    pub const fn cq_head_doorbell(qid: u16, dstrd: u32) -> usize {
        DOORBELL_BASE + (2 * qid as usize + 1) * doorbell_stride(dstrd)
    }

    /// The name of a register offset, for a trace decoder: printing it
    /// allocates nothing.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RegName {
        /// A register of [`LAYOUT`] (its first byte).
        Register(&'static str),
        /// The upper dword of a 64-bit register (CAP, ASQ, ACQ), which a
        /// 32-bit access reaches at offset + 4.
        Upper(&'static str),
        /// Submission queue tail doorbell of the queue (§3.1.24).
        SqTail(u16),
        /// Completion queue head doorbell of the queue (§3.1.25).
        CqHead(u16),
    }

    impl fmt::Display for RegName {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                RegName::Register(n) => f.write_str(n),
                RegName::Upper(n) => write!(f, "{n} upper dword"),
                RegName::SqTail(q) => write!(f, "SQ{q} tail doorbell"),
                RegName::CqHead(q) => write!(f, "CQ{q} head doorbell"),
            }
        }
    }

    /// The doorbell at `offset` (at least [`DOORBELL_BASE`]) with doorbells
    /// `stride` bytes apart ([`doorbell_stride`]): [`RegName::SqTail`] or
    /// [`RegName::CqHead`] of its queue, in the order of §3.1.24-25 (SQ0
    /// tail, CQ0 head, SQ1 tail, ...); `None` between doorbells or below
    /// the first. What the driver's doorbell offsets encode, decoded: for the
    /// device models and trace decoders.
    #[inline]
    pub fn doorbell(offset: usize, stride: usize) -> Option<RegName> {
        let rel = offset.checked_sub(DOORBELL_BASE)?;
        if stride == 0 || !rel.is_multiple_of(stride) {
            return None;
        }
        let index = rel / stride;
        let qid = u16::try_from(index / 2).ok()?;
        Some(if index.is_multiple_of(2) {
            RegName::SqTail(qid)
        } else {
            RegName::CqHead(qid)
        })
    }

    /// The register at `offset` in BAR0 with doorbells `4 << dstrd` bytes
    /// apart (CAP.DSTRD); `None` for a reserved offset, or one inside a
    /// register or between doorbells.
    pub fn name(offset: usize, dstrd: u32) -> Option<RegName> {
        if offset >= DOORBELL_BASE {
            return doorbell(offset, 4usize.checked_shl(dstrd)?);
        }
        LAYOUT.words.iter().find_map(|w| {
            if w.offset == offset {
                Some(RegName::Register(w.name))
            } else if w.bytes == 8 && w.offset + 4 == offset {
                Some(RegName::Upper(w.name))
            } else {
                None
            }
        })
    }
}

/// Submission queue entry layout (§4.2): 64 bytes, byte offsets.
pub mod sqe {
    use super::word;
    use crate::Layout;

    /// Size of an entry.
    pub const SIZE: usize = 64;
    /// log2 of SIZE, for CC.IOSQES and Identify SQES.
    pub const SIZE_LOG2: u8 = 6;
    /// Command Dword 0.
    pub const CDW0: usize = 0;
    /// Namespace Identifier.
    pub const NSID: usize = 4;
    /// Command Dword 2 (command specific).
    pub const CDW2: usize = 8;
    /// Command Dword 3 (command specific).
    pub const CDW3: usize = 12;
    /// Metadata Pointer.
    pub const MPTR: usize = 16;
    /// PRP Entry 1.
    pub const PRP1: usize = 24;
    /// PRP Entry 2.
    pub const PRP2: usize = 32;
    /// Command Dword 10 (11..15 follow every 4 bytes).
    pub const CDW10: usize = 40;
    /// Command Dword 11.
    pub const CDW11: usize = 44;
    /// Command Dword 12.
    pub const CDW12: usize = 48;
    /// Command Dword 13.
    pub const CDW13: usize = 52;
    /// Command Dword 14.
    pub const CDW14: usize = 56;
    /// Command Dword 15.
    pub const CDW15: usize = 60;

    /// CDW0 fields (§4.2, Figure 105).
    pub mod cdw0 {
        use crate::Field;
        /// Opcode.
        pub const OPC: Field<u32> = Field::new("OPC", 0, 8);
        /// Fused operation.
        pub const FUSE: Field<u32> = Field::new("FUSE", 8, 2);
        /// PRP or SGL for data transfer (0: PRPs).
        pub const PSDT: Field<u32> = Field::new("PSDT", 14, 2);
        /// Command Identifier.
        pub const CID: Field<u32> = Field::new("CID", 16, 16);
    }

    /// Read/Write CDW12 fields (NVM Command Set §6.9, §6.15).
    pub mod rw {
        use crate::Field;
        /// Number of Logical Blocks, 0's based.
        pub const NLB: Field<u32> = Field::new("NLB", 0, 16);
        /// Force Unit Access.
        pub const FUA: Field<u32> = Field::new("FUA", 30, 1);
        /// Limited Retry.
        pub const LR: Field<u32> = Field::new("LR", 31, 1);
    }

    /// The submission queue entry, common command format (§4.2, Figure 104).
    pub const LAYOUT: Layout = Layout {
        name: "NVMe submission queue entry",
        section: "NVMe 1.4 §4.2",
        bytes: SIZE,
        words: &[
            word(
                "CDW0",
                CDW0,
                4,
                &[
                    cdw0::OPC.info(),
                    cdw0::FUSE.info(),
                    cdw0::PSDT.info(),
                    cdw0::CID.info(),
                ],
            ),
            word("NSID", NSID, 4, &[]),
            word("CDW2", CDW2, 4, &[]),
            word("CDW3", CDW3, 4, &[]),
            word("MPTR", MPTR, 8, &[]),
            word("PRP1", PRP1, 8, &[]),
            word("PRP2", PRP2, 8, &[]),
            word("CDW10", CDW10, 4, &[]),
            word("CDW11", CDW11, 4, &[]),
            word("CDW12", CDW12, 4, &[]),
            word("CDW13", CDW13, 4, &[]),
            word("CDW14", CDW14, 4, &[]),
            word("CDW15", CDW15, 4, &[]),
        ],
    };
}

/// Completion queue entry layout (§4.6): 16 bytes, byte offsets.
///
/// The spec names DW2 and DW3 as four 16-bit words (SQHD, SQID, CID and the
/// status field with the phase tag); the driver reads them as the two
/// dwords, DW3 with one acquire load, so the fields exist both ways: the
/// 16-bit [`status`](cqe::status) word, and [`dw2`](cqe::dw2) / [`dw3`](cqe::dw3) of the dwords, the latter
/// derived from the former so they cannot disagree.
pub mod cqe {
    use super::word;
    use crate::Layout;

    /// Size of an entry.
    pub const SIZE: usize = 16;
    /// log2 of SIZE, for CC.IOCQES and Identify CQES.
    pub const SIZE_LOG2: u8 = 4;
    /// Dword 0: command specific result.
    pub const DW0: usize = 0;
    /// Dword 1: command specific result (reserved for most commands).
    pub const DW1: usize = 4;
    /// Dword 2: SQ head pointer (bits 0-15) and SQ identifier (16-31).
    pub const DW2: usize = 8;
    /// Dword 3: command identifier (0-15), phase tag (16), status (17-31).
    pub const DW3: usize = 12;
    /// SQ Head Pointer (16 bits).
    pub const SQHD: usize = 8;
    /// SQ Identifier (16 bits).
    pub const SQID: usize = 10;
    /// Command Identifier (16 bits).
    pub const CID: usize = 12;
    /// Phase tag and Status Field (16 bits).
    pub const STATUS: usize = 14;

    /// The 16-bit word at [`STATUS`]: the Phase Tag (bit 0) and the Status
    /// Field (bits 1-15) (§4.6, Figure 125; §4.6.1, Figure 126).
    pub mod status {
        use crate::Field;
        /// Phase Tag.
        pub const P: Field<u16> = Field::new("P", 0, 1);
        /// Status Code.
        pub const SC: Field<u16> = Field::new("SC", 1, 8);
        /// Status Code Type.
        pub const SCT: Field<u16> = Field::new("SCT", 9, 3);
        /// Command Retry Delay.
        pub const CRD: Field<u16> = Field::new("CRD", 12, 2);
        /// More.
        pub const M: Field<u16> = Field::new("M", 14, 1);
        /// Do Not Retry.
        pub const DNR: Field<u16> = Field::new("DNR", 15, 1);
    }

    /// DW2 fields.
    pub mod dw2 {
        use crate::Field;
        /// SQ Head Pointer.
        pub const SQHD: Field<u32> = Field::new("SQHD", 0, 16);
        /// SQ Identifier.
        pub const SQID: Field<u32> = Field::new("SQID", 16, 16);
    }

    /// DW3 fields: CID in the low half, the [`status`] word in the high.
    pub mod dw3 {
        use super::status;
        use crate::Field;

        /// A status word field moved to its place in DW3.
        const fn up(f: Field<u16>) -> Field<u32> {
            Field::new(f.name, 16 + f.shift, f.width)
        }

        /// Command Identifier.
        pub const CID: Field<u32> = Field::new("CID", 0, 16);
        /// Phase Tag.
        pub const P: Field<u32> = up(status::P);
        /// Status Code.
        pub const SC: Field<u32> = up(status::SC);
        /// Status Code Type.
        pub const SCT: Field<u32> = up(status::SCT);
        /// Command Retry Delay.
        pub const CRD: Field<u32> = up(status::CRD);
        /// More.
        pub const M: Field<u32> = up(status::M);
        /// Do Not Retry.
        pub const DNR: Field<u32> = up(status::DNR);
    }

    /// The completion queue entry (§4.6, Figure 125).
    pub const LAYOUT: Layout = Layout {
        name: "NVMe completion queue entry",
        section: "NVMe 1.4 §4.6",
        bytes: SIZE,
        words: &[
            word("DW0", DW0, 4, &[]),
            word("DW1", DW1, 4, &[]),
            word("SQHD", SQHD, 2, &[]),
            word("SQID", SQID, 2, &[]),
            word("CID", CID, 2, &[]),
            word(
                "STATUS",
                STATUS,
                2,
                &[
                    status::P.info(),
                    status::SC.info(),
                    status::SCT.info(),
                    status::CRD.info(),
                    status::M.info(),
                    status::DNR.info(),
                ],
            ),
        ],
    };
}

/// PRP entry (§4.3, Figure 108): a 64-bit page base address and offset.
/// The split depends on CC.MPS; the fields are those of 4 KiB memory pages,
/// the only page size the driver and the model use. Bits 1:0 of the offset
/// are 0 (dword aligned).
pub mod prp {
    use super::word;
    use crate::{Field, Layout};

    /// Offset in the memory page.
    pub const OFFSET: Field<u64> = Field::new("OFFSET", 0, 12);
    /// Page Base Address (bits 63:12).
    pub const PBA: Field<u64> = Field::new("PBA", 12, 52);

    /// A PRP entry.
    pub const LAYOUT: Layout = Layout {
        name: "NVMe PRP entry (4 KiB pages)",
        section: "NVMe 1.4 §4.3",
        bytes: 8,
        words: &[word("PRP", 0, 8, &[OFFSET.info(), PBA.info()])],
    };
}

/// Admin command opcodes (§5), values of CDW0.OPC (a byte of the entry).
pub mod admin {
    /// Delete I/O Submission Queue.
    pub const DELETE_IO_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_IO_SQ: u8 = 0x01;
    /// Get Log Page.
    pub const GET_LOG_PAGE: u8 = 0x02;
    /// Delete I/O Completion Queue.
    pub const DELETE_IO_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_IO_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Abort.
    pub const ABORT: u8 = 0x08;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0a;
}

/// NVM command set I/O opcodes (NVM Command Set §3).
pub mod io {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
}

/// Identify CNS values (§5.15.1).
pub mod cns {
    use crate::Field;
    /// Identify Namespace data structure for NSID.
    pub const NAMESPACE: u32 = 0x00;
    /// Identify Controller data structure.
    pub const CONTROLLER: u32 = 0x01;
    /// Active Namespace ID list (NSIDs greater than NSID).
    pub const ACTIVE_NAMESPACES: u32 = 0x02;
    /// Identify CDW10: the CNS field.
    pub const CNS: Field<u32> = Field::new("CNS", 0, 8);
    /// Size of every Identify data structure in bytes.
    pub const DATA_SIZE: usize = 4096;
    /// NSIDs in one Active Namespace ID list (4-byte entries, 0 ends the list).
    pub const NAMESPACE_LIST_ENTRIES: usize = 1024;
}

/// Feature identifiers (§5.21.1).
pub mod feature {
    use crate::Field;
    /// Number of Queues: CDW11 NSQR (0-15) and NCQR (16-31), 0's based.
    pub const NUMBER_OF_QUEUES: u32 = 0x07;
    /// Set/Get Features CDW10: Feature Identifier.
    pub const FID: Field<u32> = Field::new("FID", 0, 8);
    /// Number of Queues CDW11 and completion DW0: submission queues, 0's based.
    pub const NSQ: Field<u32> = Field::new("NSQR", 0, 16);
    /// Number of Queues CDW11 and completion DW0: completion queues, 0's based.
    pub const NCQ: Field<u32> = Field::new("NCQR", 16, 16);
}

/// Get Log Page command fields and log identifiers (§5.14).
pub mod get_log_page {
    use crate::Field;
    /// CDW10: Log Page Identifier.
    pub const LID: Field<u32> = Field::new("LID", 0, 8);
    /// CDW10: Number of Dwords Lower (with NUMDU, 0's based).
    pub const NUMDL: Field<u32> = Field::new("NUMDL", 16, 16);
    /// CDW11: Number of Dwords Upper.
    pub const NUMDU: Field<u32> = Field::new("NUMDU", 0, 16);
    /// LID value: Error Information log.
    pub const ERROR_INFORMATION: u32 = 0x01;
    /// LID value: SMART / Health Information log.
    pub const SMART_HEALTH: u32 = 0x02;
    /// LID value: Firmware Slot Information log.
    pub const FIRMWARE_SLOT: u32 = 0x03;
}

/// NSID FFFFFFFFh: every namespace (e.g. Flush of all namespaces).
pub const NSID_BROADCAST: u32 = 0xffff_ffff;

/// Create I/O Queue command fields (§5.3, §5.4).
pub mod create_queue {
    use crate::Field;
    /// CDW10: Queue Identifier.
    pub const QID: Field<u32> = Field::new("QID", 0, 16);
    /// CDW10: Queue Size, 0's based.
    pub const QSIZE: Field<u32> = Field::new("QSIZE", 16, 16);
    /// CDW11: Physically Contiguous.
    pub const PC: Field<u32> = Field::new("PC", 0, 1);
    /// CDW11 (create CQ): Interrupts Enabled.
    pub const IEN: Field<u32> = Field::new("IEN", 1, 1);
    /// CDW11 (create CQ): Interrupt Vector.
    pub const IV: Field<u32> = Field::new("IV", 16, 16);
    /// CDW11 (create SQ): Queue Priority.
    pub const QPRIO: Field<u32> = Field::new("QPRIO", 1, 2);
    /// CDW11 (create SQ): Completion Queue Identifier.
    pub const CQID: Field<u32> = Field::new("CQID", 16, 16);
}

/// Identify Controller data structure offsets (§5.15.2.2), 4096 bytes.
pub mod id_ctrl {
    use super::{reg, word};
    use crate::{Field, Layout};

    /// PCI Vendor ID (2 bytes).
    pub const VID: usize = 0;
    /// PCI Subsystem Vendor ID (2 bytes).
    pub const SSVID: usize = 2;
    /// Serial Number (20 ASCII bytes, space padded).
    pub const SN: core::ops::Range<usize> = 4..24;
    /// Model Number (40 ASCII bytes).
    pub const MN: core::ops::Range<usize> = 24..64;
    /// Firmware Revision (8 ASCII bytes).
    pub const FR: core::ops::Range<usize> = 64..72;
    /// Maximum Data Transfer Size: 2 ^ MDTS units of CAP.MPSMIN; 0: no limit.
    pub const MDTS: usize = 77;
    /// Controller ID (2 bytes).
    pub const CNTLID: usize = 78;
    /// Version (4 bytes), fields as in the VS register.
    pub const VER: usize = 80;
    /// Controller Type (1: I/O controller).
    pub const CNTRLTYPE: usize = 111;
    /// Abort Command Limit, 0's based.
    pub const ACL: usize = 258;
    /// Asynchronous Event Request Limit, 0's based.
    pub const AERL: usize = 259;
    /// Submission Queue Entry Size: required (bits 0-3) and maximum (4-7), log2.
    pub const SQES: usize = 512;
    /// Completion Queue Entry Size.
    pub const CQES: usize = 513;
    /// Maximum Outstanding Commands (2 bytes).
    pub const MAXCMD: usize = 514;
    /// Number of Namespaces (4 bytes): the largest valid NSID.
    pub const NN: usize = 516;
    /// Optional NVM Command Support (2 bytes).
    pub const ONCS: usize = 520;
    /// Volatile Write Cache (bit 0: present).
    pub const VWC: usize = 525;
    /// SQES/CQES nibble: required (minimum) entry size, log2.
    pub const ENTRY_SIZE_MIN: Field<u8> = Field::new("MIN", 0, 4);
    /// SQES/CQES nibble: maximum entry size, log2.
    pub const ENTRY_SIZE_MAX: Field<u8> = Field::new("MAX", 4, 4);
    /// VWC: a volatile write cache is present.
    pub const VWC_PRESENT: Field<u8> = Field::new("PRESENT", 0, 1);

    /// The Identify Controller fields the driver and the model use
    /// (§5.15.2.2, Figure 247). The ASCII strings SN, MN and FR are byte
    /// ranges, not words, and are named by [`SN`], [`MN`], [`FR`] only.
    pub const LAYOUT: Layout = Layout {
        name: "NVMe Identify Controller data structure",
        section: "NVMe 1.4 §5.15.2.2",
        bytes: super::cns::DATA_SIZE,
        words: &[
            word("VID", VID, 2, &[]),
            word("SSVID", SSVID, 2, &[]),
            word("MDTS", MDTS, 1, &[]),
            word("CNTLID", CNTLID, 2, &[]),
            word(
                "VER",
                VER,
                4,
                &[
                    reg::vs::TER.info(),
                    reg::vs::MNR.info(),
                    reg::vs::MJR.info(),
                ],
            ),
            word("CNTRLTYPE", CNTRLTYPE, 1, &[]),
            word("ACL", ACL, 1, &[]),
            word("AERL", AERL, 1, &[]),
            word(
                "SQES",
                SQES,
                1,
                &[ENTRY_SIZE_MIN.info(), ENTRY_SIZE_MAX.info()],
            ),
            word(
                "CQES",
                CQES,
                1,
                &[ENTRY_SIZE_MIN.info(), ENTRY_SIZE_MAX.info()],
            ),
            word("MAXCMD", MAXCMD, 2, &[]),
            word("NN", NN, 4, &[]),
            word("ONCS", ONCS, 2, &[]),
            word("VWC", VWC, 1, &[VWC_PRESENT.info()]),
        ],
    };
}

/// Identify Namespace data structure offsets (NVM Command Set §4.1.5.1).
pub mod id_ns {
    use super::word;
    use crate::{Field, Layout};

    /// Namespace Size in logical blocks (8 bytes).
    pub const NSZE: usize = 0;
    /// Namespace Capacity (8 bytes).
    pub const NCAP: usize = 8;
    /// Namespace Utilization (8 bytes).
    pub const NUSE: usize = 16;
    /// Number of LBA Formats, 0's based.
    pub const NLBAF: usize = 25;
    /// Formatted LBA Size: bits 0-3 index the LBA format in use.
    pub const FLBAS: usize = 26;
    /// First LBA Format entry; entry `i` is at `LBAF0 + 4 * i`: metadata size
    /// (bits 0-15), LBA data size as log2 (bits 16-23), relative performance (24-25).
    pub const LBAF0: usize = 128;
    /// FLBAS: index of the LBA format in use (bits 0-3).
    pub const FLBAS_INDEX: Field<u8> = Field::new("INDEX", 0, 4);
    /// FLBAS: metadata transferred at the end of the data LBA (extended LBA).
    pub const FLBAS_EXTENDED: Field<u8> = Field::new("EXTENDED", 4, 1);
    /// FLBAS bits 6:5: the upper two bits of the format index when NLBAF
    /// exceeds 16 (NVMe 2.0 NVM Command Set §4.1.5.1; reserved in 1.4).
    pub const FLBAS_INDEX_HIGH: Field<u8> = Field::new("INDEX_HIGH", 5, 2);
    /// LBA format entry: Metadata Size in bytes.
    pub const LBAF_MS: Field<u32> = Field::new("MS", 0, 16);
    /// LBA format entry: LBA Data Size, log2 (a value below 9 means unused).
    pub const LBAF_LBADS: Field<u32> = Field::new("LBADS", 16, 8);
    /// LBA format entry: Relative Performance.
    pub const LBAF_RP: Field<u32> = Field::new("RP", 24, 2);

    /// The Identify Namespace fields the driver and the model use, with
    /// the first LBA format entry (the others follow every 4 bytes).
    pub const LAYOUT: Layout = Layout {
        name: "NVMe Identify Namespace data structure",
        section: "NVMe 1.4 §5.15.2.1",
        bytes: super::cns::DATA_SIZE,
        words: &[
            word("NSZE", NSZE, 8, &[]),
            word("NCAP", NCAP, 8, &[]),
            word("NUSE", NUSE, 8, &[]),
            word("NLBAF", NLBAF, 1, &[]),
            word(
                "FLBAS",
                FLBAS,
                1,
                &[
                    FLBAS_INDEX.info(),
                    FLBAS_EXTENDED.info(),
                    FLBAS_INDEX_HIGH.info(),
                ],
            ),
            word(
                "LBAF0",
                LBAF0,
                4,
                &[LBAF_MS.info(), LBAF_LBADS.info(), LBAF_RP.info()],
            ),
        ],
    };
}

/// Every layout of this module, for a decoder that lists them.
pub const LAYOUTS: &[&Layout] = &[
    &reg::LAYOUT,
    &sqe::LAYOUT,
    &cqe::LAYOUT,
    &prp::LAYOUT,
    &id_ctrl::LAYOUT,
    &id_ns::LAYOUT,
];

/// Status Code Types (§4.6.1.2), values of the status word's SCT.
pub mod sct {
    /// Generic Command Status.
    pub const GENERIC: u8 = 0;
    /// Command Specific Status.
    pub const COMMAND_SPECIFIC: u8 = 1;
    /// Media and Data Integrity Errors.
    pub const MEDIA: u8 = 2;
    /// Path Related Status.
    pub const PATH: u8 = 3;
    /// Vendor Specific.
    pub const VENDOR: u8 = 7;
}

/// Generic status codes (§4.6.1.2.1).
pub mod sc_generic {
    /// Successful Completion.
    pub const SUCCESS: u8 = 0x00;
    /// Invalid Command Opcode.
    pub const INVALID_OPCODE: u8 = 0x01;
    /// Invalid Field in Command.
    pub const INVALID_FIELD: u8 = 0x02;
    /// Command ID Conflict.
    pub const CID_CONFLICT: u8 = 0x03;
    /// Data Transfer Error.
    pub const DATA_TRANSFER_ERROR: u8 = 0x04;
    /// Internal Error.
    pub const INTERNAL_ERROR: u8 = 0x06;
    /// Command Aborted due to Power Loss Notification.
    pub const POWER_LOSS_ABORT: u8 = 0x05;
    /// Command Abort Requested.
    pub const ABORT_REQUESTED: u8 = 0x07;
    /// Command Aborted due to SQ Deletion.
    pub const ABORT_SQ_DELETION: u8 = 0x08;
    /// Invalid Namespace or Format.
    pub const INVALID_NAMESPACE: u8 = 0x0b;
    /// Command Sequence Error.
    pub const COMMAND_SEQUENCE_ERROR: u8 = 0x0c;
    /// PRP Offset Invalid.
    pub const PRP_OFFSET_INVALID: u8 = 0x13;
    /// LBA Out of Range.
    pub const LBA_OUT_OF_RANGE: u8 = 0x80;
    /// Capacity Exceeded.
    pub const CAPACITY_EXCEEDED: u8 = 0x81;
    /// Namespace Not Ready.
    pub const NAMESPACE_NOT_READY: u8 = 0x82;
}

/// Command specific status codes (§4.6.1.2.2).
pub mod sc_command {
    /// Completion Queue Invalid.
    pub const COMPLETION_QUEUE_INVALID: u8 = 0x00;
    /// Invalid Queue Identifier.
    pub const INVALID_QUEUE_IDENTIFIER: u8 = 0x01;
    /// Invalid Queue Size.
    pub const INVALID_QUEUE_SIZE: u8 = 0x02;
    /// Abort Command Limit Exceeded.
    pub const ABORT_LIMIT_EXCEEDED: u8 = 0x03;
    /// Invalid Interrupt Vector.
    pub const INVALID_INTERRUPT_VECTOR: u8 = 0x08;
    /// Invalid Queue Deletion.
    pub const INVALID_QUEUE_DELETION: u8 = 0x0c;
    /// Invalid Log Page.
    pub const INVALID_LOG_PAGE: u8 = 0x09;
    /// Feature Not Changeable.
    pub const FEATURE_NOT_CHANGEABLE: u8 = 0x0e;
    /// Conflicting Attributes (NVM command set I/O commands).
    pub const CONFLICTING_ATTRIBUTES: u8 = 0x80;
    /// Invalid Protection Information (NVM command set I/O commands).
    pub const INVALID_PROTECTION_INFORMATION: u8 = 0x81;
    /// Attempted Write to Read Only Range (NVM command set I/O commands).
    pub const WRITE_TO_READ_ONLY_RANGE: u8 = 0x82;
}

/// Media error status codes (§4.6.1.2.3).
pub mod sc_media {
    /// Write Fault.
    pub const WRITE_FAULT: u8 = 0x80;
    /// Unrecovered Read Error.
    pub const UNRECOVERED_READ_ERROR: u8 = 0x81;
    /// End-to-end Guard Check Error.
    pub const GUARD_CHECK_ERROR: u8 = 0x82;
    /// End-to-end Application Tag Check Error.
    pub const APPLICATION_TAG_CHECK_ERROR: u8 = 0x83;
    /// End-to-end Reference Tag Check Error.
    pub const REFERENCE_TAG_CHECK_ERROR: u8 = 0x84;
    /// Compare Failure.
    pub const COMPARE_FAILURE: u8 = 0x85;
    /// Access Denied.
    pub const ACCESS_DENIED: u8 = 0x86;
    /// Deallocated or Unwritten Logical Block.
    pub const DEALLOCATED_OR_UNWRITTEN: u8 = 0x87;
}

/// The specification's name of status code `sc` of type `sct` (§4.6.1.2,
/// Figures 127-130), for the codes named in this module; `None` for others.
pub const fn status_name(sct: u8, sc: u8) -> Option<&'static str> {
    use sc_command as c;
    use sc_generic as g;
    use sc_media as m;
    Some(match (sct, sc) {
        (sct::GENERIC, g::SUCCESS) => "Successful Completion",
        (sct::GENERIC, g::INVALID_OPCODE) => "Invalid Command Opcode",
        (sct::GENERIC, g::INVALID_FIELD) => "Invalid Field in Command",
        (sct::GENERIC, g::CID_CONFLICT) => "Command ID Conflict",
        (sct::GENERIC, g::DATA_TRANSFER_ERROR) => "Data Transfer Error",
        (sct::GENERIC, g::POWER_LOSS_ABORT) => "Commands Aborted due to Power Loss Notification",
        (sct::GENERIC, g::INTERNAL_ERROR) => "Internal Error",
        (sct::GENERIC, g::ABORT_REQUESTED) => "Command Abort Requested",
        (sct::GENERIC, g::ABORT_SQ_DELETION) => "Command Aborted due to SQ Deletion",
        (sct::GENERIC, g::INVALID_NAMESPACE) => "Invalid Namespace or Format",
        (sct::GENERIC, g::COMMAND_SEQUENCE_ERROR) => "Command Sequence Error",
        (sct::GENERIC, g::PRP_OFFSET_INVALID) => "PRP Offset Invalid",
        (sct::GENERIC, g::LBA_OUT_OF_RANGE) => "LBA Out of Range",
        (sct::GENERIC, g::CAPACITY_EXCEEDED) => "Capacity Exceeded",
        (sct::GENERIC, g::NAMESPACE_NOT_READY) => "Namespace Not Ready",
        (sct::COMMAND_SPECIFIC, c::COMPLETION_QUEUE_INVALID) => "Completion Queue Invalid",
        (sct::COMMAND_SPECIFIC, c::INVALID_QUEUE_IDENTIFIER) => "Invalid Queue Identifier",
        (sct::COMMAND_SPECIFIC, c::INVALID_QUEUE_SIZE) => "Invalid Queue Size",
        (sct::COMMAND_SPECIFIC, c::ABORT_LIMIT_EXCEEDED) => "Abort Command Limit Exceeded",
        (sct::COMMAND_SPECIFIC, c::INVALID_INTERRUPT_VECTOR) => "Invalid Interrupt Vector",
        (sct::COMMAND_SPECIFIC, c::INVALID_LOG_PAGE) => "Invalid Log Page",
        (sct::COMMAND_SPECIFIC, c::INVALID_QUEUE_DELETION) => "Invalid Queue Deletion",
        (sct::COMMAND_SPECIFIC, c::FEATURE_NOT_CHANGEABLE) => "Feature Not Changeable",
        (sct::COMMAND_SPECIFIC, c::CONFLICTING_ATTRIBUTES) => "Conflicting Attributes",
        (sct::COMMAND_SPECIFIC, c::INVALID_PROTECTION_INFORMATION) => {
            "Invalid Protection Information"
        }
        (sct::COMMAND_SPECIFIC, c::WRITE_TO_READ_ONLY_RANGE) => {
            "Attempted Write to Read Only Range"
        }
        (sct::MEDIA, m::WRITE_FAULT) => "Write Fault",
        (sct::MEDIA, m::UNRECOVERED_READ_ERROR) => "Unrecovered Read Error",
        (sct::MEDIA, m::GUARD_CHECK_ERROR) => "End-to-end Guard Check Error",
        (sct::MEDIA, m::APPLICATION_TAG_CHECK_ERROR) => "End-to-end Application Tag Check Error",
        (sct::MEDIA, m::REFERENCE_TAG_CHECK_ERROR) => "End-to-end Reference Tag Check Error",
        (sct::MEDIA, m::COMPARE_FAILURE) => "Compare Failure",
        (sct::MEDIA, m::ACCESS_DENIED) => "Access Denied",
        (sct::MEDIA, m::DEALLOCATED_OR_UNWRITTEN) => "Deallocated or Unwritten Logical Block",
        _ => return None,
    })
}

/// PCI identity of NVMe controllers: class code 01h/08h/02h (mass storage,
/// non-volatile memory, NVM Express).
pub const PCI_CLASS_NVME: u32 = 0x01_08_02;

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn fields_get_and_set() {
        let cap = reg::cap::MQES.set(0, 1023);
        let cap = reg::cap::TO.set(cap, 20);
        let cap = reg::cap::DSTRD.set(cap, 2);
        assert_eq!(cap, 1023 | (20 << 24) | (2 << 32));
        assert_eq!(reg::cap::MQES.get(cap), 1023);
        assert_eq!(reg::cap::TO.get(cap), 20);
        assert_eq!(reg::cap::DSTRD.get(cap), 2);
        // Excess bits are dropped, neighbours untouched.
        assert_eq!(reg::csts::SHST.set(0b1, 0b111), 0b1101);
    }

    #[test]
    fn doorbells_follow_the_stride() {
        assert_eq!(reg::sq_tail_doorbell(0, 0), 0x1000);
        assert_eq!(reg::cq_head_doorbell(0, 0), 0x1004);
        assert_eq!(reg::sq_tail_doorbell(1, 0), 0x1008);
        assert_eq!(reg::cq_head_doorbell(3, 2), 0x1000 + 7 * 16);
    }

    #[test]
    fn layouts_are_well_formed() {
        for l in LAYOUTS {
            assert!(l.section.starts_with("NVMe 1.4 §"), "{}", l.name);
            let mut end = 0;
            for w in l.words {
                assert!([1, 2, 4, 8].contains(&w.bytes), "{} {}", l.name, w.name);
                assert!(
                    w.offset >= end,
                    "{} {}: unsorted or overlapping",
                    l.name,
                    w.name
                );
                assert!(
                    w.offset.is_multiple_of(w.bytes),
                    "{} {}: unaligned",
                    l.name,
                    w.name
                );
                end = w.offset + w.bytes;
                assert!(end <= l.bytes, "{} {}: past the end", l.name, w.name);
                let mut used = 0u64;
                let mut last_shift = None;
                for f in w.fields {
                    assert!(f.width >= 1, "{} {}", w.name, f.name);
                    assert!(
                        f.shift + f.width <= 8 * w.bytes as u32,
                        "{} {} outside its word",
                        w.name,
                        f.name
                    );
                    assert!(last_shift < Some(f.shift), "{} {} unsorted", w.name, f.name);
                    last_shift = Some(f.shift);
                    let mask = f.get(u64::MAX) << f.shift;
                    assert_eq!(used & mask, 0, "{} {} overlaps", w.name, f.name);
                    used |= mask;
                }
            }
        }
    }

    /// The field `name` of word `word` of `layout` decoded from `data`.
    fn decode(layout: &Layout, data: &[u8], word: &str, name: &str) -> u64 {
        let w = layout.words.iter().find(|w| w.name == word).unwrap();
        let v = w.read(data).unwrap();
        if name.is_empty() {
            return v;
        }
        w.fields.iter().find(|f| f.name == name).unwrap().get(v)
    }

    #[test]
    fn a_submission_entry_decodes_through_its_layout() {
        let mut e = [0u8; sqe::SIZE];
        let cdw0 = sqe::cdw0::OPC.value(u32::from(io::READ))
            | sqe::cdw0::FUSE.value(0)
            | sqe::cdw0::PSDT.value(0)
            | sqe::cdw0::CID.value(0xbeef);
        e[0..4].copy_from_slice(&cdw0.to_le_bytes());
        e[4..8].copy_from_slice(&7u32.to_le_bytes());
        e[24..32].copy_from_slice(&0x1_2345_6000u64.to_le_bytes());
        e[32..40].copy_from_slice(&0x2_0000_0000u64.to_le_bytes());
        e[40..44].copy_from_slice(&0x100u32.to_le_bytes());
        e[48..52].copy_from_slice(&sqe::rw::NLB.value(15).to_le_bytes());
        let l = &sqe::LAYOUT;
        assert_eq!(decode(l, &e, "CDW0", "OPC"), 0x02);
        assert_eq!(decode(l, &e, "CDW0", "CID"), 0xbeef);
        assert_eq!(decode(l, &e, "CDW0", "PSDT"), 0);
        assert_eq!(decode(l, &e, "NSID", ""), 7);
        assert_eq!(decode(l, &e, "PRP1", ""), 0x1_2345_6000);
        assert_eq!(decode(l, &e, "PRP2", ""), 0x2_0000_0000);
        assert_eq!(decode(l, &e, "CDW10", ""), 0x100);
        assert_eq!(decode(l, &e, "CDW12", ""), 15);
        assert_eq!(decode(l, &e, "CDW15", ""), 0);
    }

    #[test]
    fn a_completion_entry_decodes_through_its_layout() {
        // DW0 0x11223344, SQ head 5 of SQ 2, CID 0x1234, phase 1, SCT 2
        // (media) SC 0x81, More and DNR set: as a controller writes it.
        let e: [u8; cqe::SIZE] = [
            0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 5, 0, 2, 0, 0x34, 0x12, 0x03, 0xc5,
        ];
        let l = &cqe::LAYOUT;
        assert_eq!(decode(l, &e, "DW0", ""), 0x1122_3344);
        assert_eq!(decode(l, &e, "DW1", ""), 0);
        assert_eq!(decode(l, &e, "SQHD", ""), 5);
        assert_eq!(decode(l, &e, "SQID", ""), 2);
        assert_eq!(decode(l, &e, "CID", ""), 0x1234);
        assert_eq!(decode(l, &e, "STATUS", "P"), 1);
        assert_eq!(decode(l, &e, "STATUS", "SC"), 0x81);
        assert_eq!(decode(l, &e, "STATUS", "SCT"), u64::from(sct::MEDIA));
        assert_eq!(decode(l, &e, "STATUS", "CRD"), 0);
        assert_eq!(decode(l, &e, "STATUS", "M"), 1);
        assert_eq!(decode(l, &e, "STATUS", "DNR"), 1);
        // The dword fields the driver uses read the same entry the same way.
        let dw2 = u32::from_le_bytes(e[cqe::DW2..cqe::DW2 + 4].try_into().unwrap());
        let dw3 = u32::from_le_bytes(e[cqe::DW3..cqe::DW3 + 4].try_into().unwrap());
        assert_eq!((cqe::dw2::SQHD.get(dw2), cqe::dw2::SQID.get(dw2)), (5, 2));
        assert_eq!(cqe::dw3::CID.get(dw3), 0x1234);
        assert!(cqe::dw3::P.is_set(dw3) && cqe::dw3::M.is_set(dw3));
        assert!(cqe::dw3::DNR.is_set(dw3));
        assert_eq!(cqe::dw3::SC.get(dw3), 0x81);
        assert_eq!(cqe::dw3::SCT.get(dw3), 2);
        assert_eq!(
            status_name(sct::MEDIA, 0x81),
            Some("Unrecovered Read Error")
        );
    }

    #[test]
    fn a_prp_entry_splits_into_page_and_offset() {
        let e = 0x1_2345_6208u64.to_le_bytes();
        assert_eq!(decode(&prp::LAYOUT, &e, "PRP", "PBA"), 0x12_3456);
        assert_eq!(decode(&prp::LAYOUT, &e, "PRP", "OFFSET"), 0x208);
    }

    /// `reg::name` printed into a fixed buffer (no allocation in no_std).
    fn named(offset: usize, dstrd: u32) -> Option<Buf> {
        let mut b = Buf([0; 32], 0);
        write!(b, "{}", reg::name(offset, dstrd)?).unwrap();
        Some(b)
    }

    struct Buf([u8; 32], usize);

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }

    impl PartialEq<&str> for Buf {
        fn eq(&self, other: &&str) -> bool {
            &self.0[..self.1] == other.as_bytes()
        }
    }

    impl core::fmt::Debug for Buf {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str(core::str::from_utf8(&self.0[..self.1]).unwrap())
        }
    }

    #[test]
    fn registers_and_doorbells_are_named() {
        assert_eq!(named(reg::CC, 0).unwrap(), "CC");
        assert_eq!(named(reg::CSTS, 0).unwrap(), "CSTS");
        assert_eq!(named(reg::CAP, 3).unwrap(), "CAP");
        assert_eq!(named(reg::ASQ + 4, 0).unwrap(), "ASQ upper dword");
        assert!(named(reg::CC + 1, 0).is_none(), "inside a register");
        assert!(named(0x18, 0).is_none(), "reserved");
        assert_eq!(named(0x1000, 0).unwrap(), "SQ0 tail doorbell");
        assert_eq!(named(0x1004, 0).unwrap(), "CQ0 head doorbell");
        assert_eq!(named(0x1008, 0).unwrap(), "SQ1 tail doorbell");
        // Stride 16 bytes (DSTRD 2): 0x1010 is CQ0, 0x1004 is between doorbells.
        assert_eq!(named(0x1010, 2).unwrap(), "CQ0 head doorbell");
        assert_eq!(named(0x1020, 2).unwrap(), "SQ1 tail doorbell");
        assert_eq!(
            named(reg::cq_head_doorbell(3, 2), 2).unwrap(),
            "CQ3 head doorbell"
        );
        assert!(named(0x1004, 2).is_none());
        assert_eq!(
            reg::name(reg::sq_tail_doorbell(65535, 1), 1),
            Some(reg::RegName::SqTail(65535))
        );
        assert_eq!(reg::name(reg::sq_tail_doorbell(65535, 0) + 8, 0), None);
        // The decoder the device models use, by stride in bytes.
        let stride = reg::doorbell_stride(1);
        assert_eq!(
            reg::doorbell(reg::cq_head_doorbell(5, 1), stride),
            Some(reg::RegName::CqHead(5))
        );
        assert_eq!(reg::doorbell(reg::sq_tail_doorbell(5, 1) + 4, stride), None);
        assert_eq!(reg::doorbell(reg::DOORBELL_BASE - 4, stride), None);
        assert_eq!(reg::doorbell(reg::DOORBELL_BASE, 0), None);
    }
}
