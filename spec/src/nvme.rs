//! The NVMe register map, command and completion layouts, opcodes and status
//! codes: every number the NVMe driver and the emulated controller share,
//! named once. Section numbers are from the NVM Express Base Specification
//! 1.4 (register and queue layouts are unchanged in 2.0).

use crate::RawField;

/// Controller registers in BAR0 (§3.1).
pub mod reg {
    use super::RawField;

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

    /// VS fields (§3.1.2).
    pub mod vs {
        use super::RawField;
        /// Major version.
        pub const MJR: RawField = RawField::new(16, 16);
        /// Minor version.
        pub const MNR: RawField = RawField::new(8, 8);
        /// Tertiary version.
        pub const TER: RawField = RawField::new(0, 8);
    }

    /// CAP fields (§3.1.1).
    pub mod cap {
        use super::RawField;
        /// Maximum Queue Entries Supported, 0's based.
        pub const MQES: RawField = RawField::new(0, 16);
        /// Contiguous Queues Required.
        pub const CQR: RawField = RawField::new(16, 1);
        /// Timeout for CSTS.RDY changes, in 500 ms units.
        pub const TO: RawField = RawField::new(24, 8);
        /// Doorbell Stride: doorbells are `4 << DSTRD` bytes apart.
        pub const DSTRD: RawField = RawField::new(32, 4);
        /// Command Sets Supported (bit 0: NVM).
        pub const CSS: RawField = RawField::new(37, 8);
        /// Memory Page Size Minimum: 2 ^ (12 + MPSMIN).
        pub const MPSMIN: RawField = RawField::new(48, 4);
        /// Memory Page Size Maximum.
        pub const MPSMAX: RawField = RawField::new(52, 4);
        /// CSS bit: the NVM command set.
        pub const CSS_NVM: u64 = 1 << 0;
    }

    /// CC fields (§3.1.5).
    pub mod cc {
        use super::RawField;
        /// Enable.
        pub const EN: RawField = RawField::new(0, 1);
        /// I/O Command Set Selected (0: NVM).
        pub const CSS: RawField = RawField::new(4, 3);
        /// Memory Page Size: 2 ^ (12 + MPS).
        pub const MPS: RawField = RawField::new(7, 4);
        /// Arbitration Mechanism Selected.
        pub const AMS: RawField = RawField::new(11, 3);
        /// Shutdown Notification.
        pub const SHN: RawField = RawField::new(14, 2);
        /// I/O Submission Queue Entry Size: 2 ^ n (6 for 64 bytes).
        pub const IOSQES: RawField = RawField::new(16, 4);
        /// I/O Completion Queue Entry Size: 2 ^ n (4 for 16 bytes).
        pub const IOCQES: RawField = RawField::new(20, 4);
        /// SHN value: normal shutdown notification.
        pub const SHN_NORMAL: u64 = 0b01;
        /// CSS value: the NVM command set.
        pub const CSS_NVM: u64 = 0b000;
    }

    /// CSTS fields (§3.1.6).
    pub mod csts {
        use super::RawField;
        /// Ready.
        pub const RDY: RawField = RawField::new(0, 1);
        /// Controller Fatal Status.
        pub const CFS: RawField = RawField::new(1, 1);
        /// Shutdown Status.
        pub const SHST: RawField = RawField::new(2, 2);
        /// SHST value: shutdown processing complete.
        pub const SHST_COMPLETE: u64 = 0b10;
    }

    /// AQA fields (§3.1.8), both 0's based.
    pub mod aqa {
        use super::RawField;
        /// Admin Submission Queue Size.
        pub const ASQS: RawField = RawField::new(0, 12);
        /// Admin Completion Queue Size.
        pub const ACQS: RawField = RawField::new(16, 12);
    }

    /// Offset of the submission queue `qid` tail doorbell.
    pub const fn sq_tail_doorbell(qid: u16, dstrd: u32) -> usize {
        DOORBELL_BASE + (2 * qid as usize) * (4 << dstrd)
    }

    /// Offset of the completion queue `qid` head doorbell.
    pub const fn cq_head_doorbell(qid: u16, dstrd: u32) -> usize {
        DOORBELL_BASE + (2 * qid as usize + 1) * (4 << dstrd)
    }
}

/// Submission queue entry layout (§4.2): 64 bytes, byte offsets.
pub mod sqe {
    /// Size of an entry.
    pub const SIZE: usize = 64;
    /// log2 of SIZE, for CC.IOSQES.
    pub const SIZE_LOG2: u64 = 6;
    /// Command Dword 0.
    pub const CDW0: usize = 0;
    /// Namespace Identifier.
    pub const NSID: usize = 4;
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

    /// CDW0 fields.
    pub mod cdw0 {
        use crate::RawField;
        /// Opcode.
        pub const OPC: RawField = RawField::new(0, 8);
        /// Fused operation.
        pub const FUSE: RawField = RawField::new(8, 2);
        /// PRP or SGL for data transfer (0: PRPs).
        pub const PSDT: RawField = RawField::new(14, 2);
        /// Command Identifier.
        pub const CID: RawField = RawField::new(16, 16);
    }

    /// Read/Write CDW12 fields (NVM Command Set §6.9, §6.15).
    pub mod rw {
        use crate::RawField;
        /// Number of Logical Blocks, 0's based.
        pub const NLB: RawField = RawField::new(0, 16);
        /// Force Unit Access.
        pub const FUA: RawField = RawField::new(30, 1);
    }
}

/// Completion queue entry layout (§4.6): 16 bytes, byte offsets.
pub mod cqe {
    use super::RawField;
    /// Size of an entry.
    pub const SIZE: usize = 16;
    /// log2 of SIZE, for CC.IOCQES.
    pub const SIZE_LOG2: u64 = 4;
    /// Dword 0: command specific result.
    pub const DW0: usize = 0;
    /// Dword 2: SQ head pointer (bits 0-15) and SQ identifier (16-31).
    pub const DW2: usize = 8;
    /// Dword 3: command identifier (0-15), phase tag (16), status (17-31).
    pub const DW3: usize = 12;

    /// DW2 fields.
    pub mod dw2 {
        use super::RawField;
        /// SQ Head Pointer.
        pub const SQHD: RawField = RawField::new(0, 16);
        /// SQ Identifier.
        pub const SQID: RawField = RawField::new(16, 16);
    }

    /// DW3 fields.
    pub mod dw3 {
        use super::RawField;
        /// Command Identifier.
        pub const CID: RawField = RawField::new(0, 16);
        /// Phase Tag.
        pub const P: RawField = RawField::new(16, 1);
        /// Status Code.
        pub const SC: RawField = RawField::new(17, 8);
        /// Status Code Type.
        pub const SCT: RawField = RawField::new(25, 3);
        /// Command Retry Delay.
        pub const CRD: RawField = RawField::new(28, 2);
        /// More.
        pub const M: RawField = RawField::new(30, 1);
        /// Do Not Retry.
        pub const DNR: RawField = RawField::new(31, 1);
    }
}

/// Admin command opcodes (§5).
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
    /// Identify Namespace data structure for NSID.
    pub const NAMESPACE: u32 = 0x00;
    /// Identify Controller data structure.
    pub const CONTROLLER: u32 = 0x01;
    /// Active Namespace ID list (NSIDs greater than NSID).
    pub const ACTIVE_NAMESPACES: u32 = 0x02;
    /// Identify CDW10: the CNS field.
    pub const CNS: crate::RawField = crate::RawField::new(0, 8);
    /// Size of every Identify data structure in bytes.
    pub const DATA_SIZE: usize = 4096;
    /// NSIDs in one Active Namespace ID list (4-byte entries, 0 ends the list).
    pub const NAMESPACE_LIST_ENTRIES: usize = 1024;
}

/// Feature identifiers (§5.21.1).
pub mod feature {
    /// Number of Queues: CDW11 NSQR (0-15) and NCQR (16-31), 0's based.
    pub const NUMBER_OF_QUEUES: u32 = 0x07;
    /// Set/Get Features CDW10: Feature Identifier.
    pub const FID: crate::RawField = crate::RawField::new(0, 8);
    /// Number of Queues CDW11 and completion DW0: submission queues, 0's based.
    pub const NSQ: crate::RawField = crate::RawField::new(0, 16);
    /// Number of Queues CDW11 and completion DW0: completion queues, 0's based.
    pub const NCQ: crate::RawField = crate::RawField::new(16, 16);
}

/// Get Log Page command fields and log identifiers (§5.14).
pub mod get_log_page {
    use super::RawField;
    /// CDW10: Log Page Identifier.
    pub const LID: RawField = RawField::new(0, 8);
    /// CDW10: Number of Dwords Lower (with NUMDU, 0's based).
    pub const NUMDL: RawField = RawField::new(16, 16);
    /// CDW11: Number of Dwords Upper.
    pub const NUMDU: RawField = RawField::new(0, 16);
    /// Error Information log.
    pub const ERROR_INFORMATION: u8 = 0x01;
    /// SMART / Health Information log.
    pub const SMART_HEALTH: u8 = 0x02;
    /// Firmware Slot Information log.
    pub const FIRMWARE_SLOT: u8 = 0x03;
}

/// NSID FFFFFFFFh: every namespace (e.g. Flush of all namespaces).
pub const NSID_BROADCAST: u32 = 0xffff_ffff;

/// Create I/O Queue command fields (§5.3, §5.4).
pub mod create_queue {
    use super::RawField;
    /// CDW10: Queue Identifier.
    pub const QID: RawField = RawField::new(0, 16);
    /// CDW10: Queue Size, 0's based.
    pub const QSIZE: RawField = RawField::new(16, 16);
    /// CDW11: Physically Contiguous.
    pub const PC: RawField = RawField::new(0, 1);
    /// CDW11 (create CQ): Interrupts Enabled.
    pub const IEN: RawField = RawField::new(1, 1);
    /// CDW11 (create CQ): Interrupt Vector.
    pub const IV: RawField = RawField::new(16, 16);
    /// CDW11 (create SQ): Queue Priority.
    pub const QPRIO: RawField = RawField::new(1, 2);
    /// CDW11 (create SQ): Completion Queue Identifier.
    pub const CQID: RawField = RawField::new(16, 16);
}

/// Identify Controller data structure offsets (§5.15.2.2), 4096 bytes.
pub mod id_ctrl {
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
    /// Version (4 bytes).
    pub const VER: usize = 80;
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
    /// Controller Type (1: I/O controller).
    pub const CNTRLTYPE: usize = 111;
    /// Abort Command Limit, 0's based.
    pub const ACL: usize = 258;
    /// Asynchronous Event Request Limit, 0's based.
    pub const AERL: usize = 259;
    /// SQES/CQES nibble: required (minimum) entry size, log2.
    pub const ENTRY_SIZE_MIN: crate::RawField = crate::RawField::new(0, 4);
    /// SQES/CQES nibble: maximum entry size, log2.
    pub const ENTRY_SIZE_MAX: crate::RawField = crate::RawField::new(4, 4);
}

/// Identify Namespace data structure offsets (NVM Command Set §4.1.5.1).
pub mod id_ns {
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
    pub const FLBAS_INDEX: crate::RawField = crate::RawField::new(0, 4);
    /// FLBAS: metadata transferred at the end of the data LBA (extended LBA).
    pub const FLBAS_EXTENDED: crate::RawField = crate::RawField::new(4, 1);
    /// LBA format entry: Metadata Size in bytes.
    pub const LBAF_MS: crate::RawField = crate::RawField::new(0, 16);
    /// LBA format entry: LBA Data Size, log2 (a value below 9 means unused).
    pub const LBAF_LBADS: crate::RawField = crate::RawField::new(16, 8);
}

/// Status Code Types (§4.6.1.2).
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

/// PCI identity of NVMe controllers: class code 01h/08h/02h (mass storage,
/// non-volatile memory, NVM Express).
pub const PCI_CLASS_NVME: u32 = 0x01_08_02;

#[cfg(test)]
mod tests {
    use super::*;

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
}
