//! The command engine: queues, fetching commands, posting completions.
//!
//! The engine is the part of the controller that the doorbells set in
//! motion. It lives behind one mutex: in inline mode whichever thread rang a
//! doorbell runs it, in threaded mode only the device thread does (register
//! writes that reset or enable the controller take the mutex too, so they
//! never race with a batch in flight).
#![forbid(unsafe_code)]

use super::command::{Sqe, Status};
use super::controller::NvmeModel;
use super::medium::Namespace;
use super::prp::PrpWalker;
use crate::TraceEvent;
use spec::nvme::{cqe, sqe};

/// Most commands fetched with one DMA read (contiguous entries of one SQ).
const FETCH_BATCH: usize = 64;

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
    fn free(&self) -> u32 {
        (self.head + self.entries - self.tail - 1) % self.entries
    }
}

/// One completion queue entry to post.
struct Completion {
    dw0: u32,
    sqhd: u32,
    sqid: u16,
    cid: u16,
    status: Status,
}

/// Queues, namespaces and scratch buffers: everything command processing changes.
pub(super) struct Engine {
    /// Submission queues by QID (index 0: admin).
    pub(super) sqs: Vec<Option<SubmissionQueue>>,
    /// Completion queues by QID.
    pub(super) cqs: Vec<Option<CompletionQueue>>,
    /// QIDs of the existing submission queues, ascending: the ones to poll.
    active: Vec<u16>,
    /// Number of I/O (submission, completion) queues granted by Set Features.
    pub(super) granted: Option<(u16, u16)>,
    /// Namespaces, NSID 1 first.
    pub(super) namespaces: Vec<Namespace>,
    /// Where fetched commands land.
    fetch: Box<[u8]>,
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

    /// Do the work the doorbells ask for: fetch and execute commands of every
    /// submission queue, in QID order, as far as their completion queues have
    /// room. With `until_idle`, go round until nothing more can be done
    /// (inline mode); else make one pass (the device thread calls again).
    /// Returns whether any command was processed.
    pub(super) fn run(&mut self, m: &NvmeModel, until_idle: bool) -> bool {
        let mut any = false;
        loop {
            let mut progress = false;
            let mut i = 0;
            // Indexing, not iterating: an admin command may add or remove queues.
            while i < self.active.len() {
                if !m.processing() {
                    return any;
                }
                let qid = self.active[i];
                progress |= self.service(m, qid) > 0;
                i += 1;
            }
            any |= progress;
            if !progress || !until_idle {
                return any;
            }
        }
    }

    /// Fetch and execute a batch of commands of submission queue `qid`.
    /// Returns how many were fetched.
    fn service(&mut self, m: &NvmeModel, qid: u16) -> usize {
        let Some(mut sq) = self.sqs[qid as usize] else {
            return 0;
        };
        let tail = m.doorbells.sq_tail(qid);
        if tail == sq.head || tail >= sq.entries {
            return 0;
        }
        let cqid = sq.cqid as usize;
        let free = match self.cqs[cqid].as_mut() {
            Some(cq) => {
                cq.head = m.doorbells.cq_head(sq.cqid);
                cq.free()
            }
            // Cannot happen: a CQ that an SQ uses cannot be deleted.
            None => return 0,
        };
        // Entries up to the tail or the end of the ring, whichever is first.
        let available = if tail > sq.head {
            tail - sq.head
        } else {
            sq.entries - sq.head
        };
        let n = available.min(free).min(FETCH_BATCH as u32) as usize;
        if n == 0 {
            // The completion queue is full: fetch nothing until its head moves.
            return 0;
        }
        let iova = sq.base + sq.head as u64 * sqe::SIZE as u64;
        if let Err(e) = m.dma.read(iova, &mut self.fetch[..n * sqe::SIZE]) {
            m.cannot_reach_host("fetching commands", &e);
            return 0;
        }
        for k in 0..n {
            let cmd = Sqe::new(&self.fetch[k * sqe::SIZE..]);
            let index = sq.head;
            m.dma.trace().record(|| TraceEvent::Fetch {
                queue: 2 * qid as u32,
                index,
                iova: iova + (k * sqe::SIZE) as u64,
            });
            sq.head = (sq.head + 1) % sq.entries;
            let outcome = if qid == 0 {
                self.admin(m, &cmd)
            } else {
                self.io(m, &cmd)
            };
            let (dw0, status) = match outcome {
                Ok(dw0) => (dw0, Status::SUCCESS),
                Err(status) => (0, status),
            };
            let posted = self.post(
                m,
                cqid,
                Completion {
                    dw0,
                    sqhd: sq.head,
                    sqid: qid,
                    cid: cmd.cid(),
                    status,
                },
            );
            if !posted {
                break;
            }
        }
        // Admin commands never touch queue 0 and I/O commands touch no queue,
        // so the copy is still the queue's state.
        if let Some(q) = self.sqs[qid as usize].as_mut() {
            q.head = sq.head;
        }
        n
    }

    /// Write one completion entry: DW0-DW2 first, then DW3 (CID, phase,
    /// status) with release ordering, so a host that sees the new phase sees
    /// the whole entry. Returns false if the host cannot be reached.
    fn post(&mut self, m: &NvmeModel, cqid: usize, c: Completion) -> bool {
        let Some(cq) = self.cqs[cqid].as_mut() else {
            return false;
        };
        let slot = cq.base + cq.tail as u64 * cqe::SIZE as u64;
        let dw2 = cqe::dw2::SQHD.value(c.sqhd) | cqe::dw2::SQID.value(u32::from(c.sqid));
        let mut first = [0u8; cqe::DW3];
        first[cqe::DW0..cqe::DW0 + 4].copy_from_slice(&c.dw0.to_le_bytes());
        first[cqe::DW2..cqe::DW2 + 4].copy_from_slice(&dw2.to_le_bytes());
        let dw3 = cqe::dw3::CID.value(u32::from(c.cid))
            | cqe::dw3::P.value(u32::from(cq.phase))
            | c.status.dw3_bits();
        let written = m
            .dma
            .write(slot, &first)
            .and_then(|()| m.dma.store_u32_release(slot + cqe::DW3 as u64, dw3));
        if let Err(e) = written {
            m.cannot_reach_host("posting a completion", &e);
            return false;
        }
        cq.tail += 1;
        if cq.tail == cq.entries {
            cq.tail = 0;
            cq.phase = !cq.phase;
        }
        m.dma.trace().record(|| TraceEvent::Completion {
            queue: 2 * cqid as u32 + 1,
            id: c.cid as u32,
            status: c.status.code(),
        });
        true
    }
}
