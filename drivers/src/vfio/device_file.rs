//! [`DeviceFile`]: the VFIO device file of an open function, opened by
//! vfio-ioctls (type-1 IOMMU container) or here (no-IOMMU mode); config
//! space, BAR0 and reset go through it the same way.
#![forbid(unsafe_code)]

use super::noiommu::NoIommuDevice;
use std::os::fd::{AsRawFd, RawFd};
use vfio_ioctls::{VfioDevice, VfioRegionInfoCap};

/// The device file of an open function.
pub(super) enum DeviceFile {
    /// In the process's type-1 container (an IOMMU confines the device).
    Type1(VfioDevice),
    /// In the process's no-IOMMU container.
    NoIommu(NoIommuDevice),
}

impl DeviceFile {
    /// VFIO_REGION_INFO_FLAG_* of region `index`.
    pub(super) fn get_region_flags(&self, index: u32) -> u32 {
        match self {
            DeviceFile::Type1(d) => d.get_region_flags(index),
            DeviceFile::NoIommu(d) => d.get_region_flags(index),
        }
    }

    /// Size of region `index` in bytes.
    pub(super) fn get_region_size(&self, index: u32) -> u64 {
        match self {
            DeviceFile::Type1(d) => d.get_region_size(index),
            DeviceFile::NoIommu(d) => d.get_region_size(index),
        }
    }

    /// Offset of region `index` in the device file.
    pub(super) fn get_region_offset(&self, index: u32) -> u64 {
        match self {
            DeviceFile::Type1(d) => d.get_region_offset(index),
            DeviceFile::NoIommu(d) => d.get_region_offset(index),
        }
    }

    /// The capabilities of region `index` (no-IOMMU: sparse mmap only).
    pub(super) fn get_region_caps(&self, index: u32) -> Vec<VfioRegionInfoCap> {
        match self {
            DeviceFile::Type1(d) => d.get_region_caps(index),
            DeviceFile::NoIommu(d) => d.get_region_caps(index),
        }
    }
}

impl AsRawFd for DeviceFile {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            DeviceFile::Type1(d) => d.as_raw_fd(),
            DeviceFile::NoIommu(d) => d.as_raw_fd(),
        }
    }
}
