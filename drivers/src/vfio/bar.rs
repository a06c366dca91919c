//! [`VfioBar`]: BAR0 mmap'd from the VFIO device file, reached by volatile
//! register accesses.

use super::device_file::DeviceFile;
use super::error::VfioError;
use super::process::OpenDevice;
use super::uapi::{BAR0_REGION, REGION_FLAG_MMAP, REGION_FLAG_READ, REGION_FLAG_WRITE};
use crate::pci::{PciAddress, Sysfs};
use crate::regs::RegisterAccess;
use crate::trace::{Event, Kind, Tap};
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use vfio_ioctls::{VfioRegionInfoCap, VfioRegionSparseMmapArea};
use volatile::VolatilePtr;

/// BAR0 of a function, mmap'd: registers are read and written by volatile
/// accesses of 4 or 8 bytes, never wider (QEMU's NVMe model refuses wider
/// ones).
///
/// Clones share one mapping, which is unmapped when the last clone is
/// dropped; the mapping keeps the device open, so a clone may outlive the
/// [`VfioPciDevice`](crate::vfio::VfioPciDevice) it came from.
#[derive(Debug, Clone)]
pub struct VfioBar {
    // Copies of the mapping's base and length, so an access does not go
    // through the Arc.
    base: NonNull<u8>,
    len: usize,
    _mapping: Arc<BarMapping>,
    /// Where register accesses are recorded (off unless set).
    tap: Tap,
}

// SAFETY: the mapping is device memory with no thread affinity. Every access
// is a volatile access through a raw pointer, never a Rust reference; what
// concurrent register accesses mean is the device's and the driver's business.
unsafe impl Send for VfioBar {}
// SAFETY: as above; `&VfioBar` only allows those volatile accesses.
unsafe impl Sync for VfioBar {}

/// An mmap'd BAR, unmapped on drop, then releasing its hold on the device.
pub(super) struct BarMapping {
    base: NonNull<u8>,
    len: usize,
    /// The device file must stay open while it is mapped: VFIO will not
    /// release the IOMMU group while a mapping holds the file. None only
    /// for the test stand-ins over anonymous memory.
    pub(super) device: Option<Arc<OpenDevice>>,
}

impl fmt::Debug for BarMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarMapping")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: the mapping can be unmapped from any thread; the pointer is never
// dereferenced through this type.
unsafe impl Send for BarMapping {}
// SAFETY: `&BarMapping` gives no access to the memory.
unsafe impl Sync for BarMapping {}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is a mapping this value owns, and every
        // VfioBar (the only users of the pointer) holds this value through
        // an Arc, so none is left.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
        // `device` drops after this, closing the device if it was the last hold.
    }
}

impl BarMapping {
    pub(super) fn into_bar(self) -> VfioBar {
        VfioBar {
            base: self.base,
            len: self.len,
            _mapping: Arc::new(self),
            tap: Tap::OFF,
        }
    }
}

impl VfioBar {
    /// Record every register access through this BAR (and its later
    /// clones) in `tap`.
    pub fn set_trace(&mut self, tap: Tap) {
        self.tap = tap;
    }

    /// Size of the BAR in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty BAR0 is refused when opening.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The register of type `T` at `offset`.
    ///
    /// Panics if it is misaligned or not entirely inside the BAR: register
    /// offsets come from driver code, never from the device, so that is a
    /// driver bug, and an access outside the mapping must never happen.
    #[inline]
    fn register<T>(&self, offset: usize) -> NonNull<T> {
        let size = size_of::<T>();
        assert!(
            offset.is_multiple_of(size)
                && offset.checked_add(size).is_some_and(|end| end <= self.len),
            "register access of {size} bytes at {offset:#x} is misaligned or outside BAR0 of \
             {:#x} bytes (a driver bug)",
            self.len
        );
        // SAFETY: offset + size <= len (checked above), so the result lies
        // inside the mapping and is not null.
        unsafe { self.base.add(offset).cast() }
    }
}

impl RegisterAccess for VfioBar {
    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        let reg = self.register::<u32>(offset);
        // SAFETY: `reg` is inside the mapping, which stays mapped while this
        // VfioBar holds `_mapping`; it is 4-byte aligned (the mapping is page
        // aligned, the offset checked); the BAR is reached only through
        // volatile accesses, never references.
        let value = unsafe { VolatilePtr::new_read_only(reg) }.read();
        // PCI registers are little endian.
        let value = u32::from_le(value);
        self.tap
            .record(|| reg_event(Kind::RegRead, offset, 4, value as u64));
        value
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        let reg = self.register::<u32>(offset);
        self.tap
            .record(|| reg_event(Kind::RegWrite, offset, 4, value as u64));
        // SAFETY: as in `read32`.
        unsafe { VolatilePtr::new(reg) }.write(value.to_le())
    }

    #[inline]
    fn read64(&self, offset: usize) -> u64 {
        let reg = self.register::<u64>(offset);
        // SAFETY: as in `read32`, 8-byte aligned. On x86_64 an aligned
        // volatile u64 access is one 8-byte move, never split or widened.
        let value = unsafe { VolatilePtr::new_read_only(reg) }.read();
        let value = u64::from_le(value);
        self.tap
            .record(|| reg_event(Kind::RegRead, offset, 8, value));
        value
    }

    #[inline]
    fn write64(&self, offset: usize, value: u64) {
        let reg = self.register::<u64>(offset);
        self.tap
            .record(|| reg_event(Kind::RegWrite, offset, 8, value));
        // SAFETY: as in `read64`.
        unsafe { VolatilePtr::new(reg) }.write(value.to_le())
    }

    fn bar_size(&self) -> usize {
        self.len
    }
}

/// A driver-side register event.
#[inline]
fn reg_event(kind: Kind, offset: usize, width: u32, value: u64) -> Event {
    Event::new(kind).addr(offset as u64).len(width).value(value)
}

/// Whether sparse-mmap `areas` together cover `0..size`.
fn areas_cover(areas: &[VfioRegionSparseMmapArea], size: u64) -> bool {
    let mut areas = areas.to_vec();
    areas.sort_by_key(|a| a.offset);
    let mut covered = 0u64;
    for a in areas {
        if a.offset > covered {
            return false;
        }
        covered = covered.max(a.offset.saturating_add(a.size));
    }
    covered >= size
}

/// mmap BAR0 after checking it against sysfs and VFIO's region flags.
pub(super) fn map_bar0(
    device: &DeviceFile,
    sysfs: &Sysfs,
    addr: &PciAddress,
) -> Result<BarMapping, VfioError> {
    let size = device.get_region_size(BAR0_REGION);
    let flags = device.get_region_flags(BAR0_REGION);
    if size == 0 {
        return Err(VfioError::Bar0Missing { addr: *addr });
    }
    // vfio-ioctls keeps regions in a list that skips any whose info failed,
    // so check that region 0 is what sysfs calls BAR0.
    let sysfs_len = sysfs.bar_len(addr, 0)?;
    if sysfs_len != Some(size) {
        return Err(VfioError::Bar0SizeMismatch {
            addr: *addr,
            vfio: size,
            sysfs: sysfs_len,
        });
    }
    let rw = REGION_FLAG_READ | REGION_FLAG_WRITE;
    if flags & rw != rw || flags & REGION_FLAG_MMAP == 0 {
        return Err(VfioError::Bar0NotMappable { addr: *addr, flags });
    }
    for cap in device.get_region_caps(BAR0_REGION) {
        if let VfioRegionInfoCap::SparseMmap(sparse) = cap {
            if !areas_cover(&sparse.areas, size) {
                return Err(VfioError::Bar0Sparse { addr: *addr });
            }
        }
    }
    let not_mappable = || VfioError::Bar0NotMappable { addr: *addr, flags };
    let len = usize::try_from(size).map_err(|_| not_mappable())?;
    let offset =
        libc::off_t::try_from(device.get_region_offset(BAR0_REGION)).map_err(|_| not_mappable())?;
    // SAFETY: a new shared mapping of the device file at BAR0's offset, at
    // an address the kernel picks, so no existing memory is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            device.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(VfioError::Mmap {
            addr: *addr,
            error: io::Error::last_os_error(),
        });
    }
    match NonNull::new(ptr.cast::<u8>()) {
        Some(base) => Ok(BarMapping {
            base,
            len,
            device: None,
        }),
        // A successful mmap without MAP_FIXED never returns address 0.
        None => Err(VfioError::Mmap {
            addr: *addr,
            error: io::Error::other("mmap returned address 0"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VfioBar over anonymous memory, standing in for BAR0.
    fn fake_bar(len: usize) -> VfioBar {
        // SAFETY: a fresh anonymous mapping; VfioBar's drop unmaps it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        BarMapping {
            base: NonNull::new(ptr.cast()).unwrap(),
            len,
            device: None,
        }
        .into_bar()
    }

    #[test]
    fn bar_reads_back_what_was_written_little_endian() {
        let bar = fake_bar(0x4000);
        bar.write32(0x14, 0x0046_0001);
        assert_eq!(bar.read32(0x14), 0x0046_0001);
        bar.write64(0x28, 0x1_2345_6000);
        assert_eq!(bar.read64(0x28), 0x1_2345_6000);
        // The low dword of a 64-bit register is at the lower address.
        assert_eq!(bar.read32(0x28), 0x2345_6000);
        assert_eq!(bar.read32(0x2c), 0x1);
        // The last dword and qword of the BAR are in range.
        bar.write32(0x3ffc, 7);
        assert_eq!(bar.read32(0x3ffc), 7);
        assert_eq!(bar.read64(0x3ff8), 7 << 32);
        assert_eq!(bar.len(), 0x4000);
    }

    #[test]
    fn bar_clones_share_the_mapping_and_outlive_the_original() {
        let bar = fake_bar(0x1000);
        let clone = bar.clone();
        bar.write32(0x10, 0xabcd);
        drop(bar);
        // Still mapped: the clone holds the mapping.
        assert_eq!(clone.read32(0x10), 0xabcd);
        assert_eq!(Arc::strong_count(&clone._mapping), 1);
    }

    #[test]
    #[should_panic(
        expected = "register access of 4 bytes at 0x4000 is misaligned or outside BAR0 of 0x4000 bytes"
    )]
    fn bar_access_past_the_end_panics() {
        fake_bar(0x4000).read32(0x4000);
    }

    #[test]
    #[should_panic(expected = "register access of 8 bytes at 0x3ffc")]
    fn bar_wide_access_straddling_the_end_panics() {
        fake_bar(0x4000).write64(0x3ffc, 0);
    }

    #[test]
    #[should_panic(expected = "register access of 4 bytes at 0x2")]
    fn misaligned_bar_access_panics() {
        fake_bar(0x4000).read32(0x2);
    }

    #[test]
    #[should_panic(expected = "outside BAR0")]
    fn bar_offset_that_would_overflow_panics() {
        fake_bar(0x4000).read64(usize::MAX - 7);
    }

    #[test]
    fn sparse_mmap_coverage() {
        let area = |offset, size| VfioRegionSparseMmapArea { offset, size };
        assert!(areas_cover(&[area(0, 0x4000)], 0x4000));
        assert!(areas_cover(
            &[area(0x2000, 0x2000), area(0, 0x2000)],
            0x4000
        ));
        // A hole where the MSI-X table is.
        assert!(!areas_cover(
            &[area(0, 0x1000), area(0x3000, 0x1000)],
            0x4000
        ));
        assert!(!areas_cover(&[area(0, 0x3000)], 0x4000));
        assert!(!areas_cover(&[], 0x4000));
    }
}
