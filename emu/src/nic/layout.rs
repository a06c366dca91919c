//! The register map of a modelled chip as data: which offset does what, and
//! the bits the shared model logic needs. [`super::igb`] and [`super::ixgbe`]
//! build one from the driver's register map (`spec::nic`); the shared
//! code never names a chip's offsets itself.
#![forbid(unsafe_code)]

use crate::PciIds;
use drivers::nic::Chip;
use spec::nic::queue::{QueueMap, QueueRegister};
use spec::Field;

pub(crate) use spec::nic::queue::{RxReg, TxReg};

/// A statistics counter the model increments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Ctr {
    /// Good packets received.
    Gprc,
    /// Broadcast packets received.
    Bprc,
    /// Multicast packets received.
    Mprc,
    /// Good packets transmitted.
    Gptc,
    /// Good octets received (64-bit).
    Gorc,
    /// Good octets transmitted (64-bit).
    Gotc,
    /// Total packets received.
    Tpr,
    /// Total packets transmitted.
    Tpt,
    /// Total octets received (64-bit).
    Tor,
    /// Missed packets (no room: the model has no packet buffer, so a frame
    /// that finds no descriptor without DROP_EN lands here).
    Mpc,
    /// Receive no buffers: a frame found no free descriptor.
    Rnbc,
    /// Receive oversize.
    Roc,
    /// CRC errors (never counted: the wire has no FCS).
    Crcerrs,
}

/// Number of [`Ctr`] values.
pub(crate) const CTRS: usize = Ctr::Crcerrs as usize + 1;

/// Which half of a counter a register shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    /// A 32-bit counter.
    Whole,
    /// The low 32 bits of a 64-bit counter: the read takes the whole counter
    /// and latches the high part for the next read of the high register.
    Low,
    /// The high part, as latched by the last read of the low register.
    High,
}

/// What an access to one 32-bit register offset does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reg {
    /// Plain storage: reads return what was written.
    Plain,
    /// Device control: RST (and LRST) self-clear; RST resets the device.
    Ctrl,
    /// Device status: read only, computed (link, speed, GIO master enable).
    Status,
    /// EEPROM control: the auto-read-done and present bits read as 1.
    Eeprom,
    /// 82599 RDRXCTL: DMAIDONE reads as 1.
    Rdrxctl,
    /// 82599 LINKS: read only, computed.
    Links,
    /// 82599 AUTOC: RESTART_AN self-clears.
    Autoc,
    /// 82599 SECRXSTAT: the RX security block is always ready.
    SecRxStat,
    /// 82576 MDIC: one PHY register access, completed at once.
    Mdic,
    /// An interrupt cause register: cleared by a read (no cause is ever raised).
    ClearOnRead,
    /// An interrupt mask set register: a write sets bits.
    MaskSet,
    /// An interrupt mask clear register: a write clears bits of the mask set
    /// register stored at the slot's storage index.
    MaskClear,
    /// Receive filter or RSS configuration: storage, and the receive path
    /// re-reads its configuration.
    RxConfig,
    /// The global transmit enable register: storage; in inline mode a write
    /// sends what the enabled queues hold.
    TxEnable,
    /// A statistics counter (clear on read).
    Counter(Ctr, Half),
    /// The per-queue drop counter `n` (RQDPC of queue n / QPRDC of statistics counter n).
    QueueDrop(u16),
    /// The 82599 per-queue packets-received counter `n` (QPRC).
    QueueRx(u16),
    /// An RX queue register of queue `q`.
    Rx(RxReg, u16),
    /// A TX queue register of queue `q`.
    Tx(TxReg, u16),
    /// The RXDCTL/TXDCTL of a queue the chip has but the model was built
    /// without: reads 0 (never enabled), writes are ignored with a note.
    AbsentQueue,
}

/// One decoded register offset: what it does and where its value lives
/// (the storage index is the offset / 4 of its canonical address, so
/// aliases share storage).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// Behaviour.
    pub reg: Reg,
    /// Storage word index.
    pub store: u32,
}

/// How the chip reports the link.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LinkReport {
    /// 82576 / I350: STATUS.LU, STATUS.FD and STATUS.SPEED.
    Igb {
        /// STATUS.LU.
        lu: u32,
        /// STATUS.FD.
        fd: u32,
        /// STATUS.SPEED.
        speed: Field<u32>,
        /// The SPEED value reported (1000 Mb/s).
        speed_value: u32,
    },
    /// 82599: LINKS.LINK_UP and LINKS.SPEED, mirrored in STATUS.LINK_UP.
    Ixgbe {
        /// LINKS.LINK_UP.
        links_up: u32,
        /// LINKS.SPEED.
        speed: Field<u32>,
        /// The SPEED value reported (10 Gb/s).
        speed_value: u32,
        /// STATUS.LINK_UP.
        status_up: u32,
    },
}

/// How the largest accepted frame is configured.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MaxFrame {
    /// 82576: RCTL.LPE enables long packets up to RLPML (bytes with FCS).
    Igb {
        /// RCTL offset.
        rctl: usize,
        /// RCTL.LPE.
        lpe: u32,
        /// RLPML offset.
        rlpml: usize,
        /// RLPML field.
        field: Field<u32>,
    },
    /// 82599: HLREG0.JUMBOEN enables frames up to MAXFRS.MFS (bytes with FCS).
    Ixgbe {
        /// HLREG0 offset.
        hlreg0: usize,
        /// HLREG0.JUMBOEN.
        jumboen: u32,
        /// MAXFRS offset.
        maxfrs: usize,
        /// MAXFRS.MFS.
        mfs: Field<u32>,
    },
}

/// The multicast table filter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct McastFilter {
    /// First MTA register (128 of them).
    pub mta: usize,
    /// Register holding the MO (multicast offset) field, and the field.
    pub mo: (usize, Field<u32>),
    /// Register and bit that enable the table (82599 MCSTCTRL.MFE); None: always on.
    pub enable: Option<(usize, u32)>,
}

/// The RSS registers and bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RssRegs {
    /// MRQC offset.
    pub mrqc: usize,
    /// MRQC.MRQE.
    pub mrqe: Field<u32>,
    /// MRQE value selecting RSS.
    pub mrqe_rss: u32,
    /// MRQE value selecting one queue.
    pub mrqe_none: u32,
    /// Field-select bits: IPv4, IPv4/TCP, IPv4/UDP, IPv6, IPv6/TCP, IPv6/UDP.
    pub field_bits: [u32; 6],
    /// RETA register `n`.
    pub reta: fn(usize) -> usize,
    /// RSSRK register `n`.
    pub rssrk: fn(usize) -> usize,
    /// Bits of a RETA entry naming the queue.
    pub reta_mask: u8,
    /// RXCSUM offset and RXCSUM.PCSD (the hash is written back only when set).
    pub pcsd: (usize, u32),
}

/// The SRRCTL fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SrrctlFields {
    /// BSIZEPACKET.
    pub bsizepacket: Field<u32>,
    /// Its unit in bytes.
    pub unit: usize,
    /// Buffer size when BSIZEPACKET is 0 (82576: RCTL.BSIZE's default, 2048).
    pub default_size: usize,
    /// DESCTYPE.
    pub desctype: Field<u32>,
    /// DESCTYPE value of the advanced one-buffer descriptor.
    pub desctype_adv: u32,
    /// DROP_EN.
    pub drop_en: u32,
}

/// The PHY behind MDIC (82576 / I350).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PhyRegs {
    /// MDIC.DATA.
    pub data: Field<u32>,
    /// MDIC.REGADD.
    pub regadd: Field<u32>,
    /// MDIC.PHYADD.
    pub phyadd: Field<u32>,
    /// MDIC.OP.
    pub op: Field<u32>,
    /// OP values: write, read.
    pub op_write: u32,
    /// See `op_write`.
    pub op_read: u32,
    /// MDIC.READY.
    pub ready: u32,
    /// MDIC.ERROR.
    pub error: u32,
    /// Address of the internal PHY.
    pub phy_addr: u32,
    /// PHY CONTROL and STATUS register numbers.
    pub control: u32,
    /// See `control`.
    pub status: u32,
    /// CONTROL bits that self-clear (RESET, RESTART_AN).
    pub control_self_clear: u16,
    /// STATUS bits set while the link is up (LINK, AN_COMPLETE).
    pub status_link: u16,
    /// CONTROL after reset (auto-negotiation enabled).
    pub control_reset: u16,
}

/// Everything chip-specific the shared model needs.
pub(crate) struct Layout {
    /// The chip.
    pub chip: Chip,
    /// Its PCI identity.
    pub pci: PciIds,
    /// BAR0 size.
    pub bar_size: usize,
    /// The decode table, one slot per 32-bit offset from 0.
    pub slots: Box<[Slot]>,
    /// Where the per-RX-queue registers are (`spec::nic::*::RX_QUEUES`):
    /// the same table the driver programs its rings from.
    pub rx_queues: &'static QueueMap<RxReg>,
    /// Where the per-TX-queue registers are.
    pub tx_queues: &'static QueueMap<TxReg>,
    /// Values the registers take at reset (offset, value).
    pub reset_values: Vec<(usize, u32)>,
    /// CTRL bits that self-clear; CTRL.RST.
    pub ctrl_self_clear: u32,
    /// See `ctrl_self_clear`.
    pub ctrl_rst: u32,
    /// CTRL bit that disables PCIe mastering, and the STATUS bit that shows it enabled.
    pub gio_disable: u32,
    /// See `gio_disable`.
    pub status_gio_enable: u32,
    /// STATUS offset and CTRL offset (for the GIO bits).
    pub status: usize,
    /// See `status`.
    pub ctrl: usize,
    /// EEPROM bits that read as 1 (present, auto-read done).
    pub eeprom_done: u32,
    /// 82599 RDRXCTL.DMAIDONE.
    pub dma_init_done: u32,
    /// 82599 AUTOC.RESTART_AN.
    pub autoc_self_clear: u32,
    /// 82599 SECRXSTAT.SECRX_RDY.
    pub secrx_ready: u32,
    /// Link reporting.
    pub link: LinkReport,
    /// Global receive enable (RCTL.EN / RXCTRL.RXEN).
    pub rx_enable: (usize, u32),
    /// Global transmit enable (TCTL.EN / DMATXCTL.TE).
    pub tx_enable: (usize, u32),
    /// Filter control register and its UPE, MPE, BAM bits.
    pub filter: (usize, u32, u32, u32),
    /// Receive address register pairs: RAL(n), RAH(n), count, RAH.AV.
    pub ral: fn(usize) -> usize,
    /// See `ral`.
    pub rah: fn(usize) -> usize,
    /// See `ral`.
    pub rar_entries: usize,
    /// See `ral`.
    pub rah_av: u32,
    /// Multicast table.
    pub mcast: McastFilter,
    /// CRC stripping on receive: the register and bit.
    pub crc_strip: (usize, u32),
    /// Pad short frames on transmit: the register and bit.
    pub tx_pad: (usize, u32),
    /// Largest frame.
    pub max_frame: MaxFrame,
    /// RSS.
    pub rss: RssRegs,
    /// SRRCTL fields.
    pub srrctl: SrrctlFields,
    /// RXDCTL.ENABLE and TXDCTL.ENABLE.
    pub rxdctl_enable: u32,
    /// See `rxdctl_enable`.
    pub txdctl_enable: u32,
    /// The RX write-back error bit for a frame the device could not store (RXE).
    pub rx_error: u32,
    /// Most data descriptors one packet may use (None: no limit below the ring).
    pub max_tx_desc_per_packet: Option<usize>,
    /// 82599 RQSMR: queue-to-statistics-counter map registers (None: counter = queue).
    pub rqsmr: Option<fn(usize) -> usize>,
    /// Number of per-queue drop / receive counters.
    pub queue_counters: u16,
    /// The PHY (82576 / I350).
    pub phy: Option<PhyRegs>,
}

/// Builds a decode table.
pub(crate) struct SlotTable {
    slots: Vec<Slot>,
}

impl SlotTable {
    /// A table covering offsets `0..decoded` bytes, every slot plain storage.
    pub(crate) fn new(decoded: usize) -> Self {
        SlotTable {
            slots: (0..decoded / 4)
                .map(|i| Slot {
                    reg: Reg::Plain,
                    store: i as u32,
                })
                .collect(),
        }
    }

    /// `offset` does `reg`, with its own storage.
    pub(crate) fn set(&mut self, offset: usize, reg: Reg) {
        self.alias(offset, offset, reg);
    }

    /// `offset` does `reg` and shares the storage of `canonical`.
    pub(crate) fn alias(&mut self, offset: usize, canonical: usize, reg: Reg) {
        debug_assert!(offset.is_multiple_of(4) && canonical.is_multiple_of(4));
        // Offsets come from the chip files' own register maps, all inside the
        // decoded range; a mistake there is a bug in this crate, caught by the
        // layout tests.
        let slot = &mut self.slots[offset / 4];
        slot.reg = reg;
        slot.store = (canonical / 4) as u32;
    }

    /// The ring registers of queues `0..queues` at every address the maps
    /// give them, aliases sharing the primary address's storage; RXDCTL and
    /// TXDCTL of the chip's other queues (`queues..max`) answer as absent.
    pub(crate) fn queues(
        &mut self,
        rx: &QueueMap<RxReg>,
        tx: &QueueMap<TxReg>,
        queues: u16,
        max: u16,
    ) {
        for q in 0..queues {
            for &reg in RxReg::ALL {
                self.all_of(rx.addresses(q, reg), Reg::Rx(reg, q));
            }
            for &reg in TxReg::ALL {
                self.all_of(tx.addresses(q, reg), Reg::Tx(reg, q));
            }
        }
        for q in queues..max {
            for a in rx
                .addresses(q, RxReg::Dctl)
                .chain(tx.addresses(q, TxReg::Dctl))
            {
                self.set(a, Reg::AbsentQueue);
            }
        }
    }

    /// `reg` at the first of `addrs`, the others its aliases.
    fn all_of(&mut self, mut addrs: impl Iterator<Item = usize>, reg: Reg) {
        let Some(primary) = addrs.next() else {
            return;
        };
        self.set(primary, reg);
        for a in addrs {
            self.alias(a, primary, reg);
        }
    }

    /// The table.
    pub(crate) fn finish(self) -> Box<[Slot]> {
        self.slots.into_boxed_slice()
    }
}
