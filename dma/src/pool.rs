use crate::{DmaRegion, Error, Mapper, RegionOptions, Result};
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct PoolInner {
    mem: DmaRegion,
    buf_size: usize,
    count: usize,
    /// Indices of free buffers. Lock-free, so a buffer can be freed on
    /// another core than the one that allocated it.
    free: ArrayQueue<u32>,
    /// Buffers dropped while the device owned them (see [`DeviceBuf`]).
    quarantined: AtomicUsize,
}

/// A pool of fixed-size DMA buffers carved from one [`DmaRegion`].
///
/// A buffer is either a [`Buf`] (the CPU owns it: slices allowed) or a
/// [`DeviceBuf`] (posted to a device: no slice exists). Cloning a `Pool` is
/// cheap and shares the buffers.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("buf_size", &self.inner.buf_size)
            .field("count", &self.inner.count)
            .field("free", &self.inner.free.len())
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
        if buf_size == 0 || !buf_size.is_multiple_of(64) {
            return Err(Error::InvalidPool(format!(
                "buffer size {buf_size} is not a positive multiple of 64"
            )));
        }
        let total = count
            .checked_mul(buf_size)
            .ok_or_else(|| Error::InvalidPool(format!("{count} x {buf_size} bytes overflows")))?;
        let mem = DmaRegion::allocate(mapper, total, opts)?;
        let free = ArrayQueue::new(count);
        for i in 0..count as u32 {
            // Cannot fail: the queue has room for exactly `count` entries.
            let _ = free.push(i);
        }
        Ok(Pool {
            inner: Arc::new(PoolInner {
                mem,
                buf_size,
                count,
                free,
                quarantined: AtomicUsize::new(0),
            }),
        })
    }

    /// Take a free buffer, or None when all are in use.
    pub fn alloc(&self) -> Option<Buf> {
        self.inner.free.pop().map(|index| Buf {
            pool: self.inner.clone(),
            index,
            len: self.inner.buf_size,
        })
    }

    /// A per-queue cache in front of the shared free list: allocation and
    /// free touch the shared list only once per `capacity / 2` buffers.
    pub fn cache(&self, capacity: usize) -> PoolCache {
        PoolCache {
            pool: self.clone(),
            local: Vec::with_capacity(capacity.max(2)),
            capacity: capacity.max(2),
        }
    }

    /// Size of every buffer in bytes.
    pub fn buf_size(&self) -> usize {
        self.inner.buf_size
    }

    /// Number of buffers in the pool.
    pub fn capacity(&self) -> usize {
        self.inner.count
    }

    /// Buffers on the shared free list now (not counting those in caches).
    pub fn free_count(&self) -> usize {
        self.inner.free.len()
    }

    /// Buffers lost because they were dropped while a device owned them.
    pub fn quarantined(&self) -> usize {
        self.inner.quarantined.load(Ordering::Relaxed)
    }

    /// The DMA region the buffers live in.
    pub fn region(&self) -> &DmaRegion {
        &self.inner.mem
    }
}

impl PoolInner {
    #[inline]
    fn offset(&self, index: u32) -> usize {
        index as usize * self.buf_size
    }

    fn give_back(&self, index: u32) {
        // Cannot fail: every index is on the list at most once, and the list
        // holds all of them.
        let _ = self.free.push(index);
    }
}

/// A buffer the CPU owns: it may be read and written through slices.
pub struct Buf {
    pool: Arc<PoolInner>,
    index: u32,
    len: usize,
}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buf")
            .field("index", &self.index)
            .field("iova", &format_args!("{:#x}", self.iova()))
            .field("len", &self.len)
            .finish()
    }
}

impl Buf {
    /// IOVA of the first byte, for a descriptor.
    pub fn iova(&self) -> u64 {
        self.pool.mem.iova() + self.pool.offset(self.index) as u64
    }

    /// Usable length (the pool's buffer size unless [`Buf::set_len`] shortened it).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the length was set to zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shorten or restore the usable length (at most the buffer size).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.pool.buf_size);
    }

    /// The pool-wide index of this buffer.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The bytes of the buffer.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the buffer lies inside the pool's region (index < count).
        // The CPU owns it: it is not posted to any device (posting consumes
        // the `Buf`), so nothing writes it while this borrow lives.
        unsafe {
            std::slice::from_raw_parts(
                self.pool.mem.as_ptr().add(self.pool.offset(self.index)),
                self.len,
            )
        }
    }

    /// The bytes of the buffer, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only borrow.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.pool.mem.as_ptr().add(self.pool.offset(self.index)),
                self.len,
            )
        }
    }

    /// Hand the buffer to the device: from here on no slice of it can exist.
    pub fn into_device(self) -> DeviceBuf {
        let this = std::mem::ManuallyDrop::new(self);
        DeviceBuf {
            // SAFETY: `this` is never used or dropped again.
            pool: unsafe { std::ptr::read(&this.pool) },
            index: this.index,
            len: this.len,
        }
    }

    fn into_index(self) -> (Arc<PoolInner>, u32) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again.
        (unsafe { std::ptr::read(&this.pool) }, this.index)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.pool.give_back(self.index);
    }
}

/// A buffer posted to a device. It has an IOVA but no slice: the device may
/// write it at any moment. [`DeviceBuf::reclaim`] turns it back into a
/// [`Buf`] once the device has completed it.
///
/// Dropping a `DeviceBuf` does not return it to the pool: a device that has
/// not completed it may still write it (a timed-out command, say), so it is
/// quarantined and counted in [`Pool::quarantined`].
pub struct DeviceBuf {
    pool: Arc<PoolInner>,
    index: u32,
    len: usize,
}

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
    pub fn iova(&self) -> u64 {
        self.pool.mem.iova() + self.pool.offset(self.index) as u64
    }

    /// Usable length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Take the buffer back from the device. Call it only when the device
    /// has completed every command that referred to the buffer (or has been
    /// disabled): that is what makes the returned slices sound.
    pub fn reclaim(self) -> Buf {
        let this = std::mem::ManuallyDrop::new(self);
        Buf {
            // SAFETY: `this` is never used or dropped again.
            pool: unsafe { std::ptr::read(&this.pool) },
            index: this.index,
            len: this.len,
        }
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        self.pool.quarantined.fetch_add(1, Ordering::Relaxed);
    }
}

/// A per-queue cache of free buffers (not shared between threads).
pub struct PoolCache {
    pool: Pool,
    local: Vec<u32>,
    capacity: usize,
}

impl PoolCache {
    /// Take a buffer, refilling the cache from the shared list when empty.
    #[inline]
    pub fn alloc(&mut self) -> Option<Buf> {
        if self.local.is_empty() {
            let want = self.capacity / 2;
            while self.local.len() < want {
                match self.pool.inner.free.pop() {
                    Some(i) => self.local.push(i),
                    None => break,
                }
            }
        }
        self.local.pop().map(|index| Buf {
            pool: self.pool.inner.clone(),
            index,
            len: self.pool.inner.buf_size,
        })
    }

    /// Give a buffer back to the cache, spilling half to the shared list when full.
    #[inline]
    pub fn free(&mut self, buf: Buf) {
        let (pool, index) = buf.into_index();
        if !Arc::ptr_eq(&pool, &self.pool.inner) {
            // A buffer of another pool goes home.
            pool.give_back(index);
            return;
        }
        if self.local.len() == self.capacity {
            for i in self.local.drain(self.capacity / 2..) {
                pool.give_back(i);
            }
        }
        self.local.push(index);
    }

    /// Buffers held by this cache.
    pub fn len(&self) -> usize {
        self.local.len()
    }

    /// True if the cache holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.local.is_empty()
    }

    /// The pool behind the cache.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Drop for PoolCache {
    fn drop(&mut self) {
        for i in self.local.drain(..) {
            self.pool.inner.give_back(i);
        }
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
