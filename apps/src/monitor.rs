//! `--stats FILE` and `--prometheus FILE`: the per-second figures and the
//! final report of an app, as JSON lines and as a node_exporter
//! textfile-collector file, for an operator's monitoring and for the soak
//! script (`bench/soak.sh`). blkfwd, nvme-perf, pktgen, fwd, pcap and
//! blkrecv take both options, alone or together.
//!
//! Both files are rendered from one set of figures each second (the
//! `Figures` struct inside this module), so they never disagree: a JSON
//! key that is `null` (does not apply to the app) is a metric family left
//! out of the Prometheus file.
//!
//! # `--stats FILE`: JSON lines
//!
//! The file is created (truncated) at start. Each line is one JSON object,
//! written and flushed whole, so a reader tailing the file never sees half
//! an object. Numbers are JSON numbers; a figure that does not apply to the
//! app (frames in nvme-perf) or could not be read is `null`, never left out:
//! every line of a type has the same keys.
//!
//! **Per-second line** (`"type": "second"`):
//! - `type`: `"second"`; `app`: the program (`"blkfwd"`, `"nvme-perf"`,
//!   `"pktgen"`, `"fwd"`, `"pcap"`, `"blkrecv"`).
//! - `time_s`: seconds since the run started; `unix_s`: wall-clock time
//!   (seconds since 1970, fractional); `interval_s`: seconds since the
//!   previous line (the rates' divisor).
//! - Counters since the start of the run: `bytes` (payload bytes moved:
//!   read and sent by blkfwd, read or written by nvme-perf, of the stream
//!   by blkrecv; for pktgen, fwd and pcap the bytes of the frames sent,
//!   forwarded or captured, without FCS), `frames` (frames sent, forwarded
//!   or received), `ios` (NVMe commands completed), `reads` (of them
//!   reads), `errors` (I/Os or ranges that failed; for the NIC apps frames
//!   their ports received with a CRC error), `drops` (frames dropped: for
//!   the NIC apps by their ports on receive, missed or no descriptor).
//! - Rates over the interval: `bytes_per_s`, `frames_per_s`, `ios_per_s`.
//! - Resources: `rss_bytes` (the process's resident set, from
//!   `/proc/self/statm`); `iova_mappings`, `iova_bytes` (IOVA space handed
//!   out, with guard gaps) and `iova_top` (end of the highest live mapping)
//!   from [`dma::Mapper::iova_usage`]; `pools`: an array of
//!   `{"name", "capacity", "free", "quarantined"}`, one per DMA buffer pool
//!   the app watches, and their sums `pool_capacity`, `pool_free`,
//!   `pool_quarantined`.
//! - `ports`: one object per NIC port of pktgen, fwd, pcap and blkrecv,
//!   and blkfwd's sending port (its counts over all its TX queues)
//!   (empty for the others): `port` (as given), `queue`, the app's own
//!   counts on that queue `rx_packets`, `tx_packets`, `rx_bytes`,
//!   `tx_bytes`, and `device`: the port's own counters since it was set up
//!   ([`drivers::nic::DeviceStats`]: `rx_packets`, `tx_packets`,
//!   `rx_bytes`, `tx_bytes` (good octets, with FCS), `rx_missed`,
//!   `rx_no_desc`, `rx_no_buffer`, `rx_crc_errors`).
//!
//! **Final report** (`"type": "final"`, also `"final": true`), written once
//! at the end: `type`, `app`, `time_s`, `unix_s`, `final`, `ok` (the run's
//! verdict, as the exit status), the same resource keys as a per-second
//! line, `ports`, and the app's own report figures (blkfwd: `bytes`,
//! `frames`, `ios`, `errors`, `retries`, `failed_ranges`, `cpu_s`,
//! `gib_per_s`, the receiver's `recv_*`; nvme-perf: `ios`, `bytes`,
//! `iops`, `mib_per_s`, latency `lat_*_ns`, `errors`, `mismatches`,
//! `queue_cycles`; pktgen: `frames`, `bytes`, `secs`, `device_tx_packets`,
//! `device_tx_bytes`; fwd: `frames`, `bytes`, `secs`, `frames_0_to_1`,
//! `frames_1_to_0`, `empty_rounds`; pcap: `frames`, `bytes`, `secs`;
//! blkrecv: `end`, `secs`, `frames`, `bytes`, `complete_laps`,
//! `received`, `verified`, `mismatched`, `missing`; all: `stopped_by`,
//! `"SIGINT"` or `"SIGTERM"` when a signal ended the run, else `null`).
//!
//! Example (one line each, wrapped here):
//! ```text
//! {"type":"second","app":"nvme-perf","time_s":1.001,"unix_s":1765029000.5,"interval_s":1.001,
//!  "bytes":409600,"frames":null,"ios":100,"reads":100,"errors":0,"drops":null,
//!  "bytes_per_s":409190.8,"frames_per_s":null,"ios_per_s":99.9,"rss_bytes":9437184,
//!  "iova_mappings":3,"iova_bytes":12582912,"iova_top":4307550208,
//!  "pool_capacity":64,"pool_free":0,"pool_quarantined":0,
//!  "pools":[{"name":"io-0","capacity":64,"free":0,"quarantined":0}],"ports":[]}
//! {"type":"second","app":"pktgen","time_s":1.015,"unix_s":1796567292.428,"interval_s":1.015,
//!  "bytes":110340,"frames":1839,"ios":null,"reads":null,"errors":0,"drops":0,
//!  "bytes_per_s":108735.915,"frames_per_s":1812.265,"ios_per_s":null,"rss_bytes":3809280,
//!  "iova_mappings":4,"iova_bytes":25165824,"iova_top":4320133120,
//!  "pool_capacity":2048,"pool_free":1984,"pool_quarantined":0,
//!  "pools":[{"name":"tx","capacity":2048,"free":1984,"quarantined":0}],
//!  "ports":[{"port":"0000:03:00.0","queue":0,"rx_packets":0,"tx_packets":1839,"rx_bytes":0,
//!   "tx_bytes":110340,"device":{"rx_packets":0,"tx_packets":1839,"rx_bytes":0,
//!   "tx_bytes":117696,"rx_missed":0,"rx_no_desc":0,"rx_no_buffer":0,"rx_crc_errors":0}}]}
//! ```
//!
//! # `--prometheus FILE`: a node_exporter textfile-collector file
//!
//! The file is written at start (zero counters) and rewritten whole each
//! second and at the end, atomically: the text goes to `FILE.tmp.PID` in
//! the same directory, which is then renamed over FILE, so the collector
//! (which reads only `*.prom`) never sees half a file. The format is the
//! Prometheus text exposition format 0.0.4: a `# HELP` and a `# TYPE` line
//! per family, then its samples, without timestamps (the textfile collector
//! refuses them). Metric names start with the app's name, `-` made `_`
//! (`blkfwd_`, `nvme_perf_`); every sample has the label `app`; label
//! values escape `\`, `"` and line feeds. After the final report the file
//! stays with the final figures, `_finished 1` and `_ok`.
//!
//! | Metric (after the prefix) | Type | Labels | JSON key |
//! |---|---|---|---|
//! | `bytes_total`, `frames_total`, `ios_total`, `reads_total`, `errors_total`, `drops_total` | counter | `app` | `bytes`, `frames`, ... (absent when `null`) |
//! | `run_seconds` | gauge | `app` | `time_s` |
//! | `finished` (0 or 1), `ok` (after the end only) | gauge | `app` | `type`, `ok` |
//! | `rss_bytes`, `iova_mappings`, `iova_bytes`, `iova_top` | gauge | `app` | same |
//! | `pool_capacity`, `pool_free`, `pool_quarantined` | gauge | `app`, `pool` | `pools[]` |
//! | `port_rx_packets_total`, `port_tx_packets_total`, `port_rx_bytes_total`, `port_tx_bytes_total` | counter | `app`, `port`, `queue` | `ports[]` |
//! | `device_rx_packets_total`, `device_tx_packets_total`, `device_rx_bytes_total`, `device_tx_bytes_total`, `device_rx_missed_total`, `device_rx_no_desc_total`, `device_rx_no_buffer_total`, `device_rx_crc_errors_total` | counter | `app`, `port` | `ports[].device` |
//!
//! The rates are not in the file: Prometheus computes them
//! (`rate(blkfwd_bytes_total[1m])`). Example (part of pktgen's file):
//! ```text
//! # HELP pktgen_frames_total Frames sent or received since the start of the run.
//! # TYPE pktgen_frames_total counter
//! pktgen_frames_total{app="pktgen"} 3000
//! # HELP pktgen_finished 1 once the run has ended and this file holds its final figures, else 0.
//! # TYPE pktgen_finished gauge
//! pktgen_finished{app="pktgen"} 1
//! # HELP pktgen_pool_free Free buffers of a DMA pool.
//! # TYPE pktgen_pool_free gauge
//! pktgen_pool_free{app="pktgen",pool="tx"} 1999
//! # HELP pktgen_device_tx_packets_total Good frames the port sent (its own counter).
//! # TYPE pktgen_device_tx_packets_total counter
//! pktgen_device_tx_packets_total{app="pktgen",port="0000:03:00.0"} 3000
//! ```
//! An operator points node_exporter's `--collector.textfile.directory` at
//! a directory and the app at a file in it:
//! `blkfwd ... --loop --prometheus /var/lib/node_exporter/textfile_collector/blkfwd.prom`.
#![forbid(unsafe_code)]

use crate::AppResult;
use dma::{IovaUsage, Mapper, Pool};
use drivers::nic::DeviceStats;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The keys of a per-second line, in order (the module doc lists them).
pub const SECOND_KEYS: [&str; 23] = [
    "type",
    "app",
    "time_s",
    "unix_s",
    "interval_s",
    "bytes",
    "frames",
    "ios",
    "reads",
    "errors",
    "drops",
    "bytes_per_s",
    "frames_per_s",
    "ios_per_s",
    "rss_bytes",
    "iova_mappings",
    "iova_bytes",
    "iova_top",
    "pool_capacity",
    "pool_free",
    "pool_quarantined",
    "pools",
    "ports",
];

/// `s` as a JSON string literal, quotes included (RFC 8259 §7: `"`, `\` and
/// control characters escaped; everything else as UTF-8).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One JSON object, built key by key, in the order given.
#[derive(Debug, Clone, Default)]
pub struct JsonObject {
    body: String,
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        self.body.push_str(&json_string(key));
        self.body.push(':');
        &mut self.body
    }

    /// `key: value` with a value already in JSON (a nested object or array).
    fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key).push_str(json);
        self
    }

    /// An unsigned integer.
    pub fn u64(mut self, key: &str, v: u64) -> Self {
        let _ = write!(self.key(key), "{v}");
        self
    }

    /// An unsigned integer, or `null`.
    pub fn opt_u64(self, key: &str, v: Option<u64>) -> Self {
        match v {
            Some(v) => self.u64(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A number; `null` when not finite (JSON has no NaN or infinity).
    pub fn f64(mut self, key: &str, v: f64) -> Self {
        if v.is_finite() {
            // `{}` of a finite f64 is a valid JSON number ("1", "0.5", "1e300"
            // is printed in full), never "inf" or "NaN".
            let _ = write!(self.key(key), "{v}");
            self
        } else {
            self.raw(key, "null")
        }
    }

    /// A number, or `null`.
    pub fn opt_f64(self, key: &str, v: Option<f64>) -> Self {
        match v {
            Some(v) => self.f64(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A string.
    pub fn str(self, key: &str, v: &str) -> Self {
        let s = json_string(v);
        self.raw(key, &s)
    }

    /// A string, or `null`.
    pub fn opt_str(self, key: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A boolean.
    pub fn bool(self, key: &str, v: bool) -> Self {
        self.raw(key, if v { "true" } else { "false" })
    }

    /// The object as JSON text.
    pub fn finish(&self) -> String {
        format!("{{{}}}", self.body)
    }
}

/// The counters of a per-second line, since the start of the run. `None`:
/// the figure does not apply to the app (written as `null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Payload bytes moved.
    pub bytes: u64,
    /// Frames sent.
    pub frames: Option<u64>,
    /// NVMe commands completed.
    pub ios: Option<u64>,
    /// Of them reads.
    pub reads: Option<u64>,
    /// I/Os or frames that failed.
    pub errors: u64,
    /// Frames dropped by the app.
    pub drops: Option<u64>,
}

/// The resident set of this process in bytes: the second field of
/// `/proc/self/statm` (in pages) times the page size. None off Linux.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The page size, from the auxiliary vector's `AT_PAGESZ` (no libc call,
/// so no unsafe); 4096 if it cannot be read.
fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 4096;
    };
    auxv.chunks_exact(16)
        .map(|e| {
            let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
            (word(&e[..8]), word(&e[8..]))
        })
        .find(|&(k, _)| k == AT_PAGESZ)
        .map_or(4096, |(_, v)| v)
}

/// Packets and bytes counted by the app (driver side).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes of frames received (without FCS).
    pub rx_bytes: u64,
    /// Bytes of frames sent (without FCS).
    pub tx_bytes: u64,
}

/// One NIC port's figures in a line: what the app counted on its queue and
/// the device's own counters (read with [`drivers::nic::Nic::try_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFigures {
    /// The port as given on the command line (a PCI address or a device
    /// string).
    pub port: String,
    /// The queue the app's counts are of.
    pub queue: u16,
    /// Counted by the app (driver side), since the start of the run.
    pub app: Counts,
    /// The device's counters, since the port was initialised.
    pub device: DeviceStats,
}

/// The counters of one DMA pool.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolFigures {
    name: String,
    capacity: u64,
    free: u64,
    quarantined: u64,
}

/// Everything one line shows: the one set of figures both renderers
/// ([`Figures::json`] and [`Figures::prometheus`]) read, so the JSON lines
/// and the Prometheus file never disagree.
#[derive(Debug, Clone)]
struct Figures {
    app: &'static str,
    /// None: the final report (it has a verdict instead of rates).
    interval_s: Option<f64>,
    ok: Option<bool>,
    time_s: f64,
    unix_s: f64,
    counters: Counters,
    /// Rates over the interval: bytes, frames, ios per second.
    rates: (f64, Option<f64>, Option<f64>),
    rss: Option<u64>,
    iova: Option<IovaUsage>,
    pools: Vec<PoolFigures>,
    ports: Vec<PortFigures>,
}

impl Figures {
    fn resources(&self, o: JsonObject) -> JsonObject {
        let mut pools = String::from("[");
        for (i, p) in self.pools.iter().enumerate() {
            if i > 0 {
                pools.push(',');
            }
            pools.push_str(
                &JsonObject::new()
                    .str("name", &p.name)
                    .u64("capacity", p.capacity)
                    .u64("free", p.free)
                    .u64("quarantined", p.quarantined)
                    .finish(),
            );
        }
        pools.push(']');
        let sum = |f: fn(&PoolFigures) -> u64| self.pools.iter().map(f).sum::<u64>();
        o.opt_u64("rss_bytes", self.rss)
            .opt_u64("iova_mappings", self.iova.map(|u| u.mappings as u64))
            .opt_u64("iova_bytes", self.iova.map(|u| u.bytes))
            .opt_u64("iova_top", self.iova.map(|u| u.top))
            .u64("pool_capacity", sum(|p| p.capacity))
            .u64("pool_free", sum(|p| p.free))
            .u64("pool_quarantined", sum(|p| p.quarantined))
            .raw("pools", &pools)
    }

    fn ports_json(&self) -> String {
        let items: Vec<String> = self
            .ports
            .iter()
            .map(|p| {
                let d = &p.device;
                let dev = JsonObject::new()
                    .u64("rx_packets", d.rx_packets)
                    .u64("tx_packets", d.tx_packets)
                    .u64("rx_bytes", d.rx_bytes)
                    .u64("tx_bytes", d.tx_bytes)
                    .u64("rx_missed", d.rx_missed)
                    .u64("rx_no_desc", d.rx_no_desc)
                    .u64("rx_no_buffer", d.rx_no_buffer)
                    .u64("rx_crc_errors", d.rx_crc_errors)
                    .finish();
                JsonObject::new()
                    .str("port", &p.port)
                    .u64("queue", p.queue.into())
                    .u64("rx_packets", p.app.rx_packets)
                    .u64("tx_packets", p.app.tx_packets)
                    .u64("rx_bytes", p.app.rx_bytes)
                    .u64("tx_bytes", p.app.tx_bytes)
                    .raw("device", &dev)
                    .finish()
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// The JSON line: a per-second line, or the head of the final report
    /// (the app's own figures are spliced after it).
    fn json(&self) -> String {
        let kind = if self.interval_s.is_some() {
            "second"
        } else {
            "final"
        };
        let mut o = JsonObject::new()
            .str("type", kind)
            .str("app", self.app)
            .f64("time_s", self.time_s)
            .f64("unix_s", self.unix_s);
        if let Some(dt) = self.interval_s {
            let c = &self.counters;
            o = o
                .f64("interval_s", dt)
                .u64("bytes", c.bytes)
                .opt_u64("frames", c.frames)
                .opt_u64("ios", c.ios)
                .opt_u64("reads", c.reads)
                .u64("errors", c.errors)
                .opt_u64("drops", c.drops)
                .f64("bytes_per_s", self.rates.0)
                .opt_f64("frames_per_s", self.rates.1)
                .opt_f64("ios_per_s", self.rates.2);
        } else {
            o = o.bool("final", true).bool("ok", self.ok.unwrap_or(false));
        }
        self.resources(o).raw("ports", &self.ports_json()).finish()
    }

    /// The Prometheus text (exposition format 0.0.4, as node_exporter's
    /// textfile collector reads it): the counters as `_total` counters, the
    /// resources as gauges; no timestamps (the collector refuses them).
    fn prometheus(&self) -> String {
        let mut p = PromText::new(self.app);
        let app = [("app", self.app)];
        let c = &self.counters;
        let counters: [(&str, Option<u64>, &str); 6] = [
            ("bytes_total", Some(c.bytes), "Bytes moved since the start of the run: payload (blkfwd, nvme-perf, blkrecv) or frames without FCS (pktgen, fwd, pcap)."),
            ("frames_total", c.frames, "Frames sent or received since the start of the run."),
            ("ios_total", c.ios, "NVMe commands completed since the start of the run."),
            ("reads_total", c.reads, "NVMe reads completed since the start of the run."),
            ("errors_total", Some(c.errors), "I/Os or frames that failed since the start of the run."),
            ("drops_total", c.drops, "Frames dropped since the start of the run (by the app, or by its ports on receive)."),
        ];
        for (name, v, help) in counters {
            if let Some(v) = v {
                p.family(name, "counter", help, &[(&app[..], v as f64)]);
            }
        }
        p.family(
            "run_seconds",
            "gauge",
            "Seconds since the run started.",
            &[(&app[..], self.time_s)],
        );
        p.family(
            "finished",
            "gauge",
            "1 once the run has ended and this file holds its final figures, else 0.",
            &[(&app[..], if self.ok.is_some() { 1.0 } else { 0.0 })],
        );
        if let Some(ok) = self.ok {
            p.family(
                "ok",
                "gauge",
                "The run's verdict (1: passed, exit status 0), once it has ended.",
                &[(&app[..], if ok { 1.0 } else { 0.0 })],
            );
        }
        let gauges: [(&str, Option<u64>, &str); 4] = [
            (
                "rss_bytes",
                self.rss,
                "Resident set of the process in bytes.",
            ),
            (
                "iova_mappings",
                self.iova.map(|u| u.mappings as u64),
                "Live IOVA mappings.",
            ),
            (
                "iova_bytes",
                self.iova.map(|u| u.bytes),
                "IOVA space handed out in bytes, with guard gaps.",
            ),
            (
                "iova_top",
                self.iova.map(|u| u.top),
                "End of the highest live IOVA mapping.",
            ),
        ];
        for (name, v, help) in gauges {
            if let Some(v) = v {
                p.family(name, "gauge", help, &[(&app[..], v as f64)]);
            }
        }
        let pool_labels: Vec<[(&str, &str); 2]> = self
            .pools
            .iter()
            .map(|q| [("app", self.app), ("pool", q.name.as_str())])
            .collect();
        let pool_gauges: [Field<PoolFigures>; 3] = [
            ("pool_capacity", |q| q.capacity, "Buffers of a DMA pool."),
            ("pool_free", |q| q.free, "Free buffers of a DMA pool."),
            (
                "pool_quarantined",
                |q| q.quarantined,
                "Buffers of a DMA pool held back after a device timeout.",
            ),
        ];
        for (name, f, help) in pool_gauges {
            let samples: Vec<(&[(&str, &str)], f64)> = self
                .pools
                .iter()
                .zip(&pool_labels)
                .map(|(q, l)| (&l[..], f(q) as f64))
                .collect();
            p.family(name, "gauge", help, &samples);
        }
        let queues: Vec<String> = self.ports.iter().map(|q| q.queue.to_string()).collect();
        let queue_labels: Vec<[(&str, &str); 3]> = self
            .ports
            .iter()
            .zip(&queues)
            .map(|(q, n)| {
                [
                    ("app", self.app),
                    ("port", q.port.as_str()),
                    ("queue", n.as_str()),
                ]
            })
            .collect();
        let port_labels: Vec<[(&str, &str); 2]> = self
            .ports
            .iter()
            .map(|q| [("app", self.app), ("port", q.port.as_str())])
            .collect();
        let by_queue: [Field<Counts>; 4] = [
            (
                "port_rx_packets_total",
                |c| c.rx_packets,
                "Frames the app received on the queue.",
            ),
            (
                "port_tx_packets_total",
                |c| c.tx_packets,
                "Frames the app sent on the queue.",
            ),
            (
                "port_rx_bytes_total",
                |c| c.rx_bytes,
                "Bytes of frames the app received on the queue (without FCS).",
            ),
            (
                "port_tx_bytes_total",
                |c| c.tx_bytes,
                "Bytes of frames the app sent on the queue (without FCS).",
            ),
        ];
        for (name, f, help) in by_queue {
            let samples: Vec<(&[(&str, &str)], f64)> = self
                .ports
                .iter()
                .zip(&queue_labels)
                .map(|(q, l)| (&l[..], f(&q.app) as f64))
                .collect();
            p.family(name, "counter", help, &samples);
        }
        let device: [Field<DeviceStats>; 8] = [
            (
                "device_rx_packets_total",
                |d| d.rx_packets,
                "Good frames the port received (its own counter).",
            ),
            (
                "device_tx_packets_total",
                |d| d.tx_packets,
                "Good frames the port sent (its own counter).",
            ),
            (
                "device_rx_bytes_total",
                |d| d.rx_bytes,
                "Good octets the port received (its own counter).",
            ),
            (
                "device_tx_bytes_total",
                |d| d.tx_bytes,
                "Good octets the port sent (its own counter).",
            ),
            (
                "device_rx_missed_total",
                |d| d.rx_missed,
                "Frames the port lost for lack of packet buffer space.",
            ),
            (
                "device_rx_no_desc_total",
                |d| d.rx_no_desc,
                "Frames the port dropped for lack of a free RX descriptor.",
            ),
            (
                "device_rx_no_buffer_total",
                |d| d.rx_no_buffer,
                "Frames that arrived while no RX descriptor was free.",
            ),
            (
                "device_rx_crc_errors_total",
                |d| d.rx_crc_errors,
                "Frames the port received with a CRC error.",
            ),
        ];
        for (name, f, help) in device {
            let samples: Vec<(&[(&str, &str)], f64)> = self
                .ports
                .iter()
                .zip(&port_labels)
                .map(|(q, l)| (&l[..], f(&q.device) as f64))
                .collect();
            p.family(name, "counter", help, &samples);
        }
        p.text
    }
}

/// A metric family read from a struct: name, the field, HELP text.
type Field<T> = (&'static str, fn(&T) -> u64, &'static str);

/// Prometheus text exposition (format 0.0.4), family by family.
struct PromText {
    prefix: String,
    text: String,
}

impl PromText {
    /// Metric names start with the app's name, `-` made `_` (metric names
    /// are `[a-zA-Z_:][a-zA-Z0-9_:]*`).
    fn new(app: &str) -> Self {
        let prefix = app
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        PromText {
            prefix,
            text: String::new(),
        }
    }

    /// `# HELP`, `# TYPE` and the samples of one family; nothing for a
    /// family without samples.
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        if samples.is_empty() {
            return;
        }
        let name = format!("{}_{name}", self.prefix);
        let _ = writeln!(self.text, "# HELP {name} {}", prom_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            self.text.push_str(&name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{k}=\"{}\"", prom_label_value(val));
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {}", prom_value(*v));
        }
    }
}

/// A label value escaped as the exposition format wants: `\` as `\\`, `"`
/// as `\"`, a line feed as `\n`.
pub fn prom_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escaped: `\` as `\\`, a line feed as `\n`.
fn prom_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: Go's ParseFloat reads every form `{}` prints for a
/// finite f64 (integers print without a fraction); the special values are
/// spelled as the format says.
fn prom_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// `--prometheus FILE`: rewritten whole each time, atomically (written to
/// `FILE.tmp.PID` in the same directory, then renamed over FILE), so the
/// textfile collector never reads half a file. Its glob is `*.prom`, so
/// the temporary file is never read.
#[derive(Debug)]
struct PromFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl PromFile {
    fn new(path: &Path) -> Self {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp.{}", std::process::id()));
        PromFile {
            path: path.to_path_buf(),
            tmp: path.with_file_name(name),
        }
    }

    fn write(&self, text: &str) -> std::io::Result<()> {
        let r = (|| {
            let mut f = File::create(&self.tmp)?;
            f.write_all(text.as_bytes())?;
            std::fs::rename(&self.tmp, &self.path)
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        r
    }
}

/// The writer behind `--stats FILE` and `--prometheus FILE` (either or
/// both): one set of figures per second, rendered as a JSON line and as the
/// Prometheus file.
pub struct StatsFile {
    json: Option<(PathBuf, File)>,
    prom: Option<PromFile>,
    app: &'static str,
    start: Instant,
    last: (Instant, Counters),
    pools: Vec<(String, Pool)>,
    mapper: Option<Arc<dyn Mapper>>,
    ports: Vec<PortFigures>,
    /// The first write error; nothing more is written after it.
    failed: Option<String>,
}

impl std::fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsFile")
            .field("json", &self.json.as_ref().map(|j| &j.0))
            .field("prom", &self.prom)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl StatsFile {
    /// Create (or truncate) `path` for `app`'s JSON lines; the run's clock
    /// starts now.
    pub fn create(path: &Path, app: &'static str) -> AppResult<Self> {
        Self::open(app, Some(path), None).map(|f| f.expect("a path was given"))
    }

    /// The writer of `--stats` (`json`) and `--prometheus` (`prom`), or
    /// None when neither is given. Both files are written at once (the
    /// Prometheus file with zero counters), so a path that cannot be
    /// written is an error before the run starts.
    pub fn open(
        app: &'static str,
        json: Option<&Path>,
        prom: Option<&Path>,
    ) -> AppResult<Option<Self>> {
        if json.is_none() && prom.is_none() {
            return Ok(None);
        }
        let json = match json {
            Some(path) => Some((
                path.to_path_buf(),
                File::create(path).map_err(|e| {
                    format!(
                        "--stats {}: cannot create it ({e}); give a path in a writable directory",
                        path.display()
                    )
                })?,
            )),
            None => None,
        };
        let now = Instant::now();
        let f = StatsFile {
            json,
            prom: prom.map(PromFile::new),
            app,
            start: now,
            last: (now, Counters::default()),
            pools: Vec::new(),
            mapper: None,
            ports: Vec::new(),
            failed: None,
        };
        if let Some(p) = &f.prom {
            let text = f.figures(now, None, Counters::default()).prometheus();
            p.write(&text).map_err(|e| {
                format!(
                    "--prometheus {}: cannot write it ({e}); give a path in a writable directory \
                     (node_exporter's --collector.textfile.directory)",
                    p.path.display()
                )
            })?;
        }
        Ok(Some(f))
    }

    /// Report `pool`'s counts under `name` in every line.
    pub fn watch_pool(&mut self, name: impl Into<String>, pool: &Pool) {
        self.pools.push((name.into(), pool.clone()));
    }

    /// Report the IOVA use of `mapper` in every line.
    pub fn watch_mapper(&mut self, mapper: Arc<dyn Mapper>) {
        self.mapper = Some(mapper);
    }

    /// The NIC ports' figures for the next lines (a NIC app sets them
    /// before each [`StatsFile::second`] and [`StatsFile::finish`]).
    pub fn set_ports(&mut self, ports: Vec<PortFigures>) {
        self.ports = ports;
    }

    /// Restart the clock (the run proper begins after setup).
    pub fn restart(&mut self) {
        self.start = Instant::now();
        self.last = (self.start, Counters::default());
    }

    /// Whether a second has passed since the last line.
    pub fn due(&self) -> bool {
        self.last.0.elapsed() >= std::time::Duration::from_secs(1)
    }

    /// The figures now: a per-second line (`ok` None, rates against the
    /// last line) or the final report.
    fn figures(&self, now: Instant, ok: Option<bool>, c: Counters) -> Figures {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let (t0, prev) = self.last;
        let dt = now.duration_since(t0).as_secs_f64();
        let rate = |a: u64, b: u64| {
            if dt > 0.0 {
                round3(a.saturating_sub(b) as f64 / dt)
            } else {
                0.0
            }
        };
        Figures {
            app: self.app,
            interval_s: ok.is_none().then_some(round3(dt)),
            ok,
            time_s: round3(now.duration_since(self.start).as_secs_f64()),
            unix_s: round3(unix),
            counters: c,
            rates: (
                rate(c.bytes, prev.bytes),
                c.frames.map(|f| rate(f, prev.frames.unwrap_or(0))),
                c.ios.map(|i| rate(i, prev.ios.unwrap_or(0))),
            ),
            rss: rss_bytes(),
            iova: self.mapper.as_ref().and_then(|m| m.iova_usage()),
            pools: self
                .pools
                .iter()
                .map(|(name, p)| PoolFigures {
                    name: name.clone(),
                    capacity: p.capacity() as u64,
                    free: p.free_count() as u64,
                    quarantined: p.quarantined() as u64,
                })
                .collect(),
            ports: self.ports.clone(),
        }
    }

    /// Write `fig`: `json` (the line) to the JSON file, the Prometheus
    /// rendering to its file. The first failure is a warning; nothing more
    /// is written after it.
    fn write(&mut self, fig: &Figures, json: String) {
        if self.failed.is_some() {
            return;
        }
        if let Some((path, out)) = &mut self.json {
            let mut text = json;
            text.push('\n');
            if let Err(e) = out.write_all(text.as_bytes()) {
                eprintln!(
                    "warning: --stats {}: writing failed ({e}); no more lines are written",
                    path.display()
                );
                self.failed = Some(format!("--stats {}: writing failed ({e})", path.display()));
                return;
            }
        }
        if let Some(p) = &self.prom {
            if let Err(e) = p.write(&fig.prometheus()) {
                eprintln!(
                    "warning: --prometheus {}: writing failed ({e}); it is not updated any more",
                    p.path.display()
                );
                self.failed = Some(format!(
                    "--prometheus {}: writing failed ({e})",
                    p.path.display()
                ));
            }
        }
    }

    /// Write the per-second line for the counters `c`.
    pub fn second(&mut self, c: Counters) {
        let now = Instant::now();
        let fig = self.figures(now, None, c);
        self.last = (now, c);
        let json = fig.json();
        self.write(&fig, json);
    }

    /// Write the final report: `c` are the run's final counters (the
    /// Prometheus file's last values), `report` holds the app's figures
    /// for the JSON line; the type, times, verdict `ok` and resources are
    /// added here. An error if any line could not be written (the files
    /// are then incomplete or stale).
    pub fn finish(&mut self, ok: bool, c: Counters, report: JsonObject) -> AppResult<()> {
        let fig = self.figures(Instant::now(), Some(ok), c);
        let body = report.finish();
        // Splice the app's keys after ours: both are objects.
        let mut line = fig.json();
        if body.len() > 2 {
            line.pop();
            line.push(',');
            line.push_str(&body[1..]);
        }
        self.write(&fig, line);
        match &self.failed {
            Some(e) => Err(format!("{e}; the file is incomplete").into()),
            None => Ok(()),
        }
    }
}

/// `v` rounded to 3 decimals (milliseconds, or a thousandth of a unit per
/// second), so lines stay short.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A JSON value, as [`parse_json`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any number.
    Number(f64),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<JsonValue>),
    /// An object: keys in file order.
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        match self {
            JsonValue::Object(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The keys of an object, in order.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            JsonValue::Object(kv) => kv.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            JsonValue::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Parse one JSON text strictly (RFC 8259: no trailing commas, no NaN, no
/// text after the value), for tests and tools that read stats files back.
pub fn parse_json(s: &str) -> Result<JsonValue, String> {
    let mut p = Parser {
        b: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("text after the value at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.b[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<JsonValue, String> {
        self.ws();
        self.depth += 1;
        if self.depth > 64 {
            return self.err("nesting deeper than 64");
        }
        let v = match self.b.get(self.i) {
            None => return self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut kv = Vec::new();
                self.ws();
                if !self.eat("}") {
                    loop {
                        self.ws();
                        let JsonValue::String(k) = self.string()? else {
                            unreachable!("string() returns strings")
                        };
                        self.ws();
                        if !self.eat(":") {
                            return self.err("expected ':'");
                        }
                        let v = self.value()?;
                        kv.push((k, v));
                        self.ws();
                        if self.eat("}") {
                            break;
                        }
                        if !self.eat(",") {
                            return self.err("expected ',' or '}'");
                        }
                    }
                }
                JsonValue::Object(kv)
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if !self.eat("]") {
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        if self.eat("]") {
                            break;
                        }
                        if !self.eat(",") {
                            return self.err("expected ',' or ']'");
                        }
                    }
                }
                JsonValue::Array(items)
            }
            Some(b'"') => self.string()?,
            Some(_) if self.eat("null") => JsonValue::Null,
            Some(_) if self.eat("true") => JsonValue::Bool(true),
            Some(_) if self.eat("false") => JsonValue::Bool(false),
            Some(_) => self.number()?,
        };
        self.depth -= 1;
        Ok(v)
    }

    fn string(&mut self) -> Result<JsonValue, String> {
        if !self.eat("\"") {
            return self.err("expected a string");
        }
        let mut out = String::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(JsonValue::String(out)),
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or("bad \\u escape")?;
                            self.i += 4;
                            // Surrogate pairs are not needed for what we
                            // write; a lone surrogate is refused.
                            out.push(char::from_u32(code).ok_or("\\u escape of a surrogate")?);
                        }
                        _ => return self.err("unknown escape"),
                    }
                }
                c if c < 0x20 => return self.err("control character in a string"),
                _ => {
                    // Copy one whole UTF-8 sequence (the input is a &str).
                    let start = self.i - 1;
                    while self.i < self.b.len() && (self.b[self.i] & 0xc0) == 0x80 {
                        self.i += 1;
                    }
                    out.push_str(
                        std::str::from_utf8(&self.b[start..self.i]).map_err(|e| e.to_string())?,
                    );
                }
            }
        }
    }

    fn number(&mut self) -> Result<JsonValue, String> {
        let start = self.i;
        self.eat("-");
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.i < p.b.len() && p.b[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - s
        };
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return self.err("bad number");
        }
        if self.eat(".") && digits(self) == 0 {
            return self.err("bad fraction");
        }
        if self.eat("e") || self.eat("E") {
            if !self.eat("+") {
                self.eat("-");
            }
            if digits(self) == 0 {
                return self.err("bad exponent");
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|e| e.to_string())?;
        text.parse()
            .map(JsonValue::Number)
            .map_err(|_| format!("bad number at byte {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dma::{EmuIommu, RegionOptions};

    #[test]
    fn strings_are_escaped_and_read_back() {
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h é ☃ /";
        let s = json_string(nasty);
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh é ☃ /\"");
        assert_eq!(parse_json(&s), Ok(JsonValue::String(nasty.to_string())));
    }

    #[test]
    fn objects_hold_every_kind_and_non_finite_numbers_are_null() {
        let o = JsonObject::new()
            .u64("n", u64::MAX)
            .f64("x", 0.5)
            .f64("nan", f64::NAN)
            .f64("inf", f64::INFINITY)
            .f64("big", 1e300)
            .opt_u64("none", None)
            .bool("t", true)
            .str("k\"ey", "v")
            .finish();
        let v = parse_json(&o).unwrap();
        assert_eq!(
            v.keys(),
            ["n", "x", "nan", "inf", "big", "none", "t", "k\"ey"]
        );
        assert_eq!(v.get("n").unwrap().as_f64(), Some(u64::MAX as f64));
        assert_eq!(v.get("x").unwrap().as_f64(), Some(0.5));
        assert_eq!(v.get("nan"), Some(&JsonValue::Null));
        assert_eq!(v.get("inf"), Some(&JsonValue::Null));
        assert_eq!(v.get("big").unwrap().as_f64(), Some(1e300));
        assert_eq!(v.get("t"), Some(&JsonValue::Bool(true)));
        assert_eq!(JsonObject::new().finish(), "{}");
    }

    #[test]
    fn the_parser_refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1,]",
            "NaN",
            "inf",
            "01",
            "1.",
            "-",
            "\"\u{1}\"",
            "{a:1}",
            "{\"a\" 1}",
            "1 2",
            "\"\\x\"",
            "tru",
        ] {
            assert!(parse_json(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse_json(" [1, -2.5e3, null, {\"a\": []}] ").unwrap(),
            JsonValue::Array(vec![
                JsonValue::Number(1.0),
                JsonValue::Number(-2500.0),
                JsonValue::Null,
                JsonValue::Object(vec![("a".into(), JsonValue::Array(vec![]))]),
            ])
        );
    }

    #[test]
    fn rss_is_read_from_statm() {
        let rss = rss_bytes().expect("Linux has /proc/self/statm");
        // A test process holds at least a megabyte and less than its whole
        // address space.
        assert!((1 << 20..1 << 40).contains(&rss), "{rss}");
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }

    #[test]
    fn a_stats_file_has_one_object_per_line_with_the_documented_keys() {
        let path = std::env::temp_dir().join(format!("monitor-test-{}.jsonl", std::process::id()));
        let iommu = Arc::new(EmuIommu::new());
        let pool = Pool::new(iommu.clone(), 8, 4096, RegionOptions::EMULATED).unwrap();
        let mut f = StatsFile::create(&path, "test").unwrap();
        f.watch_pool("io \"0\"", &pool);
        f.watch_mapper(iommu.clone());
        let held: Vec<_> = (0..3).map(|_| pool.alloc().unwrap()).collect();
        f.second(Counters {
            bytes: 1000,
            frames: None,
            ios: Some(10),
            reads: Some(7),
            errors: 0,
            drops: None,
        });
        f.second(Counters {
            bytes: 3000,
            frames: None,
            ios: Some(30),
            reads: Some(20),
            errors: 1,
            drops: None,
        });
        drop(held);
        let end = Counters {
            bytes: 3000,
            frames: None,
            ios: Some(30),
            reads: Some(20),
            errors: 1,
            drops: None,
        };
        f.finish(
            false,
            end,
            JsonObject::new().u64("ios", 30).str("note", "x\ny"),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<JsonValue> = text
            .lines()
            .map(|l| parse_json(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3);
        for l in &lines[..2] {
            assert_eq!(l.keys(), SECOND_KEYS);
            assert_eq!(l.get("type"), Some(&JsonValue::String("second".into())));
            assert_eq!(l.get("frames"), Some(&JsonValue::Null));
            assert_eq!(l.get("pool_capacity").unwrap().as_f64(), Some(8.0));
            assert_eq!(l.get("pool_free").unwrap().as_f64(), Some(5.0));
            assert_eq!(l.get("iova_mappings").unwrap().as_f64(), Some(1.0));
            assert_eq!(l.get("iova_bytes").unwrap().as_f64(), Some(4.0 * 1048576.0));
            let JsonValue::Array(pools) = l.get("pools").unwrap() else {
                panic!("pools is not an array")
            };
            assert_eq!(pools[0].keys(), ["name", "capacity", "free", "quarantined"]);
            assert_eq!(
                pools[0].get("name"),
                Some(&JsonValue::String("io \"0\"".into()))
            );
        }
        assert_eq!(lines[1].get("ios").unwrap().as_f64(), Some(30.0));
        assert_eq!(lines[1].get("errors").unwrap().as_f64(), Some(1.0));
        let rate = lines[1].get("ios_per_s").unwrap().as_f64().unwrap();
        let dt = lines[1].get("interval_s").unwrap().as_f64().unwrap();
        if dt > 0.0 {
            assert!((rate * dt - 20.0).abs() < 0.5, "{rate} * {dt}");
        }
        let fin = &lines[2];
        assert_eq!(fin.get("type"), Some(&JsonValue::String("final".into())));
        assert_eq!(fin.get("final"), Some(&JsonValue::Bool(true)));
        assert_eq!(fin.get("ok"), Some(&JsonValue::Bool(false)));
        assert_eq!(fin.get("pool_free").unwrap().as_f64(), Some(8.0));
        assert_eq!(fin.get("note"), Some(&JsonValue::String("x\ny".into())));
        assert!(fin.get("rss_bytes").unwrap().as_f64().unwrap() > 0.0);
    }

    #[test]
    fn prometheus_label_values_and_help_are_escaped() {
        assert_eq!(prom_label_value("a\\b\"c\nd é"), "a\\\\b\\\"c\\nd é");
        assert_eq!(prom_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
        assert_eq!(prom_value(1.0), "1");
        assert_eq!(prom_value(0.25), "0.25");
        assert_eq!(prom_value(f64::INFINITY), "+Inf");
        assert_eq!(prom_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(prom_value(f64::NAN), "NaN");
        assert_eq!(PromText::new("nvme-perf").prefix, "nvme_perf");
    }

    /// Both files from one set of figures: the Prometheus file holds what
    /// the JSON line says, is replaced whole (no temporary file left), and
    /// ends with the final counters and the verdict.
    #[test]
    fn the_prometheus_file_says_what_the_json_line_says() {
        let dir = std::env::temp_dir().join(format!("monitor-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (json, prom) = (dir.join("s.jsonl"), dir.join("t.prom"));
        let iommu = Arc::new(EmuIommu::new());
        let pool = Pool::new(iommu.clone(), 8, 4096, RegionOptions::EMULATED).unwrap();
        let mut f = StatsFile::open("test-app", Some(&json), Some(&prom))
            .unwrap()
            .unwrap();
        // Written at once, with zero counters and no port yet.
        let first = std::fs::read_to_string(&prom).unwrap();
        assert!(
            first.contains("\ntest_app_bytes_total{app=\"test-app\"} 0\n"),
            "{first}"
        );
        assert!(
            first.contains("\ntest_app_finished{app=\"test-app\"} 0\n"),
            "{first}"
        );
        assert!(!first.contains("test_app_ok"), "{first}");
        f.watch_pool("io \"0\"", &pool);
        f.watch_mapper(iommu.clone());
        let held: Vec<_> = (0..3).map(|_| pool.alloc().unwrap()).collect();
        let device = DeviceStats {
            rx_packets: 11,
            tx_packets: 12,
            rx_bytes: 13,
            tx_bytes: 14,
            rx_missed: 15,
            rx_no_desc: 16,
            rx_no_buffer: 17,
            rx_crc_errors: 18,
        };
        f.set_ports(vec![PortFigures {
            port: "emu:a\\b\"c\n".into(),
            queue: 0,
            app: Counts {
                rx_packets: 1,
                tx_packets: 2,
                rx_bytes: 3,
                tx_bytes: 4,
            },
            device,
        }]);
        let c = Counters {
            bytes: 1000,
            frames: Some(7),
            ios: None,
            reads: None,
            errors: 2,
            drops: Some(31),
        };
        f.second(c);
        let text = std::fs::read_to_string(&prom).unwrap();
        let line = parse_json(std::fs::read_to_string(&json).unwrap().trim_end()).unwrap();
        let lbl = "{app=\"test-app\"}";
        let port = "port=\"emu:a\\\\b\\\"c\\n\"";
        for want in [
            "# HELP test_app_bytes_total Bytes moved since the start of the run: payload (blkfwd, nvme-perf, blkrecv) or frames without FCS (pktgen, fwd, pcap)."
                .to_string(),
            "# TYPE test_app_bytes_total counter".into(),
            format!("test_app_bytes_total{lbl} 1000"),
            format!("test_app_frames_total{lbl} 7"),
            format!("test_app_errors_total{lbl} 2"),
            format!("test_app_drops_total{lbl} 31"),
            "# TYPE test_app_rss_bytes gauge".into(),
            format!("test_app_iova_mappings{lbl} 1"),
            format!("test_app_iova_bytes{lbl} 4194304"),
            "test_app_pool_free{app=\"test-app\",pool=\"io \\\"0\\\"\"} 5".into(),
            "test_app_pool_capacity{app=\"test-app\",pool=\"io \\\"0\\\"\"} 8".into(),
            format!("test_app_port_tx_bytes_total{{app=\"test-app\",{port},queue=\"0\"}} 4"),
            format!("test_app_device_rx_crc_errors_total{{app=\"test-app\",{port}}} 18"),
            format!("test_app_device_rx_missed_total{{app=\"test-app\",{port}}} 15"),
            format!("test_app_finished{lbl} 0"),
        ] {
            assert!(text.lines().any(|l| l == want), "{want:?} missing:\n{text}");
        }
        // Not applicable: no family at all (null in the JSON line).
        assert!(
            !text.contains("ios_total") && !text.contains("reads_total"),
            "{text}"
        );
        assert_eq!(line.get("ios"), Some(&JsonValue::Null));
        assert_eq!(line.get("drops").unwrap().as_f64(), Some(31.0));
        let JsonValue::Array(ports) = line.get("ports").unwrap() else {
            panic!("ports is not an array")
        };
        assert_eq!(
            ports[0].get("port"),
            Some(&JsonValue::String("emu:a\\b\"c\n".into()))
        );
        let dev = ports[0].get("device").unwrap();
        assert_eq!(dev.get("rx_crc_errors").unwrap().as_f64(), Some(18.0));
        assert_eq!(dev.get("rx_no_buffer").unwrap().as_f64(), Some(17.0));
        assert_eq!(ports[0].get("tx_bytes").unwrap().as_f64(), Some(4.0));
        drop(held);
        let end = Counters {
            bytes: 5000,
            frames: Some(9),
            ..c
        };
        f.finish(true, end, JsonObject::new().u64("frames", 9))
            .unwrap();
        let text = std::fs::read_to_string(&prom).unwrap();
        for want in [
            format!("test_app_bytes_total{lbl} 5000"),
            format!("test_app_frames_total{lbl} 9"),
            format!("test_app_finished{lbl} 1"),
            format!("test_app_ok{lbl} 1"),
            "test_app_pool_free{app=\"test-app\",pool=\"io \\\"0\\\"\"} 8".into(),
        ] {
            assert!(text.lines().any(|l| l == want), "{want:?} missing:\n{text}");
        }
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["s.jsonl", "t.prom"], "a temporary file was left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_prometheus_path_is_one_line_naming_it() {
        let e = StatsFile::open("test", None, Some(Path::new("/nonexistent-dir/t.prom")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--prometheus /nonexistent-dir/t.prom: cannot write it"),
            "{e}"
        );
        assert!(e.contains("writable directory") && !e.contains('\n'), "{e}");
        assert!(StatsFile::open("test", None, None).unwrap().is_none());
    }

    #[test]
    fn an_unwritable_path_is_one_line_naming_it() {
        let e = StatsFile::create(Path::new("/nonexistent-dir/s.jsonl"), "test").unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("--stats /nonexistent-dir/s.jsonl: cannot create it"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
