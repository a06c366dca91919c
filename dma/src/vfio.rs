//! The VFIO container as a [`Mapper`]: DMA mappings made here go into the
//! IOMMU page tables of every device whose group is attached to the container.

use crate::iova::IovaAllocator;
use crate::{Error, Mapper, Result};
use std::sync::Arc;
use vfio_ioctls::VfioContainer;

/// Maps regions into a VFIO container (one per process, shared by all devices,
/// so any device can DMA into any pool).
pub struct VfioContainerMapper {
    container: Arc<VfioContainer>,
    iova: IovaAllocator,
}

impl VfioContainerMapper {
    /// Wrap a container. Map nothing until at least one group is attached:
    /// the kernel sets the container's IOMMU type with the first group.
    pub fn new(container: Arc<VfioContainer>) -> Self {
        VfioContainerMapper {
            container,
            iova: IovaAllocator::new(),
        }
    }

    /// The container.
    pub fn container(&self) -> &Arc<VfioContainer> {
        &self.container
    }
}

impl Mapper for VfioContainerMapper {
    unsafe fn map(&self, vaddr: *mut u8, len: usize) -> Result<u64> {
        let iova = self.iova.allocate(len)?;
        // SAFETY: the caller guarantees that the memory lives until unmap and
        // is only reached through raw pointers (see `Mapper::map`).
        if let Err(e) = unsafe { self.container.vfio_dma_map(iova, len, vaddr) } {
            // Nothing was mapped, so the range can go straight back.
            self.iova.release(iova, len);
            return Err(Error::VfioMap(e.to_string()));
        }
        Ok(iova)
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<()> {
        self.container
            .vfio_dma_unmap(iova, len)
            .map_err(|e| Error::VfioUnmap(e.to_string()))?;
        // Only once the kernel has removed the mapping: if the unmap failed,
        // the device may still reach the range, so it must not be reused.
        self.iova.release(iova, len);
        Ok(())
    }

    fn iova_usage(&self) -> Option<crate::IovaUsage> {
        Some(self.iova.usage())
    }

    fn name(&self) -> &'static str {
        "vfio"
    }
}
