use crate::shared_bytes;
use crate::{Mapper, PageSize, Region, RegionOptions, Result};
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// A region mapped for device DMA: it has a virtual address and an IOVA, and
/// is unmapped when dropped (before its memory is freed). If that unmap
/// fails, the memory is leaked, never freed: the device may still reach it.
///
/// The device may read or write any part of it at any time, so the CPU
/// reaches it only through the atomic accessors and atomic copies here,
/// never through a Rust reference (see the crate's threat model). Every accessor checks its bounds; an
/// access outside the region is a driver bug and panics.
pub struct DmaRegion {
    iova: u64,
    mapper: Arc<dyn Mapper>,
    // Freed by `Drop::drop` once it is unmapped, and never if the unmap
    // fails: the device might still reach it.
    region: ManuallyDrop<Region>,
}

impl std::fmt::Debug for DmaRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaRegion")
            .field("iova", &format_args!("{:#x}", self.iova))
            .field("len", &self.region.len())
            .field("mapper", &self.mapper.name())
            .finish()
    }
}

impl DmaRegion {
    /// Allocate `len` bytes (rounded up to the page size) and map them.
    pub fn allocate(mapper: Arc<dyn Mapper>, len: usize, opts: RegionOptions) -> Result<Self> {
        let region = if mapper.needs_physically_contiguous() {
            crate::physaddr::allocate_contiguous(len, opts)?
        } else {
            Region::allocate(len, opts)?
        };
        // SAFETY: the region lives in `self` until after `unmap` in `drop`,
        // and this type reaches it only through raw pointers.
        let iova = unsafe { mapper.map(region.as_ptr(), region.len())? };
        Ok(DmaRegion {
            iova,
            mapper,
            region: ManuallyDrop::new(region),
        })
    }

    /// IOVA of the first byte.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// IOVA of byte `offset`.
    pub fn iova_at(&self, offset: usize) -> u64 {
        assert!(offset <= self.len(), "offset {offset} outside DMA region");
        self.iova + offset as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Page size backing the region.
    pub fn page_size(&self) -> PageSize {
        self.region.page_size()
    }

    /// Virtual address of the first byte (for raw-pointer users such as the pool).
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.as_ptr()
    }

    /// The mapper that mapped this region.
    pub fn mapper(&self) -> &Arc<dyn Mapper> {
        &self.mapper
    }

    #[inline]
    fn ptr<T>(&self, offset: usize) -> *mut T {
        let size = std::mem::size_of::<T>();
        assert!(
            offset.is_multiple_of(std::mem::align_of::<T>())
                && offset.checked_add(size).is_some_and(|e| e <= self.len()),
            "DMA access of {size} bytes at offset {offset} outside or misaligned in a region of {}",
            self.len()
        );
        // SAFETY: in bounds (checked above).
        unsafe { self.region.as_ptr().add(offset).cast() }
    }

    /// Pointer to a run of `N` values of `T` at `offset`, aligned and in
    /// bounds (checked once for the whole run).
    #[inline]
    fn ptr_words<T, const N: usize>(&self, offset: usize) -> *mut T {
        let size = std::mem::size_of::<T>() * N;
        assert!(
            offset.is_multiple_of(std::mem::align_of::<T>())
                && offset.checked_add(size).is_some_and(|e| e <= self.len()),
            "DMA access of {size} bytes at offset {offset} outside or misaligned in a region of {}",
            self.len()
        );
        // SAFETY: in bounds (checked above).
        unsafe { self.region.as_ptr().add(offset).cast() }
    }

    // The scalar accessors are `Relaxed` atomic accesses, not volatile
    // ones: the device (or a model's thread) may access the same bytes at
    // the same time, and only atomics make that no data race in the Rust
    // memory model. On x86-64 and aarch64 a relaxed aligned load or store is
    // the same single instruction a volatile one is. Ordering against the
    // device comes from the acquire loads below and the release fence
    // before a doorbell write.

    /// Atomic (relaxed) read of a byte.
    #[inline]
    pub fn read_u8(&self, offset: usize) -> u8 {
        // SAFETY: in bounds (checked by `ptr`); DMA memory is reached only by
        // atomic accesses and device DMA, never by references.
        unsafe { AtomicU8::from_ptr(self.ptr(offset)) }.load(Ordering::Relaxed)
    }

    /// Atomic (relaxed) read of an aligned little-endian u16.
    #[inline]
    pub fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: in bounds and aligned (checked by `ptr`); atomic as in `read_u8`.
        u16::from_le(unsafe { AtomicU16::from_ptr(self.ptr(offset)) }.load(Ordering::Relaxed))
    }

    /// Atomic (relaxed) read of an aligned little-endian u32.
    #[inline]
    pub fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: in bounds and aligned; atomic as in `read_u8`.
        u32::from_le(unsafe { AtomicU32::from_ptr(self.ptr(offset)) }.load(Ordering::Relaxed))
    }

    /// Atomic (relaxed) read of an aligned little-endian u64.
    #[inline]
    pub fn read_u64(&self, offset: usize) -> u64 {
        // SAFETY: in bounds and aligned; atomic as in `read_u8`.
        u64::from_le(unsafe { AtomicU64::from_ptr(self.ptr(offset)) }.load(Ordering::Relaxed))
    }

    /// Atomic (relaxed) write of a byte.
    #[inline]
    pub fn write_u8(&self, offset: usize, v: u8) {
        // SAFETY: in bounds; atomic as in `read_u8`.
        unsafe { AtomicU8::from_ptr(self.ptr(offset)) }.store(v, Ordering::Relaxed)
    }

    /// Atomic (relaxed) write of an aligned little-endian u16.
    #[inline]
    pub fn write_u16(&self, offset: usize, v: u16) {
        // SAFETY: in bounds and aligned; atomic as in `read_u8`.
        unsafe { AtomicU16::from_ptr(self.ptr(offset)) }.store(v.to_le(), Ordering::Relaxed)
    }

    /// Atomic (relaxed) write of an aligned little-endian u32.
    #[inline]
    pub fn write_u32(&self, offset: usize, v: u32) {
        // SAFETY: in bounds and aligned; atomic as in `read_u8`.
        unsafe { AtomicU32::from_ptr(self.ptr(offset)) }.store(v.to_le(), Ordering::Relaxed)
    }

    /// Atomic (relaxed) write of an aligned little-endian u64.
    #[inline]
    pub fn write_u64(&self, offset: usize, v: u64) {
        // SAFETY: in bounds and aligned; atomic as in `read_u8`.
        unsafe { AtomicU64::from_ptr(self.ptr(offset)) }.store(v.to_le(), Ordering::Relaxed)
    }

    /// Atomic (relaxed) writes of `N` consecutive aligned little-endian u64s
    /// from `offset`: one bounds check for the run (a whole descriptor), then
    /// one atomic store per word, in order.
    #[inline]
    pub fn write_u64s<const N: usize>(&self, offset: usize, v: &[u64; N]) {
        let p: *mut u64 = self.ptr_words::<u64, N>(offset);
        for (i, &w) in v.iter().enumerate() {
            // SAFETY: word i of the run, in bounds and aligned (checked by
            // `ptr_words`); atomic as in `read_u8`.
            unsafe { AtomicU64::from_ptr(p.add(i)) }.store(w.to_le(), Ordering::Relaxed)
        }
    }

    /// Atomic (relaxed) writes of `count` consecutive aligned little-endian
    /// u64s from `offset`, word `k` being `first + k * step` (wrapping): an
    /// arithmetic run, such as the entries of a PRP list (one per memory
    /// page). One bounds check for the run, then one atomic store per word,
    /// in order.
    #[inline]
    pub fn write_u64_steps(&self, offset: usize, count: usize, first: u64, step: u64) {
        let size = count.checked_mul(8);
        assert!(
            offset.is_multiple_of(8)
                && size
                    .and_then(|s| offset.checked_add(s))
                    .is_some_and(|e| e <= self.len()),
            "DMA access of {count} u64s at offset {offset} outside or misaligned in a region of {}",
            self.len()
        );
        // SAFETY: in bounds (checked above).
        let p: *mut u64 = unsafe { self.region.as_ptr().add(offset).cast() };
        let mut v = first;
        for i in 0..count {
            // SAFETY: word i of the run, in bounds and aligned (checked
            // above); atomic as in `read_u8`.
            unsafe { AtomicU64::from_ptr(p.add(i)) }.store(v.to_le(), Ordering::Relaxed);
            v = v.wrapping_add(step);
        }
    }

    /// Atomic (relaxed) reads of `N` consecutive aligned little-endian u32s
    /// from `offset`: one bounds check for the run, one atomic load per word.
    #[inline]
    pub fn read_u32s<const N: usize>(&self, offset: usize) -> [u32; N] {
        let p: *mut u32 = self.ptr_words::<u32, N>(offset);
        std::array::from_fn(|i| {
            // SAFETY: word i of the run, in bounds and aligned (checked by
            // `ptr_words`); atomic as in `read_u8`.
            u32::from_le(unsafe { AtomicU32::from_ptr(p.add(i)) }.load(Ordering::Relaxed))
        })
    }

    /// The `N` aligned little-endian u32s at `offset` as a device publishes
    /// an entry (a completion): the last word, which the device writes
    /// last, with an acquire load; then, only if `ready` accepts it, the
    /// others with relaxed loads, which see what the device wrote before
    /// it. One bounds check for the run. None if `ready` refuses.
    #[inline]
    pub fn read_u32s_acquire_last<const N: usize>(
        &self,
        offset: usize,
        ready: impl FnOnce(u32) -> bool,
    ) -> Option<[u32; N]> {
        const { assert!(N > 0) };
        let p: *mut u32 = self.ptr_words::<u32, N>(offset);
        // SAFETY: word N - 1 of the run, in bounds and aligned (checked by
        // `ptr_words`); atomic as in `read_u8`.
        let last =
            u32::from_le(unsafe { AtomicU32::from_ptr(p.add(N - 1)) }.load(Ordering::Acquire));
        if !ready(last) {
            return None;
        }
        Some(std::array::from_fn(|i| {
            if i == N - 1 {
                return last;
            }
            // SAFETY: word i of the run, as above.
            u32::from_le(unsafe { AtomicU32::from_ptr(p.add(i)) }.load(Ordering::Relaxed))
        }))
    }

    /// Acquire load of an aligned little-endian u32: the dword a device writes
    /// last (phase tag, done bit). Reads that follow see what the device wrote
    /// before it.
    #[inline]
    pub fn load_u32_acquire(&self, offset: usize) -> u32 {
        // SAFETY: in bounds and aligned; the memory is only reached through
        // atomic accesses and device DMA, so an atomic view of it is sound.
        u32::from_le(unsafe { AtomicU32::from_ptr(self.ptr(offset)).load(Ordering::Acquire) })
    }

    /// Acquire load of an aligned little-endian u16.
    #[inline]
    pub fn load_u16_acquire(&self, offset: usize) -> u16 {
        // SAFETY: as in `load_u32_acquire`.
        u16::from_le(unsafe { AtomicU16::from_ptr(self.ptr(offset)).load(Ordering::Acquire) })
    }

    /// Copy `src` into the region at `offset` (CPU writes: descriptors,
    /// headers, test data), with atomic word and byte stores.
    pub fn write_bytes(&self, offset: usize, src: &[u8]) {
        let p = self.ptr_range(offset, src.len());
        // SAFETY: range in bounds (checked); the region is reached only by
        // atomic accesses and device DMA, so the atomic copy races nothing.
        unsafe { shared_bytes::store(p, src) }
    }

    /// Copy from the region at `offset` into `dst`, with atomic loads.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let p = self.ptr_range(offset, dst.len());
        // SAFETY: as in `write_bytes`.
        unsafe { shared_bytes::load(p, dst) }
    }

    /// Set `len` bytes at `offset` to `byte`, with atomic stores.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        let p = self.ptr_range(offset, len);
        // SAFETY: as in `write_bytes`.
        unsafe { shared_bytes::fill(p, len, byte) }
    }

    fn ptr_range(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(
            offset.checked_add(len).is_some_and(|e| e <= self.len()),
            "DMA copy of {len} bytes at offset {offset} outside a region of {}",
            self.len()
        );
        // SAFETY: in bounds (checked above).
        unsafe { self.region.as_ptr().add(offset) }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        let len = self.region.len();
        match self.mapper.unmap(self.iova, len) {
            // SAFETY: the device can no longer reach the memory, and `region`
            // is dropped only here, once.
            Ok(()) => unsafe { ManuallyDrop::drop(&mut self.region) },
            // The IOMMU may still translate to this memory, so freeing it would
            // let the device write into whatever reuses it. Leak it instead
            // (the mapper keeps the IOVA range out of reuse as well).
            Err(e) => eprintln!(
                "warning: {} unmap of IOVA {:#x}..{:#x} failed ({e}); leaking its {} bytes of \
                 memory, which the device may still reach",
                self.mapper.name(),
                self.iova,
                self.iova + len as u64,
                len
            ),
        }
    }
}

// SAFETY: all accesses are raw-pointer accesses whose bounds are checked; the
// mapper is Send + Sync.
unsafe impl Send for DmaRegion {}
// SAFETY: as above.
unsafe impl Sync for DmaRegion {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iova::IovaAllocator;
    use crate::EmuIommu;
    use std::sync::atomic::AtomicBool;

    /// A mapper like the VFIO one (IOVAs from the shared allocator, released
    /// only after a successful unmap) whose unmap can be made to fail, as the
    /// kernel's can.
    struct FlakyMapper {
        iova: IovaAllocator,
        fail_unmap: AtomicBool,
    }

    impl Mapper for FlakyMapper {
        unsafe fn map(&self, _vaddr: *mut u8, len: usize) -> Result<u64> {
            self.iova.allocate(len)
        }
        fn unmap(&self, iova: u64, len: usize) -> Result<()> {
            if self.fail_unmap.load(Ordering::Relaxed) {
                return Err(crate::Error::VfioUnmap("injected unmap failure".into()));
            }
            self.iova.release(iova, len);
            Ok(())
        }
        fn name(&self) -> &'static str {
            "flaky test mapper"
        }
    }

    /// Whether `ptr..ptr+len` is still mapped in this process.
    fn is_mapped(ptr: *mut u8, len: usize) -> bool {
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: mincore only inspects the page tables and writes one byte
        // per page into `vec`, which is large enough.
        unsafe { libc::mincore(ptr.cast(), len, vec.as_mut_ptr()) == 0 }
    }

    #[test]
    fn failed_unmap_leaks_the_memory_and_its_iova_range() {
        let mapper = Arc::new(FlakyMapper {
            iova: IovaAllocator::new(),
            fail_unmap: AtomicBool::new(true),
        });
        let m = DmaRegion::allocate(mapper.clone(), 4096, RegionOptions::EMULATED).unwrap();
        m.write_u64(0, 0x5eed_f00d);
        let (ptr, len, iova) = (m.as_ptr(), m.len(), m.iova());
        drop(m);
        // The device may still write there through the IOMMU, so the memory
        // must still be ours, untouched, never given back to the OS.
        assert!(is_mapped(ptr, len), "memory freed after a failed unmap");
        // SAFETY: the memory was leaked, not freed (checked above), and
        // nothing else owns it.
        assert_eq!(unsafe { ptr.cast::<u64>().read_volatile() }, 0x5eed_f00d);
        // Nor is its IOVA range handed out again.
        mapper.fail_unmap.store(false, Ordering::Relaxed);
        for _ in 0..100 {
            let n = DmaRegion::allocate(mapper.clone(), 4096, RegionOptions::EMULATED).unwrap();
            assert!(n.iova() >= iova + len as u64 || n.iova() + (n.len() as u64) <= iova);
        }
    }

    #[test]
    fn accessors_round_trip_little_endian() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.write_u64(8, 0x0102_0304_0506_0708);
        assert_eq!(m.read_u8(8), 0x08);
        assert_eq!(m.read_u16(8), 0x0708);
        assert_eq!(m.read_u32(12), 0x0102_0304);
        m.write_bytes(100, b"hello");
        let mut b = [0u8; 5];
        m.read_bytes(100, &mut b);
        assert_eq!(&b, b"hello");
        assert_eq!(m.iova_at(100), m.iova() + 100);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_access_panics_instead_of_corrupting() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.read_u32(m.len());
    }

    #[test]
    fn word_runs_round_trip_and_stay_in_their_bytes() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.fill(0, 64, 0xff);
        m.write_u64s(8, &[0x0403_0201_0807_0605, 0x0c0b_0a09_100f_0e0d]);
        assert_eq!(m.read_u64(0), u64::MAX);
        assert_eq!(
            m.read_u32s::<4>(8),
            [0x0807_0605, 0x0403_0201, 0x100f_0e0d, 0x0c0b_0a09]
        );
        assert_eq!(m.read_u64(24), u64::MAX);
        // The last words of the region are reachable.
        let end = m.len() - 16;
        m.write_u64s(end, &[1, 2]);
        assert_eq!(m.read_u32s::<4>(end), [1, 0, 2, 0]);
    }

    #[test]
    fn an_entry_is_read_only_when_its_last_word_is_ready() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.write_u64s(32, &[0x0000_0002_0000_0001, 0x0001_0000_0000_0003]);
        let mut seen = 0;
        let none = m.read_u32s_acquire_last::<4>(32, |w| {
            seen = w;
            w == 0
        });
        assert_eq!((none, seen), (None, 0x0001_0000));
        let got = m.read_u32s_acquire_last::<4>(32, |w| w & 0x0001_0000 != 0);
        assert_eq!(got, Some([1, 2, 3, 0x0001_0000]));
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_word_run_past_the_end_panics() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.write_u64s(m.len() - 8, &[1, 2]);
    }

    #[test]
    fn stepped_runs_write_their_words_and_nothing_around_them() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.fill(0, 64, 0xff);
        m.write_u64_steps(8, 3, 0x1_0000_1000, 0x1000);
        assert_eq!(m.read_u64(0), u64::MAX);
        assert_eq!(
            [m.read_u64(8), m.read_u64(16), m.read_u64(24)],
            [0x1_0000_1000, 0x1_0000_2000, 0x1_0000_3000]
        );
        assert_eq!(m.read_u32s::<2>(8), [0x1000, 1], "little-endian");
        assert_eq!(m.read_u64(32), u64::MAX);
        // None written for an empty run; the region's last words reachable.
        m.write_u64_steps(0, 0, 7, 1);
        assert_eq!(m.read_u64(0), u64::MAX);
        let end = m.len() - 16;
        m.write_u64_steps(end, 2, 5, 2);
        assert_eq!([m.read_u64(end), m.read_u64(end + 8)], [5, 7]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_stepped_run_past_the_end_panics() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.write_u64_steps(m.len() - 8, 2, 0, 1);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_stepped_run_of_overflowing_length_panics() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.write_u64_steps(8, usize::MAX / 4, 0, 1);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn a_misaligned_stepped_run_panics() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.write_u64_steps(4, 1, 0, 1);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn a_misaligned_word_run_panics() {
        let m =
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap();
        m.read_u32s::<2>(2);
    }
}
