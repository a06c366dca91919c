//! fwd: forward frames between two NIC ports in both directions, in
//! batches; per-second statistics of each port. Each received buffer goes
//! straight into the other port's TX ring ([`drivers::nic::forward`]), and
//! only as many frames are received as that ring has room for: a slow
//! output backs up into the input port's ring, where flow control
//! (`pause=on`) holds the sender, or the port drops and counts, as a switch
//! with a full buffer does. Nothing is dropped by fwd itself.
#![forbid(unsafe_code)]

use apps::backoff::Backoff;
use apps::link::IdleLinkCheck;
use apps::monitor::{JsonObject, StatsFile};
use apps::net::{self, Flow};
use apps::open::{with_nics, NicJob, Port};
use apps::port_stats::{monitor_finish, monitor_second, Counts, RatePrinter};
use apps::{exit_on_error, signals, AppResult};
use clap::Parser;
use drivers::nic::{forward, NicOptions};
use drivers::regs::RegisterAccess;
use spec::net::ethernet::MIN_FRAME_LEN;
use std::time::{Duration, Instant};

/// Forward every frame received on one port out of the other, both ways.
#[derive(Debug, Parser)]
#[command(
    name = "fwd",
    version,
    after_help = "DEV1 and DEV2 are PCI addresses bound to vfio-pci or emulated ports \
(emu:igb|i350|ixgbe,wire=...), both of one kind.\n\nExamples:\n  \
fwd emu:ixgbe,wire=unix:/tmp/a emu:ixgbe,wire=unix:/tmp/b\n  fwd 0000:03:00.0 0000:03:00.1 --batch 64"
)]
struct Args {
    /// First port.
    dev1: String,
    /// Second port.
    dev2: String,
    #[command(flatten)]
    link: apps::link::LinkArgs,
    /// Frames per RX batch (and so per TX batch).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    batch: u16,
    /// Seconds to run (default: until --count or forever).
    #[arg(long, value_parser = apps::parse_seconds)]
    time: Option<f64>,
    /// Stop after forwarding this many frames (both directions together).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Stop after this many seconds without a frame (0: never).
    #[arg(long, default_value_t = 0.0, value_parser = apps::parse_seconds)]
    idle_exit: f64,
    /// No per-second lines (for instruction counting).
    #[arg(long)]
    quiet: bool,
    /// Yield the CPU at once on a round that found no frame, instead of
    /// spinning first (for instruction counting under valgrind, whose
    /// threads take turns: a spinning thread would hold the turn).
    #[arg(long)]
    idle_yield: bool,
    /// Send this many 60-byte UDP frames out of DEV2 at start (broadcast):
    /// with both ports on `wire=loop` they then circle through fwd for
    /// ever, a traffic source that never overruns a ring (keep it below
    /// the RX ring size, 512). For benchmarks; 0: none.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=511))]
    inject: u16,
    /// Write the per-second figures as JSON lines and the final report as
    /// one JSON object to FILE (fields: see the apps::monitor docs).
    #[arg(long, value_name = "FILE")]
    stats: Option<std::path::PathBuf>,
    /// Keep FILE, a node_exporter textfile-collector file (Prometheus text
    /// format), rewritten atomically each second with the run's counters,
    /// the port's own counters and gauges (names: see the apps::monitor
    /// docs), e.g. /var/lib/node_exporter/textfile_collector/fwd.prom.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<std::path::PathBuf>,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

struct Fwd(Args);

/// How long the TX rings may send nothing at the end before fwd gives up
/// on what they still hold (a peer holding transmission with flow control
/// may take a while, one that is gone never takes it).
const DRAIN_STALL: Duration = Duration::from_secs(2);

impl NicJob for Fwd {
    type Output = ();

    fn run<R: RegisterAccess + 'static>(self, ports: Vec<Port<R>>) -> AppResult<()> {
        let a = self.0;
        let batch = a.batch as usize;
        for p in &ports {
            println!(
                "fwd: {} ({}), MAC {}",
                p.name,
                p.backend,
                spec::net::MacAddr(p.nic.mac())
            );
            p.print_link();
        }
        let mut rx = [ports[0].nic.rx_queue(0)?, ports[1].nic.rx_queue(0)?];
        let mut tx = [ports[0].nic.tx_queue(0)?, ports[1].nic.tx_queue(0)?];
        let names = [ports[0].name.clone(), ports[1].name.clone()];
        let nics = [&*ports[0].nic, &*ports[1].nic];
        if a.inject > 0 {
            // Buffers of DEV1's RX pool: what DEV2's TX ring sends goes back
            // to that pool's cache below, as forwarded frames do.
            let flow = Flow {
                src_mac: ports[1].nic.mac(),
                dst_mac: [0xff; 6],
                src_ip: [10, 0, 0, 1],
                dst_ip: [10, 0, 0, 2],
                src_port: 1024,
                dst_port: 5678,
            };
            let mut frames = Vec::with_capacity(a.inject as usize);
            for _ in 0..a.inject {
                let mut b = rx[0]
                    .cache_mut()
                    .alloc()
                    .ok_or("--inject: no free buffer in the RX pool")?;
                b.set_len(MIN_FRAME_LEN);
                net::write_udp_headers(b.as_mut_slice(), MIN_FRAME_LEN, &flow);
                frames.push(b);
            }
            let sent = tx[1].tx_bufs(&mut frames)?;
            if sent != a.inject as usize {
                return Err(
                    format!("--inject: the TX ring took {sent} of {} frames", a.inject).into(),
                );
            }
        }
        let mut counts = [Counts::default(); 2];
        let mut printer = RatePrinter::new(2);
        let mut stats = StatsFile::open("fwd", a.stats.as_deref(), a.prometheus.as_deref())?;
        if let Some(f) = stats.as_mut() {
            f.watch_pool(format!("rx-{}", names[0]), rx[0].pool());
            f.watch_pool(format!("rx-{}", names[1]), rx[1].pool());
            f.watch_mapper(ports[0].mapper.clone());
        }
        let start = Instant::now();
        let end = a.time.map(|t| start + Duration::from_secs_f64(t));
        let idle_limit = (a.idle_exit > 0.0).then(|| Duration::from_secs_f64(a.idle_exit));
        let mut last_frame = Instant::now();
        let mut forwarded = 0u64;
        let mut first_frame: Option<Instant> = None;
        let mut empty_rounds = 0u64;
        let mut iter = 0u32;
        // --idle-yield: yield on every empty round, never spin or sleep.
        let mut backoff = if a.idle_yield {
            Backoff::new(0, u32::MAX, None)
        } else {
            Backoff::default()
        };
        // Frames moved since the clock was last read: the clock is read once
        // per 256 rounds (it costs more than a packet), so `last_frame` is
        // that many rounds late at most, well under a millisecond.
        let mut moved_unclocked = false;
        let mut link = IdleLinkCheck::new(&names, start);
        loop {
            let mut moved = 0;
            for (from, to) in [(0usize, 1usize), (1, 0)] {
                // Sent buffers go back to the cache of the queue they came
                // from (inside `forward`).
                let f = forward(&mut rx[from], &mut tx[to], batch)?;
                moved += f.frames;
                counts[from].rx_packets += f.frames as u64;
                counts[from].rx_bytes += f.bytes;
                counts[to].tx_packets += f.frames as u64;
                forwarded += f.frames as u64;
            }
            if moved > 0 {
                if first_frame.is_none() {
                    last_frame = Instant::now();
                    first_frame = Some(last_frame);
                }
                moved_unclocked = true;
                backoff.reset();
            } else {
                empty_rounds += 1;
                backoff.idle();
            }
            if a.count.is_some_and(|c| forwarded >= c) {
                break;
            }
            iter = iter.wrapping_add(1);
            if iter.is_multiple_of(256) {
                let now = Instant::now();
                if std::mem::take(&mut moved_unclocked) {
                    last_frame = now;
                }
                // Once per 256 rounds, a register read per 100 ms at most.
                link.poll(&nics);
                if end.is_some_and(|e| now >= e)
                    || signals::stop_requested()
                    || idle_limit.is_some_and(|l| now.duration_since(last_frame) >= l)
                {
                    break;
                }
                if !a.quiet && printer.due() {
                    let tx_counts = counts;
                    printer.print(&names, &nics, &tx_counts)?;
                }
                monitor_second(
                    stats.as_mut(),
                    &names,
                    &nics,
                    &counts,
                    counts[0].rx_bytes + counts[1].rx_bytes,
                    forwarded,
                )?;
            }
        }
        if moved_unclocked {
            last_frame = Instant::now();
        }
        // What the TX rings hold was forwarded: let it reach the wire (a
        // queue dropped with frames in it stops within 100 ms).
        for to in [1usize, 0] {
            if !tx[to].drain(DRAIN_STALL) {
                eprintln!(
                    "fwd: {}: {} frames still queued for TX after the port sent nothing for {} s",
                    names[to],
                    tx[to].in_flight(),
                    DRAIN_STALL.as_secs()
                );
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "forwarded:   {forwarded} frames in {secs:.2} s ({:.3} Mpps); {} -> {}: {}, {} -> {}: {}",
            forwarded as f64 / secs / 1e6,
            names[0],
            names[1],
            counts[1].tx_packets,
            names[1],
            names[0],
            counts[0].tx_packets,
        );
        // The rate while frames flowed: not diluted by the wait for the
        // first frame or by --idle-exit.
        let busy = first_frame.map_or(0.0, |f| last_frame.duration_since(f).as_secs_f64());
        println!(
            "busy:        {:.3} Mpps from the first to the last frame ({busy:.3} s); empty rounds: {empty_rounds}",
            if busy > 0.0 { forwarded as f64 / busy / 1e6 } else { 0.0 }
        );
        if let Some(line) = signals::stopped_line(secs) {
            println!("ended:       {line}");
        }
        let bytes = counts[0].rx_bytes + counts[1].rx_bytes;
        monitor_finish(
            stats.as_mut(),
            &names,
            &nics,
            &counts,
            bytes,
            forwarded,
            true,
            JsonObject::new()
                .u64("frames", forwarded)
                .u64("bytes", bytes)
                .f64("secs", secs)
                .u64("frames_0_to_1", counts[1].tx_packets)
                .u64("frames_1_to_0", counts[0].tx_packets)
                .u64("empty_rounds", empty_rounds),
        )?;
        Ok(())
    }
}

fn main() {
    apps::restore_sigpipe();
    signals::install();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    let devs = vec![args.dev1.clone(), args.dev2.clone()];
    if devs[0] == devs[1] {
        exit_on_error::<()>(Err(format!(
            "{} is given as both ports; fwd needs two different ports",
            devs[0]
        )
        .into()));
    }
    let opts = NicOptions {
        link_timeout: args.link.timeout(),
        ..NicOptions::default()
    };
    exit_on_error(with_nics(&devs, opts, Fwd(args)));
    apps::trace::session::end();
}
