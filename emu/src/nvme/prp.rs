//! PRP walking (NVMe 1.4 §4.3): turn PRP Entry 1, PRP Entry 2 and any PRP
//! lists into the host memory segments of a transfer.
#![forbid(unsafe_code)]

use super::command::Status;
use super::events;
use crate::DeviceDma;

/// The memory page size, CC.MPS = 0 (the only one CAP.MPSMIN/MPSMAX allow).
pub(super) const PAGE: u64 = 4096;

/// PRP list entries per page.
const ENTRIES_PER_PAGE: usize = (PAGE / 8) as usize;

/// A run of host memory that a transfer reads or writes: contiguous IOVAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segment {
    /// First IOVA.
    pub(super) iova: u64,
    /// Length in bytes.
    pub(super) len: u64,
}

/// Walks PRPs into segments. It keeps its buffers between commands, so a
/// walk allocates nothing once the largest transfer has been seen.
pub(super) struct PrpWalker {
    segments: Vec<Segment>,
    list: Box<[u8; PAGE as usize]>,
}

impl PrpWalker {
    /// An empty walker.
    pub(super) fn new() -> Self {
        PrpWalker {
            segments: Vec::with_capacity(64),
            list: Box::new([0; PAGE as usize]),
        }
    }

    fn push(&mut self, iova: u64, len: u64) {
        // Neighbouring pages that are also neighbours in IOVA space become
        // one segment: one DMA copy instead of one per page.
        if let Some(last) = self.segments.last_mut() {
            if last.iova.checked_add(last.len) == Some(iova) {
                last.len += len;
                return;
            }
        }
        self.segments.push(Segment { iova, len });
    }

    /// Walk the PRPs of a transfer of `len` bytes (§4.3, Figure 108-109):
    /// - PRP1 may have an offset in its page, but it must be dword aligned;
    /// - a transfer that ends in the first page ignores PRP2;
    /// - one that ends in the second page has PRP2 = the page, offset 0;
    /// - otherwise PRP2 points at a PRP list (dword aligned, possibly with an
    ///   offset); every entry is a page with offset 0, and the last entry of a
    ///   full list page points at the next list page.
    ///
    /// Violations give PRP Offset Invalid; a list the IOMMU refuses gives Data
    /// Transfer Error.
    pub(super) fn walk(
        &mut self,
        dma: &DeviceDma,
        prp1: u64,
        prp2: u64,
        len: u64,
    ) -> Result<&[Segment], Status> {
        self.segments.clear();
        if len == 0 {
            return Ok(&self.segments);
        }
        if prp1 & 3 != 0 {
            return Err(Status::PRP_OFFSET_INVALID);
        }
        let first = len.min(PAGE - prp1 % PAGE);
        self.push(prp1, first);
        let mut remaining = len - first;
        if remaining == 0 {
            return Ok(&self.segments);
        }
        if remaining <= PAGE {
            if !prp2.is_multiple_of(PAGE) {
                return Err(Status::PRP_OFFSET_INVALID);
            }
            self.push(prp2, remaining);
            return Ok(&self.segments);
        }
        if prp2 & 3 != 0 {
            // A PRP list pointer may have an offset, dword aligned (bits 1:0 clear).
            return Err(Status::PRP_OFFSET_INVALID);
        }
        let mut list = prp2;
        loop {
            // Whole entries left in this list page. A list pointer in the last
            // dword of a page leaves room for none: nothing valid can be read.
            let slots = ((PAGE - list % PAGE) / 8) as usize;
            if slots == 0 {
                return Err(Status::PRP_OFFSET_INVALID);
            }
            let pages = remaining.div_ceil(PAGE);
            // More pages than this list page has entries: its last entry chains.
            let chained = pages > slots as u64;
            let count = if chained { slots } else { pages as usize };
            if let Err(e) = dma.read(list, &mut self.list[..count * 8]) {
                events::fault(dma, &e);
                return Err(Status::DATA_TRANSFER_ERROR);
            }
            dma.tap()
                .record(|| events::prp_list(list, count, &self.list[..]));
            let data = if chained { count - 1 } else { count };
            for i in 0..data {
                let entry = entry_at(&self.list[..], i);
                if !entry.is_multiple_of(PAGE) {
                    return Err(Status::PRP_OFFSET_INVALID);
                }
                let n = remaining.min(PAGE);
                self.push(entry, n);
                remaining -= n;
            }
            if !chained {
                debug_assert_eq!(remaining, 0);
                return Ok(&self.segments);
            }
            let next = entry_at(&self.list[..], count - 1);
            if !next.is_multiple_of(PAGE) {
                return Err(Status::PRP_OFFSET_INVALID);
            }
            list = next;
        }
    }
}

/// PRP list entry `i` of a list page copy.
fn entry_at(list: &[u8], i: usize) -> u64 {
    debug_assert!(i < ENTRIES_PER_PAGE);
    let b = &list[i * 8..i * 8 + 8];
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}
