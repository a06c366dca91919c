//! Encoding and decoding of advanced descriptors: the values the driver
//! writes and the checks it applies to what the device writes back. Pure
//! functions over integers, so every rule is unit tested without a device.
#![forbid(unsafe_code)]

use super::error::NicError;
use super::offload::Offload;
use spec::nic::adv_desc::{
    rx::status,
    tx::{cmd_type_len as cmd, ctx, olinfo},
    MAX_IPLEN, MAX_MACLEN,
};

/// What one RX write-back says about its descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxCheck {
    /// DD is clear: the device has not written this descriptor yet.
    NotDone,
    /// A complete frame of this many bytes in one buffer.
    Frame(usize),
    /// DD without EOP: the frame continues in the next descriptor (it did
    /// not fit one buffer). The driver drops such frames.
    Partial,
    /// The device flagged a frame error (RXE).
    FrameError,
    /// A length of 0 on an end-of-packet descriptor.
    Empty,
    /// A length beyond the buffer the descriptor pointed to: impossible for
    /// a correct device.
    TooLong(usize),
}

/// Classify a write-back: `staterr` is the status/error dword (read with
/// acquire), `len` the length word, `buf_len` the buffer size the device was
/// told (SRRCTL.BSIZEPACKET), `frame_errors` the chip's frame error bits.
#[inline(always)]
pub(crate) fn rx_check(staterr: u32, len: u16, buf_len: usize, frame_errors: u32) -> RxCheck {
    if staterr & status::DD.bit() == 0 {
        return RxCheck::NotDone;
    }
    let len = len as usize;
    if len > buf_len {
        return RxCheck::TooLong(len);
    }
    if staterr & status::EOP.bit() == 0 {
        return RxCheck::Partial;
    }
    if staterr & frame_errors != 0 {
        return RxCheck::FrameError;
    }
    if len == 0 {
        return RxCheck::Empty;
    }
    RxCheck::Frame(len)
}

/// CMD_TYPE_LEN of a data descriptor carrying `len` bytes; `eop` on the
/// packet's last one. RS is added separately ([`cmd::RS.bit()`]).
#[inline(always)]
pub(crate) const fn data_cmd(len: u32, eop: bool) -> u32 {
    // DTALEN is bits 15:0, and `len` is at most MAX_TX_SEGMENT (checked
    // where buffers are accepted), so it goes in unmasked: masking it would
    // cost an instruction per descriptor on the hot path.
    const _: () = assert!(cmd::DTALEN.shift == 0);
    let base = cmd::DTYP.value(cmd::DTYP_DATA) | cmd::DEXT.bit() | cmd::IFCS.bit() | len;
    if eop {
        base | cmd::EOP.bit()
    } else {
        base
    }
}

/// OLINFO_STATUS of a data descriptor: the packet's total length and the
/// checksum options.
#[inline(always)]
pub(crate) const fn data_olinfo(paylen: u32, popts: u32) -> u32 {
    // PAYLEN is the top 18 bits: the mask `value` applies is a no-op after
    // the shift, so this compiles to the plain shift.
    olinfo::PAYLEN.value(paylen) | popts
}

/// Dwords 2 and 3 of a data descriptor as one 64-bit store.
#[inline(always)]
pub(crate) const fn data_hi(cmd_type_len: u32, olinfo_status: u32) -> u64 {
    (olinfo_status as u64) << 32 | cmd_type_len as u64
}

/// The POPTS bits a packet with this offload needs.
#[inline(always)]
pub(crate) const fn popts(offload: Offload) -> u32 {
    match offload {
        Offload::None => 0,
        Offload::Ipv4Udp { .. } | Offload::Ipv4Tcp { .. } => {
            olinfo::IXSM.bit() | olinfo::TXSM.bit()
        }
    }
}

/// Check that a context descriptor can carry `offload`'s header lengths.
pub(crate) fn check_offload(offload: Offload) -> Result<(), NicError> {
    let (l2, l3) = match offload {
        Offload::None => return Ok(()),
        Offload::Ipv4Udp { l2_len, l3_len } | Offload::Ipv4Tcp { l2_len, l3_len } => {
            (l2_len as usize, l3_len as usize)
        }
    };
    if !(14..=MAX_MACLEN).contains(&l2) {
        return Err(NicError::InvalidOffload(format!(
            "L2 header of {l2} bytes (the context descriptor takes 14 to {MAX_MACLEN})"
        )));
    }
    if !(20..=60).contains(&l3) || l3 % 4 != 0 || l3 > MAX_IPLEN {
        return Err(NicError::InvalidOffload(format!(
            "IPv4 header of {l3} bytes (must be 20 to 60, a multiple of 4)"
        )));
    }
    Ok(())
}

/// The context descriptor for `offload` (context slot 0), as its two 64-bit
/// halves: (VLAN_MACIP_LENS | SEQNUM_SEED << 32, TYPE_TUCMD_MLHL | MSS_L4LEN_IDX << 32).
/// `offload` must have passed [`check_offload`]; fields are masked to their
/// widths regardless. `Offload::None` gives a context with no L3/L4 command.
pub(crate) fn context(offload: Offload) -> (u64, u64) {
    let (l2, l3, tucmd) = match offload {
        Offload::None => (0, 0, 0),
        Offload::Ipv4Udp { l2_len, l3_len } => (
            l2_len,
            l3_len,
            ctx::TUCMD_IPV4.bit() | ctx::TUCMD_L4T.value(ctx::L4T_UDP),
        ),
        Offload::Ipv4Tcp { l2_len, l3_len } => (
            l2_len,
            l3_len,
            ctx::TUCMD_IPV4.bit() | ctx::TUCMD_L4T.value(ctx::L4T_TCP),
        ),
    };
    let vlan_macip = ctx::IPLEN.value(l3 as u32) | ctx::MACLEN.value(l2 as u32);
    let type_tucmd = tucmd | ctx::DTYP.value(cmd::DTYP_CONTEXT) | ctx::DEXT.bit();
    let mss_l4len_idx = ctx::IDX.value(0);
    // SEQNUM_SEED (dword 1) is written 0.
    (
        u64::from(vlan_macip),
        u64::from(type_tucmd) | u64::from(mss_l4len_idx) << 32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::nic::adv_desc::rx::{error_82576, error_82599};

    const DD: u32 = status::DD.bit();
    const EOP: u32 = status::EOP.bit();

    #[test]
    fn write_back_validation() {
        let fe = error_82599::FRAME_ERRORS;
        assert_eq!(rx_check(0, 60, 2048, fe), RxCheck::NotDone);
        // A stale length without DD is ignored, not trusted.
        assert_eq!(rx_check(EOP, 9999, 2048, fe), RxCheck::NotDone);
        assert_eq!(rx_check(DD | EOP, 60, 2048, fe), RxCheck::Frame(60));
        assert_eq!(rx_check(DD | EOP, 2048, 2048, fe), RxCheck::Frame(2048));
        assert_eq!(rx_check(DD | EOP, 2049, 2048, fe), RxCheck::TooLong(2049));
        assert_eq!(rx_check(DD, 2048, 2048, fe), RxCheck::Partial);
        assert_eq!(rx_check(DD, 4000, 2048, fe), RxCheck::TooLong(4000));
        assert_eq!(rx_check(DD | EOP, 0, 2048, fe), RxCheck::Empty);
        assert_eq!(
            rx_check(DD | EOP | error_82599::RXE.bit(), 60, 2048, fe),
            RxCheck::FrameError
        );
        // Checksum results are not frame errors.
        assert_eq!(
            rx_check(
                DD | EOP | error_82599::L4E.bit() | error_82599::IPE.bit(),
                60,
                2048,
                fe
            ),
            RxCheck::Frame(60)
        );
        // The 82576 puts RXE in bit 31, which is IPE on the 82599.
        let fe6 = error_82576::FRAME_ERRORS;
        assert_eq!(
            rx_check(DD | EOP | (1 << 31), 60, 2048, fe6),
            RxCheck::FrameError
        );
        assert_eq!(
            rx_check(DD | EOP | (1 << 31), 60, 2048, fe),
            RxCheck::Frame(60)
        );
    }

    #[test]
    fn data_descriptor_encoding() {
        let c = data_cmd(1514, true);
        assert_eq!(c & 0xffff, 1514);
        assert_eq!((c >> 20) & 0xf, 0b0011);
        assert_ne!(c & cmd::EOP.bit(), 0);
        assert_ne!(c & cmd::IFCS.bit(), 0);
        assert_ne!(c & cmd::DEXT.bit(), 0);
        assert_eq!(c & cmd::RS.bit(), 0);
        assert_eq!(data_cmd(100, false) & cmd::EOP.bit(), 0);
        // Exactly: DTYP 3, DCMD = DEXT | IFCS | EOP.
        assert_eq!(data_cmd(64, true), 0x2330_0040);
        let o = data_olinfo(1514, popts(Offload::None));
        assert_eq!(o >> 14, 1514);
        assert_eq!(o & 0x3fff, 0);
        let o = data_olinfo(
            60,
            popts(Offload::Ipv4Udp {
                l2_len: 14,
                l3_len: 20,
            }),
        );
        assert_eq!(o, (60 << 14) | (1 << 8) | (1 << 9));
        assert_eq!(data_hi(0x1122_3344, 0x5566_7788), 0x5566_7788_1122_3344);
    }

    #[test]
    fn context_descriptor_encoding() {
        let (lo, hi) = context(Offload::Ipv4Udp {
            l2_len: 14,
            l3_len: 20,
        });
        assert_eq!(lo as u32, 20 | (14 << 9));
        assert_eq!(lo >> 32, 0, "SEQNUM_SEED unused");
        let tucmd = hi as u32;
        assert_eq!(tucmd, (1 << 10) | (0b0010 << 20) | (1 << 29));
        assert_eq!(hi >> 32, 0, "context slot 0, no TSO");
        let (_, hi) = context(Offload::Ipv4Tcp {
            l2_len: 18,
            l3_len: 24,
        });
        assert_eq!(hi as u32 & (0b11 << 11), 0b01 << 11, "L4T = TCP");
        assert!(check_offload(Offload::None).is_ok());
        assert!(check_offload(Offload::Ipv4Tcp {
            l2_len: 18,
            l3_len: 60
        })
        .is_ok());
        for bad in [
            Offload::Ipv4Udp {
                l2_len: 13,
                l3_len: 20,
            },
            Offload::Ipv4Udp {
                l2_len: 128,
                l3_len: 20,
            },
            Offload::Ipv4Tcp {
                l2_len: 14,
                l3_len: 19,
            },
            Offload::Ipv4Tcp {
                l2_len: 14,
                l3_len: 22,
            },
            Offload::Ipv4Tcp {
                l2_len: 14,
                l3_len: 64,
            },
        ] {
            assert!(
                matches!(check_offload(bad), Err(NicError::InvalidOffload(_))),
                "{bad:?}"
            );
        }
    }
}
