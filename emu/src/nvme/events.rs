//! The controller's half of the descriptor trace ([`drivers::trace`]): the
//! entries it fetched, the PRP lists it read, each contiguous run of data it
//! moved, the completions it wrote, the DMA the IOMMU stopped, and notes
//! (reset, fatal status, shutdown). Every event is the controller engine's
//! ([`Engine::Controller`]) and goes through the model's DMA tap; the
//! builders here run only when tracing is on (`tap.record(|| ...)`).
//!
//! A fetch and a write-back carry the entry's bytes and are not also
//! recorded as DMA: the trace says what moved, once.
#![forbid(unsafe_code)]

use crate::{DeviceDma, DmaError};
use drivers::trace::{Engine, Event, Kind, Queue};
use spec::nvme::{cqe, sqe};

/// PRP list entries a `prp_list` event carries.
const LIST_ENTRIES_SHOWN: usize = 8;

#[inline]
fn controller(kind: Kind) -> Event {
    Event::device(kind, Engine::Controller)
}

/// Submission queue `qid`'s entry `index` at `iova` was fetched: its 64 bytes.
pub(super) fn fetch(qid: u16, index: u32, iova: u64, entry: &[u8]) -> Event {
    controller(Kind::Fetch)
        .queue(Queue::Sq(qid))
        .index(index)
        .addr(iova)
        .len(sqe::SIZE as u32)
        .bytes(&entry[..sqe::SIZE])
}

/// A PRP list page was read at `iova`: `entries` entries (a chain pointer
/// included), of which `list` holds the bytes; the first eight are kept.
pub(super) fn prp_list(iova: u64, entries: usize, list: &[u8]) -> Event {
    let shown = entries.min(LIST_ENTRIES_SHOWN) * 8;
    controller(Kind::PrpList)
        .addr(iova)
        .len(entries as u32)
        .bytes(&list[..shown])
}

/// One contiguous run of a data transfer: written to host memory
/// (`to_host`, a read command or Identify) or read from it (a write).
pub(super) fn data(iova: u64, len: u64, to_host: bool) -> Event {
    let kind = if to_host {
        Kind::DmaWrite
    } else {
        Kind::DmaRead
    };
    // A run is at most one command's transfer (MDTS, or the driver's own
    // limit); the saturation only guards a length the u32 cannot hold.
    controller(kind)
        .addr(iova)
        .len(u32::try_from(len).unwrap_or(u32::MAX))
}

/// Completion queue `cqid`'s entry `index` at `iova` was written: its 16
/// bytes as written, from its dwords (DW1 is reserved: 0).
pub(super) fn write_back(cqid: u16, index: u32, iova: u64, [dw0, dw2, dw3]: [u32; 3]) -> Event {
    let mut b = [0u8; cqe::SIZE];
    b[cqe::DW0..cqe::DW0 + 4].copy_from_slice(&dw0.to_le_bytes());
    b[cqe::DW2..cqe::DW2 + 4].copy_from_slice(&dw2.to_le_bytes());
    b[cqe::DW3..cqe::DW3 + 4].copy_from_slice(&dw3.to_le_bytes());
    controller(Kind::WriteBack)
        .queue(Queue::Cq(cqid))
        .index(index)
        .addr(iova)
        .len(cqe::SIZE as u32)
        .bytes(&b)
}

/// A remark: the first [`drivers::trace::RAW_MAX`] bytes of `text`.
pub(super) fn note(text: &str) -> Event {
    Event {
        agent: drivers::trace::Agent::Device(Engine::Controller),
        ..Event::note(text)
    }
}

/// Record `e` if the IOMMU stopped the access (a DMA refused for want of
/// bus mastering is the controller's fatal status, noted where it happens).
#[inline]
pub(super) fn fault(dma: &DeviceDma, e: &DmaError) {
    if let DmaError::Fault(f) = e {
        dma.tap().record(|| {
            controller(Kind::Fault)
                .addr(f.iova)
                .len(u32::try_from(f.len).unwrap_or(u32::MAX))
                .value(u64::from(f.write))
        });
    }
}
