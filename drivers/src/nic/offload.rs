//! The checksum offload a packet asks for: what [`super::desc`] encodes in
//! a context descriptor and [`super::tx`] keeps per queue. Its own module so
//! that the descriptor encoding does not depend on the transmit queue.
#![forbid(unsafe_code)]

/// Checksum offload of a packet. The NIC fills in the IPv4 header checksum
/// and the TCP or UDP checksum; the sender puts the pseudo-header checksum
/// (not inverted) in the L4 checksum field, as both datasheets require
/// (checksum offload, §7.2 of both datasheets). Options and IPv6 are not offloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offload {
    /// Send as is.
    #[default]
    None,
    /// IPv4 + UDP.
    Ipv4Udp {
        /// Ethernet header length (14, or 18 with a VLAN tag).
        l2_len: u8,
        /// IPv4 header length (20..=60, a multiple of 4).
        l3_len: u16,
    },
    /// IPv4 + TCP.
    Ipv4Tcp {
        /// Ethernet header length.
        l2_len: u8,
        /// IPv4 header length.
        l3_len: u16,
    },
}
