//! UDP datagrams (RFC 768): ports, length, checksum, payload.

use super::checksum::{fold, pseudo_header_sum, sum};
use super::{get16, ipv4, need, put16, Error};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// Byte ranges of the header fields.
pub mod field {
    use core::ops::{Range, RangeFrom};
    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Length of header and payload.
    pub const LENGTH: Range<usize> = 4..6;
    /// Checksum (0: none computed).
    pub const CHECKSUM: Range<usize> = 6..8;
    /// The payload.
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// A view of a UDP datagram in a buffer. The datagram is the whole buffer:
/// cut the buffer to the length field (or the IP payload) before checking
/// the checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// A view without checks: accessors panic if the buffer is shorter than
    /// [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpDatagram { buffer }
    }

    /// A view of a buffer that holds at least the header. The length field
    /// is not checked against the buffer (receivers differ in what a
    /// mismatch means).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        need(buffer.as_ref().len(), HEADER_LEN)?;
        Ok(UdpDatagram { buffer })
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field (header and payload).
    pub fn length(&self) -> u16 {
        get16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// Whether the checksum of the whole buffer is right for a datagram from
    /// IPv4 address `src` to `dst`. A checksum field of 0 means the sender
    /// computed none, which is valid (RFC 768).
    pub fn verify_checksum(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let d = self.buffer.as_ref();
        self.checksum() == 0
            || fold(sum(
                d,
                pseudo_header_sum(src, dst, ipv4::protocol::UDP, d.len()),
            )) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Set the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Set the length field.
    pub fn set_length(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// The bytes after the header, to write.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }

    /// Compute the checksum over the whole buffer for a datagram from `src`
    /// to `dst` and store it. A computed 0 is stored as all ones: 0 would
    /// mean "no checksum" (RFC 768).
    pub fn fill_checksum(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let c = !fold(sum(
            d,
            pseudo_header_sum(src, dst, ipv4::protocol::UDP, d.len()),
        ));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1:12345 -> 10.0.0.2:53, payload "hi", checksum computed by hand:
    /// pseudo 0a00+0001+0a00+0002+0011+000a = 0x141e, header
    /// 3039+0035+000a = 0x3078, payload 6869: sum 0xacff, complement 0x5300.
    const DGRAM: [u8; 10] = [0x30, 0x39, 0x00, 0x35, 0x00, 0x0a, 0x53, 0x00, b'h', b'i'];
    const SRC: [u8; 4] = [10, 0, 0, 1];
    const DST: [u8; 4] = [10, 0, 0, 2];

    #[test]
    fn reads_a_known_datagram() {
        let d = UdpDatagram::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((d.src_port(), d.dst_port(), d.length()), (12345, 53, 10));
        assert_eq!(d.checksum(), 0x5300);
        assert_eq!(d.payload(), b"hi");
        assert!(d.verify_checksum(SRC, DST));
        assert!(!d.verify_checksum(SRC, [10, 0, 0, 3]));
    }

    #[test]
    fn writes_the_same_bytes_and_checksum() {
        let mut b = [0u8; 10];
        let mut d = UdpDatagram::new_unchecked(&mut b[..]);
        d.set_src_port(12345);
        d.set_dst_port(53);
        d.set_length(10);
        d.payload_mut().copy_from_slice(b"hi");
        d.fill_checksum(SRC, DST);
        assert_eq!(b, DGRAM);
    }

    #[test]
    fn zero_checksum_means_none_and_short_buffers_are_refused() {
        let mut b = DGRAM;
        b[6..8].fill(0);
        b[8] ^= 1;
        assert!(UdpDatagram::new_unchecked(&b[..]).verify_checksum(SRC, DST));
        assert_eq!(
            UdpDatagram::new_checked(&DGRAM[..7]),
            Err(Error::Truncated { need: 8, len: 7 })
        );
    }
}
