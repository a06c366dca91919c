//! Command processing: what the doorbells set in motion. Fetching commands
//! from the submission queues, executing them (`admin`, `io`) and posting
//! their completions, on the engine's state with the model's DMA, doorbells
//! and status.
#![forbid(unsafe_code)]

use super::command::{Sqe, Status};
use super::engine::{Engine, FETCH_BATCH};
use super::events;
use super::hostile::RawCqe;
use super::model::NvmeModel;
use spec::nvme::{cqe, sqe};

/// One completion queue entry to post.
struct Completion {
    dw0: u32,
    sqhd: u32,
    sqid: u16,
    cid: u16,
    status: Status,
}
impl Engine {
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
            events::fault(&m.dma, &e);
            m.cannot_reach_host("fetching commands", &e);
            return 0;
        }
        for k in 0..n {
            let at = k * sqe::SIZE;
            let cmd = Sqe::new(&self.fetch[at..]);
            let index = sq.head;
            // One event per entry, with its bytes (the batch's DMA read is
            // not recorded apart).
            m.dma
                .tap()
                .record(|| events::fetch(qid, index, iova + at as u64, &self.fetch[at..]));
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
    /// the whole entry. Returns false if the host cannot be reached. In
    /// hostile mode the entry may be mangled or posted twice.
    fn post(&mut self, m: &NvmeModel, cqid: usize, c: Completion) -> bool {
        let Some(cq) = self.cqs[cqid].as_ref() else {
            return false;
        };
        let mut e = RawCqe {
            dw0: c.dw0,
            dw2: cqe::dw2::SQHD.value(c.sqhd) | cqe::dw2::SQID.value(u32::from(c.sqid)),
            dw3: cqe::dw3::CID.value(u32::from(c.cid))
                | cqe::dw3::P.value(u32::from(cq.phase))
                | c.status.dw3_bits(),
        };
        let twice = m.hostile.completion(&mut e);
        let posted = self.write_entry(m, cqid, e);
        if posted && twice {
            // The same entry again, in the next slot with that slot's phase,
            // whether or not the host has room for it.
            let phase = self.cqs[cqid].as_ref().is_some_and(|q| q.phase);
            e.dw3 = cqe::dw3::P.set(e.dw3, u32::from(phase));
            return self.write_entry(m, cqid, e);
        }
        posted
    }

    /// Hostile mode: write a completion nobody asked for into a random
    /// existing completion queue, at its tail.
    pub(super) fn post_unasked(&mut self, m: &NvmeModel) {
        let existing: Vec<usize> = (0..self.cqs.len())
            .filter(|&q| self.cqs[q].is_some())
            .collect();
        if existing.is_empty() {
            return;
        }
        let cqid = existing[m.hostile.pick(existing.len() as u64) as usize];
        let Some(cq) = self.cqs[cqid].as_ref() else {
            return;
        };
        let e = m.hostile.unasked(cq.phase, cq.entries);
        self.write_entry(m, cqid, e);
    }

    /// Write `e` at the tail of completion queue `cqid` (DW3 last, with
    /// release ordering) and move the tail. False if the queue is gone or
    /// the host cannot be reached.
    fn write_entry(&mut self, m: &NvmeModel, cqid: usize, e: RawCqe) -> bool {
        let Some(cq) = self.cqs[cqid].as_mut() else {
            return false;
        };
        let slot = cq.base + cq.tail as u64 * cqe::SIZE as u64;
        let mut first = [0u8; cqe::DW3];
        first[cqe::DW0..cqe::DW0 + 4].copy_from_slice(&e.dw0.to_le_bytes());
        first[cqe::DW2..cqe::DW2 + 4].copy_from_slice(&e.dw2.to_le_bytes());
        let written = m
            .dma
            .write(slot, &first)
            .and_then(|()| m.dma.store_u32_release(slot + cqe::DW3 as u64, e.dw3));
        if let Err(e) = written {
            events::fault(&m.dma, &e);
            m.cannot_reach_host("posting a completion", &e);
            return false;
        }
        // One event with the entry's bytes (its two DMA writes are not
        // recorded apart).
        let index = cq.tail;
        m.dma
            .tap()
            .record(|| events::write_back(cqid as u16, index, slot, [e.dw0, e.dw2, e.dw3]));
        cq.tail += 1;
        if cq.tail == cq.entries {
            cq.tail = 0;
            cq.phase = !cq.phase;
        }
        true
    }
}
