//! A TX queue's header area: one slot of DMA memory per descriptor, owned
//! by the queue, for frame headers the CPU builds ([`super::TxBatch::push_cut`]).
//!
//! A frame's header descriptor at ring index `i` points at slot `i`: the
//! slot is the CPU's exactly while descriptor `i` is free, and the NIC's
//! while it is in flight, so headers need no buffer of their own (no
//! allocation or free per frame, nothing to hand back at cleanup). Each
//! slot keeps what was last written into it, with a stamp its writer
//! chooses (e.g. the generation of a header template): a writer that finds
//! its own stamp only patches the fields that change from frame to frame.
//!
//! The area holds CPU-written headers only; payload never passes through
//! it (the zero-copy rule of the design).
#![forbid(unsafe_code)]

use super::error::NicError;
use dma::{Buf, Mapper, Pool, RegionOptions};
use std::sync::Arc;

/// Bytes per slot: a cache line's multiple that holds the largest header
/// this driver sends (Ethernet, IPv4 and UDP headers and an application
/// header, e.g. blkfwd's 82 bytes).
pub const HEADER_SLOT: usize = 128;

/// The slots of one TX queue ([`super::TxQueue::add_header_area`]).
pub(crate) struct HeaderArea {
    /// `slots * HEADER_SLOT` bytes, from a pool of its own: the queue
    /// keeps it for its whole life (never handed to the device as a
    /// buffer: each slot is the device's only while its descriptor is in
    /// flight, which the ring's indices track).
    mem: Buf,
    iova: u64,
    stamps: Box<[u64]>,
}

/// Slot `i` of a header area, lent to the header callback of
/// [`super::TxBatch::push_cut`] while its descriptor is being written.
pub struct HeaderSlot<'a> {
    /// The whole slot: the frame's header is its first `header_len` bytes
    /// (the length given to the push; the NIC reads no more). What the
    /// slot held before is still there.
    pub bytes: &'a mut [u8; HEADER_SLOT],
    /// The writer's mark of what `bytes` holds: 0 for a new area, then
    /// whatever the writer last set (the queue never changes it).
    pub stamp: &'a mut u64,
}

impl HeaderArea {
    /// An area of `slots` slots (the ring size) mapped with `mapper`.
    pub(crate) fn new(
        mapper: Arc<dyn Mapper>,
        slots: usize,
        opts: RegionOptions,
    ) -> Result<HeaderArea, NicError> {
        let pool = Pool::new(mapper, 1, slots * HEADER_SLOT, opts)?;
        let mem = pool.alloc().ok_or_else(|| {
            NicError::Unsupported("a new one-buffer pool gave no buffer".to_string())
        })?;
        Ok(HeaderArea {
            iova: mem.iova(),
            mem,
            stamps: vec![0; slots].into_boxed_slice(),
        })
    }

    /// The area's bytes and stamps, taken once for a run of frames, its
    /// slots indexed with `mask`, the ring's (size - 1): the area has a
    /// slot per descriptor, so a masked ring index is always a slot.
    #[inline(always)]
    pub(crate) fn view(&mut self, mask: usize) -> AreaView<'_> {
        // Whole slots: the area is `slots * HEADER_SLOT` bytes. Both cut
        // to `mask + 1` (a check once per run), so that an index masked
        // with `mask` needs no check per frame.
        let (slots, _) = self.mem.as_mut_slice().as_chunks_mut::<HEADER_SLOT>();
        AreaView {
            iova: self.iova,
            mask,
            slots: &mut slots[..=mask],
            stamps: &mut self.stamps[..=mask],
        }
    }

    /// IOVA of slot `i`.
    #[cfg(test)]
    pub(crate) fn slot_iova(&self, i: usize) -> u64 {
        self.iova + (i * HEADER_SLOT) as u64
    }

    /// The memory, for the queue's drop: returned to its pool once the
    /// device is stopped, quarantined (never reused) if it may still read.
    pub(crate) fn into_buf(self) -> Buf {
        self.mem
    }
}

/// A header area borrowed for one run of frames.
pub(crate) struct AreaView<'a> {
    iova: u64,
    mask: usize,
    slots: &'a mut [[u8; HEADER_SLOT]],
    stamps: &'a mut [u64],
}

impl AreaView<'_> {
    /// Slot `i` (a ring index) and its IOVA.
    #[inline(always)]
    pub(crate) fn slot(&mut self, i: usize) -> (HeaderSlot<'_>, u64) {
        let i = i & self.mask;
        (
            HeaderSlot {
                bytes: &mut self.slots[i],
                stamp: &mut self.stamps[i],
            },
            self.iova + (i * HEADER_SLOT) as u64,
        )
    }
}
