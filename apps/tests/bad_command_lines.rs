//! Bad command lines of every app, one table: each row is an app, its
//! arguments and a piece of text the error must contain. Every row must end
//! within a time limit, with a non-zero exit status that is not a panic's
//! (101) nor a signal's, and with exactly one `error:` line on stderr naming
//! the cause: besides it only the warnings listed in [`ALLOWED`] and clap's
//! pointer to `--help`, never "panicked" nor "RUST_BACKTRACE".
//!
//! `{dir}` in an argument stands for a scratch directory of this test, which
//! holds `empty.pcap` (0 bytes), `garbage.pcap` (not a capture), `cut.pcap`
//! (a header cut short), `good.pcap` (a header, no record), and `tiny.img`
//! (100 bytes), `empty.jsonl` (0 bytes), `garbage.jsonl` (not a trace) and
//! `small.jsonl` (a copy of `tests/data/trace-small.jsonl`).
//! `/proc/version` is a file nobody may write, root included.
#![forbid(unsafe_code)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IDENTIFY: &str = env!("CARGO_BIN_EXE_nvme-identify");
const PERF: &str = env!("CARGO_BIN_EXE_nvme-perf");
const READ: &str = env!("CARGO_BIN_EXE_nvme-read");
const PKTGEN: &str = env!("CARGO_BIN_EXE_pktgen");
const FWD: &str = env!("CARGO_BIN_EXE_fwd");
const PCAP: &str = env!("CARGO_BIN_EXE_pcap");
const PCAP_CHECK: &str = env!("CARGO_BIN_EXE_pcap-check");
const BLKFWD: &str = env!("CARGO_BIN_EXE_blkfwd");
const BLKRECV: &str = env!("CARGO_BIN_EXE_blkrecv");
const DMATRACE: &str = env!("CARGO_BIN_EXE_dmatrace");

/// How long one bad command line may take: it should be refused at once,
/// but the machine running the tests may be busy.
const LIMIT: Duration = Duration::from_secs(30);

/// Lines besides the error that stderr may hold (prefixes): warnings (the
/// hugepage fallback notice), clap's pointer to --help, and nvme-read's
/// progress lines (its data goes to standard output, so they go to stderr).
const ALLOWED: [&str; 3] = [
    "warning:",
    "For more information, try '--help'",
    "nvme-read: ",
];

/// (app, arguments, text the error line must contain)
type Row = (&'static str, &'static [&'static str], &'static str);

const NVME: &str = "emu:nvme,size=16M";

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // ---- nvme-identify: the device string, every way it can be wrong.
    (IDENTIFY, &[], "<DEVICE>"),
    (IDENTIFY, &["0000:03:00"], "0000:03:00.0"),
    (IDENTIFY, &["03:zz.0"], "03:zz.0"),
    (IDENTIFY, &["0000:03:00.8"], "0000:03:00.8"),
    (IDENTIFY, &["0000:03:20.0"], "0000:03:20.0"),
    (IDENTIFY, &["10000:03:00.0"], "10000:03:00.0"),
    (IDENTIFY, &["0000:7f:1f.7"], "devbind.sh status"),
    (IDENTIFY, &["disk0"], "'disk0' is not a device"),
    (IDENTIFY, &[""], "is not a device"),
    (IDENTIFY, &["emu:"], "unknown emulated device model ''"),
    (IDENTIFY, &["emu:floppy"], "unknown emulated device model 'floppy'"),
    (IDENTIFY, &["emu:NVME"], "'NVME'"),
    (IDENTIFY, &["emu:nvme,size=0"], "bad value '0' for size"),
    (IDENTIFY, &["emu:nvme,size=abc"], "bad value 'abc' for size"),
    (IDENTIFY, &["emu:nvme,size=-1"], "bad value '-1' for size"),
    (IDENTIFY, &["emu:nvme,size=1000"], "multiple of the LBA size"),
    (IDENTIFY, &["emu:nvme,size=99999999999T"], "99999999999T"),
    (IDENTIFY, &["emu:nvme,size"], "for size"),
    (IDENTIFY, &["emu:nvme,mode=bogus"], "inline or threaded"),
    (IDENTIFY, &["emu:nvme,speed=fast"], "no option 'speed'"),
    (IDENTIFY, &["emu:nvme,size=1M,size=2M"], "size= is given twice"),
    (IDENTIFY, &["emu:nvme,mode=inline,mode=threaded"], "mode= is given twice"),
    (IDENTIFY, &["emu:nvme,lba=1000"], "512 or 4096"),
    (IDENTIFY, &["emu:nvme,namespaces=0"], "for namespaces"),
    (IDENTIFY, &["emu:nvme,namespaces=1025"], "1 to 1024"),
    (IDENTIFY, &["emu:nvme,mdts=17"], "for mdts"),
    (IDENTIFY, &["emu:nvme,mqes=1"], "2 to 65536"),
    (IDENTIFY, &["emu:nvme,mqes=65537"], "for mqes"),
    (IDENTIFY, &["emu:nvme,queues=0"], "for queues"),
    (IDENTIFY, &["emu:nvme,queues=70000"], "1 to 65535"),
    (IDENTIFY, &["emu:nvme,file="], "for file"),
    (IDENTIFY, &["emu:nvme,file={dir}/missing.img"], "missing.img"),
    (IDENTIFY, &["emu:nvme,file={dir}"], "directory"),
    (IDENTIFY, &["emu:nvme,file={dir}/tiny.img,lba=4096"], "tiny.img"),
    (IDENTIFY, &["emu:nvme,file={dir}/tiny.img,namespaces=2"], "1 when file= is given"),
    (IDENTIFY, &["emu:igb"], "not an NVMe"),
    (IDENTIFY, &["emu:nvme", "extra"], "'extra'"),
    (IDENTIFY, &["emu:nvme", "--bogus"], "'--bogus'"),
    // ---- nvme-perf: numbers out of range, conflicts, the namespace.
    (PERF, &[], "<DEVICE>"),
    (PERF, &["emu:floppy"], "floppy"),
    (PERF, &[NVME, "--bs", "0"], "'0' is not a size above 0"),
    (PERF, &[NVME, "--bs", "lots"], "'lots' is not a size"),
    (PERF, &[NVME, "--bs", "1000"], "not a multiple of namespace 1's LBA size 512"),
    (PERF, &["emu:nvme,size=16M,lba=4096", "--bs", "512"], "LBA size 4096"),
    (PERF, &[NVME, "--bs", "1M"], "largest transfer"),
    (PERF, &[NVME, "--qd", "0"], "--qd"),
    (PERF, &[NVME, "--qd", "4096"], "--qd"),
    (PERF, &[NVME, "--qd=-1"], "--qd"),
    (PERF, &["emu:nvme,size=16M,mqes=16", "--qd", "64"], "use --qd 15 or less"),
    (PERF, &[NVME, "--queues", "0"], "--queues"),
    (PERF, &[NVME, "--queues", "257"], "--queues"),
    (PERF, &["emu:nvme,size=16M,queues=2", "--queues", "4"], "--queues 4"),
    (PERF, &[NVME, "--mix", "101"], "--mix"),
    (PERF, &[NVME, "--workload", "bogus"], "'bogus'"),
    (PERF, &[NVME, "--pattern", "zigzag"], "'zigzag'"),
    (PERF, &[NVME, "--time=nan"], "seconds"),
    (PERF, &[NVME, "--time=1e300"], "10 years"),
    (PERF, &[NVME, "--count", "0"], "--count"),
    (PERF, &[NVME, "--count=-5"], "--count"),
    (PERF, &[NVME, "--nsid", "0"], "namespace 0"),
    (PERF, &[NVME, "--nsid", "9"], "9"),
    (PERF, &[NVME, "--nsid", "4294967296"], "--nsid"),
    (PERF, &[NVME, "--range", "1G"], "--range"),
    (PERF, &[NVME, "--range", "0"], "--range"),
    (PERF, &[NVME, "--bs", "8k", "--range", "4k"], "--range"),
    (PERF, &[NVME, "--page-size", "4k"], "'--hugepage-size'"),
    (PERF, &[NVME, "--hugepage-size", "4k"], "2M or 1G"),
    (PERF, &[NVME, "--seed", "abc"], "--seed"),
    (PERF, &["emu:igb", "--time", "0.1"], "not an NVMe"),
    // ---- nvme-read: ranges beyond the namespace, output files.
    (READ, &[], "<DEVICE>"),
    (READ, &[NVME, "--offset", "16M"], "nothing to read"),
    (READ, &[NVME, "--offset", "1T"], "--offset"),
    (READ, &[NVME, "--offset", "abc"], "'abc' is not a size"),
    (READ, &[NVME, "--length", "0"], "not a size above 0"),
    (READ, &[NVME, "--length", "17M"], "--length"),
    (READ, &[NVME, "--offset", "8M", "--length", "9M"], "--length"),
    (READ, &[NVME, "--length=-1"], "--length"),
    (READ, &[NVME, "--bs", "0"], "'0' is not a size above 0"),
    (READ, &[NVME, "--bs", "3"], "--bs 3"),
    (READ, &[NVME, "--bs", "1G"], "largest transfer"),
    (READ, &[NVME, "--nsid", "0"], "namespace 0"),
    (READ, &[NVME, "--nsid", "2"], "2"),
    (READ, &[NVME, "--length", "4k", "--out", "{dir}"], "{dir}"),
    (READ, &[NVME, "--length", "4k", "--out", "{dir}/no/such/file"], "{dir}/no/such/file"),
    (READ, &[NVME, "--length", "4k", "--out", "/proc/version"], "writing /proc/version failed"),
    (READ, &[NVME, "--out"], "--out"),
    // ---- pktgen: frame sizes, addresses, ports, wires.
    (PKTGEN, &[], "<DEVICE>"),
    (PKTGEN, &["emu:igb", "--size", "9000"], "--size 9000"),
    (PKTGEN, &["emu:igb", "--size", "0"], "--size 0"),
    (PKTGEN, &["emu:igb", "--size", "59"], "--size 59"),
    (PKTGEN, &["emu:igb", "--size", "abc"], "--size"),
    (PKTGEN, &["emu:igb", "--dst-mac", "zz"], "02:00:00:00:00:02"),
    (PKTGEN, &["emu:igb", "--dst-mac", "01:02:03"], "01:02:03"),
    (PKTGEN, &["emu:igb", "--dst-mac", "02:00:00:00:00:00:00"], "02:00:00:00:00:00:00"),
    (PKTGEN, &["emu:igb", "--dst-mac", "02:00:00:00:00:gg"], "02:00:00:00:00:gg"),
    (PKTGEN, &["emu:igb", "--src-ip", "10.0.0"], "10.0.0"),
    (PKTGEN, &["emu:igb", "--src-ip", "256.0.0.1"], "256.0.0.1"),
    (PKTGEN, &["emu:igb", "--dst-ip", "abc"], "abc"),
    (PKTGEN, &["emu:igb", "--dst-ip", "10.0.0.1.5"], "10.0.0.1.5"),
    (PKTGEN, &["emu:igb", "--dport", "65536"], "--dport"),
    (PKTGEN, &["emu:igb", "--dport=-1"], "--dport"),
    (PKTGEN, &["emu:igb", "--flows", "0"], "--flows"),
    (PKTGEN, &["emu:igb", "--flows", "70000"], "--flows"),
    (PKTGEN, &["emu:igb", "--batch", "0"], "--batch"),
    (PKTGEN, &["emu:igb", "--batch", "513"], "--batch"),
    (PKTGEN, &["emu:igb", "--rate=-5"], "--rate"),
    (PKTGEN, &["emu:igb", "--rate", "abc"], "--rate"),
    (PKTGEN, &["emu:igb", "--time=inf"], "seconds"),
    (PKTGEN, &["emu:igb", "--count", "0"], "--count"),
    (PKTGEN, &["emu:igb,wire=warp:9"], "pair:NAME"),
    (PKTGEN, &["emu:igb,wire="], "for wire"),
    (PKTGEN, &["emu:igb,mac=01:00:00:00:00:01"], "unicast"),
    (PKTGEN, &["emu:igb,mac=zz"], "for mac"),
    (PKTGEN, &["emu:igb,queues=0"], "1 to 128"),
    (PKTGEN, &["emu:igb,queues=129"], "1 to 128"),
    (PKTGEN, &["emu:igb,pause=maybe"], "on or off"),
    (PKTGEN, &["emu:igb,mode=bogus"], "inline or threaded"),
    (PKTGEN, &["emu:ixgbe,size=1G"], "no option 'size'"),
    (PKTGEN, &["emu:igb,wire=loop,wire=pair:a"], "wire= is given twice"),
    (PKTGEN, &["emu:igb,remove-after=nan"], "for remove-after"),
    (PKTGEN, &["emu:igb,remove-after=-1"], "for remove-after"),
    (PKTGEN, &["emu:igb,remove-after=soon"], "for remove-after"),
    (PKTGEN, &["emu:e1000"], "'e1000'"),
    (PKTGEN, &["emu:nvme"], "not a NIC"),
    (PKTGEN, &["emu:igb,wire=pcap:/nonexistent-dir/x.pcap", "--count", "1"], "writable"),
    (PKTGEN, &["emu:igb,wire=pcap:{dir}", "--count", "1"], "{dir}"),
    (PKTGEN, &["emu:igb,wire=pcap:/proc/version", "--count", "1"], "/proc/version"),
    (PKTGEN, &["emu:igb,wire=pcap-in:{dir}/missing.pcap", "--count", "1"], "missing.pcap"),
    (PKTGEN, &["emu:igb,wire=unix:", "--count", "1"], "unix:"),
    // ---- fwd: two ports, both must be NICs.
    (FWD, &[], "<DEV1>"),
    (FWD, &["emu:igb"], "<DEV2>"),
    (FWD, &["emu:nvme", "emu:igb"], "not a NIC"),
    (FWD, &["emu:igb,wire=loop", "0000:00:00.0"], "mixed"),
    (FWD, &["0000:00:1f.7", "0000:00:1f.7"], "both ports"),
    (FWD, &["emu:igb", "emu:igb", "--batch", "0"], "--batch"),
    (FWD, &["emu:igb", "emu:igb", "--batch", "513"], "--batch"),
    (FWD, &["emu:igb", "emu:igb", "--inject", "512"], "--inject"),
    (FWD, &["emu:igb", "emu:igb", "--count", "abc"], "--count"),
    (FWD, &["emu:igb,wire=pair:a", "emu:igb,wire=pair:b", "--count", "0"], "--count"),
    (FWD, &["emu:igb", "emu:igb", "--idle-exit=-1"], "seconds"),
    (FWD, &["emu:igb,wire=pcap-in:{dir}/missing.pcap", "emu:igb"], "missing.pcap"),
    (FWD, &["emu:igb,wire=pcap-in:{dir}/garbage.pcap", "emu:igb"], "garbage.pcap"),
    (FWD, &["emu:igb,wire=pcap-in:{dir}/empty.pcap", "emu:igb"], "empty.pcap"),
    (FWD, &["emu:igb,wire=pcap-in:{dir}", "emu:igb"], "{dir}"),
    (FWD, &["emu:igb,queues=0", "emu:igb"], "1 to 128"),
    // ---- pcap: the capture file.
    (PCAP, &[], "<DEVICE>"),
    (PCAP, &["emu:igb"], "<FILE>"),
    (PCAP, &["emu:igb", "{dir}/no/such/x.pcap", "--count", "1"], "{dir}/no/such/x.pcap"),
    (PCAP, &["emu:igb", "{dir}", "--count", "1"], "{dir}"),
    (PCAP, &["emu:igb", "/proc/version", "--count", "1"], "/proc/version"),
    (PCAP, &["emu:nvme", "{dir}/x.pcap"], "not a NIC"),
    (PCAP, &["emu:igb", "{dir}/x.pcap", "--rx-queues", "0"], "--rx-queues"),
    (PCAP, &["emu:igb,wire=loop", "{dir}/x.pcap", "--rx-queues", "17", "--count", "1"], "rx_queues = 17"),
    (PCAP, &["emu:igb", "{dir}/x.pcap", "--count", "abc"], "--count"),
    (PCAP, &["emu:igb", "{dir}/x.pcap", "--count", "0"], "--count"),
    (PCAP, &["emu:igb", "{dir}/x.pcap", "--time=inf"], "seconds"),
    (PCAP, &["emu:igb", "{dir}/x.pcap", "--idle-exit=nan"], "seconds"),
    (PCAP, &["emu:igb,wire=pcap-in:{dir}/cut.pcap", "{dir}/x.pcap"], "cut.pcap"),
    (PCAP, &["emu:igb,wire=pcap:{dir}/y.pcap", "{dir}/y.pcap", "--count", "1"], "both the capture file"),
    (PCAP, &["emu:igb,wire=pcap-in:{dir}/good.pcap", "{dir}/good.pcap"], "both the capture file"),
    // ---- pcap-check: files that are not captures.
    (PCAP_CHECK, &[], "<FILE>"),
    (PCAP_CHECK, &["{dir}/missing.pcap"], "missing.pcap"),
    (PCAP_CHECK, &["{dir}"], "{dir}"),
    (PCAP_CHECK, &["{dir}/empty.pcap"], "empty.pcap"),
    (PCAP_CHECK, &["{dir}/garbage.pcap"], "garbage.pcap"),
    (PCAP_CHECK, &["{dir}/cut.pcap"], "cut.pcap"),
    (PCAP_CHECK, &["{dir}/good.pcap", "--expect", "abc"], "--expect"),
    (PCAP_CHECK, &["{dir}/good.pcap", "--expect=-1"], "--expect"),
    (PCAP_CHECK, &["{dir}/good.pcap", "--size", "abc"], "--size"),
    (PCAP_CHECK, &["{dir}/good.pcap", "--size", "0"], "--size 0"),
    (PCAP_CHECK, &["{dir}/good.pcap", "--size", "70000"], "--size 70000"),
    // ---- blkfwd: drive, port, range, engine sizes, addresses.
    (BLKFWD, &["--nvme", "emu:igb"], "not an NVMe"),
    (BLKFWD, &["--nic", "emu:nvme"], "not a NIC"),
    (BLKFWD, &["--nvme", "emu:floppy"], "floppy"),
    (BLKFWD, &["--nvme", "emu:nvme,size=0"], "for size"),
    (BLKFWD, &["--nic", "emu:igb,wire=warp:1"], "pair:NAME"),
    (BLKFWD, &["--recv", "emu:nvme"], "not a NIC"),
    (BLKFWD, &["--nvme", NVME, "--nsid", "0"], "namespace 0"),
    (BLKFWD, &["--nvme", NVME, "--nsid", "2"], "2"),
    (BLKFWD, &["--nvme", NVME, "--start", "40000"], "--start"),
    (BLKFWD, &["--nvme", NVME, "--length", "0"], "--length"),
    (BLKFWD, &["--nvme", NVME, "--length", "1G"], "--length"),
    (BLKFWD, &["--nvme", NVME, "--offset", "16m"], "--offset"),
    (BLKFWD, &["--nvme", NVME, "--io-size", "0"], "--io-size"),
    (BLKFWD, &["--nvme", NVME, "--io-size", "100"], "--io-size"),
    (BLKFWD, &["--nvme", NVME, "--io-size", "1G"], "--io-size"),
    (BLKFWD, &["--nvme", NVME, "--queue-depth", "0"], "--queue-depth"),
    (BLKFWD, &["--nvme", NVME, "--queue-depth", "1025"], "--queue-depth"),
    (BLKFWD, &["--nvme", NVME, "--buffers", "0"], "--buffers"),
    (BLKFWD, &["--nvme", NVME, "--mtu", "100"], "--mtu"),
    (BLKFWD, &["--nvme", NVME, "--mtu", "20000"], "--mtu"),
    (BLKFWD, &["--nvme", NVME, "--laps", "0"], "--laps"),
    (BLKFWD, &["--nvme", NVME, "--laps", "2", "--loop"], "--loop"),
    (BLKFWD, &["--nvme", NVME, "--time=nan"], "seconds"),
    (BLKFWD, &["--nvme", NVME, "--threads", "0"], "--threads"),
    (BLKFWD, &["--nvme", NVME, "--threads", "17"], "--threads"),
    // More threads than the port has TX queues (with the ARP queue after
    // them): named as --threads and the most that fit, not the driver's
    // `tx_queues = 9`.
    (
        BLKFWD,
        &["--nvme", NVME, "--nic", "emu:i350,wire=pcap:{dir}/t.pcap", "--recv", "none",
          "--dst-mac", "arp", "--threads", "8"],
        "--threads 8: with the ARP queue the I350 port emu:i350,wire=pcap:{dir}/t.pcap needs \
         9 TX queues, it has 8; give --threads 7 or less",
    ),
    (
        BLKFWD,
        &["--nvme", NVME, "--nic", "emu:i350,wire=pcap:{dir}/t.pcap", "--recv", "none",
          "--threads", "9"],
        "--threads 9: the I350 port emu:i350,wire=pcap:{dir}/t.pcap has 8 TX queues, one \
         per thread; give --threads 8 or less",
    ),
    (
        BLKFWD,
        &["--nvme", NVME, "--nic", "emu:ixgbe,wire=pcap:{dir}/t.pcap,queues=2", "--recv",
          "none", "--dst-mac", "arp", "--threads", "2"],
        "it has 2; give --threads 1 or less",
    ),
    (BLKFWD, &["--nvme", NVME, "--dst-mac", "zz"], "zz"),
    (BLKFWD, &["--nvme", NVME, "--src-ip", "abc"], "abc"),
    (BLKFWD, &["--nvme", NVME, "--dst-ip", "1.2.3"], "1.2.3"),
    (BLKFWD, &["--nvme", NVME, "--src-port", "70000"], "--src-port"),
    (BLKFWD, &["--nvme", NVME, "--dst-port=-1"], "--dst-port"),
    (BLKFWD, &["--nvme", NVME, "--rate=-1"], "--rate"),
    (BLKFWD, &["--nvme", NVME, "--rate", "nan"], "--rate"),
    (BLKFWD, &["--nvme", NVME, "--rate", "0"], "--rate"),
    (BLKFWD, &["--nvme", NVME, "--retries=-1"], "--retries"),
    (BLKFWD, &["--nvme", NVME, "--tx-timeout=-1"], "seconds"),
    (BLKFWD, &["--nvme", NVME, "--expect", "bogus"], "bogus"),
    (BLKFWD, &["--nvme", NVME, "--expect", "file:{dir}/missing.img"], "missing.img"),
    (BLKFWD, &["--nvme", NVME, "--expect", "pattern:xyz"], "xyz"),
    (BLKFWD, &["--nvme", "emu:nvme,file={dir}/missing.img"], "missing.img"),
    // ---- blkrecv: sources and what to compare with.
    (BLKRECV, &[], "<SOURCE>"),
    (BLKRECV, &["bogus"], "bogus"),
    (BLKRECV, &["emu:nvme"], "not a NIC"),
    (BLKRECV, &["pcap:{dir}/missing.pcap"], "missing.pcap"),
    (BLKRECV, &["pcap:{dir}/garbage.pcap"], "garbage.pcap"),
    (BLKRECV, &["pcap:{dir}/empty.pcap"], "empty.pcap"),
    (BLKRECV, &["pcap:{dir}"], "{dir}"),
    (BLKRECV, &["pcap:"], "pcap:"),
    (BLKRECV, &["udp:0.0.0.0"], "udp:0.0.0.0"),
    (BLKRECV, &["udp:0.0.0.0:99999"], "99999"),
    (BLKRECV, &["udp:256.0.0.1:9000"], "256.0.0.1"),
    (BLKRECV, &["udp:192.0.2.1:9000"], "192.0.2.1:9000"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--expect", "bogus"], "bogus"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--expect", "file:{dir}/missing.img"], "missing.img"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--expect", "pattern:xyz"], "xyz"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--laps", "0"], "--laps"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--mtu", "100"], "--mtu"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--mtu", "10000"], "--mtu"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--dst-port", "70000"], "--dst-port"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--count", "abc"], "--count"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--count", "0"], "--count"),
    (BLKRECV, &["pcap:{dir}/cut.pcap", "--wait=inf"], "seconds"),
    // ---- dmatrace: trace files, queue names, kinds, hex.
    (DMATRACE, &["show"], "<FILE>"),
    (DMATRACE, &["show", "{dir}/missing.jsonl"], "missing.jsonl"),
    (DMATRACE, &["show", "{dir}"], "{dir}"),
    (DMATRACE, &["show", "{dir}/empty.pcap"], "unknown format"),
    (DMATRACE, &["show", "{dir}/empty.jsonl"], "empty file"),
    (DMATRACE, &["show", "{dir}/garbage.jsonl"], "garbage.jsonl: line 1"),
    (DMATRACE, &["show", "{dir}/t.jsonl", "--queue", "ZZ1"], "'ZZ1' is not a queue"),
    (DMATRACE, &["show", "{dir}/t.jsonl", "--queue", "-"], "'-' is not a queue"),
    (DMATRACE, &["show", "{dir}/t.jsonl", "--kind", "bogus"], "'bogus' is not an event kind"),
    (DMATRACE, &["show", "{dir}/t.jsonl", "--cid", "65536"], "--cid"),
    (DMATRACE, &["show", "{dir}/t.jsonl", "--dev=-1"], "--dev"),
    (DMATRACE, &["decode", "sqe"], "<HEX>"),
    (DMATRACE, &["decode", "sqe", "zz"], "'z' is not a hex digit"),
    (DMATRACE, &["decode", "cqe", "00 0"], "3 hex digits"),
    (DMATRACE, &["decode", "cqe", "00"], "16 bytes (32 hex digits"),
    (DMATRACE, &["decode", "sqe", "00000000"], "64 bytes (128 hex digits"),
    (DMATRACE, &["decode", "frame", "00"], "'frame'"),
    (DMATRACE, &["convert", "{dir}/missing.jsonl", "{dir}/o.jsonl"], "missing.jsonl"),
    (DMATRACE, &["convert", "{dir}/garbage.jsonl", "{dir}/o.pcap"], "unknown format"),
    (DMATRACE, &["convert", "{dir}/garbage.jsonl"], "<OUTPUT>"),
    (DMATRACE, &["compare-qemu", "{dir}/small.jsonl"], "<QEMU_LOG>"),
    (DMATRACE, &["compare-qemu", "{dir}/missing.jsonl", "{dir}/empty.jsonl"], "missing.jsonl"),
    (DMATRACE, &["compare-qemu", "{dir}/garbage.jsonl", "{dir}/empty.jsonl"], "garbage.jsonl: line 1"),
    (DMATRACE, &["compare-qemu", "{dir}/small.jsonl", "{dir}/missing.log"], "missing.log"),
    (DMATRACE, &["compare-qemu", "{dir}/small.jsonl", "{dir}/empty.jsonl"], "no write of ASQ"),
    (DMATRACE, &["compare-qemu", "{dir}/small.jsonl", "{dir}/empty.jsonl", "--dev", "1"], "--dev 1 is not an NVMe device"),
    (DMATRACE, &["compare-qemu", "{dir}/small.jsonl", "{dir}/empty.jsonl", "--dev", "x"], "--dev"),
    // ---- --trace, --trace-events and --step (every app): refused before
    // any device is opened.
    (IDENTIFY, &[NVME, "--trace", "{dir}/t.txt"], "t.txt: unknown format; name it .jsonl"),
    (IDENTIFY, &[NVME, "--trace", "{dir}/trace"], "unknown format"),
    (IDENTIFY, &[NVME, "--trace", "{dir}/absent/t.jsonl"], "cannot create it"),
    (IDENTIFY, &[NVME, "--trace", "{dir}/t.jsonl", "--trace-events", "0"], "not a number of events"),
    (IDENTIFY, &[NVME, "--trace-events", "many"], "not a number of events"),
    (IDENTIFY, &[NVME, "--step"], "--step needs an emulated device in mode=inline"),
    (IDENTIFY, &["0000:7f:1f.7", "--step"], "--step needs an emulated device in mode=inline"),
    (PERF, &[NVME, "--step"], "--step needs an emulated device in mode=inline"),
    (PERF, &[NVME, "--trace", "{dir}/t.pcap"], "unknown format"),
    (READ, &[NVME, "--step"], "--step needs an emulated device in mode=inline"),
    (PKTGEN, &["emu:igb", "--step"], "--step needs an emulated device in mode=inline"),
    (PKTGEN, &["emu:igb", "--trace", "{dir}/t.csv"], "unknown format"),
    (FWD, &["emu:igb,wire=pair:tr-a,mode=inline", "emu:igb,wire=pair:tr-b", "--step"], "emu:igb,wire=pair:tr-b is not one"),
    (PCAP, &["emu:igb", "{dir}/out.pcap", "--step"], "--step needs an emulated device in mode=inline"),
    (BLKFWD, &["--nvme", "emu:nvme,size=1M", "--step"], "--step needs an emulated device in mode=inline"),
    (BLKFWD, &["--trace", "{dir}/t.txt"], "unknown format"),
    (BLKRECV, &["emu:igb", "--step"], "--step needs an emulated device in mode=inline"),
    (BLKRECV, &["pcap:{dir}/good.pcap", "--trace", "{dir}/t"], "unknown format"),
];

/// What went wrong with one row, or None when it was refused as it should be.
fn check(app: &str, args: &[String], want: &str) -> Option<String> {
    let mut child = Command::new(app)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .expect("the app binary runs");
    // Read stderr on a thread so a chatty app cannot block on a full pipe.
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = reader.join().unwrap();
            return Some(format!(
                "no end within {LIMIT:?} (killed); stderr: {stderr}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = reader.join().unwrap();
    let fail = |why: &str| {
        Some(format!(
            "{why}; exit {:?}; stderr:\n{stderr}",
            status.code()
        ))
    };
    match status.code() {
        None => return fail("killed by a signal"),
        Some(0) => return fail("accepted (exit 0)"),
        Some(101) => return fail("exit 101 (a panic)"),
        Some(_) => {}
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return fail("a panic");
    }
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !ALLOWED.iter().any(|a| l.starts_with(a)))
        .collect();
    if lines.len() != 1 || !lines[0].starts_with("error:") {
        return fail("not one error line");
    }
    if !lines[0].contains(want) {
        return fail(&format!("'{want}' is not in the error line"));
    }
    None
}

/// The scratch files the rows name.
fn scratch() -> String {
    let dir = common::tmpdir("bad-lines");
    std::fs::write(dir.join("empty.pcap"), b"").unwrap();
    std::fs::write(
        dir.join("garbage.pcap"),
        b"this is not a capture file at all, just text\n",
    )
    .unwrap();
    // The first 10 bytes of a pcap header (magic and version).
    let mut cut = 0xa1b2c3d4u32.to_le_bytes().to_vec();
    cut.extend_from_slice(&[2, 0, 4, 0, 0, 0]);
    std::fs::write(dir.join("cut.pcap"), &cut).unwrap();
    std::fs::write(dir.join("tiny.img"), [0u8; 100]).unwrap();
    std::fs::write(dir.join("empty.jsonl"), b"").unwrap();
    std::fs::write(dir.join("garbage.jsonl"), b"this is not a trace\n").unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/trace-small.jsonl"),
        dir.join("small.jsonl"),
    )
    .unwrap();
    // A whole pcap header and no record.
    let mut good = cut.clone();
    good.extend_from_slice(&[0; 6]);
    good.extend_from_slice(&65535u32.to_le_bytes());
    good.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(dir.join("good.pcap"), good).unwrap();
    dir.display().to_string()
}

fn name(app: &str) -> &str {
    app.rsplit('/').next().unwrap_or(app)
}

#[test]
fn every_bad_command_line_is_one_error_line_in_time() {
    let dir = scratch();
    let mut tried: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for &(app, args, want) in ROWS {
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &dir)).collect();
        let want = want.replace("{dir}", &dir);
        *tried.entry(name(app)).or_default() += 1;
        if let Some(why) = check(app, &args, &want) {
            failures.push(format!("{} {}: {why}", name(app), args.join(" ")));
        }
    }
    let total: usize = tried.values().sum();
    for (app, n) in &tried {
        println!("{app}: {n} bad command lines");
    }
    println!("total: {total} bad command lines");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {total} bad command lines were not refused well:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every app is tried, and well over a hundred lines in all.
    assert_eq!(tried.len(), 10, "{tried:?}");
    assert!(total >= 200, "{total}");
}
