//! Buffer pools: fixed-size DMA buffers whose ownership is in their type.
//!
//! The handles are small (a pointer, the buffer index, an offset and two
//! lengths) and allocating or freeing one through a [`PoolCache`] touches no
//! shared atomic: the pool's memory is kept alive by one counter of
//! "handles plus buffers away from the shared free list", which moves once
//! per batch of buffers (a cache refill or spill), not once per buffer.

use crate::{DmaRegion, Error, Mapper, RegionOptions, Result};
use crossbeam_queue::ArrayQueue;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

struct PoolInner {
    /// Unique per pool in the process (see [`DeviceIndex`]); never 0, so
    /// an `Option<DeviceIndex>` is as small as a `DeviceIndex`.
    id: NonZeroU32,
    mem: DmaRegion,
    base: NonNull<u8>,
    iova: u64,
    buf_size: usize,
    count: usize,
    /// Indices of free buffers. Lock-free, so a buffer can be freed on
    /// another core than the one that allocated it.
    free: ArrayQueue<u32>,
    /// Buffers dropped while the device owned them (see [`DeviceBuf`]).
    quarantined: AtomicUsize,
    /// `Pool` handles (including those inside caches) plus buffers that are
    /// not on `free` (held as `Buf`/`DeviceBuf` or in a cache). The inner
    /// state is freed when it reaches zero; a quarantined buffer never
    /// comes back, so a pool a device may still write is never unmapped.
    live: AtomicUsize,
    /// Writable slices handed out ([`Buf::as_mut_slice`]), the only way
    /// safe code writes a pool buffer: 0 proves the CPU wrote none of
    /// them (zero-copy tests). Counted with a plain load and store, not a
    /// locked add: concurrent calls may be counted once, but a count never
    /// goes back to 0.
    cpu_writes: AtomicU64,
    /// Per buffer: how many pieces of it exist (see [`Buf::split_off`]);
    /// 0 while the buffer is whole.
    pieces: Box<[AtomicU32]>,
}

// SAFETY: `base` points into `mem` (Send + Sync, reached only through raw
// pointers by the handle that owns a buffer); every other field is Sync.
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}

impl PoolInner {
    #[inline(always)]
    fn offset(&self, index: u32) -> usize {
        index as usize * self.buf_size
    }

    /// Drop `n` counts of `live`; free the state when none remain.
    ///
    /// # Safety
    /// `this` must be a live pool state and the caller must own `n` counts,
    /// which it may not use again.
    unsafe fn release(this: NonNull<PoolInner>, n: usize) {
        // SAFETY: the caller owns counts, so the state is alive here.
        let left = unsafe { this.as_ref() }
            .live
            .fetch_sub(n, Ordering::Release);
        if left == n {
            // Everything done through other handles happens before the free.
            fence(Ordering::Acquire);
            // SAFETY: the state came from `Box::leak` in `Pool::new` and the
            // last count is gone: no handle can reach it any more.
            drop(unsafe { Box::from_raw(this.as_ptr()) });
        }
    }
}

/// Put buffer `index` back on the shared free list and drop its `live`
/// count: the end of a [`Buf`] that is not cached.
///
/// # Safety
/// The caller owns buffer `index` of the live pool state `pool` (whole, or
/// the last piece) and gives it up.
unsafe fn give_back(pool: NonNull<PoolInner>, index: u32) {
    // SAFETY: the buffer's count keeps the state alive.
    let _ = unsafe { pool.as_ref() }.free.push(index);
    // SAFETY: the buffer's count is the caller's, given up here.
    unsafe { PoolInner::release(pool, 1) }
}

/// A pool of fixed-size DMA buffers carved from one [`DmaRegion`].
///
/// A buffer is either a [`Buf`] (the CPU owns it: slices allowed) or a
/// [`DeviceBuf`] (posted to a device: no slice exists). Cloning a `Pool` is
/// cheap and shares the buffers; the memory stays mapped while any handle
/// or buffer exists.
pub struct Pool {
    inner: NonNull<PoolInner>,
}

// SAFETY: the state is Sync and kept alive by the counted handle.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Clone for Pool {
    fn clone(&self) -> Pool {
        self.inner().live.fetch_add(1, Ordering::Relaxed);
        Pool { inner: self.inner }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: this handle owns one count and is gone after this.
        unsafe { PoolInner::release(self.inner, 1) }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("buf_size", &self.inner().buf_size)
            .field("count", &self.inner().count)
            .field("free", &self.inner().free.len())
            .finish()
    }
}

impl Pool {
    /// `count` buffers of `buf_size` bytes each. `buf_size` must be a
    /// multiple of 64 (cache line); a multiple of 4096 makes every buffer page
    /// aligned, which NVMe PRPs like.
    pub fn new(
        mapper: Arc<dyn Mapper>,
        count: usize,
        buf_size: usize,
        opts: RegionOptions,
    ) -> Result<Pool> {
        if count == 0 || count > u32::MAX as usize {
            return Err(Error::InvalidPool(format!(
                "{count} buffers (need 1 to {})",
                u32::MAX
            )));
        }
        if buf_size == 0 || !buf_size.is_multiple_of(64) || buf_size > u32::MAX as usize {
            return Err(Error::InvalidPool(format!(
                "buffer size {buf_size} is not a positive multiple of 64 below 4 GiB"
            )));
        }
        let total = count
            .checked_mul(buf_size)
            .ok_or_else(|| Error::InvalidPool(format!("{count} x {buf_size} bytes overflows")))?;
        let mem = DmaRegion::allocate(mapper, total, opts)?;
        let base = NonNull::new(mem.as_ptr())
            .ok_or_else(|| Error::InvalidPool("DMA region without an address".to_string()))?;
        let free = ArrayQueue::new(count);
        for i in 0..count as u32 {
            // Cannot fail: the queue has room for exactly `count` entries.
            let _ = free.push(i);
        }
        static NEXT_ID: AtomicU32 = AtomicU32::new(1);
        let id = NonZeroU32::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)).ok_or_else(|| {
            Error::InvalidPool("more than 4 billion pools made in one process".to_string())
        })?;
        let inner = Box::new(PoolInner {
            id,
            iova: mem.iova(),
            mem,
            base,
            buf_size,
            count,
            free,
            quarantined: AtomicUsize::new(0),
            live: AtomicUsize::new(1),
            cpu_writes: AtomicU64::new(0),
            pieces: (0..count).map(|_| AtomicU32::new(0)).collect(),
        });
        Ok(Pool {
            inner: NonNull::from(Box::leak(inner)),
        })
    }

    #[inline(always)]
    fn inner(&self) -> &PoolInner {
        // SAFETY: this handle's count keeps the state alive.
        unsafe { self.inner.as_ref() }
    }

    /// A CPU handle for buffer `index`, which the caller took off a free list
    /// together with its `live` count.
    #[inline(always)]
    fn handle(&self, index: u32) -> Buf {
        let size = self.inner().buf_size as u32;
        Buf {
            pool: self.inner,
            index,
            off: 0,
            len: size,
            cap: size,
        }
    }

    /// Take a free buffer, or None when all are in use.
    pub fn alloc(&self) -> Option<Buf> {
        let inner = self.inner();
        let index = inner.free.pop()?;
        // This handle keeps `live` above zero, so adding after the pop is safe.
        inner.live.fetch_add(1, Ordering::Relaxed);
        Some(self.handle(index))
    }

    /// A per-queue cache in front of the shared free list: allocation and
    /// free touch the shared list only once per `capacity / 2` buffers.
    pub fn cache(&self, capacity: usize) -> PoolCache {
        PoolCache {
            pool: self.clone(),
            stack: vec![0; capacity.max(2)].into_boxed_slice(),
            len: 0,
        }
    }

    /// Size of every buffer in bytes.
    pub fn buf_size(&self) -> usize {
        self.inner().buf_size
    }

    /// Number of buffers in the pool.
    pub fn capacity(&self) -> usize {
        self.inner().count
    }

    /// Buffers on the shared free list now (not counting those in caches).
    pub fn free_count(&self) -> usize {
        self.inner().free.len()
    }

    /// Buffers lost because they were dropped while a device owned them.
    pub fn quarantined(&self) -> usize {
        self.inner().quarantined.load(Ordering::Relaxed)
    }

    /// The DMA region the buffers live in.
    pub fn region(&self) -> &DmaRegion {
        &self.inner().mem
    }

    /// Writable slices of this pool's buffers handed to the CPU so far
    /// (see [`Buf::as_mut_slice`]): 0 means the CPU wrote no byte of them.
    pub fn cpu_write_views(&self) -> u64 {
        self.inner().cpu_writes.load(Ordering::Relaxed)
    }

    /// True if `other` is a handle of the same pool.
    pub fn ptr_eq(&self, other: &Pool) -> bool {
        self.inner == other.inner
    }

    /// True if `dev` is a buffer of this pool.
    #[inline(always)]
    pub fn owns_device(&self, dev: &DeviceIndex) -> bool {
        dev.pool == self.inner().id
    }

    /// A posted buffer of this pool back from the device (it completed
    /// it), as a CPU buffer of `len` bytes (at most the buffer size);
    /// `dev` comes back if it is another pool's.
    #[inline(always)]
    pub fn reclaim_device(
        &self,
        dev: DeviceIndex,
        len: usize,
    ) -> std::result::Result<Buf, DeviceIndex> {
        if !self.owns_device(&dev) {
            return Err(dev);
        }
        let mut buf = self.handle(dev.index);
        buf.set_len(len);
        Ok(buf)
    }

    /// Give up a posted buffer of this pool that the device may still
    /// write: it is never reused, the pool stays mapped, and
    /// [`Pool::quarantined`] counts it. `dev` comes back if it is another
    /// pool's.
    pub fn quarantine_device(&self, dev: DeviceIndex) -> std::result::Result<(), DeviceIndex> {
        if !self.owns_device(&dev) {
            return Err(dev);
        }
        // The buffer's `live` count is never given back: the pool stays
        // mapped for the device.
        self.inner().quarantined.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A buffer the CPU owns: it may be read and written through slices.
///
/// It is a whole pool buffer, or a piece of one made by [`Buf::split_off`]:
/// pieces cover disjoint bytes, and the buffer returns to its pool when the
/// last piece is dropped (one disk block sent as several packets).
pub struct Buf {
    pool: NonNull<PoolInner>,
    index: u32,
    /// Start of this handle's bytes within the pool buffer.
    off: u32,
    len: u32,
    /// Bytes this handle may use from `off` (the buffer size for a whole buffer).
    cap: u32,
}

// SAFETY: a `Buf` is the only handle to its bytes; the pool state it points
// to is Sync and kept alive by the buffer's count.
unsafe impl Send for Buf {}
// SAFETY: shared access only reads the handle's own bytes.
unsafe impl Sync for Buf {}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buf")
            .field("index", &self.index)
            .field("offset", &self.off)
            .field("iova", &format_args!("{:#x}", self.iova()))
            .field("len", &self.len)
            .finish()
    }
}

impl Buf {
    #[inline(always)]
    fn inner(&self) -> &PoolInner {
        // SAFETY: the buffer's count keeps the state alive.
        unsafe { self.pool.as_ref() }
    }

    #[inline(always)]
    fn start(&self) -> usize {
        self.inner().offset(self.index) + self.off as usize
    }

    /// IOVA of the first byte, for a descriptor.
    #[inline(always)]
    pub fn iova(&self) -> u64 {
        self.inner().iova + self.start() as u64
    }

    /// Usable length (the capacity unless [`Buf::set_len`] shortened it).
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True if the length was set to zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this handle covers: the buffer size for a whole buffer, the
    /// piece's size for a piece.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Shorten or restore the usable length (at most [`Buf::capacity`]).
    #[inline(always)]
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.cap as usize) as u32;
    }

    /// The pool-wide index of this buffer.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Offset of this handle's first byte within its pool buffer (non-zero
    /// only for pieces).
    pub fn offset(&self) -> usize {
        self.off as usize
    }

    /// Split at `at` (at most `len()`): `self` keeps bytes `[0, at)`, the
    /// returned piece has `[at, len())`. Both are `Buf`s with slices of their
    /// own, disjoint bytes; the pool buffer returns when the last piece is
    /// dropped.
    pub fn split_off(&mut self, at: usize) -> Buf {
        let at = at.min(self.len as usize) as u32;
        let count = &self.inner().pieces[self.index as usize];
        if count.load(Ordering::Relaxed) == 0 {
            // Whole until now: this handle is the only one, nobody else
            // reads the count.
            count.store(2, Ordering::Relaxed);
        } else {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let tail = Buf {
            pool: self.pool,
            index: self.index,
            off: self.off + at,
            len: self.len - at,
            cap: self.len - at,
        };
        self.len = at;
        self.cap = at;
        tail
    }

    /// The bytes of the buffer.
    #[inline(always)]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: [start, start + len) lies inside the pool's region (index
        // < count, off + cap <= buf_size, len <= cap). The CPU owns these
        // bytes: they are not posted to any device (posting consumes the
        // `Buf`) and no other piece covers them, so nothing writes them while
        // this borrow lives.
        unsafe {
            std::slice::from_raw_parts(
                self.inner().base.as_ptr().add(self.start()),
                self.len as usize,
            )
        }
    }

    /// The bytes of the buffer, writable. Counted in
    /// [`Pool::cpu_write_views`].
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let c = &self.inner().cpu_writes;
        c.store(
            c.load(Ordering::Relaxed).wrapping_add(1).max(1),
            Ordering::Relaxed,
        );
        // SAFETY: as in `as_slice`; `&mut self` makes this the only borrow.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.inner().base.as_ptr().add(self.start()),
                self.len as usize,
            )
        }
    }

    /// Hand the buffer to the device: from here on no slice of it can exist.
    #[inline(always)]
    pub fn into_device(self) -> DeviceBuf {
        let this = std::mem::ManuallyDrop::new(self);
        DeviceBuf {
            pool: this.pool,
            index: this.index,
            off: this.off,
            len: this.len,
            cap: this.cap,
        }
    }

    /// True if this is a whole buffer (not a piece): the only handle of
    /// its pool buffer.
    #[inline(always)]
    fn is_whole(&self) -> bool {
        self.inner().pieces[self.index as usize].load(Ordering::Relaxed) == 0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let count = &self.inner().pieces[self.index as usize];
        // A whole buffer has count 0 and no other handle; pieces keep the
        // count above zero until the last one is dropped here.
        if count.load(Ordering::Relaxed) != 0 && count.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // SAFETY: this was the buffer's last handle; it gives the buffer up.
        unsafe { give_back(self.pool, self.index) }
    }
}

/// A buffer posted to a device. It has an IOVA but no slice: the device may
/// write it at any moment. [`DeviceBuf::reclaim`] turns it back into a
/// [`Buf`] once the device has completed it.
///
/// Dropping a `DeviceBuf` does not return it to the pool: a device that has
/// not completed it may still write it (a timed-out command, say), so it is
/// quarantined and counted in [`Pool::quarantined`]; its pool stays mapped.
pub struct DeviceBuf {
    pool: NonNull<PoolInner>,
    index: u32,
    off: u32,
    len: u32,
    cap: u32,
}

// SAFETY: as for `Buf`; a `DeviceBuf` gives no access to the bytes at all.
unsafe impl Send for DeviceBuf {}
// SAFETY: as above.
unsafe impl Sync for DeviceBuf {}

impl std::fmt::Debug for DeviceBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuf")
            .field("index", &self.index)
            .field("iova", &format_args!("{:#x}", self.iova()))
            .finish()
    }
}

impl DeviceBuf {
    /// IOVA of the first byte.
    #[inline(always)]
    pub fn iova(&self) -> u64 {
        // SAFETY: the buffer's count keeps the state alive.
        let inner = unsafe { self.pool.as_ref() };
        inner.iova + (inner.offset(self.index) + self.off as usize) as u64
    }

    /// Usable length.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True if the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Take the buffer back from the device. Call it only when the device
    /// has completed every command that referred to the buffer (or has been
    /// disabled): that is what makes the returned slices sound.
    #[inline(always)]
    pub fn reclaim(self) -> Buf {
        let this = std::mem::ManuallyDrop::new(self);
        Buf {
            pool: this.pool,
            index: this.index,
            off: this.off,
            len: this.len,
            cap: this.cap,
        }
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        // SAFETY: the buffer's count keeps the state alive (and is never
        // given back: the pool stays mapped for the device).
        unsafe { self.pool.as_ref() }
            .quarantined
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// A whole buffer of a known pool posted to a device ring that keeps only
/// indices (a NIC RX ring: every buffer comes from the queue's own pool).
/// Like a [`DeviceBuf`] it gives no access to the bytes; it is a buffer
/// index and nothing else, so a ring slot is 4 bytes. Only the
/// [`PoolCache`] it came from turns it back into a [`Buf`]
/// ([`PoolCache::reclaim`]) or gives it up for good
/// ([`PoolCache::quarantine`]); dropped otherwise, the buffer is simply
/// never reused.
#[derive(Debug)]
pub struct DeviceIndex {
    index: u32,
    /// [`PoolInner::id`] of the pool, so no other pool's cache can take it.
    pool: NonZeroU32,
}

impl DeviceIndex {
    /// The pool-wide buffer index.
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// Where the buffers of one pool are for the device: see
/// [`PoolCache::device_iovas`].
#[derive(Debug, Clone, Copy)]
pub struct DeviceIovas {
    pool: NonZeroU32,
    base: u64,
    buf_size: u64,
}

impl DeviceIovas {
    /// IOVA of the first byte of `dev`, or None if it is another pool's.
    #[inline(always)]
    pub fn iova(&self, dev: &DeviceIndex) -> Option<u64> {
        (dev.pool == self.pool).then(|| self.at(dev.index))
    }

    /// Take the buffer out of `slot` with its IOVA if it is one of this
    /// pool's; an empty slot or another pool's buffer stays as it is.
    #[inline(always)]
    pub fn take(&self, slot: &mut Option<DeviceIndex>) -> Option<(DeviceIndex, u64)> {
        let dev = slot.take_if(|dev| dev.pool == self.pool)?;
        let iova = self.at(dev.index);
        Some((dev, iova))
    }

    /// IOVA of buffer `index` of the pool.
    #[inline(always)]
    fn at(&self, index: u32) -> u64 {
        self.base + index as u64 * self.buf_size
    }
}

/// A per-queue cache of free buffers (not shared between threads).
///
/// The free indices are a fixed stack with its length beside it (not a
/// `Vec`): loops over many buffers copy both into locals, and stores into
/// the stack then cannot be taken for stores into the length.
pub struct PoolCache {
    pool: Pool,
    stack: Box<[u32]>,
    len: usize,
}

impl PoolCache {
    /// Take a buffer, refilling the cache from the shared list when empty.
    #[inline]
    pub fn alloc(&mut self) -> Option<Buf> {
        let index = self.pop()?;
        Some(self.pool.handle(index))
    }

    /// The newest free index, refilling from the shared list when empty.
    #[inline(always)]
    fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            self.refill();
            if self.len == 0 {
                return None;
            }
        }
        self.len -= 1;
        Some(self.stack[self.len])
    }

    /// Push a free index, spilling half to the shared list when full.
    #[inline(always)]
    fn push(&mut self, index: u32) {
        if self.len == self.stack.len() {
            self.spill(self.stack.len() / 2);
        }
        self.stack[self.len] = index;
        self.len += 1;
    }

    /// Fill an empty cache to half its capacity from the shared list.
    #[cold]
    fn refill(&mut self) {
        let inner = self.pool.inner();
        let want = self.stack.len() / 2;
        let mut n = 0;
        while n < want {
            match inner.free.pop() {
                Some(i) => {
                    self.stack[self.len + n] = i;
                    n += 1;
                }
                None => break,
            }
        }
        self.len += n;
        // The cache's pool handle keeps `live` above zero meanwhile.
        inner.live.fetch_add(n, Ordering::Relaxed);
    }

    /// Give a buffer back to the cache, spilling half to the shared list
    /// when full. A buffer of another pool, or a piece of a split buffer,
    /// is dropped instead (it goes home).
    #[inline]
    pub fn free(&mut self, buf: Buf) {
        if buf.pool != self.pool.inner || !buf.is_whole() {
            drop(buf);
            return;
        }
        let buf = std::mem::ManuallyDrop::new(buf);
        self.push(buf.index);
    }

    /// Put the buffers above the oldest `keep` back on the shared list.
    #[cold]
    fn spill(&mut self, keep: usize) {
        let n = self.len - keep;
        for &i in &self.stack[keep..self.len] {
            let _ = self.pool.inner().free.push(i);
        }
        self.len = keep;
        // SAFETY: the cache owned one count per spilled buffer; the cache's
        // own pool handle keeps the state alive past this.
        unsafe { PoolInner::release(self.pool.inner, n) }
    }

    /// Take up to `max` buffers for a device ring that holds indices and
    /// hand each to `post` with its IOVA; returns how many (fewer than
    /// `max` only when the pool has no more free buffers). One call posts a
    /// whole batch with the pool's layout in registers: a descriptor
    /// ring's refill.
    #[inline(always)]
    pub fn alloc_devices(&mut self, max: usize, mut post: impl FnMut(u64, DeviceIndex)) -> usize {
        let iovas = self.device_iovas();
        let mut done = 0;
        while done < max {
            if self.len == 0 {
                self.refill();
                if self.len == 0 {
                    break;
                }
            }
            let keep = self.len.saturating_sub(max - done);
            for &index in &self.stack[keep..self.len] {
                let dev = DeviceIndex {
                    index,
                    pool: iovas.pool,
                };
                post(iovas.at(index), dev);
            }
            done += self.len - keep;
            self.len = keep;
        }
        done
    }

    /// Take every buffer of this cache's pool out of `slots` (a device
    /// ring's slots whose descriptors the device has completed) into the
    /// cache; slots that are empty or hold another pool's buffer are left
    /// as they are. Returns how many slots it left holding a buffer. No
    /// CPU handle is made, so no slice of a buffer ever exists on the way:
    /// a forwarded frame goes from an RX ring to a TX ring and back here as
    /// an index.
    #[inline(always)]
    pub fn free_devices(&mut self, slots: &mut [Option<DeviceIndex>]) -> usize {
        let pool = self.pool.inner().id;
        let mut left = 0;
        for chunk in slots.chunks_mut(self.stack.len() / 2) {
            if self.len + chunk.len() > self.stack.len() {
                self.spill(self.stack.len() - chunk.len());
            }
            // The stack and its length in locals for the loop.
            let stack = &mut self.stack[..];
            let mut len = self.len;
            for slot in chunk {
                if let Some(dev) = slot.take_if(|d| d.pool == pool) {
                    // In bounds: room for the whole chunk was made above.
                    stack[len] = dev.index;
                    len += 1;
                } else if slot.is_some() {
                    left += 1;
                }
            }
            self.len = len;
        }
        left
    }

    /// A buffer from [`PoolCache::alloc_devices`] back from the device (it
    /// completed it), as a CPU buffer of `len` bytes (at most the buffer
    /// size). None (and the buffer stays out of use) if `dev` came from
    /// another pool.
    #[inline(always)]
    pub fn reclaim(&self, dev: DeviceIndex, len: usize) -> Option<Buf> {
        self.pool.reclaim_device(dev, len).ok()
    }

    /// A posted buffer the device has completed, straight back into the
    /// cache, as in [`PoolCache::free_devices`]. `dev` comes back if it is
    /// another pool's.
    #[inline(always)]
    pub fn free_device(&mut self, dev: DeviceIndex) -> std::result::Result<(), DeviceIndex> {
        if !self.pool.owns_device(&dev) {
            return Err(dev);
        }
        self.push(dev.index);
        Ok(())
    }

    /// The IOVAs of this cache's posted buffers, as a small value a hot
    /// loop keeps in registers (see [`DeviceIovas::iova`]).
    #[inline(always)]
    pub fn device_iovas(&self) -> DeviceIovas {
        let inner = self.pool.inner();
        DeviceIovas {
            pool: inner.id,
            base: inner.iova,
            buf_size: inner.buf_size as u64,
        }
    }

    /// Give up a posted buffer the device may still write: it is never
    /// reused, the pool stays mapped, and [`Pool::quarantined`] counts it.
    pub fn quarantine(&self, dev: DeviceIndex) {
        let r = self.pool.quarantine_device(dev);
        debug_assert!(r.is_ok(), "a buffer of another pool");
    }

    /// Buffers held by this cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the cache holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pool behind the cache.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Drop for PoolCache {
    fn drop(&mut self) {
        self.spill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmuIommu;
    use std::collections::HashSet;
    use std::sync::Mutex;

    fn pool(count: usize, size: usize) -> Pool {
        Pool::new(
            Arc::new(EmuIommu::new()),
            count,
            size,
            RegionOptions::EMULATED,
        )
        .unwrap()
    }

    #[test]
    fn buffers_are_distinct_aligned_and_exhaustible() {
        let p = pool(16, 4096);
        let bufs: Vec<Buf> = (0..16).map(|_| p.alloc().unwrap()).collect();
        assert!(p.alloc().is_none());
        let iovas: HashSet<u64> = bufs.iter().map(|b| b.iova()).collect();
        assert_eq!(iovas.len(), 16);
        assert!(iovas.iter().all(|i| i % 4096 == 0));
        drop(bufs);
        assert_eq!(p.free_count(), 16);
    }

    #[test]
    fn invalid_pools_are_refused() {
        let m: Arc<dyn Mapper> = Arc::new(EmuIommu::new());
        assert!(Pool::new(m.clone(), 0, 4096, RegionOptions::EMULATED).is_err());
        assert!(Pool::new(m.clone(), 4, 100, RegionOptions::EMULATED).is_err());
        assert!(Pool::new(m, usize::MAX, 4096, RegionOptions::EMULATED).is_err());
    }

    #[test]
    fn slices_write_what_the_device_reads() {
        let iommu = Arc::new(EmuIommu::new());
        let p = Pool::new(iommu.clone(), 4, 4096, RegionOptions::EMULATED).unwrap();
        let mut b = p.alloc().unwrap();
        b.as_mut_slice()[..4].copy_from_slice(b"abcd");
        let dev = b.into_device();
        let mut seen = [0u8; 4];
        iommu.read(dev.iova(), &mut seen).unwrap();
        assert_eq!(&seen, b"abcd");
        iommu.write(dev.iova() + 4, b"efgh").unwrap();
        let b = dev.reclaim();
        assert_eq!(&b.as_slice()[..8], b"abcdefgh");
    }

    #[test]
    fn dropped_device_buffer_is_quarantined_not_reused() {
        let p = pool(2, 4096);
        let d = p.alloc().unwrap().into_device();
        drop(d);
        assert_eq!(p.quarantined(), 1);
        assert_eq!(p.free_count(), 1);
    }

    #[test]
    fn cache_refills_and_spills() {
        let p = pool(64, 64);
        let mut c = p.cache(8);
        let b = c.alloc().unwrap();
        assert_eq!(c.len(), 3); // took 4, handed out 1
        assert_eq!(p.free_count(), 60);
        let mut held = vec![b];
        for _ in 0..20 {
            held.push(c.alloc().unwrap());
        }
        for b in held {
            c.free(b);
        }
        assert!(c.len() <= 8);
        drop(c);
        assert_eq!(p.free_count(), 64);
    }

    #[test]
    fn device_indices_go_ring_to_ring_and_back_without_a_cpu_handle() {
        assert_eq!(std::mem::size_of::<Option<DeviceIndex>>(), 4 + 4);
        let p = pool(64, 2048);
        let other = pool(4, 2048);
        let mut c = p.cache(16);
        // A refill of 20 slots: more than the cache holds at once.
        let mut slots: Vec<Option<DeviceIndex>> = (0..20).map(|_| None).collect();
        let mut k = 0;
        let iovas = c.device_iovas();
        let n = c.alloc_devices(20, |iova, dev| {
            assert_eq!(iovas.iova(&dev), Some(iova));
            assert_eq!(iova, p.region().iova() + dev.index() as u64 * 2048);
            slots[k] = Some(dev);
            k += 1;
        });
        assert_eq!((n, k), (20, 20));
        let distinct: HashSet<u32> = slots.iter().map(|s| s.as_ref().unwrap().index()).collect();
        assert_eq!(distinct.len(), 20);
        // Another pool's buffer in a slot, and an empty one, are left.
        let mut oc = other.cache(4);
        let mut foreign = None;
        assert_eq!(oc.alloc_devices(1, |_, dev| foreign = Some(dev)), 1);
        let foreign = foreign.unwrap();
        assert_eq!(iovas.iova(&foreign), None);
        let mine = slots[3].replace(foreign).unwrap();
        assert!(c.free_device(mine).is_ok());
        let lost = slots[4].take().unwrap();
        assert_eq!(c.free_devices(&mut slots), 1, "the foreign one is left");
        // 18 came back (the cache spilled what it could not hold).
        assert!(c.len() <= 16);
        assert_eq!(c.len() + p.free_count(), 64 - 1);
        assert!(slots[3].is_some() && slots.iter().filter(|s| s.is_some()).count() == 1);
        // It goes home through its own pool, as a CPU buffer.
        let foreign = slots[3].take().unwrap();
        let foreign = p.reclaim_device(foreign, 0).unwrap_err();
        drop(other.reclaim_device(foreign, 60).unwrap());
        c.quarantine(lost);
        assert_eq!(p.quarantined(), 1);
        drop(c);
        drop(oc);
        assert_eq!(p.free_count(), 63, "all but the quarantined one");
        assert_eq!(other.free_count(), 4);
        assert_eq!(p.cpu_write_views(), 0);
    }

    #[test]
    fn pieces_cover_disjoint_bytes_and_free_the_buffer_with_the_last() {
        let p = pool(2, 4096);
        let mut whole = p.alloc().unwrap();
        let base = whole.iova();
        whole.as_mut_slice().fill(7);
        let mut b = whole.split_off(1000);
        let c = b.split_off(1000);
        assert_eq!((whole.len(), b.len(), c.len()), (1000, 1000, 2096));
        assert_eq!((b.offset(), c.offset()), (1000, 2000));
        assert_eq!(b.iova(), base + 1000);
        assert_eq!(c.iova(), base + 2000);
        b.as_mut_slice().fill(1);
        assert!(whole.as_slice().iter().all(|&x| x == 7));
        assert!(c.as_slice().iter().all(|&x| x == 7));
        b.set_len(5000);
        assert_eq!(b.len(), 1000, "a piece cannot grow past its own bytes");
        assert_eq!(p.free_count(), 1);
        // Pieces travel through the device like whole buffers.
        let dev = c.into_device();
        drop(whole);
        let mut cache = p.cache(4);
        cache.free(b); // a piece is not cached: it goes home
        assert_eq!((cache.len(), p.free_count()), (0, 1));
        drop(dev.reclaim());
        assert_eq!(p.free_count(), 2, "the last piece returns the buffer");
        // Whole again: it splits from scratch.
        let mut again = p.alloc().unwrap();
        let rest = again.split_off(64);
        drop(again);
        drop(rest);
        assert_eq!(p.free_count(), 2);
    }

    #[test]
    fn buffers_keep_the_pool_memory_after_the_pool_is_gone() {
        let iommu = Arc::new(EmuIommu::new());
        let p = Pool::new(iommu.clone(), 4, 4096, RegionOptions::EMULATED).unwrap();
        let mut b = p.alloc().unwrap();
        let mut cache = p.cache(4);
        let c = cache.alloc().unwrap();
        let quarantined = p.alloc().unwrap().into_device();
        let iova = quarantined.iova();
        drop(p);
        drop(cache);
        b.as_mut_slice()[..3].copy_from_slice(b"abc");
        assert_eq!(&b.as_slice()[..3], b"abc");
        drop(b);
        drop(c);
        // A buffer the device may still own keeps the memory mapped for it.
        drop(quarantined);
        assert!(iommu.write(iova, b"late").is_ok());
    }

    /// Several threads allocate and free (some through caches, some freeing
    /// buffers allocated by another thread); at every moment no buffer is
    /// held twice, and at the end none is lost.
    #[test]
    fn many_threads_never_lose_or_duplicate_a_buffer() {
        const COUNT: usize = 256;
        let p = pool(COUNT, 64);
        let held = Arc::new(Mutex::new(HashSet::new()));
        let (tx, rx) = std::sync::mpsc::channel::<Buf>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for t in 0..4 {
            let p = p.clone();
            let held = held.clone();
            let tx = tx.clone();
            let rx = rx.clone();
            threads.push(std::thread::spawn(move || {
                let mut cache = p.cache(16);
                for round in 0..5000 {
                    let mut mine = Vec::new();
                    for _ in 0..8 {
                        let b = if t % 2 == 0 { cache.alloc() } else { p.alloc() };
                        if let Some(b) = b {
                            assert!(
                                held.lock().unwrap().insert(b.index()),
                                "buffer handed out twice"
                            );
                            mine.push(b);
                        }
                    }
                    for (k, b) in mine.into_iter().enumerate() {
                        assert!(held.lock().unwrap().remove(&b.index()));
                        if (round + k) % 3 == 0 {
                            tx.send(b).unwrap(); // freed by whichever thread receives it
                        } else if t % 2 == 0 {
                            cache.free(b);
                        } else {
                            drop(b);
                        }
                    }
                    while let Ok(b) = rx.lock().unwrap().try_recv() {
                        if t % 2 == 0 {
                            cache.free(b);
                        } else {
                            drop(b);
                        }
                    }
                }
            }));
        }
        drop(tx);
        for t in threads {
            t.join().unwrap();
        }
        while let Ok(b) = rx.lock().unwrap().try_recv() {
            drop(b);
        }
        assert_eq!(p.free_count(), COUNT);
        assert_eq!(p.quarantined(), 0);
    }
}
