//! Linux uapi constants of VFIO that vfio-ioctls uses but does not export.
#![forbid(unsafe_code)]

// Linux uapi <linux/vfio.h>; vfio-ioctls uses these but does not export them.
/// VFIO_PCI_BAR0_REGION_INDEX.
pub(super) const BAR0_REGION: u32 = 0;
/// VFIO_PCI_CONFIG_REGION_INDEX.
pub(super) const CONFIG_REGION: u32 = 7;
/// VFIO_REGION_INFO_FLAG_READ.
pub(super) const REGION_FLAG_READ: u32 = 1 << 0;
/// VFIO_REGION_INFO_FLAG_WRITE.
pub(super) const REGION_FLAG_WRITE: u32 = 1 << 1;
/// VFIO_REGION_INFO_FLAG_MMAP.
pub(super) const REGION_FLAG_MMAP: u32 = 1 << 2;
/// VFIO_DEVICE_RESET = _IO(VFIO_TYPE ';', VFIO_BASE 100 + 11); vfio-ioctls'
/// own test pins the same value (15215).
pub(super) const VFIO_DEVICE_RESET: libc::Ioctl = 0x3b6f;

// The legacy container and group ioctls, for VFIO's no-IOMMU mode, which
// vfio-ioctls does not open: _IO(';', 100 + n).
/// VFIO_GET_API_VERSION.
pub(super) const VFIO_GET_API_VERSION: libc::Ioctl = 0x3b64;
/// VFIO_API_VERSION, what VFIO_GET_API_VERSION answers.
pub(super) const VFIO_API_VERSION: libc::c_int = 0;
/// VFIO_CHECK_EXTENSION.
pub(super) const VFIO_CHECK_EXTENSION: libc::Ioctl = 0x3b65;
/// VFIO_SET_IOMMU.
pub(super) const VFIO_SET_IOMMU: libc::Ioctl = 0x3b66;
/// VFIO_GROUP_GET_STATUS.
pub(super) const VFIO_GROUP_GET_STATUS: libc::Ioctl = 0x3b67;
/// VFIO_GROUP_SET_CONTAINER.
pub(super) const VFIO_GROUP_SET_CONTAINER: libc::Ioctl = 0x3b68;
/// VFIO_GROUP_UNSET_CONTAINER.
pub(super) const VFIO_GROUP_UNSET_CONTAINER: libc::Ioctl = 0x3b69;
/// VFIO_GROUP_GET_DEVICE_FD.
pub(super) const VFIO_GROUP_GET_DEVICE_FD: libc::Ioctl = 0x3b6a;
/// VFIO_DEVICE_GET_REGION_INFO.
pub(super) const VFIO_DEVICE_GET_REGION_INFO: libc::Ioctl = 0x3b6c;
/// VFIO_NOIOMMU_IOMMU: the container "IOMMU" of no-IOMMU mode.
pub(super) const VFIO_NOIOMMU_IOMMU: libc::c_ulong = 8;
/// VFIO_GROUP_FLAGS_VIABLE.
pub(super) const GROUP_FLAGS_VIABLE: u32 = 1 << 0;
/// VFIO_REGION_INFO_FLAG_CAPS: the region info has a capability chain.
pub(super) const REGION_FLAG_CAPS: u32 = 1 << 3;
/// VFIO_REGION_INFO_CAP_SPARSE_MMAP.
pub(super) const REGION_CAP_SPARSE_MMAP: u16 = 1;

/// struct vfio_group_status.
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct GroupStatus {
    pub(super) argsz: u32,
    pub(super) flags: u32,
}

/// struct vfio_region_info (without its capability chain).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RegionInfoRaw {
    pub(super) argsz: u32,
    pub(super) flags: u32,
    pub(super) index: u32,
    pub(super) cap_offset: u32,
    pub(super) size: u64,
    pub(super) offset: u64,
}
