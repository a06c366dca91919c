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
