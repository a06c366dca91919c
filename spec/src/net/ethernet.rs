//! Ethernet II frames (IEEE 802.3 §3.2, without preamble): destination,
//! source, EtherType, payload. Frames in buffers and on emulated wires
//! carry no FCS: the NICs strip it on receive and insert it on transmit.

use super::{get16, need, put16, Error, MacAddr};

/// Length of the header without VLAN tag.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q / 802.1ad tag, which sits before the EtherType.
pub const VLAN_TAG_LEN: usize = 4;
/// Length of the frame check sequence (CRC-32) that ends a frame on a real wire.
pub const FCS_LEN: usize = 4;
/// Smallest frame without FCS (64 bytes on the wire with it); shorter
/// frames are padded on transmit (TCTL.PSP / HLREG0.TXPADEN).
pub const MIN_FRAME_LEN: usize = 60;
/// Largest standard frame without FCS (1500-byte payload, no VLAN tag).
pub const MAX_FRAME_LEN: usize = 1514;

/// EtherType values (IEEE registry) the framework meets.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// An 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// An 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
}

/// Byte ranges of the header fields.
pub mod field {
    use core::ops::{Range, RangeFrom};
    /// Destination MAC.
    pub const DESTINATION: Range<usize> = 0..6;
    /// Source MAC.
    pub const SOURCE: Range<usize> = 6..12;
    /// EtherType (or a VLAN tag's TPID).
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// The payload of an untagged frame.
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// A view of an Ethernet frame in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// A view without checks: accessors panic if the buffer is shorter than
    /// [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// A view of a buffer that holds at least the header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        need(buffer.as_ref().len(), HEADER_LEN)?;
        Ok(EthernetFrame { buffer })
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination address.
    pub fn dst_addr(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        MacAddr(m)
    }

    /// The source address.
    pub fn src_addr(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        MacAddr(m)
    }

    /// The EtherType (for a tagged frame: the tag's TPID).
    pub fn ethertype(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// The bytes after the untagged header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }

    /// Set the EtherType.
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }

    /// The bytes after the untagged header, to write.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0xaa, 0xbb,
    ];

    #[test]
    fn reads_a_known_header() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(f.src_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn writes_the_same_bytes() {
        let mut b = [0u8; 16];
        let mut f = EthernetFrame::new_unchecked(&mut b[..]);
        f.set_dst_addr(MacAddr::BROADCAST);
        f.set_src_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(ethertype::ARP);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(b, FRAME);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]),
            Err(Error::Truncated { need: 14, len: 13 })
        );
        assert!(EthernetFrame::new_checked(&FRAME[..14]).is_ok());
        // Sizes as 802.3 has them: 64 and 1518 bytes with the FCS.
        assert_eq!(MIN_FRAME_LEN + FCS_LEN, 64);
        assert_eq!(MAX_FRAME_LEN + FCS_LEN, 1518);
    }
}
