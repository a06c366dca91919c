//! pktgen: send UDP frames carrying a sequence number out of a NIC port,
//! at a chosen size and rate; Mpps and Mbit/s each second.
#![forbid(unsafe_code)]
// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::backoff::Backoff;
use apps::net::{self, Flow};
use apps::open::{with_nics, NicJob, Port};
use apps::port_stats::{Counts, RatePrinter};
use apps::{exit_on_error, AppResult};
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
pktgen 0000:03:00.0 --size 1514 --rate 100000 --time 10"
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
    /// Destination MAC address.
    #[arg(long, default_value = "ff:ff:ff:ff:ff:ff", value_parser = net::parse_mac)]
    dst_mac: [u8; 6],
    /// Source IPv4 address.
    #[arg(long, default_value = "10.0.0.1", value_parser = net::parse_ipv4)]
    src_ip: [u8; 4],
    /// Destination IPv4 address.
    #[arg(long, default_value = "10.0.0.2", value_parser = net::parse_ipv4)]
    dst_ip: [u8; 4],
    /// UDP destination port.
    #[arg(long, default_value_t = 5678)]
    dport: u16,
    /// Number of flows (source ports 1024.. round robin), to spread over RSS queues.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    flows: u16,
}

struct Gen(Args);

const TX_BUFS: usize = 2048;

/// How long the TX ring may send nothing at the end before pktgen gives up
/// on what it still holds.
const DRAIN_STALL: Duration = Duration::from_secs(2);

impl NicJob for Gen {
    type Output = ();

    fn run<R: RegisterAccess + 'static>(self, ports: Vec<Port<R>>) -> AppResult<()> {
        let a = self.0;
        let port = &ports[0];
        let nic = &port.nic;
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
            dst_mac: a.dst_mac,
            src_ip: a.src_ip,
            dst_ip: a.dst_ip,
            src_port: 1024,
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
        // The link, read when a round sends nothing (not per frame): while
        // it is down no frame goes into the ring, and its changes are lines.
        let link = nic.link_probe();
        let link_watch = apps::link::LinkWatch::default();
        let mut link_events = apps::link::LinkReporter::new(&port.name, start);
        loop {
            if a.count.is_some_and(|c| seq >= c) || end.is_some_and(|e| Instant::now() >= e) {
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
                    let sport = 1024 + ((seq + pkts.len() as u64) % a.flows as u64) as u16;
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
    let args: Args = apps::parse_args();
    let dev = vec![args.device.clone()];
    let opts = NicOptions {
        link_timeout: args.link.timeout(),
        ..NicOptions::default()
    };
    exit_on_error(with_nics(&dev, opts, Gen(args)));
}
