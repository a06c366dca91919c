//! The function's PCI config space, read and written through VFIO's config
//! region.

use super::device_file::DeviceFile;
use super::error::VfioError;
use super::uapi::{CONFIG_REGION, REGION_FLAG_READ, REGION_FLAG_WRITE};
use crate::pci::PciAddress;
use std::io;
use std::os::fd::AsRawFd;

// PCI configuration header (PCI Local Bus 3.0 §6.1, §6.2.2).
pub(super) const CONFIG_VENDOR_ID: u64 = 0x00;
const CONFIG_COMMAND: u64 = 0x04;
const COMMAND_MEMORY_SPACE: u16 = 1 << 1;
const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// The standard header; a config region smaller than this is not PCI.
const CONFIG_HEADER_LEN: u64 = 64;

/// A VFIO region's place in the device file.
#[derive(Debug, Clone, Copy)]
pub(super) struct RegionInfo {
    offset: u64,
    size: u64,
}

/// The config region, checked to be readable, writable and a PCI header.
pub(super) fn config_region(
    device: &DeviceFile,
    addr: &PciAddress,
) -> Result<RegionInfo, VfioError> {
    let flags = device.get_region_flags(CONFIG_REGION);
    let size = device.get_region_size(CONFIG_REGION);
    if flags & (REGION_FLAG_READ | REGION_FLAG_WRITE) != REGION_FLAG_READ | REGION_FLAG_WRITE
        || size < CONFIG_HEADER_LEN
    {
        return Err(VfioError::ConfigAccess {
            addr: *addr,
            offset: 0,
            write: false,
            error: io::Error::other(format!(
                "VFIO config region has flags {flags:#x} and {size} bytes, not a read-write PCI header"
            )),
        });
    }
    Ok(RegionInfo {
        offset: device.get_region_offset(CONFIG_REGION),
        size,
    })
}

/// The file offset of `len` bytes at `offset` in `region`, if inside it.
fn region_offset(region: RegionInfo, offset: u64, len: usize) -> io::Result<libc::off_t> {
    let end = offset.checked_add(len as u64);
    if end.is_none_or(|end| end > region.size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{len} bytes at {offset:#x} are outside the region of {:#x} bytes",
                region.size
            ),
        ));
    }
    region
        .offset
        .checked_add(offset)
        .and_then(|o| libc::off_t::try_from(o).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "region offset overflows"))
}

// vfio-ioctls' region_read/region_write log and drop I/O errors, so config
// space is read and written here with pread/pwrite on the device file.

pub(super) fn config_read(
    device: &DeviceFile,
    region: RegionInfo,
    addr: &PciAddress,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), VfioError> {
    let fail = |error| VfioError::ConfigAccess {
        addr: *addr,
        offset,
        write: false,
        error,
    };
    let mut pos = region_offset(region, offset, buf.len()).map_err(fail)?;
    let mut rest = buf;
    while !rest.is_empty() {
        // SAFETY: `rest` is a writable buffer of `rest.len()` bytes, and the
        // fd belongs to `device`, which is borrowed for the whole call.
        let n = unsafe {
            libc::pread(
                device.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                pos,
            )
        };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(fail(e));
                }
            }
            0 => return Err(fail(io::ErrorKind::UnexpectedEof.into())),
            n => {
                // 0 < n <= rest.len(), so both conversions are exact.
                rest = &mut rest[n as usize..];
                pos += n as libc::off_t;
            }
        }
    }
    Ok(())
}

pub(super) fn config_write(
    device: &DeviceFile,
    region: RegionInfo,
    addr: &PciAddress,
    offset: u64,
    buf: &[u8],
) -> Result<(), VfioError> {
    let fail = |error| VfioError::ConfigAccess {
        addr: *addr,
        offset,
        write: true,
        error,
    };
    let mut pos = region_offset(region, offset, buf.len()).map_err(fail)?;
    let mut rest = buf;
    while !rest.is_empty() {
        // SAFETY: `rest` is a readable buffer of `rest.len()` bytes, and the
        // fd belongs to `device`, which is borrowed for the whole call.
        let n = unsafe { libc::pwrite(device.as_raw_fd(), rest.as_ptr().cast(), rest.len(), pos) };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(fail(e));
                }
            }
            0 => return Err(fail(io::ErrorKind::WriteZero.into())),
            n => {
                rest = &rest[n as usize..];
                pos += n as libc::off_t;
            }
        }
    }
    Ok(())
}

/// Set memory space and bus master in the command register and check that
/// they stuck (PCI Local Bus 3.0 §6.2.2).
pub(super) fn enable_memory_and_bus_master(
    device: &DeviceFile,
    config: RegionInfo,
    addr: &PciAddress,
) -> Result<(), VfioError> {
    let wanted = COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER;
    let mut raw = [0u8; 2];
    config_read(device, config, addr, CONFIG_COMMAND, &mut raw)?;
    let command = u16::from_le_bytes(raw);
    if command & wanted != wanted {
        config_write(
            device,
            config,
            addr,
            CONFIG_COMMAND,
            &(command | wanted).to_le_bytes(),
        )?;
    }
    config_read(device, config, addr, CONFIG_COMMAND, &mut raw)?;
    let command = u16::from_le_bytes(raw);
    if command & wanted != wanted {
        return Err(VfioError::EnableFailed {
            addr: *addr,
            command,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_offsets_are_bounds_checked() {
        let r = RegionInfo {
            offset: 7 << 40,
            size: 256,
        };
        assert_eq!(region_offset(r, 4, 2).unwrap(), (7 << 40) + 4);
        assert_eq!(region_offset(r, 252, 4).unwrap(), (7 << 40) + 252);
        assert!(region_offset(r, 253, 4).is_err());
        assert!(region_offset(r, u64::MAX, 1).is_err());
    }
}
