//! Opening a PCI function through VFIO.
//!
//! [`VfioPciDevice::open`] first runs every check that can name a cause and
//! a fix ([`preflight()`]): the function exists, the IOMMU is on, the function
//! is bound to vfio-pci, its IOMMU group is viable, the VFIO module is loaded
//! and the group's device node can be opened. Only then does it call
//! vfio-ioctls, attaching the group to the one VFIO container of the process
//! (shared by all devices, so DMA memory mapped through
//! [`VfioPciDevice::mapper`] is reachable by every device), resets the
//! function, enables memory space and bus mastering, and maps BAR0 for
//! register access ([`VfioBar`]).
//!
//! Interrupts are not set up: the drivers poll.
//!
//! One concept per file: [`VfioError`] (error.rs), the checks before an open
//! and the memlock check (preflight.rs), the process's one container and its
//! open devices (process.rs), BAR0 mapped for register access (bar.rs),
//! config space (config.rs), the device itself (device.rs), and the uapi
//! constants vfio-ioctls does not export (uapi.rs).

mod bar;
mod config;
mod device;
mod error;
mod preflight;
mod process;
mod uapi;

pub use bar::VfioBar;
pub use device::VfioPciDevice;
pub use error::VfioError;
pub use preflight::{memlock_check, preflight, preflight_at, VfioPaths};
