//! Ethernet, IPv4, UDP and ARP as the framework's traffic uses them: typed
//! views over a byte buffer in the style of smoltcp's `wire` module
//! ([`EthernetFrame`], [`Ipv4Packet`], [`UdpDatagram`], [`ArpPacket`]), the Internet
//! checksum ([`checksum`], RFC 1071) and MAC addresses ([`MacAddr`]).
//!
//! A view is built with `new_unchecked` (no checks: for buffers the caller
//! sized, such as a header being built) or `new_checked` (the buffer is
//! long enough for the header the view reads, else [`Error`]). Each header
//! field has its byte range in the view's `field` module and one accessor;
//! setters exist when the buffer is writable (`T: AsMut<[u8]>`). All
//! multi-byte fields are big-endian (network byte order).

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
mod mac;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::EthernetFrame;
pub use ipv4::Ipv4Packet;
pub use mac::{MacAddr, ParseMacError};
pub use udp::UdpDatagram;

use core::fmt;

/// Why a buffer cannot be viewed as a header of some kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header.
    Truncated {
        /// Bytes the header needs.
        need: usize,
        /// Bytes the buffer has.
        len: usize,
    },
    /// A length field of the header is impossible (an IPv4 IHL below 5).
    BadHeaderLength(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { need, len } => {
                write!(f, "{len} bytes, the header needs {need}")
            }
            Error::BadHeaderLength(n) => write!(f, "header length {n} is impossible"),
        }
    }
}

impl core::error::Error for Error {}

/// The big-endian 16-bit field `r` of `b`.
#[inline]
pub(crate) fn get16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// Store `v` big-endian into the 16-bit field `r` of `b`.
#[inline]
pub(crate) fn put16(b: &mut [u8], r: core::ops::Range<usize>, v: u16) {
    b[r].copy_from_slice(&v.to_be_bytes());
}

/// `len` bytes are at least `need`, else [`Error::Truncated`].
#[inline]
pub(crate) fn need(len: usize, need: usize) -> Result<(), Error> {
    if len < need {
        Err(Error::Truncated { need, len })
    } else {
        Ok(())
    }
}
