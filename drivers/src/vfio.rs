//! Opening a PCI function through VFIO.
//!
//! [`VfioPciDevice::open`] first runs every check that can name a cause and
//! a fix ([`preflight`]): the function exists, the IOMMU is on, the function
//! is bound to vfio-pci, its IOMMU group is viable, the VFIO module is loaded
//! and the group's device node can be opened. Only then does it call
//! vfio-ioctls, attaching the group to the one VFIO container of the process
//! (shared by all devices, so DMA memory mapped through
//! [`VfioPciDevice::mapper`] is reachable by every device), resets the
//! function, enables memory space and bus mastering, and maps BAR0 for
//! register access ([`VfioBar`]).
//!
//! Interrupts are not set up: the drivers poll.

use crate::pci::{PciAddress, PciError, PciFunctionInfo, PciIds, Sysfs};
use crate::regs::RegisterAccess;
use dma::vfio::VfioContainerMapper;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use vfio_ioctls::{
    VfioContainer, VfioDevice, VfioOps, VfioRegionInfoCap, VfioRegionSparseMmapArea,
};
use volatile::VolatilePtr;

// Linux uapi <linux/vfio.h>; vfio-ioctls uses these but does not export them.
/// VFIO_PCI_BAR0_REGION_INDEX.
const BAR0_REGION: u32 = 0;
/// VFIO_PCI_CONFIG_REGION_INDEX.
const CONFIG_REGION: u32 = 7;
/// VFIO_REGION_INFO_FLAG_READ.
const REGION_FLAG_READ: u32 = 1 << 0;
/// VFIO_REGION_INFO_FLAG_WRITE.
const REGION_FLAG_WRITE: u32 = 1 << 1;
/// VFIO_REGION_INFO_FLAG_MMAP.
const REGION_FLAG_MMAP: u32 = 1 << 2;
/// VFIO_DEVICE_RESET = _IO(VFIO_TYPE ';', VFIO_BASE 100 + 11); vfio-ioctls'
/// own test pins the same value (15215).
const VFIO_DEVICE_RESET: libc::Ioctl = 0x3b6f;

// PCI configuration header (PCI Local Bus 3.0 §6.1, §6.2.2).
const CONFIG_VENDOR_ID: u64 = 0x00;
const CONFIG_COMMAND: u64 = 0x04;
const COMMAND_MEMORY_SPACE: u16 = 1 << 1;
const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// The standard header; a config region smaller than this is not PCI.
const CONFIG_HEADER_LEN: u64 = 64;

/// Linux capability number of CAP_IPC_LOCK, which lifts RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

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
                 its unsafe no-IOMMU mode, which this driver does not support; turn the IOMMU on \
                 (intel_iommu=on or amd_iommu=on, check with `hw-setup/check-iommu.sh`)"
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
            | VfioError::Mmap { error, .. } => Some(error),
            VfioError::Vfio { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Where the checks look: `/sys` and `/dev/vfio` on a real system.
#[derive(Debug, Clone)]
pub struct VfioPaths {
    /// Sysfs.
    pub sysfs: Sysfs,
    /// The directory of the VFIO device nodes.
    pub dev_vfio: PathBuf,
}

impl Default for VfioPaths {
    fn default() -> Self {
        VfioPaths {
            sysfs: Sysfs::default(),
            dev_vfio: PathBuf::from("/dev/vfio"),
        }
    }
}

/// The VFIO state of the process: its one container and what is open in it.
struct ProcessVfio {
    /// Created by the first open and kept for the life of the process.
    mapper: Option<Arc<VfioContainerMapper>>,
    /// Open devices per IOMMU group. This process holds `/dev/vfio/N` open
    /// for these groups, so opening it again would fail with EBUSY: the
    /// node check is skipped for them.
    groups: BTreeMap<u32, usize>,
    /// Open functions.
    open: BTreeSet<PciAddress>,
}

static PROCESS: Mutex<ProcessVfio> = Mutex::new(ProcessVfio {
    mapper: None,
    groups: BTreeMap::new(),
    open: BTreeSet::new(),
});

/// The process's VFIO state. A panic while it was held leaves it consistent
/// (every update is a single insert or remove), so a poisoned lock is used.
fn process() -> MutexGuard<'static, ProcessVfio> {
    PROCESS.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProcessVfio {
    fn container_mapper(
        &mut self,
        addr: &PciAddress,
    ) -> Result<Arc<VfioContainerMapper>, VfioError> {
        if let Some(mapper) = &self.mapper {
            return Ok(mapper.clone());
        }
        let container = VfioContainer::new(None).map_err(|error| VfioError::Vfio {
            addr: *addr,
            step: "container open",
            error,
        })?;
        let mapper = Arc::new(VfioContainerMapper::new(Arc::new(container)));
        self.mapper = Some(mapper.clone());
        Ok(mapper)
    }
}

/// Every check [`VfioPciDevice::open`] makes before touching VFIO, without
/// opening anything for longer than the check: apps call it early to fail
/// with a clear message. On success, what sysfs says about the function.
pub fn preflight(addr: &PciAddress) -> Result<PciFunctionInfo, VfioError> {
    preflight_at(&VfioPaths::default(), addr)
}

/// [`preflight`] against other sysfs and `/dev/vfio` roots (for tests).
pub fn preflight_at(paths: &VfioPaths, addr: &PciAddress) -> Result<PciFunctionInfo, VfioError> {
    let state = process();
    checks(paths, addr, &state)
}

/// The checks, in order: sysfs ([`Sysfs::check_vfio_ready`]: function,
/// IOMMU group, vfio-pci binding, group viability), `/dev/vfio/vfio`,
/// `/dev/vfio/N` (unless this process holds it already).
fn checks(
    paths: &VfioPaths,
    addr: &PciAddress,
    state: &ProcessVfio,
) -> Result<PciFunctionInfo, VfioError> {
    let info = paths.sysfs.check_vfio_ready(addr)?;
    let container = paths.dev_vfio.join("vfio");
    match std::fs::metadata(&container) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VfioError::ModuleNotLoaded { path: container })
        }
        Err(error) => {
            return Err(VfioError::DevVfio {
                path: container,
                error,
            })
        }
    }
    if !state.groups.contains_key(&info.iommu_group) {
        check_group_node(&paths.dev_vfio, addr, info.iommu_group)?;
    }
    Ok(info)
}

/// Open and close `/dev/vfio/N` read-write, as VFIO will.
fn check_group_node(dev_vfio: &Path, addr: &PciAddress, group: u32) -> Result<(), VfioError> {
    let node = dev_vfio.join(group.to_string());
    match OpenOptions::new().read(true).write(true).open(&node) {
        Ok(_file) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(VfioError::GroupDeviceMissing {
            addr: *addr,
            group,
            noiommu: dev_vfio.join(format!("noiommu-{group}")).exists(),
        }),
        Err(error) => Err(group_open_error(&node, group, error)),
    }
}

fn group_open_error(node: &Path, group: u32, error: io::Error) -> VfioError {
    match error.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => VfioError::GroupPermission { group },
        Some(libc::EBUSY) => VfioError::GroupBusy { group },
        _ => VfioError::DevVfio {
            path: node.to_path_buf(),
            error,
        },
    }
}

/// A vfio-ioctls error, with the group-open errors mapped like ours.
fn wrap_vfio_error(
    addr: &PciAddress,
    group: u32,
    step: &'static str,
    error: vfio_ioctls::VfioError,
) -> VfioError {
    match error {
        vfio_ioctls::VfioError::OpenGroup(e, _) => {
            group_open_error(&Path::new("/dev/vfio").join(group.to_string()), group, e)
        }
        error => VfioError::Vfio {
            addr: *addr,
            step,
            error,
        },
    }
}

/// Ok if `bytes` more of DMA memory can be locked and mapped: the soft
/// RLIMIT_MEMLOCK must cover them plus what the process has locked already,
/// unless the process has CAP_IPC_LOCK (root usually has), which lifts the
/// limit. VFIO counts every mapped page against this limit, so pass the
/// total DMA memory the process is about to allocate.
pub fn memlock_check(bytes: u64) -> Result<(), VfioError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives on our stack.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        None
    } else {
        Some(lim.rlim_cur)
    };
    // Unreadable status: assume nothing locked and no capability; the limit
    // check then errs on the side of a message.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    memlock_verdict(
        bytes,
        limit,
        locked_bytes(&status),
        has_capability(&status, CAP_IPC_LOCK),
    )
}

fn memlock_verdict(
    bytes: u64,
    limit: Option<u64>,
    locked: u64,
    cap_ipc_lock: bool,
) -> Result<(), VfioError> {
    let Some(limit) = limit else { return Ok(()) };
    if cap_ipc_lock || locked.saturating_add(bytes) <= limit {
        return Ok(());
    }
    Err(VfioError::MemlockTooLow {
        bytes,
        locked,
        limit,
    })
}

/// `VmLck` of /proc/self/status in bytes (0 if absent).
fn locked_bytes(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb.saturating_mul(1024))
}

/// Whether capability `cap` is in `CapEff` of /proc/self/status.
fn has_capability(status: &str, cap: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// BAR0 of a function, mmap'd: registers are read and written by volatile
/// accesses of 4 or 8 bytes, never wider (QEMU's NVMe model refuses wider
/// ones).
///
/// Clones share one mapping, which is unmapped when the last clone is
/// dropped; the mapping keeps the device open, so a clone may outlive the
/// [`VfioPciDevice`] it came from.
#[derive(Debug, Clone)]
pub struct VfioBar {
    // Copies of the mapping's base and length, so an access does not go
    // through the Arc.
    base: NonNull<u8>,
    len: usize,
    _mapping: Arc<BarMapping>,
}

// SAFETY: the mapping is device memory with no thread affinity. Every access
// is a volatile access through a raw pointer, never a Rust reference; what
// concurrent register accesses mean is the device's and the driver's business.
unsafe impl Send for VfioBar {}
// SAFETY: as above; `&VfioBar` only allows those volatile accesses.
unsafe impl Sync for VfioBar {}

/// An mmap'd BAR, unmapped on drop, then releasing its hold on the device.
struct BarMapping {
    base: NonNull<u8>,
    len: usize,
    /// The device file must stay open while it is mapped: VFIO will not
    /// release the IOMMU group while a mapping holds the file. None only
    /// for the test stand-ins over anonymous memory.
    device: Option<Arc<OpenDevice>>,
}

impl fmt::Debug for BarMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarMapping")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: the mapping can be unmapped from any thread; the pointer is never
// dereferenced through this type.
unsafe impl Send for BarMapping {}
// SAFETY: `&BarMapping` gives no access to the memory.
unsafe impl Sync for BarMapping {}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is a mapping this value owns, and every
        // VfioBar (the only users of the pointer) holds this value through
        // an Arc, so none is left.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
        // `device` drops after this, closing the device if it was the last hold.
    }
}

impl BarMapping {
    fn into_bar(self) -> VfioBar {
        VfioBar {
            base: self.base,
            len: self.len,
            _mapping: Arc::new(self),
        }
    }
}

impl VfioBar {
    /// Size of the BAR in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty BAR0 is refused when opening.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The register of type `T` at `offset`.
    ///
    /// Panics if it is misaligned or not entirely inside the BAR: register
    /// offsets come from driver code, never from the device, so that is a
    /// driver bug, and an access outside the mapping must never happen.
    #[inline]
    fn register<T>(&self, offset: usize) -> NonNull<T> {
        let size = size_of::<T>();
        assert!(
            offset.is_multiple_of(size)
                && offset.checked_add(size).is_some_and(|end| end <= self.len),
            "register access of {size} bytes at {offset:#x} is misaligned or outside BAR0 of \
             {:#x} bytes (a driver bug)",
            self.len
        );
        // SAFETY: offset + size <= len (checked above), so the result lies
        // inside the mapping and is not null.
        unsafe { self.base.add(offset).cast() }
    }
}

impl RegisterAccess for VfioBar {
    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        let reg = self.register::<u32>(offset);
        // SAFETY: `reg` is inside the mapping, which stays mapped while this
        // VfioBar holds `_mapping`; it is 4-byte aligned (the mapping is page
        // aligned, the offset checked); the BAR is reached only through
        // volatile accesses, never references.
        let value = unsafe { VolatilePtr::new_read_only(reg) }.read();
        // PCI registers are little endian.
        u32::from_le(value)
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        let reg = self.register::<u32>(offset);
        // SAFETY: as in `read32`.
        unsafe { VolatilePtr::new(reg) }.write(value.to_le())
    }

    #[inline]
    fn read64(&self, offset: usize) -> u64 {
        let reg = self.register::<u64>(offset);
        // SAFETY: as in `read32`, 8-byte aligned. On x86_64 an aligned
        // volatile u64 access is one 8-byte move, never split or widened.
        let value = unsafe { VolatilePtr::new_read_only(reg) }.read();
        u64::from_le(value)
    }

    #[inline]
    fn write64(&self, offset: usize, value: u64) {
        let reg = self.register::<u64>(offset);
        // SAFETY: as in `read64`.
        unsafe { VolatilePtr::new(reg) }.write(value.to_le())
    }
}

/// Whether sparse-mmap `areas` together cover `0..size`.
fn areas_cover(areas: &[VfioRegionSparseMmapArea], size: u64) -> bool {
    let mut areas = areas.to_vec();
    areas.sort_by_key(|a| a.offset);
    let mut covered = 0u64;
    for a in areas {
        if a.offset > covered {
            return false;
        }
        covered = covered.max(a.offset.saturating_add(a.size));
    }
    covered >= size
}

/// A VFIO region's place in the device file.
#[derive(Debug, Clone, Copy)]
struct RegionInfo {
    offset: u64,
    size: u64,
}

/// An open VFIO device, shared by its [`VfioPciDevice`] and its BAR
/// mappings: closed when the last of them is dropped.
struct OpenDevice {
    // Fields drop in this order: the device closes (detaching its group from
    // the container if it was the group's last device), then it leaves the
    // process's VFIO state.
    device: VfioDevice,
    _registration: Registration,
}

/// Removes a device from the process's VFIO state when it is dropped.
struct Registration {
    addr: PciAddress,
    group: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = process();
        state.open.remove(&self.addr);
        if let Some(n) = state.groups.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                state.groups.remove(&self.group);
            }
        }
    }
}

/// A PCI function opened through VFIO: reset, memory space and bus
/// mastering on, BAR0 mapped. Drivers reach its registers through
/// [`RegisterAccess`] (implemented here and by [`VfioBar`]) and map DMA
/// memory with [`VfioPciDevice::mapper`].
pub struct VfioPciDevice {
    bar0: VfioBar,
    device: Arc<OpenDevice>,
    mapper: Arc<VfioContainerMapper>,
    config: RegionInfo,
    addr: PciAddress,
    ids: PciIds,
    group: u32,
    reset: bool,
}

impl fmt::Debug for VfioPciDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioPciDevice")
            .field("addr", &self.addr)
            .field("ids", &self.ids)
            .field("group", &self.group)
            .field("bar0_len", &self.bar0.len())
            .field("reset", &self.reset)
            .finish_non_exhaustive()
    }
}

impl VfioPciDevice {
    /// Open the function at `addr`: run the [`preflight`] checks, attach its
    /// IOMMU group to the process's VFIO container, reset the function,
    /// enable memory space and bus mastering, and map BAR0.
    pub fn open(addr: &PciAddress) -> Result<VfioPciDevice, VfioError> {
        let paths = VfioPaths::default();
        // Held for the whole open: opens are rare, and this keeps the
        // container creation and the group bookkeeping simple.
        let mut state = process();
        if state.open.contains(addr) {
            return Err(VfioError::AlreadyOpen { addr: *addr });
        }
        let info = checks(&paths, addr, &state)?;
        let group = info.iommu_group;
        let mapper = state.container_mapper(addr)?;
        let ops: Arc<dyn VfioOps> = mapper.container().clone();
        let device = VfioDevice::new(&paths.sysfs.device_dir(addr), ops, false)
            .map_err(|e| wrap_vfio_error(addr, group, "device open", e))?;

        // From here on a failure drops `device`, which detaches the group
        // from the container again if no other device of it is open.
        let config = config_region(&device, addr)?;
        let mut id = [0u8; 4];
        config_read(&device, config, addr, CONFIG_VENDOR_ID, &mut id)?;
        let found = (
            u16::from_le_bytes([id[0], id[1]]),
            u16::from_le_bytes([id[2], id[3]]),
        );
        let expected = (info.ids.vendor, info.ids.device);
        if found != expected {
            return Err(VfioError::ConfigMismatch {
                addr: *addr,
                sysfs: expected,
                config: found,
            });
        }
        // Reset before enabling bus mastering, so nothing a previous user
        // left running in the device can DMA into our memory. The kernel
        // saves and restores config space around the reset.
        let reset = function_reset(&device, addr)?;
        enable_memory_and_bus_master(&device, config, addr)?;
        let mut bar0 = map_bar0(&device, &paths.sysfs, addr)?;

        // Nothing can fail from here on. (A Registration must never be
        // dropped here: its drop takes the lock this function holds.)
        state.open.insert(*addr);
        *state.groups.entry(group).or_insert(0) += 1;
        let device = Arc::new(OpenDevice {
            device,
            _registration: Registration { addr: *addr, group },
        });
        bar0.device = Some(device.clone());
        Ok(VfioPciDevice {
            bar0: bar0.into_bar(),
            device,
            mapper,
            config,
            addr: *addr,
            ids: info.ids,
            group,
            reset,
        })
    }

    /// The function's address.
    pub fn addr(&self) -> PciAddress {
        self.addr
    }

    /// Vendor, device and class.
    pub fn ids(&self) -> PciIds {
        self.ids
    }

    /// Vendor ID.
    pub fn vendor_id(&self) -> u16 {
        self.ids.vendor
    }

    /// Device ID.
    pub fn device_id(&self) -> u16 {
        self.ids.device
    }

    /// Class code (24 bits).
    pub fn class(&self) -> u32 {
        self.ids.class
    }

    /// The IOMMU group.
    pub fn iommu_group(&self) -> u32 {
        self.group
    }

    /// Whether the open reset the function. False when the device offers no
    /// reset method to VFIO; the driver's own controller reset still runs.
    pub fn was_reset(&self) -> bool {
        self.reset
    }

    /// BAR0. Clone it to give a driver its own handle.
    pub fn bar0(&self) -> &VfioBar {
        &self.bar0
    }

    /// The process's VFIO container as a DMA mapper: memory mapped through
    /// it is reachable by every device open in this process. Keep a device
    /// open while its DMA memory is mapped: when the last device of the
    /// process closes, the kernel drops the container's mappings.
    pub fn mapper(&self) -> Arc<dyn dma::Mapper> {
        self.mapper.clone()
    }

    /// The same container as its concrete type.
    pub fn container_mapper(&self) -> &Arc<VfioContainerMapper> {
        &self.mapper
    }

    /// Read `buf.len()` bytes of config space at `offset`. Offsets come from
    /// the driver or from capability pointers the device wrote, so an offset
    /// outside config space is an error, not a panic.
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        config_read(&self.device.device, self.config, &self.addr, offset, buf)
    }

    /// Write `buf` to config space at `offset`.
    pub fn write_config(&self, offset: u64, buf: &[u8]) -> Result<(), VfioError> {
        config_write(&self.device.device, self.config, &self.addr, offset, buf)
    }
}

impl RegisterAccess for VfioPciDevice {
    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        self.bar0.read32(offset)
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        self.bar0.write32(offset, value)
    }

    #[inline]
    fn read64(&self, offset: usize) -> u64 {
        self.bar0.read64(offset)
    }

    #[inline]
    fn write64(&self, offset: usize, value: u64) {
        self.bar0.write64(offset, value)
    }
}

/// The config region, checked to be readable, writable and a PCI header.
fn config_region(device: &VfioDevice, addr: &PciAddress) -> Result<RegionInfo, VfioError> {
    let flags = device.get_region_flags(CONFIG_REGION);
    let size = device.get_region_size(CONFIG_REGION);
    if flags & (REGION_FLAG_READ | REGION_FLAG_WRITE) != REGION_FLAG_READ | REGION_FLAG_WRITE
        || size < CONFIG_HEADER_LEN
    {
        return Err(VfioError::ConfigAccess {
            addr: *addr,
            offset: 0,
            write: false,
            error: io::Error::other(format!(
                "VFIO config region has flags {flags:#x} and {size} bytes, not a read-write PCI header"
            )),
        });
    }
    Ok(RegionInfo {
        offset: device.get_region_offset(CONFIG_REGION),
        size,
    })
}

/// The file offset of `len` bytes at `offset` in `region`, if inside it.
fn region_offset(region: RegionInfo, offset: u64, len: usize) -> io::Result<libc::off_t> {
    let end = offset.checked_add(len as u64);
    if end.is_none_or(|end| end > region.size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{len} bytes at {offset:#x} are outside the region of {:#x} bytes",
                region.size
            ),
        ));
    }
    region
        .offset
        .checked_add(offset)
        .and_then(|o| libc::off_t::try_from(o).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "region offset overflows"))
}

// vfio-ioctls' region_read/region_write log and drop I/O errors, so config
// space is read and written here with pread/pwrite on the device file.

fn config_read(
    device: &VfioDevice,
    region: RegionInfo,
    addr: &PciAddress,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), VfioError> {
    let fail = |error| VfioError::ConfigAccess {
        addr: *addr,
        offset,
        write: false,
        error,
    };
    let mut pos = region_offset(region, offset, buf.len()).map_err(fail)?;
    let mut rest = buf;
    while !rest.is_empty() {
        // SAFETY: `rest` is a writable buffer of `rest.len()` bytes, and the
        // fd belongs to `device`, which is borrowed for the whole call.
        let n = unsafe {
            libc::pread(
                device.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                pos,
            )
        };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(fail(e));
                }
            }
            0 => return Err(fail(io::ErrorKind::UnexpectedEof.into())),
            n => {
                // 0 < n <= rest.len(), so both conversions are exact.
                rest = &mut rest[n as usize..];
                pos += n as libc::off_t;
            }
        }
    }
    Ok(())
}

fn config_write(
    device: &VfioDevice,
    region: RegionInfo,
    addr: &PciAddress,
    offset: u64,
    buf: &[u8],
) -> Result<(), VfioError> {
    let fail = |error| VfioError::ConfigAccess {
        addr: *addr,
        offset,
        write: true,
        error,
    };
    let mut pos = region_offset(region, offset, buf.len()).map_err(fail)?;
    let mut rest = buf;
    while !rest.is_empty() {
        // SAFETY: `rest` is a readable buffer of `rest.len()` bytes, and the
        // fd belongs to `device`, which is borrowed for the whole call.
        let n = unsafe { libc::pwrite(device.as_raw_fd(), rest.as_ptr().cast(), rest.len(), pos) };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(fail(e));
                }
            }
            0 => return Err(fail(io::ErrorKind::WriteZero.into())),
            n => {
                rest = &rest[n as usize..];
                pos += n as libc::off_t;
            }
        }
    }
    Ok(())
}

/// VFIO_DEVICE_RESET. Ok(false) when the device has no reset method.
/// vfio-ioctls' `VfioDevice::reset` drops the result, so the ioctl is made
/// here. The kernel may answer EAGAIN when the device lock is contended.
fn function_reset(device: &VfioDevice, addr: &PciAddress) -> Result<bool, VfioError> {
    let mut attempts = 0;
    loop {
        // SAFETY: VFIO_DEVICE_RESET takes no argument; the fd is the VFIO
        // device fd owned by `device`, borrowed for the call.
        let ret = unsafe { libc::ioctl(device.as_raw_fd(), VFIO_DEVICE_RESET) };
        if ret == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        attempts += 1;
        match error.raw_os_error() {
            // vfio-pci answers EINVAL when the device has no usable reset.
            Some(libc::EINVAL) => return Ok(false),
            Some(libc::EAGAIN) | Some(libc::EINTR) if attempts < 5 => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return Err(VfioError::Reset { addr: *addr, error }),
        }
    }
}

/// Set memory space and bus master in the command register and check that
/// they stuck (PCI Local Bus 3.0 §6.2.2).
fn enable_memory_and_bus_master(
    device: &VfioDevice,
    config: RegionInfo,
    addr: &PciAddress,
) -> Result<(), VfioError> {
    let wanted = COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER;
    let mut raw = [0u8; 2];
    config_read(device, config, addr, CONFIG_COMMAND, &mut raw)?;
    let command = u16::from_le_bytes(raw);
    if command & wanted != wanted {
        config_write(
            device,
            config,
            addr,
            CONFIG_COMMAND,
            &(command | wanted).to_le_bytes(),
        )?;
    }
    config_read(device, config, addr, CONFIG_COMMAND, &mut raw)?;
    let command = u16::from_le_bytes(raw);
    if command & wanted != wanted {
        return Err(VfioError::EnableFailed {
            addr: *addr,
            command,
        });
    }
    Ok(())
}

/// mmap BAR0 after checking it against sysfs and VFIO's region flags.
fn map_bar0(
    device: &VfioDevice,
    sysfs: &Sysfs,
    addr: &PciAddress,
) -> Result<BarMapping, VfioError> {
    let size = device.get_region_size(BAR0_REGION);
    let flags = device.get_region_flags(BAR0_REGION);
    if size == 0 {
        return Err(VfioError::Bar0Missing { addr: *addr });
    }
    // vfio-ioctls keeps regions in a list that skips any whose info failed,
    // so check that region 0 is what sysfs calls BAR0.
    let sysfs_len = sysfs.bar_len(addr, 0)?;
    if sysfs_len != Some(size) {
        return Err(VfioError::Bar0SizeMismatch {
            addr: *addr,
            vfio: size,
            sysfs: sysfs_len,
        });
    }
    let rw = REGION_FLAG_READ | REGION_FLAG_WRITE;
    if flags & rw != rw || flags & REGION_FLAG_MMAP == 0 {
        return Err(VfioError::Bar0NotMappable { addr: *addr, flags });
    }
    for cap in device.get_region_caps(BAR0_REGION) {
        if let VfioRegionInfoCap::SparseMmap(sparse) = cap {
            if !areas_cover(&sparse.areas, size) {
                return Err(VfioError::Bar0Sparse { addr: *addr });
            }
        }
    }
    let not_mappable = || VfioError::Bar0NotMappable { addr: *addr, flags };
    let len = usize::try_from(size).map_err(|_| not_mappable())?;
    let offset =
        libc::off_t::try_from(device.get_region_offset(BAR0_REGION)).map_err(|_| not_mappable())?;
    // SAFETY: a new shared mapping of the device file at BAR0's offset, at
    // an address the kernel picks, so no existing memory is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            device.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(VfioError::Mmap {
            addr: *addr,
            error: io::Error::last_os_error(),
        });
    }
    match NonNull::new(ptr.cast::<u8>()) {
        Some(base) => Ok(BarMapping {
            base,
            len,
            device: None,
        }),
        // A successful mmap without MAP_FIXED never returns address 0.
        None => Err(VfioError::Mmap {
            addr: *addr,
            error: io::Error::other("mmap returned address 0"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::tests::FakeSysfs;

    /// A VfioBar over anonymous memory, standing in for BAR0.
    fn fake_bar(len: usize) -> VfioBar {
        // SAFETY: a fresh anonymous mapping; VfioBar's drop unmaps it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        BarMapping {
            base: NonNull::new(ptr.cast()).unwrap(),
            len,
            device: None,
        }
        .into_bar()
    }

    #[test]
    fn bar_reads_back_what_was_written_little_endian() {
        let bar = fake_bar(0x4000);
        bar.write32(0x14, 0x0046_0001);
        assert_eq!(bar.read32(0x14), 0x0046_0001);
        bar.write64(0x28, 0x1_2345_6000);
        assert_eq!(bar.read64(0x28), 0x1_2345_6000);
        // The low dword of a 64-bit register is at the lower address.
        assert_eq!(bar.read32(0x28), 0x2345_6000);
        assert_eq!(bar.read32(0x2c), 0x1);
        // The last dword and qword of the BAR are in range.
        bar.write32(0x3ffc, 7);
        assert_eq!(bar.read32(0x3ffc), 7);
        assert_eq!(bar.read64(0x3ff8), 7 << 32);
        assert_eq!(bar.len(), 0x4000);
    }

    #[test]
    fn bar_clones_share_the_mapping_and_outlive_the_original() {
        let bar = fake_bar(0x1000);
        let clone = bar.clone();
        bar.write32(0x10, 0xabcd);
        drop(bar);
        // Still mapped: the clone holds the mapping.
        assert_eq!(clone.read32(0x10), 0xabcd);
        assert_eq!(Arc::strong_count(&clone._mapping), 1);
    }

    #[test]
    #[should_panic(
        expected = "register access of 4 bytes at 0x4000 is misaligned or outside BAR0 of 0x4000 bytes"
    )]
    fn bar_access_past_the_end_panics() {
        fake_bar(0x4000).read32(0x4000);
    }

    #[test]
    #[should_panic(expected = "register access of 8 bytes at 0x3ffc")]
    fn bar_wide_access_straddling_the_end_panics() {
        fake_bar(0x4000).write64(0x3ffc, 0);
    }

    #[test]
    #[should_panic(expected = "register access of 4 bytes at 0x2")]
    fn misaligned_bar_access_panics() {
        fake_bar(0x4000).read32(0x2);
    }

    #[test]
    #[should_panic(expected = "outside BAR0")]
    fn bar_offset_that_would_overflow_panics() {
        fake_bar(0x4000).read64(usize::MAX - 7);
    }

    fn paths(fake: &FakeSysfs) -> VfioPaths {
        let dev_vfio = fake.root.join("dev-vfio");
        std::fs::create_dir_all(&dev_vfio).unwrap();
        VfioPaths {
            sysfs: fake.sysfs(),
            dev_vfio,
        }
    }

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    // Group numbers in these tests are far above any real group, so the
    // process state (groups held by real opens) never covers them.

    #[test]
    fn preflight_passes_when_everything_is_in_place() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(9007));
        let p = paths(&fake);
        std::fs::write(p.dev_vfio.join("vfio"), "").unwrap();
        std::fs::write(p.dev_vfio.join("9007"), "").unwrap();
        let info = preflight_at(&p, &addr("03:00.0")).unwrap();
        assert_eq!(info.iommu_group, 9007);
        assert_eq!(info.ids.vendor, 0x1b36);
    }

    #[test]
    fn preflight_passes_sysfs_errors_through() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("nvme"), Some(9007));
        let p = paths(&fake);
        std::fs::write(p.dev_vfio.join("vfio"), "").unwrap();
        std::fs::write(p.dev_vfio.join("9007"), "").unwrap();
        let err = preflight_at(&p, &addr("03:00.0")).unwrap_err();
        assert!(
            matches!(&err, VfioError::Pci(PciError::NotBoundToVfio { driver: Some(d), .. }) if d == "nvme"),
            "{err:?}"
        );
        // The message is the sysfs error's own.
        assert!(err.to_string().starts_with("0000:03:00.0 is bound to nvme"));
        let err = preflight_at(&p, &addr("04:00.0")).unwrap_err();
        assert!(
            matches!(err, VfioError::Pci(PciError::DeviceNotFound { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn missing_container_node_means_the_module_is_not_loaded() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(9007));
        let p = paths(&fake);
        std::fs::write(p.dev_vfio.join("9007"), "").unwrap();
        let err = preflight_at(&p, &addr("03:00.0")).unwrap_err();
        assert!(matches!(err, VfioError::ModuleNotLoaded { .. }), "{err:?}");
        assert!(err.to_string().contains("`modprobe vfio-pci`"));
    }

    #[test]
    fn missing_group_node_is_reported_and_noiommu_mode_recognised() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(9007));
        let p = paths(&fake);
        std::fs::write(p.dev_vfio.join("vfio"), "").unwrap();
        let err = preflight_at(&p, &addr("03:00.0")).unwrap_err();
        assert!(
            matches!(
                err,
                VfioError::GroupDeviceMissing {
                    group: 9007,
                    noiommu: false,
                    ..
                }
            ),
            "{err:?}"
        );
        std::fs::write(p.dev_vfio.join("noiommu-9007"), "").unwrap();
        let err = preflight_at(&p, &addr("03:00.0")).unwrap_err();
        assert!(
            matches!(
                err,
                VfioError::GroupDeviceMissing {
                    group: 9007,
                    noiommu: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("no-IOMMU mode"));
    }

    #[test]
    fn group_node_open_errors_map_to_their_causes() {
        let node = Path::new("/dev/vfio/12");
        let e = group_open_error(node, 12, io::Error::from_raw_os_error(libc::EACCES));
        assert!(
            matches!(e, VfioError::GroupPermission { group: 12 }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "no permission on /dev/vfio/12: run as root or see hw-setup/nonroot.sh"
        );
        let e = group_open_error(node, 12, io::Error::from_raw_os_error(libc::EBUSY));
        assert!(matches!(e, VfioError::GroupBusy { group: 12 }), "{e:?}");
        assert!(e.to_string().contains("in use by another process"));
        let e = group_open_error(node, 12, io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, VfioError::DevVfio { .. }), "{e:?}");
        // vfio-ioctls' own group-open failure gets the same treatment.
        let e = wrap_vfio_error(
            &addr("03:00.0"),
            12,
            "device open",
            vfio_ioctls::VfioError::OpenGroup(
                io::Error::from_raw_os_error(libc::EBUSY),
                "12".into(),
            ),
        );
        assert!(matches!(e, VfioError::GroupBusy { group: 12 }), "{e:?}");
    }

    #[test]
    fn vfio_ioctls_errors_keep_their_text() {
        let e = wrap_vfio_error(
            &addr("03:00.0"),
            12,
            "device open",
            vfio_ioctls::VfioError::GroupViable,
        );
        assert_eq!(
            e.to_string(),
            "VFIO device open failed for 0000:03:00.0: group is not viable; bind every device \
             of the IOMMU group to vfio-pci (`hw-setup/devbind.sh status` lists them)"
        );
    }

    #[test]
    fn group_node_that_cannot_be_opened_read_write_is_refused() {
        // A directory stands in for a node that exists but cannot be
        // opened for writing (EISDIR), even by root.
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(9007));
        let p = paths(&fake);
        std::fs::write(p.dev_vfio.join("vfio"), "").unwrap();
        std::fs::create_dir(p.dev_vfio.join("9007")).unwrap();
        let err = preflight_at(&p, &addr("03:00.0")).unwrap_err();
        assert!(matches!(err, VfioError::DevVfio { .. }), "{err:?}");
    }

    #[test]
    fn open_of_a_missing_device_fails_before_touching_vfio() {
        // Domain ffff does not exist on any machine that runs these tests.
        let err = VfioPciDevice::open(&addr("ffff:ff:1f.7")).unwrap_err();
        assert!(
            matches!(
                err,
                VfioError::Pci(PciError::DeviceNotFound { .. })
                    | VfioError::Pci(PciError::Sysfs { .. })
            ),
            "{err:?}"
        );
        // The checks run before the container is created.
        let state = process();
        assert!(state.mapper.is_none());
        assert!(!state.open.contains(&addr("ffff:ff:1f.7")));
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

    #[test]
    fn memlock_verdicts() {
        let mib = 1 << 20;
        // Unlimited, or lifted by CAP_IPC_LOCK.
        assert!(memlock_verdict(u64::MAX, None, 0, false).is_ok());
        assert!(memlock_verdict(u64::MAX, Some(64 * mib), 0, true).is_ok());
        // Fits exactly, counting what is locked already.
        assert!(memlock_verdict(48 * mib, Some(64 * mib), 16 * mib, false).is_ok());
        let err = memlock_verdict(49 * mib, Some(64 * mib), 16 * mib, false).unwrap_err();
        assert!(
            matches!(err, VfioError::MemlockTooLow { bytes, locked, limit }
                if bytes == 49 * mib && locked == 16 * mib && limit == 64 * mib),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "DMA memory of 50176 KiB (with 16384 KiB already locked) exceeds RLIMIT_MEMLOCK of \
             65536 KiB; raise it with `ulimit -l unlimited` (as root) or see hw-setup/nonroot.sh"
        );
        // No overflow with huge requests.
        assert!(memlock_verdict(u64::MAX, Some(64 * mib), 1, false).is_err());
        // The real check agrees with itself for zero bytes.
        assert!(memlock_check(0).is_ok());
    }

    #[test]
    fn proc_status_fields_are_parsed() {
        let status = "Name:\tx\nVmLck:\t     128 kB\nCapEff:\t0000000000004000\n";
        assert_eq!(locked_bytes(status), 128 * 1024);
        assert!(has_capability(status, CAP_IPC_LOCK));
        assert!(!has_capability(status, 13));
        let none = "Name:\tx\nCapEff:\t0000000000000000\n";
        assert_eq!(locked_bytes(none), 0);
        assert!(!has_capability(none, CAP_IPC_LOCK));
        assert!(!has_capability("", CAP_IPC_LOCK));
    }

    #[test]
    fn sparse_mmap_coverage() {
        let area = |offset, size| VfioRegionSparseMmapArea { offset, size };
        assert!(areas_cover(&[area(0, 0x4000)], 0x4000));
        assert!(areas_cover(
            &[area(0x2000, 0x2000), area(0, 0x2000)],
            0x4000
        ));
        // A hole where the MSI-X table is.
        assert!(!areas_cover(
            &[area(0, 0x1000), area(0x3000, 0x1000)],
            0x4000
        ));
        assert!(!areas_cover(&[area(0, 0x3000)], 0x4000));
        assert!(!areas_cover(&[], 0x4000));
    }

    #[test]
    fn region_offsets_are_bounds_checked() {
        let r = RegionInfo {
            offset: 7 << 40,
            size: 256,
        };
        assert_eq!(region_offset(r, 4, 2).unwrap(), (7 << 40) + 4);
        assert_eq!(region_offset(r, 252, 4).unwrap(), (7 << 40) + 252);
        assert!(region_offset(r, 253, 4).is_err());
        assert!(region_offset(r, u64::MAX, 1).is_err());
    }
}
