//! The two rings of a queue pair in DMA memory (NVMe 1.4 §4.1): the
//! submission queue the host fills and the controller consumes, and the
//! completion queue the controller fills and the host consumes by phase tag.
//! Index arithmetic only; the memory itself belongs to the queue.
#![forbid(unsafe_code)]

use crate::regs::RegisterAccess;
use dma::DmaRegion;
use spec::nvme::{cqe, reg, sqe};

// The entry's dwords are read as one run from DW0, DW3 (the phase tag) last
// word of the four.
const _: () = assert!(cqe::DW0 == 0 && cqe::DW2 == 8 && cqe::DW3 == 12 && cqe::SIZE == 16);

/// Distance from `from` to `to` going forward around a ring of `depth`.
#[inline]
fn ring_distance(from: u16, to: u16, depth: u16) -> u16 {
    if to >= from {
        to - from
    } else {
        depth - from + to
    }
}

/// A submission queue: the host writes entries at `tail` and tells the
/// controller with the tail doorbell; the controller reports how far it has
/// fetched (its head) in every completion (SQHD).
#[derive(Debug)]
pub(crate) struct SubmissionQueue {
    /// Offset of entry 0 in the queue's DMA region.
    offset: usize,
    depth: u16,
    /// Next entry the host fills.
    tail: u16,
    /// The tail last written to the doorbell: the controller may fetch up to it.
    rung_tail: u16,
    /// The controller's head as last reported by a validated completion.
    head: u16,
    /// Register offset of the tail doorbell.
    doorbell: usize,
}

impl SubmissionQueue {
    pub fn new(offset: usize, depth: u16, qid: u16, dstrd: u32) -> Self {
        SubmissionQueue {
            offset,
            depth,
            tail: 0,
            rung_tail: 0,
            head: 0,
            doorbell: reg::sq_tail_doorbell(qid, dstrd),
        }
    }

    /// Entries the host may still fill: one entry always stays empty, since
    /// head == tail means empty (§4.1.1).
    #[inline]
    pub fn free(&self) -> u16 {
        self.depth - 1 - ring_distance(self.head, self.tail, self.depth)
    }

    /// Offset of the entry at the tail, the next one to fill.
    #[inline]
    pub fn tail_entry(&self) -> usize {
        self.offset + self.tail as usize * sqe::SIZE
    }

    /// Index of the tail entry (for the trace).
    pub fn tail(&self) -> u16 {
        self.tail
    }

    /// Count the tail entry as filled.
    #[inline]
    pub fn advance(&mut self) {
        self.tail = if self.tail + 1 == self.depth {
            0
        } else {
            self.tail + 1
        };
    }

    /// True if entries were filled since the last doorbell write.
    #[inline]
    pub fn has_unrung(&self) -> bool {
        self.tail != self.rung_tail
    }

    /// Write the tail doorbell. The caller has issued the release fence
    /// that orders the entries before it.
    #[inline]
    pub fn ring<R: RegisterAccess>(&mut self, regs: &R) {
        regs.write32(self.doorbell, self.tail as u32);
        self.rung_tail = self.tail;
    }

    /// Whether `sqhd` is a head the controller can have reached: between
    /// the last reported head and the last tail it was told about.
    #[inline]
    pub fn accepts_head(&self, sqhd: u16) -> bool {
        sqhd < self.depth
            && ring_distance(self.head, sqhd, self.depth)
                <= ring_distance(self.head, self.rung_tail, self.depth)
    }

    /// Take a head the controller reported (checked with [`Self::accepts_head`]).
    #[inline]
    pub fn set_head(&mut self, sqhd: u16) {
        self.head = sqhd;
    }

    /// Head, rung tail and depth, for messages.
    pub fn state(&self) -> (u16, u16, u16) {
        (self.head, self.rung_tail, self.depth)
    }
}

/// The fields of one completion queue entry (§4.6), read after its phase tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawCompletion {
    pub dw0: u32,
    pub dw2: u32,
    pub dw3: u32,
}

/// A completion queue consumed by phase tag: an entry is new when its phase
/// bit equals the phase the host expects, which flips each time the host
/// wraps around (§4.6).
#[derive(Debug)]
pub(crate) struct CompletionQueue {
    offset: usize,
    depth: u16,
    head: u16,
    phase: u32,
    doorbell: usize,
    /// Entries consumed since the last head doorbell write.
    unrung: bool,
}

impl CompletionQueue {
    /// A completion queue whose memory (`depth` entries at `offset`) is zeroed:
    /// the controller's first pass writes phase 1.
    pub fn new(offset: usize, depth: u16, qid: u16, dstrd: u32) -> Self {
        CompletionQueue {
            offset,
            depth,
            head: 0,
            phase: 1,
            doorbell: reg::cq_head_doorbell(qid, dstrd),
            unrung: false,
        }
    }

    /// The entry at the head if the controller has written it. DW3 (with the
    /// phase tag) is read first with acquire ordering: the controller writes
    /// it last, so the other dwords read after it are complete. One bounds
    /// check for the entry.
    #[inline]
    pub fn peek(&self, mem: &DmaRegion) -> Option<RawCompletion> {
        let at = self.offset + self.head as usize * cqe::SIZE;
        // DW0..DW3; DW1 is reserved and ignored.
        let [dw0, _, dw2, dw3] =
            mem.read_u32s_acquire_last::<4>(at, |dw3| cqe::dw3::P.get(dw3) == self.phase)?;
        Some(RawCompletion { dw0, dw2, dw3 })
    }

    /// Index of the head entry (for the trace).
    pub fn head(&self) -> u16 {
        self.head
    }

    /// Consume the head entry.
    #[inline]
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head == self.depth {
            self.head = 0;
            self.phase ^= 1;
        }
        self.unrung = true;
    }

    /// Tell the controller which entries it may reuse: one head doorbell
    /// write for everything consumed since the last one.
    #[inline]
    pub fn ring<R: RegisterAccess>(&mut self, regs: &R) {
        if self.unrung {
            regs.write32(self.doorbell, self.head as u32);
            self.unrung = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_queue_keeps_one_entry_free_and_checks_heads() {
        let mut sq = SubmissionQueue::new(0, 4, 1, 0);
        assert_eq!(sq.free(), 3);
        sq.advance();
        sq.advance();
        assert_eq!(sq.free(), 1);
        // Not rung yet: the controller cannot have fetched anything.
        assert!(sq.accepts_head(0));
        assert!(!sq.accepts_head(1));
        sq.rung_tail = sq.tail;
        assert!(sq.accepts_head(2));
        assert!(!sq.accepts_head(3));
        assert!(!sq.accepts_head(4));
        sq.set_head(2);
        assert_eq!(sq.free(), 3);
        // Wrap around: tail 2 -> 3 -> 0.
        sq.advance();
        sq.advance();
        assert_eq!(sq.tail, 0);
        sq.rung_tail = 0;
        assert!(sq.accepts_head(3) && sq.accepts_head(0));
        assert!(!sq.accepts_head(1));
        assert_eq!(sq.free(), 1);
    }

    #[test]
    fn ring_distance_wraps() {
        assert_eq!(ring_distance(3, 1, 4), 2);
        assert_eq!(ring_distance(1, 3, 4), 2);
        assert_eq!(ring_distance(2, 2, 4), 0);
    }
}
