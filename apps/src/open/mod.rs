//! Where the drivers and the emulated backend meet: a device string (a PCI
//! address or `emu:MODEL,key=value...`, [`device`]) is parsed and opened
//! either through VFIO or as a device model, and the driver over it is
//! handed to code that is generic over the register access (static
//! dispatch: the emulated path costs the real one nothing). [`nvme`] opens
//! NVMe controllers, [`nic`] NIC ports.
#![forbid(unsafe_code)]

pub mod device;
pub mod nic;
pub mod nvme;

pub use nic::{with_nics, with_nics_in, NicJob, Port};
pub use nvme::{parse_page_size, with_nvme, with_nvme_in, with_nvme_pages, NvmeJob, Opened};
