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
//! VFIO's unsafe no-IOMMU mode (`/dev/vfio/noiommu-N`, no IOMMU to confine
//! the device) is used only when [`NOIOMMU_OPT_IN_VAR`]`=1` is set: then
//! the function goes into a no-IOMMU container and DMA memory is given to
//! it at physical addresses (noiommu.rs, [`dma::physaddr`]), with a
//! warning once per process ([`NOIOMMU_WARNING`]).
//!
//! One concept per file: [`VfioError`] (error.rs), the checks before an open
//! and the memlock check (preflight.rs), the process's one container and its
//! open devices (process.rs), BAR0 mapped for register access (bar.rs),
//! config space (config.rs), the device itself (device.rs) and its device
//! file of either mode (device_file.rs), no-IOMMU mode (noiommu.rs), and the uapi
//! constants vfio-ioctls does not export (uapi.rs).

mod bar;
mod config;
mod device;
mod device_file;
mod error;
mod noiommu;
mod preflight;
mod process;
mod uapi;

pub use bar::VfioBar;
pub use device::VfioPciDevice;
pub use error::VfioError;
pub use noiommu::{OPT_IN_VAR as NOIOMMU_OPT_IN_VAR, WARNING as NOIOMMU_WARNING};
pub use preflight::{memlock_check, preflight, preflight_at, VfioPaths};
