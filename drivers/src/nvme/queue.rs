//! One submission/completion queue pair in DMA memory, with its command
//! slots and PRP list pages: submission, doorbells, completion polling and
//! validation, and bounded waiting. Shared by the admin queue and the I/O
//! queue pairs, which add their own commands on top.
#![forbid(unsafe_code)]

use super::command::{io_op_name, Sqe};
use super::error::NvmeError;
use super::events;
use super::prp::{build_prps, short_prps, PrpError, PAGE_SIZE};
use super::ring::{CompletionQueue, RawCompletion, SubmissionQueue};
use super::slots::{CommandSlots, Owner};
use super::status::NvmeStatus;
use crate::regs::RegisterAccess;
use crate::trace::{Event, Tap};
use dma::{DeviceBuf, DmaRegion, Mapper, RegionOptions};
use spec::nvme::{cqe, reg, sqe};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A command whose completion was consumed and validated.
#[derive(Debug)]
pub(crate) struct Retired {
    pub owner: Owner,
    pub tag: u64,
    pub buf: Option<DeviceBuf>,
    /// None: success.
    pub status: Option<NvmeStatus>,
    /// Command specific result (DW0).
    pub dw0: u32,
}

/// Whether the controller reports Controller Fatal Status.
#[inline]
pub(crate) fn controller_fatal<R: RegisterAccess>(regs: &R) -> bool {
    reg::csts::CFS.is_set(regs.read32(reg::CSTS))
}

/// Why the controller can do no more work, from one CSTS read: a fatal
/// status (CSTS.CFS), or no answer at all (CSTS all ones, whose CFS bit
/// reads 1 too).
#[inline]
pub(crate) fn controller_failure<R: RegisterAccess>(regs: &R) -> Option<NvmeError> {
    let csts = regs.read32(reg::CSTS);
    if csts == u32::MAX {
        Some(NvmeError::NotResponding)
    } else if reg::csts::CFS.is_set(csts) {
        Some(NvmeError::ControllerFatal)
    } else {
        None
    }
}

/// The error of a command whose data buffer PRPs cannot describe.
#[cold]
fn bad_data_buffer(op: &str, e: PrpError) -> NvmeError {
    NvmeError::InvalidRequest(format!("{op} data buffer: {e}"))
}

/// Polls between checks of the clock and of CSTS while waiting (a CSTS read
/// is an MMIO read, about a microsecond on hardware).
const CHECK_EVERY: u32 = 64;
/// Polls spent spinning before the waiter starts yielding its core.
const SPIN_POLLS: u32 = 4096;

/// A queue pair: both rings, the command slots and PRP list pages, all in
/// one DMA region laid out as
/// `[SQ entries | CQ entries | PRP list pages | scratch pages]`, each part
/// page aligned (queues must start on a page boundary, §5.3, §5.4).
pub(crate) struct QueueCore {
    mem: Arc<DmaRegion>,
    qid: u16,
    depth: u16,
    sq: SubmissionQueue,
    cq: CompletionQueue,
    slots: CommandSlots,
    /// IOVAs of the PRP list pages: `pages_per_cmd` for every CID, so a
    /// command that needs a list always has one.
    prp_pages: Vec<u64>,
    prp_offset: usize,
    pages_per_cmd: usize,
    scratch_offset: usize,
    /// The descriptor trace (off unless set with [`Self::set_tap`]).
    tap: Tap,
}

fn page_round(bytes: usize) -> usize {
    bytes.next_multiple_of(PAGE_SIZE as usize)
}

impl QueueCore {
    /// Allocate a queue pair of `depth` entries (2..=65535) with
    /// `pages_per_cmd` PRP list pages per command and `scratch_pages` pages
    /// for the owner's own data (Identify buffers).
    pub fn new(
        mapper: Arc<dyn Mapper>,
        opts: RegionOptions,
        qid: u16,
        depth: u16,
        dstrd: u32,
        pages_per_cmd: usize,
        scratch_pages: usize,
    ) -> Result<Self, NvmeError> {
        if depth < 2 {
            return Err(NvmeError::InvalidRequest(format!(
                "queue depth {depth}: a queue needs at least 2 entries"
            )));
        }
        // At most depth - 1 commands are outstanding: a full submission
        // queue keeps one entry empty, so the completion queue (of the same
        // depth) can never overflow either.
        let cids = depth - 1;
        let sq_bytes = page_round(depth as usize * sqe::SIZE);
        let cq_bytes = page_round(depth as usize * cqe::SIZE);
        let prp_count = cids as usize * pages_per_cmd;
        let page = PAGE_SIZE as usize;
        let len = sq_bytes + cq_bytes + (prp_count + scratch_pages) * page;
        let mem = Arc::new(DmaRegion::allocate(mapper, len, opts)?);
        if !mem.iova().is_multiple_of(PAGE_SIZE) {
            return Err(NvmeError::Unsupported(format!(
                "the {} mapped queue memory at IOVA {:#x}, which is not 4 KiB aligned",
                mem.mapper().name(),
                mem.iova()
            )));
        }
        let cq_offset = sq_bytes;
        let prp_offset = cq_offset + cq_bytes;
        let scratch_offset = prp_offset + prp_count * page;
        // The region may be recycled memory: the completion queue must start
        // with every phase tag 0.
        mem.fill(0, prp_offset, 0);
        let prp_pages = (0..prp_count)
            .map(|i| mem.iova_at(prp_offset + i * page))
            .collect();
        Ok(QueueCore {
            sq: SubmissionQueue::new(&mem, 0, depth, qid, dstrd),
            cq: CompletionQueue::new(&mem, cq_offset, depth, qid, dstrd),
            slots: CommandSlots::new(cids),
            mem,
            qid,
            depth,
            prp_pages,
            prp_offset,
            pages_per_cmd,
            scratch_offset,
            tap: Tap::OFF,
        })
    }

    /// Record the entries this queue pair writes and reads in `tap`.
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = tap;
    }

    /// Queue identifier.
    #[inline]
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// Entries per ring.
    #[inline]
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// IOVA of the submission queue.
    pub fn sq_iova(&self) -> u64 {
        self.mem.iova()
    }

    /// IOVA of the completion queue.
    pub fn cq_iova(&self) -> u64 {
        self.mem
            .iova_at(page_round(self.depth as usize * sqe::SIZE))
    }

    /// IOVA of scratch page `i`.
    pub fn scratch_iova(&self, i: usize) -> u64 {
        self.mem
            .iova_at(self.scratch_offset + i * PAGE_SIZE as usize)
    }

    /// Zero scratch page `i`.
    pub fn clear_scratch(&self, i: usize) {
        self.mem.fill(
            self.scratch_offset + i * PAGE_SIZE as usize,
            PAGE_SIZE as usize,
            0,
        )
    }

    /// Copy out of scratch page `i`.
    pub fn read_scratch(&self, i: usize, dst: &mut [u8]) {
        self.mem
            .read_bytes(self.scratch_offset + i * PAGE_SIZE as usize, dst)
    }

    /// Commands that can be submitted now.
    #[inline]
    pub fn free_slots(&self) -> usize {
        self.slots.free_count().min(self.sq.free() as usize)
    }

    /// Outstanding commands, including timed-out ones still holding their CID.
    #[inline]
    pub fn outstanding(&self) -> usize {
        self.slots.outstanding()
    }

    /// Outstanding commands of the asynchronous interface.
    #[inline]
    pub fn user_in_flight(&self) -> usize {
        self.slots.user_in_flight()
    }

    /// The longest-outstanding in-flight command of `owner`: its opcode and submit time.
    pub fn oldest(&self, owner: Owner) -> Option<(u8, Instant)> {
        self.slots.oldest(owner)
    }

    /// Write `sqe` into the submission queue with PRPs for `data` (IOVA,
    /// length), under a fresh CID. The doorbell is not rung. `op` names the
    /// command in errors. Returns the CID.
    pub fn submit(
        &mut self,
        sqe: Sqe,
        data: Option<(u64, u64)>,
        owner: Owner,
        tag: u64,
        op: &str,
    ) -> Result<u16, NvmeError> {
        let cid = self.take_cid().ok_or(NvmeError::QueueFull)?;
        let sqe = match data {
            Some((iova, len)) => match self.prps(cid, iova, len) {
                Ok((prp1, prp2)) => sqe.with_prps(prp1, prp2),
                Err(e) => {
                    self.slots.unalloc(cid);
                    return Err(bad_data_buffer(op, e));
                }
            },
            None => sqe,
        };
        self.write_sqe(&sqe, cid);
        self.slots.fill(cid, owner, tag, sqe.opcode(), None);
        Ok(cid)
    }

    /// [`Self::submit`] for an I/O command of the asynchronous interface
    /// that moves `len` bytes of `buf` at `iova` (the buffer's): the buffer
    /// goes into the command's slot in the same step. On error the buffer
    /// comes back.
    #[inline(always)]
    pub fn submit_buf(
        &mut self,
        sqe: Sqe,
        iova: u64,
        len: u64,
        buf: DeviceBuf,
        tag: u64,
    ) -> Result<(), (NvmeError, DeviceBuf)> {
        let Some(cid) = self.take_cid() else {
            return Err((NvmeError::QueueFull, buf));
        };
        // The slot is filled first, so that the buffer and the tag go
        // straight from the arguments into it, not to the stack around the
        // PRP list builder's call; a buffer PRPs cannot describe is taken
        // back out (the slot was never announced).
        self.slots
            .fill(cid, Owner::User, tag, sqe.opcode(), Some(buf));
        let (prp1, prp2) = match self.prps(cid, iova, len) {
            Ok(p) => p,
            Err(e) => return Err(self.unfilled(cid, sqe.opcode(), e)),
        };
        let sqe = sqe.with_prps(prp1, prp2);
        self.write_sqe(&sqe, cid);
        Ok(())
    }

    /// The error of [`Self::submit_buf`] when PRPs cannot describe the
    /// buffer filled into `cid`'s slot: the slot freed, the buffer back.
    #[cold]
    #[inline(never)]
    fn unfilled(&mut self, cid: u16, opcode: u8, e: PrpError) -> (NvmeError, DeviceBuf) {
        let buf = self.slots.unfill(cid);
        (bad_data_buffer(io_op_name(opcode), e), buf)
    }

    /// A free CID, if the submission queue has a free entry too (two
    /// counters: no ring arithmetic).
    #[inline]
    fn take_cid(&mut self) -> Option<u16> {
        if self.sq.free() == 0 {
            return None;
        }
        self.slots.alloc()
    }

    /// Write `sqe` under `cid` at the submission queue's tail and count the
    /// entry as filled: the one place submission queue entries are written.
    /// Eight qword stores, no bounds check (the tail is inside the ring by
    /// construction).
    #[inline(always)]
    fn write_sqe(&mut self, sqe: &Sqe, cid: u16) {
        self.sq.write_tail(&sqe.words(cid));
        self.tap.record(|| self.sqe_event());
        self.sq.advance();
    }

    /// PRP1 and PRP2 for `len` bytes at `iova` for command `cid`. A transfer
    /// within two memory pages (most I/O) needs no list: nothing is written
    /// to DMA memory. A longer one gets its list written into `cid`'s pages.
    #[inline]
    fn prps(&self, cid: u16, iova: u64, len: u64) -> Result<(u64, u64), PrpError> {
        match short_prps(iova, len, PAGE_SIZE) {
            Some(p) => Ok(p),
            None => self.listed_prps(cid, iova, len),
        }
    }

    /// The general case of [`Self::prps`]: a PRP list, or an error.
    #[inline(never)]
    fn listed_prps(&self, cid: u16, iova: u64, len: u64) -> Result<(u64, u64), PrpError> {
        let first = cid as usize * self.pages_per_cmd;
        let lists = &self.prp_pages[first..first + self.pages_per_cmd];
        let base = self.prp_offset + first * PAGE_SIZE as usize;
        let mem = &self.mem;
        build_prps(iova, len, PAGE_SIZE, lists, |page, index, count, first| {
            let at = base + page * PAGE_SIZE as usize + index * 8;
            mem.write_u64_steps(at, count, first, PAGE_SIZE)
        })
        .map(|p| (p.prp1, p.prp2))
    }

    /// Announce every entry filled since the last call with one tail
    /// doorbell write. The release fence orders the entries' (relaxed atomic)
    /// writes before the doorbell, so the controller never fetches a
    /// half-written entry.
    #[inline]
    pub fn ring<R: RegisterAccess>(&mut self, regs: &R) {
        if !self.sq.has_unrung() {
            return;
        }
        self.slots.announce(Instant::now());
        fence(Ordering::Release);
        self.sq.ring(regs);
    }

    /// Consume up to `max` completions, validating each, and hand the valid
    /// ones to `f`; then one head doorbell write for all of them. An invalid
    /// completion is consumed too (so the queue keeps moving) and ends the
    /// call with [`NvmeError::DeviceMisbehaved`]; the command it named (if
    /// any) stays outstanding. Returns the completions consumed.
    #[inline]
    pub fn poll<R: RegisterAccess>(
        &mut self,
        regs: &R,
        max: usize,
        f: impl FnMut(Retired),
    ) -> Result<usize, NvmeError> {
        // The trace is tested once per poll, not per completion: the loop
        // without it keeps nothing for an event (the entry's offset, its
        // dwords) out of registers.
        if self.tap.is_on() {
            self.poll_traced(regs, max, f)
        } else {
            self.poll_loop::<false, R>(regs, max, f)
        }
    }

    /// [`Self::poll`] with the trace on: out of the hot path.
    #[cold]
    #[inline(never)]
    fn poll_traced<R: RegisterAccess>(
        &mut self,
        regs: &R,
        max: usize,
        f: impl FnMut(Retired),
    ) -> Result<usize, NvmeError> {
        self.poll_loop::<true, R>(regs, max, f)
    }

    /// [`Self::poll`], recording each completion read in the trace if `TRACED`.
    #[inline(always)]
    fn poll_loop<const TRACED: bool, R: RegisterAccess>(
        &mut self,
        regs: &R,
        max: usize,
        mut f: impl FnMut(Retired),
    ) -> Result<usize, NvmeError> {
        let mut consumed = 0;
        let mut result = Ok(());
        while consumed < max {
            let at = if TRACED { self.cq.head_at() } else { 0 };
            let Some(raw) = self.cq.take() else {
                break;
            };
            if TRACED {
                self.tap.record(|| self.cqe_event(raw, at));
            }
            consumed += 1;
            let Some(cid) = self.check(raw) else {
                result = Err(self.rejected(raw));
                break;
            };
            let status = NvmeStatus::from_dw3(raw.dw3);
            let done = self.slots.retire(cid);
            f(Retired {
                owner: done.owner,
                tag: done.tag,
                buf: done.buf,
                status,
                dw0: raw.dw0,
            });
        }
        if consumed > 0 {
            self.cq.ring(regs);
        }
        result.map(|()| consumed)
    }

    /// Validate a completion (nothing the device writes is trusted): its
    /// queue, an SQ head the controller can have reached, a CID in flight.
    /// If all three hold, the head is taken and the CID (to retire) is
    /// returned; otherwise nothing changes. All three are checked on every
    /// completion; which one failed is worked out again off the hot path.
    #[inline(always)]
    fn check(&mut self, raw: RawCompletion) -> Option<u16> {
        let sqid = cqe::dw2::SQID.get(raw.dw2) as u16;
        let sqhd = cqe::dw2::SQHD.get(raw.dw2) as u16;
        let cid = cqe::dw3::CID.get(raw.dw3) as u16;
        let moved = self.sq.fetched_by(sqhd);
        if sqid != self.qid || !self.slots.is_in_flight(cid) {
            return None;
        }
        self.sq.set_head(sqhd, moved?);
        Some(cid)
    }

    /// Why [`Self::check`] refused `raw`: the first check it fails.
    #[cold]
    #[inline(never)]
    fn rejected(&self, raw: RawCompletion) -> NvmeError {
        let sqid = cqe::dw2::SQID.get(raw.dw2) as u16;
        let sqhd = cqe::dw2::SQHD.get(raw.dw2) as u16;
        let cid = cqe::dw3::CID.get(raw.dw3) as u16;
        if sqid != self.qid {
            return self.misbehaved(raw, format!("it names submission queue {sqid}"));
        }
        if self.sq.fetched_by(sqhd).is_none() {
            let (head, tail, depth) = self.sq.state();
            return self.misbehaved(
                raw,
                format!(
                    "its SQ head {sqhd} is outside the entries it was given \
                     (head {head}, tail {tail}, depth {depth})"
                ),
            );
        }
        debug_assert!(!self.slots.is_in_flight(cid));
        self.misbehaved(raw, format!("no command {cid} is outstanding"))
    }

    #[cold]
    fn misbehaved(&self, raw: RawCompletion, why: String) -> NvmeError {
        NvmeError::DeviceMisbehaved(format!(
            "completion (DW0 {:#010x}, DW2 {:#010x}, DW3 {:#010x}) on queue {}: {why}",
            raw.dw0, raw.dw2, raw.dw3, self.qid
        ))
    }

    /// The trace event of the entry just written at the SQ tail: its bytes
    /// as they are in the queue.
    #[cold]
    fn sqe_event(&self) -> Event {
        let at = self.sq.tail_entry();
        let mut entry = [0u8; sqe::SIZE];
        self.mem.read_bytes(at, &mut entry);
        events::sqe_written(self.qid, self.sq.tail(), self.mem.iova_at(at), &entry)
    }

    /// The trace event of the entry at the CQ head, read as `raw`: its
    /// dwords as the driver took them (DW1, reserved and not used, from
    /// memory).
    #[cold]
    fn cqe_event(&self, raw: RawCompletion, at: usize) -> Event {
        let mut entry = [0u8; cqe::SIZE];
        self.mem.read_bytes(at, &mut entry);
        entry[cqe::DW0..cqe::DW0 + 4].copy_from_slice(&raw.dw0.to_le_bytes());
        entry[cqe::DW2..cqe::DW2 + 4].copy_from_slice(&raw.dw2.to_le_bytes());
        entry[cqe::DW3..cqe::DW3 + 4].copy_from_slice(&raw.dw3.to_le_bytes());
        events::cqe_read(self.qid, self.cq.index_of(at), self.mem.iova_at(at), &entry)
    }

    /// Poll (up to `max` at a time) until at least one completion is consumed (returns how many),
    /// `timeout` has passed since `since` ([`NvmeError::Timeout`] naming
    /// `op`), or the controller reports a fatal status
    /// ([`NvmeError::ControllerFatal`]). Spins first, then yields the core.
    pub fn wait<R: RegisterAccess>(
        &mut self,
        regs: &R,
        since: Instant,
        timeout: Duration,
        op: &'static str,
        max: usize,
        mut f: impl FnMut(Retired),
    ) -> Result<usize, NvmeError> {
        let mut polls = 0u32;
        // Spin for SPIN_POLLS empty polls, then yield (never sleep).
        let mut backoff = dma::Backoff::new(SPIN_POLLS, u32::MAX, None);
        loop {
            let n = self.poll(regs, max, &mut f)?;
            if n > 0 {
                return Ok(n);
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(CHECK_EVERY) {
                if let Some(e) = controller_failure(regs) {
                    return Err(e);
                }
                let waited = since.elapsed();
                if waited >= timeout {
                    return Err(NvmeError::Timeout { op, after: waited });
                }
            }
            backoff.idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvme::command::{Command, RwTemplate};
    use dma::EmuIommu;
    use spec::nvme::io;
    use std::sync::Mutex;

    /// Registers that record writes; CSTS reads `csts`.
    #[derive(Default)]
    struct Recorder {
        writes: Mutex<Vec<(usize, u32)>>,
        csts: u32,
    }

    impl RegisterAccess for Recorder {
        fn read32(&self, offset: usize) -> u32 {
            if offset == reg::CSTS {
                self.csts
            } else {
                0
            }
        }
        fn write32(&self, offset: usize, value: u32) {
            self.writes.lock().unwrap().push((offset, value));
        }
        fn read64(&self, _: usize) -> u64 {
            0
        }
        fn write64(&self, _: usize, _: u64) {}
        fn bar_size(&self) -> usize {
            usize::MAX
        }
    }

    const QID: u16 = 3;
    const DEPTH: u16 = 4;

    fn queue() -> QueueCore {
        let m: Arc<dyn Mapper> = Arc::new(EmuIommu::new());
        QueueCore::new(m, RegionOptions::EMULATED, QID, DEPTH, 0, 1, 0).unwrap()
    }

    /// Play the controller: post a completion at CQ slot `slot`.
    fn post(q: &QueueCore, slot: u16, phase: u32, cid: u16, sqid: u16, sqhd: u16, sc: u8) {
        let at = page_round(DEPTH as usize * sqe::SIZE) + slot as usize * cqe::SIZE;
        q.mem.write_u32(at + cqe::DW0, 0xabcd);
        let dw2 = cqe::dw2::SQHD.value(u32::from(sqhd)) | cqe::dw2::SQID.value(u32::from(sqid));
        q.mem.write_u32(at + cqe::DW2, dw2);
        let dw3 = cqe::dw3::CID.value(u32::from(cid))
            | cqe::dw3::P.value(phase)
            | cqe::dw3::SC.value(u32::from(sc));
        q.mem.write_u32(at + cqe::DW3, dw3);
    }

    fn submit(q: &mut QueueCore, tag: u64) -> u16 {
        q.submit(
            RwTemplate::new(io::READ, 1).read_write(tag, 1),
            Some((0x10_0000, 512)),
            Owner::User,
            tag,
            "read",
        )
        .unwrap()
    }

    #[test]
    fn completions_retire_commands_and_the_phase_wraps() {
        let regs = Recorder::default();
        let mut q = queue();
        assert_eq!(q.free_slots(), 3);
        let mut tags = Vec::new();
        // Three rounds of three commands: the CQ (4 entries) wraps twice.
        let (mut slot, mut phase) = (0u16, 1u32);
        let mut sq_tail = 0u16;
        for round in 0..3u64 {
            let cids: Vec<u16> = (0..3).map(|i| submit(&mut q, round * 10 + i)).collect();
            assert_eq!(q.free_slots(), 0);
            assert!(matches!(
                q.submit(Command::flush(1).into(), None, Owner::User, 0, "flush"),
                Err(NvmeError::QueueFull)
            ));
            q.ring(&regs);
            q.ring(&regs); // nothing new: no second doorbell write
            sq_tail = (sq_tail + 3) % DEPTH;
            for (i, &cid) in cids.iter().enumerate() {
                let sqhd = (sq_tail + DEPTH - 2 + i as u16) % DEPTH;
                post(&q, slot, phase, cid, QID, sqhd, 0);
                slot += 1;
                if slot == DEPTH {
                    slot = 0;
                    phase ^= 1;
                }
            }
            let n = q.poll(&regs, 8, |r| {
                assert_eq!((r.owner, r.status, r.dw0), (Owner::User, None, 0xabcd));
                tags.push(r.tag);
            });
            assert_eq!(n.unwrap(), 3);
            assert_eq!(q.outstanding(), 0);
            assert_eq!(q.free_slots(), 3);
        }
        assert_eq!(tags, vec![0, 1, 2, 10, 11, 12, 20, 21, 22]);
        // One SQ tail and one CQ head doorbell write per round.
        let w = regs.writes.lock().unwrap();
        let sq_db = reg::sq_tail_doorbell(QID, 0);
        let cq_db = reg::cq_head_doorbell(QID, 0);
        assert_eq!(
            *w,
            vec![
                (sq_db, 3),
                (cq_db, 3),
                (sq_db, 2),
                (cq_db, 2),
                (sq_db, 1),
                (cq_db, 1)
            ]
        );
    }

    #[test]
    fn invalid_completions_are_consumed_and_reported() {
        let regs = Recorder::default();
        let mut q = queue();
        let a = submit(&mut q, 1);
        // Posted before the doorbell: the controller cannot know the command.
        post(&q, 0, 1, a, QID, 1, 0);
        let e = q.poll(&regs, 8, |_| panic!("delivered")).unwrap_err();
        assert!(
            matches!(&e, NvmeError::DeviceMisbehaved(m) if m.contains("SQ head 1")),
            "{e}"
        );
        q.ring(&regs);
        let b = submit(&mut q, 2);
        q.ring(&regs);
        // Wrong queue, impossible head, unknown command, then a good one.
        post(&q, 1, 1, a, QID + 1, 1, 0);
        post(&q, 2, 1, a, QID, 3, 0);
        post(&q, 3, 1, 200, QID, 1, 0);
        post(&q, 0, 0, b, QID, 2, sc_generic_lba());
        for needle in ["names submission queue 4", "SQ head 3", "no command 200"] {
            let e = q.poll(&regs, 8, |_| panic!("delivered")).unwrap_err();
            assert!(
                matches!(&e, NvmeError::DeviceMisbehaved(m) if m.contains(needle)),
                "{e}"
            );
        }
        let mut got = Vec::new();
        assert_eq!(
            q.poll(&regs, 8, |r| got.push((r.tag, r.status.map(|s| s.sc))))
                .unwrap(),
            1
        );
        assert_eq!(got, vec![(2, Some(0x80))]);
        // `a` was never validly completed: it keeps its slot.
        assert_eq!(q.outstanding(), 1);
        // A duplicate completion for `b` is bogus too.
        post(&q, 1, 0, b, QID, 2, 0);
        assert!(q.poll(&regs, 8, |_| panic!("delivered")).is_err());
    }

    #[test]
    fn a_buffer_prps_cannot_describe_comes_back_and_frees_its_slot() {
        let regs = Recorder::default();
        let mut q = queue();
        let m: Arc<dyn Mapper> = Arc::new(EmuIommu::new());
        let pool = dma::Pool::new(m, 1, 4096, RegionOptions::EMULATED).unwrap();
        let buf = pool.alloc().unwrap().into_device();
        let iova = buf.iova();
        // A transfer of zero bytes: no PRPs describe it.
        let sqe = RwTemplate::new(io::READ, 1).read_write(0, 1);
        let (e, back) = q.submit_buf(sqe, iova, 0, buf, 7).unwrap_err();
        assert!(
            matches!(&e, NvmeError::InvalidRequest(m) if m == "read data buffer: a transfer of zero bytes"),
            "{e}"
        );
        assert_eq!(back.iova(), iova);
        assert_eq!(
            (q.outstanding(), q.user_in_flight(), q.free_slots()),
            (0, 0, 3)
        );
        // Nothing was written: the doorbell has nothing to announce.
        q.ring(&regs);
        assert!(regs.writes.lock().unwrap().is_empty());
        // The slot is reused by the next command, which completes as usual.
        let cid = submit(&mut q, 8);
        q.ring(&regs);
        post(&q, 0, 1, cid, QID, 1, 0);
        let mut tags = Vec::new();
        assert_eq!(q.poll(&regs, 8, |r| tags.push(r.tag)).unwrap(), 1);
        assert_eq!(tags, vec![8]);
        drop(back.reclaim());
    }

    fn sc_generic_lba() -> u8 {
        spec::nvme::sc_generic::LBA_OUT_OF_RANGE
    }

    #[test]
    fn waiting_ends_with_fatal_status_or_timeout() {
        let mut q = queue();
        submit(&mut q, 1);
        let regs = Recorder {
            csts: reg::csts::CFS.bit(),
            ..Recorder::default()
        };
        q.ring(&regs);
        let r = q.wait(
            &regs,
            Instant::now(),
            Duration::from_secs(60),
            "read",
            8,
            |_| {},
        );
        assert!(matches!(r, Err(NvmeError::ControllerFatal)));
        let quiet = Recorder::default();
        let t = Instant::now();
        let r = q.wait(&quiet, t, Duration::from_millis(50), "read", 8, |_| {});
        assert!(
            matches!(r, Err(NvmeError::Timeout { op: "read", after }) if after >= Duration::from_millis(50))
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
