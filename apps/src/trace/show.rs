//! A trace printed one event a line, every field decoded by name
//! (`dmatrace show`), and the filters that choose the lines.
//!
//! A line is the time in µs since the trace's first event, the agent, and
//! what happened:
//! ```text
//!      3.120 µs  device/controller  SQ1[0] fetch @0x100400000: OPC=01h Write CID=0 NSID=1 PRP1=0x100805040 PRP2=0x100802000 (list, 5 entries) SLBA=0 NLB=39
//! ```
//!
//! # Which events belong to an NVMe command (`--cid`)
//! A command is its submission queue and CID, (SQID, CID); CIDs are unique
//! only per submission queue (NVMe 1.4 §4.2). Events name it as follows:
//! - the SQE the driver wrote (`desc_write` on SQn) and the device fetched
//!   (`fetch` on SQn): SQID = n, CID from the entry's CDW0.CID;
//! - the CQE the device wrote (`write_back` on CQn) and the driver consumed
//!   (`desc_read` on CQn): SQID and CID from the entry itself (a completion
//!   queue may serve several submission queues, so n is not used);
//! - the device's `prp_list`, `dma_read`, `dma_write` and `fault` events
//!   carry no CID. They belong to the command the same device's controller
//!   fetched last, if it has not written that command's completion yet. This
//!   is sound because the emulated controller (the only one that records
//!   device events; a real device through VFIO records none) executes one
//!   command at a time on its one engine: it records the fetch of a command,
//!   then its PRP-list reads and data transfers, then its completion, before
//!   it fetches the next (`emu/src/nvme/processing.rs`). A device event after
//!   a completion and before the next fetch belongs to no command.
//!
//! Register writes (doorbells) belong to no single command: a doorbell
//! write may submit or complete several.
#![forbid(unsafe_code)]

use super::decode::{self, Entry};
use super::TraceFile;
use drivers::trace::{Agent, DeviceKind, Engine, Event, Kind, Queue};
use spec::nvme::{cqe, sqe};
use std::collections::HashMap;
use std::io::Write;

/// Which events to print. Every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Events of this queue: those naming it, the registers of that queue
    /// (doorbells, head and tail registers), and the device engine of a NIC
    /// queue (`device/rx0` for RX0). With [`Filter::cid`], the number picks
    /// the NVMe queue pair: the command's SQID.
    pub queue: Option<Queue>,
    /// Events of the NVMe commands with this CID (see the module's
    /// documentation for the rule).
    pub cid: Option<u16>,
    /// Events of this device (its number in the trace's device table).
    pub dev: Option<u16>,
    /// Events of these kinds (any of them); empty for every kind.
    pub kinds: Vec<Kind>,
    /// Events whose sequence numbers are in this range (both ends
    /// included).
    pub seq: Option<(u64, u64)>,
}

/// What the first column of a line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// Microseconds since the trace's first event.
    #[default]
    Micros,
    /// The event's sequence number (`#12`) instead of its time: the same in
    /// every run of an inline device, so output can be compared between
    /// runs (the walkthroughs in `docs/` are checked this way).
    Seq,
}

/// A range of sequence numbers given on the command line: `A-B`, `A-`
/// (to the end), `-B` (from the start) or `N` (one event).
pub fn parse_seq(s: &str) -> Result<(u64, u64), String> {
    let bad = || {
        format!(
            "'{s}' is not a range of sequence numbers; write FROM-TO, FROM-, -TO or N, e.g. 10-19"
        )
    };
    let num = |x: &str, empty: u64| {
        let x = x.trim();
        if x.is_empty() {
            Ok(empty)
        } else {
            x.parse::<u64>().map_err(|_| bad())
        }
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) if a.trim().is_empty() && b.trim().is_empty() => return Err(bad()),
        Some((a, b)) => (num(a, 0)?, num(b, u64::MAX)?),
        None => {
            let n = num(s, u64::MAX)?;
            if s.trim().is_empty() {
                return Err(bad());
            }
            (n, n)
        }
    };
    if a > b {
        return Err(format!("{}; {a} is after {b}", bad()));
    }
    Ok((a, b))
}

/// A queue name given on the command line.
pub fn parse_queue(s: &str) -> Result<Queue, String> {
    match Queue::parse(s) {
        Some(Queue::None) | None => Err(format!(
            "'{s}' is not a queue; write SQn or CQn (NVMe, n = queue ID, 0 = admin) or RXn or \
             TXn (NIC), e.g. SQ1 or RX0"
        )),
        Some(q) => Ok(q),
    }
}

/// An event kind named on the command line.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::from_name(s.trim()).ok_or_else(|| {
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "'{s}' is not an event kind; the kinds are {}",
            all.join(", ")
        )
    })
}

/// The NVMe command (SQID, CID) of each event of `t`, by the rule in the
/// module's documentation; `None` for events of no command.
pub fn commands(t: &TraceFile) -> Vec<Option<(u16, u16)>> {
    let mut open: HashMap<u16, (u16, u16)> = HashMap::new();
    let is_nvme = |dev: u16| {
        matches!(
            t.devices.get(dev as usize).map(|d| d.kind),
            Some(DeviceKind::Nvme { .. })
        )
    };
    t.events
        .iter()
        .map(|e| {
            if !is_nvme(e.dev) {
                return None;
            }
            let raw = e.raw.as_slice();
            let u16_at = |at: usize| {
                raw.get(at..at + 2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
            };
            match (e.kind, e.queue) {
                (Kind::DescWrite | Kind::Fetch, Queue::Sq(q)) => {
                    // CDW0.CID is the upper half of dword 0 (§4.2).
                    let key = (q, u16_at(sqe::CDW0 + 2)?);
                    if e.kind == Kind::Fetch {
                        open.insert(e.dev, key);
                    }
                    Some(key)
                }
                (Kind::WriteBack | Kind::DescRead, Queue::Cq(_)) => {
                    let key = (u16_at(cqe::SQID)?, u16_at(cqe::CID)?);
                    if e.kind == Kind::WriteBack {
                        open.remove(&e.dev);
                    }
                    Some(key)
                }
                (Kind::PrpList | Kind::DmaRead | Kind::DmaWrite | Kind::Fault, _)
                    if e.agent == Agent::Device(Engine::Controller) =>
                {
                    open.get(&e.dev).copied()
                }
                _ => None,
            }
        })
        .collect()
}

/// The queue a register of a device of `kind` belongs to: an NVMe doorbell,
/// or a NIC ring register (RDT, TDH, RXDCTL...).
fn register_queue(kind: DeviceKind, offset: u64) -> Option<Queue> {
    use spec::nic::{igb, ixgbe};
    use spec::nvme::reg::{self, RegName};
    let offset = usize::try_from(offset).ok()?;
    let (rx, tx) = match kind {
        DeviceKind::Nvme { dstrd } => {
            return match reg::name(offset, dstrd)? {
                RegName::SqTail(q) => Some(Queue::Sq(q)),
                RegName::CqHead(q) => Some(Queue::Cq(q)),
                _ => None,
            }
        }
        DeviceKind::Igb => (
            igb::RX_QUEUES.decode(offset).map(|(q, _)| q),
            igb::TX_QUEUES.decode(offset).map(|(q, _)| q),
        ),
        DeviceKind::Ixgbe => (
            ixgbe::RX_QUEUES.decode(offset).map(|(q, _)| q),
            ixgbe::TX_QUEUES.decode(offset).map(|(q, _)| q),
        ),
    };
    rx.map(Queue::Rx).or(tx.map(Queue::Tx))
}

/// Whether `e` (of a device of `kind`) concerns queue `q`.
fn in_queue(e: &Event, kind: DeviceKind, q: Queue) -> bool {
    if e.queue == q {
        return true;
    }
    match (e.kind, e.agent, q) {
        (Kind::RegRead | Kind::RegWrite, _, _) => register_queue(kind, e.addr) == Some(q),
        (_, Agent::Device(Engine::Rx(n)), Queue::Rx(m)) => n == m,
        (_, Agent::Device(Engine::Tx(n)), Queue::Tx(m)) => n == m,
        _ => false,
    }
}

/// The indices of the events of `t` that `f` keeps.
pub fn select(t: &TraceFile, f: &Filter) -> Vec<usize> {
    let cmds = f.cid.map(|_| commands(t));
    (0..t.events.len())
        .filter(|&i| {
            let e = &t.events[i];
            let Some(dev) = t.devices.get(e.dev as usize) else {
                return false;
            };
            if f.dev.is_some_and(|d| d != e.dev)
                || (!f.kinds.is_empty() && !f.kinds.contains(&e.kind))
                || f.seq.is_some_and(|(a, b)| e.seq < a || e.seq > b)
            {
                return false;
            }
            match (f.cid, &cmds) {
                (Some(cid), Some(cmds)) => {
                    let Some((sqid, c)) = cmds[i] else {
                        return false;
                    };
                    c == cid
                        && match f.queue {
                            None => true,
                            Some(Queue::Sq(n) | Queue::Cq(n)) => n == sqid,
                            Some(_) => false,
                        }
                }
                _ => f.queue.is_none_or(|q| in_queue(e, dev.kind, q)),
            }
        })
        .collect()
}

/// What the trace says about an SQE's PRP2: `(list, N entries)` when the
/// device read a PRP list at PRP2 for this command (between event `i` and
/// the command's completion).
fn prp2_note(t: &TraceFile, cmds: &[Option<(u16, u16)>], i: usize) -> Option<String> {
    let e = &t.events[i];
    let raw = e.raw.as_slice();
    let prp2 = u64::from_le_bytes(raw.get(sqe::PRP2..sqe::PRP2 + 8)?.try_into().ok()?);
    let key = cmds[i]?;
    if prp2 == 0 {
        return None;
    }
    for (j, later) in t.events.iter().enumerate().skip(i + 1) {
        if later.dev != e.dev || cmds[j] != Some(key) {
            continue;
        }
        match later.kind {
            Kind::PrpList if later.addr == prp2 => {
                return Some(format!("(list, {} entries)", later.len));
            }
            Kind::WriteBack => return None,
            _ => {}
        }
    }
    None
}

/// The text of event `i` of `t` after its time and agent.
pub fn describe(t: &TraceFile, cmds: &[Option<(u16, u16)>], i: usize) -> String {
    let e = &t.events[i];
    let kind = t
        .devices
        .get(e.dev as usize)
        .map_or(DeviceKind::Nvme { dstrd: 0 }, |d| d.kind);
    let raw = e.raw.as_slice();
    let q = if e.queue == Queue::None {
        String::new()
    } else {
        format!("{} ", e.queue)
    };
    match e.kind {
        Kind::RegRead | Kind::RegWrite => {
            format!(
                "{} {}",
                e.kind,
                decode::register_line(kind, e.addr, e.value)
            )
        }
        Kind::DescWrite | Kind::DescRead | Kind::Fetch | Kind::WriteBack => {
            let head = format!("{}[{}] {} @{:#x}", e.queue, e.index, e.kind, e.addr);
            let Some(entry) = Entry::of_event(e.kind, e.queue, kind, raw) else {
                return format!("{head}: {}", e.raw.hex());
            };
            let l = entry.layout();
            if raw.len() != l.bytes {
                return format!(
                    "{head}: {} bytes, not {} of {} bytes: {}",
                    raw.len(),
                    l.name,
                    l.bytes,
                    e.raw.hex()
                );
            }
            let text = match entry {
                Entry::Sqe { admin } => {
                    decode::sqe_line(raw, admin, prp2_note(t, cmds, i).as_deref())
                }
                _ => decode::line(entry, raw),
            };
            format!("{head}: {text}")
        }
        Kind::PrpList => {
            let shown = raw.len() / 8;
            let more = if (e.len as usize) > shown { " ..." } else { "" };
            format!(
                "{q}prp_list @{:#x}: {} entries: {}{more}",
                e.addr,
                e.len,
                decode::prp_entries(raw)
            )
        }
        Kind::DmaRead | Kind::DmaWrite => {
            format!("{q}{} @{:#x} len {}", e.kind, e.addr, e.len)
        }
        Kind::Frame => format!("{q}frame len {}: {}", e.len, decode::frame_header(raw)),
        Kind::Fault => format!(
            "{q}fault: the IOMMU stopped a DMA {} of {} bytes at {:#x}",
            if e.value == 1 { "write" } else { "read" },
            e.len,
            e.addr
        ),
        Kind::Note => format!("{q}note: {}", String::from_utf8_lossy(raw)),
        Kind::Truncated => format!(
            "truncated: the device's buffer of {} events is full; its later events were dropped",
            e.value
        ),
    }
}

/// The header lines: one per device, and the dropped counts.
pub fn header(t: &TraceFile) -> Vec<String> {
    let mut out = Vec::new();
    for (n, d) in t.devices.iter().enumerate() {
        let mut line = format!("# device {n}: {} {}", d.kind.name(), d.name);
        if let DeviceKind::Nvme { dstrd } = d.kind {
            line.push_str(&format!(" (DSTRD={dstrd})"));
        }
        line.push_str(if d.emulated {
            ", emulated: driver and device events"
        } else {
            ", real device: driver events only"
        });
        out.push(line);
        if let Some(&lost) = t.dropped.get(n).filter(|&&l| l > 0) {
            out.push(format!(
                "# device {n}: {lost} events dropped after {} (raise the capacity)",
                t.capacity
            ));
        }
    }
    out
}

/// Print the header and the events `f` keeps, one a line, each led by its
/// time or sequence number (`clock`); returns how many events were printed.
pub fn show(
    t: &TraceFile,
    f: &Filter,
    clock: Clock,
    out: &mut impl Write,
) -> std::io::Result<usize> {
    for l in header(t) {
        writeln!(out, "{l}")?;
    }
    let cmds = commands(t);
    let t0 = t.events.iter().map(|e| e.t_ns).min().unwrap_or(0);
    let several = t.devices.len() > 1;
    let chosen = select(t, f);
    for &i in &chosen {
        let e = &t.events[i];
        let when = match clock {
            Clock::Micros => format!("{:>10.3} µs", e.t_ns.saturating_sub(t0) as f64 / 1000.0),
            Clock::Seq => format!("{:>6}", format!("#{}", e.seq)),
        };
        let dev = if several {
            format!("dev{} ", e.dev)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{when}  {:<17}  {dev}{}",
            e.agent.to_string(),
            describe(t, &cmds, i)
        )?;
    }
    out.flush()?;
    Ok(chosen.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::trace::{DeviceInfo, Raw};

    fn device(kind: DeviceKind) -> DeviceInfo {
        DeviceInfo {
            name: "emu".into(),
            kind,
            emulated: true,
        }
    }

    /// An SQE with only CDW0.CID set (bytes 2-3, NVMe 1.4 §4.2).
    fn sqe_with_cid(cid: u16) -> Raw {
        let mut b = [0u8; 64];
        b[2..4].copy_from_slice(&cid.to_le_bytes());
        Raw::new(&b)
    }

    /// A CQE with SQID (bytes 10-11) and CID (12-13) set (§4.6).
    fn cqe_of(sqid: u16, cid: u16) -> Raw {
        let mut b = [0u8; 16];
        b[10..12].copy_from_slice(&sqid.to_le_bytes());
        b[12..14].copy_from_slice(&cid.to_le_bytes());
        Raw::new(&b)
    }

    fn dev_event(dev: u16, kind: Kind, queue: Queue, raw: Raw) -> Event {
        Event {
            dev,
            ..Event::device(kind, Engine::Controller)
                .queue(queue)
                .raw(raw)
        }
    }

    #[test]
    fn device_work_belongs_to_the_open_command_of_its_own_device_only() {
        let dma = |dev| dev_event(dev, Kind::DmaWrite, Queue::None, Raw::EMPTY);
        let events = vec![
            dev_event(0, Kind::Fetch, Queue::Sq(1), sqe_with_cid(7)),
            dev_event(1, Kind::Fetch, Queue::Sq(2), sqe_with_cid(9)),
            dma(0),
            dma(1),
            dev_event(0, Kind::WriteBack, Queue::Cq(1), cqe_of(1, 7)),
            // After the completion and before the next fetch: no command.
            dma(0),
            // A completion nobody asked for (a hostile device): its own
            // SQID and CID, and it closes device 1's command.
            dev_event(1, Kind::WriteBack, Queue::Cq(2), cqe_of(2, 5)),
            dma(1),
            // The driver's CQE read names the command by the entry's SQID.
            Event::new(Kind::DescRead)
                .queue(Queue::Cq(1))
                .raw(cqe_of(3, 7)),
            // Too short to hold a CID: no command.
            dev_event(0, Kind::Fetch, Queue::Sq(1), Raw::new(&[1, 0])),
            // A NIC's events never belong to a command.
            dev_event(2, Kind::Fetch, Queue::Sq(1), sqe_with_cid(7)),
        ];
        let t = TraceFile {
            devices: vec![
                device(DeviceKind::Nvme { dstrd: 0 }),
                device(DeviceKind::Nvme { dstrd: 0 }),
                device(DeviceKind::Igb),
            ],
            threads: vec![],
            capacity: 100,
            dropped: vec![0, 0, 0],
            events,
        };
        assert_eq!(
            commands(&t),
            vec![
                Some((1, 7)),
                Some((2, 9)),
                Some((1, 7)),
                Some((2, 9)),
                Some((1, 7)),
                None,
                Some((2, 5)),
                None,
                Some((3, 7)),
                None,
                None,
            ]
        );
        let f = Filter {
            cid: Some(7),
            queue: Some(Queue::Cq(1)),
            ..Filter::default()
        };
        assert_eq!(select(&t, &f), vec![0, 2, 4]);
    }

    #[test]
    fn queue_names_and_kinds_from_the_command_line() {
        assert_eq!(parse_queue("sq1"), Ok(Queue::Sq(1)));
        assert_eq!(parse_queue("RX12"), Ok(Queue::Rx(12)));
        for bad in ["-", "", "Q1", "SQ", "SQx", "SQ70000"] {
            assert!(
                parse_queue(bad).unwrap_err().contains("is not a queue"),
                "{bad}"
            );
        }
        assert_eq!(parse_kind("prp_list"), Ok(Kind::PrpList));
        assert_eq!(parse_seq("10-19"), Ok((10, 19)));
        assert_eq!(parse_seq("7"), Ok((7, 7)));
        assert_eq!(parse_seq("40-"), Ok((40, u64::MAX)));
        assert_eq!(parse_seq("-3"), Ok((0, 3)));
        for bad in ["", "-", "x", "1-2-3", "5-4", "a-4"] {
            assert!(
                parse_seq(bad)
                    .unwrap_err()
                    .contains("range of sequence numbers"),
                "{bad}"
            );
        }
        assert!(parse_kind("dma")
            .unwrap_err()
            .contains("dma_read, dma_write"));
    }

    #[test]
    fn registers_belong_to_their_queue() {
        let nvme = DeviceKind::Nvme { dstrd: 2 };
        // Stride 16 bytes: 0x1020 is SQ1's tail, 0x1030 CQ1's head.
        assert_eq!(register_queue(nvme, 0x1020), Some(Queue::Sq(1)));
        assert_eq!(register_queue(nvme, 0x1030), Some(Queue::Cq(1)));
        assert_eq!(register_queue(nvme, 0x14), None);
        // 82576: RDT[0] at 0x2818, TDT[0] at 0x3818, queue 5's TDT at
        // 0xE000 + 5 * 0x40 + 0x18 (82576 datasheet §8.12).
        assert_eq!(register_queue(DeviceKind::Igb, 0x2818), Some(Queue::Rx(0)));
        assert_eq!(register_queue(DeviceKind::Igb, 0x3818), Some(Queue::Tx(0)));
        assert_eq!(
            register_queue(DeviceKind::Igb, 0xe000 + 5 * 0x40 + 0x18),
            Some(Queue::Tx(5))
        );
        assert_eq!(register_queue(DeviceKind::Igb, 0x0), None);
        // 82599: RDT[0] at 0x1018 (82599 datasheet §8.2.3.8).
        assert_eq!(
            register_queue(DeviceKind::Ixgbe, 0x1018),
            Some(Queue::Rx(0))
        );
    }
}
