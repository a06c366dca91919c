//! blkfwd: stream a range of an NVMe drive out of a NIC as UDP frames, with
//! no CPU copy of the data: the drive DMAs blocks into hugepage buffers and
//! the NIC DMAs them out, each frame a header descriptor (built by the CPU)
//! plus a payload descriptor pointing into the read buffer.
#![forbid(unsafe_code)]
// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::arp::{choose_destination, ArpAgent, Destination};
use apps::backoff::Pacer;
use apps::monitor::{Counters, JsonObject, StatsFile};
use apps::net::{parse_ipv4, Flow};
use apps::open::device::DeviceSpec;
use apps::open::{with_nics_in, NicJob, Port};
use apps::open::{with_nvme_in, NvmeJob, Opened};
use apps::port_stats::port_figures;
use apps::stream::format::FRAME_HEADERS;
use apps::stream::sender::{Failed, Shared, StreamConfig, Worker, WorkerReport};
use apps::stream::{pattern_fill, Expect, Verifier, DEFAULT_SEED};
use apps::{exit_on_error, human_bytes, signals, AppResult};
use clap::Parser;
use dma::{EmuIommu, PageSize};
use drivers::nic::NicOptions;
use drivers::nvme::NvmeController;
use drivers::regs::RegisterAccess;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_NVME: &str = "emu:nvme,size=256M";
const DEFAULT_NIC: &str = "emu:ixgbe,wire=pair:blkfwd,pause=on";
/// The default port when `--recv none`: no flow control, as no port
/// drains the other end (the wire drops and counts what does not fit).
const DEFAULT_NIC_NO_RECV: &str = "emu:ixgbe,wire=pair:blkfwd";

/// Stream disk blocks from an NVMe drive to a NIC with no CPU copies.
#[derive(Debug, Parser)]
#[command(
    name = "blkfwd",
    version,
    after_help = "With no arguments: an emulated 256 MiB drive filled with a known pattern \
streams through an emulated 82599 port to a second port on the same wire, where an in-process \
receiver checks every byte (802.3x flow control on the emulated wire, so a busy receiver \
slows the sender down instead of losing frames).\n\nExamples:\n  blkfwd\n  blkfwd --mtu 9000 --threads 2\n  \
blkfwd --nvme emu:nvme,file=disk.img --nic emu:igb,wire=pcap:out.pcap --recv none\n  \
blkfwd --nvme 0000:01:00.0 --nic 0000:03:00.0 --src-ip 10.0.0.1 --dst-ip 10.0.0.2\n  \
blkfwd --nvme 0000:01:00.0 --nic 0000:03:00.0 --dst-mac 0c:c4:7a:00:00:01 --dst-ip 10.0.0.2\n\n\
On a real port, blkfwd learns the destination MAC by ARP from --dst-ip unless --dst-mac is given, \
and answers ARP for --src-ip while it runs; it sends to broadcast only with --dst-mac broadcast. \
UDP port 61890 by default (see --src-port)."
)]
struct Args {
    /// The NVMe drive: a PCI address bound to vfio-pci, or emu:nvme[,options].
    #[arg(long, default_value = DEFAULT_NVME)]
    nvme: String,
    /// The NIC port to send on: a PCI address or emu:igb|i350|ixgbe,wire=...
    #[arg(long, default_value = DEFAULT_NIC)]
    nic: String,
    /// A port of this process that receives and checks the stream (an
    /// emulated port on the other end of the wire). Default: when --nic is
    /// emulated on wire=pair:NAME, the same chip on the same pair; `none`
    /// for no receiver (the default --nic then has no flow control, which
    /// would hold every frame: what does not fit on the wire is dropped).
    #[arg(long)]
    recv: Option<String>,
    /// Namespace.
    #[arg(long, default_value_t = 1)]
    nsid: u32,
    /// First block of the range (default 0; --offset gives a byte instead).
    #[arg(long, conflicts_with = "offset")]
    start: Option<u64>,
    /// First byte of the range (k/m/g suffixes; any byte: whole blocks are
    /// read, only the range's bytes are sent).
    #[arg(long, value_parser = apps::parse_size)]
    offset: Option<u64>,
    /// Bytes to stream (k/m/g suffixes; any number of bytes).
    /// Default: from --start or --offset to the end of the namespace.
    #[arg(long, value_parser = apps::parse_size)]
    length: Option<u64>,
    /// Bytes per read (a multiple of the block size). Default: the largest
    /// the drive takes in one command (its MDTS), up to 128 KiB.
    #[arg(long, value_parser = apps::parse_size)]
    io_size: Option<u64>,
    /// Reads in flight per thread.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    queue_depth: u32,
    /// Read buffers per thread (the memory bound; default twice the queue
    /// depth): at least --queue-depth, as each read in flight fills its own.
    #[arg(long)]
    buffers: Option<usize>,
    /// IP MTU of the frames: 1500, or 9000 for jumbo frames.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(576..=16110))]
    mtu: u32,
    /// Passes over the range: 1 or more (--loop streams until interrupted).
    #[arg(long, default_value_t = 1, conflicts_with = "loop_forever", value_parser = parse_laps)]
    laps: u64,
    /// Repeat the range until interrupted (or --time).
    #[arg(long = "loop")]
    loop_forever: bool,
    /// Stop after this many seconds (with --loop): a normal end, exit 0 if
    /// every byte sent before it arrived intact.
    #[arg(long, value_parser = apps::parse_seconds)]
    time: Option<f64>,
    /// Threads, each with its own NVMe queue pair and NIC TX queue.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    threads: u16,
    #[arg(long, help = apps::arp::DST_MAC_HELP)]
    dst_mac: Option<String>,
    /// Seconds to wait for the ARP reply of --dst-ip (a request each
    /// second) before giving up with an error.
    #[arg(long, default_value = "3", value_parser = apps::arp::parse_arp_timeout)]
    arp_timeout: f64,
    /// Source IPv4 address.
    #[arg(long, default_value = "10.0.0.1")]
    src_ip: String,
    /// Destination IPv4 address.
    #[arg(long, default_value = "10.0.0.2")]
    dst_ip: String,
    /// Source UDP port (default from the dynamic range 49152-65535, above
    /// Linux's ephemeral ports, and no well-known protocol's).
    #[arg(long, default_value_t = apps::net::BLKFWD_PORT)]
    src_port: u16,
    /// Destination UDP port (default: as --src-port).
    #[arg(long, default_value_t = apps::net::BLKFWD_PORT)]
    dst_port: u16,
    /// Limit the payload rate, in Mbit/s over all threads.
    #[arg(long)]
    rate: Option<f64>,
    /// Retries of a failed read before its blocks are reported failed.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Seconds the NIC may take no frame before what waits for it is reported failed.
    #[arg(long, default_value_t = 5.0, value_parser = apps::parse_seconds)]
    tx_timeout: f64,
    #[command(flatten)]
    link: apps::link::LinkArgs,
    /// What the receiver compares with: pattern[:SEED], file:PATH or none.
    /// Default: the pattern for an emulated RAM drive (blkfwd fills it),
    /// the backing file for emu:nvme,file=..., none for a real drive.
    #[arg(long)]
    expect: Option<String>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Poll without ever sleeping: no system call at all while streaming,
    /// but a whole core per thread. By default an idle thread sleeps, for
    /// lengths tuned so that each wake finds about half of the NIC ring
    /// sent (one system call per wake, none per frame or per read).
    #[arg(long)]
    spin: bool,
    /// Write the per-second figures as JSON lines and the final report as
    /// one JSON object to FILE (fields: see the apps::monitor docs). Lines
    /// are written with or without --quiet.
    #[arg(long, value_name = "FILE")]
    stats: Option<std::path::PathBuf>,
    /// Keep FILE, a node_exporter textfile-collector file (Prometheus text
    /// format), rewritten atomically each second with the run's counters
    /// and gauges (names: see the apps::monitor docs), e.g.
    /// /var/lib/node_exporter/textfile_collector/blkfwd.prom.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<std::path::PathBuf>,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

/// `--laps`: 1 or more; 0 would be an endless run, which is --loop.
fn parse_laps(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err(
            "0 laps is no run; give 1 or more, or --loop to stream until interrupted \
                      (or --time)"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a number of laps; give 1 or more")),
    }
}

/// The receiver port implied by an emulated --nic on a pair wire.
/// How long 10 Gb/s (the fastest port modelled, the 82599) of full frames
/// of `mtu` bytes takes to fill half a receive ring of `ring` descriptors:
/// the receiver's longest sleep, so that even at line rate a ring is
/// never more than half full when it wakes.
fn half_ring_at_line_rate(ring: usize, mtu: usize) -> Duration {
    // Ethernet header, FCS, preamble and inter-frame gap: 38 bytes a frame.
    let frame_bits = (mtu + 38) as u64 * 8;
    Duration::from_nanos(ring as u64 / 2 * frame_bits / 10)
}

fn default_recv(nic: &str) -> Option<String> {
    let Ok(DeviceSpec::EmuNic(spec)) = nic.parse::<DeviceSpec>() else {
        return None;
    };
    let name = spec.wire.strip_prefix("pair:")?;
    let chip = nic.strip_prefix("emu:")?.split(',').next()?;
    let pause = if spec.flow_control { ",pause=on" } else { "" };
    Some(format!("emu:{chip},wire=pair:{name}{pause}"))
}

/// The plan after the arguments are checked.
struct Plan {
    args: Args,
    recv: Option<String>,
    iommu: Option<Arc<EmuIommu>>,
    fill: bool,
    expect: Option<String>,
    /// Where the frames go (--dst-mac or ARP).
    dest: Destination,
    /// The sending port answers ARP (it is on a network that asks).
    arp: bool,
}

fn plan(mut args: Args) -> AppResult<Plan> {
    if args.recv.as_deref() == Some("none") && args.nic == DEFAULT_NIC {
        args.nic = DEFAULT_NIC_NO_RECV.to_string();
    }
    if args.nvme == args.nic {
        return Err(format!(
            "{} is given as both the drive and the NIC; give an NVMe drive with --nvme and a NIC port with --nic",
            args.nvme
        )
        .into());
    }
    let nvme: DeviceSpec = args.nvme.parse()?;
    let nic: DeviceSpec = args.nic.parse()?;
    let nvme_emu = !matches!(nvme, DeviceSpec::Pci(_));
    let nic_emu = !matches!(nic, DeviceSpec::Pci(_));
    if nvme_emu != nic_emu {
        return Err(
            "the drive and the NIC must both be emulated or both real: the NIC sends from the \
             drive's buffers, so both must reach the same DMA memory (one IOMMU)"
                .into(),
        );
    }
    if let DeviceSpec::EmuNic(n) = &nic {
        if n.mode == emu::RunMode::Inline {
            return Err(
                "--nic: an inline emulated port moves frames only when its registers are \
                        touched, which a paused or idle stream does not do; use a threaded port \
                        (leave out mode=inline)"
                    .into(),
            );
        }
    }
    let recv = match args.recv.as_deref() {
        Some("none") => None,
        Some(r) => Some(r.to_string()),
        None => default_recv(&args.nic),
    };
    if let Some(Ok(DeviceSpec::EmuNic(n))) = recv.as_deref().map(str::parse::<DeviceSpec>) {
        if n.mode == emu::RunMode::Inline {
            return Err(
                "--recv: an inline emulated port receives only when its registers are \
                        touched; use a threaded port (leave out mode=inline)"
                    .into(),
            );
        }
    }
    if recv.as_deref() == Some(args.nic.as_str()) && !args.nic.contains("wire=pair:") {
        return Err(format!("{} is given as both the sender and the receiver", args.nic).into());
    }
    let (fill, file) = match &nvme {
        DeviceSpec::EmuNvme(e) => (e.file.is_none(), e.file.clone()),
        _ => (false, None),
    };
    let expect = match (&args.expect, fill, file) {
        (Some(e), _, _) => Some(e.clone()),
        (None, true, _) => Some(format!("pattern:{DEFAULT_SEED:#x}")),
        (None, false, Some(f)) => Some(format!("file:{}", f.display())),
        (None, false, None) => None,
    };
    if args.time.is_some() && !args.loop_forever {
        return Err(
            "--time applies to --loop runs; give --loop, or --laps N for a fixed length".into(),
        );
    }
    if let Some(b) = args.buffers {
        if b < args.queue_depth as usize {
            return Err(format!(
                "--buffers {b} is fewer than --queue-depth {qd}: each read in flight fills its own \
                 buffer, so a thread needs at least {qd}; give --buffers {qd} or more, or a lower \
                 --queue-depth",
                qd = args.queue_depth
            )
            .into());
        }
    }
    if args.tx_timeout.is_nan() || args.tx_timeout <= 0.0 {
        return Err("--tx-timeout must be more than 0 seconds".into());
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err("--rate must be a positive number of Mbit/s".into());
    }
    let dest = choose_destination(args.dst_mac.as_deref(), &nic)?;
    let on_network = match &nic {
        DeviceSpec::EmuNic(n) => n.wire.starts_with("tap:"),
        _ => true,
    };
    let iommu = nvme_emu.then(|| Arc::new(EmuIommu::new()));
    Ok(Plan {
        args,
        recv,
        iommu,
        fill,
        expect,
        arp: on_network || dest == Destination::Arp,
        dest,
    })
}

struct Drive(Plan);

impl NvmeJob for Drive {
    type Output = bool;

    fn run<R: RegisterAccess + 'static>(
        self,
        ctrl: Arc<NvmeController<R>>,
        opened: &Opened,
    ) -> AppResult<bool> {
        let p = self.0;
        let ns = ctrl.namespace(p.args.nsid)?;
        let block = ns.lba_size as u64;
        let size = ns.size_blocks * block;
        let start = match p.args.offset {
            Some(o) => o,
            None => p.args.start.unwrap_or(0).saturating_mul(block),
        };
        if start >= size {
            return Err(match p.args.offset {
                Some(o) => format!(
                    "--offset {o} is at or past the end of namespace {} ({size} bytes): nothing \
                     to stream; give an offset below {size}",
                    p.args.nsid
                ),
                None => format!(
                    "--start {} is past the end of namespace {} ({} blocks of {block} bytes)",
                    p.args.start.unwrap_or(0),
                    p.args.nsid,
                    ns.size_blocks
                ),
            }
            .into());
        }
        let len = p.args.length.unwrap_or(size - start);
        if p.fill {
            if let Some(model) = &opened.model {
                // The whole blocks the reads cover, so the drive holds the
                // pattern wherever it is read.
                let first = start - start % block;
                let end = (start + len.min(size - start)).div_ceil(block) * block;
                fill_pattern(model, p.args.nsid, first, end.min(size) - first)?;
            }
        }
        // The largest read the drive takes in one command, up to 128 KiB,
        // in whole blocks; an --io-size above the drive's limit is refused
        // by the engine's check, naming the limit.
        let io_size = match p.args.io_size {
            Some(n) => n,
            None => ((128 << 10).min(ctrl.max_transfer()) / block * block).max(block),
        };
        let mtu = p.args.mtu as usize;
        // RX buffers (of the receiver) hold a whole frame: 1024-byte units.
        let frame = mtu + spec::net::ethernet::HEADER_LEN + 4;
        let opts = NicOptions {
            // One TX queue per worker, and one for ARP frames after them.
            tx_queues: p.args.threads + u16::from(p.arp),
            buf_size: frame.div_ceil(1024) * 1024,
            pool_bufs: 2048,
            // The longest ring: the more frames queued, the longer an idle
            // worker may sleep between refills without the port running dry.
            tx_ring: drivers::nic::MAX_RING as u16,
            link_timeout: p.args.link.timeout(),
            ..NicOptions::default()
        };
        let mut devices = vec![p.args.nic.clone()];
        if let Some(r) = &p.recv {
            devices.push(r.clone());
        }
        let iommu = p.iommu.clone();
        let backend = opened.backend.clone();
        let job = Send {
            plan: p,
            ctrl,
            start,
            len,
            io_size,
            drive_backend: backend,
        };
        with_nics_in(&devices, opts, iommu, job)
    }
}

/// Fill `[start, start + len)` of an emulated drive with the pattern the
/// receiver expects (the model's backing store, before the run: no DMA).
fn fill_pattern(model: &emu::nvme::NvmeModel, nsid: u32, start: u64, len: u64) -> AppResult<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = start;
    while off < start + len {
        let n = (start + len - off).min(buf.len() as u64) as usize;
        pattern_fill(&mut buf[..n], off, DEFAULT_SEED);
        model
            .write_backing(nsid, off, &buf[..n])
            .map_err(|e| format!("filling the emulated drive: {e}"))?;
        off += n as u64;
    }
    Ok(())
}

struct Send<RN: RegisterAccess> {
    plan: Plan,
    ctrl: Arc<NvmeController<RN>>,
    start: u64,
    len: u64,
    io_size: u64,
    drive_backend: String,
}

impl<RN: RegisterAccess + 'static> NicJob for Send<RN> {
    type Output = bool;

    /// Both ports are set up with one TX queue per thread and the ARP
    /// queue ([`NicOptions::tx_queues`] above).
    fn check_port(
        &self,
        _index: usize,
        name: &str,
        chip: drivers::nic::Chip,
        queues: u16,
    ) -> AppResult<()> {
        let a = &self.plan.args;
        Ok(apps::arp::check_tx_queues(
            a.threads,
            self.plan.arp,
            chip,
            name,
            queues,
        )?)
    }

    fn run<R: RegisterAccess + 'static>(self, mut ports: Vec<Port<R>>) -> AppResult<bool> {
        let a = &self.plan.args;
        let tx = ports.remove(0);
        let rx = (!ports.is_empty()).then(|| ports.remove(0));
        let src_ip = parse_ipv4(&a.src_ip).map_err(|e| format!("--src-ip: {e}"))?;
        let dst_ip = parse_ipv4(&a.dst_ip).map_err(|e| format!("--dst-ip: {e}"))?;
        // The port's RX queue 0 and the TX queue after the workers' answer
        // ARP for --src-ip, polled by the main thread between its reports.
        let mut arp = match self.plan.arp {
            true => Some(ArpAgent::new(
                tx.nic.rx_queue(0)?,
                tx.nic.tx_queue(a.threads)?,
                tx.nic.mac(),
                src_ip,
            )),
            false => None,
        };
        let dst_mac = match (self.plan.dest, arp.as_mut()) {
            (Destination::Mac(m), _) => m,
            (Destination::Arp, Some(agent)) => {
                let t = Duration::from_secs_f64(a.arp_timeout);
                let m = agent.resolve(dst_ip, t, &tx.name)?;
                println!(
                    "blkfwd: --dst-ip {} is at {} (ARP on {})",
                    a.dst_ip,
                    spec::net::MacAddr(m),
                    tx.name
                );
                m
            }
            (Destination::Arp, None) => unreachable!("Plan::arp is set when dest is Arp"),
        };
        let threads = a.threads as usize;
        let queue_depth = a.queue_depth as usize;
        let cfg = StreamConfig {
            nsid: a.nsid,
            start: self.start,
            len: self.len,
            io_size: usize::try_from(self.io_size).map_err(|_| "--io-size is too large")?,
            queue_depth,
            read_buffers: a.buffers.unwrap_or(2 * queue_depth),
            mtu: a.mtu as usize,
            laps: if a.loop_forever { 0 } else { a.laps },
            flow: Flow {
                src_mac: tx.nic.mac(),
                dst_mac,
                src_ip,
                dst_ip,
                src_port: a.src_port,
                dst_port: a.dst_port,
            },
            // Over all threads: each worker compares it with the bytes
            // of all of them.
            rate: a.rate.map(|r| r * 1e6 / 8.0),
            retries: a.retries,
            tx_timeout: Duration::from_secs_f64(a.tx_timeout),
            spin: a.spin,
        };
        if cfg.laps == 0 && cfg.len == 0 {
            return Err("the range is empty".into());
        }
        let shared = Arc::new(Shared::default());
        let mut workers = Vec::new();
        for t in 0..threads {
            workers.push(Worker::new(
                t as u16,
                &cfg,
                &self.ctrl,
                &tx.nic,
                t as u16,
                tx.region,
                shared.clone(),
            )?);
        }
        println!(
            "blkfwd: {} ({}) -> {} ({}); bytes {}..{} of namespace {} ({}), {} lap(s), MTU {}, \
             {} per read{}, {} in flight, {} thread(s){}",
            self.plan.args.nvme,
            self.drive_backend,
            tx.name,
            tx.backend,
            cfg.start,
            cfg.start + cfg.len,
            cfg.nsid,
            human_bytes(cfg.len),
            if cfg.laps == 0 {
                "endless".to_string()
            } else {
                cfg.laps.to_string()
            },
            cfg.mtu,
            human_bytes(cfg.io_size as u64),
            if a.io_size.is_none() {
                " (default: the drive's largest read up to 128 KiB)"
            } else {
                ""
            },
            queue_depth,
            threads,
            match &rx {
                Some(r) => format!(
                    "; receiver {} checks against {}",
                    r.name,
                    self.plan
                        .expect
                        .as_deref()
                        .unwrap_or("nothing (arrival only)")
                ),
                None => String::new(),
            }
        );
        tx.print_link();
        if let Some(r) = &rx {
            r.print_link();
        }
        // The receiver: its own thread, its CPU not counted as the sender's.
        let recv_stop = Arc::new(AtomicBool::new(false));
        let mut rx_pool: Option<dma::Pool> = None;
        let receiver = match rx {
            Some(port) => {
                let expect = match &self.plan.expect {
                    Some(e) => Expect::parse(e).map_err(|e| format!("--expect: {e}"))?,
                    None => Expect::None,
                };
                let laps = cfg.laps;
                let mtu = cfg.mtu;
                let stop = recv_stop.clone();
                let mut rxq = port.nic.rx_queue(0)?;
                rx_pool = Some(rxq.pool().clone());
                Some(
                    std::thread::Builder::new()
                        .name("blkfwd-recv".into())
                        .spawn(move || -> AppResult<Verifier> {
                            let mut v = Verifier::new(expect);
                            if laps > 0 {
                                v.limit_laps(laps as u32);
                            }
                            let mut pkts = Vec::with_capacity(64);
                            let mut idle_since = Instant::now();
                            // An empty ring sleeps (no spinning, no yields:
                            // on a 2-core machine those take the core from
                            // the emulated devices that bring the frames)
                            // for about the time the stream takes to fill
                            // half the ring, learnt from what each wake
                            // finds, and never longer than 10 Gb/s of
                            // full frames takes to fill half of it.
                            let ring = rxq.ring_size().max(1);
                            let mut pacer = Pacer::new(
                                Duration::from_micros(50),
                                half_ring_at_line_rate(ring, mtu),
                            );
                            let mut slept = false;
                            let mut since_sleep = 0usize;
                            loop {
                                let n = rxq.rx_batch(&mut pkts, 64)?;
                                for p in pkts.drain(..) {
                                    v.accept_frame(p.buf.as_slice());
                                    rxq.recycle(p.buf);
                                }
                                if n > 0 {
                                    since_sleep += n;
                                    idle_since = Instant::now();
                                    pacer.busy();
                                    continue;
                                }
                                if std::mem::take(&mut slept) {
                                    pacer.woke((since_sleep as f64 / ring as f64).min(1.0));
                                }
                                if stop.load(Ordering::Relaxed)
                                    && (v.is_complete()
                                        || idle_since.elapsed() >= Duration::from_millis(500))
                                {
                                    break;
                                }
                                if pacer.idle() {
                                    slept = true;
                                    since_sleep = 0;
                                }
                            }
                            drop(port);
                            Ok(v)
                        })?,
                )
            }
            None => None,
        };
        let mut stats = StatsFile::open("blkfwd", a.stats.as_deref(), a.prometheus.as_deref())?;
        if let Some(f) = stats.as_mut() {
            for (i, w) in workers.iter().enumerate() {
                f.watch_pool(format!("read-{i}"), w.read_pool());
            }
            f.watch_pool("nic-tx", tx.nic.pool(0));
            if let Some(p) = &rx_pool {
                f.watch_pool("recv", p);
            }
            f.watch_mapper(tx.mapper.clone());
        }
        let cpu0 = apps::cputime::thread_cpu_time();
        let started = Instant::now();
        if let Some(f) = stats.as_mut() {
            f.restart();
        }
        let handles = workers
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                std::thread::Builder::new()
                    .name(format!("blkfwd-{i}"))
                    .spawn(move || w.run())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let total = if cfg.laps == 0 {
            None
        } else {
            Some(cfg.len * cfg.laps)
        };
        let deadline = a.time.map(|t| started + Duration::from_secs_f64(t));
        let mut last = (Instant::now(), 0u64, 0u64);
        let mut deadline_hit = false;
        let mut signal_hit = false;
        let mut link_events = apps::link::LinkReporter::new(&tx.name, started);
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            if let Some(agent) = arp.as_mut() {
                agent.poll()?;
            }
            link_events.print(&shared.link);
            if !signal_hit && deadline.is_some_and(|d| Instant::now() >= d) {
                deadline_hit = true;
                shared.stop.store(true, Ordering::Relaxed);
            }
            // SIGINT/SIGTERM end the run as the deadline does: no read is
            // issued after it, what is in flight is sent (bounded by
            // --tx-timeout and the drive's command timeout), and the rest
            // of the range is not due.
            if signals::stop_requested() && !signal_hit && !deadline_hit {
                signal_hit = true;
                shared.stop.store(true, Ordering::Relaxed);
            }
            let now = Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64();
            if dt >= 1.0 {
                if let Some(f) = stats.as_mut() {
                    let frames = shared.frames.load(Ordering::Relaxed);
                    let bytes = shared.bytes.load(Ordering::Relaxed);
                    set_tx_port(f, &tx, frames, bytes);
                    f.second(Counters {
                        bytes: shared.bytes.load(Ordering::Relaxed),
                        frames: Some(shared.frames.load(Ordering::Relaxed)),
                        ios: Some(shared.ios.load(Ordering::Relaxed)),
                        reads: Some(shared.ios.load(Ordering::Relaxed)),
                        errors: shared.errors.load(Ordering::Relaxed),
                        drops: None,
                    });
                }
            }
            if a.quiet && dt >= 1.0 {
                last = (now, 0, 0);
            }
            if !a.quiet && dt >= 1.0 {
                let bytes = shared.bytes.load(Ordering::Relaxed);
                let frames = shared.frames.load(Ordering::Relaxed);
                let done = match total {
                    Some(t) => format!(" ({:.0}%)", 100.0 * bytes as f64 / t as f64),
                    None => String::new(),
                };
                println!(
                    "{:6.1} s  {:6.3} GiB/s  {:6.3} Mpps  {:3} I/Os in flight  {} read{done}  errors {}  retries {}",
                    now.duration_since(started).as_secs_f64(),
                    bytes.saturating_sub(last.1) as f64 / dt / (1u64 << 30) as f64,
                    frames.saturating_sub(last.2) as f64 / dt / 1e6,
                    shared.in_flight.load(Ordering::Relaxed),
                    human_bytes(bytes),
                    shared.errors.load(Ordering::Relaxed),
                    shared.retries.load(Ordering::Relaxed),
                );
                last = (now, bytes, frames);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        link_events.print(&shared.link);
        let mut reports: Vec<WorkerReport> = Vec::new();
        for h in handles {
            reports.push(h.join().map_err(|_| "a sender thread panicked")??);
        }
        let main_cpu = apps::cputime::thread_cpu_time().saturating_sub(cpu0);
        recv_stop.store(true, Ordering::Relaxed);
        let mut verifier = match receiver {
            Some(h) => Some(h.join().map_err(|_| "the receiver thread panicked")??),
            None => None,
        };
        // The deadline is the normal end of a --loop --time run: the lap it
        // cuts is due up to where the workers stopped taking reads, not
        // missing after it. (A stalled NIC gives up the rest: no cut then.)
        let stopped_at = (deadline_hit || signal_hit)
            .then(|| shared.stopped_at(&cfg))
            .flatten();
        if let (Some(v), Some((lap, end))) = (verifier.as_mut(), stopped_at) {
            v.sender_stopped_at(lap as u32, end);
        }
        let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
        let frames: u64 = reports.iter().map(|r| r.frames).sum();
        let ios: u64 = reports.iter().map(|r| r.ios).sum();
        let retries: u64 = reports.iter().map(|r| r.retries).sum();
        let mut failed: Vec<&Failed> = reports.iter().flat_map(|r| &r.failed).collect();
        failed.sort_by_key(|f| (f.lap, f.start));
        let cpu = reports.iter().map(|r| r.cpu).sum::<Duration>() + main_cpu;
        let gib = bytes as f64 / (1u64 << 30) as f64;
        let cpu_per_gib = if gib > 0.0 {
            cpu.as_secs_f64() / gib
        } else {
            0.0
        };
        let max_out = reports.iter().map(|r| r.max_buffers_out).max().unwrap_or(0);
        let sleeps: u64 = reports.iter().map(|r| r.sleeps).sum();
        let idle_rounds: u64 = reports.iter().map(|r| r.idle_rounds).sum();
        println!("sent:        {} ({bytes} bytes) in {frames} frames, {ios} reads, {secs:.2} s: {:.3} GiB/s, {:.3} Mpps",
            human_bytes(bytes), gib / secs, frames as f64 / secs / 1e6);
        println!(
            "cpu:         {:.3} s in the sender's threads ({threads} worker(s) + main): {cpu_per_gib:.4} s per GiB; {}",
            cpu.as_secs_f64(),
            if a.spin {
                "workers never slept (--spin)".to_string()
            } else {
                format!("workers slept {sleeps} times when idle")
            }
        );
        println!(
            "memory:      at most {max_out} of {} read buffers of {} out at once per thread",
            cfg.read_buffers,
            human_bytes(cfg.io_size as u64)
        );
        println!(
            "threads:     sender thread ids {}",
            reports
                .iter()
                .map(|r| r.tid.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        println!(
            "errors:      {} range(s) not sent, {retries} read(s) retried",
            failed.len()
        );
        for f in failed.iter().take(10) {
            println!("  failed {f}");
        }
        if failed.len() > 10 {
            println!("  ... and {} more", failed.len() - 10);
        }
        let cut = match stopped_at {
            Some((lap, end)) => format!(", in lap {lap} at byte {end}"),
            None => String::new(),
        };
        // Whichever of a signal and the deadline came first ended the run.
        if let Some(line) = signal_hit.then(|| signals::stopped_line(secs)).flatten() {
            println!("ended:       {line}{cut}");
        } else if deadline_hit {
            println!(
                "ended:       at the --time deadline ({} s){cut}",
                a.time.unwrap_or_default()
            );
        }
        let mut ok = failed.is_empty();
        let mut recv = None;
        if let Some(v) = &verifier {
            let r = v.report();
            println!("{r}");
            ok &= r.complete && r.mismatched == 0 && r.missing == 0;
            recv = Some(r);
        }
        if let Some(f) = stats.as_mut() {
            let mut o = JsonObject::new()
                .u64("bytes", bytes)
                .u64("frames", frames)
                .u64("ios", ios)
                .u64("errors", failed.len() as u64)
                .u64("retries", retries)
                .u64("failed_ranges", failed.len() as u64)
                .f64("secs", secs)
                .f64("cpu_s", cpu.as_secs_f64())
                .f64("gib_per_s", gib / secs)
                .u64("sleeps", sleeps)
                .bool("deadline", deadline_hit)
                .opt_str(
                    "stopped_by",
                    signal_hit
                        .then(signals::stop_signal)
                        .flatten()
                        .map(signals::signal_name)
                        .as_deref(),
                );
            // The receiver's verdict, null without a receiver.
            o = o
                .opt_u64("recv_frames", recv.as_ref().map(|r| r.frames))
                .opt_u64("recv_verified", recv.as_ref().map(|r| r.verified))
                .opt_u64("recv_mismatched", recv.as_ref().map(|r| r.mismatched))
                .opt_u64("recv_missing", recv.as_ref().map(|r| r.missing));
            let c = Counters {
                bytes,
                frames: Some(frames),
                ios: Some(ios),
                reads: Some(ios),
                errors: failed.len() as u64,
                drops: None,
            };
            set_tx_port(f, &tx, frames, bytes);
            f.finish(ok, c, o)?;
        }
        println!(
            "blkfwd: bytes={bytes} frames={frames} ios={ios} errors={} retries={retries} cpu_s={:.6} cpu_s_per_gib={cpu_per_gib:.6} gib_per_s={:.4} sleeps={sleeps} idle_rounds={idle_rounds} secs={secs:.3}",
            failed.len(),
            cpu.as_secs_f64(),
            gib / secs
        );
        if !ok {
            // The run's end in one line: what was not sent, and why.
            let not_sent: u64 = failed.iter().map(|f| f.len).sum();
            eprintln!(
                "blkfwd: {not_sent} bytes not sent in {} range(s), {bytes} sent: {}",
                failed.len(),
                shared
                    .cause()
                    .unwrap_or_else(|| "the receiver found bytes missing or wrong".into())
            );
        }
        drop(tx);
        Ok(ok)
    }
}

/// The sending port's figures for `--stats`/`--prometheus`: the app's
/// `frames` put into its TX rings (all workers' queues, labelled queue 0)
/// and their bytes (payload `bytes` and each frame's headers, without FCS),
/// and the device's own counters (ARP frames the port sent included). A
/// port that no longer answers keeps its last figures: the engine's cause
/// line names it, and the run is not ended from here.
fn set_tx_port<R: RegisterAccess>(f: &mut StatsFile, tx: &Port<R>, frames: u64, bytes: u64) {
    let app = apps::port_stats::Counts {
        tx_packets: frames,
        tx_bytes: bytes.saturating_add(frames.saturating_mul(FRAME_HEADERS as u64)),
        ..Default::default()
    };
    if let Ok(figs) = port_figures(std::slice::from_ref(&tx.name), &[&*tx.nic], &[app]) {
        f.set_ports(figs);
    }
}

fn main() {
    apps::restore_sigpipe();
    signals::install();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    let ok = exit_on_error((|| {
        let p = plan(args)?;
        let dev = p.args.nvme.clone();
        let iommu = p.iommu.clone();
        with_nvme_in(&dev, PageSize::Huge2M, iommu, Drive(p))
    })());
    apps::trace::session::end();
    std::process::exit(if ok { 0 } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_sleeps_at_most_half_a_ring_at_line_rate() {
        // 256 frames of 1538 bytes on the wire at 10 Gb/s: 1.2304 µs each.
        assert_eq!(
            half_ring_at_line_rate(512, 1500),
            Duration::from_nanos(314_982)
        );
        assert_eq!(
            half_ring_at_line_rate(512, 9000),
            Duration::from_nanos(1_850_982)
        );
        assert_eq!(half_ring_at_line_rate(1, 1500), Duration::ZERO);
    }
}
