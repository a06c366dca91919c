//! The JSON-lines trace format: the stable schema.
//!
//! Line 1 is the header:
//! `{"dmatrace":1,"capacity":N,"devices":[{"name":..,"kind":"nvme"|"igb"|"ixgbe","dstrd":N,"emulated":bool}],"threads":[names],"dropped":[N per device]}`.
//! Every later line is one event, in recording order:
//! `{"seq":N,"t_ns":N,"dev":N,"agent":"driver/0"|"device/controller"|"device/rx0"|"device/tx0"|"device/wire","kind":"reg_write",..,"queue":"SQ1"|"CQ1"|"RX0"|"TX0"|"-","index":N,"addr":"0x..","len":N,"value":"0x..","raw":"hex"}`,
//! plus `"name"` (the register's datasheet name) on register events. Keys a
//! reader does not know are ignored, so later versions may add some.
#![forbid(unsafe_code)]

use super::{TraceFile, SCHEMA_VERSION};
use drivers::trace::{Agent, DeviceInfo, DeviceKind, Event, Kind, Queue, Raw};
use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};

/// The header object of `t` (also kept by the Chrome and pcapng files).
pub(crate) fn header(t: &TraceFile) -> Value {
    let devices: Vec<Value> = t
        .devices
        .iter()
        .map(|d| {
            let mut o = json!({
                "name": d.name,
                "kind": d.kind.name(),
                "emulated": d.emulated,
            });
            if let DeviceKind::Nvme { dstrd } = d.kind {
                o["dstrd"] = json!(dstrd);
            }
            o
        })
        .collect();
    json!({
        "dmatrace": SCHEMA_VERSION,
        "capacity": t.capacity,
        "devices": devices,
        "threads": t.threads,
        "dropped": t.dropped,
    })
}

/// The JSON object of one event of `t`.
pub fn event_object(t: &TraceFile, e: &Event) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("seq".into(), json!(e.seq));
    o.insert("t_ns".into(), json!(e.t_ns));
    o.insert("dev".into(), json!(e.dev));
    o.insert("agent".into(), json!(e.agent.to_string()));
    o.insert("kind".into(), json!(e.kind.name()));
    o.insert("queue".into(), json!(e.queue.to_string()));
    o.insert("index".into(), json!(e.index));
    o.insert("addr".into(), json!(format!("{:#x}", e.addr)));
    o.insert("len".into(), json!(e.len));
    o.insert("value".into(), json!(format!("{:#x}", e.value)));
    o.insert("raw".into(), json!(e.raw.hex()));
    if matches!(e.kind, Kind::RegRead | Kind::RegWrite) {
        if let Some(n) = t.reg_name(e.dev, e.addr) {
            o.insert("name".into(), json!(n));
        }
    }
    o
}

/// Write `t` as JSON lines.
pub fn write(t: &TraceFile, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", header(t))?;
    for e in &t.events {
        writeln!(out, "{}", Value::Object(event_object(t, e)))?;
    }
    out.flush()
}

/// An error reading a trace, naming the line.
fn bad(line: usize, what: impl std::fmt::Display) -> String {
    format!("line {line}: {what}")
}

fn hex_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => {
            let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
            u64::from_str_radix(h, 16).ok()
        }
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn device(v: &Value) -> Result<DeviceInfo, String> {
    let kind = match v["kind"].as_str() {
        Some("nvme") => DeviceKind::Nvme {
            dstrd: v["dstrd"].as_u64().unwrap_or(0) as u32,
        },
        Some("igb") => DeviceKind::Igb,
        Some("ixgbe") => DeviceKind::Ixgbe,
        other => return Err(format!("device kind {other:?} is not nvme, igb or ixgbe")),
    };
    Ok(DeviceInfo {
        name: v["name"].as_str().unwrap_or("").to_string(),
        kind,
        emulated: v["emulated"].as_bool().unwrap_or(false),
    })
}

/// One event from its JSON object (line `line`, for messages).
pub fn event_from(line: usize, o: &Value) -> Result<Event, String> {
    let num = |k: &str| {
        o[k].as_u64()
            .ok_or_else(|| bad(line, format!("\"{k}\" is missing or not a number")))
    };
    let hex =
        |k: &str| hex_u64(&o[k]).ok_or_else(|| bad(line, format!("\"{k}\" is not a hex number")));
    let text = |k: &str| {
        o[k].as_str()
            .ok_or_else(|| bad(line, format!("\"{k}\" is missing or not a string")))
    };
    let kind = text("kind")?;
    let kind = Kind::from_name(kind).ok_or_else(|| bad(line, format!("unknown kind {kind:?}")))?;
    let agent = text("agent")?;
    let agent = Agent::parse(agent).ok_or_else(|| bad(line, format!("unknown agent {agent:?}")))?;
    let queue = text("queue")?;
    let queue = Queue::parse(queue).ok_or_else(|| bad(line, format!("unknown queue {queue:?}")))?;
    let raw = text("raw")?;
    let raw =
        Raw::from_hex(raw).ok_or_else(|| bad(line, "\"raw\" is not hex of at most 64 bytes"))?;
    Ok(Event {
        seq: num("seq")?,
        t_ns: num("t_ns")?,
        dev: u16::try_from(num("dev")?).map_err(|_| bad(line, "\"dev\" is out of range"))?,
        agent,
        kind,
        queue,
        index: u32::try_from(num("index")?).map_err(|_| bad(line, "\"index\" is out of range"))?,
        addr: hex("addr")?,
        len: u32::try_from(num("len")?).map_err(|_| bad(line, "\"len\" is out of range"))?,
        value: hex("value")?,
        raw,
    })
}

/// Read a JSON-lines trace.
pub fn read(input: impl BufRead) -> Result<TraceFile, String> {
    let mut lines = input.lines().enumerate();
    let (_, first) = lines
        .next()
        .ok_or("empty file: not a dmatrace JSON-lines trace")?;
    let first = first.map_err(|e| bad(1, e))?;
    let h: Value = serde_json::from_str(&first).map_err(|e| bad(1, e))?;
    let mut t = header_from(&h).map_err(|e| bad(1, e))?;
    for (i, l) in lines {
        let l = l.map_err(|e| bad(i + 1, e))?;
        if l.trim().is_empty() {
            continue;
        }
        let o: Value = serde_json::from_str(&l).map_err(|e| bad(i + 1, e))?;
        let e = event_from(i + 1, &o)?;
        if e.dev as usize >= t.devices.len() {
            return Err(bad(i + 1, format!("device {} is not in the header", e.dev)));
        }
        t.events.push(e);
    }
    Ok(t)
}

/// The trace of header object `h` (see [`header`]), with no events yet.
pub(crate) fn header_from(h: &Value) -> Result<TraceFile, String> {
    match h["dmatrace"].as_u64() {
        Some(v) if v == SCHEMA_VERSION as u64 => {}
        Some(v) => {
            return Err(format!(
                "schema version {v}; this dmatrace reads {SCHEMA_VERSION}"
            ))
        }
        None => return Err("no \"dmatrace\" header: not a dmatrace JSON-lines trace".into()),
    }
    let devices = h["devices"]
        .as_array()
        .ok_or("\"devices\" is not an array")?
        .iter()
        .map(device)
        .collect::<Result<Vec<_>, _>>()?;
    let threads = h["threads"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let dropped = h["dropped"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_u64().unwrap_or(0) as usize).collect())
        .unwrap_or_default();
    Ok(TraceFile {
        devices,
        threads,
        capacity: h["capacity"].as_u64().unwrap_or(0) as usize,
        dropped,
        events: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::trace::{Engine, Tracer};

    #[test]
    fn a_trace_round_trips_and_registers_are_named() {
        let tracer = Tracer::new(100);
        let tap = tracer.device(DeviceInfo {
            name: "emu:nvme,size=1M".into(),
            kind: DeviceKind::Nvme { dstrd: 0 },
            emulated: true,
        });
        tap.record(|| Event::new(Kind::RegWrite).addr(0x1008).len(4).value(1));
        tap.record(|| {
            Event::device(Kind::Fetch, Engine::Controller)
                .queue(Queue::Sq(1))
                .addr(0x1_0000_0000)
                .bytes(&[0x02, 0, 0, 0])
        });
        let t = TraceFile::take(&tracer);
        let mut out = Vec::new();
        write(&t, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("\"name\":\"SQ1 tail doorbell\""), "{text}");
        assert_eq!(read(&out[..]).unwrap(), t);
    }

    #[test]
    fn bad_files_name_the_line_and_the_cause() {
        let h = "{\"dmatrace\":1,\"devices\":[{\"name\":\"x\",\"kind\":\"igb\"}]}\n";
        assert!(read(&b""[..]).unwrap_err().contains("empty"));
        assert!(read(&b"{}\n"[..]).unwrap_err().contains("not a dmatrace"));
        let e = format!("{h}{{\"seq\":0}}\n");
        assert!(read(e.as_bytes()).unwrap_err().starts_with("line 2:"));
        let e = format!(
            "{h}{{\"seq\":0,\"t_ns\":0,\"dev\":3,\"agent\":\"driver/0\",\"kind\":\"fetch\",\
             \"queue\":\"-\",\"index\":0,\"addr\":\"0x0\",\"len\":0,\"value\":\"0x0\",\"raw\":\"\"}}\n"
        );
        assert!(read(e.as_bytes()).unwrap_err().contains("device 3"));
    }
}
