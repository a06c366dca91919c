//! pktgen: send UDP frames carrying a sequence number out of a NIC port,
//! at a chosen size and rate; Mpps and Mbit/s each second.
#![forbid(unsafe_code)]
// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::arp::{choose_destination, ArpAgent, Destination};
use apps::backoff::Backoff;
use apps::monitor::{JsonObject, StatsFile};
use apps::net::{self, Flow};
use apps::open::device::DeviceSpec;
use apps::open::{with_nics, NicJob, Port};
use apps::port_stats::{monitor_finish, monitor_second, Counts, RatePrinter};
use apps::{exit_on_error, signals, AppResult};
use clap::Parser;
use dma::Pool;
use drivers::nic::{NicOptions, Offload, TxPacket};
use drivers::regs::RegisterAccess;
use spec::net::{ethernet, ipv4};
use std::time::{Duration, Instant};

/// Send UDP test frames (Ethernet/IPv4/UDP, payload: magic + sequence
/// number + fill pattern) with checksums offloaded to the NIC.
#[derive(Debug, Parser)]
#[command(
    name = "pktgen",
    version,
    after_help = "DEV is a PCI address bound to vfio-pci (0000:03:00.0) or an emulated port: \
emu:igb, emu:i350 or emu:ixgbe with wire=pair:NAME|loop|pcap:FILE|unix:PATH|tap:IFNAME.\n\n\
Examples:\n  pktgen emu:ixgbe,wire=pcap:out.pcap --count 1000\n  \
pktgen 0000:03:00.0 --size 1514 --rate 100000 --time 10 --dst-ip 10.0.0.2\n\n\
On a real port, pktgen learns the destination MAC by ARP from --dst-ip unless --dst-mac is \
given, and answers ARP for --src-ip while it runs; it sends to broadcast only with --dst-mac \
broadcast. UDP destination port 61891 by default, source ports 61900 and up."
)]
struct Args {
    /// The port: PCI address or emu:igb|i350|ixgbe[,options].
    device: String,
    #[command(flatten)]
    link: apps::link::LinkArgs,
    /// Frame size in bytes without the FCS (60 = 64-byte frames on the wire).
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// Frames per second; 0 sends as fast as the port takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Frames to send (default: until --time ends).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Seconds to run at most (default: 10 when no --count is given, else no limit).
    #[arg(long, value_parser = apps::parse_seconds)]
    time: Option<f64>,
    /// Frames per TX batch (one tail write each).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    batch: u16,
    #[arg(long, help = apps::arp::DST_MAC_HELP, value_parser = apps::arp::parse_dst_mac)]
    dst_mac: Option<Destination>,
    /// Seconds to wait for the ARP reply of --dst-ip (a request each
    /// second) before giving up with an error.
    #[arg(long, default_value = "3", value_parser = apps::arp::parse_arp_timeout)]
    arp_timeout: f64,
    /// Source IPv4 address.
    #[arg(long, default_value = "10.0.0.1", value_parser = net::parse_ipv4)]
    src_ip: [u8; 4],
    /// Destination IPv4 address.
    #[arg(long, default_value = "10.0.0.2", value_parser = net::parse_ipv4)]
    dst_ip: [u8; 4],
    /// UDP destination port (default from the dynamic range 49152-65535,
    /// above Linux's ephemeral ports, and no well-known protocol's).
    #[arg(long, default_value_t = net::PKTGEN_PORT)]
    dport: u16,
    /// Number of flows (source ports 61900.. round robin, so at most 3636),
    /// to spread over RSS queues.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_FLOWS))]
    flows: u16,
    /// Write the per-second figures as JSON lines and the final report as
    /// one JSON object to FILE (fields: see the apps::monitor docs).
    #[arg(long, value_name = "FILE")]
    stats: Option<std::path::PathBuf>,
    /// Keep FILE, a node_exporter textfile-collector file (Prometheus text
    /// format), rewritten atomically each second with the run's counters,
    /// the port's own counters and gauges (names: see the apps::monitor
    /// docs), e.g. /var/lib/node_exporter/textfile_collector/pktgen.prom.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<std::path::PathBuf>,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

/// Source ports `PKTGEN_SRC_PORT..=65535`, one per flow.
const MAX_FLOWS: i64 = 65536 - net::PKTGEN_SRC_PORT as i64;

struct Gen {
    args: Args,
    dest: Destination,
    /// The port answers ARP on its RX queue 0 and TX queue 1.
    arp: bool,
}

const TX_BUFS: usize = 2048;

/// How often a running pktgen looks for ARP requests to answer.
const ARP_POLL: Duration = Duration::from_millis(10);

/// How long the TX ring may send nothing at the end before pktgen gives up
/// on what it still holds.
const DRAIN_STALL: Duration = Duration::from_secs(2);

impl NicJob for Gen {
    type Output = ();

    fn run<R: RegisterAccess + 'static>(self, ports: Vec<Port<R>>) -> AppResult<()> {
        let a = self.args;
        let port = &ports[0];
        let nic = &port.nic;
        let mut arp = match self.arp {
            true => Some(ArpAgent::new(
                nic.rx_queue(0)?,
                nic.tx_queue(1)?,
                nic.mac(),
                a.src_ip,
            )),
            false => None,
        };
        let dst_mac = match (self.dest, arp.as_mut()) {
            (Destination::Mac(m), _) => m,
            (Destination::Arp, Some(agent)) => {
                let t = Duration::from_secs_f64(a.arp_timeout);
                let m = agent.resolve(a.dst_ip, t, &port.name)?;
                println!(
                    "pktgen: --dst-ip {} is at {} (ARP on {})",
                    std::net::Ipv4Addr::from(a.dst_ip),
                    spec::net::MacAddr(m),
                    port.name
                );
                m
            }
            (Destination::Arp, None) => unreachable!("Gen::arp is set when dest is Arp"),
        };
        let max = nic.max_frame();
        if a.size < net::MIN_TEST_FRAME.max(ethernet::MIN_FRAME_LEN) || a.size > max {
            return Err(format!(
                "--size {} is outside what this port sends: {} to {max} bytes (without FCS)",
                a.size,
                net::MIN_TEST_FRAME.max(ethernet::MIN_FRAME_LEN)
            )
            .into());
        }
        let buf_size = a.size.next_multiple_of(64).max(2048);
        let pool = Pool::new(port.mapper.clone(), TX_BUFS, buf_size, port.region)?;
        let flow = Flow {
            src_mac: nic.mac(),
            dst_mac,
            src_ip: a.src_ip,
            dst_ip: a.dst_ip,
            src_port: net::PKTGEN_SRC_PORT,
            dst_port: a.dport,
        };
        // Build every buffer's frame once: afterwards only the sequence
        // number (and source port) change, and buffers keep their content
        // through the pool.
        let mut all: Vec<_> = std::iter::from_fn(|| pool.alloc()).collect();
        for b in &mut all {
            let f = b.as_mut_slice();
            net::write_udp_headers(f, a.size, &flow);
            net::write_test_payload(f, 0);
        }
        drop(all);
        let mut cache = pool.cache(2 * a.batch as usize);
        let mut tx = nic.tx_queue(0)?;
        let offload = Offload::Ipv4Udp {
            l2_len: ethernet::HEADER_LEN as u8,
            l3_len: ipv4::HEADER_LEN as u16,
        };
        println!(
            "pktgen: {} ({}), MAC {}, {} B frames, {}, batch {}",
            port.name,
            port.backend,
            spec::net::MacAddr(nic.mac()),
            a.size,
            if a.rate == 0 {
                "full rate".to_string()
            } else {
                format!("{} frames/s", a.rate)
            },
            a.batch
        );
        port.print_link();
        let mut stats = StatsFile::open("pktgen", a.stats.as_deref(), a.prometheus.as_deref())?;
        if let Some(f) = stats.as_mut() {
            f.watch_pool("tx", &pool);
            f.watch_mapper(port.mapper.clone());
        }
        let start = Instant::now();
        let limit = a.time.or(a.count.is_none().then_some(10.0));
        let end = limit.map(|t| start + Duration::from_secs_f64(t));
        let mut seq = 0u64;
        // (origin, frames allowed at the origin) of the rate limit.
        let mut pace = (start, 0u64);
        let mut counts = Counts::default();
        let mut printer = RatePrinter::new(1);
        let mut pkts: Vec<TxPacket> = Vec::with_capacity(a.batch as usize);
        let names = [port.name.clone()];
        let mut backoff = Backoff::default();
        // ARP requests are answered between batches, every few ms.
        let mut next_arp = start;
        // The link, read when a round sends nothing (not per frame): while
        // it is down no frame goes into the ring, and its changes are lines.
        let link = nic.link_probe();
        let link_watch = apps::link::LinkWatch::default();
        let mut link_events = apps::link::LinkReporter::new(&port.name, start);
        loop {
            if let Some(agent) = arp.as_mut() {
                let now = Instant::now();
                if now >= next_arp {
                    agent.poll()?;
                    next_arp = now + ARP_POLL;
                }
            }
            if a.count.is_some_and(|c| seq >= c)
                || end.is_some_and(|e| Instant::now() >= e)
                || signals::stop_requested()
            {
                break;
            }
            let mut want = a.batch as u64;
            if let Some(c) = a.count {
                want = want.min(c - seq);
            }
            if a.rate > 0 {
                // Token bucket: frames allowed since the pacing origin at the
                // rate, minus those sent, never more than one batch ahead, so
                // that a thread that lost its core does not make up for it
                // with a burst the receivers' rings cannot absorb.
                let allowed = (pace.0.elapsed().as_secs_f64() * a.rate as f64) as u64 + pace.1;
                let credit = allowed.saturating_sub(seq);
                if credit > a.batch as u64 {
                    pace = (Instant::now(), seq + a.batch as u64);
                }
                want = want.min(credit.min(a.batch as u64));
            }
            while pkts.len() < want as usize {
                let Some(mut b) = cache.alloc() else { break };
                b.set_len(a.size);
                let f = b.as_mut_slice();
                net::set_seq(f, seq + pkts.len() as u64);
                if a.flows > 1 {
                    let sport =
                        net::PKTGEN_SRC_PORT + ((seq + pkts.len() as u64) % a.flows as u64) as u16;
                    let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
                    f[at..at + 2].copy_from_slice(&sport.to_be_bytes());
                }
                pkts.push(TxPacket::new(b).with_offload(offload));
            }
            // Frames the ring has no room for stay in `pkts` for the next
            // round (a peer holding transmission with flow control fills the
            // ring); none is dropped.
            let sent = if pkts.is_empty() || link_watch.is_down() {
                0
            } else {
                tx.tx_batch(&mut pkts)?
            };
            if sent == 0 {
                // Rate limit reached, every buffer in flight, or the ring
                // full, or the link down: wait, leaving the cores to the
                // device and the peer. (A device gone is the drain's to say.)
                link_watch.seen(!matches!(link.link(), Ok(s) if !s.up));
                link_events.print(&link_watch);
                backoff.idle();
            } else {
                backoff.reset();
                seq += sent as u64;
                counts.tx_packets += sent as u64;
                counts.tx_bytes += (sent * a.size) as u64;
            }
            tx.clean_into(&mut cache);
            if printer.due() {
                printer.print(&names, &[&**nic], &[counts])?;
            }
            monitor_second(
                stats.as_mut(),
                &names,
                &[&**nic],
                &[counts],
                counts.tx_bytes,
                counts.tx_packets,
            )?;
        }
        // Let the last frames go out, for as long as the port sends (a peer
        // holding transmission may take a while; a queue dropped with frames
        // in it stops within 100 ms).
        let drained = tx.drain(DRAIN_STALL);
        let secs = start.elapsed().as_secs_f64();
        let dev = apps::port_stats::device_stats(&port.name, nic)?;
        println!(
            "sent:        {seq} frames in {secs:.2} s ({:.3} Mpps, {:.1} Mbit/s with FCS)",
            seq as f64 / secs / 1e6,
            (seq * (a.size as u64 + 4)) as f64 * 8.0 / secs / 1e6
        );
        println!(
            "device:      {} frames, {} bytes sent (TX counters)",
            dev.tx_packets, dev.tx_bytes
        );
        if let Some(line) = signals::stopped_line(secs) {
            println!("ended:       {line}");
        }
        monitor_finish(
            stats.as_mut(),
            &names,
            &[&**nic],
            &[counts],
            counts.tx_bytes,
            counts.tx_packets,
            drained,
            JsonObject::new()
                .u64("frames", seq)
                .u64("bytes", counts.tx_bytes)
                .f64("secs", secs)
                .u64("device_tx_packets", dev.tx_packets)
                .u64("device_tx_bytes", dev.tx_bytes),
        )?;
        if !drained {
            return Err(format!(
                "{} TX descriptors were still queued after the port had sent nothing for {} s: \
                 the peer holds transmission (pause=on) or is gone; their frames are lost",
                tx.in_flight(),
                DRAIN_STALL.as_secs()
            )
            .into());
        }
        Ok(())
    }
}

fn main() {
    apps::restore_sigpipe();
    signals::install();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    let dev = vec![args.device.clone()];
    exit_on_error((|| {
        let spec: DeviceSpec = args.device.parse()?;
        let dest = match args.dst_mac {
            Some(d) => d,
            None => choose_destination(None, &spec)?,
        };
        let on_network = match &spec {
            DeviceSpec::EmuNic(n) => n.wire.starts_with("tap:"),
            _ => true,
        };
        let arp = on_network || dest == Destination::Arp;
        let opts = NicOptions {
            // Queue 1 sends ARP frames, queue 0 the test frames.
            tx_queues: 1 + u16::from(arp),
            link_timeout: args.link.timeout(),
            ..NicOptions::default()
        };
        with_nics(&dev, opts, Gen { args, dest, arp })
    })());
    apps::trace::session::end();
}
