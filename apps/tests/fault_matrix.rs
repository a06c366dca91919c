//! The blkfwd fault matrix: one row per fault, injected into the emulated
//! devices after part of the range has gone out (NVMe read errors, a drive
//! that stops answering or reports a fatal status, a NIC whose TX engine
//! stops, a link that goes down and stays down or comes back, an IOMMU
//! fault on the read buffers, all-ones registers on either device). Every
//! row must end, within its time limit, with
//! - one line saying why (the engine's [`Shared::cause`]), naming the fault,
//!   or none when the stream completed;
//! - every byte accounted for: bytes sent + the ranges listed as not sent =
//!   the range, the listed ranges disjoint;
//! - the wire agreeing: every byte counted sent arrived, with the disk's
//!   content, and no byte arrived twice.
#![forbid(unsafe_code)]

use apps::net::Flow;
use apps::stream::sender::{Failed, Shared, StreamConfig, Worker, WorkerReport};
use apps::stream::{parse_frame, pattern_check, pattern_fill, DEFAULT_SEED};
use dma::RegionOptions;
use drivers::nic::{Chip, Nic, NicOptions};
use drivers::nvme::{NvmeController, NvmeOptions};
use drivers::regs::RegisterAccess;
use emu::nic::{EmuNic, NicModelConfig};
use emu::nvme::{EmuNvme, Fault, NamespaceConfig, NvmeModel, NvmeModelConfig};
use emu::wire::{PairWire, Wire};
use emu::{EmuBar, RunMode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The range: the whole 4 MiB namespace.
const SIZE: u64 = 4 << 20;
/// Frames put into the TX ring before the fault (about 290 KB, 7% of the range).
const FAULT_AFTER_FRAMES: u64 = 200;
/// The time limit of each row.
const ROW_LIMIT: Duration = Duration::from_secs(30);

/// The drive's BAR0, which can be pulled off the bus: from then on every
/// read returns all ones and writes are lost, as for a gone PCIe function.
struct PullableBar {
    bar: EmuBar<NvmeModel>,
    pulled: Arc<AtomicBool>,
}

impl RegisterAccess for PullableBar {
    fn read32(&self, offset: usize) -> u32 {
        if self.pulled.load(Ordering::Acquire) {
            return u32::MAX;
        }
        self.bar.read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        if !self.pulled.load(Ordering::Acquire) {
            self.bar.write32(offset, value)
        }
    }
    fn read64(&self, offset: usize) -> u64 {
        if self.pulled.load(Ordering::Acquire) {
            return u64::MAX;
        }
        self.bar.read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        if !self.pulled.load(Ordering::Acquire) {
            self.bar.write64(offset, value)
        }
    }
    fn bar_size(&self) -> usize {
        self.bar.bar_size()
    }
}

struct Rig {
    nvme: EmuNvme,
    nvme_pulled: Arc<AtomicBool>,
    ctrl: NvmeController<PullableBar>,
    nic_emu: EmuNic,
    nic: Nic<EmuBar<emu::nic::NicModel>>,
    /// The far end of the wire: what actually went out.
    wire: Arc<dyn Wire>,
}

fn rig() -> Rig {
    let nvme = EmuNvme::new(
        NvmeModelConfig {
            namespaces: vec![NamespaceConfig::ram(SIZE)],
            ..NvmeModelConfig::default()
        },
        RunMode::Threaded,
    )
    .unwrap();
    let mut pattern = vec![0u8; SIZE as usize];
    pattern_fill(&mut pattern, 0, DEFAULT_SEED);
    nvme.write_backing(1, 0, &pattern).unwrap();
    nvme.pci().enable();
    let nvme_pulled = Arc::new(AtomicBool::new(false));
    let ctrl = NvmeController::init(
        PullableBar {
            bar: nvme.bar(),
            pulled: nvme_pulled.clone(),
        },
        nvme.mapper(),
        NvmeOptions {
            region: RegionOptions::EMULATED,
            command_timeout: Duration::from_millis(300),
            ..NvmeOptions::default()
        },
    )
    .unwrap();
    let (a, b) = PairWire::connected();
    let nic_emu = EmuNic::with_iommu(
        Chip::X82599,
        NicModelConfig {
            mac: [2, 0, 0, 0, 0, 1],
            queues: 1,
            link_up: true,
            // The far end holds the sender rather than drop: every frame
            // the NIC completes is on the wire.
            flow_control: true,
        },
        Arc::new(a),
        RunMode::Threaded,
        nvme.iommu().clone(),
    )
    .unwrap();
    nic_emu.pci().enable();
    let nic = Nic::init(
        nic_emu.bar(),
        nic_emu.mapper(),
        Chip::X82599,
        NicOptions {
            region: RegionOptions::EMULATED,
            tx_queues: 1,
            link_timeout: Duration::from_secs(2),
            ..NicOptions::default()
        },
    )
    .unwrap();
    Rig {
        nvme,
        nvme_pulled,
        ctrl,
        nic_emu,
        nic,
        wire: Arc::new(b),
    }
}

fn config() -> StreamConfig {
    StreamConfig {
        nsid: 1,
        start: 0,
        len: SIZE,
        io_size: 64 << 10,
        queue_depth: 4,
        read_buffers: 8,
        mtu: 1500,
        laps: 1,
        flow: Flow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [0xff; 6],
            src_ip: [10, 0, 0, 1],
            dst_ip: [10, 0, 0, 2],
            src_port: 4791,
            dst_port: 4791,
        },
        // 10 MB/s: 0.4 s for the range, so every fault lands mid-stream.
        rate: Some(10e6),
        retries: 2,
        tx_timeout: Duration::from_millis(400),
        spin: false,
    }
}

/// What the far end of the wire got.
#[derive(Debug, Default)]
struct Received {
    /// (start, end) of each stream frame's payload.
    pieces: Vec<(u64, u64)>,
    /// Frames whose payload was not the disk's.
    wrong: u64,
    /// Frames that were not stream frames, or damaged.
    other: u64,
}

impl Received {
    /// The payload intervals merged; and the bytes that arrived more than once.
    fn merged(&self) -> (Vec<(u64, u64)>, u64) {
        let mut v = self.pieces.clone();
        v.sort();
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut twice = 0;
        for (s, e) in v {
            match out.last_mut() {
                Some(last) if s < last.1 => {
                    twice += last.1.min(e) - s;
                    last.1 = last.1.max(e);
                }
                Some(last) if s == last.1 => last.1 = e,
                _ => out.push((s, e)),
            }
        }
        (out, twice)
    }
}

/// Collect what arrives on `wire` until `stop` and 300 ms of silence.
fn receive(wire: Arc<dyn Wire>, stop: Arc<AtomicBool>) -> Received {
    let mut r = Received::default();
    let mut buf = vec![0u8; 16384];
    let mut idle = Instant::now();
    loop {
        match wire.recv(&mut buf) {
            Ok(Some(n)) => {
                idle = Instant::now();
                match parse_frame(&buf[..n]) {
                    Ok((h, payload)) => {
                        if pattern_check(payload, h.offset, DEFAULT_SEED).is_some() {
                            r.wrong += 1;
                        }
                        r.pieces.push((h.offset, h.offset + payload.len() as u64));
                    }
                    Err(_) => r.other += 1,
                }
            }
            Ok(None) => {
                if stop.load(Ordering::Relaxed) && idle.elapsed() > Duration::from_millis(300) {
                    return r;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("wire receive failed: {e}"),
        }
    }
}

/// What a row ended with.
struct Outcome {
    report: WorkerReport,
    cause: Option<String>,
    received: Received,
    /// Frames the NIC dropped because the IOMMU refused their buffers.
    tx_dma_faults: u64,
}

/// The fault of a row, injected once `FAULT_AFTER_FRAMES` frames are in
/// the TX ring. `pool` is the read pool's (IOVA, bytes).
type Inject = fn(&Rig, (u64, usize));

struct Row {
    name: &'static str,
    inject: Inject,
    /// Words the cause line must hold; None: the stream completes.
    cause: Option<&'static [&'static str]>,
    /// Put the devices right after the run (so that their shutdown is quick).
    after: fn(&Rig),
}

fn nothing(_: &Rig) {}

fn matrix() -> Vec<Row> {
    vec![
        Row {
            name: "NVMe read errors (Unrecovered Read Error on block 5000, every try)",
            inject: |r, _| {
                r.nvme.inject(Fault::IoError {
                    nsid: 1,
                    lba: 5000,
                    sct: 2,
                    sc: 0x81,
                    count: 1000,
                })
            },
            cause: Some(&[
                "blocks 4992..5120",
                "failed after 3 attempt(s)",
                "Unrecovered Read Error",
            ]),
            after: nothing,
        },
        Row {
            name: "NVMe stops responding",
            inject: |r, _| r.nvme.inject(Fault::StopResponding),
            cause: Some(&["the drive stopped answering", "no completion after"]),
            after: |r| r.nvme.clear_faults(),
        },
        Row {
            name: "NVMe fatal status (CSTS.CFS)",
            inject: |r, _| r.nvme.inject(Fault::FatalStatus),
            cause: Some(&["the drive stopped answering", "CSTS.CFS=1"]),
            after: |r| r.nvme.clear_faults(),
        },
        Row {
            name: "NVMe registers read all ones (surprise removal)",
            inject: |r, _| {
                r.nvme.inject(Fault::StopResponding);
                r.nvme_pulled.store(true, Ordering::Release);
            },
            cause: Some(&[
                "the drive stopped answering",
                "no longer answers",
                "FFFFFFFFh",
            ]),
            after: |r| {
                r.nvme_pulled.store(false, Ordering::Release);
                r.nvme.clear_faults();
            },
        },
        Row {
            name: "NIC TX engine stops (fetches and writes back nothing)",
            inject: |r, _| r.nic_emu.stop_tx_after(Some(0)),
            cause: Some(&["the NIC finished no frame", "its link is up", "hung"]),
            after: |r| r.nic_emu.stop_tx_after(None),
        },
        Row {
            name: "link down for good",
            inject: |r, _| r.nic_emu.set_link(false),
            cause: Some(&["the NIC finished no frame", "its link is down"]),
            after: nothing,
        },
        Row {
            name: "link down for 100 ms, within the TX timeout",
            inject: |r, _| {
                r.nic_emu.set_link(false);
                std::thread::sleep(Duration::from_millis(100));
                r.nic_emu.set_link(true);
            },
            cause: None,
            after: nothing,
        },
        Row {
            name: "NIC registers read all ones (surprise removal)",
            inject: |r, _| r.nic_emu.surprise_remove(),
            cause: Some(&[
                "the NIC finished no frame",
                "NIC not responding",
                "FFFFFFFFh",
            ]),
            after: nothing,
        },
        Row {
            name: "IOMMU fault: the read buffers unmapped under the devices",
            inject: |r, (iova, len)| r.nvme.mapper().unmap(iova, len).unwrap(),
            // The drive's read (Data Transfer Error) or the NIC's payload
            // read (its queue stops), whichever meets the fault first.
            cause: Some(&["IOMMU"]),
            after: nothing,
        },
    ]
}

/// Stream the range through one worker, inject `row`'s fault mid-stream,
/// and collect what the worker reports and what the wire got.
fn run_row(row: &Row) -> Outcome {
    let r = rig();
    let cfg = config();
    let shared = Arc::new(Shared::default());
    let w = Worker::new(
        0,
        &cfg,
        &r.ctrl,
        &r.nic,
        0,
        RegionOptions::EMULATED,
        shared.clone(),
    )
    .unwrap();
    let pool = (w.read_pool().region().iova(), w.read_pool().region().len());
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (wire, stop) = (r.wire.clone(), stop.clone());
        std::thread::spawn(move || receive(wire, stop))
    };
    let worker = std::thread::spawn(move || w.run());
    let t = Instant::now();
    while shared.frames.load(Ordering::Relaxed) < FAULT_AFTER_FRAMES {
        assert!(
            t.elapsed() < Duration::from_secs(10) && !worker.is_finished(),
            "{}: the stream never reached the fault point",
            row.name
        );
        std::thread::yield_now();
    }
    (row.inject)(&r, pool);
    let report = worker.join().unwrap().unwrap();
    stop.store(true, Ordering::Relaxed);
    let received = receiver.join().unwrap();
    (row.after)(&r);
    Outcome {
        report,
        cause: shared.cause(),
        received,
        tx_dma_faults: r.nic_emu.counters().tx_dma_faults,
    }
}

/// The listed ranges, merged, after checking they are disjoint and inside
/// the range.
fn listed(failed: &[Failed]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = failed.iter().map(|f| (f.start, f.start + f.len)).collect();
    v.sort();
    for w in v.windows(2) {
        assert!(w[0].1 <= w[1].0, "ranges listed twice: {failed:?}");
    }
    assert!(v.iter().all(|&(s, e)| s < e && e <= SIZE), "{failed:?}");
    v
}

/// Bytes of `a` (merged intervals) inside `b` (merged intervals).
fn overlap(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let mut n = 0;
    for &(s, e) in a {
        for &(bs, be) in b {
            n += e.min(be).saturating_sub(s.max(bs));
        }
    }
    n
}

/// Check one row's outcome; the matrix line.
fn check(row: &Row, o: &Outcome) -> String {
    let name = row.name;
    let w = &o.report;
    let not_sent = listed(&w.failed);
    let not_sent_bytes: u64 = not_sent.iter().map(|(s, e)| e - s).sum();
    // Every byte accounted for, once.
    assert_eq!(
        w.bytes + not_sent_bytes,
        SIZE,
        "{name}: sent {} + listed {not_sent_bytes} != the range {SIZE}: {:?}",
        w.bytes,
        w.failed
    );
    // The wire: what was counted sent arrived, right, once.
    let (got, twice) = o.received.merged();
    assert_eq!(twice, 0, "{name}: bytes arrived twice");
    assert_eq!(o.received.wrong, 0, "{name}: frames with wrong bytes");
    assert_eq!(o.received.other, 0, "{name}: damaged frames");
    let mut sent = Vec::new();
    let mut at = 0;
    for &(s, e) in &not_sent {
        if at < s {
            sent.push((at, s));
        }
        at = e;
    }
    if at < SIZE {
        sent.push((at, SIZE));
    }
    let sent_arrived = overlap(&sent, &got);
    assert_eq!(
        sent_arrived, w.bytes,
        "{name}: {} bytes counted sent, {sent_arrived} of them arrived",
        w.bytes
    );
    // Bytes of listed ranges that arrived all the same: frames of a read
    // that went out before the NIC stopped finishing the rest.
    let listed_arrived = overlap(&not_sent, &got);
    match (row.cause, &o.cause) {
        (None, None) => {
            assert!(w.failed.is_empty());
            assert_eq!(w.bytes, SIZE, "{name}");
        }
        (Some(words), Some(cause)) => {
            assert!(
                !cause.contains('\n'),
                "{name}: cause on several lines: {cause}"
            );
            for word in words {
                assert!(
                    cause.contains(word),
                    "{name}: cause lacks {word:?}: {cause}"
                );
            }
            assert!(
                w.bytes > 0,
                "{name}: the fault came before any byte went out"
            );
            assert!(not_sent_bytes > 0, "{name}: a failure with nothing listed");
        }
        (want, got) => panic!("{name}: want cause {want:?}, got {got:?}: {:?}", w.failed),
    }
    format!(
        "{name}\n    cause: {}\n    sent {} + not sent {not_sent_bytes} in {} range(s) = {SIZE}; \
         arrived: all {} sent, {listed_arrived} of the not-sent, none twice; \
         NIC DMA faults {}",
        o.cause.as_deref().unwrap_or("none (the stream completed)"),
        w.bytes,
        w.failed.len(),
        w.bytes,
        o.tx_dma_faults
    )
}

/// Every fault of the matrix, each row within its time limit: the run ends
/// with one cause line naming the fault and every byte accounted for, the
/// accounting checked against the wire.
#[test]
fn every_fault_ends_with_its_cause_and_every_byte_accounted_for() {
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for (i, row) in matrix().into_iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        let t = Instant::now();
        std::thread::spawn(move || {
            let o = run_row(&matrix()[i]);
            tx.send(o).ok();
        });
        let o = match rx.recv_timeout(ROW_LIMIT) {
            Ok(o) => o,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{}: no end within {ROW_LIMIT:?}", row.name)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{}: the run failed", row.name),
        };
        let secs = t.elapsed().as_secs_f64();
        // Every row is run and shown; the failures are listed at the end.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&row, &o))) {
            Ok(line) => {
                println!("{line}\n    ended in {secs:.2} s");
                lines.push(line);
            }
            Err(_) => failures.push(row.name),
        }
    }
    assert!(failures.is_empty(), "rows that failed: {failures:?}");
    assert_eq!(lines.len(), 9);
}
