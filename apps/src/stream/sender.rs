//! The disk-to-wire engine of `blkfwd`: NVMe reads into DMA buffers, each
//! buffer cut into frames whose TX descriptors are a small header (built by
//! the CPU in the TX queue's header area, one slot per descriptor) and a
//! payload piece of the read buffer (DMA by the drive, DMA by the NIC: the
//! CPU never touches a payload byte).
//!
//! One [`Worker`] per thread owns one NVMe queue pair and one NIC TX queue.
//! Workers take I/O-sized chunks of the range from a shared counter, so
//! several threads split one range (and its laps) between them. A read
//! buffer returns to its pool when the NIC has sent the last frame cut from
//! it ([`dma::Buf::split_off`] pieces); reads stop being issued while the
//! read pool is empty, which bounds memory by the pool whatever the NIC does.

use crate::net::Flow;
use crate::stream::{
    build_headers, payload_per_frame, HeaderTemplate, StreamHeader, FLAG_LAST, FRAME_HEADERS,
};
use crate::AppResult;
use dma::{Buf, Pool, RegionOptions};
use drivers::nic::{CutError, LinkProbe, LinkStatus, Nic, Offload, TxQueue};
use drivers::nvme::{Completion, IoQueuePair, NvmeController, NvmeStatus};
use drivers::regs::RegisterAccess;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to stream and how.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Namespace.
    pub nsid: u32,
    /// First byte of the range on the disk (any byte: the reads cover
    /// whole blocks, the frames carry only the range's bytes).
    pub start: u64,
    /// Bytes in the range (any number > 0).
    pub len: u64,
    /// Bytes per read (a multiple of the block size).
    pub io_size: usize,
    /// Reads in flight per worker.
    pub queue_depth: usize,
    /// Read buffers per worker (at least `queue_depth`): the memory bound.
    pub read_buffers: usize,
    /// IP MTU of the frames (1500 or 9000 usually).
    pub mtu: usize,
    /// Passes over the range; 0: until [`Shared::stop`].
    pub laps: u64,
    /// Addresses and ports of the frames.
    pub flow: Flow,
    /// Payload bytes per second over all workers; None: no limit.
    pub rate: Option<f64>,
    /// Retries of a failed read before its range is reported failed.
    pub retries: u32,
    /// How long a worker waits for the NIC to take frames before it gives
    /// them up as failed (a stalled NIC).
    pub tx_timeout: Duration,
    /// Poll without ever sleeping (no system call while streaming; the
    /// thread takes a whole core). Otherwise an idle worker sleeps, for
    /// lengths that follow the devices' pace ([`crate::backoff::Pacer`]).
    pub spin: bool,
}

/// A range of disk bytes that was not sent, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Lap.
    pub lap: u64,
    /// First disk byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
    /// Why.
    pub why: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lap {}: bytes {}..{} ({} bytes): {}",
            self.lap,
            self.start,
            self.start + self.len,
            self.len,
            self.why
        )
    }
}

/// Counters all workers add to, read by the progress printer.
#[derive(Debug, Default)]
pub struct Shared {
    next_chunk: AtomicU64,
    /// Payload bytes read and being cut into frames for the NIC (counted
    /// when a read completes; a range later listed as failed stays in).
    pub bytes: AtomicU64,
    /// Frames put into the TX rings.
    pub frames: AtomicU64,
    /// Reads completed successfully.
    pub ios: AtomicU64,
    /// Reads in flight now, over all workers.
    pub in_flight: AtomicU64,
    /// Their bytes (for the rate limit).
    pub in_flight_bytes: AtomicU64,
    /// Reads retried.
    pub retries: AtomicU64,
    /// Reads or frames given up.
    pub errors: AtomicU64,
    /// Ask the workers to finish (after what is in flight).
    pub stop: AtomicBool,
    /// The TX port's link as the workers saw it: its changes, for the
    /// program to print.
    pub link: crate::link::LinkWatch,
    /// Why the first range was given up (see [`Shared::cause`]).
    cause: Mutex<Option<String>>,
    /// The drive's block size (set by [`Worker::new`]): where the chunks
    /// of an unaligned range start.
    block: AtomicU64,
}

impl Shared {
    /// Where a stream stopped with [`Shared::stop`] ended (`cfg` is the
    /// workers' configuration): `(lap, end)`, every byte before `end` of
    /// lap `lap` (and all earlier laps) taken by a worker, nothing after.
    /// None when a stalled run gave up the rest of the range (that is a
    /// failure, listed as such), or `cfg` has no range.
    pub fn stopped_at(&self, cfg: &StreamConfig) -> Option<(u64, u64)> {
        let taken = self.next_chunk.load(Ordering::Relaxed);
        let io = cfg.io_size as u64;
        if taken == u64::MAX || io == 0 || cfg.len == 0 {
            return None;
        }
        let chunks = Chunks::new(cfg, self.block.load(Ordering::Relaxed).max(1));
        let (lap, k) = (taken / chunks.per_lap, taken % chunks.per_lap);
        let end = cfg.start + cfg.len;
        Some((lap, (chunks.base + k * io).clamp(cfg.start, end)))
    }

    /// Why the run did not send everything: the reason of the first range
    /// any worker gave up (later ones follow from it, e.g. the rest of the
    /// range after the drive stopped answering), on one line. None while
    /// nothing failed.
    pub fn cause(&self) -> Option<String> {
        self.cause.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Record `why` as the cause unless one is recorded already.
    fn note_cause(&self, why: &str) {
        let mut c = self.cause.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_none() {
            *c = Some(why.to_string());
        }
    }

    /// A read of `len` bytes was submitted.
    fn read_out(&self, len: u64) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.in_flight_bytes.fetch_add(len, Ordering::Relaxed);
    }

    /// A read of `len` bytes is no longer in flight (completed or lost).
    fn read_back(&self, len: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.in_flight_bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

/// What one worker did.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Payload bytes the NIC took (sent and cleaned).
    pub bytes: u64,
    /// Frames.
    pub frames: u64,
    /// Reads completed successfully.
    pub ios: u64,
    /// Reads retried.
    pub retries: u64,
    /// Ranges not sent.
    pub failed: Vec<Failed>,
    /// The worker thread's CPU time.
    pub cpu: Duration,
    /// The worker thread's kernel thread id (for tracing tools).
    pub tid: i64,
    /// Read buffers the worker's pool held at most at once (memory bound check).
    pub max_buffers_out: usize,
    /// Times the worker slept because it had nothing to do (each one
    /// system call); 0 with [`StreamConfig::spin`].
    pub sleeps: u64,
    /// Passes of the worker's loop that made no progress (each one went
    /// to housekeeping, then spun or slept): counted on that idle path
    /// only, never per frame, so that a benchmark can tell the cost of a
    /// frame from that of an idle round. Each sleep is one of them.
    pub idle_rounds: u64,
}

/// Geometry of the range in chunks: reads of `io` bytes of whole blocks
/// from `base`, the block holding the range's first byte; each chunk sends
/// the part of its read that lies in the range (the first and the last
/// chunk may skip bytes at their head and tail).
#[derive(Debug, Clone, Copy)]
struct Chunks {
    start: u64,
    len: u64,
    io: u64,
    per_lap: u64,
    block: u64,
    /// `start` rounded down to a block boundary.
    base: u64,
}

impl Chunks {
    fn new(cfg: &StreamConfig, block: u64) -> Chunks {
        let io = (cfg.io_size as u64).max(1);
        let base = cfg.start - cfg.start % block;
        Chunks {
            start: cfg.start,
            len: cfg.len,
            io,
            per_lap: (cfg.start + cfg.len - base).div_ceil(io),
            block,
            base,
        }
    }

    /// (lap, first byte, bytes) of the range's bytes in chunk `c`: never
    /// empty, since `start - base` is less than a block and `io` whole
    /// blocks.
    fn get(&self, c: u64) -> (u64, u64, u64) {
        let lap = c / self.per_lap;
        let k = c % self.per_lap;
        let off = self.base + k * self.io;
        let first = off.max(self.start);
        let end = (off + self.io).min(self.start + self.len);
        (lap, first, end - first)
    }

    /// (first block, blocks) that a read of the range's bytes
    /// `[read.start, +read.len)` covers: within its chunk, so at most `io`.
    fn blocks(&self, read: &Read) -> (u64, u64) {
        let lba = read.start / self.block;
        (lba, (read.start + read.len).div_ceil(self.block) - lba)
    }
}

/// One read in flight.
#[derive(Debug, Clone, Copy)]
struct Read {
    lap: u64,
    start: u64,
    len: u64,
    attempts: u32,
}

/// Check a configuration against the drive and the port; the error names
/// the option to change.
pub fn check_config<RN: RegisterAccess, RC: RegisterAccess>(
    cfg: &StreamConfig,
    ctrl: &NvmeController<RN>,
    nic: &Nic<RC>,
) -> AppResult<u64> {
    let ns = ctrl.namespace(cfg.nsid)?;
    let block = ns.lba_size as u64;
    let size = ns.size_blocks * block;
    if cfg.len == 0 {
        return Err(
            "the range is empty; give --length or leave it out for the whole namespace".into(),
        );
    }
    if cfg.start.checked_add(cfg.len).is_none_or(|end| end > size) {
        return Err(format!(
            "the range {}..{} goes past the end of namespace {} ({} bytes, {} blocks of {block}); \
             give a smaller --start/--offset or --length",
            cfg.start,
            cfg.start.saturating_add(cfg.len),
            cfg.nsid,
            size,
            ns.size_blocks
        )
        .into());
    }
    if cfg.io_size == 0 || !(cfg.io_size as u64).is_multiple_of(block) {
        return Err(format!(
            "--io-size {} is not a multiple of the {block}-byte block",
            cfg.io_size
        )
        .into());
    }
    if cfg.io_size as u64 > ctrl.max_transfer() {
        return Err(format!(
            "--io-size {} is larger than the drive's largest transfer ({max} bytes); give \
             --io-size {max} or less, or leave it out for the largest up to 128 KiB",
            cfg.io_size,
            max = ctrl.max_transfer()
        )
        .into());
    }
    let frame = cfg.mtu + spec::net::ethernet::HEADER_LEN;
    if payload_per_frame(cfg.mtu) < 64 {
        return Err(format!(
            "MTU {} leaves no room for a payload; use 1500 or 9000",
            cfg.mtu
        )
        .into());
    }
    if frame > nic.max_frame() {
        return Err(format!(
            "MTU {} needs {frame}-byte frames, but {} carries at most {} bytes; use a smaller --mtu",
            cfg.mtu,
            nic.chip(),
            nic.max_frame()
        )
        .into());
    }
    if cfg.queue_depth == 0 || cfg.read_buffers < cfg.queue_depth {
        return Err(
            "the read buffers must be at least the queue depth (and that at least 1)".into(),
        );
    }
    Ok(block)
}

/// One thread's part: an NVMe queue pair, a TX queue (with its header
/// area: frame headers are written into one slot per descriptor) and a
/// read pool.
pub struct Worker<RN: RegisterAccess, RC: RegisterAccess> {
    id: u16,
    cfg: StreamConfig,
    chunks: Chunks,
    ioq: IoQueuePair<RN>,
    txq: TxQueue<RC>,
    /// The port's link state, read in the housekeeping of idle polls: no
    /// frame goes into the ring while it is down, and the NIC stopping
    /// finishing frames is explained with it.
    link: LinkProbe<RC>,
    reads: Pool,
    shared: Arc<Shared>,
}

impl<RN: RegisterAccess, RC: RegisterAccess> Worker<RN, RC> {
    /// A worker sending on TX queue `queue` of `nic`, reading through a new
    /// I/O queue pair of `ctrl`. Both devices must reach the same DMA memory
    /// (one VFIO container, or one emulated IOMMU).
    pub fn new(
        id: u16,
        cfg: &StreamConfig,
        ctrl: &NvmeController<RN>,
        nic: &Nic<RC>,
        queue: u16,
        region: RegionOptions,
        shared: Arc<Shared>,
    ) -> AppResult<Self> {
        let block = check_config(cfg, ctrl, nic)?;
        let depth = (cfg.queue_depth + 1).min(ctrl.queue_limit() as usize) as u16;
        let ioq = ctrl.create_io_queue_pair(depth)?;
        let mut txq = nic.tx_queue(queue)?;
        txq.add_header_area(region)
            .map_err(|e| format!("TX header area: {e}"))?;
        let buf_size = (cfg.io_size + 4095) & !4095;
        let reads =
            Pool::new(ctrl.mapper().clone(), cfg.read_buffers, buf_size, region).map_err(|e| {
                format!(
                    "read buffers ({} x {buf_size} bytes): {e}",
                    cfg.read_buffers
                )
            })?;
        shared.block.store(block, Ordering::Relaxed);
        Ok(Worker {
            id,
            chunks: Chunks::new(cfg, block),
            cfg: cfg.clone(),
            ioq,
            txq,
            link: nic.link_probe(),
            reads,
            shared,
        })
    }

    /// The read buffers' pool (tests look at where its memory is).
    pub fn read_pool(&self) -> &Pool {
        &self.reads
    }

    /// The next chunk to read, or None when the range (all laps) is taken.
    fn take_chunk(&self) -> Option<Read> {
        if self.shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        // Checked: a stalled run parks the counter at u64::MAX.
        let c = self
            .shared
            .next_chunk
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_add(1))
            .ok()?;
        if self.cfg.laps != 0 && c >= self.cfg.laps * self.chunks.per_lap {
            return None;
        }
        let (lap, start, len) = self.chunks.get(c);
        Some(Read {
            lap,
            start,
            len,
            attempts: 0,
        })
    }

    /// Stream until the range is done (or [`Shared::stop`]); the report
    /// lists every range not sent. The loop of a sender in named steps:
    /// issue reads, collect their completions, reap what the NIC finished,
    /// send frames; and when a pass found nothing to do, housekeeping (drive
    /// timeouts, the link, a stalled NIC) and a wait.
    pub fn run(self) -> AppResult<WorkerReport> {
        let cpu0 = crate::cputime::thread_cpu_time();
        let mut s = Sender::new(self);
        loop {
            let mut progress = s.issue_reads();
            progress |= s.collect()?;
            progress |= s.reap();
            progress |= s.send()?;
            s.note_wake();
            if s.finished() {
                break;
            }
            if progress {
                s.idle.busy();
                continue;
            }
            match s.housekeep() {
                Housekeeping::Stop => break,
                Housekeeping::Again => continue,
                Housekeeping::Continue => s.wait(),
            }
        }
        // What a stalled NIC still holds stays posted; the queue's drop
        // waits for it briefly and quarantines what the device keeps.
        let mut rep = s.rep;
        rep.frames = s.w.txq.stats().packets;
        rep.cpu = crate::cputime::thread_cpu_time().saturating_sub(cpu0);
        Ok(rep)
    }

    /// List the chunks no worker has taken as failed (one range per lap)
    /// and take them all.
    fn fail_untaken(&self, rep: &mut WorkerReport, why: &str) {
        let first = self.shared.next_chunk.swap(u64::MAX, Ordering::Relaxed);
        if self.cfg.laps == 0 {
            return;
        }
        let total = self.cfg.laps * self.chunks.per_lap;
        let end = self.cfg.start + self.cfg.len;
        let mut c = first;
        while c < total {
            let (lap, start, _) = self.chunks.get(c);
            self.fail(
                rep,
                Read {
                    lap,
                    start,
                    len: end - start,
                    attempts: 0,
                },
                why.to_string(),
            );
            c = (lap + 1) * self.chunks.per_lap;
        }
    }

    fn fail(&self, rep: &mut WorkerReport, read: Read, why: String) {
        list_failed(&self.shared, rep, read, why);
    }

    /// Put frames of the ready reads into the TX ring while it has room:
    /// each frame is a header in the TX queue's header area (written by
    /// the CPU, from a template for full-size frames: a slot that already
    /// holds the current template's headers only gets its offset patched)
    /// and a payload piece of the read buffer (never touched by the CPU;
    /// [`drivers::nic::TxBatch::push_cut`]: the read buffer is held by its
    /// last frame's descriptor, no handle per piece). A read whose last
    /// frame went in moves to `reads.queued`, its last frame tagged.
    /// Returns the frames queued.
    fn send_ready(
        &mut self,
        reads: &mut Reads,
        headers: &mut Headers,
        rep: &mut WorkerReport,
    ) -> AppResult<usize> {
        let ppf = payload_per_frame(self.cfg.mtu);
        let offload = Offload::Ipv4Udp {
            l2_len: spec::net::ethernet::HEADER_LEN as u8,
            l3_len: spec::net::ipv4::HEADER_LEN as u16,
        };
        let end = self.cfg.start + self.cfg.len;
        let mut batch = self.txq.batch();
        while let Some(r) = reads.ready.pop_front() {
            let Ready { buf, read, offset } = r;
            let total = buf.len() as u64;
            let lap = read.lap as u32;
            // The disk offset of the next frame's first payload byte.
            let mut at = offset;
            // The stamp of a slot that holds the headers of this read's
            // full-size frames (all but the range's last frame and a
            // read's shorter last one): worked out once per read (and
            // after each header out of the fast path), not per frame.
            let mut want = headers.stamp_for(lap, ppf);
            let (id, flow, start) = (self.id, &self.cfg.flow, self.cfg.start);
            let cut = batch.push_cut(buf, ppf, FRAME_HEADERS, offload, |slot, n| {
                let offset = at;
                at += n as u64;
                // The fast path, nearly every frame: a full-size frame
                // (not the range's last) into a slot that already holds
                // the current template's headers: only the offset patched.
                if n == ppf && at != end && *slot.stamp == want {
                    HeaderTemplate::patch_offset(slot.bytes, offset);
                    return Ok::<(), Infallible>(());
                }
                let frame = SlowFrame {
                    id,
                    lap,
                    len: n,
                    ppf,
                    offset,
                    start,
                    end,
                };
                want = frame.write(slot, flow, headers);
                Ok(())
            });
            match cut {
                Ok(None) => {
                    let tag = reads.next_frame_tag;
                    reads.next_frame_tag += 1;
                    if !batch.tag_last(tag) {
                        return Err("the TX batch lost the frame just pushed (a bug)".into());
                    }
                    reads.queued.push_back((tag, read));
                }
                Ok(Some(rest)) => {
                    // The ring is full: the rest waits, first in line.
                    let offset = offset + (total - rest.len() as u64);
                    reads.ready.push_front(Ready {
                        buf: rest,
                        read,
                        offset,
                    });
                    break;
                }
                Err(CutError::Header(e)) => match e {},
                Err(CutError::Invalid(e)) => {
                    // Pieces already queued go out; the whole read is
                    // listed, so nothing is lost silently.
                    let why = format!("the NIC cannot send its frames: {e}");
                    list_failed(&self.shared, rep, read, why);
                }
            }
        }
        Ok(batch.commit())
    }
}

/// A frame whose header is not just an offset patch (out of the cut
/// loop, so the fast path keeps its registers): a full-size frame into a
/// slot holding older headers, a lap's first full-size frame (a new
/// template), or a short or the range's last frame.
struct SlowFrame {
    id: u16,
    lap: u32,
    len: usize,
    ppf: usize,
    offset: u64,
    start: u64,
    end: u64,
}

impl SlowFrame {
    /// Write the frame's headers into `slot` and stamp it; returns the
    /// stamp of a slot holding the headers of the lap's full-size frames
    /// now ([`Headers::stamp_for`]): a new lap's first one makes a new
    /// template.
    #[cold]
    #[inline(never)]
    fn write(self, slot: drivers::nic::HeaderSlot<'_>, flow: &Flow, headers: &mut Headers) -> u64 {
        let last = self.offset + self.len as u64 == self.end;
        if self.len == self.ppf && !last {
            if let Some(t) = headers.fitting(self.lap, self.ppf) {
                t.write(slot.bytes, self.offset);
                *slot.stamp = headers.generation;
                return headers.generation;
            }
        }
        let flags = if last { FLAG_LAST } else { 0 };
        let fields = StreamHeader {
            stream: self.id,
            flags,
            lap: self.lap,
            len: self.len as u32,
            offset: self.offset,
            start: self.start,
            end: self.end,
        };
        if self.len == self.ppf && flags == 0 {
            // A new lap: a new template, and every slot's headers are
            // from an older one.
            headers.generation += 1;
            let t = HeaderTemplate::new(flow, &fields);
            t.write(slot.bytes, self.offset);
            *slot.stamp = headers.generation;
            headers.template = Some(t);
            return headers.generation;
        } else if flags == 0 {
            // A read's shorter last frame: with reads of a size that is
            // not a multiple of the payload, every read has one, of the
            // same length read after read: a template of its own. The
            // slot then holds no full-size frame's headers.
            let len = self.len as u32;
            if !headers
                .short
                .as_ref()
                .is_some_and(|t| t.fits(self.lap, len, 0))
            {
                headers.short = Some(HeaderTemplate::new(flow, &fields));
            }
            if let Some(t) = &headers.short {
                t.write(slot.bytes, self.offset);
            }
            *slot.stamp = 0;
        } else {
            build_headers(slot.bytes, flow, &fields);
            *slot.stamp = 0;
        }
        headers.stamp_for(self.lap, self.ppf)
    }
}

/// The header template of the frames being sent, and its generation: the
/// stamp ([`drivers::nic::HeaderSlot::stamp`]) of a header slot that holds
/// this template's headers (0, which no template has, marks one that does
/// not).
#[derive(Default)]
struct Headers {
    template: Option<HeaderTemplate>,
    generation: u64,
    /// The template of the last short frame that was not the range's
    /// last (written whole into its slot: slots are stamped for the
    /// full-size template only).
    short: Option<HeaderTemplate>,
}

/// What [`Headers::stamp_for`] gives when no template fits: no slot has it
/// (stamps are 0 or a generation, counted from 1, one per lap).
const NO_TEMPLATE: u64 = u64::MAX;

impl Headers {
    /// The template, if it is for the full-size frames (`ppf` payload
    /// bytes, not the range's last) of lap `lap`.
    fn fitting(&self, lap: u32, ppf: usize) -> Option<&HeaderTemplate> {
        self.template
            .as_ref()
            .filter(|t| t.fits(lap, ppf as u32, 0))
    }

    /// The stamp of a slot that holds the headers of lap `lap`'s
    /// full-size frames: the template's generation if it is theirs, else
    /// [`NO_TEMPLATE`].
    fn stamp_for(&self, lap: u32, ppf: usize) -> u64 {
        match self.fitting(lap, ppf) {
            Some(_) => self.generation,
            None => NO_TEMPLATE,
        }
    }
}

/// What [`Sender::housekeep`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Housekeeping {
    /// Go on (and wait, if the pass found nothing to do).
    Continue,
    /// Go on with the next pass at once (the drive was just given up).
    Again,
    /// The NIC stalled: everything waiting for it is listed failed.
    Stop,
}

/// The hash of a command tag: the tags are this worker's own consecutive
/// numbers (never chosen by a device or a user), so one multiplication by
/// 2^64 / phi does: it spreads consecutive tags over the table's buckets
/// (an odd factor permutes the low bits) and its control bytes (the top
/// bits). SipHash, the default, cost about 100 instructions per insert and
/// per remove, once per read.
#[derive(Default)]
struct TagHash(u64);

impl Hasher for TagHash {
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    /// Any other key (none is hashed here): each byte as a word.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The reads of a [`Sender`], from submission to the frames that carry
/// their bytes.
#[derive(Default)]
struct Reads {
    /// Submitted, by command tag.
    in_flight: HashMap<u64, Read, BuildHasherDefault<TagHash>>,
    /// Failed and due for another attempt.
    retry: Vec<Read>,
    /// The next command tag.
    next_tag: u64,
    /// The range is all taken (or nothing more is read): only retries go.
    exhausted: bool,
    /// The drive stopped answering (command timeout, fatal status):
    /// nothing more is read; what was read still goes out.
    drive_lost: bool,
    /// Completions of the last poll (kept: no allocation per poll).
    done: Vec<Completion>,
    /// Completed reads with frames still to go into the TX ring, oldest
    /// first: each frame is built just before it goes in.
    ready: VecDeque<Ready>,
    /// Reads whose frames are all in the TX ring, oldest first, with the
    /// tag of their last frame ([`drivers::nic::TxBatch::tag_last`]): a
    /// read is sent when cleanup hands that tag back.
    queued: VecDeque<(u64, Read)>,
    /// The tag of the next read's last frame.
    next_frame_tag: u64,
}

/// What a [`Sender`] knows about the link and the NIC's progress, and how
/// it waits when there is nothing to do.
struct Idle {
    /// When the NIC last stopped making progress (checked in the
    /// housekeeping of idle polls, not on every round).
    tx_idle_since: Option<Instant>,
    /// When the link went down (seen in housekeeping): no frame goes into
    /// the TX ring while it is (they would only wait there); reads go on
    /// while read buffers last.
    link_down_since: Option<Instant>,
    /// Down for the TX timeout: the run gives up once the reads in flight
    /// are back.
    link_gave_up: bool,
    pacer: crate::backoff::Pacer,
    empty_polls: u32,
    /// (TX descriptors out, the queue's cleaned count, reads out) when the
    /// last sleep began.
    slept_with: Option<(usize, u64, usize)>,
    /// Completions the last poll delivered (how much the drive did while
    /// the worker slept).
    completed: usize,
}

impl Idle {
    /// A pass made progress.
    fn busy(&mut self) {
        self.empty_polls = 0;
        self.pacer.busy();
    }
}

/// One worker's stream in named steps, each one pass of [`Worker::run`]'s
/// loop: [`Self::issue_reads`] (reads while buffers, queue slots and the
/// rate allow), [`Self::collect`] (completed reads become frames to send,
/// failed ones are retried or listed), [`Self::reap`] (the NIC's finished
/// frames: read buffers back, reads whose last frame went out counted
/// sent), [`Self::send`] (frames built and pushed into the TX ring, one
/// tail write), and when a pass did nothing, [`Self::housekeep`] (drive
/// timeouts, the link, a stalled NIC) and [`Self::wait`].
struct Sender<RN: RegisterAccess, RC: RegisterAccess> {
    w: Worker<RN, RC>,
    rep: WorkerReport,
    reads: Reads,
    /// The headers of the run of full-size frames being sent.
    headers: Headers,
    /// Start of the rate limit's clock.
    rate_start: Instant,
    idle: Idle,
}

impl<RN: RegisterAccess, RC: RegisterAccess> Sender<RN, RC> {
    fn new(w: Worker<RN, RC>) -> Self {
        Sender {
            w,
            rep: WorkerReport {
                // SAFETY: gettid has no preconditions.
                tid: unsafe { libc::syscall(libc::SYS_gettid) },
                ..WorkerReport::default()
            },
            reads: Reads::default(),
            headers: Headers::default(),
            rate_start: Instant::now(),
            idle: Idle {
                tx_idle_since: None,
                link_down_since: None,
                link_gave_up: false,
                pacer: crate::backoff::Pacer::default(),
                empty_polls: 0,
                slept_with: None,
                completed: 0,
            },
        }
    }

    /// Submit reads while buffers and slots allow. Backpressure: frames
    /// waiting for the NIC hold their read buffers, so a slow NIC empties
    /// the read pool and reads stop. True if any was submitted.
    fn issue_reads(&mut self) -> bool {
        let w = &mut self.w;
        let r = &mut self.reads;
        let mut progress = false;
        while !r.drive_lost
            && !self.idle.link_gave_up
            && r.in_flight.len() < w.cfg.queue_depth
            && w.ioq.free_slots() > 0
        {
            if let Some(rate) = w.cfg.rate {
                // Reads in flight (all workers') count too: else all of
                // the queue depth is read, and sent, in one burst
                // before the first completion is counted.
                let allowed = rate * self.rate_start.elapsed().as_secs_f64();
                let bytes = w.shared.bytes.load(Ordering::Relaxed)
                    + w.shared.in_flight_bytes.load(Ordering::Relaxed);
                if bytes as f64 > allowed {
                    break;
                }
            }
            if r.exhausted && r.retry.is_empty() {
                break;
            }
            let Some(buf) = w.reads.alloc() else { break };
            let read = match r.retry.pop() {
                Some(read) => read,
                None => match w.take_chunk() {
                    Some(read) => read,
                    None => {
                        r.exhausted = true;
                        break;
                    }
                },
            };
            let (lba, blocks) = w.chunks.blocks(&read);
            let tag = r.next_tag;
            r.next_tag += 1;
            match w
                .ioq
                .submit_read(w.cfg.nsid, lba, buf.into_device(), blocks as u32, tag)
            {
                Ok(()) => {
                    r.in_flight.insert(tag, read);
                    w.shared.read_out(read.len);
                    progress = true;
                    // Buffers out only grow here.
                    self.rep.max_buffers_out = self
                        .rep
                        .max_buffers_out
                        .max(w.reads.capacity() - w.reads.free_count());
                }
                Err((e, dev)) => {
                    drop(dev.reclaim());
                    w.fail(&mut self.rep, read, format!("read not submitted: {e}"));
                }
            }
        }
        progress
    }

    /// Take the drive's completions: a good read becomes frames to send
    /// (its range's bytes, a piece of the blocks read: no copy); a failed
    /// one is retried, then listed with its range. True if any came.
    fn collect(&mut self) -> AppResult<bool> {
        let w = &mut self.w;
        let r = &mut self.reads;
        let done = &mut r.done;
        self.idle.completed = if r.drive_lost {
            0
        } else {
            w.ioq.ring_doorbell();
            w.ioq.poll(w.cfg.queue_depth, |c| done.push(c))?
        };
        let progress = !r.done.is_empty();
        for c in r.done.drain(..) {
            let Some(mut read) = r.in_flight.remove(&c.tag) else {
                return Err(format!("the drive completed unknown read tag {}", c.tag).into());
            };
            w.shared.read_back(read.len);
            let Some(dev) = c.buf else {
                return Err("a read completed without its buffer".into());
            };
            // The drive is done with the buffer: it is ours again.
            let mut buf = dev.reclaim();
            match c.result {
                Ok(()) => {
                    self.rep.ios += 1;
                    w.shared.ios.fetch_add(1, Ordering::Relaxed);
                    // Whole blocks were read: the range's bytes are a
                    // piece of them (no copy; the head piece is dropped,
                    // the tail is past the length).
                    let head = (read.start % w.chunks.block) as usize;
                    if head > 0 {
                        buf = buf.split_off(head);
                    }
                    buf.set_len(read.len as usize);
                    // One shared update per read, not per frame.
                    w.shared.bytes.fetch_add(read.len, Ordering::Relaxed);
                    r.ready.push_back(Ready {
                        buf,
                        read,
                        offset: read.start,
                    });
                }
                Err(status) => {
                    drop(buf);
                    read.attempts += 1;
                    if read.attempts <= w.cfg.retries && retryable(&status) {
                        self.rep.retries += 1;
                        w.shared.retries.fetch_add(1, Ordering::Relaxed);
                        r.retry.push(read);
                    } else {
                        let (lba, blocks) = w.chunks.blocks(&read);
                        // A Data Transfer Error is the drive's DMA
                        // failing (NVMe 2.0 Figure 102): say where to look.
                        let hint = match status.kind() {
                            drivers::nvme::StatusKind::DataTransferError => {
                                " (the drive's DMA into the read buffer failed: an IOMMU \
                                 fault or an unmapped buffer?)"
                            }
                            _ => "",
                        };
                        let why = format!(
                            "read of blocks {lba}..{} failed after {} attempt(s): {status}{hint}",
                            lba + blocks,
                            read.attempts
                        );
                        w.fail(&mut self.rep, read, why);
                    }
                }
            }
        }
        Ok(progress)
    }

    /// The NIC's finished frames: their read buffers back to the read
    /// pool (their headers are in the TX queue's header area: nothing to
    /// give back), and each read whose last frame's tag comes back counted
    /// as sent. True if any descriptor was reclaimed.
    fn reap(&mut self) -> bool {
        let queued = &mut self.reads.queued;
        let rep = &mut self.rep;
        let cleaned = self.w.txq.clean_sent(|tag| {
            // Tags come back in the order they were given.
            while let Some(&(t, read)) = queued.front() {
                if t > tag {
                    break;
                }
                queued.pop_front();
                rep.bytes += read.len;
            }
        });
        if cleaned > 0 {
            self.idle.tx_idle_since = None;
        }
        cleaned > 0
    }

    /// Frames to the NIC, in order, each built as it goes in (not while
    /// the link is down: sending is paused). True if any went in.
    fn send(&mut self) -> AppResult<bool> {
        if self.reads.ready.is_empty() || self.idle.link_down_since.is_some() {
            return Ok(false);
        }
        let sent = self
            .w
            .send_ready(&mut self.reads, &mut self.headers, &mut self.rep)?;
        if sent > 0 {
            self.idle.tx_idle_since = None;
            self.w
                .shared
                .frames
                .fetch_add(sent as u64, Ordering::Relaxed);
        }
        Ok(sent > 0)
    }

    /// After a sleep: tell the pacer how much of what was out the devices
    /// finished meanwhile.
    fn note_wake(&mut self) {
        let Some((tx, cleaned_before, reads)) = self.idle.slept_with.take() else {
            return;
        };
        // All the descriptors cleaned since, also those cleaned to make
        // room while frames went in; not more than were out (frames put
        // in after the wake may be done already).
        let cleaned_total = self.w.txq.stats().cleaned;
        let cleaned = ((cleaned_total - cleaned_before) as usize).min(tx);
        let part = |done: usize, out: usize| {
            if out == 0 {
                0.0
            } else {
                done as f64 / out as f64
            }
        };
        self.idle
            .pacer
            .woke(part(cleaned, tx).max(part(self.idle.completed, reads)));
    }

    /// Whether the stream is over: nothing more to read (the range is
    /// taken, or the run is stopped) and nothing in flight or waiting.
    fn finished(&self) -> bool {
        let r = &self.reads;
        (r.exhausted || self.w.shared.stop.load(Ordering::Relaxed))
            && r.in_flight.is_empty()
            && r.retry.is_empty()
            && r.ready.is_empty()
            && r.queued.is_empty()
    }

    /// A pass found nothing to do. Every 64 such passes, and before every
    /// sleep: the drive's command timeouts, the link (a register read; not
    /// per frame), and whether the NIC has stalled, which gives up what
    /// waits for it and stops the run.
    fn housekeep(&mut self) -> Housekeeping {
        self.rep.idle_rounds += 1;
        let idle = &mut self.idle;
        idle.empty_polls = idle.empty_polls.wrapping_add(1);
        let sleeps_next = !self.w.cfg.spin && idle.empty_polls > crate::backoff::PACER_SPINS;
        if !idle.empty_polls.is_multiple_of(64) && !sleeps_next {
            return Housekeeping::Continue;
        }
        if !self.reads.drive_lost {
            if let Err(e) = self.w.ioq.check_timeouts() {
                self.drive_lost(&e.to_string());
                return Housekeeping::Again;
            }
        }
        // A device that no longer answers is the stall check's to name.
        let link = self.w.link.link();
        let idle = &mut self.idle;
        match link {
            Ok(LinkStatus { up: false, .. }) => {
                self.w.shared.link.seen(false);
                let since = *idle.link_down_since.get_or_insert_with(Instant::now);
                // Down this long: read nothing more, and give up once the
                // reads in flight are back.
                idle.link_gave_up |= since.elapsed() >= self.w.cfg.tx_timeout;
            }
            Ok(_) => {
                // Back before the reads in flight were: go on.
                self.w.shared.link.seen(true);
                (idle.link_down_since, idle.link_gave_up) = (None, false);
            }
            Err(_) => (idle.link_down_since, idle.link_gave_up) = (None, false),
        }
        let r = &self.reads;
        let link_lost = idle.link_gave_up && r.in_flight.is_empty();
        if idle.link_down_since.is_some() && !link_lost {
            // Waiting for the link: its own timer runs.
            idle.tx_idle_since = None;
        } else if !link_lost
            && ((r.queued.is_empty() && r.ready.is_empty()) || !r.in_flight.is_empty())
        {
            idle.tx_idle_since = None;
        } else if link_lost
            || idle
                .tx_idle_since
                .get_or_insert_with(Instant::now)
                .elapsed()
                >= self.w.cfg.tx_timeout
        {
            self.nic_stalled(link);
            return Housekeeping::Stop;
        }
        Housekeeping::Continue
    }

    /// The drive stopped answering (`e`): the reads in flight are lost
    /// (their buffers stay with the drive: quarantined, never reused), the
    /// rest of the range is not read. Frames already read still go out.
    fn drive_lost(&mut self, e: &str) {
        let r = &mut self.reads;
        r.drive_lost = true;
        r.exhausted = true;
        let why = format!("not read: the drive stopped answering ({e})");
        if !self.w.shared.stop.swap(true, Ordering::Relaxed) {
            self.w.fail_untaken(&mut self.rep, &why);
        }
        for read in std::mem::take(&mut r.in_flight).into_values() {
            self.w.shared.read_back(read.len);
            self.w.fail(&mut self.rep, read, why.clone());
        }
        for read in std::mem::take(&mut r.retry) {
            self.w.fail(&mut self.rep, read, why.clone());
        }
    }

    /// The NIC takes and finishes nothing: give up what waits for it, and
    /// stop reading; the first worker to see it also lists the part of the
    /// range nobody has read. Its registers (`link`) say whether the link
    /// is down or the device gone.
    fn nic_stalled(&mut self, link: Result<LinkStatus, drivers::nic::NicError>) {
        let stalled = format!(
            "the NIC finished no frame for {:.1} s: {}",
            self.w.cfg.tx_timeout.as_secs_f64(),
            match link {
                Ok(LinkStatus { up: false, .. }) => "its link is down".to_string(),
                Ok(_) => "its link is up: transmission held by the link partner, \
                          the NIC hung, or its queue stopped on a DMA (IOMMU) fault"
                    .to_string(),
                Err(e) => e.to_string(),
            }
        );
        self.w.shared.note_cause(&stalled);
        if !self.w.shared.stop.swap(true, Ordering::Relaxed) {
            self.w
                .fail_untaken(&mut self.rep, &format!("not read: {stalled}"));
        }
        let why = format!("not sent: {stalled}");
        let r = &mut self.reads;
        let waiting = std::mem::take(&mut r.queued)
            .into_iter()
            .map(|(_, read)| read);
        let unsent = std::mem::take(&mut r.ready).into_iter().map(|x| x.read);
        for read in waiting.chain(unsent) {
            self.w.fail(&mut self.rep, read, why.clone());
        }
        for read in std::mem::take(&mut r.retry) {
            self.w.fail(&mut self.rep, read, why.clone());
        }
    }

    /// Nothing to do: spin once, or sleep for as long as the pacer says.
    fn wait(&mut self) {
        if self.w.cfg.spin {
            std::hint::spin_loop();
            return;
        }
        // The NIC is the output: the sleep is tuned to its ring. Only
        // while the ring is empty (the NIC waits for the drive) is it
        // tuned to the reads in flight.
        let tx_out = self.w.txq.in_flight();
        let out = (
            tx_out,
            self.w.txq.stats().cleaned,
            if tx_out == 0 {
                self.reads.in_flight.len()
            } else {
                0
            },
        );
        if self.idle.pacer.idle() {
            self.rep.sleeps += 1;
            self.idle.slept_with = Some(out);
        }
    }
}

/// List `read` as not sent, with the reason.
fn list_failed(shared: &Shared, rep: &mut WorkerReport, read: Read, why: String) {
    shared.errors.fetch_add(1, Ordering::Relaxed);
    shared.note_cause(&why);
    rep.failed.push(Failed {
        lap: read.lap,
        start: read.start,
        len: read.len,
        why,
    });
}

/// A completed read whose frames are not all in the TX ring yet.
struct Ready {
    /// The bytes not yet in the ring.
    buf: Buf,
    read: Read,
    /// Disk byte offset of `buf`'s first byte.
    offset: u64,
}

/// Whether a failed read is worth another try: media and transient
/// errors are; a command the drive refuses as invalid is not.
fn retryable(status: &NvmeStatus) -> bool {
    !matches!(
        status.kind(),
        drivers::nvme::StatusKind::InvalidField | drivers::nvme::StatusKind::LbaOutOfRange
    )
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    fn cfg(start: u64, len: u64, io: usize) -> StreamConfig {
        StreamConfig {
            nsid: 1,
            start,
            len,
            io_size: io,
            queue_depth: 1,
            read_buffers: 1,
            mtu: 1500,
            laps: 1,
            flow: Flow {
                src_mac: [0; 6],
                dst_mac: [0; 6],
                src_ip: [0; 4],
                dst_ip: [0; 4],
                src_port: 1,
                dst_port: 1,
            },
            rate: None,
            retries: 0,
            tx_timeout: Duration::from_secs(1),
            spin: true,
        }
    }

    /// The chunks of a lap tile the range exactly, in order, none empty,
    /// and each one's read is whole blocks of at most the io size.
    #[test]
    fn chunks_tile_any_byte_range_with_whole_block_reads() {
        for block in [512u64, 4096] {
            for io in [block, 2 * block, 128 << 10] {
                for start in [0u64, 1, 511, 513, 4095, 4096, 70_001] {
                    for len in [1u64, 7, 1499, 4096, 65_537, 300_000] {
                        let c = Chunks::new(&cfg(start, len, io as usize), block);
                        let mut at = start;
                        for k in 0..2 * c.per_lap {
                            let (lap, s, n) = c.get(k);
                            assert_eq!(lap, k / c.per_lap);
                            if k == c.per_lap {
                                assert_eq!(at, start + len, "lap 0 ends at the range end");
                                at = start;
                            }
                            assert_eq!(s, at, "block {block} io {io} [{start}, +{len}) chunk {k}");
                            assert!(n > 0);
                            let read = Read {
                                lap,
                                start: s,
                                len: n,
                                attempts: 0,
                            };
                            let (lba, blocks) = c.blocks(&read);
                            assert!(lba * block <= s && s + n <= (lba + blocks) * block);
                            assert!(blocks * block <= io, "a read of more than io");
                            at = s + n;
                        }
                        assert_eq!(at, start + len);
                    }
                }
            }
        }
    }

    /// Headers written out of the fast path (a lap's first full-size
    /// frame, a full-size frame into an older slot, a read's short last
    /// frame, again and with another length or lap, the range's last) are
    /// byte for byte what [`build_headers`] writes for the same fields.
    #[test]
    fn slow_frames_write_the_headers_build_headers_does() {
        let flow = cfg(0, 1, 4096).flow;
        let (ppf, start, end) = (1432usize, 100u64, 1_000_000u64);
        let mut headers = Headers::default();
        // (lap, len, offset)
        let frames = [
            (0u32, ppf, 100u64),
            (0, 700, 1532),
            (0, ppf, 2232),
            (0, 700, 9000),
            (0, 300, 20_000),
            (1, 300, 30_000),
            (1, ppf, 40_000),
            (1, 500, end - 500),
        ];
        for (k, (lap, len, offset)) in frames.into_iter().enumerate() {
            let mut bytes = [0xa5u8; drivers::nic::HEADER_SLOT];
            let mut stamp = 7;
            let frame = SlowFrame {
                id: 3,
                lap,
                len,
                ppf,
                offset,
                start,
                end,
            };
            let slot = drivers::nic::HeaderSlot {
                bytes: &mut bytes,
                stamp: &mut stamp,
            };
            let full_stamp = frame.write(slot, &flow, &mut headers);
            assert_eq!(full_stamp, headers.stamp_for(lap, ppf), "frame {k}");
            let last = offset + len as u64 == end;
            let fields = StreamHeader {
                stream: 3,
                flags: if last { FLAG_LAST } else { 0 },
                lap,
                len: len as u32,
                offset,
                start,
                end,
            };
            let mut want = [0xa5u8; drivers::nic::HEADER_SLOT];
            build_headers(&mut want, &flow, &fields);
            assert_eq!(bytes, want, "frame {k}");
            let stamped = len == ppf && !last;
            assert_eq!(stamp, if stamped { full_stamp } else { 0 }, "frame {k}");
        }
        assert_eq!(headers.generation, 2, "one template per lap");
    }

    /// Consecutive command tags (from anywhere) fall in different buckets
    /// of a 64-bucket table and carry different control bytes (the top 7
    /// bits of the hash), as the in-flight map needs to stay one probe.
    #[test]
    fn consecutive_tags_hash_apart() {
        for from in [0u64, 1, 1 << 20, u64::MAX - 64] {
            let hashes: Vec<u64> = (from..from + 64)
                .map(|t| {
                    let mut h = TagHash::default();
                    h.write_u64(t);
                    h.finish()
                })
                .collect();
            let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 63).collect();
            assert_eq!(buckets.len(), 64, "tags from {from}");
            let tops: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            assert!(
                tops.len() > 32,
                "tags from {from}: {} control bytes",
                tops.len()
            );
        }
    }

    /// Where a stopped stream ended: after `k` chunks, the end of chunk
    /// `k - 1`'s bytes, which for an unaligned start is short of `k * io`.
    #[test]
    fn stopped_at_follows_the_chunks_of_an_unaligned_range() {
        let s = Shared::default();
        s.block.store(512, Ordering::Relaxed);
        let c = cfg(511, 10_000, 4096);
        // Chunks from byte 0: [511, 4096), [4096, 8192), [8192, 10511).
        for (taken, want) in [(0, (0, 511)), (1, (0, 4096)), (2, (0, 8192)), (3, (1, 511))] {
            s.next_chunk.store(taken, Ordering::Relaxed);
            assert_eq!(s.stopped_at(&c), Some(want), "{taken} chunks taken");
        }
    }
}
