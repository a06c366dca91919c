//! Fuzzing the NVMe driver against a hostile emulated controller
//! (`emu::nvme::Fault::Hostile`): random and adversarial completions,
//! Identify data and register reads, and in threaded mode a device thread
//! that posts completions nobody asked for while the driver polls.
//!
//! Targets: `init` (reset, identify, queue grant, one queue pair),
//! `blocking` (split reads and writes), `async_poll` (submit, ring, poll with
//! tags and pool buffers), `threaded` (the async and blocking paths against
//! a racing device thread). Each iteration has its own seed and asserts: no
//! panic, no hang (a watchdog), no completion delivered that is not in
//! flight or delivered twice, each buffer back with the command it was
//! given to, every pool buffer accounted for (free + held + quarantined =
//! capacity), and the truth wherever the controller told no lie.
//!
//! The tests are `fuzz_<target>`; `tests/run.sh` runs them on a line of
//! their own (`--nocapture` shows each target's time, lies told and I/Os
//! checked against the truth). `FUZZ_ITERS` sets the iterations per target
//! (default 2000), `FUZZ_SEED` the first seed (iteration `i` uses seed + i);
//! a failure prints the command line that replays it.
#![forbid(unsafe_code)]

use dma::{Pool, RegionOptions};
use drivers::nvme::{Completion, IoQueuePair, NvmeController, NvmeError, NvmeOptions};
use emu::nvme::{EmuNvme, Fault, Hostility, NamespaceConfig, NvmeModel, NvmeModelConfig};
use emu::{EmuBar, RunMode};
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Qp = IoQueuePair<EmuBar<NvmeModel>>;
type Ctrl = NvmeController<EmuBar<NvmeModel>>;

const DEFAULT_ITERS: u64 = 2000;
/// Command timeout of the inline controllers: they complete a command
/// within the doorbell write that submits it, and the driver polls before
/// it looks at the clock, so only a lost completion waits this long.
const INLINE_TIMEOUT: Duration = Duration::from_millis(1);
/// Command timeout of the threaded controllers: a lost completion costs
/// this much; an honest one is late only if the device thread got no core
/// for that long (the threaded target accepts timeouts, and retries an
/// honest init that timed out).
const THREADED_TIMEOUT: Duration = Duration::from_millis(4);
const DEFAULT_SEED: u64 = 0x6e76_6d65_f022;
/// Longest an iteration may take before the watchdog calls it a hang: the
/// driver's waits are bounded by the command timeout below and CAP.TO
/// (which a lying CAP can make 127.5 s; such a CAP is refused earlier).
const HANG: Duration = Duration::from_secs(20);
/// LBA size and namespace size of the fuzzed controller.
const LBA: usize = 512;
const NS_BLOCKS: u64 = 2048;
/// Reads come from the lower half (a fixed pattern), writes go to the upper.
const HALF: u64 = NS_BLOCKS / 2;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => {
            let t = v.trim();
            let parsed = match t.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => t.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v}: not a number; give e.g. {name}=20000"))
        }
    }
}

/// Figures for the output, per target: init runs the driver accepted, I/Os
/// checked against the truth (no lie told yet), lies told.
static ACCEPTED: Figure = Figure::new();
static TRUTH_CHECKED: Figure = Figure::new();
static LIES: Figure = Figure::new();

const TARGETS: [&str; 4] = ["init", "blocking", "async_poll", "threaded"];

thread_local! {
    /// Index in [`TARGETS`] of the target this thread runs.
    static TARGET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A count per target (the targets run in parallel).
struct Figure([AtomicU64; TARGETS.len()]);

impl Figure {
    const fn new() -> Self {
        Figure([const { AtomicU64::new(0) }; TARGETS.len()])
    }
    /// Add `n` to the running target's count.
    fn add(&self, n: u64) {
        self.0[TARGET.get()].fetch_add(n, Ordering::Relaxed);
    }
    fn of(&self, target: usize) -> u64 {
        self.0[target].load(Ordering::Relaxed)
    }
}

/// splitmix64: the test's own choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// The iteration running: target, seed, start.
type Running = Arc<Mutex<Option<(&'static str, u64, Instant)>>>;

/// Fails the process, naming the target and seed, if an iteration runs
/// longer than [`HANG`].
struct Watchdog {
    current: Running,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start() -> Self {
        let current: Running = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (current.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if let Some((target, seed, since)) = *c.lock().unwrap() {
                    if since.elapsed() > HANG {
                        eprintln!(
                            "fuzz_nvme: HANG: target {target} seed {seed:#x} ran {:?}; replay: \
                             FUZZ_SEED={seed:#x} FUZZ_ITERS=1 cargo test --release -p e2e-tests \
                             --test fuzz_nvme fuzz_{target} -- --nocapture",
                            since.elapsed()
                        );
                        std::process::exit(1);
                    }
                }
            }
        });
        Watchdog {
            current,
            stop,
            thread: Some(thread),
        }
    }
    fn enter(&self, target: &'static str, seed: u64) {
        *self.current.lock().unwrap() = Some((target, seed, Instant::now()));
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Run `body` for every seed of the target, under the watchdog; a panic
/// (an assertion of the body or one inside the driver) fails the test after
/// printing the seed. Prints the target's figures.
fn fuzz(target: &'static str, body: impl Fn(u64)) {
    let iters = env_u64("FUZZ_ITERS", DEFAULT_ITERS);
    let first = env_u64("FUZZ_SEED", DEFAULT_SEED);
    let index = TARGETS.iter().position(|&t| t == target).expect("a target");
    TARGET.set(index);
    let dog = Watchdog::start();
    let start = Instant::now();
    for i in 0..iters {
        let seed = first.wrapping_add(i);
        dog.enter(target, seed);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| body(seed))) {
            eprintln!(
                "fuzz_nvme: FAILED: target {target} iteration {i} seed {seed:#x}; replay: \
                 FUZZ_SEED={seed:#x} FUZZ_ITERS=1 cargo test --release -p e2e-tests \
                 --test fuzz_nvme fuzz_{target} -- --nocapture"
            );
            resume_unwind(p);
        }
    }
    println!(
        "fuzz_nvme: target {target}: {iters} iterations (seeds {first:#x}..{:#x}) in \
         {:.2?}: {} lies told, {} inits accepted, {} I/Os checked against the truth",
        first.wrapping_add(iters),
        start.elapsed(),
        LIES.of(index),
        ACCEPTED.of(index),
        TRUTH_CHECKED.of(index),
    );
}

fn config(rng: &mut Rng) -> NvmeModelConfig {
    NvmeModelConfig {
        namespaces: vec![NamespaceConfig {
            lba_size: LBA as u32,
            ..NamespaceConfig::ram(NS_BLOCKS * LBA as u64)
        }],
        // 4 KiB or 8 KiB per command: reads of up to 32 KiB split.
        mdts: rng.range(1, 2) as u8,
        ..NvmeModelConfig::default()
    }
}

fn opts(timeout: Duration) -> NvmeOptions {
    NvmeOptions {
        region: RegionOptions::EMULATED,
        admin_depth: 8,
        command_timeout: timeout,
        io_queues: 8,
        ..NvmeOptions::default()
    }
}

fn pattern(lba: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let at = lba * LBA as u64 + i as u64;
            (at ^ (at >> 8) ^ 0x5a) as u8
        })
        .collect()
}

/// A controller whose lower half holds [`pattern`] and the driver on it,
/// before the controller turns hostile.
fn honest_controller(
    mode: RunMode,
    rng: &mut Rng,
    timeout: Duration,
) -> Result<(EmuNvme, Ctrl), NvmeError> {
    let emu = EmuNvme::new(config(rng), mode).expect("model");
    emu.write_backing(1, 0, &pattern(0, HALF as usize * LBA))
        .expect("backing");
    emu.pci().enable();
    let ctrl = NvmeController::init(emu.bar(), emu.mapper(), opts(timeout))?;
    Ok((emu, ctrl))
}

/// Completions hostile at a rate of up to 4, 16 or 160 in 1024, a third of
/// the seeds each: the low rates let more I/Os be checked against the truth
/// before the first lie, the high one makes lies pile up.
fn hostility(rng: &mut Rng, seed: u64) -> Hostility {
    let max_rate = [4, 16, 160][rng.below(3) as usize];
    Hostility {
        seed,
        rate: rng.range(1, max_rate) as u32,
        completions: true,
        identify: false,
        registers: false,
    }
}

/// Errors a hostile controller may cause in I/O; anything else fails.
fn expected_io_error(e: &NvmeError) -> bool {
    matches!(
        e,
        NvmeError::Status { .. }
            | NvmeError::Timeout { .. }
            | NvmeError::DeviceMisbehaved(_)
            | NvmeError::ControllerFatal
            | NvmeError::NotResponding
    )
}

#[test]
fn fuzz_init() {
    fuzz("init", |seed| {
        let mut rng = Rng(seed);
        let emu = EmuNvme::new(config(&mut rng), RunMode::Inline).expect("model");
        emu.pci().enable();
        emu.inject(Fault::Hostile(Hostility {
            seed,
            rate: rng.range(1, 1024) as u32,
            completions: rng.below(2) == 0,
            identify: true,
            registers: rng.below(2) == 0,
        }));
        let Ok(ctrl) = NvmeController::init(emu.bar(), emu.mapper(), opts(INLINE_TIMEOUT)) else {
            LIES.add(emu.model().hostile_acts());
            return;
        };
        ACCEPTED.add(1);
        // What the driver took for true must be consistent, whatever the
        // device said.
        let info = ctrl.info();
        assert!(info.max_transfer >= 4096 && info.max_transfer.is_multiple_of(4096));
        assert!(info.nn != u32::MAX && info.io_queues >= 1);
        let mut last = 0;
        for n in ctrl.namespaces() {
            assert!(n.nsid > last && n.nsid <= info.nn, "{n:?} after {last}");
            last = n.nsid;
            assert!(n.lba_size.is_power_of_two() && (512..=65536).contains(&n.lba_size));
            assert!(n.utilization_blocks <= n.capacity_blocks);
            assert!(n.capacity_blocks <= n.size_blocks);
            assert!(
                n.size_bytes() / u64::from(n.lba_size) == n.size_blocks,
                "{n:?}"
            );
        }
        if let Ok(mut qp) = ctrl.create_io_queue_pair(4) {
            if let Some(n) = ctrl.namespaces().first().cloned() {
                let pool = Pool::new(ctrl.mapper().clone(), 1, 65536, RegionOptions::EMULATED)
                    .expect("pool");
                let mut buf = pool.alloc().expect("buffer");
                buf.set_len(n.lba_size as usize);
                if let Err(e) = qp.read(n.nsid, 0, buf) {
                    assert!(expected_io_error(&e.error), "{e}");
                }
            }
        }
    });
}

/// Blocking reads and writes of random sizes; in inline mode, as long as
/// the controller has told no lie yet, each must succeed with the true data
/// (after a lie, a stale completion may name a CID that was reused since:
/// nothing a driver can tell from a real one).
/// Returns how many buffers the driver quarantined (kept, as a command of
/// the call may still be outstanding).
fn blocking_ops(emu: &EmuNvme, qp: &mut Qp, pool: &Pool, rng: &mut Rng, strict: bool) -> usize {
    let mut kept = 0;
    for _ in 0..rng.range(1, 4) {
        // A buffer whose call failed with commands outstanding is
        // quarantined (never given back): take a fresh one each time, and
        // stop when the pool has none left.
        let Some(mut buf) = pool.alloc() else {
            return kept;
        };
        let blocks = rng.range(1, 64);
        let len = blocks as usize * LBA;
        let is_read = rng.below(2) == 0;
        let lba = if is_read {
            rng.below(HALF - blocks + 1)
        } else {
            HALF + rng.below(HALF - blocks + 1)
        };
        buf.set_len(len);
        let fill = if is_read { 0xee } else { rng.next() as u8 };
        buf.as_mut_slice().fill(fill);
        let res = if is_read {
            qp.read(1, lba, buf)
        } else {
            qp.write(1, lba, buf)
        };
        let honest = emu.model().hostile_acts() == 0;
        let what = if is_read { "read" } else { "write" };
        match res {
            Ok(buf) if honest => {
                let truth = if is_read {
                    pattern(lba, len)
                } else {
                    let mut medium = vec![0u8; len];
                    emu.read_backing(1, lba * LBA as u64, &mut medium)
                        .expect("medium");
                    assert!(buf.as_slice().iter().all(|&b| b == fill));
                    medium
                };
                assert!(buf.as_slice() == truth.as_slice(), "honest {what} at {lba}");
                TRUTH_CHECKED.add(1);
            }
            Ok(_) => {}
            Err(e) if honest && strict => panic!("honest {what} of {blocks} at {lba}: {e}"),
            Err(e) => {
                assert!(expected_io_error(&e.error), "{e}");
                // A status error completes every command of the call, so
                // the buffer comes back; a timeout or a fatal controller
                // leaves commands outstanding, so it must not.
                if matches!(
                    e.error,
                    NvmeError::Timeout { .. }
                        | NvmeError::ControllerFatal
                        | NvmeError::NotResponding
                ) {
                    assert!(
                        e.buf.is_none(),
                        "a {what} that timed out gave its buffer back"
                    );
                }
                kept += usize::from(e.buf.is_none());
            }
        }
    }
    kept
}

/// Submit and poll with tags: every completion delivered must be of a
/// command in flight, once, with the buffer it was given.
fn async_ops(emu: &EmuNvme, qp: &mut Qp, pool: &Pool, rng: &mut Rng, strict: bool, wait: Duration) {
    let mut in_flight: HashMap<u64, (u64, bool, u64, usize)> = HashMap::new();
    let mut next_tag = 1u64;
    for _ in 0..rng.range(1, 4) {
        let mut submitted = Vec::new();
        for _ in 0..rng.range(1, qp.free_slots() as u64) {
            let Some(mut buf) = pool.alloc() else { break };
            let blocks = rng.range(1, 8);
            let len = blocks as usize * LBA;
            buf.set_len(len);
            let read = rng.below(2) == 0;
            let lba = if read {
                rng.below(HALF - blocks + 1)
            } else {
                buf.as_mut_slice().fill(next_tag as u8);
                HALF + rng.below(HALF - blocks + 1)
            };
            let dev = buf.into_device();
            let iova = dev.iova();
            let tag = next_tag;
            next_tag += 1;
            let res = if read {
                qp.submit_read(1, lba, dev, blocks as u32, tag)
            } else {
                qp.submit_write(1, lba, dev, blocks as u32, tag)
            };
            match res {
                Ok(()) => {
                    in_flight.insert(tag, (iova, read, lba, len));
                    submitted.push(tag);
                }
                Err((NvmeError::QueueFull, dev)) => {
                    drop(dev.reclaim());
                    break;
                }
                Err((e, _)) => panic!("submit: {e}"),
            }
        }
        qp.ring_doorbell();
        let deadline = Instant::now() + wait;
        // (tag, success, read data true)
        let mut delivered: Vec<(u64, bool, bool)> = Vec::new();
        let mut misbehaved = false;
        // At least one poll, however late this thread runs: an inline
        // controller has posted every completion by now.
        let mut first = true;
        while submitted.iter().any(|t| in_flight.contains_key(t))
            && (std::mem::take(&mut first) || Instant::now() < deadline)
        {
            let res = qp.poll(64, |c: Completion| {
                let Some((iova, read, lba, len)) = in_flight.remove(&c.tag) else {
                    panic!(
                        "completion of tag {} not in flight (or delivered twice)",
                        c.tag
                    );
                };
                let buf = c.buf.expect("a read or write has its buffer");
                assert_eq!(
                    buf.iova(),
                    iova,
                    "tag {} came back with another buffer",
                    c.tag
                );
                let data = buf.reclaim();
                let true_data = !read || data.as_slice() == pattern(lba, len).as_slice();
                delivered.push((c.tag, c.result.is_ok(), true_data));
            });
            if let Err(e) = res {
                assert!(matches!(e, NvmeError::DeviceMisbehaved(_)), "{e}");
                misbehaved = true;
            }
            std::thread::yield_now();
        }
        if strict && emu.model().hostile_acts() == 0 {
            assert!(!misbehaved, "honest device reported as misbehaving");
            assert!(
                submitted.iter().all(|t| !in_flight.contains_key(t)),
                "honest device: completions lost"
            );
            for &(tag, ok, true_data) in &delivered {
                assert!(
                    ok && true_data,
                    "honest device: tag {tag} ok {ok} data {true_data}"
                );
            }
            TRUTH_CHECKED.add(delivered.len() as u64);
        }
    }
}

/// The ops of one I/O iteration on `qp` of a controller that turns hostile
/// now, and the pool's books after the queue pair is gone.
fn io_ops(emu: &EmuNvme, ctrl: &Ctrl, mut qp: Qp, rng: &mut Rng, seed: u64, mix: Mix) {
    let strict = emu.model().mode() == RunMode::Inline;
    let wait = ctrl.options().command_timeout;
    let pool = Pool::new(
        ctrl.mapper().clone(),
        16,
        8 * LBA * 8,
        RegionOptions::EMULATED,
    )
    .expect("pool");
    // Lies the controller told before (a threaded one lives on): those
    // counted, the truth is checked only on a controller that never lied.
    let told = emu.model().hostile_acts();
    emu.inject(Fault::Hostile(hostility(rng, seed)));
    let (blocking, asynchronous) = match mix {
        Mix::Blocking => (true, false),
        Mix::Async => (false, true),
        Mix::Both => (true, true),
    };
    let mut kept = 0;
    if blocking {
        kept = blocking_ops(emu, &mut qp, &pool, rng, strict);
    }
    if asynchronous {
        async_ops(emu, &mut qp, &pool, rng, strict, wait);
    }
    let lies = emu.model().hostile_acts() - told;
    LIES.add(lies);
    let posted = qp.in_flight();
    if !strict {
        // The threaded target keeps its controller: delete the queues of an
        // honest one (entries a lie left behind may still be in the way).
        emu.clear_faults();
    }
    drop(qp);
    // Free, or quarantined because the device still owned it when its queue
    // pair went: nothing lost, nothing held.
    let (free, quarantined) = (pool.free_count(), pool.quarantined());
    assert_eq!(
        free + quarantined,
        pool.capacity(),
        "pool books: {free} free + {quarantined} quarantined != {} ({posted} in flight at drop)",
        pool.capacity()
    );
    assert!(
        quarantined <= posted + kept,
        "{quarantined} quarantined, {posted} were in flight, {kept} kept by failed blocking calls"
    );
}

/// Which I/O interfaces an iteration uses.
#[derive(Clone, Copy)]
enum Mix {
    Blocking,
    Async,
    Both,
}

/// Inline: a fresh controller per iteration, so a seed replays exactly.
fn inline_iteration(seed: u64, mix: Mix) {
    let mut rng = Rng(seed);
    let (emu, ctrl) =
        honest_controller(RunMode::Inline, &mut rng, INLINE_TIMEOUT).expect("honest init");
    let depth = rng.range(2, 32) as u16;
    let qp = ctrl.create_io_queue_pair(depth).expect("honest queue pair");
    io_ops(&emu, &ctrl, qp, &mut rng, seed, mix);
}

#[test]
fn fuzz_blocking() {
    fuzz("blocking", |seed| inline_iteration(seed, Mix::Blocking));
}

#[test]
fn fuzz_async_poll() {
    fuzz("async_poll", |seed| inline_iteration(seed, Mix::Async));
}

/// Threaded: the device thread runs concurrently and posts completions
/// nobody asked for while the driver submits and polls. Starting a
/// controller with a device thread costs milliseconds, so iterations share
/// one until a lie leaves it unusable (its admin queue no longer answers a
/// queue creation: then a new one is started); an iteration is a new queue
/// pair, hostile with the iteration's seed, its ops and its deletion. Runs
/// are not exactly replayable (threads interleave as they will).
#[test]
fn fuzz_threaded() {
    let world: Mutex<Option<(EmuNvme, Ctrl)>> = Mutex::new(None);
    let restarts = AtomicU64::new(0);
    fuzz("threaded", |seed| {
        let mut rng = Rng(seed);
        let mut world = world.lock().unwrap_or_else(|p| p.into_inner());
        let depth = rng.range(2, 32) as u16;
        let mut starts = 0;
        let qp = 'qp: loop {
            if let Some((emu, ctrl)) = world.as_ref() {
                emu.clear_faults();
                // Entries lies left in the admin queue are met (and
                // reported) one command at a time: a few tries.
                for _ in 0..4 {
                    match ctrl.create_io_queue_pair(depth) {
                        Ok(qp) => break 'qp qp,
                        Err(NvmeError::DeviceMisbehaved(_) | NvmeError::Status { .. }) => {}
                        // A lost completion; or a deletion a lie made fail
                        // keeps its QID taken (the queues may still exist),
                        // and all of them taken is an InvalidRequest.
                        Err(e) => {
                            assert!(
                                expected_io_error(&e) || matches!(e, NvmeError::InvalidRequest(_)),
                                "{e}"
                            );
                            break;
                        }
                    }
                }
            }
            // Drop the old one (device thread included) before the new one.
            *world = None;
            starts += 1;
            assert!(starts <= 20, "no honest controller after 20 starts");
            restarts.fetch_add(1, Ordering::Relaxed);
            match honest_controller(RunMode::Threaded, &mut rng, THREADED_TIMEOUT) {
                Ok(w) => *world = Some(w),
                // The machine was busier than the short timeout: no lie told yet.
                Err(NvmeError::Timeout { .. }) => {}
                Err(e) => panic!("honest init: {e}"),
            }
        };
        let (emu, ctrl) = world.as_ref().expect("started above");
        let mix = [Mix::Blocking, Mix::Async, Mix::Both][rng.below(3) as usize];
        io_ops(emu, ctrl, qp, &mut rng, seed, mix);
    });
    println!(
        "fuzz_nvme: target threaded: {} controllers started",
        restarts.load(Ordering::Relaxed)
    );
}
