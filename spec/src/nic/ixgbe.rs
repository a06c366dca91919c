//! The 82599 register map (82599 datasheet §8.2.3): offsets, per-queue
//! register formulas and fields that the ixgbe driver and the ixgbe device
//! model use. Names follow the datasheet.
//!
//! Where the 82599 keeps an 82598-compatible alias of a register (RAL/RAH of
//! entries 0..15 at 0x5400, MRQC at 0x5818, RETA at 0x5C00, RSSRK at
//! 0x5C80, SRRCTL/DCA_RXCTRL of queues 0..15 at 0x2100/0x2200), the driver
//! uses the address below; the `*_ALIAS` constants name the alias so a model
//! can decode both.

use super::queue::{QueueBlock, QueueMap, RxReg, TxReg};
use super::regname::{self, RegArray, RegName};
use super::Field;
use super::{RETA_REGS, RSSRK_REGS};

/// PCI vendor ID of Intel.
pub const VENDOR_INTEL: u16 = 0x8086;
/// 82599 SFP+ (the common 82599ES / X520 part).
pub const DEV_82599_SFP: u16 = 0x10fb;
/// 82599 KX4 backplane.
pub const DEV_82599_KX4: u16 = 0x10f7;
/// 82599 KX4 mezzanine.
pub const DEV_82599_KX4_MEZZ: u16 = 0x1514;
/// 82599 KR backplane.
pub const DEV_82599_KR: u16 = 0x1517;
/// 82599 combo backplane.
pub const DEV_82599_COMBO_BACKPLANE: u16 = 0x10f8;
/// 82599 CX4.
pub const DEV_82599_CX4: u16 = 0x10f9;
/// 82599 XAUI LOM.
pub const DEV_82599_XAUI_LOM: u16 = 0x10fc;
/// 82599 T3 LOM.
pub const DEV_82599_T3_LOM: u16 = 0x151c;
/// 82599 SFP+ with FCoE.
pub const DEV_82599_SFP_FCOE: u16 = 0x1529;
/// 82599 backplane with FCoE.
pub const DEV_82599_BACKPLANE_FCOE: u16 = 0x152a;
/// 82599 SFP+ (embedded).
pub const DEV_82599_SFP_EM: u16 = 0x1507;
/// 82599 SFP+ SF2.
pub const DEV_82599_SFP_SF2: u16 = 0x154d;
/// 82599EN SFP+.
pub const DEV_82599EN_SFP: u16 = 0x1557;
/// 82599 LS.
pub const DEV_82599_LS: u16 = 0x154f;
/// 82599 SFP+ SF QP.
pub const DEV_82599_SFP_SF_QP: u16 = 0x154a;
/// 82599 QSFP+ SF QP.
pub const DEV_82599_QSFP_SF_QP: u16 = 0x1558;
/// Every 82599 device ID the driver accepts (physical functions only).
pub const DEV_IDS_82599: &[u16] = &[
    DEV_82599_SFP,
    DEV_82599_KX4,
    DEV_82599_KX4_MEZZ,
    DEV_82599_KR,
    DEV_82599_COMBO_BACKPLANE,
    DEV_82599_CX4,
    DEV_82599_XAUI_LOM,
    DEV_82599_T3_LOM,
    DEV_82599_SFP_FCOE,
    DEV_82599_BACKPLANE_FCOE,
    DEV_82599_SFP_EM,
    DEV_82599_SFP_SF2,
    DEV_82599EN_SFP,
    DEV_82599_LS,
    DEV_82599_SFP_SF_QP,
    DEV_82599_QSFP_SF_QP,
];
/// The SFP+ parts: 10 GbE serial links (SFI) without auto-negotiation.
pub const DEV_IDS_82599_SFP: &[u16] = &[
    DEV_82599_SFP,
    DEV_82599_SFP_FCOE,
    DEV_82599_SFP_EM,
    DEV_82599_SFP_SF2,
    DEV_82599EN_SFP,
    DEV_82599_LS,
    DEV_82599_SFP_SF_QP,
    DEV_82599_QSFP_SF_QP,
];

/// RX and TX queues of the 82599.
pub const QUEUES: u16 = 128;
/// Queues RSS can spread over (4-bit RETA entries).
pub const MAX_RSS_QUEUES: u16 = 16;
/// Receive address (RAL/RAH) pairs.
pub const RAR_ENTRIES: usize = 128;
/// Size of BAR0 with BARCTRL.CSR_Size = 1 (512 KiB; 128 KiB when 0). Every
/// register the driver uses lies below 0x20000.
pub const BAR0_SIZE: usize = 512 * 1024;
/// Largest data length of one TX data descriptor the driver uses (16 KiB).
pub const MAX_TX_SEGMENT: usize = 16 * 1024;
/// The 82599 takes at most 40 data descriptors per packet (82599 datasheet
/// §7.2, transmit functionality); longer chains must be refused.
pub const MAX_TX_DESC_PER_PACKET: usize = 40;
/// Largest frame (without FCS) the driver configures with HLREG0.JUMBOEN / MAXFRS.
pub const MAX_FRAME_JUMBO: usize = 9728;

// ---- General (§8.2.3.1) ----
/// Device Control.
pub const CTRL: usize = 0x00000;
/// Device Status.
pub const STATUS: usize = 0x00008;
/// Extended Device Control.
pub const CTRL_EXT: usize = 0x00018;
/// EEPROM/Flash Control.
pub const EEC: usize = 0x10010;
/// EEPROM Read.
pub const EERD: usize = 0x10014;

// ---- Interrupts (§8.2.3.5) ----
/// Extended Interrupt Cause Read.
pub const EICR: usize = 0x00800;
/// Extended Interrupt Cause Set.
pub const EICS: usize = 0x00808;
/// Extended Interrupt Auto Clear.
pub const EIAC: usize = 0x00810;
/// Extended Interrupt Mask Set/Read.
pub const EIMS: usize = 0x00880;
/// Extended Interrupt Mask Clear.
pub const EIMC: usize = 0x00888;
/// Extended Interrupt Auto Mask.
pub const EIAM: usize = 0x00890;
/// General Purpose Interrupt Enable.
pub const GPIE: usize = 0x00898;
/// EIMC value masking every cause: bits 30:0 (bit 31 is reserved and written 0).
pub const EIMC_ALL: u32 = 0x7fff_ffff;

/// Extended Interrupt Mask Clear for queue vectors, `n` = 0..1 (all 32 bits defined).
pub const fn eimc_ex(n: usize) -> usize {
    0x00ab0 + n * 4
}

// ---- Receive (§8.2.3.7, §8.2.3.8) ----
/// Receive Control (RXEN).
pub const RXCTRL: usize = 0x03000;
/// Receive DMA Control.
pub const RDRXCTL: usize = 0x02f00;
/// Receive Checksum Control.
pub const RXCSUM: usize = 0x05000;
/// Receive Filter Control (RSC, NFS...).
pub const RFCTL: usize = 0x05008;
/// Filter Control: promiscuous and broadcast accept. Change only while RXCTRL.RXEN = 0.
pub const FCTRL: usize = 0x05080;
/// VLAN Control.
pub const VLNCTRL: usize = 0x05088;
/// Multicast Control.
pub const MCSTCTRL: usize = 0x05090;
/// Multicast Table Array, 128 registers.
pub const MTA: usize = 0x05200;
/// Multiple Receive Queues Command.
pub const MRQC: usize = 0x0ec80;
/// 82598-compatible alias of MRQC.
pub const MRQC_ALIAS: usize = 0x05818;
/// MAC Core Control 0.
pub const HLREG0: usize = 0x04240;
/// Max Frame Size (MFS in bits 31:16).
pub const MAXFRS: usize = 0x04268;
/// Auto-Negotiation Control.
pub const AUTOC: usize = 0x042a0;
/// Link Status.
pub const LINKS: usize = 0x042a4;
/// Auto-Negotiation Control 2.
pub const AUTOC2: usize = 0x042a8;
/// Security RX Control.
pub const SECRXCTRL: usize = 0x08d00;
/// Security RX Status.
pub const SECRXSTAT: usize = 0x08d04;

/// Receive Address Low of entry `n` (0..127).
pub const fn ral(n: usize) -> usize {
    0x0a200 + n * 8
}
/// Receive Address High of entry `n` (AV in bit 31).
pub const fn rah(n: usize) -> usize {
    0x0a204 + n * 8
}
/// 82598-compatible alias of RAL `n` for n = 0..15.
pub const fn ral_alias(n: usize) -> usize {
    0x05400 + n * 8
}
/// RSS redirection table register `n` (0..31), four 8-bit entries each.
pub const fn reta(n: usize) -> usize {
    0x0eb00 + n * 4
}
/// 82598-compatible alias of RETA `n`.
pub const fn reta_alias(n: usize) -> usize {
    0x05c00 + n * 4
}
/// RSS random key register `n` (0..9).
pub const fn rssrk(n: usize) -> usize {
    0x0eb80 + n * 4
}
/// 82598-compatible alias of RSSRK `n`.
pub const fn rssrk_alias(n: usize) -> usize {
    0x05c80 + n * 4
}
/// Packet Split Receive Type of pool `n` (0..63).
pub const fn psrtype(n: usize) -> usize {
    0x0ea00 + n * 4
}
/// Receive Packet Buffer Size of packet buffer `n` (0..7).
pub const fn rxpbsize(n: usize) -> usize {
    0x03c00 + n * 4
}

/// The ring registers of one RX queue's 0x40-byte block, at their offsets
/// in it (§8.2.3.8). DCA_RXCTRL (0x0C) is in the block too but is no ring
/// register.
const RX_BLOCK_REGS: &[(RxReg, usize)] = &[
    (RxReg::Bal, 0x00),
    (RxReg::Bah, 0x04),
    (RxReg::Len, 0x08),
    (RxReg::Head, 0x10),
    (RxReg::Srrctl, 0x14),
    (RxReg::Tail, 0x18),
    (RxReg::Dctl, 0x28),
];
/// The ring registers of one TX queue's 0x40-byte block (§8.2.3.9).
const TX_BLOCK_REGS: &[(TxReg, usize)] = &[
    (TxReg::Bal, 0x00),
    (TxReg::Bah, 0x04),
    (TxReg::Len, 0x08),
    (TxReg::Head, 0x10),
    (TxReg::Tail, 0x18),
    (TxReg::Dctl, 0x28),
];

/// The 82598-compatible SRRCTL array of queues 0..15 (0x2100, 4 bytes
/// apart): the address the driver uses for those queues, the one in the
/// queue block being its alias.
pub const RX_SRRCTL_BLOCK: QueueBlock<RxReg> = QueueBlock {
    base: 0x02100,
    stride: 4,
    first: 0,
    count: 16,
    regs: &[(RxReg::Srrctl, 0)],
};
/// RX queues 0..63 at 0x1000, stride 0x40.
pub const RX_LOW_BLOCK: QueueBlock<RxReg> = QueueBlock {
    base: 0x01000,
    stride: 0x40,
    first: 0,
    count: 64,
    regs: RX_BLOCK_REGS,
};
/// RX queues 64..127 at 0xD000, stride 0x40.
pub const RX_HIGH_BLOCK: QueueBlock<RxReg> = QueueBlock {
    base: 0x0d000,
    stride: 0x40,
    first: 64,
    count: 64,
    regs: RX_BLOCK_REGS,
};
/// TX queues 0..127 at 0x6000, stride 0x40.
pub const TX_BLOCK: QueueBlock<TxReg> = QueueBlock {
    base: 0x06000,
    stride: 0x40,
    first: 0,
    count: QUEUES,
    regs: TX_BLOCK_REGS,
};

/// Where the per-RX-queue registers are.
pub const RX_QUEUES: QueueMap<RxReg> = QueueMap {
    blocks: &[RX_SRRCTL_BLOCK, RX_LOW_BLOCK, RX_HIGH_BLOCK],
};
/// Where the per-TX-queue registers are.
pub const TX_QUEUES: QueueMap<TxReg> = QueueMap {
    blocks: &[TX_BLOCK],
};

/// The start of queue `q`'s 0x40-byte RX block.
const fn rx_block(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Bal)
}

/// RX Descriptor Base Address Low of queue `q` (128-byte aligned).
pub const fn rdbal(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Bal)
}
/// RX Descriptor Base Address High.
pub const fn rdbah(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Bah)
}
/// RX Descriptor Length in bytes (multiple of 128).
pub const fn rdlen(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Len)
}
/// RX Descriptor Head.
pub const fn rdh(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Head)
}
/// RX Descriptor Tail.
pub const fn rdt(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Tail)
}
/// Receive Descriptor Control.
pub const fn rxdctl(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Dctl)
}
/// Split and Replication Receive Control of queue `q` (the 0x2100 array for
/// queues 0..15).
pub const fn srrctl(q: u16) -> usize {
    RX_QUEUES.addr(q, RxReg::Srrctl)
}
/// The other address of SRRCTL for queues 0..15 (inside the queue block).
pub const fn srrctl_alias(q: u16) -> usize {
    if q < RX_LOW_BLOCK.count {
        RX_LOW_BLOCK.addr(q, RxReg::Srrctl)
    } else {
        RX_HIGH_BLOCK.addr(q, RxReg::Srrctl)
    }
}
/// RX DCA Control of queue `q`.
pub const fn dca_rxctrl(q: u16) -> usize {
    if q <= 15 {
        0x02200 + q as usize * 4
    } else {
        rx_block(q) + 0x0c
    }
}
/// The other address of DCA_RXCTRL for queues 0..15 (inside the queue block).
pub const fn dca_rxctrl_alias(q: u16) -> usize {
    rx_block(q) + 0x0c
}
/// Queue Packets Received Count of statistics counter `n` (0..15), clear on read.
pub const fn qprc(n: usize) -> usize {
    0x01030 + n * 0x40
}
/// Queue Packets Received Drop Count of statistics counter `n` (0..15), clear on read.
pub const fn qprdc(n: usize) -> usize {
    0x01430 + n * 0x40
}

// ---- Transmit (§8.2.3.9) ----
/// DMA TX Control (TE: global transmit enable).
pub const DMATXCTL: usize = 0x04a80;
/// DMA TX Max Allowed Size Requests.
pub const DTXMXSZRQ: usize = 0x08100;
/// Multiple Transmit Queues Command.
pub const MTQC: usize = 0x08120;
/// DCB Transmit Descriptor Plane Control and Status.
pub const RTTDCS: usize = 0x04900;

/// Transmit Packet Buffer Size of packet buffer `n` (0..7).
pub const fn txpbsize(n: usize) -> usize {
    0x0cc00 + n * 4
}
/// Tx Packet Buffer Threshold `n` (0..7).
pub const fn txpbthresh(n: usize) -> usize {
    0x04950 + n * 4
}

/// TX Descriptor Base Address Low of queue `q` (0..127).
pub const fn tdbal(q: u16) -> usize {
    TX_QUEUES.addr(q, TxReg::Bal)
}
/// TX Descriptor Base Address High.
pub const fn tdbah(q: u16) -> usize {
    TX_QUEUES.addr(q, TxReg::Bah)
}
/// TX Descriptor Length in bytes.
pub const fn tdlen(q: u16) -> usize {
    TX_QUEUES.addr(q, TxReg::Len)
}
/// TX DCA Control.
pub const fn dca_txctrl(q: u16) -> usize {
    // In the queue's block but no ring register, so not in the map.
    TX_QUEUES.addr(q, TxReg::Bal) + 0x0c
}
/// TX Descriptor Head.
pub const fn tdh(q: u16) -> usize {
    TX_QUEUES.addr(q, TxReg::Head)
}
/// TX Descriptor Tail.
pub const fn tdt(q: u16) -> usize {
    TX_QUEUES.addr(q, TxReg::Tail)
}
/// Transmit Descriptor Control.
pub const fn txdctl(q: u16) -> usize {
    TX_QUEUES.addr(q, TxReg::Dctl)
}

// ---- Statistics (§8.2.3.23), all clear on read ----
/// CRC Error Count.
pub const CRCERRS: usize = 0x04000;
/// Illegal Byte Error Count.
pub const ILLERRC: usize = 0x04004;
/// Error Byte Count.
pub const ERRBC: usize = 0x04008;
/// Good Packets Received Count.
pub const GPRC: usize = 0x04074;
/// Broadcast Packets Received Count.
pub const BPRC: usize = 0x04078;
/// Multicast Packets Received Count.
pub const MPRC: usize = 0x0407c;
/// Good Packets Transmitted Count.
pub const GPTC: usize = 0x04080;
/// Good Octets Received Count, low 32 bits (read before GORCH).
pub const GORCL: usize = 0x04088;
/// Good Octets Received Count, high bits 35:32.
pub const GORCH: usize = 0x0408c;
/// Good Octets Transmitted Count, low 32 bits (read before GOTCH).
pub const GOTCL: usize = 0x04090;
/// Good Octets Transmitted Count, high bits 35:32.
pub const GOTCH: usize = 0x04094;
/// Total Packets Received.
pub const TPR: usize = 0x040d0;
/// Total Packets Transmitted.
pub const TPT: usize = 0x040d4;
/// Receive Oversize Count: frames longer than the configured maximum (dropped).
pub const ROC: usize = 0x040ac;

/// Receive Queue Statistic Mapping register `n` (0..31): byte `i` (bits 3:0)
/// names the statistics counter (QPRC/QPRDC index) of queue `4n + i`.
pub const fn rqsmr(n: usize) -> usize {
    0x02300 + n * 4
}
/// Queues mapped by one RQSMR register.
pub const RQSMR_QUEUES_PER_REG: usize = 4;
/// Bits of an RQSMR byte that name the counter.
pub const RQSMR_COUNTER_MASK: u8 = 0x0f;
/// Number of QPRC / QPRDC statistics counters.
pub const QUEUE_STAT_COUNTERS: usize = 16;

/// Missed Packets Count of packet buffer `n` (0..7): frames dropped because
/// the packet buffer was full.
pub const fn mpc(n: usize) -> usize {
    0x03fa0 + n * 4
}
/// Receive No Buffers Count of packet buffer `n` (0..7): frames that found
/// no free RX descriptor (counted even when DROP_EN dropped them).
pub const fn rnbc(n: usize) -> usize {
    0x03fc0 + n * 4
}
/// Number of MPC / RNBC registers (one per packet buffer).
pub const PACKET_BUFFERS: usize = 8;

// ---- Names, for decoders ----

/// The single registers above with their datasheet names (an
/// 82598-compatible alias is named as the register).
const REGISTERS: &[(usize, &str)] = &[
    (CTRL, "CTRL"),
    (STATUS, "STATUS"),
    (CTRL_EXT, "CTRL_EXT"),
    (EEC, "EEC"),
    (EERD, "EERD"),
    (EICR, "EICR"),
    (EICS, "EICS"),
    (EIAC, "EIAC"),
    (EIMS, "EIMS"),
    (EIMC, "EIMC"),
    (EIAM, "EIAM"),
    (GPIE, "GPIE"),
    (RXCTRL, "RXCTRL"),
    (RDRXCTL, "RDRXCTL"),
    (RXCSUM, "RXCSUM"),
    (RFCTL, "RFCTL"),
    (FCTRL, "FCTRL"),
    (VLNCTRL, "VLNCTRL"),
    (MCSTCTRL, "MCSTCTRL"),
    (MTA, "MTA"),
    (MRQC, "MRQC"),
    (MRQC_ALIAS, "MRQC"),
    (HLREG0, "HLREG0"),
    (MAXFRS, "MAXFRS"),
    (AUTOC, "AUTOC"),
    (LINKS, "LINKS"),
    (AUTOC2, "AUTOC2"),
    (SECRXCTRL, "SECRXCTRL"),
    (SECRXSTAT, "SECRXSTAT"),
    (DMATXCTL, "DMATXCTL"),
    (DTXMXSZRQ, "DTXMXSZRQ"),
    (MTQC, "MTQC"),
    (RTTDCS, "RTTDCS"),
    (CRCERRS, "CRCERRS"),
    (ILLERRC, "ILLERRC"),
    (ERRBC, "ERRBC"),
    (GPRC, "GPRC"),
    (BPRC, "BPRC"),
    (MPRC, "MPRC"),
    (GPTC, "GPTC"),
    (GORCL, "GORCL"),
    (GORCH, "GORCH"),
    (GOTCL, "GOTCL"),
    (GOTCH, "GOTCH"),
    (TPR, "TPR"),
    (TPT, "TPT"),
    (ROC, "ROC"),
];

/// The register arrays above, 82598-compatible aliases included.
const ARRAYS: &[RegArray] = &[
    RegArray {
        name: "RAL",
        base: ral(0),
        stride: ral(1) - ral(0),
        first: 0,
        count: RAR_ENTRIES,
    },
    RegArray {
        name: "RAH",
        base: rah(0),
        stride: rah(1) - rah(0),
        first: 0,
        count: RAR_ENTRIES,
    },
    RegArray {
        name: "RAL",
        base: ral_alias(0),
        stride: ral_alias(1) - ral_alias(0),
        first: 0,
        count: 16,
    },
    RegArray {
        name: "RETA",
        base: reta(0),
        stride: reta(1) - reta(0),
        first: 0,
        count: RETA_REGS,
    },
    RegArray {
        name: "RETA",
        base: reta_alias(0),
        stride: reta_alias(1) - reta_alias(0),
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
        name: "RSSRK",
        base: rssrk_alias(0),
        stride: rssrk_alias(1) - rssrk_alias(0),
        first: 0,
        count: RSSRK_REGS,
    },
    RegArray {
        name: "PSRTYPE",
        base: psrtype(0),
        stride: psrtype(1) - psrtype(0),
        first: 0,
        count: 64,
    },
    RegArray {
        name: "RXPBSIZE",
        base: rxpbsize(0),
        stride: rxpbsize(1) - rxpbsize(0),
        first: 0,
        count: PACKET_BUFFERS,
    },
    RegArray {
        name: "TXPBSIZE",
        base: txpbsize(0),
        stride: txpbsize(1) - txpbsize(0),
        first: 0,
        count: PACKET_BUFFERS,
    },
    RegArray {
        name: "TXPBTHRESH",
        base: txpbthresh(0),
        stride: txpbthresh(1) - txpbthresh(0),
        first: 0,
        count: PACKET_BUFFERS,
    },
    RegArray {
        name: "QPRC",
        base: qprc(0),
        stride: qprc(1) - qprc(0),
        first: 0,
        count: QUEUE_STAT_COUNTERS,
    },
    RegArray {
        name: "QPRDC",
        base: qprdc(0),
        stride: qprdc(1) - qprdc(0),
        first: 0,
        count: QUEUE_STAT_COUNTERS,
    },
    RegArray {
        name: "RQSMR",
        base: rqsmr(0),
        stride: rqsmr(1) - rqsmr(0),
        first: 0,
        count: 32,
    },
    RegArray {
        name: "MPC",
        base: mpc(0),
        stride: mpc(1) - mpc(0),
        first: 0,
        count: PACKET_BUFFERS,
    },
    RegArray {
        name: "RNBC",
        base: rnbc(0),
        stride: rnbc(1) - rnbc(0),
        first: 0,
        count: PACKET_BUFFERS,
    },
    RegArray {
        name: "EIMC_EX",
        base: eimc_ex(0),
        stride: eimc_ex(1) - eimc_ex(0),
        first: 0,
        count: 2,
    },
    RegArray {
        name: "MTA",
        base: MTA,
        stride: 4,
        first: 0,
        count: 128,
    },
];

/// The name of the register at `offset` (`"CTRL"`, `"RDT[0]"`,
/// `"RXDCTL[64]"`), `None` for an offset this map does not name.
pub fn name(offset: usize) -> Option<RegName> {
    regname::lookup(offset, &RX_QUEUES, &TX_QUEUES, REGISTERS, ARRAYS)
}

/// CTRL fields (§8.2.3.1.1).
pub mod ctrl {
    use super::Field;
    /// PCIe master disable.
    pub const GIO_DIS: Field<u32> = Field::new("GIO_DIS", 2, 1);
    /// Link reset (self-clearing).
    pub const LRST: Field<u32> = Field::new("LRST", 3, 1);
    /// Device reset (self-clearing).
    pub const RST: Field<u32> = Field::new("RST", 26, 1);
    /// What the init sequence writes for a global reset: device and link reset (§4.6.3.2).
    pub const RST_MASK: u32 = LRST.bit() | RST.bit();
}

/// STATUS fields (§8.2.3.1.2).
pub mod status {
    use super::Field;
    /// LAN ID (PCI function).
    pub const LAN_ID: Field<u32> = Field::new("LAN_ID", 2, 2);
    /// Link up (use LINKS for speed).
    pub const LINK_UP: Field<u32> = Field::new("LINK_UP", 7, 1);
    /// PCIe master enable status.
    pub const GIO_MASTER_ENABLE: Field<u32> = Field::new("GIO_MASTER_ENABLE", 19, 1);
}

/// CTRL_EXT fields (§8.2.3.1.3).
pub mod ctrl_ext {
    use super::Field;
    /// No-snoop disable: §4.6.7 sets it at the end of receive initialization.
    pub const NS_DIS: Field<u32> = Field::new("NS_DIS", 16, 1);
    /// Driver loaded.
    pub const DRV_LOAD: Field<u32> = Field::new("DRV_LOAD", 28, 1);
}

/// EEC fields (§8.2.3.2.1).
pub mod eec {
    use super::Field;
    /// EEPROM present.
    pub const PRES: Field<u32> = Field::new("PRES", 8, 1);
    /// EEPROM auto-read done.
    pub const ARD: Field<u32> = Field::new("ARD", 9, 1);
}

/// GORCH / GOTCH fields (§8.2.3.23): the octet counters are 36 bits wide.
pub mod gorch {
    use super::Field;
    /// Bits 35:32 of the count; bits 31:4 are reserved.
    pub const CNT_H: Field<u32> = Field::new("CNT_H", 0, 4);
}

/// RXCTRL fields.
pub mod rxctrl {
    use super::Field;
    /// Receive enable.
    pub const RXEN: Field<u32> = Field::new("RXEN", 0, 1);
}

/// RDRXCTL fields (§8.2.3.8.8).
pub mod rdrxctl {
    use super::Field;
    /// Strip the Ethernet CRC (must match HLREG0.RXCRCSTRP).
    pub const CRCSTRIP: Field<u32> = Field::new("CRCSTRIP", 1, 1);
    /// DMA initialization done (read only): wait for it after reset (§4.6.3).
    pub const DMAIDONE: Field<u32> = Field::new("DMAIDONE", 3, 1);
    /// RSC first packet size: default 0x8, software sets 0 (§4.6.7).
    pub const RSCFRSTSIZE: Field<u32> = Field::new("RSCFRSTSIZE", 17, 5);
    /// RSC ACK coalescing: default 0, software sets 1 (§4.6.7).
    pub const RSCACKC: Field<u32> = Field::new("RSCACKC", 25, 1);
    /// FCoE write fix: default 0, software sets 1 (§4.6.7).
    pub const FCOE_WRFIX: Field<u32> = Field::new("FCOE_WRFIX", 26, 1);
}

/// FCTRL fields (§8.2.3.7.1).
pub mod fctrl {
    use super::Field;
    /// Store bad packets.
    pub const SBP: Field<u32> = Field::new("SBP", 1, 1);
    /// Multicast promiscuous.
    pub const MPE: Field<u32> = Field::new("MPE", 8, 1);
    /// Unicast promiscuous.
    pub const UPE: Field<u32> = Field::new("UPE", 9, 1);
    /// Broadcast accept.
    pub const BAM: Field<u32> = Field::new("BAM", 10, 1);
    /// Pass MAC control frames.
    pub const PMCF: Field<u32> = Field::new("PMCF", 12, 1);
    /// Discard pause frames.
    pub const DPF: Field<u32> = Field::new("DPF", 13, 1);
}

/// HLREG0 fields (§8.2.3.22.8).
pub mod hlreg0 {
    use super::Field;
    /// Insert CRC on transmit.
    pub const TXCRCEN: Field<u32> = Field::new("TXCRCEN", 0, 1);
    /// Strip CRC on receive.
    pub const RXCRCSTRP: Field<u32> = Field::new("RXCRCSTRP", 1, 1);
    /// Accept jumbo frames up to MAXFRS.MFS.
    pub const JUMBOEN: Field<u32> = Field::new("JUMBOEN", 2, 1);
    /// Pad short transmit frames.
    pub const TXPADEN: Field<u32> = Field::new("TXPADEN", 10, 1);
    /// MAC loopback.
    pub const LPBK: Field<u32> = Field::new("LPBK", 15, 1);
    /// Receive length error reporting.
    pub const RXLNGTHERREN: Field<u32> = Field::new("RXLNGTHERREN", 27, 1);
}

/// MCSTCTRL fields (§8.2.3.7.4).
pub mod mcstctrl {
    use super::Field;
    /// Multicast offset: which 12 destination address bits index the MTA.
    pub const MO: Field<u32> = Field::new("MO", 0, 2);
    /// Multicast filter enable.
    pub const MFE: Field<u32> = Field::new("MFE", 2, 1);
}

/// MAXFRS fields.
pub mod maxfrs {
    use super::Field;
    /// Max frame size in bytes, including FCS (used when HLREG0.JUMBOEN = 1).
    pub const MFS: Field<u32> = Field::new("MFS", 16, 16);
}

/// AUTOC fields (§8.2.3.22.19).
pub mod autoc {
    use super::Field;
    /// Force link up.
    pub const FLU: Field<u32> = Field::new("FLU", 0, 1);
    /// 10 GbE parallel PMA/PMD: 00 XAUI, 01 KX4, 10 CX4.
    pub const PMA_PMD_10G_PARALLEL: Field<u32> = Field::new("PMA_PMD_10G_PARALLEL", 7, 2);
    /// 1 GbE PMA/PMD: 0 SFI/BX, 1 KX.
    pub const PMA_PMD_1G: Field<u32> = Field::new("PMA_PMD_1G", 9, 1);
    /// Restart auto-negotiation (self-clearing).
    pub const RESTART_AN: Field<u32> = Field::new("RESTART_AN", 12, 1);
    /// Link mode select.
    pub const LMS: Field<u32> = Field::new("LMS", 13, 3);
    /// LMS value: 1 GbE link, no auto-negotiation.
    pub const LMS_1G_NO_AN: u32 = 0b000;
    /// LMS value: 10 GbE parallel link (KX4/XAUI), no auto-negotiation.
    pub const LMS_10G_PARALLEL_NO_AN: u32 = 0b001;
    /// LMS value: 1 GbE with clause 37 auto-negotiation.
    pub const LMS_1G_AN: u32 = 0b010;
    /// LMS value: 10 GbE serial link (SFI/KR without AN).
    pub const LMS_10G_SERIAL: u32 = 0b011;
    /// LMS value: KX4/KX/KR backplane auto-negotiation.
    pub const LMS_KX4_KX_KR: u32 = 0b100;
    /// LMS value: SGMII 1G/100M.
    pub const LMS_SGMII: u32 = 0b101;
    /// LMS value: KX4/KX/KR with 1 GbE AN.
    pub const LMS_KX4_KX_KR_1G_AN: u32 = 0b110;
    /// LMS value: KX4/KX/KR with SGMII.
    pub const LMS_KX4_KX_KR_SGMII: u32 = 0b111;
    /// KR supported.
    pub const KR_SUPP: Field<u32> = Field::new("KR_SUPP", 16, 1);
}

/// AUTOC2 fields.
pub mod autoc2 {
    use super::Field;
    /// 10 GbE serial PMA/PMD: 00 KR, 10 SFI.
    pub const PMA_PMD_10G_SERIAL: Field<u32> = Field::new("PMA_PMD_10G_SERIAL", 16, 2);
    /// PMA_PMD_10G_SERIAL value: KR.
    pub const PMA_PMD_10G_SERIAL_KR: u32 = 0b00;
    /// PMA_PMD_10G_SERIAL value: SFI.
    pub const PMA_PMD_10G_SERIAL_SFI: u32 = 0b10;
}

/// LINKS fields (§8.2.3.22.20).
pub mod links {
    use super::Field;
    /// Link speed: 01 100 Mb/s, 10 1 Gb/s, 11 10 Gb/s.
    pub const SPEED: Field<u32> = Field::new("SPEED", 28, 2);
    /// SPEED value: 100 Mb/s.
    pub const SPEED_100M: u32 = 0b01;
    /// SPEED value: 1 Gb/s.
    pub const SPEED_1G: u32 = 0b10;
    /// SPEED value: 10 Gb/s.
    pub const SPEED_10G: u32 = 0b11;
    /// Link up.
    pub const LINK_UP: Field<u32> = Field::new("LINK_UP", 30, 1);
}

/// SRRCTL fields (§8.2.3.8.7).
pub mod srrctl {
    use super::Field;
    /// Packet buffer size in 1 KiB units (1..16).
    pub const BSIZEPACKET: Field<u32> = Field::new("BSIZEPACKET", 0, 5);
    /// Unit of BSIZEPACKET in bytes.
    pub const BSIZEPACKET_UNIT: usize = 1024;
    /// Header buffer size in 64-byte units.
    pub const BSIZEHEADER: Field<u32> = Field::new("BSIZEHEADER", 8, 6);
    /// Descriptor minimum threshold.
    pub const RDMTS: Field<u32> = Field::new("RDMTS", 22, 3);
    /// Descriptor type.
    pub const DESCTYPE: Field<u32> = Field::new("DESCTYPE", 25, 3);
    /// DESCTYPE value: legacy.
    pub const DESCTYPE_LEGACY: u32 = 0b000;
    /// DESCTYPE value: advanced descriptor, one buffer.
    pub const DESCTYPE_ADV_ONE_BUFFER: u32 = 0b001;
    /// Drop enable: drop frames that find no descriptor (bit 28 here, bit 31 on the 82576).
    pub const DROP_EN: Field<u32> = Field::new("DROP_EN", 28, 1);
}

/// DCA_RXCTRL fields (§8.2.3.11.1).
pub mod dca_rxctrl {
    use super::Field;
    /// Bit 12 is reserved with a reset value of 1 and must be cleared by
    /// software (last step of §4.6.7).
    pub const RESERVED_CLEAR: Field<u32> = Field::new("RESERVED_CLEAR", 12, 1);
}

/// RXDCTL fields (§8.2.3.8.6).
pub mod rxdctl {
    use super::Field;
    /// Queue enable; reads back 1 once the queue is running.
    pub const ENABLE: Field<u32> = Field::new("ENABLE", 25, 1);
    /// VLAN tag strip.
    pub const VME: Field<u32> = Field::new("VME", 30, 1);
}

/// TXDCTL fields (§8.2.3.9.10).
pub mod txdctl {
    use super::Field;
    /// Prefetch threshold.
    pub const PTHRESH: Field<u32> = Field::new("PTHRESH", 0, 7);
    /// Host threshold.
    pub const HTHRESH: Field<u32> = Field::new("HTHRESH", 8, 7);
    /// Write-back threshold (0: write back each RS descriptor at once).
    pub const WTHRESH: Field<u32> = Field::new("WTHRESH", 16, 7);
    /// Queue enable; reads back 1 once the queue is running.
    pub const ENABLE: Field<u32> = Field::new("ENABLE", 25, 1);
    /// Software flush.
    pub const SWFLSH: Field<u32> = Field::new("SWFLSH", 26, 1);
}

/// DMATXCTL fields.
pub mod dmatxctl {
    use super::Field;
    /// Transmit enable (global).
    pub const TE: Field<u32> = Field::new("TE", 0, 1);
}

/// DTXMXSZRQ fields.
pub mod dtxmxszrq {
    use super::Field;
    /// Max bytes of outstanding TX DMA requests; bits 31:12 are reserved.
    pub const MAX_BYTES_NUM_REQ: Field<u32> = Field::new("MAX_BYTES_NUM_REQ", 0, 12);
}

/// RTTDCS fields.
pub mod rttdcs {
    use super::Field;
    /// Arbiter disable: set while configuring TX queues (§4.6.8).
    pub const ARBDIS: Field<u32> = Field::new("ARBDIS", 6, 1);
}

/// SECRXCTRL / SECRXSTAT fields.
pub mod secrx {
    use super::Field;
    /// SECRXCTRL: disable the RX security block (drain it before RX changes).
    pub const RX_DIS: Field<u32> = Field::new("RX_DIS", 1, 1);
    /// SECRXSTAT: security RX path is empty.
    pub const SECRX_RDY: Field<u32> = Field::new("SECRX_RDY", 0, 1);
}

/// RXCSUM fields.
pub mod rxcsum {
    use super::Field;
    /// IP payload checksum enable.
    pub const IPPCSE: Field<u32> = Field::new("IPPCSE", 12, 1);
    /// Packet checksum disable: the write-back carries the RSS hash. Must be 1 for RSS.
    pub const PCSD: Field<u32> = Field::new("PCSD", 13, 1);
}

/// MRQC fields (§8.2.3.7.12).
pub mod mrqc {
    use super::Field;
    /// Multiple Receive Queues Enable.
    pub const MRQE: Field<u32> = Field::new("MRQE", 0, 4);
    /// MRQE value: no RSS, no DCB, no virtualization.
    pub const MRQE_NONE: u32 = 0b0000;
    /// MRQE value: RSS only.
    pub const MRQE_RSS: u32 = 0b0001;
    /// Hash TCP over IPv4.
    pub const RSS_FIELD_IPV4_TCP: Field<u32> = Field::new("RSS_FIELD_IPV4_TCP", 16, 1);
    /// Hash IPv4 addresses.
    pub const RSS_FIELD_IPV4: Field<u32> = Field::new("RSS_FIELD_IPV4", 17, 1);
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
        assert_eq!(named(MRQC_ALIAS).as_deref(), Some("MRQC"));
        assert_eq!(named(0x1018).as_deref(), Some("RDT[0]"));
        assert_eq!(named(0x1068).as_deref(), Some("RXDCTL[1]"));
        assert_eq!(named(0xd028).as_deref(), Some("RXDCTL[64]"));
        assert_eq!(named(0x60d0).as_deref(), Some("TDH[3]"));
        assert_eq!(named(0x2104).as_deref(), Some("SRRCTL[1]"));
        assert_eq!(
            named(0x1054).as_deref(),
            Some("SRRCTL[1]"),
            "in-block alias"
        );
        assert_eq!(named(0x1454).as_deref(), Some("SRRCTL[17]"));
        assert_eq!(named(0xa20c).as_deref(), Some("RAH[1]"));
        assert_eq!(named(0x5c04).as_deref(), Some("RETA[1]"));
        assert_eq!(named(0x3fc4).as_deref(), Some("RNBC[1]"));
        assert_eq!(named(0x1030).as_deref(), Some("QPRC[0]"));
        assert_eq!(named(0x1020), None, "reserved offset in a queue block");
    }

    #[test]
    fn every_queue_register_decodes_back_to_its_queue() {
        for q in 0..QUEUES {
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
            let n = if q < 16 { 2 } else { 1 };
            assert_eq!(RX_QUEUES.addresses(q, RxReg::Srrctl).count(), n);
        }
    }

    #[test]
    fn per_queue_formulas_match_the_datasheet_blocks() {
        assert_eq!(rdbal(0), 0x1000);
        assert_eq!(rdt(1), 0x1058);
        assert_eq!(rxdctl(63), 0x1fe8);
        assert_eq!(rdbal(64), 0xd000);
        assert_eq!(srrctl(0), 0x2100);
        assert_eq!(srrctl(15), 0x213c);
        assert_eq!(srrctl(16), 0x1414);
        assert_eq!(srrctl_alias(0), 0x1014);
        assert_eq!(dca_rxctrl(2), 0x2208);
        assert_eq!(dca_rxctrl(16), 0x140c);
        assert_eq!(tdbal(0), 0x6000);
        assert_eq!(tdt(3), 0x60d8);
        assert_eq!(txdctl(127), 0x7fe8);
        assert_eq!(ral(0), 0xa200);
        assert_eq!(rah(1), 0xa20c);
        assert_eq!(mpc(7), 0x3fbc);
        assert_eq!(rnbc(0), 0x3fc0);
        assert_eq!(reta(0), 0xeb00);
        assert_eq!(rssrk(0), 0xeb80);
        assert_eq!(ctrl::RST_MASK, 0x0400_0008);
    }
}
