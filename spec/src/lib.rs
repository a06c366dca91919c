//! Every datasheet and specification number and layout the framework uses,
//! named once, as data: the NVMe register map, submission and completion
//! entries, PRP entries, Identify structures and status codes ([`nvme`]);
//! the Intel advanced RX/TX descriptor formats and the register maps of the
//! 82576 / I350 and 82599 ([`nic`]); Ethernet, IPv4 and UDP headers, the
//! Internet checksum and MAC addresses ([`net`]). The drivers, the device models and the
//! tests all read these tables, so driver and model cannot disagree on a bit.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod field;
pub mod net;
pub mod nic;
pub mod nvme;

pub use field::{Field, FieldInfo, Layout, Word, WordWidth};
