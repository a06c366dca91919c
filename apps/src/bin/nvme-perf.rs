//! nvme-perf: I/O load on an NVMe controller (real or emulated) with chosen
//! pattern, block size, queue depth and queue pairs; progress each second,
//! then IOPS, bandwidth, latency percentiles and driver CPU time per I/O.
#![forbid(unsafe_code)]
// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::cputime::thread_cpu_time;
use apps::histogram::Histogram;
use apps::monitor::{Counters, JsonObject, StatsFile};
use apps::open::{with_nvme_pages, NvmeJob, Opened};
use apps::stream::pattern::{check_block, fill_block, xorshift};
use apps::{exit_on_error, human_bytes, signals, AppResult};
use clap::{Parser, ValueEnum};
use dma::{Buf, Pool};
use drivers::nvme::{Completion, NvmeController};
use drivers::regs::RegisterAccess;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Reads only.
    Read,
    /// Writes only.
    Write,
    /// Reads and writes, --mix percent reads.
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pattern {
    /// Uniformly random block-aligned offsets.
    Rand,
    /// Sequential, wrapping at the end of the range.
    Seq,
}

/// Run an I/O load on an NVMe controller and report IOPS, bandwidth,
/// latency and driver CPU time per I/O.
#[derive(Debug, Parser)]
#[command(
    name = "nvme-perf",
    version,
    after_help = "DEV is a PCI address bound to vfio-pci (0000:03:00.0) or an emulated \
controller (emu:nvme,size=1G; emu:nvme,file=disk.img,lba=4096).\n\nExamples:\n  \
nvme-perf emu:nvme,size=1G --qd 64 --bs 4k --time 5\n  \
nvme-perf 0000:03:00.0 --workload mixed --mix 70 --queues 2 --verify"
)]
struct Args {
    /// The device: PCI address or emu:nvme[,options].
    device: String,
    /// Read, write or mixed.
    #[arg(long, value_enum, default_value = "read")]
    workload: Workload,
    /// Percent of reads in a mixed workload.
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(0..=100))]
    mix: u8,
    /// Random or sequential offsets.
    #[arg(long, value_enum, default_value = "rand")]
    pattern: Pattern,
    /// Block size of each I/O (e.g. 4k, 128k): a multiple of the LBA size.
    #[arg(long, default_value = "4k", value_parser = apps::parse_nonzero_size)]
    bs: u64,
    /// I/Os kept in flight per queue pair.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4095))]
    qd: u16,
    /// Queue pairs, each driven by its own thread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    queues: u16,
    /// Seconds to run (ignored when --count is given).
    #[arg(long, default_value_t = 5.0, value_parser = apps::parse_seconds)]
    time: f64,
    /// Stop after this many I/Os in total instead of after --time.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Namespace to use.
    #[arg(long, default_value_t = 1)]
    nsid: u32,
    /// Bytes of the namespace to use, from its start (default: all of it).
    #[arg(long, value_parser = apps::parse_nonzero_size)]
    range: Option<u64>,
    /// Write a pattern over the range first, then check every byte read.
    #[arg(long)]
    verify: bool,
    /// Write the pattern over the range before the run (so reads move real
    /// data, not never-written blocks); implied by --verify.
    #[arg(long)]
    fill: bool,
    /// Hugepage size of the DMA memory: 2M or 1G (1G pages are usually
    /// reserved at boot with `hugepagesz=1G hugepages=N`).
    #[arg(long, default_value = "2M", value_parser = apps::open::parse_page_size)]
    hugepage_size: dma::PageSize,
    /// Seed of the random offsets and the verify pattern.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Delete and recreate each I/O queue pair after every N of its I/Os
    /// (in flight drained first): a soak of queue setup and teardown, whose
    /// DMA memory and IOVA space must come back every time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    cycle_queues: Option<u64>,
    /// Write the per-second figures as JSON lines and the final report as
    /// one JSON object to FILE (fields: see the apps::monitor docs).
    #[arg(long, value_name = "FILE")]
    stats: Option<std::path::PathBuf>,
    /// Keep FILE, a node_exporter textfile-collector file (Prometheus text
    /// format), rewritten atomically each second with the run's counters
    /// and gauges (names: see the apps::monitor docs), e.g.
    /// /var/lib/node_exporter/textfile_collector/nvme-perf.prom.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<std::path::PathBuf>,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

/// Counters the workers update and the progress printer reads.
#[derive(Default)]
struct Live {
    ios: AtomicU64,
    bytes: AtomicU64,
    reads: AtomicU64,
    errors: AtomicU64,
    cycles: AtomicU64,
}

struct WorkerResult {
    ios: u64,
    bytes: u64,
    /// Of the I/Os, reads (for --stats and --prometheus).
    reads: u64,
    hist: Histogram,
    cpu: Duration,
    errors: Vec<String>,
    mismatches: u64,
    /// I/Os that completed with an error status.
    failed: u64,
    /// Times the queue pair was deleted and created again (--cycle-queues).
    cycles: u64,
}

/// One in-flight I/O.
#[derive(Clone, Copy)]
struct Slot {
    lba: u64,
    write: bool,
    /// When its submission batch began, in ns since the worker's epoch.
    start: u64,
}

/// `x` mapped onto 0..n (n > 0) by the high half of the product `x * n`:
/// as uniform as `x % n` over a 64-bit `x`, without a division per I/O.
#[inline]
fn below(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

/// Nanoseconds from `epoch` to now (a u64 holds 584 years of them).
#[inline]
fn ns_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

struct Plan {
    args: Args,
    lba_size: u64,
    blocks_per_io: u32,
    range_ios: u64,
}

impl Plan {
    fn is_write(&self, rng: &mut u64) -> bool {
        match self.args.workload {
            Workload::Read => false,
            Workload::Write => true,
            Workload::Mixed => (xorshift(rng) % 100) as u8 >= self.args.mix,
        }
    }
}

fn fill_io(buf: &mut Buf, plan: &Plan, lba: u64) {
    let ls = plan.lba_size as usize;
    for (i, block) in buf.as_mut_slice().chunks_exact_mut(ls).enumerate() {
        fill_block(block, plan.args.nsid, lba + i as u64, plan.args.seed);
    }
}

fn check_io(buf: &Buf, plan: &Plan, lba: u64) -> Option<String> {
    let ls = plan.lba_size as usize;
    for (i, block) in buf.as_slice().chunks_exact(ls).enumerate() {
        if let Some(off) = check_block(block, plan.args.nsid, lba + i as u64, plan.args.seed) {
            return Some(format!(
                "data mismatch at LBA {} byte {off} (namespace {})",
                lba + i as u64,
                plan.args.nsid
            ));
        }
    }
    None
}

/// The loop of one queue pair: keep `qd` I/Os in flight until told to stop
/// or until `budget` I/Os were issued. `sequential_fill` writes the pattern
/// over this worker's share of the range once, for --verify.
#[allow(clippy::too_many_arguments)]
fn worker<R: RegisterAccess + 'static>(
    ctrl: &NvmeController<R>,
    plan: &Plan,
    index: u64,
    stop: &AtomicBool,
    live: &Live,
    budget: Option<u64>,
    sequential_fill: bool,
    pool: &Pool,
) -> AppResult<WorkerResult> {
    let args = &plan.args;
    let qd = args.qd as usize;
    let depth = args.qd.saturating_add(1);
    let mut qp = ctrl.create_io_queue_pair(depth)?;
    let io_bytes = plan.blocks_per_io as u64 * plan.lba_size;
    // The fill phase writes the range once; cycling is for the run.
    let cycle_every = args.cycle_queues.filter(|_| !sequential_fill);
    let mut since_cycle = 0u64;
    let mut cycles = 0u64;
    let mut failed_total = 0u64;
    // Free buffers, each with the tag (index into `slots`) it goes out
    // under: one pop per I/O takes both.
    let mut free: Vec<(Buf, usize)> = (0..qd)
        .filter_map(|_| pool.alloc())
        .enumerate()
        .map(|(tag, mut b)| {
            b.set_len(io_bytes as usize);
            (b, tag)
        })
        .collect();
    // Latency is measured with two clock reads per loop pass, not two per
    // I/O (they were about 150 instructions of each I/O's cost): an I/O's
    // start is when its submission batch began (before its command was
    // written), its end when the poll that returned it had returned. Both
    // err on the long side by at most one batch's submission or one poll's
    // time, so the figures never flatter the driver.
    let epoch = Instant::now();
    let mut slots = vec![
        Slot {
            lba: 0,
            write: false,
            start: 0,
        };
        qd
    ];
    let mut hist = Histogram::new();
    // The I/Os a poll returned, as runs of one start time (one submission
    // batch each): the histogram counts a run at once.
    let mut runs: Vec<(u64, u64)> = Vec::with_capacity(qd);
    let mut rng = args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (index + 1);
    // Sequential workers each start in their own part of the range.
    let workers = args.queues as u64;
    let mut next_seq = plan.range_ios * index / workers;
    let fill_end = plan.range_ios * (index + 1) / workers;
    let sequential = sequential_fill || args.pattern == Pattern::Seq;
    let fill_writes = args.verify || sequential_fill;
    let mut issued = 0u64;
    let mut done = 0u64;
    let mut bytes = 0u64;
    let mut reads_total = 0u64;
    let mut errors = Vec::new();
    let mut mismatches = 0u64;
    let cpu0 = thread_cpu_time();
    loop {
        let stopping = stop.load(Ordering::Relaxed)
            || budget.is_some_and(|b| issued >= b)
            || (sequential_fill && next_seq >= fill_end);
        if stopping && qp.in_flight() == 0 {
            break;
        }
        let cycle_due = cycle_every.is_some_and(|n| since_cycle >= n);
        if cycle_due && !stopping && qp.in_flight() == 0 {
            // NVMe 1.4 §5.4, §5.6: the driver deletes the SQ before its CQ
            // and creates the CQ first; the pair's memory goes back now.
            ctrl.delete_io_queue_pair(qp)?;
            qp = ctrl.create_io_queue_pair(depth)?;
            since_cycle = 0;
            cycles += 1;
            live.cycles.fetch_add(1, Ordering::Relaxed);
        }
        // This pass's batch: as many I/Os as there are free buffers and
        // slots, within the budget, the fill's range and the cycle, worked
        // out once (not per I/O).
        let mut room = if stopping {
            0
        } else {
            free.len().min(qp.free_slots()) as u64
        };
        if let Some(b) = budget {
            room = room.min(b.saturating_sub(issued));
        }
        if sequential_fill {
            room = room.min(fill_end.saturating_sub(next_seq));
        }
        if let Some(n) = cycle_every {
            room = room.min(n.saturating_sub(since_cycle));
        }
        if room > 0 {
            let start = ns_since(epoch);
            for _ in 0..room {
                let io = if sequential {
                    let io = next_seq % plan.range_ios;
                    next_seq += 1;
                    io
                } else {
                    below(xorshift(&mut rng), plan.range_ios)
                };
                let lba = io * plan.blocks_per_io as u64;
                let write = sequential_fill || plan.is_write(&mut rng);
                let (mut buf, tag) = free.pop().expect("room counts free buffers");
                if write && fill_writes {
                    fill_io(&mut buf, plan, lba);
                }
                slots[tag] = Slot { lba, write, start };
                let dev = buf.into_device();
                let r = if write {
                    qp.submit_write(args.nsid, lba, dev, plan.blocks_per_io, tag as u64)
                } else {
                    qp.submit_read(args.nsid, lba, dev, plan.blocks_per_io, tag as u64)
                };
                if let Err((e, dev)) = r {
                    free.push((dev.reclaim(), tag));
                    return Err(e.into());
                }
            }
            issued += room;
            since_cycle += room;
            qp.ring_doorbell();
        }
        let (mut reads, mut failed) = (0u64, 0u64);
        let n = qp.poll(qd, |c: Completion| {
            let tag = c.tag as usize;
            let slot = slots[tag];
            match runs.last_mut() {
                Some((start, k)) if *start == slot.start => *k += 1,
                _ => runs.push((slot.start, 1)),
            }
            reads += u64::from(!slot.write);
            failed += u64::from(c.result.is_err());
            if let Some(dev) = c.buf {
                let buf = dev.reclaim();
                match c.result {
                    Ok(()) => {
                        if args.verify && !slot.write {
                            if let Some(msg) = check_io(&buf, plan, slot.lba) {
                                mismatches += 1;
                                if errors.len() < 10 {
                                    errors.push(msg);
                                }
                            }
                        }
                    }
                    Err(status) => {
                        if errors.len() < 10 {
                            errors.push(format!(
                                "{} of LBA {} failed: {status}",
                                if slot.write { "write" } else { "read" },
                                slot.lba
                            ));
                        }
                    }
                }
                free.push((buf, tag));
            }
        })?;
        if n > 0 {
            let end = ns_since(epoch);
            for (start, k) in runs.drain(..) {
                hist.record_n(end.saturating_sub(start), k);
            }
            done += n as u64;
            bytes += n as u64 * io_bytes;
            live.ios.fetch_add(n as u64, Ordering::Relaxed);
            live.bytes.fetch_add(n as u64 * io_bytes, Ordering::Relaxed);
            live.reads.fetch_add(reads, Ordering::Relaxed);
            live.errors.fetch_add(failed, Ordering::Relaxed);
            failed_total += failed;
            reads_total += reads;
        }
        if !errors.is_empty() && errors.len() >= 10 {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let cpu = thread_cpu_time() - cpu0;
    ctrl.delete_io_queue_pair(qp)?;
    Ok(WorkerResult {
        ios: done,
        bytes,
        reads: reads_total,
        hist,
        cpu,
        errors,
        mismatches,
        failed: failed_total,
        cycles,
    })
}

struct Perf(Args);

fn fmt_ns(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// Run the workers with a progress line per second; returns their results.
fn run_phase<R: RegisterAccess + 'static>(
    ctrl: &NvmeController<R>,
    plan: &Plan,
    label: &str,
    duration: Option<Duration>,
    budget: Option<u64>,
    sequential_fill: bool,
    mut stats: Option<&mut StatsFile>,
) -> AppResult<(Vec<WorkerResult>, Duration)> {
    let stop = AtomicBool::new(false);
    let live = Live::default();
    let workers = plan.args.queues as u64;
    // Each queue pair's data buffers; made here so --stats can watch them.
    let io_bytes = plan.blocks_per_io as u64 * plan.lba_size;
    let buf_size = io_bytes.next_multiple_of(4096) as usize;
    let pools = (0..workers)
        .map(|_| {
            Pool::new(
                ctrl.mapper().clone(),
                plan.args.qd as usize,
                buf_size,
                ctrl.region_options(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(f) = stats.as_deref_mut() {
        for (i, p) in pools.iter().enumerate() {
            f.watch_pool(format!("io-{i}"), p);
        }
        f.watch_mapper(ctrl.mapper().clone());
        f.restart();
    }
    let t0 = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                let per = budget.map(|b| b / workers + u64::from(i < b % workers));
                let (stop, live, pool) = (&stop, &live, &pools[i as usize]);
                s.spawn(move || worker(ctrl, plan, i, stop, live, per, sequential_fill, pool))
            })
            .collect();
        let mut last = (Instant::now(), 0u64, 0u64);
        let mut second = 0;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            // SIGINT/SIGTERM: no new I/O; the workers wait for what is in
            // flight (bounded by the command timeout) and report.
            if duration.is_some_and(|d| t0.elapsed() >= d) || signals::stop_requested() {
                stop.store(true, Ordering::Relaxed);
            }
            if last.0.elapsed() >= Duration::from_secs(1) {
                second += 1;
                let (ios, bytes) = (
                    live.ios.load(Ordering::Relaxed),
                    live.bytes.load(Ordering::Relaxed),
                );
                let dt = last.0.elapsed().as_secs_f64();
                eprintln!(
                    "[{label} {second:>3}s] {:>10.0} IOPS {:>9.1} MiB/s  ({} I/Os so far)",
                    (ios - last.1) as f64 / dt,
                    (bytes - last.2) as f64 / dt / (1 << 20) as f64,
                    ios
                );
                last = (Instant::now(), ios, bytes);
                if let Some(f) = stats.as_deref_mut() {
                    f.second(Counters {
                        bytes,
                        frames: None,
                        ios: Some(ios),
                        reads: Some(live.reads.load(Ordering::Relaxed)),
                        errors: live.errors.load(Ordering::Relaxed),
                        drops: None,
                    });
                }
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a worker thread panicked".into()))
            })
            .collect::<AppResult<Vec<_>>>()
    })?;
    Ok((results, t0.elapsed()))
}

impl NvmeJob for Perf {
    type Output = bool;

    fn run<R: RegisterAccess + 'static>(
        self,
        ctrl: Arc<NvmeController<R>>,
        opened: &Opened,
    ) -> AppResult<bool> {
        let args = self.0;
        let ns = ctrl.namespace(args.nsid)?.clone();
        let lba_size = ns.lba_size as u64;
        let max = ctrl.info().max_transfer;
        apps::check_block_size(args.bs, lba_size, args.nsid, max)?;
        let ns_bytes = ns.size_blocks * lba_size;
        let range = args.range.unwrap_or(ns_bytes);
        if range > ns_bytes {
            return Err(format!(
                "--range {} is larger than namespace {} ({}); use --range {} or less",
                human_bytes(range),
                args.nsid,
                human_bytes(ns_bytes),
                human_bytes(ns_bytes)
            )
            .into());
        }
        let range_ios = range / args.bs;
        if range_ios == 0 {
            return Err(format!("--range {range} holds no block of --bs {}", args.bs).into());
        }
        let granted = ctrl.info().io_queues as u64;
        if args.queues as u64 > granted {
            return Err(format!(
                "--queues {} is more than the {granted} I/O queues the controller grants; use --queues {granted} or less",
                args.queues
            )
            .into());
        }
        // A queue of N entries holds N - 1 commands: a deeper --qd would be
        // cut to the queue's size without a word.
        let entries = ctrl.queue_limit();
        if args.qd >= entries {
            return Err(format!(
                "--qd {} is more than a queue of this controller holds ({entries} entries, \
                 CAP.MQES); use --qd {} or less",
                args.qd,
                entries - 1
            )
            .into());
        }
        let plan = Plan {
            blocks_per_io: (args.bs / lba_size) as u32,
            lba_size,
            range_ios,
            args,
        };
        let a = &plan.args;
        let t0 = Instant::now();
        println!(
            "nvme-perf: {} ({}), namespace {}: {} blocks of {} B; {:?} {:?}, bs {}, qd {}, {} queue pair(s), range {}{}",
            opened.name,
            opened.backend,
            a.nsid,
            ns.size_blocks,
            lba_size,
            a.pattern,
            a.workload,
            human_bytes(a.bs),
            a.qd,
            a.queues,
            human_bytes(range_ios * a.bs),
            if a.verify { ", verify" } else { "" }
        );
        if a.verify || a.fill {
            let (r, t) = run_phase(&ctrl, &plan, "fill", None, None, true, None)?;
            let written: u64 = r.iter().map(|w| w.bytes).sum();
            let errors: Vec<_> = r.iter().flat_map(|w| w.errors.iter()).collect();
            if let Some(e) = errors.first() {
                return Err(format!("writing the pattern failed: {e}").into());
            }
            println!(
                "fill:        wrote the pattern over {} in {:.2} s",
                human_bytes(written),
                t.as_secs_f64()
            );
            // A signal during the fill: the pattern is not whole, so there
            // is nothing to measure or verify against.
            if let Some(line) = signals::stopped_line(t0.elapsed().as_secs_f64()) {
                println!("ended:       {line}, during the fill; no run");
                return Ok(true);
            }
        }
        let duration = a.count.is_none().then(|| Duration::from_secs_f64(a.time));
        let mut stats = StatsFile::open("nvme-perf", a.stats.as_deref(), a.prometheus.as_deref())?;
        let (results, elapsed) = run_phase(
            &ctrl,
            &plan,
            "run",
            duration,
            a.count,
            false,
            stats.as_mut(),
        )?;
        let mut hist = Histogram::new();
        let (mut ios, mut bytes, mut cpu, mut mismatches, mut cycles) =
            (0, 0, Duration::ZERO, 0, 0);
        let mut failed_ios = 0u64;
        let mut errors = Vec::new();
        for r in &results {
            hist.merge(&r.hist);
            ios += r.ios;
            bytes += r.bytes;
            cpu += r.cpu;
            mismatches += r.mismatches;
            cycles += r.cycles;
            failed_ios += r.failed;
            errors.extend(r.errors.iter().cloned());
        }
        let secs = elapsed.as_secs_f64();
        println!("I/Os:        {ios} in {secs:.2} s");
        println!("IOPS:        {:.0}", ios as f64 / secs);
        println!(
            "bandwidth:   {:.1} MiB/s",
            bytes as f64 / secs / (1 << 20) as f64
        );
        println!(
            "latency:     min {}  avg {}  p50 {}  p99 {}  p99.9 {}  max {}",
            fmt_ns(hist.min()),
            fmt_ns(hist.mean() as u64),
            fmt_ns(hist.quantile(0.5)),
            fmt_ns(hist.quantile(0.99)),
            fmt_ns(hist.quantile(0.999)),
            fmt_ns(hist.max())
        );
        println!(
            "driver CPU:  {:.3} s in {} thread(s), {:.0} ns per I/O",
            cpu.as_secs_f64(),
            results.len(),
            if ios > 0 {
                cpu.as_nanos() as f64 / ios as f64
            } else {
                0.0
            }
        );
        for e in &errors {
            println!("error: {e}");
        }
        if a.verify {
            println!(
                "verify:      {} read(s) checked, {mismatches} mismatched",
                if a.workload == Workload::Write {
                    "no".to_string()
                } else {
                    "all".to_string()
                }
            );
        }
        if a.cycle_queues.is_some() {
            println!("queues:      deleted and created again {cycles} time(s)");
        }
        if let Some(line) = signals::stopped_line(t0.elapsed().as_secs_f64()) {
            println!("ended:       {line}");
        }
        let ok = errors.is_empty() && mismatches == 0;
        if let Some(f) = stats.as_mut() {
            let reads: u64 = results.iter().map(|r| r.reads).sum();
            let c = Counters {
                bytes,
                frames: None,
                ios: Some(ios),
                reads: Some(reads),
                errors: failed_ios,
                drops: None,
            };
            f.finish(
                ok,
                c,
                JsonObject::new()
                    .u64("ios", ios)
                    .u64("bytes", bytes)
                    .f64("secs", secs)
                    .f64("iops", ios as f64 / secs)
                    .f64("mib_per_s", bytes as f64 / secs / (1 << 20) as f64)
                    .u64("lat_min_ns", hist.min())
                    .u64("lat_p50_ns", hist.quantile(0.5))
                    .u64("lat_p99_ns", hist.quantile(0.99))
                    .u64("lat_max_ns", hist.max())
                    .u64("errors", failed_ios)
                    .u64("mismatches", mismatches)
                    .u64("queue_cycles", cycles)
                    .opt_str("stopped_by", signals::stop_signal_name().as_deref()),
            )?;
        }
        Ok(ok)
    }
}

fn main() {
    apps::restore_sigpipe();
    signals::install();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    let device = args.device.clone();
    let pages = args.hugepage_size;
    let ok = exit_on_error(with_nvme_pages(&device, pages, Perf(args)));
    apps::trace::session::end();
    if !ok {
        std::process::exit(1);
    }
}
