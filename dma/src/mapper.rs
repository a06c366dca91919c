use crate::{IovaUsage, Result};

/// Something that gives host memory an I/O virtual address (IOVA) that a
/// device can use for DMA: the VFIO container of the process, or the
/// emulated IOMMU that the device models translate through.
pub trait Mapper: Send + Sync {
    /// Map `len` bytes at `vaddr` and return their IOVA.
    ///
    /// # Safety
    /// `vaddr..vaddr+len` must be memory that stays allocated until
    /// [`Mapper::unmap`] is called with the returned IOVA and `len`. From the
    /// moment of the mapping the device may read and write it at any time, so
    /// the caller may only reach it through raw pointers (atomic accesses,
    /// or copies made of them) unless the ownership rules of the caller say that
    /// the device is not using a part.
    unsafe fn map(&self, vaddr: *mut u8, len: usize) -> Result<u64>;

    /// Remove a mapping made by [`Mapper::map`]. Its IOVA range may be
    /// handed out again only after this succeeded: on an error the mapping
    /// may still be live, so the range stays out of reuse (and the caller
    /// keeps the memory; [`crate::DmaRegion`] leaks it).
    fn unmap(&self, iova: u64, len: usize) -> Result<()>;

    /// The IOVA space handed out now, for monitoring (a soak run checks it
    /// does not grow). None from a mapper that does not choose IOVAs itself.
    fn iova_usage(&self) -> Option<IovaUsage> {
        None
    }

    /// A short name for messages ("vfio", "emulated IOMMU").
    fn name(&self) -> &'static str;

    /// Whether the device sees physical addresses (VFIO's no-IOMMU mode):
    /// then every region mapped must be physically contiguous, and
    /// [`crate::DmaRegion::allocate`] allocates it so (see
    /// [`crate::physaddr`]).
    fn needs_physically_contiguous(&self) -> bool {
        false
    }
}
