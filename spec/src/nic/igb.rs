//! The 82576 and I350 register map (82576 datasheet §8, I350 datasheet §8):
//! offsets, per-queue register formulas and fields that the igb driver and
//! the igb device model use. Names follow the datasheet.
//!
//! Per-queue registers of queues 0..3 sit in the legacy block (0x2800 RX,
//! 0x3800 TX, stride 0x100); every queue is also reachable in the 0xC000 RX /
//! 0xE000 TX block (stride 0x40), which is the only place for queues 4 and up.

use super::queue::{QueueBlock, QueueMap, RxReg, TxReg};
use super::regname::{self, RegArray, RegName};
use super::Field;
use super::{RETA_REGS, RSSRK_REGS};

/// PCI vendor ID of Intel.
pub const VENDOR_INTEL: u16 = 0x8086;
/// 82576 copper (the device QEMU's `igb` models).
pub const DEV_82576: u16 = 0x10c9;
/// 82576 fiber.
pub const DEV_82576_FIBER: u16 = 0x10e6;
/// 82576 SerDes.
pub const DEV_82576_SERDES: u16 = 0x10e7;
/// 82576 quad copper.
pub const DEV_82576_QUAD_COPPER: u16 = 0x10e8;
/// 82576 quad copper ET2.
pub const DEV_82576_QUAD_COPPER_ET2: u16 = 0x1526;
/// 82576NS copper.
pub const DEV_82576_NS: u16 = 0x150a;
/// 82576NS SerDes.
pub const DEV_82576_NS_SERDES: u16 = 0x1518;
/// 82576 SerDes quad.
pub const DEV_82576_SERDES_QUAD: u16 = 0x150d;
/// Every 82576 device ID the driver accepts.
pub const DEV_IDS_82576: &[u16] = &[
    DEV_82576,
    DEV_82576_FIBER,
    DEV_82576_SERDES,
    DEV_82576_QUAD_COPPER,
    DEV_82576_QUAD_COPPER_ET2,
    DEV_82576_NS,
    DEV_82576_NS_SERDES,
    DEV_82576_SERDES_QUAD,
];
/// I350 copper.
pub const DEV_I350_COPPER: u16 = 0x1521;
/// I350 fiber.
pub const DEV_I350_FIBER: u16 = 0x1522;
/// I350 SerDes.
pub const DEV_I350_SERDES: u16 = 0x1523;
/// I350 SGMII.
pub const DEV_I350_SGMII: u16 = 0x1524;
/// Every I350 device ID the driver accepts.
pub const DEV_IDS_I350: &[u16] = &[
    DEV_I350_COPPER,
    DEV_I350_FIBER,
    DEV_I350_SERDES,
    DEV_I350_SGMII,
];

/// RX and TX queues of the 82576.
pub const QUEUES_82576: u16 = 16;
/// RX and TX queues of the I350.
pub const QUEUES_I350: u16 = 8;
/// Queues the driver spreads RSS over (RETA entries name queues 0..7 in RSS-only mode).
pub const MAX_RSS_QUEUES: u16 = 8;
/// Receive address (RAL/RAH) pairs of the 82576.
pub const RAR_ENTRIES_82576: usize = 24;
/// Receive address pairs of the I350.
pub const RAR_ENTRIES_I350: usize = 32;
/// Size of BAR0 (memory-mapped registers), 128 KiB.
pub const BAR0_SIZE: usize = 128 * 1024;
/// Largest data length of one TX data descriptor the driver uses: DTALEN is
/// 16 bits, kept to a power of two (32 KiB).
pub const MAX_TX_SEGMENT: usize = 32 * 1024;
/// Largest number of data descriptors the driver puts in one packet. The
/// 82576 has no documented limit below the ring size (unlike the 82599's 40);
/// this is the driver's own bound on per-packet work.
pub const MAX_TX_DESC_PER_PACKET: usize = 64;
/// Largest frame (without FCS) the driver configures with RCTL.LPE / RLPML.
pub const MAX_FRAME_JUMBO: usize = 9728;

// ---- General registers ----
/// Device Control.
pub const CTRL: usize = 0x0000;
/// Device Status (read only).
pub const STATUS: usize = 0x0008;
/// EEPROM/Flash Control.
pub const EECD: usize = 0x0010;
/// EEPROM Read.
pub const EERD: usize = 0x0014;
/// Extended Device Control.
pub const CTRL_EXT: usize = 0x0018;
/// MDI Control: PHY register access.
pub const MDIC: usize = 0x0020;

// ---- Interrupts ----
/// Interrupt Cause Read (clear on read).
pub const ICR: usize = 0x00c0;
/// Interrupt Mask Set/Read.
pub const IMS: usize = 0x00d0;
/// Interrupt Mask Clear: write 1s to mask causes.
pub const IMC: usize = 0x00d8;
/// General Purpose Interrupt Enable.
pub const GPIE: usize = 0x1514;
/// Extended Interrupt Cause Set.
pub const EICS: usize = 0x1520;
/// Extended Interrupt Mask Set/Read.
pub const EIMS: usize = 0x1524;
/// Extended Interrupt Mask Clear.
pub const EIMC: usize = 0x1528;
/// Extended Interrupt Auto Clear.
pub const EIAC: usize = 0x152c;
/// Extended Interrupt Auto Mask.
pub const EIAM: usize = 0x1530;
/// Extended Interrupt Cause Read.
pub const EICR: usize = 0x1580;
/// IMC value that masks every interrupt cause.
pub const IMC_ALL: u32 = 0xffff_ffff;

// ---- Receive ----
/// Receive Control.
pub const RCTL: usize = 0x0100;
/// RX Packet Buffer Size.
pub const RXPBS: usize = 0x2404;
/// Receive Checksum Control.
pub const RXCSUM: usize = 0x5000;
/// Receive Long Packet Maximum Length (used when RCTL.LPE = 1), bits 13:0.
pub const RLPML: usize = 0x5004;
/// Receive Filter Control.
pub const RFCTL: usize = 0x5008;
/// Multicast Table Array, 128 registers.
pub const MTA: usize = 0x5200;
/// Multiple Receive Queues Command.
pub const MRQC: usize = 0x5818;

/// Receive Address Low of entry `n` (MAC bytes 0..3, byte 0 in bits 7:0).
pub const fn ral(n: usize) -> usize {
    if n <= 15 {
        0x5400 + n * 8
    } else {
        0x54e0 + (n - 16) * 8
    }
}

/// Receive Address High of entry `n` (MAC bytes 4..5 in bits 15:0, AV in bit 31).
pub const fn rah(n: usize) -> usize {
    ral(n) + 4
}

/// Packet Split Receive Type of pool `n`.
pub const fn psrtype(n: usize) -> usize {
    0x5480 + n * 4
}

/// RSS redirection table register `n` (0..31), four 8-bit entries each.
pub const fn reta(n: usize) -> usize {
    0x5c00 + n * 4
}

/// RSS random key register `n` (0..9).
pub const fn rssrk(n: usize) -> usize {
    0x5c80 + n * 4
}

/// The registers of one queue's block, at their offsets in it (82576
/// datasheet §8.10 receive, §8.12 transmit; the same in both blocks).
const RX_BLOCK_REGS: &[(RxReg, usize)] = &[
    (RxReg::Bal, 0x00),
    (RxReg::Bah, 0x04),
    (RxReg::Len, 0x08),
    (RxReg::Srrctl, 0x0c),
    (RxReg::Head, 0x10),
    (RxReg::Tail, 0x18),
    (RxReg::Dctl, 0x28),
];
const TX_BLOCK_REGS: &[(TxReg, usize)] = &[
    (TxReg::Bal, 0x00),
    (TxReg::Bah, 0x04),
    (TxReg::Len, 0x08),
    (TxReg::Head, 0x10),
    (TxReg::Tail, 0x18),
    (TxReg::Dctl, 0x28),
];

/// The legacy RX block: queues 0..3 at 0x2800, stride 0x100.
pub const RX_LEGACY_BLOCK: QueueBlock<RxReg> = QueueBlock {
    base: 0x2800,
    stride: 0x100,
    first: 0,
    count: 4,
    regs: RX_BLOCK_REGS,
};
/// The RX block of every queue: 0xC000, stride 0x40 (the only addresses of
/// queues 4 and up; an alias for queues 0..3).
pub const RX_BLOCK: QueueBlock<RxReg> = QueueBlock {
    base: 0xc000,
    stride: 0x40,
    first: 0,
    count: QUEUES_82576,
    regs: RX_BLOCK_REGS,
};
/// The legacy TX block: queues 0..3 at 0x3800, stride 0x100.
pub const TX_LEGACY_BLOCK: QueueBlock<TxReg> = QueueBlock {
    base: 0x3800,
    stride: 0x100,
    first: 0,
    count: 4,
    regs: TX_BLOCK_REGS,
};
/// The TX block of every queue: 0xE000, stride 0x40.
pub const TX_BLOCK: QueueBlock<TxReg> = QueueBlock {
    base: 0xe000,
    stride: 0x40,
    first: 0,
    count: QUEUES_82576,
    regs: TX_BLOCK_REGS,
};

/// Where the per-RX-queue registers are: the legacy block first, so queues
/// 0..3 use their legacy addresses as the Linux driver does.
pub const RX_QUEUES: QueueMap<RxReg> = QueueMap {
    blocks: &[RX_LEGACY_BLOCK, RX_BLOCK],
};
/// Where the per-TX-queue registers are.
pub const TX_QUEUES: QueueMap<TxReg> = QueueMap {
    blocks: &[TX_LEGACY_BLOCK, TX_BLOCK],
};

const fn rxq(q: u16, reg: RxReg) -> usize {
    RX_QUEUES.addr(q, reg)
}

const fn txq(q: u16, reg: TxReg) -> usize {
    TX_QUEUES.addr(q, reg)
}

/// RX Descriptor Base Address Low of queue `q` (128-byte aligned).
pub const fn rdbal(q: u16) -> usize {
    rxq(q, RxReg::Bal)
}
/// RX Descriptor Base Address High.
pub const fn rdbah(q: u16) -> usize {
    rxq(q, RxReg::Bah)
}
/// RX Descriptor Length in bytes (multiple of 128).
pub const fn rdlen(q: u16) -> usize {
    rxq(q, RxReg::Len)
}
/// Split and Replication Receive Control.
pub const fn srrctl(q: u16) -> usize {
    rxq(q, RxReg::Srrctl)
}
/// RX Descriptor Head (written by the device).
pub const fn rdh(q: u16) -> usize {
    rxq(q, RxReg::Head)
}
/// RX DCA Control.
pub const fn dca_rxctrl(q: u16) -> usize {
    // In the queue's block but no ring register, so not in the map.
    rxq(q, RxReg::Bal) + 0x14
}
/// RX Descriptor Tail (written by the driver: the last descriptor it owns + 1).
pub const fn rdt(q: u16) -> usize {
    rxq(q, RxReg::Tail)
}
/// Receive Descriptor Control.
pub const fn rxdctl(q: u16) -> usize {
    rxq(q, RxReg::Dctl)
}
/// Receive Queue Drop Packet Count (clear on read): frames dropped because
/// the queue had no descriptor while SRRCTL.DROP_EN was set.
pub const fn rqdpc(q: u16) -> usize {
    0xc030 + q as usize * 0x40
}

/// TX Descriptor Base Address Low of queue `q`.
pub const fn tdbal(q: u16) -> usize {
    txq(q, TxReg::Bal)
}
/// TX Descriptor Base Address High.
pub const fn tdbah(q: u16) -> usize {
    txq(q, TxReg::Bah)
}
/// TX Descriptor Length in bytes.
pub const fn tdlen(q: u16) -> usize {
    txq(q, TxReg::Len)
}
/// TX Descriptor Head (written by the device).
pub const fn tdh(q: u16) -> usize {
    txq(q, TxReg::Head)
}
/// TX DCA Control.
pub const fn dca_txctrl(q: u16) -> usize {
    // In the queue's block but no ring register, so not in the map.
    txq(q, TxReg::Bal) + 0x14
}
/// TX Descriptor Tail.
pub const fn tdt(q: u16) -> usize {
    txq(q, TxReg::Tail)
}
/// Transmit Descriptor Control.
pub const fn txdctl(q: u16) -> usize {
    txq(q, TxReg::Dctl)
}

// ---- Transmit ----
/// Transmit Control.
pub const TCTL: usize = 0x0400;
/// Transmit IPG.
pub const TIPG: usize = 0x0410;
/// TX Packet Buffer Size.
pub const TXPBS: usize = 0x3404;

// ---- Statistics, all clear on read ----
/// CRC Error Count.
pub const CRCERRS: usize = 0x4000;
/// Missed Packets Count: frames dropped for lack of packet buffer space.
pub const MPC: usize = 0x4010;
/// Good Packets Received Count.
pub const GPRC: usize = 0x4074;
/// Broadcast Packets Received Count.
pub const BPRC: usize = 0x4078;
/// Multicast Packets Received Count.
pub const MPRC: usize = 0x407c;
/// Good Packets Transmitted Count.
pub const GPTC: usize = 0x4080;
/// Good Octets Received Count, low 32 bits (read before GORCH).
pub const GORCL: usize = 0x4088;
/// Good Octets Received Count, high bits.
pub const GORCH: usize = 0x408c;
/// Good Octets Transmitted Count, low 32 bits (read before GOTCH).
pub const GOTCL: usize = 0x4090;
/// Good Octets Transmitted Count, high bits.
pub const GOTCH: usize = 0x4094;
/// Receive No Buffers Count: frames that found no free RX descriptor.
pub const RNBC: usize = 0x40a0;
/// Total Octets Received, low.
pub const TORL: usize = 0x40c0;
/// Total Octets Received, high.
pub const TORH: usize = 0x40c4;
/// Total Packets Received.
pub const TPR: usize = 0x40d0;
/// Total Packets Transmitted.
pub const TPT: usize = 0x40d4;
/// Receive Oversize Count: frames longer than the configured maximum (dropped).
pub const ROC: usize = 0x40ac;

// ---- Names, for decoders ----

/// The single registers above with their datasheet names.
const REGISTERS: &[(usize, &str)] = &[
    (CTRL, "CTRL"),
    (STATUS, "STATUS"),
    (EECD, "EECD"),
    (EERD, "EERD"),
    (CTRL_EXT, "CTRL_EXT"),
    (MDIC, "MDIC"),
    (ICR, "ICR"),
    (IMS, "IMS"),
    (IMC, "IMC"),
    (GPIE, "GPIE"),
    (EICS, "EICS"),
    (EIMS, "EIMS"),
    (EIMC, "EIMC"),
    (EIAC, "EIAC"),
    (EIAM, "EIAM"),
    (EICR, "EICR"),
    (RCTL, "RCTL"),
    (RXPBS, "RXPBS"),
    (RXCSUM, "RXCSUM"),
    (RLPML, "RLPML"),
    (RFCTL, "RFCTL"),
    (MTA, "MTA"),
    (MRQC, "MRQC"),
    (TCTL, "TCTL"),
    (TIPG, "TIPG"),
    (TXPBS, "TXPBS"),
    (CRCERRS, "CRCERRS"),
    (MPC, "MPC"),
    (GPRC, "GPRC"),
    (BPRC, "BPRC"),
    (MPRC, "MPRC"),
    (GPTC, "GPTC"),
    (GORCL, "GORCL"),
    (GORCH, "GORCH"),
    (GOTCL, "GOTCL"),
    (GOTCH, "GOTCH"),
    (RNBC, "RNBC"),
    (TORL, "TORL"),
    (TORH, "TORH"),
    (TPR, "TPR"),
    (TPT, "TPT"),
    (ROC, "ROC"),
];

/// The register arrays above (RAL/RAH in their two ranges, 82576 §8.10.13).
const ARRAYS: &[RegArray] = &[
    RegArray {
        name: "RAL",
        base: ral(0),
        stride: ral(1) - ral(0),
        first: 0,
        count: 16,
    },
    RegArray {
        name: "RAH",
        base: rah(0),
        stride: rah(1) - rah(0),
        first: 0,
        count: 16,
    },
    RegArray {
        name: "RAL",
        base: ral(16),
        stride: ral(16 + 1) - ral(16),
        first: 16,
        count: RAR_ENTRIES_I350 - 16,
    },
    RegArray {
        name: "RAH",
        base: rah(16),
        stride: rah(16 + 1) - rah(16),
        first: 16,
        count: RAR_ENTRIES_I350 - 16,
    },
    RegArray {
        name: "PSRTYPE",
        base: psrtype(0),
        stride: psrtype(1) - psrtype(0),
        first: 0,
        count: 8,
    },
    RegArray {
        name: "RETA",
        base: reta(0),
        stride: reta(1) - reta(0),
        first: 0,
        count: RETA_REGS,
    },
    RegArray {
        name: "RSSRK",
        base: rssrk(0),
        stride: rssrk(1) - rssrk(0),
        first: 0,
        count: RSSRK_REGS,
    },
    RegArray {
        name: "MTA",
        base: MTA,
        stride: 4,
        first: 0,
        count: 128,
    },
    RegArray {
        name: "RQDPC",
        base: rqdpc(0),
        stride: rqdpc(1) - rqdpc(0),
        first: 0,
        count: QUEUES_82576 as usize,
    },
];

/// The name of the register at `offset` (`"CTRL"`, `"RDT[0]"`, `"RAL[3]"`),
/// `None` for an offset this map does not name. Queues 0..3 are named the
/// same at their legacy and 0xC000/0xE000 addresses.
pub fn name(offset: usize) -> Option<RegName> {
    regname::lookup(offset, &RX_QUEUES, &TX_QUEUES, REGISTERS, ARRAYS)
}

/// CTRL fields.
pub mod ctrl {
    use super::Field;
    /// Full duplex.
    pub const FD: Field<u32> = Field::new("FD", 0, 1);
    /// GIO Master Disable: stop issuing new PCIe master requests.
    pub const GIO_MASTER_DISABLE: Field<u32> = Field::new("GIO_MASTER_DISABLE", 2, 1);
    /// Link reset.
    pub const LRST: Field<u32> = Field::new("LRST", 3, 1);
    /// Auto-speed detection enable.
    pub const ASDE: Field<u32> = Field::new("ASDE", 5, 1);
    /// Set Link Up: must be 1 for the MAC to use the link.
    pub const SLU: Field<u32> = Field::new("SLU", 6, 1);
    /// Invert loss of signal.
    pub const ILOS: Field<u32> = Field::new("ILOS", 7, 1);
    /// Speed selection (when forced).
    pub const SPEED: Field<u32> = Field::new("SPEED", 8, 2);
    /// Force speed.
    pub const FRCSPD: Field<u32> = Field::new("FRCSPD", 11, 1);
    /// Force duplex.
    pub const FRCDPX: Field<u32> = Field::new("FRCDPX", 12, 1);
    /// Device reset: self-clearing; resets everything but PCI config space.
    pub const RST: Field<u32> = Field::new("RST", 26, 1);
    /// Receive flow control enable.
    pub const RFCE: Field<u32> = Field::new("RFCE", 27, 1);
    /// Transmit flow control enable.
    pub const TFCE: Field<u32> = Field::new("TFCE", 28, 1);
    /// VLAN mode enable.
    pub const VME: Field<u32> = Field::new("VME", 30, 1);
    /// PHY reset.
    pub const PHY_RST: Field<u32> = Field::new("PHY_RST", 31, 1);
}

/// STATUS fields.
pub mod status {
    use super::Field;
    /// Full duplex.
    pub const FD: Field<u32> = Field::new("FD", 0, 1);
    /// Link up.
    pub const LU: Field<u32> = Field::new("LU", 1, 1);
    /// PCI function number (LAN port).
    pub const FUNC_ID: Field<u32> = Field::new("FUNC_ID", 2, 2);
    /// Transmission paused.
    pub const TXOFF: Field<u32> = Field::new("TXOFF", 4, 1);
    /// Link speed: 00 10 Mb/s, 01 100 Mb/s, 10 / 11 1000 Mb/s.
    pub const SPEED: Field<u32> = Field::new("SPEED", 6, 2);
    /// SPEED value: 10 Mb/s.
    pub const SPEED_10: u32 = 0b00;
    /// SPEED value: 100 Mb/s.
    pub const SPEED_100: u32 = 0b01;
    /// SPEED value: 1000 Mb/s (11b also means 1000 Mb/s).
    pub const SPEED_1000: u32 = 0b10;
    /// PCIe master requests are enabled (clears after CTRL.GIO_MASTER_DISABLE once idle).
    pub const GIO_MASTER_ENABLE: Field<u32> = Field::new("GIO_MASTER_ENABLE", 19, 1);
}

/// EECD fields.
pub mod eecd {
    use super::Field;
    /// EEPROM present.
    pub const PRES: Field<u32> = Field::new("PRES", 8, 1);
    /// EEPROM auto read done: set by hardware once the post-reset EEPROM load finished.
    pub const AUTO_RD: Field<u32> = Field::new("AUTO_RD", 9, 1);
}

/// CTRL_EXT fields.
pub mod ctrl_ext {
    use super::Field;
    /// Link mode: 00 internal copper PHY, 01 1000BASE-KX, 10 SGMII, 11 SerDes.
    pub const LINK_MODE: Field<u32> = Field::new("LINK_MODE", 22, 2);
    /// Driver loaded: tells the manageability firmware a driver owns the port.
    pub const DRV_LOAD: Field<u32> = Field::new("DRV_LOAD", 28, 1);
}

/// MDIC fields: one PHY register access at a time.
pub mod mdic {
    use super::Field;
    /// Data read or to write.
    pub const DATA: Field<u32> = Field::new("DATA", 0, 16);
    /// PHY register address.
    pub const REGADD: Field<u32> = Field::new("REGADD", 16, 5);
    /// PHY address (the internal PHY is at 1).
    pub const PHYADD: Field<u32> = Field::new("PHYADD", 21, 5);
    /// Opcode: 01 write, 10 read.
    pub const OP: Field<u32> = Field::new("OP", 26, 2);
    /// OP value: write.
    pub const OP_WRITE: u32 = 0b01;
    /// OP value: read.
    pub const OP_READ: u32 = 0b10;
    /// Ready: the access completed.
    pub const READY: Field<u32> = Field::new("READY", 28, 1);
    /// Interrupt on completion.
    pub const INT: Field<u32> = Field::new("INT", 29, 1);
    /// Error: the PHY did not answer (e.g. wrong PHY address).
    pub const ERROR: Field<u32> = Field::new("ERROR", 30, 1);
    /// Address of the internal copper PHY.
    pub const INTERNAL_PHY: u32 = 1;
}

/// Registers of the internal PHY reached through MDIC (IEEE 802.3 clause 22).
pub mod phy {
    use super::Field;
    /// PHY Control register.
    pub const CONTROL: u32 = 0;
    /// PHY Status register.
    pub const STATUS: u32 = 1;
    /// CONTROL: restart auto-negotiation (self-clearing).
    pub const CONTROL_RESTART_AN: Field<u16> = Field::new("RESTART_AN", 9, 1);
    /// CONTROL: auto-negotiation enable.
    pub const CONTROL_AN_ENABLE: Field<u16> = Field::new("AN_ENABLE", 12, 1);
    /// CONTROL: reset (self-clearing).
    pub const CONTROL_RESET: Field<u16> = Field::new("RESET", 15, 1);
    /// STATUS: link status.
    pub const STATUS_LINK: Field<u16> = Field::new("LINK", 2, 1);
    /// STATUS: auto-negotiation complete.
    pub const STATUS_AN_COMPLETE: Field<u16> = Field::new("AN_COMPLETE", 5, 1);
}

/// RCTL fields. Change them only while RCTL.EN = 0.
pub mod rctl {
    use super::Field;
    /// Receiver enable.
    pub const EN: Field<u32> = Field::new("EN", 1, 1);
    /// Store bad packets.
    pub const SBP: Field<u32> = Field::new("SBP", 2, 1);
    /// Unicast promiscuous.
    pub const UPE: Field<u32> = Field::new("UPE", 3, 1);
    /// Multicast promiscuous.
    pub const MPE: Field<u32> = Field::new("MPE", 4, 1);
    /// Long packet enable (frames up to RLPML).
    pub const LPE: Field<u32> = Field::new("LPE", 5, 1);
    /// Loopback mode.
    pub const LBM: Field<u32> = Field::new("LBM", 6, 2);
    /// Descriptor minimum threshold size.
    pub const RDMTS: Field<u32> = Field::new("RDMTS", 8, 2);
    /// Multicast offset.
    pub const MO: Field<u32> = Field::new("MO", 12, 2);
    /// Broadcast accept mode.
    pub const BAM: Field<u32> = Field::new("BAM", 15, 1);
    /// Legacy buffer size (SRRCTL.BSIZEPACKET overrides it when non-zero).
    pub const BSIZE: Field<u32> = Field::new("BSIZE", 16, 2);
    /// VLAN filter enable.
    pub const VFE: Field<u32> = Field::new("VFE", 18, 1);
    /// Discard pause frames.
    pub const DPF: Field<u32> = Field::new("DPF", 22, 1);
    /// Pass MAC control frames.
    pub const PMCF: Field<u32> = Field::new("PMCF", 23, 1);
    /// Strip Ethernet CRC from received frames.
    pub const SECRC: Field<u32> = Field::new("SECRC", 26, 1);
}

/// SRRCTL fields.
pub mod srrctl {
    use super::Field;
    /// Packet buffer size in 1 KiB units (0: use RCTL.BSIZE).
    pub const BSIZEPACKET: Field<u32> = Field::new("BSIZEPACKET", 0, 7);
    /// Unit of BSIZEPACKET in bytes.
    pub const BSIZEPACKET_UNIT: usize = 1024;
    /// Header buffer size in 64-byte units (header split only).
    pub const BSIZEHEADER: Field<u32> = Field::new("BSIZEHEADER", 8, 4);
    /// Descriptor minimum threshold.
    pub const RDMTS: Field<u32> = Field::new("RDMTS", 20, 5);
    /// Descriptor type.
    pub const DESCTYPE: Field<u32> = Field::new("DESCTYPE", 25, 3);
    /// DESCTYPE value: legacy.
    pub const DESCTYPE_LEGACY: u32 = 0b000;
    /// DESCTYPE value: advanced descriptor, one buffer.
    pub const DESCTYPE_ADV_ONE_BUFFER: u32 = 0b001;
    /// Time stamp received packets.
    pub const TIMESTAMP: Field<u32> = Field::new("TIMESTAMP", 30, 1);
    /// Drop enable: drop (and count in RQDPC) frames that find no descriptor
    /// instead of holding them in the packet buffer. Note: bit 31 here, bit 28
    /// on the 82599.
    pub const DROP_EN: Field<u32> = Field::new("DROP_EN", 31, 1);
}

/// RXDCTL fields.
pub mod rxdctl {
    use super::Field;
    /// Prefetch threshold.
    pub const PTHRESH: Field<u32> = Field::new("PTHRESH", 0, 5);
    /// Host threshold.
    pub const HTHRESH: Field<u32> = Field::new("HTHRESH", 8, 5);
    /// Write-back threshold.
    pub const WTHRESH: Field<u32> = Field::new("WTHRESH", 16, 5);
    /// Queue enable; reads back 1 once the queue is running.
    pub const ENABLE: Field<u32> = Field::new("ENABLE", 25, 1);
    /// Software flush of pending write-backs.
    pub const SWFLSH: Field<u32> = Field::new("SWFLSH", 26, 1);
}

/// TXDCTL fields.
pub mod txdctl {
    use super::Field;
    /// Prefetch threshold.
    pub const PTHRESH: Field<u32> = Field::new("PTHRESH", 0, 5);
    /// Host threshold.
    pub const HTHRESH: Field<u32> = Field::new("HTHRESH", 8, 5);
    /// Write-back threshold (0: write back every RS descriptor at once).
    pub const WTHRESH: Field<u32> = Field::new("WTHRESH", 16, 5);
    /// Queue enable; reads back 1 once the queue is running.
    pub const ENABLE: Field<u32> = Field::new("ENABLE", 25, 1);
    /// Software flush.
    pub const SWFLSH: Field<u32> = Field::new("SWFLSH", 26, 1);
}

/// TCTL fields.
pub mod tctl {
    use super::Field;
    /// Transmit enable.
    pub const EN: Field<u32> = Field::new("EN", 1, 1);
    /// Pad short packets (to 64 bytes with FCS).
    pub const PSP: Field<u32> = Field::new("PSP", 3, 1);
    /// Collision threshold.
    pub const CT: Field<u32> = Field::new("CT", 4, 8);
    /// Collision distance.
    pub const COLD: Field<u32> = Field::new("COLD", 12, 10);
    /// Re-transmit on late collision.
    pub const RTLC: Field<u32> = Field::new("RTLC", 24, 1);
    /// CT value recommended by the datasheet.
    pub const CT_DEFAULT: u32 = 0x0f;
    /// COLD value for full duplex.
    pub const COLD_FULL_DUPLEX: u32 = 0x3f;
}

/// RXCSUM fields.
pub mod rxcsum {
    use super::Field;
    /// IPv4 checksum offload.
    pub const IPOFL: Field<u32> = Field::new("IPOFL", 8, 1);
    /// TCP/UDP checksum offload.
    pub const TUOFL: Field<u32> = Field::new("TUOFL", 9, 1);
    /// CRC32 (SCTP) offload.
    pub const CRCOFL: Field<u32> = Field::new("CRCOFL", 11, 1);
    /// Packet checksum disable: the write-back carries the RSS hash instead
    /// of the fragment checksum. Must be 1 for RSS hashes.
    pub const PCSD: Field<u32> = Field::new("PCSD", 13, 1);
}

/// MRQC fields.
pub mod mrqc {
    use super::Field;
    /// Multiple Receive Queues Enable.
    pub const MRQE: Field<u32> = Field::new("MRQE", 0, 3);
    /// MRQE value: one queue (no RSS, no VMDq).
    pub const MRQE_NONE: u32 = 0b000;
    /// MRQE value: RSS.
    pub const MRQE_RSS: u32 = 0b010;
    /// Hash TCP over IPv4.
    pub const RSS_FIELD_IPV4_TCP: Field<u32> = Field::new("RSS_FIELD_IPV4_TCP", 16, 1);
    /// Hash IPv4 addresses.
    pub const RSS_FIELD_IPV4: Field<u32> = Field::new("RSS_FIELD_IPV4", 17, 1);
    /// Hash TCP over IPv6 with extension headers.
    pub const RSS_FIELD_IPV6_TCP_EX: Field<u32> = Field::new("RSS_FIELD_IPV6_TCP_EX", 18, 1);
    /// Hash IPv6 with extension headers.
    pub const RSS_FIELD_IPV6_EX: Field<u32> = Field::new("RSS_FIELD_IPV6_EX", 19, 1);
    /// Hash IPv6 addresses.
    pub const RSS_FIELD_IPV6: Field<u32> = Field::new("RSS_FIELD_IPV6", 20, 1);
    /// Hash TCP over IPv6.
    pub const RSS_FIELD_IPV6_TCP: Field<u32> = Field::new("RSS_FIELD_IPV6_TCP", 21, 1);
    /// Hash UDP over IPv4.
    pub const RSS_FIELD_IPV4_UDP: Field<u32> = Field::new("RSS_FIELD_IPV4_UDP", 22, 1);
    /// Hash UDP over IPv6.
    pub const RSS_FIELD_IPV6_UDP: Field<u32> = Field::new("RSS_FIELD_IPV6_UDP", 23, 1);
}

/// RAH fields.
pub mod rah {
    use super::Field;
    /// MAC bytes 4 and 5.
    pub const RAH: Field<u32> = Field::new("RAH", 0, 16);
    /// Address valid.
    pub const AV: Field<u32> = Field::new("AV", 31, 1);
}

/// RLPML field.
pub mod rlpml {
    use super::Field;
    /// Maximum long packet length in bytes.
    pub const RLPML: Field<u32> = Field::new("RLPML", 0, 14);
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::{String, ToString};

    fn named(offset: usize) -> Option<String> {
        name(offset).map(|n| n.to_string())
    }

    #[test]
    fn offsets_are_named_with_their_queue_or_index() {
        assert_eq!(named(CTRL).as_deref(), Some("CTRL"));
        assert_eq!(named(0x2818).as_deref(), Some("RDT[0]"));
        assert_eq!(named(0xc018).as_deref(), Some("RDT[0]"), "alias block");
        assert_eq!(named(0x3b10).as_deref(), Some("TDH[3]"));
        assert_eq!(named(0xe110).as_deref(), Some("TDH[4]"));
        assert_eq!(named(0x2928).as_deref(), Some("RXDCTL[1]"));
        assert_eq!(named(0x290c).as_deref(), Some("SRRCTL[1]"));
        assert_eq!(named(0x54e8).as_deref(), Some("RAL[17]"));
        assert_eq!(named(0x5c04).as_deref(), Some("RETA[1]"));
        assert_eq!(named(0xc070).as_deref(), Some("RQDPC[1]"));
        assert_eq!(named(0x2804 + 0x100 * 3).as_deref(), Some("RDBAH[3]"));
        assert_eq!(named(0x2820), None, "reserved offset in a queue block");
        assert_eq!(named(0x1_0000), None);
    }

    #[test]
    fn every_queue_register_decodes_back_to_its_queue() {
        for q in 0..QUEUES_82576 {
            for &r in <RxReg as super::super::queue::QueueRegister>::ALL {
                for a in RX_QUEUES.addresses(q, r) {
                    assert_eq!(RX_QUEUES.decode(a), Some((q, r)));
                }
            }
            for &r in <TxReg as super::super::queue::QueueRegister>::ALL {
                for a in TX_QUEUES.addresses(q, r) {
                    assert_eq!(TX_QUEUES.decode(a), Some((q, r)));
                }
            }
            let n = if q < 4 { 2 } else { 1 };
            assert_eq!(RX_QUEUES.addresses(q, RxReg::Tail).count(), n);
        }
    }

    #[test]
    fn per_queue_formulas_match_the_datasheet_blocks() {
        assert_eq!(rdbal(0), 0x2800);
        assert_eq!(rdt(1), 0x2918);
        assert_eq!(srrctl(3), 0x2b0c);
        assert_eq!(rxdctl(4), 0xc128);
        assert_eq!(rdbal(15), 0xc3c0);
        assert_eq!(tdbal(0), 0x3800);
        assert_eq!(tdt(2), 0x3a18);
        assert_eq!(txdctl(5), 0xe168);
        assert_eq!(rqdpc(1), 0xc070);
        assert_eq!(ral(0), 0x5400);
        assert_eq!(rah(0), 0x5404);
        assert_eq!(ral(16), 0x54e0);
        assert_eq!(reta(31), 0x5c7c);
        assert_eq!(rssrk(9), 0x5ca4);
    }
}
