//! The VFIO state of the process: its one container, shared by every device
//! so that DMA memory mapped once is reachable by all, and what is open in it.
#![forbid(unsafe_code)]

use super::device_file::DeviceFile;
use super::error::VfioError;
use super::noiommu::NoIommuContainer;
use crate::pci::PciAddress;
use dma::vfio::VfioContainerMapper;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use vfio_ioctls::VfioContainer;

/// The VFIO state of the process: its one container and what is open in it.
pub(super) struct ProcessVfio {
    /// Created by the first open and kept for the life of the process.
    pub(super) mapper: Option<Arc<VfioContainerMapper>>,
    /// Open devices per IOMMU group. This process holds `/dev/vfio/N` open
    /// for these groups, so opening it again would fail with EBUSY: the
    /// node check is skipped for them.
    pub(super) groups: BTreeMap<u32, usize>,
    /// Open functions.
    pub(super) open: BTreeSet<PciAddress>,
    /// The no-IOMMU container, created by the first open of a function in
    /// a no-IOMMU group and kept for the life of the process.
    pub(super) noiommu: Option<Arc<NoIommuContainer>>,
    /// The groups of `groups` that are no-IOMMU groups.
    pub(super) noiommu_groups: BTreeSet<u32>,
}

static PROCESS: Mutex<ProcessVfio> = Mutex::new(ProcessVfio {
    mapper: None,
    groups: BTreeMap::new(),
    open: BTreeSet::new(),
    noiommu: None,
    noiommu_groups: BTreeSet::new(),
});

/// The process's VFIO state. A panic while it was held leaves it consistent
/// (every update is a single insert or remove), so a poisoned lock is used.
pub(super) fn process() -> MutexGuard<'static, ProcessVfio> {
    PROCESS.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProcessVfio {
    /// Whether a function of the other kind (`noiommu` or not) is open:
    /// then `addr` cannot join (the devices of a process share DMA memory).
    pub(super) fn check_mode(&self, addr: &PciAddress, noiommu: bool) -> Result<(), VfioError> {
        let open_noiommu = !self.noiommu_groups.is_empty();
        let open_iommu = self.groups.len() > self.noiommu_groups.len();
        if (noiommu && open_iommu) || (!noiommu && open_noiommu) {
            return Err(VfioError::MixedIommuModes {
                addr: *addr,
                noiommu,
            });
        }
        Ok(())
    }

    /// The process's no-IOMMU container, opened on first use.
    pub(super) fn noiommu_container(
        &mut self,
        dev_vfio: &std::path::Path,
        addr: &PciAddress,
    ) -> Result<Arc<NoIommuContainer>, VfioError> {
        if let Some(container) = &self.noiommu {
            return Ok(container.clone());
        }
        let container = Arc::new(NoIommuContainer::open(dev_vfio, addr)?);
        self.noiommu = Some(container.clone());
        Ok(container)
    }

    pub(super) fn container_mapper(
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

/// An open VFIO device, shared by its [`VfioPciDevice`](crate::vfio::VfioPciDevice) and its BAR
/// mappings: closed when the last of them is dropped.
pub(super) struct OpenDevice {
    // Fields drop in this order: the device closes (detaching its group from
    // the container if it was the group's last device), then it leaves the
    // process's VFIO state.
    pub(super) device: DeviceFile,
    pub(super) _registration: Registration,
}

/// Removes a device from the process's VFIO state when it is dropped.
pub(super) struct Registration {
    pub(super) addr: PciAddress,
    pub(super) group: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = process();
        state.open.remove(&self.addr);
        if let Some(n) = state.groups.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                state.groups.remove(&self.group);
                state.noiommu_groups.remove(&self.group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(groups: &[u32], noiommu: &[u32]) -> ProcessVfio {
        ProcessVfio {
            mapper: None,
            groups: groups.iter().map(|&g| (g, 1)).collect(),
            open: BTreeSet::new(),
            noiommu: None,
            noiommu_groups: noiommu.iter().copied().collect(),
        }
    }

    #[test]
    fn one_process_uses_devices_of_one_kind() {
        let addr: PciAddress = "03:00.0".parse().unwrap();
        // Nothing open: either kind.
        assert!(state(&[], &[]).check_mode(&addr, true).is_ok());
        assert!(state(&[], &[]).check_mode(&addr, false).is_ok());
        // Behind an IOMMU only: no no-IOMMU device.
        let iommu = state(&[4, 5], &[]);
        assert!(iommu.check_mode(&addr, false).is_ok());
        let err = iommu.check_mode(&addr, true).unwrap_err();
        assert!(
            matches!(err, VfioError::MixedIommuModes { noiommu: true, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(
                "0000:03:00.0 is in a no-IOMMU group but this process already has \
                              devices behind an IOMMU"
            ),
            "{err}"
        );
        // No-IOMMU only: no device behind an IOMMU.
        let noiommu = state(&[0, 1], &[0, 1]);
        assert!(noiommu.check_mode(&addr, true).is_ok());
        assert!(matches!(
            noiommu.check_mode(&addr, false),
            Err(VfioError::MixedIommuModes { noiommu: false, .. })
        ));
    }
}
