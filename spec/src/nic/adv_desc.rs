//! The "advanced" receive and transmit descriptors shared by the 82576 /
//! I350 (82576 datasheet §7.1.5 receive, §7.2.2 transmit) and the 82599
//! (82599 datasheet §7.1.6 receive, §7.2.3 transmit). Every descriptor is 16
//! bytes, little endian; offsets below are byte offsets inside one
//! descriptor. The driver writes the *read* format; the device overwrites
//! the same 16 bytes with the *write-back* format when it is done.

use super::Field;
use crate::{FieldInfo, Layout, Word};

/// Size of every RX and TX descriptor in bytes.
pub const DESC_SIZE: usize = 16;
/// Descriptor rings must start on a 128-byte boundary and RDLEN/TDLEN must
/// be a multiple of 128 bytes (8 descriptors) (RDBAL/RDLEN and TDBAL/TDLEN
/// register descriptions, 82576 datasheet §8 and 82599 datasheet §8.2.3).
pub const RING_ALIGN: usize = 128;
/// RDLEN/TDLEN granularity in descriptors.
pub const RING_MULTIPLE: usize = RING_ALIGN / DESC_SIZE;

/// Advanced receive descriptor (82576 §7.1.5, 82599 §7.1.6).
pub mod rx {
    use super::Field;

    // ---- Read format (driver -> device), §7.1.5.1 / §7.1.6.1 ----
    /// Packet Buffer Address (64 bits).
    pub const PKT_ADDR: usize = 0;
    /// Header Buffer Address (64 bits). Written as 0 when header split is
    /// off; its low dword overlaps the write-back status, so writing it
    /// also clears DD.
    pub const HDR_ADDR: usize = 8;

    // ---- Write-back format (device -> driver), §7.1.5.2 / §7.1.6.2 ----
    /// Dword 0: RSS type, packet type, header length, SPH.
    pub const WB_INFO: usize = 0;
    /// Dword 1: RSS hash (when RXCSUM.PCSD = 1), else fragment checksum and IP id.
    pub const WB_RSS_HASH: usize = 4;
    /// Dword 2: extended status (bits 19:0) and extended errors (31:20).
    pub const WB_STATUS_ERROR: usize = 8;
    /// Word at byte 12: packet length in bytes (the bytes written into the buffer).
    pub const WB_LENGTH: usize = 12;
    /// Word at byte 14: VLAN tag.
    pub const WB_VLAN: usize = 14;

    /// Fields of the write-back dword 0 ([`WB_INFO`]).
    pub mod info {
        use super::Field;
        /// RSS Type: which fields were hashed (0: no hash computed).
        pub const RSS_TYPE: Field<u32> = Field::new("RSS_TYPE", 0, 4);
        /// Packet Type (L2/L3/L4 recognition).
        pub const PACKET_TYPE: Field<u32> = Field::new("PACKET_TYPE", 4, 13);
        /// Header length (header split only).
        pub const HDR_LEN: Field<u32> = Field::new("HDR_LEN", 21, 10);
        /// Split Header.
        pub const SPH: Field<u32> = Field::new("SPH", 31, 1);
    }

    /// Values of [`info::PACKET_TYPE`] for the L3/L4 headers the device
    /// recognized (82576 §7.1.5.2, 82599 §7.1.6.2; bit 11 of the 82599
    /// field marks an L2 (EtherType filter) match instead, never set here).
    pub mod packet_type {
        /// IPv4 header present.
        pub const IPV4: u32 = 1 << 0;
        /// IPv4 header with options.
        pub const IPV4_EX: u32 = 1 << 1;
        /// IPv6 header present.
        pub const IPV6: u32 = 1 << 2;
        /// IPv6 header with extensions.
        pub const IPV6_EX: u32 = 1 << 3;
        /// TCP header present.
        pub const TCP: u32 = 1 << 4;
        /// UDP header present.
        pub const UDP: u32 = 1 << 5;
        /// SCTP header present.
        pub const SCTP: u32 = 1 << 6;
    }

    /// RSS Type values of [`info::RSS_TYPE`] (82576 §7.1.5.2, 82599 §7.1.6.2).
    pub mod rss_type {
        /// No hash computed.
        pub const NONE: u32 = 0x0;
        /// Hash over IPv4 addresses and TCP ports.
        pub const IPV4_TCP: u32 = 0x1;
        /// Hash over IPv4 addresses.
        pub const IPV4: u32 = 0x2;
        /// Hash over IPv6 addresses and TCP ports.
        pub const IPV6_TCP: u32 = 0x3;
        /// Hash over IPv6 addresses.
        pub const IPV6: u32 = 0x5;
        /// Hash over IPv4 addresses and UDP ports.
        pub const IPV4_UDP: u32 = 0x7;
        /// Hash over IPv6 addresses and UDP ports.
        pub const IPV6_UDP: u32 = 0x8;
    }

    /// Extended status bits in [`WB_STATUS_ERROR`] (both families).
    pub mod status {
        use super::Field;
        /// Descriptor Done: the device has written this descriptor back.
        pub const DD: Field<u32> = Field::new("DD", 0, 1);
        /// End Of Packet: last descriptor of a frame.
        pub const EOP: Field<u32> = Field::new("EOP", 1, 1);
        /// 82599: Flow Director filter match.
        pub const FLM: Field<u32> = Field::new("FLM", 2, 1);
        /// VLAN packet (tag stripped into WB_VLAN).
        pub const VP: Field<u32> = Field::new("VP", 3, 1);
        /// UDP checksum calculated.
        pub const UDPCS: Field<u32> = Field::new("UDPCS", 4, 1);
        /// L4 (TCP/UDP) integrity checked.
        pub const L4I: Field<u32> = Field::new("L4I", 5, 1);
        /// IPv4 checksum calculated.
        pub const IPCS: Field<u32> = Field::new("IPCS", 6, 1);
        /// Passed in-exact filter.
        pub const PIF: Field<u32> = Field::new("PIF", 7, 1);
        /// First VLAN found on a double-VLAN packet.
        pub const VEXT: Field<u32> = Field::new("VEXT", 9, 1);
        /// UDP checksum valid.
        pub const UDPV: Field<u32> = Field::new("UDPV", 10, 1);
        /// Low latency interrupt.
        pub const LLINT: Field<u32> = Field::new("LLINT", 11, 1);
        /// Packet time stamped.
        pub const TS: Field<u32> = Field::new("TS", 16, 1);
    }

    /// Extended error bits of the 82599 in [`WB_STATUS_ERROR`] (82599 §7.1.6.2).
    pub mod error_82599 {
        use super::Field;
        /// Header Buffer Overflow.
        pub const HBO: Field<u32> = Field::new("HBO", 23, 1);
        /// RX data error: any MAC error (CRC, length, symbol...).
        pub const RXE: Field<u32> = Field::new("RXE", 29, 1);
        /// TCP/UDP checksum error.
        pub const L4E: Field<u32> = Field::new("L4E", 30, 1);
        /// IPv4 header checksum error.
        pub const IPE: Field<u32> = Field::new("IPE", 31, 1);
        /// Errors that make the frame itself bad (not just an offload result).
        pub const FRAME_ERRORS: u32 = RXE.bit();
    }

    /// Extended error bits of the 82576 / I350 in [`WB_STATUS_ERROR`] (82576 §7.1.5.2).
    pub mod error_82576 {
        use super::Field;
        /// Header Buffer Overflow.
        pub const HBO: Field<u32> = Field::new("HBO", 23, 1);
        /// TCP/UDP checksum error.
        pub const L4E: Field<u32> = Field::new("L4E", 29, 1);
        /// IPv4 header checksum error.
        pub const IPE: Field<u32> = Field::new("IPE", 30, 1);
        /// RX data error (CRC, symbol, sequence or carrier extension error).
        pub const RXE: Field<u32> = Field::new("RXE", 31, 1);
        /// Errors that make the frame itself bad (not just an offload result).
        pub const FRAME_ERRORS: u32 = RXE.bit();
    }
}

/// Advanced transmit descriptors (82576 §7.2.2.3, 82599 §7.2.3.2.3-§7.2.3.2.4).
pub mod tx {
    use super::Field;

    // ---- Data descriptor, read format ----
    /// Data buffer address (64 bits).
    pub const ADDR: usize = 0;
    /// Dword 2: DTALEN, DTYP, DCMD.
    pub const CMD_TYPE_LEN: usize = 8;
    /// Dword 3: STA, IDX, CC, POPTS, PAYLEN.
    pub const OLINFO_STATUS: usize = 12;
    /// Write-back format: the status dword (DD in bit 0) overlays OLINFO_STATUS;
    /// bytes 0..12 are reserved in write-back.
    pub const WB_STATUS: usize = 12;

    /// Fields of [`CMD_TYPE_LEN`] (data and context descriptors share DTYP/DEXT).
    pub mod cmd_type_len {
        use super::Field;
        /// Data length of this descriptor's buffer in bytes.
        pub const DTALEN: Field<u32> = Field::new("DTALEN", 0, 16);
        /// Descriptor type.
        pub const DTYP: Field<u32> = Field::new("DTYP", 20, 4);
        /// Descriptor command byte.
        pub const DCMD: Field<u32> = Field::new("DCMD", 24, 8);
        /// DTYP value: advanced data descriptor (0011b).
        pub const DTYP_DATA: u32 = 0b0011;
        /// DTYP value: advanced context descriptor (0010b).
        pub const DTYP_CONTEXT: u32 = 0b0010;
        /// DCMD.EOP: last descriptor of the packet.
        pub const EOP: Field<u32> = Field::new("EOP", 24, 1);
        /// DCMD.IFCS: insert the Ethernet FCS.
        pub const IFCS: Field<u32> = Field::new("IFCS", 25, 1);
        /// DCMD.RS: report status (write DD back when done).
        pub const RS: Field<u32> = Field::new("RS", 27, 1);
        /// DCMD.DEXT: descriptor extension (1 = advanced format).
        pub const DEXT: Field<u32> = Field::new("DEXT", 29, 1);
        /// DCMD.VLE: insert the VLAN tag of the context.
        pub const VLE: Field<u32> = Field::new("VLE", 30, 1);
        /// DCMD.TSE: TCP segmentation.
        pub const TSE: Field<u32> = Field::new("TSE", 31, 1);
    }

    /// Fields of [`OLINFO_STATUS`] (data descriptor).
    pub mod olinfo {
        use super::Field;
        /// STA: status (write-back); DD is bit 0.
        pub const STA: Field<u32> = Field::new("STA", 0, 4);
        /// DD in the write-back status: the descriptor has been processed.
        pub const DD: Field<u32> = Field::new("DD", 0, 1);
        /// IDX: index of the context descriptor slot to use.
        pub const IDX: Field<u32> = Field::new("IDX", 4, 3);
        /// CC: check context (82599; only needed with the TX switch / VFs).
        pub const CC: Field<u32> = Field::new("CC", 7, 1);
        /// POPTS: packet options.
        pub const POPTS: Field<u32> = Field::new("POPTS", 8, 6);
        /// POPTS.IXSM: insert the IPv4 header checksum.
        pub const IXSM: Field<u32> = Field::new("IXSM", 8, 1);
        /// POPTS.TXSM: insert the TCP/UDP checksum.
        pub const TXSM: Field<u32> = Field::new("TXSM", 9, 1);
        /// PAYLEN: total packet length in bytes (all data descriptors of the
        /// packet; without TSO this is the whole frame). Set on the first
        /// data descriptor of a packet.
        pub const PAYLEN: Field<u32> = Field::new("PAYLEN", 14, 18);
    }

    /// Advanced context descriptor (82576 §7.2.2.3, 82599 §7.2.3.2.3).
    pub mod ctx {
        use super::Field;
        /// Dword 0: VLAN, MACLEN, IPLEN.
        pub const VLAN_MACIP_LENS: usize = 0;
        /// Dword 1: 82599 FCoE/IPsec fields; 82576 reserved. Written 0.
        pub const SEQNUM_SEED: usize = 4;
        /// Dword 2: TUCMD, DTYP, DEXT.
        pub const TYPE_TUCMD_MLHL: usize = 8;
        /// Dword 3: IDX, L4LEN, MSS.
        pub const MSS_L4LEN_IDX: usize = 12;

        /// IPLEN: IP header length in bytes (9 bits).
        pub const IPLEN: Field<u32> = Field::new("IPLEN", 0, 9);
        /// MACLEN: L2 header length in bytes (7 bits, 14 or 18 typically).
        pub const MACLEN: Field<u32> = Field::new("MACLEN", 9, 7);
        /// VLAN tag to insert when DCMD.VLE is set.
        pub const VLAN: Field<u32> = Field::new("VLAN", 16, 16);

        /// TUCMD: the L3/L4 command field (bits 19:9 of TYPE_TUCMD_MLHL).
        pub const TUCMD: Field<u32> = Field::new("TUCMD", 9, 11);
        /// TUCMD.SNAP: SNAP frame.
        pub const TUCMD_SNAP: Field<u32> = Field::new("SNAP", 9, 1);
        /// TUCMD.IPV4: IPv4 (else IPv6).
        pub const TUCMD_IPV4: Field<u32> = Field::new("IPV4", 10, 1);
        /// TUCMD.L4T: L4 packet type (bits 12:11).
        pub const TUCMD_L4T: Field<u32> = Field::new("L4T", 11, 2);
        /// L4T value: UDP.
        pub const L4T_UDP: u32 = 0b00;
        /// L4T value: TCP.
        pub const L4T_TCP: u32 = 0b01;
        /// L4T value: SCTP.
        pub const L4T_SCTP: u32 = 0b10;
        /// DTYP (bits 23:20): must be [`super::cmd_type_len::DTYP_CONTEXT`].
        pub const DTYP: Field<u32> = Field::new("DTYP", 20, 4);
        /// DEXT: must be 1.
        pub const DEXT: Field<u32> = Field::new("DEXT", 29, 1);

        /// IDX: context slot this descriptor loads (same field position as in data descriptors).
        pub const IDX: Field<u32> = Field::new("IDX", 4, 3);
        /// L4LEN: L4 header length (TSO only).
        pub const L4LEN: Field<u32> = Field::new("L4LEN", 8, 8);
        /// MSS: maximum segment size (TSO only).
        pub const MSS: Field<u32> = Field::new("MSS", 16, 16);
    }
}

// ---- The descriptors as data, for decoders (e.g. a trace printer) ----
//
// Fields that the datasheet packs inside a wider one (the DCMD flags inside
// DCMD, IXSM/TXSM inside POPTS, the TUCMD bits) are listed as the flags, so
// that no two fields of a word overlap.

/// A 64-bit word with no fields (an address).
const fn qword(name: &'static str, offset: usize) -> Word {
    Word {
        name,
        offset,
        bytes: 8,
        fields: &[],
    }
}

/// A 32-bit word.
const fn dword(name: &'static str, offset: usize, fields: &'static [FieldInfo]) -> Word {
    Word {
        name,
        offset,
        bytes: 4,
        fields,
    }
}

/// A 16-bit word with no fields.
const fn word16(name: &'static str, offset: usize) -> Word {
    Word {
        name,
        offset,
        bytes: 2,
        fields: &[],
    }
}

/// The advanced receive descriptor, read format (written by the driver).
pub const RX_READ: Layout = Layout {
    name: "advanced receive descriptor, read format",
    section: "82576 datasheet §7.1.5.1, 82599 datasheet §7.1.6.1",
    bytes: DESC_SIZE,
    words: &[
        qword("PKT_ADDR", rx::PKT_ADDR),
        qword("HDR_ADDR", rx::HDR_ADDR),
    ],
};

/// Dword 0 of the receive write-back.
const RX_WB_INFO: Word = dword(
    "INFO",
    rx::WB_INFO,
    &[
        rx::info::RSS_TYPE.info(),
        rx::info::PACKET_TYPE.info(),
        rx::info::HDR_LEN.info(),
        rx::info::SPH.info(),
    ],
);

/// The extended status bits both families share (bits 19:0).
macro_rules! rx_status_fields {
    ($($err:expr),*) => {
        &[
            rx::status::DD.info(),
            rx::status::EOP.info(),
            rx::status::FLM.info(),
            rx::status::VP.info(),
            rx::status::UDPCS.info(),
            rx::status::L4I.info(),
            rx::status::IPCS.info(),
            rx::status::PIF.info(),
            rx::status::VEXT.info(),
            rx::status::UDPV.info(),
            rx::status::LLINT.info(),
            rx::status::TS.info(),
            $($err.info()),*
        ]
    };
}

/// The advanced receive descriptor, write-back format of the 82576 / I350
/// (written by the device).
pub const RX_WRITE_BACK_82576: Layout = Layout {
    name: "advanced receive descriptor, write-back format (82576, I350)",
    section: "82576 datasheet §7.1.5.2",
    bytes: DESC_SIZE,
    words: &[
        RX_WB_INFO,
        dword("RSS_HASH", rx::WB_RSS_HASH, &[]),
        dword(
            "STATUS_ERROR",
            rx::WB_STATUS_ERROR,
            rx_status_fields!(
                rx::error_82576::HBO,
                rx::error_82576::L4E,
                rx::error_82576::IPE,
                rx::error_82576::RXE
            ),
        ),
        word16("LENGTH", rx::WB_LENGTH),
        word16("VLAN", rx::WB_VLAN),
    ],
};

/// The advanced receive descriptor, write-back format of the 82599.
pub const RX_WRITE_BACK_82599: Layout = Layout {
    name: "advanced receive descriptor, write-back format (82599)",
    section: "82599 datasheet §7.1.6.2",
    bytes: DESC_SIZE,
    words: &[
        RX_WB_INFO,
        dword("RSS_HASH", rx::WB_RSS_HASH, &[]),
        dword(
            "STATUS_ERROR",
            rx::WB_STATUS_ERROR,
            rx_status_fields!(
                rx::error_82599::HBO,
                rx::error_82599::RXE,
                rx::error_82599::L4E,
                rx::error_82599::IPE
            ),
        ),
        word16("LENGTH", rx::WB_LENGTH),
        word16("VLAN", rx::WB_VLAN),
    ],
};

/// The advanced transmit data descriptor, read format (written by the
/// driver).
pub const TX_DATA: Layout = Layout {
    name: "advanced transmit data descriptor",
    section: "82576 datasheet §7.2.2.3, 82599 datasheet §7.2.3.2.4",
    bytes: DESC_SIZE,
    words: &[
        qword("ADDR", tx::ADDR),
        dword(
            "CMD_TYPE_LEN",
            tx::CMD_TYPE_LEN,
            &[
                tx::cmd_type_len::DTALEN.info(),
                tx::cmd_type_len::DTYP.info(),
                tx::cmd_type_len::EOP.info(),
                tx::cmd_type_len::IFCS.info(),
                tx::cmd_type_len::RS.info(),
                tx::cmd_type_len::DEXT.info(),
                tx::cmd_type_len::VLE.info(),
                tx::cmd_type_len::TSE.info(),
            ],
        ),
        dword(
            "OLINFO_STATUS",
            tx::OLINFO_STATUS,
            &[
                tx::olinfo::STA.info(),
                tx::olinfo::IDX.info(),
                tx::olinfo::CC.info(),
                tx::olinfo::IXSM.info(),
                tx::olinfo::TXSM.info(),
                tx::olinfo::PAYLEN.info(),
            ],
        ),
    ],
};

/// The advanced transmit descriptor, write-back format: only the status
/// dword is defined (bytes 0..12 are reserved).
pub const TX_WRITE_BACK: Layout = Layout {
    name: "advanced transmit descriptor, write-back format",
    section: "82576 datasheet §7.2.2.3, 82599 datasheet §7.2.3.2.4",
    bytes: DESC_SIZE,
    words: &[dword("STATUS", tx::WB_STATUS, &[tx::olinfo::DD.info()])],
};

/// The advanced transmit context descriptor.
pub const TX_CONTEXT: Layout = Layout {
    name: "advanced transmit context descriptor",
    section: "82576 datasheet §7.2.2.3, 82599 datasheet §7.2.3.2.3",
    bytes: DESC_SIZE,
    words: &[
        dword(
            "VLAN_MACIP_LENS",
            tx::ctx::VLAN_MACIP_LENS,
            &[
                tx::ctx::IPLEN.info(),
                tx::ctx::MACLEN.info(),
                tx::ctx::VLAN.info(),
            ],
        ),
        dword("SEQNUM_SEED", tx::ctx::SEQNUM_SEED, &[]),
        dword(
            "TYPE_TUCMD_MLHL",
            tx::ctx::TYPE_TUCMD_MLHL,
            &[
                tx::ctx::TUCMD_SNAP.info(),
                tx::ctx::TUCMD_IPV4.info(),
                tx::ctx::TUCMD_L4T.info(),
                tx::ctx::DTYP.info(),
                tx::ctx::DEXT.info(),
            ],
        ),
        dword(
            "MSS_L4LEN_IDX",
            tx::ctx::MSS_L4LEN_IDX,
            &[
                tx::ctx::IDX.info(),
                tx::ctx::L4LEN.info(),
                tx::ctx::MSS.info(),
            ],
        ),
    ],
};

/// Every descriptor layout, for a decoder that enumerates them.
pub const LAYOUTS: &[Layout] = &[
    RX_READ,
    RX_WRITE_BACK_82576,
    RX_WRITE_BACK_82599,
    TX_DATA,
    TX_WRITE_BACK,
    TX_CONTEXT,
];

/// Largest MACLEN a context descriptor can carry (7 bits).
pub const MAX_MACLEN: usize = 127;
/// Largest IPLEN a context descriptor can carry (9 bits).
pub const MAX_IPLEN: usize = 511;
/// Largest PAYLEN (18 bits).
pub const MAX_PAYLEN: usize = (1 << 18) - 1;

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of `w`, checked to fit the word and not to overlap.
    fn check_word(l: &Layout, w: &Word) {
        assert!(
            matches!(w.bytes, 1 | 2 | 4 | 8),
            "{}: {} bytes",
            w.name,
            w.bytes
        );
        assert!(
            w.offset + w.bytes <= l.bytes,
            "{} {} past the end",
            l.name,
            w.name
        );
        let mut seen = 0u64;
        let mut last_shift = None;
        for f in w.fields {
            assert!(f.width >= 1, "{}.{}", w.name, f.name);
            assert!(
                f.shift + f.width <= 8 * w.bytes as u32,
                "{}.{} outside its word",
                w.name,
                f.name
            );
            let mask = (u64::MAX >> (64 - f.width)) << f.shift;
            assert_eq!(seen & mask, 0, "{}.{} overlaps", w.name, f.name);
            seen |= mask;
            assert!(
                last_shift < Some(f.shift),
                "{}.{} out of order",
                w.name,
                f.name
            );
            last_shift = Some(f.shift);
        }
    }

    #[test]
    fn descriptor_layouts_fit_16_bytes_in_order_without_overlaps() {
        for l in LAYOUTS {
            assert_eq!(l.bytes, DESC_SIZE, "{}", l.name);
            assert!(!l.section.is_empty());
            let mut end = 0;
            for w in l.words {
                assert!(
                    w.offset >= end,
                    "{}: {} overlaps or is out of order",
                    l.name,
                    w.name
                );
                end = w.offset + w.bytes;
                check_word(l, w);
            }
        }
    }

    /// The field of `w` called `name`, decoded from `desc`.
    fn field(l: &Layout, word: &str, name: &str, desc: &[u8; 16]) -> u64 {
        let w = l.words.iter().find(|w| w.name == word).unwrap();
        let f = w.fields.iter().find(|f| f.name == name).unwrap();
        f.get(w.read(desc).unwrap())
    }

    #[test]
    fn a_hand_built_rx_write_back_decodes_through_the_layout() {
        let mut d = [0u8; 16];
        let info = rx::info::RSS_TYPE.value(rx::rss_type::IPV4_TCP)
            | rx::info::PACKET_TYPE.value(rx::packet_type::IPV4 | rx::packet_type::TCP);
        d[0..4].copy_from_slice(&info.to_le_bytes());
        d[4..8].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
        let st = rx::status::DD.bit() | rx::status::EOP.bit() | rx::error_82599::L4E.bit();
        d[8..12].copy_from_slice(&st.to_le_bytes());
        d[12..14].copy_from_slice(&1514u16.to_le_bytes());
        let l = &RX_WRITE_BACK_82599;
        assert_eq!(field(l, "INFO", "RSS_TYPE", &d), 0x1);
        assert_eq!(field(l, "INFO", "PACKET_TYPE", &d), 0x11);
        assert_eq!(field(l, "STATUS_ERROR", "DD", &d), 1);
        assert_eq!(field(l, "STATUS_ERROR", "EOP", &d), 1);
        assert_eq!(field(l, "STATUS_ERROR", "L4E", &d), 1);
        assert_eq!(field(l, "STATUS_ERROR", "RXE", &d), 0);
        let len = l.words.iter().find(|w| w.name == "LENGTH").unwrap();
        assert_eq!(len.read(&d), Some(1514));
        let hash = l.words.iter().find(|w| w.name == "RSS_HASH").unwrap();
        assert_eq!(hash.read(&d), Some(0xdead_beef));
        // The same bits name other errors on the 82576 (§7.1.5.2).
        assert_eq!(field(&RX_WRITE_BACK_82576, "STATUS_ERROR", "IPE", &d), 1);
    }

    #[test]
    fn a_hand_built_tx_data_descriptor_decodes_through_the_layout() {
        use tx::{cmd_type_len as cmd, olinfo};
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&0x1234_5678_9000_u64.to_le_bytes());
        let c = cmd::DTALEN.value(60)
            | cmd::DTYP.value(cmd::DTYP_DATA)
            | cmd::EOP.bit()
            | cmd::RS.bit()
            | cmd::DEXT.bit();
        d[8..12].copy_from_slice(&c.to_le_bytes());
        let o = olinfo::PAYLEN.value(60) | olinfo::TXSM.bit();
        d[12..16].copy_from_slice(&o.to_le_bytes());
        let l = &TX_DATA;
        assert_eq!(l.words[0].read(&d), Some(0x1234_5678_9000));
        assert_eq!(field(l, "CMD_TYPE_LEN", "DTALEN", &d), 60);
        assert_eq!(field(l, "CMD_TYPE_LEN", "DTYP", &d), 0b0011);
        assert_eq!(field(l, "CMD_TYPE_LEN", "EOP", &d), 1);
        assert_eq!(field(l, "CMD_TYPE_LEN", "IFCS", &d), 0);
        assert_eq!(field(l, "CMD_TYPE_LEN", "RS", &d), 1);
        assert_eq!(field(l, "CMD_TYPE_LEN", "DEXT", &d), 1);
        assert_eq!(field(l, "OLINFO_STATUS", "PAYLEN", &d), 60);
        assert_eq!(field(l, "OLINFO_STATUS", "TXSM", &d), 1);
        assert_eq!(field(l, "OLINFO_STATUS", "IXSM", &d), 0);
    }

    #[test]
    fn fields_do_not_overlap_where_the_datasheet_packs_them() {
        {
            use tx::cmd_type_len::*;
            assert_eq!(DTALEN.mask() & DTYP.mask(), 0);
            assert_eq!(DTYP.mask() & DCMD.mask(), 0);
            let bits = EOP.bit() | IFCS.bit() | RS.bit() | DEXT.bit();
            assert_eq!(DCMD.mask() & bits, bits);
        }
        {
            use tx::olinfo::*;
            let bits = IXSM.bit() | TXSM.bit();
            assert_eq!(POPTS.mask() & bits, bits);
            assert_eq!(PAYLEN.mask(), 0xffff_c000);
        }
        {
            use tx::ctx::*;
            assert_eq!(IPLEN.mask() | MACLEN.mask() | VLAN.mask(), 0xffff_ffff);
            let bits = TUCMD_IPV4.bit() | TUCMD_SNAP.bit();
            assert_eq!(TUCMD.mask() & bits, bits);
            assert_eq!(TUCMD_L4T.mask(), 0x1800);
        }
        assert_eq!(RING_MULTIPLE, 8);
    }
}
