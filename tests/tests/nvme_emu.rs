//! End-to-end tests of the NVMe driver against the emulated controller, in
//! both run modes: inline (the device works during the doorbell write) and
//! threaded (the device runs concurrently on its own thread).
#![forbid(unsafe_code)]

use dma::{Buf, Pool, RegionOptions};
use drivers::nvme::{
    Completion, IoQueuePair, NvmeController, NvmeError, NvmeOptions, NvmeVersion, RwFailed,
    StatusKind,
};
use drivers::trace::{DeviceInfo, DeviceKind, Event, Kind, Queue, Tracer};
use emu::nvme::{EmuNvme, Fault, NamespaceConfig, NvmeModel, NvmeModelConfig, PCI_IDS};
use emu::{EmuBar, RunMode};
use spec::nvme::{cqe, reg, sc_generic, sc_media, sct};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Ctrl = NvmeController<EmuBar<NvmeModel>>;
type Qp = IoQueuePair<EmuBar<NvmeModel>>;

/// Run a test body once per run mode, as two named tests.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn inline() {
                super::$name(emu::RunMode::Inline)
            }
            #[test]
            fn threaded() {
                super::$name(emu::RunMode::Threaded)
            }
        }
    )*};
}

both_modes!(
    init_and_identify,
    write_read_sizes_up_to_and_beyond_mdts,
    splitting_never_exhausts_a_small_queue,
    lba_formats_512_and_4096,
    two_namespaces_with_different_lba_sizes,
    chained_prp_lists_without_mdts,
    async_batches_with_tags_and_queue_full,
    queue_pairs_from_several_threads,
    queue_pair_lifecycle,
    flush_and_shutdown,
    lba_out_of_range,
    fatal_controller_is_reported,
    fatal_controller_refuses_init,
    silent_controller_times_out,
    timed_out_read_buffer_is_quarantined,
    injected_io_error_is_typed,
    bogus_completions_are_device_misbehaviour,
    large_doorbell_stride_is_refused,
    bar_too_small_for_the_io_doorbells_is_refused,
    namespace_count_is_bounded,
    namespace_sizes_must_be_consistent,
);

fn opts() -> NvmeOptions {
    NvmeOptions {
        region: RegionOptions::EMULATED,
        ..NvmeOptions::default()
    }
}

fn ns(size_bytes: u64, lba_size: u32) -> NamespaceConfig {
    NamespaceConfig {
        lba_size,
        ..NamespaceConfig::ram(size_bytes)
    }
}

/// An emulated controller (bus mastering on, as the VFIO open does) and the
/// driver on it. Declare the returned pair in this order so the controller
/// (and any queue pair declared later) drops before the device.
fn open(cfg: NvmeModelConfig, mode: RunMode, opts: NvmeOptions) -> (EmuNvme, Ctrl) {
    let emu = EmuNvme::new(cfg, mode).expect("model");
    emu.pci().enable();
    let ctrl = NvmeController::init(emu.bar(), emu.mapper(), opts).expect("init");
    (emu, ctrl)
}

/// [`open`] with a trace: the model, the BAR and the driver record into
/// one tracer device.
fn open_traced(
    cfg: NvmeModelConfig,
    mode: RunMode,
    opts: NvmeOptions,
) -> (EmuNvme, Ctrl, Arc<Tracer>) {
    let emu = EmuNvme::new(cfg, mode).expect("model");
    emu.pci().enable();
    let tracer = Tracer::new(drivers::trace::DEFAULT_CAPACITY);
    let tap = tracer.device(DeviceInfo {
        name: "emu:nvme".into(),
        kind: DeviceKind::Nvme { dstrd: 0 },
        emulated: true,
    });
    assert!(emu.set_tap(tap.clone()));
    let mut bar = emu.bar();
    bar.set_trace(tap.clone());
    let opts = NvmeOptions { trace: tap, ..opts };
    let ctrl = NvmeController::init(bar, emu.mapper(), opts).expect("init");
    (emu, ctrl, tracer)
}

/// Pool whose buffer size is not a multiple of 4 KiB: buffer `i` starts
/// `64 * i` bytes (mod 4 KiB) into a page, so PRP1 carries an offset.
fn unaligned_pool(ctrl: &Ctrl, count: usize, max_bytes: usize) -> Pool {
    Pool::new(
        ctrl.mapper().clone(),
        count,
        max_bytes.next_multiple_of(4096) + 64,
        RegionOptions::EMULATED,
    )
    .expect("pool")
}

/// Deterministic bytes for (seed, position).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fill(buf: &mut Buf, len: usize, seed: u64) {
    buf.set_len(len);
    buf.as_mut_slice().copy_from_slice(&pattern(seed, len));
}

/// Write `blocks` at `lba` from one buffer, read them into another, compare
/// both the read-back and the medium itself.
#[allow(clippy::too_many_arguments)]
fn round_trip(
    emu: &EmuNvme,
    qp: &mut Qp,
    nsid: u32,
    lba_size: u32,
    lba: u64,
    blocks: u64,
    mut w: Buf,
    mut r: Buf,
    seed: u64,
) -> (Buf, Buf) {
    let len = (blocks * lba_size as u64) as usize;
    fill(&mut w, len, seed);
    let w = qp
        .write(nsid, lba, w)
        .unwrap_or_else(|e| panic!("write of {blocks} blocks at {lba}: {e}"));
    r.set_len(len);
    r.as_mut_slice().fill(0xee);
    let r = qp
        .read(nsid, lba, r)
        .unwrap_or_else(|e| panic!("read of {blocks} blocks at {lba}: {e}"));
    assert!(
        r.as_slice() == w.as_slice(),
        "read-back of {blocks} blocks at LBA {lba} (ns {nsid}, buffers at {:#x}/{:#x}) differs",
        w.iova(),
        r.iova()
    );
    let mut medium = vec![0u8; len];
    emu.read_backing(nsid, lba * lba_size as u64, &mut medium)
        .unwrap();
    assert!(
        medium == w.as_slice(),
        "medium at LBA {lba} differs from what was written"
    );
    (w, r)
}

fn init_and_identify(mode: RunMode) {
    let cfg = NvmeModelConfig {
        namespaces: vec![ns(64 << 20, 512), ns(32 << 20, 4096)],
        mdts: 5,
        mqes: 255,
        max_io_queues: 8,
        dstrd: 2,
        serial: "SER-E2E-1".into(),
        model: "e2e model".into(),
        firmware: "9.9".into(),
        ..NvmeModelConfig::default()
    };
    let (emu, ctrl) = open(cfg, mode, opts());
    let i = ctrl.info();
    assert_eq!(i.vid, PCI_IDS.vendor);
    assert_eq!(i.serial, "SER-E2E-1");
    assert_eq!(i.model, "e2e model");
    assert_eq!(i.firmware, "9.9");
    assert_eq!(i.mdts_bytes, Some(128 << 10));
    assert_eq!(i.max_transfer, 128 << 10);
    assert_eq!(ctrl.max_transfer(), 128 << 10);
    assert_eq!(i.mqes, 256);
    assert_eq!(ctrl.queue_limit(), 256);
    assert_eq!(i.dstrd, 2);
    assert_eq!(i.io_queues, 8, "asked for 64, the model grants 8");
    assert_eq!(
        i.version,
        NvmeVersion {
            major: 1,
            minor: 4,
            tertiary: 0
        }
    );
    assert_eq!(i.nn, 2);
    assert_eq!(i.ready_timeout, Duration::from_secs(10));
    let n = ctrl.namespaces();
    assert_eq!(n.len(), 2);
    assert_eq!(
        (n[0].nsid, n[0].lba_size, n[0].size_blocks),
        (1, 512, (64 << 20) / 512)
    );
    assert_eq!(
        (n[1].nsid, n[1].lba_size, n[1].size_blocks),
        (2, 4096, (32 << 20) / 4096)
    );
    assert_eq!(n[0].capacity_blocks, n[0].size_blocks);
    assert_eq!(n[0].metadata_size, 0);
    assert_eq!(
        n[0].lba_formats[n[0].formatted_index as usize].data_size,
        512
    );
    assert_eq!(n[1].size_bytes(), 32 << 20);
    assert_eq!(ctrl.namespace(2).unwrap().lba_size, 4096);
    assert!(matches!(
        ctrl.namespace(3),
        Err(NvmeError::InvalidRequest(_))
    ));
    ctrl.check_fatal().unwrap();
    // The doorbell stride is honoured: I/O works on a queue pair whose
    // doorbells are 16 bytes apart.
    let mut qp = ctrl.create_io_queue_pair(8).unwrap();
    let pool = unaligned_pool(&ctrl, 2, 4096);
    let (w, r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    round_trip(&emu, &mut qp, 1, 512, 5, 4, w, r, 1);
}

fn write_read_sizes_up_to_and_beyond_mdts(mode: RunMode) {
    let (emu, ctrl) = open(NvmeModelConfig::default(), mode, opts());
    let mut qp = ctrl.create_io_queue_pair(64).unwrap();
    let mdts_blocks = ctrl.max_transfer() / 512;
    let sizes = [
        1,
        2,
        7,
        8,
        9,
        63,
        255,
        mdts_blocks - 1,
        mdts_blocks,
        mdts_blocks + 1,
        1000,
        2048 + 3,
    ];
    let pool = unaligned_pool(&ctrl, 8, 2051 * 512);
    let mut bufs: Vec<Option<Buf>> = (0..8).map(|_| pool.alloc()).collect();
    // Buffers at different offsets in their first page, some not page aligned.
    let offsets: Vec<u64> = bufs.iter().flatten().map(|b| b.iova() % 4096).collect();
    assert!(offsets.iter().any(|&o| o != 0), "{offsets:?}");
    let mut lba = 0;
    for (k, &blocks) in sizes.iter().enumerate() {
        let (wi, ri) = (k % 4, 4 + (k + 1) % 4);
        let (w, r) = (bufs[wi].take().unwrap(), bufs[ri].take().unwrap());
        let (w, r) = round_trip(&emu, &mut qp, 1, 512, lba, blocks, w, r, k as u64);
        (bufs[wi], bufs[ri]) = (Some(w), Some(r));
        lba += blocks + 13;
    }
    // The last LBA of the namespace.
    let last = ctrl.namespace(1).unwrap().size_blocks - 1;
    let (w, r) = (bufs[0].take().unwrap(), bufs[1].take().unwrap());
    round_trip(&emu, &mut qp, 1, 512, last, 1, w, r, 99);
    assert_eq!(qp.in_flight(), 0);
    ctrl.delete_io_queue_pair(qp).unwrap();
}

fn splitting_never_exhausts_a_small_queue(mode: RunMode) {
    let (emu, ctrl) = open(NvmeModelConfig::default(), mode, opts());
    // Depth 3: two commands in flight at most; 1 MiB is 8 MDTS-sized commands.
    let mut qp = ctrl.create_io_queue_pair(3).unwrap();
    assert_eq!(qp.free_slots(), 2);
    let pool = unaligned_pool(&ctrl, 2, 1 << 20);
    let (mut w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    (w, r) = round_trip(&emu, &mut qp, 1, 512, 777, 2048, w, r, 5);
    assert_eq!(qp.free_slots(), 2);
    // A 2-entry queue (one command in flight) still gets there.
    let mut qp = ctrl.create_io_queue_pair(2).unwrap();
    round_trip(&emu, &mut qp, 1, 512, 4000, 2048, w, r, 6);
}

fn lba_formats_512_and_4096(mode: RunMode) {
    for lba_size in [512u32, 4096] {
        let cfg = NvmeModelConfig {
            namespaces: vec![ns(256 << 20, lba_size)],
            ..NvmeModelConfig::default()
        };
        let (emu, ctrl) = open(cfg, mode, opts());
        assert_eq!(ctrl.namespace(1).unwrap().lba_size, lba_size);
        let mut qp = ctrl.create_io_queue_pair(32).unwrap();
        let mdts_blocks = ctrl.max_transfer() / lba_size as u64;
        let pool = unaligned_pool(&ctrl, 2, (3 * mdts_blocks as usize + 1) * lba_size as usize);
        let (mut w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
        for (k, blocks) in [1, 2, mdts_blocks, mdts_blocks + 1, 3 * mdts_blocks + 1]
            .into_iter()
            .enumerate()
        {
            (w, r) = round_trip(
                &emu,
                &mut qp,
                1,
                lba_size,
                1000 * k as u64 + 3,
                blocks,
                w,
                r,
                k as u64 + lba_size as u64,
            );
        }
        // A buffer that is not a whole number of blocks is refused.
        w.set_len(lba_size as usize + 512);
        if lba_size == 4096 {
            match qp.write(1, 0, w) {
                Err(RwFailed {
                    error: NvmeError::InvalidRequest(_),
                    buf: Some(back),
                }) => drop(back),
                other => panic!("expected InvalidRequest with the buffer, got {other:?}"),
            }
        }
    }
}

fn two_namespaces_with_different_lba_sizes(mode: RunMode) {
    let cfg = NvmeModelConfig {
        namespaces: vec![ns(16 << 20, 512), ns(16 << 20, 4096)],
        ..NvmeModelConfig::default()
    };
    let (emu, ctrl) = open(cfg, mode, opts());
    let mut qp = ctrl.create_io_queue_pair(16).unwrap();
    let pool = unaligned_pool(&ctrl, 5, 64 << 10);
    let (mut w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    // The same LBA numbers in both namespaces, different data.
    (w, r) = round_trip(&emu, &mut qp, 1, 512, 10, 16, w, r, 1);
    round_trip(&emu, &mut qp, 2, 4096, 10, 16, w, r, 2);
    // Namespace 1 still holds its own data.
    let mut back = pool.alloc().unwrap();
    back.set_len(16 * 512);
    let back = qp.read(1, 10, back).unwrap();
    assert_eq!(back.as_slice(), &pattern(1, 16 * 512)[..]);
    assert!(matches!(
        qp.read(3, 0, back),
        Err(RwFailed {
            error: NvmeError::InvalidRequest(_),
            buf: Some(_)
        })
    ));
}

fn chained_prp_lists_without_mdts(mode: RunMode) {
    // MDTS 0 (no limit): the driver caps at its own max_transfer, here
    // 4 MiB, which needs two chained PRP list pages per command.
    let cfg = NvmeModelConfig {
        mdts: 0,
        ..NvmeModelConfig::default()
    };
    let options = NvmeOptions {
        max_transfer: 4 << 20,
        ..opts()
    };
    let (emu, ctrl, tracer) = open_traced(cfg, mode, options);
    assert_eq!(ctrl.info().mdts_bytes, None);
    assert_eq!(ctrl.max_transfer(), 4 << 20);
    let mut qp = ctrl.create_io_queue_pair(4).unwrap();
    let pool = unaligned_pool(&ctrl, 2, (4 << 20) + 4096);
    let (mut w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    assert_ne!(r.iova() % 4096, 0, "the second buffer starts inside a page");
    tracer.drain();
    (w, r) = round_trip(&emu, &mut qp, 1, 512, 8, (4 << 20) / 512, w, r, 3);
    round_trip(&emu, &mut qp, 1, 512, 20000, (4 << 20) / 512 + 8, w, r, 4);
    // Each 4 MiB command was one command (not split).
    let rw_fetches = tracer
        .drain()
        .iter()
        .filter(|e| e.kind == Kind::Fetch && e.queue == Queue::Sq(qp.qid()))
        .count();
    assert_eq!(
        rw_fetches,
        2 + 4,
        "one write and one read of 4 MiB, two of 4 MiB + 4 KiB"
    );
}

fn async_batches_with_tags_and_queue_full(mode: RunMode) {
    let (_emu, ctrl, tracer) = open_traced(NvmeModelConfig::default(), mode, opts());
    let mut qp = ctrl.create_io_queue_pair(16).unwrap();
    let pool = unaligned_pool(&ctrl, 17, 8 << 10);
    // 15 writes fill every slot; the 16th is refused with its buffer back.
    for i in 0..15u64 {
        let mut b = pool.alloc().unwrap();
        fill(&mut b, 8 << 10, 100 + i);
        qp.submit_write(1, i * 16, b.into_device(), 16, i).unwrap();
    }
    assert_eq!(qp.free_slots(), 0);
    assert_eq!(qp.in_flight(), 15);
    let extra = pool.alloc().unwrap().into_device();
    let (e, back) = qp.submit_write(1, 0, extra, 16, 99).unwrap_err();
    assert!(matches!(e, NvmeError::QueueFull), "{e}");
    drop(back.reclaim());
    // The blocking helpers refuse to run under asynchronous commands.
    assert!(matches!(qp.flush(1), Err(NvmeError::InvalidRequest(_))));
    qp.ring_doorbell();
    let mut tags = Vec::new();
    let mut bufs = Vec::new();
    while tags.len() < 15 {
        qp.wait(64, |c: Completion| {
            assert_eq!(c.result, Ok(()));
            tags.push(c.tag);
            bufs.push(c.buf.expect("write buffer comes back").reclaim());
        })
        .unwrap();
    }
    tags.sort();
    assert_eq!(tags, (0..15).collect::<Vec<_>>());
    assert_eq!(qp.in_flight(), 0);
    assert_eq!(
        qp.wait(64, |_| {}).unwrap(),
        0,
        "nothing in flight: returns at once"
    );
    // Read everything back in one batch with a single doorbell.
    for (i, mut b) in bufs.into_iter().enumerate() {
        b.as_mut_slice().fill(0);
        qp.submit_read(1, i as u64 * 16, b.into_device(), 16, 1000 + i as u64)
            .unwrap();
    }
    tracer.drain();
    qp.ring_doorbell();
    let mut done = 0;
    while done < 15 {
        done += qp
            .wait(4, |c| {
                assert_eq!(c.result, Ok(()));
                let i = c.tag - 1000;
                let b = c.buf.unwrap().reclaim();
                assert_eq!(b.as_slice(), &pattern(100 + i, 8 << 10)[..], "read {i}");
            })
            .unwrap();
    }
    let events = tracer.drain();
    let doorbell = reg::sq_tail_doorbell(qp.qid(), 0) as u64;
    let sq_doorbells = events
        .iter()
        .filter(|e| e.kind == Kind::RegWrite && e.addr == doorbell)
        .count();
    assert_eq!(sq_doorbells, 1, "one tail doorbell for the batch of 15");
    // A read of more than MDTS in one command is refused up front.
    let big = pool.alloc().unwrap().into_device();
    let (e, _big) = qp.submit_read(1, 0, big, 257, 0).unwrap_err();
    assert!(matches!(e, NvmeError::InvalidRequest(_)), "{e}");
}

fn queue_pairs_from_several_threads(mode: RunMode) {
    let (emu, ctrl) = open(NvmeModelConfig::default(), mode, opts());
    let ctrl = Arc::new(ctrl);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let ctrl = ctrl.clone();
            std::thread::spawn(move || {
                let mut qp = ctrl.create_io_queue_pair(8).unwrap();
                let pool = unaligned_pool(&ctrl, 2, 300 * 512);
                let (mut w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
                let base = t * 100_000;
                let mut lba = base;
                for (k, blocks) in [1u64, 8, 100, 256, 300, 3].iter().enumerate() {
                    let len = (*blocks * 512) as usize;
                    fill(&mut w, len, t * 1000 + k as u64);
                    w = qp.write(1, lba, w).unwrap();
                    r.set_len(len);
                    r = qp.read(1, lba, r).unwrap();
                    assert!(r.as_slice() == w.as_slice(), "thread {t} size {blocks}");
                    lba += blocks;
                }
                ctrl.delete_io_queue_pair(qp).unwrap();
                (base, lba)
            })
        })
        .collect();
    let ranges: Vec<(u64, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // Every thread's data is on the medium, none overwritten by another.
    for (t, (base, _)) in ranges.iter().enumerate() {
        let mut lba = *base;
        for (k, blocks) in [1u64, 8, 100, 256, 300, 3].iter().enumerate() {
            let mut medium = vec![0u8; (*blocks * 512) as usize];
            emu.read_backing(1, lba * 512, &mut medium).unwrap();
            assert_eq!(medium, pattern(t as u64 * 1000 + k as u64, medium.len()));
            lba += blocks;
        }
    }
}

fn queue_pair_lifecycle(mode: RunMode) {
    let cfg = NvmeModelConfig {
        max_io_queues: 3,
        mqes: 63,
        ..NvmeModelConfig::default()
    };
    let (emu, ctrl) = open(cfg, mode, opts());
    assert_eq!(ctrl.info().io_queues, 3);
    let a = ctrl.create_io_queue_pair(1000).unwrap();
    assert_eq!(a.depth(), 64, "capped at CAP.MQES + 1");
    let b = ctrl.create_io_queue_pair(4).unwrap();
    let c = ctrl.create_io_queue_pair(4).unwrap();
    let mut qids = vec![a.qid(), b.qid(), c.qid()];
    qids.sort();
    assert_eq!(qids, vec![1, 2, 3]);
    assert!(matches!(
        ctrl.create_io_queue_pair(4),
        Err(NvmeError::InvalidRequest(_))
    ));
    assert!(matches!(
        ctrl.create_io_queue_pair(1),
        Err(NvmeError::InvalidRequest(_))
    ));
    let freed = b.qid();
    ctrl.delete_io_queue_pair(b).unwrap();
    let mut d = ctrl.create_io_queue_pair(4).unwrap();
    assert_eq!(d.qid(), freed);
    // Dropping a queue pair deletes it too.
    drop(c);
    let mut e = ctrl.create_io_queue_pair(4).unwrap();
    let pool = unaligned_pool(&ctrl, 2, 4096);
    let (mut w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    (w, r) = round_trip(&emu, &mut d, 1, 512, 1, 8, w, r, 1);
    round_trip(&emu, &mut e, 1, 512, 9, 8, w, r, 2);
    // A queue pair of another controller is refused.
    let (_emu2, other) = open(NvmeModelConfig::default(), mode, opts());
    let foreign = other.create_io_queue_pair(4).unwrap();
    assert!(matches!(
        ctrl.delete_io_queue_pair(foreign),
        Err(NvmeError::InvalidRequest(_))
    ));
    drop(a);
}

fn flush_and_shutdown(mode: RunMode) {
    let (emu, ctrl) = open(NvmeModelConfig::default(), mode, opts());
    {
        let mut qp = ctrl.create_io_queue_pair(8).unwrap();
        let pool = unaligned_pool(&ctrl, 2, 4096);
        let (w, r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
        round_trip(&emu, &mut qp, 1, 512, 0, 8, w, r, 1);
        qp.flush(1).unwrap();
        qp.submit_flush(1, 42).unwrap();
        qp.ring_doorbell();
        let mut got = None;
        qp.wait(1, |c| got = Some((c.tag, c.buf.is_none(), c.result)))
            .unwrap();
        assert_eq!(got, Some((42, true, Ok(()))));
        assert!(matches!(
            qp.submit_flush(9, 0),
            Err(NvmeError::InvalidRequest(_))
        ));
        ctrl.delete_io_queue_pair(qp).unwrap();
    }
    ctrl.shutdown().unwrap();
    drop(emu);
}

fn lba_out_of_range(mode: RunMode) {
    let cfg = NvmeModelConfig {
        namespaces: vec![ns(1 << 20, 512)],
        ..NvmeModelConfig::default()
    };
    let (_emu, ctrl) = open(cfg, mode, opts());
    let size = ctrl.namespace(1).unwrap().size_blocks;
    let mut qp = ctrl.create_io_queue_pair(8).unwrap();
    let pool = unaligned_pool(&ctrl, 2, 4096);
    let mut b = pool.alloc().unwrap();
    b.set_len(1024);
    // The blocking helper checks the range itself.
    let b = match qp.read(1, size - 1, b) {
        Err(RwFailed {
            error: NvmeError::InvalidRequest(m),
            buf: Some(b),
        }) => {
            assert!(m.contains("past the end"), "{m}");
            b
        }
        other => panic!("expected InvalidRequest with the buffer, got {other:?}"),
    };
    // The asynchronous path leaves the check to the device: LBA Out of Range.
    qp.submit_read(1, size - 1, b.into_device(), 2, 7)
        .map_err(|(e, _)| e)
        .unwrap();
    qp.ring_doorbell();
    let mut result = None;
    qp.wait(1, |c| {
        result = Some((c.tag, c.result, c.buf.map(|d| d.reclaim())))
    })
    .unwrap();
    let (tag, status, buf) = result.unwrap();
    assert_eq!(tag, 7);
    let status = status.unwrap_err();
    assert_eq!(status.kind(), StatusKind::LbaOutOfRange);
    assert_eq!(
        (status.sct, status.sc),
        (sct::GENERIC, sc_generic::LBA_OUT_OF_RANGE)
    );
    assert!(
        status
            .to_string()
            .starts_with("LBA Out of Range (SCT 0h, SC 80h)"),
        "{status}"
    );
    let err = NvmeError::Status { op: "read", status };
    assert_eq!(err.status_kind(), Some(StatusKind::LbaOutOfRange));
    // The queue is fine afterwards.
    qp.read(1, size - 2, buf.unwrap()).unwrap();
}

fn fatal_controller_is_reported(mode: RunMode) {
    let (emu, ctrl) = open(NvmeModelConfig::default(), mode, opts());
    let mut qp = ctrl.create_io_queue_pair(8).unwrap();
    let pool = unaligned_pool(&ctrl, 1, 4096);
    let mut b = pool.alloc().unwrap();
    b.set_len(4096);
    let b = qp.read(1, 0, b).unwrap();
    emu.inject(Fault::FatalStatus);
    let t = Instant::now();
    // The read is outstanding on a failed controller: its buffer is not
    // given back, as the device may still write it.
    assert!(matches!(
        qp.read(1, 0, b),
        Err(RwFailed {
            error: NvmeError::ControllerFatal,
            buf: None
        })
    ));
    assert_eq!((pool.quarantined(), pool.free_count()), (1, 0));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "reported at once, not at the timeout"
    );
    assert!(matches!(
        ctrl.check_fatal(),
        Err(NvmeError::ControllerFatal)
    ));
    assert!(matches!(
        qp.check_timeouts(),
        Err(NvmeError::ControllerFatal)
    ));
    assert!(matches!(
        ctrl.create_io_queue_pair(8),
        Err(NvmeError::ControllerFatal)
    ));
    assert!(matches!(
        ctrl.delete_io_queue_pair(qp),
        Err(NvmeError::ControllerFatal)
    ));
    let msg = NvmeError::ControllerFatal.to_string();
    assert!(msg.contains("CSTS.CFS") && msg.contains("reset"), "{msg}");
}

fn fatal_controller_refuses_init(mode: RunMode) {
    let emu = EmuNvme::new(NvmeModelConfig::default(), mode).unwrap();
    emu.pci().enable();
    emu.inject(Fault::FatalStatus);
    let r = NvmeController::init(emu.bar(), emu.mapper(), opts());
    assert!(matches!(r, Err(NvmeError::ControllerFatal)), "{r:?}");
    // Once the fault is gone, the driver enables it.
    emu.clear_faults();
    let ctrl = NvmeController::init(emu.bar(), emu.mapper(), opts()).unwrap();
    let qp = ctrl.create_io_queue_pair(4).unwrap();
    // A process that dies leaves the controller enabled, with I/O queues:
    // the next init must reset it first, and can then use every queue.
    std::mem::forget(qp);
    std::mem::forget(ctrl);
    let again = NvmeController::init(emu.bar(), emu.mapper(), opts()).unwrap();
    let mut qp = again.create_io_queue_pair(4).unwrap();
    assert_eq!(qp.qid(), 1);
    let pool = unaligned_pool(&again, 2, 4096);
    let (w, r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    round_trip(&emu, &mut qp, 1, 512, 3, 8, w, r, 1);
}

fn silent_controller_times_out(mode: RunMode) {
    let cfg = NvmeModelConfig {
        timeout_500ms: 1,
        ..NvmeModelConfig::default()
    };
    let timeout = Duration::from_millis(300);
    let options = NvmeOptions {
        command_timeout: timeout,
        ..opts()
    };
    let (emu, ctrl) = open(cfg, mode, options);
    let mut qp = ctrl.create_io_queue_pair(8).unwrap();
    let pool = unaligned_pool(&ctrl, 3, 4096);
    let (w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    r.set_len(4096);
    emu.inject(Fault::StopResponding);
    let t = Instant::now();
    match qp.read(1, 0, r) {
        Err(RwFailed {
            error: NvmeError::Timeout { op, after },
            buf: None,
        }) => {
            assert_eq!(op, "read");
            assert!(after >= timeout, "{after:?}");
        }
        other => panic!("expected Timeout and a quarantined buffer, got {other:?}"),
    }
    assert_eq!(pool.quarantined(), 1);
    r = pool.alloc().unwrap();
    let took = t.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "took {took:?}"
    );
    // The timed-out command keeps its slot until (if ever) it completes.
    assert_eq!(qp.in_flight(), 1);
    // The asynchronous path: wait() and check_timeouts() report it too.
    qp.submit_flush(1, 5).unwrap();
    qp.ring_doorbell();
    assert!(matches!(
        qp.wait(1, |_| {}),
        Err(NvmeError::Timeout { op: "flush", .. })
    ));
    assert!(matches!(
        qp.check_timeouts(),
        Err(NvmeError::Timeout { .. })
    ));
    // The controller comes back: the late completions are absorbed (the
    // stale read silently, the flush delivered) and I/O works again.
    emu.clear_faults();
    let mut flushed = false;
    while !flushed {
        qp.submit_flush(1, 6).unwrap();
        qp.ring_doorbell();
        let deadline = Instant::now() + Duration::from_secs(5);
        while qp.in_flight() > 0 && Instant::now() < deadline {
            qp.poll(8, |c| flushed |= c.tag == 5 && c.result.is_ok())
                .unwrap();
        }
        assert_eq!(qp.in_flight(), 0, "every late completion arrived");
    }
    round_trip(&emu, &mut qp, 1, 512, 40, 8, w, r, 8);
}

/// A read that times out while the controller hangs, whose DMA lands when
/// the controller comes back: the caller holds no buffer that changes. The
/// timed-out buffer is quarantined (counted, never handed out again), and
/// the late data lands in it, not in a buffer the caller got since.
fn timed_out_read_buffer_is_quarantined(mode: RunMode) {
    let timeout = Duration::from_millis(200);
    let options = NvmeOptions {
        command_timeout: timeout,
        ..opts()
    };
    let (emu, ctrl) = open(NvmeModelConfig::default(), mode, options);
    let mut qp = ctrl.create_io_queue_pair(8).unwrap();
    let pool = unaligned_pool(&ctrl, 3, 4096);
    let mut w = pool.alloc().unwrap();
    fill(&mut w, 4096, 77);
    let w = qp.write(1, 0, w).unwrap();
    let mut r = pool.alloc().unwrap();
    r.set_len(4096);
    r.as_mut_slice().fill(0xee);
    let late_iova = r.iova();
    emu.inject(Fault::StopResponding);
    match qp.read(1, 0, r) {
        Err(RwFailed {
            error: NvmeError::Timeout { op: "read", .. },
            buf: None,
        }) => {}
        other => panic!("expected Timeout and a quarantined buffer, got {other:?}"),
    }
    assert_eq!(pool.quarantined(), 1);
    // The caller's next buffer is another one: the quarantined one is never
    // handed out again.
    let mut fresh = pool.alloc().unwrap();
    fresh.as_mut_slice().fill(0x55);
    assert_ne!(fresh.iova(), late_iova);
    assert!(
        pool.alloc().is_none(),
        "no buffer left: w, fresh, quarantined"
    );
    // The controller comes back and completes the read: its DMA lands late.
    emu.clear_faults();
    let deadline = Instant::now() + Duration::from_secs(5);
    while qp.in_flight() > 0 && Instant::now() < deadline {
        qp.submit_flush(1, 1).unwrap();
        qp.ring_doorbell();
        while qp.in_flight() > 0 && Instant::now() < deadline {
            qp.poll(8, |_| {}).unwrap();
        }
    }
    assert_eq!(qp.in_flight(), 0, "the late read completed");
    let mut landed = vec![0u8; 4096];
    emu.iommu().read(late_iova, &mut landed).unwrap();
    assert_eq!(
        landed,
        w.as_slice(),
        "the late DMA landed in the quarantined buffer"
    );
    assert!(
        fresh.as_slice().iter().all(|&b| b == 0x55),
        "the late DMA changed a buffer the caller holds"
    );
    assert_eq!(w.as_slice(), &pattern(77, 4096)[..]);
    // Accounting: every buffer is free, held, or quarantined.
    drop((w, fresh));
    assert_eq!(pool.free_count() + pool.quarantined(), pool.capacity());
    assert_eq!(pool.quarantined(), 1);
}

fn injected_io_error_is_typed(mode: RunMode) {
    let (emu, ctrl) = open(NvmeModelConfig::default(), mode, opts());
    let mut qp = ctrl.create_io_queue_pair(4).unwrap();
    let pool = unaligned_pool(&ctrl, 2, 1 << 20);
    let (mut w, mut r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    (w, r) = round_trip(&emu, &mut qp, 1, 512, 0, 2048, w, r, 1);
    emu.inject(Fault::IoError {
        nsid: 1,
        lba: 100,
        sct: sct::MEDIA,
        sc: sc_media::UNRECOVERED_READ_ERROR,
        count: 1,
    });
    r.set_len(8 * 512);
    // A command that completed with an error: its buffer comes back.
    r = match qp.read(1, 96, r) {
        Err(RwFailed {
            error: NvmeError::Status { op, status },
            buf: Some(r),
        }) => {
            assert_eq!(op, "read");
            assert_eq!(status.kind(), StatusKind::UnrecoveredReadError);
            assert_eq!((status.sct, status.sc), (2, 0x81));
            r
        }
        other => panic!("expected a media status and the buffer, got {other:?}"),
    };
    // Only one command fails.
    r = qp.read(1, 96, r).unwrap();
    // In the middle of a request split into 8 commands: the error is
    // reported once the commands in flight have finished, and nothing is left behind.
    emu.inject(Fault::IoError {
        nsid: 1,
        lba: 1100,
        sct: sct::MEDIA,
        sc: sc_media::WRITE_FAULT,
        count: 1,
    });
    let RwFailed { error: e, buf } = qp.write(1, 0, w).unwrap_err();
    w = buf.expect("the buffer comes back with a status");
    assert_eq!(e.status_kind(), Some(StatusKind::WriteFault), "{e}");
    assert!(
        e.to_string().contains("Write Fault (SCT 2h, SC 80h)"),
        "{e}"
    );
    assert_eq!(qp.in_flight(), 0);
    round_trip(&emu, &mut qp, 1, 512, 0, 2048, w, r, 2);
}

/// The CQ entry the device wrote the last completion of queue `qid` to:
/// its write-back event.
fn last_completion(events: &[Event], qid: u16) -> Option<Event> {
    events
        .iter()
        .rfind(|e| e.kind == Kind::WriteBack && e.queue == Queue::Cq(qid))
        .copied()
}

/// Submit a read, let the device complete it, then corrupt the completion
/// with `corrupt(dw2, dw3) -> (dw2, dw3)` before the driver polls it.
fn forge(
    emu: &EmuNvme,
    tracer: &Tracer,
    qp: &mut Qp,
    pool: &Pool,
    tag: u64,
    corrupt: impl Fn(u32, u32) -> (u32, u32),
) -> NvmeError {
    tracer.drain();
    qp.submit_read(1, 0, pool.alloc().unwrap().into_device(), 1, tag)
        .map_err(|(e, _)| e)
        .unwrap();
    qp.ring_doorbell();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let written = loop {
        events.extend(tracer.drain());
        if let Some(e) = last_completion(&events, qp.qid()) {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the device never completed the read"
        );
        std::thread::yield_now();
    };
    let slot = written.addr;
    let mut raw = [0u8; 8];
    emu.iommu().read(slot + cqe::DW2 as u64, &mut raw).unwrap();
    let dw2 = u32::from_le_bytes(raw[..4].try_into().unwrap());
    let dw3 = u32::from_le_bytes(raw[4..].try_into().unwrap());
    let (dw2, dw3) = corrupt(dw2, dw3);
    emu.iommu()
        .write(slot + cqe::DW2 as u64, &dw2.to_le_bytes())
        .unwrap();
    emu.iommu()
        .store_u32_release(slot + cqe::DW3 as u64, dw3)
        .unwrap();
    let mut delivered = 0;
    let e = qp.poll(8, |_| delivered += 1).unwrap_err();
    assert_eq!(delivered, 0, "the forged completion was not delivered");
    // The driver's trace shows the entry as it read it, forged bytes and
    // all, though it refused it.
    let read = tracer
        .drain()
        .into_iter()
        .find(|e| e.kind == Kind::DescRead)
        .expect("the driver recorded the entry it read");
    assert_eq!(
        (read.queue, read.index, read.addr),
        (written.queue, written.index, written.addr)
    );
    let b = read.raw.as_slice();
    assert_eq!(b.len(), cqe::SIZE);
    assert_eq!(&b[..cqe::DW2], &written.raw.as_slice()[..cqe::DW2]);
    assert_eq!(&b[cqe::DW2..cqe::DW3], &dw2.to_le_bytes());
    assert_eq!(&b[cqe::DW3..], &dw3.to_le_bytes());
    e
}

fn bogus_completions_are_device_misbehaviour(mode: RunMode) {
    let (emu, ctrl, tracer) = open_traced(NvmeModelConfig::default(), mode, opts());
    let mut qp = ctrl.create_io_queue_pair(8).unwrap();
    let pool = unaligned_pool(&ctrl, 8, 4096);
    // A CID that is not outstanding.
    let e = forge(&emu, &tracer, &mut qp, &pool, 1, |dw2, dw3| {
        (dw2, cqe::dw3::CID.set(dw3, 0x1234))
    });
    match &e {
        NvmeError::DeviceMisbehaved(m) => {
            assert!(m.contains("no command 4660 is outstanding"), "{m}")
        }
        other => panic!("expected DeviceMisbehaved, got {other:?}"),
    }
    assert!(e.to_string().contains("broke the specification"), "{e}");
    // A completion for another submission queue.
    let e = forge(&emu, &tracer, &mut qp, &pool, 2, |dw2, dw3| {
        (cqe::dw2::SQID.set(dw2, 7), dw3)
    });
    assert!(
        matches!(&e, NvmeError::DeviceMisbehaved(m) if m.contains("names submission queue 7")),
        "{e}"
    );
    // An SQ head the device was never given.
    let e = forge(&emu, &tracer, &mut qp, &pool, 3, |dw2, dw3| {
        (cqe::dw2::SQHD.set(dw2, 6), dw3)
    });
    assert!(
        matches!(&e, NvmeError::DeviceMisbehaved(m) if m.contains("SQ head 6")),
        "{e}"
    );
    // The corrupted entries were consumed; their commands stay outstanding
    // (never trusted to be done) and the queue keeps working.
    assert_eq!(qp.in_flight(), 3);
    assert_eq!(qp.poll(8, |_| {}).unwrap(), 0);
    qp.submit_read(1, 0, pool.alloc().unwrap().into_device(), 8, 50)
        .map_err(|(e, _)| e)
        .unwrap();
    qp.ring_doorbell();
    let mut tag = None;
    qp.wait(8, |c| tag = Some((c.tag, c.result))).unwrap();
    assert_eq!(tag, Some((50, Ok(()))));
}

/// Init on a controller with `faults` injected.
fn init_with(
    cfg: NvmeModelConfig,
    mode: RunMode,
    options: NvmeOptions,
    faults: &[Fault],
) -> (EmuNvme, Result<Ctrl, NvmeError>) {
    let emu = EmuNvme::new(cfg, mode).unwrap();
    emu.pci().enable();
    for f in faults {
        emu.inject(f.clone());
    }
    let r = NvmeController::init(emu.bar(), emu.mapper(), options);
    (emu, r)
}

fn large_doorbell_stride_is_refused(mode: RunMode) {
    // CAP.DSTRD 15: doorbells 128 KiB apart, so the admin CQ head doorbell
    // (0x21000) lies outside the model's 8 KiB BAR0. Refused before any
    // doorbell is written, not a panic of the BAR's bounds check.
    let (_emu, r) = init_with(
        NvmeModelConfig::default(),
        mode,
        opts(),
        &[Fault::CapDstrd(15)],
    );
    match &r {
        Err(NvmeError::DeviceMisbehaved(m)) => {
            assert!(m.contains("CAP.DSTRD is 15"), "{m}");
            assert!(m.contains("admin"), "{m}");
            assert!(m.contains("0x21004") && m.contains("0x2000"), "{m}");
        }
        other => panic!("expected DeviceMisbehaved, got {other:?}"),
    }
}

fn bar_too_small_for_the_io_doorbells_is_refused(mode: RunMode) {
    // 64 I/O queues and the stride of DSTRD 0 make an 8 KiB BAR0; CAP
    // claims DSTRD 4 (64-byte stride): the admin doorbells fit (0x1040) but
    // those of I/O queue 64 (0x3040) do not.
    let (_emu, r) = init_with(
        NvmeModelConfig::default(),
        mode,
        opts(),
        &[Fault::CapDstrd(4)],
    );
    match &r {
        Err(NvmeError::DeviceMisbehaved(m)) => {
            assert!(m.contains("CAP.DSTRD is 4"), "{m}");
            assert!(m.contains("I/O queue 64"), "{m}");
        }
        other => panic!("expected DeviceMisbehaved, got {other:?}"),
    }
    // Asking for (and granted) 8 queues, the doorbells of all of them fit.
    let few = NvmeOptions {
        io_queues: 8,
        ..opts()
    };
    let (_emu, r) = init_with(NvmeModelConfig::default(), mode, few, &[Fault::CapDstrd(4)]);
    assert_eq!(r.unwrap().info().io_queues, 8);
}

fn namespace_count_is_bounded(mode: RunMode) {
    // NN = FFFFFFFEh with every list page full: without a bound, a million
    // Identify commands and 100 MB at init. Refused after the bound instead.
    let started = Instant::now();
    let (_emu, r) = init_with(
        NvmeModelConfig::default(),
        mode,
        opts(),
        &[Fault::NamespaceCount(0xffff_fffe)],
    );
    match &r {
        Err(NvmeError::Unsupported(m)) => {
            assert!(m.contains("more than 4096 active namespaces"), "{m}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // 3000 namespaces (2 to 3000 phantoms of the first) are enumerated; I/O
    // finds each one by NSID.
    let (emu, r) = init_with(
        NvmeModelConfig::default(),
        mode,
        opts(),
        &[Fault::NamespaceCount(3000)],
    );
    let ctrl = r.unwrap();
    assert_eq!(ctrl.namespaces().len(), 3000);
    assert_eq!(ctrl.namespace(2999).unwrap().nsid, 2999);
    assert!(ctrl.namespace(3001).is_err());
    let mut qp = ctrl.create_io_queue_pair(8).unwrap();
    let pool = unaligned_pool(&ctrl, 4, 4096);
    let (w, r) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    let (_w, r) = round_trip(&emu, &mut qp, 1, 512, 3, 8, w, r, 1);
    // NSID 3000 is known to the driver (it goes to the device, which has
    // no data for it); NSID 3001 is not (refused before submission).
    let RwFailed { error: e, buf } = qp.read(3000, 0, r).unwrap_err();
    assert_eq!(e.status_kind(), Some(StatusKind::InvalidNamespace), "{e}");
    let e = qp.read(3001, 0, buf.unwrap()).unwrap_err().error;
    assert!(
        matches!(&e, NvmeError::InvalidRequest(m) if m.contains("namespace 3001")),
        "{e}"
    );
    // The message names the first NSIDs and the count, not all 3000.
    let m = ctrl.namespace(3001).unwrap_err().to_string();
    assert!(
        m.contains("[1, 2, 3, ") && m.contains("16] and 2984 more"),
        "{m}"
    );
    assert!(m.len() < 300, "{m}");
}

fn namespace_sizes_must_be_consistent(mode: RunMode) {
    let blocks = (1u64 << 30) / 512;
    for (nsze, ncap, nuse, needle) in [
        (blocks, blocks, blocks + 1, "NUSE"),
        (blocks, blocks + 1, blocks, "capacity"),
    ] {
        let (_emu, r) = init_with(
            NvmeModelConfig::default(),
            mode,
            opts(),
            &[Fault::NamespaceSizes {
                nsid: 1,
                nsze,
                ncap,
                nuse,
            }],
        );
        match &r {
            Err(NvmeError::DeviceMisbehaved(m)) => {
                assert!(
                    m.contains("Identify Namespace 1") && m.contains(needle),
                    "{m}"
                )
            }
            other => panic!("expected DeviceMisbehaved({needle}), got {other:?}"),
        }
    }
}
