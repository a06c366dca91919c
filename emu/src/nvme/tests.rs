//! The model driven by a tiny scripted host (not the real driver): every
//! register write, queue entry and PRP list is written by hand here, so each
//! test pins down one piece of controller behaviour.
#![forbid(unsafe_code)]

use super::*;
use dma::{DmaRegion, RegionOptions};
use drivers::regs::RegisterAccess;
use drivers::trace::{Agent, DeviceInfo, DeviceKind, Engine, Event, Kind, Queue as Ring, Tracer};
use spec::nvme::{
    admin, cns, cqe, create_queue, feature, get_log_page, id_ctrl, id_ns, io, reg, sc_command,
    sc_generic, sc_media, sct, sqe,
};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
const MEM: usize = 24 << 20;
const ASQ_OFF: usize = 0;
const ACQ_OFF: usize = 0x1000;
/// I/O queue pair `qid` lives at `QUEUES_OFF + (qid - 1) * QUEUE_SPAN`: SQ
/// (up to 128 entries) then CQ (up to 512 entries) two pages further.
const QUEUES_OFF: usize = 0x10000;
const QUEUE_SPAN: usize = 0x4000;
const LISTS_OFF: usize = 0x40000;
const ID_OFF: usize = 0x50000;
const DATA_OFF: usize = 0x100000;
const ADMIN_ENTRIES: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cqe {
    dw0: u32,
    sqhd: u16,
    sqid: u16,
    cid: u16,
    sct: u8,
    sc: u8,
    dnr: bool,
}

impl Cqe {
    fn ok(&self) -> bool {
        self.sct == 0 && self.sc == 0
    }

    fn status(&self) -> (u8, u8) {
        (self.sct, self.sc)
    }
}

/// A command under construction: 16 dwords; the CID is set on submission.
#[derive(Clone, Copy)]
struct Cmd([u32; 16]);

impl Cmd {
    fn new(opcode: u8) -> Cmd {
        let mut d = [0u32; 16];
        d[0] = opcode as u32;
        Cmd(d)
    }
    fn nsid(mut self, nsid: u32) -> Cmd {
        self.0[sqe::NSID / 4] = nsid;
        self
    }
    fn prp(mut self, prp1: u64, prp2: u64) -> Cmd {
        self.0[sqe::PRP1 / 4] = prp1 as u32;
        self.0[sqe::PRP1 / 4 + 1] = (prp1 >> 32) as u32;
        self.0[sqe::PRP2 / 4] = prp2 as u32;
        self.0[sqe::PRP2 / 4 + 1] = (prp2 >> 32) as u32;
        self
    }
    /// Set command dword `n` (10..=15, or 0 to OR in bits).
    fn dw(mut self, n: usize, v: u32) -> Cmd {
        self.0[n] |= v;
        self
    }
    fn rw(opcode: u8, nsid: u32, slba: u64, blocks: u32) -> Cmd {
        Cmd::new(opcode)
            .nsid(nsid)
            .dw(10, slba as u32)
            .dw(11, (slba >> 32) as u32)
            .dw(12, blocks - 1)
    }
    fn bytes(&self, cid: u16) -> [u8; 64] {
        let mut d = self.0;
        d[0] = sqe::cdw0::CID.set(d[0], u32::from(cid));
        let mut b = [0u8; 64];
        for (i, v) in d.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// The host side of one queue pair.
struct Queue {
    qid: u16,
    sq: usize,
    cq: usize,
    sq_entries: u32,
    cq_entries: u32,
    tail: u32,
    head: u32,
    phase: bool,
    next_cid: u16,
}

impl Queue {
    fn new(qid: u16, sq: usize, cq: usize, sq_entries: u32, cq_entries: u32) -> Queue {
        Queue {
            qid,
            sq,
            cq,
            sq_entries,
            cq_entries,
            tail: 0,
            head: 0,
            phase: true,
            next_cid: 0x100,
        }
    }
}

/// A scripted host: one DMA region holding queues, PRP lists and data.
struct Host {
    emu: EmuNvme,
    bar: EmuBar<NvmeModel>,
    mem: DmaRegion,
    /// The trace: the model's events and the register accesses of `bar`.
    tracer: Arc<Tracer>,
}

fn config() -> NvmeModelConfig {
    NvmeModelConfig {
        namespaces: vec![NamespaceConfig::ram(64 << 20)],
        ..NvmeModelConfig::default()
    }
}

impl Host {
    fn new(cfg: NvmeModelConfig, mode: RunMode) -> Host {
        let emu = EmuNvme::new(cfg, mode).unwrap();
        emu.pci().enable();
        let mem = DmaRegion::allocate(emu.mapper(), MEM, RegionOptions::EMULATED).unwrap();
        let tracer = Tracer::new(drivers::trace::DEFAULT_CAPACITY);
        let tap = tracer.device(DeviceInfo {
            name: "emu:nvme".into(),
            kind: DeviceKind::Nvme { dstrd: 0 },
            emulated: true,
        });
        assert!(emu.set_tap(tap.clone()));
        assert!(!emu.set_tap(tap.clone()), "the tap is set once");
        let mut bar = emu.bar();
        bar.set_trace(tap);
        Host {
            emu,
            bar,
            mem,
            tracer,
        }
    }

    /// Forget the events so far: the next [`events`] starts here.
    fn trace_from_here(&self) {
        self.tracer.drain();
    }

    fn iova(&self, off: usize) -> u64 {
        self.mem.iova_at(off)
    }

    fn csts(&self) -> u32 {
        self.bar.read32(reg::CSTS)
    }

    fn ready(&self) -> bool {
        reg::csts::RDY.get(self.csts()) == 1
    }

    fn fatal(&self) -> bool {
        reg::csts::CFS.get(self.csts()) == 1
    }

    fn cc_enabled() -> u32 {
        reg::cc::EN.bit()
            | reg::cc::IOSQES.value(u32::from(sqe::SIZE_LOG2))
            | reg::cc::IOCQES.value(u32::from(cqe::SIZE_LOG2))
    }

    /// Program the admin queue and set CC.EN; the controller must be ready at once.
    fn enable(&self) -> Queue {
        let entries = ADMIN_ENTRIES - 1;
        let aqa = reg::aqa::ASQS.value(entries) | reg::aqa::ACQS.value(entries);
        self.bar.write32(reg::AQA, aqa);
        self.bar.write64(reg::ASQ, self.iova(ASQ_OFF));
        self.bar.write64(reg::ACQ, self.iova(ACQ_OFF));
        self.bar.write32(reg::CC, Self::cc_enabled());
        assert!(self.ready(), "CSTS.RDY must follow CC.EN at once");
        assert!(!self.fatal());
        Queue::new(0, ASQ_OFF, ACQ_OFF, ADMIN_ENTRIES, ADMIN_ENTRIES)
    }

    fn submit(&self, q: &mut Queue, cmd: Cmd) -> u16 {
        let cid = q.next_cid;
        q.next_cid = q.next_cid.wrapping_add(1);
        self.mem
            .write_bytes(q.sq + q.tail as usize * 64, &cmd.bytes(cid));
        q.tail = (q.tail + 1) % q.sq_entries;
        cid
    }

    fn ring(&self, q: &Queue) {
        self.bar.write32(reg::sq_tail_doorbell(q.qid, 0), q.tail);
    }

    fn release(&self, q: &Queue) {
        self.bar.write32(reg::cq_head_doorbell(q.qid, 0), q.head);
    }

    /// The entry at the CQ head if its phase says it is new (not consumed yet).
    fn peek(&self, q: &Queue) -> Option<Cqe> {
        let off = q.cq + q.head as usize * 16;
        let dw3 = self.mem.load_u32_acquire(off + cqe::DW3);
        if (cqe::dw3::P.get(dw3) == 1) != q.phase {
            return None;
        }
        let dw2 = self.mem.read_u32(off + cqe::DW2);
        Some(Cqe {
            dw0: self.mem.read_u32(off + cqe::DW0),
            sqhd: cqe::dw2::SQHD.get(dw2) as u16,
            sqid: cqe::dw2::SQID.get(dw2) as u16,
            cid: cqe::dw3::CID.get(dw3) as u16,
            sct: cqe::dw3::SCT.get(dw3) as u8,
            sc: cqe::dw3::SC.get(dw3) as u8,
            dnr: cqe::dw3::DNR.get(dw3) == 1,
        })
    }

    /// Consume the entry at the head, if new (no doorbell write).
    fn poll(&self, q: &mut Queue) -> Option<Cqe> {
        let c = self.peek(q)?;
        q.head += 1;
        if q.head == q.cq_entries {
            q.head = 0;
            q.phase = !q.phase;
        }
        Some(c)
    }

    fn wait(&self, q: &mut Queue) -> Cqe {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.poll(q) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "no completion on queue {}",
                q.qid
            );
            std::hint::spin_loop();
        }
    }

    /// Submit one command, ring, wait for its completion, release the entry.
    fn run(&self, q: &mut Queue, cmd: Cmd) -> Cqe {
        let cid = self.submit(q, cmd);
        self.ring(q);
        let c = self.wait(q);
        self.release(q);
        assert_eq!(c.cid, cid, "completion for another command");
        assert_eq!(c.sqid, q.qid);
        assert_eq!(
            c.sqhd as u32, q.tail,
            "SQHD after fetching the only command"
        );
        c
    }

    fn set_queues(&self, admin: &mut Queue, nsq: u16, ncq: u16) -> Cqe {
        let dw11 = feature::NSQ.value(u32::from(nsq) - 1) | feature::NCQ.value(u32::from(ncq) - 1);
        self.run(
            admin,
            Cmd::new(admin::SET_FEATURES)
                .dw(10, feature::NUMBER_OF_QUEUES)
                .dw(11, dw11),
        )
    }

    fn create_cq_cmd(&self, qid: u16, entries: u32) -> Cmd {
        let base = QUEUES_OFF + (qid as usize - 1) * QUEUE_SPAN + 0x2000;
        Cmd::new(admin::CREATE_IO_CQ)
            .prp(self.iova(base), 0)
            .dw(
                10,
                create_queue::QID.value(u32::from(qid)) | create_queue::QSIZE.value(entries - 1),
            )
            .dw(11, create_queue::PC.bit())
    }

    fn create_sq_cmd(&self, qid: u16, entries: u32, cqid: u16) -> Cmd {
        let base = QUEUES_OFF + (qid as usize - 1) * QUEUE_SPAN;
        Cmd::new(admin::CREATE_IO_SQ)
            .prp(self.iova(base), 0)
            .dw(
                10,
                create_queue::QID.value(u32::from(qid)) | create_queue::QSIZE.value(entries - 1),
            )
            .dw(
                11,
                create_queue::PC.bit() | create_queue::CQID.value(u32::from(cqid)),
            )
    }

    /// Create CQ `qid` then SQ `qid` completing into it.
    fn create_pair(&self, admin: &mut Queue, qid: u16, sq_entries: u32, cq_entries: u32) -> Queue {
        let c = self.run(admin, self.create_cq_cmd(qid, cq_entries));
        assert!(c.ok(), "create CQ: {c:?}");
        let c = self.run(admin, self.create_sq_cmd(qid, sq_entries, qid));
        assert!(c.ok(), "create SQ: {c:?}");
        let base = QUEUES_OFF + (qid as usize - 1) * QUEUE_SPAN;
        Queue::new(qid, base, base + 0x2000, sq_entries, cq_entries)
    }

    /// Enable and create I/O queue pair 1.
    fn ready_io(&self, sq_entries: u32, cq_entries: u32) -> (Queue, Queue) {
        let mut admin = self.enable();
        let io = self.create_pair(&mut admin, 1, sq_entries, cq_entries);
        (admin, io)
    }

    /// PRPs for a transfer of `len` bytes from data offset `off` (contiguous),
    /// with PRP lists (unchained) at `LISTS_OFF` when needed.
    fn prps(&self, off: usize, len: usize) -> (u64, u64) {
        let prp1 = self.iova(off);
        let first = PAGE - off % PAGE;
        if len <= first {
            (prp1, 0)
        } else if len <= first + PAGE {
            (prp1, self.iova(off + first))
        } else {
            let pages = (len - first).div_ceil(PAGE);
            assert!(pages <= 512, "test helper builds one list page only");
            for i in 0..pages {
                self.mem
                    .write_u64(LISTS_OFF + i * 8, self.iova(off + first + i * PAGE));
            }
            (prp1, self.iova(LISTS_OFF))
        }
    }

    fn io(&self, q: &mut Queue, opcode: u8, lba: u64, blocks: u32, off: usize, len: usize) -> Cqe {
        let (p1, p2) = self.prps(off, len);
        self.run(q, Cmd::rw(opcode, 1, lba, blocks).prp(p1, p2))
    }
}

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

/// The events since the last call (or [`Host::trace_from_here`]).
fn events(h: &Host) -> Vec<Event> {
    h.tracer.drain()
}

/// The text of a note event.
fn note(e: &Event) -> Option<&str> {
    (e.kind == Kind::Note)
        .then(|| std::str::from_utf8(e.raw.as_slice()).ok())
        .flatten()
}

/// `e` without what the tracer fills in (order and time), for comparing.
fn untimed(e: &Event) -> Event {
    Event {
        seq: 0,
        t_ns: 0,
        ..*e
    }
}

#[test]
fn capabilities_version_and_ready_follow_enable() {
    let h = Host::new(config(), RunMode::Inline);
    let cap = h.bar.read64(reg::CAP);
    assert_eq!(reg::cap::MQES.get(cap), 1023);
    assert_eq!(reg::cap::CQR.get(cap), 1);
    assert_eq!(reg::cap::TO.get(cap), 20);
    assert_eq!(reg::cap::DSTRD.get(cap), 0);
    assert_eq!(reg::cap::CSS.get(cap), reg::cap::CSS_NVM);
    assert_eq!(reg::cap::MPSMIN.get(cap), 0);
    assert_eq!(reg::cap::MPSMAX.get(cap), 0);
    assert_eq!(h.bar.read32(reg::CAP + 4) as u64, cap >> 32);
    assert_eq!(h.bar.read32(reg::VS), 0x0001_0400);
    assert_eq!(h.csts(), 0, "disabled after power-on");

    // CAP and VS are read-only; unknown offsets read 0.
    h.bar.write32(reg::VS, 0x1234);
    assert_eq!(h.bar.read32(reg::VS), 0x0001_0400);
    assert_eq!(h.bar.read32(0xe00), 0);

    let mut admin = h.enable();
    assert_eq!(h.bar.read64(reg::ASQ), h.iova(ASQ_OFF));
    assert_eq!(h.bar.read32(reg::ACQ + 4) as u64, h.iova(ACQ_OFF) >> 32);
    assert!(h.run(&mut admin, Cmd::new(admin::ABORT)).dw0 & 1 == 1);

    // Reset: RDY drops at once, the admin queue is gone (its doorbell ignored).
    h.trace_from_here();
    h.bar.write32(reg::CC, 0);
    assert_eq!(h.csts(), 0);
    h.submit(&mut admin, Cmd::new(admin::ABORT));
    h.ring(&admin);
    assert!(h.peek(&admin).is_none());
    let ev = events(&h);
    assert!(ev
        .iter()
        .any(|e| note(e).is_some_and(|n| n.contains("reset"))));
    assert!(ev
        .iter()
        .any(|e| note(e).is_some_and(|n| n.contains("does not exist"))));
    assert!(ev
        .iter()
        .filter(|e| e.kind == Kind::Note)
        .all(|e| e.agent == Agent::Device(Engine::Controller)));

    // INTMS/INTMC are accepted (no interrupts): the mask reads back.
    h.bar.write32(reg::INTMS, 0b101);
    h.bar.write32(reg::INTMC, 0b001);
    assert_eq!(h.bar.read32(reg::INTMS), 0b100);
}

#[test]
fn enable_with_a_bad_configuration_sets_cfs_until_reset() {
    let h = Host::new(config(), RunMode::Inline);
    h.bar.write32(reg::AQA, 0x0007_0007);
    h.bar.write64(reg::ASQ, h.iova(ASQ_OFF) + 0x100); // not page aligned
    h.bar.write64(reg::ACQ, h.iova(ACQ_OFF));
    h.bar.write32(reg::CC, Host::cc_enabled());
    assert!(h.fatal());
    assert!(!h.ready());
    h.bar.write32(reg::CC, 0);
    assert_eq!(
        h.csts(),
        0,
        "reset clears the controller's own fatal status"
    );

    // MPS must be 0 (4 KiB).
    h.bar.write64(reg::ASQ, h.iova(ASQ_OFF));
    h.bar
        .write32(reg::CC, Host::cc_enabled() | reg::cc::MPS.value(1));
    assert!(h.fatal() && !h.ready());
    h.bar.write32(reg::CC, 0);

    // A 1-entry admin queue (AQA 0) is refused too.
    h.bar.write32(reg::AQA, 0);
    h.bar.write32(reg::CC, Host::cc_enabled());
    assert!(h.fatal() && !h.ready());
    h.bar.write32(reg::CC, 0);
    h.enable();
}

#[test]
fn shutdown_completes_at_once() {
    let h = Host::new(config(), RunMode::Inline);
    h.enable();
    let shn = reg::cc::SHN.set(Host::cc_enabled(), reg::cc::SHN_NORMAL);
    h.bar.write32(reg::CC, shn);
    assert_eq!(reg::csts::SHST.get(h.csts()), reg::csts::SHST_COMPLETE);
    h.bar.write32(reg::CC, 0);
    assert_eq!(h.csts(), 0);
}

#[test]
fn identify_controller_crossing_a_page() {
    let cfg = NvmeModelConfig {
        serial: "SN42".into(),
        namespaces: vec![NamespaceConfig::ram(1 << 20), NamespaceConfig::ram(2 << 20)],
        ..NvmeModelConfig::default()
    };
    let h = Host::new(cfg, RunMode::Inline);
    let mut admin = h.enable();
    // PRP1 with an offset of 0x800: the structure's second half goes to PRP2.
    h.mem.fill(ID_OFF, 3 * PAGE, 0xee);
    let (p1, p2) = (h.iova(ID_OFF + 0x800), h.iova(ID_OFF + 2 * PAGE));
    let c = h.run(
        &mut admin,
        Cmd::new(admin::IDENTIFY)
            .prp(p1, p2)
            .dw(10, cns::CONTROLLER),
    );
    assert!(c.ok(), "{c:?}");
    let mut d = vec![0u8; 4096];
    h.mem.read_bytes(ID_OFF + 0x800, &mut d[..0x800]);
    h.mem.read_bytes(ID_OFF + 2 * PAGE, &mut d[0x800..]);
    assert_eq!(u16::from_le_bytes([d[0], d[1]]), 0x1b36);
    assert_eq!(&d[id_ctrl::SN], b"SN42                ");
    assert!(d[id_ctrl::MN].starts_with(b"emulated NVMe controller "));
    assert_eq!(d[id_ctrl::MDTS], 5);
    assert_eq!(u16::from_le_bytes([d[78], d[79]]), 1, "CNTLID");
    assert_eq!(
        &d[id_ctrl::VER..id_ctrl::VER + 4],
        &0x0001_0400u32.to_le_bytes()
    );
    assert_eq!(d[id_ctrl::SQES], 0x66);
    assert_eq!(d[id_ctrl::CQES], 0x44);
    assert_eq!(&d[id_ctrl::NN..id_ctrl::NN + 4], &2u32.to_le_bytes());
    assert_eq!(d[id_ctrl::VWC], 0, "RAM has no volatile cache");
    // The gap between the two PRP pages was not written.
    assert_eq!(h.mem.read_u8(ID_OFF + PAGE + 10), 0xee);
}

#[test]
fn identify_namespaces_and_active_list() {
    let mut ns4k = NamespaceConfig::ram(8 << 20);
    ns4k.lba_size = 4096;
    let cfg = NvmeModelConfig {
        namespaces: vec![
            NamespaceConfig::ram(1 << 20),
            ns4k,
            NamespaceConfig::ram(1 << 20),
        ],
        ..NvmeModelConfig::default()
    };
    let h = Host::new(cfg, RunMode::Inline);
    let mut admin = h.enable();
    let id = |admin: &mut Queue, cns: u32, nsid: u32| {
        h.mem.fill(ID_OFF, PAGE, 0xff);
        let c = h.run(
            admin,
            Cmd::new(admin::IDENTIFY)
                .nsid(nsid)
                .prp(h.iova(ID_OFF), 0)
                .dw(10, cns),
        );
        let mut d = vec![0u8; PAGE];
        h.mem.read_bytes(ID_OFF, &mut d);
        (c, d)
    };
    let (c, d) = id(&mut admin, cns::NAMESPACE, 2);
    assert!(c.ok());
    let nsze = u64::from_le_bytes(d[id_ns::NSZE..id_ns::NSZE + 8].try_into().unwrap());
    assert_eq!(nsze, 2048);
    assert_eq!(d[id_ns::NLBAF], 1);
    assert_eq!(d[id_ns::FLBAS], 1);
    let lbaf1 = u32::from_le_bytes(d[id_ns::LBAF0 + 4..id_ns::LBAF0 + 8].try_into().unwrap());
    assert_eq!(id_ns::LBAF_LBADS.get(lbaf1), 12);

    let (c, _) = id(&mut admin, cns::NAMESPACE, 4);
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_NAMESPACE));
    assert!(c.dnr);

    let (c, d) = id(&mut admin, cns::ACTIVE_NAMESPACES, 1);
    assert!(c.ok());
    assert_eq!(&d[..12], &[2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);

    let (c, _) = id(&mut admin, 0x55, 0);
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_FIELD));
}

#[test]
fn number_of_queues_is_granted_up_to_the_maximum() {
    let cfg = NvmeModelConfig {
        max_io_queues: 4,
        ..config()
    };
    let h = Host::new(cfg, RunMode::Inline);
    let mut admin = h.enable();
    let c = h.set_queues(&mut admin, 8, 2);
    assert!(c.ok());
    assert_eq!(c.dw0, 3 | 1 << 16, "4 SQs and 2 CQs, 0's based");
    let c = h.run(
        &mut admin,
        Cmd::new(admin::GET_FEATURES).dw(10, feature::NUMBER_OF_QUEUES),
    );
    assert_eq!(c.dw0, 3 | 1 << 16);
    // CQ 3 is beyond the 2 granted.
    let c = h.run(&mut admin, h.create_cq_cmd(3, 16));
    assert_eq!(
        c.status(),
        (sct::COMMAND_SPECIFIC, sc_command::INVALID_QUEUE_IDENTIFIER)
    );
    h.create_pair(&mut admin, 1, 16, 16);
    let c = h.set_queues(&mut admin, 1, 1);
    assert_eq!(
        c.status(),
        (sct::GENERIC, sc_generic::COMMAND_SEQUENCE_ERROR)
    );
}

#[test]
fn write_then_read_round_trip() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(16, 16);
    // 8 KiB from a page-aligned buffer (PRP1 + PRP2), at LBA 10.
    let data = pattern(1, 8192);
    h.mem.write_bytes(DATA_OFF, &data);
    let c = h.io(&mut q, io::WRITE, 10, 16, DATA_OFF, 8192);
    assert!(c.ok(), "{c:?}");
    let mut medium = vec![0u8; 8192];
    h.emu.read_backing(1, 10 * 512, &mut medium).unwrap();
    assert_eq!(medium, data);

    // Read it back into a buffer with a dword offset: three pages touched,
    // so a PRP list is needed.
    let off = DATA_OFF + 0x10_0000 + 0x204;
    let c = h.io(&mut q, io::READ, 10, 16, off, 8192);
    assert!(c.ok(), "{c:?}");
    let mut back = vec![0u8; 8192];
    h.mem.read_bytes(off, &mut back);
    assert_eq!(back, data);

    // Unwritten blocks read as zeros; flush of a RAM namespace succeeds.
    h.mem.fill(DATA_OFF, 512, 0x77);
    assert!(h.io(&mut q, io::READ, 1000, 1, DATA_OFF, 512).ok());
    assert_eq!(h.mem.read_u64(DATA_OFF), 0);
    assert!(h.run(&mut q, Cmd::new(io::FLUSH).nsid(1)).ok());
}

#[test]
fn lba_range_namespace_mdts_and_opcode_checks() {
    let h = Host::new(config(), RunMode::Inline);
    let (mut admin, mut q) = h.ready_io(16, 16);
    let blocks = (64u64 << 20) / 512;
    // The last block is fine, one more is out of range.
    assert!(h.io(&mut q, io::READ, blocks - 1, 1, DATA_OFF, 512).ok());
    let c = h.io(&mut q, io::READ, blocks - 1, 2, DATA_OFF, 1024);
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::LBA_OUT_OF_RANGE));
    assert!(c.dnr);
    let c = h.io(&mut q, io::WRITE, u64::MAX, 1, DATA_OFF, 512);
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::LBA_OUT_OF_RANGE));

    let c = h.run(&mut q, Cmd::rw(io::READ, 2, 0, 1).prp(h.iova(DATA_OFF), 0));
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_NAMESPACE));
    let c = h.run(&mut q, Cmd::new(io::FLUSH).nsid(0));
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_NAMESPACE));

    // MDTS 5: 128 KiB (256 blocks) is the largest transfer.
    assert!(h.io(&mut q, io::READ, 0, 256, DATA_OFF, 128 << 10).ok());
    let c = h.io(&mut q, io::READ, 0, 257, DATA_OFF, (128 << 10) + 512);
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_FIELD));

    // SGLs are not supported.
    let sgl = Cmd::rw(io::READ, 1, 0, 1)
        .prp(h.iova(DATA_OFF), 0)
        .dw(0, sqe::cdw0::PSDT.value(1));
    assert_eq!(
        h.run(&mut q, sgl).status(),
        (sct::GENERIC, sc_generic::INVALID_FIELD)
    );

    let c = h.run(&mut q, Cmd::new(0x7f).nsid(1));
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_OPCODE));
    let c = h.run(&mut admin, Cmd::new(0xc0));
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_OPCODE));
}

#[test]
fn queue_creation_and_deletion_checks() {
    let h = Host::new(config(), RunMode::Inline);
    let mut admin = h.enable();
    let st = |c: Cqe| c.status();
    let cs = |sc| (sct::COMMAND_SPECIFIC, sc);
    // QID 0 and a QID above the maximum (64).
    let qid0 = Cmd::new(admin::CREATE_IO_CQ)
        .prp(h.iova(QUEUES_OFF + 0x2000), 0)
        .dw(10, create_queue::QSIZE.value(15))
        .dw(11, 1);
    assert_eq!(
        st(h.run(&mut admin, qid0)),
        cs(sc_command::INVALID_QUEUE_IDENTIFIER)
    );
    let big = Cmd::new(admin::CREATE_IO_CQ)
        .prp(h.iova(QUEUES_OFF + 0x2000), 0)
        .dw(
            10,
            create_queue::QID.value(65) | create_queue::QSIZE.value(15),
        )
        .dw(11, 1);
    assert_eq!(
        st(h.run(&mut admin, big)),
        cs(sc_command::INVALID_QUEUE_IDENTIFIER)
    );
    assert!(h.run(&mut admin, h.create_cq_cmd(1, 16)).ok());
    // CQ 1 exists now: creating it again is an invalid QID.
    assert_eq!(
        st(h.run(&mut admin, h.create_cq_cmd(1, 16))),
        cs(sc_command::INVALID_QUEUE_IDENTIFIER)
    );
    // Sizes: 1 entry, and more than MQES + 1.
    assert_eq!(
        st(h.run(&mut admin, h.create_cq_cmd(2, 1))),
        cs(sc_command::INVALID_QUEUE_SIZE)
    );
    assert_eq!(
        st(h.run(&mut admin, h.create_cq_cmd(2, 1025))),
        cs(sc_command::INVALID_QUEUE_SIZE)
    );
    // Not physically contiguous.
    let pc0 = Cmd::new(admin::CREATE_IO_CQ)
        .prp(h.iova(QUEUES_OFF + 0x6000), 0)
        .dw(
            10,
            create_queue::QID.value(2) | create_queue::QSIZE.value(15),
        );
    assert_eq!(
        st(h.run(&mut admin, pc0)),
        (sct::GENERIC, sc_generic::INVALID_FIELD)
    );
    // Base not page aligned.
    let odd = Cmd::new(admin::CREATE_IO_CQ)
        .prp(h.iova(QUEUES_OFF + 0x6000) + 64, 0)
        .dw(
            10,
            create_queue::QID.value(2) | create_queue::QSIZE.value(15),
        )
        .dw(11, 1);
    assert_eq!(
        st(h.run(&mut admin, odd)),
        (sct::GENERIC, sc_generic::PRP_OFFSET_INVALID)
    );
    // An SQ on a CQ that does not exist, or on the admin CQ.
    assert_eq!(
        st(h.run(&mut admin, h.create_sq_cmd(1, 16, 5))),
        cs(sc_command::COMPLETION_QUEUE_INVALID)
    );
    assert_eq!(
        st(h.run(&mut admin, h.create_sq_cmd(1, 16, 0))),
        cs(sc_command::COMPLETION_QUEUE_INVALID)
    );
    assert!(h.run(&mut admin, h.create_sq_cmd(1, 16, 1)).ok());
    // CQ 1 has an SQ: it cannot go first.
    let del = |op, qid: u16| Cmd::new(op).dw(10, qid as u32);
    assert_eq!(
        st(h.run(&mut admin, del(admin::DELETE_IO_CQ, 1))),
        cs(sc_command::INVALID_QUEUE_DELETION)
    );
    assert_eq!(
        st(h.run(&mut admin, del(admin::DELETE_IO_SQ, 2))),
        cs(sc_command::INVALID_QUEUE_IDENTIFIER)
    );
    assert_eq!(
        st(h.run(&mut admin, del(admin::DELETE_IO_SQ, 0))),
        cs(sc_command::INVALID_QUEUE_IDENTIFIER)
    );
    assert!(h.run(&mut admin, del(admin::DELETE_IO_SQ, 1)).ok());
    assert!(h.run(&mut admin, del(admin::DELETE_IO_CQ, 1)).ok());
    assert_eq!(
        st(h.run(&mut admin, del(admin::DELETE_IO_CQ, 1))),
        cs(sc_command::INVALID_QUEUE_IDENTIFIER)
    );
    // The QID is free again.
    let mut q = h.create_pair(&mut admin, 1, 16, 16);
    assert!(h.run(&mut q, Cmd::new(io::FLUSH).nsid(1)).ok());

    // Entry sizes other than 64/16 bytes are refused at creation.
    h.bar.write32(reg::CC, reg::cc::EN.bit());
    assert_eq!(
        st(h.run(&mut admin, h.create_cq_cmd(2, 16))),
        (sct::GENERIC, sc_generic::INVALID_FIELD)
    );
}

#[test]
fn prp_offset_rules() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(16, 16);
    let prp_invalid = (sct::GENERIC, sc_generic::PRP_OFFSET_INVALID);
    h.trace_from_here();

    // PRP1 not dword aligned.
    let c = h.run(
        &mut q,
        Cmd::rw(io::READ, 1, 0, 1).prp(h.iova(DATA_OFF) + 2, 0),
    );
    assert_eq!(c.status(), prp_invalid);
    assert!(c.dnr);
    // 8 KiB: PRP2 is the second page and must have offset 0.
    let c = h.run(
        &mut q,
        Cmd::rw(io::READ, 1, 0, 16).prp(h.iova(DATA_OFF), h.iova(DATA_OFF + PAGE) + 0x10),
    );
    assert_eq!(c.status(), prp_invalid);
    // A transfer that ends in PRP1's page ignores PRP2, however odd.
    let c = h.run(
        &mut q,
        Cmd::rw(io::READ, 1, 0, 8).prp(h.iova(DATA_OFF), 0xdead_beef_0003),
    );
    assert!(c.ok());
    // 16 KiB through a list whose second entry has an offset.
    for (i, off) in [PAGE, 2 * PAGE + 0x200, 3 * PAGE].iter().enumerate() {
        h.mem.write_u64(LISTS_OFF + i * 8, h.iova(DATA_OFF + off));
    }
    let c = h.run(
        &mut q,
        Cmd::rw(io::READ, 1, 0, 32).prp(h.iova(DATA_OFF), h.iova(LISTS_OFF)),
    );
    assert_eq!(c.status(), prp_invalid);
    // A list pointer that is not dword aligned.
    let c = h.run(
        &mut q,
        Cmd::rw(io::READ, 1, 0, 32).prp(h.iova(DATA_OFF), h.iova(LISTS_OFF) + 2),
    );
    assert_eq!(c.status(), prp_invalid);
    // None of the failed commands moved data: the only data DMA write is
    // the 4 KiB read (completions are write-backs, not data), and each of
    // the five commands was completed.
    let ev = events(&h);
    let writes: Vec<u32> = ev
        .iter()
        .filter(|e| e.kind == Kind::DmaWrite)
        .map(|e| e.len)
        .collect();
    assert_eq!(writes, vec![4096]);
    assert_eq!(ev.iter().filter(|e| e.kind == Kind::WriteBack).count(), 5);
}

#[test]
fn prp_lists_chain_across_list_pages() {
    let mut ns = NamespaceConfig::ram(64 << 20);
    ns.lba_size = 4096;
    let cfg = NvmeModelConfig {
        namespaces: vec![ns],
        mdts: 0,
        ..NvmeModelConfig::default()
    };
    let h = Host::new(cfg, RunMode::Inline);
    let (_admin, mut q) = h.ready_io(16, 16);
    // 4 MiB = 1024 pages, scattered in reverse order: transfer page i is
    // buffer page 1023 - i. PRP1 takes page 0; the first list starts 10
    // entries before the end of its page (9 data entries + chain), the
    // second is a full page (511 + chain), the third holds the last 503.
    const PAGES: usize = 1024;
    let page_off = |i: usize| DATA_OFF + (PAGES - 1 - i) * PAGE;
    let data = pattern(7, PAGES * PAGE);
    for i in 0..PAGES {
        h.mem
            .write_bytes(page_off(i), &data[i * PAGE..(i + 1) * PAGE]);
    }
    let list1 = LISTS_OFF + PAGE - 10 * 8;
    let (list2, list3) = (LISTS_OFF + PAGE, LISTS_OFF + 2 * PAGE);
    let mut next = 1;
    for k in 0..9 {
        h.mem.write_u64(list1 + k * 8, h.iova(page_off(next)));
        next += 1;
    }
    h.mem.write_u64(list1 + 9 * 8, h.iova(list2));
    for k in 0..511 {
        h.mem.write_u64(list2 + k * 8, h.iova(page_off(next)));
        next += 1;
    }
    h.mem.write_u64(list2 + 511 * 8, h.iova(list3));
    for k in 0..PAGES - next {
        h.mem.write_u64(list3 + k * 8, h.iova(page_off(next + k)));
    }
    let write = Cmd::rw(io::WRITE, 1, 100, PAGES as u32).prp(h.iova(page_off(0)), h.iova(list1));
    h.trace_from_here();
    let c = h.run(&mut q, write);
    assert!(c.ok(), "{c:?}");
    // Each list page read is one event: its IOVA, the entries read (the
    // chain pointer included) and the first eight of them.
    let ev = events(&h);
    let lists: Vec<(u64, u32, Vec<u8>)> = ev
        .iter()
        .filter(|e| e.kind == Kind::PrpList)
        .map(|e| (e.addr, e.len, e.raw.as_slice().to_vec()))
        .collect();
    let first8 = |off: usize| {
        let mut b = vec![0u8; 64];
        h.mem.read_bytes(off, &mut b);
        b
    };
    assert_eq!(
        lists,
        vec![
            (h.iova(list1), 10, first8(list1)),
            (h.iova(list2), 512, first8(list2)),
            (h.iova(list3), 503, first8(list3)),
        ]
    );
    // The pages run backwards in IOVA space: no two are one run, so each
    // is one DMA read, in transfer order.
    let reads: Vec<(u64, u32)> = ev
        .iter()
        .filter(|e| e.kind == Kind::DmaRead)
        .map(|e| (e.addr, e.len))
        .collect();
    assert_eq!(
        reads,
        (0..PAGES)
            .map(|i| (h.iova(page_off(i)), PAGE as u32))
            .collect::<Vec<_>>()
    );
    let mut medium = vec![0u8; PAGES * PAGE];
    h.emu.read_backing(1, 100 * 4096, &mut medium).unwrap();
    assert!(medium == data, "the medium holds the pages in list order");

    // Read it back through the same lists into the same scattered pages.
    for i in 0..PAGES {
        h.mem.fill(page_off(i), PAGE, 0);
    }
    let read = Cmd::rw(io::READ, 1, 100, PAGES as u32).prp(h.iova(page_off(0)), h.iova(list1));
    assert!(h.run(&mut q, read).ok());
    let mut page = vec![0u8; PAGE];
    for i in 0..PAGES {
        h.mem.read_bytes(page_off(i), &mut page);
        assert!(page == data[i * PAGE..(i + 1) * PAGE], "page {i}");
    }

    // A chain pointer with an offset is PRP Offset Invalid.
    h.mem.write_u64(list2 + 511 * 8, h.iova(list3) + 8);
    let read = Cmd::rw(io::READ, 1, 100, PAGES as u32).prp(h.iova(page_off(0)), h.iova(list1));
    assert_eq!(
        h.run(&mut q, read).status(),
        (sct::GENERIC, sc_generic::PRP_OFFSET_INVALID)
    );
}

#[test]
fn neighbouring_pages_are_one_dma_run() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(16, 16);
    // 20 KiB from 64 bytes into a page: PRP1's partial page, then five
    // listed pages, all neighbours in IOVA space: one run each way.
    let (off, len) = (DATA_OFF + 64, 20 << 10);
    h.mem.write_bytes(off, &pattern(3, len));
    h.trace_from_here();
    assert!(h.io(&mut q, io::WRITE, 8, 40, off, len).ok());
    let ev = events(&h);
    let kinds: Vec<Kind> = ev.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::RegWrite,
            Kind::Fetch,
            Kind::PrpList,
            Kind::DmaRead,
            Kind::WriteBack,
            Kind::RegWrite
        ]
    );
    assert_eq!((ev[2].addr, ev[2].len), (h.iova(LISTS_OFF), 5));
    assert_eq!((ev[3].addr, ev[3].len), (h.iova(off), len as u32));
    h.mem.fill(off, len, 0);
    assert!(h.io(&mut q, io::READ, 8, 40, off, len).ok());
    let runs: Vec<(u64, u32)> = events(&h)
        .iter()
        .filter(|e| matches!(e.kind, Kind::DmaRead | Kind::DmaWrite))
        .map(|e| (e.addr, e.len))
        .collect();
    assert_eq!(runs, [(h.iova(off), len as u32)]);
    let mut back = vec![0u8; len];
    h.mem.read_bytes(off, &mut back);
    assert!(back == pattern(3, len));
}

#[test]
fn iommu_fault_gives_data_transfer_error_and_the_controller_goes_on() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(16, 16);
    h.trace_from_here();
    // Just past the end of the region: the guard gap, never mapped.
    let unmapped = h.mem.iova() + h.mem.len() as u64;
    let c = h.run(&mut q, Cmd::rw(io::READ, 1, 0, 8).prp(unmapped, 0));
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::DATA_TRANSFER_ERROR));
    assert!(!c.dnr);
    let ev = events(&h);
    assert!(ev.iter().any(|e| e.kind == Kind::Fault
        && e.addr == unmapped
        && e.value == 1
        && e.len == 4096
        && e.agent == Agent::Device(Engine::Controller)));
    assert!(
        !ev.iter().any(|e| e.kind == Kind::DmaWrite),
        "a stopped DMA is a fault, not a DMA"
    );
    // A write whose data cannot be read, and a PRP list that cannot be read.
    let c = h.run(&mut q, Cmd::rw(io::WRITE, 1, 0, 8).prp(unmapped, 0));
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::DATA_TRANSFER_ERROR));
    let c = h.run(
        &mut q,
        Cmd::rw(io::READ, 1, 0, 32).prp(h.iova(DATA_OFF), unmapped),
    );
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::DATA_TRANSFER_ERROR));
    assert!(!h.fatal());
    assert!(h.io(&mut q, io::READ, 0, 8, DATA_OFF, 4096).ok());
}

#[test]
fn bus_mastering_off_makes_the_controller_fatal() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(16, 16);
    h.emu.pci().config_write(0x04, 0);
    h.submit(&mut q, Cmd::new(io::FLUSH).nsid(1));
    h.ring(&q);
    assert!(
        h.fatal(),
        "a command that cannot be fetched is a fatal error"
    );
    assert!(h.peek(&q).is_none());
}

#[test]
fn full_completion_queue_holds_back_fetching_and_phase_flips_at_wrap() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 4);
    h.trace_from_here();
    let cids: Vec<u16> = (0..6)
        .map(|_| h.submit(&mut q, Cmd::new(io::FLUSH).nsid(1)))
        .collect();
    h.ring(&q);
    // A 4-entry CQ holds 3 unconsumed entries: the 4th slot stays untouched.
    let first: Vec<Cqe> = (0..3)
        .map(|_| h.poll(&mut q).expect("3 completions"))
        .collect();
    assert_eq!(first.iter().map(|c| c.cid).collect::<Vec<_>>(), cids[..3]);
    assert_eq!(first.iter().map(|c| c.sqhd).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(h.peek(&q).is_none());
    assert_eq!(h.mem.read_u32(q.cq + 3 * 16 + cqe::DW3), 0);
    let fetched = events(&h)
        .iter()
        .filter(|e| e.kind == Kind::Fetch && e.queue == Ring::Sq(1))
        .count();
    assert_eq!(fetched, 3, "commands stay in the SQ while the CQ is full");

    // Releasing the entries lets the rest through: slot 3 with phase 1,
    // then slots 0 and 1 with phase 0.
    h.release(&q);
    let rest: Vec<Cqe> = (0..3).map(|_| h.poll(&mut q).expect("3 more")).collect();
    assert_eq!(rest.iter().map(|c| c.cid).collect::<Vec<_>>(), cids[3..]);
    assert_eq!(rest.iter().map(|c| c.sqhd).collect::<Vec<_>>(), [4, 5, 6]);
    assert!(!q.phase, "the host wrapped too");
    let p = |slot: usize| cqe::dw3::P.get(h.mem.read_u32(q.cq + slot * 16 + cqe::DW3));
    assert_eq!([p(0), p(1), p(2), p(3)], [0, 0, 1, 1]);
    h.release(&q);

    // Many more wraps: every completion arrives once, in order.
    for round in 0..20 {
        let cid = h.submit(&mut q, Cmd::new(io::FLUSH).nsid(1));
        h.ring(&q);
        let c = h.poll(&mut q).unwrap_or_else(|| panic!("round {round}"));
        assert_eq!(c.cid, cid);
        h.release(&q);
    }
}

#[test]
fn invalid_doorbells_are_ignored() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 8);
    h.trace_from_here();
    h.bar.write32(reg::sq_tail_doorbell(5, 0), 1);
    h.submit(&mut q, Cmd::new(io::FLUSH).nsid(1));
    h.bar.write32(reg::sq_tail_doorbell(1, 0), 8); // == queue size
    assert!(h.peek(&q).is_none());
    let notes = events(&h)
        .into_iter()
        .filter(|e| note(e).is_some_and(|n| n.contains("ignored")))
        .count();
    assert_eq!(notes, 2);
    h.ring(&q);
    assert!(h.wait(&mut q).ok());
}

#[test]
fn injected_fatal_status_stops_everything() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 8);
    h.emu.inject(Fault::FatalStatus);
    assert!(h.fatal());
    h.submit(&mut q, Cmd::new(io::FLUSH).nsid(1));
    h.ring(&q);
    assert!(h.peek(&q).is_none());
    // A reset does not help: RDY stays as it was, CFS stays set.
    h.bar.write32(reg::CC, 0);
    h.bar.write32(reg::CC, Host::cc_enabled());
    assert!(h.fatal());
    h.emu.clear_faults();
    assert!(!h.fatal());
    h.bar.write32(reg::CC, 0);
    assert_eq!(h.csts(), 0);
    h.enable();
}

#[test]
fn injected_identify_and_cap_lies() {
    let h = Host::new(config(), RunMode::Inline);
    let bar_size = h.bar.bar_size();
    // CAP.DSTRD lies; BAR0 keeps its size.
    h.emu.inject(Fault::CapDstrd(15));
    assert_eq!(reg::cap::DSTRD.get(h.bar.read64(reg::CAP)), 15);
    assert_eq!(reg::cap::MQES.get(h.bar.read64(reg::CAP)), 1023);
    assert_eq!((h.bar.bar_size(), bar_size), (0x2000, 0x2000));
    let mut admin = h.enable();
    let id = |admin: &mut Queue, cns: u32, nsid: u32| {
        h.mem.fill(ID_OFF, PAGE, 0xff);
        let c = h.run(
            admin,
            Cmd::new(admin::IDENTIFY)
                .nsid(nsid)
                .prp(h.iova(ID_OFF), 0)
                .dw(10, cns),
        );
        let mut d = vec![0u8; PAGE];
        h.mem.read_bytes(ID_OFF, &mut d);
        (c, d)
    };
    let u32_at = |d: &[u8], at: usize| u32::from_le_bytes(d[at..at + 4].try_into().unwrap());
    let u64_at = |d: &[u8], at: usize| u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
    // NN and full active namespace lists up to it; phantom NSIDs identify
    // as namespace 1.
    h.emu.inject(Fault::NamespaceCount(5000));
    let (c, d) = id(&mut admin, cns::CONTROLLER, 0);
    assert!(c.ok());
    assert_eq!(u32_at(&d, id_ctrl::NN), 5000);
    let (c, d) = id(&mut admin, cns::ACTIVE_NAMESPACES, 2000);
    assert!(c.ok());
    assert_eq!((u32_at(&d, 0), u32_at(&d, 4 * 1023)), (2001, 3024));
    let (c, d) = id(&mut admin, cns::NAMESPACE, 4999);
    assert!(c.ok());
    assert_eq!(u64_at(&d, id_ns::NSZE), (64 << 20) / 512);
    let (c, _) = id(&mut admin, cns::NAMESPACE, 5001);
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::INVALID_NAMESPACE));
    // Sizes of one namespace.
    h.emu.inject(Fault::NamespaceSizes {
        nsid: 1,
        nsze: 10,
        ncap: 11,
        nuse: 12,
    });
    let (_, d) = id(&mut admin, cns::NAMESPACE, 1);
    let sizes = [id_ns::NSZE, id_ns::NCAP, id_ns::NUSE].map(|at| u64_at(&d, at));
    assert_eq!(sizes, [10, 11, 12]);
    // Cleared: the truth again.
    h.emu.clear_faults();
    assert_eq!(reg::cap::DSTRD.get(h.bar.read64(reg::CAP)), 0);
    let (_, d) = id(&mut admin, cns::CONTROLLER, 0);
    assert_eq!(u32_at(&d, id_ctrl::NN), 1);
    let (_, d) = id(&mut admin, cns::NAMESPACE, 1);
    assert_eq!(u64_at(&d, id_ns::NUSE), (64 << 20) / 512);
}

#[test]
fn stop_responding_completes_nothing_but_registers_answer() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 8);
    h.emu.inject(Fault::StopResponding);
    h.submit(&mut q, Cmd::new(io::FLUSH).nsid(1));
    h.ring(&q);
    assert!(h.peek(&q).is_none());
    assert!(h.ready() && !h.fatal());
    h.bar.write32(reg::CC, 0);
    assert!(h.ready(), "a hung controller does not answer CC.EN either");
    assert_eq!(
        h.bar.read32(reg::CC),
        Host::cc_enabled(),
        "the CC write was ignored"
    );
    h.emu.clear_faults();
    h.ring(&q);
    assert!(h.wait(&mut q).ok(), "the command was still in the SQ");
}

#[test]
fn injected_io_errors_fail_the_next_commands_touching_the_lba() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 8);
    h.emu.inject(Fault::IoError {
        nsid: 1,
        lba: 5,
        sct: sct::MEDIA,
        sc: sc_media::UNRECOVERED_READ_ERROR,
        count: 2,
    });
    let media = (sct::MEDIA, sc_media::UNRECOVERED_READ_ERROR);
    assert!(
        h.io(&mut q, io::READ, 6, 1, DATA_OFF, 512).ok(),
        "LBA 5 not touched"
    );
    let c = h.io(&mut q, io::READ, 0, 8, DATA_OFF, 4096);
    assert_eq!(c.status(), media);
    assert!(!c.dnr);
    assert_eq!(h.io(&mut q, io::WRITE, 5, 1, DATA_OFF, 512).status(), media);
    assert!(
        h.io(&mut q, io::READ, 0, 8, DATA_OFF, 4096).ok(),
        "count used up"
    );
}

#[test]
fn get_log_page_returns_zeros() {
    let h = Host::new(config(), RunMode::Inline);
    let mut admin = h.enable();
    h.mem.fill(ID_OFF, PAGE, 0xaa);
    let numd = get_log_page::NUMDL.value(512 / 4 - 1);
    let c = h.run(
        &mut admin,
        Cmd::new(admin::GET_LOG_PAGE).prp(h.iova(ID_OFF), 0).dw(
            10,
            get_log_page::LID.value(get_log_page::SMART_HEALTH) | numd,
        ),
    );
    assert!(c.ok());
    assert_eq!(h.mem.read_u64(ID_OFF), 0);
    assert_eq!(h.mem.read_u64(ID_OFF + 504), 0);
    assert_eq!(
        h.mem.read_u8(ID_OFF + 512),
        0xaa,
        "only 512 bytes asked for"
    );
    let c = h.run(
        &mut admin,
        Cmd::new(admin::GET_LOG_PAGE)
            .prp(h.iova(ID_OFF), 0)
            .dw(10, get_log_page::LID.value(0x7f) | numd),
    );
    assert_eq!(
        c.status(),
        (sct::COMMAND_SPECIFIC, sc_command::INVALID_LOG_PAGE)
    );
}

#[test]
fn reset_deletes_io_queues() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 8);
    h.bar.write32(reg::CC, 0);
    let mut admin = h.enable();
    h.submit(&mut q, Cmd::new(io::FLUSH).nsid(1));
    h.ring(&q);
    assert!(h.peek(&q).is_none(), "I/O SQ 1 no longer exists");
    let mut q = h.create_pair(&mut admin, 1, 8, 8);
    assert!(h.run(&mut q, Cmd::new(io::FLUSH).nsid(1)).ok());
}

#[test]
fn file_backing_is_created_extended_and_reopened_by_size() {
    let dir = std::env::temp_dir().join(format!("emu-nvme-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("disk.img");
    let _ = std::fs::remove_file(&path);
    let cfg = |size| NvmeModelConfig {
        namespaces: vec![NamespaceConfig {
            size_bytes: size,
            lba_size: 512,
            backing: Backing::File(path.clone()),
        }],
        ..NvmeModelConfig::default()
    };
    {
        let h = Host::new(cfg(1 << 20), RunMode::Inline);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        let (mut admin, mut q) = h.ready_io(8, 8);
        let data = pattern(3, 4096);
        h.mem.write_bytes(DATA_OFF, &data);
        assert!(h.io(&mut q, io::WRITE, 2, 8, DATA_OFF, 4096).ok());
        assert!(h.run(&mut q, Cmd::new(io::FLUSH).nsid(0xffff_ffff)).ok());
        let file = std::fs::read(&path).unwrap();
        assert_eq!(&file[1024..1024 + 4096], &data[..]);
        // A file namespace reports a volatile write cache.
        let c = h.run(
            &mut admin,
            Cmd::new(admin::IDENTIFY)
                .prp(h.iova(ID_OFF), 0)
                .dw(10, cns::CONTROLLER),
        );
        assert!(c.ok());
        assert_eq!(h.mem.read_u8(ID_OFF + id_ctrl::VWC), 1);
    }
    // Size 0: the file's size; the data is still there.
    let h = Host::new(cfg(0), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 8);
    assert!(h.io(&mut q, io::READ, 2, 8, DATA_OFF + PAGE, 4096).ok());
    let mut back = vec![0u8; 4096];
    h.mem.read_bytes(DATA_OFF + PAGE, &mut back);
    assert_eq!(back, pattern(3, 4096));
    let c = h.io(&mut q, io::READ, 2048, 1, DATA_OFF, 512);
    assert_eq!(c.status(), (sct::GENERIC, sc_generic::LBA_OUT_OF_RANGE));
    drop(h);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configuration_errors_name_the_cause() {
    let bad_lba = NvmeModelConfig {
        namespaces: vec![NamespaceConfig {
            lba_size: 1000,
            ..NamespaceConfig::ram(1 << 20)
        }],
        ..NvmeModelConfig::default()
    };
    let e = EmuNvme::new(bad_lba, RunMode::Inline).err().unwrap();
    assert!(matches!(
        e,
        ModelError::InvalidLbaSize {
            nsid: 1,
            lba_size: 1000
        }
    ));
    assert!(e.to_string().contains("lba size must be 512 or 4096"));

    let bad_size = NvmeModelConfig {
        namespaces: vec![NamespaceConfig::ram(1000)],
        ..NvmeModelConfig::default()
    };
    let e = EmuNvme::new(bad_size, RunMode::Inline).err().unwrap();
    assert!(e
        .to_string()
        .contains("size 1000 is not a positive multiple of the LBA size 512"));

    let bad_file = NvmeModelConfig {
        namespaces: vec![NamespaceConfig {
            size_bytes: 0,
            lba_size: 512,
            backing: Backing::File("/nonexistent-dir/disk.img".into()),
        }],
        ..NvmeModelConfig::default()
    };
    let e = EmuNvme::new(bad_file, RunMode::Inline).err().unwrap();
    assert!(e
        .to_string()
        .contains("cannot use backing file /nonexistent-dir/disk.img"));

    let long_serial = NvmeModelConfig {
        serial: "x".repeat(21),
        ..NvmeModelConfig::default()
    };
    assert!(matches!(
        EmuNvme::new(long_serial, RunMode::Inline),
        Err(ModelError::InvalidConfig(_))
    ));

    let h = EmuNvme::new(config(), RunMode::Inline).unwrap();
    let mut b = [0u8; 8];
    assert!(matches!(
        h.read_backing(2, 0, &mut b),
        Err(ModelError::NoSuchNamespace(2))
    ));
    assert!(matches!(
        h.read_backing(1, (64 << 20) - 4, &mut b),
        Err(ModelError::OutOfRange { .. })
    ));
}

#[test]
fn ram_namespaces_are_allocated_lazily() {
    // 256 GiB is far more than this machine has: it only works if nothing
    // is allocated until written.
    let cfg = NvmeModelConfig {
        namespaces: vec![NamespaceConfig::ram(256 << 30)],
        ..NvmeModelConfig::default()
    };
    let h = Host::new(cfg, RunMode::Inline);
    h.emu
        .write_backing(1, (256 << 30) - 8, b"lastbyte")
        .unwrap();
    let (_admin, mut q) = h.ready_io(8, 8);
    let lba = (256u64 << 30) / 512 - 1;
    assert!(h.io(&mut q, io::READ, lba, 1, DATA_OFF, 512).ok());
    let mut tail = [0u8; 8];
    h.mem.read_bytes(DATA_OFF + 504, &mut tail);
    assert_eq!(&tail, b"lastbyte");
}

#[test]
fn trace_records_the_command_path() {
    let h = Host::new(config(), RunMode::Inline);
    let (_admin, mut q) = h.ready_io(8, 8);
    h.trace_from_here();
    let cmd = Cmd::rw(io::READ, 1, 0, 8).prp(h.iova(DATA_OFF), 0);
    let cid = h.submit(&mut q, cmd);
    h.ring(&q);
    let c = h.wait(&mut q);
    let sq_iova = h.iova(q.sq);
    let cq_iova = h.iova(q.cq);
    let mut cqe_bytes = [0u8; 16];
    h.mem.read_bytes(q.cq, &mut cqe_bytes);
    assert_eq!(
        cqe::dw3::CID.get(u32::from_le_bytes(cqe_bytes[12..].try_into().unwrap())),
        u32::from(cid)
    );
    assert!(c.ok());
    let device = |kind| Event::device(kind, Engine::Controller);
    // The doorbell (recorded by the BAR, before the model saw it), then
    // what the inline controller did in answer: the fetch with the entry's
    // bytes (not also a DMA read), the data, the completion with its bytes
    // (not also DMA writes).
    assert_eq!(
        events(&h).iter().map(untimed).collect::<Vec<_>>(),
        vec![
            Event {
                agent: Agent::Driver(drivers::trace::thread_number()),
                ..Event::new(Kind::RegWrite)
                    .addr(reg::sq_tail_doorbell(1, 0) as u64)
                    .len(4)
                    .value(1)
            },
            device(Kind::Fetch)
                .queue(Ring::Sq(1))
                .index(0)
                .addr(sq_iova)
                .len(64)
                .bytes(&cmd.bytes(cid)),
            device(Kind::DmaWrite).addr(h.iova(DATA_OFF)).len(4096),
            device(Kind::WriteBack)
                .queue(Ring::Cq(1))
                .index(0)
                .addr(cq_iova)
                .len(16)
                .bytes(&cqe_bytes),
        ]
    );
}

#[test]
fn threaded_model_processes_commands_on_its_own_thread() {
    let h = Host::new(config(), RunMode::Threaded);
    assert!(h.emu.is_threaded());
    let (_admin, mut q) = h.ready_io(64, 64);
    // 256 writes of 4 KiB with up to 32 in flight, then read them all back.
    let total = 256usize;
    for (opcode, base) in [(io::WRITE, DATA_OFF), (io::READ, DATA_OFF + (4 << 20))] {
        if opcode == io::WRITE {
            h.mem.write_bytes(DATA_OFF, &pattern(9, total * PAGE));
        }
        let (mut sent, mut done) = (0, 0);
        while done < total {
            while sent < total && sent - done < 32 {
                let off = base + sent * PAGE;
                let cmd = Cmd::rw(opcode, 1, sent as u64 * 8, 8).prp(h.iova(off), 0);
                h.submit(&mut q, cmd);
                sent += 1;
            }
            h.ring(&q);
            let c = h.wait(&mut q);
            assert!(c.ok(), "{c:?}");
            done += 1;
            while let Some(c) = h.poll(&mut q) {
                assert!(c.ok());
                done += 1;
            }
            h.release(&q);
        }
    }
    let mut back = vec![0u8; total * PAGE];
    h.mem.read_bytes(DATA_OFF + (4 << 20), &mut back);
    assert!(back == pattern(9, total * PAGE));
}

/// Two host threads, each with its own queue pair, ring their doorbells at
/// the same time; in both run modes every command completes once on the
/// right queue and the data of both is intact.
#[test]
fn concurrent_queues_in_both_modes() {
    for mode in [RunMode::Inline, RunMode::Threaded] {
        let h = Host::new(config(), mode);
        let mut admin = h.enable();
        let queues = [
            h.create_pair(&mut admin, 1, 32, 32),
            h.create_pair(&mut admin, 2, 32, 32),
        ];
        std::thread::scope(|s| {
            for (t, mut q) in queues.into_iter().enumerate() {
                let h = &h;
                s.spawn(move || {
                    let base = DATA_OFF + t * (8 << 20);
                    let lba0 = t as u64 * 100_000;
                    for i in 0..300u64 {
                        let data = pattern(t as u64 * 1000 + i, 4096);
                        h.mem.write_bytes(base, &data);
                        let c = h.io(&mut q, io::WRITE, lba0 + i * 8, 8, base, 4096);
                        assert!(c.ok(), "{mode:?} thread {t}: {c:?}");
                        let c = h.io(&mut q, io::READ, lba0 + i * 8, 8, base + PAGE, 4096);
                        assert!(c.ok(), "{mode:?} thread {t}: {c:?}");
                        let mut back = vec![0u8; 4096];
                        h.mem.read_bytes(base + PAGE, &mut back);
                        assert!(back == data, "{mode:?} thread {t} command {i}");
                    }
                });
            }
        });
    }
}

/// The driver's queue pairs over a model's BAR are `Send` and its controller
/// can be shared between threads (one queue pair per worker thread).
#[test]
fn driver_queue_pairs_over_the_model_are_send_and_the_controller_is_shared() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    struct Dummy;
    impl crate::MmioDevice for Dummy {
        fn bar_size(&self) -> usize {
            0x2000
        }
        fn mmio_read(&self, _: usize, _: u8) -> u64 {
            0
        }
        fn mmio_write(&self, _: usize, _: u8, _: u64) {}
    }
    send::<drivers::nvme::IoQueuePair<crate::EmuBar<Dummy>>>();
    send_sync::<drivers::nvme::NvmeController<crate::EmuBar<Dummy>>>();
}
