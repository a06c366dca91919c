//! The descriptor trace of an NVMe command, driver and model together: the
//! exact sequence of events a read, a write and an admin Identify leave,
//! from the entry the driver writes to the head doorbell that releases its
//! completion (issue 13). Inline controller: the device works during the
//! doorbell write, so the order is deterministic.
#![forbid(unsafe_code)]

use dma::{Buf, Pool, RegionOptions};
use drivers::nvme::{IoQueuePair, NvmeController, NvmeOptions};
use drivers::trace::{Agent, DeviceInfo, DeviceKind, Engine, Event, Kind, Queue, Tracer};
use emu::nvme::{EmuNvme, NamespaceConfig, NvmeModel, NvmeModelConfig};
use emu::{EmuBar, RunMode};
use spec::nvme::{admin, cns, cqe, io, sqe};
use std::sync::Arc;

type Ctrl = NvmeController<EmuBar<NvmeModel>>;
type Qp = IoQueuePair<EmuBar<NvmeModel>>;

const PAGE: u64 = 4096;

/// An inline controller with one namespace of `size` bytes (512-byte
/// blocks) and doorbell stride `dstrd`, the driver on it, everything
/// recording into one tracer device that starts out knowing nothing of the
/// stride (the driver tells it when it reads CAP).
fn open(size: u64, dstrd: u8) -> (EmuNvme, Ctrl, Arc<Tracer>) {
    let cfg = NvmeModelConfig {
        namespaces: vec![NamespaceConfig::ram(size)],
        dstrd,
        ..NvmeModelConfig::default()
    };
    let emu = EmuNvme::new(cfg, RunMode::Inline).expect("model");
    emu.pci().enable();
    let tracer = Tracer::new(drivers::trace::DEFAULT_CAPACITY);
    let tap = tracer.device(DeviceInfo {
        name: "emu:nvme,size=1M,mode=inline".into(),
        kind: DeviceKind::Nvme { dstrd: 0 },
        emulated: true,
    });
    assert!(emu.set_tap(tap.clone()));
    let mut bar = emu.bar();
    bar.set_trace(tap.clone());
    let opts = NvmeOptions {
        region: RegionOptions::EMULATED,
        trace: tap,
        ..NvmeOptions::default()
    };
    let ctrl = NvmeController::init(bar, emu.mapper(), opts).expect("init");
    assert_eq!(
        tracer.devices()[0].kind,
        DeviceKind::Nvme {
            dstrd: u32::from(dstrd)
        },
        "the driver set the stride it read in CAP"
    );
    (emu, ctrl, tracer)
}

/// The name of the register an event wrote, from the tracer's device table.
fn reg_name(tracer: &Tracer, e: &Event) -> String {
    assert_eq!(e.kind, Kind::RegWrite, "{e:?}");
    tracer.devices()[e.dev as usize]
        .kind
        .reg_name(e.addr)
        .unwrap_or_else(|| format!("unnamed {:#x}", e.addr))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The fields of a submission queue entry's bytes that the tests check.
struct Sqe {
    opcode: u8,
    cid: u16,
    nsid: u32,
    prp1: u64,
    prp2: u64,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
}

fn sqe_of(e: &Event) -> Sqe {
    let b = e.raw.as_slice();
    assert_eq!(b.len(), sqe::SIZE, "{e:?}");
    let cdw0 = u32_at(b, sqe::CDW0);
    Sqe {
        opcode: sqe::cdw0::OPC.get(cdw0) as u8,
        cid: sqe::cdw0::CID.get(cdw0) as u16,
        nsid: u32_at(b, sqe::NSID),
        prp1: u64_at(b, sqe::PRP1),
        prp2: u64_at(b, sqe::PRP2),
        cdw10: u32_at(b, sqe::CDW10),
        cdw11: u32_at(b, sqe::CDW11),
        cdw12: u32_at(b, sqe::CDW12),
    }
}

/// The CID and SQ identifier of a completion entry's bytes, and whether
/// its status is success.
fn cqe_of(e: &Event) -> (u16, u16, bool) {
    let b = e.raw.as_slice();
    assert_eq!(b.len(), cqe::SIZE, "{e:?}");
    let dw2 = u32_at(b, cqe::DW2);
    let dw3 = u32_at(b, cqe::DW3);
    let ok = cqe::dw3::SC.get(dw3) == 0 && cqe::dw3::SCT.get(dw3) == 0;
    (
        cqe::dw3::CID.get(dw3) as u16,
        cqe::dw2::SQID.get(dw2) as u16,
        ok,
    )
}

/// The events of the one command whose entry the driver wrote first on
/// submission queue `qid` among `events` (opcode `opcode`): from that
/// `desc_write` to the end.
fn from_submission(events: &[Event], qid: u16, opcode: u8) -> Vec<Event> {
    let i = events
        .iter()
        .position(|e| {
            e.kind == Kind::DescWrite && e.queue == Queue::Sq(qid) && sqe_of(e).opcode == opcode
        })
        .unwrap_or_else(|| panic!("no entry with opcode {opcode:#04x} written on SQ{qid}"));
    events[i..].to_vec()
}

/// Check the frame every command has and return the device's data events
/// in between: desc_write (driver) → "SQn tail doorbell" → fetch of the
/// same entry with the same bytes → ... → write_back of the completion
/// with the entry's CID → desc_read of the same entry with the same bytes
/// → "CQn head doorbell", and nothing after.
fn command_frame(tracer: &Tracer, ev: &[Event], qid: u16) -> Vec<Event> {
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind.name()).collect();
    assert!(ev.len() >= 6, "{kinds:?}");
    let n = ev.len();
    let (written, doorbell, fetch) = (&ev[0], &ev[1], &ev[2]);
    let (back, read, head) = (&ev[n - 3], &ev[n - 2], &ev[n - 1]);
    let driver = |e: &Event| matches!(e.agent, Agent::Driver(_));
    let device = |e: &Event| e.agent == Agent::Device(Engine::Controller);

    assert!(driver(written) && driver(doorbell) && driver(read) && driver(head));
    assert_eq!(reg_name(tracer, doorbell), format!("SQ{qid} tail doorbell"));
    assert_eq!(reg_name(tracer, head), format!("CQ{qid} head doorbell"));

    assert_eq!(fetch.kind, Kind::Fetch, "{kinds:?}");
    assert!(device(fetch));
    assert_eq!(
        (fetch.queue, fetch.index, fetch.addr, fetch.raw),
        (written.queue, written.index, written.addr, written.raw),
        "the device fetched the entry the driver wrote"
    );
    // The doorbell announced the entry: the new tail is one past it.
    let depth_wrap = doorbell.value as u32;
    assert!(
        depth_wrap == written.index + 1 || depth_wrap == 0,
        "{doorbell:?}"
    );

    assert_eq!(back.kind, Kind::WriteBack, "{kinds:?}");
    assert!(device(back));
    assert_eq!(back.queue, Queue::Cq(qid));
    let (cid, sqid, ok) = cqe_of(back);
    assert_eq!((cid, sqid), (sqe_of(written).cid, qid));
    assert!(ok, "the command succeeded");
    assert_eq!(read.kind, Kind::DescRead, "{kinds:?}");
    assert_eq!(
        (read.queue, read.index, read.addr, read.raw),
        (back.queue, back.index, back.addr, back.raw),
        "the driver consumed the entry the device wrote"
    );
    assert_eq!(head.value, u64::from(read.index) + 1);
    ev[3..n - 3].to_vec()
}

/// The contiguous runs of a transfer described by PRP1 and (for more than
/// two pages) the PRP list entries, as the spec reads them (NVMe 1.4 §4.3).
fn runs(prp1: u64, entries: &[u64], len: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let first = len.min(PAGE - prp1 % PAGE);
    let mut left = len - first;
    let mut pieces = vec![(prp1, first)];
    for &p in entries {
        let n = left.min(PAGE);
        pieces.push((p, n));
        left -= n;
    }
    assert_eq!(left, 0, "the entries cover the transfer");
    for (a, n) in pieces {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == a => last.1 += n,
            _ => out.push((a, n)),
        }
    }
    out
}

/// A buffer of `len` bytes from a pool of `size`-byte buffers (as the apps
/// make them: a whole number of pages).
fn buffer(ctrl: &Ctrl, size: usize, len: usize) -> (Pool, Buf) {
    let pool = Pool::new(ctrl.mapper().clone(), 1, size, RegionOptions::EMULATED).expect("pool");
    let mut buf = pool.alloc().expect("a buffer");
    buf.set_len(len);
    (pool, buf)
}

/// `nvme-read emu:nvme,size=1M,mode=inline --length 20k --offset 64`, in
/// process: the 41 blocks that hold bytes 64..20544 read into one 128 KiB
/// buffer (a PRP list of 5 entries). The trace is exactly: SQ1 tail
/// doorbell → fetch of the Read entry (CID and PRPs as written) → the PRP
/// list read → one DMA write per contiguous run, over the buffer → the
/// completion written with that CID → consumed by the driver → CQ1 head
/// doorbell.
#[test]
fn a_read_through_a_prp_list_is_traced_in_order() {
    let (emu, ctrl, tracer) = open(1 << 20, 0);
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    emu.write_backing(1, 0, &data).unwrap();
    let mut qp: Qp = ctrl.create_io_queue_pair(2).unwrap();
    let (offset, length) = (64u64, 20u64 << 10);
    let blocks = (offset + length).div_ceil(512);
    assert_eq!(blocks, 41);
    let len = blocks * 512;
    let (_pool, buf) = buffer(&ctrl, 128 << 10, len as usize);
    let iova = buf.iova();
    tracer.drain();
    let buf = qp.read(1, 0, buf).unwrap();
    assert!(
        buf.as_slice()[offset as usize..(offset + length) as usize]
            == data[offset as usize..(offset + length) as usize]
    );

    let ev = from_submission(&tracer.drain(), 1, io::READ);
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind.name()).collect();
    let cmd = sqe_of(&ev[0]);
    assert_eq!((cmd.opcode, cmd.nsid), (io::READ, 1));
    assert_eq!(
        (cmd.cdw10, cmd.cdw11, cmd.cdw12 & 0xffff),
        (0, 0, 40),
        "SLBA 0, NLB 40 (41 blocks)"
    );
    assert_eq!(cmd.prp1, iova, "PRP1 is the buffer");
    let pages = (len - (PAGE - iova % PAGE)).div_ceil(PAGE);
    assert_eq!(pages, 5, "{kinds:?}");

    let inner = command_frame(&tracer, &ev, 1);
    let list = &inner[0];
    assert_eq!(list.kind, Kind::PrpList, "{kinds:?}");
    assert_eq!(list.agent, Agent::Device(Engine::Controller));
    assert_eq!(
        (list.addr, list.len),
        (cmd.prp2, 5),
        "PRP2 points at the list"
    );
    let entries: Vec<u64> = list
        .raw
        .as_slice()
        .chunks(8)
        .map(|c| u64_at(c, 0))
        .collect();
    let expect: Vec<u64> = (1..=5).map(|k| iova - iova % PAGE + k * PAGE).collect();
    assert_eq!(
        entries, expect,
        "the list holds the buffer's next five pages"
    );

    let dma = &inner[1..];
    assert!(dma.iter().all(|e| e.kind == Kind::DmaWrite), "{kinds:?}");
    let got: Vec<(u64, u64)> = dma.iter().map(|e| (e.addr, u64::from(e.len))).collect();
    assert_eq!(got, runs(cmd.prp1, &entries, len));
    assert_eq!(
        got,
        [(iova, len)],
        "one buffer, contiguous in IOVA space: one run"
    );
    assert_eq!(
        kinds,
        [
            "desc_write",
            "reg_write",
            "fetch",
            "prp_list",
            "dma_write",
            "write_back",
            "desc_read",
            "reg_write"
        ]
    );
}

/// A write of 12 KiB from a buffer 64 bytes into a page (PRP1 with an
/// offset, a list of three entries), with a doorbell stride of 16 bytes
/// (CAP.DSTRD 2): the data runs are DMA reads, and the doorbells are named
/// by the stride the driver read.
#[test]
fn a_write_is_traced_with_its_reads() {
    let (emu, ctrl, tracer) = open(1 << 20, 2);
    let mut qp: Qp = ctrl.create_io_queue_pair(4).unwrap();
    // Buffers of 16 KiB + 64 bytes: the second starts 64 bytes into a page.
    let pool = Pool::new(
        ctrl.mapper().clone(),
        2,
        (16 << 10) + 64,
        RegionOptions::EMULATED,
    )
    .expect("pool");
    let (a, b) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    let mut buf = if a.iova() % PAGE == 64 { a } else { b };
    assert_eq!(buf.iova() % PAGE, 64);
    let len = 12u64 << 10;
    buf.set_len(len as usize);
    for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let iova = buf.iova();
    tracer.drain();
    let _buf = qp.write(1, 8, buf).unwrap();

    let ev = from_submission(&tracer.drain(), 1, io::WRITE);
    let cmd = sqe_of(&ev[0]);
    assert_eq!((cmd.nsid, cmd.cdw10, cmd.cdw12 & 0xffff), (1, 8, 23));
    assert_eq!(cmd.prp1, iova);
    let inner = command_frame(&tracer, &ev, 1);
    assert_eq!(inner[0].kind, Kind::PrpList);
    assert_eq!((inner[0].addr, inner[0].len), (cmd.prp2, 3));
    let entries: Vec<u64> = inner[0]
        .raw
        .as_slice()
        .chunks(8)
        .map(|c| u64_at(c, 0))
        .collect();
    let got: Vec<(u64, u64)> = inner[1..]
        .iter()
        .map(|e| {
            assert_eq!(e.kind, Kind::DmaRead, "{e:?}");
            (e.addr, u64::from(e.len))
        })
        .collect();
    assert_eq!(got, runs(cmd.prp1, &entries, len));
    assert_eq!(got, [(iova, len)]);
    let mut back = vec![0u8; len as usize];
    emu.read_backing(1, 8 * 512, &mut back).unwrap();
    assert!(back.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
}

/// Identify Controller at init: on the admin queue, the entry (opcode
/// 06h, CNS 1), its fetch, one 4 KiB DMA write into the driver's page (no
/// PRP list: one page), the completion, and the two admin doorbells.
#[test]
fn the_admin_identify_is_traced() {
    let (_emu, _ctrl, tracer) = open(1 << 20, 0);
    let all = tracer.drain();
    // Init begins with register accesses only: CAP, then the reset.
    assert_eq!(all[0].kind, Kind::RegRead);
    assert_eq!(
        DeviceKind::Nvme { dstrd: 0 }
            .reg_name(all[0].addr)
            .as_deref(),
        Some("CAP")
    );
    let ev = from_submission(&all, 0, admin::IDENTIFY);
    let cmd = sqe_of(&ev[0]);
    assert_eq!(cns::CNS.get(cmd.cdw10), cns::CONTROLLER);
    assert_eq!(cmd.prp1 % PAGE, 0);
    let end = ev
        .iter()
        .position(|e| e.kind == Kind::RegWrite && reg_name(&tracer, e) == "CQ0 head doorbell")
        .expect("the head doorbell");
    let inner = command_frame(&tracer, &ev[..=end], 0);
    assert_eq!(inner.len(), 1, "{inner:?}");
    assert_eq!(inner[0].kind, Kind::DmaWrite);
    assert_eq!((inner[0].addr, inner[0].len), (cmd.prp1, 4096));
    assert_eq!(inner[0].agent, Agent::Device(Engine::Controller));
}
