//! Device strings: how a user names a device on a command line.
//!
//! A device string is either a PCI address (`0000:03:00.0` or `03:00.0`),
//! opened through VFIO, or `emu:MODEL[,key=value...]`, an emulated device:
//! `emu:nvme,size=1G`, `emu:nvme,file=disk.img,lba=4096`.
#![forbid(unsafe_code)]

use emu::RunMode;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed device string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A PCI function, to be opened through VFIO.
    Pci(drivers::pci::PciAddress),
    /// An emulated NVMe controller.
    EmuNvme(EmuNvmeSpec),
    /// An emulated NIC port.
    EmuNic(EmuNicSpec),
}

/// Options of `emu:igb`, `emu:i350` and `emu:ixgbe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmuNicSpec {
    /// The chip modelled.
    pub chip: drivers::nic::Chip,
    /// Where the port's frames go (`wire=`; default `loop`): `pair:NAME`,
    /// `loop`, `pcap:FILE`, `pcap-in:FILE`, `unix:PATH`, `tap:IFNAME`.
    pub wire: String,
    /// MAC address (`mac=02:00:00:00:00:01`); default a locally administered
    /// address unique in the process.
    pub mac: Option<[u8; 6]>,
    /// RX and TX queues the model has (`queues=`; default: the chip's).
    pub queues: Option<u16>,
    /// How the model runs (`mode=inline|threaded`; default threaded).
    pub mode: RunMode,
    /// 802.3x flow control with the peer (`pause=on|off`; default off).
    pub flow_control: bool,
    /// Pull the port off the bus this long after it is opened
    /// (`remove-after=SECONDS`): a surprise removal, all its registers then
    /// read all ones. For trying how an app takes a NIC that goes away.
    pub remove_after: Option<std::time::Duration>,
    /// Take the link down this long after the port is opened, for this long
    /// (`link-down=AT[:FOR]`, seconds; FOR left out: for good; AT 0: the
    /// port opens with its link down): a pulled cable, for trying how an
    /// app waits for the link and takes a link lost mid-run.
    pub link_down: Option<LinkDown>,
}

/// When an emulated port's link goes down, and for how long (`link-down=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkDown {
    /// After the port is opened.
    pub at: std::time::Duration,
    /// How long it stays down; None: for good.
    pub duration: Option<std::time::Duration>,
}

/// Options of `emu:nvme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmuNvmeSpec {
    /// Size of each namespace in bytes (`size=`; default 1 GiB, or the file's
    /// size: its whole LBAs, with a warning when it has a tail beyond them; a
    /// file smaller than one LBA is an error).
    pub size: Option<u64>,
    /// Backing file (`file=`); RAM when absent.
    pub file: Option<PathBuf>,
    /// LBA size of every namespace (`lba=512|4096`; default 512).
    pub lba_size: u32,
    /// Number of namespaces (`namespaces=`; default 1). With a file, only 1.
    pub namespaces: u32,
    /// Identify MDTS (`mdts=`, 2^mdts x 4 KiB, 0 = unlimited; default 5 = 128 KiB).
    pub mdts: u8,
    /// CAP.MQES + 1: the largest queue (`mqes=`, entries; default 1024).
    pub queue_entries: u32,
    /// I/O queues the controller grants at most (`queues=`; default 64).
    pub max_io_queues: u16,
    /// How the model runs (`mode=inline|threaded`; default threaded).
    pub mode: RunMode,
}

impl Default for EmuNvmeSpec {
    fn default() -> Self {
        EmuNvmeSpec {
            size: None,
            file: None,
            lba_size: 512,
            namespaces: 1,
            mdts: 5,
            queue_entries: 1024,
            max_io_queues: 64,
            mode: RunMode::Threaded,
        }
    }
}

/// Why a device string was not understood. Each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpecError {
    /// Neither a PCI address nor `emu:`.
    NotADevice(String, String),
    /// `emu:` with a model we do not have.
    UnknownModel(String),
    /// An option the model does not take.
    UnknownOption {
        /// The model.
        model: &'static str,
        /// The option given.
        option: String,
        /// The options the model takes.
        valid: &'static str,
    },
    /// An option given twice (`size=1M,size=2M`).
    Repeated(String),
    /// An option value that makes no sense.
    BadValue {
        /// The option.
        option: String,
        /// The value given.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
}

impl fmt::Display for DeviceSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpecError::NotADevice(s, why) => write!(
                f,
                "'{s}' is not a device: {why}; give a PCI address like 0000:03:00.0 \
                 (see `hw-setup/devbind.sh status`) or an emulated device like emu:nvme,size=1G"
            ),
            DeviceSpecError::UnknownModel(m) => write!(
                f,
                "unknown emulated device model '{m}'; the models are: nvme (e.g. emu:nvme,size=1G), \
                 igb, i350, ixgbe (e.g. emu:igb,wire=pair:a)"
            ),
            DeviceSpecError::UnknownOption {
                model,
                option,
                valid,
            } => write!(
                f,
                "emu:{model} has no option '{option}'; its options are: {valid}"
            ),
            DeviceSpecError::Repeated(option) => write!(
                f,
                "{option}= is given twice in the device string; give each option once"
            ),
            DeviceSpecError::BadValue {
                option,
                value,
                expected,
            } => write!(f, "bad value '{value}' for {option}: expected {expected}"),
        }
    }
}

impl std::error::Error for DeviceSpecError {}

const NVME_OPTIONS: &str = "size=SIZE (e.g. 1G, 512M), file=PATH, lba=512|4096, namespaces=N, \
                            mdts=N (0-16), mqes=ENTRIES (2-65536), queues=N (1-65535), mode=inline|threaded";

/// Parse a size with an optional binary suffix: `4096`, `4k`, `128K`, `1G`, `2T`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    // Accept 4k, 4K, 4kb, 4KiB alike: all binary.
    let s = s
        .strip_suffix("ib")
        .or_else(|| {
            s.strip_suffix('b')
                .filter(|r| r.ends_with(['k', 'm', 'g', 't']))
        })
        .unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

const NIC_OPTIONS: &str = "wire=pair:NAME|loop|pcap:FILE|pcap-in:FILE|unix:PATH|tap:IFNAME, \
                           mac=XX:XX:XX:XX:XX:XX, queues=N, mode=inline|threaded, pause=on|off, \
                           remove-after=SECONDS, link-down=AT[:FOR] (seconds)";

fn parse_emu_nic(
    chip: drivers::nic::Chip,
    model: &'static str,
    options: &str,
) -> Result<EmuNicSpec, DeviceSpecError> {
    let mut spec = EmuNicSpec {
        chip,
        wire: "loop".into(),
        mac: None,
        queues: None,
        mode: RunMode::Threaded,
        flow_control: false,
        remove_after: None,
        link_down: None,
    };
    let mut seen = Vec::new();
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        once(&mut seen, k)?;
        match k {
            "wire" if !v.is_empty() => spec.wire = v.to_string(),
            "pause" => {
                spec.flow_control = match v {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad(k, v, "on or off")),
                }
            }
            "wire" => return Err(bad(k, v, "a wire like pair:NAME, loop or pcap:FILE")),
            "mac" => {
                let mac = v
                    .parse::<spec::net::MacAddr>()
                    .ok()
                    .filter(|m| !m.is_multicast())
                    .map(<[u8; 6]>::from)
                    .ok_or_else(|| bad(k, v, "a unicast MAC address like 02:00:00:00:00:01"))?;
                spec.mac = Some(mac);
            }
            "queues" => {
                spec.queues = Some(
                    v.parse()
                        .ok()
                        .filter(|n| (1..=128).contains(n))
                        .ok_or_else(|| bad(k, v, "a number from 1 to 128"))?,
                )
            }
            "mode" => spec.mode = parse_mode(k, v)?,
            "remove-after" => {
                let secs = crate::parse_seconds(v)
                    .map_err(|_| bad(k, v, "seconds after the port opens, e.g. 2 or 0.5"))?;
                spec.remove_after = Some(std::time::Duration::from_secs_f64(secs));
            }
            "link-down" => spec.link_down = Some(parse_link_down(k, v)?),
            _ => {
                return Err(DeviceSpecError::UnknownOption {
                    model,
                    option: k.to_string(),
                    valid: NIC_OPTIONS,
                })
            }
        }
    }
    Ok(spec)
}

/// `link-down=AT[:FOR]`: seconds after opening, and seconds down.
fn parse_link_down(k: &str, v: &str) -> Result<LinkDown, DeviceSpecError> {
    let expected = "AT[:FOR] in seconds: down AT after the port opens, for FOR \
                    (left out: for good), e.g. 2:0.5 or 0:3";
    let secs = |s: &str| {
        crate::parse_seconds(s)
            .map(std::time::Duration::from_secs_f64)
            .map_err(|_| bad(k, v, expected))
    };
    let (at, duration) = match v.split_once(':') {
        Some((at, d)) => (secs(at)?, Some(secs(d)?)),
        None => (secs(v)?, None),
    };
    Ok(LinkDown { at, duration })
}

/// The `mode=` option of an emulated device.
fn parse_mode(k: &str, v: &str) -> Result<RunMode, DeviceSpecError> {
    match v {
        "inline" => Ok(RunMode::Inline),
        "threaded" => Ok(RunMode::Threaded),
        _ => Err(bad(k, v, "inline or threaded")),
    }
}

/// Refuses an option given a second time (`size=1M,size=2M`): which one
/// was meant is a guess, so neither is taken.
fn once<'a>(seen: &mut Vec<&'a str>, option: &'a str) -> Result<(), DeviceSpecError> {
    if seen.contains(&option) {
        return Err(DeviceSpecError::Repeated(option.to_string()));
    }
    seen.push(option);
    Ok(())
}

fn bad(option: &str, value: &str, expected: &'static str) -> DeviceSpecError {
    DeviceSpecError::BadValue {
        option: option.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn parse_emu_nvme(options: &str) -> Result<EmuNvmeSpec, DeviceSpecError> {
    let mut spec = EmuNvmeSpec::default();
    let mut seen = Vec::new();
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        once(&mut seen, k)?;
        match k {
            "size" => {
                spec.size = Some(
                    parse_size(v)
                        .filter(|&s| s > 0)
                        .ok_or_else(|| bad(k, v, "a size like 1G, 512M or 65536"))?,
                )
            }
            "file" if !v.is_empty() => spec.file = Some(PathBuf::from(v)),
            "file" => return Err(bad(k, v, "a path, e.g. file=disk.img")),
            "lba" => {
                spec.lba_size = match v {
                    "512" => 512,
                    "4096" | "4k" | "4K" => 4096,
                    _ => return Err(bad(k, v, "512 or 4096")),
                }
            }
            "namespaces" => {
                spec.namespaces = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| bad(k, v, "a number from 1 to 1024"))?
            }
            "mdts" => {
                spec.mdts = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= 16)
                    .ok_or_else(|| bad(k, v, "a number from 0 (no limit) to 16"))?
            }
            "mqes" => {
                spec.queue_entries = v
                    .parse()
                    .ok()
                    .filter(|n| (2..=65536).contains(n))
                    .ok_or_else(|| bad(k, v, "queue entries from 2 to 65536"))?
            }
            "queues" => {
                spec.max_io_queues = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad(k, v, "a number from 1 to 65535"))?
            }
            "mode" => spec.mode = parse_mode(k, v)?,
            _ => {
                return Err(DeviceSpecError::UnknownOption {
                    model: "nvme",
                    option: k.to_string(),
                    valid: NVME_OPTIONS,
                })
            }
        }
    }
    if spec.file.is_some() && spec.namespaces > 1 {
        return Err(bad(
            "namespaces",
            &spec.namespaces.to_string(),
            "1 when file= is given (one file backs one namespace)",
        ));
    }
    if let Some(size) = spec.size {
        if size % spec.lba_size as u64 != 0 {
            return Err(bad(
                "size",
                &size.to_string(),
                "a multiple of the LBA size (lba=512 or 4096)",
            ));
        }
    }
    Ok(spec)
}

impl FromStr for DeviceSpec {
    type Err = DeviceSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("emu:") {
            let (model, options) = rest.split_once(',').unwrap_or((rest, ""));
            return match model {
                "nvme" => Ok(DeviceSpec::EmuNvme(parse_emu_nvme(options)?)),
                "igb" => Ok(DeviceSpec::EmuNic(parse_emu_nic(
                    drivers::nic::Chip::I82576,
                    "igb",
                    options,
                )?)),
                "i350" => Ok(DeviceSpec::EmuNic(parse_emu_nic(
                    drivers::nic::Chip::I350,
                    "i350",
                    options,
                )?)),
                "ixgbe" => Ok(DeviceSpec::EmuNic(parse_emu_nic(
                    drivers::nic::Chip::X82599,
                    "ixgbe",
                    options,
                )?)),
                _ => Err(DeviceSpecError::UnknownModel(model.to_string())),
            };
        }
        s.parse::<drivers::pci::PciAddress>()
            .map(DeviceSpec::Pci)
            .map_err(|e| DeviceSpecError::NotADevice(s.to_string(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("128K"), Some(128 << 10));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("2kb"), Some(2048));
        assert_eq!(parse_size("1Gi"), None);
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn emu_nvme_strings() {
        let d: DeviceSpec = "emu:nvme,size=1G".parse().unwrap();
        assert_eq!(
            d,
            DeviceSpec::EmuNvme(EmuNvmeSpec {
                size: Some(1 << 30),
                ..EmuNvmeSpec::default()
            })
        );
        let d: DeviceSpec = "emu:nvme,file=disk.img,lba=4096,mode=inline,mdts=0"
            .parse()
            .unwrap();
        let DeviceSpec::EmuNvme(n) = d else {
            panic!("not nvme")
        };
        assert_eq!(n.file, Some(PathBuf::from("disk.img")));
        assert_eq!(n.lba_size, 4096);
        assert_eq!(n.mode, RunMode::Inline);
        assert_eq!(n.mdts, 0);
        assert!(matches!(
            "emu:nvme".parse::<DeviceSpec>(),
            Ok(DeviceSpec::EmuNvme(_))
        ));
    }

    #[test]
    fn emu_nic_strings() {
        let d: DeviceSpec = "emu:ixgbe,wire=pair:a,mac=02:00:00:00:00:07,queues=4,mode=inline"
            .parse()
            .unwrap();
        assert_eq!(
            d,
            DeviceSpec::EmuNic(EmuNicSpec {
                chip: drivers::nic::Chip::X82599,
                wire: "pair:a".into(),
                mac: Some([2, 0, 0, 0, 0, 7]),
                queues: Some(4),
                mode: RunMode::Inline,
                flow_control: false,
                remove_after: None,
                link_down: None,
            })
        );
        let DeviceSpec::EmuNic(n) = "emu:igb".parse().unwrap() else {
            panic!("not a nic")
        };
        assert_eq!(
            (n.chip, n.wire.as_str()),
            (drivers::nic::Chip::I82576, "loop")
        );
        let e = "emu:igb,mac=01:00:00:00:00:01"
            .parse::<DeviceSpec>()
            .unwrap_err();
        assert!(e.to_string().contains("unicast"));
        let e = "emu:igb,mac=02:00:00:00:00"
            .parse::<DeviceSpec>()
            .unwrap_err();
        assert!(matches!(e, DeviceSpecError::BadValue { .. }));
        let DeviceSpec::EmuNic(n) = "emu:igb,remove-after=1.5".parse().unwrap() else {
            panic!("not a nic")
        };
        assert_eq!(n.remove_after, Some(std::time::Duration::from_millis(1500)));
        for bad in ["nan", "-1", "", "soon"] {
            let e = format!("emu:igb,remove-after={bad}")
                .parse::<DeviceSpec>()
                .unwrap_err();
            assert!(e.to_string().contains("for remove-after"), "{e}");
        }
        let DeviceSpec::EmuNic(n) = "emu:igb,link-down=2:0.5".parse().unwrap() else {
            panic!("not a nic")
        };
        assert_eq!(
            n.link_down,
            Some(LinkDown {
                at: std::time::Duration::from_secs(2),
                duration: Some(std::time::Duration::from_millis(500)),
            })
        );
        let DeviceSpec::EmuNic(n) = "emu:ixgbe,link-down=0".parse().unwrap() else {
            panic!("not a nic")
        };
        assert_eq!(
            n.link_down,
            Some(LinkDown {
                at: std::time::Duration::ZERO,
                duration: None,
            })
        );
        for bad in ["", ":", "1:", ":1", "-1:2", "1:x", "1:2:3", "soon"] {
            let e = format!("emu:igb,link-down={bad}")
                .parse::<DeviceSpec>()
                .unwrap_err();
            assert!(
                e.to_string().contains("for link-down: expected AT[:FOR]"),
                "{e}"
            );
        }
        let e = "emu:ixgbe,size=1G".parse::<DeviceSpec>().unwrap_err();
        assert!(e.to_string().contains("wire=pair:NAME"));
    }

    #[test]
    fn bad_strings_say_what_to_do() {
        let e = "emu:floppy".parse::<DeviceSpec>().unwrap_err();
        assert_eq!(e, DeviceSpecError::UnknownModel("floppy".into()));
        assert!(e.to_string().contains("emu:nvme,size=1G"));
        let e = "emu:nvme,colour=red".parse::<DeviceSpec>().unwrap_err();
        assert!(
            matches!(e, DeviceSpecError::UnknownOption { ref option, .. } if option == "colour")
        );
        assert!(e.to_string().contains("size=SIZE"));
        let e = "emu:nvme,lba=1000".parse::<DeviceSpec>().unwrap_err();
        assert!(e.to_string().contains("512 or 4096"));
        let e = "emu:nvme,size=1000".parse::<DeviceSpec>().unwrap_err();
        assert!(e.to_string().contains("multiple of the LBA size"));
        let e = "emu:nvme,file=a,namespaces=2"
            .parse::<DeviceSpec>()
            .unwrap_err();
        assert!(matches!(e, DeviceSpecError::BadValue { .. }));
        let e = "emu:nvme,size=1M,lba=4096,size=2M"
            .parse::<DeviceSpec>()
            .unwrap_err();
        assert_eq!(e, DeviceSpecError::Repeated("size".into()));
        assert!(e.to_string().contains("size= is given twice"));
        let e = "emu:igb,wire=loop,wire=pair:a"
            .parse::<DeviceSpec>()
            .unwrap_err();
        assert_eq!(e, DeviceSpecError::Repeated("wire".into()));
        let e = "disk0".parse::<DeviceSpec>().unwrap_err();
        assert!(matches!(e, DeviceSpecError::NotADevice(..)));
        assert!(e.to_string().contains("0000:03:00.0"));
    }
}
