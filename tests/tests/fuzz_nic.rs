//! The NIC driver against hostile emulated NICs ([`EmuNic::set_hostile`]):
//! a seeded fuzz test, in the suite.
//!
//! Targets: igb RX and TX (82576, I350), ixgbe RX and TX (82599), each with
//! the device inline (deterministic for a seed), and a racing device thread
//! (threaded mode, every kind of mischief at once) for each family. Each
//! target runs `FUZZ_ITERS` iterations (default [`DEFAULT_ITERS`]) on one
//! port plugged into a `loop` wire; an iteration reseeds the device and
//! does a few rounds of sending, receiving and register reads. After every
//! round it asserts:
//! - no impossible frame accepted: a delivered frame is 1 to `buf_len`
//!   bytes long, in a buffer of the queue's pool, and not one the test
//!   already holds (nothing delivered twice; a DD on a descriptor that was
//!   never posted would give a buffer the driver does not own);
//! - every buffer accounted for: free + cached + posted (RX) or in flight
//!   (TX) + quarantined + held by the test = the pool's capacity;
//! - every driver error is `DeviceMisbehaved` or `DeviceRemoved`.
//!
//! No panic: a panic names the target, iteration and seeds (a panic hook).
//! No hang: a watchdog ends the process, naming them too, when an
//! iteration takes longer than [`HANG_AFTER`]. At the end of each target
//! the port is surprise-removed and must say so (`DeviceRemoved`).
//!
//! `FUZZ_SEED=<n>` replays a run (the seed is printed; without it the run
//! takes a new seed from the clock), `FUZZ_TARGET=<name>` runs one target,
//! `FUZZ_ITERS=<n>` sets the iterations (long runs).
#![forbid(unsafe_code)]

use dma::{Buf, Pool, RegionOptions};
use drivers::nic::{Chip, Nic, NicError, NicOptions, RxPacket, RxQueue, TxPacket, TxQueue};
use emu::nic::{EmuNic, HostileConfig, NicModel, NicModelConfig};
use emu::wire::open_wire;
use emu::{EmuBar, RunMode};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Rxq = RxQueue<EmuBar<NicModel>>;
type Txq = TxQueue<EmuBar<NicModel>>;

/// Iterations per target in the suite: 5 targets x 2000 take a few
/// seconds in a release build.
const DEFAULT_ITERS: u64 = 2000;
/// Rounds (send, receive, check) per iteration.
const ROUNDS: usize = 4;
/// An iteration that takes longer than this is a hang.
const HANG_AFTER: Duration = Duration::from_secs(20);
const MAC: [u8; 6] = [0x02, 0, 0, 0, 0xf0, 0x01];

#[derive(Clone, Copy)]
struct Target {
    name: &'static str,
    chip: Chip,
    mode: RunMode,
    hostile: HostileConfig,
    /// Received frames are also passed back out with `nic::forward` (the
    /// buffers go ring to ring as indices).
    forward: bool,
}

const TARGETS: [Target; 8] = [
    Target {
        name: "igb-rx",
        chip: Chip::I82576,
        mode: RunMode::Inline,
        hostile: HostileConfig {
            rx: true,
            tx: false,
            registers: true,
        },
        forward: false,
    },
    Target {
        name: "igb-tx",
        chip: Chip::I350,
        mode: RunMode::Inline,
        hostile: HostileConfig {
            rx: false,
            tx: true,
            registers: true,
        },
        forward: false,
    },
    Target {
        name: "ixgbe-rx",
        chip: Chip::X82599,
        mode: RunMode::Inline,
        hostile: HostileConfig {
            rx: true,
            tx: false,
            registers: true,
        },
        forward: false,
    },
    Target {
        name: "ixgbe-tx",
        chip: Chip::X82599,
        mode: RunMode::Inline,
        hostile: HostileConfig {
            rx: false,
            tx: true,
            registers: true,
        },
        forward: false,
    },
    Target {
        name: "igb-race",
        chip: Chip::I350,
        mode: RunMode::Threaded,
        hostile: HostileConfig::ALL,
        forward: false,
    },
    Target {
        name: "ixgbe-race",
        chip: Chip::X82599,
        mode: RunMode::Threaded,
        hostile: HostileConfig::ALL,
        forward: false,
    },
    Target {
        name: "igb-fwd",
        chip: Chip::I82576,
        mode: RunMode::Inline,
        hostile: HostileConfig::ALL,
        forward: true,
    },
    Target {
        name: "ixgbe-fwd",
        chip: Chip::X82599,
        mode: RunMode::Threaded,
        hostile: HostileConfig::ALL,
        forward: true,
    },
];

/// splitmix64 (as the model's hostile mode): the test's own draws.
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
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}; give a number (decimal or 0x hex)")))
}

/// Where the run is, for the panic hook and the watchdog.
struct Progress {
    what: Mutex<String>,
    /// Bumped by every iteration.
    beat: AtomicU64,
    done: AtomicBool,
}

fn where_now(p: &Progress) -> String {
    p.what.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What one target did.
#[derive(Default, Debug)]
struct Tally {
    delivered: u64,
    sent: u64,
    forwarded: u64,
    misbehaved: u64,
    removed: u64,
    acts: u64,
}

/// Check and count a driver error: only the named device errors may come.
fn device_error(e: NicError, t: &mut Tally, ctx: &str) {
    match e {
        NicError::DeviceMisbehaved(_) => t.misbehaved += 1,
        NicError::DeviceRemoved { .. } => t.removed += 1,
        other => {
            panic!("{ctx}: a hostile device gave {other:?}, not DeviceMisbehaved / DeviceRemoved")
        }
    }
}

/// What the test holds: received frames (by IOVA) and packets not yet sent.
struct Held {
    rx: Vec<Buf>,
    rx_iovas: HashSet<u64>,
    tx: Vec<TxPacket>,
}

impl Held {
    fn tx_bufs(&self) -> usize {
        self.tx.iter().map(|p| p.segments().len()).sum()
    }

    fn clear(&mut self) {
        self.rx.clear();
        self.rx_iovas.clear();
        self.tx.clear();
    }
}

fn check_frames(rxq: &Rxq, pool: &Pool, got: Vec<RxPacket>, held: &mut Held, ctx: &str) {
    let lo = pool.region().iova();
    let hi = lo + pool.region().len() as u64;
    for p in got {
        let len = p.buf.len();
        assert!(
            (1..=rxq.buf_len()).contains(&len),
            "{ctx}: frame of {len} bytes accepted into {}-byte buffers",
            rxq.buf_len()
        );
        let iova = p.buf.iova();
        assert!(
            (lo..hi).contains(&iova),
            "{ctx}: frame in buffer {iova:#x}, outside the queue's pool {lo:#x}..{hi:#x}"
        );
        assert!(
            held.rx_iovas.insert(iova),
            "{ctx}: buffer {iova:#x} delivered twice"
        );
        held.rx.push(p.buf);
    }
}

fn check_accounts(
    rxq: &mut Rxq,
    txq: &Txq,
    rx_pool: &Pool,
    tx_pool: &Pool,
    held: &Held,
    forwarding: bool,
    ctx: &str,
) {
    let cached = rxq.cache_mut().len();
    let rx_side =
        rx_pool.free_count() + cached + rxq.posted() + rx_pool.quarantined() + held.rx.len();
    // One segment per descriptor, no offload and so no context descriptor:
    // the descriptors in flight are the buffers in flight.
    let tx_side = tx_pool.free_count() + txq.in_flight() + tx_pool.quarantined() + held.tx_bufs();
    let show = format!(
        "RX pool: {} free + {cached} cached + {} posted + {} quarantined + {} held; \
         TX pool: {} free + {} in flight + {} quarantined + {} held",
        rx_pool.free_count(),
        rxq.posted(),
        rx_pool.quarantined(),
        held.rx.len(),
        tx_pool.free_count(),
        txq.in_flight(),
        tx_pool.quarantined(),
        held.tx_bufs()
    );
    if forwarding {
        // Forwarded RX buffers are in flight in the TX ring: only the sum
        // over both pools adds up.
        assert_eq!(
            rx_side + tx_side,
            rx_pool.capacity() + tx_pool.capacity(),
            "{ctx}: {show}"
        );
    } else {
        assert_eq!(rx_side, rx_pool.capacity(), "{ctx}: {show}");
        assert_eq!(tx_side, tx_pool.capacity(), "{ctx}: {show}");
    }
}

fn frame(pool: &Pool, rng: &mut Rng, len: usize) -> Option<Buf> {
    let mut b = pool.alloc()?;
    b.set_len(len);
    let s = b.as_mut_slice();
    s.fill(rng.next() as u8);
    s[0..6].copy_from_slice(&MAC);
    s[6..12].copy_from_slice(&MAC);
    s[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    Some(b)
}

/// One target: `iters` iterations from `seed`.
fn run_target(t: Target, seed: u64, iters: u64, progress: &Progress) -> Tally {
    let wire = open_wire("loop").unwrap();
    let emu = EmuNic::new(t.chip, NicModelConfig::with_mac(MAC), wire, t.mode).unwrap();
    emu.pci().enable();
    let opts = NicOptions {
        rx_ring: 64,
        tx_ring: 64,
        pool_bufs: 256,
        region: RegionOptions::EMULATED,
        link_timeout: Duration::from_secs(2),
        ..NicOptions::default()
    };
    let nic = Nic::init(emu.bar(), emu.mapper(), t.chip, opts).unwrap();
    let mut rxq = nic.rx_queue(0).unwrap();
    let mut txq = nic.tx_queue(0).unwrap();
    let rx_pool = nic.pool(0).clone();
    let tx_pool = Pool::new(emu.mapper(), 256, 2048, RegionOptions::EMULATED).unwrap();
    let mut tally = Tally::default();
    let mut held = Held {
        rx: Vec::new(),
        rx_iovas: HashSet::new(),
        tx: Vec::new(),
    };
    let mut got = Vec::new();
    for i in 0..iters {
        let iseed = seed ^ (i.wrapping_mul(0xd1b5_4a32_d192_ed03)) ^ t.name.len() as u64;
        let ctx = format!(
            "target {} iteration {i} (device seed {iseed:#x}; replay: FUZZ_SEED={seed:#x} FUZZ_TARGET={} FUZZ_ITERS={})",
            t.name,
            t.name,
            i + 1
        );
        *progress.what.lock().unwrap_or_else(|e| e.into_inner()) = ctx.clone();
        progress.beat.fetch_add(1, Ordering::Relaxed);
        emu.set_hostile(iseed, Some(t.hostile));
        let mut rng = Rng(iseed);
        for _ in 0..ROUNDS {
            // Send a few frames, of random lengths, sometimes two segments.
            for _ in 0..rng.below(5) {
                let len = 60 + rng.below(1455) as usize;
                let Some(b) = frame(&tx_pool, &mut rng, len) else {
                    break;
                };
                // Sometimes a second segment, in a buffer of its own.
                // (A frame of at most 1514 bytes, without FCS.)
                let room = 1514 - len as u64;
                let pkt = match (rng.below(4), tx_pool.alloc()) {
                    (0, Some(mut tail)) if room > 0 => {
                        tail.set_len(1 + rng.below(room) as usize);
                        TxPacket::header_payload(b, tail)
                    }
                    _ => TxPacket::new(b),
                };
                held.tx.push(pkt);
            }
            match txq.tx_batch(&mut held.tx) {
                Ok(n) => tally.sent += n as u64,
                Err(e) => device_error(e, &mut tally, &ctx),
            }
            txq.clean();
            if emu.is_threaded() {
                // Give the device thread a moment against the driver (a
                // yield would give the core away for a whole time slice on
                // a loaded machine: milliseconds per round).
                for _ in 0..1000 {
                    std::hint::spin_loop();
                }
            } else {
                emu.poll();
            }
            if t.forward && rng.below(2) == 0 {
                match drivers::nic::forward(&mut rxq, &mut txq, 1 + rng.below(64) as usize) {
                    Ok(f) => tally.forwarded += f.frames as u64,
                    Err(e) => device_error(e, &mut tally, &ctx),
                }
            }
            got.clear();
            let r = rxq.rx_batch(&mut got, 1 + rng.below(64) as usize);
            tally.delivered += got.len() as u64;
            check_frames(&rxq, &rx_pool, std::mem::take(&mut got), &mut held, &ctx);
            if let Err(e) = r {
                device_error(e, &mut tally, &ctx);
            }
            match rng.below(4) {
                0 => {
                    if let Err(e) = rxq.device_head() {
                        device_error(e, &mut tally, &ctx);
                    }
                }
                1 => {
                    if let Err(e) = txq.device_head() {
                        device_error(e, &mut tally, &ctx);
                    }
                }
                2 => {
                    if let Err(e) = nic.try_stats() {
                        device_error(e, &mut tally, &ctx);
                    }
                }
                _ => {
                    if let Err(e) = nic.link() {
                        device_error(e, &mut tally, &ctx);
                    }
                }
            }
            check_accounts(&mut rxq, &txq, &rx_pool, &tx_pool, &held, t.forward, &ctx);
            // Give back some of what the test holds.
            if rng.below(2) == 0 {
                held.clear();
            }
        }
    }
    emu.set_hostile(0, None);
    held.clear();
    tally.acts = emu.model().hostile_acts();
    // A port pulled off the bus says so, whatever the hostile run left.
    let ctx = format!(
        "target {} after {iters} iterations (FUZZ_SEED={seed:#x})",
        t.name
    );
    emu.surprise_remove();
    for e in [
        rxq.device_head().unwrap_err(),
        txq.device_head().unwrap_err(),
        nic.link().unwrap_err(),
    ] {
        assert!(
            matches!(e, NicError::DeviceRemoved { .. }),
            "{ctx}: a removed port gave {e}"
        );
    }
    drop(rxq);
    drop(txq);
    // Dropped on a device that no longer answers: every buffer it may
    // still hold is quarantined, none lost.
    for (name, pool) in [("TX", &tx_pool), ("RX", &rx_pool)] {
        assert_eq!(
            pool.free_count() + pool.quarantined(),
            pool.capacity(),
            "{ctx}: {name} pool after the queues went"
        );
    }
    tally
}

#[test]
fn fuzz_hostile_nics_never_break_the_driver() {
    let iters = env_u64("FUZZ_ITERS").unwrap_or(DEFAULT_ITERS);
    let seed = env_u64("FUZZ_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ (std::process::id() as u64) << 32
    });
    let only = std::env::var("FUZZ_TARGET").ok();
    if let Some(name) = &only {
        assert!(
            TARGETS.iter().any(|t| t.name == name),
            "FUZZ_TARGET={name}: no such target; use one of {:?}",
            TARGETS.iter().map(|t| t.name).collect::<Vec<_>>()
        );
    }
    println!("fuzz_nic: seed {seed:#x} (FUZZ_SEED replays), {iters} iterations per target");

    let progress = Arc::new(Progress {
        what: Mutex::new(String::from("setup")),
        beat: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    let p = progress.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("fuzz_nic: panic in {}", where_now(&p));
        default_hook(info);
    }));
    let p = progress.clone();
    let watchdog = std::thread::spawn(move || {
        let mut last = (p.beat.load(Ordering::Relaxed), Instant::now());
        while !p.done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
            let beat = p.beat.load(Ordering::Relaxed);
            if beat != last.0 {
                last = (beat, Instant::now());
            } else if last.1.elapsed() > HANG_AFTER {
                eprintln!(
                    "fuzz_nic: HANG: no progress for {HANG_AFTER:?} in {}",
                    where_now(&p)
                );
                std::process::exit(101);
            }
        }
    });

    let start = Instant::now();
    let mut total = 0;
    for t in TARGETS {
        if only.as_deref().is_some_and(|n| n != t.name) {
            continue;
        }
        let t0 = Instant::now();
        let tally = run_target(t, seed, iters, &progress);
        total += iters;
        println!(
            "fuzz_nic: {:<10} {iters} iterations in {:.2?}: {} frames delivered, {} sent, \
             {} forwarded, {} DeviceMisbehaved, {} DeviceRemoved, {} hostile acts",
            t.name,
            t0.elapsed(),
            tally.delivered,
            tally.sent,
            tally.forwarded,
            tally.misbehaved,
            tally.removed,
            tally.acts
        );
        assert!(
            tally.acts > 0,
            "target {}: the device did nothing hostile",
            t.name
        );
        assert!(
            tally.delivered > 0 || !t.hostile.rx,
            "target {}: no frame ever arrived, the run tested nothing",
            t.name
        );
    }
    progress.done.store(true, Ordering::Release);
    watchdog.join().unwrap();
    println!(
        "fuzz_nic: {total} iterations over {} targets in {:.2?}, seed {seed:#x}",
        if only.is_some() { 1 } else { TARGETS.len() },
        start.elapsed()
    );
}
