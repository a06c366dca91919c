//! The engine's state: submission and completion queues, namespaces and
//! scratch buffers. Command processing, which changes it, is in `processing`.
//!
//! The engine is the part of the controller that the doorbells set in
//! motion. It lives behind one mutex: in inline mode whichever thread rang a
//! doorbell runs it, in threaded mode only the device thread does (register
//! writes that reset or enable the controller take the mutex too, so they
//! never race with a batch in flight).
#![forbid(unsafe_code)]

use super::medium::Namespace;
use super::prp::PrpWalker;
use spec::nvme::sqe;

/// Most commands fetched with one DMA read (contiguous entries of one SQ).
pub(super) const FETCH_BATCH: usize = 64;

/// A submission queue as the controller sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct SubmissionQueue {
    /// IOVA of entry 0.
    pub(super) base: u64,
    /// Number of entries.
    pub(super) entries: u32,
    /// Next entry to fetch.
    pub(super) head: u32,
    /// The completion queue its commands complete into.
    pub(super) cqid: u16,
}

/// A completion queue as the controller sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct CompletionQueue {
    /// IOVA of entry 0.
    pub(super) base: u64,
    /// Number of entries.
    pub(super) entries: u32,
    /// Next entry to write.
    pub(super) tail: u32,
    /// The host's head, from the CQ head doorbell.
    pub(super) head: u32,
    /// Phase tag of the entries written in this pass (starts at 1, §4.6).
    pub(super) phase: bool,
    /// Submission queues that complete into it.
    pub(super) users: u16,
}

impl CompletionQueue {
    /// A new, empty queue.
    pub(super) fn new(base: u64, entries: u32) -> Self {
        CompletionQueue {
            base,
            entries,
            tail: 0,
            head: 0,
            phase: true,
            users: 0,
        }
    }

    /// Entries that may be written without overwriting one the host has not
    /// consumed: the queue is full when `(tail + 1) % entries == head` (§4.1).
    pub(super) fn free(&self) -> u32 {
        (self.head + self.entries - self.tail - 1) % self.entries
    }
}

/// Queues, namespaces and scratch buffers: everything command processing changes.
pub(super) struct Engine {
    /// Submission queues by QID (index 0: admin).
    pub(super) sqs: Vec<Option<SubmissionQueue>>,
    /// Completion queues by QID.
    pub(super) cqs: Vec<Option<CompletionQueue>>,
    /// QIDs of the existing submission queues, ascending: the ones to poll.
    pub(super) active: Vec<u16>,
    /// Number of I/O (submission, completion) queues granted by Set Features.
    pub(super) granted: Option<(u16, u16)>,
    /// Namespaces, NSID 1 first.
    pub(super) namespaces: Vec<Namespace>,
    /// Where fetched commands land.
    pub(super) fetch: Box<[u8]>,
    /// PRP walking state.
    pub(super) prp: PrpWalker,
    /// Bounce buffer for file I/O.
    pub(super) bounce: Vec<u8>,
}

impl Engine {
    /// An engine with no queues, for a controller with `max_io_queues`.
    pub(super) fn new(max_io_queues: u16, namespaces: Vec<Namespace>) -> Self {
        let n = max_io_queues as usize + 1;
        Engine {
            sqs: vec![None; n],
            cqs: vec![None; n],
            active: Vec::with_capacity(n),
            granted: None,
            namespaces,
            fetch: vec![0u8; FETCH_BATCH * sqe::SIZE].into_boxed_slice(),
            prp: PrpWalker::new(),
            bounce: Vec::new(),
        }
    }

    /// Controller reset (§7.3.2): every queue is gone, the queue grant is forgotten.
    pub(super) fn reset(&mut self) {
        self.sqs.iter_mut().for_each(|q| *q = None);
        self.cqs.iter_mut().for_each(|q| *q = None);
        self.active.clear();
        self.granted = None;
    }

    /// Create the admin queues from AQA/ASQ/ACQ as CC.EN goes to 1.
    pub(super) fn enable(&mut self, asq: u64, sq_entries: u32, acq: u64, cq_entries: u32) {
        self.reset();
        let mut cq = CompletionQueue::new(acq, cq_entries);
        cq.users = 1;
        self.cqs[0] = Some(cq);
        self.sqs[0] = Some(SubmissionQueue {
            base: asq,
            entries: sq_entries,
            head: 0,
            cqid: 0,
        });
        self.active.push(0);
    }

    /// Whether any I/O queue exists.
    pub(super) fn has_io_queues(&self) -> bool {
        self.sqs.iter().skip(1).any(Option::is_some) || self.cqs.iter().skip(1).any(Option::is_some)
    }

    /// Add I/O submission queue `qid` (checked by the caller).
    pub(super) fn add_sq(&mut self, qid: u16, sq: SubmissionQueue) {
        if let Some(cq) = self.cqs[sq.cqid as usize].as_mut() {
            cq.users += 1;
        }
        self.sqs[qid as usize] = Some(sq);
        let pos = self.active.partition_point(|&q| q < qid);
        self.active.insert(pos, qid);
    }

    /// Remove I/O submission queue `qid`; returns false if it did not exist.
    pub(super) fn remove_sq(&mut self, qid: u16) -> bool {
        let Some(sq) = self.sqs.get_mut(qid as usize).and_then(Option::take) else {
            return false;
        };
        if let Some(cq) = self.cqs[sq.cqid as usize].as_mut() {
            cq.users -= 1;
        }
        self.active.retain(|&q| q != qid);
        true
    }
}
