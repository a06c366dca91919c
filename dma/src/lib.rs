//! DMA memory for user-space drivers.
//!
//! A [`Region`] is locked memory (2 MiB or 1 GiB hugepages, or ordinary pages
//! for emulated devices). A [`Mapper`] gives it an IOVA: the VFIO container
//! ([`vfio::VfioContainerMapper`]) for real devices, the [`EmuIommu`] for
//! device models, or [`physaddr::PhysAddrMapper`] (physical addresses) in
//! VFIO's no-IOMMU mode. A [`DmaRegion`] is a region mapped for DMA, unmapped on drop.
//! A [`Pool`] carves a region into fixed-size buffers whose ownership (CPU or
//! device) is carried in their type.
//!
//! # Threat model: what a device can reach, and what the driver guarantees
//!
//! The device is a buggy or hostile peer.
//!
//! **What it can reach.** The IOMMU (VFIO type-1, or the [`EmuIommu`] for
//! models) maps whole regions: every queue region and every [`Pool`] of the
//! process, in one container shared by all its devices. Inside them a
//! device may read or write any byte at any time, whatever the driver has
//! posted. Outside them it gets an IOMMU fault (in no-IOMMU mode nothing
//! stops it, and nothing here can help).
//!
//! **What the driver guarantees.**
//! - No data race with the device in the Rust memory model. Memory the
//!   driver shares with a device at the same time (rings, descriptors,
//!   completions, PRP lists, Identify pages) is reached only through
//!   [`DmaRegion`]'s atomic accessors and atomic copies (relaxed, with an
//!   acquire load of the dword a device writes last and a release fence
//!   before a doorbell), never through a Rust reference; the emulated
//!   devices reach memory only through the [`EmuIommu`], whose copies are
//!   atomic too, so a model on its own thread never races the driver.
//! - Every device-written field the driver acts on (a phase tag, a command
//!   identifier, a head index, a length, a status) is read once, atomically,
//!   into a local, and validated against what the driver posted before it
//!   is used: a value out of range is a `DeviceMisbehaved` error, never an
//!   index out of bounds, a panic or a second read that could disagree.
//! - A CPU-owned [`Buf`] is named by no command: posting consumes it
//!   ([`Buf::into_device`]) and only a completion gives it back
//!   ([`DeviceBuf::reclaim`]). A buffer whose command timed out, or whose
//!   controller failed with it outstanding, is quarantined
//!   ([`Pool::quarantined`]): it never returns to the caller or the free
//!   list, so a late DMA lands in memory nobody reads.
//!
//! **What is not guaranteed.** [`Buf::as_slice`] and [`Buf::as_mut_slice`]
//! are ordinary slices, so payload code runs at memory speed. A device that
//! DMAs outside its commands (into a buffer no descriptor names) can change
//! the bytes such a slice shows while it is borrowed. That breaks no
//! invariant a Rust type relies on: pools hold only `u8` data, never Rust
//! objects, pointers or anything whose every bit pattern is not valid, and
//! all buffer bookkeeping (free lists, counts) lives in ordinary memory no
//! device can reach. The consequence is wrong payload bytes, as with any
//! device that corrupts data, not memory unsafety in the driver; but in
//! the strict terms of the Rust memory model such a write is a race on the
//! slice, which is why the claim is stated this narrowly. Our own device
//! models never write a buffer outside a command that names it.
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
mod ring_cursor;
mod shared_bytes;
pub mod vfio;

pub use backoff::Backoff;
pub use error::{Error, IommuFault, Result};
pub use iommu::EmuIommu;
pub use iova::{IovaUsage, IOVA_BASE};
pub use mapper::Mapper;
pub use memory::DmaRegion;
pub use pool::{Buf, DeviceBuf, DeviceIndex, DeviceIovas, Pool, PoolCache};
pub use region::{PageSize, Region, RegionOptions};
pub use ring_cursor::RingCursor;
