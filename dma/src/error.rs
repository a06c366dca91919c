#![forbid(unsafe_code)]

use std::fmt;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A device access that the emulated IOMMU stopped: the IOVA range is not
/// (entirely) inside one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IommuFault {
    /// First IOVA of the access.
    pub iova: u64,
    /// Length of the access in bytes.
    pub len: usize,
    /// Whether the device tried to write (true) or read (false).
    pub write: bool,
}

impl fmt::Display for IommuFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IOMMU fault: device {} of {} bytes at IOVA {:#x} is outside every mapped region",
            if self.write { "write" } else { "read" },
            self.len,
            self.iova
        )
    }
}

impl std::error::Error for IommuFault {}

/// Everything that can go wrong when getting DMA memory.
#[derive(Debug)]
pub enum Error {
    /// No free hugepages of the requested size.
    NoHugepages {
        /// Bytes requested.
        len: usize,
        /// Page size in bytes.
        page_size: usize,
    },
    /// mlock failed: RLIMIT_MEMLOCK too low.
    MemlockLimit {
        /// Bytes that had to be locked.
        len: usize,
        /// The current soft limit in bytes (None: unlimited or unknown).
        limit: Option<u64>,
    },
    /// Another failure of mmap.
    Mmap(std::io::Error),
    /// A length of zero, or one that overflows.
    InvalidLength(usize),
    /// The emulated IOMMU's address space is exhausted.
    IovaSpaceExhausted,
    /// The IOVA given to unmap is not mapped.
    NotMapped(u64),
    /// The VFIO container refused the mapping.
    VfioMap(String),
    /// The VFIO container could not remove a mapping (the device may still
    /// reach the memory through it).
    VfioUnmap(String),
    /// A pool was asked for zero buffers, a zero buffer size, or a size that does not fit.
    InvalidPool(String),
    /// An offset/length outside the region.
    OutOfBounds {
        /// Offset asked for.
        offset: usize,
        /// Length asked for.
        len: usize,
        /// Length of the region.
        region_len: usize,
    },
    /// `/proc/self/pagemap` could not be read (no-IOMMU mode needs it).
    PageMap(std::io::Error),
    /// `/proc/self/pagemap` shows a present page with physical address 0:
    /// the kernel hides physical addresses from processes without
    /// CAP_SYS_RAWIO.
    PhysAddrHidden,
    /// A page of memory to be mapped without IOMMU is not present (the
    /// memory was not populated and locked).
    PageNotPresent {
        /// Its virtual address.
        vaddr: u64,
    },
    /// Memory to be mapped without IOMMU is not physically contiguous.
    NotPhysicallyContiguous {
        /// Bytes to be mapped.
        len: usize,
        /// Offset of the first byte that does not follow the one before it.
        offset: usize,
    },
    /// No run of physically contiguous hugepages large enough for a region
    /// was found among the free hugepages (no-IOMMU mode).
    NoContiguousHugepages {
        /// Bytes requested.
        len: usize,
        /// Page size in bytes.
        page_size: usize,
        /// Hugepages searched.
        searched: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // 1 GiB pages are a pool of their own: the 2 MiB advice below would not help.
            Error::NoHugepages { len, page_size } if *page_size >= 1 << 30 => write!(
                f,
                "no free {} hugepages for {} bytes of DMA memory; reserve {n}: \
                 `hw-setup/hugepages.sh reserve {n} --size 1G` (1 GiB pages are usually reserved \
                 at boot with `default_hugepagesz=1G hugepagesz=1G hugepages={n}`)",
                human(*page_size as u64),
                len,
                n = len.div_ceil(*page_size)
            ),
            Error::NoHugepages { len, page_size } => write!(
                f,
                "no free {} hugepages for {} bytes of DMA memory; reserve some: \
                 `hw-setup/hugepages.sh reserve 512` (or `echo 512 > /proc/sys/vm/nr_hugepages` as root)",
                human(*page_size as u64),
                len
            ),
            Error::MemlockLimit { len, limit } => write!(
                f,
                "cannot lock {} bytes of DMA memory: RLIMIT_MEMLOCK is {}; raise it with \
                 `ulimit -l unlimited` (as root) or a `memlock` line in /etc/security/limits.conf",
                len,
                limit.map(human).unwrap_or_else(|| "too low".into())
            ),
            Error::Mmap(e) => write!(f, "mmap of DMA memory failed: {e}"),
            Error::InvalidLength(l) => write!(f, "invalid DMA memory length {l}"),
            Error::IovaSpaceExhausted => write!(f, "the emulated IOMMU has no IOVA space left"),
            Error::NotMapped(iova) => write!(f, "IOVA {iova:#x} is not mapped"),
            Error::VfioMap(e) => write!(
                f,
                "the VFIO container refused the DMA mapping ({e}); check RLIMIT_MEMLOCK \
                 (`ulimit -l unlimited`) and that the IOMMU group is attached"
            ),
            Error::VfioUnmap(e) => {
                write!(f, "the VFIO container could not remove the DMA mapping ({e})")
            }
            Error::InvalidPool(why) => write!(f, "invalid buffer pool: {why}"),
            Error::OutOfBounds {
                offset,
                len,
                region_len,
            } => write!(
                f,
                "access of {len} bytes at offset {offset} is outside a region of {region_len} bytes"
            ),
            Error::PageMap(e) => write!(
                f,
                "cannot read /proc/self/pagemap for the physical addresses of DMA memory \
                 (no-IOMMU mode): {e}; the kernel needs CONFIG_PROC_PAGE_MONITOR"
            ),
            Error::PhysAddrHidden => write!(
                f,
                "/proc/self/pagemap hides physical addresses (reads them as 0): no-IOMMU mode \
                 needs CAP_SYS_RAWIO; run as root or give the binary the capability \
                 (`setcap cap_sys_rawio,cap_ipc_lock+ep BINARY`)"
            ),
            Error::PageNotPresent { vaddr } => write!(
                f,
                "DMA memory at {vaddr:#x} is not present in /proc/self/pagemap although it was \
                 populated and locked; check `dmesg` and the hugepage pool (`hw-setup/hugepages.sh show`)"
            ),
            Error::NotPhysicallyContiguous { len, offset } => write!(
                f,
                "DMA memory of {} is not physically contiguous (a break at offset {offset}), \
                 which no-IOMMU mode needs: a device would write past the break into \
                 another process's memory; allocate it with `DmaRegion::allocate` (which picks \
                 contiguous hugepages) or in pieces of one hugepage",
                human(*len as u64)
            ),
            Error::NoContiguousHugepages {
                len,
                page_size,
                searched,
            } => write!(
                f,
                "no {} of physically contiguous {} hugepages among the {searched} free ones \
                 (no-IOMMU mode needs each DMA region physically contiguous); reserve hugepages \
                 early, when memory is not yet fragmented (`hugepages=N` on the kernel command \
                 line or `hw-setup/hugepages.sh reserve N` right after boot), use 1 GiB pages, \
                 or ask for smaller pools",
                human(*len as u64),
                human(*page_size as u64)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// "2 MiB", "1 GiB", "4 KiB", "123 B".
pub(crate) fn human(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_advice_names_the_page_size_asked_for() {
        let two_m = Error::NoHugepages {
            len: 6 << 20,
            page_size: 2 << 20,
        }
        .to_string();
        assert!(two_m.contains("no free 2 MiB hugepages"), "{two_m}");
        assert!(
            two_m.contains("`hw-setup/hugepages.sh reserve 512`"),
            "{two_m}"
        );
        let one_g = Error::NoHugepages {
            len: 3 << 30,
            page_size: 1 << 30,
        }
        .to_string();
        assert!(one_g.contains("no free 1 GiB hugepages"), "{one_g}");
        assert!(
            one_g.contains("`hw-setup/hugepages.sh reserve 3 --size 1G`"),
            "{one_g}"
        );
        assert!(!one_g.contains("reserve 512"), "{one_g}");
    }
}
