//! `dmatrace` on a small hand-written trace (`tests/data/trace-small.jsonl`:
//! an NVMe controller that answers an Identify on the admin queue, a Write
//! of 20 KiB through a five-entry PRP list and a one-page Read on SQ1, and
//! an igb port that sends and receives one frame; every SQE, CQE and
//! descriptor in it written by hand from the NVMe 1.4 and 82576 figures).
//! The expected output is asserted line by line, then the filters, the
//! decoder and the converter.
#![forbid(unsafe_code)]

mod common;

use common::{assert_clap_error, assert_one_line_error, run, tmpdir};

const DMATRACE: &str = env!("CARGO_BIN_EXE_dmatrace");

fn small() -> String {
    format!(
        "{}/tests/data/trace-small.jsonl",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The whole of `dmatrace show` of the small trace.
const FULL: &[&str] = &[
    "# device 0: nvme emu:nvme,size=1M,mode=inline (DSTRD=0), emulated: driver and device events",
    "# device 1: igb emu:igb,wire=loop, emulated: driver and device events",
    "     0.000 µs  driver/0           dev0 reg_read CSTS (0x1c) = 0x1: RDY=1",
    "     0.200 µs  device/controller  dev0 note: ready",
    "     1.000 µs  driver/0           dev0 SQ0[0] desc_write @0x100300000: OPC=06h Identify CID=1 NSID=0 PRP1=0x100700000 PRP2=0x0 CNS=1",
    "     1.100 µs  driver/0           dev0 reg_write SQ0 tail doorbell (0x1000) = 0x1",
    "     1.200 µs  device/controller  dev0 SQ0[0] fetch @0x100300000: OPC=06h Identify CID=1 NSID=0 PRP1=0x100700000 PRP2=0x0 CNS=1",
    "     1.300 µs  device/controller  dev0 dma_write @0x100700000 len 4096",
    "     1.400 µs  device/controller  dev0 CQ0[0] write_back @0x100310000: CID=1 SQHD=1 SQID=0 P=1 SC=00h Successful Completion",
    "     1.500 µs  driver/0           dev0 CQ0[0] desc_read @0x100310000: CID=1 SQHD=1 SQID=0 P=1 SC=00h Successful Completion",
    "     1.600 µs  driver/0           dev0 reg_write CQ0 head doorbell (0x1004) = 0x1",
    "     2.000 µs  driver/0           dev0 SQ1[0] desc_write @0x100400000: OPC=01h Write CID=0 NSID=1 PRP1=0x100805040 PRP2=0x100802000 (list, 5 entries) SLBA=0 NLB=39",
    "     2.100 µs  driver/0           dev0 reg_write SQ1 tail doorbell (0x1008) = 0x1",
    "     2.200 µs  device/controller  dev0 SQ1[0] fetch @0x100400000: OPC=01h Write CID=0 NSID=1 PRP1=0x100805040 PRP2=0x100802000 (list, 5 entries) SLBA=0 NLB=39",
    "     2.300 µs  device/controller  dev0 prp_list @0x100802000: 5 entries: 0x100806000 0x100807000 0x100808000 0x100809000 0x10080a000",
    "     2.400 µs  device/controller  dev0 dma_read @0x100805040 len 4032",
    "     2.500 µs  device/controller  dev0 dma_read @0x100806000 len 16448",
    "     2.600 µs  device/controller  dev0 CQ1[0] write_back @0x100600000: CID=0 SQHD=1 SQID=1 P=1 SC=00h Successful Completion",
    "     2.700 µs  driver/0           dev0 CQ1[0] desc_read @0x100600000: CID=0 SQHD=1 SQID=1 P=1 SC=00h Successful Completion",
    "     2.800 µs  driver/0           dev0 SQ1[1] desc_write @0x100400040: OPC=02h Read CID=1 NSID=1 PRP1=0x100900000 PRP2=0x0 SLBA=8 NLB=7",
    "     2.900 µs  driver/0           dev0 reg_write SQ1 tail doorbell (0x1008) = 0x2",
    "     3.000 µs  device/controller  dev0 SQ1[1] fetch @0x100400040: OPC=02h Read CID=1 NSID=1 PRP1=0x100900000 PRP2=0x0 SLBA=8 NLB=7",
    "     3.100 µs  device/controller  dev0 dma_write @0x100900000 len 4096",
    "     3.200 µs  device/controller  dev0 CQ1[1] write_back @0x100600010: CID=1 SQHD=2 SQID=1 P=1 SC=00h Successful Completion",
    "     3.300 µs  driver/0           dev0 CQ1[1] desc_read @0x100600010: CID=1 SQHD=2 SQID=1 P=1 SC=00h Successful Completion",
    "     3.400 µs  driver/0           dev0 reg_write CQ1 head doorbell (0x100c) = 0x2",
    "     4.000 µs  driver/0           dev1 TX0[0] desc_write @0x100200000: ADDR=0x100300000 DTALEN=60 DTYP=3 (data) EOP=1 IFCS=1 RS=1 DEXT=1 PAYLEN=60",
    "     4.100 µs  driver/0           dev1 reg_write TDT[0] (0x3818) = 0x1",
    "     4.200 µs  device/tx0         dev1 TX0[0] fetch @0x100200000: ADDR=0x100300000 DTALEN=60 DTYP=3 (data) EOP=1 IFCS=1 RS=1 DEXT=1 PAYLEN=60",
    "     4.300 µs  device/tx0         dev1 TX0 dma_read @0x100300000 len 60",
    "     4.400 µs  device/tx0         dev1 TX0 frame len 60: 02:00:00:00:00:01 > 02:00:00:00:00:02 type 0800h",
    "     4.500 µs  device/tx0         dev1 TX0[0] write_back @0x100200000: DD=1",
    "     4.600 µs  driver/0           dev1 RX0[0] desc_write @0x100210000: PKT_ADDR=0x100400800 HDR_ADDR=0x0",
    "     4.700 µs  driver/0           dev1 reg_write RDT[0] (0x2818) = 0x1",
    "     4.800 µs  device/rx0         dev1 RX0 frame len 60: 02:00:00:00:00:01 > 02:00:00:00:00:02 type 0800h",
    "     4.900 µs  device/rx0         dev1 RX0 dma_write @0x100400800 len 60",
    "     5.000 µs  device/rx0         dev1 RX0[0] write_back @0x100210000: DD=1 EOP=1 LENGTH=60",
    "     5.100 µs  driver/0           dev1 RX0[0] desc_read @0x100210000: DD=1 EOP=1 LENGTH=60",
];

/// `dmatrace ARGS`' standard output, which must succeed, as lines.
fn lines_of(args: &[&str]) -> Vec<String> {
    let out = run(DMATRACE, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dmatrace {args:?}: {stderr}");
    assert!(stderr.is_empty(), "dmatrace {args:?}: {stderr}");
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(str::to_string)
        .collect()
}

/// `got` equals `want` line by line (a mismatch names the first line).
fn assert_lines(got: &[String], want: &[&str]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "number of lines: {got:#?}");
}

/// The lines of FULL (after the two header lines) at these 1-based event
/// numbers, with the header.
fn full_events(events: &[usize]) -> Vec<&'static str> {
    let mut v = FULL[..2].to_vec();
    v.extend(events.iter().map(|&n| FULL[1 + n]));
    v
}

#[test]
fn show_prints_every_event_decoded_line_by_line() {
    assert_lines(&lines_of(&["show", &small()]), FULL);
}

#[test]
fn cid_keeps_a_commands_entries_and_the_device_work_between_fetch_and_completion() {
    // CID 1 is the Identify on SQ0 and the Read on SQ1: their SQEs, the
    // device's DMA between each fetch and its completion, their CQEs;
    // not the doorbells, not the Write (CID 0) and its PRP list and DMAs.
    let both = full_events(&[3, 5, 6, 7, 8, 18, 20, 21, 22, 23]);
    assert_lines(&lines_of(&["show", &small(), "--cid", "1"]), &both);
    // With a queue, the command's queue pair only.
    let io = full_events(&[18, 20, 21, 22, 23]);
    assert_lines(
        &lines_of(&["show", &small(), "--cid", "1", "--queue", "SQ1"]),
        &io,
    );
    assert_lines(
        &lines_of(&["show", &small(), "--cid", "1", "--queue", "cq1"]),
        &io,
    );
    let write = full_events(&[10, 12, 13, 14, 15, 16, 17]);
    assert_lines(&lines_of(&["show", &small(), "--cid", "0"]), &write);
    assert_lines(&lines_of(&["show", &small(), "--cid", "9"]), &FULL[..2]);
}

#[test]
fn queue_dev_and_kind_filters() {
    // SQ1: its entries and its tail doorbell writes.
    let sq1 = full_events(&[10, 11, 12, 18, 19, 20]);
    assert_lines(&lines_of(&["show", &small(), "--queue", "SQ1"]), &sq1);
    // TX0 on the igb: the descriptor, TDT[0], and the TX engine's work.
    let tx0 = full_events(&[25, 26, 27, 28, 29, 30]);
    assert_lines(&lines_of(&["show", &small(), "--queue", "TX0"]), &tx0);
    let frames = full_events(&[29, 33]);
    assert_lines(
        &lines_of(&["show", &small(), "--dev", "1", "--kind", "frame"]),
        &frames,
    );
    let wb = full_events(&[7, 16, 22, 30, 35]);
    assert_lines(&lines_of(&["show", &small(), "--kind", "write_back"]), &wb);
    let regs = full_events(&[1, 4, 9, 11, 19, 24, 26, 32]);
    assert_lines(
        &lines_of(&["show", &small(), "--kind", "reg_read,reg_write"]),
        &regs,
    );
}

#[test]
fn decode_prints_the_summary_and_every_field() {
    let got = lines_of(&[
        "decode", "cqe", "00000000", "00000000", "0500", "0200", "3412", "02c5",
    ]);
    assert_lines(
        &got,
        &[
            "NVMe completion queue entry (NVMe 1.4 §4.6)",
            "CID=4660 SQHD=5 SQID=2 P=0 SC=81h SCT=2 M=1 DNR=1 Unrecovered Read Error",
            "  DW0              0x00000000",
            "  DW1              0x00000000",
            "  SQHD             0x0005",
            "  SQID             0x0002",
            "  CID              0x1234",
            "  STATUS           0xc502  P=0 SC=81h SCT=2 CRD=0 M=1 DNR=1",
        ],
    );
    // An admin SQE: Create I/O Submission Queue 1 of 64 entries on CQ 1,
    // physically contiguous (§5.4): CDW10 = QSIZE 63 << 16 | QID 1,
    // CDW11 = CQID 1 << 16 | PC.
    let sqe = "01000300 00000000 0000000000000000 0000000000000000 0000400001000000 \
               0000000000000000 01003f00 01000100 00000000 00000000 00000000 00000000";
    let got = lines_of(&["decode", "sqe", "--admin", sqe]);
    assert_eq!(
        got[1],
        "OPC=01h Create I/O Submission Queue CID=3 NSID=0 PRP1=0x100400000 PRP2=0x0 QID=1 \
         QSIZE=63 PC=1 QPRIO=0 CQID=1"
    );
    // The same bytes on an I/O queue are a Write.
    let got = lines_of(&["decode", "sqe", sqe]);
    assert!(got[1].starts_with("OPC=01h Write CID=3 "), "{}", got[1]);
    let got = lines_of(&["decode", "tx-data", "00704563 12000000 3c00302b 00020f00"]);
    assert_eq!(
        got[1],
        "ADDR=0x1263457000 DTALEN=60 DTYP=3 (data) EOP=1 IFCS=1 RS=1 DEXT=1 TXSM=1 PAYLEN=60"
    );
    let got = lines_of(&["decode", "rx-read", "00002000010000000000000000000000"]);
    assert_eq!(got[1], "PKT_ADDR=0x100200000 HDR_ADDR=0x0");
    let got = lines_of(&[
        "decode",
        "tx-writeback",
        "00000000 00000000 00000000 01000000",
    ]);
    assert_eq!(got[1], "DD=1");
}

#[test]
fn decode_refuses_bad_hex_and_wrong_lengths_in_one_line() {
    let out = run(DMATRACE, &["decode", "sqe", "0g"]);
    assert_one_line_error(&out, &["decode sqe", "'g' is not a hex digit"]);
    let out = run(DMATRACE, &["decode", "cqe", "000"]);
    assert_one_line_error(&out, &["3 hex digits"]);
    let out = run(DMATRACE, &["decode", "cqe", "00000000"]);
    assert_one_line_error(&out, &["4 bytes given", "16 bytes (32 hex digits"]);
    let out = run(DMATRACE, &["decode", "tx-context", &"00".repeat(64)]);
    assert_one_line_error(&out, &["64 bytes given", "16 bytes"]);
    let out = run(DMATRACE, &["decode", "descriptor", "00"]);
    assert_clap_error(&out, &["descriptor"]);
}

#[test]
fn convert_round_trips_every_format_and_refuses_what_it_cannot() {
    let dir = tmpdir("dmatrace-convert");
    let out = dir.join("copy.jsonl");
    let out = out.to_str().unwrap();
    let r = run(DMATRACE, &["convert", &small(), out]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        String::from_utf8_lossy(&r.stderr).trim(),
        format!("dmatrace: 36 events from {} written to {out}", small())
    );
    assert_lines(&lines_of(&["show", out]), FULL);
    // Through Chrome JSON and pcapng and back: `show` prints the same.
    for ext in ["json", "pcapng"] {
        let mid = dir.join(format!("t.{ext}")).to_str().unwrap().to_string();
        let back = dir.join(format!("back-{ext}.jsonl"));
        let back_s = back.to_str().unwrap().to_string();
        for (from, to) in [(small(), mid.clone()), (mid.clone(), back_s)] {
            let r = run(DMATRACE, &["convert", &from, &to]);
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        }
        assert_lines(&lines_of(&["show", back.to_str().unwrap()]), FULL);
    }
    let r = run(
        DMATRACE,
        &["convert", &small(), dir.join("t.txt").to_str().unwrap()],
    );
    assert_one_line_error(&r, &["t.txt", "unknown format", ".jsonl"]);
    let r = run(DMATRACE, &["convert", &small(), &small()]);
    assert_one_line_error(&r, &["both the input and the output"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_trace_files_are_one_line_errors_naming_file_and_line() {
    let dir = tmpdir("dmatrace-bad");
    let bad = dir.join("bad.jsonl");
    let text = std::fs::read_to_string(small()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "{\"seq\":2,\"kind\":\"teleport\"}";
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let r = run(DMATRACE, &["show", bad.to_str().unwrap()]);
    assert_one_line_error(&r, &["bad.jsonl", "line 4"]);
    let r = run(
        DMATRACE,
        &["show", dir.join("none.jsonl").to_str().unwrap()],
    );
    assert_one_line_error(&r, &["cannot open", "none.jsonl"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// docs/trace-format.md documents every kind, every key an event line has
/// and every header key, so the schema document cannot fall behind the
/// writer.
#[test]
fn the_schema_document_names_every_kind_and_key() {
    use apps::trace::{jsonl, TraceFile};
    use drivers::trace::{DeviceInfo, DeviceKind, Event, Kind, Tracer};
    let doc = std::fs::read_to_string(format!(
        "{}/../docs/trace-format.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("docs/trace-format.md");
    for k in Kind::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", k.name())),
            "kind {k} is not in the kinds table"
        );
    }
    let tracer = Tracer::new(10);
    let tap = tracer.device(DeviceInfo {
        name: "emu:nvme".into(),
        kind: DeviceKind::Nvme { dstrd: 0 },
        emulated: true,
    });
    // A register event, which has every key (`name` included).
    tap.record(|| Event::new(Kind::RegWrite).addr(0x14).len(4).value(1));
    let t = TraceFile::take(&tracer);
    let mut out = Vec::new();
    jsonl::write(&t, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let event: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let mut keys: Vec<String> = event.as_object().unwrap().keys().cloned().collect();
    keys.extend(header.as_object().unwrap().keys().cloned());
    for d in header["devices"].as_array().unwrap() {
        keys.extend(
            d.as_object()
                .unwrap()
                .keys()
                .map(|k| format!("devices[].{k}")),
        );
    }
    assert!(keys.len() > 15, "{keys:?}");
    for k in keys {
        assert!(
            doc.contains(&format!("| `{k}` |")),
            "key {k} is not in a table of docs/trace-format.md"
        );
    }
}

/// QEMU's trace of the NVMe part of the small trace, as QEMU's log backend
/// writes it, by hand from the format strings of QEMU's
/// hw/nvme/trace-events (an earlier enable with another admin queue first,
/// as a firmware's).
const QEMU_LOG: &str = "\
pci_nvme_mmio_asqaddr wrote MMIO, admin submission queue address=0x7fd9000
pci_nvme_mmio_start_success setting controller enable bit succeeded
pci_nvme_admin_cmd cid 0 sqid 0 opc 0x6 opname 'NVME_ADM_CMD_IDENTIFY'
pci_nvme_map_prp trans_len 4096 len 4096 prp1 0x6fdd000 prp2 0x0 num_prps 2
pci_nvme_enqueue_req_completion cid 0 cqid 0 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_mmio_asqaddr wrote MMIO, admin submission queue address=0x100300000
pci_nvme_mmio_start_success setting controller enable bit succeeded
pci_nvme_admin_cmd cid 1 sqid 0 opc 0x6 opname 'NVME_ADM_CMD_IDENTIFY'
pci_nvme_identify cid 1 cns 0x1 ctrlid 0 csi 0x0
pci_nvme_map_prp trans_len 4096 len 4096 prp1 0x100700000 prp2 0x0 num_prps 2
pci_nvme_enqueue_req_completion cid 1 cqid 0 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_io_cmd cid 0 nsid 0x1 sqid 1 opc 0x1 opname 'NVME_NVM_CMD_WRITE'
pci_nvme_write cid 0 opname 'NVME_NVM_CMD_WRITE' nsid 1 nlb 40 count 20480 lba 0x0
pci_nvme_map_prp trans_len 4032 len 20480 prp1 0x100805040 prp2 0x100802000 num_prps 6
pci_nvme_enqueue_req_completion cid 0 cqid 1 dw0 0x0 dw1 0x0 status 0x0
pci_nvme_io_cmd cid 1 nsid 0x1 sqid 1 opc 0x2 opname 'NVME_NVM_CMD_READ'
pci_nvme_read cid 1 nsid 1 nlb 8 count 4096 lba 0x8
pci_nvme_map_prp trans_len 4096 len 4096 prp1 0x100900000 prp2 0x0 num_prps 2
pci_nvme_enqueue_req_completion cid 1 cqid 1 dw0 0x0 dw1 0x0 status 0x0
";

/// `dmatrace compare-qemu`: the small trace (with the driver's write of
/// ASQ added, which finds QEMU's enable) agrees with QEMU_LOG, exit 0 and
/// one summary line; with one PRP2 changed in QEMU's log it names the
/// difference and exits 1 with one error line.
#[test]
fn compare_qemu_agrees_and_names_a_difference() {
    let dir = tmpdir("dmatrace-qemu");
    let text = std::fs::read_to_string(small()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(
        1,
        r#"{"seq":0,"t_ns":900,"dev":0,"agent":"driver/0","kind":"reg_write","queue":"-","index":0,"addr":"0x28","len":8,"value":"0x100300000","raw":""}"#,
    );
    let trace = dir.join("t.jsonl");
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let log = dir.join("qemu-trace.log");
    std::fs::write(&log, QEMU_LOG).unwrap();
    let (trace, log) = (trace.to_str().unwrap(), log.to_str().unwrap());
    assert_eq!(
        lines_of(&["compare-qemu", trace, log]),
        [
            "agree: 3 commands (SQ0 1, SQ1 2): CID, opcode and NSID agree, PRP1/PRP2 of 3 data \
          commands and the queue address of 0 queue creations; 3 completions: CID, DW0, DW1 \
          and status agree (QEMU's controller enable 2 at line 7, ASQ=0x100300000)"
        ]
    );

    std::fs::write(
        dir.join("qemu-trace.log"),
        QEMU_LOG.replace("prp2 0x100802000", "prp2 0x100803000"),
    )
    .unwrap();
    let r = run(DMATRACE, &["compare-qemu", trace, log]);
    assert_one_line_error(&r, &["t.jsonl and", "qemu-trace.log disagree"]);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout)
            .lines()
            .collect::<Vec<_>>(),
        [
            "differs: SQ1 command 0 (our seq 9, slot 0; QEMU line 12): PRP1=0x100805040 \
             PRP2=0x100802000 vs QEMU's PRP1=0x100805040 PRP2=0x100803000",
            "1 disagreement(s) between our trace (3 commands, 3 completions) and QEMU's \
             controller enable 2 at line 7 (3 commands, 3 completions)",
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
