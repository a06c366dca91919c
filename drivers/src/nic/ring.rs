//! A descriptor ring in DMA memory and its index arithmetic.
//!
//! Both directions use the same shape: `size` 16-byte descriptors, `size` a
//! power of two, indices wrap with a mask. The device owns the descriptors
//! from its head up to (not including) the tail we write; we own the rest.
//! One slot always stays unused so that `tail == head` means "nothing for the
//! device" and never "everything" (both datasheets' descriptor ring
//! sections: the ring is empty when head equals tail).

use super::error::NicError;
use crate::trace::{Event, Kind, Queue, Raw, Tap};
use dma::{DmaRegion, Mapper, RegionOptions};
use spec::nic::adv_desc::{DESC_SIZE, RING_ALIGN, RING_MULTIPLE};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// What every register read of a PCIe function that is gone (surprise
/// removal, D3cold, memory space disabled) returns: the read completes
/// with an error and the root complex hands the CPU all ones.
pub(super) const ALL_ONES: u32 = u32::MAX;

/// Smallest ring the driver accepts (RDLEN/TDLEN granularity).
pub const MIN_RING: usize = RING_MULTIPLE;
/// Largest ring the driver accepts (both chips take at least this many).
pub const MAX_RING: usize = 4096;

/// `(to - from) mod size` for a power-of-two ring: how many steps from
/// `from` reach `to`.
#[inline(always)]
pub(crate) const fn distance(from: usize, to: usize, mask: usize) -> usize {
    to.wrapping_sub(from) & mask
}

/// Check a ring size from the options.
pub(crate) fn check_ring_size(what: &str, size: u16) -> Result<usize, NicError> {
    let n = size as usize;
    if !n.is_power_of_two() || !(MIN_RING..=MAX_RING).contains(&n) {
        return Err(NicError::InvalidOptions(format!(
            "{what} of {n} descriptors: use a power of two from {MIN_RING} to {MAX_RING}"
        )));
    }
    Ok(n)
}

/// A ring of advanced descriptors in its own DMA region.
///
/// Descriptor accesses are the driver's hot path, so they go through a raw
/// pointer with the index masked into the ring instead of the bounds-checked
/// [`DmaRegion`] accessors (which cost a call and an assert each; see
/// `forward_loop_for_callgrind` in the tests). The memory is reached only
/// with atomic accesses, never through references, because the device (or
/// a model's thread) may write it at any time: a non-atomic access racing
/// it would be a data race.
pub(crate) struct DescRing {
    base: NonNull<u8>,
    mask: usize,
    mem: DmaRegion,
    /// Where the ring's descriptor events go (off unless
    /// [`DescRing::traced`]).
    trace: RingTrace,
}

/// A ring's part of the descriptor trace ([`crate::trace`]). Plain fields
/// (no atomic or cell): only the queue that owns the ring changes them.
struct RingTrace {
    tap: Tap,
    queue: Queue,
    /// The index up to which written descriptors were recorded (only
    /// touched while tracing is on).
    published: usize,
}

// SAFETY: `base` points into `mem`, which the ring owns and which is itself
// Send + Sync (raw-pointer accesses only); the ring adds no thread affinity.
unsafe impl Send for DescRing {}
// SAFETY: as above; shared access only performs atomic accesses.
unsafe impl Sync for DescRing {}

impl DescRing {
    /// A zeroed ring of `size` descriptors (a checked power of two). Zero
    /// descriptors point at IOVA 0, which no mapping covers, so a device that
    /// fetched one early would fault instead of writing somewhere.
    pub(crate) fn new(
        mapper: Arc<dyn Mapper>,
        size: usize,
        opts: RegionOptions,
    ) -> Result<DescRing, NicError> {
        if !size.is_power_of_two() {
            return Err(NicError::InvalidOptions(format!(
                "ring of {size} descriptors: use a power of two"
            )));
        }
        let mem = DmaRegion::allocate(mapper, size * DESC_SIZE, opts)?;
        if !mem.iova().is_multiple_of(RING_ALIGN as u64)
            || !(mem.as_ptr() as usize).is_multiple_of(RING_ALIGN)
        {
            return Err(NicError::Unsupported(format!(
                "descriptor ring at IOVA {:#x} is not {RING_ALIGN}-byte aligned",
                mem.iova()
            )));
        }
        if mem.len() < size * DESC_SIZE {
            return Err(NicError::Unsupported(format!(
                "DMA region of {} bytes for a ring of {} bytes",
                mem.len(),
                size * DESC_SIZE
            )));
        }
        mem.fill(0, size * DESC_SIZE, 0);
        let base = NonNull::new(mem.as_ptr())
            .ok_or_else(|| NicError::Unsupported("DMA region without an address".to_string()))?;
        Ok(DescRing {
            base,
            mask: size - 1,
            mem,
            trace: RingTrace {
                tap: Tap::OFF,
                queue: Queue::None,
                published: 0,
            },
        })
    }

    /// The same ring, recording its descriptor events as `queue` in `tap`
    /// ([`Self::trace_published`], [`Self::trace_consumed`]).
    pub(crate) fn traced(mut self, tap: Tap, queue: Queue) -> DescRing {
        self.trace.tap = tap;
        self.trace.queue = queue;
        self
    }

    /// Record the descriptors written since the last call, up to `end`
    /// (the tail about to be written), as `desc_write` events with their
    /// bytes as the device will find them: called once per tail write,
    /// before it, so that each descriptor is recorded once with its final
    /// bytes (a TX packet's RS bit is added after the descriptor is
    /// written). Nothing happens while tracing is off.
    #[inline(always)]
    pub(crate) fn trace_published(&mut self, end: usize) {
        if self.trace.tap.is_on() {
            let from = std::mem::replace(&mut self.trace.published, end & self.mask);
            self.trace_range(Kind::DescWrite, from, end);
        }
    }

    /// Record descriptors `from..to` (going round) as `desc_read` events:
    /// write-backs the driver has just consumed, with their bytes as they
    /// are in memory. Nothing happens while tracing is off.
    #[inline(always)]
    pub(crate) fn trace_consumed(&self, from: usize, to: usize) {
        if self.trace.tap.is_on() {
            self.trace_range(Kind::DescRead, from, to);
        }
    }

    #[cold]
    #[inline(never)]
    fn trace_range(&self, kind: Kind, from: usize, to: usize) {
        let (tap, queue) = (&self.trace.tap, self.trace.queue);
        for k in 0..distance(from, to, self.mask) {
            let i = (from + k) & self.mask;
            let d = self.desc(i);
            let raw = Raw::from_u64s(&[d.read_u64(0), d.read_u64(8)]);
            tap.record(|| {
                Event::new(kind)
                    .queue(queue)
                    .index(i as u32)
                    .addr(self.iova() + (i * DESC_SIZE) as u64)
                    .raw(raw)
            });
        }
    }

    /// Number of descriptors.
    #[inline(always)]
    pub(crate) fn size(&self) -> usize {
        self.mask + 1
    }

    /// Index mask (`size - 1`).
    #[inline(always)]
    pub(crate) fn mask(&self) -> usize {
        self.mask
    }

    /// IOVA of descriptor 0, for RDBAL/RDBAH or TDBAL/TDBAH.
    pub(crate) fn iova(&self) -> u64 {
        self.mem.iova()
    }

    /// Ring length in bytes, for RDLEN/TDLEN.
    pub(crate) fn bytes(&self) -> usize {
        self.size() * DESC_SIZE
    }

    /// Descriptor `i` (masked into the ring), for several field accesses
    /// with one address computation.
    #[inline(always)]
    pub(crate) fn desc(&self, i: usize) -> Desc<'_> {
        self.view().desc(i)
    }

    /// The ring's address and mask by value, for hot loops: a loop that
    /// reaches descriptors through `&DescRing` reloads both after every
    /// atomic store (the store might have changed them, as far as the
    /// compiler knows); through a view they stay in registers.
    #[inline(always)]
    pub(crate) fn view(&self) -> RingView<'_> {
        RingView {
            base: self.base,
            mask: self.mask,
            _ring: PhantomData,
        }
    }

    /// Volatile 64-bit write of `field` of descriptor `i`.
    #[inline(always)]
    pub(crate) fn write_u64(&self, i: usize, field: usize, v: u64) {
        self.desc(i).write_u64(field, v)
    }
}

/// A [`DescRing`]'s base and mask, copied out of it (see [`DescRing::view`]).
#[derive(Clone, Copy)]
pub(crate) struct RingView<'a> {
    base: NonNull<u8>,
    mask: usize,
    _ring: PhantomData<&'a DescRing>,
}

impl<'a> RingView<'a> {
    /// Index mask (`size - 1`).
    #[inline(always)]
    pub(crate) fn mask(self) -> usize {
        self.mask
    }

    /// Descriptor `i` (masked into the ring).
    #[inline(always)]
    pub(crate) fn desc(self, i: usize) -> Desc<'a> {
        // SAFETY: `i & mask` < size and the region holds size * DESC_SIZE
        // bytes (checked in `DescRing::new`), so the descriptor is inside
        // it; the view borrows the ring, which keeps the region alive.
        let p = unsafe { self.base.add((i & self.mask) * DESC_SIZE) };
        Desc {
            p,
            _ring: PhantomData,
        }
    }
}

impl<'a> RingView<'a> {
    /// The descriptors from `start` (masked into the ring) on, at most
    /// `n` of them and not past the ring's end: a piece that does not wrap,
    /// for loops that walk descriptors, buffer slots and frames side by
    /// side with one counter (no mask per step). A range that wraps takes
    /// two runs.
    #[inline(always)]
    pub(crate) fn run(self, start: usize, n: usize) -> Run<'a> {
        let start = start & self.mask;
        let len = n.min(self.mask + 1 - start);
        Run {
            // SAFETY: start < size, so the pointer is inside the region
            // (see `desc`).
            base: unsafe { self.base.add(start * DESC_SIZE) },
            start,
            len,
            _ring: PhantomData,
        }
    }
}

/// Put `items` into the ring's descriptors from `start` on, in runs that
/// do not wrap (at most two, plus one for each item skipped): `step` gets
/// the next free descriptor, its entry of `slots` (a slice as long as the
/// ring) and the item, and returns false for an item it skips, which then
/// takes no descriptor. The caller makes sure the ring has room for every
/// item. Returns the (masked) index after the last descriptor used.
#[inline(always)]
pub(crate) fn place<T, S>(
    ring: RingView<'_>,
    start: usize,
    items: &mut [T],
    slots: &mut [S],
    mut step: impl FnMut(Desc<'_>, &mut S, &mut T) -> bool,
) -> usize {
    let mut i = start;
    let mut items = items;
    while !items.is_empty() {
        let run = ring.run(i, items.len());
        let n = run.len();
        // Sliced to the run: indexing with `k < n` needs no bounds check.
        let slots = &mut slots[run.start()..][..n];
        let now = &mut items[..n];
        let mut k = 0;
        while k < n && step(run.desc(k), &mut slots[k], &mut now[k]) {
            k += 1;
        }
        i = (i + k) & ring.mask();
        // Past the skipped item, if the loop stopped at one.
        let done = if k < n { k + 1 } else { n };
        items = &mut std::mem::take(&mut items)[done..];
    }
    i
}

/// Descriptors `start..start + len` of a ring, none past its end (see
/// [`RingView::run`]).
#[derive(Clone, Copy)]
pub(crate) struct Run<'a> {
    base: NonNull<u8>,
    start: usize,
    len: usize,
    _ring: PhantomData<&'a DescRing>,
}

impl<'a> Run<'a> {
    /// Ring index of the run's first descriptor.
    #[inline(always)]
    pub(crate) fn start(self) -> usize {
        self.start
    }

    /// Descriptors in the run.
    #[inline(always)]
    pub(crate) fn len(self) -> usize {
        self.len
    }

    /// The run's `k`-th descriptor; `k < len` is checked (a loop bounded by
    /// `len` lets the compiler drop the check).
    #[inline(always)]
    pub(crate) fn desc(self, k: usize) -> Desc<'a> {
        assert!(k < self.len, "descriptor {k} of a run of {}", self.len);
        // SAFETY: start + k < start + len <= size (see `RingView::run`), so
        // the descriptor is inside the region, which the borrow keeps alive.
        let p = unsafe { self.base.add(k * DESC_SIZE) };
        Desc {
            p,
            _ring: PhantomData,
        }
    }
}

/// One descriptor of a [`DescRing`]: 16 bytes of DMA memory, reached only
/// through atomic accesses at the spec's field offsets (`Relaxed`, the same
/// single `mov` a volatile access is on x86-64, but no data race with the
/// device; `Acquire` for the dword that tells the device is done).
#[derive(Clone, Copy)]
pub(crate) struct Desc<'a> {
    p: NonNull<u8>,
    _ring: PhantomData<&'a DescRing>,
}

impl Desc<'_> {
    /// Pointer to the `T` at byte `field`.
    #[inline(always)]
    fn ptr<T>(self, field: usize) -> *mut T {
        debug_assert!(
            field + std::mem::size_of::<T>() <= DESC_SIZE
                && field.is_multiple_of(std::mem::align_of::<T>())
        );
        // SAFETY: `p` is a descriptor inside the ring (see `DescRing::desc`),
        // alive as long as the borrow of the ring; fields are spec constants
        // with field + size_of::<T>() <= DESC_SIZE, and the 16-byte aligned
        // descriptor plus a naturally aligned field keeps `T` aligned.
        unsafe { self.p.as_ptr().add(field).cast() }
    }

    /// Atomic (relaxed) 64-bit write of `field`.
    #[inline(always)]
    pub(crate) fn write_u64(self, field: usize, v: u64) {
        // SAFETY: in bounds and aligned (see `ptr`); DMA memory is only
        // accessed through atomics and device DMA, never references.
        unsafe { AtomicU64::from_ptr(self.ptr(field)) }.store(v.to_le(), Ordering::Relaxed)
    }

    /// Atomic (relaxed) 64-bit read.
    #[inline(always)]
    pub(crate) fn read_u64(self, field: usize) -> u64 {
        // SAFETY: as in `write_u64`.
        u64::from_le(unsafe { AtomicU64::from_ptr(self.ptr(field)) }.load(Ordering::Relaxed))
    }

    /// Atomic (relaxed) 32-bit write.
    #[inline(always)]
    pub(crate) fn write_u32(self, field: usize, v: u32) {
        // SAFETY: as in `write_u64`.
        unsafe { AtomicU32::from_ptr(self.ptr(field)) }.store(v.to_le(), Ordering::Relaxed)
    }

    /// Atomic (relaxed) 32-bit read.
    #[inline(always)]
    pub(crate) fn read_u32(self, field: usize) -> u32 {
        // SAFETY: as in `write_u64`.
        u32::from_le(unsafe { AtomicU32::from_ptr(self.ptr(field)) }.load(Ordering::Relaxed))
    }

    /// Atomic (relaxed) 16-bit read.
    #[inline(always)]
    pub(crate) fn read_u16(self, field: usize) -> u16 {
        // SAFETY: as in `write_u64`.
        u16::from_le(unsafe { AtomicU16::from_ptr(self.ptr(field)) }.load(Ordering::Relaxed))
    }

    /// Acquire load: reads after it see what the device wrote before this dword.
    #[inline(always)]
    pub(crate) fn load_u32_acquire(self, field: usize) -> u32 {
        // SAFETY: in bounds and aligned (see `ptr`); the memory is never
        // reached through references, so an atomic view of it is sound
        // (as in `dma::DmaRegion::load_u32_acquire`).
        u32::from_le(unsafe { AtomicU32::from_ptr(self.ptr(field)).load(Ordering::Acquire) })
    }
}

/// Where a queue's registers are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueRegs {
    /// Tail register (RDT / TDT).
    pub tail: usize,
    /// Head register (RDH / TDH).
    pub head: usize,
    /// Control register (RXDCTL / TXDCTL) and its ENABLE bit.
    pub ctl: usize,
    /// RXDCTL.ENABLE / TXDCTL.ENABLE.
    pub enable: u32,
    /// The port's STATUS register, which never reads all ones on a device
    /// that answers (see [`QueueRegs::read_head`]).
    pub status: usize,
}

impl QueueRegs {
    /// The head register (RDH / TDH, named `name`) of queue `queue` of a
    /// ring of `size` descriptors, checked: a head outside the ring is
    /// [`NicError::DeviceMisbehaved`] naming the register and the value,
    /// except that all ones, when STATUS reads all ones too, is
    /// [`NicError::DeviceRemoved`] (a gone PCIe function reads all ones
    /// everywhere; the head alone reading so is a bad value like any other).
    pub(crate) fn read_head<R: crate::regs::RegisterAccess>(
        &self,
        regs: &R,
        name: &'static str,
        queue: u16,
        size: usize,
    ) -> Result<usize, NicError> {
        let h = regs.read32(self.head);
        if (h as usize) < size {
            return Ok(h as usize);
        }
        if h == ALL_ONES && regs.read32(self.status) == ALL_ONES {
            return Err(NicError::DeviceRemoved { register: name });
        }
        Err(NicError::DeviceMisbehaved(format!(
            "{name}[{queue}] reads {h} ({h:#x}), outside the ring of {size} descriptors"
        )))
    }
}

/// Store a posted buffer in an empty ring slot. The slot is empty by
/// construction (its buffer was taken when the descriptor completed), so no
/// drop of an old value is needed; a buffer found there anyway (a driver
/// bug) is kept out of circulation, like any buffer a device may still own.
#[inline(always)]
pub(crate) fn put_slot<T>(slot: &mut Option<T>, dev: T) {
    let old = slot.replace(dev);
    debug_assert!(old.is_none(), "ring slot already held a buffer");
    std::mem::forget(old);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_wraps() {
        let mask = 7;
        assert_eq!(distance(0, 0, mask), 0);
        assert_eq!(distance(2, 5, mask), 3);
        assert_eq!(distance(6, 1, mask), 3);
        assert_eq!(distance(1, 0, mask), 7);
    }

    #[test]
    fn place_wraps_and_skips_without_using_a_descriptor() {
        let ring =
            DescRing::new(Arc::new(dma::EmuIommu::new()), 8, RegionOptions::EMULATED).unwrap();
        let mut slots = [0u32; 8];
        // 0 is skipped; the rest go to 6, 7, then round to 0, 1, 2.
        let mut items = [1u32, 2, 0, 3, 0, 0, 4, 5];
        let end = place(ring.view(), 6, &mut items, &mut slots, |d, slot, item| {
            if *item == 0 {
                return false;
            }
            d.write_u64(0, *item as u64);
            *slot = *item;
            true
        });
        assert_eq!(end, 3);
        assert_eq!(slots, [3, 4, 5, 0, 0, 0, 1, 2]);
        let descs: Vec<u32> = (0..8).map(|i| ring.desc(i).read_u32(0)).collect();
        assert_eq!(descs, [3, 4, 5, 0, 0, 0, 1, 2]);
        // A run stops at the ring's end.
        assert_eq!(ring.view().run(6, 5).len(), 2);
        assert_eq!(ring.view().run(14, 1).start(), 6);
    }

    #[test]
    fn published_descriptors_are_recorded_once_each_with_their_bytes_across_the_wrap() {
        use crate::trace::{DeviceInfo, DeviceKind, Tracer};
        let mapper = Arc::new(dma::EmuIommu::new());
        let mut off = DescRing::new(mapper.clone(), 8, RegionOptions::EMULATED).unwrap();
        let t = Tracer::new(100);
        let tap = t.device(DeviceInfo {
            name: "test".into(),
            kind: DeviceKind::Igb,
            emulated: true,
        });
        let mut ring = DescRing::new(mapper, 8, RegionOptions::EMULATED)
            .unwrap()
            .traced(tap, Queue::Tx(3));
        let fill = |r: &DescRing, i: usize| {
            r.write_u64(i, 0, 0x1000 + i as u64);
            r.write_u64(i, 8, 0xaa00 + i as u64);
        };
        for i in 0..5 {
            fill(&ring, i);
            fill(&off, i);
        }
        ring.trace_published(5);
        off.trace_published(5);
        off.trace_consumed(0, 5);
        let first = t.drain();
        assert_eq!(first.len(), 5, "an untraced ring records nothing");
        // Slots 5, 6, 7, 0, 1: going round; the next call starts where the
        // last stopped.
        for i in [5, 6, 7, 0, 1] {
            fill(&ring, i);
        }
        ring.write_u64(7, 8, 0xbeef);
        ring.trace_published(10);
        ring.trace_published(2);
        ring.trace_consumed(7, 9);
        let ev = t.drain();
        let got: Vec<(Kind, u32)> = ev.iter().map(|e| (e.kind, e.index)).collect();
        let w = Kind::DescWrite;
        assert_eq!(
            got,
            [
                (w, 5),
                (w, 6),
                (w, 7),
                (w, 0),
                (w, 1),
                (Kind::DescRead, 7),
                (Kind::DescRead, 0)
            ]
        );
        for e in ev.iter().chain(&first) {
            assert_eq!(e.queue, Queue::Tx(3));
            assert_eq!(e.addr, ring.iova() + 16 * e.index as u64);
            let i = e.index as u64;
            let hi = if i == 7 { 0xbeef } else { 0xaa00 + i };
            assert_eq!(e.raw, Raw::from_u64s(&[0x1000 + i, hi]), "{e:?}");
        }
    }

    #[test]
    fn ring_sizes_are_checked() {
        assert_eq!(check_ring_size("RX ring", 512).unwrap(), 512);
        assert_eq!(check_ring_size("RX ring", 8).unwrap(), 8);
        assert!(check_ring_size("RX ring", 0).is_err());
        assert!(check_ring_size("RX ring", 4).is_err());
        assert!(check_ring_size("RX ring", 100).is_err());
        assert!(check_ring_size("RX ring", 8192).is_err());
    }

    #[test]
    fn ring_is_zeroed_aligned_and_addressed_by_index() {
        let ring =
            DescRing::new(Arc::new(dma::EmuIommu::new()), 16, RegionOptions::EMULATED).unwrap();
        assert_eq!(ring.size(), 16);
        assert_eq!(ring.bytes(), 256);
        assert_eq!(ring.iova() % 128, 0);
        for i in 0..16 {
            assert_eq!(ring.desc(i).read_u32(8), 0);
        }
        ring.write_u64(3, 8, 0x1122_3344_5566_7788);
        assert_eq!(ring.desc(3).read_u32(8), 0x5566_7788);
        assert_eq!(ring.desc(3).read_u16(12), 0x3344);
        assert_eq!(ring.desc(3).load_u32_acquire(12), 0x1122_3344);
        assert_eq!(ring.desc(2).read_u32(8), 0);
        assert_eq!(ring.desc(4).read_u32(8), 0);
    }
}
