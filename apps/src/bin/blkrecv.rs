//! blkrecv: receive a blkfwd stream from a capture file, a UDP socket or a
//! NIC port, and check that every byte of the range arrived once and is
//! what the disk holds.

// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::backoff::Backoff;
use apps::link::IdleLinkCheck;
use apps::monitor::{Counters, JsonObject, PortFigures, StatsFile};
use apps::open::{with_nics, NicJob, Port};
use apps::port_stats::{monitor_second, nic_counters, port_figures, Counts};
use apps::stream::{Expect, Verifier};
use apps::{exit_on_error, human_bytes, signals, AppResult};
use clap::Parser;
use drivers::nic::{NicOptions, RxPacket};
use drivers::regs::RegisterAccess;
use emu::pcap::{os_message, PcapReader};
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Receive a blkfwd stream and verify it: which bytes of the range arrived
/// (per lap), which are missing or came twice, and whether they match the
/// expected disk content. Ends with a report; exit status 0 only when every
/// lap is complete with nothing missing and nothing mismatched.
#[derive(Debug, Parser)]
#[command(
    name = "blkrecv",
    version,
    after_help = "SOURCE is one of:\n  pcap:FILE      a capture (classic pcap, either byte order, \
µs or ns timestamps); ends at the end of the file\n  udp:ADDR:PORT  a UDP socket bound to \
ADDR:PORT (port 0: any free port, printed)\n  DEV            a NIC port: a PCI address bound to \
vfio-pci or an emulated port (emu:igb|i350|ixgbe,wire=...), RX queue 0\n\n\
The report's line 'verified: N bytes, 0 mismatched' says every byte received was the \
expected one.\n\nExamples:\n  blkrecv pcap:stream.pcap --expect pattern\n  \
blkrecv udp:0.0.0.0:9000 --expect file:disk.img --laps 2\n  \
blkrecv 0000:03:00.1 --mtu 9000 --idle-exit 5\n  \
blkrecv pcap:wire.pcap --dst-port 4792 --expect file:disk.img"
)]
struct Args {
    /// Where the frames come from: pcap:FILE, udp:ADDR:PORT or a NIC port.
    source: String,
    #[command(flatten)]
    link: apps::link::LinkArgs,
    /// What the bytes must be: pattern[:SEED] (the emulated drives' pattern,
    /// seed 0x5eed unless given), file:PATH (a disk image, compared at the
    /// disk offset) or none (only check which bytes arrived).
    #[arg(long, default_value = "pattern")]
    expect: String,
    /// Stop after this many frames (of any kind).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Stop after this many seconds without a frame, once frames came
    /// (socket and NIC; default 2; 0: never).
    #[arg(long, value_parser = apps::parse_seconds)]
    idle_exit: Option<f64>,
    /// Seconds to wait for the first frame (socket and NIC; 0: for ever).
    #[arg(long, default_value_t = 30.0, value_parser = apps::parse_seconds)]
    wait: f64,
    /// Stop when this many laps are complete; frames of later laps are ignored.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    laps: Option<u32>,
    /// Take only IPv4/UDP frames to this destination port (blkfwd's
    /// --dst-port): several streams in one capture or on one port, each
    /// checked on its own. Other frames are counted and ignored. For pcap:
    /// and NIC sources (a udp: socket receives only the port it binds).
    #[arg(long)]
    dst_port: Option<u16>,
    /// IP MTU of the sender (NIC source: sizes the receive buffers; 9000 for
    /// jumbo frames).
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(576..=9216))]
    mtu: u16,
    /// No per-second lines.
    #[arg(long)]
    quiet: bool,
    /// Write the per-second figures as JSON lines and the final report as
    /// one JSON object to FILE (fields: see the apps::monitor docs).
    #[arg(long, value_name = "FILE")]
    stats: Option<std::path::PathBuf>,
    /// Keep FILE, a node_exporter textfile-collector file (Prometheus text
    /// format), rewritten atomically each second with the run's counters,
    /// the port's own counters (NIC source) and gauges (names: see the
    /// apps::monitor docs), e.g.
    /// /var/lib/node_exporter/textfile_collector/blkrecv.prom.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<std::path::PathBuf>,
    #[command(flatten)]
    trace: apps::trace::session::TraceArgs,
}

/// Where the frames come from.
enum Source {
    Pcap(String),
    Udp(String),
    Nic(String),
}

impl Source {
    fn parse(s: &str) -> AppResult<Source> {
        if let Some(f) = s.strip_prefix("pcap:") {
            if f.is_empty() {
                return Err("pcap: names no file; write pcap:FILE".into());
            }
            return Ok(Source::Pcap(f.to_string()));
        }
        if let Some(a) = s.strip_prefix("udp:") {
            if a.is_empty() {
                return Err(
                    "udp: names no address; write udp:ADDR:PORT, e.g. udp:0.0.0.0:9000".into(),
                );
            }
            return Ok(Source::Udp(a.to_string()));
        }
        Ok(Source::Nic(s.to_string()))
    }
}

/// Why the receiving stopped.
#[derive(Debug, Clone, Copy)]
enum End {
    Eof,
    Count,
    Laps,
    Idle(f64),
    NoFrame(f64),
    /// SIGINT or SIGTERM (its number): stop, and report what came so far.
    Signal(i32),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Eof => write!(f, "end of the capture"),
            End::Count => write!(f, "--count frames received"),
            End::Laps => write!(f, "--laps laps complete"),
            End::Idle(s) => write!(f, "no frame for {s} s (--idle-exit)"),
            End::NoFrame(s) => write!(f, "no frame within {s} s (--wait)"),
            End::Signal(s) => write!(f, "stopped by {}", signals::signal_name(*s)),
        }
    }
}

/// The receiving of one run: the verifier, counters, stop conditions and
/// the per-second line.
struct Session {
    verifier: Verifier,
    /// --expect as given, for the first line.
    expect_arg: String,
    frames: u64,
    /// --dst-port, and the frames it left out.
    dst_port: Option<u16>,
    other_port: u64,
    count: Option<u64>,
    laps: Option<u32>,
    idle: Option<Duration>,
    wait: Option<Duration>,
    quiet: bool,
    start: Instant,
    last_frame: Option<Instant>,
    /// (time, frames, payload bytes) at the last per-second line.
    shown: (Instant, u64, u64),
    /// Bytes of the frames received (NIC and pcap sources).
    frame_bytes: u64,
    /// --stats / --prometheus; its per-second line is written by
    /// [`Session::tick`], or by the NIC loop (with the port's counters)
    /// when `port_figures` is Some.
    stats: Option<StatsFile>,
    /// The port's figures at the end of a NIC source's run.
    port_figures: Option<Vec<PortFigures>>,
}

/// Seconds as a Duration, 0 meaning "no limit".
fn limit(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

impl Session {
    fn new(a: &Args, idle_default: f64) -> AppResult<Session> {
        let expect = Expect::parse(&a.expect)?;
        let mut verifier = Verifier::new(expect);
        if let Some(n) = a.laps {
            verifier.limit_laps(n);
        }
        // --idle-exit and --wait are finite, 0 or more and bounded
        // (apps::parse_seconds, the parser of every seconds option).
        let now = Instant::now();
        Ok(Session {
            verifier,
            expect_arg: a.expect.clone(),
            frames: 0,
            dst_port: a.dst_port,
            other_port: 0,
            count: a.count,
            laps: a.laps,
            idle: limit(a.idle_exit.unwrap_or(idle_default)),
            wait: limit(a.wait),
            quiet: a.quiet,
            start: now,
            last_frame: None,
            shown: (now, 0, 0),
            frame_bytes: 0,
            stats: StatsFile::open("blkrecv", a.stats.as_deref(), a.prometheus.as_deref())?,
            port_figures: None,
        })
    }

    /// A received Ethernet frame.
    #[inline]
    fn frame(&mut self, f: &[u8]) {
        self.frames += 1;
        self.frame_bytes += f.len() as u64;
        if self.dst_port.is_some_and(|p| udp_dst_port(f) != Some(p)) {
            self.other_port += 1;
            return;
        }
        self.verifier.accept_frame(f);
    }

    /// A received UDP payload.
    #[inline]
    fn datagram(&mut self, d: &[u8]) {
        self.frames += 1;
        self.verifier.accept_datagram(d);
    }

    /// Frames still wanted before --count is reached (`max` if more).
    fn room(&self, max: usize) -> usize {
        self.count.map_or(max, |c| {
            c.saturating_sub(self.frames).min(max as u64) as usize
        })
    }

    /// Whether --count, --laps or a SIGINT/SIGTERM says stop.
    #[inline]
    fn stop(&self) -> Option<End> {
        if self.count.is_some_and(|c| self.frames >= c) {
            Some(End::Count)
        } else if self
            .laps
            .is_some_and(|n| self.verifier.complete_laps() >= n)
        {
            Some(End::Laps)
        } else {
            signals::stop_signal().map(End::Signal)
        }
    }

    /// After a poll of a live source at `now` that found frames (`got`) or
    /// not: whether to stop, and why; prints the per-second line.
    fn end(&mut self, got: bool, now: Instant) -> Option<End> {
        if got {
            self.last_frame = Some(now);
        }
        if let Some(e) = self.stop() {
            return Some(e);
        }
        if !got {
            match (self.last_frame, self.idle, self.wait) {
                (Some(t), Some(l), _) if now.duration_since(t) >= l => {
                    return Some(End::Idle(l.as_secs_f64()))
                }
                (None, _, Some(l)) if now.duration_since(self.start) >= l => {
                    return Some(End::NoFrame(l.as_secs_f64()))
                }
                _ => {}
            }
        }
        self.tick(now);
        None
    }

    /// The per-second line, if a second has passed.
    fn tick(&mut self, now: Instant) {
        if self.port_figures.is_none() {
            if let Some(m) = self.stats.as_mut().filter(|m| m.due()) {
                m.second(Counters {
                    bytes: self.verifier.payload_bytes(),
                    frames: Some(self.frames),
                    ios: None,
                    reads: None,
                    errors: 0,
                    drops: None,
                });
            }
        }
        if !self.quiet && now.duration_since(self.shown.0) >= Duration::from_secs(1) {
            self.progress(now);
        }
    }

    fn progress(&mut self, now: Instant) {
        let (t0, f0, b0) = self.shown;
        let dt = now.duration_since(t0).as_secs_f64();
        let bytes = self.verifier.payload_bytes();
        eprintln!(
            "[{:>3}s] blkrecv: {:.1} MiB/s, {:.0} frames/s; {} in {} frames",
            now.duration_since(self.start).as_secs(),
            (bytes - b0) as f64 / dt / (1024.0 * 1024.0),
            (self.frames - f0) as f64 / dt,
            human_bytes(bytes),
            self.frames
        );
        self.shown = (now, self.frames, bytes);
    }

    /// Print the report (and write it to --stats / --prometheus); whether
    /// the run passed.
    fn finish(mut self, end: End) -> AppResult<bool> {
        let secs = self.start.elapsed().as_secs_f64();
        let bytes = self.verifier.payload_bytes();
        println!(
            "ended: {end} after {secs:.2} s; {} frames, {} of stream payload ({:.1} MiB/s)",
            self.frames,
            human_bytes(bytes),
            bytes as f64 / secs.max(1e-9) / (1024.0 * 1024.0)
        );
        if let Some(p) = self.dst_port {
            println!(
                "dst-port: {} frames not to UDP port {p} ignored (--dst-port)",
                self.other_port
            );
        }
        let r = self.verifier.report();
        println!("{r}");
        // Stopped by a signal, the stream was cut where the user asked:
        // what had not come by then is listed (missing) but not a failure;
        // a byte that came wrong still is.
        let mut ok = if matches!(end, End::Signal(_)) {
            r.mismatched == 0
        } else {
            r.complete && r.missing == 0 && r.mismatched == 0
        };
        if let Some(n) = self.laps {
            if r.complete_laps < n {
                println!(
                    "laps: {} of the {n} asked for (--laps) complete",
                    r.complete_laps
                );
                ok &= matches!(end, End::Signal(_));
            }
        }
        if let Some(m) = self.stats.as_mut() {
            let c = match self.port_figures.take() {
                Some(figs) => {
                    let c = nic_counters(bytes, self.frames, &figs);
                    m.set_ports(figs);
                    c
                }
                None => Counters {
                    bytes,
                    frames: Some(self.frames),
                    ios: None,
                    reads: None,
                    errors: 0,
                    drops: None,
                },
            };
            m.finish(
                ok,
                c,
                JsonObject::new()
                    .str("end", &end.to_string())
                    .f64("secs", secs)
                    .u64("frames", self.frames)
                    .u64("bytes", bytes)
                    .u64("complete_laps", r.complete_laps.into())
                    .u64("received", r.received)
                    .u64("verified", r.verified)
                    .u64("mismatched", r.mismatched)
                    .u64("missing", r.missing)
                    .opt_str("stopped_by", signals::stop_signal_name().as_deref()),
            )?;
        }
        Ok(ok)
    }
}

/// The UDP destination port of an IPv4 frame (any header length), or
/// None: not IPv4/UDP, too short, or a later fragment (no UDP header).
fn udp_dst_port(f: &[u8]) -> Option<u16> {
    use spec::net::{ethernet, ipv4, udp, EthernetFrame, Ipv4Packet, UdpDatagram};
    if EthernetFrame::new_checked(f).ok()?.ethertype() != ethernet::ethertype::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&f[ethernet::HEADER_LEN..]).ok()?;
    if ip.version() != 4 || ip.protocol() != ipv4::protocol::UDP || ip.frag_offset() != 0 {
        return None;
    }
    // Only the port is read: a datagram cut short after it still names it.
    let l4 = &f[ethernet::HEADER_LEN + ip.header_len()..];
    (l4.len() >= udp::field::DST_PORT.end).then(|| UdpDatagram::new_unchecked(l4).dst_port())
}

fn from_pcap(file: &str, s: &mut Session) -> AppResult<End> {
    let mut pcap = PcapReader::open(file)?;
    println!("blkrecv: pcap:{file}, expect {}", s.expect_arg);
    let mut frame = Vec::new();
    loop {
        if let Some(e) = s.stop() {
            return Ok(e);
        }
        if pcap.next_into(&mut frame)?.is_none() {
            return Ok(End::Eof);
        }
        s.frame(&frame);
        // The clock is read once per 1024 frames, not per frame.
        if s.frames.is_multiple_of(1024) {
            s.tick(Instant::now());
        }
    }
}

/// Ask for a large socket receive buffer: the default (about 200 KiB)
/// fills in a millisecond at 10 Gbit/s, and what does not fit is dropped.
/// The kernel caps the size at net.core.rmem_max; a smaller buffer still
/// works, so a refusal is not an error.
fn grow_receive_buffer(sock: &UdpSocket) {
    let size: libc::c_int = 32 << 20;
    // SAFETY: a valid socket fd, and a pointer to a c_int of the size given.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn from_udp(addr: &str, s: &mut Session) -> AppResult<End> {
    let sock = UdpSocket::bind(addr).map_err(|e| {
        format!(
            "cannot bind UDP socket {addr}: {}; give a local address and a free port, e.g. \
             udp:0.0.0.0:9000",
            os_message(&e)
        )
    })?;
    grow_receive_buffer(&sock);
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    println!(
        "blkrecv: udp:{}, expect {}",
        sock.local_addr()?,
        s.expect_arg
    );
    let mut buf = vec![0u8; 65536];
    loop {
        let got = match sock.recv(&mut buf) {
            Ok(n) => {
                s.datagram(&buf[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) if e.kind() == ErrorKind::Interrupted => false,
            Err(e) => {
                return Err(format!("receiving on udp:{addr} failed: {}", os_message(&e)).into())
            }
        };
        if let Some(e) = s.end(got, Instant::now()) {
            return Ok(e);
        }
    }
}

struct NicSource<'a> {
    session: &'a mut Session,
    mtu: usize,
}

impl NicJob for NicSource<'_> {
    type Output = End;

    fn run<R: RegisterAccess + 'static>(self, ports: Vec<Port<R>>) -> AppResult<End> {
        let s = self.session;
        let port = &ports[0];
        let need = self.mtu + spec::net::ethernet::HEADER_LEN;
        if port.nic.max_frame() < need {
            return Err(format!(
                "{} receives frames of at most {} bytes; --mtu {} needs {need}: use --mtu {} or \
                 less",
                port.name,
                port.nic.max_frame(),
                self.mtu,
                port.nic.max_frame() - spec::net::ethernet::HEADER_LEN
            )
            .into());
        }
        let mut rx = port.nic.rx_queue(0)?;
        println!(
            "blkrecv: {} ({}), RX queue 0, MTU {}, expect {}",
            port.name, port.backend, self.mtu, s.expect_arg
        );
        port.print_link();
        let mut pkts: Vec<RxPacket> = Vec::with_capacity(64);
        let mut backoff = Backoff::default();
        let names = [port.name.clone()];
        let counts = |s: &Session| Counts {
            rx_packets: s.frames,
            rx_bytes: s.frame_bytes,
            ..Counts::default()
        };
        if let Some(m) = s.stats.as_mut() {
            m.watch_pool("rx", rx.pool());
            m.watch_mapper(port.mapper.clone());
            // The NIC loop writes the lines, with the port's counters.
            s.port_figures = Some(Vec::new());
        }
        let mut link = IdleLinkCheck::new(&names, Instant::now());
        let end = loop {
            let n = rx.rx_batch(&mut pkts, s.room(64))?;
            for p in pkts.drain(..) {
                s.frame(p.buf.as_slice());
                rx.recycle(p.buf);
            }
            if n > 0 {
                backoff.reset();
            } else {
                backoff.idle();
                link.poll(&[&*port.nic]);
            }
            let c = counts(s);
            let (bytes, frames) = (s.verifier.payload_bytes(), s.frames);
            monitor_second(s.stats.as_mut(), &names, &[&port.nic], &[c], bytes, frames)?;
            if let Some(e) = s.end(n > 0, Instant::now()) {
                break e;
            }
        };
        if s.stats.is_some() {
            s.port_figures = Some(port_figures(&names, &[&port.nic], &[counts(s)])?);
        }
        let dev = apps::port_stats::device_stats(&port.name, &port.nic)?;
        println!(
            "device: {} frames received, {} dropped by the port (no free descriptor or buffer, \
             or missed)",
            dev.rx_packets,
            dev.rx_dropped()
        );
        Ok(end)
    }
}

fn run(a: &Args) -> AppResult<bool> {
    let source = Source::parse(&a.source)?;
    if let (Source::Udp(addr), Some(p)) = (&source, a.dst_port) {
        return Err(format!(
            "--dst-port {p} with udp:{addr}: a UDP socket receives only what is sent to the port \
             it binds; bind that port (udp:ADDR:{p}) and leave out --dst-port"
        )
        .into());
    }
    let mut s = match source {
        Source::Pcap(_) => Session::new(a, 0.0)?,
        _ => Session::new(a, 2.0)?,
    };
    let end = match &source {
        Source::Pcap(f) => from_pcap(f, &mut s)?,
        Source::Udp(addr) => from_udp(addr, &mut s)?,
        Source::Nic(dev) => {
            // RX buffers that hold a whole frame: IP MTU + Ethernet header
            // (+ FCS, which the port strips), in the device's 1 KiB units.
            let mtu = a.mtu as usize;
            let opts = NicOptions {
                buf_size: (mtu + 18).next_multiple_of(1024).max(2048),
                link_timeout: a.link.timeout(),
                ..NicOptions::default()
            };
            with_nics(
                std::slice::from_ref(dev),
                opts,
                NicSource {
                    session: &mut s,
                    mtu,
                },
            )?
        }
    };
    s.finish(end)
}

fn main() {
    apps::restore_sigpipe();
    signals::install();
    let args: Args = apps::parse_args();
    exit_on_error(apps::trace::session::start(&args.trace));
    let ok = exit_on_error(run(&args));
    apps::trace::session::end();
    if !ok {
        std::process::exit(1);
    }
}
