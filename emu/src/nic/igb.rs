//! The emulated Intel 82576 and I350 (the devices the `igb` driver runs):
//! their register map as the shared NIC model ([`super`]) uses it.
//! Everything here is a name from `spec::nic::igb`; the behaviour
//! lives in this module ([`super`]).
//!
//! Modelled (82576 datasheet §8, I350 datasheet §8): CTRL (RST resets the
//! device and self-clears), STATUS (LU, FD, SPEED = 1000 Mb/s, GIO master
//! enable), EECD (PRES and AUTO_RD read 1: the EEPROM auto-read completes
//! with the reset), MDIC with an internal PHY at address 1 (CONTROL; STATUS
//! with link and auto-negotiation complete while the link is up), RCTL (EN,
//! UPE, MPE, BAM, LPE, MO, SECRC), RLPML, RXCSUM.PCSD, MRQC (RSS), RETA,
//! RSSRK, MTA, RAL/RAH, TCTL (EN, PSP), the per-queue registers of every
//! queue at both the legacy (queues 0..3) and the 0xC000/0xE000 addresses,
//! and the statistics the model counts (GPRC, BPRC, MPRC, GPTC, GORC, GOTC,
//! TOR, TPR, TPT, MPC, RNBC, ROC, RQDPC), all clear on read. Interrupt
//! registers hold their masks; no interrupt is ever raised.
#![forbid(unsafe_code)]

use super::layout::{
    Ctr, Half, Layout, LinkReport, MaxFrame, McastFilter, PhyRegs, Reg, RssRegs, SlotTable,
    SrrctlFields,
};
use crate::PciIds;
use drivers::nic::Chip;
use spec::nic::adv_desc::rx::error_82576;
use spec::nic::igb::{self as s, ctrl, eecd, mdic, mrqc, phy, rctl, rxcsum, srrctl, status};
use spec::nic::{PCI_CLASS_ETHERNET, RETA_REGS, RSSRK_REGS};

/// Number of MTA registers (82576 §8.10.15).
const MTA_REGS: usize = 128;
/// The receive buffer size when SRRCTL.BSIZEPACKET is 0: RCTL.BSIZE's reset
/// value 00b means 2048 bytes (82576 §8.10.1).
const RCTL_BSIZE_DEFAULT: usize = 2048;
/// Queue 0 comes out of reset enabled (82576 §8.10.10, §8.12.13).
const QUEUE0_ENABLED_AT_RESET: u16 = 0;

/// The layout of an 82576 or I350 with `queues` queues (at most the chip's).
pub(crate) fn layout(chip: Chip, queues: u16) -> Layout {
    let (device, rar_entries) = match chip {
        Chip::I350 => (s::DEV_I350_COPPER, s::RAR_ENTRIES_I350),
        _ => (s::DEV_82576, s::RAR_ENTRIES_82576),
    };
    let mut t = SlotTable::new(s::BAR0_SIZE);
    t.set(s::CTRL, Reg::Ctrl);
    t.set(s::STATUS, Reg::Status);
    t.set(s::EECD, Reg::Eeprom);
    t.set(s::MDIC, Reg::Mdic);
    t.set(s::ICR, Reg::ClearOnRead);
    t.set(s::IMS, Reg::MaskSet);
    t.alias(s::IMC, s::IMS, Reg::MaskClear);
    t.set(s::EICR, Reg::ClearOnRead);
    t.set(s::EIMS, Reg::MaskSet);
    t.alias(s::EIMC, s::EIMS, Reg::MaskClear);
    for r in [s::RCTL, s::RLPML, s::RXCSUM, s::MRQC] {
        t.set(r, Reg::RxConfig);
    }
    for i in 0..MTA_REGS {
        t.set(s::MTA + 4 * i, Reg::RxConfig);
    }
    for n in 0..rar_entries {
        t.set(s::ral(n), Reg::RxConfig);
        t.set(s::rah(n), Reg::RxConfig);
    }
    for n in 0..RETA_REGS {
        t.set(s::reta(n), Reg::RxConfig);
    }
    for n in 0..RSSRK_REGS {
        t.set(s::rssrk(n), Reg::RxConfig);
    }
    t.set(s::TCTL, Reg::TxEnable);
    for (off, c, half) in [
        (s::CRCERRS, Ctr::Crcerrs, Half::Whole),
        (s::MPC, Ctr::Mpc, Half::Whole),
        (s::GPRC, Ctr::Gprc, Half::Whole),
        (s::BPRC, Ctr::Bprc, Half::Whole),
        (s::MPRC, Ctr::Mprc, Half::Whole),
        (s::GPTC, Ctr::Gptc, Half::Whole),
        (s::GORCL, Ctr::Gorc, Half::Low),
        (s::GORCH, Ctr::Gorc, Half::High),
        (s::GOTCL, Ctr::Gotc, Half::Low),
        (s::GOTCH, Ctr::Gotc, Half::High),
        (s::RNBC, Ctr::Rnbc, Half::Whole),
        (s::TORL, Ctr::Tor, Half::Low),
        (s::TORH, Ctr::Tor, Half::High),
        (s::TPR, Ctr::Tpr, Half::Whole),
        (s::TPT, Ctr::Tpt, Half::Whole),
        (s::ROC, Ctr::Roc, Half::Whole),
    ] {
        t.set(off, Reg::Counter(c, half));
    }
    // Ring registers from the table the driver uses: queues 0..3 answer in
    // both blocks (82576 §8.10, §8.12).
    t.queues(&s::RX_QUEUES, &s::TX_QUEUES, queues, chip.max_queues());
    for q in 0..queues {
        t.set(s::rqdpc(q), Reg::QueueDrop(q));
    }
    let q0 = QUEUE0_ENABLED_AT_RESET;
    let reset_values = vec![
        (s::CTRL, ctrl::FD.bit()),
        (
            s::TCTL,
            s::tctl::PSP.bit() | s::tctl::CT.value(s::tctl::CT_DEFAULT),
        ),
        (s::RXCSUM, rxcsum::IPOFL.bit() | rxcsum::TUOFL.bit()),
        (s::rxdctl(q0), s::rxdctl::ENABLE.bit()),
        (s::txdctl(q0), s::txdctl::ENABLE.bit()),
    ];
    Layout {
        chip,
        pci: PciIds {
            vendor: s::VENDOR_INTEL,
            device,
            class: PCI_CLASS_ETHERNET,
        },
        bar_size: s::BAR0_SIZE,
        slots: t.finish(),
        rx_queues: &s::RX_QUEUES,
        tx_queues: &s::TX_QUEUES,
        reset_values,
        ctrl_self_clear: ctrl::RST.bit(),
        ctrl_rst: ctrl::RST.bit(),
        gio_disable: ctrl::GIO_MASTER_DISABLE.bit(),
        status_gio_enable: status::GIO_MASTER_ENABLE.bit(),
        status: s::STATUS,
        ctrl: s::CTRL,
        eeprom_done: eecd::PRES.bit() | eecd::AUTO_RD.bit(),
        dma_init_done: 0,
        autoc_self_clear: 0,
        secrx_ready: 0,
        link: LinkReport::Igb {
            lu: status::LU.bit(),
            fd: status::FD.bit(),
            speed: status::SPEED,
            speed_value: status::SPEED_1000,
        },
        rx_enable: (s::RCTL, rctl::EN.bit()),
        tx_enable: (s::TCTL, s::tctl::EN.bit()),
        filter: (s::RCTL, rctl::UPE.bit(), rctl::MPE.bit(), rctl::BAM.bit()),
        ral: s::ral,
        rah: s::rah,
        rar_entries,
        rah_av: s::rah::AV.bit(),
        mcast: McastFilter {
            mta: s::MTA,
            mo: (s::RCTL, rctl::MO),
            enable: None,
        },
        crc_strip: (s::RCTL, rctl::SECRC.bit()),
        tx_pad: (s::TCTL, s::tctl::PSP.bit()),
        max_frame: MaxFrame::Igb {
            rctl: s::RCTL,
            lpe: rctl::LPE.bit(),
            rlpml: s::RLPML,
            field: s::rlpml::RLPML,
        },
        rss: RssRegs {
            mrqc: s::MRQC,
            mrqe: mrqc::MRQE,
            mrqe_rss: mrqc::MRQE_RSS,
            mrqe_none: mrqc::MRQE_NONE,
            field_bits: [
                mrqc::RSS_FIELD_IPV4.bit(),
                mrqc::RSS_FIELD_IPV4_TCP.bit(),
                mrqc::RSS_FIELD_IPV4_UDP.bit(),
                mrqc::RSS_FIELD_IPV6.bit(),
                mrqc::RSS_FIELD_IPV6_TCP.bit(),
                mrqc::RSS_FIELD_IPV6_UDP.bit(),
            ],
            reta: s::reta,
            rssrk: s::rssrk,
            reta_mask: (s::MAX_RSS_QUEUES - 1) as u8,
            pcsd: (s::RXCSUM, rxcsum::PCSD.bit()),
        },
        srrctl: SrrctlFields {
            bsizepacket: srrctl::BSIZEPACKET,
            unit: srrctl::BSIZEPACKET_UNIT,
            default_size: RCTL_BSIZE_DEFAULT,
            desctype: srrctl::DESCTYPE,
            desctype_adv: srrctl::DESCTYPE_ADV_ONE_BUFFER,
            drop_en: srrctl::DROP_EN.bit(),
        },
        rxdctl_enable: s::rxdctl::ENABLE.bit(),
        txdctl_enable: s::txdctl::ENABLE.bit(),
        rx_error: error_82576::RXE.bit(),
        // The 82576 documents no per-packet descriptor limit below the ring.
        max_tx_desc_per_packet: None,
        rqsmr: None,
        queue_counters: queues,
        phy: Some(PhyRegs {
            data: mdic::DATA,
            regadd: mdic::REGADD,
            phyadd: mdic::PHYADD,
            op: mdic::OP,
            op_write: mdic::OP_WRITE,
            op_read: mdic::OP_READ,
            ready: mdic::READY.bit(),
            error: mdic::ERROR.bit(),
            phy_addr: mdic::INTERNAL_PHY,
            control: phy::CONTROL,
            status: phy::STATUS,
            control_self_clear: phy::CONTROL_RESET.bit() | phy::CONTROL_RESTART_AN.bit(),
            status_link: phy::STATUS_LINK.bit() | phy::STATUS_AN_COMPLETE.bit(),
            control_reset: phy::CONTROL_AN_ENABLE.bit(),
        }),
    }
}
