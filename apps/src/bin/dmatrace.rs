//! dmatrace: read a descriptor trace (what `--trace FILE` writes), print it
//! one event a line with every field decoded by name, decode descriptor
//! bytes a user pastes in, and convert a trace between formats.
#![forbid(unsafe_code)]
// The doc comments on the clap types are the --help text, where [..]
// means "optional", not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use apps::trace::decode::{self, Entry, Family};
use apps::trace::show::{self, Clock, Filter};
use apps::trace::{file, qemu, Format};
use apps::{exit_on_error, parse_args, restore_sigpipe, AppResult};
use clap::{Parser, Subcommand, ValueEnum};
use drivers::trace::{Kind, Queue};
use std::io::Write;
use std::path::PathBuf;

/// Print, decode and convert descriptor traces: what the driver wrote into
/// the rings and read back, the doorbells, and what the device did (fetch,
/// PRP-list reads, each DMA, write-back, frames), decoded field by field
/// from the NVMe specification's and the Intel datasheets' layouts.
#[derive(Debug, Parser)]
#[command(
    name = "dmatrace",
    version,
    after_help = "Traces come from any app's --trace FILE option (.jsonl, .json or .pcapng; \
the format is chosen by the extension). The JSON-lines schema is described in \
docs/trace-format.md.\n\nExamples:\n  \
nvme-read emu:nvme,size=1M,mode=inline --length 20k --offset 64 --trace t.jsonl\n  \
dmatrace show t.jsonl\n  \
dmatrace show t.jsonl --queue SQ1 --cid 0\n  \
dmatrace decode cqe 00000000 00000000 0100 0100 0000 0100\n  \
dmatrace convert t.jsonl t.json"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a trace one event a line: time in µs since the first event,
    /// who did it (driver/N thread or device/ENGINE), and what happened
    /// with every field of the entry, descriptor or register decoded by
    /// name.
    #[command(after_help = "Filters combine (every one given must match).\n\n\
--cid N keeps the events of the NVMe commands with CID N: their SQE as written and \
fetched, their CQE as written and consumed, and the device's PRP-list reads and DMAs \
between the command's fetch and its completion (the emulated controller runs one \
command at a time). With --cid, --queue SQn (or CQn) picks the queue pair n.\n\n\
Examples:\n  dmatrace show t.jsonl\n  dmatrace show t.jsonl --queue SQ1\n  \
dmatrace show t.jsonl --cid 3 --queue SQ1\n  dmatrace show t.jsonl --kind fetch,write_back\n  \
dmatrace show t.jsonl --no-time --seq 40-49")]
    Show {
        /// The trace file (.jsonl, .json or .pcapng).
        file: PathBuf,
        /// Only events of this queue: SQn, CQn (NVMe; n = queue ID, 0 =
        /// admin), RXn or TXn (NIC), including its doorbell, head and tail
        /// registers.
        #[arg(long, value_parser = show::parse_queue)]
        queue: Option<Queue>,
        /// Only the events of the NVMe commands with this command identifier.
        #[arg(long)]
        cid: Option<u16>,
        /// Only events of this device (its number in the trace's device
        /// table, printed in the header lines).
        #[arg(long)]
        dev: Option<u16>,
        /// Only events of these kinds, comma-separated: reg_read,
        /// reg_write, desc_write, desc_read, fetch, prp_list, dma_read,
        /// dma_write, write_back, frame, fault, note, truncated.
        #[arg(long, value_delimiter = ',', value_parser = show::parse_kind)]
        kind: Vec<Kind>,
        /// Only events whose sequence numbers (the #N that --no-time
        /// prints) are in this range: FROM-TO, FROM-, -TO or N.
        #[arg(long, value_name = "RANGE", value_parser = show::parse_seq)]
        seq: Option<(u64, u64)>,
        /// Print each event's sequence number (#N) instead of its time:
        /// the output of an inline device's run is then the same in every
        /// run.
        #[arg(long)]
        no_time: bool,
    },
    /// Decode the bytes of one queue entry or descriptor, given in hex
    /// (with or without spaces), as the memory holds them (little endian).
    #[command(after_help = "Examples:\n  \
dmatrace decode sqe 01000000 01000000 0000000000000000 0000000000000000 \
4050800001000000 0020800001000000 00000000 00000000 27000000 00000000 00000000 00000000\n  \
dmatrace decode cqe 00000000 00000000 0100 0100 0000 0100\n  \
dmatrace decode tx-data 00704563 12000000 3c00302b 00020f00\n  \
dmatrace decode rx-writeback --nic igb 11010000 efbeadde 03000040 ea050000")]
    Decode {
        /// What the bytes are: sqe (64 bytes), cqe (16), tx-data,
        /// tx-context, tx-writeback, rx-read, rx-writeback (16 each).
        what: What,
        /// The bytes in hex: 01 00 34 12 or 01003412, over one or more
        /// arguments.
        #[arg(required = true, num_args = 1..)]
        hex: Vec<String>,
        /// For sqe: the entry is on the admin queue (SQ0), whose opcodes
        /// are the admin commands', not the NVM command set's.
        #[arg(long)]
        admin: bool,
        /// For rx-writeback: the chip family, whose error bits differ
        /// (igb: 82576/I350; ixgbe: 82599).
        #[arg(long, value_enum, default_value = "ixgbe")]
        nic: Nic,
    },
    /// Convert a trace between formats, each chosen by its file's
    /// extension: .jsonl (JSON lines), .json (Chrome trace, for
    /// ui.perfetto.dev) and .pcapng (Wireshark).
    #[command(after_help = "Example:\n  dmatrace convert t.jsonl t.json")]
    Convert {
        /// The trace to read.
        input: PathBuf,
        /// The file to write (replaced if it exists).
        output: PathBuf,
    },
    /// Compare our driver's trace of an NVMe run (on a VFIO device in a QEMU
    /// guest) with QEMU's own trace of the same run: every command's CID,
    /// opcode, NSID and PRP1/PRP2 (or queue address) and every
    /// completion's CID, DW0, DW1 and status must agree. Exits 1 when they
    /// do not, listing each difference.
    #[command(after_help = "QEMU must trace these events (hw/nvme/trace-events) to \
the log: pci_nvme_mmio_asqaddr, pci_nvme_mmio_asqaddr_hi, pci_nvme_mmio_start_success, \
pci_nvme_admin_cmd, pci_nvme_io_cmd, pci_nvme_map_prp, pci_nvme_create_cq, \
pci_nvme_create_sq, pci_nvme_enqueue_req_completion ('pci_nvme_*' has them all). The \
run compared is QEMU's first controller enable whose admin queue (ASQ) is the one in \
our trace, up to the next enable: trace the first run of ours in the log.\n\n\
Example (bash hw-setup/vm/run.sh does this in its check trace-vs-qemu):\n  \
qemu-system-x86_64 ... -trace enable=pci_nvme_*,file=qemu-trace.log\n  \
(in the guest) nvme-read 0000:00:06.0 --length 300k --trace read.jsonl >/dev/null\n  \
dmatrace compare-qemu read.jsonl qemu-trace.log")]
    CompareQemu {
        /// Our trace (.jsonl, .json or .pcapng) of one NVMe controller.
        trace: PathBuf,
        /// QEMU's trace log (-trace ...,file=FILE; the log backend's text).
        qemu_log: PathBuf,
        /// The NVMe device of the trace to compare (its number in the
        /// trace's device table), when it has several.
        #[arg(long)]
        dev: Option<u16>,
    },
}

/// What `decode` decodes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum What {
    /// NVMe submission queue entry (NVMe 1.4 §4.2), 64 bytes.
    Sqe,
    /// NVMe completion queue entry (NVMe 1.4 §4.6), 16 bytes.
    Cqe,
    /// Advanced transmit data descriptor, 16 bytes.
    TxData,
    /// Advanced transmit context descriptor, 16 bytes.
    TxContext,
    /// Advanced transmit descriptor, write-back format (DD), 16 bytes.
    TxWriteback,
    /// Advanced receive descriptor, read format, 16 bytes.
    RxRead,
    /// Advanced receive descriptor, write-back format, 16 bytes.
    RxWriteback,
}

/// A NIC chip family.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Nic {
    /// 82576 / I350.
    Igb,
    /// 82599.
    Ixgbe,
}

fn run(args: Args) -> AppResult<()> {
    match args.command {
        Command::Show {
            file: path,
            queue,
            cid,
            dev,
            kind,
            seq,
            no_time,
        } => {
            let t = file::read(&path)?;
            if let Some(d) = dev.filter(|&d| d as usize >= t.devices.len()) {
                return Err(format!(
                    "--dev {d}: {} has {} device(s), numbered from 0",
                    path.display(),
                    t.devices.len()
                )
                .into());
            }
            let filter = Filter {
                queue,
                cid,
                dev,
                kinds: kind,
                seq,
            };
            let clock = if no_time { Clock::Seq } else { Clock::Micros };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            show::show(&t, &filter, clock, &mut out)?;
        }
        Command::Decode {
            what,
            hex,
            admin,
            nic,
        } => {
            let entry = match what {
                What::Sqe => Entry::Sqe { admin },
                What::Cqe => Entry::Cqe,
                What::TxData => Entry::TxData,
                What::TxContext => Entry::TxContext,
                What::TxWriteback => Entry::TxWriteBack,
                What::RxRead => Entry::RxRead,
                What::RxWriteback => Entry::RxWriteBack(match nic {
                    Nic::Igb => Family::I82576,
                    Nic::Ixgbe => Family::I82599,
                }),
            };
            let what = entry.short_name();
            let bytes =
                decode::parse_hex(&hex.join(" ")).map_err(|e| format!("decode {what}: {e}"))?;
            let text = decode::full(entry, &bytes).map_err(|e| format!("decode {what}: {e}"))?;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
        }
        Command::Convert { input, output } => {
            // Check the output's format before reading a long input.
            Format::from_path(&output)?;
            if input == output {
                return Err(format!(
                    "{} is both the input and the output; write to another file",
                    input.display()
                )
                .into());
            }
            let t = file::read(&input)?;
            file::write(&t, &output)?;
            eprintln!(
                "dmatrace: {} events from {} written to {}",
                t.events.len(),
                input.display(),
                output.display()
            );
        }
        Command::CompareQemu {
            trace,
            qemu_log,
            dev,
        } => {
            let t = file::read(&trace)?;
            let f = std::fs::File::open(&qemu_log)
                .map_err(|e| format!("cannot open {}: {e}", qemu_log.display()))?;
            let (report, agree) = qemu::run(&t, dev, std::io::BufReader::new(f))
                .map_err(|e| format!("compare-qemu: {e}"))?;
            let mut out = std::io::stdout().lock();
            out.write_all(report.as_bytes())?;
            if !agree {
                return Err(format!(
                    "{} and {} disagree (each difference above)",
                    trace.display(),
                    qemu_log.display()
                )
                .into());
            }
        }
    }
    Ok(())
}

fn main() {
    restore_sigpipe();
    let args: Args = parse_args();
    exit_on_error(run(args));
}
