//! VFIO's unsafe no-IOMMU mode: a function whose group is
//! `/dev/vfio/noiommu-N` (the kernel has no IOMMU for it and vfio was loaded
//! with `enable_unsafe_noiommu_mode=1`).
//!
//! Used only when the user opts in with [`OPT_IN_VAR`]`=1`, read where a
//! device is opened, so every app gets the mode without a flag of its own;
//! without it such a function is refused with a one-line error naming the
//! variable. The first open prints [`WARNING`] once per process.
//!
//! vfio-ioctls opens only `/dev/vfio/N` and type-1 containers, so the
//! container, group and device are opened here with the legacy VFIO ioctls:
//! the container's "IOMMU" is VFIO_NOIOMMU_IOMMU, which has no DMA map
//! ioctls; DMA memory is given to the device at its physical address by
//! [`dma::physaddr::PhysAddrMapper`] (CAP_SYS_RAWIO needed, as for opening
//! the group).

use super::error::VfioError;
use super::uapi::{
    GroupStatus, RegionInfoRaw, GROUP_FLAGS_VIABLE, REGION_CAP_SPARSE_MMAP, REGION_FLAG_CAPS,
    VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_DEVICE_GET_REGION_INFO, VFIO_GET_API_VERSION,
    VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER,
    VFIO_GROUP_UNSET_CONTAINER, VFIO_NOIOMMU_IOMMU, VFIO_SET_IOMMU,
};
use crate::pci::PciAddress;
use dma::physaddr::PhysAddrMapper;
use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex, Once, PoisonError};
use vfio_ioctls::{VfioRegionInfoCap, VfioRegionInfoCapSparseMmap, VfioRegionSparseMmapArea};

pub use super::error::OPT_IN_VAR;

/// Printed once per process, on stderr, when the first no-IOMMU device opens.
pub const WARNING: &str = "warning: no IOMMU (VFIO_UNSAFE_NOIOMMU=1): the device can DMA \
anywhere in memory; a device or driver fault can corrupt or read any memory of the machine, \
DMA buffers are locked but not pinned (physical addresses from /proc/self/pagemap), and the \
kernel is tainted";

static WARNED: Once = Once::new();

/// Print [`WARNING`] unless it was printed already.
pub(super) fn warn_once() {
    WARNED.call_once(|| eprintln!("{WARNING}"));
}

/// Whether the value of [`OPT_IN_VAR`] allows no-IOMMU mode.
pub(super) fn parse_opt_in(value: Option<&OsStr>) -> Result<bool, VfioError> {
    match value.map(|v| v.to_str()) {
        None => Ok(false),
        Some(Some("1")) => Ok(true),
        Some(Some("0")) | Some(Some("")) => Ok(false),
        Some(v) => Err(VfioError::NoIommuOptInValue {
            value: v.unwrap_or("(not UTF-8)").to_string(),
        }),
    }
}

/// [`parse_opt_in`] of the process's environment.
pub(super) fn opt_in() -> Result<bool, VfioError> {
    parse_opt_in(std::env::var_os(OPT_IN_VAR).as_deref())
}

/// ioctl with an integer (or no) argument; the result or the OS error.
fn ioctl_int(fd: RawFd, request: libc::Ioctl, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the requests used with this take an integer argument (or
    // none), passed by value; no memory of ours is touched.
    let ret = unsafe { libc::ioctl(fd, request, arg) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The process's no-IOMMU container: `/dev/vfio/vfio` set to
/// VFIO_NOIOMMU_IOMMU while a group is attached, and its "mapper" (physical
/// addresses).
pub(super) struct NoIommuContainer {
    file: File,
    /// Attached groups; the kernel drops the container's IOMMU setting with
    /// the last one, so it is set again with the next first one.
    attached: Mutex<usize>,
    mapper: Arc<dyn dma::Mapper>,
}

impl NoIommuContainer {
    /// Open the container and check that it offers no-IOMMU mode and that
    /// this process sees physical addresses.
    pub(super) fn open(dev_vfio: &Path, addr: &PciAddress) -> Result<NoIommuContainer, VfioError> {
        let path = dev_vfio.join("vfio");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|error| VfioError::DevVfio { path, error })?;
        let fail = |step, error| VfioError::NoIommuIoctl {
            addr: *addr,
            step,
            error,
        };
        let version = ioctl_int(file.as_raw_fd(), VFIO_GET_API_VERSION, 0)
            .map_err(|e| fail("VFIO_GET_API_VERSION", e))?;
        if version != VFIO_API_VERSION {
            return Err(fail(
                "VFIO_GET_API_VERSION",
                io::Error::other(format!("API version {version}, not {VFIO_API_VERSION}")),
            ));
        }
        // 1 when the noiommu "IOMMU driver" is registered: vfio loaded with
        // enable_unsafe_noiommu_mode=1.
        if !matches!(
            ioctl_int(file.as_raw_fd(), VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU),
            Ok(1)
        ) {
            return Err(VfioError::NoIommuUnavailable { addr: *addr });
        }
        let mapper = PhysAddrMapper::new().map_err(VfioError::Dma)?;
        Ok(NoIommuContainer {
            file,
            attached: Mutex::new(0),
            mapper: Arc::new(mapper),
        })
    }

    /// The mapper of DMA memory for devices in this container.
    pub(super) fn mapper(&self) -> &Arc<dyn dma::Mapper> {
        &self.mapper
    }
}

/// A no-IOMMU group, attached to the container; detached on drop.
struct NoIommuGroup {
    file: File,
    container: Arc<NoIommuContainer>,
}

impl NoIommuGroup {
    fn open(
        container: &Arc<NoIommuContainer>,
        dev_vfio: &Path,
        addr: &PciAddress,
        group: u32,
    ) -> Result<NoIommuGroup, VfioError> {
        let path = dev_vfio.join(format!("noiommu-{group}"));
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) => return Err(group_open_error(&path, group, error)),
        };
        let fail = |step, error| VfioError::NoIommuIoctl {
            addr: *addr,
            step,
            error,
        };
        let mut status = GroupStatus {
            argsz: size_of::<GroupStatus>() as u32,
            flags: 0,
        };
        // SAFETY: VFIO_GROUP_GET_STATUS writes a struct vfio_group_status,
        // which `status` is (repr(C), argsz set), alive for the call.
        if unsafe { libc::ioctl(file.as_raw_fd(), VFIO_GROUP_GET_STATUS, &mut status) } < 0 {
            return Err(fail("VFIO_GROUP_GET_STATUS", io::Error::last_os_error()));
        }
        if status.flags & GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::NoIommuIoctl {
                addr: *addr,
                step: "VFIO_GROUP_GET_STATUS",
                error: io::Error::other(
                    "group is not viable; bind every device of the IOMMU group to vfio-pci \
                     (`hw-setup/devbind.sh status` lists them)",
                ),
            });
        }
        let mut attached = container
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let container_fd: libc::c_int = container.file.as_raw_fd();
        // SAFETY: VFIO_GROUP_SET_CONTAINER reads an int (the container fd)
        // from the pointer, which points at `container_fd` for the call.
        if unsafe { libc::ioctl(file.as_raw_fd(), VFIO_GROUP_SET_CONTAINER, &container_fd) } < 0 {
            return Err(fail("VFIO_GROUP_SET_CONTAINER", io::Error::last_os_error()));
        }
        if *attached == 0 {
            if let Err(e) = ioctl_int(
                container.file.as_raw_fd(),
                VFIO_SET_IOMMU,
                VFIO_NOIOMMU_IOMMU,
            ) {
                let _ = ioctl_int(file.as_raw_fd(), VFIO_GROUP_UNSET_CONTAINER, 0);
                return Err(fail("VFIO_SET_IOMMU (no-IOMMU)", e));
            }
        }
        *attached += 1;
        Ok(NoIommuGroup {
            file,
            container: container.clone(),
        })
    }
}

impl Drop for NoIommuGroup {
    fn drop(&mut self) {
        let mut attached = self
            .container
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Closing the group file would detach it as well; this keeps the
        // count and the kernel's view in step.
        let _ = ioctl_int(self.file.as_raw_fd(), VFIO_GROUP_UNSET_CONTAINER, 0);
        *attached = attached.saturating_sub(1);
    }
}

/// Errors opening `/dev/vfio/noiommu-N`: the kernel asks for CAP_SYS_RAWIO.
pub(super) fn group_open_error(path: &Path, group: u32, error: io::Error) -> VfioError {
    match error.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => VfioError::NoIommuRawio { group },
        Some(libc::EBUSY) => VfioError::GroupBusy { group },
        _ => VfioError::DevVfio {
            path: path.to_path_buf(),
            error,
        },
    }
}

/// One region's place and flags, with its sparse-mmap areas if any.
#[derive(Debug, Clone, Default)]
struct Region {
    flags: u32,
    size: u64,
    offset: u64,
    sparse: Option<Vec<VfioRegionSparseMmapArea>>,
}

/// A function opened through a no-IOMMU group. Its group stays attached
/// while it is open.
pub(super) struct NoIommuDevice {
    // Dropped first: the device closes before its group detaches.
    file: File,
    regions: Vec<Region>,
    _group: NoIommuGroup,
}

impl NoIommuDevice {
    /// Open `addr` through its no-IOMMU `group` in `container`, and read the
    /// info of regions `0..=last_region`.
    pub(super) fn open(
        container: &Arc<NoIommuContainer>,
        dev_vfio: &Path,
        addr: &PciAddress,
        group: u32,
        last_region: u32,
    ) -> Result<NoIommuDevice, VfioError> {
        let group = NoIommuGroup::open(container, dev_vfio, addr, group)?;
        let name = CString::new(addr.to_string()).map_err(|_| VfioError::NoIommuIoctl {
            addr: *addr,
            step: "VFIO_GROUP_GET_DEVICE_FD",
            error: io::Error::other("address with a NUL byte"),
        })?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD reads a NUL-terminated name from
        // the pointer, which `name` keeps alive for the call.
        let fd = unsafe {
            libc::ioctl(
                group.file.as_raw_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr(),
            )
        };
        if fd < 0 {
            return Err(VfioError::NoIommuIoctl {
                addr: *addr,
                step: "VFIO_GROUP_GET_DEVICE_FD",
                error: io::Error::last_os_error(),
            });
        }
        // SAFETY: the ioctl returned a new fd that nothing else owns.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut regions = Vec::new();
        for index in 0..=last_region {
            regions.push(
                region_info(&file, index).map_err(|error| VfioError::NoIommuIoctl {
                    addr: *addr,
                    step: "VFIO_DEVICE_GET_REGION_INFO",
                    error,
                })?,
            );
        }
        Ok(NoIommuDevice {
            file,
            regions,
            _group: group,
        })
    }

    fn region(&self, index: u32) -> Region {
        self.regions
            .get(index as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// VFIO_REGION_INFO_FLAG_* of region `index` (0 if unknown).
    pub(super) fn get_region_flags(&self, index: u32) -> u32 {
        self.region(index).flags
    }

    /// Size of region `index` (0 if unknown).
    pub(super) fn get_region_size(&self, index: u32) -> u64 {
        self.region(index).size
    }

    /// Offset of region `index` in the device file.
    pub(super) fn get_region_offset(&self, index: u32) -> u64 {
        self.region(index).offset
    }

    /// The sparse-mmap capability of region `index`, as vfio-ioctls gives it.
    pub(super) fn get_region_caps(&self, index: u32) -> Vec<VfioRegionInfoCap> {
        self.region(index)
            .sparse
            .map(|areas| VfioRegionInfoCap::SparseMmap(VfioRegionInfoCapSparseMmap { areas }))
            .into_iter()
            .collect()
    }
}

impl AsRawFd for NoIommuDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// VFIO_DEVICE_GET_REGION_INFO of region `index`, with its capability chain
/// when the kernel has one (read twice: the first answer says its size).
fn region_info(file: &File, index: u32) -> io::Result<Region> {
    let base = size_of::<RegionInfoRaw>();
    let mut argsz = base;
    for _ in 0..2 {
        // u64 words: the buffer is aligned for the struct and the caps.
        let mut buf = vec![0u64; argsz.div_ceil(8)];
        let info = RegionInfoRaw {
            argsz: argsz as u32,
            index,
            ..RegionInfoRaw::default()
        };
        // SAFETY: `buf` has room for `argsz` >= size_of::<RegionInfoRaw>()
        // bytes and is 8-byte aligned; the struct is plain data.
        unsafe { buf.as_mut_ptr().cast::<RegionInfoRaw>().write(info) };
        // SAFETY: VFIO_DEVICE_GET_REGION_INFO writes at most `argsz` bytes
        // (the argsz field says so) into `buf`, which has that many.
        if unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                VFIO_DEVICE_GET_REGION_INFO,
                buf.as_mut_ptr(),
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        // SAFETY: `buf` starts with an initialised RegionInfoRaw (plain data).
        let info = unsafe { buf.as_ptr().cast::<RegionInfoRaw>().read() };
        let wanted = info.argsz as usize;
        if info.flags & REGION_FLAG_CAPS != 0 && wanted > argsz {
            argsz = wanted.min(64 * 1024);
            continue;
        }
        let sparse = if info.flags & REGION_FLAG_CAPS != 0 {
            sparse_areas(&bytes[..argsz.min(bytes.len())], info.cap_offset as usize)?
        } else {
            None
        };
        return Ok(Region {
            flags: info.flags,
            size: info.size,
            offset: info.offset,
            sparse,
        });
    }
    Err(io::Error::other(
        "region info capability chain keeps growing",
    ))
}

/// The sparse-mmap areas in the capability chain starting at `first` of a
/// region info buffer. Every offset is checked against the buffer.
fn sparse_areas(buf: &[u8], first: usize) -> io::Result<Option<Vec<VfioRegionSparseMmapArea>>> {
    let bad = |what: &str| io::Error::other(format!("malformed region capability chain: {what}"));
    let u16_at = |o: usize| -> io::Result<u16> {
        buf.get(o..o + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("header outside the buffer"))
    };
    let u32_at = |o: usize| -> io::Result<u32> {
        buf.get(o..o + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad("field outside the buffer"))
    };
    let u64_at = |o: usize| -> io::Result<u64> {
        buf.get(o..o + 8)
            .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| bad("area outside the buffer"))
    };
    let mut at = first;
    // Each capability is at least a header; a chain longer than the
    // buffer can hold is a loop.
    for _ in 0..buf.len() / 8 + 1 {
        if at == 0 {
            return Ok(None);
        }
        // struct vfio_info_cap_header { u16 id; u16 version; u32 next; }
        let id = u16_at(at)?;
        let next = u32_at(at + 4)? as usize;
        if id == REGION_CAP_SPARSE_MMAP {
            // { header; u32 nr_areas; u32 reserved; { u64 offset; u64 size; } areas[]; }
            let n = u32_at(at + 8)? as usize;
            let mut areas = Vec::new();
            for i in 0..n.min(buf.len() / 16) {
                let o = at + 16 + i * 16;
                areas.push(VfioRegionSparseMmapArea {
                    offset: u64_at(o)?,
                    size: u64_at(o + 8)?,
                });
            }
            if areas.len() != n {
                return Err(bad("more areas than the buffer holds"));
            }
            return Ok(Some(areas));
        }
        at = next;
    }
    Err(bad("loop"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn opt_in_is_exactly_1_and_other_values_are_refused() {
        assert!(!parse_opt_in(None).unwrap());
        assert!(parse_opt_in(Some(OsStr::new("1"))).unwrap());
        assert!(!parse_opt_in(Some(OsStr::new("0"))).unwrap());
        assert!(!parse_opt_in(Some(OsStr::new(""))).unwrap());
        for v in ["yes", "true", "2"] {
            let err = parse_opt_in(Some(OsStr::new(v))).unwrap_err();
            assert!(
                matches!(&err, VfioError::NoIommuOptInValue { value } if value == v),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "{OPT_IN_VAR}={v} is not understood: set it to 1 to allow VFIO's unsafe \
                     no-IOMMU mode (see hw-setup/README.md), or unset it"
                )
            );
        }
        let raw = OsString::from_vec(vec![0xff]);
        assert!(parse_opt_in(Some(&raw)).is_err());
    }

    #[test]
    fn warning_says_what_is_given_up_on_one_line() {
        assert!(!WARNING.contains('\n'));
        assert!(WARNING.contains("anywhere in memory"));
        assert!(WARNING.contains("tainted"));
    }

    #[test]
    fn group_open_without_cap_sys_rawio_names_it() {
        let e = group_open_error(
            Path::new("/dev/vfio/noiommu-3"),
            3,
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(matches!(e, VfioError::NoIommuRawio { group: 3 }), "{e:?}");
        assert!(e.to_string().contains("CAP_SYS_RAWIO"), "{e}");
        let e = group_open_error(
            Path::new("/dev/vfio/noiommu-3"),
            3,
            io::Error::from_raw_os_error(libc::EBUSY),
        );
        assert!(matches!(e, VfioError::GroupBusy { group: 3 }), "{e:?}");
    }

    /// A region info buffer: the 32-byte struct, then `caps` at offset 32.
    fn info_with(caps: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 32];
        b.extend_from_slice(caps);
        b
    }

    fn cap(id: u16, next: u32, body: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        c.extend_from_slice(&id.to_ne_bytes());
        c.extend_from_slice(&1u16.to_ne_bytes());
        c.extend_from_slice(&next.to_ne_bytes());
        c.extend_from_slice(body);
        c
    }

    #[test]
    fn sparse_mmap_areas_are_read_from_the_chain() {
        // An MSI-X-mappable cap (id 3, header only) first, then sparse mmap
        // with two areas.
        let mut body = Vec::new();
        body.extend_from_slice(&2u32.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        for (o, s) in [(0u64, 0x1000u64), (0x3000, 0x1000)] {
            body.extend_from_slice(&o.to_ne_bytes());
            body.extend_from_slice(&s.to_ne_bytes());
        }
        let mut caps = cap(3, 40, &[]);
        caps.extend(cap(REGION_CAP_SPARSE_MMAP, 0, &body));
        let buf = info_with(&caps);
        let areas = sparse_areas(&buf, 32).unwrap().unwrap();
        assert_eq!(areas.len(), 2);
        assert_eq!((areas[1].offset, areas[1].size), (0x3000, 0x1000));
        // No sparse cap: None.
        let buf = info_with(&cap(3, 0, &[]));
        assert!(sparse_areas(&buf, 32).unwrap().is_none());
    }

    #[test]
    fn malformed_chains_are_errors_not_panics() {
        // Next points outside the buffer.
        let buf = info_with(&cap(3, 4096, &[]));
        assert!(sparse_areas(&buf, 32).is_err());
        // A cap pointing at itself.
        let buf = info_with(&cap(3, 32, &[]));
        assert!(sparse_areas(&buf, 32).is_err());
        // More areas than the buffer holds.
        let mut body = Vec::new();
        body.extend_from_slice(&1000u32.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        let buf = info_with(&cap(REGION_CAP_SPARSE_MMAP, 0, &body));
        assert!(sparse_areas(&buf, 32).is_err());
        // A header that does not fit.
        assert!(sparse_areas(&info_with(&[1, 0]), 32).is_err());
    }
}
