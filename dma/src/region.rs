use crate::{Error, Result};
use std::ptr::NonNull;
use std::sync::Once;

/// The page size backing a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 2 MiB hugepages (the default).
    Huge2M,
    /// 1 GiB hugepages (reserved at boot, usually).
    Huge1G,
    /// Ordinary 4 KiB pages. Only for emulated devices, which have no
    /// physical-contiguity or TLB needs.
    Normal,
}

impl PageSize {
    /// The page size in bytes.
    pub fn bytes(self) -> usize {
        match self {
            PageSize::Huge2M => 2 << 20,
            PageSize::Huge1G => 1 << 30,
            PageSize::Normal => 4096,
        }
    }
}

/// How to get a region's memory.
#[derive(Debug, Clone, Copy)]
pub struct RegionOptions {
    /// Preferred page size.
    pub page_size: PageSize,
    /// When hugepages are not available, fall back to ordinary locked pages
    /// (with a one-line warning, once per process). Right for emulated
    /// devices only: a real device behind VFIO must not depend on it.
    pub allow_fallback: bool,
}

impl RegionOptions {
    /// 2 MiB hugepages, no fallback: what a real device gets.
    pub const HARDWARE: RegionOptions = RegionOptions {
        page_size: PageSize::Huge2M,
        allow_fallback: false,
    };
    /// 2 MiB hugepages when there are any, else ordinary locked memory.
    pub const EMULATED: RegionOptions = RegionOptions {
        page_size: PageSize::Huge2M,
        allow_fallback: true,
    };
}

/// Locked memory that is never swapped and can be mapped for DMA.
///
/// The region never hands out Rust references to its memory: whoever maps it
/// for a device reaches it through raw pointers (see [`crate::DmaRegion`]).
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    page_size: PageSize,
}

// SAFETY: the region is plain memory with no thread affinity; all accesses go
// through raw pointers whose synchronisation is the users' business.
unsafe impl Send for Region {}
// SAFETY: as above; `Region` itself has no interior state that is mutated.
unsafe impl Sync for Region {}

static FALLBACK_WARNING: Once = Once::new();

impl Region {
    /// Allocate at least `len` bytes (rounded up to the page size), zeroed and locked.
    pub fn allocate(len: usize, opts: RegionOptions) -> Result<Region> {
        if len == 0 {
            return Err(Error::InvalidLength(len));
        }
        match Self::allocate_pages(len, opts.page_size) {
            Err(Error::NoHugepages { .. }) if opts.allow_fallback => {
                FALLBACK_WARNING.call_once(|| {
                    eprintln!(
                        "warning: no free hugepages, using ordinary locked memory for emulated devices \
                         (reserve some with `hw-setup/hugepages.sh reserve 512`)"
                    )
                });
                Self::allocate_pages(len, PageSize::Normal)
            }
            other => other,
        }
    }

    fn allocate_pages(len: usize, page_size: PageSize) -> Result<Region> {
        let page = page_size.bytes();
        let len = len
            .checked_next_multiple_of(page)
            .ok_or(Error::InvalidLength(len))?;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        match page_size {
            PageSize::Huge2M => flags |= libc::MAP_HUGETLB | libc::MAP_HUGE_2MB,
            PageSize::Huge1G => flags |= libc::MAP_HUGETLB | libc::MAP_HUGE_1GB,
            PageSize::Normal => {}
        }
        // Anonymous hugetlb mappings leave no files in a hugetlbfs mount, so a
        // crashed run cannot leave stale pages that block the next one.
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let err = std::io::Error::last_os_error();
            return Err(match (page_size, err.raw_os_error()) {
                (PageSize::Normal, _) => Error::Mmap(err),
                (_, Some(libc::ENOMEM) | Some(libc::EINVAL)) => Error::NoHugepages {
                    len,
                    page_size: page,
                },
                _ => Error::Mmap(err),
            });
        }
        let region = Region {
            // mmap never returns null on success for a non-fixed mapping.
            ptr: NonNull::new(ptr.cast()).ok_or(Error::InvalidLength(len))?,
            len,
            page_size,
        };
        // SAFETY: the range is the mapping we just made.
        if unsafe { libc::mlock(ptr, len) } != 0 {
            let err = std::io::Error::last_os_error();
            // `region` is dropped here and unmaps the memory.
            return Err(match err.raw_os_error() {
                Some(libc::ENOMEM) | Some(libc::EPERM) | Some(libc::EAGAIN) => {
                    Error::MemlockLimit {
                        len,
                        limit: memlock_limit(),
                    }
                }
                _ => Error::Mmap(err),
            });
        }
        Ok(region)
    }

    /// A region over `ptr..ptr+len`, a locked mapping of `page_size` pages
    /// that the region owns from now on (unmapped on drop).
    pub(crate) fn from_mapping(ptr: NonNull<u8>, len: usize, page_size: PageSize) -> Region {
        Region {
            ptr,
            len,
            page_size,
        }
    }

    /// First byte of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes (a multiple of the page size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The page size actually used (after any fallback).
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; munmap also unlocks it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The soft RLIMIT_MEMLOCK, None if unlimited.
pub(crate) fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_region_is_zeroed_and_page_rounded() {
        let r = Region::allocate(
            5000,
            RegionOptions {
                page_size: PageSize::Normal,
                allow_fallback: false,
            },
        )
        .unwrap();
        assert_eq!(r.len(), 8192);
        for i in 0..r.len() {
            // SAFETY: inside the region; no device has it.
            assert_eq!(unsafe { r.as_ptr().add(i).read() }, 0);
        }
    }

    #[test]
    fn zero_length_is_refused() {
        assert!(matches!(
            Region::allocate(0, RegionOptions::EMULATED),
            Err(Error::InvalidLength(0))
        ));
    }

    #[test]
    fn emulated_allocation_succeeds_with_or_without_hugepages() {
        let r = Region::allocate(3 << 20, RegionOptions::EMULATED).unwrap();
        assert!(r.len() >= 3 << 20);
        assert_eq!(r.len() % r.page_size().bytes(), 0);
    }
}
