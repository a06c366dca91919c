//! Everything that can go wrong in the NVMe driver, one variant per cause a
//! user can act on.
#![forbid(unsafe_code)]

use super::status::{NvmeStatus, StatusKind};
use std::fmt;
use std::time::Duration;

/// An NVMe driver error. `Display` is one line naming the cause and what to do.
#[derive(Debug)]
pub enum NvmeError {
    /// A command completed with an error status.
    Status {
        /// The command ("read", "identify controller", ...).
        op: &'static str,
        /// The status the controller returned.
        status: NvmeStatus,
    },
    /// No completion arrived within the command timeout, while the
    /// controller did not report a fatal error: it stopped answering.
    Timeout {
        /// The command that did not complete.
        op: &'static str,
        /// How long the driver waited.
        after: Duration,
    },
    /// The controller reports Controller Fatal Status (CSTS.CFS).
    ControllerFatal,
    /// CSTS reads FFFFFFFFh, as every register of a device that no longer
    /// answers (surprise removal, memory space disabled) does: not a
    /// fatal status, though its CFS bit reads 1.
    NotResponding,
    /// CSTS.RDY did not reach `waiting_for` within CAP.TO.
    ReadyTimeout {
        /// The RDY value waited for (true: enabling, false: disabling).
        waiting_for: bool,
        /// How long the driver waited.
        after: Duration,
    },
    /// The controller wrote something that breaks the specification: a
    /// completion with an unknown command identifier, a submission queue head
    /// out of range, a wrong queue identifier, invalid Identify data... The
    /// device is not trusted; the driver stops using what it wrote.
    DeviceMisbehaved(String),
    /// The queue pair has no free command slot.
    QueueFull,
    /// The request itself is wrong (LBA range past the namespace end, buffer
    /// not a multiple of the LBA size, unknown namespace...).
    InvalidRequest(String),
    /// Getting or mapping DMA memory failed.
    Dma(dma::Error),
    /// The controller lacks something this driver needs.
    Unsupported(String),
}

impl NvmeError {
    /// The status, if the error is a command status.
    pub fn status(&self) -> Option<&NvmeStatus> {
        match self {
            NvmeError::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The status kind, if the error is a command status.
    pub fn status_kind(&self) -> Option<StatusKind> {
        self.status().map(|s| s.kind())
    }
}

impl fmt::Display for NvmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvmeError::Status { op, status } => {
                write!(f, "NVMe {op} failed: {status}; ")?;
                f.write_str(match status.kind() {
                    StatusKind::LbaOutOfRange | StatusKind::CapacityExceeded => {
                        "keep the LBA range inside the namespace (see its size in Identify Namespace)"
                    }
                    StatusKind::InvalidNamespace => {
                        "use an active namespace ID (see the namespace list of Identify)"
                    }
                    StatusKind::PrpOffsetInvalid => {
                        "the data buffer's DMA address must be dword aligned; this is a driver bug if it was"
                    }
                    StatusKind::WriteFault
                    | StatusKind::UnrecoveredReadError
                    | StatusKind::GuardCheckError
                    | StatusKind::ApplicationTagCheckError
                    | StatusKind::ReferenceTagCheckError => {
                        "the medium failed at this LBA; check the drive's SMART/health log and back up its data"
                    }
                    StatusKind::NamespaceNotReady => "retry later; the namespace is not ready yet",
                    StatusKind::AbortSqDeletion | StatusKind::PowerLossAbort => {
                        "the command was aborted before it ran; resubmit it on a live queue"
                    }
                    _ if status.dnr => {
                        "the controller refused the command and says retrying will not help; check its parameters"
                    }
                    _ => "the command may succeed if retried; if not, check its parameters",
                })
            }
            NvmeError::Timeout { op, after } => write!(
                f,
                "NVMe {op}: no completion after {after:?} and no fatal status: the controller \
                 stopped answering; reset it (re-open the device) or raise the command timeout"
            ),
            NvmeError::ControllerFatal => f.write_str(
                "the NVMe controller reports a fatal error (CSTS.CFS=1); reset it by re-opening \
                 the device, and check the drive's firmware and health if it happens again",
            ),
            NvmeError::NotResponding => f.write_str(
                "the NVMe controller no longer answers (CSTS reads FFFFFFFFh, as all registers of a \
                 gone device do): removed, not powered or memory space disabled; check `lspci`, \
                 reset the function or re-bind it to vfio-pci",
            ),
            NvmeError::ReadyTimeout { waiting_for, after } => write!(
                f,
                "the NVMe controller did not {} within {after:?} (CSTS.RDY stayed {}, limit CAP.TO); \
                 reset the PCI function (or power cycle) and check that no other driver uses it",
                if *waiting_for {
                    "become ready"
                } else {
                    "finish disabling"
                },
                u8::from(!*waiting_for)
            ),
            NvmeError::DeviceMisbehaved(what) => write!(
                f,
                "the NVMe controller broke the specification: {what}; the driver ignored it, \
                 but the controller (or its emulation) is faulty: reset it"
            ),
            NvmeError::QueueFull => f.write_str(
                "the NVMe I/O queue has no free command slot; poll completions before submitting \
                 more, or create the queue pair deeper",
            ),
            NvmeError::InvalidRequest(why) => write!(f, "invalid NVMe request: {why}"),
            NvmeError::Dma(e) => write!(f, "DMA memory for the NVMe driver: {e}"),
            NvmeError::Unsupported(why) => {
                write!(f, "this NVMe controller is not supported: {why}")
            }
        }
    }
}

impl std::error::Error for NvmeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NvmeError::Dma(e) => Some(e),
            _ => None,
        }
    }
}

impl From<dma::Error> for NvmeError {
    fn from(e: dma::Error) -> Self {
        NvmeError::Dma(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_cause_and_fix() {
        let errors = [
            NvmeError::Status {
                op: "read",
                status: NvmeStatus {
                    sct: 0,
                    sc: 0x80,
                    dnr: true,
                    more: false,
                },
            },
            NvmeError::Timeout {
                op: "write",
                after: Duration::from_millis(300),
            },
            NvmeError::ControllerFatal,
            NvmeError::ReadyTimeout {
                waiting_for: true,
                after: Duration::from_secs(10),
            },
            NvmeError::DeviceMisbehaved("completion for unknown command 7".into()),
            NvmeError::QueueFull,
            NvmeError::InvalidRequest("namespace 9 does not exist".into()),
            NvmeError::Unsupported("CAP.MPSMIN is 8 KiB".into()),
            NvmeError::NotResponding,
        ];
        for e in &errors {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{s}");
            assert!(s.len() > 30, "{s}");
        }
        assert!(errors[0]
            .to_string()
            .starts_with("NVMe read failed: LBA Out of Range (SCT 0h, SC 80h)"));
        assert_eq!(errors[0].status_kind(), Some(StatusKind::LbaOutOfRange));
        assert!(errors[1].to_string().contains("300ms"));
        assert!(errors[3].to_string().contains("become ready"));
        assert!(errors[3].to_string().contains("RDY stayed 0"));
        let gone = errors.last().unwrap().to_string();
        assert!(
            gone.contains("FFFFFFFFh") && !gone.contains("fatal"),
            "{gone}"
        );
    }
}
