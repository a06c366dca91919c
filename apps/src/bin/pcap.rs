//! pcap: capture frames from a NIC port into a pcap file that tshark and
//! Wireshark read.
#![forbid(unsafe_code)]

use apps::backoff::Backoff;
use apps::link::IdleLinkCheck;
use apps::monitor::{JsonObject, StatsFile};
use apps::open::device::DeviceSpec;
use apps::open::{with_nics, NicJob, Port};
use apps::port_stats::{monitor_finish, monitor_second, Counts, RatePrinter};
use apps::{exit_on_error, signals, AppResult};
use clap::Parser;
use drivers::nic::{NicOptions, RxPacket};
use drivers::regs::RegisterAccess;
use emu::wire::open_wire;
use std::path::Path;
use std::time::{Duration, Instant};

/// Capture frames received on a port into a pcap file (LINKTYPE_ETHERNET,
/// microsecond timestamps taken when the frame is received).
#[derive(Debug, Parser)]
#[command(
    name = "pcap",
    version,
    after_help = "DEV is a PCI address bound to vfio-pci or an emulated port \
(emu:igb|i350|ixgbe,wire=...).\n\nExample:\n  pcap emu:igb,wire=unix:/tmp/link out.pcap --count 1000"
)]
struct Args {
    /// The port.
    device: String,
    /// The pcap file to write (created or truncated).
    file: String,
    #[command(flatten)]
    link: apps::link::LinkArgs,
    /// Frames to capture (default: until --time ends).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Seconds to run at most (default: 10 when no --count is given, else no limit).
    #[arg(long, value_parser = apps::parse_seconds)]
    time: Option<f64>,
    /// Give up after this many seconds without a frame (0: never).
    #[arg(long, default_value_t = 0.0, value_parser = apps::parse_seconds)]
    idle_exit: f64,
    /// No per-second lines.
    #[arg(long)]
    quiet: bool,
    /// Receive queues: more than 1 turns on RSS (receive-side scaling), the
    /// NIC hashing each frame's IPv4 addresses and TCP/UDP ports to pick its
    /// queue; pcap polls the queues in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=128))]
    rx_queues: u16,
    /// Write the per-second figures as JSON lines and the final report as
    /// one JSON object to FILE (fields: see the apps::monitor docs).
    #[arg(long, value_name = "FILE")]
    stats: Option<std::path::PathBuf>,
    /// Keep FILE, a node_exporter textfile-collector file (Prometheus text
    /// format), rewritten atomically each second with the run's counters,
    /// the port's own counters and gauges (names: see the apps::monitor
    /// docs), e.g. /var/lib/node_exporter/textfile_collector/pcap.prom.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<std::path::PathBuf>,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

struct Capture(Args);

/// How long pcap goes on writing what the port still receives after a
/// SIGINT or SIGTERM, at most (a sender that never pauses would keep the
/// RX ring from ever running empty).
const STOP_DRAIN: Duration = Duration::from_secs(1);

impl NicJob for Capture {
    type Output = ();

    fn run<R: RegisterAccess + 'static>(self, ports: Vec<Port<R>>) -> AppResult<()> {
        let a = self.0;
        let port = &ports[0];
        let out = open_wire(&format!("pcap:{}", a.file))?;
        let mut rxs = (0..a.rx_queues)
            .map(|q| port.nic.rx_queue(q))
            .collect::<Result<Vec<_>, _>>()?;
        println!("pcap: {} ({}) -> {}", port.name, port.backend, a.file);
        port.print_link();
        let mut pkts: Vec<RxPacket> = Vec::with_capacity(64);
        let mut counts = Counts::default();
        let mut printer = RatePrinter::new(1);
        let names = [port.name.clone()];
        let mut stats = StatsFile::open("pcap", a.stats.as_deref(), a.prometheus.as_deref())?;
        if let Some(f) = stats.as_mut() {
            f.watch_pool("rx", rxs[0].pool());
            f.watch_mapper(port.mapper.clone());
        }
        let start = Instant::now();
        let limit = a.time.or(a.count.is_none().then_some(10.0));
        let end = limit.map(|t| start + Duration::from_secs_f64(t));
        let idle = (a.idle_exit > 0.0).then(|| Duration::from_secs_f64(a.idle_exit));
        let mut last = Instant::now();
        let mut backoff = Backoff::default();
        // When a SIGINT or SIGTERM came: the frames already in the RX ring
        // are still written (for at most STOP_DRAIN), then the capture ends.
        let mut stop_seen: Option<Instant> = None;
        let mut link = IdleLinkCheck::new(&names, start);
        loop {
            let left = |c: &Counts| a.count.map_or(64, |n| (n - c.rx_packets).min(64) as usize);
            if left(&counts) == 0 {
                break;
            }
            let mut n = 0;
            for rx in rxs.iter_mut() {
                let want = left(&counts);
                if want == 0 {
                    break;
                }
                n += rx.rx_batch(&mut pkts, want)?;
                for p in pkts.drain(..) {
                    out.send(p.buf.as_slice())?;
                    counts.rx_packets += 1;
                    counts.rx_bytes += p.buf.len() as u64;
                    rx.recycle(p.buf);
                }
            }
            let now = Instant::now();
            if n > 0 {
                last = now;
                backoff.reset();
            } else {
                backoff.idle();
                link.poll(&[&*port.nic]);
            }
            if n == 0
                && (idle.is_some_and(|l| now.duration_since(last) >= l)
                    || end.is_some_and(|e| now >= e))
            {
                break;
            }
            if signals::stop_requested()
                && (n == 0 || stop_seen.get_or_insert(now).elapsed() >= STOP_DRAIN)
            {
                break;
            }
            if !a.quiet && printer.due() {
                printer.print(&names, &[&*port.nic], &[counts])?;
            }
            monitor_second(
                stats.as_mut(),
                &names,
                &[&*port.nic],
                &[counts],
                counts.rx_bytes,
                counts.rx_packets,
            )?;
        }
        out.flush()?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "captured:    {} frames, {} bytes in {secs:.2} s to {}",
            counts.rx_packets, counts.rx_bytes, a.file
        );
        if let Some(line) = signals::stopped_line(start.elapsed().as_secs_f64()) {
            println!("ended:       {line}");
        }
        monitor_finish(
            stats.as_mut(),
            &names,
            &[&*port.nic],
            &[counts],
            counts.rx_bytes,
            counts.rx_packets,
            true,
            JsonObject::new()
                .u64("frames", counts.rx_packets)
                .u64("bytes", counts.rx_bytes)
                .f64("secs", secs),
        )?;
        Ok(())
    }
}

/// The capture file must not be the file the port's own wire writes
/// (`wire=pcap:FILE`: two writers of one file) or replays (`wire=pcap-in:FILE`:
/// creating the capture would empty it before it is read).
fn check_not_the_wire_file(a: &Args) -> AppResult<()> {
    let Ok(DeviceSpec::EmuNic(n)) = a.device.parse::<DeviceSpec>() else {
        return Ok(());
    };
    let Some(wire_file) = n
        .wire
        .strip_prefix("pcap:")
        .or_else(|| n.wire.strip_prefix("pcap-in:"))
    else {
        return Ok(());
    };
    let same = |x: &str, y: &str| {
        let (x, y) = (Path::new(x), Path::new(y));
        x == y
            || matches!(
                (std::fs::canonicalize(x), std::fs::canonicalize(y)),
                (Ok(x), Ok(y)) if x == y
            )
    };
    if same(wire_file, &a.file) {
        return Err(format!(
            "{} is both the capture file and the port's wire ({}); write the capture to another file",
            a.file, n.wire
        )
        .into());
    }
    Ok(())
}

fn main() {
    apps::restore_sigpipe();
    signals::install();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    exit_on_error(check_not_the_wire_file(&args));
    let dev = vec![args.device.clone()];
    let opts = NicOptions {
        link_timeout: args.link.timeout(),
        rx_queues: args.rx_queues,
        ..NicOptions::default()
    };
    exit_on_error(with_nics(&dev, opts, Capture(args)));
    apps::trace::session::end();
}
