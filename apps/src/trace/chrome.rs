//! The Chrome trace-event format (`.json`): a timeline for ui.perfetto.dev
//! and chrome://tracing.
//!
//! The object form (`{"traceEvents": [...], "displayTimeUnit": "ns",
//! "metadata": {"dmatrace": header}}`), with `ts` in microseconds:
//! - a process per device (`process_name` "dev0 nvme emu:nvme,size=1M");
//! - a track (tid with `thread_name`) per driver thread ("driver main"),
//!   per device engine ("device/controller", "device/tx0") and per queue
//!   ("SQ1", "RX0"; a queue with several entries in flight at once gets
//!   lanes "SQ1 #2", so that its slices nest);
//! - every event a 1 ns complete slice (`X`) on its agent's track, named
//!   for a reader ("write SQ1 tail doorbell = 0x1", "fetch SQ1\[0\] Read
//!   CID=3"), with the whole event in `args.ev` (the JSON-lines object of
//!   [`jsonl::event_object`]: raw hex, register name) and its entry decoded
//!   field by field from the `spec` layouts in `args.fields`;
//! - each NVMe command a slice (`B`/`E`) on its submission queue's track
//!   from the SQE the driver wrote (or the device fetched, when the driver
//!   recorded nothing) to the CQE the driver consumed (or the device wrote);
//!   each NIC TX frame (context and data descriptors up to EOP) and each RX
//!   descriptor a slice from the descriptor written to its write-back read
//!   with DD set;
//! - flow arrows (`s`, `t`..., `f` with one id) through each command's or
//!   frame's events: written → doorbell/tail → fetch → PRP list → DMA →
//!   frame → write-back → consumed → head doorbell;
//! - ring occupancy counters (`C`, "SQ1 in flight").
//!
//! [`read`] takes the events back from `args.ev` (and their order from
//! `args.order`) and the header from `metadata.dmatrace`: exactly the
//! [`TraceFile`] written.
#![forbid(unsafe_code)]

use super::decode::{Entry, Family};
use super::{jsonl, TraceFile};
use drivers::trace::{Agent, DeviceKind, Engine, Event, Kind, Queue};
use serde_json::{json, Map, Value};
use spec::nic::adv_desc as adv;
use spec::nvme;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};

/// The opcode's name: admin commands on queue 0, NVM commands elsewhere
/// (NVMe 1.4 §5, Figure 139; §6, Figure 346).
pub fn opcode_name(qid: u16, opc: u8) -> Option<&'static str> {
    super::decode::opcode_names(qid == 0, opc).map(|(short, _)| short)
}

/// The layout `e`'s bytes are in, if it carries a whole queue entry or
/// descriptor of its device's kind: the decoder's choice
/// ([`Entry::of_event`]), so the timeline and `dmatrace show` agree.
pub fn layout_of(kind: DeviceKind, e: &Event) -> Option<&'static spec::Layout> {
    let raw = e.raw.as_slice();
    let nic_queue = matches!(e.queue, Queue::Tx(_) | Queue::Rx(_));
    if nic_queue != Family::of(kind).is_some() {
        return None;
    }
    let layout = Entry::of_event(e.kind, e.queue, kind, raw)?.layout();
    (raw.len() >= layout.bytes).then_some(layout)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `bytes` decoded by `layout`: a word without fields by its name (hex), a
/// word with fields as an object of its value and each field.
pub fn layout_fields(layout: &spec::Layout, bytes: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    for w in layout.words {
        let Some(v) = w.read(bytes) else { continue };
        if w.fields.is_empty() {
            m.insert(w.name.into(), json!(format!("{v:#x}")));
            continue;
        }
        let mut f = Map::new();
        f.insert("value".into(), json!(format!("{v:#x}")));
        for field in w.fields {
            f.insert(field.name.into(), json!(field.get(v)));
        }
        m.insert(w.name.into(), Value::Object(f));
    }
    m
}

/// The SQE's opcode and CID.
fn sqe_op(raw: &[u8]) -> Option<(u8, u16)> {
    let cdw0 = u32_at(raw, nvme::sqe::CDW0)?;
    let opc = nvme::sqe::cdw0::OPC.get(cdw0) as u8;
    let cid = nvme::sqe::cdw0::CID.get(cdw0) as u16;
    Some((opc, cid))
}

/// The CQE's SQID, CID and status word.
fn cqe_ids(raw: &[u8]) -> Option<(u16, u16, u16)> {
    Some((
        u16_at(raw, nvme::cqe::SQID)?,
        u16_at(raw, nvme::cqe::CID)?,
        u16_at(raw, nvme::cqe::STATUS)?,
    ))
}

/// Whether a NIC write-back `raw` has DD set (RX status dword or TX status).
fn nic_done(q: Queue, raw: &[u8]) -> bool {
    match q {
        Queue::Rx(_) => {
            u32_at(raw, adv::rx::WB_STATUS_ERROR).is_some_and(|s| adv::rx::status::DD.is_set(s))
        }
        Queue::Tx(_) => {
            u32_at(raw, adv::tx::WB_STATUS).is_some_and(|s| adv::tx::olinfo::DD.is_set(s))
        }
        _ => false,
    }
}

/// Whether a TX descriptor the driver wrote is a data descriptor with EOP.
fn tx_eop(raw: &[u8]) -> bool {
    use adv::tx::cmd_type_len as c;
    u32_at(raw, adv::tx::CMD_TYPE_LEN)
        .is_some_and(|v| c::DTYP.get(v) == c::DTYP_DATA && c::EOP.is_set(v))
}

/// A one-line name for `e` on the timeline.
fn label(t: &TraceFile, kind: Option<DeviceKind>, e: &Event) -> String {
    let raw = e.raw.as_slice();
    let slot = format!("{}[{}]", e.queue, e.index);
    match e.kind {
        Kind::RegRead | Kind::RegWrite => {
            let name = t
                .reg_name(e.dev, e.addr)
                .unwrap_or_else(|| format!("{:#x}", e.addr));
            let verb = if e.kind == Kind::RegRead {
                "read"
            } else {
                "write"
            };
            format!("{verb} {name} = {:#x}", e.value)
        }
        Kind::DescWrite | Kind::DescRead | Kind::Fetch | Kind::WriteBack => {
            let mut s = format!("{} {slot}", e.kind);
            match (e.queue, kind) {
                (Queue::Sq(q), Some(DeviceKind::Nvme { .. })) => {
                    if let Some((opc, cid)) = sqe_op(raw) {
                        let op = opcode_name(q, opc).unwrap_or("opcode");
                        s += &format!(" {op} {opc:02x}h CID={cid}");
                    }
                }
                (Queue::Cq(_), Some(DeviceKind::Nvme { .. })) => {
                    if let Some((sqid, cid, st)) = cqe_ids(raw) {
                        let sc = nvme::cqe::status::SC.get(st);
                        let sct = nvme::cqe::status::SCT.get(st);
                        s += &format!(" SQ{sqid} CID={cid} SCT={sct} SC={sc:#x}");
                    }
                }
                _ => {
                    if let Some(l) = kind.and_then(|k| layout_of(k, e)) {
                        if l.name.contains("context") {
                            s += " context";
                        }
                    }
                }
            }
            s
        }
        Kind::PrpList => format!("prp_list @{:#x} {} entries", e.addr, e.len),
        Kind::DmaRead | Kind::DmaWrite => format!("{} {:#x} +{}", e.kind, e.addr, e.len),
        Kind::Frame => format!("frame {} {} B", e.queue, e.len),
        Kind::Fault => format!(
            "fault {} {:#x} +{}",
            if e.value == 1 { "write" } else { "read" },
            e.addr,
            e.len
        ),
        Kind::Note => format!("note: {}", String::from_utf8_lossy(raw)),
        Kind::Truncated => format!("truncated after {} events", e.value),
    }
}

/// A track of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Track {
    Thread(u16),
    Queue(Queue, u32),
    Engine(Engine),
}

/// A point of the timeline: track and time (ns).
#[derive(Debug, Clone, Copy)]
struct Point {
    pid: u32,
    track: Track,
    t_ns: u64,
    seq: u64,
}

/// A command or frame: its slice on a queue and the events of its flow.
#[derive(Debug)]
struct Chain {
    pid: u32,
    queue: Queue,
    name: String,
    args: Map<String, Value>,
    start: u64,
    end: Option<u64>,
    points: Vec<Point>,
}

/// An entry the driver wrote that is not done yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    index: u32,
    chain: usize,
    /// The frame's last descriptor (every RX descriptor is its own).
    last: bool,
}

/// Everything the writer works out before it prints.
#[derive(Default)]
struct Timeline {
    chains: Vec<Chain>,
    /// NVMe commands in flight by (dev, SQID, CID).
    commands: HashMap<(u16, u16, u16), usize>,
    /// Commands written but not yet rung, by (dev, SQID).
    unrung: HashMap<(u16, u16), Vec<usize>>,
    /// Commands consumed but not yet acknowledged by a CQ head doorbell.
    unacked: HashMap<(u16, u16), Vec<usize>>,
    /// NIC descriptors in flight, in ring order, by (dev, queue).
    ring: HashMap<(u16, Queue), VecDeque<Pending>>,
    /// The TX frame being written (no EOP yet), by (dev, queue).
    open_frame: HashMap<(u16, Queue), usize>,
    /// The chain each device engine works on, by (dev, engine).
    current: HashMap<(u16, Engine), usize>,
    /// A received frame waiting for the descriptor it will land in.
    rx_frame: HashMap<(u16, u16), Point>,
    /// Counter samples: (t_ns, pid, name, value).
    counters: Vec<(u64, u32, String, usize)>,
    /// Entries in flight per (dev, queue), for the counters.
    in_flight: HashMap<(u16, Queue), usize>,
}

impl Timeline {
    fn occupancy(&mut self, dev: u16, q: Queue, t_ns: u64, delta: isize) {
        let n = self.in_flight.entry((dev, q)).or_insert(0);
        *n = n.saturating_add_signed(delta);
        let v = *n;
        self.counters
            .push((t_ns, dev as u32 + 1, format!("{q} in flight"), v));
    }

    fn start(
        &mut self,
        p: Point,
        dev: u16,
        queue: Queue,
        name: String,
        args: Map<String, Value>,
    ) -> usize {
        self.chains.push(Chain {
            pid: p.pid,
            queue,
            name,
            args,
            start: p.t_ns,
            end: None,
            points: vec![p],
        });
        self.occupancy(dev, queue, p.t_ns, 1);
        self.chains.len() - 1
    }

    fn finish(&mut self, c: usize, p: Point, dev: u16) {
        let ch = &mut self.chains[c];
        if ch.end.is_some() {
            return;
        }
        ch.end = Some(p.t_ns);
        ch.points.push(p);
        let q = ch.queue;
        self.occupancy(dev, q, p.t_ns, -1);
    }

    fn point(&mut self, c: usize, p: Point) {
        self.chains[c].points.push(p);
    }
}

/// Which sides recorded: whether the driver's reads of completions exist
/// (then slices end there; else at the device's write-back) and whether
/// its writes of entries exist (then slices start there; else at fetch).
#[derive(Default, Clone, Copy)]
struct Sides {
    driver_writes: bool,
    driver_reads: bool,
}

impl Sides {
    /// The kinds of event that start and end an entry's slice: the
    /// driver's write of the entry (else the device's fetch) and the
    /// driver's read of its completion (else the device's write-back).
    fn slice_kinds(self) -> (Kind, Kind) {
        let starts = if self.driver_writes {
            Kind::DescWrite
        } else {
            Kind::Fetch
        };
        let ends = if self.driver_reads {
            Kind::DescRead
        } else {
            Kind::WriteBack
        };
        (starts, ends)
    }
}

fn build(t: &TraceFile) -> Timeline {
    let mut sides: HashMap<u16, Sides> = HashMap::new();
    for e in &t.events {
        let s = sides.entry(e.dev).or_default();
        s.driver_writes |= e.kind == Kind::DescWrite;
        s.driver_reads |= e.kind == Kind::DescRead;
    }
    let mut tl = Timeline::default();
    for e in &t.events {
        let kind = t.devices.get(e.dev as usize).map(|d| d.kind);
        let side = sides.get(&e.dev).copied().unwrap_or_default();
        let p = Point {
            pid: e.dev as u32 + 1,
            track: agent_track(e.agent),
            t_ns: e.t_ns,
            seq: e.seq,
        };
        match kind {
            Some(DeviceKind::Nvme { dstrd }) => nvme_event(&mut tl, e, p, dstrd, side),
            Some(k @ (DeviceKind::Igb | DeviceKind::Ixgbe)) => nic_event(&mut tl, e, p, k, side),
            None => {}
        }
    }
    tl
}

fn agent_track(a: Agent) -> Track {
    match a {
        Agent::Driver(n) => Track::Thread(n),
        Agent::Device(engine) => Track::Engine(engine),
    }
}

fn nvme_event(tl: &mut Timeline, e: &Event, p: Point, dstrd: u32, side: Sides) {
    let raw = e.raw.as_slice();
    let dev = e.dev;
    let (starts, ends) = side.slice_kinds();
    match (e.kind, e.queue) {
        (k, Queue::Sq(q)) if k == Kind::DescWrite || k == Kind::Fetch => {
            let Some((opc, cid)) = sqe_op(raw) else {
                return;
            };
            if k == starts {
                if let Some(old) = tl.commands.remove(&(dev, q, cid)) {
                    // The CID came back without a completion seen.
                    tl.chains[old].args.insert("completed".into(), json!(false));
                    tl.finish(old, p, dev);
                }
                let op = opcode_name(q, opc).unwrap_or("opcode");
                let name = format!("{op} CID={cid}");
                let mut args = Map::new();
                args.insert("OPC".into(), json!(opc));
                args.insert("CID".into(), json!(cid));
                args.insert("slot".into(), json!(e.index));
                args.insert(
                    "SQE".into(),
                    Value::Object(layout_fields(&nvme::sqe::LAYOUT, raw)),
                );
                let c = tl.start(p, dev, e.queue, name, args);
                tl.commands.insert((dev, q, cid), c);
                if k == Kind::DescWrite {
                    tl.unrung.entry((dev, q)).or_default().push(c);
                }
            } else if let Some(&c) = tl.commands.get(&(dev, q, cid)) {
                tl.point(c, p);
            }
            if k == Kind::Fetch {
                if let Some(&c) = tl.commands.get(&(dev, q, cid)) {
                    tl.current.insert((dev, Engine::Controller), c);
                }
            }
        }
        (k, Queue::Cq(cq)) if k == Kind::DescRead || k == Kind::WriteBack => {
            let Some((sqid, cid, _)) = cqe_ids(raw) else {
                return;
            };
            let Some(&c) = tl.commands.get(&(dev, sqid, cid)) else {
                return;
            };
            if k == ends {
                tl.commands.remove(&(dev, sqid, cid));
                tl.finish(c, p, dev);
                tl.unacked.entry((dev, cq)).or_default().push(c);
            } else {
                tl.point(c, p);
            }
            if k == Kind::WriteBack {
                tl.current.remove(&(dev, Engine::Controller));
            }
        }
        (Kind::PrpList | Kind::DmaRead | Kind::DmaWrite | Kind::Fault, _) => {
            if let Agent::Device(en) = e.agent {
                if let Some(&c) = tl.current.get(&(dev, en)) {
                    tl.point(c, p);
                }
            }
        }
        (Kind::RegWrite, _) => {
            let Ok(off) = usize::try_from(e.addr) else {
                return;
            };
            match nvme::reg::name(off, dstrd) {
                Some(nvme::reg::RegName::SqTail(q)) => {
                    for c in tl.unrung.remove(&(dev, q)).unwrap_or_default() {
                        tl.point(c, p);
                    }
                }
                Some(nvme::reg::RegName::CqHead(q)) => {
                    for c in tl.unacked.remove(&(dev, q)).unwrap_or_default() {
                        tl.point(c, p);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn nic_event(tl: &mut Timeline, e: &Event, p: Point, kind: DeviceKind, side: Sides) {
    let raw = e.raw.as_slice();
    let dev = e.dev;
    let key = (dev, e.queue);
    let (starts, ends) = side.slice_kinds();
    let find = |tl: &Timeline| {
        tl.ring
            .get(&key)
            .and_then(|r| r.iter().find(|d| d.index == e.index).copied())
    };
    match (e.kind, e.queue) {
        (k, Queue::Tx(_) | Queue::Rx(_)) if k == starts => {
            let is_tx = matches!(e.queue, Queue::Tx(_));
            let layout = layout_of(kind, e);
            let fields = layout.map(|l| layout_fields(l, raw)).unwrap_or_default();
            let (c, last) = match (is_tx, tl.open_frame.get(&key).copied()) {
                (true, Some(c)) => (c, tx_eop(raw)),
                _ => {
                    let name = if is_tx {
                        format!("{} frame", e.queue)
                    } else {
                        format!("{}[{}] buffer", e.queue, e.index)
                    };
                    let c = tl.start(p, dev, e.queue, name, Map::new());
                    (c, !is_tx || tx_eop(raw))
                }
            };
            if is_tx {
                if last {
                    tl.open_frame.remove(&key);
                } else {
                    tl.open_frame.insert(key, c);
                }
            }
            let args = &mut tl.chains[c].args;
            let descs = args.entry("descriptors").or_insert_with(|| json!([]));
            if let Value::Array(a) = descs {
                a.push(json!({
                    "slot": e.index,
                    "layout": layout.map(|l| l.name),
                    "fields": fields,
                }));
            }
            if tl.chains[c].points.last().map(|q| q.seq) != Some(p.seq) {
                tl.point(c, p);
            }
            tl.ring.entry(key).or_default().push_back(Pending {
                index: e.index,
                chain: c,
                last,
            });
            if k == Kind::Fetch {
                if let Agent::Device(en) = e.agent {
                    tl.current.insert((dev, en), c);
                }
            }
        }
        (Kind::Fetch, Queue::Tx(_) | Queue::Rx(_)) => {
            let Some(d) = find(tl) else { return };
            if let Queue::Rx(q) = e.queue {
                if let Some(f) = tl.rx_frame.remove(&(dev, q)) {
                    tl.point(d.chain, f);
                }
            }
            tl.point(d.chain, p);
            if let Agent::Device(en) = e.agent {
                tl.current.insert((dev, en), d.chain);
            }
        }
        (k, Queue::Tx(_) | Queue::Rx(_)) if k == ends => {
            if raw.len() >= adv::DESC_SIZE && !nic_done(e.queue, raw) {
                return; // a poll that found the descriptor not done yet
            }
            let Some(ring) = tl.ring.get_mut(&key) else {
                return;
            };
            let Some(at) = ring.iter().position(|d| d.index == e.index) else {
                return;
            };
            // Done in order: everything before it in the ring is done too.
            let done: Vec<Pending> = ring.drain(..=at).collect();
            for d in done {
                if d.last {
                    tl.finish(d.chain, p, dev);
                }
            }
        }
        (Kind::WriteBack, Queue::Tx(_) | Queue::Rx(_)) => {
            if let Some(d) = find(tl) {
                tl.point(d.chain, p);
            }
        }
        (Kind::Frame, Queue::Rx(q)) => {
            tl.rx_frame.insert((dev, q), p);
        }
        (Kind::DmaRead | Kind::DmaWrite | Kind::Fault | Kind::Frame, _) => {
            let en = match (e.agent, e.queue) {
                (Agent::Device(Engine::Wire), Queue::Tx(q)) => Engine::Tx(q),
                (Agent::Device(en), _) => en,
                _ => return,
            };
            if let Some(&c) = tl.current.get(&(dev, en)) {
                tl.point(c, p);
            }
        }
        (Kind::RegWrite, _) => {
            let Ok(off) = usize::try_from(e.addr) else {
                return;
            };
            let name = match kind {
                DeviceKind::Igb => spec::nic::igb::name(off),
                _ => spec::nic::ixgbe::name(off),
            };
            let q = match name {
                Some(spec::nic::regname::RegName::Indexed("TDT", q)) => Queue::Tx(q as u16),
                Some(spec::nic::regname::RegName::Indexed("RDT", q)) => Queue::Rx(q as u16),
                _ => return,
            };
            // Every descriptor in flight that no tail write covered yet
            // gets this one (each chain holds one tail point at most).
            let chains: Vec<usize> = tl
                .ring
                .get(&(dev, q))
                .map(|r| r.iter().map(|d| d.chain).collect())
                .unwrap_or_default();
            let mut seen = Vec::new();
            for c in chains {
                if seen.contains(&c) {
                    continue;
                }
                seen.push(c);
                let rung = tl.chains[c].args.get("tail").is_some();
                if !rung {
                    tl.chains[c]
                        .args
                        .insert("tail".into(), json!(format!("{:#x}", e.value)));
                    tl.point(c, p);
                }
            }
        }
        _ => {}
    }
}

/// Microseconds (the format's unit) from nanoseconds, exactly to the ns.
fn us(t_ns: u64) -> Value {
    json!(t_ns as f64 / 1000.0)
}

/// One record of the output, sorted by time; at one time, slice ends come
/// first, then slice starts and event slices, then the flow points that
/// bind to them, then counters.
struct Record {
    t_ns: u64,
    rank: u8,
    order: usize,
    json: String,
}

/// The tids of one file.
#[derive(Default)]
struct Tids {
    map: HashMap<(u32, Track), u32>,
    names: Vec<(u32, u32, String, u32)>,
}

impl Tids {
    fn get(&mut self, t: &TraceFile, pid: u32, track: Track) -> u32 {
        if let Some(&tid) = self.map.get(&(pid, track)) {
            return tid;
        }
        let tid = self.map.len() as u32 + 1;
        self.map.insert((pid, track), tid);
        let (name, sort) = match track {
            Track::Thread(n) => {
                let name = t
                    .threads
                    .get(n as usize)
                    .map_or_else(|| format!("thread {n}"), |s| s.clone());
                (format!("driver {name}"), n as u32)
            }
            Track::Queue(q, 0) => (q.to_string(), 10_000 + tid),
            Track::Queue(q, lane) => (format!("{q} #{}", lane + 1), 10_000 + tid),
            Track::Engine(en) => (Agent::Device(en).to_string(), 1_000_000 + tid),
        };
        self.names.push((pid, tid, name, sort));
        tid
    }
}

/// Write `t` as Chrome trace-event JSON.
pub fn write(t: &TraceFile, out: &mut impl Write) -> std::io::Result<()> {
    let tl = build(t);
    let mut tids = Tids::default();
    let mut recs: Vec<Record> = Vec::with_capacity(t.events.len() * 2);
    let push = |recs: &mut Vec<Record>, t_ns: u64, rank: u8, v: Value| {
        let order = recs.len();
        recs.push(Record {
            t_ns,
            rank,
            order,
            json: v.to_string(),
        });
    };
    // Every event: a 1 ns slice on its agent's track.
    for (i, e) in t.events.iter().enumerate() {
        let pid = e.dev as u32 + 1;
        let tid = tids.get(t, pid, agent_track(e.agent));
        let kind = t.devices.get(e.dev as usize).map(|d| d.kind);
        let mut args = Map::new();
        args.insert("ev".into(), Value::Object(jsonl::event_object(t, e)));
        args.insert("order".into(), json!(i));
        if let Some(l) = kind.and_then(|k| layout_of(k, e)) {
            args.insert("layout".into(), json!(l.name));
            args.insert(
                "fields".into(),
                Value::Object(layout_fields(l, e.raw.as_slice())),
            );
        } else if let (Some(DeviceKind::Nvme { .. }), Kind::RegRead | Kind::RegWrite) =
            (kind, e.kind)
        {
            if let Some(w) = nvme::reg::LAYOUT
                .words
                .iter()
                .find(|w| w.offset as u64 == e.addr)
            {
                let mut f = Map::new();
                for field in w.fields {
                    f.insert(field.name.into(), json!(field.get(e.value)));
                }
                args.insert("fields".into(), Value::Object(f));
            }
        }
        let v = json!({
            "name": label(t, kind, e),
            "cat": e.kind.name(),
            "ph": "X",
            "ts": us(e.t_ns),
            "dur": 0.001,
            "pid": pid,
            "tid": tid,
            "args": args,
        });
        push(&mut recs, e.t_ns, 1, v);
    }
    // Commands and frames: slices on queue lanes, so that they nest.
    let last_ns = t.events.iter().map(|e| e.t_ns).max().unwrap_or(0);
    let mut lanes: HashMap<(u32, Queue), Vec<u64>> = HashMap::new();
    for (id, c) in tl.chains.iter().enumerate() {
        let mut name = c.name.clone();
        let mut args = c.args.clone();
        let end = match c.end {
            Some(end) => end,
            None => {
                name += " (no completion seen)";
                args.insert("completed".into(), json!(false));
                last_ns
            }
        };
        let end = end.max(c.start + 1);
        let ends = lanes.entry((c.pid, c.queue)).or_default();
        let lane = match ends.iter().position(|&free| free <= c.start) {
            Some(l) => {
                ends[l] = end;
                l
            }
            None => {
                ends.push(end);
                ends.len() - 1
            }
        };
        let tid = tids.get(t, c.pid, Track::Queue(c.queue, lane as u32));
        let cat = "command";
        let b = json!({"name": name, "cat": cat, "ph": "B", "ts": us(c.start), "pid": c.pid, "tid": tid, "args": args});
        push(&mut recs, c.start, 1, b);
        let e =
            json!({"name": name, "cat": cat, "ph": "E", "ts": us(end), "pid": c.pid, "tid": tid});
        push(&mut recs, end, 0, e);
        // The flow through its events, in time order.
        let mut pts = c.points.clone();
        pts.sort_by_key(|p| (p.t_ns, p.seq));
        pts.dedup_by_key(|p| p.seq);
        if pts.len() < 2 {
            continue;
        }
        let n = pts.len();
        for (k, p) in pts.iter().enumerate() {
            let ph = if k == 0 {
                "s"
            } else if k + 1 == n {
                "f"
            } else {
                "t"
            };
            let tid = tids.get(t, p.pid, p.track);
            let mut v = json!({"name": "dma", "cat": "flow", "ph": ph, "id": id + 1, "ts": us(p.t_ns), "pid": p.pid, "tid": tid});
            if ph == "f" {
                v["bp"] = json!("e");
            }
            push(&mut recs, p.t_ns, 2, v);
        }
    }
    for (t_ns, pid, name, n) in &tl.counters {
        let v =
            json!({"name": name, "ph": "C", "ts": us(*t_ns), "pid": pid, "args": {"entries": n}});
        push(&mut recs, *t_ns, 3, v);
    }
    recs.sort_by_key(|r| (r.t_ns, r.rank, r.order));

    write!(out, "{{\"traceEvents\":[")?;
    let mut first = true;
    let mut line = |out: &mut dyn Write, s: &str| -> std::io::Result<()> {
        let sep = if first { "\n" } else { ",\n" };
        first = false;
        write!(out, "{sep}{s}")
    };
    for (i, d) in t.devices.iter().enumerate() {
        let pid = i + 1;
        let name = format!("dev{i} {} {}", d.kind.name(), d.name);
        line(
            out,
            &json!({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}})
                .to_string(),
        )?;
        line(out, &json!({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": pid}}).to_string())?;
    }
    for (pid, tid, name, sort) in &tids.names {
        line(out, &json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}).to_string())?;
        line(out, &json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": sort}}).to_string())?;
    }
    for r in &recs {
        line(out, &r.json)?;
    }
    let meta = json!({"dmatrace": jsonl::header(t)});
    write!(
        out,
        "\n],\n\"displayTimeUnit\":\"ns\",\n\"metadata\":{meta}}}\n"
    )?;
    out.flush()
}

/// Read a Chrome trace written by [`write()`].
pub fn read(mut input: impl Read) -> Result<TraceFile, String> {
    // Whole, then parsed: serde_json parses a slice several times faster
    // than a reader.
    let mut data = Vec::new();
    input
        .read_to_end(&mut data)
        .map_err(|e| format!("reading: {e}"))?;
    let v: Value = serde_json::from_slice(&data).map_err(|e| format!("not JSON: {e}"))?;
    drop(data);
    let h = v
        .get("metadata")
        .and_then(|m| m.get("dmatrace"))
        .ok_or("no \"metadata\".\"dmatrace\" header: not a Chrome trace written by dmatrace")?;
    let mut t = jsonl::header_from(h).map_err(|e| format!("header: {e}"))?;
    let list = v["traceEvents"]
        .as_array()
        .ok_or("\"traceEvents\" is not an array")?;
    let mut events = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let Some(ev) = r.get("args").and_then(|a| a.get("ev")) else {
            continue;
        };
        let e = jsonl::event_from(i + 1, ev).map_err(|e| format!("traceEvents[{i}]: {e}"))?;
        if e.dev as usize >= t.devices.len() {
            return Err(format!(
                "traceEvents[{i}]: device {} is not in the header",
                e.dev
            ));
        }
        let order = r["args"]["order"]
            .as_u64()
            .ok_or_else(|| format!("traceEvents[{i}]: \"args\".\"order\" is missing"))?;
        events.push((order, e));
    }
    events.sort_by_key(|(o, _)| *o);
    t.events = events.into_iter().map(|(_, e)| e).collect();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::trace::{DeviceInfo, Tracer};

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(read(&b"{"[..]).unwrap_err().starts_with("not JSON"));
        let e = read(&b"{\"traceEvents\":[]}"[..]).unwrap_err();
        assert!(e.contains("not a Chrome trace written by dmatrace"), "{e}");
        let tracer = Tracer::new(10);
        let tap = tracer.device(DeviceInfo {
            name: "emu:igb".into(),
            kind: DeviceKind::Igb,
            emulated: true,
        });
        tap.record(|| Event::note("hello"));
        let t = TraceFile::take(&tracer);
        let mut out = Vec::new();
        write(&t, &mut out).unwrap();
        assert_eq!(read(&out[..]).unwrap(), t);
        let text = String::from_utf8(out).unwrap();
        let no_order = text.replace("\"order\":0", "\"orden\":0");
        assert!(read(no_order.as_bytes())
            .unwrap_err()
            .contains("\"order\" is missing"));
        let bad_dev = text.replace("\"dev\":0", "\"dev\":9");
        assert!(read(bad_dev.as_bytes()).unwrap_err().contains("device 9"));
    }

    #[test]
    fn an_unfinished_command_is_closed_at_the_end_and_marked() {
        let tracer = Tracer::new(10);
        let tap = tracer.device(DeviceInfo {
            name: "emu:nvme".into(),
            kind: DeviceKind::Nvme { dstrd: 0 },
            emulated: true,
        });
        let mut sqe = [0u8; 64];
        sqe[0] = nvme::io::READ;
        tap.record(|| Event::new(Kind::DescWrite).queue(Queue::Sq(1)).bytes(&sqe));
        tap.record(|| Event::note("controller fatal status"));
        let mut out = Vec::new();
        write(&TraceFile::take(&tracer), &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let recs = v["traceEvents"].as_array().unwrap();
        let b: Vec<&Value> = recs.iter().filter(|r| r["ph"] == "B").collect();
        let e: Vec<&Value> = recs.iter().filter(|r| r["ph"] == "E").collect();
        assert_eq!(b.len(), 1);
        assert_eq!(e.len(), 1);
        assert_eq!(b[0]["name"], "Read CID=0 (no completion seen)");
        assert_eq!(b[0]["args"]["completed"], false);
        assert!(e[0]["ts"].as_f64() >= b[0]["ts"].as_f64());
    }
}
