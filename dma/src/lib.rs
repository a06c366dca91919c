//! DMA memory for user-space drivers.
//!
//! A [`Region`] is locked memory (2 MiB or 1 GiB hugepages, or ordinary pages
//! for emulated devices). A [`Mapper`] gives it an IOVA: the VFIO container
//! ([`vfio::VfioContainerMapper`]) for real devices, the [`EmuIommu`] for
//! device models, or [`physaddr::PhysAddrMapper`] (physical addresses) in
//! VFIO's no-IOMMU mode. A [`DmaRegion`] is a region mapped for DMA, unmapped on drop.
//! A [`Pool`] carves a region into fixed-size buffers whose ownership (CPU or
//! device) is carried in their type.
#![deny(missing_docs)]

mod backoff;
mod error;
mod iommu;
mod iova;
mod mapper;
mod memory;
pub mod physaddr;
mod pool;
mod region;
pub mod vfio;

pub use backoff::Backoff;
pub use error::{Error, IommuFault, Result};
pub use iommu::EmuIommu;
pub use iova::IOVA_BASE;
pub use mapper::Mapper;
pub use memory::DmaRegion;
pub use pool::{Buf, DeviceBuf, DeviceIndex, DeviceIovas, Pool, PoolCache};
pub use region::{PageSize, Region, RegionOptions};
