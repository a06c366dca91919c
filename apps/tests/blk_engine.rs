//! The blkfwd engine on emulated devices built here, so that the tests can
//! read the device models' traces and inject faults: zero copy shown from
//! the traces, NVMe errors retried or reported, a stalled NIC leading to
//! backpressure with bounded memory.
#![forbid(unsafe_code)]

use apps::net::Flow;
use apps::stream::sender::{Shared, StreamConfig, Worker, WorkerReport};
use apps::stream::{pattern_fill, Expect, Verifier, DEFAULT_SEED, FRAME_HEADERS};
use dma::{EmuIommu, RegionOptions};
use drivers::nic::{Chip, Nic, NicOptions};
use drivers::nvme::{NvmeController, NvmeOptions};
use drivers::trace::{DeviceInfo, DeviceKind, Kind, Tracer};
use emu::nic::{EmuNic, NicModelConfig, NicPoller};
use emu::nvme::{EmuNvme, Fault, NamespaceConfig, NvmeModelConfig};
use emu::wire::PairWire;
use emu::RunMode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZE: u64 = 4 << 20;

struct Rig {
    nvme: EmuNvme,
    ctrl: NvmeController<emu::EmuBar<emu::nvme::NvmeModel>>,
    tx_emu: EmuNic,
    rx_emu: EmuNic,
    tx: Arc<Nic<emu::EmuBar<emu::nic::NicModel>>>,
    rx: Arc<Nic<emu::EmuBar<emu::nic::NicModel>>>,
    /// Inline ports: what makes them work (the receiver thread calls them).
    pollers: Vec<NicPoller>,
}

fn rig(chip: Chip, mtu: usize) -> Rig {
    rig_with(
        chip,
        mtu,
        NvmeOptions::default().command_timeout,
        RunMode::Threaded,
    )
}

/// `mode` for all three devices. Inline NIC ports are stepped by the test's
/// receiver thread ([`Rig::pollers`]); an inline drive works during the
/// worker's doorbell writes.
fn rig_with(chip: Chip, mtu: usize, command_timeout: Duration, mode: RunMode) -> Rig {
    let iommu = Arc::new(EmuIommu::new());
    let nvme = EmuNvme::with_iommu(
        NvmeModelConfig {
            namespaces: vec![NamespaceConfig::ram(SIZE)],
            ..NvmeModelConfig::default()
        },
        mode,
        iommu.clone(),
    )
    .unwrap();
    let mut pattern = vec![0u8; SIZE as usize];
    pattern_fill(&mut pattern, 0, DEFAULT_SEED);
    nvme.write_backing(1, 0, &pattern).unwrap();
    nvme.pci().enable();
    let ctrl = NvmeController::init(
        nvme.bar(),
        nvme.mapper(),
        NvmeOptions {
            region: RegionOptions::EMULATED,
            command_timeout,
            ..NvmeOptions::default()
        },
    )
    .unwrap();
    let (a, b) = PairWire::connected();
    let cfg = |last: u8| NicModelConfig {
        mac: [2, 0, 0, 0, 0, last],
        queues: 4,
        link_up: true,
        flow_control: true,
    };
    let tx_emu = EmuNic::with_iommu(chip, cfg(1), Arc::new(a), mode, iommu.clone()).unwrap();
    let rx_emu = EmuNic::with_iommu(chip, cfg(2), Arc::new(b), mode, iommu).unwrap();
    let opts = NicOptions {
        region: RegionOptions::EMULATED,
        buf_size: (mtu + 18).div_ceil(1024) * 1024,
        pool_bufs: 1024,
        tx_queues: 2,
        link_timeout: Duration::from_secs(2),
        ..NicOptions::default()
    };
    tx_emu.pci().enable();
    rx_emu.pci().enable();
    let tx = Arc::new(Nic::init(tx_emu.bar(), tx_emu.mapper(), chip, opts.clone()).unwrap());
    let rx = Arc::new(Nic::init(rx_emu.bar(), rx_emu.mapper(), chip, opts).unwrap());
    let pollers = match mode {
        RunMode::Inline => vec![tx_emu.poller(), rx_emu.poller()],
        RunMode::Threaded => Vec::new(),
    };
    Rig {
        nvme,
        ctrl,
        tx_emu,
        rx_emu,
        tx,
        rx,
        pollers,
    }
}

fn config(start: u64, len: u64, mtu: usize) -> StreamConfig {
    StreamConfig {
        nsid: 1,
        start,
        len,
        io_size: 64 << 10,
        queue_depth: 4,
        read_buffers: 8,
        mtu,
        laps: 1,
        flow: Flow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [0xff; 6],
            src_ip: [10, 0, 0, 1],
            dst_ip: [10, 0, 0, 2],
            src_port: apps::net::BLKFWD_PORT,
            dst_port: apps::net::BLKFWD_PORT,
        },
        rate: None,
        retries: 3,
        tx_timeout: Duration::from_secs(5),
        spin: false,
    }
}

/// Run `workers` workers (TX queues 0..) and a verifying receiver; the
/// workers' reports, the receiver's verifier, and the first worker's read
/// pool IOVA range.
fn stream(
    r: &Rig,
    cfg: &StreamConfig,
    workers: u16,
) -> (Vec<WorkerReport>, Verifier, Vec<(u64, u64)>, u64) {
    stream_with(r, cfg, workers, |_| {})
}

/// [`stream`], with `during` run on its own thread while the workers run.
fn stream_with(
    r: &Rig,
    cfg: &StreamConfig,
    workers: u16,
    during: impl FnOnce(&Shared) + Send,
) -> (Vec<WorkerReport>, Verifier, Vec<(u64, u64)>, u64) {
    let shared = Arc::new(Shared::default());
    let ws: Vec<_> = (0..workers)
        .map(|q| {
            Worker::new(
                q,
                cfg,
                &r.ctrl,
                &r.tx,
                q,
                RegionOptions::EMULATED,
                shared.clone(),
            )
            .unwrap()
        })
        .collect();
    let pools: Vec<(u64, u64)> = ws
        .iter()
        .map(|w| {
            (
                w.read_pool().region().iova(),
                w.read_pool().region().len() as u64,
            )
        })
        .collect();
    let read_pools: Vec<dma::Pool> = ws.iter().map(|w| w.read_pool().clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut rxq = r.rx.rx_queue(0).unwrap();
    let stop2 = stop.clone();
    let pollers = r.pollers.clone();
    let receiver = std::thread::spawn(move || {
        let mut v = Verifier::new(Expect::Pattern { seed: DEFAULT_SEED });
        let mut pkts = Vec::new();
        let mut idle = Instant::now();
        loop {
            for p in &pollers {
                p.poll();
            }
            if rxq.rx_batch(&mut pkts, 64).unwrap() > 0 {
                idle = Instant::now();
            }
            for p in pkts.drain(..) {
                v.accept_frame(p.buf.as_slice());
                rxq.recycle(p.buf);
            }
            if stop2.load(Ordering::Relaxed)
                && (v.is_complete() || idle.elapsed() > Duration::from_millis(500))
            {
                return v;
            }
            std::thread::yield_now();
        }
    });
    let handles: Vec<_> = ws
        .into_iter()
        .map(|w| std::thread::spawn(move || w.run().unwrap()))
        .collect();
    let reports = std::thread::scope(|s| {
        s.spawn(|| during(&shared));
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    stop.store(true, Ordering::Relaxed);
    let v = receiver.join().unwrap();
    let writes: u64 = read_pools.iter().map(|p| p.cpu_write_views()).sum();
    (reports, v, pools, writes)
}

/// Record the drive model's events from now on, in a tracer of its own.
fn trace_drive(r: &Rig) -> Arc<Tracer> {
    let tracer = Tracer::new(drivers::trace::DEFAULT_CAPACITY);
    let tap = tracer.device(DeviceInfo {
        name: "emu:nvme".into(),
        kind: DeviceKind::Nvme { dstrd: 0 },
        emulated: true,
    });
    assert!(r.nvme.set_tap(tap));
    tracer
}

/// Record the sending port model's events from now on, in a tracer of
/// its own.
fn trace_nic(r: &Rig, chip: Chip) -> Arc<Tracer> {
    let tracer = Tracer::new(drivers::trace::DEFAULT_CAPACITY);
    let tap = tracer.device(DeviceInfo {
        name: "emu:tx".into(),
        kind: match chip {
            Chip::X82599 => DeviceKind::Ixgbe,
            _ => DeviceKind::Igb,
        },
        emulated: true,
    });
    assert!(r.tx_emu.set_tap(tap));
    tracer
}

/// The (start, end) of every DMA of `kind` the traced device did (the
/// drive's writes to host memory, the port's reads of frame segments).
fn dma_runs(tracer: &Tracer, kind: Kind) -> Vec<(u64, u64)> {
    let ev = tracer.drain();
    assert!(
        ev.iter().all(|e| e.kind != Kind::Truncated),
        "the trace was cut short"
    );
    ev.iter()
        .filter(|e| e.kind == kind)
        .map(|e| (e.addr, e.addr + u64::from(e.len)))
        .collect()
}

/// Merge (start, end) intervals.
fn merged(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn covered(intervals: &[(u64, u64)], s: u64, e: u64) -> bool {
    let i = intervals.partition_point(|iv| iv.1 <= s);
    intervals.get(i).is_some_and(|iv| iv.0 <= s && e <= iv.1)
}

/// Every payload byte the NIC model read lay where the NVMe model had
/// written, the CPU wrote none of the read buffers, and the receiver got
/// exactly the disk's bytes; for both chips, both MTUs and both run modes
/// of the device models, a range that starts and ends inside a buffer,
/// two workers.
#[test]
fn payload_goes_from_drive_dma_to_nic_dma_without_the_cpu() {
    for (chip, mtu, mode) in [
        (Chip::X82599, 1500, RunMode::Threaded),
        (Chip::I350, 9000, RunMode::Threaded),
        (Chip::I82576, 1500, RunMode::Inline),
        (Chip::X82599, 9000, RunMode::Inline),
    ] {
        let r = rig_with(chip, mtu, NvmeOptions::default().command_timeout, mode);
        let drive = trace_drive(&r);
        let nic = trace_nic(&r, chip);
        // Blocks 3.. to 5 blocks before the end: no buffer boundary.
        let cfg = config(3 * 512, SIZE - 8 * 512, mtu);
        let (reports, v, pools, cpu_writes) = stream(&r, &cfg, 2);
        let rep = v.report();
        assert!(reports.iter().all(|w| w.failed.is_empty()), "{reports:?}");
        assert_eq!(rep.verified, cfg.len, "{chip:?} MTU {mtu}: {rep}");
        assert_eq!((rep.missing, rep.mismatched, rep.duplicate), (0, 0, 0));
        assert_eq!(
            cpu_writes, 0,
            "the CPU took a writable slice of a read buffer"
        );
        let nvme_writes = merged(dma_runs(&drive, Kind::DmaWrite));
        let in_pools = |iova: u64| pools.iter().any(|&(b, l)| iova >= b && iova < b + l);
        let mut payload = 0u64;
        let mut reads = 0u64;
        // Every other segment the port read is a frame's headers.
        let mut headers = 0u64;
        for (iova, end) in dma_runs(&nic, Kind::DmaRead) {
            let len = end - iova;
            if in_pools(iova) {
                reads += 1;
                payload += len;
                assert!(
                    covered(&nvme_writes, iova, end),
                    "NIC read {len} bytes at {iova:#x}, which the drive had not written"
                );
            } else {
                headers += 1;
                assert_eq!(len, FRAME_HEADERS as u64, "a header read at {iova:#x}");
            }
        }
        assert_eq!(
            payload, cfg.len,
            "{chip:?}: the NIC read every payload byte from the read buffers, once"
        );
        assert_eq!(reads, rep.frames, "one payload read per frame");
        assert_eq!(headers, rep.frames, "one header read per frame");
    }
}

/// A range that starts and ends inside blocks (byte 511 to 3 bytes before
/// the end of the drive, inside its last block): the NIC reads exactly the
/// range's bytes, all from where the drive wrote its whole blocks (the
/// frames' descriptors point at the right byte inside the read buffers),
/// and the CPU took no writable slice of a read buffer.
#[test]
fn an_odd_byte_range_goes_from_the_read_buffers_without_a_copy() {
    for (chip, mtu, mode) in [
        (Chip::X82599, 1500, RunMode::Threaded),
        (Chip::I350, 9000, RunMode::Inline),
    ] {
        let r = rig_with(chip, mtu, NvmeOptions::default().command_timeout, mode);
        let drive = trace_drive(&r);
        let nic = trace_nic(&r, chip);
        let mut cfg = config(511, SIZE - 511 - 3, mtu);
        cfg.io_size = 4096;
        let (reports, v, pools, cpu_writes) = stream(&r, &cfg, 2);
        let rep = v.report();
        assert!(reports.iter().all(|w| w.failed.is_empty()), "{reports:?}");
        assert_eq!(rep.range, Some((511, SIZE - 3)), "{rep}");
        assert_eq!(rep.verified, cfg.len, "{chip:?} MTU {mtu}: {rep}");
        assert_eq!((rep.missing, rep.mismatched, rep.duplicate), (0, 0, 0));
        assert!(rep.complete, "{rep}");
        assert_eq!(
            cpu_writes, 0,
            "the CPU took a writable slice of a read buffer"
        );
        // Whole blocks read: every 4 KiB of the drive, one read each.
        let ios: u64 = reports.iter().map(|w| w.ios).sum();
        assert_eq!(ios, SIZE / 4096);
        let nvme_writes = merged(dma_runs(&drive, Kind::DmaWrite));
        let in_pools = |iova: u64| pools.iter().any(|&(b, l)| iova >= b && iova < b + l);
        let mut payload = 0u64;
        let mut reads = 0u64;
        // Every other segment the port read is a frame's headers.
        let mut headers = 0u64;
        // (frames starting at byte 511 of a 4 KiB read buffer, frames
        // ending 3 bytes short of one): only the range's first and last.
        let (mut heads, mut tails) = (0u64, 0u64);
        for (iova, end) in dma_runs(&nic, Kind::DmaRead) {
            let len = end - iova;
            if in_pools(iova) {
                reads += 1;
                payload += len;
                heads += u64::from(iova % 4096 == 511);
                tails += u64::from(end % 4096 == 4093);
                assert!(
                    covered(&nvme_writes, iova, end),
                    "NIC read {len} bytes at {iova:#x}, which the drive had not written"
                );
            } else {
                headers += 1;
                assert_eq!(len, FRAME_HEADERS as u64, "a header read at {iova:#x}");
            }
        }
        assert_eq!(
            payload, cfg.len,
            "{chip:?}: only the range's bytes went out"
        );
        assert_eq!(reads, rep.frames, "one payload read per frame");
        assert_eq!(headers, rep.frames, "one header read per frame");
        assert_eq!(
            (heads, tails),
            (1, 1),
            "the head and tail cut inside the buffers"
        );
    }
}

/// A read that fails twice is retried and the stream is complete; one
/// that keeps failing is reported with its range, which is exactly what
/// the receiver misses.
#[test]
fn nvme_errors_are_retried_then_reported_with_the_range() {
    let r = rig(Chip::X82599, 1500);
    let cfg = config(0, SIZE, 1500);
    // Unrecovered Read Error (media errors, SCT 2, SC 0x81) on block 300, twice.
    r.nvme.inject(Fault::IoError {
        nsid: 1,
        lba: 300,
        sct: 2,
        sc: 0x81,
        count: 2,
    });
    let (reports, v, _, _) = stream(&r, &cfg, 1);
    assert!(reports[0].failed.is_empty(), "{:?}", reports[0].failed);
    assert_eq!(reports[0].retries, 2);
    assert_eq!(v.report().verified, SIZE);

    let r = rig(Chip::X82599, 1500);
    r.nvme.inject(Fault::IoError {
        nsid: 1,
        lba: 300,
        sct: 2,
        sc: 0x81,
        count: 100,
    });
    let (reports, v, _, _) = stream(&r, &cfg, 1);
    let failed = &reports[0].failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    // Block 300 lies in the 64 KiB read that starts at byte 131072.
    assert_eq!((failed[0].start, failed[0].len), (131072, 65536));
    assert!(
        failed[0].why.contains("blocks 256..384"),
        "{}",
        failed[0].why
    );
    assert_eq!(reports[0].retries, 3);
    let rep = v.report();
    assert_eq!(rep.missing, 65536, "{rep}");
    assert_eq!(rep.first_missing[0], (0, 131072, 196608));
    assert_eq!(rep.verified + 65536, SIZE);
}

/// A NIC that transmits nothing (the link partner holds it with PAUSE):
/// reads stop once the read pool is out, so memory stays bounded, and the
/// worker ends after the TX timeout listing every byte as not sent.
#[test]
fn stalled_nic_backpressures_reads_and_reports_every_byte() {
    let r = rig(Chip::X82599, 1500);
    r.tx_emu.set_tx_paused(true);
    let mut cfg = config(0, SIZE, 1500);
    cfg.tx_timeout = Duration::from_millis(300);
    let (reports, v, _, _) = stream(&r, &cfg, 1);
    let w = &reports[0];
    assert!(w.max_buffers_out <= cfg.read_buffers);
    assert!(
        w.ios <= cfg.read_buffers as u64,
        "{} reads issued with the NIC stalled",
        w.ios
    );
    assert_eq!(w.bytes, 0);
    // Every byte of the range is listed: what was read and waited for the
    // NIC, and the rest, never read. None arrived.
    let failed: u64 = w.failed.iter().map(|f| f.len).sum();
    assert_eq!(failed, SIZE, "{:?}", w.failed);
    assert!(
        w.failed.iter().all(|f| f.why.contains("NIC")),
        "{:?}",
        w.failed
    );
    assert_eq!(v.report().received, 0);
    // The stall is only seen in the housekeeping of idle passes (every
    // 64th, and before each sleep), so the worker went through idle
    // rounds: first the pacer's spins, then one round per sleep.
    assert!(w.sleeps > 0, "{w:?}");
    assert!(
        w.idle_rounds >= w.sleeps + u64::from(apps::backoff::PACER_SPINS),
        "{} idle rounds, {} sleeps",
        w.idle_rounds,
        w.sleeps
    );
    drop(r.rx_emu);
}

/// A drive that stops answering mid-run: what was read goes out, the
/// reads it holds and the rest of the range are listed as not read, with
/// the reason, and the worker ends normally (no error, no hang).
#[test]
fn a_drive_that_stops_answering_is_reported_range_by_range() {
    let r = rig_with(
        Chip::X82599,
        1500,
        Duration::from_millis(300),
        RunMode::Threaded,
    );
    let mut cfg = config(0, SIZE, 1500);
    // 20 MB/s: 0.2 s for the range, so the fault comes well before its end.
    cfg.rate = Some(20e6);
    let (reports, v, _, _) = stream_with(&r, &cfg, 1, |shared| {
        // After a few reads have completed.
        let t = Instant::now();
        while shared.ios.load(Ordering::Relaxed) < 4 && t.elapsed() < Duration::from_secs(10) {
            std::thread::yield_now();
        }
        r.nvme.inject(Fault::StopResponding);
    });
    let w = &reports[0];
    assert!(w.bytes >= 4 * cfg.io_size as u64, "{} bytes sent", w.bytes);
    let failed: u64 = w.failed.iter().map(|f| f.len).sum();
    assert!(failed > 0, "the drive stopped before the end of the range");
    assert_eq!(
        w.bytes + failed,
        SIZE,
        "every byte sent or listed: {:?}",
        w.failed
    );
    assert!(
        w.failed
            .iter()
            .all(|f| f.why.contains("the drive stopped answering")),
        "{:?}",
        w.failed
    );
    // What was sent arrived, and nothing else.
    let rep = v.report();
    assert_eq!(rep.verified, w.bytes, "{rep}");
    assert_eq!(rep.mismatched, 0);
    // The drive answers again: the controller's shutdown need not time out.
    r.nvme.clear_faults();
}
