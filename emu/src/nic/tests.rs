//! The NIC models driven by a tiny scripted driver (not the real one):
//! every register write and descriptor is written by hand here, so each
//! test pins down one piece of device behaviour, on both chip families.
#![forbid(unsafe_code)]

use super::*;
use crate::wire::{LoopWire, PairWire};
use dma::{DmaRegion, RegionOptions};
use drivers::regs::RegisterAccess;
use drivers::trace::{Agent, Engine, Event, Kind, Queue, Tracer};
use spec::nic::adv_desc::{rx as rxd, tx as txd, DESC_SIZE};
use spec::nic::queue::{QueueMap, RxReg, TxReg};
use spec::nic::{igb, ixgbe, ETH_FCS_LEN, RSS_KEY};
use spec::Field;
use std::time::{Duration, Instant};

const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const PEER_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
const MEM: usize = 8 << 20;
/// Ring of queue q at RING_OFF + q * RING_SPAN (RX), + TX_RINGS for TX.
const RING_OFF: usize = 0;
const RING_SPAN: usize = 0x2000;
const TX_RINGS: usize = 0x40000;
/// Buffers: queue q, descriptor i at BUF_OFF + (q * 512 + i) * BUF.
const BUF_OFF: usize = 0x100000;
const BUF: usize = 2048;
/// TX payload area.
const TXBUF_OFF: usize = 0x600000;
const ENTRIES: u32 = 64;

/// The registers the scripted driver uses, per chip family.
struct Regs {
    ctrl: usize,
    ctrl_rst: u32,
    status: usize,
    eeprom: usize,
    eeprom_done: u32,
    rx_enable: (usize, u32),
    tx_enable: (usize, u32),
    filter: usize,
    upe: u32,
    bam: u32,
    /// Extra receive setup: (register, bits to set) — CRC stripping on igb.
    rx_extra: Vec<(usize, u32)>,
    /// The per-queue register maps (`spec::nic::*::{RX,TX}_QUEUES`).
    rx: &'static QueueMap<RxReg>,
    tx: &'static QueueMap<TxReg>,
    rxdctl_enable: u32,
    txdctl_enable: u32,
    bsizepacket: Field<u32>,
    desctype: Field<u32>,
    desctype_adv: u32,
    drop_en: u32,
    gprc: usize,
    gptc: usize,
    gorcl: usize,
    gorch: usize,
    gotcl: usize,
    mpc: usize,
    rnbc: usize,
    queue_drop: usize,
    mrqc: usize,
    mrqe_rss: u32,
    rss_ipv4: u32,
    rss_ipv4_tcp: u32,
    reta: fn(usize) -> usize,
    rssrk: fn(usize) -> usize,
    rxcsum: usize,
    pcsd: u32,
    rx_error: u32,
    crc_strip: (usize, u32),
}

impl Regs {
    /// RX register `reg` of queue `q`.
    fn rxq(&self, q: u16, reg: RxReg) -> usize {
        self.rx.addr(q, reg)
    }

    /// TX register `reg` of queue `q`.
    fn txq(&self, q: u16, reg: TxReg) -> usize {
        self.tx.addr(q, reg)
    }
}

fn regs(chip: Chip) -> Regs {
    match chip {
        Chip::X82599 => {
            use ixgbe::*;
            Regs {
                ctrl: CTRL,
                ctrl_rst: ctrl::RST_MASK,
                status: STATUS,
                eeprom: EEC,
                eeprom_done: eec::ARD.bit(),
                rx_enable: (RXCTRL, rxctrl::RXEN.bit()),
                tx_enable: (DMATXCTL, dmatxctl::TE.bit()),
                filter: FCTRL,
                upe: fctrl::UPE.bit(),
                bam: fctrl::BAM.bit(),
                rx_extra: vec![],
                rx: &RX_QUEUES,
                tx: &TX_QUEUES,
                rxdctl_enable: rxdctl::ENABLE.bit(),
                txdctl_enable: txdctl::ENABLE.bit(),
                bsizepacket: srrctl::BSIZEPACKET,
                desctype: srrctl::DESCTYPE,
                desctype_adv: srrctl::DESCTYPE_ADV_ONE_BUFFER,
                drop_en: srrctl::DROP_EN.bit(),
                gprc: GPRC,
                gptc: GPTC,
                gorcl: GORCL,
                gorch: GORCH,
                gotcl: GOTCL,
                mpc: mpc(0),
                rnbc: rnbc(0),
                queue_drop: qprdc(0),
                mrqc: MRQC,
                mrqe_rss: mrqc::MRQE.value(mrqc::MRQE_RSS),
                rss_ipv4: mrqc::RSS_FIELD_IPV4.bit(),
                rss_ipv4_tcp: mrqc::RSS_FIELD_IPV4_TCP.bit(),
                reta,
                rssrk,
                rxcsum: RXCSUM,
                pcsd: rxcsum::PCSD.bit(),
                rx_error: rxd::error_82599::RXE.bit(),
                crc_strip: (HLREG0, hlreg0::RXCRCSTRP.bit()),
            }
        }
        _ => {
            use igb::*;
            Regs {
                ctrl: CTRL,
                ctrl_rst: ctrl::RST.bit(),
                status: STATUS,
                eeprom: EECD,
                eeprom_done: eecd::AUTO_RD.bit(),
                rx_enable: (RCTL, rctl::EN.bit()),
                tx_enable: (TCTL, tctl::EN.bit()),
                filter: RCTL,
                upe: rctl::UPE.bit(),
                bam: rctl::BAM.bit(),
                rx_extra: vec![(RCTL, rctl::SECRC.bit())],
                rx: &RX_QUEUES,
                tx: &TX_QUEUES,
                rxdctl_enable: rxdctl::ENABLE.bit(),
                txdctl_enable: txdctl::ENABLE.bit(),
                bsizepacket: srrctl::BSIZEPACKET,
                desctype: srrctl::DESCTYPE,
                desctype_adv: srrctl::DESCTYPE_ADV_ONE_BUFFER,
                drop_en: srrctl::DROP_EN.bit(),
                gprc: GPRC,
                gptc: GPTC,
                gorcl: GORCL,
                gorch: GORCH,
                gotcl: GOTCL,
                mpc: MPC,
                rnbc: RNBC,
                queue_drop: rqdpc(0),
                mrqc: MRQC,
                mrqe_rss: mrqc::MRQE.value(mrqc::MRQE_RSS),
                rss_ipv4: mrqc::RSS_FIELD_IPV4.bit(),
                rss_ipv4_tcp: mrqc::RSS_FIELD_IPV4_TCP.bit(),
                reta,
                rssrk,
                rxcsum: RXCSUM,
                pcsd: rxcsum::PCSD.bit(),
                rx_error: rxd::error_82576::RXE.bit(),
                crc_strip: (RCTL, rctl::SECRC.bit()),
            }
        }
    }
}

const CHIPS: [Chip; 3] = [Chip::I82576, Chip::I350, Chip::X82599];

/// A scripted driver: one DMA region with rings and buffers.
struct Host {
    emu: EmuNic,
    bar: EmuBar<NicModel>,
    mem: DmaRegion,
    r: Regs,
    /// The driver's RX tail per queue.
    rx_tail: Vec<u32>,
    tx_tail: Vec<u32>,
}

impl Host {
    fn new(chip: Chip, mode: RunMode, wire: Arc<dyn Wire>) -> Host {
        Host::with_flow_control(chip, mode, wire, false)
    }

    fn with_flow_control(chip: Chip, mode: RunMode, wire: Arc<dyn Wire>, flow: bool) -> Host {
        let cfg = NicModelConfig {
            mac: MAC,
            queues: 4,
            link_up: true,
            flow_control: flow,
        };
        let emu = EmuNic::new(chip, cfg, wire, mode).unwrap();
        emu.pci().enable();
        let mem = DmaRegion::allocate(emu.mapper(), MEM, RegionOptions::EMULATED).unwrap();
        let bar = emu.bar();
        Host {
            emu,
            bar,
            mem,
            r: regs(chip),
            rx_tail: vec![0; 4],
            tx_tail: vec![0; 4],
        }
    }

    fn inline(chip: Chip) -> (Host, Arc<PairWire>) {
        let (a, b) = PairWire::connected();
        (Host::new(chip, RunMode::Inline, Arc::new(a)), Arc::new(b))
    }

    fn rd(&self, off: usize) -> u32 {
        self.bar.read32(off)
    }

    /// Record the device's events and the register accesses through this
    /// host's BAR from now on; the tracer to drain.
    fn trace(&mut self) -> Arc<Tracer> {
        let t = Tracer::new(100_000);
        let tap = t.device(drivers::trace::DeviceInfo {
            name: "emu:test".into(),
            kind: if self.emu.chip() == Chip::X82599 {
                drivers::trace::DeviceKind::Ixgbe
            } else {
                drivers::trace::DeviceKind::Igb
            },
            emulated: true,
        });
        assert!(self.emu.set_tap(tap.clone()));
        self.bar.set_trace(tap);
        t
    }

    fn wr(&self, off: usize, v: u32) {
        self.bar.write32(off, v)
    }

    fn set_bits(&self, off: usize, bits: u32) {
        self.wr(off, self.rd(off) | bits);
    }

    fn reset(&self) {
        self.wr(self.r.ctrl, self.r.ctrl_rst);
        assert_eq!(self.rd(self.r.ctrl) & self.r.ctrl_rst, 0, "RST self-clears");
    }

    fn rx_ring(q: u16) -> usize {
        RING_OFF + q as usize * RING_SPAN
    }

    fn tx_ring(q: u16) -> usize {
        TX_RINGS + q as usize * RING_SPAN
    }

    fn buf(q: u16, i: u32) -> usize {
        BUF_OFF + (q as usize * 512 + i as usize) * BUF
    }

    /// Program RX queue `q` with `entries` descriptors and `kib` KiB buffers.
    fn setup_rx_queue(&mut self, q: u16, entries: u32, kib: u32, extra_srrctl: u32) {
        let r = &self.r;
        let base = self.mem.iova_at(Self::rx_ring(q));
        self.wr(r.rxq(q, RxReg::Bal), base as u32);
        self.wr(r.rxq(q, RxReg::Bah), (base >> 32) as u32);
        self.wr(r.rxq(q, RxReg::Len), entries * DESC_SIZE as u32);
        let srr = r.bsizepacket.value(kib) | r.desctype.value(r.desctype_adv);
        self.wr(r.rxq(q, RxReg::Srrctl), srr | extra_srrctl);
        self.wr(r.rxq(q, RxReg::Head), 0);
        self.wr(r.rxq(q, RxReg::Tail), 0);
        self.wr(r.rxq(q, RxReg::Dctl), r.rxdctl_enable);
        assert_ne!(
            self.rd(r.rxq(q, RxReg::Dctl)) & r.rxdctl_enable,
            0,
            "ENABLE reads back"
        );
        self.rx_tail[q as usize] = 0;
    }

    /// Global receive on, broadcast accepted, CRC stripped.
    fn enable_rx(&self) {
        let r = &self.r;
        for &(reg, bits) in &r.rx_extra {
            self.set_bits(reg, bits);
        }
        self.set_bits(r.filter, r.bam);
        self.set_bits(r.rx_enable.0, r.rx_enable.1);
    }

    fn setup_rx(&mut self) {
        self.reset();
        self.setup_rx_queue(0, ENTRIES, 2, 0);
        self.enable_rx();
    }

    /// Post `n` buffers on RX queue `q` and write the tail.
    fn post_rx(&mut self, q: u16, n: u32) {
        let mut t = self.rx_tail[q as usize];
        for _ in 0..n {
            self.post_rx_addr(q, t, self.mem.iova_at(Self::buf(q, t)));
            t = (t + 1) % ENTRIES;
        }
        self.rx_tail[q as usize] = t;
        self.wr(self.r.rxq(q, RxReg::Tail), t);
    }

    fn post_rx_addr(&self, q: u16, i: u32, addr: u64) {
        let d = Self::rx_ring(q) + i as usize * DESC_SIZE;
        self.mem.write_u64(d + rxd::PKT_ADDR, addr);
        self.mem.write_u64(d + rxd::HDR_ADDR, 0);
    }

    /// The write-back of RX descriptor `i` of queue `q`: (dword 0, hash, status, length).
    fn rx_wb(&self, q: u16, i: u32) -> (u32, u32, u32, u16) {
        let d = Self::rx_ring(q) + i as usize * DESC_SIZE;
        let status = self.mem.load_u32_acquire(d + rxd::WB_STATUS_ERROR);
        (
            self.mem.read_u32(d + rxd::WB_INFO),
            self.mem.read_u32(d + rxd::WB_RSS_HASH),
            status,
            self.mem.read_u16(d + rxd::WB_LENGTH),
        )
    }

    fn rx_data(&self, q: u16, i: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_bytes(Self::buf(q, i), &mut v);
        v
    }

    fn setup_tx(&mut self, q: u16) {
        let r = &self.r;
        let base = self.mem.iova_at(Self::tx_ring(q));
        self.wr(r.txq(q, TxReg::Bal), base as u32);
        self.wr(r.txq(q, TxReg::Bah), (base >> 32) as u32);
        self.wr(r.txq(q, TxReg::Len), ENTRIES * DESC_SIZE as u32);
        self.wr(r.txq(q, TxReg::Head), 0);
        self.wr(r.txq(q, TxReg::Tail), 0);
        self.wr(r.txq(q, TxReg::Dctl), r.txdctl_enable);
        assert_ne!(self.rd(r.txq(q, TxReg::Dctl)) & r.txdctl_enable, 0);
        self.set_bits(r.tx_enable.0, r.tx_enable.1);
        self.tx_tail[q as usize] = 0;
    }

    /// Write a data descriptor at the TX tail of queue `q` (not yet rung).
    fn tx_data(&mut self, q: u16, addr: u64, len: usize, dcmd: u32, olinfo: u32) -> u32 {
        let i = self.tx_tail[q as usize];
        let d = Self::tx_ring(q) + i as usize * DESC_SIZE;
        let c = txd::cmd_type_len::DTALEN.value(len as u32)
            | txd::cmd_type_len::DTYP.value(txd::cmd_type_len::DTYP_DATA);
        self.mem.write_u64(d + txd::ADDR, addr);
        self.mem.write_u32(
            d + txd::CMD_TYPE_LEN,
            c | dcmd | txd::cmd_type_len::DEXT.bit(),
        );
        self.mem.write_u32(d + txd::OLINFO_STATUS, olinfo);
        self.tx_tail[q as usize] = (i + 1) % ENTRIES;
        i
    }

    /// Write a context descriptor for IPv4 with L4 type `l4t`.
    fn tx_context(&mut self, q: u16, maclen: u32, iplen: u32, l4t: u32) -> u32 {
        use txd::ctx;
        let i = self.tx_tail[q as usize];
        let d = Self::tx_ring(q) + i as usize * DESC_SIZE;
        let lens = ctx::MACLEN.set(ctx::IPLEN.value(iplen), maclen);
        let tucmd = ctx::TUCMD_L4T.value(l4t)
            | ctx::TUCMD_IPV4.bit()
            | ctx::DTYP.value(txd::cmd_type_len::DTYP_CONTEXT)
            | ctx::DEXT.bit();
        self.mem.write_u32(d + ctx::VLAN_MACIP_LENS, lens);
        self.mem.write_u32(d + ctx::SEQNUM_SEED, 0);
        self.mem.write_u32(d + ctx::TYPE_TUCMD_MLHL, tucmd);
        self.mem.write_u32(d + ctx::MSS_L4LEN_IDX, 0);
        self.tx_tail[q as usize] = (i + 1) % ENTRIES;
        i
    }

    fn ring_tx(&self, q: u16) {
        self.wr(self.r.txq(q, TxReg::Tail), self.tx_tail[q as usize]);
    }

    fn tx_status(&self, q: u16, i: u32) -> u32 {
        self.mem
            .load_u32_acquire(Self::tx_ring(q) + i as usize * DESC_SIZE + txd::WB_STATUS)
    }

    /// Put `bytes` in the TX payload area at `off`; its IOVA.
    fn tx_buf(&self, off: usize, bytes: &[u8]) -> u64 {
        self.mem.write_bytes(TXBUF_OFF + off, bytes);
        self.mem.iova_at(TXBUF_OFF + off)
    }
}

/// An Ethernet frame to `dst` of `len` bytes with a recognizable payload.
fn frame(dst: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x88, 0xb5]);
    while f.len() < len {
        f.push(seed.wrapping_add(f.len() as u8));
    }
    f
}

/// An IPv4/TCP or UDP frame.
fn ip_frame(
    dst: [u8; 6],
    src: [u8; 4],
    dip: [u8; 4],
    sport: u16,
    dport: u16,
    proto: u8,
) -> Vec<u8> {
    let l4len = if proto == 6 { 20 } else { 8 };
    let payload = 26;
    let total = 20 + l4len + payload;
    let mut f = dst.to_vec();
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0,
        0,
        64,
        proto,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend((0..payload).map(|i| i as u8 ^ 0x5a));
    f
}

/// Independent internet checksum: 16-bit words, carries folded each step.
fn inet_sum(chunks: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for c in chunks {
        bytes.extend_from_slice(c);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut acc: u32 = 0;
    for w in bytes.chunks(2) {
        acc += u16::from_be_bytes([w[0], w[1]]) as u32;
        if acc > 0xffff {
            acc -= 0xffff;
        }
    }
    acc as u16
}

fn recv(w: &dyn Wire) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; crate::wire::MAX_FRAME];
    w.recv(&mut buf).unwrap().map(|n| buf[..n].to_vec())
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn reset_self_clears_and_eeprom_and_dma_init_are_done() {
    for chip in CHIPS {
        let (h, _peer) = Host::inline(chip);
        let r = &h.r;
        assert_ne!(
            h.rd(r.eeprom) & r.eeprom_done,
            0,
            "{chip:?}: auto-read done"
        );
        // Something written is forgotten by a reset.
        h.wr(r.mrqc, r.mrqe_rss);
        h.wr(r.rxq(1, RxReg::Len), 4096);
        h.reset();
        assert_eq!(h.rd(r.mrqc), 0, "{chip:?}");
        assert_eq!(h.rd(r.rxq(1, RxReg::Len)), 0, "{chip:?}");
        assert_ne!(h.rd(r.eeprom) & r.eeprom_done, 0);
        // RAL/RAH[0] carry the EEPROM's MAC, valid.
        let (ral, rah, av) = match chip {
            Chip::X82599 => (ixgbe::ral(0), ixgbe::rah(0), ixgbe::rah::AV.bit()),
            _ => (igb::ral(0), igb::rah(0), igb::rah::AV.bit()),
        };
        assert_eq!(
            h.rd(ral),
            u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]])
        );
        assert_eq!(h.rd(rah), u16::from_le_bytes([MAC[4], MAC[5]]) as u32 | av);
        if chip == Chip::X82599 {
            assert_ne!(h.rd(ixgbe::RDRXCTL) & ixgbe::rdrxctl::DMAIDONE.bit(), 0);
            assert_ne!(h.rd(ixgbe::SECRXSTAT) & ixgbe::secrx::SECRX_RDY.bit(), 0);
            // LRST self-clears as well; AUTOC.RESTART_AN too.
            h.wr(ixgbe::CTRL, ixgbe::ctrl::LRST.bit());
            assert_eq!(h.rd(ixgbe::CTRL), 0);
            h.wr(
                ixgbe::AUTOC,
                ixgbe::autoc::RESTART_AN.bit() | ixgbe::autoc::FLU.bit(),
            );
            assert_eq!(h.rd(ixgbe::AUTOC), ixgbe::autoc::FLU.bit());
            // 82599 queues come out of reset disabled.
            assert_eq!(h.rd(ixgbe::rxdctl(0)) & ixgbe::rxdctl::ENABLE.bit(), 0);
        } else {
            // The 82576 enables queue 0 at reset.
            assert_ne!(h.rd(igb::rxdctl(0)) & igb::rxdctl::ENABLE.bit(), 0);
            assert_eq!(h.rd(igb::rxdctl(1)) & igb::rxdctl::ENABLE.bit(), 0);
        }
        // GIO master disable takes effect at once (no requests pending).
        let (gio_dis, gio_en) = match chip {
            Chip::X82599 => (
                ixgbe::ctrl::GIO_DIS.bit(),
                ixgbe::status::GIO_MASTER_ENABLE.bit(),
            ),
            _ => (
                igb::ctrl::GIO_MASTER_DISABLE.bit(),
                igb::status::GIO_MASTER_ENABLE.bit(),
            ),
        };
        assert_ne!(h.rd(r.status) & gio_en, 0);
        h.wr(r.ctrl, gio_dis);
        assert_eq!(h.rd(r.status) & gio_en, 0);
        h.reset();
        assert_ne!(h.rd(r.status) & gio_en, 0);
    }
}

#[test]
fn link_status_and_speed_follow_the_cable() {
    for chip in CHIPS {
        let (h, _peer) = Host::inline(chip);
        h.reset();
        match chip {
            Chip::X82599 => {
                let links = h.rd(ixgbe::LINKS);
                assert_ne!(links & ixgbe::links::LINK_UP.bit(), 0);
                assert_eq!(ixgbe::links::SPEED.get(links), ixgbe::links::SPEED_10G);
                assert_ne!(h.rd(ixgbe::STATUS) & ixgbe::status::LINK_UP.bit(), 0);
                h.emu.set_link(false);
                assert_eq!(h.rd(ixgbe::LINKS) & ixgbe::links::LINK_UP.bit(), 0);
                assert_eq!(h.rd(ixgbe::STATUS) & ixgbe::status::LINK_UP.bit(), 0);
            }
            _ => {
                let st = h.rd(igb::STATUS);
                assert_ne!(st & igb::status::LU.bit(), 0);
                assert_ne!(st & igb::status::FD.bit(), 0);
                assert_eq!(igb::status::SPEED.get(st), igb::status::SPEED_1000);
                // The PHY through MDIC: link and auto-negotiation complete.
                use igb::mdic;
                let read = |h: &Host, reg: u32| {
                    let cmd = mdic::OP.value(mdic::OP_READ)
                        | mdic::PHYADD.value(mdic::INTERNAL_PHY)
                        | mdic::REGADD.value(reg);
                    h.wr(igb::MDIC, cmd);
                    let v = h.rd(igb::MDIC);
                    assert_ne!(v & mdic::READY.bit(), 0);
                    assert_eq!(v & mdic::ERROR.bit(), 0);
                    mdic::DATA.get(v) as u16
                };
                let phy_status = read(&h, igb::phy::STATUS);
                assert_ne!(phy_status & igb::phy::STATUS_LINK.bit(), 0);
                assert_ne!(phy_status & igb::phy::STATUS_AN_COMPLETE.bit(), 0);
                assert_ne!(
                    read(&h, igb::phy::CONTROL) & igb::phy::CONTROL_AN_ENABLE.bit(),
                    0
                );
                // A PHY that is not there answers with ERROR.
                let cmd = mdic::OP.value(mdic::OP_READ) | mdic::PHYADD.value(7);
                h.wr(igb::MDIC, cmd);
                assert_ne!(h.rd(igb::MDIC) & mdic::ERROR.bit(), 0);
                h.emu.set_link(false);
                assert_eq!(h.rd(igb::STATUS) & igb::status::LU.bit(), 0);
                assert_eq!(read(&h, igb::phy::STATUS) & igb::phy::STATUS_LINK.bit(), 0);
            }
        }
    }
}

#[test]
fn received_frame_lands_in_the_posted_buffer_with_a_correct_write_back() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        h.post_rx(0, 4);
        let trace = h.trace();
        let f = frame(MAC, 100, 7);
        peer.send(&f).unwrap();
        assert_eq!(h.rx_wb(0, 0).2, 0, "nothing before the device works");
        assert!(h.emu.poll());
        let (_info, _hash, status, len) = h.rx_wb(0, 0);
        assert_eq!(
            status,
            rxd::status::DD.bit() | rxd::status::EOP.bit(),
            "{chip:?}"
        );
        assert_eq!(len as usize, f.len());
        assert_eq!(h.rx_data(0, 0, f.len()), f);
        assert_eq!(h.rd(h.r.rxq(0, RxReg::Head)), 1, "RDH advanced");
        assert_eq!(h.rx_wb(0, 1).2, 0, "next descriptor untouched");
        let events = trace.drain();
        let desc0 = h.mem.iova_at(Host::rx_ring(0));
        let rx0 = Agent::Device(Engine::Rx(0));
        assert!(events.iter().any(|e| e.kind == Kind::Fetch
            && (e.agent, e.queue, e.index, e.addr) == (rx0, Queue::Rx(0), 0, desc0)));
        assert!(events.iter().any(|e| e.kind == Kind::DmaWrite
            && (e.agent, e.addr, e.len as usize)
                == (rx0, h.mem.iova_at(Host::buf(0, 0)), f.len())));
        assert!(events.iter().any(|e| e.kind == Kind::WriteBack
            && (e.agent, e.queue, e.index) == (rx0, Queue::Rx(0), 0)
            && status_dword(e, rxd::WB_STATUS_ERROR)
                == rxd::status::DD.bit() | rxd::status::EOP.bit()));
        // Statistics: one good packet, its octets with the FCS.
        assert_eq!(h.rd(h.r.gprc), 1);
        assert_eq!(h.rd(h.r.gorcl), (f.len() + ETH_FCS_LEN) as u32);
        assert_eq!(h.rd(h.r.gorch), 0);
        assert_eq!(h.emu.counters().rx_delivered, 1);
    }
}

#[test]
fn rdt_write_delivers_waiting_frames_inline_and_doorbells_are_traced() {
    let (mut h, peer) = Host::inline(Chip::X82599);
    h.setup_rx();
    let trace = h.trace();
    let f = frame(MAC, 64, 1);
    peer.send(&f).unwrap();
    // Reading RDH delivers too: no descriptor yet, so the frame is dropped.
    assert_eq!(h.rd(ixgbe::rdh(0)), 0);
    assert_eq!(h.emu.counters().rx_no_descriptor, 1);
    peer.send(&f).unwrap();
    h.post_rx(0, 2);
    assert_eq!(
        h.rx_wb(0, 0).2,
        rxd::status::DD.bit() | rxd::status::EOP.bit()
    );
    let events = trace.drain();
    assert!(events
        .iter()
        .any(|e| e.kind == Kind::RegWrite && (e.addr, e.value) == (ixgbe::rdt(0) as u64, 2)));
}

/// With flow control a frame waits on the wire while the port cannot take
/// it: before the driver has first enabled RX, and while the ring is full;
/// it arrives once there is room, nothing dropped. A receiver turned off
/// later drops.
#[test]
fn with_flow_control_frames_wait_for_an_enabled_ring_with_room() {
    for chip in CHIPS {
        let (a, peer) = PairWire::connected();
        let port_end = Arc::new(a);
        let mut h = Host::with_flow_control(chip, RunMode::Inline, port_end.clone(), true);
        // Frames on the wire that the port has not taken.
        let waiting = || port_end.pending();
        h.reset();
        let f = frame(MAC, 60, 7);
        peer.send(&f).unwrap();
        h.emu.poll();
        assert_eq!(waiting(), 1, "{chip:?}: held before RX is enabled");
        h.setup_rx_queue(0, ENTRIES, 2, 0);
        h.enable_rx();
        h.emu.poll();
        assert_eq!(waiting(), 1, "{chip:?}: held while the ring is empty");
        h.post_rx(0, 1);
        peer.send(&f).unwrap();
        h.emu.poll();
        assert_eq!(
            h.rx_wb(0, 0).2,
            rxd::status::DD.bit() | rxd::status::EOP.bit(),
            "{chip:?}"
        );
        assert_eq!(h.rx_data(0, 0, f.len()), f);
        assert_eq!(waiting(), 1, "{chip:?}: the second waits for a descriptor");
        h.post_rx(0, 1);
        h.emu.poll();
        assert_eq!(waiting(), 0);
        assert_eq!(
            h.rx_wb(0, 1).2,
            rxd::status::DD.bit() | rxd::status::EOP.bit()
        );
        assert_eq!(h.rd(h.r.mpc), 0, "{chip:?}: nothing missed");
        assert_eq!(h.emu.counters().rx_no_descriptor, 0);
        assert_eq!(h.emu.counters().rx_disabled, 0);
        // A receiver the driver turns off later drops, as the chips do: the
        // peer is not held for ever.
        let (off, bit) = h.r.rx_enable;
        h.wr(off, h.rd(off) & !bit);
        peer.send(&f).unwrap();
        h.emu.poll();
        assert_eq!(waiting(), 0, "{chip:?}");
        assert_eq!(h.emu.counters().rx_disabled, 1, "{chip:?}");
    }
}

#[test]
fn frame_without_free_descriptor_is_dropped_and_counted() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        let f = frame(MAC, 60, 3);
        peer.send(&f).unwrap();
        h.emu.poll();
        assert_eq!(h.rd(h.r.rnbc), 1, "{chip:?}");
        assert_eq!(h.rd(h.r.mpc), 1, "{chip:?}: no DROP_EN: missed");
        assert_eq!(h.rd(h.r.queue_drop), 0);
        assert_eq!(h.rd(h.r.gprc), 0);
        // With DROP_EN the drop is the queue's.
        h.setup_rx_queue(0, ENTRIES, 2, h.r.drop_en);
        peer.send(&f).unwrap();
        h.emu.poll();
        assert_eq!(h.rd(h.r.rnbc), 1);
        assert_eq!(h.rd(h.r.mpc), 0);
        assert_eq!(h.rd(h.r.queue_drop), 1, "{chip:?}");
        // A ring of one free descriptor takes exactly one of two frames.
        h.post_rx(0, 1);
        peer.send(&f).unwrap();
        peer.send(&f).unwrap();
        h.emu.poll();
        assert_eq!(
            h.rx_wb(0, 0).2,
            rxd::status::DD.bit() | rxd::status::EOP.bit()
        );
        assert_eq!(h.rd(h.r.gprc), 1);
        assert_eq!(h.rd(h.r.queue_drop), 1);
        assert_eq!(h.emu.counters().rx_no_descriptor, 3);
    }
}

#[test]
fn frame_larger_than_a_buffer_spans_descriptors_with_eop_on_the_last() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.reset();
        h.setup_rx_queue(0, ENTRIES, 1, 0);
        h.enable_rx();
        // Allow long frames.
        match chip {
            Chip::X82599 => h.set_bits(ixgbe::HLREG0, ixgbe::hlreg0::JUMBOEN.bit()),
            _ => {
                h.wr(igb::RLPML, 9018);
                h.set_bits(igb::RCTL, igb::rctl::LPE.bit());
            }
        }
        if chip == Chip::X82599 {
            h.wr(ixgbe::MAXFRS, ixgbe::maxfrs::MFS.value(9018));
        }
        h.post_rx(0, 8);
        let f = frame(MAC, 2500, 9);
        peer.send(&f).unwrap();
        h.emu.poll();
        let mut got = Vec::new();
        for (i, want_len) in [(0u32, 1024u16), (1, 1024), (2, 452)] {
            let (_, _, status, len) = h.rx_wb(0, i);
            let eop = if i == 2 { rxd::status::EOP.bit() } else { 0 };
            assert_eq!(
                status,
                rxd::status::DD.bit() | eop,
                "{chip:?} descriptor {i}"
            );
            assert_eq!(len, want_len);
            got.extend(h.rx_data(0, i, len as usize));
        }
        assert_eq!(got, f);
        assert_eq!(h.rd(h.r.rxq(0, RxReg::Head)), 3);
        // Too long for the configured maximum: oversize, dropped.
        peer.send(&frame(MAC, 9100, 1)).unwrap();
        h.emu.poll();
        assert_eq!(h.emu.counters().rx_oversize, 1);
        assert_eq!(h.rd(h.r.rxq(0, RxReg::Head)), 3);
    }
}

#[test]
fn standard_maximum_applies_without_long_packet_enable() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        h.post_rx(0, 4);
        peer.send(&frame(MAC, 1514, 1)).unwrap();
        peer.send(&frame(MAC, 1515, 1)).unwrap();
        h.emu.poll();
        assert_eq!(h.rx_wb(0, 0).3, 1514, "{chip:?}");
        assert_eq!(h.emu.counters().rx_oversize, 1);
    }
}

#[test]
fn destination_filter_and_promiscuous_modes() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        h.post_rx(0, 8);
        let other = [0x02, 9, 9, 9, 9, 9];
        peer.send(&frame(other, 60, 0)).unwrap();
        peer.send(&frame([0x01, 0, 0x5e, 0, 0, 1], 60, 0)).unwrap();
        peer.send(&frame([0xff; 6], 60, 0)).unwrap();
        peer.send(&frame(MAC, 60, 0)).unwrap();
        h.emu.poll();
        let c = h.emu.counters();
        assert_eq!((c.rx_filtered, c.rx_delivered), (2, 2), "{chip:?}");
        // Broadcast needs BAM.
        let bam = h.r.bam;
        h.wr(h.r.filter, h.rd(h.r.filter) & !bam);
        peer.send(&frame([0xff; 6], 60, 0)).unwrap();
        h.emu.poll();
        assert_eq!(h.emu.counters().rx_filtered, 3);
        // Unicast promiscuous takes anything.
        h.set_bits(h.r.filter, h.r.upe);
        peer.send(&frame(other, 60, 0)).unwrap();
        h.emu.poll();
        assert_eq!(h.emu.counters().rx_delivered, 3);
        // Receive disabled: nothing is taken.
        let (en_reg, en) = h.r.rx_enable;
        h.wr(en_reg, h.rd(en_reg) & !en);
        peer.send(&frame(MAC, 60, 0)).unwrap();
        h.emu.poll();
        assert_eq!(h.emu.counters().rx_disabled, 1);
        assert_eq!(h.emu.counters().rx_delivered, 3);
    }
}

#[test]
fn crc_is_stored_when_not_stripped_and_short_frames_are_padded() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        let (reg, bit) = h.r.crc_strip;
        h.wr(reg, h.rd(reg) & !bit);
        h.post_rx(0, 4);
        let f = frame(MAC, 100, 4);
        peer.send(&f).unwrap();
        // A 42-byte frame (an ARP request from a TAP peer) arrives padded.
        peer.send(&frame(MAC, 42, 5)).unwrap();
        h.emu.poll();
        let (_, _, _, len) = h.rx_wb(0, 0);
        assert_eq!(len as usize, f.len() + ETH_FCS_LEN, "{chip:?}");
        let data = h.rx_data(0, 0, len as usize);
        assert_eq!(&data[..f.len()], &f[..]);
        assert_eq!(&data[f.len()..], &frame::fcs(&f));
        let (_, _, _, len) = h.rx_wb(0, 1);
        assert_eq!(len as usize, 60 + ETH_FCS_LEN);
    }
}

#[test]
fn three_segment_packet_arrives_concatenated_and_dd_only_where_rs() {
    for chip in CHIPS {
        let (mut h, wire) = Host::inline(chip);
        h.reset();
        h.setup_tx(0);
        let f = frame(PEER_MAC, 300, 11);
        let (a, b, c) = (&f[..14], &f[14..114], &f[114..]);
        let ia = h.tx_buf(0, a);
        let ib = h.tx_buf(4096, b);
        let ic = h.tx_buf(8192, c);
        const EOP: u32 = txd::cmd_type_len::EOP.bit();
        const IFCS: u32 = txd::cmd_type_len::IFCS.bit();
        const RS: u32 = txd::cmd_type_len::RS.bit();
        let olinfo = txd::olinfo::PAYLEN.value(f.len() as u32);
        h.tx_data(0, ia, a.len(), IFCS, olinfo);
        h.tx_data(0, ib, b.len(), IFCS, 0);
        h.tx_data(0, ic, c.len(), IFCS | EOP | RS, 0);
        // A second packet: RS on its first descriptor only.
        let g = frame(PEER_MAC, 80, 12);
        let ig = h.tx_buf(12288, &g[..40]);
        let ig2 = h.tx_buf(16384, &g[40..]);
        h.tx_data(0, ig, 40, IFCS | RS, 0);
        h.tx_data(0, ig2, g.len() - 40, IFCS | EOP, 0);
        let trace = h.trace();
        h.ring_tx(0);
        assert_eq!(
            h.rd(h.r.txq(0, TxReg::Head)),
            5,
            "{chip:?}: TDH at the tail"
        );
        assert_eq!(recv(wire.as_ref()), Some(f.clone()));
        assert_eq!(recv(wire.as_ref()), Some(g.clone()));
        assert_eq!(recv(wire.as_ref()), None);
        let dd = txd::olinfo::DD.bit();
        assert_eq!(h.tx_status(0, 0), olinfo, "no RS: untouched");
        assert_eq!(h.tx_status(0, 1), 0);
        assert_eq!(h.tx_status(0, 2), dd);
        assert_eq!(h.tx_status(0, 3), dd);
        assert_eq!(h.tx_status(0, 4), 0);
        let events = trace.drain();
        assert!(events.iter().any(|e| e.kind == Kind::RegWrite
            && (e.addr, e.value) == (h.r.txq(0, TxReg::Tail) as u64, 5)));
        let completions: Vec<u32> = events
            .iter()
            .filter(|e| e.kind == Kind::WriteBack && e.queue == Queue::Tx(0))
            .map(|e| e.index)
            .collect();
        assert_eq!(completions, vec![2, 3]);
        assert!(events.iter().any(|e| e.kind == Kind::DmaRead
            && (e.agent, e.addr, e.len as usize) == (Agent::Device(Engine::Tx(0)), ib, b.len())));
        assert_eq!(h.rd(h.r.gptc), 2);
        assert_eq!(
            h.rd(h.r.gotcl) as usize,
            f.len() + g.len() + 2 * ETH_FCS_LEN
        );
        assert_eq!(h.rd(h.r.gptc), 0, "clear on read");
    }
}

#[test]
fn a_port_on_a_loop_wire_receives_what_it_sends() {
    let mut h = Host::new(Chip::X82599, RunMode::Inline, Arc::new(LoopWire::new()));
    h.setup_rx();
    h.post_rx(0, 4);
    h.setup_tx(0);
    let f = frame(MAC, 90, 6);
    let a = h.tx_buf(0, &f);
    h.tx_data(0, a, f.len(), txd::cmd_type_len::EOP.bit(), 0);
    // The TDT write sends, then takes the frame back from the wire.
    h.ring_tx(0);
    assert_eq!(h.rx_wb(0, 0).3 as usize, f.len());
    assert_eq!(h.rx_data(0, 0, f.len()), f);
}

#[test]
fn short_frames_are_padded_on_transmit() {
    for chip in CHIPS {
        let (mut h, wire) = Host::inline(chip);
        h.reset();
        h.setup_tx(0);
        if chip == Chip::X82599 {
            h.set_bits(ixgbe::HLREG0, ixgbe::hlreg0::TXPADEN.bit());
        } else {
            h.set_bits(igb::TCTL, igb::tctl::PSP.bit());
        }
        let f = frame(PEER_MAC, 42, 1);
        let a = h.tx_buf(0, &f);
        h.tx_data(0, a, f.len(), txd::cmd_type_len::EOP.bit(), 0);
        h.ring_tx(0);
        let mut want = f.clone();
        want.resize(60, 0);
        assert_eq!(recv(wire.as_ref()), Some(want), "{chip:?}");
    }
}

fn udp_packet() -> Vec<u8> {
    let mut f = ip_frame(PEER_MAC, [192, 168, 1, 10], [10, 1, 2, 3], 4000, 53, 17);
    // Header checksum zero; UDP checksum seeded with the pseudo-header sum.
    let udp_len = (f.len() - 34) as u16;
    let pseudo = inet_sum(&[&f[26..34], &[0, 17], &udp_len.to_be_bytes()]);
    f[40..42].copy_from_slice(&pseudo.to_be_bytes());
    f
}

#[test]
fn ipv4_and_udp_checksums_are_inserted() {
    for chip in CHIPS {
        let (mut h, wire) = Host::inline(chip);
        h.reset();
        h.setup_tx(0);
        let f = udp_packet();
        h.tx_context(0, 14, 20, txd::ctx::L4T_UDP);
        // Header and payload in separate segments.
        let a = h.tx_buf(0, &f[..42]);
        let b = h.tx_buf(4096, &f[42..]);
        let olinfo = txd::olinfo::IXSM.bit() | txd::olinfo::TXSM.bit();
        h.tx_data(0, a, 42, 0, olinfo);
        h.tx_data(
            0,
            b,
            f.len() - 42,
            txd::cmd_type_len::EOP.bit() | txd::cmd_type_len::RS.bit(),
            0,
        );
        h.ring_tx(0);
        let out = recv(wire.as_ref()).expect("sent");
        assert_eq!(out.len(), f.len());
        // Independent checks: a correct header sums to 0xffff, and so does
        // pseudo header + UDP header and payload.
        assert_eq!(inet_sum(&[&out[14..34]]), 0xffff, "{chip:?}: IPv4 header");
        let udp_len = ((out.len() - 34) as u16).to_be_bytes();
        let sum = inet_sum(&[&out[26..34], &[0, 17], &udp_len, &out[34..]]);
        assert_eq!(sum, 0xffff, "{chip:?}: UDP checksum");
        assert_ne!(&out[40..42], &[0, 0]);
        // Only the checksum fields changed.
        let mut masked = out.clone();
        masked[24..26].copy_from_slice(&f[24..26]);
        masked[40..42].copy_from_slice(&f[40..42]);
        assert_eq!(masked, f);
        assert_eq!(h.emu.counters().tx_offload_errors, 0);
    }
}

#[test]
fn tcp_checksum_is_inserted_and_a_missing_context_is_reported() {
    let (mut h, wire) = Host::inline(Chip::X82599);
    h.reset();
    h.setup_tx(0);
    let mut f = ip_frame(PEER_MAC, [1, 2, 3, 4], [5, 6, 7, 8], 1234, 80, 6);
    let tcp_len = (f.len() - 34) as u16;
    let pseudo = inet_sum(&[&f[26..34], &[0, 6], &tcp_len.to_be_bytes()]);
    f[50..52].copy_from_slice(&pseudo.to_be_bytes());
    let a = h.tx_buf(0, &f);
    // No context loaded yet: sent as is, counted.
    h.tx_data(
        0,
        a,
        f.len(),
        txd::cmd_type_len::EOP.bit(),
        txd::olinfo::TXSM.bit(),
    );
    h.ring_tx(0);
    assert_eq!(recv(wire.as_ref()), Some(f.clone()));
    assert_eq!(h.emu.counters().tx_offload_errors, 1);
    h.tx_context(0, 14, 20, txd::ctx::L4T_TCP);
    h.tx_data(
        0,
        a,
        f.len(),
        txd::cmd_type_len::EOP.bit(),
        txd::olinfo::TXSM.bit(),
    );
    h.ring_tx(0);
    let out = recv(wire.as_ref()).unwrap();
    let sum = inet_sum(&[&out[26..34], &[0, 6], &tcp_len.to_be_bytes(), &out[34..]]);
    assert_eq!(sum, 0xffff);
    assert_eq!(&out[24..26], &[0, 0], "no IXSM: header checksum untouched");
}

/// Program RSS over `queues` queues (RETA entry i names queue i % queues)
/// with the verification key, hashing IPv4 and IPv4/TCP.
fn setup_rss(h: &mut Host, queues: u16) {
    h.reset();
    for q in 0..queues {
        h.setup_rx_queue(q, ENTRIES, 2, 0);
        h.post_rx(q, 8);
    }
    let r = &h.r;
    for i in 0..10 {
        let k = &RSS_KEY[4 * i..4 * i + 4];
        h.wr((r.rssrk)(i), u32::from_le_bytes([k[0], k[1], k[2], k[3]]));
    }
    for i in 0..32 {
        let e = |j: usize| ((4 * i + j) % queues as usize) as u8;
        h.wr((r.reta)(i), u32::from_le_bytes([e(0), e(1), e(2), e(3)]));
    }
    h.set_bits(r.rxcsum, r.pcsd);
    h.wr(r.mrqc, r.mrqe_rss | r.rss_ipv4 | r.rss_ipv4_tcp);
    h.enable_rx();
}

#[test]
fn rss_picks_the_queue_from_the_toeplitz_hash_and_writes_it_back() {
    // The verification suite's IPv4/TCP vectors: (src, sport, dst, dport, hash).
    type Vector = ([u8; 4], u16, [u8; 4], u16, u32);
    let vectors: [Vector; 5] = [
        (
            [66, 9, 149, 187],
            2794,
            [161, 142, 100, 80],
            1766,
            0x51cc_c178,
        ),
        (
            [199, 92, 111, 2],
            14230,
            [65, 69, 140, 83],
            4739,
            0xc626_b0ea,
        ),
        (
            [24, 19, 198, 95],
            12898,
            [12, 22, 207, 184],
            38024,
            0x5c2b_394a,
        ),
        (
            [38, 27, 205, 30],
            48228,
            [209, 142, 163, 6],
            2217,
            0xafc7_327f,
        ),
        (
            [153, 39, 163, 191],
            44251,
            [202, 188, 127, 2],
            1303,
            0x10e8_28a2,
        ),
    ];
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        setup_rss(&mut h, 4);
        let mut next = [0u32; 4];
        for (src, sport, dst, dport, hash) in vectors {
            peer.send(&ip_frame(MAC, src, dst, sport, dport, 6))
                .unwrap();
            h.emu.poll();
            let q = ((hash % 128) % 4) as u16;
            let i = next[q as usize];
            let (info, wb_hash, status, _) = h.rx_wb(q, i);
            assert_eq!(
                status,
                rxd::status::DD.bit() | rxd::status::EOP.bit(),
                "{chip:?} queue {q}"
            );
            assert_eq!(wb_hash, hash, "{chip:?}");
            assert_eq!(rxd::info::RSS_TYPE.get(info), rxd::rss_type::IPV4_TCP);
            let ptype = rxd::info::PACKET_TYPE.get(info);
            assert_eq!(
                ptype,
                rxd::packet_type::IPV4 | rxd::packet_type::TCP,
                "{chip:?}"
            );
            next[q as usize] += 1;
        }
        assert_eq!(next.iter().sum::<u32>(), 5);
        // A non-IP frame has no hash: queue 0.
        peer.send(&frame(MAC, 60, 0)).unwrap();
        h.emu.poll();
        let (info, hash, status, _) = h.rx_wb(0, next[0]);
        assert_ne!(status & rxd::status::DD.bit(), 0);
        assert_eq!((info, hash), (0, 0));
    }
}

#[test]
fn rss_hash_is_written_back_only_with_pcsd() {
    let (mut h, peer) = Host::inline(Chip::I82576);
    setup_rss(&mut h, 1);
    let (reg, pcsd) = (h.r.rxcsum, h.r.pcsd);
    h.wr(reg, h.rd(reg) & !pcsd);
    peer.send(&ip_frame(
        MAC,
        [66, 9, 149, 187],
        [161, 142, 100, 80],
        2794,
        1766,
        6,
    ))
    .unwrap();
    h.emu.poll();
    let (info, hash, status, _) = h.rx_wb(0, 0);
    assert_ne!(status & rxd::status::DD.bit(), 0);
    assert_eq!(hash, 0);
    assert_eq!(rxd::info::RSS_TYPE.get(info), rxd::rss_type::IPV4_TCP);
}

#[test]
fn statistics_clear_on_read_and_64_bit_counters_latch() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        h.post_rx(0, 8);
        for _ in 0..3 {
            peer.send(&frame(MAC, 200, 0)).unwrap();
        }
        peer.send(&frame([0xff; 6], 100, 0)).unwrap();
        h.emu.poll();
        let bprc = match chip {
            Chip::X82599 => ixgbe::BPRC,
            _ => igb::BPRC,
        };
        assert_eq!(h.rd(h.r.gprc), 4, "{chip:?}");
        assert_eq!(h.rd(h.r.gprc), 0);
        assert_eq!(h.rd(bprc), 1);
        assert_eq!(h.rd(bprc), 0);
        let octets = 3 * 204 + 104;
        assert_eq!(h.rd(h.r.gorcl), octets);
        assert_eq!(h.rd(h.r.gorch), 0);
        assert_eq!(h.rd(h.r.gorcl), 0);
        // One 8-byte access takes the whole counter.
        peer.send(&frame(MAC, 60, 0)).unwrap();
        h.emu.poll();
        assert_eq!(h.bar.read64(h.r.gorcl), 64);
        assert_eq!(h.rd(h.r.gorcl), 0);
    }
}

#[test]
fn iommu_fault_on_a_bad_rx_buffer_is_counted_not_fatal() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        let trace = h.trace();
        // Descriptor 0 points outside every mapping; 1 is good.
        h.post_rx_addr(0, 0, 0x1000);
        h.post_rx_addr(0, 1, h.mem.iova_at(Host::buf(0, 1)));
        h.rx_tail[0] = 2;
        h.wr(h.r.rxq(0, RxReg::Tail), 2);
        let f = frame(MAC, 80, 2);
        peer.send(&f).unwrap();
        peer.send(&f).unwrap();
        h.emu.poll();
        let (_, _, status, len) = h.rx_wb(0, 0);
        assert_eq!(
            status,
            rxd::status::DD.bit() | rxd::status::EOP.bit() | h.r.rx_error,
            "{chip:?}"
        );
        assert_eq!(len, 0);
        let (_, _, status, len) = h.rx_wb(0, 1);
        assert_eq!(status, rxd::status::DD.bit() | rxd::status::EOP.bit());
        assert_eq!(len as usize, f.len());
        let c = h.emu.counters();
        assert_eq!((c.rx_dma_faults, c.rx_delivered, c.queue_errors), (1, 1, 0));
        assert_eq!(h.rd(h.r.gprc), 1);
        assert!(trace
            .drain()
            .iter()
            .any(|e| e.kind == Kind::Fault && (e.addr, e.value) == (0x1000, 1)));
    }
}

#[test]
fn iommu_fault_on_a_bad_tx_buffer_stops_the_queue_without_completing_it() {
    for chip in CHIPS {
        let (mut h, wire) = Host::inline(chip);
        h.reset();
        h.setup_tx(0);
        const EOP: u32 = txd::cmd_type_len::EOP.bit();
        const RS: u32 = txd::cmd_type_len::RS.bit();
        let good = h.tx_buf(0, &frame(PEER_MAC, 60, 0));
        h.tx_data(0, good, 60, EOP | RS, 0);
        h.tx_data(0, good, 30, 0, 0);
        h.tx_data(0, 0xdead_0000, 30, EOP | RS, 0);
        h.tx_data(0, good, 60, EOP | RS, 0);
        h.ring_tx(0);
        // The packet before the bad buffer went out and is done; the bad
        // one and the one after it are neither sent nor completed.
        assert_eq!(h.tx_status(0, 0), txd::olinfo::DD.bit(), "{chip:?}");
        assert_eq!(recv(wire.as_ref()), Some(frame(PEER_MAC, 60, 0)));
        assert_eq!(recv(wire.as_ref()), None);
        assert_eq!((h.tx_status(0, 2), h.tx_status(0, 3)), (0, 0), "{chip:?}");
        let c = h.emu.counters();
        assert_eq!((c.tx_dma_faults, c.tx_frames, c.queue_errors), (1, 1, 1));
        // TXDCTL.ENABLE reads 0: the driver can see the queue stopped.
        let txdctl = if chip != Chip::X82599 {
            h.rd(igb::txdctl(0)) & igb::txdctl::ENABLE.bit()
        } else {
            h.rd(ixgbe::txdctl(0)) & ixgbe::txdctl::ENABLE.bit()
        };
        assert_eq!(txdctl, 0, "{chip:?}");
    }
}

#[test]
fn bad_ring_registers_put_the_queue_in_an_error_state() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.reset();
        let trace = h.trace();
        let r = &h.r;
        // RDLEN not a multiple of 128.
        h.wr(r.rxq(1, RxReg::Bal), h.mem.iova_at(0) as u32);
        h.wr(r.rxq(1, RxReg::Bah), (h.mem.iova_at(0) >> 32) as u32);
        h.wr(r.rxq(1, RxReg::Len), 100);
        h.wr(r.rxq(1, RxReg::Srrctl), r.desctype.value(r.desctype_adv));
        h.wr(r.rxq(1, RxReg::Dctl), r.rxdctl_enable);
        assert_eq!(h.rd(r.rxq(1, RxReg::Dctl)) & r.rxdctl_enable, 0, "{chip:?}");
        assert_eq!(h.emu.counters().queue_errors, 1);
        assert!(notes(&trace.drain())
            .iter()
            .any(|n| n.contains("RX queue 1 stopped") && n.contains("multiple of 128")));
        // A legacy descriptor type is refused at enable.
        h.wr(r.rxq(1, RxReg::Len), 1024);
        h.wr(r.rxq(1, RxReg::Srrctl), 0);
        h.wr(r.rxq(1, RxReg::Dctl), 0);
        h.wr(r.rxq(1, RxReg::Dctl), r.rxdctl_enable);
        assert_eq!(h.rd(r.rxq(1, RxReg::Dctl)) & r.rxdctl_enable, 0);
        assert_eq!(h.emu.counters().queue_errors, 2);
        // A good queue, then a tail past its end.
        h.setup_rx_queue(0, ENTRIES, 2, 0);
        h.enable_rx();
        h.wr(h.r.rxq(0, RxReg::Tail), ENTRIES + 5);
        assert_eq!(h.rd(h.r.rxq(0, RxReg::Dctl)) & h.r.rxdctl_enable, 0);
        assert_eq!(h.emu.counters().queue_errors, 3);
        peer.send(&frame(MAC, 60, 0)).unwrap();
        h.emu.poll();
        assert_eq!(h.emu.counters().rx_disabled, 1);
        // Disable and enable again: the queue works.
        h.wr(h.r.rxq(0, RxReg::Dctl), 0);
        h.setup_rx_queue(0, ENTRIES, 2, 0);
        h.post_rx(0, 1);
        peer.send(&frame(MAC, 60, 0)).unwrap();
        h.emu.poll();
        assert_eq!(
            h.rx_wb(0, 0).2,
            rxd::status::DD.bit() | rxd::status::EOP.bit()
        );
        // TX: a ring base that is not 128-byte aligned.
        h.wr(h.r.txq(2, TxReg::Bal), h.mem.iova_at(64) as u32);
        h.wr(h.r.txq(2, TxReg::Bah), (h.mem.iova_at(64) >> 32) as u32);
        h.wr(h.r.txq(2, TxReg::Len), 1024);
        h.wr(h.r.txq(2, TxReg::Dctl), h.r.txdctl_enable);
        assert_eq!(h.rd(h.r.txq(2, TxReg::Dctl)) & h.r.txdctl_enable, 0);
        assert_eq!(h.emu.counters().queue_errors, 4);
    }
}

#[test]
fn legacy_tx_descriptor_stops_the_queue() {
    let (mut h, wire) = Host::inline(Chip::I82576);
    h.reset();
    h.setup_tx(0);
    let a = h.tx_buf(0, &frame(PEER_MAC, 60, 0));
    let i = h.tx_data(0, a, 60, txd::cmd_type_len::EOP.bit(), 0);
    let d = Host::tx_ring(0) + i as usize * DESC_SIZE + txd::CMD_TYPE_LEN;
    h.mem
        .write_u32(d, h.mem.read_u32(d) & !txd::cmd_type_len::DEXT.bit());
    h.ring_tx(0);
    assert_eq!(recv(wire.as_ref()), None);
    assert_eq!(h.rd(igb::txdctl(0)) & igb::txdctl::ENABLE.bit(), 0);
    assert_eq!(h.emu.counters().queue_errors, 1);
}

#[test]
fn ring_memory_without_bus_mastering_stops_the_queue() {
    let (mut h, wire) = Host::inline(Chip::X82599);
    h.reset();
    h.setup_tx(0);
    h.emu.pci().config_write(0x04, 0);
    let a = h.tx_buf(0, &frame(PEER_MAC, 60, 0));
    h.tx_data(0, a, 60, txd::cmd_type_len::EOP.bit(), 0);
    h.ring_tx(0);
    assert_eq!(recv(wire.as_ref()), None);
    assert_eq!(h.emu.counters().queue_errors, 1);
}

#[test]
fn two_ports_on_a_pair_exchange_frames_inline() {
    let (a, b) = PairWire::connected();
    let mut tx = Host::new(Chip::X82599, RunMode::Inline, Arc::new(a));
    let mut rx = Host::new(Chip::I350, RunMode::Inline, Arc::new(b));
    tx.reset();
    tx.setup_tx(0);
    rx.setup_rx();
    rx.post_rx(0, 4);
    let f = frame(MAC, 128, 3);
    let addr = tx.tx_buf(0, &f);
    tx.tx_data(0, addr, f.len(), txd::cmd_type_len::EOP.bit(), 0);
    tx.ring_tx(0);
    rx.emu.poll();
    assert_eq!(rx.rx_wb(0, 0).3 as usize, f.len());
    assert_eq!(rx.rx_data(0, 0, f.len()), f);
}

#[test]
fn link_down_holds_transmission_until_the_link_is_back() {
    let (mut h, wire) = Host::inline(Chip::I82576);
    h.reset();
    h.setup_tx(0);
    h.emu.set_link(false);
    let a = h.tx_buf(0, &frame(PEER_MAC, 60, 0));
    h.tx_data(
        0,
        a,
        60,
        txd::cmd_type_len::EOP.bit() | txd::cmd_type_len::RS.bit(),
        0,
    );
    h.ring_tx(0);
    h.emu.poll();
    // Nothing sent, nothing completed: the frame waits in the ring.
    assert_eq!(recv(wire.as_ref()), None);
    assert_eq!(h.tx_status(0, 0), 0);
    assert_eq!(h.emu.counters().tx_frames, 0);
    h.emu.set_link(true);
    h.emu.poll();
    assert_eq!(recv(wire.as_ref()), Some(frame(PEER_MAC, 60, 0)));
    assert_eq!(h.tx_status(0, 0), txd::olinfo::DD.bit());
    assert_eq!(h.emu.counters().tx_link_down, 0);
}

#[test]
fn a_stopped_tx_engine_sends_and_completes_nothing_more() {
    let (mut h, wire) = Host::inline(Chip::X82599);
    h.reset();
    h.setup_tx(0);
    h.emu.stop_tx_after(Some(1));
    let eop_rs = txd::cmd_type_len::EOP.bit() | txd::cmd_type_len::RS.bit();
    for i in 0..3u8 {
        let a = h.tx_buf(i as usize * 64, &frame(PEER_MAC, 60, i));
        h.tx_data(0, a, 60, eop_rs, 0);
    }
    h.ring_tx(0);
    h.emu.poll();
    // One frame went out and was completed; then the engine stopped.
    assert_eq!(recv(wire.as_ref()), Some(frame(PEER_MAC, 60, 0)));
    assert_eq!(recv(wire.as_ref()), None);
    assert_eq!(h.tx_status(0, 0), txd::olinfo::DD.bit());
    assert_eq!((h.tx_status(0, 1), h.tx_status(0, 2)), (0, 0));
    // Cleared: it goes on where it stopped, each frame once.
    h.emu.stop_tx_after(None);
    h.emu.poll();
    assert_eq!(recv(wire.as_ref()), Some(frame(PEER_MAC, 60, 1)));
    assert_eq!(recv(wire.as_ref()), Some(frame(PEER_MAC, 60, 2)));
    assert_eq!(recv(wire.as_ref()), None);
    assert_eq!(h.tx_status(0, 2), txd::olinfo::DD.bit());
}

#[test]
fn threaded_ports_forward_between_each_other() {
    for (chip_a, chip_b) in [(Chip::X82599, Chip::X82599), (Chip::I82576, Chip::I350)] {
        let (a, b) = PairWire::connected();
        let mut tx = Host::new(chip_a, RunMode::Threaded, Arc::new(a));
        let mut rx = Host::new(chip_b, RunMode::Threaded, Arc::new(b));
        assert!(tx.emu.is_threaded());
        tx.reset();
        tx.setup_tx(0);
        rx.setup_rx();
        rx.post_rx(0, ENTRIES - 1);
        let n = 40u32;
        for i in 0..n {
            let f = frame(MAC, 60 + i as usize, i as u8);
            let addr = tx.tx_buf(i as usize * 256, &f);
            let rs = if i == n - 1 {
                txd::cmd_type_len::RS.bit()
            } else {
                0
            };
            tx.tx_data(0, addr, f.len(), txd::cmd_type_len::EOP.bit() | rs, 0);
        }
        tx.ring_tx(0);
        wait_until("the last TX descriptor done", || {
            tx.tx_status(0, n - 1) & txd::olinfo::DD.bit() != 0
        });
        wait_until("the last frame received", || {
            rx.rx_wb(0, n - 1).2 & rxd::status::DD.bit() != 0
        });
        for i in 0..n {
            let (_, _, status, len) = rx.rx_wb(0, i);
            assert_eq!(status, rxd::status::DD.bit() | rxd::status::EOP.bit());
            assert_eq!(len as usize, 60 + i as usize);
            assert_eq!(
                rx.rx_data(0, i, len as usize),
                frame(MAC, len as usize, i as u8)
            );
        }
        assert_eq!(tx.rd(tx.r.txq(0, TxReg::Head)), n);
        assert_eq!(rx.rd(rx.r.rxq(0, RxReg::Head)), n);
        assert_eq!(rx.emu.counters().rx_delivered, n as u64);
    }
}

#[test]
fn threaded_rx_refill_lets_a_stalled_ring_continue() {
    let (a, b) = PairWire::connected();
    let peer = Arc::new(a);
    let mut h = Host::new(Chip::X82599, RunMode::Threaded, Arc::new(b));
    h.setup_rx_queue(0, ENTRIES, 2, h.r.drop_en);
    h.reset();
    h.setup_rx_queue(0, ENTRIES, 2, h.r.drop_en);
    h.enable_rx();
    h.post_rx(0, 2);
    for i in 0..2 {
        peer.send(&frame(MAC, 60, i)).unwrap();
    }
    wait_until("two frames", || {
        h.rx_wb(0, 1).2 & rxd::status::DD.bit() != 0
    });
    h.post_rx(0, 2);
    peer.send(&frame(MAC, 60, 9)).unwrap();
    wait_until("the third frame", || {
        h.rx_wb(0, 2).2 & rxd::status::DD.bit() != 0
    });
    assert_eq!(h.rx_data(0, 2, 60), frame(MAC, 60, 9));
}

/// A threaded port whose sends are held by flow control sleeps; the peer
/// taking frames off the wire wakes it (the device threads' safety-net
/// sleep is a minute in these tests, so a missing wake times out).
#[test]
fn threaded_sender_held_by_flow_control_is_woken_when_the_peer_makes_room() {
    let (a, b) = PairWire::connected();
    let port_end = Arc::new(b);
    let mut h = Host::with_flow_control(Chip::X82599, RunMode::Threaded, port_end.clone(), true);
    h.reset();
    h.setup_tx(0);
    // Fill the queue towards the peer until it says no, from the port's
    // end of the wire (as another sender would).
    let mut queued = 0;
    while port_end.peer_ready() {
        port_end.send(&frame(PEER_MAC, 60, 0)).unwrap();
        queued += 1;
    }
    let f = frame(PEER_MAC, 60, 5);
    let addr = h.tx_buf(0, &f);
    let i = h.tx_data(
        0,
        addr,
        f.len(),
        txd::cmd_type_len::EOP.bit() | txd::cmd_type_len::RS.bit(),
        0,
    );
    h.ring_tx(0);
    // Held: let the device thread go to sleep on it.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        h.tx_status(0, i) & txd::olinfo::DD.bit(),
        0,
        "sent while the peer had no room"
    );
    // Take the held frames off the wire: the first one out makes room,
    // which wakes the port, which then sends its frame behind them.
    for _ in 0..queued {
        assert_eq!(recv(&a), Some(frame(PEER_MAC, 60, 0)));
    }
    wait_until("the held frame sent", || {
        h.tx_status(0, i) & txd::olinfo::DD.bit() != 0
    });
    assert_eq!(recv(&a), Some(f));
    assert_eq!(recv(&a), None);
    assert_eq!(port_end.drops(), 0);
}

#[test]
fn configuration_errors_name_the_fix() {
    let e = EmuNic::new(
        Chip::I350,
        NicModelConfig {
            queues: 9,
            ..NicModelConfig::default()
        },
        Arc::new(LoopWire::new()),
        RunMode::Inline,
    )
    .err()
    .expect("too many queues");
    assert!(e.to_string().contains("use 1 to 8"), "{e}");
    let e = EmuNic::new(
        Chip::X82599,
        NicModelConfig::with_mac([1, 0, 0, 0, 0, 1]),
        Arc::new(LoopWire::new()),
        RunMode::Inline,
    )
    .err()
    .expect("multicast MAC");
    assert!(e.to_string().contains("unicast"), "{e}");
    let nic = EmuNic::new(
        Chip::X82599,
        NicModelConfig::default(),
        Arc::new(LoopWire::new()),
        RunMode::Inline,
    )
    .unwrap();
    assert_eq!(nic.pci().ids().device, ixgbe::DEV_82599_SFP);
    assert_eq!(nic.chip(), Chip::X82599);
    assert_eq!(
        Chip::from_pci_ids(0x8086, nic.pci().ids().device),
        Some(Chip::X82599)
    );
}

#[test]
fn queues_the_model_was_built_without_never_enable() {
    for chip in CHIPS {
        // Host::new builds models with 4 queues.
        let (h, _peer) = Host::inline(chip);
        h.wr(h.r.rxq(5, RxReg::Dctl), h.r.rxdctl_enable);
        h.wr(h.r.txq(4, TxReg::Dctl), h.r.txdctl_enable);
        assert_eq!(h.rd(h.r.rxq(5, RxReg::Dctl)), 0, "{chip:?}");
        assert_eq!(h.rd(h.r.txq(4, TxReg::Dctl)), 0);
    }
}

#[test]
fn igb_legacy_and_block_addresses_of_low_queues_are_the_same_register() {
    let (h, _peer) = Host::inline(Chip::I82576);
    h.wr(igb::rdlen(2), 2048);
    assert_eq!(h.rd(igb::RX_BLOCK.addr(2, RxReg::Len)), 2048);
    h.wr(igb::TX_BLOCK.addr(1, TxReg::Len), 4096);
    assert_eq!(h.rd(igb::tdlen(1)), 4096);
}

#[test]
fn ixgbe_82598_aliases_share_storage() {
    let (h, _peer) = Host::inline(Chip::X82599);
    h.wr(ixgbe::reta_alias(3), 0x0302_0100);
    assert_eq!(h.rd(ixgbe::reta(3)), 0x0302_0100);
    h.wr(ixgbe::srrctl_alias(2), 0x0200_0004);
    assert_eq!(h.rd(ixgbe::srrctl(2)), 0x0200_0004);
    assert_eq!(h.rd(ixgbe::ral_alias(0)), h.rd(ixgbe::ral(0)));
}

/// Model cost per packet: port A sends batches of 32 60-byte frames (one
/// TDT write each), port B receives them (a poll, then one RDT write per
/// batch to refill), both
/// inline on this thread, so the time is the two models' work plus the
/// scripted driver's few stores. Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn bench_inline_forwarding_cost_per_packet() {
    const BATCH: u32 = 32;
    for chip in [Chip::X82599, Chip::I82576] {
        let (a, b) = PairWire::connected();
        let mut tx = Host::new(chip, RunMode::Inline, Arc::new(a));
        let mut rx = Host::new(chip, RunMode::Inline, Arc::new(b));
        tx.reset();
        tx.setup_tx(0);
        rx.setup_rx();
        rx.post_rx(0, BATCH);
        let f = frame(MAC, 60, 0);
        let addr = tx.tx_buf(0, &f);
        let rounds = 20_000u32;
        let start = Instant::now();
        for _ in 0..rounds {
            for i in 0..BATCH {
                let rs = if i == BATCH - 1 {
                    txd::cmd_type_len::RS.bit()
                } else {
                    0
                };
                tx.tx_data(0, addr, f.len(), txd::cmd_type_len::EOP.bit() | rs, 0);
            }
            tx.ring_tx(0);
            rx.emu.poll();
            rx.post_rx(0, BATCH);
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds * BATCH) as f64;
        let c = rx.emu.counters();
        assert_eq!(c.rx_delivered, (rounds * BATCH) as u64, "{c:?}");
        println!(
            "{chip:?}: {ns:.0} ns per packet through two inline models ({:.2} Mpps)",
            1e3 / ns
        );
    }
}

/// The driver's port and queues over a model's BAR can move between threads
/// (the apps run a port's queues on worker threads).
#[test]
fn driver_ports_over_the_model_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<drivers::nic::Nic<crate::EmuBar<NicModel>>>();
    send::<drivers::nic::RxQueue<crate::EmuBar<NicModel>>>();
    send::<drivers::nic::TxQueue<crate::EmuBar<NicModel>>>();
}

#[test]
fn a_surprise_removed_port_reads_all_ones_and_does_nothing() {
    for chip in CHIPS {
        let (mut h, peer) = Host::inline(chip);
        h.setup_rx();
        h.post_rx(0, 4);
        let ctrl = h.rd(h.r.ctrl);
        assert_ne!(h.rd(h.r.status), u32::MAX, "{chip:?}");
        let trace = h.trace();
        h.emu.surprise_remove();
        assert!(h.emu.model().is_removed());
        // Every register, 4 or 8 bytes, reads all ones: STATUS, the link,
        // the counters, a queue head, an offset nothing decodes.
        let mut offsets = vec![
            h.r.status,
            h.r.ctrl,
            h.r.gprc,
            h.r.gorcl,
            h.r.rxq(0, RxReg::Head),
            0x0ffc,
        ];
        if chip == Chip::X82599 {
            offsets.push(ixgbe::LINKS);
        }
        for off in offsets {
            assert_eq!(h.rd(off), u32::MAX, "{chip:?} {off:#x}");
        }
        assert_eq!(h.bar.read64(h.r.gorcl), u64::MAX, "{chip:?}");
        // Writes are lost and a frame on the wire goes nowhere: no DMA.
        h.wr(h.r.ctrl, ctrl | h.r.ctrl_rst);
        peer.send(&frame(MAC, 100, 7)).unwrap();
        assert!(!h.emu.poll(), "{chip:?}: a removed device does no work");
        assert_eq!(h.emu.counters().rx_frames, 0, "{chip:?}");
        assert_eq!(h.rx_wb(0, 0).2, 0, "{chip:?}: no write-back");
        // Nothing the device did but the note (the BAR's register events
        // are the driver's side).
        let events: Vec<Event> = trace
            .drain()
            .into_iter()
            .filter(|e| !matches!(e.kind, Kind::RegRead | Kind::RegWrite))
            .collect();
        assert!(
            events.iter().all(|e| e.kind == Kind::Note),
            "{chip:?}: {events:?}"
        );
        assert!(
            notes(&events)
                .iter()
                .all(|n| n.contains("surprise removal")),
            "{chip:?}: {events:?}"
        );
        assert_eq!(notes(&events).len(), 1, "{chip:?}: {events:?}");
    }
}

/// The status dword at `at` of the descriptor bytes an event carries.
fn status_dword(e: &Event, at: usize) -> u32 {
    let b = e.raw.as_slice();
    assert_eq!(b.len(), DESC_SIZE, "{e:?}");
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The texts of the notes among `events`, a long one's pieces (value 1,
/// 2, ... after the first) joined.
fn notes(events: &[Event]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events.iter().filter(|e| e.kind == Kind::Note) {
        let text = std::str::from_utf8(e.raw.as_slice()).unwrap();
        match out.last_mut() {
            Some(last) if e.value > 0 => last.push_str(text),
            _ => out.push(text.to_string()),
        }
    }
    out
}
