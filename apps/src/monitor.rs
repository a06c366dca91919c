//! `--stats FILE`: the per-second figures and the final report of an app as
//! JSON lines, for an operator's monitoring and for the soak script
//! (`bench/soak.sh`).
//!
//! The file is created (truncated) at start. Each line is one JSON object,
//! written and flushed whole, so a reader tailing the file never sees half
//! an object. Numbers are JSON numbers; a figure that does not apply to the
//! app (frames in nvme-perf) or could not be read is `null`, never left out:
//! every line of a type has the same keys.
//!
//! **Per-second line** (`"type": "second"`):
//! - `type`: `"second"`; `app`: the program (`"blkfwd"`, `"nvme-perf"`).
//! - `time_s`: seconds since the run started; `unix_s`: wall-clock time
//!   (seconds since 1970, fractional); `interval_s`: seconds since the
//!   previous line (the rates' divisor).
//! - Counters since the start of the run: `bytes` (payload bytes moved),
//!   `frames` (frames sent), `ios` (NVMe commands completed), `reads` (of
//!   them reads), `errors` (I/Os or frames that failed), `drops` (frames
//!   the app dropped).
//! - Rates over the interval: `bytes_per_s`, `frames_per_s`, `ios_per_s`.
//! - Resources: `rss_bytes` (the process's resident set, from
//!   `/proc/self/statm`); `iova_mappings`, `iova_bytes` (IOVA space handed
//!   out, with guard gaps) and `iova_top` (end of the highest live mapping)
//!   from [`dma::Mapper::iova_usage`]; `pools`: an array of
//!   `{"name", "capacity", "free", "quarantined"}`, one per DMA buffer pool
//!   the app watches, and their sums `pool_capacity`, `pool_free`,
//!   `pool_quarantined`.
//!
//! **Final report** (`"type": "final"`, also `"final": true`), written once
//! at the end: `type`, `final`, `app`, `time_s`, `unix_s`, `ok` (the run's
//! verdict, as the exit status), the same resource keys as a per-second
//! line, and the app's own report figures (blkfwd: `bytes`, `frames`, `ios`,
//! `errors`, `retries`, `failed_ranges`, `cpu_s`, `gib_per_s`; nvme-perf:
//! `ios`, `bytes`, `iops`, `mib_per_s`, latency `lat_*_ns`, `errors`,
//! `mismatches`, `queue_cycles`; both: `stopped_by`, `"SIGINT"` or
//! `"SIGTERM"` when a signal ended the run, else `null`).
//!
//! Example (one line each, wrapped here):
//! ```text
//! {"type":"second","app":"nvme-perf","time_s":1.001,"unix_s":1765029000.5,"interval_s":1.001,
//!  "bytes":409600,"frames":null,"ios":100,"reads":100,"errors":0,"drops":null,
//!  "bytes_per_s":409190.8,"frames_per_s":null,"ios_per_s":99.9,"rss_bytes":9437184,
//!  "iova_mappings":3,"iova_bytes":12582912,"iova_top":4307550208,
//!  "pool_capacity":64,"pool_free":0,"pool_quarantined":0,
//!  "pools":[{"name":"io-0","capacity":64,"free":0,"quarantined":0}]}
//! ```
#![forbid(unsafe_code)]

use crate::AppResult;
use dma::{Mapper, Pool};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The keys of a per-second line, in order (the module doc lists them).
pub const SECOND_KEYS: [&str; 22] = [
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

/// The writer behind `--stats FILE`.
pub struct StatsFile {
    path: PathBuf,
    out: File,
    app: &'static str,
    start: Instant,
    last: (Instant, Counters),
    pools: Vec<(String, Pool)>,
    mapper: Option<Arc<dyn Mapper>>,
    /// The first write error; nothing more is written after it.
    failed: Option<String>,
}

impl std::fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsFile")
            .field("path", &self.path)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl StatsFile {
    /// Create (or truncate) `path` for `app`'s figures; the run's clock
    /// starts now.
    pub fn create(path: &Path, app: &'static str) -> AppResult<Self> {
        let out = File::create(path).map_err(|e| {
            format!(
                "--stats {}: cannot create it ({e}); give a path in a writable directory",
                path.display()
            )
        })?;
        let now = Instant::now();
        Ok(StatsFile {
            path: path.to_path_buf(),
            out,
            app,
            start: now,
            last: (now, Counters::default()),
            pools: Vec::new(),
            mapper: None,
            failed: None,
        })
    }

    /// Report `pool`'s counts under `name` in every line.
    pub fn watch_pool(&mut self, name: impl Into<String>, pool: &Pool) {
        self.pools.push((name.into(), pool.clone()));
    }

    /// Report the IOVA use of `mapper` in every line.
    pub fn watch_mapper(&mut self, mapper: Arc<dyn Mapper>) {
        self.mapper = Some(mapper);
    }

    /// Restart the clock (the run proper begins after setup).
    pub fn restart(&mut self) {
        self.start = Instant::now();
        self.last = (self.start, Counters::default());
    }

    fn head(&self, kind: &str, now: Instant) -> JsonObject {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        JsonObject::new()
            .str("type", kind)
            .str("app", self.app)
            .f64(
                "time_s",
                round3(now.duration_since(self.start).as_secs_f64()),
            )
            .f64("unix_s", round3(unix))
    }

    fn resources(&self, o: JsonObject) -> JsonObject {
        let iova = self.mapper.as_ref().and_then(|m| m.iova_usage());
        let mut pools = String::from("[");
        let (mut cap, mut free, mut quar) = (0u64, 0u64, 0u64);
        for (i, (name, p)) in self.pools.iter().enumerate() {
            let (c, f, q) = (
                p.capacity() as u64,
                p.free_count() as u64,
                p.quarantined() as u64,
            );
            cap += c;
            free += f;
            quar += q;
            if i > 0 {
                pools.push(',');
            }
            pools.push_str(
                &JsonObject::new()
                    .str("name", name)
                    .u64("capacity", c)
                    .u64("free", f)
                    .u64("quarantined", q)
                    .finish(),
            );
        }
        pools.push(']');
        o.opt_u64("rss_bytes", rss_bytes())
            .opt_u64("iova_mappings", iova.map(|u| u.mappings as u64))
            .opt_u64("iova_bytes", iova.map(|u| u.bytes))
            .opt_u64("iova_top", iova.map(|u| u.top))
            .u64("pool_capacity", cap)
            .u64("pool_free", free)
            .u64("pool_quarantined", quar)
            .raw("pools", &pools)
    }

    fn write_line(&mut self, line: String) {
        if self.failed.is_some() {
            return;
        }
        let mut text = line;
        text.push('\n');
        if let Err(e) = self.out.write_all(text.as_bytes()) {
            eprintln!(
                "warning: --stats {}: writing failed ({e}); no more lines are written",
                self.path.display()
            );
            self.failed = Some(e.to_string());
        }
    }

    /// The object of a per-second line for `c` (the counters now).
    fn second_line(&mut self, c: Counters) -> String {
        let now = Instant::now();
        let (t0, prev) = self.last;
        let dt = now.duration_since(t0).as_secs_f64();
        let rate = |a: u64, b: u64| {
            if dt > 0.0 {
                round3(a.saturating_sub(b) as f64 / dt)
            } else {
                0.0
            }
        };
        let o = self
            .head("second", now)
            .f64("interval_s", round3(dt))
            .u64("bytes", c.bytes)
            .opt_u64("frames", c.frames)
            .opt_u64("ios", c.ios)
            .opt_u64("reads", c.reads)
            .u64("errors", c.errors)
            .opt_u64("drops", c.drops)
            .f64("bytes_per_s", rate(c.bytes, prev.bytes))
            .opt_f64(
                "frames_per_s",
                c.frames.map(|f| rate(f, prev.frames.unwrap_or(0))),
            )
            .opt_f64("ios_per_s", c.ios.map(|i| rate(i, prev.ios.unwrap_or(0))));
        self.last = (now, c);
        self.resources(o).finish()
    }

    /// Write the per-second line for the counters `c`.
    pub fn second(&mut self, c: Counters) {
        let line = self.second_line(c);
        self.write_line(line);
    }

    /// Write the final report: `report` holds the app's figures; the type,
    /// times, verdict `ok` and resources are added here. An error if any
    /// line could not be written (the file is then incomplete).
    pub fn finish(&mut self, ok: bool, report: JsonObject) -> AppResult<()> {
        let mut o = self
            .head("final", Instant::now())
            .bool("final", true)
            .bool("ok", ok);
        o = self.resources(o);
        let body = report.finish();
        // Splice the app's keys after ours: both are objects.
        let mut line = o.finish();
        if body.len() > 2 {
            line.pop();
            line.push(',');
            line.push_str(&body[1..]);
        }
        self.write_line(line);
        match &self.failed {
            Some(e) => Err(format!(
                "--stats {}: writing failed ({e}); the file is incomplete",
                self.path.display()
            )
            .into()),
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
        f.finish(false, JsonObject::new().u64("ios", 30).str("note", "x\ny"))
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
