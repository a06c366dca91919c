//! A transmit queue: multi-descriptor (scatter-gather) packets, report
//! status only every [`RS_EVERY`] descriptors and on the last packet of a
//! batch, one tail write per batch, cleanup in RS-sized groups, and a
//! context descriptor only when the checksum offload parameters change.
//!
//! Ring state: descriptors from `next_clean` up to `next_use` (the TDT
//! value) are in flight; `rs_marks` lists, oldest first, the in-flight
//! descriptors that carry RS. When the device writes DD into one of them,
//! every descriptor up to it is done (descriptors complete in ring order,
//! transmit chapters §7.2 of both datasheets), so their buffers go back.
//!
//! A descriptor's buffer is kept one of two ways: a CPU buffer handed over
//! (`slots`, a [`DeviceBuf`]), or a received buffer passed on by
//! [`super::forward::forward`] without ever becoming a CPU buffer (`devs`, a
//! [`DeviceIndex`] of a pool the queue accepted). Cleanup returns the
//! indices to the RX cache in one tight pass and looks at `slots` only
//! while some are in flight.
#![forbid(unsafe_code)]

use super::desc::{check_offload, context, data_cmd, data_hi, data_olinfo, popts};
use super::error::NicError;
use super::headers::{HeaderArea, HeaderSlot, HEADER_SLOT};
use super::offload::Offload;
use super::ring::{distance, place, put_slot, DescRing, QueueRegs};
use super::rx::{Frame, RxQueue};
use crate::regs::RegisterAccess;
use dma::{Buf, DeviceBuf, DeviceIndex, Pool, PoolCache, RegionOptions};
use spec::nic::adv_desc::tx::{cmd_type_len, olinfo, ADDR, CMD_TYPE_LEN, WB_STATUS};
use std::collections::VecDeque;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Descriptors between two report-status requests.
pub const RS_EVERY: usize = 32;

/// The segments of a packet, without a heap allocation for the common one-
/// and two-segment (header + payload) shapes.
#[derive(Debug)]
enum Segments {
    One([Buf; 1]),
    Two([Buf; 2]),
    Many(Vec<Buf>),
}

/// A packet to send: one or more buffers whose `len()` bytes are sent in
/// order as one frame (without FCS; the NIC appends it), and its offload.
#[derive(Debug)]
pub struct TxPacket {
    segs: Segments,
    /// The checksum offload to apply.
    pub offload: Offload,
}

impl TxPacket {
    /// A one-buffer packet.
    #[inline]
    pub fn new(buf: Buf) -> TxPacket {
        TxPacket {
            segs: Segments::One([buf]),
            offload: Offload::None,
        }
    }

    /// A header buffer followed by a payload buffer.
    #[inline]
    pub fn header_payload(header: Buf, payload: Buf) -> TxPacket {
        TxPacket {
            segs: Segments::Two([header, payload]),
            offload: Offload::None,
        }
    }

    /// A packet of any number of segments (a `Vec` only for three or more).
    pub fn from_segments(segments: Vec<Buf>) -> TxPacket {
        let segs = match <[Buf; 1]>::try_from(segments) {
            Ok(one) => Segments::One(one),
            Err(v) => match <[Buf; 2]>::try_from(v) {
                Ok(two) => Segments::Two(two),
                Err(v) => Segments::Many(v),
            },
        };
        TxPacket {
            segs,
            offload: Offload::None,
        }
    }

    /// The same packet with `offload`.
    #[inline]
    pub fn with_offload(mut self, offload: Offload) -> TxPacket {
        self.offload = offload;
        self
    }

    /// Append a segment.
    pub fn push(&mut self, seg: Buf) {
        let old = std::mem::replace(&mut self.segs, Segments::Many(Vec::new()));
        self.segs = match old {
            Segments::One([a]) => Segments::Two([a, seg]),
            Segments::Two([a, b]) => Segments::Many(vec![a, b, seg]),
            Segments::Many(mut v) => {
                v.push(seg);
                Segments::Many(v)
            }
        };
    }

    /// A packet of no segments, to stand in for one moved out of a list
    /// for a moment ([`TxQueue::tx_batch`]); no allocation.
    #[inline(always)]
    fn placeholder() -> TxPacket {
        TxPacket {
            segs: Segments::Many(Vec::new()),
            offload: Offload::None,
        }
    }

    /// The segments, in order.
    #[inline]
    pub fn segments(&self) -> &[Buf] {
        match &self.segs {
            Segments::One(a) => a,
            Segments::Two(a) => a,
            Segments::Many(v) => v,
        }
    }

    /// Mutable access to the segments (to fill them before sending).
    pub fn segments_mut(&mut self) -> &mut [Buf] {
        match &mut self.segs {
            Segments::One(a) => a,
            Segments::Two(a) => a,
            Segments::Many(v) => v,
        }
    }

    /// Frame length: the sum of the segment lengths.
    pub fn len(&self) -> usize {
        self.segments().iter().map(|b| b.len()).sum()
    }

    /// True if the packet has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffers back, in order.
    pub fn into_segments(self) -> Vec<Buf> {
        match self.segs {
            Segments::One(a) => a.into(),
            Segments::Two(a) => a.into(),
            Segments::Many(v) => v,
        }
    }
}

/// Counters of one TX queue, kept by the driver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TxQueueStats {
    /// Packets queued to the device (bytes are in the port's
    /// [`super::status::DeviceStats`]).
    pub packets: u64,
    /// Context descriptors written (offload parameter changes).
    pub contexts: u64,
    /// Descriptors reclaimed by cleanup.
    pub cleaned: u64,
}

/// Limits a TX queue checks each packet against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxLimits {
    /// Data descriptors per packet.
    pub max_segments: usize,
    /// Bytes per data descriptor.
    pub max_segment_len: usize,
    /// Bytes per frame.
    pub max_frame: usize,
}

impl TxLimits {
    /// The one length check of a frame, for every way of sending: `segs`
    /// segments of `lens` bytes each. Each segment 1 to `max_segment_len`
    /// bytes, 1 to `max_segments` of them, the frame at most `max_frame`:
    /// one branch on the way through (the error is worked out apart).
    /// `Ok(frame length)`.
    #[inline(always)]
    fn check<I>(&self, segs: usize, lens: I) -> Result<usize, NicError>
    where
        I: IntoIterator<Item = usize> + Clone,
    {
        let mut bad = segs.wrapping_sub(1) >= self.max_segments;
        let mut total = 0;
        for l in lens.clone() {
            bad |= l.wrapping_sub(1) >= self.max_segment_len;
            total += l;
        }
        if bad || total > self.max_frame {
            return Err(self.refusal(segs, lens));
        }
        Ok(total)
    }

    /// Why [`Self::check`] refused a frame: too many segments, else an
    /// empty one, else the frame too long, else a segment too long.
    #[cold]
    #[inline(never)]
    fn refusal(&self, segs: usize, lens: impl IntoIterator<Item = usize>) -> NicError {
        if segs > self.max_segments {
            return NicError::TooManySegments {
                segments: segs,
                max: self.max_segments,
            };
        }
        let (mut total, mut longest, mut empty) = (0, 0, segs == 0);
        for l in lens {
            total += l;
            longest = longest.max(l);
            empty |= l == 0;
        }
        if empty {
            NicError::EmptySegment
        } else if total > self.max_frame {
            NicError::FrameTooLarge {
                len: total,
                max: self.max_frame,
            }
        } else {
            NicError::SegmentTooLarge {
                len: longest,
                max: self.max_segment_len,
            }
        }
    }
}

/// The in-flight descriptors that carry RS, oldest first: a ring of
/// indices as large as the descriptor ring. Each is a different in-flight
/// descriptor, so it never holds more than the ring has.
struct Marks {
    at: Box<[u16]>,
    head: usize,
    len: usize,
}

impl Marks {
    fn new(size: usize) -> Marks {
        debug_assert!(size.is_power_of_two() && size <= 1 << 16);
        Marks {
            at: vec![0; size].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, i: usize) {
        debug_assert!(self.len < self.at.len());
        let mask = self.at.len() - 1;
        self.at[(self.head + self.len) & mask] = i as u16;
        self.len += 1;
    }

    #[inline(always)]
    fn front(&self) -> Option<usize> {
        (self.len > 0).then(|| self.at[self.head] as usize)
    }

    #[inline(always)]
    fn pop(&mut self) {
        debug_assert!(self.len > 0);
        self.head = (self.head + 1) & (self.at.len() - 1);
        self.len -= 1;
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).map(|k| self.at[(self.head + k) & (self.at.len() - 1)] as usize)
    }
}

/// Bookkeeping of one batch (one tail write). Every batch ends with RS on
/// its last packet, so the count of descriptors since the last RS starts
/// at 0 in each.
struct Batch {
    sent: usize,
    /// Descriptors written since the last one with RS (< [`RS_EVERY`]);
    /// 0 also when nothing was written, or the last packet has RS.
    since_rs: usize,
}

impl Batch {
    #[inline(always)]
    fn new() -> Batch {
        Batch {
            sent: 0,
            since_rs: 0,
        }
    }
}

/// A transmit queue of a port. `Send`: it can move to the thread that uses it.
pub struct TxQueue<R: RegisterAccess> {
    regs: Arc<R>,
    ring: DescRing,
    /// The buffer of each data descriptor: a CPU buffer handed over
    /// ([`DeviceBuf`]) ...
    slots: Box<[Option<DeviceBuf>]>,
    /// ... or a received buffer passed on from an RX ring without ever
    /// becoming a CPU buffer ([`super::forward::forward`]): an index of one of
    /// `index_pools`. At most one of the two is set per descriptor.
    devs: Box<[Option<DeviceIndex>]>,
    /// The pools of the buffers in `devs`, to return them to when no cache
    /// of theirs is at hand.
    index_pools: Vec<Pool>,
    /// The in-flight descriptors that hold a `slots` buffer, oldest first
    /// (ring order): cleanup visits only these, not every slot of the
    /// range (a run of cut frames holds one buffer in 2 x 90-odd
    /// descriptors).
    held: Marks,
    rs_marks: Marks,
    /// Tagged frames in flight, oldest first ([`TxBatch::tag_last`]): the
    /// count of descriptors taken when the frame's last one was, and the
    /// tag. Never more than the frames in flight unless a frame is tagged
    /// twice, so the ring size as capacity means no allocation.
    tags: VecDeque<(u64, u64)>,
    next_use: usize,
    next_clean: usize,
    used: usize,
    ctx: Offload,
    limits: TxLimits,
    /// Largest length a one-segment packet may have (the smaller of the
    /// segment and frame limits).
    one_max: usize,
    qregs: QueueRegs,
    queue: u16,
    stats: TxQueueStats,
    /// One header slot per descriptor ([`Self::add_header_area`]), for
    /// [`TxBatch::push_cut`]; boxed so that a run takes it out and puts
    /// it back with one word.
    headers: Option<Box<HeaderArea>>,
}

impl<R: RegisterAccess> TxQueue<R> {
    pub(crate) fn new(
        regs: Arc<R>,
        ring: DescRing,
        limits: TxLimits,
        qregs: QueueRegs,
        queue: u16,
    ) -> TxQueue<R> {
        let size = ring.size();
        TxQueue {
            regs,
            slots: (0..size)
                .map(|_| None)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
            devs: (0..size)
                .map(|_| None)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
            index_pools: Vec::new(),
            held: Marks::new(size),
            rs_marks: Marks::new(size),
            tags: VecDeque::with_capacity(size),
            next_use: 0,
            next_clean: 0,
            used: 0,
            ctx: Offload::None,
            one_max: limits.max_segment_len.min(limits.max_frame),
            limits,
            qregs,
            queue,
            stats: TxQueueStats::default(),
            headers: None,
            ring,
        }
    }

    /// Give the queue a header area: one slot of [`HEADER_SLOT`] bytes
    /// per descriptor, in DMA memory of its own mapped for the device
    /// (`opts`: where its memory comes from), which [`TxBatch::push_cut`]
    /// writes frame headers into: no header buffer is allocated or freed
    /// per frame. A second call does nothing.
    pub fn add_header_area(&mut self, opts: RegionOptions) -> Result<(), NicError> {
        if self.headers.is_none() {
            let area = HeaderArea::new(self.ring.mapper().clone(), self.ring.size(), opts)?;
            self.headers = Some(Box::new(area));
        }
        Ok(())
    }

    /// Queue as many packets from the front of `pkts` as fit in the ring
    /// (cleaning once if short of room), remove them from `pkts`, and write
    /// the tail once: a loop of [`TxBatch::push`]. Each packet takes one
    /// data descriptor per segment, EOP on the last, plus a context
    /// descriptor when its offload differs from the one loaded. Returns
    /// the number of packets sent; the rest stay in `pkts`, in order.
    ///
    /// A packet the chip cannot send (too many segments, an empty or too
    /// long segment, a frame beyond [`super::port::Nic::max_frame`], impossible
    /// offload lengths) stops the batch: the packets before it are sent, it
    /// stays at the front of `pkts` (remove it to drop it) and its error is
    /// returned.
    pub fn tx_batch(&mut self, pkts: &mut Vec<TxPacket>) -> Result<usize, NicError> {
        let mut batch = self.batch();
        let mut result = Ok(());
        let mut n = 0;
        while n < pkts.len() {
            // Moved out for the push, put back if refused: a one-segment
            // packet with no bytes in its place meanwhile (no allocation).
            let p = std::mem::replace(&mut pkts[n], TxPacket::placeholder());
            match batch.push(p) {
                Ok(()) => n += 1,
                Err((e, p)) => {
                    pkts[n] = p;
                    if let PushError::Invalid(e) = e {
                        result = Err(e);
                    }
                    break;
                }
            }
        }
        batch.commit();
        pkts.drain(..n);
        result.map(|()| n)
    }

    /// Queue frames of one buffer each, without offload (the forwarding
    /// path's shape): a loop of [`TxBatch::push_buf`]. Sent buffers are
    /// removed from the front of `bufs`. Same rules as [`Self::tx_batch`]:
    /// stops at the first buffer that is empty or longer than
    /// [`super::port::Nic::max_frame`] (left at the front) with its error.
    pub fn tx_bufs(&mut self, bufs: &mut Vec<Buf>) -> Result<usize, NicError> {
        let mut batch = self.batch();
        let mut result = Ok(());
        // Taken from the back, so that what is refused goes back where it
        // was with no allocation and no shift of the rest.
        bufs.reverse();
        while let Some(buf) = bufs.pop() {
            if let Err((e, buf)) = batch.push_buf(buf) {
                bufs.push(buf);
                if let PushError::Invalid(e) = e {
                    result = Err(e);
                }
                break;
            }
        }
        bufs.reverse();
        result.map(|()| batch.commit())
    }

    /// Start putting frames on the ring: [`TxBatch`], the one way to send.
    /// Frames pushed into it are written straight into the ring; the tail
    /// is written once, at [`TxBatch::commit`].
    #[inline]
    pub fn batch(&mut self) -> TxBatch<'_, R> {
        TxBatch {
            q: self,
            b: Batch::new(),
            cleaned: false,
        }
    }

    /// Take `n` one-descriptor frames [`Self::send_burst`] wrote from
    /// `start` into batch `b`: RS on every [`RS_EVERY`]th descriptor
    /// counted over the batch (set now, so the writing loop has no RS
    /// test), ring and batch state forward.
    #[inline(always)]
    fn absorb_run(&mut self, start: usize, n: usize, b: &mut Batch) {
        if n == 0 {
            return;
        }
        let mask = self.ring.mask();
        let mut k = RS_EVERY - 1 - b.since_rs;
        while k < n {
            self.set_rs((start + k) & mask);
            k += RS_EVERY;
        }
        b.since_rs = (b.since_rs + n) % RS_EVERY;
        b.sent += n;
        self.used += n;
        self.next_use = (start + n) & mask;
    }

    /// Add RS to the EOP descriptor `i` written in this batch (the device
    /// has not seen it yet: it is past the tail) and remember it for
    /// cleanup.
    #[inline(always)]
    fn set_rs(&mut self, i: usize) {
        let d = self.ring.desc(i);
        d.write_u32(
            CMD_TYPE_LEN,
            d.read_u32(CMD_TYPE_LEN) | cmd_type_len::RS.bit(),
        );
        self.rs_marks.push(i);
    }

    /// Send every frame of `frames` (received buffers, still device-owned:
    /// [`super::rx::RxQueue::burst`]), taking their buffers, as one batch (one
    /// tail write); returns their bytes. The caller has made sure, once for
    /// the whole burst ([`super::forward::forward`]), of what [`Self::tx_bufs`]
    /// checks per frame: no frame is longer than one descriptor sends (none
    /// that the RX queue delivers is) and the ring has room for all. The
    /// queue must have accepted the buffers' pool
    /// ([`Self::accept_devices_of`]).
    #[inline(always)]
    pub(crate) fn send_burst(&mut self, frames: &mut [Frame]) -> u64 {
        debug_assert!(frames.len() <= self.free_descriptors());
        let ring = self.ring.view();
        let start = self.next_use;
        let one_max = self.one_max;
        let mut bytes = 0;
        // A frame without a buffer (none, from `RxQueue::take_burst`) is
        // skipped.
        let i = place(ring, start, frames, &mut self.devs, |d, slot, f| {
            let Some(dev) = f.dev.take() else {
                return false;
            };
            let len = f.len as usize;
            debug_assert!(len.wrapping_sub(1) < one_max);
            fill(d, f.iova, len, 0);
            put_slot(slot, dev);
            bytes += len as u64;
            true
        });
        let mut b = Batch::new();
        self.absorb_run(start, distance(start, i, ring.mask()), &mut b);
        self.finish(&b);
        bytes
    }

    /// Let this queue take received buffers of `pool` as indices
    /// ([`Self::send_burst`]): it keeps the pool to return them to.
    #[inline(always)]
    pub(crate) fn accept_devices_of(&mut self, pool: &Pool) {
        if !self.index_pools.last().is_some_and(|p| p.ptr_eq(pool)) {
            self.add_index_pool(pool);
        }
    }

    #[cold]
    fn add_index_pool(&mut self, pool: &Pool) {
        if let Some(k) = self.index_pools.iter().position(|p| p.ptr_eq(pool)) {
            // Most recent last: the common case is one test.
            let p = self.index_pools.remove(k);
            self.index_pools.push(p);
        } else {
            self.index_pools.push(pool.clone());
        }
    }

    /// Bookkeeping after a packet whose EOP descriptor is `eop`.
    #[inline(always)]
    fn after_packet(&mut self, eop: usize, rs: bool, need: usize, b: &mut Batch) {
        if rs {
            self.rs_marks.push(eop);
            b.since_rs = 0;
        } else {
            b.since_rs += need;
        }
        b.sent += 1;
        self.next_use = (eop + 1) & self.ring.mask();
        self.used += need;
    }

    /// Write a context descriptor for `offload` at `i` and make it the
    /// loaded one; returns the next descriptor.
    #[inline(always)]
    fn put_context(&mut self, i: usize, offload: Offload) -> usize {
        let (lo, hi) = context(offload);
        self.ring.write_u64(i, 0, lo);
        self.ring.write_u64(i, 8, hi);
        self.ctx = offload;
        self.stats.contexts += 1;
        (i + 1) & self.ring.mask()
    }

    /// End of a batch: report status on its last packet (so that its
    /// buffers come back without waiting for more traffic), then one tail
    /// write.
    #[inline(always)]
    fn finish(&mut self, b: &Batch) {
        if b.sent == 0 {
            return;
        }
        self.stats.packets += b.sent as u64;
        if b.since_rs != 0 {
            // The batch's last descriptor, the EOP of its last packet.
            self.set_rs(self.next_use.wrapping_sub(1) & self.ring.mask());
        }
        self.ring.trace_published(self.next_use);
        // Descriptor writes must reach memory before the device sees the tail.
        fence(Ordering::Release);
        self.regs.write32(self.qregs.tail, self.next_use as u32);
    }

    /// Write data descriptor `i` for `buf`.
    #[inline(always)]
    fn put(&mut self, i: usize, buf: Buf, eop: bool, rs: bool, olinfo: u32) {
        let mut cmd = data_cmd(buf.len() as u32, eop);
        if rs {
            cmd |= cmd_type_len::RS.bit();
        }
        self.ring.write_u64(i, ADDR, buf.iova());
        self.ring.write_u64(i, CMD_TYPE_LEN, data_hi(cmd, olinfo));
        debug_assert!(self.devs[i].is_none());
        put_slot(&mut self.slots[i], buf.into_device());
        self.held.push(i);
    }

    /// Let descriptor `i` (written, its slot empty) hold `buf` until it is
    /// done: the buffer its pieces point into ([`TxBatch::push_cut`]).
    #[inline(always)]
    fn hold(&mut self, i: usize, buf: Buf) {
        debug_assert!(self.devs[i].is_none());
        put_slot(&mut self.slots[i], buf.into_device());
        self.held.push(i);
    }

    /// Reclaim the descriptors the device has finished (in RS groups of up
    /// to [`RS_EVERY`]) and return their buffers to their pools. Returns the
    /// number of descriptors reclaimed.
    pub fn clean(&mut self) -> usize {
        self.clean_with(&mut Home)
    }

    /// Like [`Self::clean`], but hand the sent buffers to `cache` (e.g. the
    /// RX queue cache of the port they came from, on the same thread): the
    /// cheapest way back for forwarded buffers, which go back as indices.
    pub fn clean_into(&mut self, cache: &mut PoolCache) -> usize {
        self.clean_with(cache)
    }

    /// Like [`Self::clean_into`], and then hand `sent` the tag of every
    /// tagged frame ([`TxBatch::tag_last`]) the device has finished, in the
    /// order the frames were pushed (those finished by a cleanup in
    /// between included): how a sender learns that a frame went out.
    #[inline]
    pub fn clean_tagged(&mut self, cache: &mut PoolCache, sent: impl FnMut(u64)) -> usize {
        let n = self.clean_with(cache);
        self.hand_tags(sent);
        n
    }

    /// Like [`Self::clean_tagged`], with every buffer back to its own
    /// pool (a sender whose only buffers are payload it read, e.g. frames
    /// cut with [`TxBatch::push_cut`], which return one per read).
    #[inline]
    pub fn clean_sent(&mut self, sent: impl FnMut(u64)) -> usize {
        let n = self.clean_with(&mut Home);
        self.hand_tags(sent);
        n
    }

    /// Hand `sent` the tags of the tagged frames cleaned so far.
    #[inline(always)]
    fn hand_tags(&mut self, mut sent: impl FnMut(u64)) {
        let done = self.stats.cleaned;
        while let Some(&(last, tag)) = self.tags.front() {
            if last > done {
                break;
            }
            self.tags.pop_front();
            sent(tag);
        }
    }

    /// Like [`Self::clean_into`], but forwarded buffers of `rx`'s pool go
    /// straight back into `rx`'s ring ([`super::rx::RxQueue::repost`]), the
    /// others into its cache: the forwarding path ([`super::forward::forward`]).
    pub(crate) fn clean_into_ring<R2: RegisterAccess>(&mut self, rx: &mut RxQueue<R2>) -> usize {
        self.clean_with(rx)
    }

    /// The cleanup: find the last RS descriptor the device has written
    /// back (descriptors complete in ring order), then hand every buffer
    /// up to it to `sink`.
    #[inline(always)]
    fn clean_with(&mut self, sink: &mut impl Sink) -> usize {
        let mask = self.ring.mask();
        let ring = self.ring.view();
        let mut end = None;
        while let Some(mark) = self.rs_marks.front() {
            // Only RS descriptors we posted are ever read (the marks).
            let status = ring.desc(mark).load_u32_acquire(WB_STATUS);
            if status & olinfo::DD.bit() == 0 {
                break;
            }
            self.ring.trace_consumed(mark, mark + 1);
            self.rs_marks.pop();
            end = Some((mark + 1) & mask);
        }
        let Some(end) = end else {
            return 0;
        };
        let start = self.next_clean;
        // At least the mark's descriptor, at most the ring less one: the
        // range is [start, end) going round, one or two pieces.
        if start < end {
            self.release(start..end, sink);
        } else {
            self.release(start..mask + 1, sink);
            self.release(0..end, sink);
        }
        let cleaned = distance(start, end, mask);
        self.next_clean = end;
        self.used -= cleaned;
        debug_assert_eq!(
            distance(self.next_clean, self.next_use, mask),
            self.used & mask
        );
        self.stats.cleaned += cleaned as u64;
        cleaned
    }

    /// Hand the buffers of finished descriptors `range` (one piece, not
    /// going round) to `sink`: the forwarded ones (indices) in one pass,
    /// the rest of them home if the sink left any, then the CPU buffers
    /// of the descriptors in `held` that fall in the range (held ones are
    /// in ring order, so they are at its front).
    #[inline(always)]
    fn release(&mut self, range: std::ops::Range<usize>, sink: &mut impl Sink) {
        // No index is in flight on a queue that never took any.
        let left = if self.index_pools.is_empty() {
            0
        } else {
            sink.devices(&mut self.devs[range.clone()])
        };
        if left != 0 {
            for dev in &mut self.devs[range.clone()] {
                if let Some(dev) = dev.take() {
                    send_home(&self.index_pools, dev);
                }
            }
        }
        while let Some(i) = self.held.front() {
            if !range.contains(&i) {
                break;
            }
            self.held.pop();
            if let Some(dev) = self.slots[i].take() {
                sink.buf(dev.reclaim());
            }
        }
    }

    /// Descriptors free for new packets.
    #[inline]
    pub fn free_descriptors(&self) -> usize {
        self.ring.size() - 1 - self.used
    }

    /// Descriptors queued and not yet reclaimed.
    pub fn in_flight(&self) -> usize {
        self.used
    }

    /// The queue number.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The driver's counters of this queue.
    pub fn stats(&self) -> TxQueueStats {
        self.stats
    }

    /// Ring size in descriptors.
    pub fn ring_size(&self) -> usize {
        self.ring.size()
    }

    /// The longest one-buffer frame this queue sends.
    pub fn max_one_segment(&self) -> usize {
        self.one_max
    }

    /// Data descriptors (segments) the chip takes per packet.
    pub fn max_segments(&self) -> usize {
        self.limits.max_segments
    }

    /// Bytes one segment may carry.
    pub fn max_segment_len(&self) -> usize {
        self.limits.max_segment_len
    }

    /// TDH as the device reports it, checked against the ring: an index
    /// outside the ring is [`NicError::DeviceMisbehaved`], all ones from a
    /// device that reads all ones everywhere [`NicError::DeviceRemoved`].
    pub fn device_head(&self) -> Result<usize, NicError> {
        self.qregs
            .read_head(&*self.regs, "TDH", self.queue, self.ring.size())
    }

    /// Wait until every queued packet has been sent and reclaimed, up to
    /// `timeout`; returns whether the queue drained.
    pub fn flush(&mut self, timeout: Duration) -> bool {
        super::setup::wait_until(timeout, || {
            self.clean();
            self.used == 0
        })
    }

    /// Wait until every queued packet has been sent and reclaimed, for as
    /// long as the device keeps sending: false once it has sent nothing
    /// for `stall` (a peer holding transmission with flow control may take
    /// a while; one that is gone never takes the rest).
    pub fn drain(&mut self, stall: Duration) -> bool {
        loop {
            let before = self.used;
            if self.flush(stall) {
                return true;
            }
            if self.used >= before {
                return false;
            }
        }
    }

    /// IOVA of header slot `i`, if the queue has a header area.
    #[cfg(test)]
    pub(crate) fn header_slot_iova(&self, i: usize) -> Option<u64> {
        self.headers.as_ref().map(|a| a.slot_iova(i))
    }

    #[cfg(test)]
    pub(crate) fn indices(&self) -> (usize, usize, usize, Vec<u16>) {
        (
            self.next_clean,
            self.next_use,
            self.used,
            self.rs_marks.iter().map(|m| m as u16).collect(),
        )
    }
}

impl<R: RegisterAccess> Drop for TxQueue<R> {
    /// Let the device finish what is queued (briefly), stop the queue, and
    /// once the device confirms, take the buffers back. Buffers the device
    /// may still read are quarantined by their pool, never reused.
    fn drop(&mut self) {
        self.flush(Duration::from_millis(100));
        let ctl = self.regs.read32(self.qregs.ctl);
        self.regs.write32(self.qregs.ctl, ctl & !self.qregs.enable);
        let stopped = super::setup::wait_until(Duration::from_millis(100), || {
            self.regs.read32(self.qregs.ctl) & self.qregs.enable == 0
        });
        let pools = &self.index_pools[..];
        for (slot, dev) in self.slots.iter_mut().zip(self.devs.iter_mut()) {
            match (dev.take(), stopped) {
                (Some(dev), true) => send_home(pools, dev),
                (Some(dev), false) => {
                    if let Some(p) = pools.iter().find(|p| p.owns_device(&dev)) {
                        let _ = p.quarantine_device(dev);
                    }
                }
                (None, _) => {}
            }
            match (slot.take(), stopped) {
                (Some(dev), true) => drop(dev.reclaim()),
                // Quarantined by its pool when dropped.
                (Some(dev), false) => drop(dev),
                (None, _) => {}
            }
        }
        if let Some(area) = self.headers.take() {
            let mem = area.into_buf();
            if !stopped {
                // Quarantined by its pool: the device may still read it.
                drop(mem.into_device());
            }
        }
    }
}

/// Where [`TxQueue::clean_with`] puts the buffers of sent descriptors.
trait Sink {
    /// A CPU buffer that was handed over.
    fn buf(&mut self, buf: Buf);
    /// Take what it can of the buffers passed on as indices, leaving the
    /// rest in their slots; returns how many it left.
    fn devices(&mut self, slots: &mut [Option<DeviceIndex>]) -> usize;
}

/// Every buffer to its own pool's shared free list.
struct Home;

impl Sink for Home {
    #[inline(always)]
    fn buf(&mut self, buf: Buf) {
        drop(buf)
    }
    #[inline(always)]
    fn devices(&mut self, slots: &mut [Option<DeviceIndex>]) -> usize {
        // All of them, for the slow pass (rare: only draining and tests
        // clean forwarded buffers without their RX cache at hand); none
        // for a queue that sends CPU buffers only (a sender of its own
        // reads, [`TxQueue::clean_sent`]).
        slots.iter().filter(|s| s.is_some()).count()
    }
}

/// Buffers of the RX queue's pool back into its ring or cache, others home.
impl<R: RegisterAccess> Sink for RxQueue<R> {
    #[inline(always)]
    fn buf(&mut self, buf: Buf) {
        self.recycle(buf)
    }
    #[inline(always)]
    fn devices(&mut self, slots: &mut [Option<DeviceIndex>]) -> usize {
        self.repost(slots)
    }
}

/// Buffers of the cache's pool into the cache, others home.
impl Sink for PoolCache {
    #[inline(always)]
    fn buf(&mut self, buf: Buf) {
        self.free(buf)
    }
    #[inline(always)]
    fn devices(&mut self, slots: &mut [Option<DeviceIndex>]) -> usize {
        self.free_devices(slots)
    }
}

/// Write a one-descriptor frame of `len` bytes at `iova` into `d`, without
/// RS.
#[inline(always)]
fn fill(d: super::ring::Desc<'_>, iova: u64, len: usize, popts: u32) {
    d.write_u64(ADDR, iova);
    let cmd = data_cmd(len as u32, true);
    d.write_u64(CMD_TYPE_LEN, data_hi(cmd, data_olinfo(len as u32, popts)));
}

/// One frame of [`TxBatch::push_cut`] at descriptors `i` and `i + 1`:
/// its header into slot `i` by `header(slot, len)`, then the header
/// descriptor and the payload descriptor (`len` bytes at `at`) with the
/// words `(head, payload)` (dwords 2 and 3 of each). Nothing is written
/// if the header fails.
#[inline(always)]
fn cut_frame<E>(
    ring: super::ring::RingView<'_>,
    view: &mut super::headers::AreaView<'_>,
    i: usize,
    at: u64,
    len: usize,
    (head, payload): (u64, u64),
    header: &mut impl FnMut(HeaderSlot<'_>, usize) -> Result<(), E>,
) -> Result<(), E> {
    let (slot, head_iova) = view.slot(i);
    header(slot, len)?;
    let h = ring.desc(i);
    h.write_u64(ADDR, head_iova);
    h.write_u64(CMD_TYPE_LEN, head);
    let d = ring.desc(i + 1);
    d.write_u64(ADDR, at);
    d.write_u64(CMD_TYPE_LEN, payload);
    Ok(())
}

/// Return a sent buffer held as an index to its pool's shared free list.
/// Its pool is always in `pools` (a queue takes indices only of pools it
/// accepted); were it not, the buffer would simply never be reused.
#[cold]
fn send_home(pools: &[Pool], dev: DeviceIndex) {
    if let Some(p) = pools.iter().find(|p| p.owns_device(&dev)) {
        let _ = p.reclaim_device(dev, 0).map(drop);
    }
}

/// Why a [`TxBatch`] push did not take a frame.
#[derive(Debug)]
pub enum PushError {
    /// The ring has no room for it now (try again after the device has
    /// sent more).
    Full,
    /// The chip cannot send it (a segment is empty or too long, too many
    /// segments, the frame is too long, or the offload lengths are
    /// impossible).
    Invalid(NicError),
}

/// Why [`TxBatch::push_cut`] stopped before the end of its payload.
#[derive(Debug)]
pub enum CutError<E> {
    /// The chip cannot send a frame of it (see [`PushError::Invalid`]).
    Invalid(NicError),
    /// The header callback failed.
    Header(E),
}

/// Frames put on a TX ring, the one way to send ([`TxQueue::batch`]): each
/// push writes a frame's descriptors straight into the ring, so a sender
/// can build each frame just before it is queued, with no list of packets
/// in between. The device sees nothing until [`TxBatch::commit`] writes the
/// tail register, once for the whole batch (dropping the batch commits
/// too, as a fallback).
///
/// Every push checks the frame once (one length check: segment count,
/// each segment's length, the frame's length), then the offload, then the
/// room: a refused frame comes back unchanged with the reason, and nothing
/// of it is in the ring. Short of room, a batch cleans the ring once.
///
/// To learn when a frame has been sent, tag it ([`TxBatch::tag_last`]):
/// [`TxQueue::clean_tagged`] hands the tag back once the device is done
/// with the frame's descriptors.
pub struct TxBatch<'q, R: RegisterAccess> {
    q: &'q mut TxQueue<R>,
    b: Batch,
    cleaned: bool,
}

impl<R: RegisterAccess> TxBatch<'_, R> {
    /// Frames pushed so far in this batch.
    pub fn sent(&self) -> usize {
        self.b.sent
    }

    /// Whether `need` descriptors are free, cleaning the ring once per
    /// batch if they are not.
    #[inline(always)]
    fn room(&mut self, need: usize) -> bool {
        if self.q.free_descriptors() >= need {
            return true;
        }
        if !self.cleaned {
            self.cleaned = true;
            self.q.clean();
        }
        self.q.free_descriptors() >= need
    }

    /// Whether a two-segment frame fits now, with a context descriptor
    /// (counted whether or not one is needed: one test, no comparison of
    /// offloads per frame), cleaning the ring once per batch if it is
    /// short of room.
    #[inline(always)]
    pub fn has_room_for_pair(&mut self) -> bool {
        self.room(3)
    }

    /// Check a frame of `segs` segments of `lens` bytes with `offload`
    /// before any of it is written: `(frame length, whether a context
    /// descriptor goes first)`.
    #[inline(always)]
    fn admit<I>(
        &mut self,
        segs: usize,
        lens: I,
        offload: Offload,
    ) -> Result<(usize, bool), PushError>
    where
        I: IntoIterator<Item = usize> + Clone,
    {
        let total = self
            .q
            .limits
            .check(segs, lens)
            .map_err(PushError::Invalid)?;
        let need_ctx = offload != Offload::None && offload != self.q.ctx;
        if need_ctx {
            check_offload(offload).map_err(PushError::Invalid)?;
        }
        if !self.room(segs + need_ctx as usize) {
            return Err(PushError::Full);
        }
        Ok((total, need_ctx))
    }

    /// Queue a frame of one buffer with no offload (e.g. a frame built
    /// whole by the CPU, or one passed on from an RX queue). On error the
    /// buffer comes back unchanged.
    #[inline(always)]
    pub fn push_buf(&mut self, buf: Buf) -> Result<(), (PushError, Buf)> {
        self.push_one(buf, Offload::None)
    }

    /// Queue a frame of one buffer with `offload`.
    #[inline(always)]
    fn push_one(&mut self, buf: Buf, offload: Offload) -> Result<(), (PushError, Buf)> {
        let (total, need_ctx) = match self.admit(1, [buf.len()], offload) {
            Ok(x) => x,
            Err(e) => return Err((e, buf)),
        };
        let q = &mut *self.q;
        let mut i = q.next_use;
        if need_ctx {
            i = q.put_context(i, offload);
        }
        let need = 1 + need_ctx as usize;
        let rs = self.b.since_rs + need >= RS_EVERY;
        q.put(i, buf, true, rs, data_olinfo(total as u32, popts(offload)));
        q.after_packet(i, rs, need, &mut self.b);
        Ok(())
    }

    /// Queue a frame of two segments, `head` then `tail` (e.g. a header
    /// built by the CPU and a payload the CPU never touched), with
    /// `offload`. On error both buffers come back unchanged.
    #[inline(always)]
    pub fn push_pair(
        &mut self,
        head: Buf,
        tail: Buf,
        offload: Offload,
    ) -> Result<(), (PushError, Buf, Buf)> {
        let (total, need_ctx) = match self.admit(2, [head.len(), tail.len()], offload) {
            Ok(x) => x,
            Err(e) => return Err((e, head, tail)),
        };
        let q = &mut *self.q;
        let mut i = q.next_use;
        if need_ctx {
            i = q.put_context(i, offload);
        }
        let need = 2 + need_ctx as usize;
        let rs = self.b.since_rs + need >= RS_EVERY;
        let olinfo = data_olinfo(total as u32, popts(offload));
        q.put(i, head, false, false, olinfo);
        i = (i + 1) & q.ring.mask();
        q.put(i, tail, true, rs, olinfo);
        q.after_packet(i, rs, need, &mut self.b);
        Ok(())
    }

    /// Queue frames cut from `payload`, in order, for as long as the ring
    /// has room: each a header of `header_len` bytes in the queue's header
    /// area ([`TxQueue::add_header_area`]), written by `header(slot, len)`
    /// into the slot's first `header_len` bytes
    /// just before its frame goes in (`len`: the frame's payload bytes),
    /// then the next at most `piece` bytes of `payload`, with `offload`.
    ///
    /// The header of the frame whose header descriptor is ring index `i`
    /// goes into slot `i`, which still holds what was last written there
    /// and the stamp its writer left ([`HeaderSlot`]): a writer that finds
    /// its own stamp patches only what changes. No header buffer is
    /// allocated, and cleanup has nothing to give back for it.
    ///
    /// The payload buffer goes with the descriptor of the last piece
    /// queued; the descriptors of the pieces before it point into it and
    /// hold nothing. Descriptors complete, and are cleaned, in ring order
    /// (transmit chapters §7.2 of both datasheets), so the buffer stays
    /// the ring's until every piece has been read: no reference count, no
    /// buffer handle per frame.
    ///
    /// Checked once for the run, not per frame: the lengths (the header
    /// and the first, longest piece), the offload, and the room (frames
    /// that fit, cleaning the ring once per batch if all do not).
    ///
    /// `Ok(None)`: all of `payload` is queued. `Ok(Some(rest))`: the ring
    /// filled; `rest` is the bytes not queued (all of `payload` if no frame
    /// went in), to push later. On error, what was queued goes out and the
    /// rest of `payload` is given up (it returns to its pool once the
    /// queued pieces are sent); nothing of the frame whose header failed
    /// is queued.
    #[inline(always)]
    pub fn push_cut<E>(
        &mut self,
        payload: Buf,
        piece: usize,
        header_len: usize,
        offload: Offload,
        header: impl FnMut(HeaderSlot<'_>, usize) -> Result<(), E>,
    ) -> Result<Option<Buf>, CutError<E>> {
        let Some(mut area) = self.q.headers.take() else {
            return Err(CutError::Invalid(NicError::NoHeaderArea));
        };
        let r = self.cut(&mut area, payload, piece, header_len, offload, header);
        self.q.headers = Some(area);
        r
    }

    /// [`Self::push_cut`] with the header area taken out of the queue.
    #[inline(always)]
    fn cut<E>(
        &mut self,
        area: &mut HeaderArea,
        mut payload: Buf,
        piece: usize,
        header_len: usize,
        offload: Offload,
        mut header: impl FnMut(HeaderSlot<'_>, usize) -> Result<(), E>,
    ) -> Result<Option<Buf>, CutError<E>> {
        let total = payload.len();
        if piece == 0 || total == 0 {
            return Err(CutError::Invalid(NicError::EmptySegment));
        }
        if header_len > HEADER_SLOT {
            return Err(CutError::Invalid(NicError::SegmentTooLarge {
                len: header_len,
                max: HEADER_SLOT,
            }));
        }
        // Every frame is a header and a piece no longer than the first
        // (only the last may be shorter, and none is empty): one check.
        let first = piece.min(total);
        let (_, need_ctx) = match self.admit_run(header_len, first, offload) {
            Ok(x) => x,
            Err(e) => return Err(CutError::Invalid(e)),
        };
        let ctx = need_ctx as usize;
        let frames = total.div_ceil(piece);
        let fit = self.fit(ctx, frames);
        if fit == 0 {
            return Ok(Some(payload));
        }
        let q = &mut *self.q;
        let ring = q.ring.view();
        let mask = ring.mask();
        let iova = payload.iova();
        let popts = popts(offload);
        let head_cmd = data_cmd(header_len as u32, false);
        let start = q.next_use;
        let first = (start + ctx) & mask;
        // Slots indexed with the ring's own mask: one index per frame.
        let mut view = area.view(mask);
        // Frames of `piece` bytes, then the shorter last one if it fits
        // (only when all the others do): the descriptor words of each
        // shape worked out once, so that a frame is its header and four
        // stores. RS is added after the run (below), not tested per frame.
        let whole = (total / piece).min(fit);
        let olinfo = data_olinfo((header_len + piece) as u32, popts);
        let words = (
            data_hi(head_cmd, olinfo),
            data_hi(data_cmd(piece as u32, true), olinfo),
        );
        // `i` goes unmasked (the ring and the slots mask it), and the loop
        // runs on the payload address: one counter less to keep.
        let mut i = first;
        let mut at = iova;
        let stop = iova + (whole * piece) as u64;
        let mut result = Ok(());
        while at != stop {
            if let Err(e) = cut_frame(ring, &mut view, i, at, piece, words, &mut header) {
                result = Err(CutError::Header(e));
                break;
            }
            i += 2;
            at += piece as u64;
        }
        let mut sent = (i - first) / 2;
        if sent < fit && result.is_ok() {
            let len = total - whole * piece;
            let olinfo = data_olinfo((header_len + len) as u32, popts);
            let words = (
                data_hi(head_cmd, olinfo),
                data_hi(data_cmd(len as u32, true), olinfo),
            );
            match cut_frame(ring, &mut view, i, at, len, words, &mut header) {
                Ok(()) => {
                    i += 2;
                    at += len as u64;
                    sent += 1;
                }
                Err(e) => result = Err(CutError::Header(e)),
            }
        }
        if sent == 0 {
            // The first header failed: nothing written that counts (not
            // even the context, which goes with the first frame).
            return match result {
                Ok(()) => Ok(Some(payload)),
                Err(e) => Err(e),
            };
        }
        // RS on the payload descriptor of each frame that brings the
        // descriptors since the last RS to [`RS_EVERY`] or more, as a
        // frame at a time would have it: the frames up to the next such
        // one, `step` of them, are jumped over at once.
        let mut since = self.b.since_rs + ctx;
        let mut k = 0;
        loop {
            let step = RS_EVERY.saturating_sub(since).div_ceil(2).max(1);
            if sent - k < step {
                since += 2 * (sent - k);
                break;
            }
            k += step;
            q.set_rs((first + 2 * k - 1) & mask);
            since = 0;
        }
        if need_ctx {
            q.put_context(start, offload);
        }
        self.b.since_rs = since;
        self.b.sent += sent;
        q.used += ctx + 2 * sent;
        q.next_use = i & mask;
        let last = i.wrapping_sub(1) & mask;
        let off = (at - iova) as usize;
        let rest = (off < total).then(|| payload.split_off(off));
        q.hold(last, payload);
        match result {
            Ok(()) => Ok(rest),
            Err(e) => Err(e),
        }
    }

    /// The checks of [`Self::admit`] for a run of frames of a header of
    /// `header_len` bytes and a piece of at most `piece` bytes:
    /// `(frame length, whether a context descriptor goes first)`.
    #[inline(always)]
    fn admit_run(
        &mut self,
        header_len: usize,
        piece: usize,
        offload: Offload,
    ) -> Result<(usize, bool), NicError> {
        let total = self.q.limits.check(2, [header_len, piece])?;
        let need_ctx = offload != Offload::None && offload != self.q.ctx;
        if need_ctx {
            check_offload(offload)?;
        }
        Ok((total, need_ctx))
    }

    /// How many of `frames` two-descriptor frames (after `ctx` context
    /// descriptors) fit now, cleaning the ring once per batch if not all
    /// do.
    #[inline(always)]
    fn fit(&mut self, ctx: usize, frames: usize) -> usize {
        let mut free = self.q.free_descriptors();
        if free < ctx + 2 * frames && !self.cleaned {
            self.cleaned = true;
            self.q.clean();
            free = self.q.free_descriptors();
        }
        (free.saturating_sub(ctx) / 2).min(frames)
    }

    /// Queue a packet of any shape ([`TxPacket`]: one, two or more
    /// segments, and its offload). On error the packet comes back.
    pub fn push(&mut self, pkt: TxPacket) -> Result<(), (PushError, TxPacket)> {
        let TxPacket { segs, offload } = pkt;
        match segs {
            Segments::One([buf]) => self
                .push_one(buf, offload)
                .map_err(|(e, b)| (e, TxPacket::new(b).with_offload(offload))),
            Segments::Two([h, t]) => self
                .push_pair(h, t, offload)
                .map_err(|(e, h, t)| (e, TxPacket::header_payload(h, t).with_offload(offload))),
            Segments::Many(v) => self.push_many(v, offload),
        }
    }

    /// Queue a packet of any number of segments (the general case).
    #[inline(never)]
    fn push_many(&mut self, segs: Vec<Buf>, offload: Offload) -> Result<(), (PushError, TxPacket)> {
        let lens = segs.iter().map(Buf::len);
        let (total, need_ctx) = match self.admit(segs.len(), lens, offload) {
            Ok(x) => x,
            Err(e) => {
                let p = TxPacket {
                    segs: Segments::Many(segs),
                    offload,
                };
                return Err((e, p));
            }
        };
        let q = &mut *self.q;
        let mask = q.ring.mask();
        let mut i = q.next_use;
        if need_ctx {
            i = q.put_context(i, offload);
        }
        let need = segs.len() + need_ctx as usize;
        let rs = self.b.since_rs + need >= RS_EVERY;
        let olinfo = data_olinfo(total as u32, popts(offload));
        let n = segs.len();
        for (k, buf) in segs.into_iter().enumerate() {
            let eop = k + 1 == n;
            q.put(i, buf, eop, eop && rs, olinfo);
            if !eop {
                i = (i + 1) & mask;
            }
        }
        q.after_packet(i, rs, need, &mut self.b);
        Ok(())
    }

    /// Tag the frame pushed last in this batch: once the device has sent
    /// it, [`TxQueue::clean_tagged`] hands `tag` back (tags come back in
    /// the order their frames were pushed). False, and nothing tagged, if
    /// this batch has pushed no frame.
    #[inline(always)]
    pub fn tag_last(&mut self, tag: u64) -> bool {
        if self.b.sent == 0 {
            return false;
        }
        // The frame's last descriptor, counted over the queue's life: it
        // is done once that many have been cleaned.
        let q = &mut *self.q;
        q.tags.push_back((q.stats.cleaned + q.used as u64, tag));
        true
    }

    /// End the batch: RS on its last frame and one tail write, so the
    /// device sees every frame pushed. Returns the frames pushed.
    #[inline(always)]
    pub fn commit(mut self) -> usize {
        self.close()
    }

    /// See [`Self::commit`]; a second call does nothing.
    #[inline(always)]
    fn close(&mut self) -> usize {
        let sent = self.b.sent;
        self.q.finish(&self.b);
        self.b = Batch::new();
        sent
    }
}

impl<R: RegisterAccess> Drop for TxBatch<'_, R> {
    /// A batch not committed is committed here: frames pushed into the
    /// ring are never left invisible to the device.
    fn drop(&mut self) {
        self.close();
    }
}
