//! The admin queue (queue 0): one command at a time, waited for with the
//! command timeout. It lives behind the controller's mutex.
#![forbid(unsafe_code)]

use super::command::Command;
use super::error::NvmeError;
use super::queue::QueueCore;
use super::slots::Owner;
use crate::regs::RegisterAccess;
use dma::{Mapper, RegionOptions};
use spec::nvme::cns;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The admin submission and completion queues, with one scratch page for
/// the data of Identify commands.
pub(crate) struct AdminQueue {
    core: QueueCore,
    /// Tag of the command being waited for; completions of earlier
    /// (timed-out) commands carry older tags and are dropped.
    generation: u64,
}

impl AdminQueue {
    pub fn new(
        mapper: Arc<dyn Mapper>,
        opts: RegionOptions,
        depth: u16,
        dstrd: u32,
    ) -> Result<Self, NvmeError> {
        Ok(AdminQueue {
            core: QueueCore::new(mapper, opts, 0, depth, dstrd, 0, 1)?,
            generation: 0,
        })
    }

    /// Record the admin entries written and read in `tap`.
    pub fn set_tap(&mut self, tap: crate::trace::Tap) {
        self.core.set_tap(tap);
    }

    pub fn sq_iova(&self) -> u64 {
        self.core.sq_iova()
    }

    pub fn cq_iova(&self) -> u64 {
        self.core.cq_iova()
    }

    /// Run `cmd` and wait for its completion; returns its DW0. With
    /// `scratch_data`, the command transfers the scratch page.
    pub fn execute<R: RegisterAccess>(
        &mut self,
        regs: &R,
        cmd: Command,
        scratch_data: bool,
        op: &'static str,
        timeout: Duration,
    ) -> Result<u32, NvmeError> {
        self.generation += 1;
        let gen = self.generation;
        let data = scratch_data.then(|| (self.core.scratch_iova(0), cns::DATA_SIZE as u64));
        self.core
            .submit(cmd.into(), data, Owner::Internal, gen, op)?;
        self.core.ring(regs);
        let since = Instant::now();
        let mut result = None;
        while result.is_none() {
            self.core.wait(regs, since, timeout, op, usize::MAX, |r| {
                if r.tag == gen {
                    result = Some(match r.status {
                        None => Ok(r.dw0),
                        Some(status) => Err(NvmeError::Status { op, status }),
                    });
                }
            })?;
        }
        // The loop ends only once `result` is set.
        result.unwrap_or(Err(NvmeError::Timeout { op, after: timeout }))
    }

    /// Identify with `cns` for `nsid`; the 4 KiB data structure is copied to `out`.
    pub fn identify<R: RegisterAccess>(
        &mut self,
        regs: &R,
        cns_value: u32,
        nsid: u32,
        op: &'static str,
        timeout: Duration,
        out: &mut [u8; cns::DATA_SIZE],
    ) -> Result<(), NvmeError> {
        // Stale data from an earlier command must not pass for this one's if
        // the controller completes without writing.
        self.core.clear_scratch(0);
        self.execute(regs, Command::identify(cns_value, nsid), true, op, timeout)?;
        self.core.read_scratch(0, out);
        Ok(())
    }
}
