//! IPv4 headers (RFC 791): the fixed 20 bytes and the length of the
//! options that may follow.

use super::checksum::checksum;
use super::{get16, need, put16, Error};

/// Length of a header without options (IHL 5).
pub const HEADER_LEN: usize = 20;

/// Flags and fragment offset share one 16-bit field (RFC 791 §3.1).
pub mod flags {
    /// Don't Fragment.
    pub const DF: u16 = 0x4000;
    /// More Fragments.
    pub const MF: u16 = 0x2000;
    /// The fragment offset part, in 8-byte units.
    pub const FRAGMENT_OFFSET: u16 = 0x1fff;
}

/// Protocol numbers (IANA) the framework meets.
pub mod protocol {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// Byte ranges of the header fields.
pub mod field {
    use core::ops::Range;
    /// Version (high nibble) and IHL, the header length in 32-bit words
    /// (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN (once type of service).
    pub const DSCP_ECN: usize = 1;
    /// Total length of header and data.
    pub const LENGTH: Range<usize> = 2..4;
    /// Identification.
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (3 bits) and fragment offset (13 bits).
    pub const FLAGS_FRAGMENT: Range<usize> = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Range<usize> = 10..12;
    /// Source address.
    pub const SRC_ADDR: Range<usize> = 12..16;
    /// Destination address.
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// A view of an IPv4 packet in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without checks: accessors panic if the buffer is shorter than
    /// the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// A view of a buffer that holds the whole header, options included:
    /// at least [`HEADER_LEN`] bytes, an IHL of at least 5 and no more
    /// than the buffer. The version and the total length are not checked
    /// (callers differ in what they accept).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        need(len, HEADER_LEN)?;
        let p = Ipv4Packet { buffer };
        let hl = p.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLength(hl));
        }
        need(len, hl)?;
        Ok(p)
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The version (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        (self.b()[field::VER_IHL] & 0x0f) as usize * 4
    }

    /// DSCP and ECN.
    pub fn dscp_ecn(&self) -> u8 {
        self.b()[field::DSCP_ECN]
    }

    /// The total length field.
    pub fn total_len(&self) -> u16 {
        get16(self.b(), field::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        get16(self.b(), field::IDENT)
    }

    /// The flags and fragment offset field as a whole (masks in [`flags`]).
    pub fn flags_fragment(&self) -> u16 {
        get16(self.b(), field::FLAGS_FRAGMENT)
    }

    /// Whether the datagram is a fragment: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.flags_fragment() & (flags::MF | flags::FRAGMENT_OFFSET) != 0
    }

    /// The fragment offset in 8-byte units (0: the first fragment, or no
    /// fragment at all).
    pub fn frag_offset(&self) -> u16 {
        self.flags_fragment() & flags::FRAGMENT_OFFSET
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    /// The payload's protocol (values in [`protocol`]).
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.b(), field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> [u8; 4] {
        let b = &self.b()[field::SRC_ADDR];
        [b[0], b[1], b[2], b[3]]
    }

    /// The destination address.
    pub fn dst_addr(&self) -> [u8; 4] {
        let b = &self.b()[field::DST_ADDR];
        [b[0], b[1], b[2], b[3]]
    }

    /// Whether the header checksum over [`header_len`](Self::header_len)
    /// bytes is right.
    pub fn verify_checksum(&self) -> bool {
        checksum(&self.b()[..self.header_len()]) == 0
    }

    /// The bytes after the header, to the end of the buffer (cut to
    /// [`total_len`](Self::total_len) where the frame may be padded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set version 4 and the header length in bytes (a multiple of 4, 20 to 60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.m()[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }

    /// Set DSCP and ECN.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.m()[field::DSCP_ECN] = v;
    }

    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.m(), field::LENGTH, v);
    }

    /// Set the identification.
    pub fn set_ident(&mut self, v: u16) {
        put16(self.m(), field::IDENT, v);
    }

    /// Set flags and fragment offset as a whole.
    pub fn set_flags_fragment(&mut self, v: u16) {
        put16(self.m(), field::FLAGS_FRAGMENT, v);
    }

    /// Set the time to live.
    pub fn set_ttl(&mut self, v: u8) {
        self.m()[field::TTL] = v;
    }

    /// Set the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.m()[field::PROTOCOL] = v;
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.m(), field::CHECKSUM, v);
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        self.m()[field::SRC_ADDR].copy_from_slice(&a);
    }

    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        self.m()[field::DST_ADDR].copy_from_slice(&a);
    }

    /// Compute the header checksum and store it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum(&self.b()[..hl]);
        self.set_checksum(c);
    }

    /// The bytes after the header, to write.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.m()[hl..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 header example of many references: 192.168.0.1 ->
    /// 192.168.0.199, UDP, DF, TTL 64, total length 115, checksum b861.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn reads_a_known_header() {
        let p = Ipv4Packet::new_checked(&HEADER[..]).unwrap();
        assert_eq!((p.version(), p.header_len()), (4, 20));
        assert_eq!((p.dscp_ecn(), p.total_len(), p.ident()), (0, 115, 0));
        assert_eq!(p.flags_fragment(), flags::DF);
        assert!(!p.is_fragment());
        assert_eq!((p.ttl(), p.protocol()), (64, protocol::UDP));
        assert_eq!(p.checksum(), 0xb861);
        assert_eq!(p.src_addr(), [192, 168, 0, 1]);
        assert_eq!(p.dst_addr(), [192, 168, 0, 199]);
        assert!(p.verify_checksum());
        assert!(p.payload().is_empty());
    }

    #[test]
    fn writes_the_same_bytes() {
        let mut b = [0xeeu8; 20];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(0);
        p.set_total_len(115);
        p.set_ident(0);
        p.set_flags_fragment(flags::DF);
        p.set_ttl(64);
        p.set_protocol(protocol::UDP);
        p.set_src_addr([192, 168, 0, 1]);
        p.set_dst_addr([192, 168, 0, 199]);
        p.fill_checksum();
        assert_eq!(b, HEADER);
    }

    #[test]
    fn fragments() {
        let mut b = HEADER;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_flags_fragment(flags::MF);
        assert!(p.is_fragment() && p.frag_offset() == 0);
        p.set_flags_fragment(0x0010);
        assert!(p.is_fragment() && p.frag_offset() == 0x10);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(
            Ipv4Packet::new_checked(&HEADER[..19]),
            Err(Error::Truncated { need: 20, len: 19 })
        );
        let mut b = HEADER;
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(Error::BadHeaderLength(16))
        );
        b[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(Error::Truncated { need: 24, len: 20 })
        );
    }
}
