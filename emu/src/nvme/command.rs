//! A fetched submission queue entry, and the status a command completes with.
#![forbid(unsafe_code)]

use spec::nvme::{cqe, sc_command, sc_generic, sct, sqe};

/// A submission queue entry (NVMe 1.4 §4.2), copied out of the queue in one
/// DMA read. The model decodes this copy only, so a host rewriting the slot
/// afterwards cannot change a command half way through its execution.
#[derive(Clone, Copy)]
pub(super) struct Sqe([u8; sqe::SIZE]);

impl Sqe {
    /// The entry in the first 64 bytes of `bytes` (the caller passes a
    /// 64-byte slice of its fetch buffer).
    pub(super) fn new(bytes: &[u8]) -> Sqe {
        let mut raw = [0u8; sqe::SIZE];
        raw.copy_from_slice(&bytes[..sqe::SIZE]);
        Sqe(raw)
    }

    #[inline]
    fn dword(&self, offset: usize) -> u32 {
        let b = &self.0;
        u32::from_le_bytes([b[offset], b[offset + 1], b[offset + 2], b[offset + 3]])
    }

    #[inline]
    fn qword(&self, offset: usize) -> u64 {
        self.dword(offset) as u64 | (self.dword(offset + 4) as u64) << 32
    }

    /// Command Dword 0.
    #[inline]
    pub(super) fn cdw0(&self) -> u32 {
        self.dword(sqe::CDW0)
    }

    /// Opcode.
    #[inline]
    pub(super) fn opcode(&self) -> u8 {
        sqe::cdw0::OPC.get(self.cdw0()) as u8
    }

    /// Command Identifier.
    #[inline]
    pub(super) fn cid(&self) -> u16 {
        sqe::cdw0::CID.get(self.cdw0()) as u16
    }

    /// PRP or SGL selector (0: PRPs, the only kind this model accepts).
    #[inline]
    pub(super) fn psdt(&self) -> u8 {
        sqe::cdw0::PSDT.get(self.cdw0()) as u8
    }

    /// Fused operation bits (this model supports no fused commands).
    #[inline]
    pub(super) fn fuse(&self) -> u8 {
        sqe::cdw0::FUSE.get(self.cdw0()) as u8
    }

    /// Namespace Identifier.
    #[inline]
    pub(super) fn nsid(&self) -> u32 {
        self.dword(sqe::NSID)
    }

    /// PRP Entry 1.
    #[inline]
    pub(super) fn prp1(&self) -> u64 {
        self.qword(sqe::PRP1)
    }

    /// PRP Entry 2.
    #[inline]
    pub(super) fn prp2(&self) -> u64 {
        self.qword(sqe::PRP2)
    }

    /// Command Dword 10.
    #[inline]
    pub(super) fn cdw10(&self) -> u32 {
        self.dword(sqe::CDW10)
    }

    /// Command Dword 11.
    #[inline]
    pub(super) fn cdw11(&self) -> u32 {
        self.dword(sqe::CDW11)
    }

    /// Command Dword 12.
    #[inline]
    pub(super) fn cdw12(&self) -> u32 {
        self.dword(sqe::CDW12)
    }

    /// Read/Write Starting LBA: CDW10 (low) and CDW11 (high).
    #[inline]
    pub(super) fn slba(&self) -> u64 {
        self.qword(sqe::CDW10)
    }
}

/// The status field of a completion (§4.6.1): type, code, Do Not Retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Status {
    /// Status Code Type.
    pub(super) sct: u8,
    /// Status Code.
    pub(super) sc: u8,
    /// Do Not Retry: the same command would fail again.
    pub(super) dnr: bool,
}

impl Status {
    /// Successful Completion.
    pub(super) const SUCCESS: Status = Status {
        sct: sct::GENERIC,
        sc: sc_generic::SUCCESS,
        dnr: false,
    };
    /// Invalid Command Opcode.
    pub(super) const INVALID_OPCODE: Status = Status::generic(sc_generic::INVALID_OPCODE);
    /// Invalid Field in Command.
    pub(super) const INVALID_FIELD: Status = Status::generic(sc_generic::INVALID_FIELD);
    /// Invalid Namespace or Format.
    pub(super) const INVALID_NAMESPACE: Status = Status::generic(sc_generic::INVALID_NAMESPACE);
    /// LBA Out of Range.
    pub(super) const LBA_OUT_OF_RANGE: Status = Status::generic(sc_generic::LBA_OUT_OF_RANGE);
    /// PRP Offset Invalid.
    pub(super) const PRP_OFFSET_INVALID: Status = Status::generic(sc_generic::PRP_OFFSET_INVALID);
    /// Command Sequence Error.
    pub(super) const COMMAND_SEQUENCE_ERROR: Status =
        Status::generic(sc_generic::COMMAND_SEQUENCE_ERROR);
    /// Data Transfer Error: a DMA failed. Retryable: the host may fix its mapping.
    pub(super) const DATA_TRANSFER_ERROR: Status = Status {
        sct: sct::GENERIC,
        sc: sc_generic::DATA_TRANSFER_ERROR,
        dnr: false,
    };
    /// Internal Error (e.g. fsync of the backing file failed).
    pub(super) const INTERNAL_ERROR: Status = Status {
        sct: sct::GENERIC,
        sc: sc_generic::INTERNAL_ERROR,
        dnr: false,
    };
    /// Completion Queue Invalid.
    pub(super) const COMPLETION_QUEUE_INVALID: Status =
        Status::command(sc_command::COMPLETION_QUEUE_INVALID);
    /// Invalid Queue Identifier.
    pub(super) const INVALID_QUEUE_IDENTIFIER: Status =
        Status::command(sc_command::INVALID_QUEUE_IDENTIFIER);
    /// Invalid Queue Size.
    pub(super) const INVALID_QUEUE_SIZE: Status = Status::command(sc_command::INVALID_QUEUE_SIZE);
    /// Invalid Queue Deletion.
    pub(super) const INVALID_QUEUE_DELETION: Status =
        Status::command(sc_command::INVALID_QUEUE_DELETION);
    /// Invalid Log Page.
    pub(super) const INVALID_LOG_PAGE: Status = Status::command(sc_command::INVALID_LOG_PAGE);

    /// A generic status that would fail again if retried.
    pub(super) const fn generic(sc: u8) -> Status {
        Status {
            sct: sct::GENERIC,
            sc,
            dnr: true,
        }
    }

    /// A command specific status that would fail again if retried.
    pub(super) const fn command(sc: u8) -> Status {
        Status {
            sct: sct::COMMAND_SPECIFIC,
            sc,
            dnr: true,
        }
    }

    /// The status bits of completion dword 3 (phase and CID not included).
    #[inline]
    pub(super) fn dw3_bits(self) -> u32 {
        cqe::dw3::SC.value(u32::from(self.sc))
            | cqe::dw3::SCT.value(u32::from(self.sct))
            | cqe::dw3::DNR.value(u32::from(self.dnr))
    }
}

/// What a command handler returns: DW0 of the completion, or the failure status.
pub(super) type Outcome = Result<u32, Status>;
