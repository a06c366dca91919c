//! Read-only views of the controller's queues, and the descriptor trace's
//! tap: what a tool that steps through descriptor handling (`--step` in the
//! apps) shows after each doorbell. Nothing here changes the model.
#![forbid(unsafe_code)]

use super::model::NvmeModel;
use spec::nvme::reg::{self, RegName};

/// A submission queue as the controller sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqView {
    /// IOVA of entry 0.
    pub base: u64,
    /// Number of entries.
    pub entries: u32,
    /// The next entry the controller fetches.
    pub head: u32,
    /// The host's tail, as last written to the doorbell.
    pub tail: u32,
    /// The completion queue its commands complete into.
    pub cqid: u16,
}

/// A completion queue as the controller sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqView {
    /// IOVA of entry 0.
    pub base: u64,
    /// Number of entries.
    pub entries: u32,
    /// The host's head, as last written to the doorbell.
    pub head: u32,
    /// The next entry the controller writes.
    pub tail: u32,
    /// The phase tag the controller writes in this pass (§4.6).
    pub phase: bool,
}

/// Which doorbell a BAR0 offset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorbellOf {
    /// The tail doorbell of SQ `qid`.
    SqTail(u16),
    /// The head doorbell of CQ `qid`.
    CqHead(u16),
}

impl NvmeModel {
    /// The doorbell at BAR0 `offset`, if it is one (§3.1.24-25).
    pub fn doorbell_of(&self, offset: usize) -> Option<DoorbellOf> {
        match reg::doorbell(offset, self.stride)? {
            RegName::SqTail(q) => Some(DoorbellOf::SqTail(q)),
            RegName::CqHead(q) => Some(DoorbellOf::CqHead(q)),
            _ => None,
        }
    }

    /// Submission queue `qid`, if it exists.
    pub fn sq_view(&self, qid: u16) -> Option<SqView> {
        let sq = (*self.engine().sqs.get(qid as usize)?)?;
        Some(SqView {
            base: sq.base,
            entries: sq.entries,
            head: sq.head,
            tail: self.doorbells.sq_tail(qid),
            cqid: sq.cqid,
        })
    }

    /// Completion queue `qid`, if it exists.
    pub fn cq_view(&self, qid: u16) -> Option<CqView> {
        let cq = (*self.engine().cqs.get(qid as usize)?)?;
        Some(CqView {
            base: cq.base,
            entries: cq.entries,
            head: self.doorbells.cq_head(qid),
            tail: cq.tail,
            phase: cq.phase,
        })
    }
}
