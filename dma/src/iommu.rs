use crate::iova::IovaAllocator;
#[cfg(test)]
use crate::iova::{GUARD, IOVA_BASE};
use crate::shared_bytes;
use crate::{Error, IommuFault, Mapper, Result};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;

#[derive(Debug, Clone, Copy)]
struct Mapping {
    iova: u64,
    len: usize,
    host: usize,
}

/// The emulated IOMMU: the table through which every device model reaches
/// memory. An access that is not entirely inside one mapping is an
/// [`IommuFault`], the error a real IOMMU would raise, never a stray access.
/// Every access is atomic (word-wise relaxed copies, a release store for
/// the dword a device writes last), so a model on its own thread never
/// races the driver in the Rust memory model.
#[derive(Debug)]
pub struct EmuIommu {
    /// Sorted by IOVA. Accesses hold the read lock for the whole copy, so a
    /// mapping cannot be removed (and its memory freed) under a device access.
    table: RwLock<Vec<Mapping>>,
    iova: IovaAllocator,
}

impl Default for EmuIommu {
    fn default() -> Self {
        Self::new()
    }
}

impl EmuIommu {
    /// An IOMMU with nothing mapped.
    pub fn new() -> Self {
        EmuIommu {
            table: RwLock::new(Vec::new()),
            iova: IovaAllocator::new(),
        }
    }

    /// Number of live mappings.
    pub fn mappings(&self) -> usize {
        self.table.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Run `f` with the host address of `iova..iova+len`, under the read lock.
    fn with_host<T>(
        &self,
        iova: u64,
        len: usize,
        write: bool,
        f: impl FnOnce(*mut u8) -> T,
    ) -> std::result::Result<T, IommuFault> {
        let fault = IommuFault { iova, len, write };
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let i = table.partition_point(|m| m.iova <= iova);
        if i == 0 {
            return Err(fault);
        }
        let m = table[i - 1];
        let off = iova - m.iova;
        let end = off.checked_add(len as u64).ok_or(fault)?;
        if end > m.len as u64 {
            return Err(fault);
        }
        Ok(f((m.host + off as usize) as *mut u8))
    }

    /// Device DMA read: copy `dst.len()` bytes from `iova` into `dst`.
    pub fn read(&self, iova: u64, dst: &mut [u8]) -> std::result::Result<(), IommuFault> {
        self.with_host(iova, dst.len(), false, |p| {
            // SAFETY: `with_host` checked that the range lies inside one live
            // mapping, which cannot be unmapped while its read lock is held.
            // The driver may access the same bytes on another thread at the
            // same time (it polls rings while the model writes them), so the
            // copy is made of atomic accesses (`shared_bytes`): no data race.
            unsafe { shared_bytes::load(p, dst) }
        })
    }

    /// Device DMA write: copy `src` to `iova`.
    pub fn write(&self, iova: u64, src: &[u8]) -> std::result::Result<(), IommuFault> {
        self.with_host(iova, src.len(), true, |p| {
            // SAFETY: as in `read`.
            unsafe { shared_bytes::store(p, src) }
        })
    }

    /// Device DMA write of one aligned dword with release ordering: everything
    /// the device wrote before is visible to a driver that sees this value
    /// with an acquire load. Used for the dword that carries a phase tag or a
    /// done bit, which real devices also write last.
    pub fn store_u32_release(&self, iova: u64, value: u32) -> std::result::Result<(), IommuFault> {
        if !iova.is_multiple_of(4) {
            return Err(IommuFault {
                iova,
                len: 4,
                write: true,
            });
        }
        self.with_host(iova, 4, true, |p| {
            // SAFETY: inside a live mapping (checked), 4-byte aligned (mappings
            // are page aligned and the IOVA is), and only ever accessed by
            // atomic operations or device DMA.
            unsafe { AtomicU32::from_ptr(p.cast()).store(value, Ordering::Release) }
        })
    }
}

impl Mapper for EmuIommu {
    unsafe fn map(&self, vaddr: *mut u8, len: usize) -> Result<u64> {
        if len == 0 {
            return Err(Error::InvalidLength(0));
        }
        let iova = self.iova.allocate(len)?;
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let pos = table.partition_point(|m| m.iova < iova);
        table.insert(
            pos,
            Mapping {
                iova,
                len,
                host: vaddr as usize,
            },
        );
        Ok(iova)
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<()> {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        match table.iter().position(|m| m.iova == iova && m.len == len) {
            Some(i) => {
                table.remove(i);
                // Released under the table lock: no device access can be
                // using the old mapping any more, and a new mapping cannot get
                // the range before it has left the table.
                self.iova.release(iova, len);
                Ok(())
            }
            None => Err(Error::NotMapped(iova)),
        }
    }

    fn iova_usage(&self) -> Option<crate::IovaUsage> {
        Some(self.iova.usage())
    }

    fn name(&self) -> &'static str {
        "emulated IOMMU"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DmaRegion, RegionOptions};
    use std::sync::Arc;

    #[test]
    fn access_inside_a_mapping_works_and_outside_faults() {
        let iommu = Arc::new(EmuIommu::new());
        let mem = DmaRegion::allocate(iommu.clone(), 8192, RegionOptions::EMULATED).unwrap();
        let base = mem.iova();
        assert!(base >= IOVA_BASE);
        iommu.write(base + 100, &[1, 2, 3]).unwrap();
        let mut back = [0u8; 3];
        iommu.read(base + 100, &mut back).unwrap();
        assert_eq!(back, [1, 2, 3]);
        assert_eq!(mem.read_u8(101), 2);

        // One byte past the end of the mapping.
        let end = base + mem.len() as u64;
        let fault = iommu.write(end - 2, &[0; 3]).unwrap_err();
        assert_eq!(
            fault,
            IommuFault {
                iova: end - 2,
                len: 3,
                write: true
            }
        );
        // Below every mapping, and a virtual address used as an IOVA.
        assert!(iommu.read(0, &mut back).is_err());
        assert!(iommu.read(mem.as_ptr() as u64, &mut back).is_err());
        // Overflowing range.
        assert!(iommu.read(u64::MAX - 1, &mut back).is_err());
    }

    #[test]
    fn unmapped_region_faults() {
        let iommu = Arc::new(EmuIommu::new());
        let mem = DmaRegion::allocate(iommu.clone(), 4096, RegionOptions::EMULATED).unwrap();
        let iova = mem.iova();
        assert_eq!(iommu.mappings(), 1);
        let used = iommu.iova_usage().unwrap();
        assert_eq!((used.mappings, used.bytes), (1, 4 << 20));
        drop(mem);
        assert_eq!(iommu.mappings(), 0);
        assert_eq!(iommu.iova_usage(), Some(crate::IovaUsage::default()));
        let err = iommu.read(iova, &mut [0u8; 8]).unwrap_err();
        assert!(!err.write);
        assert!(err.to_string().contains("IOMMU fault"));
    }

    #[test]
    fn mappings_are_separated_by_guard_gaps() {
        let iommu = Arc::new(EmuIommu::new());
        let a = DmaRegion::allocate(iommu.clone(), 4096, RegionOptions::EMULATED).unwrap();
        let b = DmaRegion::allocate(iommu.clone(), 4096, RegionOptions::EMULATED).unwrap();
        assert!(b.iova() >= a.iova() + a.len() as u64 + GUARD);
        assert!(iommu.read(a.iova() + a.len() as u64, &mut [0u8]).is_err());
    }

    #[test]
    fn release_store_is_visible_and_checked() {
        let iommu = Arc::new(EmuIommu::new());
        let mem = DmaRegion::allocate(iommu.clone(), 4096, RegionOptions::EMULATED).unwrap();
        iommu
            .store_u32_release(mem.iova() + 12, 0xdead_beef)
            .unwrap();
        assert_eq!(mem.load_u32_acquire(12), 0xdead_beef);
        assert!(iommu.store_u32_release(mem.iova() + 13, 1).is_err());
    }
}

#[cfg(test)]
mod reuse_tests {
    use super::*;

    /// A queue created and destroyed every few seconds for weeks: the IOVA
    /// space has to come back, or the aperture runs out.
    #[test]
    fn map_unmap_cycles_reuse_iova_space() {
        let iommu = EmuIommu::new();
        let mut mem = vec![0u8; 8192];
        // A mapping that stays live the whole time, so reuse has to work
        // around it.
        // SAFETY: `mem` outlives every mapping (all are unmapped below) and
        // is not touched while mapped.
        let live = unsafe { iommu.map(mem.as_mut_ptr(), 4096) }.unwrap();
        let mut highest = 0;
        for _ in 0..200_000 {
            // SAFETY: as above.
            let iova = unsafe { iommu.map(mem.as_mut_ptr(), 8192) }.unwrap();
            assert_ne!(iova, live);
            highest = highest.max(iova);
            iommu.unmap(iova, 8192).unwrap();
        }
        // One live 2 MiB slot plus its guard, then the reused one.
        assert!(
            highest < IOVA_BASE + (16 << 20),
            "IOVA {highest:#x} handed out after 200,000 map/unmap cycles"
        );
        iommu.unmap(live, 4096).unwrap();
        assert_eq!(iommu.mappings(), 0);
    }
}
