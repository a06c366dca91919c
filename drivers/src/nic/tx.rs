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
use super::offload::Offload;
use super::ring::{distance, place, put_slot, DescRing, QueueRegs};
use super::rx::{Frame, RxQueue};
use crate::regs::RegisterAccess;
use dma::{Buf, DeviceBuf, DeviceIndex, Pool, PoolCache};
use spec::nic::adv_desc::tx::{cmd_type_len, olinfo, ADDR, CMD_TYPE_LEN, WB_STATUS};
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

impl TxPacket {
    /// The buffer and offload if this is a one-segment packet that needs no
    /// context other than `ctx`; else the packet back.
    #[inline(always)]
    fn one(self, ctx: Offload) -> Result<(Buf, Offload), TxPacket> {
        let TxPacket { segs, offload } = self;
        match segs {
            Segments::One([buf]) if offload == Offload::None || offload == ctx => {
                Ok((buf, offload))
            }
            segs => Err(TxPacket { segs, offload }),
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
    /// Descriptors in flight that hold a `slots` buffer: cleanup looks at
    /// `slots` only when some do.
    bufs_in_flight: usize,
    rs_marks: Marks,
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
            bufs_in_flight: 0,
            rs_marks: Marks::new(size),
            next_use: 0,
            next_clean: 0,
            used: 0,
            ctx: Offload::None,
            one_max: limits.max_segment_len.min(limits.max_frame),
            limits,
            qregs,
            queue,
            stats: TxQueueStats::default(),
            ring,
        }
    }

    /// Check one packet against the chip's limits; `Ok(frame length)`.
    fn check(&self, pkt: &TxPacket) -> Result<usize, NicError> {
        let segs = pkt.segments();
        if segs.len() > self.limits.max_segments {
            return Err(NicError::TooManySegments {
                segments: segs.len(),
                max: self.limits.max_segments,
            });
        }
        let mut total = 0;
        for s in segs {
            let l = s.len();
            if l == 0 {
                return Err(NicError::EmptySegment);
            }
            if l > self.limits.max_segment_len {
                return Err(NicError::SegmentTooLarge {
                    len: l,
                    max: self.limits.max_segment_len,
                });
            }
            total += l;
        }
        if total == 0 {
            return Err(NicError::EmptySegment);
        }
        if total > self.limits.max_frame {
            return Err(NicError::FrameTooLarge {
                len: total,
                max: self.limits.max_frame,
            });
        }
        Ok(total)
    }

    /// Queue as many packets from the front of `pkts` as fit in the ring
    /// (cleaning first if short of room), remove them from `pkts`, and write
    /// the tail once. Each packet takes one data descriptor per segment, EOP
    /// on the last, plus a context descriptor when its offload differs from
    /// the one loaded. Returns the number of packets sent; the rest stay in
    /// `pkts`, in order.
    ///
    /// A packet the chip cannot send (too many segments, an empty or too
    /// long segment, a frame beyond [`super::port::Nic::max_frame`], impossible
    /// offload lengths) stops the batch: the packets before it are sent, it
    /// stays at the front of `pkts` (remove it to drop it) and its error is
    /// returned.
    pub fn tx_batch(&mut self, pkts: &mut Vec<TxPacket>) -> Result<usize, NicError> {
        // Plan: how many packets from the front are valid and fit.
        let mut free = self.free_descriptors();
        let mut cleaned = false;
        let mut planned = 0;
        let mut ctx = self.ctx;
        let mut n = 0;
        let mut result = Ok(());
        for p in pkts.iter() {
            let (need, new_ctx) = match self.plan(p, ctx) {
                Ok(x) => x,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if need > free {
                if cleaned {
                    break;
                }
                self.clean();
                cleaned = true;
                free = self.free_descriptors() - planned;
                if need > free {
                    break;
                }
            }
            free -= need;
            planned += need;
            if let Some(c) = new_ctx {
                ctx = c;
            }
            n += 1;
        }
        // Write them.
        let mut b = Batch::new();
        self.put_items(pkts.drain(..n), &mut b);
        self.finish(&b);
        result.map(|()| n)
    }

    /// Queue frames of one buffer each, without offload: the forwarding
    /// fast path (no per-packet wrapper). Sent buffers are removed from the
    /// front of `bufs`. Same rules as [`Self::tx_batch`]: stops at the first
    /// buffer that is empty or longer than [`super::port::Nic::max_frame`] (left at
    /// the front) with its error.
    pub fn tx_bufs(&mut self, bufs: &mut Vec<Buf>) -> Result<usize, NicError> {
        if self.free_descriptors() < bufs.len() {
            self.clean();
        }
        let one_max = self.one_max;
        let room = self.free_descriptors();
        // Checked as far as the ring has room, and one more: a bad buffer
        // right after what fits is reported now (it is next); one further
        // back waits for a later call.
        let bad = bufs[..bufs.len().min(room + 1)]
            .iter()
            .position(|b| b.len().wrapping_sub(1) >= one_max);
        let n = bad.unwrap_or(bufs.len()).min(room);
        if n > 0 {
            let mut b = Batch::new();
            self.write_run(&mut b, |w| {
                for buf in bufs.drain(..n) {
                    // Cannot fail: length checked, room for n.
                    let r = w.push(buf, 0);
                    debug_assert!(r.is_ok());
                }
            });
            self.finish(&b);
        }
        if bad.is_some() {
            // The invalid buffer is now first; it stays.
            return Err(self.length_error(bufs[0].len()));
        }
        Ok(n)
    }

    /// Start writing packets one at a time straight into the ring, with no
    /// intermediate list: see [`TxBatch`]. The tail is written once, when
    /// the batch ends.
    #[inline]
    pub fn batch(&mut self) -> TxBatch<'_, R> {
        TxBatch {
            q: self,
            b: Batch::new(),
            cleaned: false,
        }
    }

    /// Run `f` with a writer of one-buffer frames, then take what it
    /// wrote into batch `b` ([`Self::absorb_run`]). The writer holds a copy
    /// of the ring state (so a loop that pushes keeps it in registers),
    /// which goes back into the queue when `f` returns. [`Self::tx_bufs`]
    /// and [`Self::tx_batch`]'s runs of one-buffer packets.
    #[inline(always)]
    fn write_run<T>(&mut self, b: &mut Batch, f: impl FnOnce(&mut TxWriter<'_>) -> T) -> T {
        let start = self.next_use;
        let mut w = self.writer();
        let out = f(&mut w);
        // Every frame the writer writes is a CPU buffer.
        let n = w.written(start);
        self.bufs_in_flight += n;
        self.absorb_run(start, n, b);
        out
    }

    /// A writer of one-descriptor frames from `next_use` up to the last
    /// free descriptor.
    #[inline(always)]
    fn writer(&mut self) -> TxWriter<'_> {
        let mask = self.ring.mask();
        let room = self.ring.size() - 1 - self.used;
        TxWriter {
            ring: self.ring.view(),
            mask,
            slots: &mut self.slots[..=mask],
            devs: &self.devs[..=mask],
            one_max: self.one_max,
            next_use: self.next_use,
            end: (self.next_use + room) & mask,
        }
    }

    /// Take `n` one-descriptor frames a [`TxWriter`] wrote from `start`
    /// into batch `b`: RS on every [`RS_EVERY`]th descriptor counted over
    /// the batch (set now, so the writer's loop has no RS test), ring and
    /// batch state forward.
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

    /// Descriptors `p` needs and the context it loads, after checking it.
    #[inline(always)]
    fn plan(&self, p: &TxPacket, ctx: Offload) -> Result<(usize, Option<Offload>), NicError> {
        let same_ctx = p.offload == Offload::None || p.offload == ctx;
        if let Segments::One([buf]) = &p.segs {
            if same_ctx && buf.len().wrapping_sub(1) < self.one_max {
                return Ok((1, None));
            }
        }
        self.plan_general(p, same_ctx)
    }

    #[inline(never)]
    fn plan_general(
        &self,
        p: &TxPacket,
        same_ctx: bool,
    ) -> Result<(usize, Option<Offload>), NicError> {
        self.check(p)?;
        let segs = p.segments().len();
        if same_ctx {
            return Ok((segs, None));
        }
        check_offload(p.offload)?;
        Ok((segs + 1, Some(p.offload)))
    }

    /// The error for a one-buffer frame of `len` bytes that failed the fast check.
    #[cold]
    fn length_error(&self, len: usize) -> NicError {
        if len == 0 {
            NicError::EmptySegment
        } else if len > self.limits.max_frame {
            NicError::FrameTooLarge {
                len,
                max: self.limits.max_frame,
            }
        } else {
            NicError::SegmentTooLarge {
                len,
                max: self.limits.max_segment_len,
            }
        }
    }

    /// Write planned items: runs of one-buffer packets through a
    /// [`TxWriter`], the others one by one.
    #[inline(always)]
    fn put_items(&mut self, mut items: impl Iterator<Item = TxPacket>, b: &mut Batch) {
        loop {
            let ctx = self.ctx;
            let slow = self.write_run(b, |w| {
                for item in items.by_ref() {
                    match item.one(ctx) {
                        Ok((buf, offload)) => {
                            // Cannot fail: planned (length checked, room counted).
                            let r = w.push(buf, popts(offload));
                            debug_assert!(r.is_ok());
                        }
                        Err(pkt) => return Some(pkt),
                    }
                }
                None
            });
            match slow {
                Some(pkt) => self.put_packet(pkt, b),
                None => break,
            }
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

    /// The general case of a planned packet: several segments and/or a
    /// context descriptor first.
    #[inline(never)]
    fn put_packet(&mut self, pkt: TxPacket, b: &mut Batch) {
        let offload = pkt.offload;
        let need_ctx = offload != Offload::None && offload != self.ctx;
        let total = pkt.len();
        let need = pkt.segments().len() + need_ctx as usize;
        let mask = self.ring.mask();
        let mut i = self.next_use;
        if need_ctx {
            i = self.put_context(i, offload);
        }
        let rs = b.since_rs + need >= RS_EVERY;
        let olinfo = data_olinfo(total as u32, popts(offload));
        // The one- and two-segment shapes without a Vec.
        match pkt.segs {
            Segments::One([buf]) => self.put(i, buf, true, rs, olinfo),
            Segments::Two([head, tail]) => {
                self.put(i, head, false, false, olinfo);
                i = (i + 1) & mask;
                self.put(i, tail, true, rs, olinfo)
            }
            Segments::Many(segs) => {
                let n = segs.len();
                for (k, buf) in segs.into_iter().enumerate() {
                    let eop = k + 1 == n;
                    self.put(i, buf, eop, eop && rs, olinfo);
                    if !eop {
                        i = (i + 1) & mask;
                    }
                }
            }
        }
        self.after_packet(i, rs, need, b);
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
        self.bufs_in_flight += 1;
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

    /// Hand the buffers of finished descriptors `range` to `sink`: the
    /// forwarded ones (indices) in one pass, then, only if any descriptor
    /// in flight holds a CPU buffer or the sink left an index, the rest.
    #[inline(always)]
    fn release(&mut self, range: std::ops::Range<usize>, sink: &mut impl Sink) {
        let left = sink.devices(&mut self.devs[range.clone()]);
        if left == 0 && self.bufs_in_flight == 0 {
            return;
        }
        for i in range {
            if let Some(dev) = self.devs[i].take() {
                send_home(&self.index_pools, dev);
            }
            if let Some(dev) = self.slots[i].take() {
                self.bufs_in_flight -= 1;
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
        // clean forwarded buffers without their RX cache at hand).
        slots.len()
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

/// Return a sent buffer held as an index to its pool's shared free list.
/// Its pool is always in `pools` (a queue takes indices only of pools it
/// accepted); were it not, the buffer would simply never be reused.
#[cold]
fn send_home(pools: &[Pool], dev: DeviceIndex) {
    if let Some(p) = pools.iter().find(|p| p.owns_device(&dev)) {
        let _ = p.reclaim_device(dev, 0).map(drop);
    }
}

/// Why [`TxBatch::push_pair`] did not take a packet.
#[derive(Debug)]
pub enum PushError {
    /// The ring has no room for it now (try again after the device has
    /// sent more).
    Full,
    /// The chip cannot send it (a segment is empty or too long, the frame
    /// is too long, or the offload lengths are impossible).
    Invalid(NicError),
}

/// Packets written into a TX queue one at a time ([`TxQueue::batch`]), so
/// a sender can build each packet just before it is queued: no list of
/// packets in between. The tail register is written once, when the batch
/// is dropped; packets before it are invisible to the device.
pub struct TxBatch<'q, R: RegisterAccess> {
    q: &'q mut TxQueue<R>,
    b: Batch,
    cleaned: bool,
}

impl<R: RegisterAccess> TxBatch<'_, R> {
    /// Packets queued so far in this batch.
    pub fn sent(&self) -> usize {
        self.b.sent
    }

    /// Descriptors the queue has taken since it was created (cleaned +
    /// in flight): a read whose last descriptor is number `k` is sent once
    /// [`TxQueueStats::cleaned`] reaches `k`.
    pub fn descriptors_total(&self) -> u64 {
        self.q.stats.cleaned + self.q.used as u64
    }

    /// Whether a two-segment packet fits now, with a context descriptor
    /// (counted whether or not one is needed: one test, no comparison of
    /// offloads per frame), cleaning the ring once per batch if it is
    /// short of room.
    #[inline(always)]
    pub fn has_room_for_pair(&mut self) -> bool {
        let need = 3;
        if self.q.free_descriptors() >= need {
            return true;
        }
        if !self.cleaned {
            self.cleaned = true;
            self.q.clean();
        }
        self.q.free_descriptors() >= need
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
        let q = &mut *self.q;
        let (h, t) = (head.len(), tail.len());
        let seg_max = q.limits.max_segment_len;
        if h.wrapping_sub(1) >= seg_max
            || t.wrapping_sub(1) >= seg_max
            || h + t > q.limits.max_frame
        {
            let e = if h == 0 || t == 0 {
                NicError::EmptySegment
            } else if h + t > q.limits.max_frame {
                NicError::FrameTooLarge {
                    len: h + t,
                    max: q.limits.max_frame,
                }
            } else {
                NicError::SegmentTooLarge {
                    len: h.max(t),
                    max: seg_max,
                }
            };
            return Err((PushError::Invalid(e), head, tail));
        }
        if q.limits.max_segments < 2 {
            let e = NicError::TooManySegments {
                segments: 2,
                max: q.limits.max_segments,
            };
            return Err((PushError::Invalid(e), head, tail));
        }
        let need_ctx = offload != Offload::None && offload != q.ctx;
        if need_ctx {
            if let Err(e) = check_offload(offload) {
                return Err((PushError::Invalid(e), head, tail));
            }
        }
        let need = 2 + need_ctx as usize;
        if q.free_descriptors() < need {
            return Err((PushError::Full, head, tail));
        }
        let mask = q.ring.mask();
        let mut i = q.next_use;
        if need_ctx {
            i = q.put_context(i, offload);
        }
        let rs = self.b.since_rs + need >= RS_EVERY;
        let olinfo = data_olinfo((h + t) as u32, popts(offload));
        q.put(i, head, false, false, olinfo);
        i = (i + 1) & mask;
        q.put(i, tail, true, rs, olinfo);
        q.after_packet(i, rs, need, &mut self.b);
        Ok(())
    }
}

impl<R: RegisterAccess> Drop for TxBatch<'_, R> {
    fn drop(&mut self) {
        self.q.finish(&self.b);
    }
}

/// See [`TxQueue::write_run`]: writes frames of one descriptor each from
/// the queue's `next_use` on, with no RS (the queue adds RS where due when
/// the writer is done, [`TxQueue::absorb_run`]).
pub(crate) struct TxWriter<'q> {
    ring: super::ring::RingView<'q>,
    mask: usize,
    slots: &'q mut [Option<DeviceBuf>],
    /// Only to check that a descriptor holds one buffer, not two.
    devs: &'q [Option<DeviceIndex>],
    one_max: usize,
    next_use: usize,
    /// The first descriptor the writer may not use (the ring is full when
    /// `next_use` reaches it).
    end: usize,
}

impl TxWriter<'_> {
    /// Queue `buf` as a frame with checksum options `popts` (0, or those
    /// of the queue's loaded context); it comes back if it is empty, longer
    /// than one descriptor sends, or the ring is full.
    #[inline(always)]
    pub(crate) fn push(&mut self, buf: Buf, popts: u32) -> Result<(), Buf> {
        let i = self.next_use;
        let len = buf.len();
        if len.wrapping_sub(1) >= self.one_max || i == self.end {
            return Err(buf);
        }
        fill(self.ring.desc(i), buf.iova(), len, popts);
        debug_assert!(self.devs[i & self.mask].is_none());
        put_slot(&mut self.slots[i & self.mask], buf.into_device());
        self.next_use = (i + 1) & self.mask;
        Ok(())
    }

    /// Frames written since `start` (the queue's `next_use` when the writer
    /// was made).
    #[inline(always)]
    fn written(&self, start: usize) -> usize {
        distance(start, self.next_use, self.mask)
    }
}
