//! [`VfioError`]: why a function cannot be opened or used through VFIO.
#![forbid(unsafe_code)]

use crate::pci::{PciAddress, PciError};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// The environment variable that allows VFIO's no-IOMMU mode: `1` allows
/// it; unset (or `0`) refuses a no-IOMMU group.
pub const OPT_IN_VAR: &str = "VFIO_UNSAFE_NOIOMMU";

/// Why a PCI function cannot be opened (or used) through VFIO. Each variant
/// is one cause; its message says what to do.
#[derive(Debug)]
pub enum VfioError {
    /// Sysfs says no: missing function, IOMMU off, wrong driver, group not viable.
    Pci(PciError),
    /// `/dev/vfio/vfio` is missing: the VFIO modules are not loaded.
    ModuleNotLoaded {
        /// The path looked for.
        path: PathBuf,
    },
    /// `/dev/vfio/N` is missing although the function is bound to vfio-pci.
    GroupDeviceMissing {
        /// The function.
        addr: PciAddress,
        /// The IOMMU group.
        group: u32,
        /// `/dev/vfio/noiommu-N` exists instead: VFIO's unsafe no-IOMMU mode.
        noiommu: bool,
    },
    /// No permission to open `/dev/vfio/N`.
    GroupPermission {
        /// The IOMMU group.
        group: u32,
    },
    /// `/dev/vfio/N` is open in another process.
    GroupBusy {
        /// The IOMMU group.
        group: u32,
    },
    /// Another failure to open `/dev/vfio/N` (or to look at `/dev/vfio`).
    DevVfio {
        /// The path.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The function is already open in this process.
    AlreadyOpen {
        /// The function.
        addr: PciAddress,
    },
    /// vfio-ioctls failed.
    Vfio {
        /// The function.
        addr: PciAddress,
        /// What was being done.
        step: &'static str,
        /// The error, with its text.
        error: vfio_ioctls::VfioError,
    },
    /// A read or write of the function's config space failed.
    ConfigAccess {
        /// The function.
        addr: PciAddress,
        /// Offset in config space.
        offset: u64,
        /// Write (true) or read.
        write: bool,
        /// Why.
        error: io::Error,
    },
    /// VFIO's config region does not look like the function's config space.
    ConfigMismatch {
        /// The function.
        addr: PciAddress,
        /// What sysfs says (vendor, device).
        sysfs: (u16, u16),
        /// What the config region says.
        config: (u16, u16),
    },
    /// The command register did not keep memory space and bus mastering on.
    EnableFailed {
        /// The function.
        addr: PciAddress,
        /// The command register as read back.
        command: u16,
    },
    /// The function reset (FLR or another reset method) failed.
    Reset {
        /// The function.
        addr: PciAddress,
        /// Why.
        error: io::Error,
    },
    /// The function has no BAR0.
    Bar0Missing {
        /// The function.
        addr: PciAddress,
    },
    /// VFIO and sysfs disagree on BAR0's size.
    Bar0SizeMismatch {
        /// The function.
        addr: PciAddress,
        /// Size of VFIO region 0.
        vfio: u64,
        /// Size from sysfs `resource` (None: not implemented).
        sysfs: Option<u64>,
    },
    /// VFIO does not allow BAR0 to be mmap'd.
    Bar0NotMappable {
        /// The function.
        addr: PciAddress,
        /// The region's VFIO_REGION_INFO_FLAG_* bits.
        flags: u32,
    },
    /// VFIO allows only parts of BAR0 to be mmap'd.
    Bar0Sparse {
        /// The function.
        addr: PciAddress,
    },
    /// mmap of BAR0 failed.
    Mmap {
        /// The function.
        addr: PciAddress,
        /// Why.
        error: io::Error,
    },
    /// Locking the DMA memory would exceed RLIMIT_MEMLOCK.
    MemlockTooLow {
        /// Bytes that are to be locked.
        bytes: u64,
        /// Bytes the process has locked already.
        locked: u64,
        /// The soft limit in bytes.
        limit: u64,
    },
    /// VFIO_UNSAFE_NOIOMMU has a value other than 1, 0 or empty.
    NoIommuOptInValue {
        /// The value.
        value: String,
    },
    /// `/dev/vfio/noiommu-N` could not be opened: the kernel asks for
    /// CAP_SYS_RAWIO.
    NoIommuRawio {
        /// The group.
        group: u32,
    },
    /// The VFIO container offers no no-IOMMU "IOMMU": vfio was not loaded
    /// with enable_unsafe_noiommu_mode=1.
    NoIommuUnavailable {
        /// The function.
        addr: PciAddress,
    },
    /// A container or group ioctl of no-IOMMU mode failed.
    NoIommuIoctl {
        /// The function.
        addr: PciAddress,
        /// The ioctl.
        step: &'static str,
        /// Why.
        error: io::Error,
    },
    /// A function with an IOMMU and one without, in one process: they
    /// cannot share DMA memory.
    MixedIommuModes {
        /// The function being opened.
        addr: PciAddress,
        /// Whether it is the no-IOMMU one.
        noiommu: bool,
    },
    /// DMA memory for no-IOMMU mode cannot be set up.
    Dma(dma::Error),
}

impl From<PciError> for VfioError {
    fn from(e: PciError) -> Self {
        VfioError::Pci(e)
    }
}

/// Kibibytes, rounded up: the unit of `ulimit -l`.
fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

impl fmt::Display for VfioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VfioError::Pci(e) => e.fmt(f),
            VfioError::ModuleNotLoaded { path } => write!(
                f,
                "{} does not exist: the VFIO modules are not loaded; load them with \
                 `modprobe vfio-pci` (the kernel needs CONFIG_VFIO_CONTAINER or \
                 CONFIG_IOMMUFD_VFIO_CONTAINER)",
                path.display()
            ),
            VfioError::GroupDeviceMissing {
                group,
                noiommu: true,
                ..
            } => write!(
                f,
                "/dev/vfio/{group} does not exist, only /dev/vfio/noiommu-{group}: VFIO runs in \
                 its unsafe no-IOMMU mode, where the device can DMA anywhere in memory; turn the \
                 IOMMU on (intel_iommu=on or amd_iommu=on, check with \
                 `hw-setup/check-iommu.sh`), or accept the risk with {}=1 \
                 (hw-setup/README.md)",
                OPT_IN_VAR
            ),
            VfioError::GroupDeviceMissing {
                addr,
                group,
                noiommu: false,
            } => write!(
                f,
                "/dev/vfio/{group} does not exist although {addr} is bound to vfio-pci; \
                 rebind it with `hw-setup/devbind.sh bind {addr}` and check `dmesg`"
            ),
            VfioError::GroupPermission { group } => write!(
                f,
                "no permission on /dev/vfio/{group}: run as root or see hw-setup/nonroot.sh"
            ),
            VfioError::GroupBusy { group } => write!(
                f,
                "/dev/vfio/{group} is busy: the device (or another in its IOMMU group) is in use \
                 by another process, such as a VM or another driver; stop it \
                 (`fuser -v /dev/vfio/{group}` shows which) and retry"
            ),
            VfioError::DevVfio { path, error } => write!(
                f,
                "cannot open {}: {error}; check `ls -l /dev/vfio` and `dmesg`",
                path.display()
            ),
            VfioError::AlreadyOpen { addr } => write!(
                f,
                "{addr} is already open in this process; share the open device (its \
                 `bar0().clone()` and `mapper()`) instead of opening it twice"
            ),
            VfioError::Vfio { addr, step, error } => {
                write!(f, "VFIO {step} failed for {addr}: {error}")?;
                match error {
                    vfio_ioctls::VfioError::OpenContainer(_) => write!(
                        f,
                        "; load the VFIO modules with `modprobe vfio-pci` and check permissions \
                         on /dev/vfio/vfio"
                    ),
                    vfio_ioctls::VfioError::VfioExtension
                    | vfio_ioctls::VfioError::ContainerSetIOMMU(_) => write!(
                        f,
                        "; the kernel offers no type1v2 IOMMU for VFIO: load it with \
                         `modprobe vfio_iommu_type1` and check that the IOMMU is on with \
                         `hw-setup/check-iommu.sh`"
                    ),
                    vfio_ioctls::VfioError::GroupViable => write!(
                        f,
                        "; bind every device of the IOMMU group to vfio-pci \
                         (`hw-setup/devbind.sh status` lists them)"
                    ),
                    _ => write!(f, "; `dmesg` shows the kernel's reason"),
                }
            }
            VfioError::ConfigAccess {
                addr,
                offset,
                write,
                error,
            } => write!(
                f,
                "config space {} at {offset:#x} of {addr} failed: {error}; `dmesg` shows the \
                 kernel's reason",
                if *write { "write" } else { "read" }
            ),
            VfioError::ConfigMismatch {
                addr,
                sysfs,
                config,
            } => write!(
                f,
                "VFIO's config region of {addr} shows {:04x}:{:04x} but sysfs says {:04x}:{:04x}: \
                 the VFIO region table is not laid out as expected (a bug here or in vfio-ioctls); \
                 report it with the output of `lspci -vv -s {addr}`",
                config.0, config.1, sysfs.0, sysfs.1
            ),
            VfioError::EnableFailed { addr, command } => write!(
                f,
                "{addr} did not keep memory space and bus mastering enabled (command register \
                 {command:#06x}); the device may be in a low-power state or broken: check `dmesg` \
                 and `lspci -vv -s {addr}`"
            ),
            VfioError::Reset { addr, error } => write!(
                f,
                "function reset of {addr} failed: {error}; check `dmesg`, then rebind the device \
                 with `hw-setup/devbind.sh bind {addr}` or reboot"
            ),
            VfioError::Bar0Missing { addr } => write!(
                f,
                "{addr} has no BAR0, so it is not a device these drivers handle; check the \
                 address with `lspci -D`"
            ),
            VfioError::Bar0SizeMismatch { addr, vfio, sysfs } => write!(
                f,
                "VFIO says BAR0 of {addr} has {vfio:#x} bytes but sysfs says {}: the VFIO region \
                 table is not laid out as expected; report it with the output of \
                 `lspci -vv -s {addr}`",
                match sysfs {
                    Some(len) => format!("{len:#x}"),
                    None => "it is not implemented".into(),
                }
            ),
            VfioError::Bar0NotMappable { addr, flags } => write!(
                f,
                "VFIO does not allow BAR0 of {addr} to be mmap'd (region flags {flags:#x}); \
                 BAR0 must be a memory BAR of at least one page; check `lspci -vv -s {addr}`"
            ),
            VfioError::Bar0Sparse { addr } => write!(
                f,
                "VFIO allows only parts of BAR0 of {addr} to be mmap'd (kernels before 4.16 \
                 hide the MSI-X table); use Linux 4.16 or newer"
            ),
            VfioError::Mmap { addr, error } => write!(
                f,
                "mmap of BAR0 of {addr} failed: {error}; `dmesg` shows the kernel's reason"
            ),
            VfioError::MemlockTooLow {
                bytes,
                locked,
                limit,
            } => write!(
                f,
                "DMA memory of {} KiB (with {} KiB already locked) exceeds RLIMIT_MEMLOCK of {} KiB; \
                 raise it with `ulimit -l unlimited` (as root) or see hw-setup/nonroot.sh",
                kib(*bytes),
                kib(*locked),
                kib(*limit)
            ),
            VfioError::NoIommuOptInValue { value } => write!(
                f,
                "{}={value} is not understood: set it to 1 to allow VFIO's unsafe no-IOMMU mode \
                 (see hw-setup/README.md), or unset it",
                OPT_IN_VAR
            ),
            VfioError::NoIommuRawio { group } => write!(
                f,
                "no permission on /dev/vfio/noiommu-{group}: no-IOMMU mode needs CAP_SYS_RAWIO; \
                 run as root or give the binary the capability \
                 (`setcap cap_sys_rawio,cap_ipc_lock+ep BINARY`, see hw-setup/README.md)"
            ),
            VfioError::NoIommuUnavailable { addr } => write!(
                f,
                "{addr} is in a no-IOMMU group but the VFIO container offers no no-IOMMU mode: \
                 load vfio with it (`modprobe vfio enable_unsafe_noiommu_mode=1`, or \
                 `echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode`) and rebind \
                 with `hw-setup/devbind.sh bind {addr}`"
            ),
            VfioError::NoIommuIoctl { addr, step, error } => write!(
                f,
                "VFIO {step} failed for {addr} in no-IOMMU mode: {error}; `dmesg` shows the \
                 kernel's reason"
            ),
            VfioError::MixedIommuModes { addr, noiommu } => write!(
                f,
                "{addr} is {} but this process already has devices {}: one process cannot use \
                 both, since its devices share DMA memory; open them in separate processes \
                 (`hw-setup/check-iommu.sh` shows the mode)",
                if *noiommu { "in a no-IOMMU group" } else { "behind an IOMMU" },
                if *noiommu { "behind an IOMMU" } else { "in no-IOMMU groups" }
            ),
            VfioError::Dma(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for VfioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VfioError::Pci(e) => Some(e),
            VfioError::DevVfio { error, .. }
            | VfioError::ConfigAccess { error, .. }
            | VfioError::Reset { error, .. }
            | VfioError::Mmap { error, .. }
            | VfioError::NoIommuIoctl { error, .. } => Some(error),
            VfioError::Vfio { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn every_message_is_one_line_naming_a_fix() {
        let a = addr("03:00.0");
        let io = || io::Error::from_raw_os_error(libc::EIO);
        let all = [
            VfioError::Pci(PciError::IommuOff {
                addr: a,
                driver: Some("nvme".into()),
            }),
            VfioError::ModuleNotLoaded {
                path: "/dev/vfio/vfio".into(),
            },
            VfioError::GroupDeviceMissing {
                addr: a,
                group: 3,
                noiommu: false,
            },
            VfioError::GroupDeviceMissing {
                addr: a,
                group: 3,
                noiommu: true,
            },
            VfioError::GroupPermission { group: 3 },
            VfioError::GroupBusy { group: 3 },
            VfioError::DevVfio {
                path: "/dev/vfio/3".into(),
                error: io(),
            },
            VfioError::AlreadyOpen { addr: a },
            VfioError::Vfio {
                addr: a,
                step: "container open",
                error: vfio_ioctls::VfioError::VfioExtension,
            },
            VfioError::ConfigAccess {
                addr: a,
                offset: 4,
                write: true,
                error: io(),
            },
            VfioError::ConfigMismatch {
                addr: a,
                sysfs: (0x1b36, 0x10),
                config: (0xffff, 0xffff),
            },
            VfioError::EnableFailed {
                addr: a,
                command: 0,
            },
            VfioError::Reset {
                addr: a,
                error: io(),
            },
            VfioError::Bar0Missing { addr: a },
            VfioError::Bar0SizeMismatch {
                addr: a,
                vfio: 0x4000,
                sysfs: None,
            },
            VfioError::Bar0NotMappable { addr: a, flags: 3 },
            VfioError::Bar0Sparse { addr: a },
            VfioError::Mmap {
                addr: a,
                error: io(),
            },
            VfioError::MemlockTooLow {
                bytes: 1,
                locked: 0,
                limit: 0,
            },
            VfioError::NoIommuOptInValue { value: "x".into() },
            VfioError::NoIommuRawio { group: 3 },
            VfioError::NoIommuUnavailable { addr: a },
            VfioError::NoIommuIoctl {
                addr: a,
                step: "VFIO_SET_IOMMU",
                error: io(),
            },
            VfioError::MixedIommuModes {
                addr: a,
                noiommu: true,
            },
            VfioError::Dma(dma::Error::PhysAddrHidden),
        ];
        for e in all {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            // A fix: a command, a script, or a kernel to use.
            assert!(
                msg.contains('`') || msg.contains("hw-setup/") || msg.contains("use Linux"),
                "{msg}"
            );
        }
    }
}
