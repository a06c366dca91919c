//! I/O queue pairs: the asynchronous interface (submit, ring once per batch,
//! poll) that keeps many commands in flight, and blocking helpers on top.
#![forbid(unsafe_code)]

use super::command::{io_op_name, Command, RwTemplate};
use super::error::NvmeError;
use super::queue::{controller_failure, QueueCore};
use super::shared::{active_nsids, Shared, MAX_BLOCKS_PER_COMMAND};
use super::slots::Owner;
use super::status::NvmeStatus;
use crate::regs::RegisterAccess;
use dma::{Buf, DeviceBuf};
use spec::nvme::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A finished command of the asynchronous interface.
#[derive(Debug)]
pub struct Completion {
    /// The tag given at submission.
    pub tag: u64,
    /// The data buffer given at submission (None for a flush). The device is
    /// done with it: [`DeviceBuf::reclaim`] it.
    pub buf: Option<DeviceBuf>,
    /// Success, or the status the controller returned.
    pub result: Result<(), NvmeStatus>,
}

/// A blocking [`IoQueuePair::read`] or [`IoQueuePair::write`] that failed.
#[derive(Debug)]
pub struct RwFailed {
    /// What went wrong.
    pub error: NvmeError,
    /// The buffer, when no command of the call is outstanding any more (the
    /// device is done with it); None when it was quarantined because the
    /// device may still move data into or out of it (a timeout, a fatal
    /// controller status, a completion that could not be trusted).
    pub buf: Option<Buf>,
}

impl std::fmt::Display for RwFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)?;
        if self.buf.is_none() {
            f.write_str(" (its buffer is quarantined: the device may still write it)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RwFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<RwFailed> for NvmeError {
    /// The error alone; a buffer that came back returns to its pool.
    fn from(f: RwFailed) -> NvmeError {
        f.error
    }
}

/// What the hot path needs of a namespace.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    nsid: u32,
    lba_shift: u32,
    size_blocks: u64,
    metadata_size: u16,
    /// Most blocks in one command: the command format's limit and the
    /// controller's largest transfer, worked out once; 0 for a namespace
    /// formatted with metadata, which this driver does not transfer (the
    /// hot path's one range check refuses it, the message says why).
    max_blocks: u32,
    /// The namespace's Read and Write entries, all but the per-I/O fields.
    read: RwTemplate,
    write: RwTemplate,
}

impl Geometry {
    /// The template of `opcode` (Read or Write).
    #[inline]
    fn template(&self, opcode: u8) -> RwTemplate {
        if opcode == io::READ {
            self.read
        } else {
            self.write
        }
    }
}

/// An I/O submission queue and its completion queue, with a PRP list page
/// budget for every command slot. Use it from one thread at a time (it is
/// `Send`; methods take `&mut self`); make one per thread.
///
/// Submitting, ringing and polling take no lock, allocate nothing and make
/// no system call: they write DMA memory and one doorbell register per batch.
///
/// Dropping a queue pair deletes its queues on the controller (errors are
/// ignored; use [`super::NvmeController::delete_io_queue_pair`] to see them).
pub struct IoQueuePair<R: RegisterAccess> {
    core: QueueCore,
    shared: Arc<Shared<R>>,
    /// By increasing NSID, for a binary search: the count is the device's
    /// (up to 4096), so a linear scan per I/O would cost what it says.
    namespaces: Vec<Geometry>,
    /// Index in `namespaces` of the namespace of the last read or write:
    /// I/O goes to one namespace at a time, so one comparison finds it.
    last_ns: usize,
    max_transfer: u64,
    timeout: Duration,
    /// Tag of the current blocking call's commands: completions of an
    /// earlier call's timed-out commands carry older tags and are dropped.
    generation: u64,
    deleted: bool,
}

impl<R: RegisterAccess> std::fmt::Debug for IoQueuePair<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoQueuePair")
            .field("qid", &self.core.qid())
            .field("depth", &self.core.depth())
            .field("outstanding", &self.core.outstanding())
            .finish()
    }
}

impl<R: RegisterAccess> IoQueuePair<R> {
    pub(crate) fn new(core: QueueCore, shared: Arc<Shared<R>>) -> Self {
        let max_transfer = shared.info.max_transfer;
        let namespaces = shared
            .namespaces
            .iter()
            .map(|n| {
                let lba_shift = n.lba_size.trailing_zeros();
                Geometry {
                    nsid: n.nsid,
                    lba_shift,
                    size_blocks: n.size_blocks,
                    metadata_size: n.metadata_size,
                    max_blocks: if n.metadata_size == 0 {
                        (max_transfer >> lba_shift).min(MAX_BLOCKS_PER_COMMAND) as u32
                    } else {
                        0
                    },
                    read: RwTemplate::new(io::READ, n.nsid),
                    write: RwTemplate::new(io::WRITE, n.nsid),
                }
            })
            .collect();
        IoQueuePair {
            core,
            max_transfer: shared.info.max_transfer,
            timeout: shared.opts.command_timeout,
            shared,
            namespaces,
            last_ns: 0,
            generation: 0,
            deleted: false,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<R>> {
        &self.shared
    }

    /// Delete the queues on the controller (once).
    pub(crate) fn delete(&mut self) -> Result<(), NvmeError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        self.shared.delete_queues(self.core.qid())
    }

    /// Queue identifier.
    pub fn qid(&self) -> u16 {
        self.core.qid()
    }

    /// Entries per queue; at most `depth() - 1` commands are in flight.
    pub fn depth(&self) -> u16 {
        self.core.depth()
    }

    /// Largest transfer of one command in bytes.
    pub fn max_transfer(&self) -> u64 {
        self.max_transfer
    }

    /// Commands submitted and not yet completed (including any whose
    /// blocking call timed out: they hold their slot until the controller
    /// completes them).
    #[inline]
    pub fn in_flight(&self) -> usize {
        self.core.outstanding()
    }

    /// Commands that can be submitted now.
    #[inline]
    pub fn free_slots(&self) -> usize {
        self.core.free_slots()
    }

    /// The namespace `nsid`, if active (its metadata not checked).
    #[inline]
    fn find(&self, nsid: u32) -> Option<&Geometry> {
        self.namespaces
            .binary_search_by_key(&nsid, |g| g.nsid)
            .ok()
            .map(|i| &self.namespaces[i])
    }

    /// The active namespace `nsid` of `namespaces`: the last one used (at
    /// `last`), checked with one comparison, else a binary search, which
    /// sets `last`. Over the two fields, not `self`, so that the fast
    /// path's reference is returned as it was checked (no second bounds
    /// check) while the slow path may update `last`.
    #[inline(always)]
    fn namespace<'a>(
        namespaces: &'a [Geometry],
        last: &mut usize,
        nsid: u32,
    ) -> Option<&'a Geometry> {
        match namespaces.get(*last) {
            Some(g) if g.nsid == nsid => Some(g),
            _ => Self::namespace_searched(namespaces, last, nsid),
        }
    }

    #[inline(never)]
    fn namespace_searched<'a>(
        namespaces: &'a [Geometry],
        last: &mut usize,
        nsid: u32,
    ) -> Option<&'a Geometry> {
        let i = namespaces.binary_search_by_key(&nsid, |g| g.nsid).ok()?;
        *last = i;
        namespaces.get(i)
    }

    /// The namespace `nsid`, if active and formatted without metadata.
    fn geometry(&self, nsid: u32) -> Result<Geometry, NvmeError> {
        match self.find(nsid) {
            Some(g) if g.metadata_size == 0 => Ok(*g),
            Some(g) => Err(Self::metadata_unsupported(g)),
            None => Err(self.unknown_namespace(nsid)),
        }
    }

    #[cold]
    fn metadata_unsupported(g: &Geometry) -> NvmeError {
        NvmeError::InvalidRequest(format!(
            "namespace {} is formatted with {} bytes of metadata per block, \
             which this driver does not transfer; format it without metadata",
            g.nsid, g.metadata_size
        ))
    }

    #[cold]
    fn unknown_namespace(&self, nsid: u32) -> NvmeError {
        NvmeError::InvalidRequest(format!(
            "namespace {nsid} is not an active namespace of this controller (active: {})",
            active_nsids(self.namespaces.iter().map(|g| g.nsid))
        ))
    }

    /// Why a read or write of `blocks` at a buffer of `buf_len` bytes at
    /// `iova` was refused: the hot path checks everything in one branch
    /// (blocks within 1..=max_blocks, the buffer long enough, PRP1 dword
    /// aligned); the message is worked out off it.
    #[cold]
    #[inline(never)]
    fn bad_transfer(&self, g: &Geometry, blocks: u32, buf_len: usize, iova: u64) -> NvmeError {
        if g.metadata_size != 0 {
            return Self::metadata_unsupported(g);
        }
        if blocks == 0 || blocks > g.max_blocks {
            return NvmeError::InvalidRequest(format!(
                "{blocks} blocks of {} bytes in one command: give 1 to {} blocks \
                 (the largest transfer is {} bytes), or use the blocking read/write, which split",
                1u64 << g.lba_shift,
                g.max_blocks,
                self.max_transfer
            ));
        }
        if !iova.is_multiple_of(4) && (blocks as u64) << g.lba_shift <= buf_len as u64 {
            return NvmeError::InvalidRequest(format!(
                "the buffer's IOVA {iova:#x} is not dword aligned, as PRP1 must be"
            ));
        }
        NvmeError::InvalidRequest(format!(
            "the buffer holds {buf_len} bytes, less than {blocks} blocks of {} bytes",
            1u64 << g.lba_shift
        ))
    }

    /// Check a read or write and write its entry: the namespace's template
    /// with the LBA, the block count and the PRPs patched in. Inlined into
    /// its two callers, where the opcode is a constant.
    #[inline(always)]
    fn submit_rw(
        &mut self,
        opcode: u8,
        nsid: u32,
        lba: u64,
        buf: DeviceBuf,
        blocks: u32,
        tag: u64,
    ) -> Result<(), (NvmeError, DeviceBuf)> {
        let Some(g) = Self::namespace(&self.namespaces, &mut self.last_ns, nsid) else {
            return Err((self.unknown_namespace(nsid), buf));
        };
        let (iova, buf_len) = (buf.iova(), buf.len());
        let bytes = (blocks as u64) << g.lba_shift;
        // blocks - 1 wraps for 0; blocks <= max_blocks is bytes <= the
        // largest transfer (max_blocks is that in whole blocks).
        if blocks.wrapping_sub(1) >= g.max_blocks
            || bytes > buf_len as u64
            || !iova.is_multiple_of(4)
        {
            return Err((self.bad_transfer(g, blocks, buf_len, iova), buf));
        }
        let sqe = g.template(opcode).read_write(lba, blocks);
        self.core.submit_buf(sqe, iova, bytes, buf, tag)
    }

    /// Queue a read of `blocks` logical blocks from `lba` into `buf` (which
    /// must hold them, and at most [`Self::max_transfer`] bytes). The
    /// command is written but not announced: call [`Self::ring_doorbell`]
    /// once per batch. The LBA range is not checked against the namespace
    /// size here (the controller does, with LBA Out of Range); the blocking
    /// helpers check it. On error the buffer comes back.
    #[cfg_attr(not(feature = "noinline-entry"), inline)]
    #[cfg_attr(feature = "noinline-entry", inline(never))]
    pub fn submit_read(
        &mut self,
        nsid: u32,
        lba: u64,
        buf: DeviceBuf,
        blocks: u32,
        tag: u64,
    ) -> Result<(), (NvmeError, DeviceBuf)> {
        self.submit_rw(io::READ, nsid, lba, buf, blocks, tag)
    }

    /// Queue a write of `blocks` logical blocks from `buf` to `lba`; as
    /// [`Self::submit_read`].
    #[cfg_attr(not(feature = "noinline-entry"), inline)]
    #[cfg_attr(feature = "noinline-entry", inline(never))]
    pub fn submit_write(
        &mut self,
        nsid: u32,
        lba: u64,
        buf: DeviceBuf,
        blocks: u32,
        tag: u64,
    ) -> Result<(), (NvmeError, DeviceBuf)> {
        self.submit_rw(io::WRITE, nsid, lba, buf, blocks, tag)
    }

    /// Queue a flush of namespace `nsid`'s volatile write cache.
    pub fn submit_flush(&mut self, nsid: u32, tag: u64) -> Result<(), NvmeError> {
        self.geometry(nsid)?;
        self.core
            .submit(Command::flush(nsid).into(), None, Owner::User, tag, "flush")
            .map(|_| ())
    }

    /// Announce everything submitted since the last call: one release fence
    /// and one tail doorbell write for the whole batch (nothing if empty).
    #[cfg_attr(not(feature = "noinline-entry"), inline)]
    #[cfg_attr(feature = "noinline-entry", inline(never))]
    pub fn ring_doorbell(&mut self) {
        self.core.ring(&self.shared.regs);
    }

    /// Consume up to `max` completions without waiting, calling `f` for each
    /// command of the asynchronous interface; one head doorbell write for
    /// all. Returns how many completions `f` got.
    ///
    /// Every completion is validated. One naming a command that is not
    /// outstanding on this queue, another queue, or an impossible SQ head is
    /// consumed and reported as [`NvmeError::DeviceMisbehaved`] (completions
    /// before it were delivered); polling again continues after it.
    #[cfg_attr(not(feature = "noinline-entry"), inline)]
    #[cfg_attr(feature = "noinline-entry", inline(never))]
    pub fn poll(&mut self, max: usize, mut f: impl FnMut(Completion)) -> Result<usize, NvmeError> {
        let mut delivered = 0;
        // As `user_completion`, but the completion built in place for the
        // call (no Option of it moved in between).
        self.core.poll(&self.shared.regs, max, |r| {
            if r.owner == Owner::User {
                delivered += 1;
                deliver(
                    &mut f,
                    Completion {
                        tag: r.tag,
                        buf: r.buf,
                        result: r.status.map_or(Ok(()), Err),
                    },
                );
            }
        })?;
        Ok(delivered)
    }

    /// Like [`Self::poll`], but wait until at least one completion arrives
    /// if commands are in flight. Returns 0 at once if none are. Fails with
    /// [`NvmeError::Timeout`] when the oldest in-flight command has waited
    /// the command timeout, and [`NvmeError::ControllerFatal`] if the
    /// controller reports a fatal status meanwhile.
    pub fn wait(&mut self, max: usize, mut f: impl FnMut(Completion)) -> Result<usize, NvmeError> {
        loop {
            let Some((opcode, since)) = self.core.oldest(Owner::User) else {
                return Ok(0);
            };
            let op = io_op_name(opcode);
            let mut delivered = 0;
            self.core
                .wait(&self.shared.regs, since, self.timeout, op, max, |r| {
                    if let Some(c) = user_completion(r) {
                        delivered += 1;
                        f(c);
                    }
                })?;
            if delivered > 0 {
                return Ok(delivered);
            }
        }
    }

    /// Ok unless the controller reports a fatal status or no longer answers
    /// ([`NvmeError::NotResponding`]), or a command of the
    /// asynchronous interface has been in flight longer than the command
    /// timeout. Costs a register read and a scan of the slots: call it when
    /// [`Self::poll`] has found nothing for a while, not per I/O.
    pub fn check_timeouts(&self) -> Result<(), NvmeError> {
        if let Some(e) = controller_failure(&self.shared.regs) {
            return Err(e);
        }
        match self.core.oldest(Owner::User) {
            Some((opcode, since)) if since.elapsed() >= self.timeout => Err(NvmeError::Timeout {
                op: io_op_name(opcode),
                after: since.elapsed(),
            }),
            _ => Ok(()),
        }
    }

    /// Read `buf.len()` bytes (a multiple of the LBA size) from `lba` into
    /// `buf`, split into commands of at most [`Self::max_transfer`] bytes,
    /// several in flight but never more than the free slots.
    ///
    /// The buffer is the device's while the call runs and comes back with
    /// the result. On an error after which the controller may still write
    /// it ([`NvmeError::Timeout`], [`NvmeError::ControllerFatal`],
    /// [`NvmeError::DeviceMisbehaved`] with commands of the call still
    /// outstanding) it does not come back: it is quarantined (never reused,
    /// counted by [`dma::Pool::quarantined`]), so no slice of memory the
    /// device may write late exists.
    pub fn read(&mut self, nsid: u32, lba: u64, buf: Buf) -> Result<Buf, RwFailed> {
        self.blocking_rw(io::READ, "read", nsid, lba, buf)
    }

    /// Write `buf.len()` bytes (a multiple of the LBA size) from `buf` to
    /// `lba`; as [`Self::read`] (a timed-out write's buffer is quarantined
    /// too: the device may still be reading it, and a caller that refilled it
    /// would change what lands on the medium).
    pub fn write(&mut self, nsid: u32, lba: u64, buf: Buf) -> Result<Buf, RwFailed> {
        self.blocking_rw(io::WRITE, "write", nsid, lba, buf)
    }

    /// Flush namespace `nsid` and wait for it.
    pub fn flush(&mut self, nsid: u32) -> Result<(), NvmeError> {
        self.check_idle("flush")?;
        self.geometry(nsid)?;
        self.generation += 1;
        let gen = self.generation;
        self.core.submit(
            Command::flush(nsid).into(),
            None,
            Owner::Internal,
            gen,
            "flush",
        )?;
        self.core.ring(&self.shared.regs);
        self.wait_internal(gen, 1, None, "flush")
    }

    /// The blocking helpers poll the queue themselves, so completions of
    /// asynchronous commands would have nowhere to go.
    fn check_idle(&self, op: &str) -> Result<(), NvmeError> {
        match self.core.user_in_flight() {
            0 => Ok(()),
            n => Err(NvmeError::InvalidRequest(format!(
                "blocking {op} while {n} asynchronous commands are in flight on queue {}; \
                 poll them to completion first",
                self.core.qid()
            ))),
        }
    }

    fn blocking_rw(
        &mut self,
        opcode: u8,
        op: &'static str,
        nsid: u32,
        lba: u64,
        buf: Buf,
    ) -> Result<Buf, RwFailed> {
        if let Err(error) = self.check_rw(op, nsid, lba, buf.len(), buf.iova()) {
            return Err(RwFailed {
                error,
                buf: Some(buf),
            });
        }
        let dev = buf.into_device();
        match self.run_rw(opcode, op, nsid, lba, dev.iova(), dev.len()) {
            Ok(()) => Ok(dev.reclaim()),
            // No command of the call is outstanding: the device is done with it.
            Err((error, 0)) => Err(RwFailed {
                error,
                buf: Some(dev.reclaim()),
            }),
            // The device may still write (or read) it: dropping the
            // `DeviceBuf` quarantines it.
            Err((error, _)) => {
                drop(dev);
                Err(RwFailed { error, buf: None })
            }
        }
    }

    /// Validate a blocking read or write before its buffer goes to the device.
    fn check_rw(
        &self,
        op: &'static str,
        nsid: u32,
        lba: u64,
        len: usize,
        iova: u64,
    ) -> Result<(), NvmeError> {
        self.check_idle(op)?;
        let g = self.geometry(nsid)?;
        let lba_size = 1u64 << g.lba_shift;
        let len = len as u64;
        if len == 0 || !len.is_multiple_of(lba_size) {
            return Err(NvmeError::InvalidRequest(format!(
                "{op} of {len} bytes: not a positive multiple of namespace {nsid}'s LBA size {lba_size}"
            )));
        }
        let blocks = len >> g.lba_shift;
        if lba
            .checked_add(blocks)
            .is_none_or(|end| end > g.size_blocks)
        {
            return Err(NvmeError::InvalidRequest(format!(
                "{op} of LBAs {lba}..{} is past the end of namespace {nsid} ({} blocks)",
                lba.saturating_add(blocks),
                g.size_blocks
            )));
        }
        if !iova.is_multiple_of(4) {
            return Err(NvmeError::InvalidRequest(format!(
                "the buffer's IOVA {iova:#x} is not dword aligned, as PRP1 must be"
            )));
        }
        if self.max_transfer >> g.lba_shift == 0 {
            return Err(NvmeError::Unsupported(format!(
                "namespace {nsid}'s blocks of {lba_size} bytes are larger than the largest transfer, {} bytes",
                self.max_transfer
            )));
        }
        Ok(())
    }

    /// Issue a checked blocking read or write of the `len` bytes at `iova`
    /// and wait for every command. An error comes with the number of the
    /// call's commands still outstanding (0 unless the wait was cut short).
    fn run_rw(
        &mut self,
        opcode: u8,
        op: &'static str,
        nsid: u32,
        lba: u64,
        iova: u64,
        len: usize,
    ) -> Result<(), (NvmeError, usize)> {
        // Checked by `check_rw`: a known namespace, a whole number of blocks.
        let g = self.geometry(nsid).map_err(|e| (e, 0))?;
        let blocks = len as u64 >> g.lba_shift;
        let chunk = (self.max_transfer >> g.lba_shift).min(MAX_BLOCKS_PER_COMMAND);
        self.generation += 1;
        let gen = self.generation;
        let mut next = 0u64;
        let mut outstanding = 0usize;
        let mut first_error: Option<NvmeError> = None;
        let mut since = Instant::now();
        loop {
            // Keep as many pieces in flight as there are free slots, never more.
            while first_error.is_none() && next < blocks && self.core.free_slots() > 0 {
                let n = chunk.min(blocks - next);
                let sqe = g.template(opcode).read_write(lba + next, n as u32);
                let data = (iova + (next << g.lba_shift), n << g.lba_shift);
                match self.core.submit(sqe, Some(data), Owner::Internal, gen, op) {
                    Ok(_) => {
                        outstanding += 1;
                        next += n;
                    }
                    Err(e) => first_error = Some(e),
                }
            }
            self.core.ring(&self.shared.regs);
            if outstanding == 0 {
                break;
            }
            let mut progress = false;
            let waited = self.core.wait(
                &self.shared.regs,
                since,
                self.timeout,
                op,
                usize::MAX,
                |r| {
                    if r.owner == Owner::Internal && r.tag == gen {
                        outstanding -= 1;
                        progress = true;
                        if let (Some(status), None) = (r.status, &first_error) {
                            first_error = Some(NvmeError::Status { op, status });
                        }
                    }
                },
            );
            if let Err(e) = waited {
                return Err((e, outstanding));
            }
            if progress {
                since = Instant::now();
            }
        }
        first_error.map_or(Ok(()), |e| Err((e, 0)))
    }

    /// Wait for `count` internal commands of generation `gen`.
    fn wait_internal(
        &mut self,
        gen: u64,
        mut count: usize,
        mut first_error: Option<NvmeError>,
        op: &'static str,
    ) -> Result<(), NvmeError> {
        let since = Instant::now();
        while count > 0 {
            self.core.wait(
                &self.shared.regs,
                since,
                self.timeout,
                op,
                usize::MAX,
                |r| {
                    if r.owner == Owner::Internal && r.tag == gen {
                        count -= 1;
                        if let (Some(status), None) = (r.status, &first_error) {
                            first_error = Some(NvmeError::Status { op, status });
                        }
                    }
                },
            )?;
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl<R: RegisterAccess> Drop for IoQueuePair<R> {
    fn drop(&mut self) {
        // Delete the queues before their memory is freed; nothing to report to.
        let _ = self.delete();
    }
}

/// Hand `c` to the caller's poll callback. Out of line in measurement builds
/// (feature `noinline-entry`), so that the callback's cost, which is the
/// application's, is one callee of [`IoQueuePair::poll`] that a profiler
/// can subtract, not code inlined into it.
#[cfg_attr(not(feature = "noinline-entry"), inline(always))]
#[cfg_attr(feature = "noinline-entry", inline(never))]
fn deliver<F: FnMut(Completion)>(f: &mut F, c: Completion) {
    f(c)
}

/// The completion of an I/O submitted through the asynchronous interface,
/// or None for an internal command (a leftover of a timed-out blocking
/// call), which is not the caller's.
#[inline(always)]
fn user_completion(r: super::queue::Retired) -> Option<Completion> {
    (r.owner == Owner::User).then(|| Completion {
        tag: r.tag,
        buf: r.buf,
        result: r.status.map_or(Ok(()), Err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvme::NvmeController;
    use crate::vfio::VfioBar;

    /// What the threads-and-queues design relies on, checked by the compiler
    /// (over the emulated BAR: emu's nvme tests).
    #[test]
    fn queue_pairs_are_send_and_the_controller_is_shared() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<IoQueuePair<VfioBar>>();
        send_sync::<NvmeController<VfioBar>>();
    }
}
