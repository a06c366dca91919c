//! The transmit side's state: one enabled ring with its offload contexts
//! and the packet being gathered. What the transmit path does with it is in
//! `tx`.
#![forbid(unsafe_code)]

use super::checksum::TxContext;
use spec::nic::adv_desc::DESC_SIZE;

/// Descriptors fetched with one DMA read.
pub(super) const FETCH_BATCH: usize = 32;
/// Context slots per queue the IDX field selects (82576 §7.2.2.3: two).
pub(super) const CONTEXT_SLOTS: usize = 2;

/// Why a packet is dropped instead of sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Discard {
    /// More bytes than the largest frame.
    TooLong(usize),
    /// More data descriptors than the chip takes per packet.
    TooManyDescriptors(usize),
}

/// The packet being gathered.
pub(super) struct Packet {
    /// Room for the largest frame, allocated once per ring: the gather
    /// DMA reads straight into it (a `Vec` grown per frame zero-filled
    /// every byte first, a memset per frame before the one DMA copy).
    pub(super) data: Box<[u8]>,
    /// Bytes of `data` gathered so far.
    pub(super) len: usize,
    /// Between a first data descriptor and its EOP.
    pub(super) open: bool,
    /// DCMD and POPTS/IDX of the first data descriptor.
    pub(super) first_cmd: u32,
    pub(super) first_olinfo: u32,
    pub(super) descriptors: usize,
    pub(super) drop: Option<Discard>,
}

/// One enabled transmit ring, as the device sees it.
pub(crate) struct TxRing {
    pub(super) base: u64,
    pub(super) entries: u32,
    pub(super) head: u32,
    pub(super) contexts: [Option<TxContext>; CONTEXT_SLOTS],
    pub(super) packet: Packet,
    /// Descriptors prefetched from head on.
    pub(super) cache: Box<[u8]>,
    pub(super) pos: usize,
    pub(super) len: usize,
}

impl TxRing {
    /// A ring of `entries` descriptors at `base`, starting at `head`.
    pub(crate) fn new(base: u64, entries: u32, head: u32) -> Self {
        TxRing {
            base,
            entries,
            head,
            contexts: [None; CONTEXT_SLOTS],
            packet: Packet {
                data: crate::wire::frame_buf(),
                len: 0,
                open: false,
                first_cmd: 0,
                first_olinfo: 0,
                descriptors: 0,
                drop: None,
            },
            cache: vec![0u8; FETCH_BATCH * DESC_SIZE].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }

    pub(super) fn desc_iova(&self, index: u32) -> u64 {
        self.base + index as u64 * DESC_SIZE as u64
    }
}
