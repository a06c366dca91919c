//! The descriptor trace: every descriptor that moves is an event.
//!
//! The driver records what it wrote into rings (SQEs, RX and TX
//! descriptors), its register reads and writes (doorbells and tails among
//! them) and what it read back (CQEs, write-backs); these work on real
//! hardware through VFIO as well. The device models of the `emu` crate record
//! what the device did (fetches, PRP-list reads, each DMA with IOVA and
//! length, write-backs, frames on the wire). Both land in one [`Tracer`] and
//! so in one timeline, ordered by [`Event::seq`].
//!
//! Costs: a traced object holds a [`Tap`]; with tracing off the tap is
//! empty and recording is one test of a pointer. With tracing on, an event
//! costs a clock read, two atomic adds and the store into its slot (no
//! lock): the device's count of events offered gives each event its own
//! slot, in chunks of [`CHUNK`] allocated as they are first needed. Each
//! device keeps at most [`Tracer::capacity`] events; the next one becomes a
//! single [`Kind::Truncated`] event and later ones are dropped (and
//! counted).
//!
//! Files (JSON lines, Chrome trace JSON, pcapng) are written by the apps
//! crate from [`Tracer::drain`]; the names and layouts they print come from
//! the `spec` tables ([`DeviceKind::reg_name`]).
#![forbid(unsafe_code)]

mod event;

pub use event::{Agent, Engine, Event, Kind, Queue, Raw, ENCODED_LEN, ENCODING_VERSION, RAW_MAX};

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Events each device keeps by default.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// What kind of device, so that a decoder can name its registers and
/// decode its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// An NVMe controller with doorbells `4 << dstrd` bytes apart
    /// (CAP.DSTRD; 0 until the driver has read CAP).
    Nvme {
        /// CAP.DSTRD.
        dstrd: u32,
    },
    /// An Intel 82576 / I350 (igb family).
    Igb,
    /// An Intel 82599 (ixgbe family).
    Ixgbe,
}

impl DeviceKind {
    /// The name in trace files: `nvme`, `igb`, `ixgbe`.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Nvme { .. } => "nvme",
            DeviceKind::Igb => "igb",
            DeviceKind::Ixgbe => "ixgbe",
        }
    }

    /// The datasheet's name of the register at `offset` (`"CSTS"`,
    /// `"SQ1 tail doorbell"`, `"RDT[0]"`), from the `spec` tables; `None`
    /// for an offset they do not name.
    pub fn reg_name(self, offset: u64) -> Option<String> {
        let offset = usize::try_from(offset).ok()?;
        match self {
            DeviceKind::Nvme { dstrd } => {
                spec::nvme::reg::name(offset, dstrd).map(|n| n.to_string())
            }
            DeviceKind::Igb => spec::nic::igb::name(offset).map(|n| n.to_string()),
            DeviceKind::Ixgbe => spec::nic::ixgbe::name(offset).map(|n| n.to_string()),
        }
    }
}

/// A traced device: its entry in the tracer's device table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device string it was opened by (`emu:nvme,size=1M`, `0000:03:00.0`).
    pub name: String,
    /// Its kind.
    pub kind: DeviceKind,
    /// Whether a device model (which records device-side events) is behind it.
    pub emulated: bool,
}

/// Event slots per chunk of a device's buffer: 1024 events of 136 bytes,
/// one allocation (above glibc's mmap threshold: one mmap) per 1024 events
/// where a queue of small blocks cost a heap extension (an mprotect system
/// call, in a thread's arena) every 31.
pub const CHUNK: usize = 1024;

/// One chunk of a device's buffer.
type Chunk = Box<[OnceLock<Event>]>;

/// One device's events and budget.
#[derive(Debug)]
struct DeviceLog {
    info: Mutex<DeviceInfo>,
    /// Slot n holds the device's event number n (n = the count of
    /// `offered` it drew); capacity + 1 slots (the last one for the
    /// Truncated event), chunk by chunk.
    chunks: Box<[OnceLock<Chunk>]>,
    /// Events offered so far (kept or not).
    offered: AtomicUsize,
    /// Slots [`Tracer::drain`] has taken.
    drained: Mutex<usize>,
}

impl DeviceLog {
    fn new(info: DeviceInfo, capacity: usize) -> DeviceLog {
        DeviceLog {
            info: Mutex::new(info),
            chunks: (0..(capacity + 1).div_ceil(CHUNK))
                .map(|_| OnceLock::new())
                .collect(),
            offered: AtomicUsize::new(0),
            drained: Mutex::new(0),
        }
    }

    /// Store event number `n` (at most the capacity: the caller checked),
    /// allocating its chunk if it is the first there. Only the one thread
    /// that drew `n` writes slot `n`; a chunk is made outside its cell,
    /// so a thread never waits for another's allocation (two that race
    /// both allocate; the loser's chunk is dropped).
    #[inline]
    fn store(&self, n: usize, e: Event) {
        let cell = &self.chunks[n / CHUNK];
        let chunk = match cell.get() {
            Some(c) => c,
            None => self.new_chunk(cell),
        };
        // Slot n is drawn once (offered's fetch_add), so it is empty.
        let _ = chunk[n % CHUNK].set(e);
    }

    #[cold]
    #[inline(never)]
    fn new_chunk<'a>(&self, cell: &'a OnceLock<Chunk>) -> &'a Chunk {
        let chunk: Chunk = (0..CHUNK).map(|_| OnceLock::new()).collect();
        let _ = cell.set(chunk);
        // Set just now, by this thread or the one it raced.
        cell.get_or_init(|| unreachable!("a chunk cell is set before it is read"))
    }

    /// The events stored since the last call, in slot order, up to the
    /// first slot drawn but not written yet (its writer is between the two:
    /// it and the slots after it come with the next call).
    fn take(&self, out: &mut Vec<Event>, capacity: usize) {
        let mut from = self.drained.lock().unwrap_or_else(|p| p.into_inner());
        let end = self.offered.load(Ordering::Acquire).min(capacity + 1);
        while *from < end {
            let slot = self.chunks[*from / CHUNK]
                .get()
                .and_then(|c| c[*from % CHUNK].get());
            let Some(e) = slot else { break };
            out.push(*e);
            *from += 1;
        }
    }
}

/// The shared state of one trace: the clock's origin, the order counter and
/// the devices.
pub struct Tracer {
    start: Instant,
    seq: AtomicU64,
    capacity: usize,
    devices: Mutex<Vec<Arc<DeviceLog>>>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("capacity", &self.capacity)
            .field("events", &self.seq.load(Ordering::Relaxed))
            .finish()
    }
}

impl Tracer {
    /// A tracer keeping up to `capacity` events per device (at least 1).
    pub fn new(capacity: usize) -> Arc<Tracer> {
        Arc::new(Tracer {
            start: Instant::now(),
            seq: AtomicU64::new(0),
            capacity: capacity.max(1),
            devices: Mutex::new(Vec::new()),
        })
    }

    /// Events kept per device before [`Kind::Truncated`].
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Add a device to the table and return the tap through which its
    /// driver and model record.
    pub fn device(self: &Arc<Self>, info: DeviceInfo) -> Tap {
        let mut devs = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let id = devs.len() as u16;
        let log = Arc::new(DeviceLog::new(info, self.capacity));
        devs.push(log.clone());
        Tap(Some(Arc::new(TapInner {
            tracer: self.clone(),
            log,
            id,
        })))
    }

    /// The device table, in device-number order.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|d| d.info.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Events dropped for want of room, per device.
    pub fn dropped(&self) -> Vec<usize> {
        let cap = self.capacity;
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            // The one over capacity became the Truncated event.
            .map(|d| d.offered.load(Ordering::Relaxed).saturating_sub(cap + 1))
            .collect()
    }

    /// Take every event recorded so far, all devices merged in recording
    /// order. Recording may go on meanwhile (later events come with the
    /// next call); the per-device budget is not given back, nor is the
    /// memory (it is freed with the tracer).
    pub fn drain(&self) -> Vec<Event> {
        let devs: Vec<Arc<DeviceLog>> = self
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let cap = self.capacity;
        let pending: usize = devs
            .iter()
            .map(|d| d.offered.load(Ordering::Relaxed).min(cap + 1))
            .sum();
        let mut out = Vec::with_capacity(pending);
        for d in devs {
            d.take(&mut out, cap);
        }
        out.sort_unstable_by_key(|e| e.seq);
        out
    }

    /// Nanoseconds since the tracer started.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

struct TapInner {
    tracer: Arc<Tracer>,
    log: Arc<DeviceLog>,
    id: u16,
}

/// A device's handle on the trace, held by its driver and its model: empty
/// (the default) when tracing is off. Cloning is cheap.
#[derive(Clone, Default)]
pub struct Tap(Option<Arc<TapInner>>);

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Tap(off)"),
            Some(t) => write!(f, "Tap(device {})", t.id),
        }
    }
}

impl Tap {
    /// A tap that records nothing.
    pub const OFF: Tap = Tap(None);

    /// Whether events are recorded.
    #[inline(always)]
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Record the event `f` builds, if tracing is on: `f` is not called
    /// when it is off. A driver-side event ([`Agent::Driver`]) gets the
    /// calling thread's number.
    #[inline(always)]
    pub fn record(&self, f: impl FnOnce() -> Event) {
        if let Some(t) = &self.0 {
            record_cold(t, f);
        }
    }

    /// The tracer behind the tap.
    pub fn tracer(&self) -> Option<&Arc<Tracer>> {
        self.0.as_ref().map(|t| &t.tracer)
    }

    /// The device's number in the tracer's table.
    pub fn device_id(&self) -> Option<u16> {
        self.0.as_ref().map(|t| t.id)
    }

    /// The device's kind, as last set.
    pub fn kind(&self) -> Option<DeviceKind> {
        self.0
            .as_ref()
            .map(|t| t.log.info.lock().unwrap_or_else(|p| p.into_inner()).kind)
    }

    /// Update the device's kind (an NVMe driver learns CAP.DSTRD at reset).
    pub fn set_kind(&self, kind: DeviceKind) {
        if let Some(t) = &self.0 {
            t.log.info.lock().unwrap_or_else(|p| p.into_inner()).kind = kind;
        }
    }
}

/// Build and push an event, out of the caller's line: a hook inlined
/// into a hot function adds there only the test of the tap and a call, so
/// the function stays as small as it was without the hook and keeps being
/// inlined where it was (building a 64-byte SQE event inline made the NVMe
/// driver's `write_sqe` too big to inline: +52 instructions per I/O with
/// tracing off, bench/trace.sh --base hooks-out).
#[cold]
#[inline(never)]
fn record_cold(t: &TapInner, f: impl FnOnce() -> Event) {
    t.push(f());
}

impl TapInner {
    #[cold]
    #[inline(never)]
    fn truncated(&self, n: usize, seq: u64, t_ns: u64) {
        self.log.store(
            n,
            Event {
                seq,
                t_ns,
                dev: self.id,
                ..Event::new(Kind::Truncated).value(self.tracer.capacity as u64)
            },
        );
    }

    #[inline]
    fn push(&self, mut e: Event) {
        let n = self.log.offered.fetch_add(1, Ordering::Relaxed);
        let cap = self.tracer.capacity;
        if n > cap {
            return;
        }
        let seq = self.tracer.seq.fetch_add(1, Ordering::Relaxed);
        let t_ns = self.tracer.now_ns();
        if n == cap {
            return self.truncated(n, seq, t_ns);
        }
        e.seq = seq;
        e.t_ns = t_ns;
        e.dev = self.id;
        if let Agent::Driver(_) = e.agent {
            e.agent = Agent::Driver(thread_number());
        }
        self.log.store(n, e);
    }
}

/// Names of the threads that recorded driver events, by number.
static THREADS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

thread_local! {
    static THREAD_NUMBER: Cell<Option<u16>> = const { Cell::new(None) };
}

/// This thread's number in the trace (assigned when it first records).
#[inline]
pub fn thread_number() -> u16 {
    THREAD_NUMBER.with(|c| match c.get() {
        Some(n) => n,
        None => {
            let n = register_thread();
            c.set(Some(n));
            n
        }
    })
}

#[cold]
fn register_thread() -> u16 {
    let mut names = THREADS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let cur = std::thread::current();
    let n = names.len();
    names.push(
        cur.name()
            .map_or_else(|| format!("thread-{n}"), str::to_string),
    );
    n.min(u16::MAX as usize) as u16
}

/// The names of the threads numbered in [`Agent::Driver`], by number.
pub fn threads() -> Vec<String> {
    THREADS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nvme() -> DeviceInfo {
        DeviceInfo {
            name: "emu:nvme".into(),
            kind: DeviceKind::Nvme { dstrd: 0 },
            emulated: true,
        }
    }

    #[test]
    fn an_off_tap_never_builds_the_event() {
        let tap = Tap::default();
        assert!(!tap.is_on());
        tap.record(|| unreachable!("built while off"));
    }

    #[test]
    fn events_merge_in_order_across_devices_and_threads() {
        let t = Tracer::new(1000);
        let a = t.device(nvme());
        let b = t.device(DeviceInfo {
            name: "emu:igb".into(),
            kind: DeviceKind::Igb,
            emulated: true,
        });
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (a, b) = (a.clone(), b.clone());
                std::thread::spawn(move || {
                    for j in 0..100 {
                        let tap = if j % 2 == 0 { &a } else { &b };
                        tap.record(|| Event::new(Kind::RegWrite).value(i * 1000 + j));
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let ev = t.drain();
        assert_eq!(ev.len(), 400);
        assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(ev
            .windows(2)
            .all(|w| w[0].t_ns <= w[1].t_ns || w[0].seq < w[1].seq));
        assert_eq!(ev.iter().filter(|e| e.dev == 1).count(), 200);
        let names = threads_named(&ev);
        assert_eq!(names, 4);
        assert!(t.drain().is_empty());
        assert_eq!(t.devices()[1].kind, DeviceKind::Igb);
    }

    fn threads_named(ev: &[Event]) -> usize {
        let mut ids: Vec<u16> = ev
            .iter()
            .map(|e| match e.agent {
                Agent::Driver(n) => n,
                Agent::Device(_) => u16::MAX,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert!(ids.iter().all(|&n| (n as usize) < threads().len()));
        ids.len()
    }

    #[test]
    fn a_full_device_gets_one_truncated_event_and_drops_the_rest() {
        let t = Tracer::new(10);
        let a = t.device(nvme());
        let b = t.device(nvme());
        for i in 0..25 {
            a.record(|| Event::device(Kind::DmaRead, Engine::Controller).len(i));
        }
        b.record(|| Event::new(Kind::RegRead));
        let ev = t.drain();
        let of_a: Vec<_> = ev.iter().filter(|e| e.dev == 0).collect();
        assert_eq!(of_a.len(), 11);
        assert!(of_a[..10].iter().all(|e| e.kind == Kind::DmaRead));
        assert_eq!(of_a[10].kind, Kind::Truncated);
        assert_eq!(of_a[10].value, 10);
        assert_eq!(ev.iter().filter(|e| e.dev == 1).count(), 1);
        assert_eq!(t.dropped(), vec![14, 0]);
    }

    #[test]
    fn events_across_chunks_are_drained_once_each_while_recording_goes_on() {
        let cap = 2 * CHUNK + 5;
        let t = Tracer::new(cap);
        let a = t.device(nvme());
        let writer = {
            let a = a.clone();
            std::thread::spawn(move || {
                for i in 0..cap as u64 + 10 {
                    a.record(|| Event::new(Kind::RegWrite).value(i));
                }
            })
        };
        let mut got = Vec::new();
        while !writer.is_finished() {
            got.extend(t.drain());
        }
        writer.join().unwrap();
        got.extend(t.drain());
        assert_eq!(got.len(), cap + 1);
        let values: Vec<u64> = got[..cap].iter().map(|e| e.value).collect();
        assert_eq!(values, (0..cap as u64).collect::<Vec<_>>());
        assert!(got.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        assert_eq!(got[cap].kind, Kind::Truncated);
        assert_eq!(t.dropped(), vec![9]);
        assert!(t.drain().is_empty());
    }

    #[test]
    fn registers_are_named_from_the_spec_tables() {
        let k = DeviceKind::Nvme { dstrd: 0 };
        assert_eq!(k.reg_name(0x1c).as_deref(), Some("CSTS"));
        let db = k.reg_name(0x1008).unwrap();
        assert_eq!(db, "SQ1 tail doorbell");
        assert_eq!(
            DeviceKind::Ixgbe.reg_name(0x1018).as_deref(),
            Some("RDT[0]")
        );
    }
}
