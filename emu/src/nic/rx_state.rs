//! The receive side's state: the cached receive configuration, the enabled
//! rings and the engine that holds them. What the receive path does with it
//! is in `rx`.
#![forbid(unsafe_code)]

use super::rss::RssConfig;
use spec::nic::adv_desc::DESC_SIZE;
use spec::nic::{ETH_FCS_LEN, ETH_MAX_FRAME};

/// Descriptors fetched with one DMA read (like the hardware's prefetch).
pub(super) const FETCH_BATCH: usize = 32;
/// Number of MTA registers.
pub(super) const MTA_REGS: usize = 128;

/// The receive configuration, rebuilt from the registers when the driver
/// writes one of them.
#[derive(Debug, Clone)]
pub(super) struct RxConfig {
    pub(super) upe: bool,
    pub(super) mpe: bool,
    pub(super) bam: bool,
    /// Valid receive addresses.
    pub(super) macs: Vec<[u8; 6]>,
    /// The multicast table and the MO shift, when the table filter is on.
    pub(super) mta: Option<(Box<[u32; MTA_REGS]>, u32)>,
    pub(super) strip_crc: bool,
    /// Largest frame accepted, FCS included.
    pub(super) max_frame: usize,
    pub(super) rss: Option<RssConfig>,
    /// RXCSUM.PCSD: the write-back carries the RSS hash.
    pub(super) write_hash: bool,
    /// Bits per queue: SRRCTL buffer size and DROP_EN (re-read with the rest).
    pub(super) queues: Vec<QueueConfig>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct QueueConfig {
    pub(super) buf_size: usize,
    pub(super) drop_en: bool,
}

impl RxConfig {
    fn empty() -> Self {
        RxConfig {
            upe: false,
            mpe: false,
            bam: false,
            macs: Vec::new(),
            mta: None,
            strip_crc: true,
            max_frame: ETH_MAX_FRAME + ETH_FCS_LEN,
            rss: None,
            write_hash: false,
            queues: Vec::new(),
        }
    }
}

/// One enabled receive ring, as the device sees it.
pub(crate) struct RxRing {
    pub(super) base: u64,
    pub(super) entries: u32,
    pub(super) head: u32,
    /// Buffer addresses of the descriptors at head, head + 1, ... (prefetched).
    pub(super) cache: [u64; FETCH_BATCH],
    pub(super) pos: usize,
    pub(super) len: usize,
}

impl RxRing {
    /// A ring of `entries` descriptors at `base`, starting at `head`.
    pub(crate) fn new(base: u64, entries: u32, head: u32) -> Self {
        RxRing {
            base,
            entries,
            head,
            cache: [0; FETCH_BATCH],
            pos: 0,
            len: 0,
        }
    }

    pub(super) fn desc_iova(&self, index: u32) -> u64 {
        self.base + index as u64 * DESC_SIZE as u64
    }

    /// Descriptors the driver has given the device.
    pub(super) fn available(&self, tail: u32) -> u32 {
        (tail + self.entries - self.head) % self.entries
    }

    pub(super) fn advance(&mut self) {
        self.pos += 1;
        self.head = (self.head + 1) % self.entries;
    }
}

/// The receive side of the device: the rings, the frame being received and
/// the cached configuration. One lock: a wire delivers one frame at a time.
pub(crate) struct RxEngine {
    pub(super) rings: Vec<Option<RxRing>>,
    /// Whether the receiver and a ring have been on together since the port
    /// was created (never cleared): with flow control, frames wait on the
    /// wire until then (see [`Self::rings_have_room`]).
    pub(super) ever_enabled: bool,
    pub(super) frame: Box<[u8]>,
    pub(super) scratch: Box<[u8]>,
    pub(super) config: RxConfig,
    pub(super) config_gen: u64,
}

impl RxEngine {
    /// No ring enabled.
    pub(crate) fn new(queues: u16) -> Self {
        RxEngine {
            rings: (0..queues).map(|_| None).collect(),
            ever_enabled: false,
            // Room for the largest frame, its FCS, and the padding of a runt.
            frame: crate::wire::frame_buf(),
            scratch: vec![0u8; FETCH_BATCH * DESC_SIZE].into_boxed_slice(),
            config: RxConfig::empty(),
            config_gen: 0,
        }
    }

    /// Device reset: every ring gone.
    pub(crate) fn reset(&mut self) {
        self.rings.iter_mut().for_each(|r| *r = None);
        self.config_gen = 0;
    }

    /// Queue `q` runs `ring`.
    pub(crate) fn open(&mut self, q: usize, ring: RxRing) {
        self.rings[q] = Some(ring);
    }

    /// Queue `q` stops.
    pub(crate) fn close(&mut self, q: usize) {
        self.rings[q] = None;
    }
}
