//! Fault injection: the faults a test can inject into the controller.
#![forbid(unsafe_code)]

use super::command::Status;

/// A fault to inject into an emulated controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Set CSTS.CFS now; the controller stops processing commands and
    /// ignores CC writes, so a reset does not recover it (until
    /// [`NvmeModel::clear_faults`](crate::nvme::NvmeModel::clear_faults)).
    FatalStatus,
    /// The controller hangs: it neither fetches nor completes commands and
    /// ignores CC writes (CSTS.RDY no longer follows CC.EN); registers
    /// still read.
    StopResponding,
    /// The next `count` reads or writes of namespace `nsid` whose block range
    /// includes `lba` complete with status type `sct` and code `sc`, without
    /// moving data.
    IoError {
        /// Namespace.
        nsid: u32,
        /// A block in the range of the commands that fail.
        lba: u64,
        /// Status Code Type.
        sct: u8,
        /// Status Code.
        sc: u8,
        /// How many commands fail.
        count: u32,
    },
}

/// An armed [`Fault::IoError`].
#[derive(Debug, Clone, Copy)]
pub(super) struct IoFault {
    pub(super) nsid: u32,
    pub(super) lba: u64,
    pub(super) status: Status,
    pub(super) count: u32,
}
