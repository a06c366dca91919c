//! The emulated Intel 82599 (the device the `ixgbe` driver runs): its
//! register map as the shared NIC model ([`super`]) uses it. Every
//! offset and bit is a name from `spec::nic::ixgbe`; the behaviour
//! lives in this module ([`super`]).
//!
//! Modelled (82599 datasheet §8.2.3): CTRL (RST and LRST self-clear; RST
//! resets the device), STATUS (LINK_UP, GIO master enable), EEC (PRES and
//! ARD read 1), RDRXCTL (DMAIDONE reads 1: DMA initialization completes with
//! the reset), LINKS (LINK_UP, SPEED = 10 Gb/s), AUTOC (RESTART_AN
//! self-clears), SECRXSTAT (SECRX_RDY reads 1), RXCTRL.RXEN, FCTRL (UPE,
//! MPE, BAM), MCSTCTRL (MFE, MO) and MTA, HLREG0 (RXCRCSTRP, JUMBOEN,
//! TXPADEN), MAXFRS, RXCSUM.PCSD, MRQC (RSS), RETA, RSSRK and RAL/RAH at
//! both their 82599 and 82598-compatible addresses, DMATXCTL.TE, RQSMR, the
//! per-queue registers of every queue (SRRCTL of queues 0..15 at both
//! addresses), and the statistics the model counts (GPRC, BPRC, MPRC, GPTC,
//! GORC, GOTC, TPR, TPT, MPC\[0\], RNBC\[0\], ROC, QPRC, QPRDC), all clear
//! on read. The model has one packet buffer: MPC/RNBC of buffers 1..7 stay 0.
#![forbid(unsafe_code)]

use super::layout::{
    Ctr, Half, Layout, LinkReport, MaxFrame, McastFilter, Reg, RssRegs, SlotTable, SrrctlFields,
};
use crate::PciIds;
use drivers::nic::Chip;
use spec::nic::adv_desc::rx::error_82599;
use spec::nic::ixgbe::{
    self as s, autoc, ctrl, dca_rxctrl, dmatxctl, eec, fctrl, hlreg0, links, maxfrs, mcstctrl,
    mrqc, rdrxctl, rxcsum, rxctrl, secrx, srrctl, status,
};
use spec::nic::{ETH_FCS_LEN, ETH_MAX_FRAME, PCI_CLASS_ETHERNET, RETA_REGS, RSSRK_REGS};

/// Number of MTA registers (82599 §8.2.3.7.7).
const MTA_REGS: usize = 128;
/// Receive address entries with an 82598-compatible alias.
const RAR_ALIASES: usize = 16;
/// SRRCTL's reset value of BSIZEPACKET is 2 KiB (82599 §8.2.3.8.7); 0 is
/// reserved, and the model treats it as the same 2 KiB.
const DEFAULT_BUFFER: usize = 2048;
/// Queues whose SRRCTL has a second address.
const SRRCTL_ALIASED_QUEUES: u16 = 16;
/// The part of BAR0 with registers (everything above reads 0).
const DECODED: usize = 0x20000;

/// The layout of an 82599 with `queues` queues (at most 128).
pub(crate) fn layout(chip: Chip, queues: u16) -> Layout {
    let mut t = SlotTable::new(DECODED);
    t.set(s::CTRL, Reg::Ctrl);
    t.set(s::STATUS, Reg::Status);
    t.set(s::EEC, Reg::Eeprom);
    t.set(s::RDRXCTL, Reg::Rdrxctl);
    t.set(s::LINKS, Reg::Links);
    t.set(s::AUTOC, Reg::Autoc);
    t.set(s::SECRXSTAT, Reg::SecRxStat);
    t.set(s::EICR, Reg::ClearOnRead);
    t.set(s::EIMS, Reg::MaskSet);
    t.alias(s::EIMC, s::EIMS, Reg::MaskClear);
    for r in [
        s::FCTRL,
        s::HLREG0,
        s::MAXFRS,
        s::RXCSUM,
        s::MCSTCTRL,
        s::MRQC,
    ] {
        t.set(r, Reg::RxConfig);
    }
    t.alias(s::MRQC_ALIAS, s::MRQC, Reg::RxConfig);
    for i in 0..MTA_REGS {
        t.set(s::MTA + 4 * i, Reg::RxConfig);
    }
    let rah_from_ral = s::rah(0) - s::ral(0);
    for n in 0..s::RAR_ENTRIES {
        t.set(s::ral(n), Reg::RxConfig);
        t.set(s::rah(n), Reg::RxConfig);
    }
    for n in 0..RAR_ALIASES {
        t.alias(s::ral_alias(n), s::ral(n), Reg::RxConfig);
        t.alias(s::ral_alias(n) + rah_from_ral, s::rah(n), Reg::RxConfig);
    }
    for n in 0..RETA_REGS {
        t.set(s::reta(n), Reg::RxConfig);
        t.alias(s::reta_alias(n), s::reta(n), Reg::RxConfig);
    }
    for n in 0..RSSRK_REGS {
        t.set(s::rssrk(n), Reg::RxConfig);
        t.alias(s::rssrk_alias(n), s::rssrk(n), Reg::RxConfig);
    }
    t.set(s::DMATXCTL, Reg::TxEnable);
    for (off, c, half) in [
        (s::CRCERRS, Ctr::Crcerrs, Half::Whole),
        (s::GPRC, Ctr::Gprc, Half::Whole),
        (s::BPRC, Ctr::Bprc, Half::Whole),
        (s::MPRC, Ctr::Mprc, Half::Whole),
        (s::GPTC, Ctr::Gptc, Half::Whole),
        (s::GORCL, Ctr::Gorc, Half::Low),
        (s::GORCH, Ctr::Gorc, Half::High),
        (s::GOTCL, Ctr::Gotc, Half::Low),
        (s::GOTCH, Ctr::Gotc, Half::High),
        (s::TPR, Ctr::Tpr, Half::Whole),
        (s::TPT, Ctr::Tpt, Half::Whole),
        (s::ROC, Ctr::Roc, Half::Whole),
        (s::mpc(0), Ctr::Mpc, Half::Whole),
        (s::rnbc(0), Ctr::Rnbc, Half::Whole),
    ] {
        t.set(off, Reg::Counter(c, half));
    }
    for n in 0..s::QUEUE_STAT_COUNTERS {
        t.set(s::qprc(n), Reg::QueueRx(n as u16));
        t.set(s::qprdc(n), Reg::QueueDrop(n as u16));
    }
    let mut reset_values = vec![
        (
            s::HLREG0,
            hlreg0::TXCRCEN.bit() | hlreg0::RXCRCSTRP.bit() | hlreg0::TXPADEN.bit(),
        ),
        (
            s::MAXFRS,
            maxfrs::MFS.value((ETH_MAX_FRAME + ETH_FCS_LEN) as u32),
        ),
    ];
    // Ring registers from the table the driver uses (SRRCTL of queues
    // 0..15 at both addresses).
    t.queues(&s::RX_QUEUES, &s::TX_QUEUES, queues, chip.max_queues());
    for q in 0..queues {
        if q < SRRCTL_ALIASED_QUEUES {
            t.alias(s::dca_rxctrl_alias(q), s::dca_rxctrl(q), Reg::Plain);
        }
        reset_values.push((
            s::srrctl(q),
            srrctl::BSIZEPACKET.value((DEFAULT_BUFFER / srrctl::BSIZEPACKET_UNIT) as u32),
        ));
        reset_values.push((s::dca_rxctrl(q), dca_rxctrl::RESERVED_CLEAR.bit()));
    }
    Layout {
        chip,
        pci: PciIds {
            vendor: s::VENDOR_INTEL,
            device: s::DEV_82599_SFP,
            class: PCI_CLASS_ETHERNET,
        },
        bar_size: s::BAR0_SIZE,
        slots: t.finish(),
        rx_queues: &s::RX_QUEUES,
        tx_queues: &s::TX_QUEUES,
        reset_values,
        ctrl_self_clear: ctrl::RST_MASK,
        ctrl_rst: ctrl::RST.bit(),
        gio_disable: ctrl::GIO_DIS.bit(),
        status_gio_enable: status::GIO_MASTER_ENABLE.bit(),
        status: s::STATUS,
        ctrl: s::CTRL,
        eeprom_done: eec::PRES.bit() | eec::ARD.bit(),
        dma_init_done: rdrxctl::DMAIDONE.bit(),
        autoc_self_clear: autoc::RESTART_AN.bit(),
        secrx_ready: secrx::SECRX_RDY.bit(),
        link: LinkReport::Ixgbe {
            links_up: links::LINK_UP.bit(),
            speed: links::SPEED,
            speed_value: links::SPEED_10G,
            status_up: status::LINK_UP.bit(),
        },
        rx_enable: (s::RXCTRL, rxctrl::RXEN.bit()),
        tx_enable: (s::DMATXCTL, dmatxctl::TE.bit()),
        filter: (
            s::FCTRL,
            fctrl::UPE.bit(),
            fctrl::MPE.bit(),
            fctrl::BAM.bit(),
        ),
        ral: s::ral,
        rah: s::rah,
        rar_entries: s::RAR_ENTRIES,
        rah_av: s::rah::AV.bit(),
        mcast: McastFilter {
            mta: s::MTA,
            mo: (s::MCSTCTRL, mcstctrl::MO),
            enable: Some((s::MCSTCTRL, mcstctrl::MFE.bit())),
        },
        crc_strip: (s::HLREG0, hlreg0::RXCRCSTRP.bit()),
        tx_pad: (s::HLREG0, hlreg0::TXPADEN.bit()),
        max_frame: MaxFrame::Ixgbe {
            hlreg0: s::HLREG0,
            jumboen: hlreg0::JUMBOEN.bit(),
            maxfrs: s::MAXFRS,
            mfs: maxfrs::MFS,
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
            default_size: DEFAULT_BUFFER,
            desctype: srrctl::DESCTYPE,
            desctype_adv: srrctl::DESCTYPE_ADV_ONE_BUFFER,
            drop_en: srrctl::DROP_EN.bit(),
        },
        rxdctl_enable: s::rxdctl::ENABLE.bit(),
        txdctl_enable: s::txdctl::ENABLE.bit(),
        rx_error: error_82599::RXE.bit(),
        max_tx_desc_per_packet: Some(s::MAX_TX_DESC_PER_PACKET),
        rqsmr: Some(s::rqsmr),
        queue_counters: s::QUEUE_STAT_COUNTERS as u16,
        phy: None,
    }
}
