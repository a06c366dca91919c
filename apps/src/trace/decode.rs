//! Decoding trace events field by field, by the names of the `spec` layout
//! tables: NVMe submission and completion queue entries (NVMe 1.4 §4.2,
//! §4.6), PRP lists (§4.3), controller registers (§3.1), and the Intel
//! advanced RX and TX descriptors (82576 datasheet §7.1.5, §7.2.2; 82599
//! datasheet §7.1.6, §7.2.3). What `dmatrace show` and `dmatrace decode`
//! print.
//!
//! The layouts are walked at run time ([`fields`]), so a field added to a
//! `spec` table shows up here without a change; this module only chooses
//! which fields a one-line summary leaves out when they are 0, and how a
//! value is written (addresses in hex, opcodes and status codes as the
//! specification writes them, `01h`).
#![forbid(unsafe_code)]

use drivers::trace::{DeviceKind, Kind, Queue};
use spec::nic::adv_desc::{self, rx, tx};
use spec::nvme::{self, admin, cqe, io, sqe};
use spec::{Field, Layout};
use std::fmt::Write as _;

/// A queue entry or descriptor format that can be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// An NVMe submission queue entry; `admin` for the admin queue (SQ0),
    /// whose opcodes differ from the NVM command set's.
    Sqe {
        /// The entry is on the admin submission queue.
        admin: bool,
    },
    /// An NVMe completion queue entry.
    Cqe,
    /// An advanced transmit data descriptor.
    TxData,
    /// An advanced transmit context descriptor.
    TxContext,
    /// An advanced transmit descriptor as the device wrote it back (DD).
    TxWriteBack,
    /// An advanced receive descriptor, read format (as the driver writes it).
    RxRead,
    /// An advanced receive descriptor, write-back format of a chip family.
    RxWriteBack(Family),
}

/// The Intel NIC families, whose receive write-backs name error bits
/// differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 82576 / I350 (the `igb` driver).
    I82576,
    /// 82599 (the `ixgbe` driver).
    I82599,
}

impl Family {
    /// The family of a traced device, if it is a NIC.
    pub fn of(kind: DeviceKind) -> Option<Family> {
        match kind {
            DeviceKind::Igb => Some(Family::I82576),
            DeviceKind::Ixgbe => Some(Family::I82599),
            DeviceKind::Nvme { .. } => None,
        }
    }
}

impl Entry {
    /// The `spec` layout of the entry.
    pub fn layout(self) -> &'static Layout {
        match self {
            Entry::Sqe { .. } => &sqe::LAYOUT,
            Entry::Cqe => &cqe::LAYOUT,
            Entry::TxData => &adv_desc::TX_DATA,
            Entry::TxContext => &adv_desc::TX_CONTEXT,
            Entry::TxWriteBack => &adv_desc::TX_WRITE_BACK,
            Entry::RxRead => &adv_desc::RX_READ,
            Entry::RxWriteBack(Family::I82576) => &adv_desc::RX_WRITE_BACK_82576,
            Entry::RxWriteBack(Family::I82599) => &adv_desc::RX_WRITE_BACK_82599,
        }
    }

    /// The short name a user types (`dmatrace decode sqe`).
    pub fn short_name(self) -> &'static str {
        match self {
            Entry::Sqe { .. } => "sqe",
            Entry::Cqe => "cqe",
            Entry::TxData => "tx-data",
            Entry::TxContext => "tx-context",
            Entry::TxWriteBack => "tx-writeback",
            Entry::RxRead => "rx-read",
            Entry::RxWriteBack(_) => "rx-writeback",
        }
    }

    /// The format of the bytes of a descriptor or queue-entry event
    /// (`desc_write`, `desc_read`, `fetch`, `write_back`) on `queue` of a
    /// device of `kind`; `None` for other events. For a NIC the format
    /// depends on who wrote the bytes: the driver writes (and the device
    /// fetches) the read format, the device writes back (and the driver
    /// reads) the write-back format; a TX descriptor the driver wrote is a
    /// data or a context descriptor by its DTYP.
    pub fn of_event(kind: Kind, queue: Queue, device: DeviceKind, data: &[u8]) -> Option<Entry> {
        let driver_format = match kind {
            Kind::DescWrite | Kind::Fetch => true,
            Kind::WriteBack | Kind::DescRead => false,
            _ => return None,
        };
        match (queue, driver_format) {
            (Queue::Sq(q), true) => Some(Entry::Sqe { admin: q == 0 }),
            (Queue::Cq(_), false) => Some(Entry::Cqe),
            (Queue::Tx(_), true) => {
                let ctl = u32_at(data, tx::CMD_TYPE_LEN)?;
                if tx::cmd_type_len::DTYP.get(ctl) == tx::cmd_type_len::DTYP_CONTEXT {
                    Some(Entry::TxContext)
                } else {
                    Some(Entry::TxData)
                }
            }
            (Queue::Tx(_), false) => Some(Entry::TxWriteBack),
            (Queue::Rx(_), true) => Some(Entry::RxRead),
            (Queue::Rx(_), false) => Some(Entry::RxWriteBack(Family::of(device)?)),
            _ => None,
        }
    }
}

/// The little-endian dword at `at`, if `data` holds it.
fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// One field of a layout, with its value in some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldValue {
    /// The word the field belongs to (`"CDW0"`).
    pub word: &'static str,
    /// The field's name; the word's own name for a word without fields
    /// (`"PRP1"`).
    pub name: &'static str,
    /// Width in bits.
    pub width: u32,
    /// Its value.
    pub value: u64,
}

/// Every field of `layout` in `data`, word by word in layout order, each
/// word's fields lowest bit first. Words `data` is too short for are left
/// out.
pub fn fields(layout: &Layout, data: &[u8]) -> Vec<FieldValue> {
    let mut out = Vec::new();
    for w in layout.words {
        let Some(v) = w.read(data) else { continue };
        if w.fields.is_empty() {
            out.push(FieldValue {
                word: w.name,
                name: w.name,
                width: 8 * w.bytes as u32,
                value: v,
            });
        }
        for f in w.fields {
            out.push(FieldValue {
                word: w.name,
                name: f.name,
                width: f.width,
                value: f.get(v),
            });
        }
    }
    out
}

/// How a value is written: addresses, hashes and command-specific dwords in
/// hex (`0x...`), opcodes and status codes as the NVMe specification writes
/// them (`01h`), counts and small fields in decimal.
pub fn format_value(name: &str, value: u64) -> String {
    match name {
        "OPC" | "SC" => format!("{value:02X}h"),
        "PACKET_TYPE" => format!("{value:03X}h"),
        "PRP1" | "PRP2" | "MPTR" | "ADDR" | "PKT_ADDR" | "HDR_ADDR" | "RSS_HASH" | "DW0"
        | "DW1" => format!("{value:#x}"),
        _ if name.starts_with("CDW") => format!("{value:#x}"),
        _ => value.to_string(),
    }
}

/// `NAME=value`.
fn pair(out: &mut String, name: &str, value: u64) {
    if !out.is_empty() {
        out.push(' ');
    }
    let _ = write!(out, "{name}={}", format_value(name, value));
}

/// The opcode's name in the NVMe specification: admin commands (§5) on the
/// admin queue, NVM command set commands (NVM Command Set §3) on the others.
pub fn opcode_name(admin_queue: bool, opc: u8) -> Option<&'static str> {
    opcode_names(admin_queue, opc).map(|(_, long)| long)
}

/// The short name (timeline slices, the Wireshark dissector's tables) and
/// the full name (the decoder's lines) of NVMe opcode `opc` on the admin
/// queue or an I/O queue: one table for every output.
pub fn opcode_names(admin_queue: bool, opc: u8) -> Option<(&'static str, &'static str)> {
    const ADMIN: &[(u8, &str, &str)] = &[
        (
            admin::DELETE_IO_SQ,
            "Delete I/O SQ",
            "Delete I/O Submission Queue",
        ),
        (
            admin::CREATE_IO_SQ,
            "Create I/O SQ",
            "Create I/O Submission Queue",
        ),
        (admin::GET_LOG_PAGE, "Get Log Page", "Get Log Page"),
        (
            admin::DELETE_IO_CQ,
            "Delete I/O CQ",
            "Delete I/O Completion Queue",
        ),
        (
            admin::CREATE_IO_CQ,
            "Create I/O CQ",
            "Create I/O Completion Queue",
        ),
        (admin::IDENTIFY, "Identify", "Identify"),
        (admin::ABORT, "Abort", "Abort"),
        (admin::SET_FEATURES, "Set Features", "Set Features"),
        (admin::GET_FEATURES, "Get Features", "Get Features"),
    ];
    const NVM: &[(u8, &str, &str)] = &[
        (io::FLUSH, "Flush", "Flush"),
        (io::WRITE, "Write", "Write"),
        (io::READ, "Read", "Read"),
    ];
    let table = if admin_queue { ADMIN } else { NVM };
    table
        .iter()
        .find(|(o, _, _)| *o == opc)
        .map(|&(_, short, long)| (short, long))
}

/// The command-specific fields of CDW10 and CDW11 (and CDW12) of the
/// commands the driver sends, from the `spec` field constants.
fn command_fields(admin_queue: bool, opc: u8) -> &'static [(&'static str, &'static [Field<u32>])] {
    use nvme::{cns, create_queue as cq, feature, get_log_page as glp};
    if !admin_queue {
        return match opc {
            // SLBA (CDW10-11) is printed as one 64-bit number by the caller.
            io::READ | io::WRITE => &[("CDW12", &[sqe::rw::NLB, sqe::rw::FUA, sqe::rw::LR])],
            _ => &[],
        };
    }
    match opc {
        admin::IDENTIFY => &[("CDW10", &[cns::CNS])],
        admin::CREATE_IO_SQ => &[
            ("CDW10", &[cq::QID, cq::QSIZE]),
            ("CDW11", &[cq::PC, cq::QPRIO, cq::CQID]),
        ],
        admin::CREATE_IO_CQ => &[
            ("CDW10", &[cq::QID, cq::QSIZE]),
            ("CDW11", &[cq::PC, cq::IEN, cq::IV]),
        ],
        admin::DELETE_IO_SQ | admin::DELETE_IO_CQ => &[("CDW10", &[cq::QID])],
        admin::SET_FEATURES | admin::GET_FEATURES => &[
            ("CDW10", &[feature::FID]),
            ("CDW11", &[feature::NSQ, feature::NCQ]),
        ],
        admin::GET_LOG_PAGE => &[("CDW10", &[glp::LID, glp::NUMDL]), ("CDW11", &[glp::NUMDU])],
        _ => &[],
    }
}

/// An SQE on one line: `OPC=01h Write CID=0 NSID=1 PRP1=0x... PRP2=0x...
/// SLBA=0 NLB=39`. FUSE, PSDT, CDW2, CDW3 and MPTR are shown when not 0;
/// CDW10-15 by the command's own field names where this module knows the
/// command, else as dwords when not 0. `prp2_note` follows PRP2 (what
/// `show` learned about it from the trace, e.g. `(list, 5 entries)`).
pub fn sqe_line(data: &[u8], admin_queue: bool, prp2_note: Option<&str>) -> String {
    let all = fields(&sqe::LAYOUT, data);
    let get = |name: &str| all.iter().find(|f| f.name == name).map(|f| f.value);
    let opc = get("OPC").unwrap_or(0) as u8;
    let special = command_fields(admin_queue, opc);
    let rw = !admin_queue && (opc == io::READ || opc == io::WRITE);
    let mut out = String::new();
    for f in &all {
        let always = matches!(f.name, "OPC" | "CID" | "NSID" | "PRP1" | "PRP2");
        let cdw = f.word.starts_with("CDW1");
        if cdw && (special.iter().any(|(w, _)| *w == f.word) || (rw && f.word == "CDW11")) {
            continue;
        }
        if rw && f.word == "CDW10" {
            let slba = f.value | get("CDW11").unwrap_or(0) << 32;
            pair(&mut out, "SLBA", slba);
            continue;
        }
        if !always && f.value == 0 {
            continue;
        }
        pair(&mut out, f.name, f.value);
        if f.name == "OPC" {
            out.push(' ');
            out.push_str(opcode_name(admin_queue, opc).unwrap_or("(unknown opcode)"));
        }
        if f.name == "PRP2" {
            if let Some(n) = prp2_note {
                out.push(' ');
                out.push_str(n);
            }
        }
    }
    for (word, fs) in special {
        let Some(v) = sqe::LAYOUT
            .words
            .iter()
            .find(|w| w.name == *word)
            .and_then(|w| w.read(data))
        else {
            continue;
        };
        for f in *fs {
            let x = f.get(v as u32);
            // Flags are shown when set; numbers always.
            if f.width > 1 || x != 0 {
                pair(&mut out, f.name, u64::from(x));
            }
        }
    }
    out
}

/// A CQE on one line: `CID=0 SQHD=1 SQID=1 P=1 SC=00h Successful
/// Completion`. DW0, DW1 and the status fields besides P and SC are shown
/// when not 0; the status's name (§4.6.1.2) ends the line.
pub fn cqe_line(data: &[u8]) -> String {
    let all = fields(&cqe::LAYOUT, data);
    let get = |name: &str| all.iter().find(|f| f.name == name).map(|f| f.value);
    let mut out = String::new();
    if let Some(cid) = get("CID") {
        pair(&mut out, "CID", cid);
    }
    for f in &all {
        let always = matches!(f.name, "SQHD" | "SQID" | "P" | "SC");
        if f.name == "CID" || (!always && f.value == 0) {
            continue;
        }
        pair(&mut out, f.name, f.value);
    }
    if let (Some(sct), Some(sc)) = (get("SCT"), get("SC")) {
        out.push(' ');
        out.push_str(nvme::status_name(sct as u8, sc as u8).unwrap_or("(unnamed status)"));
    }
    out
}

/// Names of the bits of an RX write-back's PACKET_TYPE (82576 §7.1.5.2,
/// 82599 §7.1.6.2).
fn packet_type_names(v: u64) -> String {
    use rx::packet_type as p;
    let names = [
        (p::IPV4, "IPV4"),
        (p::IPV4_EX, "IPV4_EX"),
        (p::IPV6, "IPV6"),
        (p::IPV6_EX, "IPV6_EX"),
        (p::TCP, "TCP"),
        (p::UDP, "UDP"),
        (p::SCTP, "SCTP"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| v & u64::from(*b) != 0)
        .map(|(_, n)| *n)
        .collect();
    set.join(" ")
}

/// A NIC descriptor on one line: the fields that carry the descriptor's
/// meaning always, the others when not 0.
pub fn nic_line(entry: Entry, data: &[u8]) -> String {
    let always: &[&str] = match entry {
        Entry::TxData => &["ADDR", "DTALEN", "DTYP", "PAYLEN"],
        Entry::TxContext => &["MACLEN", "IPLEN", "DTYP"],
        Entry::TxWriteBack => &["DD"],
        Entry::RxRead => &["PKT_ADDR", "HDR_ADDR"],
        Entry::RxWriteBack(_) => &["DD", "EOP", "LENGTH"],
        Entry::Sqe { .. } | Entry::Cqe => &[],
    };
    let mut out = String::new();
    for f in fields(entry.layout(), data) {
        if f.value == 0 && !always.contains(&f.name) {
            continue;
        }
        pair(&mut out, f.name, f.value);
        match (entry, f.name) {
            (Entry::TxData | Entry::TxContext, "DTYP") => out.push_str(match f.value as u32 {
                tx::cmd_type_len::DTYP_DATA => " (data)",
                tx::cmd_type_len::DTYP_CONTEXT => " (context)",
                _ => " (not an advanced descriptor type)",
            }),
            (Entry::RxWriteBack(_), "PACKET_TYPE") => {
                let n = packet_type_names(f.value);
                if !n.is_empty() {
                    let _ = write!(out, " ({n})");
                }
            }
            _ => {}
        }
    }
    out
}

/// The one-line summary of `data` as `entry`.
pub fn line(entry: Entry, data: &[u8]) -> String {
    match entry {
        Entry::Sqe { admin } => sqe_line(data, admin, None),
        Entry::Cqe => cqe_line(data),
        _ => nic_line(entry, data),
    }
}

/// `data` (as `entry`) decoded in full: the summary line, then every word
/// with its value and every field of it, zeros included, for `dmatrace
/// decode`. An error names the expected length when `data` has another.
pub fn full(entry: Entry, data: &[u8]) -> Result<String, String> {
    let l = entry.layout();
    if data.len() != l.bytes {
        return Err(format!(
            "{} bytes given; {} is {} bytes ({} hex digits, {})",
            data.len(),
            article(l.name),
            l.bytes,
            2 * l.bytes,
            l.section
        ));
    }
    let mut out = format!("{} ({})\n{}\n", l.name, l.section, line(entry, data));
    for w in l.words {
        let Some(v) = w.read(data) else { continue };
        let _ = write!(
            out,
            "  {:<16} {:#0width$x}",
            w.name,
            v,
            width = 2 + 2 * w.bytes
        );
        let mut fs = String::new();
        for f in w.fields {
            pair(&mut fs, f.name, f.get(v));
        }
        if !fs.is_empty() {
            let _ = write!(out, "  {fs}");
        }
        out.push('\n');
    }
    Ok(out)
}

/// "an NVMe ..." / "a ...".
fn article(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U', 'N']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

/// The bytes of a hex string a user pasted: pairs of hex digits, with or
/// without whitespace between them.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(bad) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "'{bad}' is not a hex digit; give the bytes as hex pairs, e.g. 01 00 34 12 or 01003412"
        ));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "{} hex digits is not a whole number of bytes; give two digits a byte",
            digits.len()
        ));
    }
    Ok(digits
        .chunks(2)
        .map(|p| {
            // Both are hex digits (checked above).
            let hi = p[0].to_digit(16).unwrap_or(0);
            let lo = p[1].to_digit(16).unwrap_or(0);
            (hi * 16 + lo) as u8
        })
        .collect())
}

/// A register access on one line: the register's datasheet name and its
/// offset, the value, and for the NVMe controller registers of §3.1 their
/// fields (the ones not 0). `CC (0x14) = 0x460001: EN=1 IOSQES=6 IOCQES=4`.
pub fn register_line(device: DeviceKind, offset: u64, value: u64) -> String {
    let mut out = match device.reg_name(offset) {
        Some(n) => format!("{n} ({offset:#x}) = {value:#x}"),
        None => format!("{offset:#x} (unnamed) = {value:#x}"),
    };
    if let DeviceKind::Nvme { .. } = device {
        let word = nvme::reg::LAYOUT
            .words
            .iter()
            .find(|w| w.offset as u64 == offset);
        if let Some(w) = word {
            let mut fs = String::new();
            for f in w.fields {
                let v = f.get(value);
                if v != 0 {
                    pair(&mut fs, f.name, v);
                }
            }
            if !fs.is_empty() {
                let _ = write!(out, ": {fs}");
            }
        }
    }
    out
}

/// The PRP-list entries in `data` (the first ones the device read), one
/// address each; an entry with a non-zero offset is marked, since every
/// PRP-list entry must be page aligned (NVMe 1.4 §4.3).
pub fn prp_entries(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks_exact(nvme::prp::LAYOUT.bytes) {
        let v = nvme::prp::LAYOUT.words[0].read(chunk).unwrap_or(0);
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{v:#x}");
        let off = nvme::prp::OFFSET.get(v);
        if off != 0 {
            let _ = write!(out, " (OFFSET={off:#x}, not page aligned)");
        }
    }
    out
}

/// The first bytes of an Ethernet frame: `02:00:00:00:00:01 >
/// 02:00:00:00:00:02 type 0800h`, or the bytes in hex when they are fewer
/// than a header.
pub fn frame_header(data: &[u8]) -> String {
    match spec::net::ethernet::EthernetFrame::new_checked(data) {
        Ok(f) => format!(
            "{} > {} type {:04X}h",
            f.src_addr(),
            f.dst_addr(),
            f.ethertype()
        ),
        Err(_) => data.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    //! Byte vectors written by hand from the specifications' figures, not
    //! produced by the driver's or the models' encoders.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        parse_hex(s).unwrap()
    }

    /// NVMe 1.4 §4.2 Figure 104/105 and NVM Command Set §6.15 (Write):
    /// CDW0 = OPC 01h, CID 0x0007 (bits 31:16); NSID 1; PRP1 at bytes 24..32
    /// 0x0000_0001_0080_5040 (offset 0x40 in its page); PRP2 at 32..40
    /// 0x0000_0001_0080_2000; CDW10 (SLBA low) 0x10, CDW11 (SLBA high) 1;
    /// CDW12 NLB 39 (0x27) with FUA (bit 30).
    const WRITE_SQE: &str = "01 00 07 00  01 00 00 00  00 00 00 00  00 00 00 00
         00 00 00 00 00 00 00 00
         40 50 80 00 01 00 00 00
         00 20 80 00 01 00 00 00
         10 00 00 00  01 00 00 00  27 00 00 40  00 00 00 00
         00 00 00 00  00 00 00 00";

    #[test]
    fn a_write_sqe_from_the_spec_decodes_by_field_name() {
        let b = hex(WRITE_SQE);
        assert_eq!(b.len(), 64);
        assert_eq!(
            sqe_line(&b, false, Some("(list, 5 entries)")),
            "OPC=01h Write CID=7 NSID=1 PRP1=0x100805040 PRP2=0x100802000 (list, 5 entries) \
             SLBA=4294967312 NLB=39 FUA=1"
        );
        let f = fields(&sqe::LAYOUT, &b);
        let cid = f.iter().find(|f| f.name == "CID").unwrap();
        assert_eq!((cid.word, cid.value), ("CDW0", 7));
    }

    #[test]
    fn admin_commands_are_named_and_their_dwords_split() {
        // Identify (06h), CID 0x0102, PRP1 0x2000, CDW10 CNS = 01h (controller).
        let b = hex("06000201 00000000 00000000 00000000 0000000000000000 \
             0020000000000000 0000000000000000 01000000 00000000 00000000 \
             00000000 00000000 00000000");
        assert_eq!(
            sqe_line(&b, true, None),
            "OPC=06h Identify CID=258 NSID=0 PRP1=0x2000 PRP2=0x0 CNS=1"
        );
        // Create I/O Completion Queue (05h): QID 1, QSIZE 255 (0's based),
        // PC=1, IEN=0, IV=0 (§5.3 Figures 150-151).
        let mut c = vec![0u8; 64];
        c[0] = 0x05;
        c[40..44].copy_from_slice(&[0x01, 0x00, 0xff, 0x00]);
        c[44] = 0x01;
        assert_eq!(
            sqe_line(&c, true, None),
            "OPC=05h Create I/O Completion Queue CID=0 NSID=0 PRP1=0x0 PRP2=0x0 QID=1 QSIZE=255 PC=1 IV=0"
        );
        // The same opcode on an I/O queue is Write, not Create I/O SQ.
        assert!(sqe_line(&hex(WRITE_SQE), false, None).contains("Write"));
        let mut u = vec![0u8; 64];
        u[0] = 0x7f;
        u[44] = 0x09;
        assert_eq!(
            sqe_line(&u, false, None),
            "OPC=7Fh (unknown opcode) CID=0 NSID=0 PRP1=0x0 PRP2=0x0 CDW11=0x9"
        );
    }

    #[test]
    fn completions_from_the_spec_decode_with_their_status_names() {
        // §4.6 Figure 125: DW0 0, DW1 0, SQHD 1 (bytes 8-9), SQID 1 (10-11),
        // CID 0 (12-13), status word (14-15) = P only.
        let ok = hex("00000000 00000000 0100 0100 0000 0100");
        assert_eq!(
            cqe_line(&ok),
            "CID=0 SQHD=1 SQID=1 P=1 SC=00h Successful Completion"
        );
        // Status word 0xC502: P=0, SC=81h (bits 8:1 = 0x81 -> 0x102), SCT=2
        // (bits 11:9 -> 0x400), M (bit 14) and DNR (bit 15): 0xC000|0x400|0x102.
        let bad = hex("44332211 00000000 0500 0200 3412 02c5");
        assert_eq!(
            cqe_line(&bad),
            "CID=4660 DW0=0x11223344 SQHD=5 SQID=2 P=0 SC=81h SCT=2 M=1 DNR=1 Unrecovered Read Error"
        );
        // Generic 13h with phase 1: status word (0x13 << 1) | 1 = 0x27.
        let prp = hex("00000000 00000000 0000 0000 0900 2700");
        assert!(
            cqe_line(&prp).ends_with("SC=13h PRP Offset Invalid"),
            "{}",
            cqe_line(&prp)
        );
    }

    #[test]
    fn tx_data_and_context_descriptors_from_the_datasheets() {
        // 82599 §7.2.3.2.4 / 82576 §7.2.2.3: ADDR 0x12_3456_7000; CMD_TYPE_LEN
        // = DTALEN 60 (0x3c) | DTYP 0011b (bits 23:20) | DCMD EOP (24) IFCS
        // (25) RS (27) DEXT (29) = 0x2b30003c; OLINFO_STATUS PAYLEN 60 << 14
        // = 0x000f0000 with TXSM (bit 9) = 0x000f0200.
        let d = hex("00704563 12000000 3c00302b 00020f00");
        assert_eq!(
            Entry::of_event(Kind::DescWrite, Queue::Tx(0), DeviceKind::Ixgbe, &d),
            Some(Entry::TxData)
        );
        assert_eq!(
            nic_line(Entry::TxData, &d),
            "ADDR=0x1263457000 DTALEN=60 DTYP=3 (data) EOP=1 IFCS=1 RS=1 DEXT=1 TXSM=1 PAYLEN=60"
        );
        // Context (§7.2.3.2.3): VLAN_MACIP_LENS = IPLEN 20 | MACLEN 14 << 9
        // = 0x1c14; TYPE_TUCMD_MLHL = IPV4 (bit 10) | L4T UDP (00) | DTYP
        // 0010b << 20 | DEXT (29) = 0x20200400; MSS_L4LEN_IDX 0.
        let c = hex("141c0000 00000000 00042020 00000000");
        assert_eq!(
            Entry::of_event(Kind::Fetch, Queue::Tx(3), DeviceKind::Igb, &c),
            Some(Entry::TxContext)
        );
        assert_eq!(
            nic_line(Entry::TxContext, &c),
            "IPLEN=20 MACLEN=14 IPV4=1 DTYP=2 (context) DEXT=1"
        );
        // Write-back: only STATUS.DD (bit 0 of bytes 12..16).
        let wb = hex("00000000 00000000 00000000 01000000");
        assert_eq!(
            Entry::of_event(Kind::WriteBack, Queue::Tx(0), DeviceKind::Igb, &wb),
            Some(Entry::TxWriteBack)
        );
        assert_eq!(nic_line(Entry::TxWriteBack, &wb), "DD=1");
    }

    #[test]
    fn rx_read_and_write_back_formats_by_direction_and_chip() {
        // Read format (§7.1.6.1): packet buffer 0x1_0020_0000, header 0.
        let r = hex("00002000 01000000 00000000 00000000");
        assert_eq!(
            Entry::of_event(Kind::DescWrite, Queue::Rx(0), DeviceKind::Ixgbe, &r),
            Some(Entry::RxRead)
        );
        assert_eq!(
            nic_line(Entry::RxRead, &r),
            "PKT_ADDR=0x100200000 HDR_ADDR=0x0"
        );
        // Write-back (82599 §7.1.6.2): INFO = RSS type 1 (IPv4/TCP) |
        // packet type IPV4|TCP (0x11 << 4) = 0x111; RSS hash 0xdeadbeef;
        // STATUS_ERROR = DD|EOP (0x3) | bit 30 (L4E on the 82599, IPE on
        // the 82576) = 0x40000003; LENGTH 1514 (0x05ea); VLAN 0.
        let w = hex("11010000 efbeadde 03000040 ea050000");
        let e = Entry::of_event(Kind::WriteBack, Queue::Rx(1), DeviceKind::Ixgbe, &w).unwrap();
        assert_eq!(e, Entry::RxWriteBack(Family::I82599));
        assert_eq!(
            nic_line(e, &w),
            "RSS_TYPE=1 PACKET_TYPE=011h (IPV4 TCP) RSS_HASH=0xdeadbeef DD=1 EOP=1 L4E=1 LENGTH=1514"
        );
        let e = Entry::of_event(Kind::DescRead, Queue::Rx(1), DeviceKind::Igb, &w).unwrap();
        assert_eq!(e, Entry::RxWriteBack(Family::I82576));
        assert!(nic_line(e, &w).contains(" IPE=1 "), "{}", nic_line(e, &w));
        // Register events and frames are not entries.
        assert_eq!(
            Entry::of_event(Kind::RegWrite, Queue::Rx(1), DeviceKind::Igb, &w),
            None
        );
    }

    #[test]
    fn full_decodes_list_every_field_and_wrong_lengths_name_the_right_one() {
        let d = hex("00704563 12000000 3c00302b 00020f00");
        let text = full(Entry::TxData, &d).unwrap();
        assert!(text.contains("CMD_TYPE_LEN     0x2b30003c  DTALEN=60 DTYP=3 EOP=1 IFCS=1 RS=1 DEXT=1 VLE=0 TSE=0"), "{text}");
        assert!(text.contains("VLE=0"), "zeros are listed in full: {text}");
        let e = full(Entry::Sqe { admin: false }, &d).unwrap_err();
        assert!(
            e.contains("64 bytes (128 hex digits, NVMe 1.4 §4.2)"),
            "{e}"
        );
        assert!(e.starts_with("16 bytes given"), "{e}");
        let e = full(Entry::Cqe, &[0; 15]).unwrap_err();
        assert!(e.contains("16 bytes (32 hex digits, NVMe 1.4 §4.6)"), "{e}");
    }

    #[test]
    fn hex_with_or_without_spaces_and_bad_hex() {
        assert_eq!(hex("01 0a\tFF\n10"), vec![1, 10, 255, 16]);
        assert_eq!(hex("010aff10"), vec![1, 10, 255, 16]);
        assert!(parse_hex("0g")
            .unwrap_err()
            .contains("'g' is not a hex digit"));
        assert!(parse_hex("012").unwrap_err().contains("3 hex digits"));
    }

    #[test]
    fn registers_are_named_and_nvme_fields_split() {
        let k = DeviceKind::Nvme { dstrd: 0 };
        // CC = EN | IOSQES 6 << 16 | IOCQES 4 << 20 (§3.1.5).
        assert_eq!(
            register_line(k, 0x14, 0x0046_0001),
            "CC (0x14) = 0x460001: EN=1 IOSQES=6 IOCQES=4"
        );
        assert_eq!(
            register_line(k, 0x1008, 3),
            "SQ1 tail doorbell (0x1008) = 0x3"
        );
        assert_eq!(
            register_line(DeviceKind::Ixgbe, 0x1018, 5),
            "RDT[0] (0x1018) = 0x5"
        );
        assert_eq!(register_line(k, 0x18, 1), "0x18 (unnamed) = 0x1");
    }

    #[test]
    fn prp_list_entries_and_frames() {
        let l = hex("0060800001000000 0070800001000000 1080800001000000");
        assert_eq!(
            prp_entries(&l),
            "0x100806000 0x100807000 0x100808010 (OFFSET=0x10, not page aligned)"
        );
        let f = hex("020000000002 020000000001 0800 4500");
        assert_eq!(
            frame_header(&f),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 type 0800h"
        );
        assert_eq!(frame_header(&[1, 2]), "0102");
    }
}
