//! Fault injection: the faults a test can inject into the controller.
#![forbid(unsafe_code)]

use super::command::Status;
use super::hostile::Hostility;

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
    /// CAP.DSTRD reads `dstrd` (its low 4 bits) from now on, while the
    /// doorbells stay where the configured stride puts them and BAR0 keeps
    /// its size: a controller whose capabilities (NVMe 1.4 §3.1.1) do not
    /// fit its BAR.
    CapDstrd(u8),
    /// Identify Controller reports NN = `nn` and the active namespace lists
    /// (§5.15.2.3) name every NSID from 1 to `nn`, in full pages, while only
    /// the configured namespaces hold data: the NSIDs beyond them identify
    /// as namespace 1 does, and I/O to them fails with Invalid Namespace.
    NamespaceCount(u32),
    /// Identify Namespace `nsid` reports these NSZE, NCAP and NUSE (NVM
    /// Command Set §4.1.5.1) instead of its own; I/O still uses its real size.
    NamespaceSizes {
        /// Namespace.
        nsid: u32,
        /// Namespace Size, in blocks.
        nsze: u64,
        /// Namespace Capacity, in blocks.
        ncap: u64,
        /// Namespace Utilization, in blocks.
        nuse: u64,
    },
    /// Hostile mode: from now on the controller lies at random, seeded, in
    /// completions, Identify data and register reads, as `Hostility` says
    /// (see [`Hostility`] and the `hostile` module); to fuzz the driver.
    Hostile(Hostility),
}

/// What the injected faults make the controller report instead of the
/// truth (CAP and Identify data), off the I/O path.
#[derive(Debug, Clone, Default)]
pub(super) struct Lies {
    /// [`Fault::CapDstrd`].
    pub(super) dstrd: Option<u8>,
    /// [`Fault::NamespaceCount`].
    pub(super) nn: Option<u32>,
    /// [`Fault::NamespaceSizes`]: (nsid, [NSZE, NCAP, NUSE]).
    pub(super) sizes: Vec<(u32, [u64; 3])>,
}

/// An armed [`Fault::IoError`].
#[derive(Debug, Clone, Copy)]
pub(super) struct IoFault {
    pub(super) nsid: u32,
    pub(super) lba: u64,
    pub(super) status: Status,
    pub(super) count: u32,
}
