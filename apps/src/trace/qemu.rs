//! Our driver-side trace of an NVMe run against QEMU's own trace of the
//! same run (`dmatrace compare-qemu`).
//!
//! In the real-VFIO lane (`hw-setup/vm/run.sh`) our driver runs against
//! QEMU's `nvme` model, which is written by others. QEMU traces what its
//! model saw (`-trace enable=pci_nvme_...`, events and formats in QEMU's
//! `hw/nvme/trace-events`); our driver traces what it wrote (`--trace`).
//! If the two disagree on a command's CID, opcode or data pointer, one of
//! them is wrong about the bytes in the submission queue.
//!
//! QEMU's events read here (its log backend prints `NAME FORMATTED-TEXT`,
//! optionally after `PID@SECONDS.MICROSECONDS:`):
//!
//! | event | text | what it is |
//! |---|---|---|
//! | `pci_nvme_mmio_asqaddr` | `wrote MMIO, admin submission queue address=0x..` | ASQ written (low half, or all 64 bits) |
//! | `pci_nvme_mmio_asqaddr_hi` | `wrote MMIO, admin submission queue high half=0x.., new_address=0x..` | ASQ's high half written |
//! | `pci_nvme_mmio_start_success` | `setting controller enable bit succeeded` | CC.EN set: a session starts |
//! | `pci_nvme_admin_cmd` | `cid N sqid N opc 0x.. opname '..'` | an admin SQE taken for execution |
//! | `pci_nvme_io_cmd` | `cid N nsid 0x.. sqid N opc 0x.. opname '..'` | an I/O SQE taken for execution |
//! | `pci_nvme_map_prp` | `trans_len N len N prp1 0x.. prp2 0x.. num_prps N` | the data pointer of the command just taken, as the SQE holds it |
//! | `pci_nvme_create_cq` | `create completion queue, addr=0x.., cqid=N, ...` | Create I/O CQ's PRP1 |
//! | `pci_nvme_create_sq` | `create submission queue, addr=0x.., sqid=N, cqid=N, ...` | Create I/O SQ's PRP1 |
//! | `pci_nvme_enqueue_req_completion` | `cid N cqid N dw0 0x.. dw1 0x.. status 0x..` | a completion queued (status: the CQE's status field without the phase tag) |
//!
//! QEMU's events do not say which controller they are about, and one log
//! holds every run of a boot (the firmware's too). The session compared is
//! the first controller enable whose ASQ (admin submission queue base) is
//! the one our driver wrote: that is our run's enable when the traced run
//! is the first of ours in the log (the firmware's queues are elsewhere in
//! memory). The session ends at the next enable. QEMU's model takes the
//! commands of one submission queue in order and maps a command's data
//! before it takes the next (`nvme_process_sq`), so `map_prp` belongs to
//! the command before it; commands are compared queue by queue in
//! submission order, completions queue by queue in posting order.
#![forbid(unsafe_code)]

use super::TraceFile;
use drivers::trace::{DeviceKind, Kind, Queue};
use spec::nvme::{admin, cqe, io, reg, sqe};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;

/// The QEMU trace events the comparison needs, for `-trace enable=NAME`
/// (`hw-setup/vm/run.sh` enables these in the lane's boot).
pub const EVENTS: &[&str] = &[
    "pci_nvme_mmio_asqaddr",
    "pci_nvme_mmio_asqaddr_hi",
    "pci_nvme_mmio_start_success",
    "pci_nvme_admin_cmd",
    "pci_nvme_io_cmd",
    "pci_nvme_map_prp",
    "pci_nvme_create_cq",
    "pci_nvme_create_sq",
    "pci_nvme_enqueue_req_completion",
];

/// One event of QEMU's NVMe trace that the comparison reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuEvent {
    /// `pci_nvme_mmio_asqaddr`: ASQ written; a value above 32 bits is a
    /// 64-bit write of the whole register.
    AsqAddr(u64),
    /// `pci_nvme_mmio_asqaddr_hi`: ASQ's high half written; the register's
    /// new value.
    AsqAddrHi(u64),
    /// `pci_nvme_mmio_start_success`: the controller enabled.
    StartSuccess,
    /// `pci_nvme_admin_cmd`.
    AdminCmd {
        /// Command identifier.
        cid: u16,
        /// Submission queue (0).
        sqid: u16,
        /// Opcode.
        opc: u8,
    },
    /// `pci_nvme_io_cmd`.
    IoCmd {
        /// Command identifier.
        cid: u16,
        /// Namespace.
        nsid: u32,
        /// Submission queue.
        sqid: u16,
        /// Opcode.
        opc: u8,
    },
    /// `pci_nvme_map_prp`: the command's PRP entries as the SQE holds them.
    MapPrp {
        /// Bytes to transfer.
        len: u32,
        /// PRP1.
        prp1: u64,
        /// PRP2.
        prp2: u64,
    },
    /// `pci_nvme_create_cq` / `pci_nvme_create_sq`: the queue's base
    /// address (the command's PRP1).
    CreateQueue {
        /// The queue's base address.
        addr: u64,
    },
    /// `pci_nvme_enqueue_req_completion`.
    Completion {
        /// Command identifier.
        cid: u16,
        /// Completion queue.
        cqid: u16,
        /// Dword 0.
        dw0: u32,
        /// Dword 1.
        dw1: u32,
        /// The status field (CQE bits 31:17 of dword 3, without the phase tag).
        status: u16,
    },
}

/// The value after `key` in an event's text: `key VALUE` or `key=VALUE`,
/// words separated by spaces or commas.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty());
    while let Some(w) = words.next() {
        if w == key {
            return words.next();
        }
        if let Some(v) = w.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

/// Field `key` of an event's text as a number: `0x` hex (QEMU's PRIx
/// formats all print the prefix) or decimal, within `T`'s range.
fn num<T: TryFrom<u64>>(text: &str, key: &str) -> Result<T, String> {
    let v = field(text, key).ok_or_else(|| format!("no '{key}'"))?;
    let n = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    }
    .map_err(|_| format!("'{key}' is '{v}', not a number"))?;
    T::try_from(n).map_err(|_| format!("'{key}' {v} is out of range"))
}

/// The event of one line of QEMU's log, None for lines and events the
/// comparison does not read; an error for one of its events whose text
/// does not have the fields of its format.
pub fn parse_line(line: &str) -> Result<Option<QemuEvent>, String> {
    let line = line.trim_end();
    // `-msg timestamp=on` puts `PID@SECONDS.MICROSECONDS:` first.
    let line = match line.split_once(':') {
        Some((pre, rest))
            if pre.split_once('@').is_some_and(|(pid, time)| {
                !pid.is_empty()
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && !time.is_empty()
                    && time.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            }) =>
        {
            rest
        }
        _ => line,
    };
    let (name, text) = line.split_once(' ').unwrap_or((line, ""));
    let event = match name {
        "pci_nvme_mmio_asqaddr" => QemuEvent::AsqAddr(num(text, "address")?),
        "pci_nvme_mmio_asqaddr_hi" => QemuEvent::AsqAddrHi(num(text, "new_address")?),
        "pci_nvme_mmio_start_success" => QemuEvent::StartSuccess,
        "pci_nvme_admin_cmd" => QemuEvent::AdminCmd {
            cid: num(text, "cid")?,
            sqid: num(text, "sqid")?,
            opc: num(text, "opc")?,
        },
        "pci_nvme_io_cmd" => QemuEvent::IoCmd {
            cid: num(text, "cid")?,
            nsid: num(text, "nsid")?,
            sqid: num(text, "sqid")?,
            opc: num(text, "opc")?,
        },
        "pci_nvme_map_prp" => QemuEvent::MapPrp {
            len: num(text, "len")?,
            prp1: num(text, "prp1")?,
            prp2: num(text, "prp2")?,
        },
        "pci_nvme_create_cq" | "pci_nvme_create_sq" => QemuEvent::CreateQueue {
            addr: num(text, "addr")?,
        },
        "pci_nvme_enqueue_req_completion" => QemuEvent::Completion {
            cid: num(text, "cid")?,
            cqid: num(text, "cqid")?,
            dw0: num(text, "dw0")?,
            dw1: num(text, "dw1")?,
            status: num(text, "status")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(event))
}

/// A command as QEMU's model took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    /// Its line in the log (from 1).
    pub line: usize,
    /// Submission queue.
    pub sqid: u16,
    /// Command identifier.
    pub cid: u16,
    /// Opcode.
    pub opc: u8,
    /// Namespace (I/O commands; QEMU's admin event has none).
    pub nsid: Option<u32>,
    /// PRP1, PRP2 and the transfer length, when QEMU mapped its data.
    pub prp: Option<(u64, u64, u32)>,
    /// The queue base address of a Create I/O CQ/SQ.
    pub queue_addr: Option<u64>,
}

/// A completion as QEMU's model queued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCompletion {
    /// Its line in the log (from 1).
    pub line: usize,
    /// Command identifier.
    pub cid: u16,
    /// Completion queue.
    pub cqid: u16,
    /// Dword 0.
    pub dw0: u32,
    /// Dword 1.
    pub dw1: u32,
    /// Status field, without the phase tag.
    pub status: u16,
}

/// What QEMU's model did from one controller enable to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuSession {
    /// The line of its `pci_nvme_mmio_start_success` (from 1).
    pub line: usize,
    /// Which enable of the log it is (from 1).
    pub number: usize,
    /// ASQ when the controller was enabled.
    pub asq: u64,
    /// The commands taken, in log order.
    pub commands: Vec<QemuCommand>,
    /// The completions queued, in log order.
    pub completions: Vec<QemuCompletion>,
}

/// Read QEMU's log up to the end of the first session (controller
/// enable) whose ASQ is `asq`; reading stops there, so a long log costs
/// only its part up to the run compared. Errors name the line, or say
/// which enables the log has when none matches.
pub fn find_session(input: impl BufRead, asq: u64) -> Result<QemuSession, String> {
    let mut cur_asq = 0u64;
    let mut enables = 0usize;
    let mut others: Vec<u64> = Vec::new();
    let mut session: Option<QemuSession> = None;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("line {n}: {e}"))?;
        let Some(event) = parse_line(&line).map_err(|e| format!("line {n}: {e}: {line}"))? else {
            continue;
        };
        match event {
            QemuEvent::AsqAddr(v) if v > u64::from(u32::MAX) => cur_asq = v,
            QemuEvent::AsqAddr(v) => cur_asq = (cur_asq & !u64::from(u32::MAX)) | v,
            QemuEvent::AsqAddrHi(v) => cur_asq = v,
            QemuEvent::StartSuccess => {
                enables += 1;
                if session.is_some() {
                    break;
                }
                if cur_asq == asq {
                    session = Some(QemuSession {
                        line: n,
                        number: enables,
                        asq,
                        ..QemuSession::default()
                    });
                } else if !others.contains(&cur_asq) {
                    others.push(cur_asq);
                }
            }
            _ => {}
        }
        let Some(s) = session.as_mut() else { continue };
        match event {
            QemuEvent::AdminCmd { cid, sqid, opc } => s.commands.push(QemuCommand {
                line: n,
                sqid,
                cid,
                opc,
                nsid: None,
                prp: None,
                queue_addr: None,
            }),
            QemuEvent::IoCmd {
                cid,
                nsid,
                sqid,
                opc,
            } => s.commands.push(QemuCommand {
                line: n,
                sqid,
                cid,
                opc,
                nsid: Some(nsid),
                prp: None,
                queue_addr: None,
            }),
            QemuEvent::MapPrp { len, prp1, prp2 } => {
                let c = s
                    .commands
                    .last_mut()
                    .ok_or_else(|| format!("line {n}: pci_nvme_map_prp before any command"))?;
                // A command maps its data once; a second map is another
                // command's whose own event the log lacks.
                if c.prp.is_some() {
                    return Err(format!(
                        "line {n}: a second pci_nvme_map_prp for the command of line {}; is \
                         pci_nvme_admin_cmd or pci_nvme_io_cmd traced?",
                        c.line
                    ));
                }
                c.prp = Some((prp1, prp2, len));
            }
            QemuEvent::CreateQueue { addr } => {
                if let Some(c) = s.commands.last_mut() {
                    c.queue_addr = Some(addr);
                }
            }
            QemuEvent::Completion {
                cid,
                cqid,
                dw0,
                dw1,
                status,
            } => s.completions.push(QemuCompletion {
                line: n,
                cid,
                cqid,
                dw0,
                dw1,
                status,
            }),
            _ => {}
        }
    }
    session.ok_or_else(|| {
        if enables == 0 {
            "no controller enable (pci_nvme_mmio_start_success) in QEMU's log; trace these \
             events: -trace enable=pci_nvme_mmio_start_success (and the rest of \
             hw-setup/vm/run.sh's list)"
                .to_string()
        } else {
            let seen: Vec<String> = others.iter().map(|a| format!("{a:#x}")).collect();
            format!(
                "none of the {enables} controller enable(s) in QEMU's log has ASQ={asq:#x}, the \
                 admin queue our driver wrote (theirs: {}); is it the log of the same run?",
                seen.join(", ")
            )
        }
    })
}

/// A submission queue entry as our driver wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverCommand {
    /// The event's `seq`.
    pub seq: u64,
    /// Submission queue.
    pub sqid: u16,
    /// Slot.
    pub index: u32,
    /// Command identifier.
    pub cid: u16,
    /// Opcode.
    pub opc: u8,
    /// Namespace.
    pub nsid: u32,
    /// PRP1.
    pub prp1: u64,
    /// PRP2.
    pub prp2: u64,
}

/// A completion queue entry as our driver consumed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverCompletion {
    /// The event's `seq`.
    pub seq: u64,
    /// Completion queue.
    pub cqid: u16,
    /// Command identifier.
    pub cid: u16,
    /// Submission queue identifier.
    pub sqid: u16,
    /// Dword 0.
    pub dw0: u32,
    /// Dword 1.
    pub dw1: u32,
    /// The 16-bit phase and status word.
    pub status: u16,
}

/// The NVMe commands and completions of one device of a trace, and the
/// admin queue base its driver wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSide {
    /// The device's number in the trace.
    pub dev: u16,
    /// ASQ as written.
    pub asq: u64,
    /// SQEs written, in trace order.
    pub commands: Vec<DriverCommand>,
    /// CQEs consumed, in trace order.
    pub completions: Vec<DriverCompletion>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

/// The commands and completions of NVMe device `dev` of `t` (by default
/// its only NVMe device). An error when the trace cannot be compared: no
/// or several NVMe devices, dropped events, no ASQ write, short entries.
pub fn driver_side(t: &TraceFile, dev: Option<u16>) -> Result<DriverSide, String> {
    let nvme: Vec<u16> = (0..t.devices.len())
        .filter(|&d| matches!(t.devices[d].kind, DeviceKind::Nvme { .. }))
        .map(|d| d as u16)
        .collect();
    let dev = match dev {
        Some(d) if nvme.contains(&d) => d,
        Some(d) => {
            return Err(format!(
                "--dev {d} is not an NVMe device of the trace (its NVMe devices: {nvme:?})"
            ))
        }
        None => match nvme[..] {
            [d] => d,
            [] => return Err("the trace has no NVMe device".into()),
            _ => {
                return Err(format!(
                    "the trace has {} NVMe devices ({nvme:?}); pick one with --dev N",
                    nvme.len()
                ))
            }
        },
    };
    let dropped = t.dropped.get(dev as usize).copied().unwrap_or(0);
    if dropped > 0 {
        return Err(format!(
            "the trace dropped {dropped} event(s) of device {dev} after its buffer filled; \
             trace again with a larger --trace-events"
        ));
    }
    let (mut asq_lo, mut asq_hi) = (None, None);
    let mut commands = Vec::new();
    let mut completions = Vec::new();
    for e in t.events.iter().filter(|e| e.dev == dev) {
        let raw = e.raw.as_slice();
        match (e.kind, e.queue) {
            (Kind::RegWrite, _) if e.addr == reg::ASQ as u64 && asq_lo.is_none() => {
                asq_lo = Some(e.value);
                if e.len == 8 {
                    asq_hi = Some(e.value >> 32);
                }
            }
            (Kind::RegWrite, _) if e.addr == reg::ASQ as u64 + 4 && asq_hi.is_none() => {
                asq_hi = Some(e.value & u64::from(u32::MAX));
            }
            (Kind::DescWrite, Queue::Sq(sqid)) => {
                if raw.len() < sqe::SIZE {
                    return Err(format!(
                        "event {}: SQ{sqid}[{}] holds {} of the entry's {} bytes",
                        e.seq,
                        e.index,
                        raw.len(),
                        sqe::SIZE
                    ));
                }
                let cdw0 = le32(raw, sqe::CDW0);
                commands.push(DriverCommand {
                    seq: e.seq,
                    sqid,
                    index: e.index,
                    cid: sqe::cdw0::CID.get(cdw0) as u16,
                    opc: sqe::cdw0::OPC.get(cdw0) as u8,
                    nsid: le32(raw, sqe::NSID),
                    prp1: le64(raw, sqe::PRP1),
                    prp2: le64(raw, sqe::PRP2),
                });
            }
            (Kind::DescRead, Queue::Cq(cqid)) => {
                if raw.len() < cqe::SIZE {
                    return Err(format!(
                        "event {}: CQ{cqid}[{}] holds {} of the entry's {} bytes",
                        e.seq,
                        e.index,
                        raw.len(),
                        cqe::SIZE
                    ));
                }
                completions.push(DriverCompletion {
                    seq: e.seq,
                    cqid,
                    cid: le16(raw, cqe::CID),
                    sqid: le16(raw, cqe::SQID),
                    dw0: le32(raw, cqe::DW0),
                    dw1: le32(raw, cqe::DW1),
                    status: le16(raw, cqe::STATUS),
                });
            }
            _ => {}
        }
    }
    let asq = match (asq_lo, asq_hi) {
        (Some(lo), Some(hi)) => (lo & u64::from(u32::MAX)) | hi << 32,
        (Some(lo), None) => lo,
        _ => {
            return Err(format!(
                "no write of ASQ in the trace of device {dev}: the controller's enable is not \
                 in it, so its run cannot be found in QEMU's log"
            ))
        }
    };
    Ok(DriverSide {
        dev,
        asq,
        commands,
        completions,
    })
}

/// Whether a command moves data through PRP1/PRP2 (so QEMU's model maps
/// them and traces `pci_nvme_map_prp`): the commands our drivers send
/// that do.
fn transfers_data(admin_queue: bool, opc: u8) -> bool {
    if admin_queue {
        matches!(opc, admin::IDENTIFY | admin::GET_LOG_PAGE)
    } else {
        matches!(opc, io::READ | io::WRITE)
    }
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Each disagreement, one line each.
    pub mismatches: Vec<String>,
    /// Commands compared (CID, opcode, NSID of I/O commands).
    pub commands: usize,
    /// Of them, those whose PRP1 and PRP2 were compared with QEMU's map.
    pub prps: usize,
    /// Of them, Create I/O CQ/SQ whose PRP1 was compared with the queue
    /// address QEMU took.
    pub queue_addrs: usize,
    /// Completions compared (CID, DW0, DW1, status).
    pub completions: usize,
    /// Commands per submission queue.
    pub per_queue: BTreeMap<u16, usize>,
}

impl Comparison {
    /// One line saying what agreed.
    pub fn summary(&self, ours: &DriverSide, q: &QemuSession) -> String {
        let queues: Vec<String> = self
            .per_queue
            .iter()
            .map(|(sq, n)| format!("SQ{sq} {n}"))
            .collect();
        format!(
            "{} commands ({}): CID, opcode and NSID agree, PRP1/PRP2 of {} data commands and \
             the queue address of {} queue creations; {} completions: CID, DW0, DW1 and status \
             agree (QEMU's controller enable {} at line {}, ASQ={:#x})",
            self.commands,
            queues.join(", "),
            self.prps,
            self.queue_addrs,
            self.completions,
            q.number,
            q.line,
            ours.asq
        )
    }
}

/// Compare our driver's commands and completions with QEMU's session.
pub fn compare(ours: &DriverSide, q: &QemuSession) -> Comparison {
    let mut out = Comparison::default();
    let mut bad = |s: String| out.mismatches.push(s);
    let mut ours_by_sq: BTreeMap<u16, Vec<&DriverCommand>> = BTreeMap::new();
    for c in &ours.commands {
        ours_by_sq.entry(c.sqid).or_default().push(c);
    }
    let mut theirs_by_sq: BTreeMap<u16, Vec<&QemuCommand>> = BTreeMap::new();
    for c in &q.commands {
        theirs_by_sq.entry(c.sqid).or_default().push(c);
    }
    let sqids: Vec<u16> = ours_by_sq
        .keys()
        .chain(theirs_by_sq.keys())
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let (mut commands, mut prps, mut queue_addrs) = (0, 0, 0);
    let mut per_queue = BTreeMap::new();
    for sq in sqids {
        let a = ours_by_sq.get(&sq).map_or(&[][..], |v| &v[..]);
        let b = theirs_by_sq.get(&sq).map_or(&[][..], |v| &v[..]);
        if a.len() != b.len() {
            bad(format!(
                "SQ{sq}: our driver wrote {} command(s), QEMU took {}",
                a.len(),
                b.len()
            ));
        }
        for (i, (o, t)) in a.iter().zip(b).enumerate() {
            let at = format!(
                "SQ{sq} command {i} (our seq {}, slot {}; QEMU line {})",
                o.seq, o.index, t.line
            );
            commands += 1;
            *per_queue.entry(sq).or_insert(0) += 1;
            if o.cid != t.cid {
                bad(format!("{at}: CID {} vs QEMU's {}", o.cid, t.cid));
            }
            if o.opc != t.opc {
                bad(format!(
                    "{at}: opcode {:#04x} vs QEMU's {:#04x}",
                    o.opc, t.opc
                ));
            }
            if let Some(nsid) = t.nsid.filter(|&n| n != o.nsid) {
                bad(format!("{at}: NSID {} vs QEMU's {nsid}", o.nsid));
            }
            match t.prp {
                Some((prp1, prp2, _)) => {
                    prps += 1;
                    if (o.prp1, o.prp2) != (prp1, prp2) {
                        bad(format!(
                            "{at}: PRP1={:#x} PRP2={:#x} vs QEMU's PRP1={prp1:#x} PRP2={prp2:#x}",
                            o.prp1, o.prp2
                        ));
                    }
                }
                None if transfers_data(sq == 0, o.opc) => bad(format!(
                    "{at}: opcode {:#04x} moves data but QEMU mapped no PRPs for it \
                     (pci_nvme_map_prp not traced, or the command failed before)",
                    o.opc
                )),
                None => {}
            }
            if let Some(addr) = t.queue_addr {
                queue_addrs += 1;
                if addr != o.prp1 {
                    bad(format!(
                        "{at}: queue address (PRP1) {:#x} vs QEMU's {addr:#x}",
                        o.prp1
                    ));
                }
            }
        }
    }
    let mut ours_by_cq: BTreeMap<u16, Vec<&DriverCompletion>> = BTreeMap::new();
    for c in &ours.completions {
        ours_by_cq.entry(c.cqid).or_default().push(c);
    }
    let mut theirs_by_cq: BTreeMap<u16, Vec<&QemuCompletion>> = BTreeMap::new();
    for c in &q.completions {
        theirs_by_cq.entry(c.cqid).or_default().push(c);
    }
    let cqids: std::collections::BTreeSet<u16> = ours_by_cq
        .keys()
        .chain(theirs_by_cq.keys())
        .copied()
        .collect();
    let mut completions = 0;
    for cq in cqids {
        let a = ours_by_cq.get(&cq).map_or(&[][..], |v| &v[..]);
        let b = theirs_by_cq.get(&cq).map_or(&[][..], |v| &v[..]);
        if a.len() != b.len() {
            bad(format!(
                "CQ{cq}: our driver consumed {} completion(s), QEMU posted {}",
                a.len(),
                b.len()
            ));
        }
        for (i, (o, t)) in a.iter().zip(b).enumerate() {
            let at = format!(
                "CQ{cq} completion {i} (our seq {}; QEMU line {})",
                o.seq, t.line
            );
            completions += 1;
            if o.cid != t.cid {
                bad(format!("{at}: CID {} vs QEMU's {}", o.cid, t.cid));
            }
            if (o.dw0, o.dw1) != (t.dw0, t.dw1) {
                bad(format!(
                    "{at}: DW0={:#x} DW1={:#x} vs QEMU's DW0={:#x} DW1={:#x}",
                    o.dw0, o.dw1, t.dw0, t.dw1
                ));
            }
            // QEMU writes the status field above the phase tag (bit 0).
            if o.status >> 1 != t.status {
                bad(format!(
                    "{at}: status {:#x} vs QEMU's {:#x}",
                    o.status >> 1,
                    t.status
                ));
            }
        }
    }
    out.commands = commands;
    out.prps = prps;
    out.queue_addrs = queue_addrs;
    out.completions = completions;
    out.per_queue = per_queue;
    out
}

/// The whole of `dmatrace compare-qemu`: the report's lines (each
/// disagreement, then the summary) and whether they agree. `Err` when
/// they cannot be compared at all.
pub fn run(
    t: &TraceFile,
    dev: Option<u16>,
    qemu_log: impl BufRead,
) -> Result<(String, bool), String> {
    let ours = driver_side(t, dev)?;
    if ours.commands.is_empty() {
        return Err(format!(
            "the trace of device {} has no submission queue entry (desc_write on SQn) to compare",
            ours.dev
        ));
    }
    let q = find_session(qemu_log, ours.asq).map_err(|e| format!("QEMU's log: {e}"))?;
    let c = compare(&ours, &q);
    let mut report = String::new();
    for m in &c.mismatches {
        let _ = writeln!(report, "differs: {m}");
    }
    let ok = c.mismatches.is_empty();
    if ok {
        let _ = writeln!(report, "agree: {}", c.summary(&ours, &q));
    } else {
        let _ = writeln!(
            report,
            "{} disagreement(s) between our trace ({} commands, {} completions) and QEMU's \
             controller enable {} at line {} ({} commands, {} completions)",
            c.mismatches.len(),
            ours.commands.len(),
            ours.completions.len(),
            q.number,
            q.line,
            q.commands.len(),
            q.completions.len()
        );
    }
    Ok((report, ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::trace::{DeviceInfo, Event};

    /// A QEMU log as QEMU 10's log backend writes it, by hand from the
    /// format strings of hw/nvme/trace-events: a firmware's session (ASQ
    /// below 4 GiB, 32-bit halves), then ours: three admin commands, the
    /// I/O queue pair, one read through a PRP list, and the next run's
    /// enable, whose commands must not be taken. Lines of events not read
    /// (mmio, doorbells, irq, identify details) are mixed in as in a real log.
    const LOG: &str = "\
pci_nvme_pci_reset PCI Function Level Reset
pci_nvme_mmio_asqaddr wrote MMIO, admin submission queue address=0x7fd9000
pci_nvme_mmio_asqaddr_hi wrote MMIO, admin submission queue high half=0x0, new_address=0x7fd9000
pci_nvme_mmio_start_success setting controller enable bit succeeded
pci_nvme_admin_cmd cid 0 sqid 0 opc 0x6 opname 'NVME_ADM_CMD_IDENTIFY'
pci_nvme_map_prp trans_len 4096 len 4096 prp1 0x6fdd000 prp2 0x0 num_prps 2
pci_nvme_enqueue_req_completion cid 0 cqid 0 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_mmio_write addr 0x28 data 0x100000000 size 8
pci_nvme_mmio_asqaddr wrote MMIO, admin submission queue address=0x100000000
pci_nvme_mmio_acqaddr wrote MMIO, admin completion queue address=0x100001000
pci_nvme_mmio_cfg wrote MMIO, config controller config=0x460001
pci_nvme_mmio_start_success setting controller enable bit succeeded
pci_nvme_mmio_doorbell_sq sqid 0 new_tail 1
pci_nvme_admin_cmd cid 0 sqid 0 opc 0x6 opname 'NVME_ADM_CMD_IDENTIFY'
pci_nvme_identify cid 0 cns 0x1 ctrlid 0 csi 0x0
pci_nvme_identify_ctrl identify controller
pci_nvme_map_prp trans_len 4096 len 4096 prp1 0x100002000 prp2 0x0 num_prps 2
pci_nvme_map_addr addr 0x100002000 len 4096
pci_nvme_enqueue_req_completion cid 0 cqid 0 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_irq_msix raising MSI-X IRQ vector 0
pci_nvme_admin_cmd cid 1 sqid 0 opc 0x9 opname 'NVME_ADM_CMD_SET_FEATURES'
pci_nvme_setfeat cid 1 nsid 0x0 fid 0x7 save 0x0 cdw11 0x3f003f
pci_nvme_enqueue_req_completion cid 1 cqid 0 dw0 0x3f003f dw1 0x0 status 0x0
pci_nvme_admin_cmd cid 2 sqid 0 opc 0x5 opname 'NVME_ADM_CMD_CREATE_CQ'
pci_nvme_create_cq create completion queue, addr=0x100401000, cqid=1, vector=0, qsize=1, qflags=1, ien=0
pci_nvme_enqueue_req_completion cid 2 cqid 0 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_admin_cmd cid 3 sqid 0 opc 0x1 opname 'NVME_ADM_CMD_CREATE_SQ'
pci_nvme_create_sq create submission queue, addr=0x100400000, sqid=1, cqid=1, qsize=1, qflags=1
pci_nvme_enqueue_req_completion cid 3 cqid 0 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_io_cmd cid 7 nsid 0x1 sqid 1 opc 0x2 opname 'NVME_NVM_CMD_READ'
pci_nvme_read cid 7 nsid 1 nlb 40 count 20480 lba 0x0
pci_nvme_map_prp trans_len 4032 len 20480 prp1 0x100800040 prp2 0x100402000 num_prps 6
pci_nvme_rw_cb cid 7 blk 'drive0'
pci_nvme_rw_complete_cb cid 7 blk 'drive0'
pci_nvme_enqueue_req_completion cid 7 cqid 1 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_mmio_stopped cleared controller enable bit
pci_nvme_mmio_asqaddr wrote MMIO, admin submission queue address=0x100000000
pci_nvme_mmio_start_success setting controller enable bit succeeded
pci_nvme_admin_cmd cid 0 sqid 0 opc 0x6 opname 'NVME_ADM_CMD_IDENTIFY'
";

    fn sqe(opc: u8, cid: u16, nsid: u32, prp1: u64, prp2: u64) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0] = opc;
        b[2..4].copy_from_slice(&cid.to_le_bytes());
        b[4..8].copy_from_slice(&nsid.to_le_bytes());
        b[24..32].copy_from_slice(&prp1.to_le_bytes());
        b[32..40].copy_from_slice(&prp2.to_le_bytes());
        b
    }

    fn cqe(dw0: u32, sqid: u16, cid: u16, status_and_phase: u16) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&dw0.to_le_bytes());
        b[10..12].copy_from_slice(&sqid.to_le_bytes());
        b[12..14].copy_from_slice(&cid.to_le_bytes());
        b[14..16].copy_from_slice(&status_and_phase.to_le_bytes());
        b
    }

    fn trace(events: Vec<Event>) -> TraceFile {
        TraceFile {
            devices: vec![DeviceInfo {
                name: "0000:00:06.0".into(),
                kind: DeviceKind::Nvme { dstrd: 0 },
                emulated: false,
            }],
            threads: vec!["main".into()],
            capacity: 1000,
            dropped: vec![0],
            events: events
                .into_iter()
                .enumerate()
                .map(|(i, mut e)| {
                    e.seq = i as u64;
                    e
                })
                .collect(),
        }
    }

    fn sq(q: u16, slot: u32, b: &[u8]) -> Event {
        Event::new(Kind::DescWrite)
            .queue(Queue::Sq(q))
            .index(slot)
            .bytes(b)
    }

    fn cq(q: u16, slot: u32, b: &[u8]) -> Event {
        Event::new(Kind::DescRead)
            .queue(Queue::Cq(q))
            .index(slot)
            .bytes(b)
    }

    /// Our side of the run in `LOG`, entry bytes laid out by hand from
    /// NVMe 1.4 Figures 104 (SQE) and 125 (CQE).
    fn our_events() -> Vec<Event> {
        use spec::nvme::admin as a;
        vec![
            Event::new(Kind::RegWrite)
                .addr(0x28)
                .len(8)
                .value(0x1_0000_0000),
            sq(0, 0, &sqe(a::IDENTIFY, 0, 0, 0x1_0000_2000, 0)),
            cq(0, 0, &cqe(0, 0, 0, 0x0001)),
            sq(0, 1, &sqe(a::SET_FEATURES, 1, 0, 0, 0)),
            cq(0, 1, &cqe(0x3f003f, 0, 1, 0x0001)),
            sq(0, 2, &sqe(a::CREATE_IO_CQ, 2, 0, 0x1_0040_1000, 0)),
            cq(0, 2, &cqe(0, 0, 2, 0x0001)),
            sq(0, 3, &sqe(a::CREATE_IO_SQ, 3, 0, 0x1_0040_0000, 0)),
            cq(0, 3, &cqe(0, 0, 3, 0x0001)),
            sq(1, 0, &sqe(io::READ, 7, 1, 0x1_0080_0040, 0x1_0040_2000)),
            cq(1, 0, &cqe(0, 1, 7, 0x0001)),
        ]
    }

    fn compare_with(events: Vec<Event>, log: &str) -> Result<(String, bool), String> {
        run(&trace(events), None, log.as_bytes())
    }

    #[test]
    fn lines_parse_by_the_trace_events_formats() {
        assert_eq!(
            parse_line("pci_nvme_io_cmd cid 65535 nsid 0xffffffff sqid 3 opc 0x2 opname 'NVME_NVM_CMD_READ'"),
            Ok(Some(QemuEvent::IoCmd {
                cid: 65535,
                nsid: 0xffff_ffff,
                sqid: 3,
                opc: 2
            }))
        );
        assert_eq!(
            parse_line("pci_nvme_map_prp trans_len 4032 len 20480 prp1 0x100800040 prp2 0x100402000 num_prps 6"),
            Ok(Some(QemuEvent::MapPrp {
                len: 20480,
                prp1: 0x1_0080_0040,
                prp2: 0x1_0040_2000
            }))
        );
        assert_eq!(
            parse_line(
                "pci_nvme_enqueue_req_completion cid 9 cqid 1 dw0 0x3f003f dw1 0x0 status 0x4002"
            ),
            Ok(Some(QemuEvent::Completion {
                cid: 9,
                cqid: 1,
                dw0: 0x3f003f,
                dw1: 0,
                status: 0x4002
            }))
        );
        assert_eq!(
            parse_line("pci_nvme_create_sq create submission queue, addr=0x100400000, sqid=1, cqid=1, qsize=1, qflags=1"),
            Ok(Some(QemuEvent::CreateQueue { addr: 0x1_0040_0000 }))
        );
        // -msg timestamp=on's prefix.
        assert_eq!(
            parse_line("4242@1733500000.123456:pci_nvme_admin_cmd cid 4 sqid 0 opc 0x6 opname 'NVME_ADM_CMD_IDENTIFY'"),
            Ok(Some(QemuEvent::AdminCmd {
                cid: 4,
                sqid: 0,
                opc: 6
            }))
        );
        assert_eq!(
            parse_line("pci_nvme_mmio_asqaddr_hi wrote MMIO, admin submission queue high half=0x1, new_address=0x100000000"),
            Ok(Some(QemuEvent::AsqAddrHi(0x1_0000_0000)))
        );
        assert_eq!(
            parse_line("pci_nvme_mmio_doorbell_sq sqid 1 new_tail 2"),
            Ok(None)
        );
        assert_eq!(
            parse_line("qemu-system-x86_64: warning: something"),
            Ok(None)
        );
        assert_eq!(parse_line(""), Ok(None));
        // One of its events without the fields of its format.
        assert!(parse_line("pci_nvme_io_cmd cid 1 sqid 1")
            .unwrap_err()
            .contains("'nsid'"));
        assert!(parse_line("pci_nvme_admin_cmd cid 70000 sqid 0 opc 0x6")
            .unwrap_err()
            .contains("out of range"));
        assert!(
            parse_line("pci_nvme_map_prp trans_len 1 len 1 prp1 0xzz prp2 0x0")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn the_session_is_the_first_enable_with_our_asq() {
        let s = find_session(LOG.as_bytes(), 0x1_0000_0000).unwrap();
        assert_eq!((s.number, s.line, s.asq), (2, 12, 0x1_0000_0000));
        // The firmware's identify is not in it, nor the next run's.
        assert_eq!(s.commands.len(), 5);
        assert_eq!(s.completions.len(), 5);
        assert_eq!(
            s.commands[4],
            QemuCommand {
                line: 30,
                sqid: 1,
                cid: 7,
                opc: 2,
                nsid: Some(1),
                prp: Some((0x1_0080_0040, 0x1_0040_2000, 20480)),
                queue_addr: None
            }
        );
        assert_eq!(s.commands[2].queue_addr, Some(0x1_0040_1000));
        assert_eq!(s.commands[1].prp, None);
        // The firmware's session by its 32-bit halves.
        let fw = find_session(LOG.as_bytes(), 0x7fd9000).unwrap();
        assert_eq!((fw.number, fw.commands.len()), (1, 1));
        let e = find_session(LOG.as_bytes(), 0x2_0000_0000).unwrap_err();
        assert!(e.contains("none of the 3 controller enable(s)"), "{e}");
        assert!(e.contains("0x7fd9000, 0x100000000"), "{e}");
        let e = find_session(
            "pci_nvme_admin_cmd cid 0 sqid 0 opc 0x6 opname 'X'\n".as_bytes(),
            0,
        )
        .unwrap_err();
        assert!(e.contains("no controller enable"), "{e}");
    }

    #[test]
    fn agreeing_traces_pass_with_a_summary() {
        let (report, ok) = compare_with(our_events(), LOG).unwrap();
        assert!(ok, "{report}");
        assert_eq!(
            report,
            "agree: 5 commands (SQ0 4, SQ1 1): CID, opcode and NSID agree, PRP1/PRP2 of 2 data \
             commands and the queue address of 2 queue creations; 5 completions: CID, DW0, DW1 \
             and status agree (QEMU's controller enable 2 at line 12, ASQ=0x100000000)\n"
        );
    }

    #[test]
    fn each_disagreement_is_named() {
        let mut ev = our_events();
        // The read's PRP2 off by a page, its CID another.
        ev[9] = sq(1, 0, &sqe(io::READ, 8, 1, 0x1_0080_0040, 0x1_0040_3000));
        let (report, ok) = compare_with(ev, LOG).unwrap();
        assert!(!ok);
        assert_eq!(
            report.lines().collect::<Vec<_>>(),
            [
                "differs: SQ1 command 0 (our seq 9, slot 0; QEMU line 30): CID 8 vs QEMU's 7",
                "differs: SQ1 command 0 (our seq 9, slot 0; QEMU line 30): PRP1=0x100800040 \
                 PRP2=0x100403000 vs QEMU's PRP1=0x100800040 PRP2=0x100402000",
                "2 disagreement(s) between our trace (5 commands, 5 completions) and QEMU's \
                 controller enable 2 at line 12 (5 commands, 5 completions)",
            ]
        );

        // Opcode, queue address, completion status and a missing command.
        let mut ev = our_events();
        ev[5] = sq(
            0,
            2,
            &sqe(spec::nvme::admin::CREATE_IO_CQ, 2, 0, 0x1_0050_1000, 0),
        );
        ev[10] = cq(1, 0, &cqe(0, 1, 7, 0x4005)); // DNR, SC 02h, phase 1
        ev[1] = sq(
            0,
            0,
            &sqe(spec::nvme::admin::GET_LOG_PAGE, 0, 0, 0x1_0000_2000, 0),
        );
        ev.remove(7);
        let (report, ok) = compare_with(ev, LOG).unwrap();
        assert!(!ok);
        let lines: Vec<&str> = report.lines().collect();
        assert!(
            lines.contains(&"differs: SQ0: our driver wrote 3 command(s), QEMU took 4"),
            "{report}"
        );
        assert!(lines.contains(&"differs: SQ0 command 0 (our seq 1, slot 0; QEMU line 14): opcode 0x02 vs QEMU's 0x06"), "{report}");
        assert!(lines.contains(&"differs: SQ0 command 2 (our seq 5, slot 2; QEMU line 24): queue address (PRP1) 0x100501000 vs QEMU's 0x100401000"), "{report}");
        assert!(
            lines.contains(
                &"differs: CQ1 completion 0 (our seq 9; QEMU line 35): status 0x2002 vs QEMU's 0x0"
            ),
            "{report}"
        );
        assert_eq!(lines.len(), 5, "{report}");
    }

    #[test]
    fn a_data_command_qemu_did_not_map_fails() {
        // QEMU's log without map_prp (the event not enabled).
        let log: String = LOG
            .lines()
            .filter(|l| !l.starts_with("pci_nvme_map_prp"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (report, ok) = compare_with(our_events(), &log).unwrap();
        assert!(!ok);
        assert!(report.contains("SQ1 command 0 (our seq 9, slot 0; QEMU line 28): opcode 0x02 moves data but QEMU mapped no PRPs"), "{report}");
        assert!(report.contains("SQ0 command 0"), "{report}");
    }

    #[test]
    fn a_trace_that_cannot_be_compared_is_an_error() {
        // No ASQ write.
        let e = compare_with(our_events()[1..].to_vec(), LOG).unwrap_err();
        assert!(e.contains("no write of ASQ"), "{e}");
        // ASQ as two 32-bit halves finds the same session.
        let mut ev = our_events();
        ev[0] = Event::new(Kind::RegWrite).addr(0x28).len(4).value(0);
        ev.insert(1, Event::new(Kind::RegWrite).addr(0x2c).len(4).value(1));
        assert!(compare_with(ev, LOG).unwrap().1);
        // Dropped events.
        let mut t = trace(our_events());
        t.dropped = vec![3];
        let e = run(&t, None, LOG.as_bytes()).unwrap_err();
        assert!(e.contains("dropped 3 event(s)"), "{e}");
        // Not an NVMe device.
        let mut t = trace(our_events());
        t.devices[0].kind = DeviceKind::Igb;
        assert_eq!(
            run(&t, None, LOG.as_bytes()).unwrap_err(),
            "the trace has no NVMe device"
        );
        assert!(run(&t, Some(0), LOG.as_bytes())
            .unwrap_err()
            .contains("--dev 0 is not an NVMe device"));
        // A short SQE.
        let mut ev = our_events();
        ev[1] = sq(0, 0, &[0u8; 16]);
        assert!(compare_with(ev, LOG)
            .unwrap_err()
            .contains("holds 16 of the entry's 64 bytes"));
        // A malformed line of QEMU's log names the line.
        let log = LOG.replace("prp1 0x100800040", "prp1 0x10080004g");
        let e = compare_with(our_events(), &log).unwrap_err();
        assert!(
            e.starts_with("QEMU's log: line 32: 'prp1' is '0x10080004g'"),
            "{e}"
        );
    }
}
