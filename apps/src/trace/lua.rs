//! The tables of the Wireshark dissector `tools/dmatrace.lua`, generated
//! from the `spec` layouts and the event codes, so that the dissector
//! cannot disagree with the driver, the models or `dmatrace show`.
//!
//! The dissector holds [`tables`]' text between the lines [`BEGIN`] and
//! [`END`]; a unit test checks that it is current, and rewrites it when run
//! with `DMATRACE_LUA_UPDATE=1` (`DMATRACE_LUA_UPDATE=1 cargo test -p apps
//! --lib trace::lua`).
#![forbid(unsafe_code)]

use super::chrome::opcode_name;
use drivers::trace::{Agent, Engine, Event, Kind, Queue};
use spec::nic::adv_desc as adv;
use spec::nvme;
use std::fmt::Write;

/// The line that opens the generated block.
pub const BEGIN: &str = "-- BEGIN GENERATED TABLES";
/// The line that closes it.
pub const END: &str = "-- END GENERATED TABLES";

/// Lua string literal.
fn s(text: &str) -> String {
    format!("{text:?}")
}

fn layout(out: &mut String, key: &str, l: &spec::Layout) {
    let _ = writeln!(
        out,
        "  [{}] = {{ name = {}, section = {}, bytes = {}, words = {{",
        s(key),
        s(l.name),
        s(l.section),
        l.bytes
    );
    for w in l.words {
        let fields: Vec<String> = w
            .fields
            .iter()
            .map(|f| format!("{{ {}, {}, {} }}", s(f.name), f.shift, f.width))
            .collect();
        let _ = writeln!(
            out,
            "    {{ {}, {}, {}, {{ {} }} }},",
            s(w.name),
            w.offset,
            w.bytes,
            fields.join(", ")
        );
    }
    out.push_str("  } },\n");
}

/// The NVM read/write command's own fields (NVMe 1.4 §6.9, §6.15): SLBA
/// in CDW10-11 and CDW12's NLB, FUA and LR.
const NVM_RW: spec::Layout = spec::Layout {
    name: "NVM Read/Write command fields",
    section: "NVMe 1.4 §6.9, §6.15",
    bytes: nvme::sqe::SIZE,
    words: &[
        spec::Word {
            name: "SLBA",
            offset: nvme::sqe::CDW10,
            bytes: 8,
            fields: &[],
        },
        spec::Word {
            name: "CDW12",
            offset: nvme::sqe::CDW12,
            bytes: 4,
            fields: &[
                nvme::sqe::rw::NLB.info(),
                nvme::sqe::rw::FUA.info(),
                nvme::sqe::rw::LR.info(),
            ],
        },
    ],
};

/// The generated block, [`BEGIN`] and [`END`] lines included.
pub fn tables() -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{BEGIN} (from the spec crate by apps/src/trace/lua.rs; do not edit by hand:\n\
         -- DMATRACE_LUA_UPDATE=1 cargo test -p apps --lib trace::lua)"
    );
    // Codes of the binary form, probed through Event::encode itself.
    let probe = |e: Event| e.encode();
    o.push_str("local KINDS = {\n");
    for k in Kind::ALL {
        let _ = writeln!(o, "  [{}] = {},", probe(Event::new(k))[21], s(k.name()));
    }
    o.push_str("}\nlocal QUEUE_PREFIXES = {\n");
    for q in [
        Queue::None,
        Queue::Sq(0),
        Queue::Cq(0),
        Queue::Rx(0),
        Queue::Tx(0),
    ] {
        let name = q.to_string();
        let prefix = name.trim_end_matches('0');
        let _ = writeln!(
            o,
            "  [{}] = {},",
            probe(Event::new(Kind::Note).queue(q))[22],
            s(prefix)
        );
    }
    o.push_str("}\nlocal AGENT_PREFIXES = {\n");
    for a in [
        Agent::Driver(0),
        Agent::Device(Engine::Controller),
        Agent::Device(Engine::Rx(0)),
        Agent::Device(Engine::Tx(0)),
        Agent::Device(Engine::Wire),
    ] {
        let e = Event {
            agent: a,
            ..Event::new(Kind::Note)
        };
        let name = a.to_string();
        // Numbered agents print their number after the prefix.
        let numbered = matches!(
            a,
            Agent::Driver(_) | Agent::Device(Engine::Rx(_) | Engine::Tx(_))
        );
        let prefix = if numbered {
            name.trim_end_matches('0')
        } else {
            &name
        };
        let _ = writeln!(
            o,
            "  [{}] = {{ {}, {} }},",
            probe(e)[18],
            s(prefix),
            numbered
        );
    }
    o.push_str("}\nlocal LAYOUTS = {\n");
    layout(&mut o, "nvme", &nvme::sqe::LAYOUT);
    layout(&mut o, "nvme.rw", &NVM_RW);
    layout(&mut o, "nvme.cqe", &nvme::cqe::LAYOUT);
    layout(&mut o, "nvme.prp", &nvme::prp::LAYOUT);
    layout(&mut o, "nic.tx_data", &adv::TX_DATA);
    layout(&mut o, "nic.tx_context", &adv::TX_CONTEXT);
    layout(&mut o, "nic.tx_wb", &adv::TX_WRITE_BACK);
    layout(&mut o, "nic.rx_read", &adv::RX_READ);
    layout(&mut o, "nic.rx_wb_82576", &adv::RX_WRITE_BACK_82576);
    layout(&mut o, "nic.rx_wb_82599", &adv::RX_WRITE_BACK_82599);
    o.push_str("}\n");
    let _ = writeln!(
        o,
        "local TX_DTYP = {{ shift = {}, width = {}, context = {}, data = {} }}",
        adv::tx::cmd_type_len::DTYP.shift,
        adv::tx::cmd_type_len::DTYP.width,
        adv::tx::cmd_type_len::DTYP_CONTEXT,
        adv::tx::cmd_type_len::DTYP_DATA
    );
    let _ = writeln!(
        o,
        "local NVM_RW_OPCODES = {{ [{}] = true, [{}] = true }}",
        nvme::io::READ,
        nvme::io::WRITE
    );
    for (name, qid) in [("ADMIN_OPCODES", 0u16), ("IO_OPCODES", 1)] {
        let _ = writeln!(o, "local {name} = {{");
        for opc in 0..=255u8 {
            if let Some(n) = opcode_name(qid, opc) {
                let _ = writeln!(o, "  [{opc}] = {},", s(n));
            }
        }
        o.push_str("}\n");
    }
    o.push_str("local NVME_REGS = {\n");
    for w in nvme::reg::LAYOUT.words {
        let _ = writeln!(o, "  [{}] = {},", w.offset, s(w.name));
        if w.bytes == 8 {
            let _ = writeln!(
                o,
                "  [{}] = {},",
                w.offset + 4,
                s(&format!("{} upper dword", w.name))
            );
        }
    }
    let _ = writeln!(
        o,
        "}}\nlocal NVME_DOORBELL_BASE = {}",
        nvme::reg::DOORBELL_BASE
    );
    o.push_str(END);
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dissector's generated block is what the spec tables give today.
    #[test]
    fn the_dissector_tables_are_generated_from_the_spec() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/dmatrace.lua");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find(BEGIN)
            .expect("no BEGIN line in tools/dmatrace.lua");
        let end = text.find(END).expect("no END line in tools/dmatrace.lua") + END.len() + 1;
        let want = tables();
        if std::env::var_os("DMATRACE_LUA_UPDATE").is_some() {
            let new = format!("{}{}{}", &text[..start], want, &text[end..]);
            std::fs::write(&path, new).unwrap();
            return;
        }
        assert!(
            text[start..end] == want,
            "tools/dmatrace.lua's tables are stale: run DMATRACE_LUA_UPDATE=1 cargo test -p apps --lib trace::lua"
        );
    }

    #[test]
    fn the_tables_name_every_kind_and_the_sqe_fields() {
        let t = tables();
        for k in Kind::ALL {
            assert!(t.contains(&format!("{:?}", k.name())), "{}", k.name());
        }
        assert!(t.contains("{ \"OPC\", 0, 8 }"), "{t}");
        assert!(t.contains("{ \"PRP1\", 24, 8, {  } }"), "{t}");
        assert!(t.contains("[2] = \"Read\""), "{t}");
    }
}
