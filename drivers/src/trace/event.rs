//! One trace event: a fixed-size, copyable record (no allocation on the hot
//! path), its names, and its binary form (the DMA interface of a `.pcapng`
//! trace carries exactly these bytes; `tools/dmatrace.lua` reads them).
#![forbid(unsafe_code)]

use core::fmt;

/// Bytes of descriptor, entry or frame header carried by one event: an
/// NVMe SQE (64), a CQE (16), a NIC descriptor (16), eight PRP-list entries,
/// or the first 64 bytes of a frame.
pub const RAW_MAX: usize = 64;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The driver read a register: `addr` = offset in BAR0, `value`,
    /// `len` = access width in bytes.
    RegRead,
    /// The driver wrote a register (doorbells and tails included): `addr`
    /// = offset in BAR0, `value`, `len` = access width.
    RegWrite,
    /// The driver filled a ring entry (an SQE, an RX or TX descriptor):
    /// `queue`, `index` = slot, `addr` = its IOVA, `bytes` = what it wrote.
    DescWrite,
    /// The driver consumed an entry the device wrote (a CQE, a descriptor
    /// write-back): `queue`, `index`, `addr`, `bytes` as read.
    DescRead,
    /// The device fetched a ring entry: `queue`, `index`, `addr`, `bytes`.
    Fetch,
    /// The device read a PRP list: `addr` = its IOVA, `len` = entries read,
    /// `bytes` = the first eight entries.
    PrpList,
    /// The device read memory by DMA: `addr` = IOVA, `len` bytes.
    DmaRead,
    /// The device wrote memory by DMA: `addr` = IOVA, `len` bytes.
    DmaWrite,
    /// The device wrote a completion entry or descriptor write-back:
    /// `queue`, `index` = slot, `addr`, `bytes` = what it wrote.
    WriteBack,
    /// A frame left (`queue` = TXn) or arrived (`queue` = RXn): `len` = its
    /// length, `bytes` = its first bytes.
    Frame,
    /// A DMA the IOMMU stopped: `addr` = IOVA, `len`, `value` = 1 for a
    /// write, 0 for a read.
    Fault,
    /// A remark (reset, queue stopped, fatal status): `bytes` = UTF-8 text.
    Note,
    /// The device's buffer was full: events after this one were dropped.
    Truncated,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 13] = [
        Kind::RegRead,
        Kind::RegWrite,
        Kind::DescWrite,
        Kind::DescRead,
        Kind::Fetch,
        Kind::PrpList,
        Kind::DmaRead,
        Kind::DmaWrite,
        Kind::WriteBack,
        Kind::Frame,
        Kind::Fault,
        Kind::Note,
        Kind::Truncated,
    ];

    /// The name used in every trace format (`"reg_write"`, `"fetch"`).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::RegRead => "reg_read",
            Kind::RegWrite => "reg_write",
            Kind::DescWrite => "desc_write",
            Kind::DescRead => "desc_read",
            Kind::Fetch => "fetch",
            Kind::PrpList => "prp_list",
            Kind::DmaRead => "dma_read",
            Kind::DmaWrite => "dma_write",
            Kind::WriteBack => "write_back",
            Kind::Frame => "frame",
            Kind::Fault => "fault",
            Kind::Note => "note",
            Kind::Truncated => "truncated",
        }
    }

    /// The kind named `name` (see [`Kind::name`]).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its number in the binary form.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind numbered `code` in the binary form.
    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.get(code as usize).copied()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A queue or ring, named the same way on every device: NVMe `SQn`/`CQn`
/// (n = queue ID, 0 = admin), NIC `RXn`/`TXn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Queue {
    /// Not about one queue.
    #[default]
    None,
    /// NVMe submission queue `qid`.
    Sq(u16),
    /// NVMe completion queue `qid`.
    Cq(u16),
    /// NIC receive queue.
    Rx(u16),
    /// NIC transmit queue.
    Tx(u16),
}

impl Queue {
    fn parts(self) -> (u8, u16) {
        match self {
            Queue::None => (0, 0),
            Queue::Sq(n) => (1, n),
            Queue::Cq(n) => (2, n),
            Queue::Rx(n) => (3, n),
            Queue::Tx(n) => (4, n),
        }
    }

    fn from_parts(code: u8, n: u16) -> Option<Queue> {
        Some(match code {
            0 => Queue::None,
            1 => Queue::Sq(n),
            2 => Queue::Cq(n),
            3 => Queue::Rx(n),
            4 => Queue::Tx(n),
            _ => return None,
        })
    }

    /// Parse `SQ1`, `cq0`, `RX3`, `TX0` (any case); `""` or `-` is
    /// [`Queue::None`].
    pub fn parse(s: &str) -> Option<Queue> {
        if s.is_empty() || s == "-" {
            return Some(Queue::None);
        }
        if s.len() < 3 || !s.is_char_boundary(2) {
            return None;
        }
        let (p, n) = s.split_at(2);
        let n: u16 = n.parse().ok()?;
        match p.to_ascii_uppercase().as_str() {
            "SQ" => Some(Queue::Sq(n)),
            "CQ" => Some(Queue::Cq(n)),
            "RX" => Some(Queue::Rx(n)),
            "TX" => Some(Queue::Tx(n)),
            _ => None,
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Queue::None => f.write_str("-"),
            Queue::Sq(n) => write!(f, "SQ{n}"),
            Queue::Cq(n) => write!(f, "CQ{n}"),
            Queue::Rx(n) => write!(f, "RX{n}"),
            Queue::Tx(n) => write!(f, "TX{n}"),
        }
    }
}

/// A device's engine: who, inside the device, did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// An NVMe controller's command processing (fetch, PRPs, data, completion).
    Controller,
    /// A NIC's receive engine for queue n.
    Rx(u16),
    /// A NIC's transmit engine for queue n.
    Tx(u16),
    /// The wire or medium behind the device.
    Wire,
}

/// Who did it: a driver thread (numbered in the order threads first
/// recorded, named in [`crate::trace::threads`]) or a device engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Agent {
    /// The driver, on the thread with this number.
    Driver(u16),
    /// The device.
    Device(Engine),
}

impl Agent {
    fn parts(self) -> (u8, u16) {
        match self {
            Agent::Driver(t) => (0, t),
            Agent::Device(Engine::Controller) => (1, 0),
            Agent::Device(Engine::Rx(q)) => (2, q),
            Agent::Device(Engine::Tx(q)) => (3, q),
            Agent::Device(Engine::Wire) => (4, 0),
        }
    }

    fn from_parts(code: u8, n: u16) -> Option<Agent> {
        Some(match code {
            0 => Agent::Driver(n),
            1 => Agent::Device(Engine::Controller),
            2 => Agent::Device(Engine::Rx(n)),
            3 => Agent::Device(Engine::Tx(n)),
            4 => Agent::Device(Engine::Wire),
            _ => return None,
        })
    }

    /// Parse the [`fmt::Display`] form back.
    pub fn parse(s: &str) -> Option<Agent> {
        if let Some(t) = s.strip_prefix("driver/") {
            return t.parse().ok().map(Agent::Driver);
        }
        let e = s.strip_prefix("device/")?;
        Some(Agent::Device(match e {
            "controller" => Engine::Controller,
            "wire" => Engine::Wire,
            _ => {
                let (p, n) = e.split_at(e.len().min(2));
                let n: u16 = n.parse().ok()?;
                match p {
                    "rx" => Engine::Rx(n),
                    "tx" => Engine::Tx(n),
                    _ => return None,
                }
            }
        }))
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Agent::Driver(t) => write!(f, "driver/{t}"),
            Agent::Device(Engine::Controller) => f.write_str("device/controller"),
            Agent::Device(Engine::Rx(q)) => write!(f, "device/rx{q}"),
            Agent::Device(Engine::Tx(q)) => write!(f, "device/tx{q}"),
            Agent::Device(Engine::Wire) => f.write_str("device/wire"),
        }
    }
}

/// Up to [`RAW_MAX`] bytes, inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Raw {
    len: u8,
    data: [u8; RAW_MAX],
}

impl Raw {
    /// No bytes.
    pub const EMPTY: Raw = Raw {
        len: 0,
        data: [0; RAW_MAX],
    };

    /// The first [`RAW_MAX`] bytes of `b`.
    #[inline]
    pub fn new(b: &[u8]) -> Raw {
        let n = b.len().min(RAW_MAX);
        let mut r = Raw::EMPTY;
        r.data[..n].copy_from_slice(&b[..n]);
        r.len = n as u8;
        r
    }

    /// Little-endian words (an SQE's or a descriptor's dwords or qwords as
    /// the driver holds them), up to [`RAW_MAX`] bytes.
    #[inline]
    pub fn from_u32s(words: &[u32]) -> Raw {
        let mut r = Raw::EMPTY;
        for (i, w) in words.iter().take(RAW_MAX / 4).enumerate() {
            r.data[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        r.len = (words.len().min(RAW_MAX / 4) * 4) as u8;
        r
    }

    /// Little-endian qwords, up to [`RAW_MAX`] bytes.
    #[inline]
    pub fn from_u64s(words: &[u64]) -> Raw {
        let mut r = Raw::EMPTY;
        for (i, w) in words.iter().take(RAW_MAX / 8).enumerate() {
            r.data[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        r.len = (words.len().min(RAW_MAX / 8) * 8) as u8;
        r
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }

    /// Lower-case hex, two digits a byte, no separators.
    pub fn hex(&self) -> String {
        // By table, not format!: the trace files print this for most
        // events, and a format! per byte was a third of writing a .jsonl.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(self.len as usize * 2);
        for &b in self.as_slice() {
            s.push(DIGITS[(b >> 4) as usize] as char);
            s.push(DIGITS[(b & 15) as usize] as char);
        }
        s
    }

    /// Parse [`Raw::hex`]'s form (whitespace ignored); `None` if it is not
    /// hex pairs or longer than [`RAW_MAX`] bytes.
    pub fn from_hex(s: &str) -> Option<Raw> {
        let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) || digits.len() / 2 > RAW_MAX {
            return None;
        }
        let mut out = Vec::with_capacity(digits.len() / 2);
        for pair in digits.chunks(2) {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        }
        Some(Raw::new(&out))
    }
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Raw({})", self.hex())
    }
}

impl Default for Raw {
    fn default() -> Self {
        Raw::EMPTY
    }
}

/// One event. Fields a kind does not use are 0 (see [`Kind`] for what each
/// kind puts where). `seq`, `t_ns` and `dev` are filled in by the tracer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// Order of recording across the whole process (the timeline's order).
    pub seq: u64,
    /// Nanoseconds since the tracer started (monotonic clock).
    pub t_ns: u64,
    /// The device, numbered in the tracer's device table.
    pub dev: u16,
    /// Who did it.
    pub agent: Agent,
    /// What happened.
    pub kind: Kind,
    /// The queue or ring it concerns.
    pub queue: Queue,
    /// Slot in the ring.
    pub index: u32,
    /// IOVA, or register offset for register events.
    pub addr: u64,
    /// Length: DMA bytes, frame bytes, PRP entries, access width.
    pub len: u32,
    /// Register value, or a kind's number (see [`Kind`]).
    pub value: u64,
    /// Raw bytes.
    pub raw: Raw,
}

/// Bytes of [`Event::encode`]'s form.
pub const ENCODED_LEN: usize = 8 + 8 + 2 + 1 + 2 + 1 + 1 + 2 + 4 + 8 + 4 + 8 + 1 + RAW_MAX;

/// Version of the binary form (first byte after the magic in a pcapng
/// DMA interface's description).
pub const ENCODING_VERSION: u8 = 1;

impl Event {
    /// An event of `kind` by the driver thread that records it; the other
    /// fields 0 until set.
    #[inline]
    pub fn new(kind: Kind) -> Event {
        Event {
            seq: 0,
            t_ns: 0,
            dev: 0,
            agent: Agent::Driver(0),
            kind,
            queue: Queue::None,
            index: 0,
            addr: 0,
            len: 0,
            value: 0,
            raw: Raw::EMPTY,
        }
    }

    /// An event of `kind` done by the device's `engine`.
    #[inline]
    pub fn device(kind: Kind, engine: Engine) -> Event {
        Event {
            agent: Agent::Device(engine),
            ..Event::new(kind)
        }
    }

    /// With `queue`.
    #[inline]
    pub fn queue(mut self, queue: Queue) -> Event {
        self.queue = queue;
        self
    }
    /// With slot `index`.
    #[inline]
    pub fn index(mut self, index: u32) -> Event {
        self.index = index;
        self
    }
    /// With `addr` (IOVA or register offset).
    #[inline]
    pub fn addr(mut self, addr: u64) -> Event {
        self.addr = addr;
        self
    }
    /// With `len`.
    #[inline]
    pub fn len(mut self, len: u32) -> Event {
        self.len = len;
        self
    }
    /// With `value`.
    #[inline]
    pub fn value(mut self, value: u64) -> Event {
        self.value = value;
        self
    }
    /// With raw bytes.
    #[inline]
    pub fn raw(mut self, raw: Raw) -> Event {
        self.raw = raw;
        self
    }
    /// With the first [`RAW_MAX`] bytes of `b`.
    #[inline]
    pub fn bytes(self, b: &[u8]) -> Event {
        self.raw(Raw::new(b))
    }

    /// A note's text.
    pub fn note(text: &str) -> Event {
        // Cut at a character boundary within RAW_MAX bytes.
        let mut end = text.len().min(RAW_MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Event::new(Kind::Note).bytes(&text.as_bytes()[..end])
    }

    /// The fixed-size little-endian binary form: seq u64, t_ns u64, dev
    /// u16, agent code u8 + number u16, kind u8, queue code u8 + number
    /// u16, index u32, addr u64, len u32, value u64, raw length u8, raw
    /// bytes (always [`RAW_MAX`], zero-padded).
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut o = [0u8; ENCODED_LEN];
        let mut at = 0;
        let mut put = |b: &[u8]| {
            o[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        };
        put(&self.seq.to_le_bytes());
        put(&self.t_ns.to_le_bytes());
        put(&self.dev.to_le_bytes());
        let (ac, an) = self.agent.parts();
        put(&[ac]);
        put(&an.to_le_bytes());
        put(&[self.kind.code()]);
        let (qc, qn) = self.queue.parts();
        put(&[qc]);
        put(&qn.to_le_bytes());
        put(&self.index.to_le_bytes());
        put(&self.addr.to_le_bytes());
        put(&self.len.to_le_bytes());
        put(&self.value.to_le_bytes());
        put(&[self.raw.len]);
        put(&self.raw.data);
        o
    }

    /// Read [`Event::encode`]'s form; `None` if `b` is short or a code is
    /// unknown.
    pub fn decode(b: &[u8]) -> Option<Event> {
        if b.len() < ENCODED_LEN {
            return None;
        }
        let mut at = 0;
        let mut take = |n: usize| {
            let s = &b[at..at + n];
            at += n;
            s
        };
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
        let u16_ = |s: &[u8]| u16::from_le_bytes(s.try_into().unwrap_or([0; 2]));
        let seq = u64_(take(8));
        let t_ns = u64_(take(8));
        let dev = u16_(take(2));
        let ac = take(1)[0];
        let agent = Agent::from_parts(ac, u16_(take(2)))?;
        let kind = Kind::from_code(take(1)[0])?;
        let qc = take(1)[0];
        let queue = Queue::from_parts(qc, u16_(take(2)))?;
        let index = u32_(take(4));
        let addr = u64_(take(8));
        let len = u32_(take(4));
        let value = u64_(take(8));
        let rl = take(1)[0] as usize;
        if rl > RAW_MAX {
            return None;
        }
        let raw = Raw::new(&take(RAW_MAX)[..rl]);
        Some(Event {
            seq,
            t_ns,
            dev,
            agent,
            kind,
            queue,
            index,
            addr,
            len,
            value,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
            assert_eq!(Kind::from_code(k.code()), Some(k));
        }
        for q in [
            Queue::None,
            Queue::Sq(0),
            Queue::Cq(7),
            Queue::Rx(3),
            Queue::Tx(65535),
        ] {
            assert_eq!(Queue::parse(&q.to_string()), Some(q));
        }
        assert_eq!(Queue::parse("sq1"), Some(Queue::Sq(1)));
        assert_eq!(Queue::parse("SQ"), None);
        assert_eq!(Queue::parse("XX1"), None);
        for a in [
            Agent::Driver(3),
            Agent::Device(Engine::Controller),
            Agent::Device(Engine::Rx(2)),
            Agent::Device(Engine::Tx(0)),
            Agent::Device(Engine::Wire),
        ] {
            assert_eq!(Agent::parse(&a.to_string()), Some(a));
        }
        assert_eq!(Agent::parse("device/zz1"), None);
    }

    #[test]
    fn binary_form_round_trips_and_refuses_short_or_unknown() {
        let e = Event::device(Kind::Fetch, Engine::Controller)
            .queue(Queue::Sq(1))
            .index(5)
            .addr(0x1_0040_0000)
            .len(64)
            .value(0xdead_beef_0000_0001)
            .bytes(&[1, 2, 3, 4, 5]);
        let e = Event {
            seq: 42,
            t_ns: 1_000_001,
            dev: 2,
            ..e
        };
        let b = e.encode();
        assert_eq!(Event::decode(&b), Some(e));
        assert_eq!(Event::decode(&b[..ENCODED_LEN - 1]), None);
        let mut bad = b;
        bad[8 + 8 + 2 + 1 + 2] = 200; // kind code
        assert_eq!(Event::decode(&bad), None);
    }

    #[test]
    fn raw_keeps_at_most_64_bytes_and_hex_round_trips() {
        let long: Vec<u8> = (0..100).collect();
        let r = Raw::new(&long);
        assert_eq!(r.as_slice(), &long[..64]);
        assert_eq!(Raw::from_hex(&r.hex()), Some(r));
        assert_eq!(
            Raw::new(&[0x00, 0x0f, 0xa5, 0xff, 0x10]).hex(),
            "000fa5ff10"
        );
        assert_eq!(Raw::from_hex("0g"), None);
        assert_eq!(Raw::from_hex("012"), None);
        assert_eq!(
            Raw::from_u32s(&[0x0403_0201, 0x0807_0605]).as_slice(),
            &[1, 2, 3, 4, 5, 6, 7, 8]
        );
        let note = Event::note(&"é".repeat(40));
        assert!(std::str::from_utf8(note.raw.as_slice()).is_ok());
    }
}
