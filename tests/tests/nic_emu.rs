//! End-to-end tests of the NIC drivers (82576, I350, 82599) against the
//! emulated NICs, two ports cross-connected by a `pair:` wire, in both run
//! modes: inline (the device works during register writes and `poll`) and
//! threaded (the device runs on its own thread).
//!
//! Every test runs for every chip and mode. Frames are checked byte for
//! byte; checksums and RSS hashes are recomputed by independent code here.
#![forbid(unsafe_code)]

use dma::{Buf, Pool, RegionOptions};
use drivers::nic::{
    Chip, Nic, NicError, NicOptions, Offload, RxPacket, RxQueue, TxPacket, TxQueue,
};
use emu::nic::{EmuNic, NicModel, NicModelConfig};
use emu::wire::open_wire;
use emu::{EmuBar, RunMode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Port = Nic<EmuBar<NicModel>>;
type Rxq = RxQueue<EmuBar<NicModel>>;
type Txq = TxQueue<EmuBar<NicModel>>;

/// Run a test body for every chip and run mode, as six named tests.
macro_rules! every_chip_and_mode {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use emu::RunMode;
            use drivers::nic::Chip;
            #[test]
            fn i82576_inline() {
                super::$name(Chip::I82576, RunMode::Inline)
            }
            #[test]
            fn i82576_threaded() {
                super::$name(Chip::I82576, RunMode::Threaded)
            }
            #[test]
            fn i350_inline() {
                super::$name(Chip::I350, RunMode::Inline)
            }
            #[test]
            fn i350_threaded() {
                super::$name(Chip::I350, RunMode::Threaded)
            }
            #[test]
            fn x82599_inline() {
                super::$name(Chip::X82599, RunMode::Inline)
            }
            #[test]
            fn x82599_threaded() {
                super::$name(Chip::X82599, RunMode::Threaded)
            }
        }
    )*};
}

every_chip_and_mode!(
    init_reads_mac_and_link,
    frames_arrive_byte_identical_both_ways,
    scatter_gather_frame_arrives_concatenated,
    longest_scatter_gather_chain,
    checksum_offload_gives_valid_ipv4_udp_tcp,
    rss_spreads_flows_and_keeps_each_flow_on_one_queue,
    overload_counts_drops_and_recovers,
    forwarding_with_the_buffer_fast_path,
    forward_passes_every_frame_on_untouched,
    a_removed_port_reports_gone_not_up,
);

const TIMEOUT: Duration = Duration::from_secs(10);
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0xa0, 0x01];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x02];

/// One emulated port and its driver.
struct End {
    emu: EmuNic,
    nic: Port,
}

impl End {
    /// Let an inline device move frames from the wire into the RX rings.
    fn poll(&self) {
        if !self.emu.is_threaded() {
            self.emu.poll();
        }
    }
}

fn options(rx_queues: u16, rx_ring: u16) -> NicOptions {
    NicOptions {
        rx_queues,
        rx_ring,
        tx_ring: 512,
        pool_bufs: 1024,
        region: RegionOptions::EMULATED,
        link_timeout: Duration::from_secs(2),
        ..NicOptions::default()
    }
}

static PAIRS: AtomicUsize = AtomicUsize::new(0);

/// Two ports of `chip` cross-connected by a fresh `pair:` wire; B gets `opts_b`.
fn pair(chip: Chip, mode: RunMode, opts_b: NicOptions) -> (End, End) {
    let name = format!(
        "pair:nic-emu-{}-{}",
        std::process::id(),
        PAIRS.fetch_add(1, Ordering::Relaxed)
    );
    let wire_a = open_wire(&name).unwrap();
    let wire_b = open_wire(&name).unwrap();
    let a = end(chip, mode, MAC_A, wire_a, options(1, 512));
    let b = end(chip, mode, MAC_B, wire_b, opts_b);
    (a, b)
}

fn end(
    chip: Chip,
    mode: RunMode,
    mac: [u8; 6],
    wire: std::sync::Arc<dyn emu::wire::Wire>,
    opts: NicOptions,
) -> End {
    let emu = EmuNic::new(chip, NicModelConfig::with_mac(mac), wire, mode).unwrap();
    // The VFIO open enables bus mastering; so must we.
    emu.pci().enable();
    let nic = Nic::init(emu.bar(), emu.mapper(), chip, opts).unwrap();
    End { emu, nic }
}

/// A pool for frames to send, mapped in `end`'s IOMMU.
fn tx_pool(end: &End) -> Pool {
    Pool::new(end.emu.mapper(), 2048, 2048, RegionOptions::EMULATED).unwrap()
}

fn buf(pool: &Pool, bytes: &[u8]) -> Buf {
    let mut b = pool.alloc().expect("TX pool exhausted");
    b.set_len(bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    b
}

/// Send every packet (retrying while the ring is full), cleaning as it goes.
fn send_all(end: &End, txq: &mut Txq, mut pkts: Vec<TxPacket>) {
    let start = Instant::now();
    while !pkts.is_empty() {
        txq.tx_batch(&mut pkts).unwrap();
        txq.clean();
        assert!(start.elapsed() < TIMEOUT, "TX ring never drained");
        if !pkts.is_empty() {
            end.poll();
            std::thread::yield_now();
        }
    }
}

/// Receive frames on `rxq` until `n` arrived; panics after the timeout.
fn recv_n(end: &End, rxq: &mut Rxq, n: usize) -> Vec<RxPacket> {
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < n {
        end.poll();
        let want = n - out.len();
        if rxq.rx_batch(&mut out, want).unwrap() == 0 {
            assert!(
                start.elapsed() < TIMEOUT,
                "got {} of {n} frames on queue {}",
                out.len(),
                rxq.queue()
            );
            std::thread::yield_now();
        }
    }
    out
}

/// Wait until `cond` holds (polling inline devices); panics after the timeout.
fn wait_for(end: &End, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        end.poll();
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A deterministic byte pattern.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// An Ethernet frame from `src` to `dst` with an experimental EtherType.
fn eth_frame(dst: [u8; 6], src: [u8; 6], seed: u32, len: usize) -> Vec<u8> {
    let mut f = pattern(seed, len);
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f
}

// ------------------------------------------------------------- checksums

/// One's-complement sum of big-endian 16-bit words, folded, not inverted.
fn ones_sum(data: &[u8], mut acc: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Pseudo-header sum (RFC 768 / RFC 793), folded, not inverted.
fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: usize) -> u16 {
    let mut ph = Vec::with_capacity(12);
    ph.extend_from_slice(&src);
    ph.extend_from_slice(&dst);
    ph.extend_from_slice(&[0, proto]);
    ph.extend_from_slice(&(l4_len as u16).to_be_bytes());
    ones_sum(&ph, 0)
}

const UDP: u8 = 17;
const TCP: u8 = 6;

/// An Ethernet + IPv4 (20-byte header) + UDP/TCP frame, prepared for
/// offload: IP checksum 0, L4 checksum = pseudo-header sum.
fn l4_frame(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let l4_hdr = if proto == UDP { 8 } else { 20 };
    let l4_len = l4_hdr + payload.len();
    let mut f = vec![0u8; 14 + 20 + l4_len];
    f[0..6].copy_from_slice(&MAC_B);
    f[6..12].copy_from_slice(&MAC_A);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let l4 = &mut f[34..];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    let csum_at = if proto == UDP {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        6
    } else {
        l4[4..8].copy_from_slice(&1u32.to_be_bytes()); // sequence number
        l4[12] = 5 << 4; // data offset
        l4[13] = 0x18; // PSH, ACK
        l4[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        16
    };
    l4[csum_at..csum_at + 2].copy_from_slice(&pseudo_sum(src, dst, proto, l4_len).to_be_bytes());
    l4[l4_hdr..].copy_from_slice(payload);
    f
}

/// Check a received IPv4 frame's header and TCP/UDP checksums, parsing it
/// from scratch. Returns (protocol, source port).
fn verify_ipv4_l4(f: &[u8]) -> (u8, u16) {
    assert_eq!(u16::from_be_bytes([f[12], f[13]]), 0x0800, "not IPv4");
    let ip = &f[14..];
    assert_eq!(ip[0] >> 4, 4);
    let ihl = (ip[0] & 0xf) as usize * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    assert_ne!(
        u16::from_be_bytes([ip[10], ip[11]]),
        0,
        "IPv4 checksum not filled"
    );
    assert_eq!(
        ones_sum(&ip[..ihl], 0),
        0xffff,
        "IPv4 header checksum wrong"
    );
    let proto = ip[9];
    let src = [ip[12], ip[13], ip[14], ip[15]];
    let dst = [ip[16], ip[17], ip[18], ip[19]];
    let l4 = &ip[ihl..total];
    let csum_at = if proto == UDP { 6 } else { 16 };
    let field = u16::from_be_bytes([l4[csum_at], l4[csum_at + 1]]);
    assert_ne!(field, 0, "L4 checksum not filled");
    let sum = ones_sum(l4, pseudo_sum(src, dst, proto, l4.len()) as u32);
    assert_eq!(
        sum,
        0xffff,
        "{} checksum wrong",
        if proto == UDP { "UDP" } else { "TCP" }
    );
    (proto, u16::from_be_bytes([l4[0], l4[1]]))
}

// ------------------------------------------------------------------- RSS

/// The key the driver programs (the Microsoft RSS verification key).
const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash, written from its definition.
fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    for (i, byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                // The 32 key bits starting at bit position 8 * i + bit.
                let pos = 8 * i + bit;
                let mut window = 0u32;
                for k in 0..32 {
                    let p = pos + k;
                    let kb = (key[p / 8] >> (7 - p % 8)) & 1;
                    window = (window << 1) | kb as u32;
                }
                hash ^= window;
            }
        }
    }
    hash
}

#[test]
fn toeplitz_matches_the_published_test_vector() {
    // Microsoft's RSS verification suite: 66.9.149.187:2794 -> 161.142.100.80:1766.
    let mut input = Vec::new();
    input.extend_from_slice(&[66, 9, 149, 187]);
    input.extend_from_slice(&[161, 142, 100, 80]);
    assert_eq!(toeplitz(&RSS_KEY, &input), 0x323e_8fc2);
    input.extend_from_slice(&2794u16.to_be_bytes());
    input.extend_from_slice(&1766u16.to_be_bytes());
    assert_eq!(toeplitz(&RSS_KEY, &input), 0x51cc_c178);
}

// ----------------------------------------------------------------- tests

fn init_reads_mac_and_link(chip: Chip, mode: RunMode) {
    let (a, b) = pair(chip, mode, options(1, 512));
    assert_eq!(a.nic.chip(), chip);
    assert_eq!(a.nic.mac(), MAC_A);
    assert_eq!(b.nic.mac(), MAC_B);
    let speed = if chip == Chip::X82599 { 10_000 } else { 1000 };
    let link = a.nic.link().unwrap();
    assert!(link.up);
    assert_eq!(link.speed_mbps, speed);
    assert_eq!(a.nic.max_frame(), 2048);
    a.emu.set_link(false);
    assert!(!a.nic.link().unwrap().up);
    assert!(matches!(
        a.nic.wait_link(Duration::from_millis(20)),
        Err(NicError::LinkDown { .. })
    ));
    a.emu.set_link(true);
    assert_eq!(
        a.nic.wait_link(Duration::from_secs(1)).unwrap().speed_mbps,
        speed
    );
    // Queues are taken once.
    let _q = a.nic.rx_queue(0).unwrap();
    assert!(matches!(a.nic.rx_queue(0), Err(NicError::QueueTaken(0))));
    assert!(matches!(
        a.nic.tx_queue(1),
        Err(NicError::NoSuchQueue { q: 1, have: 1 })
    ));
    // The driver left the model without queue errors.
    assert_eq!(a.emu.counters().queue_errors, 0);
}

fn frames_arrive_byte_identical_both_ways(chip: Chip, mode: RunMode) {
    let (a, b) = pair(chip, mode, options(1, 512));
    for (from, to, src, dst) in [(&a, &b, MAC_A, MAC_B), (&b, &a, MAC_B, MAC_A)] {
        let pool = tx_pool(from);
        let mut txq = from.nic.tx_queue(0).unwrap();
        let mut rxq = to.nic.rx_queue(0).unwrap();
        // Sizes from the minimum to the port's largest frame.
        let sizes: Vec<usize> = (0..100)
            .map(|i| match i {
                0 => 60,
                1 => 2048,
                2 => 1514,
                _ => 60 + (i * 97) % 1455,
            })
            .collect();
        let frames: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| eth_frame(dst, src, i as u32, n))
            .collect();
        let before_tx = from.nic.stats();
        let before_rx = to.nic.stats();
        send_all(
            from,
            &mut txq,
            frames
                .iter()
                .map(|f| TxPacket::new(buf(&pool, f)))
                .collect(),
        );
        let got = recv_n(to, &mut rxq, frames.len());
        for (i, (p, f)) in got.iter().zip(&frames).enumerate() {
            assert_eq!(p.buf.len(), f.len(), "frame {i} length");
            assert!(p.buf.as_slice() == &f[..], "frame {i} differs");
        }
        // Every TX buffer comes back once the device is done with it.
        wait_for(from, "TX cleanup", || {
            txq.clean();
            txq.in_flight() == 0
        });
        assert_eq!(pool.free_count(), pool.capacity());
        let tx = from.nic.stats();
        let rx = to.nic.stats();
        let octets: u64 = sizes.iter().map(|&n| n as u64 + 4).sum();
        assert_eq!(tx.tx_packets - before_tx.tx_packets, 100);
        assert_eq!(
            tx.tx_bytes - before_tx.tx_bytes,
            octets,
            "GOTC counts FCS too"
        );
        assert_eq!(rx.rx_packets - before_rx.rx_packets, 100);
        assert_eq!(rx.rx_bytes - before_rx.rx_bytes, octets);
        assert_eq!(rx.rx_dropped(), 0);
        assert_eq!(rxq.stats().packets, 100);
    }
}

fn scatter_gather_frame_arrives_concatenated(chip: Chip, mode: RunMode) {
    let (a, b) = pair(chip, mode, options(1, 512));
    let pool = tx_pool(&a);
    let mut txq = a.nic.tx_queue(0).unwrap();
    let mut rxq = b.nic.rx_queue(0).unwrap();
    let mut pkts = Vec::new();
    let mut expect = Vec::new();
    for i in 0..20u32 {
        let header = eth_frame(MAC_B, MAC_A, i, 42);
        let p1 = pattern(1000 + i, 100 + i as usize * 30);
        let p2 = pattern(2000 + i, 7 + i as usize);
        let mut pkt = TxPacket::header_payload(buf(&pool, &header), buf(&pool, &p1));
        pkt.push(buf(&pool, &p2));
        expect.push([header, p1, p2].concat());
        pkts.push(pkt);
    }
    send_all(&a, &mut txq, pkts);
    let got = recv_n(&b, &mut rxq, expect.len());
    for (p, f) in got.iter().zip(&expect) {
        assert!(p.buf.as_slice() == &f[..], "scatter-gather frame differs");
    }
}

fn longest_scatter_gather_chain(chip: Chip, mode: RunMode) {
    let (a, b) = pair(chip, mode, options(1, 512));
    let pool = tx_pool(&a);
    let mut txq = a.nic.tx_queue(0).unwrap();
    let mut rxq = b.nic.rx_queue(0).unwrap();
    let max = txq.max_segments();
    assert_eq!(max, if chip == Chip::X82599 { 40 } else { 64 });
    let make = |n: usize| {
        let mut segs = vec![buf(&pool, &eth_frame(MAC_B, MAC_A, n as u32, 14))];
        segs.extend((1..n).map(|k| buf(&pool, &pattern(k as u32, 20))));
        TxPacket::from_segments(segs)
    };
    // One segment too many is refused and stays queued.
    let mut pkts = vec![make(max + 1)];
    let e = txq.tx_batch(&mut pkts).unwrap_err();
    assert!(
        matches!(e, NicError::TooManySegments { segments, max: m } if segments == max + 1 && m == max)
    );
    assert_eq!(pkts.len(), 1);
    // The longest allowed chain arrives whole.
    let pkt = make(max);
    let expect: Vec<u8> = pkt
        .segments()
        .iter()
        .flat_map(|b| b.as_slice().to_vec())
        .collect();
    send_all(&a, &mut txq, vec![pkt]);
    let got = recv_n(&b, &mut rxq, 1);
    assert_eq!(got[0].buf.as_slice(), &expect[..]);
}

fn checksum_offload_gives_valid_ipv4_udp_tcp(chip: Chip, mode: RunMode) {
    let (a, b) = pair(chip, mode, options(1, 512));
    let pool = tx_pool(&a);
    let mut txq = a.nic.tx_queue(0).unwrap();
    let mut rxq = b.nic.rx_queue(0).unwrap();
    let udp = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 20,
    };
    let tcp = Offload::Ipv4Tcp {
        l2_len: 14,
        l3_len: 20,
    };
    let src = [10, 0, 0, 1];
    let dst = [10, 0, 0, 2];
    // Offload changes within one batch: UDP, UDP, TCP, none, UDP...
    let plan = [UDP, UDP, TCP, 0, UDP, TCP, TCP, 0, 0, UDP];
    let mut pkts = Vec::new();
    let mut frames = Vec::new();
    for (i, &proto) in plan.iter().enumerate() {
        let payload = pattern(i as u32, 18 + i * 41);
        let (f, off) = match proto {
            UDP => (l4_frame(UDP, src, dst, 1000 + i as u16, 53, &payload), udp),
            TCP => (l4_frame(TCP, src, dst, 2000 + i as u16, 80, &payload), tcp),
            _ => (eth_frame(MAC_B, MAC_A, i as u32, 64 + i), Offload::None),
        };
        // Split header and payload over two buffers for half of them.
        let pkt = if i % 2 == 0 {
            TxPacket::new(buf(&pool, &f))
        } else {
            TxPacket::header_payload(buf(&pool, &f[..42]), buf(&pool, &f[42..]))
        };
        pkts.push(pkt.with_offload(off));
        frames.push((proto, f));
    }
    send_all(&a, &mut txq, pkts);
    assert_eq!(
        txq.stats().contexts,
        5,
        "a context descriptor per change only"
    );
    let got = recv_n(&b, &mut rxq, frames.len());
    for (i, (p, (proto, sent))) in got.iter().zip(&frames).enumerate() {
        let f = p.buf.as_slice();
        assert_eq!(f.len(), sent.len(), "frame {i}");
        if *proto == 0 {
            assert!(f == &sent[..], "frame {i} without offload changed");
            continue;
        }
        let (seen_proto, sport) = verify_ipv4_l4(f);
        assert_eq!(seen_proto, *proto);
        assert_eq!(sport, u16::from_be_bytes([sent[34], sent[35]]));
        // Only the two checksum fields may differ from what was sent.
        let csum_at = 34 + if *proto == UDP { 6 } else { 16 };
        for (k, (x, y)) in f.iter().zip(sent.iter()).enumerate() {
            if !(24..26).contains(&k) && !(csum_at..csum_at + 2).contains(&k) {
                assert_eq!(x, y, "frame {i} byte {k} changed");
            }
        }
    }
}

fn rss_spreads_flows_and_keeps_each_flow_on_one_queue(chip: Chip, mode: RunMode) {
    const QUEUES: u16 = 4;
    let (a, b) = pair(chip, mode, options(QUEUES, 512));
    let pool = tx_pool(&a);
    let mut txq = a.nic.tx_queue(0).unwrap();
    let mut rxqs: Vec<Rxq> = (0..QUEUES).map(|q| b.nic.rx_queue(q).unwrap()).collect();
    let flows = 48usize;
    let rounds = 3usize;
    let mut pkts = Vec::new();
    for r in 0..rounds {
        for fl in 0..flows {
            let proto = if fl % 2 == 0 { UDP } else { TCP };
            let src = [192, 168, (fl / 7) as u8, 1 + fl as u8];
            let dst = [172, 16, 0, 9];
            let f = l4_frame(
                proto,
                src,
                dst,
                5000 + fl as u16,
                443,
                &pattern(r as u32, 30),
            );
            pkts.push(TxPacket::new(buf(&pool, &f)));
        }
    }
    send_all(&a, &mut txq, pkts);
    let total = flows * rounds;
    let mut got: Vec<(usize, RxPacket)> = Vec::new();
    let start = Instant::now();
    let mut out = Vec::new();
    while got.len() < total {
        b.poll();
        let mut any = false;
        for (q, rxq) in rxqs.iter_mut().enumerate() {
            if rxq.rx_batch(&mut out, 64).unwrap() > 0 {
                any = true;
                got.extend(out.drain(..).map(|p| (q, p)));
            }
        }
        if !any {
            assert!(start.elapsed() < TIMEOUT, "got {} of {total}", got.len());
            std::thread::yield_now();
        }
    }
    let mut queue_of_flow = std::collections::HashMap::new();
    let mut used = std::collections::HashSet::new();
    for (q, p) in &got {
        let f = p.buf.as_slice();
        let ip = &f[14..34];
        let l4 = &f[34..38];
        // IPv4 source, destination, then source and destination ports: the
        // fields MRQC asks to hash for TCP and UDP over IPv4.
        let input = [&ip[12..20], l4].concat();
        let hash = toeplitz(&RSS_KEY, &input);
        assert_eq!(p.rss_hash, hash, "RSS hash of the written-back descriptor");
        // RETA entry (hash & 127) names queue entry % QUEUES.
        assert_eq!(
            *q,
            (hash as usize & 127) % QUEUES as usize,
            "queue chosen by RETA"
        );
        let flow = (ip[12..16].to_vec(), u16::from_be_bytes([l4[0], l4[1]]));
        let first = *queue_of_flow.entry(flow).or_insert(*q);
        assert_eq!(first, *q, "a flow moved between queues");
        used.insert(*q);
    }
    assert_eq!(queue_of_flow.len(), flows);
    assert!(used.len() >= 3, "flows spread over only {used:?}");
}

fn overload_counts_drops_and_recovers(chip: Chip, mode: RunMode) {
    const RING: u16 = 64;
    let (a, b) = pair(chip, mode, options(1, RING));
    let pool = tx_pool(&a);
    let mut txq = a.nic.tx_queue(0).unwrap();
    let mut rxq = b.nic.rx_queue(0).unwrap();
    let sent = 300;
    let frames: Vec<Vec<u8>> = (0..sent)
        .map(|i| eth_frame(MAC_B, MAC_A, i as u32, 128))
        .collect();
    // B does not receive while A sends.
    send_all(
        &a,
        &mut txq,
        frames
            .iter()
            .map(|f| TxPacket::new(buf(&pool, f)))
            .collect(),
    );
    let wire_drops = a.emu.wire().drops();
    let mut stats = b.nic.stats();
    wait_for(&b, "B to take every frame off the wire", || {
        stats = b.nic.stats();
        let dropped = stats.rx_missed + stats.rx_no_desc;
        stats.rx_packets + dropped + wire_drops == sent as u64
    });
    // The ring held RING - 1 frames; the rest were dropped and counted as
    // no-descriptor drops (SRRCTL.DROP_EN is set), not as missed packets.
    let dropped = sent as u64 - (RING as u64 - 1) - wire_drops;
    assert_eq!(stats.rx_packets, RING as u64 - 1);
    assert_eq!(stats.rx_no_desc, dropped);
    assert_eq!(stats.rx_no_buffer, dropped);
    assert_eq!(stats.rx_missed, 0);
    let got = recv_n(&b, &mut rxq, RING as usize - 1);
    for (p, f) in got.iter().zip(&frames) {
        assert!(
            p.buf.as_slice() == &f[..],
            "the first frames are the ones kept"
        );
    }
    let mut out = Vec::new();
    b.poll();
    assert_eq!(
        rxq.rx_batch(&mut out, 64).unwrap(),
        0,
        "nothing beyond the ring"
    );
    drop(got);
    // Not hung: new frames arrive once buffers are back.
    let more: Vec<Vec<u8>> = (0..10)
        .map(|i| eth_frame(MAC_B, MAC_A, 9000 + i, 200))
        .collect();
    send_all(
        &a,
        &mut txq,
        more.iter().map(|f| TxPacket::new(buf(&pool, f))).collect(),
    );
    let got = recv_n(&b, &mut rxq, more.len());
    for (p, f) in got.iter().zip(&more) {
        assert!(p.buf.as_slice() == &f[..]);
    }
}

/// A sends `n` frames to B, at most 64 on the way at a time (no ring
/// overflows); `pass` moves what B received back out of B's own TX queue
/// and returns how many it moved; A must get every frame back, unchanged
/// and in order. Returns B's queues and the count `pass` reported.
fn bounce(
    chip: Chip,
    mode: RunMode,
    n: usize,
    mut pass: impl FnMut(&mut Rxq, &mut Txq) -> usize,
) -> (Rxq, Txq, usize) {
    let (a, b) = pair(chip, mode, options(1, 512));
    let pool = tx_pool(&a);
    let mut a_tx = a.nic.tx_queue(0).unwrap();
    let mut a_rx = a.nic.rx_queue(0).unwrap();
    let mut b_rx = b.nic.rx_queue(0).unwrap();
    let mut b_tx = b.nic.tx_queue(0).unwrap();
    let frame = |i: usize| eth_frame(MAC_A, MAC_B, i as u32, 60 + i % 300);
    let (mut sent, mut moved, mut back) = (0, 0, 0);
    let mut batch = Vec::with_capacity(32);
    let mut got = Vec::new();
    // A stall fails the test, not a slow machine: the clock restarts with
    // every frame that comes back.
    let mut progress = Instant::now();
    while back < n {
        if batch.is_empty() && sent < n && back + 64 > sent {
            let end = (sent + 32).min(n);
            batch.extend((sent..end).map(|i| TxPacket::new(buf(&pool, &frame(i)))));
            sent = end;
        }
        a_tx.tx_batch(&mut batch).unwrap();
        a_tx.clean();
        b.poll();
        moved += pass(&mut b_rx, &mut b_tx);
        a.poll();
        a_rx.rx_batch(&mut got, 64).unwrap();
        for p in got.drain(..) {
            assert!(
                p.buf.as_slice() == &frame(back)[..],
                "frame {back} changed on the way"
            );
            back += 1;
            progress = Instant::now();
        }
        assert!(
            progress.elapsed() < TIMEOUT,
            "{back} of {n} came back ({moved} passed on, {} received by B's device)",
            b.nic.stats().rx_packets
        );
    }
    assert_eq!(b_rx.stats().packets, n as u64);
    assert_eq!(b_tx.stats().packets, n as u64);
    (b_rx, b_tx, moved)
}

fn forwarding_with_the_buffer_fast_path(chip: Chip, mode: RunMode) {
    // B passes frames on with rx_bufs / tx_bufs, returning sent buffers
    // to its RX cache.
    let mut bufs = Vec::with_capacity(64);
    bounce(chip, mode, 1000, |rx, tx| {
        tx.clean_into(rx.cache_mut());
        rx.rx_bufs(&mut bufs, 64).unwrap();
        tx.tx_bufs(&mut bufs).unwrap()
    });
}

fn forward_passes_every_frame_on_untouched(chip: Chip, mode: RunMode) {
    // B passes frames on with `nic::forward`: buffers go from ring to ring
    // as indices. On a threaded device, frames land while `forward` polls:
    // a write-back the driver misreads shows up as a frame that never
    // comes back.
    let n = 3000;
    let (b_rx, _, moved) = bounce(chip, mode, n, |rx, tx| {
        drivers::nic::forward(rx, tx, 32).unwrap().frames
    });
    assert_eq!(moved, n);
    assert_eq!(
        b_rx.pool().cpu_write_views(),
        0,
        "B's CPU wrote none of the forwarded buffers"
    );
}

/// PCIe surprise removal of a port that was up: every register reads all
/// ones, which must not read as "link up at full speed" nor as counters of
/// FFFFFFFFh; and a port already gone fails init with the cause.
fn a_removed_port_reports_gone_not_up(chip: Chip, mode: RunMode) {
    let removed = |e: &NicError| matches!(e, NicError::DeviceRemoved { .. });
    let (a, _b) = pair(chip, mode, options(1, 512));
    assert!(a.nic.link().unwrap().up);
    let before = a.nic.try_stats().unwrap();
    a.emu.surprise_remove();
    let e = a.nic.link().unwrap_err();
    assert!(removed(&e), "{e}");
    assert!(e.to_string().contains("FFFFFFFFh"), "{e}");
    let start = Instant::now();
    let e = a.nic.wait_link(TIMEOUT).unwrap_err();
    assert!(removed(&e), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "waited out the timeout"
    );
    for _ in 0..3 {
        assert!(removed(&a.nic.try_stats().unwrap_err()));
        assert_eq!(a.nic.stats(), before);
    }

    let wire = open_wire("loop").unwrap();
    let emu = EmuNic::new(chip, NicModelConfig::with_mac(MAC_A), wire, mode).unwrap();
    emu.pci().enable();
    emu.surprise_remove();
    let start = Instant::now();
    let e = Nic::init(emu.bar(), emu.mapper(), chip, options(1, 512))
        .err()
        .unwrap();
    assert!(removed(&e), "{e}");
    assert!(start.elapsed() < Duration::from_millis(500), "{e}");
}
