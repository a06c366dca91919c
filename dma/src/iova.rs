//! The IOVA allocator shared by every [`crate::Mapper`] that chooses IOVAs
//! (the emulated IOMMU and the VFIO container).
//!
//! Freed ranges go back into a free set and are reused (first fit, coalesced
//! with free neighbours), so a process that maps and unmaps queues for weeks
//! stays inside a small part of the aperture instead of walking off its end.
//! Only region-level allocation comes here; buffer pools never do.
#![forbid(unsafe_code)]

use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// First IOVA handed out. IOVAs are deliberately unlike the process's virtual
/// addresses, so a driver that puts a virtual address in a descriptor fails
/// with an IOMMU fault instead of working by accident. 4 GiB is above the
/// x86 MSI window and inside a 39-bit IOMMU aperture.
pub const IOVA_BASE: u64 = 1 << 32;

/// End of the IOVA space handed out (exclusive): 48 bits.
const IOVA_END: u64 = 1 << 48;

/// Gap left unmapped after every mapping, so that a device access running off
/// the end of one mapping faults instead of landing in the next one. Also the
/// alignment of every IOVA (mappings are rounded up to it).
pub(crate) const GUARD: u64 = 2 << 20;

/// What an IOVA allocator has handed out and not yet got back: a soak run
/// samples it to show that mapping and unmapping for hours leaves the IOVA
/// space where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IovaUsage {
    /// Live mappings.
    pub mappings: usize,
    /// IOVA space they take, in bytes: each mapping rounded up to 2 MiB,
    /// plus its 2 MiB guard gap.
    pub bytes: u64,
    /// End (exclusive) of the highest live mapping with its guard; 0 with
    /// none. Ranges are reused lowest first, so this stays put when nothing
    /// leaks.
    pub top: u64,
}

/// Hands out IOVA ranges: 2 MiB aligned, each followed by a guard gap, reused
/// once released.
#[derive(Debug)]
pub(crate) struct IovaAllocator {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Free ranges, start -> end (exclusive). Never adjacent: neighbours are
    /// merged on release, so a run of frees leaves one range.
    free: BTreeMap<u64, u64>,
    /// Allocated ranges, start -> span (mapping rounded up, plus the guard).
    /// Release only accepts what is here, so a double or mistaken release can
    /// never put a live mapping's range back into `free`.
    live: BTreeMap<u64, u64>,
}

impl IovaAllocator {
    pub(crate) fn new() -> Self {
        Self::with_range(IOVA_BASE, IOVA_END)
    }

    /// An allocator over `start..end` (both multiples of [`GUARD`]); tests use
    /// a small aperture to exhaust it quickly.
    pub(crate) fn with_range(start: u64, end: u64) -> Self {
        debug_assert!(start.is_multiple_of(GUARD) && end.is_multiple_of(GUARD) && start < end);
        IovaAllocator {
            inner: Mutex::new(Inner {
                free: BTreeMap::from([(start, end)]),
                live: BTreeMap::new(),
            }),
        }
    }

    /// The IOVA space a mapping of `len` bytes takes: rounded up to the
    /// alignment, plus the guard gap after it.
    fn span(len: usize) -> Result<u64> {
        (len as u64)
            .checked_next_multiple_of(GUARD)
            .and_then(|l| l.checked_add(GUARD))
            .ok_or(Error::IovaSpaceExhausted)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An IOVA for a mapping of `len` bytes: the lowest free range that holds
    /// it (first fit).
    pub(crate) fn allocate(&self, len: usize) -> Result<u64> {
        let span = Self::span(len)?;
        let mut inner = self.lock();
        // Every free range starts and ends on a GUARD multiple (the initial
        // range does, and spans are multiples), so its start is aligned.
        let (start, end) = inner
            .free
            .iter()
            .find(|&(&s, &e)| e - s >= span)
            .map(|(&s, &e)| (s, e))
            .ok_or(Error::IovaSpaceExhausted)?;
        inner.free.remove(&start);
        if start + span < end {
            inner.free.insert(start + span, end);
        }
        inner.live.insert(start, span);
        Ok(start)
    }

    /// Give back the range of a mapping of `len` bytes at `iova`, once the
    /// mapping is gone. Returns false (and changes nothing) when no such
    /// allocation is live. A mapper whose unmap failed must not call this:
    /// the device may still reach the range, so it stays out of reuse.
    pub(crate) fn release(&self, iova: u64, len: usize) -> bool {
        let Ok(span) = Self::span(len) else {
            return false;
        };
        let mut inner = self.lock();
        if inner.live.get(&iova) != Some(&span) {
            return false;
        }
        inner.live.remove(&iova);
        let (mut start, mut end) = (iova, iova + span);
        // Merge with the free range ending where this one starts...
        if let Some((&s, &e)) = inner.free.range(..start).next_back() {
            if e == start {
                inner.free.remove(&s);
                start = s;
            }
        }
        // ...and with the one starting where it ends.
        if let Some(e) = inner.free.remove(&end) {
            end = e;
        }
        inner.free.insert(start, end);
        true
    }

    /// What is handed out now.
    pub(crate) fn usage(&self) -> IovaUsage {
        let inner = self.lock();
        IovaUsage {
            mappings: inner.live.len(),
            bytes: inner.live.values().sum(),
            top: inner
                .live
                .iter()
                .next_back()
                .map_or(0, |(&s, &span)| s + span),
        }
    }

    /// Number of free ranges (test observation of coalescing).
    #[cfg(test)]
    fn free_ranges(&self) -> Vec<(u64, u64)> {
        self.lock().free.iter().map(|(&s, &e)| (s, e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn small_aperture_survives_more_cycles_than_it_holds() {
        // Room for four 2 MiB mappings with their guards.
        let a = IovaAllocator::with_range(IOVA_BASE, IOVA_BASE + 16 * MIB);
        let mut highest = 0;
        for _ in 0..10_000 {
            let iova = a.allocate(4096).unwrap();
            highest = highest.max(iova);
            assert!(a.release(iova, 4096));
        }
        assert_eq!(highest, IOVA_BASE);
        // And it is really that small: a fifth live mapping does not fit.
        let live: Vec<u64> = (0..4).map(|_| a.allocate(1).unwrap()).collect();
        assert!(matches!(a.allocate(1), Err(Error::IovaSpaceExhausted)));
        for iova in live {
            assert!(a.release(iova, 1));
        }
        assert_eq!(a.free_ranges(), [(IOVA_BASE, IOVA_BASE + 16 * MIB)]);
    }

    #[test]
    fn freed_neighbours_coalesce() {
        let a = IovaAllocator::with_range(IOVA_BASE, IOVA_BASE + 64 * MIB);
        let x = a.allocate(2 * MIB as usize).unwrap(); // 4 MiB span
        let y = a.allocate(2 * MIB as usize).unwrap();
        let z = a.allocate(2 * MIB as usize).unwrap();
        assert_eq!((x, y, z), (IOVA_BASE, x + 4 * MIB, y + 4 * MIB));
        assert!(a.release(x, 2 * MIB as usize));
        assert!(a.release(z, 2 * MIB as usize));
        // x alone; z merged with the tail.
        assert_eq!(
            a.free_ranges(),
            [(x, x + 4 * MIB), (z, IOVA_BASE + 64 * MIB)]
        );
        // Freeing the middle joins all three into one range.
        assert!(a.release(y, 2 * MIB as usize));
        assert_eq!(a.free_ranges(), [(IOVA_BASE, IOVA_BASE + 64 * MIB)]);
        assert_eq!(a.usage(), IovaUsage::default());
        // An 8 MiB mapping (10 MiB span) now fits at the bottom again, which
        // only the merged range can hold.
        assert_eq!(a.allocate(8 * MIB as usize).unwrap(), IOVA_BASE);
    }

    #[test]
    fn usage_counts_live_spans_and_the_top() {
        let a = IovaAllocator::with_range(IOVA_BASE, IOVA_BASE + 64 * MIB);
        let x = a.allocate(4096).unwrap(); // 4 MiB span
        let y = a.allocate(3 * MIB as usize).unwrap(); // 6 MiB span
        assert_eq!(
            a.usage(),
            IovaUsage {
                mappings: 2,
                bytes: 10 * MIB,
                top: y + 6 * MIB
            }
        );
        assert!(a.release(y, 3 * MIB as usize));
        assert_eq!(
            a.usage(),
            IovaUsage {
                mappings: 1,
                bytes: 4 * MIB,
                top: x + 4 * MIB
            }
        );
        // A refused release changes nothing.
        assert!(!a.release(y, 3 * MIB as usize));
        assert_eq!(a.usage().bytes, 4 * MIB);
        assert!(a.release(x, 4096));
        assert_eq!(a.usage(), IovaUsage::default());
    }

    #[test]
    fn live_ranges_are_never_handed_out_twice() {
        let a = IovaAllocator::with_range(IOVA_BASE, IOVA_BASE + 256 * MIB);
        let mut live: Vec<(u64, usize)> = Vec::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..20_000 {
            let r = next();
            if r % 3 != 0 || live.is_empty() {
                let len = 1 + (next() % (9 * MIB)) as usize;
                match a.allocate(len) {
                    Ok(iova) => {
                        assert!(iova.is_multiple_of(GUARD));
                        let span = IovaAllocator::span(len).unwrap();
                        assert!(iova + span <= IOVA_BASE + 256 * MIB);
                        for &(o, olen) in &live {
                            let ospan = IovaAllocator::span(olen).unwrap();
                            assert!(
                                iova + span <= o || o + ospan <= iova,
                                "{iova:#x}+{span:#x} overlaps live {o:#x}+{ospan:#x}"
                            );
                        }
                        live.push((iova, len));
                    }
                    Err(Error::IovaSpaceExhausted) => {}
                    Err(e) => panic!("{e}"),
                }
            } else {
                let (iova, len) = live.swap_remove((next() as usize) % live.len());
                assert!(a.release(iova, len));
                // A second release of the same range, or a release with the
                // wrong length, is refused and frees nothing.
                assert!(!a.release(iova, len));
            }
            if let Some(&(iova, len)) = live.first() {
                assert!(!a.release(iova, len + 2 * MIB as usize));
                assert!(!a.release(iova + GUARD, len));
            }
        }
        for (iova, len) in live.drain(..) {
            assert!(a.release(iova, len));
        }
        assert_eq!(a.free_ranges(), [(IOVA_BASE, IOVA_BASE + 256 * MIB)]);
    }
}
