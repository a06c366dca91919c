//! Unit tests of the NIC driver against a scripted register file and a
//! scripted device side: the test plays the device, reading the descriptors
//! the driver posted and writing back through the emulated IOMMU.
#![forbid(unsafe_code)]

use super::options::check_options;
use super::ring::{DescRing, QueueRegs};
use super::setup::{reta_words, rss_key_words, RingRegs};
use super::tx::TxLimits;
use super::*;
use crate::regs::RegisterAccess;
use crate::testing::{FakeDevice, FakeRegs, MAC};
use dma::{EmuIommu, Mapper, RegionOptions};
use spec::nic::adv_desc::{rx as rxd, tx as txd};
use spec::nic::{igb as g, ixgbe as x};
use std::sync::Arc;
use std::time::Duration;

fn opts(rx_ring: u16, tx_ring: u16) -> NicOptions {
    NicOptions {
        rx_ring,
        tx_ring,
        pool_bufs: 64,
        region: RegionOptions::EMULATED,
        link_timeout: Duration::ZERO,
        ..NicOptions::default()
    }
}

struct Rig {
    dev: Arc<FakeDevice>,
    iommu: Arc<EmuIommu>,
    nic: Nic<FakeRegs>,
}

fn rig_with(chip: Chip, o: NicOptions) -> Rig {
    let dev = FakeDevice::new(chip);
    let iommu = Arc::new(EmuIommu::new());
    let mapper: Arc<dyn Mapper> = iommu.clone();
    let nic = Nic::init(FakeRegs(dev.clone()), mapper, chip, o).unwrap();
    Rig { dev, iommu, nic }
}

fn rig(chip: Chip, rx_ring: u16, tx_ring: u16) -> Rig {
    rig_with(chip, opts(rx_ring, tx_ring))
}

impl Rig {
    fn ring_regs(&self, q: u16, rx: bool) -> RingRegs {
        match (self.nic.chip().is_igb(), rx) {
            (true, true) => igb::rx_ring_regs(q),
            (true, false) => igb::tx_ring_regs(q),
            (false, true) => ixgbe::rx_ring_regs(q),
            (false, false) => ixgbe::tx_ring_regs(q),
        }
    }

    fn ring_iova(&self, q: u16, rx: bool) -> u64 {
        let rr = self.ring_regs(q, rx);
        self.dev.get(rr.bal) as u64 | (self.dev.get(rr.bah) as u64) << 32
    }

    fn desc(&self, q: u16, rx: bool, i: usize) -> [u8; 16] {
        let mut d = [0u8; 16];
        self.iommu
            .read(self.ring_iova(q, rx) + i as u64 * 16, &mut d)
            .unwrap();
        d
    }

    fn tail(&self, q: u16, rx: bool) -> u32 {
        self.dev.get(self.ring_regs(q, rx).tail)
    }

    /// Play the device: put `frame` in the buffer of RX descriptor `i` and
    /// write the descriptor back with `staterr`, `len` and `rss`.
    fn rx_complete(&self, q: u16, i: usize, frame: &[u8], staterr: u32, len: u16, rss: u32) {
        let d = self.desc(q, true, i);
        let addr = u64::from_le_bytes(d[0..8].try_into().unwrap());
        self.iommu.write(addr, frame).unwrap();
        let mut wb = [0u8; 16];
        wb[4..8].copy_from_slice(&rss.to_le_bytes());
        wb[8..12].copy_from_slice(&staterr.to_le_bytes());
        wb[12..14].copy_from_slice(&len.to_le_bytes());
        self.iommu
            .write(self.ring_iova(q, true) + i as u64 * 16, &wb)
            .unwrap();
    }

    /// Play the device: write DD back into TX descriptor `i`.
    fn tx_done(&self, q: u16, i: usize) {
        let iova = self.ring_iova(q, false) + i as u64 * 16 + 12;
        self.iommu
            .write(iova, &txd::olinfo::DD.bit().to_le_bytes())
            .unwrap();
    }
}

const DD_EOP: u32 = rxd::status::DD.bit() | rxd::status::EOP.bit();

// ---------------------------------------------------------------- options

#[test]
fn options_are_checked_against_the_chip() {
    let bad = [
        NicOptions {
            rx_queues: 0,
            ..opts(8, 8)
        },
        NicOptions {
            tx_queues: 9,
            ..opts(8, 8)
        },
        NicOptions {
            rx_ring: 100,
            ..opts(8, 8)
        },
        NicOptions {
            buf_size: 1500,
            ..opts(8, 8)
        },
        NicOptions {
            pool_bufs: 4,
            ..opts(8, 8)
        },
    ];
    for o in bad {
        assert!(
            matches!(
                check_options(Chip::I350, &o),
                Err(NicError::InvalidOptions(_))
            ),
            "{o:?}"
        );
    }
    // 16 queues exist on the 82576, but RSS spreads over 8.
    let o = NicOptions {
        rx_queues: 16,
        ..opts(8, 8)
    };
    assert!(check_options(Chip::I82576, &o).is_err());
    let (rx, tx, buf, max) = check_options(Chip::X82599, &opts(8, 16)).unwrap();
    assert_eq!((rx, tx, buf, max), (8, 16, 2048, 2048));
    // The 82599 buffer size field stops at 16 KiB, the jumbo limit at 9728.
    let o = NicOptions {
        buf_size: 32768,
        ..opts(8, 8)
    };
    assert_eq!(check_options(Chip::X82599, &o).unwrap().2, 16384);
    assert_eq!(check_options(Chip::X82599, &o).unwrap().3, 9728);
}

#[test]
fn ports_and_queues_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    // The same over the emulated BAR: emu's nic tests.
    send_sync::<Nic<crate::vfio::VfioBar>>();
    send::<RxQueue<crate::vfio::VfioBar>>();
    send::<TxQueue<crate::vfio::VfioBar>>();
}

#[test]
fn chips_from_pci_ids() {
    assert_eq!(Chip::from_pci_ids(0x8086, 0x10c9), Some(Chip::I82576));
    assert_eq!(Chip::from_pci_ids(0x8086, 0x1521), Some(Chip::I350));
    assert_eq!(Chip::from_pci_ids(0x8086, 0x10fb), Some(Chip::X82599));
    assert_eq!(Chip::from_pci_ids(0x8086, 0x10ed), None, "82599 VF");
    assert_eq!(Chip::from_pci_ids(0x1af4, 0x10c9), None);
    for c in [Chip::I82576, Chip::I350, Chip::X82599] {
        let (v, d) = c.pci_ids();
        assert_eq!(Chip::from_pci_ids(v, d), Some(c));
    }
}

#[test]
fn rss_tables() {
    let w = reta_words(4);
    assert!(w.iter().all(|&v| v == 0x0302_0100));
    let w = reta_words(3);
    assert_eq!(w[0], 0x0002_0100);
    assert_eq!(w[1], 0x0100_0201);
    assert_eq!(rss_key_words()[0], 0xda56_5a6d);
    assert_eq!(rss_key_words()[9], 0xfa01_acbe);
}

// ---------------------------------------------------------------- init

#[test]
fn igb_init_follows_the_datasheet_order() {
    let r = rig(Chip::I82576, 8, 8);
    let d = &r.dev;
    assert_eq!(r.nic.mac(), MAC);
    assert_eq!(
        r.nic.link().unwrap(),
        LinkStatus {
            up: true,
            speed_mbps: 1000,
            full_duplex: true,
        }
    );
    let imc = d.first_write(g::IMC, |v| v == u32::MAX).unwrap();
    let rst = d
        .first_write(g::CTRL, |v| v & g::ctrl::RST.bit() != 0)
        .unwrap();
    assert!(imc < rst, "interrupts are masked before the reset");
    let slu = d
        .first_write(g::CTRL, |v| v & g::ctrl::SLU.bit() != 0)
        .unwrap();
    assert!(slu > rst);
    assert_eq!(
        d.get(g::CTRL) & (g::ctrl::FRCSPD.bit() | g::ctrl::FRCDPX.bit()),
        0
    );
    // The PHY was asked to restart auto-negotiation.
    let phy_writes: Vec<u32> = d
        .writes_to(g::MDIC)
        .into_iter()
        .filter(|v| g::mdic::OP.get(*v) == g::mdic::OP_WRITE)
        .collect();
    assert_eq!(phy_writes.len(), 1);
    assert_ne!(phy_writes[0] as u16 & g::phy::CONTROL_RESTART_AN.bit(), 0);
    // SRRCTL: 2 KiB buffers, advanced one-buffer descriptors, drop enable.
    assert_eq!(d.get(g::srrctl(0)), 2 | (1 << 25) | (1 << 31));
    // Receive filters are set with RCTL.EN clear; EN comes after the queue
    // was enabled and its tail written.
    let rctl = d.writes_to(g::RCTL);
    let filters =
        g::rctl::UPE.bit() | g::rctl::MPE.bit() | g::rctl::BAM.bit() | g::rctl::SECRC.bit();
    assert!(rctl
        .iter()
        .any(|v| v & filters == filters && v & g::rctl::EN.bit() == 0));
    let rx_en = d
        .first_write(g::RCTL, |v| v & g::rctl::EN.bit() != 0)
        .unwrap();
    let q_en = d
        .first_write(g::rxdctl(0), |v| v & g::rxdctl::ENABLE.bit() != 0)
        .unwrap();
    let rdt = d.first_write(g::rdt(0), |v| v != 0).unwrap();
    assert!(q_en < rdt && rdt < rx_en);
    // All but one descriptor posted.
    assert_eq!(r.tail(0, true), 7);
    assert_eq!(d.get(g::rdlen(0)), 8 * 16);
    // TX: enabled queue, TCTL.EN last, with PSP.
    let tq = d
        .first_write(g::txdctl(0), |v| v & g::txdctl::ENABLE.bit() != 0)
        .unwrap();
    let tx_en = d
        .first_write(g::TCTL, |v| v & g::tctl::EN.bit() != 0)
        .unwrap();
    assert!(tq < tx_en);
    assert_ne!(d.get(g::TCTL) & g::tctl::PSP.bit(), 0);
    // No RSS with one queue.
    assert_eq!(d.get(g::MRQC), 0);
}

#[test]
fn ixgbe_init_follows_the_datasheet_and_writes_reserved_bits_right() {
    let r = rig(Chip::X82599, 8, 8);
    let d = &r.dev;
    assert_eq!(r.nic.mac(), MAC);
    assert_eq!(r.nic.link().unwrap().speed_mbps, 10_000);
    // EIMC bit 31 is reserved: never written 1.
    let eimc = d.writes_to(x::EIMC);
    assert!(!eimc.is_empty());
    assert!(eimc.iter().all(|v| *v == 0x7fff_ffff));
    let rst = d
        .first_write(x::CTRL, |v| v & x::ctrl::RST_MASK == x::ctrl::RST_MASK)
        .unwrap();
    assert!(d.first_write(x::EIMC, |_| true).unwrap() < rst);
    // RDRXCTL: RSCFRSTSIZE 0, RSCACKC and FCOE_WRFIX 1, CRC strip; the
    // reserved bits of the reset value survive.
    let rdrxctl = d.get(x::RDRXCTL);
    assert_eq!(x::rdrxctl::RSCFRSTSIZE.get(rdrxctl), 0);
    let want = x::rdrxctl::CRCSTRIP.bit()
        | x::rdrxctl::RSCACKC.bit()
        | x::rdrxctl::FCOE_WRFIX.bit()
        | 0x880;
    assert_eq!(rdrxctl & want, want);
    assert_ne!(d.get(x::HLREG0) & x::hlreg0::RXCRCSTRP.bit(), 0);
    // DCA_RXCTRL bit 12 cleared, other bits kept.
    assert_eq!(d.get(x::dca_rxctrl(0)), 0x200);
    // DTXMXSZRQ: 0xFFF in bits 11:0, reserved bits untouched.
    assert_eq!(d.get(x::DTXMXSZRQ), 0x0001_0fff);
    // SRRCTL: 2 KiB, advanced one buffer, drop enable; BSIZEHEADER kept.
    assert_eq!(d.get(x::srrctl(0)), 2 | 0x400 | (1 << 25) | (1 << 28));
    // FCTRL is written only while RXCTRL.RXEN is 0.
    let mut rxen = false;
    for (off, v) in d.writes() {
        if off == x::RXCTRL {
            rxen = v & x::rxctrl::RXEN.bit() != 0;
        }
        if off == x::FCTRL {
            assert!(!rxen, "FCTRL changed while RX is enabled");
            assert_eq!(
                v & (x::fctrl::UPE.bit() | x::fctrl::MPE.bit() | x::fctrl::BAM.bit()),
                0x700
            );
        }
    }
    assert!(rxen, "RX enabled at the end");
    // Queue enable before tail, tail before RXEN.
    let q_en = d
        .first_write(x::rxdctl(0), |v| v & x::rxdctl::ENABLE.bit() != 0)
        .unwrap();
    let rdt = d.first_write(x::rdt(0), |v| v != 0).unwrap();
    let rx_en = d
        .first_write(x::RXCTRL, |v| v & x::rxctrl::RXEN.bit() != 0)
        .unwrap();
    assert!(q_en < rdt && rdt < rx_en);
    // TX: arbiter disabled during set-up, re-enabled before DMATXCTL.TE,
    // which comes before the queue enable.
    let arb_on = d
        .first_write(x::RTTDCS, |v| v & x::rttdcs::ARBDIS.bit() != 0)
        .unwrap();
    let arb_off = d
        .first_write(x::RTTDCS, |v| v & x::rttdcs::ARBDIS.bit() == 0)
        .unwrap();
    let te = d
        .first_write(x::DMATXCTL, |v| v & x::dmatxctl::TE.bit() != 0)
        .unwrap();
    let tq = d
        .first_write(x::txdctl(0), |v| v & x::txdctl::ENABLE.bit() != 0)
        .unwrap();
    assert!(arb_on < arb_off && arb_off < te && te < tq);
    let tdbal = d.first_write(x::tdbal(0), |_| true).unwrap();
    assert!(arb_on < tdbal && tdbal < arb_off);
    assert_ne!(
        d.get(x::HLREG0) & (x::hlreg0::TXCRCEN.bit() | x::hlreg0::TXPADEN.bit()),
        0
    );
    // AUTOC: auto-negotiation restarted, link mode untouched.
    assert_eq!(d.get(x::AUTOC), x::autoc::RESTART_AN.bit());
}

#[test]
fn rss_is_programmed_with_several_queues() {
    for chip in [Chip::I350, Chip::X82599] {
        let r = rig_with(
            chip,
            NicOptions {
                rx_queues: 4,
                ..opts(8, 8)
            },
        );
        let d = &r.dev;
        let (mrqc_reg, reta0, rssrk0, rxcsum, pcsd) = if chip.is_igb() {
            (
                g::MRQC,
                g::reta(0),
                g::rssrk(0),
                g::RXCSUM,
                g::rxcsum::PCSD.bit(),
            )
        } else {
            (
                x::MRQC,
                x::reta(0),
                x::rssrk(0),
                x::RXCSUM,
                x::rxcsum::PCSD.bit(),
            )
        };
        let m = d.get(mrqc_reg);
        let rss = if chip.is_igb() { 0b010 } else { 0b0001 };
        assert_eq!(m & 0xf, rss, "{chip}");
        assert_eq!(m & 0x0040_0000, 0x0040_0000, "UDP ports hashed");
        assert_eq!(m & 0x0003_0000, 0x0003_0000, "IPv4 and TCP hashed");
        assert_eq!(d.get(reta0), 0x0302_0100);
        assert_eq!(d.get(rssrk0), 0xda56_5a6d);
        assert_ne!(d.get(rxcsum) & pcsd, 0);
        for q in 0..4 {
            let rr = r.ring_regs(q, true);
            assert_eq!(d.get(rr.tail), 7, "queue {q} filled");
        }
    }
}

#[test]
fn init_timeouts_are_typed() {
    let iommu: Arc<dyn Mapper> = Arc::new(EmuIommu::new());
    let try_init = |dev: Arc<FakeDevice>| {
        let chip = dev.chip;
        Nic::init(FakeRegs(dev), iommu.clone(), chip, opts(8, 8))
    };
    assert!(matches!(
        try_init(FakeDevice::with(Chip::I82576, true, false, false)),
        Err(NicError::ResetTimeout { .. })
    ));
    // igb without EECD.AUTO_RD (QEMU's igb model never sets it) goes on, as
    // Linux's igb does; the MAC address in RAL0 tells whether the EEPROM loaded.
    assert!(try_init(FakeDevice::with(Chip::I350, false, true, false)).is_ok());
    assert!(matches!(
        try_init(FakeDevice::with(Chip::X82599, false, true, false)),
        Err(NicError::EepromTimeout { .. })
    ));
    assert!(matches!(
        try_init(FakeDevice::with(Chip::X82599, false, false, true)),
        Err(NicError::DmaInitTimeout { .. })
    ));
    // A blank receive address 0 is refused.
    let dev = FakeDevice::new(Chip::I82576);
    dev.regs.lock().unwrap().insert(g::ral(0), 0);
    dev.regs.lock().unwrap().insert(g::rah(0), 0);
    assert!(matches!(try_init(dev), Err(NicError::DeviceMisbehaved(_))));
}

#[test]
fn queues_are_taken_once() {
    let r = rig(Chip::I350, 8, 8);
    let q = r.nic.rx_queue(0).unwrap();
    assert_eq!(q.queue(), 0);
    assert!(matches!(r.nic.rx_queue(0), Err(NicError::QueueTaken(0))));
    assert!(matches!(
        r.nic.rx_queue(1),
        Err(NicError::NoSuchQueue { q: 1, have: 1 })
    ));
    let t = r.nic.tx_queue(0).unwrap();
    assert!(matches!(r.nic.tx_queue(0), Err(NicError::QueueTaken(0))));
    assert_eq!(t.free_descriptors(), 7);
}

#[test]
fn stats_accumulate_clear_on_read_counters() {
    let r = rig(Chip::I82576, 8, 8);
    {
        let mut regs = r.dev.regs.lock().unwrap();
        regs.insert(g::GPRC, 5);
        regs.insert(g::GORCL, 300);
        regs.insert(g::GORCH, 1);
        regs.insert(g::MPC, 2);
        regs.insert(g::rqdpc(0), 3);
    }
    let s = r.nic.stats();
    assert_eq!(s.rx_packets, 5);
    assert_eq!(s.rx_bytes, (1 << 32) + 300);
    assert_eq!(s.rx_dropped(), 5);
    // The fake does not clear on read, so a second read adds again: the
    // driver accumulates whatever the device reports.
    assert_eq!(r.nic.stats().rx_packets, 10);
}

// ---------------------------------------------------------------- RX

#[test]
fn rx_delivers_validated_frames_and_refills_with_one_tail_write() {
    for chip in [Chip::I82576, Chip::X82599] {
        let r = rig(chip, 8, 8);
        let mut q = r.nic.rx_queue(0).unwrap();
        let mut out = Vec::new();
        assert_eq!(q.rx_batch(&mut out, 32).unwrap(), 0);
        for i in 0..4 {
            let frame = vec![i as u8; 60 + i];
            r.rx_complete(0, i, &frame, DD_EOP, frame.len() as u16, 0x1000 + i as u32);
        }
        let tails_before = r.dev.writes_to(r.ring_regs(0, true).tail).len();
        assert_eq!(q.rx_batch(&mut out, 32).unwrap(), 4);
        for (i, p) in out.iter().enumerate() {
            assert_eq!(p.buf.as_slice(), &vec![i as u8; 60 + i][..]);
            assert_eq!(p.rss_hash, 0x1000 + i as u32);
        }
        // Four freed descriptors >= refill threshold (8 / 4 = 2): one tail write.
        let tails = r.dev.writes_to(r.ring_regs(0, true).tail);
        assert_eq!(tails.len(), tails_before + 1, "{chip}");
        assert_eq!(*tails.last().unwrap(), (7 + 4) % 8);
        assert_eq!(q.indices(), (4, 3, 7));
        assert_eq!(q.stats().packets, 4);
    }
}

#[test]
fn rx_respects_max_and_stops_at_the_first_unfinished_descriptor() {
    let r = rig(Chip::I350, 8, 8);
    let mut q = r.nic.rx_queue(0).unwrap();
    let mut out = Vec::new();
    r.rx_complete(0, 0, &[1; 60], DD_EOP, 60, 0);
    r.rx_complete(0, 1, &[2; 60], DD_EOP, 60, 0);
    // Descriptor 2 is not done; 3 is (a device must not do that, and the
    // driver must not look past 2).
    r.rx_complete(0, 3, &[4; 60], DD_EOP, 60, 0);
    assert_eq!(q.rx_batch(&mut out, 1).unwrap(), 1);
    assert_eq!(q.rx_batch(&mut out, 32).unwrap(), 1);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].buf.as_slice()[0], 2);
}

#[test]
fn rx_never_reads_a_descriptor_it_did_not_post() {
    // A pool smaller than... the ring is full at 7 of 8: slot 7 is never
    // posted, so a DD the "device" writes there is ignored.
    let r = rig(Chip::I82576, 8, 8);
    let mut q = r.nic.rx_queue(0).unwrap();
    let mut out = Vec::new();
    for i in 0..7 {
        r.rx_complete(0, i, &[i as u8; 64], DD_EOP, 64, 0);
    }
    let mut wb = [0u8; 16];
    wb[8..12].copy_from_slice(&DD_EOP.to_le_bytes());
    wb[12..14].copy_from_slice(&64u16.to_le_bytes());
    r.iommu.write(r.ring_iova(0, true) + 7 * 16, &wb).unwrap();
    // Take only the 7 posted ones, without refilling in between.
    assert_eq!(q.rx_batch(&mut out, 7).unwrap(), 7);
    // The batch refilled slots 7, 0..5: slot 7 now holds a fresh buffer and
    // its old DD was overwritten by the refill.
    assert_eq!(q.indices(), (7, 6, 7));
    assert_eq!(q.rx_batch(&mut out, 32).unwrap(), 0);
}

#[test]
fn rx_drops_multi_descriptor_frames_and_errors_and_rejects_bad_lengths() {
    let r = rig(Chip::X82599, 16, 8);
    let mut q = r.nic.rx_queue(0).unwrap();
    let mut out = Vec::new();
    // A frame over three descriptors (no EOP on the first two).
    r.rx_complete(0, 0, &[0; 64], rxd::status::DD.bit(), 2048, 0);
    r.rx_complete(0, 1, &[0; 64], rxd::status::DD.bit(), 2048, 0);
    r.rx_complete(0, 2, &[0; 64], DD_EOP, 100, 0);
    // A frame with a MAC error.
    r.rx_complete(0, 3, &[0; 64], DD_EOP | rxd::error_82599::RXE.bit(), 64, 0);
    // A good one with checksum error bits only (not frame errors).
    r.rx_complete(0, 4, &[9; 64], DD_EOP | rxd::error_82599::L4E.bit(), 64, 7);
    // A length beyond the 2048-byte buffer.
    r.rx_complete(0, 5, &[0; 64], DD_EOP, 4000, 0);
    r.rx_complete(0, 6, &[6; 64], DD_EOP, 64, 0);
    let e = q.rx_batch(&mut out, 32).unwrap_err();
    assert!(
        matches!(e, NicError::DeviceMisbehaved(ref m) if m.contains("4000")),
        "{e}"
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].buf.as_slice(), &[9; 64]);
    assert_eq!(out[0].rss_hash, 7);
    let s = q.stats();
    assert_eq!(s.multi_descriptor_drops, 1);
    assert_eq!(s.error_drops, 1);
    // The next call continues after the bad descriptor.
    assert_eq!(q.rx_batch(&mut out, 32).unwrap(), 1);
    assert_eq!(out[1].buf.as_slice(), &[6; 64]);
    // Seven freed descriptors are below the refill share (half of 16):
    // not reposted yet.
    assert_eq!(q.posted(), 8);
    // No buffer was lost on the way: all come back to the pool.
    let pool = q.pool().clone();
    drop(out);
    drop(q);
    assert_eq!(pool.free_count(), pool.capacity());
    assert_eq!(pool.quarantined(), 0);
}

#[test]
fn rx_runs_with_fewer_buffers_when_the_pool_is_empty() {
    let r = rig_with(
        Chip::I82576,
        NicOptions {
            pool_bufs: 8,
            ..opts(8, 8)
        },
    );
    let mut q = r.nic.rx_queue(0).unwrap();
    let mut out = Vec::new();
    for i in 0..7 {
        r.rx_complete(0, i, &[1; 60], DD_EOP, 60, 0);
    }
    // The caller keeps the 7 buffers: only 1 is left for the ring.
    assert_eq!(q.rx_batch(&mut out, 32).unwrap(), 7);
    assert_eq!(q.posted(), 1);
    assert!(q.stats().pool_empty > 0);
    // Buffers come back: the next batch refills.
    for p in out.drain(..) {
        q.recycle(p.buf);
    }
    assert_eq!(q.rx_batch(&mut out, 32).unwrap(), 0);
    assert_eq!(q.posted(), 7);
}

// ---------------------------------------------------------------- TX

fn buf_with(pool: &dma::Pool, bytes: &[u8]) -> dma::Buf {
    let mut b = pool.alloc().unwrap();
    b.set_len(bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    b
}

struct TxDesc {
    addr: u64,
    cmd: u32,
    olinfo: u32,
}

fn tx_desc(r: &Rig, i: usize) -> TxDesc {
    let d = r.desc(0, false, i);
    TxDesc {
        addr: u64::from_le_bytes(d[0..8].try_into().unwrap()),
        cmd: u32::from_le_bytes(d[8..12].try_into().unwrap()),
        olinfo: u32::from_le_bytes(d[12..16].try_into().unwrap()),
    }
}

#[test]
fn tx_scatter_gather_packet_has_eop_on_the_last_segment_only() {
    let r = rig(Chip::X82599, 8, 16);
    let pool = r.nic.pool(0).clone();
    let mut q = r.nic.tx_queue(0).unwrap();
    let h = buf_with(&pool, &[1; 42]);
    let p1 = buf_with(&pool, &[2; 100]);
    let p2 = buf_with(&pool, &[3; 200]);
    let iovas = [h.iova(), p1.iova(), p2.iova()];
    let mut pkts = vec![TxPacket::from_segments(vec![h, p1, p2])];
    assert_eq!(q.tx_batch(&mut pkts).unwrap(), 1);
    assert!(pkts.is_empty());
    use txd::cmd_type_len as c;
    for (i, (len, iova)) in [42u32, 100, 200].iter().zip(iovas).enumerate() {
        let d = tx_desc(&r, i);
        assert_eq!(d.addr, iova);
        assert_eq!(d.cmd & 0xffff, *len);
        assert_eq!((d.cmd >> 20) & 0xf, c::DTYP_DATA);
        assert_ne!(d.cmd & (c::DEXT.bit() | c::IFCS.bit()), 0);
        assert_eq!(d.cmd & c::EOP.bit() != 0, i == 2, "EOP only on the last");
        assert_eq!(
            d.cmd & c::RS.bit() != 0,
            i == 2,
            "RS on the batch's last EOP"
        );
        assert_eq!(d.olinfo >> 14, 342, "PAYLEN is the frame length");
        assert_eq!(d.olinfo & 0x3f00, 0, "no offload");
    }
    assert_eq!(r.tail(0, false), 3);
    assert_eq!(q.indices(), (0, 3, 3, vec![2]));
    // Nothing comes back before DD.
    assert_eq!(q.clean(), 0);
    let free_before = pool.free_count();
    r.tx_done(0, 2);
    assert_eq!(q.clean(), 3);
    assert_eq!(pool.free_count(), free_before + 3);
    assert_eq!(q.free_descriptors(), 15);
}

#[test]
fn tx_requests_status_every_32_descriptors_and_at_the_end_of_a_batch() {
    let r = rig_with(
        Chip::I82576,
        NicOptions {
            pool_bufs: 256,
            ..opts(8, 128)
        },
    );
    let pool = r.nic.pool(0).clone();
    let mut q = r.nic.tx_queue(0).unwrap();
    let mut pkts: Vec<TxPacket> = (0..40)
        .map(|i| TxPacket::new(buf_with(&pool, &[i as u8; 60])))
        .collect();
    let tail_writes = r.dev.writes_to(g::tdt(0)).len();
    assert_eq!(q.tx_batch(&mut pkts).unwrap(), 40);
    assert_eq!(
        r.dev.writes_to(g::tdt(0)).len(),
        tail_writes + 1,
        "one tail write"
    );
    let rs: Vec<usize> = (0..40)
        .filter(|&i| tx_desc(&r, i).cmd & txd::cmd_type_len::RS.bit() != 0)
        .collect();
    assert_eq!(rs, vec![31, 39]);
    let (_, _, used, marks) = q.indices();
    assert_eq!((used, marks), (40, vec![31, 39]));
    // Cleanup goes by RS group: DD on 31 frees 32 descriptors.
    r.tx_done(0, 31);
    assert_eq!(q.clean(), 32);
    r.tx_done(0, 39);
    assert_eq!(q.clean(), 8);
    assert_eq!(q.in_flight(), 0);
}

#[test]
fn tx_context_descriptor_only_when_the_offload_changes() {
    let r = rig(Chip::X82599, 8, 32);
    let pool = r.nic.pool(0).clone();
    let mut q = r.nic.tx_queue(0).unwrap();
    let udp = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 20,
    };
    let tcp = Offload::Ipv4Tcp {
        l2_len: 14,
        l3_len: 20,
    };
    let mk = |o| TxPacket::new(buf_with(&pool, &[0; 60])).with_offload(o);
    let mut pkts = vec![mk(udp), mk(udp), mk(Offload::None), mk(udp), mk(tcp)];
    assert_eq!(q.tx_batch(&mut pkts).unwrap(), 5);
    // ctx, data, data, data(no offload), data, ctx, data = 7 descriptors.
    let kinds: Vec<u32> = (0..7).map(|i| (tx_desc(&r, i).cmd >> 20) & 0xf).collect();
    assert_eq!(kinds, vec![2, 3, 3, 3, 3, 2, 3]);
    let popts: Vec<u32> = [1, 2, 3, 4, 6]
        .iter()
        .map(|&i| (tx_desc(&r, i).olinfo >> 8) & 0x3)
        .collect();
    assert_eq!(popts, vec![3, 3, 0, 3, 3], "IXSM|TXSM only with offload");
    let ctx = r.desc(0, false, 5);
    let tucmd = u32::from_le_bytes(ctx[8..12].try_into().unwrap());
    assert_eq!(tucmd & (0b11 << 11), 1 << 11, "second context is TCP");
    assert_eq!(q.stats().contexts, 2);
    assert_eq!(r.tail(0, false), 7);
}

#[test]
fn tx_refuses_packets_the_chip_cannot_send_and_keeps_them() {
    let r = rig_with(
        Chip::X82599,
        NicOptions {
            pool_bufs: 128,
            ..opts(8, 128)
        },
    );
    let pool = r.nic.pool(0).clone();
    let mut q = r.nic.tx_queue(0).unwrap();
    let ok = TxPacket::new(buf_with(&pool, &[0; 60]));
    let segs: Vec<_> = (0..41).map(|_| buf_with(&pool, &[0; 20])).collect();
    let mut pkts = vec![ok, TxPacket::from_segments(segs)];
    let e = q.tx_batch(&mut pkts).unwrap_err();
    assert!(
        matches!(
            e,
            NicError::TooManySegments {
                segments: 41,
                max: 40
            }
        ),
        "{e}"
    );
    // The good packet before it was sent (tail written), the bad one kept.
    assert_eq!(pkts.len(), 1);
    assert_eq!(r.tail(0, false), 1);
    // 40 segments are fine.
    let mut bad = pkts.remove(0).into_segments();
    bad.pop();
    pkts.push(TxPacket::from_segments(bad));
    assert_eq!(q.tx_batch(&mut pkts).unwrap(), 1);
    assert_eq!(r.tail(0, false), 41);

    let mut empty = pool.alloc().unwrap();
    empty.set_len(0);
    let mut pkts = vec![TxPacket::header_payload(buf_with(&pool, &[0; 14]), empty)];
    assert!(matches!(q.tx_batch(&mut pkts), Err(NicError::EmptySegment)));
    let mut pkts = vec![TxPacket::new(buf_with(&pool, &[0; 2048]))];
    pkts[0].push(buf_with(&pool, &[0; 1]));
    assert!(matches!(
        q.tx_batch(&mut pkts),
        Err(NicError::FrameTooLarge {
            len: 2049,
            max: 2048
        })
    ));
    let bad_offload = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 10,
    };
    let mut pkts = vec![TxPacket::new(buf_with(&pool, &[0; 60])).with_offload(bad_offload)];
    assert!(matches!(
        q.tx_batch(&mut pkts),
        Err(NicError::InvalidOffload(_))
    ));
    assert_eq!(r.tail(0, false), 41, "nothing more was queued");
}

#[test]
fn tx_stops_when_the_ring_is_full_and_cleans_to_make_room() {
    let r = rig(Chip::I350, 8, 8);
    let pool = r.nic.pool(0).clone();
    let mut q = r.nic.tx_queue(0).unwrap();
    let mut pkts: Vec<TxPacket> = (0..10)
        .map(|_| TxPacket::new(buf_with(&pool, &[0; 60])))
        .collect();
    assert_eq!(q.tx_batch(&mut pkts).unwrap(), 7, "one slot stays free");
    assert_eq!(pkts.len(), 3);
    assert_eq!(q.tx_batch(&mut pkts).unwrap(), 0);
    r.tx_done(0, 6);
    assert_eq!(q.tx_batch(&mut pkts).unwrap(), 3, "cleaned on demand");
    assert_eq!(r.tail(0, false), (7 + 3) % 8);
}

#[test]
fn tx_batch_pairs_write_the_same_descriptors_as_two_segment_packets() {
    let udp = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 20,
    };
    let descs =
        |r: &Rig, n: usize| -> Vec<[u8; 16]> { (0..n).map(|i| r.desc(0, false, i)).collect() };
    // The same three frames, as packets and as pairs, on two rigs whose
    // pools hand out the same IOVAs.
    let (a, b) = (rig(Chip::X82599, 8, 16), rig(Chip::X82599, 8, 16));
    let frames = |r: &Rig| -> Vec<(dma::Buf, dma::Buf)> {
        let pool = r.nic.pool(0).clone();
        (0..3u8)
            .map(|i| (buf_with(&pool, &[i; 42]), buf_with(&pool, &[i; 1000])))
            .collect()
    };
    let mut qa = a.nic.tx_queue(0).unwrap();
    let mut pkts: Vec<TxPacket> = frames(&a)
        .into_iter()
        .map(|(h, p)| TxPacket::header_payload(h, p).with_offload(udp))
        .collect();
    assert_eq!(qa.tx_batch(&mut pkts).unwrap(), 3);
    let mut qb = b.nic.tx_queue(0).unwrap();
    let tail_writes = b.dev.writes_to(x::tdt(0)).len();
    {
        let mut batch = qb.batch();
        for (h, p) in frames(&b) {
            assert!(batch.has_room_for_pair());
            batch.push_pair(h, p, udp).unwrap();
        }
        assert_eq!(batch.sent(), 3);
        assert_eq!(
            b.tail(0, false),
            0,
            "the tail waits for the end of the batch"
        );
        assert_eq!(batch.commit(), 3);
    }
    assert_eq!(qb.in_flight(), 7, "a context and 3 x 2 data");
    assert_eq!(b.dev.writes_to(x::tdt(0)).len(), tail_writes + 1);
    assert_eq!(descs(&a, 7), descs(&b, 7));
    assert_eq!((a.tail(0, false), b.tail(0, false)), (7, 7));
    assert_eq!(qa.indices(), qb.indices());

    // Refused: an empty segment, a frame too long, no room; both buffers
    // come back and nothing is queued.
    let pool = b.nic.pool(0).clone();
    let mut empty = pool.alloc().unwrap();
    empty.set_len(0);
    let mut batch = qb.batch();
    let e = batch
        .push_pair(buf_with(&pool, &[0; 42]), empty, udp)
        .unwrap_err();
    assert!(
        matches!(e.0, PushError::Invalid(NicError::EmptySegment)),
        "{:?}",
        e.0
    );
    assert_eq!((e.1.len(), e.2.len()), (42, 0));
    let e = batch
        .push_pair(
            buf_with(&pool, &[0; 1500]),
            buf_with(&pool, &[0; 1000]),
            udp,
        )
        .unwrap_err();
    assert!(
        matches!(
            e.0,
            PushError::Invalid(NicError::FrameTooLarge {
                len: 2500,
                max: 2048
            })
        ),
        "{:?}",
        e.0
    );
    // 15 usable descriptors, 7 taken: 4 more pairs fit (the context is
    // loaded). The room check counts a context descriptor too, so it says
    // yes to 3 of them.
    for k in 0..4 {
        assert_eq!(batch.has_room_for_pair(), k < 3);
        batch
            .push_pair(buf_with(&pool, &[0; 42]), buf_with(&pool, &[0; 60]), udp)
            .unwrap();
    }
    assert!(!batch.has_room_for_pair());
    let e = batch
        .push_pair(buf_with(&pool, &[0; 42]), buf_with(&pool, &[0; 60]), udp)
        .unwrap_err();
    assert!(matches!(e.0, PushError::Full));
    drop(batch);
    assert_eq!(b.tail(0, false), 15);
    // Once the device is done, cleaning makes room again.
    b.tx_done(0, 6);
    b.tx_done(0, 14);
    let mut batch = qb.batch();
    assert!(batch.has_room_for_pair(), "cleaned on demand");
}

/// A tagged frame's tag comes back from cleanup once the device has
/// written back the RS descriptor at or after its last descriptor, in push
/// order, also when a cleanup in between (a batch short of room) reclaimed
/// the descriptors; untagged frames give nothing; a batch with no frame
/// tags nothing.
#[test]
fn tx_tags_come_back_once_their_frames_are_sent() {
    let r = rig_with(
        Chip::X82599,
        NicOptions {
            pool_bufs: 256,
            ..opts(8, 64)
        },
    );
    let pool = r.nic.pool(0).clone();
    let mut cache = pool.cache(8);
    let mut q = r.nic.tx_queue(0).unwrap();
    let udp = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 20,
    };
    let mut got = Vec::new();
    let mut batch = q.batch();
    assert!(!batch.tag_last(99), "nothing pushed yet");
    // A context, then 20 pairs: frame k in descriptors 1 + 2k and 2 + 2k.
    // RS where 32 descriptors are reached (frame 15's last, 32) and on
    // the batch's last (40). Frames 4, 14 and 19 tagged.
    for k in 0..20u64 {
        batch
            .push_pair(buf_with(&pool, &[0; 42]), buf_with(&pool, &[1; 100]), udp)
            .unwrap();
        if [4, 14, 19].contains(&k) {
            assert!(batch.tag_last(k));
        }
    }
    assert_eq!(batch.commit(), 20);
    assert_eq!(q.indices().3, [32, 40]);
    assert_eq!(q.clean_tagged(&mut cache, |t| got.push(t)), 0);
    assert!(got.is_empty(), "nothing sent yet");
    r.tx_done(0, 32);
    assert_eq!(q.clean_tagged(&mut cache, |t| got.push(t)), 33);
    assert_eq!(got, [4, 14], "frame 19 is not done yet");
    r.tx_done(0, 40);
    // 8 in flight, 55 free: the 56th frame of a batch makes it clean,
    // without handing back tags ...
    let mut batch = q.batch();
    for _ in 0..56 {
        batch.push_buf(buf_with(&pool, &[2; 60])).unwrap();
    }
    assert!(batch.tag_last(7));
    batch.commit();
    assert_eq!(q.in_flight(), 56, "cleaned to make room");
    // ... which the next cleanup hands back, and only that one.
    assert_eq!(q.clean_tagged(&mut cache, |t| got.push(t)), 0);
    assert_eq!(got, [4, 14, 19]);
    // The batch's descriptors 41..=96 (mod 64): RS on 72 % 64 and 96 % 64.
    r.tx_done(0, 8);
    assert_eq!(q.clean_tagged(&mut cache, |t| got.push(t)), 32);
    assert_eq!(got, [4, 14, 19]);
    r.tx_done(0, 32);
    assert_eq!(q.clean_tagged(&mut cache, |t| got.push(t)), 24);
    assert_eq!(got, [4, 14, 19, 7]);
}

/// A payload cut into frames: each piece's descriptor points into the
/// payload buffer, the buffer is held by the last piece's descriptor only,
/// and it returns to its pool when that one is cleaned; a ring that fills
/// gives the rest back as a buffer of the bytes not queued.
#[test]
fn tx_cut_payload_is_held_by_its_last_piece() {
    let r = rig(Chip::X82599, 8, 16);
    let pool = r.nic.pool(0).clone();
    let mut q = r.nic.tx_queue(0).unwrap();
    let udp = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 20,
    };
    // No header area yet: refused, nothing written.
    let e = q
        .batch()
        .push_cut(buf_with(&pool, &[1; 100]), 40, 42, udp, |_, _| {
            Ok::<_, ()>(())
        })
        .unwrap_err();
    assert!(
        matches!(e, CutError::Invalid(NicError::NoHeaderArea)),
        "{e:?}"
    );
    assert_eq!(q.indices().1, 0);
    q.add_header_area(dma::RegionOptions::EMULATED).unwrap();

    let payload = buf_with(&pool, &[7; 1000]);
    let base = payload.iova();
    let mut lens = Vec::new();
    let mut stamp = 0;
    let mut batch = q.batch();
    // A context, then 3 frames of 2 descriptors: 400 + 400 + 200 bytes,
    // each header written into the slot of its descriptor.
    let rest = batch
        .push_cut(payload, 400, 42, udp, |slot, len| {
            assert_eq!(
                (slot.bytes.len(), *slot.stamp),
                (HEADER_SLOT, 0),
                "a new area"
            );
            lens.push(len);
            stamp += 1;
            slot.bytes[..42].fill(stamp as u8);
            *slot.stamp = stamp;
            Ok::<_, ()>(())
        })
        .unwrap();
    assert!(rest.is_none());
    assert_eq!(batch.commit(), 3);
    assert_eq!(lens, [400, 400, 200]);
    use txd::cmd_type_len as c;
    for (k, i) in [1usize, 3, 5].into_iter().enumerate() {
        let h = tx_desc(&r, i);
        assert_eq!(
            Some(h.addr),
            q.header_slot_iova(i),
            "header {k} in slot {i}"
        );
        assert_eq!(h.cmd & 0xffff, 42);
        assert_eq!(h.cmd & (c::EOP.bit() | c::RS.bit()), 0);
        let d = tx_desc(&r, i + 1);
        assert_eq!(d.addr, base + 400 * k as u64, "piece {k}");
        assert_eq!(d.cmd & 0xffff, lens[k] as u32);
        assert_ne!(d.cmd & c::EOP.bit(), 0);
        assert_eq!(d.olinfo >> 14, 42 + lens[k] as u32, "PAYLEN");
        assert_eq!(h.olinfo, d.olinfo);
    }
    assert_ne!(
        tx_desc(&r, 6).cmd & c::RS.bit(),
        0,
        "RS on the batch's last"
    );
    assert_eq!(r.tail(0, false), 7);
    // Only the payload left the pool: no header buffer per frame.
    let free = pool.free_count();
    r.tx_done(0, 6);
    assert_eq!(q.clean(), 7);
    assert_eq!(pool.free_count(), free + 1, "the payload");

    // 15 free descriptors, 10 frames of 2 (the context is loaded): 7 go
    // in, headers in slots 7, 9, .., 15, 1, 3; the slots of the first run
    // still hold its headers and stamps.
    let payload = buf_with(&pool, &[9; 1000]);
    let base = payload.iova();
    let mut seen = Vec::new();
    let mut batch = q.batch();
    let rest = batch
        .push_cut(payload, 100, 42, udp, |slot, _| {
            seen.push((*slot.stamp, slot.bytes[41]));
            Ok::<_, ()>(())
        })
        .unwrap()
        .expect("the ring fills first");
    assert_eq!(batch.commit(), 7);
    assert_eq!(
        seen,
        [(0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (1, 1), (2, 2)]
    );
    assert_eq!(tx_desc(&r, 1).addr, q.header_slot_iova(1).unwrap());
    assert_eq!((rest.iova(), rest.len()), (base + 700, 300));
    let e = q
        .batch()
        .push_cut(rest, 0, 42, udp, |_, _| Ok::<_, ()>(()))
        .unwrap_err();
    assert!(matches!(e, CutError::Invalid(NicError::EmptySegment)));
    r.tx_done(0, 4);
    assert_eq!(q.clean(), 14);

    // A header longer than a slot is refused before anything is written;
    // a header that fails stops the cut after the frames before it.
    let e = q
        .batch()
        .push_cut(
            buf_with(&pool, &[1; 100]),
            40,
            HEADER_SLOT + 1,
            udp,
            |_, _| Ok::<_, ()>(()),
        )
        .unwrap_err();
    assert!(
        matches!(e, CutError::Invalid(NicError::SegmentTooLarge { len, max })
            if len == HEADER_SLOT + 1 && max == HEADER_SLOT),
        "{e:?}"
    );
    let mut n = 0;
    let mut batch = q.batch();
    let e = batch
        .push_cut(buf_with(&pool, &[1; 100]), 40, 42, udp, |_, _| {
            n += 1;
            if n == 2 {
                Err("no header")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(e, CutError::Header("no header")));
    assert_eq!(batch.commit(), 1, "the frame before the failed header");
    let (_, next_use, used, _) = q.indices();
    assert_eq!((next_use, used), (7, 2));
    let d = tx_desc(&r, 6);
    assert_eq!((d.cmd & 0xffff, d.cmd & c::EOP.bit() != 0), (40, true));
}

/// A cut run takes report-status marks where frames pushed one at a time
/// take them: on the payload descriptor of each frame that brings the
/// descriptors since the last mark to [`RS_EVERY`] or more (counted from
/// the frames before it in the batch, and its context descriptor), and
/// on the batch's last descriptor.
#[test]
fn tx_cut_marks_rs_where_frame_at_a_time_pushes_do() {
    use txd::cmd_type_len as c;
    let udp = Offload::Ipv4Udp {
        l2_len: 14,
        l3_len: 20,
    };
    for (lead, offload) in (0..4).flat_map(|n| [(n, Offload::None), (n, udp)]) {
        let r = rig(Chip::X82599, 8, 256);
        let pool = r.nic.pool(0).clone();
        let mut q = r.nic.tx_queue(0).unwrap();
        q.add_header_area(dma::RegionOptions::EMULATED).unwrap();
        let mut batch = q.batch();
        for _ in 0..lead {
            batch.push_buf(buf_with(&pool, &[3; 60])).unwrap();
        }
        // 111 frames of 9 bytes and one of 1.
        let rest = batch
            .push_cut(buf_with(&pool, &[5; 1000]), 9, 42, offload, |_, _| {
                Ok::<_, ()>(())
            })
            .unwrap();
        assert!(rest.is_none());
        assert_eq!(batch.commit(), lead + 112);
        // The marks a frame at a time gives: each frame's descriptors
        // counted, RS on its last one once the count reaches RS_EVERY.
        let ctx = usize::from(offload != Offload::None);
        let mut want = Vec::new();
        let (mut i, mut since) = (0, 0);
        for need in std::iter::repeat_n(1, lead).chain(std::iter::once(2 + ctx)) {
            i += need;
            since += need;
            if since >= RS_EVERY {
                want.push(i - 1);
                since = 0;
            }
        }
        for _ in 1..112 {
            i += 2;
            since += 2;
            if since >= RS_EVERY {
                want.push(i - 1);
                since = 0;
            }
        }
        if since != 0 {
            want.push(i - 1);
        }
        let (_, next_use, used, marks) = q.indices();
        assert_eq!((next_use, used), (i, i), "lead {lead}, {offload:?}");
        let marked: Vec<usize> = (0..i)
            .filter(|&d| tx_desc(&r, d).cmd & c::RS.bit() != 0)
            .collect();
        assert_eq!(marked, want, "lead {lead}, {offload:?}");
        let marks: Vec<usize> = marks.into_iter().map(usize::from).collect();
        assert_eq!(marks, want, "lead {lead}, {offload:?}");
    }
}

#[test]
fn buffer_fast_paths_match_the_packet_paths() {
    let r = rig(Chip::I82576, 8, 8);
    let pool = r.nic.pool(0).clone();
    let mut rxq = r.nic.rx_queue(0).unwrap();
    let mut txq = r.nic.tx_queue(0).unwrap();
    for i in 0..3 {
        r.rx_complete(0, i, &vec![i as u8 + 1; 60 + i], DD_EOP, 60 + i as u16, 99);
    }
    let mut bufs = Vec::new();
    assert_eq!(rxq.rx_bufs(&mut bufs, 32).unwrap(), 3);
    assert_eq!(bufs[2].as_slice(), &[3; 62]);
    let mut empty = pool.alloc().unwrap();
    empty.set_len(0);
    bufs.insert(2, empty);
    // The first two go out; the empty one stops the batch and stays first.
    let e = txq.tx_bufs(&mut bufs).unwrap_err();
    assert!(matches!(e, NicError::EmptySegment), "{e}");
    assert_eq!(bufs.len(), 2);
    assert!(bufs[0].is_empty());
    assert_eq!(r.tail(0, false), 2);
    use txd::cmd_type_len as c;
    for i in 0..2 {
        let d = tx_desc(&r, i);
        assert_eq!(d.cmd & 0xffff, 60 + i as u32);
        assert_eq!(
            d.cmd & (c::EOP.bit() | c::IFCS.bit() | c::DEXT.bit()),
            c::EOP.bit() | c::IFCS.bit() | c::DEXT.bit()
        );
        assert_eq!(d.olinfo, (60 + i as u32) << 14);
        assert_eq!(d.cmd & c::RS.bit() != 0, i == 1, "RS on the batch's last");
    }
    bufs.remove(0);
    assert_eq!(txq.tx_bufs(&mut bufs).unwrap(), 1);
    assert!(bufs.is_empty());
    assert_eq!(r.tail(0, false), 3);
}

#[test]
fn forward_moves_received_buffers_to_tx_descriptors_and_back() {
    let r = rig(Chip::I82576, 8, 16);
    let mut rxq = r.nic.rx_queue(0).unwrap();
    let mut txq = r.nic.tx_queue(0).unwrap();
    let rx_addr = |i: usize| u64::from_le_bytes(r.desc(0, true, i)[0..8].try_into().unwrap());
    let addrs: Vec<u64> = (0..4).map(rx_addr).collect();
    // Three good frames and a bad one (frame error) behind them.
    for i in 0..3 {
        r.rx_complete(0, i, &vec![i as u8; 60 + i], DD_EOP, 60 + i as u16, 0);
    }
    let rxe = rxd::error_82576::RXE.bit();
    r.rx_complete(0, 3, &[9; 60], DD_EOP | rxe, 60, 0);
    assert_eq!(
        forward(&mut rxq, &mut txq, 32).unwrap(),
        Forwarded {
            frames: 3,
            bytes: 60 + 61 + 62
        }
    );
    use txd::cmd_type_len as c;
    for (i, &addr) in addrs.iter().take(3).enumerate() {
        let d = tx_desc(&r, i);
        assert_eq!(d.addr, addr, "the RX buffer itself goes out");
        assert_eq!(d.cmd & 0xffff, 60 + i as u32);
        assert_eq!(d.cmd & c::EOP.bit(), c::EOP.bit());
        assert_eq!(d.cmd & c::RS.bit() != 0, i == 2, "RS on the batch's last");
    }
    assert_eq!(r.tail(0, false), 3, "one tail write for the batch");
    assert_eq!(
        rxq.stats().error_drops,
        1,
        "the bad frame is dropped, counted"
    );
    // Nothing more to move. The three in the TX ring count as posted (they
    // come back), so the ring was not refilled; once the device has sent
    // them, they go back into the RX ring, not to the cache or the shared
    // pool.
    assert_eq!(rxq.posted(), 3);
    let pool = rxq.pool().clone();
    let free = pool.free_count();
    let cached = rxq.cache_mut().len();
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 0);
    r.tx_done(0, 2);
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 0);
    assert_eq!(txq.in_flight(), 0);
    assert_eq!(rxq.posted(), 6);
    assert_eq!(rxq.cache_mut().len(), cached);
    assert_eq!(pool.free_count(), free);
    // Every posted descriptor (6, from 4 round to 1) in one call.
    for k in 0..6 {
        let i = (4 + k) % 8;
        r.rx_complete(0, i, &[k as u8; 64], DD_EOP, 64, 0);
    }
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 6);
}

#[test]
fn forward_refills_only_below_the_floor_while_buffers_are_out_on_tx() {
    // Ring of 16: 15 posted; refill below half (8) counting the buffers
    // in the TX ring, and below an eighth (2) whatever.
    let r = rig(Chip::I82576, 16, 16);
    let mut rxq = r.nic.rx_queue(0).unwrap();
    let mut txq = r.nic.tx_queue(0).unwrap();
    let cached = rxq.cache_mut().len();
    for i in 0..12 {
        r.rx_complete(0, i, &[i as u8; 60], DD_EOP, 60, 0);
    }
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 12);
    // 3 posted + 12 out on TX: no refill (it would only send as many
    // buffers to the cache when these come back).
    assert_eq!(rxq.posted(), 3);
    assert_eq!(rxq.cache_mut().len(), cached);
    for i in 12..14 {
        r.rx_complete(0, i, &[i as u8; 60], DD_EOP, 60, 0);
    }
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 2);
    // 1 posted is below the floor: refilled from the cache to the full
    // ring, with one tail write.
    assert_eq!(rxq.posted(), 15);
    assert_eq!(rxq.cache_mut().len(), cached - 14);
    assert_eq!(r.tail(0, true), (15 + 14) % 16);
    // The 14 sent (RS on 11 and 13, the batches' last) come back to a
    // full ring: into the cache.
    r.tx_done(0, 11);
    r.tx_done(0, 13);
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 0);
    assert_eq!(txq.in_flight(), 0);
    assert_eq!(rxq.cache_mut().len(), cached);
    assert_eq!(rxq.pool().cpu_write_views(), 0);
}

#[test]
fn forward_reposts_sent_buffers_straight_into_the_rx_ring() {
    let r = rig(Chip::I82576, 16, 16);
    let mut rxq = r.nic.rx_queue(0).unwrap();
    let mut txq = r.nic.tx_queue(0).unwrap();
    let rx_addr = |i: usize| u64::from_le_bytes(r.desc(0, true, i)[0..8].try_into().unwrap());
    let addrs: Vec<u64> = (0..4).map(rx_addr).collect();
    assert_eq!((rxq.posted(), r.tail(0, true)), (15, 15));
    for i in 0..4 {
        r.rx_complete(0, i, &[i as u8; 60], DD_EOP, 60, 0);
    }
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 4);
    // Four free descriptors: below half the ring, no refill.
    assert_eq!((rxq.posted(), r.tail(0, true)), (11, 15));
    let cached = rxq.cache_mut().len();
    r.tx_done(0, 3);
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 0);
    // The sent buffers are posted again in slots 15, 0, 1, 2, in the order
    // they were sent, and shown to the device with one tail write (a
    // quarter of the ring waited); the cache was not touched.
    assert_eq!(txq.in_flight(), 0);
    assert_eq!((rxq.posted(), r.tail(0, true)), (15, 3));
    let reposted: Vec<u64> = [15, 0, 1, 2].into_iter().map(rx_addr).collect();
    assert_eq!(reposted, addrs);
    assert_eq!(rxq.cache_mut().len(), cached);
    assert_eq!(rxq.pool().cpu_write_views(), 0);
}

#[test]
fn forwarded_buffers_go_home_without_their_cache_and_share_a_ring_with_cpu_buffers() {
    let r = rig(Chip::X82599, 8, 16);
    let mut rxq = r.nic.rx_queue(0).unwrap();
    let mut txq = r.nic.tx_queue(0).unwrap();
    let pool = rxq.pool().clone();
    for i in 0..3 {
        r.rx_complete(0, i, &[i as u8; 60], DD_EOP, 60, 0);
    }
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 3);
    // A CPU buffer behind them in the same ring, then two more forwarded.
    let mut b = pool.alloc().unwrap();
    b.set_len(60);
    assert_eq!(txq.tx_bufs(&mut vec![b]).unwrap(), 1);
    for i in 3..5 {
        r.rx_complete(0, i, &[i as u8; 60], DD_EOP, 60, 0);
    }
    assert_eq!(forward(&mut rxq, &mut txq, 32).unwrap().frames, 2);
    let (_, _, _, marks) = txq.indices();
    assert_eq!(marks, vec![2, 3, 5], "RS on the last of each batch");
    // `clean` (no cache at hand): every buffer goes to the pool's list.
    let free = pool.free_count();
    r.tx_done(0, 2);
    r.tx_done(0, 3);
    assert_eq!(txq.clean(), 4);
    assert_eq!(pool.free_count(), free + 4);
    // Dropping the queue with one forwarded batch in flight: the device
    // confirms the stop (the fake's enable bits clear), so they go home.
    drop(txq);
    assert_eq!(pool.free_count(), free + 6);
    assert_eq!(pool.quarantined(), 0);
    assert_eq!(pool.cpu_write_views(), 0);
}

#[test]
fn forward_refuses_ports_whose_frames_do_not_fit_each_other() {
    let big = rig_with(
        Chip::X82599,
        NicOptions {
            buf_size: 9216,
            ..opts(8, 8)
        },
    );
    let small = rig(Chip::I82576, 8, 8);
    let mut rxq = big.nic.rx_queue(0).unwrap();
    let mut txq = small.nic.tx_queue(0).unwrap();
    let e = forward(&mut rxq, &mut txq, 32).unwrap_err();
    assert!(matches!(e, NicError::InvalidOptions(_)), "{e}");
    assert!(e.to_string().contains("9216"), "{e}");
}

#[test]
fn dropping_a_queue_disables_it_and_returns_its_buffers() {
    let r = rig(Chip::I82576, 8, 8);
    let pool = r.nic.pool(0).clone();
    let q = r.nic.rx_queue(0).unwrap();
    assert!(pool.free_count() < pool.capacity() - 7);
    drop(q);
    assert_eq!(r.dev.get(g::rxdctl(0)) & g::rxdctl::ENABLE.bit(), 0);
    assert_eq!(pool.free_count(), pool.capacity());
    assert_eq!(pool.quarantined(), 0);
}

// ---------------------------------------------------------------- cost

/// Registers that do nothing: the cost of a register write in the hot path
/// is then only the driver's own.
struct NullRegs;

impl RegisterAccess for NullRegs {
    fn read32(&self, _: usize) -> u32 {
        0
    }
    fn write32(&self, _: usize, _: u32) {}
    fn read64(&self, _: usize) -> u64 {
        0
    }
    fn write64(&self, _: usize, _: u64) {}
    fn bar_size(&self) -> usize {
        usize::MAX
    }
}

/// The test playing the device: `n` RX write-backs (DD | EOP, 60 bytes)
/// from descriptor `*at` on. Not inlined, so callgrind can leave it out.
#[inline(never)]
fn play_device_rx(iommu: &EmuIommu, ring: u64, at: &mut usize, n: usize, size: usize) {
    let mut wb = [0u8; 8];
    wb[0..4].copy_from_slice(&DD_EOP.to_le_bytes());
    wb[4..6].copy_from_slice(&60u16.to_le_bytes());
    for _ in 0..n {
        iommu.write(ring + *at as u64 * 16 + 8, &wb).unwrap();
        *at = (*at + 1) % size;
    }
}

/// The test playing the device: DD written back into `n` TX descriptors.
#[inline(never)]
fn play_device_tx(iommu: &EmuIommu, ring: u64, at: &mut usize, n: usize, size: usize) {
    let dd = txd::olinfo::DD.bit().to_le_bytes();
    for _ in 0..n {
        iommu.write(ring + *at as u64 * 16 + 12, &dd).unwrap();
        *at = (*at + 1) % size;
    }
}

/// One port's RX and TX queue over registers that do nothing.
#[inline(never)]
fn forward_setup(
    iommu: &Arc<EmuIommu>,
    ring: usize,
) -> (RxQueue<NullRegs>, TxQueue<NullRegs>, u64, u64) {
    let mapper: Arc<dyn Mapper> = iommu.clone();
    let regs = Arc::new(NullRegs);
    let pool = dma::Pool::new(mapper.clone(), 4096, 2048, RegionOptions::EMULATED).unwrap();
    let rx_ring = DescRing::new(mapper.clone(), ring, RegionOptions::EMULATED).unwrap();
    let tx_ring = DescRing::new(mapper.clone(), ring, RegionOptions::EMULATED).unwrap();
    let (rx_iova, tx_iova) = (rx_ring.iova(), tx_ring.iova());
    let qr = QueueRegs {
        tail: 0,
        head: 0,
        ctl: 0,
        enable: 0,
        status: 0,
    };
    let mut rxq = RxQueue::new(
        regs.clone(),
        rx_ring,
        &pool,
        2048,
        Chip::X82599.rx_frame_errors(),
        qr,
        0,
    );
    rxq.refill();
    let limits = TxLimits {
        max_segments: 40,
        max_segment_len: 16384,
        max_frame: 2048,
    };
    let txq = TxQueue::new(regs, tx_ring, limits, qr, 0);
    (rxq, txq, rx_iova, tx_iova)
}

/// A forwarding loop for instruction counting: receive 32 frames, send them
/// on a TX queue, return sent buffers to the RX cache; the test plays the
/// device in between. Run it under callgrind, collecting in the loop but
/// not in the device's part or the set-up:
///
/// ```text
/// cargo test --release -p drivers --lib nic::tests::forward_loop_for_callgrind -- --ignored
/// valgrind --tool=callgrind --toggle-collect='*forward_loop_for_callgrind*' \
///     --toggle-collect='*play_device*' --toggle-collect='*forward_setup*' \
///     target/release/deps/drivers-HASH nic::tests::forward_loop_for_callgrind --ignored
/// ```
/// and divide the instructions by the packets printed.
#[test]
#[ignore]
fn forward_loop_for_callgrind() {
    const RING: usize = 512;
    const BATCH: usize = 32;
    let iommu = Arc::new(EmuIommu::new());
    let (mut rxq, mut txq, rx_iova, tx_iova) = forward_setup(&iommu, RING);
    let mut out = Vec::with_capacity(BATCH);
    let mut pkts = Vec::with_capacity(BATCH);
    let mut bufs = Vec::with_capacity(BATCH);
    let (mut rx_dev, mut tx_dev) = (0usize, 0usize);
    let mut forwarded = 0u64;
    let iterations = 20_000;
    // FWD_API=packets measures rx_batch/tx_batch, FWD_API=bufs
    // rx_bufs/tx_bufs, otherwise `forward`.
    let api = std::env::var("FWD_API").unwrap_or_default();
    let (packets, bufs_api) = (api == "packets", api == "bufs");
    for _ in 0..iterations {
        play_device_rx(&iommu, rx_iova, &mut rx_dev, BATCH, RING);
        let sent = if !packets && !bufs_api {
            forward(&mut rxq, &mut txq, BATCH).unwrap().frames
        } else if packets {
            // Sent buffers go back to the RX queue's cache, not the shared pool.
            txq.clean_into(rxq.cache_mut());
            let n = rxq.rx_batch(&mut out, BATCH).unwrap();
            assert_eq!(n, BATCH);
            pkts.extend(out.drain(..).map(|p| TxPacket::new(p.buf)));
            txq.tx_batch(&mut pkts).unwrap()
        } else {
            txq.clean_into(rxq.cache_mut());
            let n = rxq.rx_bufs(&mut bufs, BATCH).unwrap();
            assert_eq!(n, BATCH);
            txq.tx_bufs(&mut bufs).unwrap()
        };
        assert_eq!(sent, BATCH);
        play_device_tx(&iommu, tx_iova, &mut tx_dev, sent, RING);
        forwarded += sent as u64;
    }
    println!("forwarded {forwarded} packets in {iterations} batches of {BATCH}");
}

// ---------------------------------------------------------------- removal

/// Every chip the driver knows.
const CHIPS: [Chip; 3] = [Chip::I82576, Chip::I350, Chip::X82599];

fn is_removed(e: &NicError) -> bool {
    matches!(e, NicError::DeviceRemoved { register: "STATUS" })
}

#[test]
fn init_of_a_removed_device_says_so_before_any_write() {
    for chip in CHIPS {
        let dev = FakeDevice::new(chip);
        dev.remove();
        let iommu = Arc::new(EmuIommu::new());
        let start = std::time::Instant::now();
        let e = Nic::init(FakeRegs(dev.clone()), iommu, chip, opts(8, 8))
            .err()
            .unwrap();
        assert!(is_removed(&e), "{chip}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("FFFFFFFFh") && msg.contains("lspci"), "{msg}");
        assert!(msg.contains("removed") && msg.contains("re-bind"), "{msg}");
        // Found at the first read: no reset written, no timeout waited out
        // (a stuck CTRL.RST would take RESET_TIMEOUT, 1 s).
        assert!(dev.writes().is_empty(), "{chip}: {:?}", dev.writes());
        assert!(start.elapsed() < Duration::from_millis(500), "{chip}");
    }
}

#[test]
fn a_port_that_was_up_and_is_removed_reports_gone_not_up() {
    for chip in CHIPS {
        let r = rig(chip, 8, 8);
        assert!(r.nic.link().unwrap().up);
        r.dev.remove();
        let e = r.nic.link().unwrap_err();
        assert!(is_removed(&e), "{chip}: {e}");
        // wait_link does not wait out its timeout on a gone device.
        let start = std::time::Instant::now();
        let e = r.nic.wait_link(Duration::from_secs(5)).unwrap_err();
        assert!(is_removed(&e), "{chip}: {e}");
        assert!(start.elapsed() < Duration::from_secs(1), "{chip}");
    }
}

#[test]
fn stats_of_a_removed_port_do_not_jump() {
    for chip in CHIPS {
        let r = rig(chip, 8, 8);
        let (gprc, gorcl) = if chip.is_igb() {
            (g::GPRC, g::GORCL)
        } else {
            (x::GPRC, x::GORCL)
        };
        r.dev.set(gprc, 5);
        r.dev.set(gorcl, 300);
        let before = r.nic.try_stats().unwrap();
        assert_eq!(before.rx_packets, 5);
        r.dev.remove();
        // Several reads: in a debug build the second addition of all-ones
        // octet counters overflowed u64 before.
        for _ in 0..3 {
            let e = r.nic.try_stats().unwrap_err();
            assert!(is_removed(&e), "{chip}: {e}");
            assert_eq!(r.nic.stats(), before, "{chip}");
        }
    }
}

#[test]
fn a_device_gone_during_init_is_reported_removed_not_by_its_symptom() {
    // The device answers STATUS at first and vanishes while init waits for
    // CTRL.RST to clear: the reset then times out, but the cause is the
    // removal, and that is what must be reported.
    for chip in CHIPS {
        let dev = FakeDevice::with(chip, true, false, false);
        let iommu = Arc::new(EmuIommu::new());
        let d = dev.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            d.remove();
        });
        let e = Nic::init(FakeRegs(dev), iommu, chip, opts(8, 8))
            .err()
            .unwrap();
        t.join().unwrap();
        assert!(is_removed(&e), "{chip}: {e}");
    }
}

#[test]
fn device_stats_saturate_instead_of_overflowing() {
    let mut t = DeviceStats {
        rx_bytes: u64::MAX - 1,
        rx_missed: u64::MAX,
        ..DeviceStats::default()
    };
    t.add(&DeviceStats {
        rx_bytes: 5,
        rx_missed: 1,
        rx_no_desc: 7,
        ..DeviceStats::default()
    });
    assert_eq!(t.rx_bytes, u64::MAX);
    assert_eq!(t.rx_missed, u64::MAX);
    assert_eq!(t.rx_no_desc, 7);
    assert_eq!(t.rx_dropped(), u64::MAX);
}

#[test]
fn head_registers_out_of_range_misbehave_and_all_ones_of_a_gone_device_is_removal() {
    for chip in CHIPS {
        let r = rig(chip, 8, 8);
        let rxq = r.nic.rx_queue(0).unwrap();
        let txq = r.nic.tx_queue(0).unwrap();
        let (rdh, tdh) = (r.ring_regs(0, true).head, r.ring_regs(0, false).head);
        r.dev.set(rdh, 3);
        r.dev.set(tdh, 7);
        assert_eq!(rxq.device_head().unwrap(), 3, "{chip}");
        assert_eq!(txq.device_head().unwrap(), 7, "{chip}");
        // Just past the ring, and all ones from a device that still answers:
        // misbehaviour, naming the register and the value.
        for (v, shown) in [(8, "reads 8 (0x8)"), (u32::MAX, "(0xffffffff)")] {
            r.dev.set(rdh, v);
            r.dev.set(tdh, v);
            for (e, name) in [
                (rxq.device_head().unwrap_err(), "RDH[0]"),
                (txq.device_head().unwrap_err(), "TDH[0]"),
            ] {
                let NicError::DeviceMisbehaved(msg) = &e else {
                    panic!("{chip}: {e}");
                };
                assert!(msg.contains(name) && msg.contains(shown), "{chip}: {msg}");
                assert!(msg.contains("ring of 8 descriptors"), "{chip}: {msg}");
            }
        }
        // All ones everywhere: the device is gone.
        r.dev.remove();
        let e = rxq.device_head().unwrap_err();
        assert!(
            matches!(e, NicError::DeviceRemoved { register: "RDH" }),
            "{chip}: {e}"
        );
        let e = txq.device_head().unwrap_err();
        assert!(
            matches!(e, NicError::DeviceRemoved { register: "TDH" }),
            "{chip}: {e}"
        );
    }
}
