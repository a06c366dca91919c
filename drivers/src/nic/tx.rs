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

use super::desc::{check_offload, context, data_cmd, data_hi, data_olinfo, popts};
use super::ring::{distance, DescRing};
use super::rx::{put_slot, QueueRegs};
use super::spec::adv_desc::tx::{cmd_type_len, olinfo, ADDR, CMD_TYPE_LEN, WB_STATUS};
use super::NicError;
use crate::regs::RegisterAccess;
use dma::{Buf, DeviceBuf, PoolCache};
use std::collections::VecDeque;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Descriptors between two report-status requests.
pub const RS_EVERY: usize = 32;

/// Checksum offload of a packet. The NIC fills in the IPv4 header checksum
/// and the TCP or UDP checksum; the sender puts the pseudo-header checksum
/// (not inverted) in the L4 checksum field, as both datasheets require
/// (checksum offload, §7.2 of both datasheets). Options and IPv6 are not offloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offload {
    /// Send as is.
    #[default]
    None,
    /// IPv4 + UDP.
    Ipv4Udp {
        /// Ethernet header length (14, or 18 with a VLAN tag).
        l2_len: u8,
        /// IPv4 header length (20..=60, a multiple of 4).
        l3_len: u16,
    },
    /// IPv4 + TCP.
    Ipv4Tcp {
        /// Ethernet header length.
        l2_len: u8,
        /// IPv4 header length.
        l3_len: u16,
    },
}

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
    /// [`super::DeviceStats`]).
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

/// Bookkeeping of one `tx_batch` call.
struct Batch {
    sent: usize,
    last_eop: usize,
    last_cmd: u32,
    last_has_rs: bool,
}

impl Batch {
    #[inline(always)]
    fn new() -> Batch {
        Batch {
            sent: 0,
            last_eop: 0,
            last_cmd: 0,
            last_has_rs: true,
        }
    }
}

/// A transmit queue of a port. `Send`: it can move to the thread that uses it.
pub struct TxQueue<R: RegisterAccess> {
    regs: Arc<R>,
    ring: DescRing,
    slots: Box<[Option<DeviceBuf>]>,
    rs_marks: VecDeque<u16>,
    next_use: usize,
    next_clean: usize,
    used: usize,
    since_rs: usize,
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
            rs_marks: VecDeque::with_capacity(size),
            next_use: 0,
            next_clean: 0,
            used: 0,
            since_rs: 0,
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
    /// long segment, a frame beyond [`super::Nic::max_frame`], impossible
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
    /// buffer that is empty or longer than [`super::Nic::max_frame`] (left at
    /// the front) with its error.
    pub fn tx_bufs(&mut self, bufs: &mut Vec<Buf>) -> Result<usize, NicError> {
        if self.free_descriptors() < bufs.len() {
            self.clean();
        }
        let one_max = self.one_max;
        let valid = bufs
            .iter()
            .position(|b| b.len().wrapping_sub(1) >= one_max)
            .unwrap_or(bufs.len());
        let n = valid.min(self.free_descriptors());
        if n > 0 {
            self.write_with(|w| {
                for buf in bufs.drain(..n) {
                    // Cannot fail: length checked, room for n.
                    let _ = w.push(buf);
                }
            });
        }
        if n == valid && valid < n + bufs.len() {
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

    /// Run `f` with a writer of one-buffer frames without offload, then
    /// write the tail once for all it queued. The writer holds a copy of
    /// the ring state (so a loop that pushes keeps it in registers), which
    /// goes back into the queue when `f` returns. The forwarding path
    /// ([`super::forward`]) and [`Self::tx_bufs`].
    #[inline(always)]
    pub(crate) fn write_with<T>(&mut self, f: impl FnOnce(&mut TxWriter<'_>) -> T) -> T {
        let mut w = self.writer();
        let out = f(&mut w);
        let end = w.end();
        self.finish_writer(end);
        out
    }

    #[inline(always)]
    fn writer(&mut self) -> TxWriter<'_> {
        TxWriter {
            ring: self.ring.view(),
            mask: self.ring.mask(),
            slots: &mut self.slots[..],
            rs_marks: &mut self.rs_marks,
            one_max: self.one_max,
            room: self.ring.size() - 1 - self.used,
            next_use: self.next_use,
            since_rs: self.since_rs,
            sent: 0,
            bytes: 0,
            last: (0, 0, true),
        }
    }

    /// Take back the state of a finished [`TxWriter`] and write the tail.
    #[inline(always)]
    fn finish_writer(&mut self, w: WriterEnd) {
        self.next_use = w.next_use;
        self.since_rs = w.since_rs;
        self.used += w.sent;
        let b = Batch {
            sent: w.sent,
            last_eop: w.last.0,
            last_cmd: w.last.1,
            last_has_rs: w.last.2,
        };
        self.finish(&b);
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

    /// Write planned items: runs of one-buffer packets on the fast path,
    /// the others one by one.
    #[inline(always)]
    fn put_items(&mut self, mut items: impl Iterator<Item = TxPacket>, b: &mut Batch) {
        while let Some(pkt) = self.put_run(&mut items, b) {
            self.put_packet(pkt, b);
        }
    }

    /// Write one-buffer packets that need no new context until the items
    /// end (None) or one that does not qualify comes (returned).
    #[inline(always)]
    fn put_run(
        &mut self,
        items: &mut impl Iterator<Item = TxPacket>,
        b: &mut Batch,
    ) -> Option<TxPacket> {
        let mask = self.ring.mask();
        let ring = self.ring.view();
        let slots = &mut self.slots[..];
        let rs_marks = &mut self.rs_marks;
        let ctx = self.ctx;
        let mut i = self.next_use;
        let mut since_rs = self.since_rs;
        let mut n = 0;
        let (mut last_eop, mut last_cmd, mut last_has_rs) = (b.last_eop, b.last_cmd, b.last_has_rs);
        let mut slow = None;
        for item in items.by_ref() {
            let (buf, offload) = match item.one(ctx) {
                Ok(x) => x,
                Err(pkt) => {
                    slow = Some(pkt);
                    break;
                }
            };
            let len = buf.len() as u32;
            since_rs += 1;
            let rs = since_rs >= RS_EVERY;
            let cmd = data_cmd(len, true) | if rs { cmd_type_len::RS } else { 0 };
            let d = ring.desc(i);
            d.write_u64(ADDR, buf.iova());
            d.write_u64(CMD_TYPE_LEN, data_hi(cmd, data_olinfo(len, popts(offload))));
            put_slot(&mut slots[i], buf.into_device());
            if rs {
                rs_marks.push_back(i as u16);
                since_rs = 0;
            }
            last_eop = i;
            last_cmd = cmd;
            last_has_rs = rs;
            n += 1;
            i = (i + 1) & mask;
        }
        self.next_use = i;
        self.since_rs = since_rs;
        self.used += n;
        b.sent += n;
        b.last_eop = last_eop;
        b.last_cmd = last_cmd;
        b.last_has_rs = last_has_rs;
        slow
    }

    /// Bookkeeping after a packet whose EOP descriptor is `eop`.
    #[inline(always)]
    fn after_packet(&mut self, eop: usize, cmd: u32, rs: bool, need: usize, b: &mut Batch) {
        if rs {
            self.rs_marks.push_back(eop as u16);
            self.since_rs = 0;
        } else {
            self.since_rs += need;
        }
        b.last_has_rs = rs;
        b.last_eop = eop;
        b.last_cmd = cmd;
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
        let rs = self.since_rs + need >= RS_EVERY;
        let olinfo = data_olinfo(total as u32, popts(offload));
        // The one- and two-segment shapes without a Vec.
        let cmd = match pkt.segs {
            Segments::One([buf]) => self.put(i, buf, true, rs, olinfo),
            Segments::Two([head, tail]) => {
                self.put(i, head, false, false, olinfo);
                i = (i + 1) & mask;
                self.put(i, tail, true, rs, olinfo)
            }
            Segments::Many(segs) => {
                let n = segs.len();
                let mut cmd = 0;
                for (k, buf) in segs.into_iter().enumerate() {
                    let eop = k + 1 == n;
                    cmd = self.put(i, buf, eop, eop && rs, olinfo);
                    if !eop {
                        i = (i + 1) & mask;
                    }
                }
                cmd
            }
        };
        self.after_packet(i, cmd, rs, need, b);
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
        if !b.last_has_rs {
            self.ring
                .write_u32(b.last_eop, CMD_TYPE_LEN, b.last_cmd | cmd_type_len::RS);
            self.rs_marks.push_back(b.last_eop as u16);
            self.since_rs = 0;
        }
        // Descriptor writes must reach memory before the device sees the tail.
        fence(Ordering::Release);
        self.regs.write32(self.qregs.tail, self.next_use as u32);
    }

    /// Write data descriptor `i` for `buf`; returns its CMD_TYPE_LEN.
    #[inline(always)]
    fn put(&mut self, i: usize, buf: Buf, eop: bool, rs: bool, olinfo: u32) -> u32 {
        let mut cmd = data_cmd(buf.len() as u32, eop);
        if rs {
            cmd |= cmd_type_len::RS;
        }
        self.ring.write_u64(i, ADDR, buf.iova());
        self.ring.write_u64(i, CMD_TYPE_LEN, data_hi(cmd, olinfo));
        put_slot(&mut self.slots[i], buf.into_device());
        cmd
    }

    /// Reclaim the descriptors the device has finished (in RS groups of up
    /// to [`RS_EVERY`]) and return their buffers to their pools. Returns the
    /// number of descriptors reclaimed.
    pub fn clean(&mut self) -> usize {
        self.clean_with(drop)
    }

    /// Like [`Self::clean`], but hand the sent buffers to `cache` (e.g. the
    /// RX queue cache of the port they came from, on the same thread): the
    /// cheapest way back for forwarded buffers.
    pub fn clean_into(&mut self, cache: &mut PoolCache) -> usize {
        self.clean_with(|b| cache.free(b))
    }

    #[inline(always)]
    fn clean_with(&mut self, mut free: impl FnMut(Buf)) -> usize {
        let mask = self.ring.mask();
        let mut cleaned = 0;
        while let Some(&mark) = self.rs_marks.front() {
            let mark = mark as usize;
            // Only RS descriptors we posted are ever read (the marks).
            let status = self.ring.load_u32_acquire(mark, WB_STATUS);
            if status & olinfo::DD == 0 {
                break;
            }
            self.rs_marks.pop_front();
            let end = (mark + 1) & mask;
            let mut i = self.next_clean;
            while i != end {
                if let Some(dev) = self.slots[i].take() {
                    free(dev.reclaim());
                }
                i = (i + 1) & mask;
                cleaned += 1;
            }
            self.next_clean = end;
        }
        self.used -= cleaned;
        debug_assert_eq!(
            distance(self.next_clean, self.next_use, mask),
            self.used & mask
        );
        self.stats.cleaned += cleaned as u64;
        cleaned
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

    /// TDH as the device reports it, checked against the ring.
    pub fn device_head(&self) -> Result<usize, NicError> {
        let h = self.regs.read32(self.qregs.head) as usize;
        if h >= self.ring.size() {
            return Err(NicError::DeviceMisbehaved(format!(
                "TX queue {} head {h} outside a ring of {}",
                self.queue,
                self.ring.size()
            )));
        }
        Ok(h)
    }

    /// Wait until every queued packet has been sent and reclaimed, up to
    /// `timeout`; returns whether the queue drained.
    pub fn flush(&mut self, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
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
            self.rs_marks.iter().copied().collect(),
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
        let stopped = super::wait_until(Duration::from_millis(100), || {
            self.regs.read32(self.qregs.ctl) & self.qregs.enable == 0
        });
        if stopped {
            for slot in self.slots.iter_mut() {
                if let Some(dev) = slot.take() {
                    drop(dev.reclaim());
                }
            }
        }
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
        let rs = q.since_rs + need >= RS_EVERY;
        let olinfo = data_olinfo((h + t) as u32, popts(offload));
        q.put(i, head, false, false, olinfo);
        i = (i + 1) & mask;
        let cmd = q.put(i, tail, true, rs, olinfo);
        q.after_packet(i, cmd, rs, need, &mut self.b);
        Ok(())
    }
}

impl<R: RegisterAccess> Drop for TxBatch<'_, R> {
    fn drop(&mut self) {
        self.q.finish(&self.b);
    }
}

/// See [`TxQueue::write_with`].
pub(crate) struct TxWriter<'q> {
    ring: super::ring::RingView<'q>,
    mask: usize,
    slots: &'q mut [Option<DeviceBuf>],
    rs_marks: &'q mut VecDeque<u16>,
    one_max: usize,
    room: usize,
    next_use: usize,
    since_rs: usize,
    sent: usize,
    bytes: u64,
    /// (last EOP descriptor, its CMD_TYPE_LEN, whether it has RS)
    last: (usize, u32, bool),
}

/// What a [`TxWriter`] hands back to its queue.
struct WriterEnd {
    next_use: usize,
    since_rs: usize,
    sent: usize,
    last: (usize, u32, bool),
}

impl TxWriter<'_> {
    /// Queue `buf` as a frame; it comes back if it is empty, longer than
    /// the queue sends in one descriptor, or the ring is full.
    #[inline(always)]
    pub(crate) fn push(&mut self, buf: Buf) -> Result<(), Buf> {
        let len = buf.len();
        if len.wrapping_sub(1) >= self.one_max || self.room == 0 {
            return Err(buf);
        }
        let i = self.next_use;
        self.since_rs += 1;
        let rs = self.since_rs >= RS_EVERY;
        let cmd = data_cmd(len as u32, true) | if rs { cmd_type_len::RS } else { 0 };
        let d = self.ring.desc(i);
        d.write_u64(ADDR, buf.iova());
        d.write_u64(CMD_TYPE_LEN, data_hi(cmd, data_olinfo(len as u32, 0)));
        put_slot(&mut self.slots[i], buf.into_device());
        if rs {
            self.rs_marks.push_back(i as u16);
            self.since_rs = 0;
        }
        self.last = (i, cmd, rs);
        self.next_use = (i + 1) & self.mask;
        self.room -= 1;
        self.sent += 1;
        self.bytes += len as u64;
        Ok(())
    }

    /// Bytes of the frames queued so far.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The state to hand back to the queue.
    #[inline(always)]
    fn end(self) -> WriterEnd {
        WriterEnd {
            next_use: self.next_use,
            since_rs: self.since_rs,
            sent: self.sent,
            last: self.last,
        }
    }
}
