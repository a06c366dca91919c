//! The Chrome trace (`.json`) and pcapng (`.pcapng`) trace files: their
//! structure, their round trip, and Wireshark's reading of the pcapng with
//! `tools/dmatrace.lua`.
//!
//! The trace is built by hand, event by event, with entries and descriptors
//! assembled from the `spec` field constants: one NVMe Read through a PRP
//! list and one failing Write in flight at once, then an 82599 TX frame
//! (context + two data descriptors) and one RX frame.
#![forbid(unsafe_code)]

mod common;

use apps::trace::{chrome, pcapng, TraceFile};
use drivers::trace::{Agent, DeviceInfo, DeviceKind, Engine, Event, Kind, Queue, Raw};
use serde_json::Value;
use spec::nic::adv_desc as adv;
use spec::nvme;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

struct Builder {
    events: Vec<Event>,
}

impl Builder {
    fn add(&mut self, t_ns: u64, dev: u16, agent: Agent, e: Event) {
        let seq = self.events.len() as u64;
        self.events.push(Event {
            seq,
            t_ns,
            dev,
            agent,
            ..e
        });
    }
}

const DRIVER: Agent = Agent::Driver(0);
const CTRL: Agent = Agent::Device(Engine::Controller);

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// An NVM command's SQE: opcode, CID, NSID 1, PRPs, SLBA and NLB (0-based).
fn sqe(opc: u8, cid: u16, prp1: u64, prp2: u64, slba: u64, nlb: u32) -> [u8; 64] {
    use nvme::sqe::{cdw0, rw};
    let mut b = [0u8; 64];
    put32(
        &mut b,
        nvme::sqe::CDW0,
        cdw0::OPC.value(opc as u32) | cdw0::CID.value(cid as u32),
    );
    put32(&mut b, nvme::sqe::NSID, 1);
    put64(&mut b, nvme::sqe::PRP1, prp1);
    put64(&mut b, nvme::sqe::PRP2, prp2);
    put64(&mut b, nvme::sqe::CDW10, slba);
    put32(&mut b, nvme::sqe::CDW12, rw::NLB.value(nlb));
    b
}

/// A CQE of queue 1 with phase 1 and status code `sc` (generic).
fn cqe(cid: u16, sqhd: u16, sc: u16) -> [u8; 16] {
    use nvme::cqe::status;
    let mut b = [0u8; 16];
    b[nvme::cqe::SQHD..][..2].copy_from_slice(&sqhd.to_le_bytes());
    b[nvme::cqe::SQID..][..2].copy_from_slice(&1u16.to_le_bytes());
    b[nvme::cqe::CID..][..2].copy_from_slice(&cid.to_le_bytes());
    let st = status::P.bit() | status::SC.value(sc);
    b[nvme::cqe::STATUS..][..2].copy_from_slice(&st.to_le_bytes());
    b
}

fn tx_data(addr: u64, len: u32, paylen: u32, last: bool) -> [u8; 16] {
    use adv::tx::{cmd_type_len as c, olinfo};
    let mut b = [0u8; 16];
    put64(&mut b, adv::tx::ADDR, addr);
    let mut cmd =
        c::DTALEN.value(len) | c::DTYP.value(c::DTYP_DATA) | c::IFCS.bit() | c::DEXT.bit();
    if last {
        cmd |= c::EOP.bit() | c::RS.bit();
    }
    put32(&mut b, adv::tx::CMD_TYPE_LEN, cmd);
    put32(&mut b, adv::tx::OLINFO_STATUS, olinfo::PAYLEN.value(paylen));
    b
}

fn tx_context() -> [u8; 16] {
    use adv::tx::ctx;
    let mut b = [0u8; 16];
    put32(
        &mut b,
        ctx::VLAN_MACIP_LENS,
        ctx::IPLEN.value(20) | ctx::MACLEN.value(14),
    );
    let t = ctx::TUCMD_IPV4.bit()
        | ctx::TUCMD_L4T.value(ctx::L4T_UDP)
        | ctx::DTYP.value(adv::tx::cmd_type_len::DTYP_CONTEXT)
        | ctx::DEXT.bit();
    put32(&mut b, ctx::TYPE_TUCMD_MLHL, t);
    b
}

/// A 102-byte IPv4/UDP frame's first 64 bytes.
fn frame() -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45, 0, 0, 88, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50, 0, 68, 0, 0]);
    f.resize(64, 0xab);
    f
}

fn reg_offset(kind: DeviceKind, name: &str) -> u64 {
    (0..0x20000u64)
        .step_by(4)
        .find(|&o| kind.reg_name(o).as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no register {name}"))
}

fn sample() -> TraceFile {
    let nvme_kind = DeviceKind::Nvme { dstrd: 0 };
    let mut b = Builder { events: Vec::new() };
    let reg = |kind: Kind, off: usize, v: u64| Event::new(kind).addr(off as u64).len(4).value(v);
    // NVMe, device 0.
    b.add(
        1000,
        0,
        DRIVER,
        reg(Kind::RegWrite, nvme::reg::CC, 0x46_0001),
    );
    b.add(1100, 0, DRIVER, reg(Kind::RegRead, nvme::reg::CSTS, 1));
    let read = sqe(nvme::io::READ, 3, 0x1_0080_5040, 0x1_0080_2000, 0, 39);
    let write = sqe(nvme::io::WRITE, 4, 0x1_0090_0000, 0, 0x1_0000_0010, 7);
    let sq = |k: Kind, i: u32, b: &[u8]| {
        Event::new(k)
            .queue(Queue::Sq(1))
            .index(i)
            .addr(0x1_0040_0000 + 64 * i as u64)
            .bytes(b)
    };
    b.add(2000, 0, DRIVER, sq(Kind::DescWrite, 0, &read));
    b.add(2100, 0, DRIVER, sq(Kind::DescWrite, 1, &write));
    b.add(2200, 0, DRIVER, reg(Kind::RegWrite, 0x1008, 2));
    b.add(2300, 0, CTRL, sq(Kind::Fetch, 0, &read));
    let list: Vec<u64> = (0..5).map(|i| 0x1_0080_6000 + 0x1000 * i).collect();
    b.add(
        2400,
        0,
        CTRL,
        Event::new(Kind::PrpList)
            .addr(0x1_0080_2000)
            .len(5)
            .raw(Raw::from_u64s(&list)),
    );
    b.add(
        2500,
        0,
        CTRL,
        Event::new(Kind::DmaWrite).addr(0x1_0080_5040).len(4032),
    );
    b.add(
        2600,
        0,
        CTRL,
        Event::new(Kind::DmaWrite).addr(0x1_0080_6000).len(16384),
    );
    let cq = |k: Kind, i: u32, b: &[u8]| {
        Event::new(k)
            .queue(Queue::Cq(1))
            .index(i)
            .addr(0x1_0050_0000 + 16 * i as u64)
            .bytes(b)
    };
    let done_read = cqe(3, 1, 0);
    let done_write = cqe(4, 2, 0x80); // LBA Out of Range
    b.add(2700, 0, CTRL, cq(Kind::WriteBack, 0, &done_read));
    b.add(2800, 0, CTRL, sq(Kind::Fetch, 1, &write));
    b.add(
        2900,
        0,
        CTRL,
        Event::new(Kind::DmaRead).addr(0x1_0090_0000).len(4096),
    );
    b.add(3000, 0, CTRL, cq(Kind::WriteBack, 1, &done_write));
    b.add(3100, 0, DRIVER, cq(Kind::DescRead, 0, &done_read));
    b.add(3200, 0, DRIVER, cq(Kind::DescRead, 1, &done_write));
    b.add(3300, 0, DRIVER, reg(Kind::RegWrite, 0x100c, 2));
    // 82599, device 1: one TX frame (context + header + payload) and one RX.
    let tx0 = Agent::Device(Engine::Tx(0));
    let rx0 = Agent::Device(Engine::Rx(0));
    let tx = |k: Kind, i: u32, b: &[u8]| {
        Event::new(k)
            .queue(Queue::Tx(0))
            .index(i)
            .addr(0x2_0000_0000 + 16 * i as u64)
            .bytes(b)
    };
    let rx = |k: Kind, i: u32, b: &[u8]| {
        Event::new(k)
            .queue(Queue::Rx(0))
            .index(i)
            .addr(0x2_1000_0000 + 16 * i as u64)
            .bytes(b)
    };
    let descs = [
        tx_context(),
        tx_data(0x3_0000_0000, 42, 102, false),
        tx_data(0x3_0010_0000, 60, 0, true),
    ];
    for (i, d) in descs.iter().enumerate() {
        b.add(
            4000 + 100 * i as u64,
            1,
            DRIVER,
            tx(Kind::DescWrite, i as u32, d),
        );
    }
    let tdt = reg_offset(DeviceKind::Ixgbe, "TDT[0]");
    let rdt = reg_offset(DeviceKind::Ixgbe, "RDT[0]");
    b.add(
        4300,
        1,
        DRIVER,
        Event::new(Kind::RegWrite).addr(tdt).len(4).value(3),
    );
    b.add(4400, 1, tx0, tx(Kind::Fetch, 0, &descs[0]));
    b.add(4500, 1, tx0, tx(Kind::Fetch, 1, &descs[1]));
    b.add(
        4600,
        1,
        tx0,
        Event::new(Kind::DmaRead).addr(0x3_0000_0000).len(42),
    );
    b.add(4700, 1, tx0, tx(Kind::Fetch, 2, &descs[2]));
    b.add(
        4800,
        1,
        tx0,
        Event::new(Kind::DmaRead).addr(0x3_0010_0000).len(60),
    );
    b.add(
        4900,
        1,
        tx0,
        Event::new(Kind::Frame)
            .queue(Queue::Tx(0))
            .len(102)
            .bytes(&frame()),
    );
    let mut tx_wb = [0u8; 16];
    put32(&mut tx_wb, adv::tx::WB_STATUS, adv::tx::olinfo::DD.bit());
    b.add(5000, 1, tx0, tx(Kind::WriteBack, 2, &tx_wb));
    b.add(5100, 1, DRIVER, tx(Kind::DescRead, 2, &tx_wb));
    let mut rx_read = [0u8; 16];
    put64(&mut rx_read, adv::rx::PKT_ADDR, 0x3_0020_0000);
    b.add(6000, 1, DRIVER, rx(Kind::DescWrite, 0, &rx_read));
    b.add(6050, 1, DRIVER, rx(Kind::DescRead, 0, &rx_read)); // a poll: DD not set
    b.add(
        6100,
        1,
        DRIVER,
        Event::new(Kind::RegWrite).addr(rdt).len(4).value(1),
    );
    b.add(
        6200,
        1,
        Agent::Device(Engine::Wire),
        Event::new(Kind::Frame)
            .queue(Queue::Rx(0))
            .len(60)
            .bytes(&frame()[..60]),
    );
    b.add(6300, 1, rx0, rx(Kind::Fetch, 0, &rx_read));
    b.add(
        6400,
        1,
        rx0,
        Event::new(Kind::DmaWrite).addr(0x3_0020_0000).len(60),
    );
    let mut rx_wb = [0u8; 16];
    use adv::rx::{info, status};
    put32(
        &mut rx_wb,
        adv::rx::WB_INFO,
        info::RSS_TYPE.value(adv::rx::rss_type::IPV4_UDP),
    );
    put32(&mut rx_wb, adv::rx::WB_RSS_HASH, 0xdead_beef);
    put32(
        &mut rx_wb,
        adv::rx::WB_STATUS_ERROR,
        status::DD.bit() | status::EOP.bit(),
    );
    rx_wb[adv::rx::WB_LENGTH..][..2].copy_from_slice(&60u16.to_le_bytes());
    b.add(6500, 1, rx0, rx(Kind::WriteBack, 0, &rx_wb));
    b.add(6600, 1, DRIVER, rx(Kind::DescRead, 0, &rx_wb));
    b.add(7000, 1, DRIVER, Event::note("link up"));
    TraceFile {
        devices: vec![
            DeviceInfo {
                name: "emu:nvme,size=1M,mode=inline".into(),
                kind: nvme_kind,
                emulated: true,
            },
            DeviceInfo {
                name: "emu:ixgbe,wire=loop".into(),
                kind: DeviceKind::Ixgbe,
                emulated: true,
            },
        ],
        threads: vec!["main".into()],
        capacity: 1000,
        dropped: vec![0, 0],
        events: b.events,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("trace_files-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn both_formats_round_trip_exactly() {
    let t = sample();
    let mut json = Vec::new();
    chrome::write(&t, &mut json).unwrap();
    assert_eq!(chrome::read(&json[..]).unwrap(), t);
    let mut pcap = Vec::new();
    pcapng::write(&t, &mut pcap).unwrap();
    assert_eq!(pcapng::read(&pcap[..]).unwrap(), t);
    // And across: pcapng -> json -> pcapng gives the same bytes.
    let mut json2 = Vec::new();
    chrome::write(&pcapng::read(&pcap[..]).unwrap(), &mut json2).unwrap();
    assert_eq!(json, json2);
}

type TrackKey = (u64, u64);

/// The Chrome file's structure, checked as a viewer relies on it.
#[test]
fn the_chrome_trace_is_well_formed_with_slices_flows_and_counters() {
    let t = sample();
    let mut out = Vec::new();
    chrome::write(&t, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let recs = v["traceEvents"].as_array().unwrap();
    assert_eq!(v["displayTimeUnit"], "ns");
    assert_eq!(v["metadata"]["dmatrace"]["devices"][1]["kind"], "ixgbe");

    let mut track_names: HashMap<TrackKey, String> = HashMap::new();
    let mut process_names: HashMap<u64, String> = HashMap::new();
    let mut last_ts: HashMap<(u64, String), f64> = HashMap::new();
    let mut stacks: HashMap<TrackKey, Vec<String>> = HashMap::new();
    let mut flows: HashMap<u64, Vec<(String, f64)>> = HashMap::new();
    let mut slices: Vec<(TrackKey, String, Value)> = Vec::new();
    let mut counters: Vec<(String, u64)> = Vec::new();
    let mut events = 0;
    for r in recs {
        let ph = r["ph"].as_str().expect("every record has ph");
        let pid = r["pid"].as_u64().expect("every record has a numeric pid");
        assert!(r["name"].is_string(), "no name: {r}");
        if ph == "M" {
            match r["name"].as_str().unwrap() {
                "process_name" => {
                    process_names.insert(pid, r["args"]["name"].as_str().unwrap().into());
                }
                "thread_name" => {
                    let tid = r["tid"].as_u64().unwrap();
                    track_names.insert((pid, tid), r["args"]["name"].as_str().unwrap().into());
                }
                "process_sort_index" | "thread_sort_index" => {}
                other => panic!("unknown metadata {other}"),
            }
            continue;
        }
        let ts = r["ts"]
            .as_f64()
            .expect("every timed record has a numeric ts");
        let track = if ph == "C" {
            format!("counter {}", r["name"])
        } else {
            format!("tid {}", r["tid"].as_u64().expect("tid"))
        };
        let prev = last_ts.insert((pid, track.clone()), ts).unwrap_or(f64::MIN);
        assert!(prev <= ts, "ts goes back on {pid}/{track}: {prev} then {r}");
        let key = (pid, r["tid"].as_u64().unwrap_or(0));
        match ph {
            "X" => {
                assert!(r["dur"].as_f64().unwrap() > 0.0);
                assert!(r["args"]["ev"].is_object(), "{r}");
                assert!(r["args"]["ev"]["raw"].is_string(), "{r}");
                events += 1;
            }
            "B" => {
                stacks
                    .entry(key)
                    .or_default()
                    .push(r["name"].as_str().unwrap().into());
                slices.push((key, r["name"].as_str().unwrap().into(), r["args"].clone()));
            }
            "E" => {
                let open = stacks.entry(key).or_default().pop();
                assert_eq!(
                    open.as_deref(),
                    r["name"].as_str(),
                    "E without its B on {key:?}"
                );
            }
            "s" | "t" | "f" => {
                let id = r["id"].as_u64().expect("flow id");
                assert_eq!(r["cat"], "flow");
                if ph == "f" {
                    assert_eq!(r["bp"], "e");
                }
                flows.entry(id).or_default().push((ph.into(), ts));
            }
            "C" => {
                let n = r["args"]["entries"].as_u64().expect("counter value");
                counters.push((r["name"].as_str().unwrap().into(), n));
            }
            other => panic!("unexpected phase {other}"),
        }
        if ph != "C" {
            assert!(
                track_names.contains_key(&key),
                "track {key:?} has no thread_name"
            );
        }
    }
    assert_eq!(events, t.events.len());
    for (k, s) in &stacks {
        assert!(s.is_empty(), "slices left open on {k:?}: {s:?}");
    }
    for (id, f) in &flows {
        let phs: Vec<&str> = f.iter().map(|(p, _)| p.as_str()).collect();
        assert!(
            phs.len() >= 2 && phs[0] == "s" && phs[phs.len() - 1] == "f",
            "flow {id}: {phs:?}"
        );
        assert!(
            phs[1..phs.len() - 1].iter().all(|p| *p == "t"),
            "flow {id}: {phs:?}"
        );
        assert!(
            f.windows(2).all(|w| w[0].1 <= w[1].1),
            "flow {id} goes back in time"
        );
    }
    assert_eq!(process_names[&1], "dev0 nvme emu:nvme,size=1M,mode=inline");
    assert_eq!(process_names[&2], "dev1 ixgbe emu:ixgbe,wire=loop");

    // The two NVMe commands overlap: two lanes of SQ1, each a slice.
    let names: Vec<(&str, &str)> = slices
        .iter()
        .map(|(k, n, _)| (track_names[k].as_str(), n.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("SQ1", "Read CID=3"),
            ("SQ1 #2", "Write CID=4"),
            ("TX0", "TX0 frame"),
            ("RX0", "RX0[0] buffer"),
        ]
    );
    let read = &slices[0].2;
    assert_eq!(read["SQE"]["CDW0"]["OPC"], 2);
    assert_eq!(read["SQE"]["PRP2"], "0x100802000");
    let frame = &slices[2].2["descriptors"];
    assert_eq!(frame.as_array().unwrap().len(), 3);
    assert_eq!(frame[0]["layout"], adv::TX_CONTEXT.name);
    assert_eq!(frame[2]["fields"]["CMD_TYPE_LEN"]["EOP"], 1);
    // Flows: the Read written, doorbell, fetch, PRP list, two DMAs,
    // write-back, consumed, head doorbell (9 points); the TX frame's 3
    // written + tail + 3 fetches + 2 DMAs + frame + write-back + read (12);
    // the Write and the RX buffer 7 each.
    let mut lens: Vec<usize> = flows.values().map(Vec::len).collect();
    lens.sort_unstable();
    assert_eq!(lens, [7, 7, 9, 12], "{flows:?}");
    // Occupancy: SQ1 goes 1, 2, 1, 0.
    let sq1: Vec<u64> = counters
        .iter()
        .filter(|(n, _)| n == "SQ1 in flight")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(sq1, [1, 2, 1, 0]);
    // Decoded fields ride on each event: the fetch of the Write.
    let fetch = recs
        .iter()
        .find(|r| r["name"] == "fetch SQ1[1] Write 01h CID=4")
        .expect("the Write's fetch, named");
    assert_eq!(fetch["args"]["fields"]["CDW10"], "0x10");
    let db = recs
        .iter()
        .find(|r| r["name"] == "write SQ1 tail doorbell = 0x2");
    assert!(db.is_some(), "doorbell named from the spec tables");
}

/// The columns tshark prints for the event interface, one row a packet.
fn tshark_rows(file: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let lua = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/dmatrace.lua");
    let mut cmd = Command::new("tshark");
    cmd.arg("-X")
        .arg(format!("lua_script:{}", lua.display()))
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tshark with tools/dmatrace.lua failed: a dissector error, or Lua is off. As root, \
         tshark loads `-X lua_script:` only when Wireshark's global init.lua (`tshark -G \
         folders`) says `run_user_scripts_when_superuser = true` and `enable_lua = true` \
         (Debian's default; .ci/run sets them): {stderr}"
    );
    assert!(
        !stderr.contains("Lua"),
        "the dissector raised an error: {stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

/// Wireshark, with our dissector, names the fields of every event and
/// decodes the entries and descriptors by the specification's names.
#[test]
fn tshark_dissects_the_pcapng_with_our_dissector() {
    if !common::have_tshark() {
        return;
    }
    let t = sample();
    let dir = tmp("tshark");
    let file = dir.join("t.pcapng");
    let mut out = Vec::new();
    pcapng::write(&t, &mut out).unwrap();
    std::fs::write(&file, &out).unwrap();
    let rows = tshark_rows(
        &file,
        &[
            "frame.interface_id",
            "dmatrace.seq",
            "dmatrace.t_ns",
            "dmatrace.dev",
            "dmatrace.agent",
            "dmatrace.kind",
            "dmatrace.queue",
            "dmatrace.index",
            "dmatrace.addr",
            "dmatrace.len",
            "dmatrace.value",
            "dmatrace.reg",
            "eth.type",
        ],
    );
    // Every event once on interface 1, plus the TX and RX frames on 0.
    assert_eq!(rows.len(), t.events.len() + 2, "{rows:?}");
    let events: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "1").collect();
    assert_eq!(events.len(), t.events.len());
    for (r, e) in events.iter().zip(&t.events) {
        assert_eq!(r[1], e.seq.to_string());
        assert_eq!(r[2], e.t_ns.to_string());
        assert_eq!(r[3], e.dev.to_string());
        assert_eq!(r[4], e.agent.to_string());
        assert_eq!(r[5], e.kind.name());
        assert_eq!(r[6], e.queue.to_string());
        assert_eq!(r[7], e.index.to_string());
        assert_eq!(hex(&r[8]), e.addr, "{r:?}");
        assert_eq!(r[9], e.len.to_string());
        assert_eq!(hex(&r[10]), e.value);
        if let Some(n) = t
            .reg_name(e.dev, e.addr)
            .filter(|_| e.dev == 0 && matches!(e.kind, Kind::RegRead | Kind::RegWrite))
        {
            assert_eq!(r[11], n, "{r:?}");
        }
    }
    let frames: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "0").collect();
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|r| r[12] == "0x0800"), "{frames:?}");
    let regs: Vec<&str> = events
        .iter()
        .map(|r| r[11].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        regs[..5],
        [
            "CC",
            "CSTS",
            "SQ1 tail doorbell",
            "CQ1 head doorbell",
            "0x6018"
        ]
    );

    // NVMe: the SQE fetched and the CQE consumed, field by field.
    let nvme = tshark_rows(
        &file,
        &[
            "dmatrace.kind",
            "dmatrace.nvme.opc",
            "dmatrace.nvme.opcode",
            "dmatrace.nvme.cid",
            "dmatrace.nvme.nsid",
            "dmatrace.nvme.prp1",
            "dmatrace.nvme.prp2",
            "dmatrace.nvme.rw.slba",
            "dmatrace.nvme.rw.nlb",
            "dmatrace.nvme.cqe.cid",
            "dmatrace.nvme.cqe.sqhd",
            "dmatrace.nvme.cqe.sqid",
            "dmatrace.nvme.cqe.p",
            "dmatrace.nvme.cqe.sc",
            "dmatrace.nvme.cqe.sct",
            "dmatrace.nvme.prp.entry",
        ],
    );
    let fetches: Vec<&Vec<String>> = nvme
        .iter()
        .filter(|r| r[0] == "fetch" && !r[1].is_empty())
        .collect();
    assert_eq!(fetches.len(), 2, "{nvme:?}");
    let f = fetches[0];
    assert_eq!(f[1..4], ["2", "Read", "3"]);
    assert_eq!(hex(&f[4]), 1, "NSID");
    assert_eq!(hex(&f[5]), 0x1_0080_5040);
    assert_eq!(hex(&f[6]), 0x1_0080_2000);
    assert_eq!((hex(&f[7]), f[8].as_str()), (0, "39"));
    let f = fetches[1];
    assert_eq!(f[1..4], ["1", "Write", "4"]);
    assert_eq!((hex(&f[7]), f[8].as_str()), (0x1_0000_0010, "7"));
    let reads: Vec<&[String]> = nvme
        .iter()
        .filter(|r| r[0] == "desc_read" && !r[9].is_empty())
        .map(|r| &r[9..15])
        .collect();
    assert_eq!(
        reads,
        [
            ["3", "1", "1", "1", "0", "0"],
            ["4", "2", "1", "1", "128", "0"]
        ]
    );
    let prp = nvme.iter().find(|r| r[0] == "prp_list").unwrap();
    let entries: Vec<u64> = prp[15].split(',').map(hex).collect();
    assert_eq!(
        entries,
        (0..5)
            .map(|i| 0x1_0080_6000 + 0x1000 * i)
            .collect::<Vec<u64>>()
    );

    // NIC: the TX context and data descriptors, the RX write-back.
    let nic = tshark_rows(
        &file,
        &[
            "dmatrace.kind",
            "dmatrace.queue",
            "dmatrace.nic.tx_data.addr",
            "dmatrace.nic.tx_data.dtalen",
            "dmatrace.nic.tx_data.dtyp",
            "dmatrace.nic.tx_data.eop",
            "dmatrace.nic.tx_data.rs",
            "dmatrace.nic.tx_data.paylen",
            "dmatrace.nic.tx_context.maclen",
            "dmatrace.nic.tx_context.iplen",
            "dmatrace.nic.rx_wb.length",
            "dmatrace.nic.rx_wb.dd",
            "dmatrace.nic.rx_wb.eop",
            "dmatrace.nic.rx_wb.rss_hash",
            "dmatrace.nic.rx_wb.rss_type",
            "dmatrace.nic.tx_wb.dd",
            "dmatrace.nic.rx_read.pkt_addr",
        ],
    );
    let written: Vec<&Vec<String>> = nic
        .iter()
        .filter(|r| r[0] == "desc_write" && r[1] == "TX0")
        .collect();
    assert_eq!(written.len(), 3);
    assert_eq!(written[0][8..10], ["14", "20"], "context: MACLEN, IPLEN");
    assert_eq!(hex(&written[1][2]), 0x3_0000_0000);
    assert_eq!(written[1][3..8], ["42", "3", "0", "0", "102"]);
    assert_eq!(written[2][3..8], ["60", "3", "1", "1", "0"]);
    let wb = nic
        .iter()
        .find(|r| r[0] == "desc_read" && r[1] == "RX0" && r[11] == "1")
        .expect("RX write-back");
    assert_eq!(wb[10..13], ["60", "1", "1"]);
    assert_eq!(hex(&wb[13]), 0xdead_beef);
    assert_eq!(wb[14], "7");
    assert!(nic
        .iter()
        .any(|r| r[0] == "desc_read" && r[1] == "TX0" && r[15] == "1"));
    let rx_post = nic
        .iter()
        .find(|r| r[0] == "desc_write" && r[1] == "RX0")
        .unwrap();
    assert_eq!(hex(&rx_post[16]), 0x3_0020_0000);
    std::fs::remove_dir_all(&dir).ok();
}
