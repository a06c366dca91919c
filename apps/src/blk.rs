//! The disk-to-wire engine of `blkfwd`: NVMe reads into DMA buffers, each
//! buffer cut into frames whose TX descriptors are a small header (built by
//! the CPU in a header buffer) and a payload piece of the read buffer (DMA
//! by the drive, DMA by the NIC: the CPU never touches a payload byte).
//!
//! One [`Worker`] per thread owns one NVMe queue pair and one NIC TX queue.
//! Workers take I/O-sized chunks of the range from a shared counter, so
//! several threads split one range (and its laps) between them. A read
//! buffer returns to its pool when the NIC has sent the last frame cut from
//! it ([`dma::Buf::split_off`] pieces); reads stop being issued while the
//! read pool is empty, which bounds memory by the pool whatever the NIC does.

use crate::net::Flow;
use crate::stream::{build_headers, payload_per_frame, StreamHeader, FLAG_LAST, FRAME_HEADERS};
use crate::AppResult;
use dma::{Buf, Pool, PoolCache, RegionOptions};
use drivers::nic::{Nic, Offload, TxPacket, TxQueue};
use drivers::nvme::{IoQueuePair, NvmeController, NvmeStatus};
use drivers::regs::RegisterAccess;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to stream and how.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Namespace.
    pub nsid: u32,
    /// First byte of the range on the disk (a multiple of the block size).
    pub start: u64,
    /// Bytes in the range (a multiple of the block size, > 0).
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
    /// Poll without ever sleeping or yielding (no system call while
    /// streaming; the thread takes a whole core). Otherwise an idle worker
    /// backs off: spin, then yield, then short sleeps.
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
    /// Payload bytes handed to the NIC.
    pub bytes: AtomicU64,
    /// Frames handed to the NIC.
    pub frames: AtomicU64,
    /// Reads completed successfully.
    pub ios: AtomicU64,
    /// Reads in flight now.
    pub in_flight: AtomicU64,
    /// Reads retried.
    pub retries: AtomicU64,
    /// Reads or frames given up.
    pub errors: AtomicU64,
    /// Ask the workers to finish (after what is in flight).
    pub stop: AtomicBool,
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
}

/// Geometry of the range in chunks.
#[derive(Debug, Clone, Copy)]
struct Chunks {
    start: u64,
    len: u64,
    io: u64,
    per_lap: u64,
    block: u64,
}

impl Chunks {
    /// (lap, first byte, bytes) of chunk `c`.
    fn get(&self, c: u64) -> (u64, u64, u64) {
        let lap = c / self.per_lap;
        let k = c % self.per_lap;
        let off = k * self.io;
        (lap, self.start + off, self.io.min(self.len - off))
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
    if !cfg.start.is_multiple_of(block) || !cfg.len.is_multiple_of(block) {
        return Err(format!(
            "the range must start and end on a block boundary ({block}-byte blocks); \
             give --start in blocks and --length as a multiple of {block}"
        )
        .into());
    }
    if cfg.start.checked_add(cfg.len).is_none_or(|end| end > size) {
        return Err(format!(
            "the range {}..{} goes past the end of namespace {} ({} bytes, {} blocks of {block}); \
             give a smaller --start or --length",
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
            "--io-size {} is larger than the drive's largest transfer ({} bytes)",
            cfg.io_size,
            ctrl.max_transfer()
        )
        .into());
    }
    let frame = cfg.mtu + crate::net::ETH_LEN;
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

/// One thread's part: an NVMe queue pair, a TX queue, a read pool and a
/// header pool.
pub struct Worker<RN: RegisterAccess, RC: RegisterAccess> {
    id: u16,
    cfg: StreamConfig,
    chunks: Chunks,
    ioq: IoQueuePair<RN>,
    txq: TxQueue<RC>,
    reads: Pool,
    headers: PoolCache,
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
        let txq = nic.tx_queue(queue)?;
        let buf_size = (cfg.io_size + 4095) & !4095;
        let reads =
            Pool::new(ctrl.mapper().clone(), cfg.read_buffers, buf_size, region).map_err(|e| {
                format!(
                    "read buffers ({} x {buf_size} bytes): {e}",
                    cfg.read_buffers
                )
            })?;
        let frames_per_read = cfg.io_size.div_ceil(payload_per_frame(cfg.mtu));
        let header_count = cfg.read_buffers * frames_per_read + txq.ring_size();
        let headers = Pool::new(ctrl.mapper().clone(), header_count, 128, region)
            .map_err(|e| format!("header buffers ({header_count} x 128 bytes): {e}"))?
            .cache(256);
        let io = cfg.io_size as u64;
        Ok(Worker {
            id,
            chunks: Chunks {
                start: cfg.start,
                len: cfg.len,
                io,
                per_lap: cfg.len.div_ceil(io),
                block,
            },
            cfg: cfg.clone(),
            ioq,
            txq,
            reads,
            headers,
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
    /// lists every range not sent.
    pub fn run(mut self) -> AppResult<WorkerReport> {
        let cpu0 = crate::cputime::thread_cpu_time();
        let mut rep = WorkerReport {
            // SAFETY: gettid has no preconditions.
            tid: unsafe { libc::syscall(libc::SYS_gettid) },
            ..WorkerReport::default()
        };
        let mut in_flight: HashMap<u64, Read> = HashMap::new();
        let mut retry: Vec<Read> = Vec::new();
        let mut next_tag = 0u64;
        let mut pending: Vec<TxPacket> = Vec::new();
        // Reads whose frames are pending or in the TX ring, oldest first:
        // (frames not yet in the ring, the read, the ring's descriptor count
        // once its last frame was in). TX descriptors complete in order, so
        // a read is sent when the ring has cleaned up to its mark.
        let mut queued: VecDeque<(u64, Read, u64)> = VecDeque::new();
        let mut done = Vec::new();
        let mut exhausted = false;
        let ppf = payload_per_frame(self.cfg.mtu);
        let offload = Offload::Ipv4Udp {
            l2_len: crate::net::ETH_LEN as u8,
            l3_len: crate::net::IPV4_LEN as u16,
        };
        let rate_start = Instant::now();
        let mut last_tx_progress = Instant::now();
        let mut backoff = crate::backoff::Backoff::default();
        loop {
            let mut progress = false;
            // 1. Reads, while buffers and slots allow. Backpressure: frames
            // waiting for the NIC hold their read buffers, so a slow NIC
            // empties the read pool and reads stop.
            while in_flight.len() < self.cfg.queue_depth && self.ioq.free_slots() > 0 {
                if let Some(rate) = self.cfg.rate {
                    let allowed = rate * rate_start.elapsed().as_secs_f64();
                    if self.shared.bytes.load(Ordering::Relaxed) as f64 > allowed {
                        break;
                    }
                }
                if exhausted && retry.is_empty() {
                    break;
                }
                let Some(buf) = self.reads.alloc() else { break };
                let read = match retry.pop() {
                    Some(r) => r,
                    None => match self.take_chunk() {
                        Some(r) => r,
                        None => {
                            exhausted = true;
                            break;
                        }
                    },
                };
                let blocks = (read.len / self.chunks.block) as u32;
                let lba = read.start / self.chunks.block;
                let tag = next_tag;
                next_tag += 1;
                match self
                    .ioq
                    .submit_read(self.cfg.nsid, lba, buf.into_device(), blocks, tag)
                {
                    Ok(()) => {
                        in_flight.insert(tag, read);
                        progress = true;
                        // Buffers out only grow here.
                        rep.max_buffers_out = rep
                            .max_buffers_out
                            .max(self.reads.capacity() - self.reads.free_count());
                    }
                    Err((e, dev)) => {
                        drop(dev.reclaim());
                        self.fail(&mut rep, read, format!("read not submitted: {e}"));
                    }
                }
            }
            self.ioq.ring_doorbell();
            // 2. Completions: a good read becomes frames; a failed one is
            // retried, then reported with its range.
            self.ioq.poll(self.cfg.queue_depth, |c| done.push(c))?;
            for c in done.drain(..) {
                progress = true;
                let Some(mut read) = in_flight.remove(&c.tag) else {
                    return Err(format!("the drive completed unknown read tag {}", c.tag).into());
                };
                let Some(dev) = c.buf else {
                    return Err("a read completed without its buffer".into());
                };
                // The drive is done with the buffer: it is ours again.
                let buf = dev.reclaim();
                match c.result {
                    Ok(()) => {
                        rep.ios += 1;
                        self.shared.ios.fetch_add(1, Ordering::Relaxed);
                        let frames = self.cut(buf, read, ppf, offload, &mut pending)?;
                        queued.push_back((frames, read, 0));
                    }
                    Err(status) => {
                        drop(buf);
                        read.attempts += 1;
                        if read.attempts <= self.cfg.retries && retryable(&status) {
                            rep.retries += 1;
                            self.shared.retries.fetch_add(1, Ordering::Relaxed);
                            retry.push(read);
                        } else {
                            let lba = read.start / self.chunks.block;
                            let why = format!(
                                "read of blocks {lba}..{} failed after {} attempt(s): {status}",
                                lba + read.len / self.chunks.block,
                                read.attempts
                            );
                            self.fail(&mut rep, read, why);
                        }
                    }
                }
            }
            self.shared
                .in_flight
                .store(in_flight.len() as u64, Ordering::Relaxed);
            self.ioq.check_timeouts()?;
            // 3. Frames to the NIC, in order.
            if !pending.is_empty() {
                let before = pending.len();
                let n = self.txq.tx_batch(&mut pending)?;
                if n > 0 {
                    progress = true;
                    last_tx_progress = Instant::now();
                    let mark = self.txq.stats().cleaned + self.txq.in_flight() as u64;
                    mark_sent(&mut queued, (before - pending.len()) as u64, mark);
                    self.shared
                        .frames
                        .store(self.txq.stats().packets, Ordering::Relaxed);
                }
            }
            if self.txq.clean() > 0 {
                progress = true;
                last_tx_progress = Instant::now();
            }
            // 4. Reads whose frames the NIC has all finished.
            let cleaned = self.txq.stats().cleaned;
            while let Some(&(0, read, mark)) = queued.front() {
                if mark > cleaned {
                    break;
                }
                queued.pop_front();
                rep.bytes += read.len;
            }
            if !queued.is_empty()
                && !progress
                && in_flight.is_empty()
                && last_tx_progress.elapsed() >= self.cfg.tx_timeout
            {
                // The NIC takes and finishes nothing: give up what waits
                // for it, and stop reading; the first worker to see it also
                // lists the part of the range nobody has read.
                if !self.shared.stop.swap(true, Ordering::Relaxed) {
                    self.fail_untaken(&mut rep);
                }
                let why = format!(
                    "not sent: the NIC finished no frame for {:.1} s (link down or transmission held)",
                    self.cfg.tx_timeout.as_secs_f64()
                );
                for (_, read, _) in std::mem::take(&mut queued) {
                    self.fail(&mut rep, read, why.clone());
                }
                for read in std::mem::take(&mut retry) {
                    self.fail(&mut rep, read, why.clone());
                }
                pending.clear();
                break;
            }
            if (exhausted || self.shared.stop.load(Ordering::Relaxed))
                && in_flight.is_empty()
                && retry.is_empty()
                && queued.is_empty()
            {
                break;
            }
            if progress {
                backoff.reset();
            } else if self.cfg.spin {
                std::hint::spin_loop();
            } else {
                backoff.idle();
            }
        }
        // What a stalled NIC still holds stays posted; the queue's drop
        // waits for it briefly and quarantines what the device keeps.
        rep.frames = self.txq.stats().packets;
        rep.cpu = crate::cputime::thread_cpu_time().saturating_sub(cpu0);
        Ok(rep)
    }

    /// List the chunks no worker has taken as failed (one range per lap)
    /// and take them all.
    fn fail_untaken(&self, rep: &mut WorkerReport) {
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
                "not read: the NIC stalled".into(),
            );
            c = (lap + 1) * self.chunks.per_lap;
        }
    }

    fn fail(&self, rep: &mut WorkerReport, read: Read, why: String) {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        rep.failed.push(Failed {
            lap: read.lap,
            start: read.start,
            len: read.len,
            why,
        });
    }

    /// Cut a completed read buffer into frames: a header buffer (written by
    /// the CPU) and a payload piece of `buf` (never touched by the CPU).
    fn cut(
        &mut self,
        mut buf: Buf,
        read: Read,
        ppf: usize,
        offload: Offload,
        pending: &mut Vec<TxPacket>,
    ) -> AppResult<u64> {
        buf.set_len(read.len as usize);
        let end = self.cfg.start + self.cfg.len;
        let mut offset = read.start;
        let mut frames = 0;
        loop {
            let n = ppf.min(buf.len());
            let rest = (buf.len() > n).then(|| buf.split_off(n));
            let mut h = self
                .headers
                .alloc()
                .ok_or("out of header buffers (a bug: the header pool is sized for every frame)")?;
            let last = offset + n as u64 == end;
            let hdr = StreamHeader {
                stream: self.id,
                flags: if last { FLAG_LAST } else { 0 },
                lap: read.lap as u32,
                len: n as u32,
                offset,
                start: self.cfg.start,
                end,
            };
            let len = build_headers(h.as_mut_slice(), &self.cfg.flow, &hdr);
            debug_assert_eq!(len, FRAME_HEADERS);
            h.set_len(len);
            pending.push(TxPacket::header_payload(h, buf).with_offload(offload));
            frames += 1;
            offset += n as u64;
            match rest {
                Some(r) => buf = r,
                None => break,
            }
        }
        // One shared update per read, not per frame.
        self.shared.bytes.fetch_add(read.len, Ordering::Relaxed);
        Ok(frames)
    }
}

/// Whether a failed read is worth another try: media and transient
/// errors are; a command the drive refuses as invalid is not.
fn retryable(status: &NvmeStatus) -> bool {
    !matches!(
        status.kind(),
        drivers::nvme::StatusKind::InvalidField | drivers::nvme::StatusKind::LbaOutOfRange
    )
}

/// `sent` frames from the front of the pending list went into the TX ring,
/// which has now taken `mark` descriptors in all: the reads whose last
/// frame was among them get the mark.
fn mark_sent(queued: &mut VecDeque<(u64, Read, u64)>, mut sent: u64, mark: u64) {
    for q in queued.iter_mut() {
        if sent == 0 {
            break;
        }
        if q.0 == 0 {
            continue;
        }
        let take = q.0.min(sent);
        q.0 -= take;
        sent -= take;
        if q.0 == 0 {
            q.2 = mark;
        }
    }
}
