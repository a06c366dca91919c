//! A receive queue: a ring of advanced RX descriptors, one pool buffer per
//! descriptor, batch refill and one tail write per batch.
//!
//! The ring is split by two indices: `next_rx` (the oldest descriptor
//! posted to the device, the next to complete) and `next_post` (the next
//! slot to give a buffer, which is also the RDT value). The device owns the
//! `posted` descriptors between them; the driver reads a descriptor only
//! while it is posted, so a DD bit in a slot the driver did not post is
//! never looked at (82576 datasheet §7.1.5, 82599 datasheet §7.1.6: the
//! device writes back only descriptors between RDH and RDT).
#![forbid(unsafe_code)]

use super::desc::{rx_check, RxCheck};
use super::error::NicError;
use super::ring::{distance, place, put_slot, Desc, DescRing, QueueRegs};
use crate::regs::RegisterAccess;
use dma::{Buf, DeviceIndex, Pool, PoolCache};
use spec::nic::adv_desc::rx::{
    status, HDR_ADDR, PKT_ADDR, WB_LENGTH, WB_RSS_HASH, WB_STATUS_ERROR,
};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One received frame.
#[derive(Debug)]
pub struct RxPacket {
    /// The frame (without FCS): `buf.len()` is the frame length.
    pub buf: Buf,
    /// The RSS hash the device computed (0 when RSS is off or the frame was
    /// not hashed).
    pub rss_hash: u32,
}

/// Counters of one RX queue, kept by the driver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxQueueStats {
    /// Frames delivered by [`RxQueue::rx_batch`] / [`RxQueue::rx_bufs`] or
    /// moved by [`super::forward::forward`] (bytes are in the port's
    /// [`super::status::DeviceStats`]).
    pub packets: u64,
    /// Frames dropped because they did not fit one buffer (more than one
    /// descriptor without EOP).
    pub multi_descriptor_drops: u64,
    /// Frames dropped because the device flagged a frame error, or had length 0.
    pub error_drops: u64,
    /// Refills that stopped because the pool was empty (the ring then runs
    /// with fewer buffers until buffers come back).
    pub pool_empty: u64,
}

/// Most frames one [`RxQueue::take_burst`] takes.
pub(crate) const BURST: usize = 32;

/// A received frame taken off an RX ring and not yet passed on, still
/// device-owned: its buffer (taken out when passed on), the buffer's IOVA,
/// the frame length and the RSS hash.
pub(crate) struct Frame {
    pub(crate) dev: Option<DeviceIndex>,
    pub(crate) iova: u64,
    pub(crate) len: u16,
    pub(crate) hash: u32,
}

/// Up to [`BURST`] received frames ([`RxQueue::take_burst`]). Taking a
/// burst and then handing it on are two short loops that each keep their
/// state in registers, where one loop doing both would not.
pub(crate) struct Burst {
    frames: [Frame; BURST],
    n: usize,
}

impl Burst {
    fn new() -> Burst {
        Burst {
            frames: [const {
                Frame {
                    dev: None,
                    iova: 0,
                    len: 0,
                    hash: 0,
                }
            }; BURST],
            n: 0,
        }
    }
}

/// One test for the common case of a write-back: DD and EOP, no frame
/// error (`check_bits` is DD | EOP | the chip's frame error bits), and
/// 0 < `len` <= `buf_len`.
#[inline(always)]
fn good_frame(staterr: u32, len: usize, check_bits: u32, buf_len: usize) -> bool {
    staterr & check_bits == status::DD.bit() | status::EOP.bit() && len.wrapping_sub(1) < buf_len
}

/// Give descriptor `d`, whose buffer slot is `slot`, the buffer `dev` at
/// `iova`.
#[inline(always)]
fn post(d: Desc<'_>, slot: &mut Option<DeviceIndex>, iova: u64, dev: DeviceIndex) {
    d.write_u64(PKT_ADDR, iova);
    // Also clears the DD bit of the previous write-back.
    d.write_u64(HDR_ADDR, 0);
    put_slot(slot, dev);
}

/// What [`RxQueue::look_slow`] found at a descriptor.
enum Slow {
    /// The device has not written it back (yet).
    NotDone,
    /// A good frame after all (written back since the fast loop looked).
    Good,
    /// An odd write-back, with its status, length and buffer, for
    /// [`RxQueue::reject`].
    Odd(u32, usize, DeviceIndex),
}

/// A completed RX buffer nobody takes goes back to the cache (or, if it is
/// not the cache's, which no ring of this driver holds, out of use).
#[cold]
fn give_up(cache: &mut PoolCache, dev: DeviceIndex) {
    let _ = cache.free_device(dev);
}

/// Refill from the cache once fewer than this share of the ring's
/// descriptors (1/2) are posted or on their way back: fewer, larger
/// refills mean fewer tail writes. Half a ring still posted (at least 4
/// descriptors, 256 on the default ring) covers the time between two
/// polls.
///
/// While forwarding, the buffers sitting in the TX ring come back into this
/// ring when sent ([`RxQueue::repost`]), so they count as posted
/// ([`RxQueue::top_up`]): refilling the ring with other buffers while they
/// are away only sends as many to the cache when they come back (with 256
/// frames circling between two 512-descriptor rings, that churn cost 20
/// instructions per frame).
const REFILL_SHARE: usize = 2;

/// ... but never let fewer than this share of the ring (1/8) stay posted,
/// whatever is on its way back: buffers a TX queue holds may be slow to
/// come back (a link down), or go to another queue's ring.
const FLOOR_SHARE: usize = 8;

/// [`RxQueue::repost`] writes the tail once this many descriptors wait (or
/// a quarter of the ring, for small rings).
const REPOST_TAIL: usize = 32;

/// A receive queue of a port. It owns its ring and its buffers; it is
/// `Send`, so it can move to the thread that polls it.
pub struct RxQueue<R: RegisterAccess> {
    regs: Arc<R>,
    ring: DescRing,
    /// The buffer posted in each descriptor, as an index into the queue's
    /// pool (4 bytes a slot: the ring's hot path moves no buffer handles).
    slots: Box<[Option<DeviceIndex>]>,
    cache: PoolCache,
    next_rx: usize,
    next_post: usize,
    /// The RDT value last written: descriptors from it to `next_post` are
    /// filled but not yet shown to the device ([`Self::repost`] shows
    /// them in groups).
    tail: usize,
    posted: usize,
    /// See [`REFILL_SHARE`] and [`FLOOR_SHARE`].
    refill_below: usize,
    floor: usize,
    /// See [`REPOST_TAIL`].
    publish_at: usize,
    buf_len: usize,
    frame_errors: u32,
    dropping: bool,
    qregs: QueueRegs,
    queue: u16,
    stats: RxQueueStats,
    /// Frames taken off the ring by [`Self::take_burst`], not yet passed on.
    burst: Burst,
}

impl<R: RegisterAccess> RxQueue<R> {
    /// A queue over `ring` taking buffers from `pool`; the device may write
    /// `buf_len` bytes per buffer. Nothing is posted until [`Self::refill`].
    pub(crate) fn new(
        regs: Arc<R>,
        ring: DescRing,
        pool: &Pool,
        buf_len: usize,
        frame_errors: u32,
        qregs: QueueRegs,
        queue: u16,
    ) -> RxQueue<R> {
        let size = ring.size();
        let slots = (0..size)
            .map(|_| None)
            .collect::<Vec<_>>()
            .into_boxed_slice();
        RxQueue {
            regs,
            slots,
            cache: pool.cache(size.clamp(64, 512)),
            next_rx: 0,
            next_post: 0,
            tail: 0,
            posted: 0,
            refill_below: size / REFILL_SHARE,
            floor: size / FLOOR_SHARE,
            publish_at: REPOST_TAIL.min(size / 4),
            buf_len,
            frame_errors,
            dropping: false,
            qregs,
            queue,
            stats: RxQueueStats::default(),
            burst: Burst::new(),
            ring,
        }
    }

    /// Receive up to `max` frames into `out` (appended). Every write-back is
    /// checked before use: DD on a posted descriptor, EOP (frames spread over
    /// several buffers are dropped and counted: buffers are sized for the
    /// port's largest frame), length not beyond the buffer, no frame error.
    /// Freed descriptors are refilled in batches with one tail write each.
    ///
    /// A write-back that no correct device produces (a length beyond the
    /// buffer) ends the batch with [`NicError::DeviceMisbehaved`]; the
    /// frames before it stay in `out` and the next call continues after it.
    pub fn rx_batch(&mut self, out: &mut Vec<RxPacket>, max: usize) -> Result<usize, NicError> {
        self.receive_bufs::<true>(max, |buf, rss_hash| out.push(RxPacket { buf, rss_hash }))
    }

    /// Like [`Self::rx_batch`], but only the buffers (no RSS hash), appended
    /// to `out`: ready for [`super::tx::TxQueue::tx_bufs`].
    pub fn rx_bufs(&mut self, out: &mut Vec<Buf>, max: usize) -> Result<usize, NicError> {
        self.receive_bufs::<false>(max, |buf, _| out.push(buf))
    }

    /// Up to `max` frames, burst by burst, each handed to `deliver` as a
    /// CPU buffer with its RSS hash (0 unless `HASH`).
    #[inline(always)]
    fn receive_bufs<const HASH: bool>(
        &mut self,
        max: usize,
        mut deliver: impl FnMut(Buf, u32),
    ) -> Result<usize, NicError> {
        let mut total = 0;
        while total < max {
            let want = (max - total).min(BURST);
            let r = self.take_burst::<HASH>(want);
            let n = self.burst.n;
            for f in self.burst.frames[..n].iter_mut() {
                // Cannot fail: the ring holds only buffers of its cache.
                if let Some(buf) = f
                    .dev
                    .take()
                    .and_then(|d| self.cache.reclaim(d, f.len.into()))
                {
                    deliver(buf, f.hash);
                }
            }
            self.burst.n = 0;
            self.top_up(0);
            total += n;
            r?;
            if n < want {
                break;
            }
        }
        Ok(total)
    }

    /// Bytes the device may write per buffer: the longest frame this queue
    /// delivers.
    pub fn buf_len(&self) -> usize {
        self.buf_len
    }

    /// The frames the last [`Self::take_burst`] took, to be passed on:
    /// take each one's buffer out. The burst is empty afterwards.
    #[inline(always)]
    pub(crate) fn burst(&mut self) -> &mut [Frame] {
        let n = std::mem::take(&mut self.burst.n);
        &mut self.burst.frames[..n]
    }

    /// Take up to `max` (at most [`BURST`]) received frames off the ring
    /// into the queue's burst ([`Self::burst`]), still device-owned: no CPU
    /// handle, and so no slice, of a buffer is made (the forwarding path,
    /// [`super::forward::forward`], posts them straight to a TX ring). Returns how
    /// many. Every write-back is checked as [`Self::rx_batch`] describes;
    /// the RSS hash is read only if `HASH`. Odd write-backs go to
    /// [`Self::reject`] and the loop goes on after them. The caller
    /// refills the ring ([`Self::top_up`]).
    ///
    /// On [`NicError::DeviceMisbehaved`] the frames before the bad
    /// write-back are in the burst.
    #[inline(always)]
    pub(crate) fn take_burst<const HASH: bool>(&mut self, max: usize) -> Result<usize, NicError> {
        debug_assert!(
            self.burst.frames.iter().all(|f| f.dev.is_none()),
            "burst not passed on"
        );
        let max = max.min(BURST);
        let mask = self.ring.mask();
        let buf_len = self.buf_len;
        let check_bits = status::DD.bit() | status::EOP.bit() | self.frame_errors;
        let iovas = self.cache.device_iovas();
        let start = self.next_rx;
        let mut i = start;
        let mut got = 0;
        let mut result = Ok(());
        // The descriptor last found good by the slow look: found good
        // twice (a device flipping its status), it goes to reject instead
        // of looping.
        let mut rechecked = usize::MAX;
        loop {
            let posted = self.posted - distance(start, i, mask);
            let stop = got + (max - got).min(posted);
            if got == stop {
                break;
            }
            // Whether the fast loop stopped at a descriptor not written back
            // yet: then there is nothing more to look at.
            let mut not_done = false;
            if !self.dropping {
                // A run of good frames, with what the loop touches in
                // locals, in at most two pieces that do not wrap (so each
                // step moves one counter and masks nothing).
                let ring = self.ring.view();
                while got < stop {
                    let run = ring.run(i, stop - got);
                    let n = run.len();
                    // Sliced to the run: indexing with `k < n` needs no
                    // bounds check.
                    let slots = &mut self.slots[run.start()..][..n];
                    let frames = &mut self.burst.frames[got..][..n];
                    let mut k = 0;
                    while k < n {
                        let d = run.desc(k);
                        let staterr = d.load_u32_acquire(WB_STATUS_ERROR);
                        // Read before the test, used only if it passes (DD set).
                        let len = d.read_u16(WB_LENGTH) as usize;
                        // Anything but a good frame, including "not done
                        // yet", leaves the loop.
                        if !good_frame(staterr, len, check_bits, buf_len) {
                            not_done = staterr & status::DD.bit() == 0;
                            break;
                        }
                        // Cannot fail: every posted slot holds a buffer of
                        // the cache (if not, the odd path below deals with it).
                        let Some((dev, iova)) = iovas.take(&mut slots[k]) else {
                            break;
                        };
                        let f = &mut frames[k];
                        f.dev = Some(dev);
                        f.iova = iova;
                        f.len = len as u16;
                        if HASH {
                            f.hash = d.read_u32(WB_RSS_HASH);
                        }
                        k += 1;
                    }
                    got += k;
                    i = (i + k) & mask;
                    if k < n {
                        break;
                    }
                }
            }
            self.burst.n = got;
            if got == stop || not_done {
                break;
            }
            // Not done yet, an odd write-back, a frame being dropped, or
            // one the device finished just after the loop looked.
            let (staterr, len, dev) = match self.look_slow(i, rechecked == i) {
                Slow::NotDone => break,
                Slow::Good => {
                    rechecked = i;
                    continue;
                }
                Slow::Odd(staterr, len, dev) => (staterr, len, dev),
            };
            let at = i;
            i = (i + 1) & mask;
            if let Err(e) = self.reject(at, staterr, len, dev) {
                result = Err(e);
                break;
            }
        }
        self.ring.trace_consumed(start, i);
        self.posted -= distance(start, i, mask);
        self.next_rx = i;
        self.stats.packets += got as u64;
        result.map(|()| got)
    }

    /// Whether the oldest posted descriptor has been written back: one
    /// load, so that a poll that finds nothing costs little
    /// ([`super::forward::forward`]). Only a hint: [`Self::take_burst`] checks
    /// everything it takes.
    #[inline(always)]
    pub(crate) fn frame_waiting(&self) -> bool {
        self.posted > 0
            && self
                .ring
                .desc(self.next_rx)
                .load_u32_acquire(WB_STATUS_ERROR)
                & status::DD.bit()
                != 0
    }

    /// Refill the ring from the cache if it runs low: fewer than half its
    /// descriptors posted, counting `returning` buffers that will come back
    /// into it by themselves ([`Self::repost`]: the TX queue [`super::forward::forward`]
    /// passes them to), or fewer than an eighth posted in any case.
    #[inline(always)]
    pub(crate) fn top_up(&mut self, returning: usize) {
        if self.posted < self.floor || self.posted.saturating_add(returning) < self.refill_below {
            self.refill();
        }
    }

    /// The slow look at descriptor `i`, after the fast loop stopped there:
    /// its status read once, and its buffer taken only if it is odd (or if
    /// `odd`, whatever it says).
    #[inline(never)]
    fn look_slow(&mut self, i: usize, odd: bool) -> Slow {
        let d = self.ring.desc(i);
        let staterr = d.load_u32_acquire(WB_STATUS_ERROR);
        if staterr & status::DD.bit() == 0 {
            return Slow::NotDone;
        }
        let len = d.read_u16(WB_LENGTH) as usize;
        let iovas = self.cache.device_iovas();
        let slot = &mut self.slots[i & self.ring.mask()];
        let own = slot.as_ref().is_some_and(|dev| iovas.iova(dev).is_some());
        let check_bits = status::DD.bit() | status::EOP.bit() | self.frame_errors;
        if !odd && own && !self.dropping && good_frame(staterr, len, check_bits, self.buf_len) {
            return Slow::Good;
        }
        match slot.take() {
            Some(dev) => Slow::Odd(staterr, len, dev),
            // Cannot happen: every posted slot holds a buffer.
            None => Slow::NotDone,
        }
    }

    /// A write-back that is not a good single-buffer frame: drop and count
    /// it, or report device misbehaviour. The buffer goes back to the cache.
    #[cold]
    fn reject(
        &mut self,
        at: usize,
        staterr: u32,
        len: usize,
        dev: DeviceIndex,
    ) -> Result<(), NicError> {
        give_up(&mut self.cache, dev);
        match rx_check(staterr, len as u16, self.buf_len, self.frame_errors) {
            RxCheck::Frame(_) => {
                // The last piece of a frame that did not fit one buffer.
                self.dropping = false;
            }
            RxCheck::Partial => {
                if !self.dropping {
                    self.stats.multi_descriptor_drops += 1;
                    self.dropping = true;
                }
            }
            RxCheck::FrameError | RxCheck::Empty => {
                if !self.dropping {
                    self.stats.error_drops += 1;
                }
                self.dropping = false;
            }
            RxCheck::TooLong(n) => {
                return Err(NicError::DeviceMisbehaved(format!(
                    "RX queue {} descriptor {at}: length {n} beyond the {}-byte buffer",
                    self.queue, self.buf_len
                )));
            }
            RxCheck::NotDone => {}
        }
        Ok(())
    }

    /// Post buffers to every free descriptor (as far as the pool allows)
    /// and write the tail once.
    pub(crate) fn refill(&mut self) {
        let mask = self.ring.mask();
        let start = self.next_post;
        let mut i = start;
        let want = mask - self.posted;
        let ring = self.ring.view();
        // Sliced to the ring's size, so that indexing with `i & mask`
        // needs no bounds check.
        let slots = &mut self.slots[..=mask];
        let got = self.cache.alloc_devices(want, |iova, dev| {
            post(ring.desc(i), &mut slots[i & mask], iova, dev);
            i = (i + 1) & mask;
        });
        if got < want {
            self.stats.pool_empty += 1;
        }
        self.posted += got;
        self.next_post = i;
        self.publish();
    }

    /// Show the device every filled descriptor: one tail write, if any
    /// are new.
    #[inline]
    fn publish(&mut self) {
        if self.tail != self.next_post {
            self.ring.trace_published(self.next_post);
            // Descriptor writes must reach memory before the device sees the tail.
            fence(Ordering::Release);
            self.regs.write32(self.qregs.tail, self.next_post as u32);
            self.tail = self.next_post;
        }
    }

    /// Post the buffers of this queue's pool held in `slots` (the slots of
    /// sent TX descriptors: [`super::forward::forward`]) straight back into the
    /// ring, as far as it has room, and the rest into the cache: a
    /// forwarded buffer goes RX ring, TX ring, RX ring without a stop on
    /// a free list. Slots that are empty or hold another pool's buffer are
    /// left; returns how many it left holding a buffer. The tail is
    /// written once at least [`REPOST_TAIL`] descriptors (a quarter of a
    /// small ring) wait for it; a refill writes it anyway.
    #[inline(always)]
    pub(crate) fn repost(&mut self, slots: &mut [Option<DeviceIndex>]) -> usize {
        let ring = self.ring.view();
        let mask = ring.mask();
        let n = slots.len().min(mask - self.posted);
        let (now, rest) = slots.split_at_mut(n);
        let iovas = self.cache.device_iovas();
        let start = self.next_post;
        let mut left = 0;
        // An empty slot or another pool's buffer is skipped.
        let i = place(ring, start, now, &mut self.slots, |d, rx_slot, slot| {
            let Some((dev, iova)) = iovas.take(slot) else {
                left += slot.is_some() as usize;
                return false;
            };
            post(d, rx_slot, iova, dev);
            true
        });
        self.posted += distance(start, i, mask);
        self.next_post = i;
        if distance(self.tail, i, mask) >= self.publish_at {
            self.publish();
        }
        left + self.cache.free_devices(rest)
    }

    /// Give a buffer back to this queue's buffer cache (cheaper than
    /// dropping it, which returns it to the shared pool).
    #[inline]
    pub fn recycle(&mut self, buf: Buf) {
        self.cache.free(buf)
    }

    /// This queue's buffer cache: a TX queue on the same thread can free
    /// sent buffers into it ([`super::tx::TxQueue::clean_into`]).
    pub fn cache_mut(&mut self) -> &mut PoolCache {
        &mut self.cache
    }

    /// The pool the queue takes buffers from.
    pub fn pool(&self) -> &Pool {
        self.cache.pool()
    }

    /// The queue number.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The driver's counters of this queue.
    pub fn stats(&self) -> RxQueueStats {
        self.stats
    }

    /// Descriptors currently posted to the device.
    pub fn posted(&self) -> usize {
        self.posted
    }

    /// Ring size in descriptors.
    pub fn ring_size(&self) -> usize {
        self.ring.size()
    }

    /// RDH as the device reports it, checked against the ring: an index
    /// outside the ring is [`NicError::DeviceMisbehaved`], all ones from a
    /// device that reads all ones everywhere [`NicError::DeviceRemoved`].
    pub fn device_head(&self) -> Result<usize, NicError> {
        self.qregs
            .read_head(&*self.regs, "RDH", self.queue, self.ring.size())
    }

    #[cfg(test)]
    pub(crate) fn indices(&self) -> (usize, usize, usize) {
        debug_assert_eq!(
            super::ring::distance(self.next_rx, self.next_post, self.ring.mask()),
            self.posted
        );
        (self.next_rx, self.next_post, self.posted)
    }
}

impl<R: RegisterAccess> Drop for RxQueue<R> {
    /// Stop the queue (RXDCTL.ENABLE = 0) and, once the device confirms,
    /// take the posted buffers back. If it does not confirm, the buffers stay
    /// with the device and are quarantined by the pool, never reused.
    fn drop(&mut self) {
        let ctl = self.regs.read32(self.qregs.ctl);
        self.regs.write32(self.qregs.ctl, ctl & !self.qregs.enable);
        let stopped = super::setup::wait_until(Duration::from_millis(100), || {
            self.regs.read32(self.qregs.ctl) & self.qregs.enable == 0
        });
        for slot in self.slots.iter_mut() {
            if let Some(dev) = slot.take() {
                if stopped {
                    give_up(&mut self.cache, dev);
                } else {
                    self.cache.quarantine(dev);
                }
            }
        }
    }
}
