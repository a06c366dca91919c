//! The checks before an open, each naming a cause and a fix: sysfs (function,
//! IOMMU, vfio-pci binding, group viability), the VFIO module, permission on
//! the group's node; and the RLIMIT_MEMLOCK check for DMA memory.

use super::error::VfioError;
use super::noiommu;
use super::process::{process, ProcessVfio};
use crate::pci::{PciAddress, PciFunctionInfo, Sysfs};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// Linux capability number of CAP_IPC_LOCK, which lifts RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

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

/// Every check [`VfioPciDevice::open`](crate::vfio::VfioPciDevice::open) makes before touching VFIO, without
/// opening anything for longer than the check: apps call it early to fail
/// with a clear message. On success, what sysfs says about the function.
pub fn preflight(addr: &PciAddress) -> Result<PciFunctionInfo, VfioError> {
    preflight_at(&VfioPaths::default(), addr)
}

/// [`preflight`] against other sysfs and `/dev/vfio` roots (for tests).
/// A no-IOMMU group passes only with the opt-in
/// ([`OPT_IN_VAR`](crate::vfio::NOIOMMU_OPT_IN_VAR)`=1`).
pub fn preflight_at(paths: &VfioPaths, addr: &PciAddress) -> Result<PciFunctionInfo, VfioError> {
    let opt_in = noiommu::opt_in()?;
    let state = process();
    checks(paths, addr, &state, opt_in).map(|c| c.info)
}

/// What the checks found.
pub(super) struct Checked {
    /// What sysfs says about the function.
    pub(super) info: PciFunctionInfo,
    /// Its group is `/dev/vfio/noiommu-N` (and the user opted in).
    pub(super) noiommu: bool,
}

/// The checks, in order: sysfs ([`Sysfs::check_vfio_ready`]: function,
/// IOMMU group, vfio-pci binding, group viability), `/dev/vfio/vfio`,
/// `/dev/vfio/N` (unless this process holds it already), or with
/// `noiommu_opt_in` `/dev/vfio/noiommu-N` in its place.
pub(super) fn checks(
    paths: &VfioPaths,
    addr: &PciAddress,
    state: &ProcessVfio,
    noiommu_opt_in: bool,
) -> Result<Checked, VfioError> {
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
    let group = info.iommu_group;
    let noiommu = if state.groups.contains_key(&group) {
        state.noiommu_groups.contains(&group)
    } else {
        check_group_node(&paths.dev_vfio, addr, group, noiommu_opt_in)?
    };
    Ok(Checked { info, noiommu })
}

/// Open and close `/dev/vfio/N` read-write, as VFIO will; if only
/// `/dev/vfio/noiommu-N` exists and the user opted in, that one. True for
/// a no-IOMMU group.
fn check_group_node(
    dev_vfio: &Path,
    addr: &PciAddress,
    group: u32,
    noiommu_opt_in: bool,
) -> Result<bool, VfioError> {
    let node = dev_vfio.join(group.to_string());
    match OpenOptions::new().read(true).write(true).open(&node) {
        Ok(_file) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let noiommu = dev_vfio.join(format!("noiommu-{group}"));
            if !noiommu.exists() || !noiommu_opt_in {
                return Err(VfioError::GroupDeviceMissing {
                    addr: *addr,
                    group,
                    noiommu: noiommu.exists(),
                });
            }
            match OpenOptions::new().read(true).write(true).open(&noiommu) {
                Ok(_file) => Ok(true),
                Err(error) => Err(noiommu::group_open_error(&noiommu, group, error)),
            }
        }
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
pub(super) fn wrap_vfio_error(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::tests::FakeSysfs;
    use crate::pci::PciError;

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
        // The message names the opt-in.
        assert!(err.to_string().contains("VFIO_UNSAFE_NOIOMMU=1"), "{err}");
        // With the opt-in the no-IOMMU node is used.
        let state = process();
        let checked = checks(&p, &addr("03:00.0"), &state, true).unwrap();
        assert!(checked.noiommu);
        assert_eq!(checked.info.iommu_group, 9007);
        // Without it, still refused; an IOMMU group ignores the opt-in.
        assert!(checks(&p, &addr("03:00.0"), &state, false).is_err());
        std::fs::write(p.dev_vfio.join("9007"), "").unwrap();
        assert!(!checks(&p, &addr("03:00.0"), &state, true).unwrap().noiommu);
    }

    #[test]
    fn noiommu_node_that_cannot_be_opened_is_refused_with_opt_in() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(9008));
        let p = paths(&fake);
        std::fs::write(p.dev_vfio.join("vfio"), "").unwrap();
        std::fs::create_dir(p.dev_vfio.join("noiommu-9008")).unwrap();
        let state = process();
        let err = checks(&p, &addr("03:00.0"), &state, true)
            .map(|c| c.noiommu)
            .unwrap_err();
        assert!(matches!(err, VfioError::DevVfio { .. }), "{err:?}");
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
}
