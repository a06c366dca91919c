//! `--step`: stop after each doorbell or tail write, show what it caused and
//! the ring it concerns, and wait for Enter.
//!
//! Only an emulated device in inline mode can be stepped: there the device
//! does its work for a doorbell on the writing thread, before the write
//! returns, so that when the BAR's step hook ([`emu::EmuBar::set_step`])
//! runs, every event the doorbell caused is in the trace and the ring shows
//! the device's answer. The pictures come from the model's read-only views
//! of its queues and from ring memory read through the emulated IOMMU
//! (reads that the trace does not see).
//!
//! Everything goes to standard error (an app's data may be on standard
//! output). End of input on standard input runs on without waiting.
#![forbid(unsafe_code)]

use super::{show, TraceFile};
use dma::EmuIommu;
use drivers::trace::{DeviceInfo, Event};
use emu::nic::{NicModel, RingView, TailOf};
use emu::nvme::{CqView, DoorbellOf, NvmeModel, SqView};
use emu::StepHook;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

/// Slots drawn on one line of a ring picture.
const ROW: usize = 64;

/// The pause between steps; one step at a time across threads.
pub struct Stepper {
    /// True once standard input ended: run on without waiting.
    run_on: Mutex<bool>,
}

impl Default for Stepper {
    fn default() -> Self {
        Self::new()
    }
}

impl Stepper {
    /// A stepper that waits for Enter.
    pub fn new() -> Stepper {
        Stepper {
            run_on: Mutex::new(false),
        }
    }

    /// Print `text`, then wait for a line on standard input (not after
    /// standard input has ended).
    fn pause(&self, text: &str) {
        let mut run_on = self.run_on.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !*run_on {
            let _ = writeln!(
                err,
                "step: Enter for the next doorbell (end of input: run on)"
            );
            let _ = err.flush();
            let mut line = String::new();
            match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => *run_on = true,
                Ok(_) => {}
            }
        }
        let _ = err.flush();
    }
}

/// The events of one step, one a line, decoded as `dmatrace show` decodes
/// them ([`show::describe`]): `  #12     driver/0           SQ1[0]
/// desc_write @0x...: OPC=02h Read CID=0 ...`. The lines are numbered by
/// the events' sequence numbers, as `dmatrace show --no-time` numbers them.
/// A step holds everything one doorbell caused (the inline device's work is
/// done before the write returns), so an SQE's PRP list, read by the
/// device later in the same step, is found for its `(list, N entries)`.
pub fn event_lines(devices: &[DeviceInfo], events: &[Event]) -> Vec<String> {
    let t = TraceFile {
        devices: devices.to_vec(),
        threads: Vec::new(),
        capacity: 0,
        dropped: Vec::new(),
        events: events.to_vec(),
    };
    let cmds = show::commands(&t);
    let several = devices.len() > 1;
    (0..t.events.len())
        .map(|i| {
            let e = &t.events[i];
            let dev = if several {
                format!("dev{} ", e.dev)
            } else {
                String::new()
            };
            format!(
                "  #{:<6} {:<17}  {dev}{}",
                e.seq,
                e.agent.to_string(),
                show::describe(&t, &cmds, i)
            )
        })
        .collect()
}

/// Where a step hook gets the events since the last step (and the device
/// table to name them by): the trace session's, kept for the file too.
pub type EventSource = Arc<dyn Fn() -> (Vec<DeviceInfo>, Vec<Event>) + Send + Sync>;

/// The events since the last step, one a line.
fn events_text(source: &EventSource, text: &mut String) {
    let (devices, events) = source();
    for line in event_lines(&devices, &events) {
        text.push_str(&line);
        text.push('\n');
    }
}

/// Slots of a ring drawn as characters, [`ROW`] a line, with a line under
/// each row marking the head (`h`), the tail (`t`) or both (`*`). Rows
/// in a run that are all one character and hold neither are drawn as one
/// line (`64-447 all 0`), so a 4096-entry ring stays readable.
fn slots_picture(text: &mut String, cells: &[char], head: u32, tail: u32) {
    let rows: Vec<&[char]> = cells.chunks(ROW).collect();
    let mark = |i: usize| match (i as u32 == head, i as u32 == tail) {
        (true, true) => '*',
        (true, false) => 'h',
        (false, true) => 't',
        _ => ' ',
    };
    let plain = |r: usize| -> Option<char> {
        let first = r * ROW;
        let row = rows[r];
        let marked = (first..first + row.len()).any(|i| mark(i) != ' ');
        (!marked && row.iter().all(|&c| c == row[0])).then_some(row[0])
    };
    let mut r = 0;
    while r < rows.len() {
        let first = r * ROW;
        if let Some(c) = plain(r) {
            let mut end = r;
            while end + 1 < rows.len() && plain(end + 1) == Some(c) {
                end += 1;
            }
            if end > r {
                let last = end * ROW + rows[end].len() - 1;
                let _ = writeln!(text, "    {first:>5}-{last} all {c}");
                r = end + 1;
                continue;
            }
        }
        let row = rows[r];
        let _ = writeln!(text, "    {first:>5} {}", row.iter().collect::<String>());
        let marks: String = (first..first + row.len()).map(mark).collect();
        if !marks.trim().is_empty() {
            let _ = writeln!(text, "          {}", marks.trim_end());
        }
        r += 1;
    }
}

/// The bytes of a whole ring, read through the IOMMU, or why not.
fn ring_bytes(iommu: &EmuIommu, base: u64, entries: u32, entry: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; entries as usize * entry];
    iommu
        .read(base, &mut buf)
        .map_err(|e| format!("ring memory unreadable: {e}"))?;
    Ok(buf)
}

fn sq_picture(text: &mut String, qid: u16, sq: &SqView) {
    let _ = writeln!(
        text,
        "  SQ{qid}: {} entries @{:#x}, head {} (next the device fetches), tail {} (driver); \
         'x' = submitted, not yet fetched",
        sq.entries, sq.base, sq.head, sq.tail
    );
    let cells: Vec<char> = (0..sq.entries)
        .map(|i| {
            let pending = (i + sq.entries - sq.head) % sq.entries;
            let posted = (sq.tail + sq.entries - sq.head) % sq.entries;
            if pending < posted {
                'x'
            } else {
                '.'
            }
        })
        .collect();
    slots_picture(text, &cells, sq.head, sq.tail);
}

fn cq_picture(text: &mut String, qid: u16, cq: &CqView, iommu: &EmuIommu) {
    let _ = writeln!(
        text,
        "  CQ{qid}: {} entries @{:#x}, head {} (driver), tail {} (next the device writes), \
         phase {}; per slot the phase tag (P)",
        cq.entries, cq.base, cq.head, cq.tail, cq.phase as u8
    );
    match ring_bytes(iommu, cq.base, cq.entries, spec::nvme::cqe::SIZE) {
        Err(e) => {
            let _ = writeln!(text, "    ({e})");
        }
        Ok(bytes) => {
            let cells: Vec<char> = bytes
                .chunks(spec::nvme::cqe::SIZE)
                .map(|c| {
                    let at = spec::nvme::cqe::STATUS;
                    let status = u16::from_le_bytes([c[at], c[at + 1]]);
                    if spec::nvme::cqe::status::P.is_set(status) {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect();
            slots_picture(text, &cells, cq.head, cq.tail);
        }
    }
}

/// The step hook of an emulated NVMe controller: after each SQ tail or CQ
/// head doorbell, the events and the queue pair.
pub fn nvme_hook(
    stepper: &'static Stepper,
    source: EventSource,
    model: Arc<NvmeModel>,
    iommu: Arc<EmuIommu>,
) -> StepHook {
    Arc::new(move |offset, value| {
        let Some(db) = model.doorbell_of(offset) else {
            return;
        };
        let mut text = String::new();
        let what = match db {
            DoorbellOf::SqTail(q) => format!("SQ{q} tail doorbell <- {value}"),
            DoorbellOf::CqHead(q) => format!("CQ{q} head doorbell <- {value}"),
        };
        let _ = writeln!(text, "step: {what}");
        events_text(&source, &mut text);
        match db {
            DoorbellOf::SqTail(q) => match model.sq_view(q) {
                Some(sq) => {
                    sq_picture(&mut text, q, &sq);
                    if let Some(cq) = model.cq_view(sq.cqid) {
                        cq_picture(&mut text, sq.cqid, &cq, &iommu);
                    }
                }
                None => {
                    let _ = writeln!(text, "  SQ{q} does not exist");
                }
            },
            DoorbellOf::CqHead(q) => match model.cq_view(q) {
                Some(cq) => cq_picture(&mut text, q, &cq, &iommu),
                None => {
                    let _ = writeln!(text, "  CQ{q} does not exist");
                }
            },
        }
        stepper.pause(&text);
    })
}

/// Bit 0 of the status dword of a descriptor write-back: DD, in both the RX
/// (82576 §7.1.5.2, 82599 §7.1.6.2) and the TX (§7.2.3.2.4) formats.
fn dd(desc: &[u8], which: TailOf) -> bool {
    let at = match which {
        TailOf::Rx(_) => spec::nic::adv_desc::rx::WB_STATUS_ERROR,
        TailOf::Tx(_) => spec::nic::adv_desc::tx::WB_STATUS,
    };
    let word = u32::from_le_bytes([desc[at], desc[at + 1], desc[at + 2], desc[at + 3]]);
    match which {
        TailOf::Rx(_) => spec::nic::adv_desc::rx::status::DD.is_set(word),
        TailOf::Tx(_) => spec::nic::adv_desc::tx::olinfo::DD.is_set(word),
    }
}

fn ring_picture(text: &mut String, which: TailOf, ring: &RingView, iommu: &EmuIommu) {
    let name = match which {
        TailOf::Rx(q) => format!("RX{q}"),
        TailOf::Tx(q) => format!("TX{q}"),
    };
    let _ = writeln!(
        text,
        "  {name}: {} descriptors @{:#x}, head {} (device), tail {} (driver); per slot DD",
        ring.entries, ring.base, ring.head, ring.tail
    );
    let size = spec::nic::adv_desc::DESC_SIZE;
    match ring_bytes(iommu, ring.base, ring.entries, size) {
        Err(e) => {
            let _ = writeln!(text, "    ({e})");
        }
        Ok(bytes) => {
            let cells: Vec<char> = bytes
                .chunks(size)
                .map(|d| if dd(d, which) { '1' } else { '0' })
                .collect();
            slots_picture(text, &cells, ring.head, ring.tail);
        }
    }
}

/// The step hook of an emulated NIC port: after each RDT or TDT write, the
/// events and the ring.
pub fn nic_hook(
    stepper: &'static Stepper,
    source: EventSource,
    model: Arc<NicModel>,
    iommu: Arc<EmuIommu>,
) -> StepHook {
    Arc::new(move |offset, value| {
        let Some(which) = model.tail_of(offset) else {
            return;
        };
        let mut text = String::new();
        let what = match which {
            TailOf::Rx(q) => format!("RDT[{q}] <- {value}"),
            TailOf::Tx(q) => format!("TDT[{q}] <- {value}"),
        };
        let _ = writeln!(text, "step: {what}");
        events_text(&source, &mut text);
        match model.ring_view(which) {
            Some(ring) => ring_picture(&mut text, which, &ring, &iommu),
            None => {
                let _ = writeln!(text, "  the queue is not enabled");
            }
        }
        stepper.pause(&text);
    })
}
