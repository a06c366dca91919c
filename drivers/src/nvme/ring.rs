//! The two rings of a queue pair in DMA memory (NVMe 1.4 §4.1): the
//! submission queue the host fills and the controller consumes, and the
//! completion queue the controller fills and the host consumes by phase tag.
//! Index arithmetic only; the memory itself belongs to the queue.
#![forbid(unsafe_code)]

use crate::regs::RegisterAccess;
use dma::{DmaRegion, RingCursor};
use spec::nvme::{cqe, reg, sqe};
use std::sync::Arc;

// The entry's dwords are read as one run from DW0, DW3 (the phase tag) last
// word of the four.
const _: () = assert!(cqe::DW0 == 0 && cqe::DW2 == 8 && cqe::DW3 == 12 && cqe::SIZE == 16);

/// Distance from `from` to `to` going forward around a ring of `depth`
/// (both below `depth`).
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
///
/// Two counters are kept beside the indices so that neither submitting
/// nor taking a head needs the ring distance of the indices (only the
/// doorbell write, once per batch, works one out): the entries the host
/// may still fill, and the entries announced to the controller that it has
/// not reported fetched.
#[derive(Debug)]
pub(crate) struct SubmissionQueue {
    depth: u16,
    /// The next entry the host fills (the tail), in the queue's DMA
    /// region: bounds checked once, when the queue is made, so writing an
    /// entry costs no check.
    tail_at: RingCursor<{ sqe::SIZE }>,
    /// The tail last written to the doorbell: the controller may fetch up to it.
    rung_tail: u16,
    /// The controller's head as last reported by a validated completion.
    head: u16,
    /// Entries the host may still fill: `depth - 1` minus head..tail.
    free: u16,
    /// Entries head..rung_tail: announced, not reported fetched. (Those
    /// filled since the last doorbell write, rung_tail..tail, are worked
    /// out per doorbell, not counted per entry.)
    announced: u16,
    /// Register offset of the tail doorbell.
    doorbell: usize,
}

impl SubmissionQueue {
    /// The submission queue of `depth` entries at `offset` in `mem`.
    pub fn new(mem: &Arc<DmaRegion>, offset: usize, depth: u16, qid: u16, dstrd: u32) -> Self {
        SubmissionQueue {
            depth,
            tail_at: RingCursor::new(mem, offset, depth as usize),
            rung_tail: 0,
            head: 0,
            // One entry always stays empty, since head == tail means empty
            // (§4.1.1).
            free: depth - 1,
            announced: 0,
            doorbell: reg::sq_tail_doorbell(qid, dstrd),
        }
    }

    /// Entries the host may still fill.
    #[inline]
    pub fn free(&self) -> u16 {
        self.free
    }

    /// Offset of the entry at the tail, the next one to fill.
    #[inline]
    pub fn tail_entry(&self) -> usize {
        self.tail_at.offset()
    }

    /// Index of the tail entry.
    #[inline]
    pub fn tail(&self) -> u16 {
        self.tail_at.index() as u16
    }

    /// Write the tail entry's eight words (relaxed atomic stores; the
    /// doorbell's release fence orders them).
    #[inline]
    pub fn write_tail(&self, words: &[u64; 8]) {
        self.tail_at.write_u64s(words);
    }

    /// Count the tail entry as filled (the caller saw [`Self::free`] > 0).
    #[inline]
    pub fn advance(&mut self) {
        debug_assert!(self.free > 0);
        self.tail_at.advance();
        self.free -= 1;
    }

    /// True if entries were filled since the last doorbell write.
    #[inline]
    pub fn has_unrung(&self) -> bool {
        self.tail() != self.rung_tail
    }

    /// Write the tail doorbell. The caller has issued the release fence
    /// that orders the entries before it.
    #[inline]
    pub fn ring<R: RegisterAccess>(&mut self, regs: &R) {
        let tail = self.tail();
        regs.write32(self.doorbell, u32::from(tail));
        // rung_tail..tail is below depth entries (one always stays empty),
        // so equal indices mean none.
        self.announced += ring_distance(self.rung_tail, tail, self.depth);
        self.rung_tail = tail;
    }

    /// How many entries a completion's `sqhd` says the controller fetched
    /// since the last reported head, if it is a head the controller can
    /// have reached (between the last reported head and the last tail it
    /// was told about); None if not.
    #[inline]
    pub fn fetched_by(&self, sqhd: u16) -> Option<u16> {
        if sqhd >= self.depth {
            return None;
        }
        let moved = ring_distance(self.head, sqhd, self.depth);
        (moved <= self.announced).then_some(moved)
    }

    /// Take a head the controller reported, `moved` entries on from the
    /// last one (both from [`Self::fetched_by`]).
    #[inline]
    pub fn set_head(&mut self, sqhd: u16, moved: u16) {
        debug_assert_eq!(self.fetched_by(sqhd), Some(moved));
        self.head = sqhd;
        self.announced -= moved;
        self.free += moved;
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
    /// Offset of entry 0 in the queue's DMA region.
    offset: usize,
    /// The head entry: bounds checked once, when the queue is made, so
    /// reading an entry costs no check.
    head_at: RingCursor<{ cqe::SIZE }>,
    phase: u32,
    doorbell: usize,
}

impl CompletionQueue {
    /// A completion queue whose memory (`depth` entries at `offset` in
    /// `mem`) is zeroed: the controller's first pass writes phase 1.
    pub fn new(mem: &Arc<DmaRegion>, offset: usize, depth: u16, qid: u16, dstrd: u32) -> Self {
        CompletionQueue {
            offset,
            head_at: RingCursor::new(mem, offset, depth as usize),
            phase: 1,
            doorbell: reg::cq_head_doorbell(qid, dstrd),
        }
    }

    /// Offset of the head entry in the queue's DMA region.
    #[inline]
    pub fn head_at(&self) -> usize {
        self.head_at.offset()
    }

    /// Index of the entry at offset `at` (for the trace).
    pub fn index_of(&self, at: usize) -> u16 {
        ((at - self.offset) / cqe::SIZE) as u16
    }

    /// Consume the entry at the head if the controller has written it: the
    /// one place completion queue entries are read. DW3 (with the phase
    /// tag) is read first with acquire ordering: the controller writes it
    /// last, so the other dwords read after it are complete. No bounds
    /// check: the head cursor is inside the ring by construction.
    #[inline]
    pub fn take(&mut self) -> Option<RawCompletion> {
        // DW0..DW3; DW1 is reserved: not read.
        let [dw0, _, dw2, dw3] = self
            .head_at
            .read_u32s_acquire_last::<4>(1 << 1, |dw3| cqe::dw3::P.get(dw3) == self.phase)?;
        if self.head_at.advance() {
            self.phase ^= 1;
        }
        Some(RawCompletion { dw0, dw2, dw3 })
    }

    /// Tell the controller which entries it may reuse: one head doorbell
    /// write for everything consumed since the last one. The caller calls
    /// it once after taking entries (a poll that took none writes nothing).
    #[inline]
    pub fn ring<R: RegisterAccess>(&mut self, regs: &R) {
        let head = self.head_at.index();
        regs.write32(self.doorbell, head as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_queue_keeps_one_entry_free_and_checks_heads() {
        let regs = NoRegs;
        let mem = Arc::new(
            DmaRegion::allocate(
                Arc::new(dma::EmuIommu::new()),
                4096,
                dma::RegionOptions::EMULATED,
            )
            .unwrap(),
        );
        let mut sq = SubmissionQueue::new(&mem, 0, 4, 1, 0);
        assert_eq!(sq.free(), 3);
        sq.advance();
        sq.advance();
        assert_eq!(sq.free(), 1);
        // Not rung yet: the controller cannot have fetched anything.
        assert_eq!(sq.fetched_by(0), Some(0));
        assert_eq!(sq.fetched_by(1), None);
        sq.ring(&regs);
        assert_eq!(sq.fetched_by(2), Some(2));
        assert_eq!(sq.fetched_by(3), None);
        assert_eq!(sq.fetched_by(4), None);
        assert_eq!(sq.fetched_by(u16::MAX), None);
        sq.set_head(1, 1);
        assert_eq!(sq.free(), 2);
        assert_eq!(sq.fetched_by(0), None, "a head never moves back");
        assert_eq!(sq.fetched_by(2), Some(1));
        sq.set_head(2, 1);
        assert_eq!(sq.free(), 3);
        // Wrap around: tail 2 -> 3 -> 0.
        sq.advance();
        sq.advance();
        assert_eq!(sq.tail(), 0);
        assert_eq!(sq.free(), 1);
        // Filled, not rung: no head beyond 2 yet.
        assert_eq!(sq.fetched_by(3), None);
        sq.ring(&regs);
        assert_eq!(sq.state(), (2, 0, 4));
        assert_eq!(sq.fetched_by(3), Some(1));
        assert_eq!(sq.fetched_by(0), Some(2));
        assert_eq!(sq.fetched_by(1), None);
        sq.set_head(0, 2);
        assert_eq!(sq.free(), 3);
        assert!(!sq.has_unrung());
    }

    /// Registers that ignore writes.
    struct NoRegs;

    impl RegisterAccess for NoRegs {
        fn read32(&self, _: usize) -> u32 {
            0
        }
        fn write32(&self, _: usize, _: u32) {}
        fn read64(&self, _: usize) -> u64 {
            0
        }
        fn write64(&self, _: usize, _: u64) {}
        fn bar_size(&self) -> usize {
            usize::MAX
        }
    }

    #[test]
    fn ring_distance_wraps() {
        assert_eq!(ring_distance(3, 1, 4), 2);
        assert_eq!(ring_distance(1, 3, 4), 2);
        assert_eq!(ring_distance(2, 2, 4), 0);
    }
}
