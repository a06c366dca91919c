//! Identify data (NVMe 1.4 §5.15) parsed into [`ControllerInfo`] and
//! [`NamespaceInfo`]. The controller wrote these bytes, so every value the
//! driver relies on is range checked here, once, before use.
#![forbid(unsafe_code)]

use super::error::NvmeError;
use super::prp::PAGE_SIZE;
use spec::nvme::{cns, cqe, id_ctrl, id_ns, reg, sqe};
use std::fmt;
use std::time::Duration;

/// One Identify data structure.
pub(crate) type IdentifyData = [u8; cns::DATA_SIZE];

fn u16_at(d: &IdentifyData, at: usize) -> u16 {
    u16::from_le_bytes([d[at], d[at + 1]])
}

fn u32_at(d: &IdentifyData, at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn u64_at(d: &IdentifyData, at: usize) -> u64 {
    u32_at(d, at) as u64 | (u32_at(d, at + 4) as u64) << 32
}

/// An ASCII field, space padded on the right (§1.5): trimmed, and anything
/// that is not printable ASCII shown as '?'.
fn ascii(d: &IdentifyData, range: std::ops::Range<usize>) -> String {
    let s: String = d[range]
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else if b == 0 {
                ' '
            } else {
                '?'
            }
        })
        .collect();
    s.trim().to_string()
}

/// An NVMe specification version (the VS register).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NvmeVersion {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u8,
    /// Tertiary version.
    pub tertiary: u8,
}

impl NvmeVersion {
    /// Decode the VS register.
    pub fn from_register(vs: u32) -> Self {
        NvmeVersion {
            major: reg::vs::MJR.get(vs) as u16,
            minor: reg::vs::MNR.get(vs) as u8,
            tertiary: reg::vs::TER.get(vs) as u8,
        }
    }
}

impl fmt::Display for NvmeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.tertiary)
    }
}

/// What the driver knows about the controller: Identify Controller, the
/// capabilities register, and what was negotiated at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerInfo {
    /// PCI Vendor ID.
    pub vid: u16,
    /// PCI Subsystem Vendor ID.
    pub ssvid: u16,
    /// Serial number.
    pub serial: String,
    /// Model number.
    pub model: String,
    /// Firmware revision.
    pub firmware: String,
    /// Maximum Data Transfer Size in bytes; None: the controller sets no limit.
    pub mdts_bytes: Option<u64>,
    /// Largest transfer of one command this driver issues, in bytes: MDTS,
    /// capped by [`super::NvmeOptions::max_transfer`]; a multiple of 4 KiB.
    pub max_transfer: u64,
    /// Largest queue the controller supports, in entries (CAP.MQES + 1).
    pub mqes: u32,
    /// Doorbell stride exponent: doorbells are `4 << dstrd` bytes apart.
    pub dstrd: u8,
    /// Specification version the controller implements.
    pub version: NvmeVersion,
    /// Controller ID.
    pub cntlid: u16,
    /// Number of Namespaces: the largest valid NSID.
    pub nn: u32,
    /// I/O queue pairs the controller granted (Set Features, Number of Queues).
    pub io_queues: u16,
    /// A volatile write cache is present (Flush matters).
    pub vwc: bool,
    /// Optional NVM Command Support bits (ONCS).
    pub oncs: u16,
    /// Maximum outstanding commands across all queues (0: not reported).
    pub maxcmd: u16,
    /// Worst-case time for CSTS.RDY to change (CAP.TO).
    pub ready_timeout: Duration,
}

/// Worst-case RDY transition time from CAP.TO (500 ms units). A controller
/// reporting 0 gets one unit, not an immediate timeout.
pub(crate) fn ready_timeout(cap: u64) -> Duration {
    Duration::from_millis(500 * reg::cap::TO.get(cap).max(1))
}

/// An entry-size nibble pair (SQES/CQES) must allow `want` (log2 bytes).
/// Zero (not reported by some old or emulated controllers) is tolerated.
fn check_entry_size(value: u8, want: u8, what: &str) -> Result<(), NvmeError> {
    let min = id_ctrl::ENTRY_SIZE_MIN.get(value);
    let max = id_ctrl::ENTRY_SIZE_MAX.get(value);
    if value != 0 && !(min <= want && want <= max) {
        return Err(NvmeError::Unsupported(format!(
            "{what} is {value:#04x}: entries of {min}..={max} (log2 bytes), \
             but this driver uses {} bytes",
            1u64 << want
        )));
    }
    Ok(())
}

impl ControllerInfo {
    /// Parse Identify Controller data, with CAP and VS read from the
    /// registers. `max_transfer_cap` is the driver's own limit (bytes).
    /// `io_queues` is filled in later, when negotiated.
    pub(crate) fn parse(
        d: &IdentifyData,
        cap: u64,
        vs: u32,
        max_transfer_cap: u64,
    ) -> Result<Self, NvmeError> {
        check_entry_size(d[id_ctrl::SQES], sqe::SIZE_LOG2, "Identify SQES")?;
        check_entry_size(d[id_ctrl::CQES], cqe::SIZE_LOG2, "Identify CQES")?;
        let nn = u32_at(d, id_ctrl::NN);
        if nn == u32::MAX {
            return Err(NvmeError::DeviceMisbehaved(
                "Identify Controller reports NN = FFFFFFFFh, the broadcast NSID".into(),
            ));
        }
        // MDTS is a power of two in units of the minimum memory page size
        // (CAP.MPSMIN), and 0 means no limit: MDTS 20 is 4 GiB, not 1 MiB.
        let mdts = u64::from(d[id_ctrl::MDTS]);
        let shift = 12 + reg::cap::MPSMIN.get(cap) + mdts;
        let mdts_bytes = (mdts != 0 && shift < 63).then(|| 1u64 << shift);
        let cap_bytes = (max_transfer_cap / PAGE_SIZE).max(1) * PAGE_SIZE;
        let max_transfer = mdts_bytes.map_or(cap_bytes, |m| m.min(cap_bytes));
        Ok(ControllerInfo {
            vid: u16_at(d, id_ctrl::VID),
            ssvid: u16_at(d, id_ctrl::SSVID),
            serial: ascii(d, id_ctrl::SN),
            model: ascii(d, id_ctrl::MN),
            firmware: ascii(d, id_ctrl::FR),
            mdts_bytes,
            max_transfer,
            mqes: reg::cap::MQES.get(cap) as u32 + 1,
            dstrd: reg::cap::DSTRD.get(cap) as u8,
            version: NvmeVersion::from_register(vs),
            cntlid: u16_at(d, id_ctrl::CNTLID),
            nn,
            io_queues: 0,
            vwc: id_ctrl::VWC_PRESENT.is_set(d[id_ctrl::VWC]),
            oncs: u16_at(d, id_ctrl::ONCS),
            maxcmd: u16_at(d, id_ctrl::MAXCMD),
            ready_timeout: ready_timeout(cap),
        })
    }
}

/// One LBA format a namespace supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbaFormat {
    /// Bytes of data per logical block; 0 if the entry is unused (LBADS < 9).
    pub data_size: u32,
    /// Bytes of metadata per logical block.
    pub metadata_size: u16,
}

/// An active namespace (Identify Namespace, NVM Command Set §4.1.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Namespace ID.
    pub nsid: u32,
    /// Namespace Size in logical blocks (NSZE): LBAs 0..size_blocks exist.
    pub size_blocks: u64,
    /// Namespace Capacity in logical blocks (NCAP).
    pub capacity_blocks: u64,
    /// Namespace Utilization in logical blocks (NUSE).
    pub utilization_blocks: u64,
    /// Bytes per logical block of the format in use (512 to 64 KiB).
    pub lba_size: u32,
    /// Metadata bytes per logical block of the format in use. This driver
    /// does no I/O to namespaces with metadata.
    pub metadata_size: u16,
    /// Every LBA format the namespace supports (NLBAF + 1 entries).
    pub lba_formats: Vec<LbaFormat>,
    /// Index of the format in use (FLBAS).
    pub formatted_index: u8,
}

/// LBADS values this driver accepts: 512 B to 64 KiB blocks.
const LBADS_RANGE: std::ops::RangeInclusive<u32> = 9..=16;
/// Most LBA formats a namespace can list (NLBAF is 0's based, up to 63 in NVMe 2.0).
const MAX_LBA_FORMATS: usize = 64;

impl NamespaceInfo {
    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_blocks * self.lba_size as u64
    }

    /// Parse Identify Namespace data for `nsid`, an active namespace.
    pub(crate) fn parse(nsid: u32, d: &IdentifyData) -> Result<Self, NvmeError> {
        let bad =
            |why: String| NvmeError::DeviceMisbehaved(format!("Identify Namespace {nsid}: {why}"));
        let nlbaf = d[id_ns::NLBAF] as usize;
        if nlbaf >= MAX_LBA_FORMATS {
            return Err(bad(format!(
                "NLBAF is {nlbaf}, more than {MAX_LBA_FORMATS} LBA formats"
            )));
        }
        let flbas = d[id_ns::FLBAS];
        // With more than 16 formats, FLBAS bits 6:5 are the index's upper bits (NVMe 2.0).
        let mut index = id_ns::FLBAS_INDEX.get(flbas) as usize;
        if nlbaf >= 16 {
            index |= (id_ns::FLBAS_INDEX_HIGH.get(flbas) as usize) << id_ns::FLBAS_INDEX.width;
        }
        if index > nlbaf {
            return Err(bad(format!(
                "FLBAS selects LBA format {index} but NLBAF lists only formats 0..={nlbaf}"
            )));
        }
        let lba_formats: Vec<LbaFormat> = (0..=nlbaf)
            .map(|i| {
                let e = u32_at(d, id_ns::LBAF0 + 4 * i);
                let lbads = id_ns::LBAF_LBADS.get(e);
                LbaFormat {
                    data_size: if (9..32).contains(&lbads) {
                        1 << lbads
                    } else {
                        0
                    },
                    metadata_size: id_ns::LBAF_MS.get(e) as u16,
                }
            })
            .collect();
        let current = u32_at(d, id_ns::LBAF0 + 4 * index);
        let lbads = id_ns::LBAF_LBADS.get(current);
        if !LBADS_RANGE.contains(&lbads) {
            return Err(bad(format!(
                "the LBA format in use ({index}) has LBADS {lbads}, outside {}..={} (512 B to 64 KiB blocks)",
                LBADS_RANGE.start(),
                LBADS_RANGE.end()
            )));
        }
        let nsze = u64_at(d, id_ns::NSZE);
        let ncap = u64_at(d, id_ns::NCAP);
        let nuse = u64_at(d, id_ns::NUSE);
        if nsze == 0 {
            return Err(bad("an active namespace with a size of 0 blocks".into()));
        }
        // NUSE <= NCAP <= NSZE (NVMe 1.4 §5.15.2.1, Identify Namespace
        // bytes 0-23): anything else is not a namespace this driver can size.
        if ncap > nsze {
            return Err(bad(format!(
                "capacity {ncap} blocks is larger than the size {nsze} blocks"
            )));
        }
        if nuse > ncap {
            return Err(bad(format!(
                "utilization (NUSE) {nuse} blocks is larger than the capacity (NCAP) {ncap} blocks"
            )));
        }
        if nsze.checked_mul(1 << lbads).is_none() {
            return Err(bad(format!(
                "{nsze} blocks of 2^{lbads} bytes overflow a 64-bit byte count"
            )));
        }
        Ok(NamespaceInfo {
            nsid,
            size_blocks: nsze,
            capacity_blocks: ncap,
            utilization_blocks: nuse,
            lba_size: 1 << lbads,
            metadata_size: id_ns::LBAF_MS.get(current) as u16,
            lba_formats,
            formatted_index: index as u8,
        })
    }
}

/// Parse an Active Namespace ID list (CNS 02h) requested for NSIDs above
/// `after`. Returns the NSIDs and whether the list was full (then more may
/// follow above the last one). Each must be above `after`, increasing, and
/// at most `nn`.
pub(crate) fn parse_namespace_list(
    d: &IdentifyData,
    after: u32,
    nn: u32,
) -> Result<(Vec<u32>, bool), NvmeError> {
    let mut list = Vec::new();
    let mut last = after;
    for i in 0..cns::NAMESPACE_LIST_ENTRIES {
        let nsid = u32_at(d, 4 * i);
        if nsid == 0 {
            return Ok((list, false));
        }
        if nsid <= last || nsid > nn {
            return Err(NvmeError::DeviceMisbehaved(format!(
                "active namespace list entry {i} is NSID {nsid}, after NSID {last} \
                 (entries must increase, above {after}, up to NN = {nn})"
            )));
        }
        list.push(nsid);
        last = nsid;
    }
    Ok((list, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_data(
        nsze: u64,
        ncap: u64,
        nlbaf: u8,
        flbas: u8,
        formats: &[(u8, u16)],
    ) -> Box<IdentifyData> {
        let mut d = Box::new([0u8; cns::DATA_SIZE]);
        d[id_ns::NSZE..id_ns::NSZE + 8].copy_from_slice(&nsze.to_le_bytes());
        d[id_ns::NCAP..id_ns::NCAP + 8].copy_from_slice(&ncap.to_le_bytes());
        d[id_ns::NUSE..id_ns::NUSE + 8].copy_from_slice(&ncap.to_le_bytes());
        d[id_ns::NLBAF] = nlbaf;
        d[id_ns::FLBAS] = flbas;
        for (i, &(lbads, ms)) in formats.iter().enumerate() {
            let e = id_ns::LBAF_LBADS.value(u32::from(lbads)) | id_ns::LBAF_MS.value(u32::from(ms));
            d[id_ns::LBAF0 + 4 * i..id_ns::LBAF0 + 4 * i + 4].copy_from_slice(&e.to_le_bytes());
        }
        d
    }

    #[test]
    fn namespace_with_two_formats_parses() {
        let d = ns_data(1 << 21, 1 << 21, 1, 1, &[(9, 0), (12, 0)]);
        let ns = NamespaceInfo::parse(1, &d).unwrap();
        assert_eq!(ns.lba_size, 4096);
        assert_eq!(ns.formatted_index, 1);
        assert_eq!(ns.size_bytes(), 8 << 30);
        assert_eq!(
            ns.lba_formats,
            vec![
                LbaFormat {
                    data_size: 512,
                    metadata_size: 0
                },
                LbaFormat {
                    data_size: 4096,
                    metadata_size: 0
                }
            ]
        );
    }

    fn expect_misbehaved(r: Result<NamespaceInfo, NvmeError>, needle: &str) {
        match r {
            Err(NvmeError::DeviceMisbehaved(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected DeviceMisbehaved({needle}), got {other:?}"),
        }
    }

    #[test]
    fn lbads_out_of_range_is_refused() {
        expect_misbehaved(
            NamespaceInfo::parse(1, &ns_data(100, 100, 0, 0, &[(8, 0)])),
            "LBADS 8",
        );
        expect_misbehaved(
            NamespaceInfo::parse(1, &ns_data(100, 100, 0, 0, &[(0, 0)])),
            "LBADS 0",
        );
        expect_misbehaved(
            NamespaceInfo::parse(1, &ns_data(100, 100, 0, 0, &[(17, 0)])),
            "LBADS 17",
        );
        // Only the format in use must be valid; unused entries read as 0.
        let ns = NamespaceInfo::parse(1, &ns_data(100, 100, 1, 1, &[(40, 0), (9, 8)])).unwrap();
        assert_eq!(ns.lba_formats[0].data_size, 0);
        assert_eq!((ns.lba_size, ns.metadata_size), (512, 8));
    }

    #[test]
    fn flbas_beyond_nlbaf_is_refused() {
        expect_misbehaved(
            NamespaceInfo::parse(3, &ns_data(100, 100, 0, 1, &[(9, 0), (12, 0)])),
            "FLBAS selects LBA format 1",
        );
        expect_misbehaved(
            NamespaceInfo::parse(3, &ns_data(100, 100, 64, 0, &[(9, 0)])),
            "NLBAF is 64",
        );
    }

    #[test]
    fn sizes_must_be_consistent() {
        expect_misbehaved(
            NamespaceInfo::parse(1, &ns_data(0, 0, 0, 0, &[(9, 0)])),
            "size of 0",
        );
        expect_misbehaved(
            NamespaceInfo::parse(1, &ns_data(10, 11, 0, 0, &[(9, 0)])),
            "capacity 11",
        );
        expect_misbehaved(
            NamespaceInfo::parse(1, &ns_data(u64::MAX / 2, 1, 0, 0, &[(12, 0)])),
            "overflow",
        );
        // NUSE above NCAP (thin provisioning allows only below).
        let mut d = ns_data(10, 8, 0, 0, &[(9, 0)]);
        d[id_ns::NUSE..id_ns::NUSE + 8].copy_from_slice(&9u64.to_le_bytes());
        expect_misbehaved(NamespaceInfo::parse(1, &d), "NUSE) 9");
        d[id_ns::NUSE..id_ns::NUSE + 8].copy_from_slice(&8u64.to_le_bytes());
        assert_eq!(NamespaceInfo::parse(1, &d).unwrap().utilization_blocks, 8);
    }

    fn ctrl_data(mdts: u8, sqes: u8, cqes: u8, nn: u32) -> Box<IdentifyData> {
        let mut d = Box::new([0u8; cns::DATA_SIZE]);
        d[id_ctrl::VID..id_ctrl::VID + 2].copy_from_slice(&0x1b36u16.to_le_bytes());
        d[id_ctrl::SN].copy_from_slice(b"SER123              ");
        let mut mn = [b' '; 40];
        mn[..9].copy_from_slice(b"Emu NVMe\x01");
        d[id_ctrl::MN].copy_from_slice(&mn);
        d[id_ctrl::FR].copy_from_slice(b"1.0\0\0\0\0\0");
        d[id_ctrl::MDTS] = mdts;
        d[id_ctrl::SQES] = sqes;
        d[id_ctrl::CQES] = cqes;
        d[id_ctrl::NN..id_ctrl::NN + 4].copy_from_slice(&nn.to_le_bytes());
        d[id_ctrl::VWC] = 1;
        d
    }

    const CAP: u64 = 1023 | 20 << 24 | 1 << 37;
    const VS: u32 = 0x0001_0400;

    #[test]
    fn controller_fields_and_mdts() {
        let i = ControllerInfo::parse(&ctrl_data(5, 0x66, 0x44, 2), CAP, VS, 2 << 20).unwrap();
        assert_eq!(i.vid, 0x1b36);
        assert_eq!(i.serial, "SER123");
        assert_eq!(i.model, "Emu NVMe?");
        assert_eq!(i.firmware, "1.0");
        assert_eq!(i.mdts_bytes, Some(128 << 10));
        assert_eq!(i.max_transfer, 128 << 10);
        assert_eq!(i.mqes, 1024);
        assert_eq!(i.version.to_string(), "1.4.0");
        assert_eq!(i.ready_timeout, Duration::from_secs(10));
        assert!(i.vwc);
        // MDTS 20 is 4 GiB (2^20 pages of 4 KiB), not 1 MiB; capped by the driver.
        let i = ControllerInfo::parse(&ctrl_data(20, 0x66, 0x44, 2), CAP, VS, 2 << 20).unwrap();
        assert_eq!(i.mdts_bytes, Some(4 << 30));
        assert_eq!(i.max_transfer, 2 << 20);
        // 0: no limit.
        let i = ControllerInfo::parse(&ctrl_data(0, 0x66, 0x44, 2), CAP, VS, 8 << 20).unwrap();
        assert_eq!(i.mdts_bytes, None);
        assert_eq!(i.max_transfer, 8 << 20);
    }

    #[test]
    fn controller_entry_sizes_and_nn_are_checked() {
        assert!(matches!(
            ControllerInfo::parse(&ctrl_data(5, 0x77, 0x44, 1), CAP, VS, 2 << 20),
            Err(NvmeError::Unsupported(m)) if m.contains("SQES")
        ));
        assert!(matches!(
            ControllerInfo::parse(&ctrl_data(5, 0x66, 0x33, 1), CAP, VS, 2 << 20),
            Err(NvmeError::Unsupported(m)) if m.contains("CQES")
        ));
        assert!(ControllerInfo::parse(&ctrl_data(5, 0, 0, 1), CAP, VS, 2 << 20).is_ok());
        assert!(matches!(
            ControllerInfo::parse(&ctrl_data(5, 0x66, 0x44, u32::MAX), CAP, VS, 2 << 20),
            Err(NvmeError::DeviceMisbehaved(_))
        ));
    }

    #[test]
    fn namespace_lists_are_checked() {
        let mut d = Box::new([0u8; cns::DATA_SIZE]);
        for (i, nsid) in [1u32, 2, 5].iter().enumerate() {
            d[4 * i..4 * i + 4].copy_from_slice(&nsid.to_le_bytes());
        }
        assert_eq!(
            parse_namespace_list(&d, 0, 8).unwrap(),
            (vec![1, 2, 5], false)
        );
        // Above NN, not increasing, not above the start.
        assert!(parse_namespace_list(&d, 0, 4).is_err());
        assert!(parse_namespace_list(&d, 1, 8).is_err());
        d[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(parse_namespace_list(&d, 0, 8).is_err());
        // A full list.
        let mut d = Box::new([0u8; cns::DATA_SIZE]);
        for i in 0..1024 {
            d[4 * i..4 * i + 4].copy_from_slice(&(i as u32 + 1).to_le_bytes());
        }
        let (l, full) = parse_namespace_list(&d, 0, 5000).unwrap();
        assert_eq!((l.len(), full), (1024, true));
    }
}
