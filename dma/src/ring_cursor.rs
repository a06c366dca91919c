//! A cursor over a ring of fixed-size entries in a [`DmaRegion`] (a
//! submission or completion queue, a descriptor ring): the ring's bounds
//! and alignment are checked once, when the cursor is made, so writing or
//! reading the entry at the cursor costs no check at all: the cursor only
//! moves by whole entries and wraps at the ring's end, so it is inside the
//! ring by construction.

use crate::DmaRegion;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// The position of one entry in a ring of `SIZE`-byte entries inside a
/// [`DmaRegion`], which the cursor keeps alive. `SIZE` is a multiple of 8,
/// and every entry is 8-byte aligned.
pub struct RingCursor<const SIZE: usize> {
    /// Keeps `base..base + end` mapped and allocated while the cursor lives.
    mem: Arc<DmaRegion>,
    /// The first entry.
    base: NonNull<u8>,
    /// Byte offset of the current entry from `base`: a multiple of `SIZE`,
    /// below `end`. Only [`Self::advance`] changes it.
    at: usize,
    /// Bytes in the ring: entries * SIZE, at most the region's length minus
    /// `offset` (checked in [`Self::new`]).
    end: usize,
    /// The ring's offset in the region.
    offset: usize,
}

impl<const SIZE: usize> std::fmt::Debug for RingCursor<SIZE> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingCursor")
            .field("entry_size", &SIZE)
            .field("offset", &self.offset)
            .field("index", &self.index())
            .field("entries", &(self.end / SIZE))
            .finish()
    }
}

// SAFETY: the pointer is into memory owned by the `Arc<DmaRegion>` the
// cursor holds (Send + Sync); the cursor reaches it only through atomic
// accesses, as `DmaRegion` does.
unsafe impl<const SIZE: usize> Send for RingCursor<SIZE> {}
// SAFETY: as above; `&self` methods only make atomic accesses.
unsafe impl<const SIZE: usize> Sync for RingCursor<SIZE> {}

impl<const SIZE: usize> RingCursor<SIZE> {
    /// A cursor at entry 0 of the ring of `entries` entries at `offset` in
    /// `mem`. Panics (a driver bug, like an out-of-bounds access through
    /// [`DmaRegion`]) if the ring is empty, not 8-byte aligned, or not
    /// inside the region.
    pub fn new(mem: &Arc<DmaRegion>, offset: usize, entries: usize) -> Self {
        const { assert!(SIZE > 0 && SIZE.is_multiple_of(8)) };
        let end = entries.checked_mul(SIZE);
        assert!(
            entries > 0
                && offset.is_multiple_of(8)
                && end.is_some_and(|e| offset.checked_add(e).is_some_and(|e| e <= mem.len())),
            "a ring of {entries} entries of {SIZE} bytes at offset {offset} is empty, \
             misaligned or outside a DMA region of {} bytes",
            mem.len()
        );
        // SAFETY: offset <= len (checked above), so the pointer is inside
        // the region or one past its end; the region's base is page
        // aligned, so it is 8-byte aligned.
        let base = unsafe { NonNull::new_unchecked(mem.as_ptr().add(offset)) };
        RingCursor {
            mem: mem.clone(),
            base,
            at: 0,
            end: end.unwrap_or(0),
            offset,
        }
    }

    /// Index of the current entry.
    #[inline]
    pub fn index(&self) -> usize {
        self.at / SIZE
    }

    /// Offset of the current entry in the region (for tracing and IOVAs).
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset + self.at
    }

    /// The region the ring is in.
    pub fn region(&self) -> &Arc<DmaRegion> {
        &self.mem
    }

    /// Move to the next entry, wrapping after the last; true if it wrapped.
    #[inline]
    pub fn advance(&mut self) -> bool {
        self.at += SIZE;
        if self.at == self.end {
            self.at = 0;
            true
        } else {
            false
        }
    }

    /// Pointer to the current entry, worked out once per access of an
    /// entry (so its words are reached from one register, not from the
    /// cursor's fields read again after an acquire load).
    #[inline(always)]
    fn entry(&self) -> Entry<SIZE> {
        debug_assert!(self.at < self.end);
        // SAFETY: `at` is a multiple of SIZE below `end` (only `advance`
        // changes it, by SIZE, wrapping to 0 at `end`), so the pointer and
        // the SIZE bytes after it are inside `base..base + end`, which `new`
        // checked is inside the region.
        Entry(unsafe { self.base.as_ptr().add(self.at) })
    }

    /// Atomic (relaxed) writes of the current entry's `N` little-endian
    /// u64 words (`N * 8 == SIZE`: the whole entry), in order. No bounds
    /// check: see the type.
    #[inline]
    pub fn write_u64s<const N: usize>(&self, v: &[u64; N]) {
        const { assert!(N * 8 == SIZE) };
        let e = self.entry();
        for (i, &w) in v.iter().enumerate() {
            // SAFETY: word i of the current entry, in bounds and aligned
            // (see `Entry::word`); the region stays allocated while
            // `self.mem` lives; DMA memory is reached only through atomic
            // accesses and device DMA, never by references.
            unsafe { AtomicU64::from_ptr(e.word(i)) }.store(w.to_le(), Ordering::Relaxed)
        }
    }

    /// The current entry's `N` little-endian u32 words (`N * 4 == SIZE`) as
    /// a device publishes an entry, as [`DmaRegion::read_u32s_acquire_last`]
    /// does: the last word with an acquire load, then, only if `ready`
    /// accepts it, the others with relaxed loads, but for those whose bit
    /// is set in `skip` (reserved words the caller has no use for), which
    /// are not read and come back 0. No bounds check: see the type.
    #[inline]
    pub fn read_u32s_acquire_last<const N: usize>(
        &self,
        skip: u32,
        ready: impl FnOnce(u32) -> bool,
    ) -> Option<[u32; N]> {
        const { assert!(N * 4 == SIZE && N <= 32) };
        let e = self.entry();
        // SAFETY: word N - 1 of the current entry (see `Entry::word`);
        // atomic as in `write_u64s`.
        let last =
            u32::from_le(unsafe { AtomicU32::from_ptr(e.word(N - 1)) }.load(Ordering::Acquire));
        if !ready(last) {
            return None;
        }
        Some(std::array::from_fn(|i| {
            if i == N - 1 {
                return last;
            }
            if skip & (1 << i) != 0 {
                return 0;
            }
            // SAFETY: word i of the current entry, as above.
            u32::from_le(unsafe { AtomicU32::from_ptr(e.word(i)) }.load(Ordering::Relaxed))
        }))
    }
}

/// A pointer to a ring's current entry of `SIZE` bytes (from
/// [`RingCursor::entry`]: in bounds, 8-byte aligned), for the accesses of
/// one method call.
#[derive(Clone, Copy)]
struct Entry<const SIZE: usize>(*mut u8);

impl<const SIZE: usize> Entry<SIZE> {
    /// Pointer to word `i` of type `W` of the entry.
    #[inline(always)]
    fn word<W>(self, i: usize) -> *mut W {
        debug_assert!((i + 1) * std::mem::size_of::<W>() <= SIZE);
        // SAFETY: the callers' const assertions keep word i inside the
        // entry, which is inside the ring (see `RingCursor::entry`).
        // Entries are 8-byte aligned and W is at most 8 bytes.
        unsafe { self.0.add(i * std::mem::size_of::<W>()).cast() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmuIommu, RegionOptions};

    fn region() -> Arc<DmaRegion> {
        Arc::new(
            DmaRegion::allocate(Arc::new(EmuIommu::new()), 4096, RegionOptions::EMULATED).unwrap(),
        )
    }

    #[test]
    fn the_cursor_writes_its_entry_and_wraps_at_the_ring_end() {
        let m = region();
        m.fill(0, 256, 0xff);
        let mut c = RingCursor::<16>::new(&m, 64, 3);
        assert_eq!((c.index(), c.offset()), (0, 64));
        c.write_u64s(&[1, 2]);
        assert!(!c.advance());
        c.write_u64s(&[3, 4]);
        assert!(!c.advance());
        assert!(c.advance(), "three entries: the third advance wraps");
        assert_eq!((c.index(), c.offset()), (0, 64));
        c.write_u64s(&[5, 6]);
        assert_eq!(m.read_u64(56), u64::MAX, "nothing before the ring");
        assert_eq!(
            [
                m.read_u64(64),
                m.read_u64(72),
                m.read_u64(80),
                m.read_u64(88)
            ],
            [5, 6, 3, 4]
        );
        assert_eq!(m.read_u64(112), u64::MAX, "nothing after the ring");
    }

    #[test]
    fn an_entry_is_read_only_when_its_last_word_is_ready() {
        let m = region();
        let mut c = RingCursor::<16>::new(&m, 4096 - 32, 2);
        assert!(!c.advance());
        m.write_u64s(4096 - 16, &[0x0000_0002_0000_0001, 0x0001_0000_0000_0003]);
        let mut seen = 0;
        let none = c.read_u32s_acquire_last::<4>(0, |w| {
            seen = w;
            w == 0
        });
        assert_eq!((none, seen), (None, 0x0001_0000));
        let got = c.read_u32s_acquire_last::<4>(0, |w| w & 0x0001_0000 != 0);
        assert_eq!(got, Some([1, 2, 3, 0x0001_0000]));
        // Skipped words are not read: 0.
        let got = c.read_u32s_acquire_last::<4>(0b0101, |w| w & 0x0001_0000 != 0);
        assert_eq!(got, Some([0, 2, 0, 0x0001_0000]));
    }

    #[test]
    #[should_panic(expected = "outside a DMA region")]
    fn a_ring_past_the_region_end_is_refused() {
        let m = region();
        RingCursor::<64>::new(&m, m.len() - 64 * 3, 4);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn a_misaligned_ring_is_refused() {
        RingCursor::<16>::new(&region(), 4, 2);
    }

    #[test]
    #[should_panic(expected = "empty")]
    fn an_empty_ring_is_refused() {
        RingCursor::<16>::new(&region(), 0, 0);
    }
}
