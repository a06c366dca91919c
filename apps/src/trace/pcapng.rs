//! The pcapng trace format: frames and DMA events on one timeline for
//! Wireshark.
//!
//! A hand-written little-endian pcapng file (the block layouts of
//! draft-ietf-opsawg-pcapng: Section Header, Interface Description and
//! Enhanced Packet Blocks) with two interfaces, both stamped in nanoseconds
//! (`if_tsresol` = 9) from [`Event::t_ns`]:
//! - interface 0, [`LINKTYPE_ETHERNET`]: every [`Kind::Frame`] event's bytes
//!   (captured length = the bytes kept, at most [`drivers::trace::RAW_MAX`];
//!   original length = the frame's length), so Wireshark dissects the frame
//!   headers;
//! - interface 1, [`LINKTYPE_USER0`]: every event, in recording order, as the
//!   [`Event::encode`] bytes, which `tools/dmatrace.lua` names field by field.
//!   Its description lists the devices' kinds (`devices: nvme,dstrd=0
//!   ixgbe`), from which the dissector picks a device's descriptor layouts
//!   and register names.
//!
//! The section header's comment holds the JSON-lines header object (device
//! table, thread names, capacity, dropped counts), so [`read`] gives back
//! the [`TraceFile`] that was written, exactly.
#![forbid(unsafe_code)]

use super::{jsonl, TraceFile};
use drivers::trace::{DeviceKind, Event, Kind, ENCODED_LEN, ENCODING_VERSION};
use serde_json::Value;
use std::io::{Read, Write};

/// Link type of the frame interface (IEEE 802.3 Ethernet).
pub const LINKTYPE_ETHERNET: u16 = 1;
/// Link type of the event interface: the first "user" link type (DLT 147),
/// which Wireshark hands to the dissector registered for `wtap_encap` USER0.
pub const LINKTYPE_USER0: u16 = 147;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
/// Largest block the reader accepts: far above any block this writer makes.
const MAX_BLOCK: usize = 1 << 20;

/// Interface 0 carries the frames, interface 1 the events.
const FRAMES: u32 = 0;
const EVENTS: u32 = 1;

/// The bytes of one option, padded to 4.
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Write one block: type, total length, `body` (padded to 4), total length.
fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> std::io::Result<()> {
    let padded = body.len().next_multiple_of(4);
    let total = (12 + padded) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&[0u8; 3][..padded - body.len()])?;
    out.write_all(&total.to_le_bytes())
}

fn interface(out: &mut impl Write, link: u16, name: &str, desc: &str) -> std::io::Result<()> {
    let mut b = Vec::new();
    b.extend_from_slice(&link.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // snaplen: no limit
    option(&mut b, IF_NAME, name.as_bytes());
    option(&mut b, IF_DESCRIPTION, desc.as_bytes());
    option(&mut b, IF_TSRESOL, &[9]);
    option(&mut b, OPT_END, &[]);
    block(out, IDB, &b)
}

fn packet(
    out: &mut impl Write,
    ifc: u32,
    t_ns: u64,
    data: &[u8],
    orig: u32,
) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(20 + data.len());
    b.extend_from_slice(&ifc.to_le_bytes());
    b.extend_from_slice(&((t_ns >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(t_ns as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&orig.to_le_bytes());
    b.extend_from_slice(data);
    block(out, EPB, &b)
}

/// The description of the event interface: the encoding and the devices'
/// kinds in device order (the dissector reads the latter).
fn events_description(t: &TraceFile) -> String {
    let kinds: Vec<String> = t
        .devices
        .iter()
        .map(|d| match d.kind {
            DeviceKind::Nvme { dstrd } => format!("nvme,dstrd={dstrd}"),
            k => k.name().to_string(),
        })
        .collect();
    format!(
        "dmatrace events, encoding {ENCODING_VERSION}, {ENCODED_LEN} bytes each; devices: {}",
        kinds.join(" ")
    )
}

/// Write `t` as pcapng.
pub fn write(t: &TraceFile, out: &mut impl Write) -> std::io::Result<()> {
    let mut b = Vec::new();
    b.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
    option(&mut b, OPT_COMMENT, jsonl::header(t).to_string().as_bytes());
    option(&mut b, SHB_USERAPPL, b"dmatrace");
    option(&mut b, OPT_END, &[]);
    block(out, SHB, &b)?;
    interface(
        out,
        LINKTYPE_ETHERNET,
        "frames",
        "frames on the wire (first bytes)",
    )?;
    interface(out, LINKTYPE_USER0, "dmatrace", &events_description(t))?;
    for e in &t.events {
        if e.kind == Kind::Frame && !e.raw.as_slice().is_empty() {
            let data = e.raw.as_slice();
            packet(out, FRAMES, e.t_ns, data, e.len.max(data.len() as u32))?;
        }
        packet(out, EVENTS, e.t_ns, &e.encode(), ENCODED_LEN as u32)?;
    }
    out.flush()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The options of a block body from `at`: (code, value) pairs.
fn options(body: &[u8], mut at: usize) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while at + 4 <= body.len() {
        let code = u16_at(body, at).unwrap_or(0);
        let len = u16_at(body, at + 2).unwrap_or(0) as usize;
        if code == OPT_END {
            break;
        }
        let v = body
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| format!("option {code} runs past its block"))?;
        out.push((code, v));
        at += 4 + len.next_multiple_of(4);
    }
    Ok(out)
}

/// Read a pcapng trace written by [`write()`]: the header from the section
/// header's comment, the events from the event interface (frames on the
/// Ethernet interface are copies and are skipped).
pub fn read(mut input: impl Read) -> Result<TraceFile, String> {
    let mut data = Vec::new();
    input
        .read_to_end(&mut data)
        .map_err(|e| format!("reading: {e}"))?;
    let mut at = 0;
    let mut trace: Option<TraceFile> = None;
    let mut links: Vec<u16> = Vec::new();
    let mut n = 0usize;
    while at < data.len() {
        n += 1;
        let bad = |what: &str| format!("block {n} (byte {at}): {what}");
        let kind = u32_at(&data, at).ok_or_else(|| bad("truncated block header"))?;
        let total = u32_at(&data, at + 4).ok_or_else(|| bad("truncated block header"))? as usize;
        if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK || at + total > data.len() {
            return Err(bad(&format!(
                "block length {total} is not a multiple of 4 within the file"
            )));
        }
        if u32_at(&data, at + total - 4) != Some(total as u32) {
            return Err(bad("trailing block length differs from the leading one"));
        }
        let body = &data[at + 8..at + total - 4];
        match kind {
            SHB => {
                match u32_at(body, 0) {
                    Some(BYTE_ORDER_MAGIC) => {}
                    Some(m) if m.swap_bytes() == BYTE_ORDER_MAGIC => {
                        return Err(bad(
                            "big-endian pcapng; dmatrace writes and reads little-endian only",
                        ))
                    }
                    _ => return Err(bad("no byte-order magic: not a pcapng file")),
                }
                if trace.is_some() {
                    return Err(bad("a second section: write one trace per file"));
                }
                for (code, v) in options(body, 16).map_err(|e| bad(&e))? {
                    if code != OPT_COMMENT {
                        continue;
                    }
                    let Ok(h) = serde_json::from_slice::<Value>(v) else {
                        continue;
                    };
                    if h.get("dmatrace").is_some() {
                        trace = Some(jsonl::header_from(&h).map_err(|e| bad(&e))?);
                    }
                }
                if trace.is_none() {
                    return Err(bad(
                        "no dmatrace header in the section comment: not a trace written by dmatrace",
                    ));
                }
            }
            IDB => {
                let link = u16_at(body, 0).ok_or_else(|| bad("short interface block"))?;
                for (code, v) in options(body, 8).map_err(|e| bad(&e))? {
                    if code == IF_TSRESOL && v != [9] {
                        return Err(bad("time resolution is not nanoseconds (if_tsresol 9)"));
                    }
                }
                links.push(link);
            }
            EPB => {
                let t = trace
                    .as_mut()
                    .ok_or_else(|| bad("packet before the section header"))?;
                let ifc = u32_at(body, 0).ok_or_else(|| bad("short packet block"))?;
                let cap = u32_at(body, 12).ok_or_else(|| bad("short packet block"))? as usize;
                let link = *links
                    .get(ifc as usize)
                    .ok_or_else(|| bad(&format!("packet on undescribed interface {ifc}")))?;
                if link == LINKTYPE_USER0 {
                    let bytes = body
                        .get(20..20 + cap)
                        .ok_or_else(|| bad("captured length runs past the block"))?;
                    if cap != ENCODED_LEN {
                        return Err(bad(&format!(
                            "event of {cap} bytes; encoding {ENCODING_VERSION} has {ENCODED_LEN}"
                        )));
                    }
                    let e =
                        Event::decode(bytes).ok_or_else(|| bad("event with an unknown code"))?;
                    if e.dev as usize >= t.devices.len() {
                        return Err(bad(&format!("device {} is not in the header", e.dev)));
                    }
                    t.events.push(e);
                }
            }
            _ => {} // other blocks (statistics, name resolution) carry nothing of ours
        }
        at += total;
    }
    trace.ok_or_else(|| "empty file: not a pcapng trace".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::trace::{DeviceInfo, Engine, Queue, Tracer};

    fn sample() -> TraceFile {
        let tracer = Tracer::new(100);
        let nvme = tracer.device(DeviceInfo {
            name: "emu:nvme,size=1M".into(),
            kind: DeviceKind::Nvme { dstrd: 0 },
            emulated: true,
        });
        let nic = tracer.device(DeviceInfo {
            name: "emu:ixgbe".into(),
            kind: DeviceKind::Ixgbe,
            emulated: false,
        });
        nvme.record(|| Event::new(Kind::RegWrite).addr(0x1008).len(4).value(1));
        nvme.record(|| {
            Event::device(Kind::Fetch, Engine::Controller)
                .queue(Queue::Sq(1))
                .index(3)
                .addr(0x1_0000_0000)
                .bytes(&[0x02, 0, 7, 0])
        });
        nic.record(|| {
            Event::device(Kind::Frame, Engine::Tx(0))
                .queue(Queue::Tx(0))
                .len(1514)
                .bytes(&[0xff; 64])
        });
        nic.record(|| Event::note("reset"));
        let mut t = TraceFile::take(&tracer);
        t.threads = vec!["main".into(), "worker \"1\"".into()];
        t.dropped = vec![0, 7];
        t
    }

    #[test]
    fn a_trace_round_trips_with_frames_on_their_own_interface() {
        let t = sample();
        let mut out = Vec::new();
        write(&t, &mut out).unwrap();
        assert_eq!(read(&out[..]).unwrap(), t);
        // SHB, two IDBs, 4 events + 1 frame copy.
        let mut at = 0;
        let mut blocks = Vec::new();
        while at < out.len() {
            blocks.push((u32_at(&out, at).unwrap(), u32_at(&out, at + 8).unwrap()));
            at += u32_at(&out, at + 4).unwrap() as usize;
        }
        assert_eq!(at, out.len());
        assert_eq!(blocks.len(), 3 + 5);
        assert_eq!(blocks[1], (IDB, LINKTYPE_ETHERNET as u32));
        assert_eq!(blocks[2], (IDB, LINKTYPE_USER0 as u32));
        let frames: Vec<_> = blocks.iter().filter(|b| *b == &(EPB, FRAMES)).collect();
        assert_eq!(frames.len(), 1);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("devices: nvme,dstrd=0 ixgbe"), "{text}");
    }

    #[test]
    fn bad_files_name_the_block_and_the_cause() {
        let t = sample();
        let mut out = Vec::new();
        write(&t, &mut out).unwrap();
        assert!(read(&b""[..]).unwrap_err().contains("empty"));
        assert!(read(&out[..out.len() - 2]).unwrap_err().contains("block"));
        let mut bad = out.clone();
        bad[8..12].copy_from_slice(&BYTE_ORDER_MAGIC.to_be_bytes());
        assert!(read(&bad[..]).unwrap_err().contains("big-endian"));
        // The last event's kind code made unknown.
        let mut bad = out.clone();
        let last = out.len() - 4 - ENCODED_LEN.next_multiple_of(4);
        bad[last + 21] = 200;
        assert!(read(&bad[..]).unwrap_err().contains("unknown code"));
        // A file another tool wrote: a section without our header.
        let mut other = Vec::new();
        let mut b = Vec::new();
        b.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0, 0, 0]);
        b.extend_from_slice(&(-1i64).to_le_bytes());
        block(&mut other, SHB, &b).unwrap();
        assert!(read(&other[..]).unwrap_err().contains("no dmatrace header"));
    }
}
