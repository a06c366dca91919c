//! PCI functions as Linux shows them: addresses (`0000:03:00.0`) and the
//! sysfs facts that decide whether a function can be opened through VFIO:
//! its driver binding, its IOMMU group, and whether that group is viable.
//!
//! Everything here only reads sysfs, under a root that tests point at a fake
//! tree ([`Sysfs::new`]); nothing here changes the system.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The driver a function must be bound to before VFIO can open it.
pub const VFIO_PCI_DRIVER: &str = "vfio-pci";

/// What to type to see the machine's PCI functions and their drivers.
const LIST_HINT: &str = "list devices with `lspci -D` or `hw-setup/devbind.sh status`";

/// A PCI function address: domain, bus, device (0..=0x1f), function (0..=7).
///
/// Parsed from the full form `0000:03:00.0` or the short form `03:00.0`
/// (domain 0); shown in the full form, as sysfs names the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    /// Largest device number (5 bits, PCI Local Bus 3.0 §3.2.2.3.1).
    pub const MAX_DEVICE: u8 = 0x1f;
    /// Largest function number (3 bits).
    pub const MAX_FUNCTION: u8 = 7;

    /// The address `domain:bus:device.function`, or None if the device is
    /// above 0x1f or the function above 7.
    pub const fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<PciAddress> {
        if device > Self::MAX_DEVICE || function > Self::MAX_FUNCTION {
            return None;
        }
        Some(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }

    /// PCI domain (segment). Usually 0; Intel VMD puts devices in 0x10000 and up.
    pub fn domain(&self) -> u32 {
        self.domain
    }

    /// Bus number.
    pub fn bus(&self) -> u8 {
        self.bus
    }

    /// Device number, 0..=0x1f.
    pub fn device(&self) -> u8 {
        self.device
    }

    /// Function number, 0..=7.
    pub fn function(&self) -> u8 {
        self.function
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The kernel's own format ("%04x:%02x:%02x.%d"), so the result is the
        // name of the function's directory in /sys/bus/pci/devices.
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// One of the four parts of a PCI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressField {
    /// The domain (before the first `:` of the full form).
    Domain,
    /// The bus.
    Bus,
    /// The device (before the `.`).
    Device,
    /// The function (after the `.`).
    Function,
}

impl AddressField {
    fn max(self) -> u64 {
        match self {
            AddressField::Domain => u32::MAX as u64,
            AddressField::Bus => u8::MAX as u64,
            AddressField::Device => PciAddress::MAX_DEVICE as u64,
            AddressField::Function => PciAddress::MAX_FUNCTION as u64,
        }
    }
}

impl fmt::Display for AddressField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressField::Domain => "domain",
            AddressField::Bus => "bus",
            AddressField::Device => "device",
            AddressField::Function => "function",
        })
    }
}

/// Why a string is not a PCI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressErrorKind {
    /// The string is empty.
    Empty,
    /// The separators are wrong: not `DDDD:BB:DD.F` or `BB:DD.F`, or a part is empty.
    Format,
    /// A part has a character that is not a hex digit.
    NotHex(AddressField),
    /// A part is a hex number too large for its field (device above 0x1f,
    /// function above 7, bus above 0xff). `value` saturates at `u64::MAX`.
    OutOfRange {
        /// The part.
        field: AddressField,
        /// Its value.
        value: u64,
    },
}

/// A string that is not a PCI address, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseAddressError {
    input: String,
    kind: AddressErrorKind,
}

impl ParseAddressError {
    /// Why parsing failed.
    pub fn kind(&self) -> AddressErrorKind {
        self.kind
    }

    /// The string that was parsed.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid PCI address `{}`: ", self.input)?;
        match self.kind {
            AddressErrorKind::Empty => write!(f, "it is empty")?,
            AddressErrorKind::Format => write!(
                f,
                "expected `:` between domain, bus and device and `.` before the function"
            )?,
            AddressErrorKind::NotHex(field) => write!(f, "the {field} is not a hex number")?,
            AddressErrorKind::OutOfRange { field, value } => {
                write!(f, "{field} {value:#x} is above {:#x}", field.max())?
            }
        }
        write!(
            f,
            "; a valid address is DDDD:BB:DD.F or BB:DD.F in hex, e.g. 0000:03:00.0 or 03:00.0 \
             (device 00-1f, function 0-7); {LIST_HINT}"
        )
    }
}

impl std::error::Error for ParseAddressError {}

impl FromStr for PciAddress {
    type Err = ParseAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |kind| ParseAddressError {
            input: s.to_owned(),
            kind,
        };
        if s.is_empty() {
            return Err(fail(AddressErrorKind::Empty));
        }
        let (head, function) = s
            .rsplit_once('.')
            .ok_or_else(|| fail(AddressErrorKind::Format))?;
        if head.contains('.') {
            return Err(fail(AddressErrorKind::Format));
        }
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [bus, device] => (None, *bus, *device),
            [domain, bus, device] => (Some(*domain), *bus, *device),
            _ => return Err(fail(AddressErrorKind::Format)),
        };
        let domain = match domain {
            Some(d) => hex_field(d, AddressField::Domain).map_err(fail)?,
            None => 0,
        };
        let bus = hex_field(bus, AddressField::Bus).map_err(fail)?;
        let device = hex_field(device, AddressField::Device).map_err(fail)?;
        let function = hex_field(function, AddressField::Function).map_err(fail)?;
        // hex_field bounded every value by its field's maximum, so the casts
        // keep every bit.
        Ok(PciAddress {
            domain: domain as u32,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

/// A hex number no larger than `field`'s maximum.
fn hex_field(text: &str, field: AddressField) -> Result<u64, AddressErrorKind> {
    if text.is_empty() {
        return Err(AddressErrorKind::Format);
    }
    // from_str_radix would also take a leading `+`; a PCI address has none.
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddressErrorKind::NotHex(field));
    }
    let value = u64::from_str_radix(text, 16).unwrap_or(u64::MAX); // only overflow can fail
    if value > field.max() {
        return Err(AddressErrorKind::OutOfRange { field, value });
    }
    Ok(value)
}

/// Vendor, device and class of a PCI function.
///
/// Same shape as `crate::emu::PciIds` (the emulated function's identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciIds {
    /// Vendor ID (0x8086: Intel, 0x1b36: Red Hat/QEMU).
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code (base class, subclass, programming interface), 24 bits;
    /// 0x010802 is an NVMe controller, 0x020000 an Ethernet controller.
    pub class: u32,
}

/// One function in an IOMMU group and the driver it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its name in sysfs: a PCI address for PCI functions.
    pub name: String,
    /// The driver it is bound to, None if none.
    pub driver: Option<String>,
}

impl GroupMember {
    /// Whether this member lets its group be used through VFIO. The kernel
    /// allows a group to be opened when every member is bound to a VFIO
    /// driver, to no driver, or to a driver that never does DMA on its own
    /// (`pci-stub`; `pcieport` for the bridges that often share a group).
    pub fn allows_vfio(&self) -> bool {
        match self.driver.as_deref() {
            None => true,
            Some(d) => is_vfio_driver(d) || d == "pci-stub" || d == "pcieport",
        }
    }
}

impl fmt::Display for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.driver {
            Some(d) => write!(f, "{} (bound to {d})", self.name),
            None => write!(f, "{} (no driver)", self.name),
        }
    }
}

/// `vfio-pci` or one of its variant drivers (`mlx5_vfio_pci`, ...).
fn is_vfio_driver(name: &str) -> bool {
    name == VFIO_PCI_DRIVER || name.ends_with("_vfio_pci")
}

/// What sysfs says about a function that passed every check for VFIO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciFunctionInfo {
    /// Its address.
    pub addr: PciAddress,
    /// Its IDs.
    pub ids: PciIds,
    /// Its IOMMU group: the number of /dev/vfio/N.
    pub iommu_group: u32,
    /// Every function of the group, the function itself included, by name.
    pub group_members: Vec<GroupMember>,
}

/// Why sysfs says a function cannot be opened through VFIO.
#[derive(Debug)]
pub enum PciError {
    /// No function with this address.
    DeviceNotFound {
        /// The address asked for.
        addr: PciAddress,
    },
    /// The function has no IOMMU group: the IOMMU is off (or does not cover it).
    IommuOff {
        /// The function.
        addr: PciAddress,
        /// The driver it is bound to now, None if none.
        driver: Option<String>,
    },
    /// The function is not bound to vfio-pci.
    NotBoundToVfio {
        /// The function.
        addr: PciAddress,
        /// The driver it is bound to, None if none.
        driver: Option<String>,
    },
    /// Another function of the IOMMU group is bound to a host driver, so the
    /// kernel refuses the group to user space.
    GroupNotViable {
        /// The function asked for.
        addr: PciAddress,
        /// Its IOMMU group.
        group: u32,
        /// The members that block the group.
        blocking: Vec<GroupMember>,
    },
    /// A sysfs file or link could not be read.
    Sysfs {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        error: io::Error,
    },
    /// A sysfs file holds something other than what the kernel writes there.
    SysfsFormat {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciError::DeviceNotFound { addr } => write!(f, "no PCI device {addr}; {LIST_HINT}"),
            PciError::IommuOff { addr, driver } => write!(
                f,
                "{addr} ({}) has no IOMMU group: the IOMMU is off; enable VT-d (Intel) or AMD-Vi (AMD) \
                 in the firmware, boot with intel_iommu=on or amd_iommu=on, check with \
                 `hw-setup/check-iommu.sh`, then bind it with `hw-setup/devbind.sh bind {addr}`",
                match driver {
                    Some(d) => format!("bound to {d}, not {VFIO_PCI_DRIVER}"),
                    None => "bound to no driver".to_string(),
                }
            ),
            PciError::NotBoundToVfio {
                addr,
                driver: Some(driver),
            } => write!(
                f,
                "{addr} is bound to {driver}, not {VFIO_PCI_DRIVER}; bind it with \
                 `hw-setup/devbind.sh bind {addr}`"
            ),
            PciError::NotBoundToVfio { addr, driver: None } => write!(
                f,
                "{addr} is bound to no driver, not {VFIO_PCI_DRIVER}; bind it with \
                 `hw-setup/devbind.sh bind {addr}`"
            ),
            PciError::GroupNotViable {
                addr,
                group,
                blocking,
            } => {
                let list: Vec<String> = blocking.iter().map(|m| m.to_string()).collect();
                let names: Vec<&str> = blocking.iter().map(|m| m.name.as_str()).collect();
                write!(
                    f,
                    "IOMMU group {group} of {addr} is not viable: {} must be bound to \
                     {VFIO_PCI_DRIVER} or to no driver, since devices in one group can reach \
                     each other's DMA; bind them with `hw-setup/devbind.sh bind {}`",
                    list.join(", "),
                    names.join(" ")
                )
            }
            PciError::Sysfs { path, error } => write!(
                f,
                "cannot read {}: {error}; is sysfs mounted at /sys?",
                path.display()
            ),
            PciError::SysfsFormat { path, content } => write!(
                f,
                "unexpected content {content:?} in {}; this kernel's sysfs is not what we expect",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PciError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PciError::Sysfs { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Sysfs, under a root that is `/sys` on a real system and a fake tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

impl Sysfs {
    /// Sysfs mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// The root (`/sys`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The function's directory, `/sys/bus/pci/devices/ADDR`: also the path
    /// vfio-ioctls takes to find the device.
    pub fn device_dir(&self, addr: &PciAddress) -> PathBuf {
        self.root.join("bus/pci/devices").join(addr.to_string())
    }

    fn group_dir(&self, group: u32) -> PathBuf {
        self.root
            .join("kernel/iommu_groups")
            .join(group.to_string())
    }

    /// Ok if the function exists.
    pub fn check_exists(&self, addr: &PciAddress) -> Result<(), PciError> {
        // A missing /sys/bus/pci/devices means no sysfs (or no PCI), not a
        // mistyped address: say that instead.
        let devices = self.root.join("bus/pci/devices");
        if let Err(error) = std::fs::metadata(&devices) {
            return Err(PciError::Sysfs {
                path: devices,
                error,
            });
        }
        let dir = self.device_dir(addr);
        match std::fs::metadata(&dir) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(PciError::DeviceNotFound { addr: *addr })
            }
            Err(error) => Err(PciError::Sysfs { path: dir, error }),
        }
    }

    /// Vendor, device and class of the function.
    pub fn ids(&self, addr: &PciAddress) -> Result<PciIds, PciError> {
        self.check_exists(addr)?;
        let dir = self.device_dir(addr);
        let vendor = read_hex(&dir.join("vendor"), u16::MAX as u64)?;
        let device = read_hex(&dir.join("device"), u16::MAX as u64)?;
        let class = read_hex(&dir.join("class"), 0xff_ffff)?;
        // read_hex bounded each value, so the casts keep every bit.
        Ok(PciIds {
            vendor: vendor as u16,
            device: device as u16,
            class: class as u32,
        })
    }

    /// The driver the function is bound to (the last part of its `driver`
    /// link), None if none.
    pub fn driver(&self, addr: &PciAddress) -> Result<Option<String>, PciError> {
        self.check_exists(addr)?;
        link_name(&self.device_dir(addr).join("driver"))
    }

    /// The function's IOMMU group (its `iommu_group` link). No link means
    /// the IOMMU is off: [`PciError::IommuOff`].
    pub fn iommu_group(&self, addr: &PciAddress) -> Result<u32, PciError> {
        self.check_exists(addr)?;
        let link = self.device_dir(addr).join("iommu_group");
        let Some(name) = link_name(&link)? else {
            return Err(PciError::IommuOff {
                addr: *addr,
                driver: self.driver(addr)?,
            });
        };
        name.parse().map_err(|_| PciError::SysfsFormat {
            path: link,
            content: name,
        })
    }

    /// Every member of IOMMU group `group` and its driver, sorted by name.
    pub fn group_members(&self, group: u32) -> Result<Vec<GroupMember>, PciError> {
        let dir = self.group_dir(group).join("devices");
        let entries = std::fs::read_dir(&dir).map_err(|error| PciError::Sysfs {
            path: dir.clone(),
            error,
        })?;
        let mut members = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| PciError::Sysfs {
                path: dir.clone(),
                error,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Each entry links to the member's device directory, so its
            // `driver` link is reached through it, PCI function or not.
            let driver = link_name(&entry.path().join("driver"))?;
            members.push(GroupMember { name, driver });
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(members)
    }

    /// Length of BAR `bar` (0..=5) from the function's `resource` file, None
    /// if the BAR is not implemented.
    pub fn bar_len(&self, addr: &PciAddress, bar: usize) -> Result<Option<u64>, PciError> {
        self.check_exists(addr)?;
        let path = self.device_dir(addr).join("resource");
        let text = std::fs::read_to_string(&path).map_err(|error| PciError::Sysfs {
            path: path.clone(),
            error,
        })?;
        let bad = || PciError::SysfsFormat {
            path: path.clone(),
            content: text.clone(),
        };
        // One line per resource: "0x<start> 0x<end> 0x<flags>"; BARs first.
        let line = text.lines().nth(bar).ok_or_else(bad)?;
        let mut fields = line.split_whitespace().map(parse_hex);
        let (Some(Some(start)), Some(Some(end)), Some(Some(_flags))) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        if start == 0 && end == 0 {
            return Ok(None);
        }
        if end < start {
            return Err(bad());
        }
        Ok(Some(end - start + 1))
    }

    /// Every check that sysfs can answer before VFIO opens the function, in
    /// the order that gives the most useful first error:
    ///
    /// 1. the function exists;
    /// 2. it has an IOMMU group (checked before the binding because binding
    ///    to vfio-pci fails without an IOMMU, so "bind it" would send the
    ///    user to a step that cannot work);
    /// 3. it is bound to vfio-pci;
    /// 4. every other member of its group allows VFIO ([`GroupMember::allows_vfio`]).
    pub fn check_vfio_ready(&self, addr: &PciAddress) -> Result<PciFunctionInfo, PciError> {
        self.check_exists(addr)?;
        let iommu_group = self.iommu_group(addr)?;
        let driver = self.driver(addr)?;
        if !driver.as_deref().is_some_and(is_vfio_driver) {
            return Err(PciError::NotBoundToVfio {
                addr: *addr,
                driver,
            });
        }
        let group_members = self.group_members(iommu_group)?;
        let blocking: Vec<GroupMember> = group_members
            .iter()
            .filter(|m| !m.allows_vfio())
            .cloned()
            .collect();
        if !blocking.is_empty() {
            return Err(PciError::GroupNotViable {
                addr: *addr,
                group: iommu_group,
                blocking,
            });
        }
        Ok(PciFunctionInfo {
            addr: *addr,
            ids: self.ids(addr)?,
            iommu_group,
            group_members,
        })
    }
}

/// The last part of the target of symlink `link`, None if there is no link.
fn link_name(link: &Path) -> Result<Option<String>, PciError> {
    match std::fs::read_link(link) {
        Ok(target) => match target.file_name() {
            Some(name) => Ok(Some(name.to_string_lossy().into_owned())),
            None => Err(PciError::SysfsFormat {
                path: link.to_path_buf(),
                content: target.display().to_string(),
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(PciError::Sysfs {
            path: link.to_path_buf(),
            error,
        }),
    }
}

/// "0x8086" (optionally followed by a newline) as a number.
fn parse_hex(text: &str) -> Option<u64> {
    let digits = text.trim().strip_prefix("0x")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A sysfs file holding one hex number no larger than `max`.
fn read_hex(path: &Path, max: u64) -> Result<u64, PciError> {
    let text = std::fs::read_to_string(path).map_err(|error| PciError::Sysfs {
        path: path.to_path_buf(),
        error,
    })?;
    match parse_hex(&text) {
        Some(v) if v <= max => Ok(v),
        _ => Err(PciError::SysfsFormat {
            path: path.to_path_buf(),
            content: text,
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn parse_err(s: &str) -> AddressErrorKind {
        s.parse::<PciAddress>().unwrap_err().kind()
    }

    #[test]
    fn full_and_short_forms_parse() {
        assert_eq!(addr("0000:03:00.0"), PciAddress::new(0, 3, 0, 0).unwrap());
        assert_eq!(addr("03:00.0"), PciAddress::new(0, 3, 0, 0).unwrap());
        assert_eq!(
            addr("0001:af:1f.7"),
            PciAddress::new(1, 0xaf, 0x1f, 7).unwrap()
        );
        assert_eq!(
            addr("0000:AF:1F.7"),
            PciAddress::new(0, 0xaf, 0x1f, 7).unwrap()
        );
        // Intel VMD domains have five digits.
        assert_eq!(
            addr("10000:e1:00.0"),
            PciAddress::new(0x10000, 0xe1, 0, 0).unwrap()
        );
        assert_eq!(addr("ff:1f.7").bus(), 0xff);
    }

    #[test]
    fn display_is_the_full_sysfs_form() {
        assert_eq!(addr("3:0.0").to_string(), "0000:03:00.0");
        assert_eq!(addr("0001:af:1f.7").to_string(), "0001:af:1f.7");
        assert_eq!(addr("10000:e1:00.0").to_string(), "10000:e1:00.0");
        let a = addr("0000:5e:00.1");
        assert_eq!(a.to_string().parse::<PciAddress>().unwrap(), a);
    }

    #[test]
    fn bad_separators_are_format_errors() {
        for s in [
            "0000.03.00.0",
            "0000:03:00:0",
            "03-00.0",
            "0000:03.00.0",
            "0000:03:00.0.1",
            "0000:00:03:00.0",
            "03:00",
            "0000:03:00.",
            ":03:00.0",
            "0000::00.0",
            "0300.0",
        ] {
            assert_eq!(parse_err(s), AddressErrorKind::Format, "{s}");
        }
    }

    #[test]
    fn non_hex_parts_name_their_field() {
        assert_eq!(
            parse_err("000g:03:00.0"),
            AddressErrorKind::NotHex(AddressField::Domain)
        );
        assert_eq!(
            parse_err("0000:0x:00.0"),
            AddressErrorKind::NotHex(AddressField::Bus)
        );
        assert_eq!(
            parse_err("03:+1.0"),
            AddressErrorKind::NotHex(AddressField::Device)
        );
        assert_eq!(
            parse_err("03:00. "),
            AddressErrorKind::NotHex(AddressField::Function)
        );
        assert_eq!(
            parse_err(" 03:00.0"),
            AddressErrorKind::NotHex(AddressField::Bus)
        );
    }

    #[test]
    fn out_of_range_parts_are_refused_with_their_value() {
        assert_eq!(
            parse_err("0000:03:20.0"),
            AddressErrorKind::OutOfRange {
                field: AddressField::Device,
                value: 0x20
            }
        );
        assert_eq!(
            parse_err("03:00.8"),
            AddressErrorKind::OutOfRange {
                field: AddressField::Function,
                value: 8
            }
        );
        assert_eq!(
            parse_err("100:00.0"),
            AddressErrorKind::OutOfRange {
                field: AddressField::Bus,
                value: 0x100
            }
        );
        assert_eq!(
            parse_err("100000000:00:00.0"),
            AddressErrorKind::OutOfRange {
                field: AddressField::Domain,
                value: 0x1_0000_0000
            }
        );
        assert_eq!(
            parse_err("fffffffffffffffffff:00:00.0"),
            AddressErrorKind::OutOfRange {
                field: AddressField::Domain,
                value: u64::MAX
            }
        );
        assert_eq!(PciAddress::new(0, 0, 0x20, 0), None);
        assert_eq!(PciAddress::new(0, 0, 0, 8), None);
    }

    #[test]
    fn empty_is_its_own_error_and_messages_show_a_valid_address() {
        let e = "".parse::<PciAddress>().unwrap_err();
        assert_eq!(e.kind(), AddressErrorKind::Empty);
        let msg = e.to_string();
        assert!(msg.contains("0000:03:00.0"), "{msg}");
        assert!(msg.contains("03:00.0"), "{msg}");
        let msg = "03:20.0".parse::<PciAddress>().unwrap_err().to_string();
        assert!(
            msg.starts_with("invalid PCI address `03:20.0`: device 0x20 is above 0x1f"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    /// A fake sysfs tree in a fresh temporary directory, removed on drop.
    pub(crate) struct FakeSysfs {
        pub(crate) root: PathBuf,
    }

    impl FakeSysfs {
        pub(crate) fn new() -> FakeSysfs {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let root = std::env::temp_dir().join(format!(
                "drivers-fake-sysfs-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
            std::fs::create_dir_all(root.join("bus/pci/drivers")).unwrap();
            std::fs::create_dir_all(root.join("kernel/iommu_groups")).unwrap();
            FakeSysfs { root }
        }

        pub(crate) fn sysfs(&self) -> Sysfs {
            Sysfs::new(&self.root)
        }

        /// A function with a 16 KiB BAR0, in `group` (if any), bound to `driver` (if any).
        pub(crate) fn add(&self, addr: &str, driver: Option<&str>, group: Option<u32>) {
            let dir = self.root.join("bus/pci/devices").join(addr);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("vendor"), "0x1b36\n").unwrap();
            std::fs::write(dir.join("device"), "0x0010\n").unwrap();
            std::fs::write(dir.join("class"), "0x010802\n").unwrap();
            let mut resource =
                String::from("0x00000000fe000000 0x00000000fe003fff 0x0000000000140204\n");
            for _ in 1..13 {
                resource.push_str("0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
            }
            std::fs::write(dir.join("resource"), resource).unwrap();
            if let Some(driver) = driver {
                let d = self.root.join("bus/pci/drivers").join(driver);
                std::fs::create_dir_all(&d).unwrap();
                symlink(&d, dir.join("driver")).unwrap();
            }
            if let Some(group) = group {
                let g = self
                    .root
                    .join("kernel/iommu_groups")
                    .join(group.to_string());
                std::fs::create_dir_all(g.join("devices")).unwrap();
                symlink(&g, dir.join("iommu_group")).unwrap();
                symlink(&dir, g.join("devices").join(addr)).unwrap();
            }
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn sysfs_reads_ids_driver_group_and_bar() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("nvme"), Some(7));
        let sysfs = fake.sysfs();
        let a = addr("03:00.0");
        assert_eq!(
            sysfs.ids(&a).unwrap(),
            PciIds {
                vendor: 0x1b36,
                device: 0x0010,
                class: 0x010802
            }
        );
        assert_eq!(sysfs.driver(&a).unwrap().as_deref(), Some("nvme"));
        assert_eq!(sysfs.iommu_group(&a).unwrap(), 7);
        assert_eq!(sysfs.bar_len(&a, 0).unwrap(), Some(0x4000));
        assert_eq!(sysfs.bar_len(&a, 1).unwrap(), None);
        assert_eq!(
            sysfs.group_members(7).unwrap(),
            vec![GroupMember {
                name: "0000:03:00.0".into(),
                driver: Some("nvme".into())
            }]
        );
    }

    #[test]
    fn missing_device_is_named_with_the_listing_hint() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(7));
        let err = fake
            .sysfs()
            .check_vfio_ready(&addr("0000:04:00.0"))
            .unwrap_err();
        assert!(
            matches!(err, PciError::DeviceNotFound { addr: a } if a == addr("04:00.0")),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "no PCI device 0000:04:00.0; list devices with `lspci -D` or \
             `hw-setup/devbind.sh status`"
        );
    }

    #[test]
    fn missing_sysfs_is_not_reported_as_a_missing_device() {
        let sysfs = Sysfs::new("/nonexistent-sysfs-root");
        let err = sysfs.check_exists(&addr("03:00.0")).unwrap_err();
        assert!(matches!(err, PciError::Sysfs { .. }), "{err:?}");
    }

    #[test]
    fn device_bound_to_nvme_is_not_bound_to_vfio() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("nvme"), Some(7));
        let err = fake.sysfs().check_vfio_ready(&addr("03:00.0")).unwrap_err();
        match &err {
            PciError::NotBoundToVfio { addr: a, driver } => {
                assert_eq!(*a, addr("03:00.0"));
                assert_eq!(driver.as_deref(), Some("nvme"));
            }
            other => panic!("expected NotBoundToVfio, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("bound to nvme"), "{msg}");
        assert!(
            msg.contains("`hw-setup/devbind.sh bind 0000:03:00.0`"),
            "{msg}"
        );
    }

    #[test]
    fn device_without_a_driver_is_not_bound_to_vfio() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", None, Some(7));
        let err = fake.sysfs().check_vfio_ready(&addr("03:00.0")).unwrap_err();
        assert!(
            matches!(err, PciError::NotBoundToVfio { driver: None, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("bound to no driver"));
    }

    #[test]
    fn no_iommu_group_means_the_iommu_is_off() {
        let fake = FakeSysfs::new();
        // Bound to nvme as well: the IOMMU is reported first, because
        // binding to vfio-pci cannot work without it.
        fake.add("0000:03:00.0", Some("nvme"), None);
        let err = fake.sysfs().check_vfio_ready(&addr("03:00.0")).unwrap_err();
        assert!(
            matches!(err, PciError::IommuOff { addr: a, .. } if a == addr("03:00.0")),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("intel_iommu=on"), "{msg}");
        assert!(msg.contains("amd_iommu=on"), "{msg}");
        assert!(msg.contains("hw-setup/check-iommu.sh"), "{msg}");
    }

    #[test]
    fn group_member_on_a_host_driver_makes_the_group_not_viable() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(7));
        fake.add("0000:03:00.1", Some("ixgbe"), Some(7));
        fake.add("0000:00:01.0", Some("pcieport"), Some(7)); // allowed
        fake.add("0000:03:00.2", None, Some(7)); // allowed
        let err = fake.sysfs().check_vfio_ready(&addr("03:00.0")).unwrap_err();
        match &err {
            PciError::GroupNotViable {
                addr: a,
                group,
                blocking,
            } => {
                assert_eq!(*a, addr("03:00.0"));
                assert_eq!(*group, 7);
                assert_eq!(
                    blocking,
                    &vec![GroupMember {
                        name: "0000:03:00.1".into(),
                        driver: Some("ixgbe".into())
                    }]
                );
            }
            other => panic!("expected GroupNotViable, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("0000:03:00.1 (bound to ixgbe)"), "{msg}");
        assert!(
            msg.contains("`hw-setup/devbind.sh bind 0000:03:00.1`"),
            "{msg}"
        );
    }

    #[test]
    fn viable_group_bound_to_vfio_is_ready() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(7));
        fake.add("0000:03:00.1", Some("vfio-pci"), Some(7));
        fake.add("0000:00:01.0", Some("pcieport"), Some(7));
        fake.add("0000:04:00.0", Some("nvme"), Some(8)); // another group: irrelevant
        let info = fake.sysfs().check_vfio_ready(&addr("03:00.0")).unwrap();
        assert_eq!(info.addr, addr("03:00.0"));
        assert_eq!(info.iommu_group, 7);
        assert_eq!(info.ids.class, 0x010802);
        let names: Vec<&str> = info.group_members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["0000:00:01.0", "0000:03:00.0", "0000:03:00.1"]);
    }

    #[test]
    fn malformed_sysfs_files_are_format_errors() {
        let fake = FakeSysfs::new();
        fake.add("0000:03:00.0", Some("vfio-pci"), Some(7));
        let dir = fake.root.join("bus/pci/devices/0000:03:00.0");
        std::fs::write(dir.join("vendor"), "8086\n").unwrap(); // no 0x
        let err = fake.sysfs().ids(&addr("03:00.0")).unwrap_err();
        assert!(matches!(err, PciError::SysfsFormat { .. }), "{err:?}");
        std::fs::write(dir.join("vendor"), "0x18086\n").unwrap(); // too wide
        assert!(fake.sysfs().ids(&addr("03:00.0")).is_err());
    }
}
