//! [`VfioPciDevice`]: a function opened through VFIO, reset, enabled and
//! with BAR0 mapped.

use super::bar::{map_bar0, VfioBar};
use super::config::{
    config_read, config_region, config_write, enable_memory_and_bus_master, RegionInfo,
    CONFIG_VENDOR_ID,
};
use super::device_file::DeviceFile;
use super::error::VfioError;
use super::noiommu::{self, NoIommuDevice};
use super::preflight::{checks, wrap_vfio_error, VfioPaths};
use super::process::{process, OpenDevice, Registration};
use super::uapi::{CONFIG_REGION, VFIO_DEVICE_RESET};
use crate::pci::{PciAddress, PciIds};
use crate::regs::RegisterAccess;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use vfio_ioctls::{VfioDevice, VfioOps};

/// A PCI function opened through VFIO: reset, memory space and bus
/// mastering on, BAR0 mapped. Drivers reach its registers through
/// [`RegisterAccess`] (implemented here and by [`VfioBar`]) and map DMA
/// memory with [`VfioPciDevice::mapper`].
pub struct VfioPciDevice {
    bar0: VfioBar,
    device: Arc<OpenDevice>,
    mapper: Arc<dyn dma::Mapper>,
    noiommu: bool,
    config: RegionInfo,
    addr: PciAddress,
    ids: PciIds,
    group: u32,
    reset: bool,
}

impl fmt::Debug for VfioPciDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioPciDevice")
            .field("addr", &self.addr)
            .field("ids", &self.ids)
            .field("group", &self.group)
            .field("bar0_len", &self.bar0.len())
            .field("reset", &self.reset)
            .field("noiommu", &self.noiommu)
            .finish_non_exhaustive()
    }
}

impl VfioPciDevice {
    /// Open the function at `addr`: run the [`preflight`](crate::vfio::preflight()) checks, attach its
    /// IOMMU group to the process's VFIO container, reset the function,
    /// enable memory space and bus mastering, and map BAR0.
    pub fn open(addr: &PciAddress) -> Result<VfioPciDevice, VfioError> {
        let paths = VfioPaths::default();
        // Held for the whole open: opens are rare, and this keeps the
        // container creation and the group bookkeeping simple.
        let mut state = process();
        if state.open.contains(addr) {
            return Err(VfioError::AlreadyOpen { addr: *addr });
        }
        let checked = checks(&paths, addr, &state, noiommu::opt_in()?)?;
        let info = checked.info;
        let group = info.iommu_group;
        state.check_mode(addr, checked.noiommu)?;
        let (device, mapper) = if checked.noiommu {
            let container = state.noiommu_container(&paths.dev_vfio, addr)?;
            let device =
                NoIommuDevice::open(&container, &paths.dev_vfio, addr, group, CONFIG_REGION)?;
            noiommu::warn_once();
            (DeviceFile::NoIommu(device), container.mapper().clone())
        } else {
            let container = state.container_mapper(addr)?;
            let ops: Arc<dyn VfioOps> = container.container().clone();
            let device = VfioDevice::new(&paths.sysfs.device_dir(addr), ops, false)
                .map_err(|e| wrap_vfio_error(addr, group, "device open", e))?;
            let mapper: Arc<dyn dma::Mapper> = container;
            (DeviceFile::Type1(device), mapper)
        };

        // From here on a failure drops `device`, which detaches the group
        // from the container again if no other device of it is open.
        let config = config_region(&device, addr)?;
        let mut id = [0u8; 4];
        config_read(&device, config, addr, CONFIG_VENDOR_ID, &mut id)?;
        let found = (
            u16::from_le_bytes([id[0], id[1]]),
            u16::from_le_bytes([id[2], id[3]]),
        );
        let expected = (info.ids.vendor, info.ids.device);
        if found != expected {
            return Err(VfioError::ConfigMismatch {
                addr: *addr,
                sysfs: expected,
                config: found,
            });
        }
        // Reset before enabling bus mastering, so nothing a previous user
        // left running in the device can DMA into our memory. The kernel
        // saves and restores config space around the reset.
        let reset = function_reset(&device, addr)?;
        enable_memory_and_bus_master(&device, config, addr)?;
        let mut bar0 = map_bar0(&device, &paths.sysfs, addr)?;

        // Nothing can fail from here on. (A Registration must never be
        // dropped here: its drop takes the lock this function holds.)
        state.open.insert(*addr);
        *state.groups.entry(group).or_insert(0) += 1;
        if checked.noiommu {
            state.noiommu_groups.insert(group);
        }
        let device = Arc::new(OpenDevice {
            device,
            _registration: Registration { addr: *addr, group },
        });
        bar0.device = Some(device.clone());
        Ok(VfioPciDevice {
            bar0: bar0.into_bar(),
            device,
            mapper,
            noiommu: checked.noiommu,
            config,
            addr: *addr,
            ids: info.ids,
            group,
            reset,
        })
    }

    /// The function's address.
    pub fn addr(&self) -> PciAddress {
        self.addr
    }

    /// Vendor, device and class.
    pub fn ids(&self) -> PciIds {
        self.ids
    }

    /// Vendor ID.
    pub fn vendor_id(&self) -> u16 {
        self.ids.vendor
    }

    /// Device ID.
    pub fn device_id(&self) -> u16 {
        self.ids.device
    }

    /// Class code (24 bits).
    pub fn class(&self) -> u32 {
        self.ids.class
    }

    /// The IOMMU group.
    pub fn iommu_group(&self) -> u32 {
        self.group
    }

    /// Whether the open reset the function. False when the device offers no
    /// reset method to VFIO; the driver's own controller reset still runs.
    pub fn was_reset(&self) -> bool {
        self.reset
    }

    /// BAR0. Clone it to give a driver its own handle.
    pub fn bar0(&self) -> &VfioBar {
        &self.bar0
    }

    /// The process's VFIO container as a DMA mapper: memory mapped through
    /// it is reachable by every device open in this process. Keep a device
    /// open while its DMA memory is mapped: when the last device of the
    /// process closes, the kernel drops the container's mappings. In
    /// no-IOMMU mode it is [`dma::physaddr::PhysAddrMapper`], shared the
    /// same way.
    pub fn mapper(&self) -> Arc<dyn dma::Mapper> {
        self.mapper.clone()
    }

    /// The same mapper, borrowed (one per process: devices' mappers are
    /// the same `Arc`).
    pub fn container_mapper(&self) -> &Arc<dyn dma::Mapper> {
        &self.mapper
    }

    /// Whether the function was opened in VFIO's no-IOMMU mode (the device
    /// is given physical addresses and can reach all of memory).
    pub fn is_noiommu(&self) -> bool {
        self.noiommu
    }

    /// Read `buf.len()` bytes of config space at `offset`. Offsets come from
    /// the driver or from capability pointers the device wrote, so an offset
    /// outside config space is an error, not a panic.
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        config_read(&self.device.device, self.config, &self.addr, offset, buf)
    }

    /// Write `buf` to config space at `offset`.
    pub fn write_config(&self, offset: u64, buf: &[u8]) -> Result<(), VfioError> {
        config_write(&self.device.device, self.config, &self.addr, offset, buf)
    }
}

impl RegisterAccess for VfioPciDevice {
    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        self.bar0.read32(offset)
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        self.bar0.write32(offset, value)
    }

    #[inline]
    fn read64(&self, offset: usize) -> u64 {
        self.bar0.read64(offset)
    }

    #[inline]
    fn write64(&self, offset: usize, value: u64) {
        self.bar0.write64(offset, value)
    }

    fn bar_size(&self) -> usize {
        self.bar0.len()
    }
}

/// VFIO_DEVICE_RESET. Ok(false) when the device has no reset method.
/// vfio-ioctls' `VfioDevice::reset` drops the result, so the ioctl is made
/// here. The kernel may answer EAGAIN when the device lock is contended.
fn function_reset(device: &DeviceFile, addr: &PciAddress) -> Result<bool, VfioError> {
    let mut attempts = 0;
    loop {
        // SAFETY: VFIO_DEVICE_RESET takes no argument; the fd is the VFIO
        // device fd owned by `device`, borrowed for the call.
        let ret = unsafe { libc::ioctl(device.as_raw_fd(), VFIO_DEVICE_RESET) };
        if ret == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        attempts += 1;
        match error.raw_os_error() {
            // vfio-pci answers EINVAL when the device has no usable reset.
            Some(libc::EINVAL) => return Ok(false),
            Some(libc::EAGAIN) | Some(libc::EINTR) if attempts < 5 => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return Err(VfioError::Reset { addr: *addr, error }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::PciError;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn open_of_a_missing_device_fails_before_touching_vfio() {
        // Domain ffff does not exist on any machine that runs these tests.
        let err = VfioPciDevice::open(&addr("ffff:ff:1f.7")).unwrap_err();
        assert!(
            matches!(
                err,
                VfioError::Pci(PciError::DeviceNotFound { .. })
                    | VfioError::Pci(PciError::Sysfs { .. })
            ),
            "{err:?}"
        );
        // The checks run before the container is created.
        let state = process();
        assert!(state.mapper.is_none());
        assert!(!state.open.contains(&addr("ffff:ff:1f.7")));
    }
}
