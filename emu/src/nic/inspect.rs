//! Read-only views of the port's descriptor rings, and the descriptor
//! trace's tap: what a tool that steps through descriptor handling
//! (`--step` in the apps) shows after each tail write. Nothing here changes
//! the model.
#![forbid(unsafe_code)]

use super::layout::{Reg, RxReg, TxReg};
use super::model::NicModel;
use super::queue_state::ACTIVE;
use std::sync::atomic::Ordering;

/// Which ring a tail register belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailOf {
    /// RDT of RX queue n.
    Rx(u16),
    /// TDT of TX queue n.
    Tx(u16),
}

/// A descriptor ring as the port sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingView {
    /// IOVA of descriptor 0 (RDBAL/RDBAH or TDBAL/TDBAH).
    pub base: u64,
    /// Descriptors in the ring.
    pub entries: u32,
    /// The device's head (RDH/TDH).
    pub head: u32,
    /// The driver's tail (RDT/TDT).
    pub tail: u32,
}

impl NicModel {
    /// The ring whose tail register is at BAR0 `offset`, if it is one.
    pub fn tail_of(&self, offset: usize) -> Option<TailOf> {
        match self.layout.slots.get(offset / 4)?.reg {
            Reg::Rx(RxReg::Tail, q) => Some(TailOf::Rx(q)),
            Reg::Tx(TxReg::Tail, q) => Some(TailOf::Tx(q)),
            _ => None,
        }
    }

    /// The ring of `which`, if its queue is enabled. Unlike a read of RDH
    /// through the BAR, this lets no frame in.
    pub fn ring_view(&self, which: TailOf) -> Option<RingView> {
        let (shared, bal, bah) = match which {
            TailOf::Rx(q) => (
                self.rxq.get(q as usize)?,
                self.layout.rx_queues.addresses(q, RxReg::Bal).next()?,
                self.layout.rx_queues.addresses(q, RxReg::Bah).next()?,
            ),
            TailOf::Tx(q) => (
                self.txq.get(q as usize)?,
                self.layout.tx_queues.addresses(q, TxReg::Bal).next()?,
                self.layout.tx_queues.addresses(q, TxReg::Bah).next()?,
            ),
        };
        if shared.state.load(Ordering::Acquire) != ACTIVE {
            return None;
        }
        Some(RingView {
            base: self.load(bal) as u64 | (self.load(bah) as u64) << 32,
            entries: shared.entries.load(Ordering::Acquire),
            head: shared.head.load(Ordering::Acquire),
            tail: shared.tail.load(Ordering::Acquire),
        })
    }
}
