//! DMA without an IOMMU: the device is given physical addresses.
//!
//! VFIO's no-IOMMU mode (`/dev/vfio/noiommu-N`) has no DMA map ioctls: the
//! device reaches memory by its physical address, with nothing to confine
//! it. [`PhysAddrMapper`] is the [`Mapper`] of that mode: `map` returns the
//! physical address of the first byte, read from `/proc/self/pagemap`
//! (which shows physical addresses only to processes with CAP_SYS_RAWIO),
//! after checking that every byte of the range follows the one before it
//! physically, because drivers compute a buffer's device address as the
//! region's address plus an offset.
//!
//! One 2 MiB (or 1 GiB) hugepage is always physically contiguous; several
//! usually are not in virtual order (the kernel hands hugepages out last
//! freed first, so they tend to come in descending physical order). So a
//! region larger than one hugepage is made contiguous where it is
//! allocated: `allocate_contiguous` (used by [`crate::DmaRegion::allocate`]
//! when the mapper says [`Mapper::needs_physically_contiguous`]) takes the
//! hugepages from a hugetlb memfd, finds a physically contiguous run among
//! them (taking up to 64 more of the free ones, or four times the pages
//! asked for, if the first pick has none), and maps
//! that run in physical order; the pages it does not use go back to the
//! pool. A region that cannot be made contiguous is refused with
//! [`Error::NoContiguousHugepages`]; memory that reaches `map` without being
//! contiguous is refused with [`Error::NotPhysicallyContiguous`]. Nothing is
//! ever given to a device at an address that is not the memory's.
//!
//! What no-IOMMU mode gives up (the warning the drivers print says so): the
//! device can read and write all of memory, not just the DMA pools, so a
//! buggy or hostile device (or a driver bug that posts a wrong address)
//! corrupts or leaks anything; and the pages are not pinned by VFIO, only
//! locked (mlock keeps them in memory, but the kernel may still migrate a
//! hugepage, e.g. for memory compaction or offlining, which would move the
//! memory away from the address the device has).

use crate::{Error, Mapper, PageSize, Region, RegionOptions, Result};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

/// `/proc/self/pagemap` has one entry per base page (Linux
/// Documentation/admin-guide/mm/pagemap.rst), also inside hugepages.
const BASE_PAGE: u64 = 4096;
/// Bytes per pagemap entry.
const ENTRY_LEN: usize = 8;
/// Pagemap entry: page present in RAM (bit 63).
const PM_PRESENT: u64 = 1 << 63;
/// Pagemap entry: the page frame number when present (bits 0-54).
const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// Reads physical addresses from a pagemap file: `/proc/self/pagemap`, or a
/// fake one in tests.
#[derive(Debug)]
pub struct PageMap<F: FileExt = File> {
    file: F,
}

impl PageMap<File> {
    /// Open `/proc/self/pagemap`.
    pub fn open_self() -> Result<PageMap<File>> {
        File::open("/proc/self/pagemap")
            .map(|file| PageMap { file })
            .map_err(Error::PageMap)
    }
}

impl<F: FileExt> PageMap<F> {
    /// Read entries from `file`, laid out as `/proc/self/pagemap`.
    pub fn from_file(file: F) -> PageMap<F> {
        PageMap { file }
    }

    /// The physical address of `vaddr..vaddr+len` (len > 0), checked to be
    /// physically contiguous: byte `i` of the range is at the returned
    /// address plus `i`.
    pub fn contiguous(&self, vaddr: u64, len: usize) -> Result<u64> {
        if len == 0 {
            return Err(Error::InvalidLength(len));
        }
        let end = vaddr
            .checked_add(len as u64)
            .ok_or(Error::InvalidLength(len))?;
        let first = vaddr / BASE_PAGE;
        let pages = (end.div_ceil(BASE_PAGE) - first) as usize;
        let mut raw = vec![0u8; pages * ENTRY_LEN];
        self.file
            .read_exact_at(&mut raw, first * ENTRY_LEN as u64)
            .map_err(Error::PageMap)?;
        let mut base = 0;
        for (i, entry) in raw.chunks_exact(ENTRY_LEN).enumerate() {
            // chunks_exact gives ENTRY_LEN (8) bytes.
            let entry = u64::from_ne_bytes(entry.try_into().expect("8-byte chunk"));
            let page_vaddr = (first + i as u64) * BASE_PAGE;
            let phys = entry_address(entry, page_vaddr)?;
            if i == 0 {
                base = phys;
            } else if phys != base + i as u64 * BASE_PAGE {
                return Err(Error::NotPhysicallyContiguous {
                    len,
                    offset: (page_vaddr - vaddr) as usize,
                });
            }
        }
        Ok(base + vaddr % BASE_PAGE)
    }
}

/// The physical address of the base page at `vaddr` from its pagemap entry.
fn entry_address(entry: u64, vaddr: u64) -> Result<u64> {
    if entry & PM_PRESENT == 0 {
        return Err(Error::PageNotPresent { vaddr });
    }
    match entry & PM_PFN_MASK {
        // Since Linux 4.2 the PFN reads as 0 without CAP_SYS_RAWIO; PFN 0
        // itself is firmware memory, never a page of a process.
        0 => Err(Error::PhysAddrHidden),
        pfn => Ok(pfn * BASE_PAGE),
    }
}

/// The [`Mapper`] of VFIO's no-IOMMU mode: the "IOVA" of memory is its
/// physical address. Nothing is mapped, so `unmap` has nothing to undo.
#[derive(Debug)]
pub struct PhysAddrMapper {
    pagemap: PageMap,
}

impl PhysAddrMapper {
    /// Open `/proc/self/pagemap` and check that it shows physical
    /// addresses (the process has CAP_SYS_RAWIO).
    pub fn new() -> Result<PhysAddrMapper> {
        let pagemap = PageMap::open_self()?;
        // A page that is surely present: the one holding this local.
        let probe = 0u64;
        pagemap.contiguous(std::ptr::addr_of!(probe) as u64, 1)?;
        Ok(PhysAddrMapper { pagemap })
    }
}

impl Mapper for PhysAddrMapper {
    unsafe fn map(&self, vaddr: *mut u8, len: usize) -> Result<u64> {
        self.pagemap.contiguous(vaddr as u64, len)
    }

    fn unmap(&self, _iova: u64, _len: usize) -> Result<()> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "no-IOMMU (physical addresses)"
    }

    fn needs_physically_contiguous(&self) -> bool {
        true
    }
}

/// Indices into `phys` (page addresses) of `count` pages that are
/// physically contiguous, in physical order; None if there is no such run.
fn contiguous_run(phys: &[u64], count: usize, page: u64) -> Option<Vec<usize>> {
    if count == 0 || count > phys.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..phys.len()).collect();
    order.sort_by_key(|&i| phys[i]);
    let mut start = 0;
    for k in 0..order.len() {
        if k > 0 && phys[order[k]] != phys[order[k - 1]].wrapping_add(page) {
            start = k;
        }
        if k + 1 - start == count {
            return Some(order[start..=k].to_vec());
        }
    }
    None
}

// memfd_create flags (Linux uapi <linux/memfd.h>); the hugepage size is
// encoded as in mmap's MAP_HUGE_* (log2 of the size at bit 26).
const MFD_CLOEXEC: libc::c_uint = 0x1;
const MFD_HUGETLB: libc::c_uint = 0x4;
const MFD_HUGE_SHIFT: u32 = 26;

/// Hugepages taken to search for a run when the first pick has none: at
/// least this many, or four times the pages asked for.
const SEARCH_EXTRA: usize = 64;

/// Free hugepages of `page` bytes (0 if unknown).
fn free_hugepages(page: usize) -> usize {
    std::fs::read_to_string(format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB/free_hugepages",
        page / 1024
    ))
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

/// A shared mapping of a file, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: a mapping this value made and owns; nothing else uses it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// mmap `len` bytes with `flags`; hugepage exhaustion is NoHugepages.
///
/// # Safety
/// With MAP_FIXED, `addr..addr+len` must be memory the caller owns and
/// nothing references.
unsafe fn mmap(
    addr: *mut u8,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
    fd: libc::c_int,
    offset: usize,
    page: usize,
) -> Result<Mapping> {
    let off = libc::off_t::try_from(offset).map_err(|_| Error::InvalidLength(offset))?;
    // SAFETY: the caller's contract for MAP_FIXED; otherwise a new mapping.
    let p = unsafe { libc::mmap(addr.cast(), len, prot, flags, fd, off) };
    if p == libc::MAP_FAILED {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOMEM) | Some(libc::EINVAL) if fd >= 0 => Error::NoHugepages {
                len,
                page_size: page,
            },
            _ => Error::Mmap(err),
        });
    }
    Ok(Mapping {
        // mmap never returns null on success (we never map at address 0).
        ptr: NonNull::new(p.cast()).ok_or(Error::InvalidLength(len))?,
        len,
    })
}

/// Allocate `len` bytes (rounded up to the page size) of zeroed, locked
/// hugepages that are physically contiguous in virtual order, for
/// no-IOMMU DMA. `opts.page_size` Normal means 2 MiB here: ordinary pages
/// are never contiguous beyond one page. No fallback.
pub(crate) fn allocate_contiguous(len: usize, opts: RegionOptions) -> Result<Region> {
    let page_size = match opts.page_size {
        PageSize::Normal => PageSize::Huge2M,
        p => p,
    };
    let page = page_size.bytes();
    if len == 0 {
        return Err(Error::InvalidLength(len));
    }
    let total = len
        .checked_next_multiple_of(page)
        .ok_or(Error::InvalidLength(len))?;
    let count = total / page;
    let flags = MFD_CLOEXEC | MFD_HUGETLB | ((page.trailing_zeros()) << MFD_HUGE_SHIFT);
    // SAFETY: a C string literal and flags; returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"dma-noiommu".as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::Mmap(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let pagemap = PageMap::open_self()?;

    // First the pages asked for; if no run of `count` is among them, every
    // free hugepage as well (the file keeps the first ones).
    let mut pages = count;
    let (run, search) = loop {
        file.set_len((pages * page) as u64).map_err(Error::Mmap)?;
        // SAFETY: a new shared mapping of our own file.
        let search = match unsafe {
            mmap(
                std::ptr::null_mut(),
                pages * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
                page,
            )
        } {
            Ok(m) => m,
            // The free pages went elsewhere meanwhile.
            Err(Error::NoHugepages { .. }) if pages > count => {
                return Err(Error::NoContiguousHugepages {
                    len,
                    page_size: page,
                    searched: count,
                })
            }
            Err(e) => return Err(e),
        };
        let mut phys = Vec::with_capacity(pages);
        for i in 0..pages {
            // One hugepage is contiguous; `contiguous` checks it is.
            let vaddr = search.ptr.as_ptr() as u64 + (i * page) as u64;
            phys.push(pagemap.contiguous(vaddr, page)?);
        }
        if let Some(run) = contiguous_run(&phys, count, page as u64) {
            break (run, search);
        }
        // Bounded: every page searched is populated (zeroed) first.
        let more = free_hugepages(page).min(SEARCH_EXTRA.max(count * 4));
        if pages > count || more == 0 {
            return Err(Error::NoContiguousHugepages {
                len,
                page_size: page,
                searched: pages,
            });
        }
        drop(search);
        pages = count + more;
    };

    // A place for the region: reserved, aligned to the page size (hugetlb
    // mappings must be), then filled page by page in physical order.
    // SAFETY: a new private reservation, no file.
    let reserve = unsafe {
        mmap(
            std::ptr::null_mut(),
            total + page,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
            page,
        )?
    };
    let base = (reserve.ptr.as_ptr() as usize).next_multiple_of(page) as *mut u8;
    for (slot, &file_page) in run.iter().enumerate() {
        // SAFETY: `base + slot*page .. + page` lies inside `reserve`
        // (base <= reserve + page - 1, slot < count), which we own and which
        // nothing references; MAP_FIXED replaces that part of it.
        let piece = unsafe {
            mmap(
                base.add(slot * page),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                file_page * page,
                page,
            )?
        };
        // The reservation's drop (or the region's) unmaps it.
        std::mem::forget(piece);
    }
    // The region owns `base..base+total` from here; the unaligned head and
    // tail of the reservation go.
    let reserve = std::mem::ManuallyDrop::new(reserve);
    let head = base as usize - reserve.ptr.as_ptr() as usize;
    let tail = page - head;
    // SAFETY: both ranges are parts of the reservation outside the region
    // (head: before base; tail: after base+total), unused by anything.
    unsafe {
        if head > 0 {
            libc::munmap(reserve.ptr.as_ptr().cast(), head);
        }
        if tail > 0 {
            libc::munmap(base.add(total).cast(), tail);
        }
    }
    let region = Region::from_mapping(
        // `base` is inside a successful mapping, so it is not null.
        NonNull::new(base).ok_or(Error::InvalidLength(len))?,
        total,
        page_size,
    );
    // The search mapping goes; the pages not in the run go back to the
    // pool (hugetlbfs frees a punched page at once). A failed punch only
    // keeps a page until the region is dropped.
    let used: std::collections::HashSet<usize> = run.iter().copied().collect();
    drop(search);
    for p in (0..pages).filter(|p| !used.contains(p)) {
        // SAFETY: fallocate on our own file; no memory is touched.
        unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (p * page) as libc::off_t,
                page as libc::off_t,
            )
        };
    }
    // SAFETY: the range is the region's mapping.
    if unsafe { libc::mlock(base.cast(), total) } != 0 {
        let err = std::io::Error::last_os_error();
        // `region` is dropped here and unmaps the memory.
        return Err(match err.raw_os_error() {
            Some(libc::ENOMEM) | Some(libc::EPERM) | Some(libc::EAGAIN) => Error::MemlockLimit {
                len: total,
                limit: crate::region::memlock_limit(),
            },
            _ => Error::Mmap(err),
        });
    }
    // Check what the device will be given (the mapper checks again).
    pagemap.contiguous(base as u64, total)?;
    Ok(region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A fake pagemap: `entries` from virtual page `first` on.
    fn fake(first: u64, entries: &[u64]) -> PageMap {
        // One file per call: tests run in parallel threads of one process.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pagemap-test-{}-{n}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![0u8; first as usize * ENTRY_LEN]).unwrap();
        for e in entries {
            f.write_all(&e.to_ne_bytes()).unwrap();
        }
        drop(f);
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        PageMap::from_file(file)
    }

    fn present(pfn: u64) -> u64 {
        // Bit 61 (file page) and 56 (exclusive) set as the kernel may.
        PM_PRESENT | 1 << 61 | 1 << 56 | pfn
    }

    #[test]
    fn contiguous_pages_give_the_physical_address_of_the_first_byte() {
        let pm = fake(16, &[present(0x1000), present(0x1001), present(0x1002)]);
        let vaddr = 16 * BASE_PAGE;
        assert_eq!(pm.contiguous(vaddr, 3 * 4096).unwrap(), 0x1000 * 4096);
        // An offset inside the first page carries over; a range inside one page.
        assert_eq!(pm.contiguous(vaddr + 100, 50).unwrap(), 0x1000 * 4096 + 100);
        assert_eq!(
            pm.contiguous(vaddr + 4096 + 4000, 200).unwrap(),
            0x1001 * 4096 + 4000
        );
    }

    #[test]
    fn a_break_is_refused_with_its_offset() {
        let pm = fake(16, &[present(0x1000), present(0x1001), present(0x2000)]);
        let err = pm.contiguous(16 * BASE_PAGE + 8, 3 * 4096 - 8).unwrap_err();
        assert!(
            matches!(err, Error::NotPhysicallyContiguous { len, offset } if len == 3 * 4096 - 8 && offset == 2 * 4096 - 8),
            "{err:?}"
        );
        // Descending pages (what the hugepage pool usually hands out) too.
        let pm = fake(16, &[present(0x1001), present(0x1000)]);
        assert!(matches!(
            pm.contiguous(16 * BASE_PAGE, 8192),
            Err(Error::NotPhysicallyContiguous { offset: 4096, .. })
        ));
    }

    #[test]
    fn hidden_and_missing_pages_are_named() {
        // Without CAP_SYS_RAWIO: present, PFN 0.
        let pm = fake(16, &[PM_PRESENT, PM_PRESENT]);
        let err = pm.contiguous(16 * BASE_PAGE, 8192).unwrap_err();
        assert!(matches!(err, Error::PhysAddrHidden), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("CAP_SYS_RAWIO") && !msg.contains('\n'),
            "{msg}"
        );
        let pm = fake(16, &[present(7), 0]);
        let err = pm.contiguous(16 * BASE_PAGE, 8192).unwrap_err();
        assert!(
            matches!(err, Error::PageNotPresent { vaddr } if vaddr == 17 * BASE_PAGE),
            "{err:?}"
        );
        // Past the end of the file: a read error, not a panic.
        assert!(matches!(
            pm.contiguous(18 * BASE_PAGE, 1),
            Err(Error::PageMap(_))
        ));
        assert!(matches!(pm.contiguous(0, 0), Err(Error::InvalidLength(0))));
        assert!(matches!(
            pm.contiguous(u64::MAX - 10, 100),
            Err(Error::InvalidLength(100))
        ));
    }

    #[test]
    fn runs_are_found_in_physical_order() {
        let m: u64 = 2 << 20;
        // Descending: the run is the reverse.
        assert_eq!(
            contiguous_run(&[3 * m, 2 * m, m], 3, m),
            Some(vec![2, 1, 0])
        );
        // A gap: the longer side has the run of two.
        assert_eq!(
            contiguous_run(&[10 * m, 2 * m, 5 * m, 11 * m], 2, m),
            Some(vec![0, 3])
        );
        assert_eq!(contiguous_run(&[10 * m, 2 * m, 5 * m, 12 * m], 2, m), None);
        assert_eq!(contiguous_run(&[m], 1, m), Some(vec![0]));
        assert_eq!(contiguous_run(&[m], 2, m), None);
        assert_eq!(contiguous_run(&[], 0, m), None);
    }

    /// Whether this process sees physical addresses and has 2 MiB
    /// hugepages free: the real allocation is only tested then.
    fn real_allocation_possible(pages: usize) -> bool {
        PhysAddrMapper::new().is_ok() && free_hugepages(2 << 20) >= pages
    }

    #[test]
    fn contiguous_regions_map_to_their_physical_address() {
        if !real_allocation_possible(8) {
            eprintln!("skipped: needs CAP_SYS_RAWIO and 8 free 2 MiB hugepages");
            return;
        }
        let mapper = PhysAddrMapper::new().unwrap();
        // One hugepage is always contiguous: this must work on any host.
        let one = allocate_contiguous(4096, RegionOptions::HARDWARE).unwrap();
        assert_eq!(one.len(), 2 << 20);
        // SAFETY: nothing is mapped for a device; the range is the region's.
        let phys = unsafe { mapper.map(one.as_ptr(), one.len()) }.unwrap();
        assert_eq!(phys % (2 << 20) as u64, 0);
        // Four in a row depend on how fragmented the host's hugepage pool
        // is (tests running beside this one take pages too): a refusal is
        // the documented outcome, and must say what it searched.
        let region = match allocate_contiguous(3 * (2 << 20) + 1, RegionOptions::HARDWARE) {
            Ok(r) => r,
            Err(e @ Error::NoContiguousHugepages { .. }) => {
                eprintln!("4 contiguous hugepages not found here ({e}); one-page region checked");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(region.len(), 4 * (2 << 20));
        assert_eq!(region.page_size(), PageSize::Huge2M);
        // SAFETY: nothing is mapped for a device; the range is the region's.
        let phys = unsafe { mapper.map(region.as_ptr(), region.len()) }.unwrap();
        assert_eq!(phys % (2 << 20) as u64, 0);
        // Every hugepage where the first one says.
        let pm = PageMap::open_self().unwrap();
        for i in 0..4 {
            let v = region.as_ptr() as u64 + i * (2 << 20);
            assert_eq!(pm.contiguous(v, 1).unwrap(), phys + i * (2 << 20));
        }
        // Zeroed.
        // SAFETY: inside the region; no device has it.
        assert_eq!(unsafe { region.as_ptr().add(4 * (2 << 20) - 1).read() }, 0);
    }
}
