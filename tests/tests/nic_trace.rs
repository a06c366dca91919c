//! The descriptor trace of one TX frame and one RX frame through the real
//! NIC driver and an inline device model (igb and ixgbe), event by event:
//! what the driver wrote into the ring, its tail write, what the device
//! fetched, the buffer DMA, the frame on the wire, the write-back and what
//! the driver read back. Inline models are deterministic, so the exact
//! sequence is checked, and descriptor fields are read with the `spec`
//! layouts, not with the driver's encoder.
#![forbid(unsafe_code)]

use dma::{Buf, Pool, RegionOptions};
use drivers::nic::{Chip, Nic, NicOptions, Offload, TxPacket};
use drivers::trace::{Agent, DeviceInfo, DeviceKind, Engine, Event, Kind, Queue, Tracer};
use emu::nic::{EmuNic, NicModel, NicModelConfig};
use emu::wire::{open_wire, Wire};
use emu::{EmuBar, RunMode};
use spec::nic::adv_desc::{rx as rxd, tx as txd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0x7a, 0x01];
const PEER: [u8; 6] = [0x02, 0, 0, 0, 0x7a, 0x02];
const RX_QUEUES: u16 = 2;
const RING: u16 = 8;

/// An inline port of `chip` traced from before its init, the peer end of
/// its wire, and the tracer.
struct Rig {
    emu: EmuNic,
    nic: Nic<EmuBar<NicModel>>,
    peer: Arc<dyn Wire>,
    tracer: Arc<Tracer>,
    kind: DeviceKind,
}

static WIRES: AtomicUsize = AtomicUsize::new(0);

fn rig(chip: Chip) -> Rig {
    let name = format!(
        "pair:nic-trace-{}-{}",
        std::process::id(),
        WIRES.fetch_add(1, Ordering::Relaxed)
    );
    let wire = open_wire(&name).unwrap();
    let peer = open_wire(&name).unwrap();
    let emu = EmuNic::new(chip, NicModelConfig::with_mac(MAC), wire, RunMode::Inline).unwrap();
    emu.pci().enable();
    let kind = if chip == Chip::X82599 {
        DeviceKind::Ixgbe
    } else {
        DeviceKind::Igb
    };
    let tracer = Tracer::new(100_000);
    let tap = tracer.device(DeviceInfo {
        name: format!("emu:{}", chip.name()),
        kind,
        emulated: true,
    });
    assert!(emu.set_tap(tap.clone()));
    let mut bar = emu.bar();
    bar.set_trace(tap.clone());
    let opts = NicOptions {
        rx_queues: RX_QUEUES,
        rx_ring: RING,
        tx_ring: RING,
        pool_bufs: 64,
        region: RegionOptions::EMULATED,
        link_timeout: Duration::from_secs(2),
        trace: tap,
        ..NicOptions::default()
    };
    let nic = Nic::init(bar, emu.mapper(), chip, opts).unwrap();
    Rig {
        emu,
        nic,
        peer,
        tracer,
        kind,
    }
}

impl Rig {
    /// The register an event names.
    fn reg(&self, e: &Event) -> String {
        self.kind.reg_name(e.addr).unwrap_or_default()
    }

    /// The value last written to the register named `name`.
    fn last_write(&self, events: &[Event], name: &str) -> u64 {
        events
            .iter()
            .rev()
            .find(|e| e.kind == Kind::RegWrite && self.reg(e) == name)
            .unwrap_or_else(|| panic!("no write of {name}"))
            .value
    }

    /// A ring's base IOVA from the driver's writes of its base registers.
    fn ring_base(&self, events: &[Event], lo: &str, hi: &str) -> u64 {
        self.last_write(events, lo) | self.last_write(events, hi) << 32
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn buf(pool: &Pool, bytes: &[u8]) -> Buf {
    let mut b = pool.alloc().unwrap();
    b.set_len(bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    b
}

/// Ethernet + IPv4 + UDP from MAC to PEER, prepared for checksum offload
/// (IPv4 checksum 0, UDP checksum = the pseudo-header sum).
fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let l4_len = 8 + payload.len();
    let mut f = vec![0u8; 14 + 20 + l4_len];
    f[0..6].copy_from_slice(&PEER);
    f[6..12].copy_from_slice(&MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&(l4_len as u16).to_be_bytes());
    let mut sum: u32 = 17 + l4_len as u32;
    for w in [&src, &dst] {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32 + u16::from_be_bytes([w[2], w[3]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[40..42].copy_from_slice(&(sum as u16).to_be_bytes());
    f[42..].copy_from_slice(payload);
    f
}

/// The Toeplitz hash with the key the driver programs (the Microsoft RSS
/// verification key), from its definition.
fn toeplitz(input: &[u8]) -> u32 {
    const KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];
    let mut hash = 0u32;
    for i in 0..input.len() * 8 {
        if input[i / 8] & (0x80 >> (i % 8)) != 0 {
            let window = (0..32).fold(0u32, |w, k| {
                let p = i + k;
                w << 1 | ((KEY[p / 8] >> (7 - p % 8)) & 1) as u32
            });
            hash ^= window;
        }
    }
    hash
}

/// What each event is, one per line, for failure messages.
fn listing(r: &Rig, events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} [{}] @{:#x} {} len={} value={:#x} raw={}",
                e.agent,
                e.kind,
                e.queue,
                e.index,
                e.addr,
                r.reg(e),
                e.len,
                e.value,
                e.raw.hex()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn igb_tx_frame_with_checksum_offload_event_by_event() {
    tx_frame_event_by_event(Chip::I82576);
}

#[test]
fn ixgbe_tx_frame_with_checksum_offload_event_by_event() {
    tx_frame_event_by_event(Chip::X82599);
}

#[test]
fn igb_rx_frame_event_by_event() {
    rx_frame_event_by_event(Chip::I82576);
}

#[test]
fn ixgbe_rx_frame_event_by_event() {
    rx_frame_event_by_event(Chip::X82599);
}

/// A context descriptor, a header descriptor and a payload descriptor.
fn tx_frame_event_by_event(chip: Chip) {
    let r = rig(chip);
    let init = r.tracer.drain();
    let tdba = r.ring_base(&init, "TDBAL[0]", "TDBAH[0]");
    let pool = Pool::new(r.emu.mapper(), 16, 2048, RegionOptions::EMULATED).unwrap();
    let mut txq = r.nic.tx_queue(0).unwrap();
    let payload: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
    let f = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 4000, 53, &payload);
    let (head, tail) = (buf(&pool, &f[..42]), buf(&pool, &f[42..]));
    let (head_iova, tail_iova) = (head.iova(), tail.iova());
    let offload = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 20,
    };
    let mut pkts = vec![TxPacket::header_payload(head, tail).with_offload(offload)];
    assert_eq!(txq.tx_batch(&mut pkts).unwrap(), 1);
    let mut sent = vec![0u8; 2048];
    let n = r.peer.recv(&mut sent).unwrap().expect("the frame went out");
    sent.truncate(n);
    assert_eq!(txq.clean(), 3, "{chip:?}: all three descriptors done");
    let ev = r.tracer.drain();
    let all = listing(&r, &ev);
    assert_eq!(ev.len(), 12, "{chip:?}:\n{all}");
    let driver = |e: &Event| matches!(e.agent, Agent::Driver(_));
    let tx0 = Agent::Device(Engine::Tx(0));

    // The driver's three descriptors, each with its slot, IOVA and bytes.
    let written: Vec<&[u8]> = ev[..3].iter().map(|e| e.raw.as_slice()).collect();
    for (i, e) in ev[..3].iter().enumerate() {
        assert!(driver(e), "{all}");
        assert_eq!(e.kind, Kind::DescWrite, "{all}");
        assert_eq!((e.queue, e.index), (Queue::Tx(0), i as u32), "{all}");
        assert_eq!(e.addr, tdba + 16 * i as u64, "{all}");
        assert_eq!(e.raw.as_slice().len(), 16);
    }
    use txd::cmd_type_len as c;
    let cmd = |d: &[u8]| u32_at(d, txd::CMD_TYPE_LEN);
    // Context: DTYP = context, MACLEN 14 / IPLEN 20 (82599 §7.2.3.2.3:
    // VLAN_MACIP_LENS bits 8:0 IPLEN, 15:9 MACLEN), L4T UDP, IPv4.
    assert_eq!(c::DTYP.get(cmd(written[0])), c::DTYP_CONTEXT);
    assert_ne!(cmd(written[0]) & c::DEXT.bit(), 0);
    let lens = u32_at(written[0], 0);
    assert_eq!((lens >> 9 & 0x7f, lens & 0x1ff), (14, 20));
    // Header, then payload: buffer IOVA, DTALEN, EOP and RS on the last
    // only, PAYLEN = the frame, IXSM and TXSM (POPTS bits 0 and 1).
    for (d, iova, len, last) in [
        (written[1], head_iova, 42, false),
        (written[2], tail_iova, payload.len(), true),
    ] {
        assert_eq!(u64_at(d, txd::ADDR), iova);
        assert_eq!(c::DTYP.get(cmd(d)), c::DTYP_DATA);
        assert_eq!(c::DTALEN.get(cmd(d)) as usize, len);
        assert_eq!(cmd(d) & c::EOP.bit() != 0, last);
        assert_eq!(cmd(d) & c::RS.bit() != 0, last);
        let olinfo = u32_at(d, txd::OLINFO_STATUS);
        assert_eq!(olinfo >> 14, f.len() as u32, "PAYLEN");
        assert_eq!(txd::olinfo::POPTS.get(olinfo) & 3, 3, "IXSM and TXSM");
        assert_eq!(olinfo & txd::olinfo::DD.bit(), 0);
    }

    // The tail write, recorded by the BAR before the model acts.
    assert!(driver(&ev[3]));
    assert_eq!(ev[3].kind, Kind::RegWrite, "{all}");
    assert_eq!((r.reg(&ev[3]).as_str(), ev[3].value), ("TDT[0]", 3));

    // The device fetches exactly what the driver wrote.
    for (i, e) in ev[4..7].iter().enumerate() {
        assert_eq!((e.agent, e.kind), (tx0, Kind::Fetch), "{all}");
        assert_eq!((e.queue, e.index), (Queue::Tx(0), i as u32));
        assert_eq!(e.addr, tdba + 16 * i as u64);
        assert_eq!(e.raw.as_slice(), written[i], "{chip:?} fetch {i}");
    }
    // The two buffers, by DMA.
    for (e, iova, len) in [(&ev[7], head_iova, 42), (&ev[8], tail_iova, payload.len())] {
        assert_eq!((e.agent, e.kind), (tx0, Kind::DmaRead), "{all}");
        assert_eq!((e.addr, e.len as usize), (iova, len), "{all}");
    }
    // The frame on the wire: its length and first 64 bytes, checksums in.
    let fr = &ev[9];
    assert_eq!(
        (fr.agent, fr.kind, fr.queue),
        (Agent::Device(Engine::Wire), Kind::Frame, Queue::Tx(0)),
        "{all}"
    );
    assert_eq!(fr.len as usize, f.len());
    assert_eq!(sent.len(), f.len());
    assert_eq!(fr.raw.as_slice(), &sent[..64]);
    assert_ne!(&sent[24..26], &[0, 0], "IPv4 checksum filled in");
    // DD written back into the RS descriptor only: the driver's bytes with
    // the status dword replaced.
    let wb = &ev[10];
    assert_eq!((wb.agent, wb.kind), (tx0, Kind::WriteBack), "{all}");
    assert_eq!((wb.queue, wb.index, wb.addr), (Queue::Tx(0), 2, tdba + 32));
    let mut expect = written[2].to_vec();
    expect[txd::WB_STATUS..].copy_from_slice(&txd::olinfo::DD.bit().to_le_bytes());
    assert_eq!(wb.raw.as_slice(), &expect[..]);
    // ... which the driver's cleanup reads back.
    let rd = &ev[11];
    assert!(driver(rd));
    assert_eq!(rd.kind, Kind::DescRead, "{all}");
    assert_eq!((rd.queue, rd.index, rd.addr), (Queue::Tx(0), 2, tdba + 32));
    assert_eq!(rd.raw.as_slice(), &expect[..]);
}

fn rx_frame_event_by_event(chip: Chip) {
    let r = rig(chip);
    let init = r.tracer.drain();
    // At init, each RX ring is filled (all but one slot: RING - 1
    // descriptors) and shown to the device with one tail write.
    let mut posted = Vec::new();
    for q in 0..RX_QUEUES {
        let base = r.ring_base(&init, &format!("RDBAL[{q}]"), &format!("RDBAH[{q}]"));
        let rdt = format!("RDT[{q}]");
        // (The ring set-up writes RDT = 0 before: the refill's is the last.)
        let at = init
            .iter()
            .rposition(|e| e.kind == Kind::RegWrite && r.reg(e) == rdt)
            .unwrap_or_else(|| panic!("{chip:?}: no {rdt} write"));
        assert_eq!(init[at].value, RING as u64 - 1);
        let descs = &init[at + 1 - RING as usize..at];
        for (i, e) in descs.iter().enumerate() {
            assert_eq!(
                (e.kind, e.queue, e.index, e.addr),
                (
                    Kind::DescWrite,
                    Queue::Rx(q),
                    i as u32,
                    base + 16 * i as u64
                ),
                "{chip:?}:\n{}",
                listing(&r, &init)
            );
            let d = e.raw.as_slice();
            // Read format: packet buffer address, header address 0.
            assert_ne!(u64_at(d, rxd::PKT_ADDR), 0);
            assert_eq!(u64_at(d, rxd::HDR_ADDR), 0);
        }
        posted.push((base, descs.to_vec()));
    }
    let mut rxqs: Vec<_> = (0..RX_QUEUES).map(|q| r.nic.rx_queue(q).unwrap()).collect();

    let payload: Vec<u8> = (0..100u32).map(|i| i as u8 ^ 0x5a).collect();
    let (src, dst, sport, dport) = ([192, 168, 1, 9], [172, 16, 0, 9], 5001u16, 443u16);
    let mut f = udp_frame(src, dst, sport, dport, &payload);
    f[0..6].copy_from_slice(&MAC);
    f[6..12].copy_from_slice(&PEER);
    let hash = toeplitz(&[&src[..], &dst, &sport.to_be_bytes(), &dport.to_be_bytes()].concat());
    // RETA entry (hash & 127) names queue entry % queues.
    let q = ((hash & 127) % RX_QUEUES as u32) as u16;
    r.peer.send(&f).unwrap();
    assert!(r.emu.poll());
    let mut got = Vec::new();
    assert_eq!(rxqs[q as usize].rx_batch(&mut got, 8).unwrap(), 1);
    assert_eq!(got[0].buf.as_slice(), &f[..]);
    assert_eq!(got[0].rss_hash, hash);

    let ev = r.tracer.drain();
    let all = listing(&r, &ev);
    let (base, descs) = &posted[q as usize];
    let n = descs.len();
    assert_eq!(ev.len(), n + 4, "{chip:?} queue {q}:\n{all}");
    let rxq = Agent::Device(Engine::Rx(q));
    // The frame arrives for queue q ...
    assert_eq!(
        (ev[0].agent, ev[0].kind, ev[0].queue, ev[0].len as usize),
        (
            Agent::Device(Engine::Wire),
            Kind::Frame,
            Queue::Rx(q),
            f.len()
        ),
        "{all}"
    );
    assert_eq!(ev[0].raw.as_slice(), &f[..64]);
    // ... the engine fetches the posted descriptors, bytes as written ...
    for (i, e) in ev[1..=n].iter().enumerate() {
        assert_eq!(
            (e.agent, e.kind, e.queue),
            (rxq, Kind::Fetch, Queue::Rx(q)),
            "{all}"
        );
        assert_eq!((e.index, e.addr), (i as u32, base + 16 * i as u64));
        assert_eq!(e.raw, descs[i].raw);
    }
    // ... writes the frame into the first one's buffer ...
    let dw = &ev[n + 1];
    assert_eq!((dw.agent, dw.kind), (rxq, Kind::DmaWrite), "{all}");
    let buf_iova = u64_at(descs[0].raw.as_slice(), rxd::PKT_ADDR);
    assert_eq!((dw.addr, dw.len as usize), (buf_iova, f.len()));
    assert_eq!(got[0].buf.iova(), buf_iova);
    // ... and writes it back: length, DD and EOP, RSS type and hash.
    let wb = &ev[n + 2];
    assert_eq!(
        (wb.agent, wb.kind, wb.queue),
        (rxq, Kind::WriteBack, Queue::Rx(q)),
        "{all}"
    );
    assert_eq!((wb.index, wb.addr), (0, *base));
    let d = wb.raw.as_slice();
    assert_eq!(d.len(), 16);
    assert_eq!(
        u16::from_le_bytes([d[rxd::WB_LENGTH], d[rxd::WB_LENGTH + 1]]) as usize,
        f.len()
    );
    assert_eq!(
        u32_at(d, rxd::WB_STATUS_ERROR),
        rxd::status::DD.bit() | rxd::status::EOP.bit()
    );
    assert_eq!(u32_at(d, rxd::WB_RSS_HASH), hash);
    assert_eq!(
        rxd::info::RSS_TYPE.get(u32_at(d, rxd::WB_INFO)),
        rxd::rss_type::IPV4_UDP
    );
    // The driver consumes exactly that write-back.
    let rd = &ev[n + 3];
    assert!(matches!(rd.agent, Agent::Driver(_)), "{all}");
    assert_eq!(
        (rd.kind, rd.queue, rd.index, rd.addr),
        (Kind::DescRead, Queue::Rx(q), 0, *base)
    );
    assert_eq!(rd.raw, wb.raw);
}
