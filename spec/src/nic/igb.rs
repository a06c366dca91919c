//! The 82576 and I350 register map (82576 datasheet §8, I350 datasheet §8):
//! offsets, per-queue register formulas and fields that the igb driver and
//! the igb device model use. Names follow the datasheet.
//!
//! Per-queue registers of queues 0..3 sit in the legacy block (0x2800 RX,
//! 0x3800 TX, stride 0x100); every queue is also reachable in the 0xC000 RX /
//! 0xE000 TX block (stride 0x40), which is the only place for queues 4 and up.

use super::RawField;

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

/// Per-RX-queue register at offset `off` inside the queue's register block.
const fn rxq(q: u16, off: usize) -> usize {
    let q = q as usize;
    if q < 4 {
        0x2800 + q * 0x100 + off
    } else {
        0xc000 + q * 0x40 + off
    }
}

/// Per-TX-queue register at offset `off` inside the queue's register block.
const fn txq(q: u16, off: usize) -> usize {
    let q = q as usize;
    if q < 4 {
        0x3800 + q * 0x100 + off
    } else {
        0xe000 + q * 0x40 + off
    }
}

/// RX Descriptor Base Address Low of queue `q` (128-byte aligned).
pub const fn rdbal(q: u16) -> usize {
    rxq(q, 0x00)
}
/// RX Descriptor Base Address High.
pub const fn rdbah(q: u16) -> usize {
    rxq(q, 0x04)
}
/// RX Descriptor Length in bytes (multiple of 128).
pub const fn rdlen(q: u16) -> usize {
    rxq(q, 0x08)
}
/// Split and Replication Receive Control.
pub const fn srrctl(q: u16) -> usize {
    rxq(q, 0x0c)
}
/// RX Descriptor Head (written by the device).
pub const fn rdh(q: u16) -> usize {
    rxq(q, 0x10)
}
/// RX DCA Control.
pub const fn dca_rxctrl(q: u16) -> usize {
    rxq(q, 0x14)
}
/// RX Descriptor Tail (written by the driver: the last descriptor it owns + 1).
pub const fn rdt(q: u16) -> usize {
    rxq(q, 0x18)
}
/// Receive Descriptor Control.
pub const fn rxdctl(q: u16) -> usize {
    rxq(q, 0x28)
}
/// Receive Queue Drop Packet Count (clear on read): frames dropped because
/// the queue had no descriptor while SRRCTL.DROP_EN was set.
pub const fn rqdpc(q: u16) -> usize {
    0xc030 + q as usize * 0x40
}

/// TX Descriptor Base Address Low of queue `q`.
pub const fn tdbal(q: u16) -> usize {
    txq(q, 0x00)
}
/// TX Descriptor Base Address High.
pub const fn tdbah(q: u16) -> usize {
    txq(q, 0x04)
}
/// TX Descriptor Length in bytes.
pub const fn tdlen(q: u16) -> usize {
    txq(q, 0x08)
}
/// TX Descriptor Head (written by the device).
pub const fn tdh(q: u16) -> usize {
    txq(q, 0x10)
}
/// TX DCA Control.
pub const fn dca_txctrl(q: u16) -> usize {
    txq(q, 0x14)
}
/// TX Descriptor Tail.
pub const fn tdt(q: u16) -> usize {
    txq(q, 0x18)
}
/// Transmit Descriptor Control.
pub const fn txdctl(q: u16) -> usize {
    txq(q, 0x28)
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

/// The 0xC000-block address of the per-RX-queue register that `reg(q)`
/// names (e.g. `rxq_block(q, rdt)`): queues 0..3 answer at both their
/// legacy address and this one; for queues 4 and up the two are the same.
pub fn rxq_block(q: u16, reg: fn(u16) -> usize) -> usize {
    0xc000 + q as usize * 0x40 + (reg(0) - rdbal(0))
}

/// The 0xE000-block address of the per-TX-queue register that `reg(q)` names.
pub fn txq_block(q: u16, reg: fn(u16) -> usize) -> usize {
    0xe000 + q as usize * 0x40 + (reg(0) - tdbal(0))
}

/// CTRL fields.
pub mod ctrl {
    use super::RawField;
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// GIO Master Disable: stop issuing new PCIe master requests.
    pub const GIO_MASTER_DISABLE: u32 = 1 << 2;
    /// Link reset.
    pub const LRST: u32 = 1 << 3;
    /// Auto-speed detection enable.
    pub const ASDE: u32 = 1 << 5;
    /// Set Link Up: must be 1 for the MAC to use the link.
    pub const SLU: u32 = 1 << 6;
    /// Invert loss of signal.
    pub const ILOS: u32 = 1 << 7;
    /// Speed selection (when forced).
    pub const SPEED: RawField = RawField::new(8, 2);
    /// Force speed.
    pub const FRCSPD: u32 = 1 << 11;
    /// Force duplex.
    pub const FRCDPX: u32 = 1 << 12;
    /// Device reset: self-clearing; resets everything but PCI config space.
    pub const RST: u32 = 1 << 26;
    /// Receive flow control enable.
    pub const RFCE: u32 = 1 << 27;
    /// Transmit flow control enable.
    pub const TFCE: u32 = 1 << 28;
    /// VLAN mode enable.
    pub const VME: u32 = 1 << 30;
    /// PHY reset.
    pub const PHY_RST: u32 = 1 << 31;
}

/// STATUS fields.
pub mod status {
    use super::RawField;
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link up.
    pub const LU: u32 = 1 << 1;
    /// PCI function number (LAN port).
    pub const FUNC_ID: RawField = RawField::new(2, 2);
    /// Transmission paused.
    pub const TXOFF: u32 = 1 << 4;
    /// Link speed: 00 10 Mb/s, 01 100 Mb/s, 10 / 11 1000 Mb/s.
    pub const SPEED: RawField = RawField::new(6, 2);
    /// SPEED value: 10 Mb/s.
    pub const SPEED_10: u64 = 0b00;
    /// SPEED value: 100 Mb/s.
    pub const SPEED_100: u64 = 0b01;
    /// SPEED value: 1000 Mb/s (11b also means 1000 Mb/s).
    pub const SPEED_1000: u64 = 0b10;
    /// PCIe master requests are enabled (clears after CTRL.GIO_MASTER_DISABLE once idle).
    pub const GIO_MASTER_ENABLE: u32 = 1 << 19;
}

/// EECD fields.
pub mod eecd {
    /// EEPROM present.
    pub const PRES: u32 = 1 << 8;
    /// EEPROM auto read done: set by hardware once the post-reset EEPROM load finished.
    pub const AUTO_RD: u32 = 1 << 9;
}

/// CTRL_EXT fields.
pub mod ctrl_ext {
    use super::RawField;
    /// Link mode: 00 internal copper PHY, 01 1000BASE-KX, 10 SGMII, 11 SerDes.
    pub const LINK_MODE: RawField = RawField::new(22, 2);
    /// Driver loaded: tells the manageability firmware a driver owns the port.
    pub const DRV_LOAD: u32 = 1 << 28;
}

/// MDIC fields: one PHY register access at a time.
pub mod mdic {
    use super::RawField;
    /// Data read or to write.
    pub const DATA: RawField = RawField::new(0, 16);
    /// PHY register address.
    pub const REGADD: RawField = RawField::new(16, 5);
    /// PHY address (the internal PHY is at 1).
    pub const PHYADD: RawField = RawField::new(21, 5);
    /// Opcode: 01 write, 10 read.
    pub const OP: RawField = RawField::new(26, 2);
    /// OP value: write.
    pub const OP_WRITE: u64 = 0b01;
    /// OP value: read.
    pub const OP_READ: u64 = 0b10;
    /// Ready: the access completed.
    pub const READY: u32 = 1 << 28;
    /// Interrupt on completion.
    pub const INT: u32 = 1 << 29;
    /// Error: the PHY did not answer (e.g. wrong PHY address).
    pub const ERROR: u32 = 1 << 30;
    /// Address of the internal copper PHY.
    pub const INTERNAL_PHY: u64 = 1;
}

/// Registers of the internal PHY reached through MDIC (IEEE 802.3 clause 22).
pub mod phy {
    /// PHY Control register.
    pub const CONTROL: u32 = 0;
    /// PHY Status register.
    pub const STATUS: u32 = 1;
    /// CONTROL: restart auto-negotiation (self-clearing).
    pub const CONTROL_RESTART_AN: u16 = 1 << 9;
    /// CONTROL: auto-negotiation enable.
    pub const CONTROL_AN_ENABLE: u16 = 1 << 12;
    /// CONTROL: reset (self-clearing).
    pub const CONTROL_RESET: u16 = 1 << 15;
    /// STATUS: link status.
    pub const STATUS_LINK: u16 = 1 << 2;
    /// STATUS: auto-negotiation complete.
    pub const STATUS_AN_COMPLETE: u16 = 1 << 5;
}

/// RCTL fields. Change them only while RCTL.EN = 0.
pub mod rctl {
    use super::RawField;
    /// Receiver enable.
    pub const EN: u32 = 1 << 1;
    /// Store bad packets.
    pub const SBP: u32 = 1 << 2;
    /// Unicast promiscuous.
    pub const UPE: u32 = 1 << 3;
    /// Multicast promiscuous.
    pub const MPE: u32 = 1 << 4;
    /// Long packet enable (frames up to RLPML).
    pub const LPE: u32 = 1 << 5;
    /// Loopback mode.
    pub const LBM: RawField = RawField::new(6, 2);
    /// Descriptor minimum threshold size.
    pub const RDMTS: RawField = RawField::new(8, 2);
    /// Multicast offset.
    pub const MO: RawField = RawField::new(12, 2);
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 15;
    /// Legacy buffer size (SRRCTL.BSIZEPACKET overrides it when non-zero).
    pub const BSIZE: RawField = RawField::new(16, 2);
    /// VLAN filter enable.
    pub const VFE: u32 = 1 << 18;
    /// Discard pause frames.
    pub const DPF: u32 = 1 << 22;
    /// Pass MAC control frames.
    pub const PMCF: u32 = 1 << 23;
    /// Strip Ethernet CRC from received frames.
    pub const SECRC: u32 = 1 << 26;
}

/// SRRCTL fields.
pub mod srrctl {
    use super::RawField;
    /// Packet buffer size in 1 KiB units (0: use RCTL.BSIZE).
    pub const BSIZEPACKET: RawField = RawField::new(0, 7);
    /// Unit of BSIZEPACKET in bytes.
    pub const BSIZEPACKET_UNIT: usize = 1024;
    /// Header buffer size in 64-byte units (header split only).
    pub const BSIZEHEADER: RawField = RawField::new(8, 4);
    /// Descriptor minimum threshold.
    pub const RDMTS: RawField = RawField::new(20, 5);
    /// Descriptor type.
    pub const DESCTYPE: RawField = RawField::new(25, 3);
    /// DESCTYPE value: legacy.
    pub const DESCTYPE_LEGACY: u64 = 0b000;
    /// DESCTYPE value: advanced descriptor, one buffer.
    pub const DESCTYPE_ADV_ONE_BUFFER: u64 = 0b001;
    /// Time stamp received packets.
    pub const TIMESTAMP: u32 = 1 << 30;
    /// Drop enable: drop (and count in RQDPC) frames that find no descriptor
    /// instead of holding them in the packet buffer. Note: bit 31 here, bit 28
    /// on the 82599.
    pub const DROP_EN: u32 = 1 << 31;
}

/// RXDCTL fields.
pub mod rxdctl {
    use super::RawField;
    /// Prefetch threshold.
    pub const PTHRESH: RawField = RawField::new(0, 5);
    /// Host threshold.
    pub const HTHRESH: RawField = RawField::new(8, 5);
    /// Write-back threshold.
    pub const WTHRESH: RawField = RawField::new(16, 5);
    /// Queue enable; reads back 1 once the queue is running.
    pub const ENABLE: u32 = 1 << 25;
    /// Software flush of pending write-backs.
    pub const SWFLSH: u32 = 1 << 26;
}

/// TXDCTL fields.
pub mod txdctl {
    use super::RawField;
    /// Prefetch threshold.
    pub const PTHRESH: RawField = RawField::new(0, 5);
    /// Host threshold.
    pub const HTHRESH: RawField = RawField::new(8, 5);
    /// Write-back threshold (0: write back every RS descriptor at once).
    pub const WTHRESH: RawField = RawField::new(16, 5);
    /// Queue enable; reads back 1 once the queue is running.
    pub const ENABLE: u32 = 1 << 25;
    /// Software flush.
    pub const SWFLSH: u32 = 1 << 26;
}

/// TCTL fields.
pub mod tctl {
    use super::RawField;
    /// Transmit enable.
    pub const EN: u32 = 1 << 1;
    /// Pad short packets (to 64 bytes with FCS).
    pub const PSP: u32 = 1 << 3;
    /// Collision threshold.
    pub const CT: RawField = RawField::new(4, 8);
    /// Collision distance.
    pub const COLD: RawField = RawField::new(12, 10);
    /// Re-transmit on late collision.
    pub const RTLC: u32 = 1 << 24;
    /// CT value recommended by the datasheet.
    pub const CT_DEFAULT: u64 = 0x0f;
    /// COLD value for full duplex.
    pub const COLD_FULL_DUPLEX: u64 = 0x3f;
}

/// RXCSUM fields.
pub mod rxcsum {
    /// IPv4 checksum offload.
    pub const IPOFL: u32 = 1 << 8;
    /// TCP/UDP checksum offload.
    pub const TUOFL: u32 = 1 << 9;
    /// CRC32 (SCTP) offload.
    pub const CRCOFL: u32 = 1 << 11;
    /// Packet checksum disable: the write-back carries the RSS hash instead
    /// of the fragment checksum. Must be 1 for RSS hashes.
    pub const PCSD: u32 = 1 << 13;
}

/// MRQC fields.
pub mod mrqc {
    use super::RawField;
    /// Multiple Receive Queues Enable.
    pub const MRQE: RawField = RawField::new(0, 3);
    /// MRQE value: one queue (no RSS, no VMDq).
    pub const MRQE_NONE: u64 = 0b000;
    /// MRQE value: RSS.
    pub const MRQE_RSS: u64 = 0b010;
    /// Hash TCP over IPv4.
    pub const RSS_FIELD_IPV4_TCP: u32 = 1 << 16;
    /// Hash IPv4 addresses.
    pub const RSS_FIELD_IPV4: u32 = 1 << 17;
    /// Hash TCP over IPv6 with extension headers.
    pub const RSS_FIELD_IPV6_TCP_EX: u32 = 1 << 18;
    /// Hash IPv6 with extension headers.
    pub const RSS_FIELD_IPV6_EX: u32 = 1 << 19;
    /// Hash IPv6 addresses.
    pub const RSS_FIELD_IPV6: u32 = 1 << 20;
    /// Hash TCP over IPv6.
    pub const RSS_FIELD_IPV6_TCP: u32 = 1 << 21;
    /// Hash UDP over IPv4.
    pub const RSS_FIELD_IPV4_UDP: u32 = 1 << 22;
    /// Hash UDP over IPv6.
    pub const RSS_FIELD_IPV6_UDP: u32 = 1 << 23;
}

/// RAH fields.
pub mod rah {
    use super::RawField;
    /// MAC bytes 4 and 5.
    pub const RAH: RawField = RawField::new(0, 16);
    /// Address valid.
    pub const AV: u32 = 1 << 31;
}

/// RLPML field.
pub mod rlpml {
    use super::RawField;
    /// Maximum long packet length in bytes.
    pub const RLPML: RawField = RawField::new(0, 14);
}

#[cfg(test)]
mod tests {
    use super::*;

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
