//! Completion status: the Status Field of a completion queue entry decoded
//! into a typed value (NVMe 1.4 §4.6.1).
#![forbid(unsafe_code)]

use spec::nvme::{cqe, sc_command, sc_generic, sc_media, sct};
use std::fmt;

/// The status of a failed command, as the controller reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NvmeStatus {
    /// Status Code Type (0 generic, 1 command specific, 2 media, 3 path, 7 vendor).
    pub sct: u8,
    /// Status Code.
    pub sc: u8,
    /// Do Not Retry: the same command would fail again.
    pub dnr: bool,
    /// More: the Error Information log page has more detail.
    pub more: bool,
}

/// Every status this driver names (NVMe 1.4 §4.6.1.2.1-3 and the NVM
/// command set's additions), plus [`StatusKind::Unknown`] for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// Successful Completion (generic 00h).
    Success,
    /// Invalid Command Opcode (generic 01h).
    InvalidOpcode,
    /// Invalid Field in Command (generic 02h).
    InvalidField,
    /// Command ID Conflict (generic 03h).
    CidConflict,
    /// Data Transfer Error (generic 04h).
    DataTransferError,
    /// Commands Aborted due to Power Loss Notification (generic 05h).
    PowerLossAbort,
    /// Internal Error (generic 06h).
    InternalError,
    /// Command Abort Requested (generic 07h).
    AbortRequested,
    /// Command Aborted due to SQ Deletion (generic 08h).
    AbortSqDeletion,
    /// Invalid Namespace or Format (generic 0Bh).
    InvalidNamespace,
    /// Command Sequence Error (generic 0Ch).
    CommandSequenceError,
    /// PRP Offset Invalid (generic 13h).
    PrpOffsetInvalid,
    /// LBA Out of Range (generic 80h).
    LbaOutOfRange,
    /// Capacity Exceeded (generic 81h).
    CapacityExceeded,
    /// Namespace Not Ready (generic 82h).
    NamespaceNotReady,
    /// Completion Queue Invalid (command specific 00h).
    CompletionQueueInvalid,
    /// Invalid Queue Identifier (command specific 01h).
    InvalidQueueIdentifier,
    /// Invalid Queue Size (command specific 02h).
    InvalidQueueSize,
    /// Abort Command Limit Exceeded (command specific 03h).
    AbortLimitExceeded,
    /// Invalid Log Page (command specific 09h).
    InvalidLogPage,
    /// Invalid Interrupt Vector (command specific 08h).
    InvalidInterruptVector,
    /// Invalid Queue Deletion (command specific 0Ch).
    InvalidQueueDeletion,
    /// Feature Not Changeable (command specific 0Eh).
    FeatureNotChangeable,
    /// Conflicting Attributes (command specific 80h, NVM I/O commands).
    ConflictingAttributes,
    /// Invalid Protection Information (command specific 81h, NVM I/O commands).
    InvalidProtectionInformation,
    /// Attempted Write to Read Only Range (command specific 82h, NVM I/O commands).
    WriteToReadOnlyRange,
    /// Write Fault (media 80h).
    WriteFault,
    /// Unrecovered Read Error (media 81h).
    UnrecoveredReadError,
    /// End-to-end Guard Check Error (media 82h).
    GuardCheckError,
    /// End-to-end Application Tag Check Error (media 83h).
    ApplicationTagCheckError,
    /// End-to-end Reference Tag Check Error (media 84h).
    ReferenceTagCheckError,
    /// Compare Failure (media 85h).
    CompareFailure,
    /// Access Denied (media 86h).
    AccessDenied,
    /// Deallocated or Unwritten Logical Block (media 87h).
    DeallocatedOrUnwritten,
    /// A status this driver has no name for (path related, vendor specific,
    /// or a code not listed above).
    Unknown,
}

impl NvmeStatus {
    /// Decode the status field of a completion's DW3. Returns None for
    /// Successful Completion (SCT 0, SC 0): the DNR and More bits of a
    /// success carry no meaning for the driver.
    #[inline]
    pub fn from_dw3(dw3: u32) -> Option<NvmeStatus> {
        // Success is SCT 0 and SC 0: one test of the two fields' bits.
        const _: () = assert!(sct::GENERIC == 0 && sc_generic::SUCCESS == 0);
        if dw3 & (cqe::dw3::SCT.mask() | cqe::dw3::SC.mask()) == 0 {
            return None;
        }
        let status = NvmeStatus {
            sct: cqe::dw3::SCT.get(dw3) as u8,
            sc: cqe::dw3::SC.get(dw3) as u8,
            dnr: cqe::dw3::DNR.is_set(dw3),
            more: cqe::dw3::M.is_set(dw3),
        };
        if status.is_success() {
            None
        } else {
            Some(status)
        }
    }

    /// True for Successful Completion.
    pub fn is_success(&self) -> bool {
        self.sct == sct::GENERIC && self.sc == sc_generic::SUCCESS
    }

    /// What the status means.
    pub fn kind(&self) -> StatusKind {
        use StatusKind::*;
        match (self.sct, self.sc) {
            (sct::GENERIC, c) => match c {
                sc_generic::SUCCESS => Success,
                sc_generic::INVALID_OPCODE => InvalidOpcode,
                sc_generic::INVALID_FIELD => InvalidField,
                sc_generic::CID_CONFLICT => CidConflict,
                sc_generic::DATA_TRANSFER_ERROR => DataTransferError,
                sc_generic::POWER_LOSS_ABORT => PowerLossAbort,
                sc_generic::INTERNAL_ERROR => InternalError,
                sc_generic::ABORT_REQUESTED => AbortRequested,
                sc_generic::ABORT_SQ_DELETION => AbortSqDeletion,
                sc_generic::INVALID_NAMESPACE => InvalidNamespace,
                sc_generic::COMMAND_SEQUENCE_ERROR => CommandSequenceError,
                sc_generic::PRP_OFFSET_INVALID => PrpOffsetInvalid,
                sc_generic::LBA_OUT_OF_RANGE => LbaOutOfRange,
                sc_generic::CAPACITY_EXCEEDED => CapacityExceeded,
                sc_generic::NAMESPACE_NOT_READY => NamespaceNotReady,
                _ => Unknown,
            },
            (sct::COMMAND_SPECIFIC, c) => match c {
                sc_command::COMPLETION_QUEUE_INVALID => CompletionQueueInvalid,
                sc_command::INVALID_QUEUE_IDENTIFIER => InvalidQueueIdentifier,
                sc_command::INVALID_QUEUE_SIZE => InvalidQueueSize,
                sc_command::ABORT_LIMIT_EXCEEDED => AbortLimitExceeded,
                sc_command::INVALID_LOG_PAGE => InvalidLogPage,
                sc_command::INVALID_INTERRUPT_VECTOR => InvalidInterruptVector,
                sc_command::INVALID_QUEUE_DELETION => InvalidQueueDeletion,
                sc_command::FEATURE_NOT_CHANGEABLE => FeatureNotChangeable,
                sc_command::CONFLICTING_ATTRIBUTES => ConflictingAttributes,
                sc_command::INVALID_PROTECTION_INFORMATION => InvalidProtectionInformation,
                sc_command::WRITE_TO_READ_ONLY_RANGE => WriteToReadOnlyRange,
                _ => Unknown,
            },
            (sct::MEDIA, c) => match c {
                sc_media::WRITE_FAULT => WriteFault,
                sc_media::UNRECOVERED_READ_ERROR => UnrecoveredReadError,
                sc_media::GUARD_CHECK_ERROR => GuardCheckError,
                sc_media::APPLICATION_TAG_CHECK_ERROR => ApplicationTagCheckError,
                sc_media::REFERENCE_TAG_CHECK_ERROR => ReferenceTagCheckError,
                sc_media::COMPARE_FAILURE => CompareFailure,
                sc_media::ACCESS_DENIED => AccessDenied,
                sc_media::DEALLOCATED_OR_UNWRITTEN => DeallocatedOrUnwritten,
                _ => Unknown,
            },
            _ => Unknown,
        }
    }
}

impl fmt::Display for NvmeStatus {
    /// "LBA Out of Range (SCT 0h, SC 80h)", with ", do not retry" and
    /// ", more in the error log" appended when DNR and More are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The names are the spec table's (spec::nvme::status_name), which
        // names exactly the codes that have a StatusKind.
        if let Some(name) = spec::nvme::status_name(self.sct, self.sc) {
            f.write_str(name)?;
        } else {
            let class = match self.sct {
                sct::GENERIC => "Unknown generic status",
                sct::COMMAND_SPECIFIC => "Unknown command specific status",
                sct::MEDIA => "Unknown media status",
                sct::PATH => "Path related status",
                sct::VENDOR => "Vendor specific status",
                _ => "Reserved status code type",
            };
            f.write_str(class)?;
        }
        write!(f, " (SCT {:X}h, SC {:02X}h)", self.sct, self.sc)?;
        if self.dnr {
            f.write_str(", do not retry")?;
        }
        if self.more {
            f.write_str(", more in the error log")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DW3 as a controller writes it: CID 7, phase 1, and the status bits.
    fn dw3(sct: u8, sc: u8, more: bool, dnr: bool) -> u32 {
        cqe::dw3::CID.value(7)
            | cqe::dw3::P.bit()
            | cqe::dw3::SC.value(u32::from(sc))
            | cqe::dw3::SCT.value(u32::from(sct))
            | cqe::dw3::M.value(u32::from(more))
            | cqe::dw3::DNR.value(u32::from(dnr))
    }

    #[test]
    fn success_decodes_to_none_whatever_the_phase_and_cid() {
        assert_eq!(NvmeStatus::from_dw3(dw3(0, 0, false, false)), None);
        assert_eq!(NvmeStatus::from_dw3(0xffff), None);
    }

    #[test]
    fn named_codes_decode_with_their_bits() {
        let s = NvmeStatus::from_dw3(dw3(0, 0x80, false, true)).unwrap();
        assert_eq!(
            s,
            NvmeStatus {
                sct: 0,
                sc: 0x80,
                dnr: true,
                more: false
            }
        );
        assert_eq!(s.kind(), StatusKind::LbaOutOfRange);
        assert_eq!(
            s.to_string(),
            "LBA Out of Range (SCT 0h, SC 80h), do not retry"
        );

        let s = NvmeStatus::from_dw3(dw3(2, 0x81, true, false)).unwrap();
        assert_eq!(s.kind(), StatusKind::UnrecoveredReadError);
        assert!(s.more && !s.dnr);
        assert_eq!(
            s.to_string(),
            "Unrecovered Read Error (SCT 2h, SC 81h), more in the error log"
        );

        let s = NvmeStatus::from_dw3(dw3(1, 0x01, false, false)).unwrap();
        assert_eq!(s.kind(), StatusKind::InvalidQueueIdentifier);
        assert_eq!(s.to_string(), "Invalid Queue Identifier (SCT 1h, SC 01h)");

        let s = NvmeStatus::from_dw3(dw3(0, 0x13, false, false)).unwrap();
        assert_eq!(s.kind(), StatusKind::PrpOffsetInvalid);
        assert_eq!(
            NvmeStatus::from_dw3(dw3(0, 0x08, false, false))
                .unwrap()
                .kind(),
            StatusKind::AbortSqDeletion
        );
    }

    #[test]
    fn the_same_code_means_different_things_per_type() {
        let generic = NvmeStatus::from_dw3(dw3(0, 0x81, false, false)).unwrap();
        let command = NvmeStatus::from_dw3(dw3(1, 0x81, false, false)).unwrap();
        let media = NvmeStatus::from_dw3(dw3(2, 0x81, false, false)).unwrap();
        assert_eq!(generic.kind(), StatusKind::CapacityExceeded);
        assert_eq!(command.kind(), StatusKind::InvalidProtectionInformation);
        assert_eq!(media.kind(), StatusKind::UnrecoveredReadError);
    }

    #[test]
    fn unknown_codes_keep_their_numbers() {
        let s = NvmeStatus::from_dw3(dw3(0, 0x7f, false, false)).unwrap();
        assert_eq!(s.kind(), StatusKind::Unknown);
        assert_eq!(s.to_string(), "Unknown generic status (SCT 0h, SC 7Fh)");
        let s = NvmeStatus::from_dw3(dw3(7, 0xc3, false, true)).unwrap();
        assert_eq!(s.kind(), StatusKind::Unknown);
        assert_eq!(
            s.to_string(),
            "Vendor specific status (SCT 7h, SC C3h), do not retry"
        );
        let s = NvmeStatus::from_dw3(dw3(5, 0x00, false, false)).unwrap();
        assert_eq!(s.kind(), StatusKind::Unknown);
        assert_eq!(s.to_string(), "Reserved status code type (SCT 5h, SC 00h)");
        let s = NvmeStatus::from_dw3(dw3(3, 0x00, false, false)).unwrap();
        assert_eq!(s.kind(), StatusKind::Unknown);
        assert!(s.to_string().starts_with("Path related status (SCT 3h"));
    }

    #[test]
    fn every_code_is_named_as_the_spec_table_names_it() {
        // The driver's kinds and spec::nvme::status_name cover the same
        // codes, and a status prints under the spec table's name.
        for sct in 0..8u8 {
            for sc in 0..=255u8 {
                let spec_name = spec::nvme::status_name(sct, sc);
                match NvmeStatus::from_dw3(dw3(sct, sc, false, false)) {
                    None => assert_eq!(spec_name, Some("Successful Completion")),
                    Some(s) if s.kind() == StatusKind::Unknown => {
                        assert_eq!(spec_name, None, "SCT {sct} SC {sc:#x}")
                    }
                    Some(s) => {
                        let name = spec_name.unwrap_or_else(|| panic!("SCT {sct} SC {sc:#x}"));
                        assert!(s.to_string().starts_with(name), "{s}");
                    }
                }
            }
        }
    }
}
