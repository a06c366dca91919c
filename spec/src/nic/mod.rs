//! Every number the Intel NIC drivers and the NIC device models share, named
//! once: the advanced descriptor layouts both chip families use
//! ([`adv_desc`], also as [`crate::Layout`] tables for decoders), the
//! 82576 / I350 register map ([`igb`]), the 82599 register map ([`ixgbe`]),
//! the per-queue ring registers of both as one table per family ([`queue`])
//! and register names for decoders ([`regname`]).
//!
//! Section numbers refer to the Intel 82576EB Gigabit Ethernet Controller
//! Datasheet (rev. 2.x; "82576 datasheet"), the Intel Ethernet Controller I350
//! Datasheet ("I350 datasheet") and the Intel 82599 10 GbE Controller
//! Datasheet (rev. 3.x; "82599 datasheet").
//!
//! Conventions: register offsets are `usize` byte offsets into BAR0; per-queue
//! registers are `const fn`s of the queue number (`rdbal(q)`); fields are
//! [`Field`]s of the width of their word (`Field<u32>` for every register and
//! descriptor dword, so a register value needs no cast), one-bit flags
//! included ([`Field::bit`] is their mask); enumerated field values are
//! constants of the field's width type.

pub mod adv_desc;
pub mod igb;
pub mod ixgbe;
pub mod queue;
pub mod regname;

pub use crate::Field;

// The Ethernet sizes live with the Ethernet header in `net::ethernet`;
// these names stay for the register code that pairs them with datasheet fields.
/// [`crate::net::ethernet::FCS_LEN`]: frames on an emulated wire
/// (`emu::wire`) never carry the FCS.
pub use crate::net::ethernet::FCS_LEN as ETH_FCS_LEN;
/// [`crate::net::ethernet::MAX_FRAME_LEN`].
pub use crate::net::ethernet::MAX_FRAME_LEN as ETH_MAX_FRAME;
/// [`crate::net::ethernet::MIN_FRAME_LEN`].
pub use crate::net::ethernet::MIN_FRAME_LEN as ETH_MIN_FRAME;

/// The 40-byte RSS key used by the drivers when `rx_queues > 1` (the
/// Microsoft RSS verification key, so a hash can be checked against the
/// published test vectors). RSSRK\[0\] holds bytes 0..4 with byte 0 in bits
/// 7:0 (RSSRK register descriptions of both datasheets).
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Number of entries in the RSS redirection table (RETA) of both families:
/// 32 registers of 4 one-byte entries; the entry is chosen by the 7 least
/// significant bits of the RSS hash (the RSS sections of both datasheets,
/// §7.1).
pub const RETA_ENTRIES: usize = 128;
/// Number of 32-bit RSS key registers (RSSRK).
pub const RSSRK_REGS: usize = 10;
/// Number of 32-bit RETA registers.
pub const RETA_REGS: usize = 32;

/// PCI class code of an Ethernet controller (base class 02h, subclass 00h).
pub const PCI_CLASS_ETHERNET: u32 = 0x02_00_00;
