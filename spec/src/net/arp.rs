//! ARP (RFC 826) for Ethernet and IPv4: the only pairing the framework
//! speaks (hardware type 1, protocol type 0x0800, address lengths 6 and 4),
//! a 28-byte packet after the Ethernet header.

use super::{ethernet, get16, need, put16, Error, MacAddr};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Hardware type of Ethernet (RFC 826 `ar$hrd`; IANA "Hardware Types": 1).
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type of IPv4: its EtherType (RFC 826 `ar$pro`).
pub const PTYPE_IPV4: u16 = ethernet::ethertype::IPV4;
/// Hardware address length of Ethernet.
pub const HLEN_ETHERNET: u8 = 6;
/// Protocol address length of IPv4.
pub const PLEN_IPV4: u8 = 4;

/// Operation codes (RFC 826 `ar$op`).
pub mod operation {
    /// A request: who has the target protocol address?
    pub const REQUEST: u16 = 1;
    /// A reply: the sender hardware address has the sender protocol address.
    pub const REPLY: u16 = 2;
}

/// Byte ranges of the fields (Ethernet/IPv4 sizes).
pub mod field {
    use core::ops::Range;
    /// Hardware type (`ar$hrd`).
    pub const HTYPE: Range<usize> = 0..2;
    /// Protocol type (`ar$pro`).
    pub const PTYPE: Range<usize> = 2..4;
    /// Hardware address length (`ar$hln`).
    pub const HLEN: usize = 4;
    /// Protocol address length (`ar$pln`).
    pub const PLEN: usize = 5;
    /// Operation (`ar$op`).
    pub const OPER: Range<usize> = 6..8;
    /// Sender hardware address (`ar$sha`).
    pub const SHA: Range<usize> = 8..14;
    /// Sender protocol address (`ar$spa`).
    pub const SPA: Range<usize> = 14..18;
    /// Target hardware address (`ar$tha`).
    pub const THA: Range<usize> = 18..24;
    /// Target protocol address (`ar$tpa`).
    pub const TPA: Range<usize> = 24..28;
}

/// A view of an ARP packet (the Ethernet payload) in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// A view without checks: accessors panic if the buffer is shorter than
    /// [`PACKET_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// A view of a buffer that holds at least [`PACKET_LEN`] bytes. The
    /// types and lengths are not checked: see [`ArpPacket::is_ethernet_ipv4`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        need(buffer.as_ref().len(), PACKET_LEN)?;
        Ok(ArpPacket { buffer })
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type.
    pub fn htype(&self) -> u16 {
        get16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type.
    pub fn ptype(&self) -> u16 {
        get16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Whether the packet is for Ethernet and IPv4 with their address
    /// lengths, the only layout the other accessors describe.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.htype() == HTYPE_ETHERNET
            && self.ptype() == PTYPE_IPV4
            && self.hlen() == HLEN_ETHERNET
            && self.plen() == PLEN_IPV4
    }

    /// Operation.
    pub fn operation(&self) -> u16 {
        get16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        MacAddr(m)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> [u8; 4] {
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::SPA]);
        a
    }

    /// Target hardware address (zero in a request).
    pub fn target_mac(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        MacAddr(m)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> [u8; 4] {
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::TPA]);
        a
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Set the hardware and protocol types and lengths to Ethernet/IPv4.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE, HTYPE_ETHERNET);
        put16(b, field::PTYPE, PTYPE_IPV4);
        b[field::HLEN] = HLEN_ETHERNET;
        b[field::PLEN] = PLEN_IPV4;
    }

    /// Set the operation.
    pub fn set_operation(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::OPER, v);
    }

    /// Set the sender hardware address.
    pub fn set_sender_mac(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }

    /// Set the sender protocol address.
    pub fn set_sender_ip(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a);
    }

    /// Set the target hardware address.
    pub fn set_target_mac(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }

    /// Set the target protocol address.
    pub fn set_target_ip(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request from 02:00:00:00:00:01 (10.0.0.1) for 10.0.0.2, byte by
    /// byte as RFC 826 lays it out.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0,
        10, 0, 0, 2,
    ];

    #[test]
    fn reads_a_known_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), operation::REQUEST);
        assert_eq!(p.sender_mac(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(p.target_mac(), MacAddr([0; 6]));
        assert_eq!(p.target_ip(), [10, 0, 0, 2]);
    }

    #[test]
    fn writes_the_same_bytes() {
        let mut b = [0xeeu8; 28];
        let mut p = ArpPacket::new_unchecked(&mut b[..]);
        p.set_ethernet_ipv4();
        p.set_operation(operation::REQUEST);
        p.set_sender_mac(MacAddr([2, 0, 0, 0, 0, 1]));
        p.set_sender_ip([10, 0, 0, 1]);
        p.set_target_mac(MacAddr([0; 6]));
        p.set_target_ip([10, 0, 0, 2]);
        assert_eq!(b, REQUEST);
    }

    #[test]
    fn other_layouts_and_short_buffers_are_told_apart() {
        let mut b = REQUEST;
        b[4] = 8; // a hardware address length that is not Ethernet's
        assert!(!ArpPacket::new_unchecked(&b[..]).is_ethernet_ipv4());
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]),
            Err(Error::Truncated { need: 28, len: 27 })
        );
    }
}
