//! Intel NIC drivers: the 82576 / I350 ("igb", 1 GbE) and the 82599
//! ("ixgbe", 10 GbE). Both families use the advanced descriptor format, so
//! the ring logic ([`RxQueue`], [`TxQueue`]) is written once; each chip adds
//! its register map (`spec::nic::igb`, `spec::nic::ixgbe`) and init sequence (the
//! private `igb` and `ixgbe` modules). Generic over
//! [`crate::regs::RegisterAccess`]: the same code drives real hardware
//! through VFIO and the device models of the `emu` crate (`emu::nic`).
//!
//! ```text
//! Nic::init(regs, mapper, chip, opts)   reset, EEPROM/DMA init, MAC, link, queues, RSS, RX/TX on
//!   .rx_queue(q) -> RxQueue             taken once, Send: one per polling thread
//!      rx_batch(&mut out, max)          validated write-backs, batch refill, one RDT write
//!   .tx_queue(q) -> TxQueue
//!      tx_batch(&mut pkts)              scatter-gather, RS every 32, context on change, one TDT write
//!      clean() / clean_into(cache)      RS-group cleanup, buffers back to their pools
//!   forward(&mut rx, &mut tx, max)      received buffers straight to TX descriptors, as
//!                                       indices: no CPU handle, no copy, bursts of 32
//!   .stats() / .link() / .wait_link()
//! ```
//!
//! Files: `spec` (every number, named once), `desc` (descriptor encoding
//! and write-back checks), `ring` (descriptor ring memory and index
//! arithmetic), `rx`, `tx`, `igb`, `ixgbe` (init sequences, link,
//! statistics), `error`.

mod desc;
mod error;
mod igb;
mod ixgbe;
mod offload;
mod ring;
mod rx;
mod tx;

pub use error::NicError;
pub use offload::Offload;
pub use ring::{MAX_RING, MIN_RING};
pub use rx::{RxPacket, RxQueue, RxQueueStats};
pub use tx::{PushError, TxBatch, TxPacket, TxQueue, TxQueueStats, RS_EVERY};

use crate::regs::RegisterAccess;
use ring::DescRing;
use ring::QueueRegs;
use spec::nic::queue::{QueueMap, RxReg, TxReg};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tx::TxLimits;

/// The NICs this driver knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chip {
    /// Intel 82576 (1 GbE, 16 queues); what QEMU's `igb` device models.
    I82576,
    /// Intel I350 (1 GbE, 8 queues); programmed like the 82576.
    I350,
    /// Intel 82599 (10 GbE, 128 queues).
    X82599,
}

impl Chip {
    /// The chip behind a PCI vendor and device ID, if this driver knows it.
    pub fn from_pci_ids(vendor: u16, device: u16) -> Option<Chip> {
        if vendor != spec::nic::igb::VENDOR_INTEL {
            return None;
        }
        if spec::nic::igb::DEV_IDS_82576.contains(&device) {
            Some(Chip::I82576)
        } else if spec::nic::igb::DEV_IDS_I350.contains(&device) {
            Some(Chip::I350)
        } else if spec::nic::ixgbe::DEV_IDS_82599.contains(&device) {
            Some(Chip::X82599)
        } else {
            None
        }
    }

    /// The PCI IDs a model of this chip presents (vendor, device).
    pub fn pci_ids(self) -> (u16, u16) {
        match self {
            Chip::I82576 => (spec::nic::igb::VENDOR_INTEL, spec::nic::igb::DEV_82576),
            Chip::I350 => (
                spec::nic::igb::VENDOR_INTEL,
                spec::nic::igb::DEV_I350_COPPER,
            ),
            Chip::X82599 => (
                spec::nic::ixgbe::VENDOR_INTEL,
                spec::nic::ixgbe::DEV_82599_SFP,
            ),
        }
    }

    /// Short name ("82576", "I350", "82599").
    pub fn name(self) -> &'static str {
        match self {
            Chip::I82576 => "82576",
            Chip::I350 => "I350",
            Chip::X82599 => "82599",
        }
    }

    /// RX (and TX) queues the chip has.
    pub fn max_queues(self) -> u16 {
        match self {
            Chip::I82576 => spec::nic::igb::QUEUES_82576,
            Chip::I350 => spec::nic::igb::QUEUES_I350,
            Chip::X82599 => spec::nic::ixgbe::QUEUES,
        }
    }

    /// RX queues RSS can spread over.
    pub fn max_rss_queues(self) -> u16 {
        match self {
            Chip::I82576 | Chip::I350 => spec::nic::igb::MAX_RSS_QUEUES,
            Chip::X82599 => spec::nic::ixgbe::MAX_RSS_QUEUES,
        }
    }

    /// Data descriptors the chip takes per packet.
    pub fn max_tx_segments(self) -> usize {
        match self {
            Chip::I82576 | Chip::I350 => spec::nic::igb::MAX_TX_DESC_PER_PACKET,
            Chip::X82599 => spec::nic::ixgbe::MAX_TX_DESC_PER_PACKET,
        }
    }

    /// Bytes one TX data descriptor may carry (as the driver uses it).
    pub fn max_tx_segment_len(self) -> usize {
        match self {
            Chip::I82576 | Chip::I350 => spec::nic::igb::MAX_TX_SEGMENT,
            Chip::X82599 => spec::nic::ixgbe::MAX_TX_SEGMENT,
        }
    }

    pub(crate) fn is_igb(self) -> bool {
        matches!(self, Chip::I82576 | Chip::I350)
    }

    /// RX write-back error bits that mean the frame itself is bad.
    fn rx_frame_errors(self) -> u32 {
        if self.is_igb() {
            spec::nic::adv_desc::rx::error_82576::FRAME_ERRORS
        } else {
            spec::nic::adv_desc::rx::error_82599::FRAME_ERRORS
        }
    }

    fn max_frame_jumbo(self) -> usize {
        if self.is_igb() {
            spec::nic::igb::MAX_FRAME_JUMBO
        } else {
            spec::nic::ixgbe::MAX_FRAME_JUMBO
        }
    }

    /// Largest SRRCTL.BSIZEPACKET in KiB.
    fn max_bsizepacket_kib(self) -> usize {
        if self.is_igb() {
            spec::nic::igb::srrctl::BSIZEPACKET.get(u32::MAX) as usize
        } else {
            16
        }
    }
}

impl std::fmt::Display for Chip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct NicOptions {
    /// RX queues (1..=chip queues; RSS spreads flows over them when > 1). Default 1.
    pub rx_queues: u16,
    /// TX queues. Default 1.
    pub tx_queues: u16,
    /// Descriptors per RX ring (a power of two, 8..=4096). Default 512.
    pub rx_ring: u16,
    /// Descriptors per TX ring. Default 512.
    pub tx_ring: u16,
    /// Size of every RX buffer in bytes: a multiple of 1024 (the device's
    /// buffer size unit), at least 1024. The largest frame the port receives
    /// is this, capped at the chip's jumbo limit. Default 2048.
    pub buf_size: usize,
    /// Buffers in the pool of each RX queue (at least `rx_ring`). Default 4096.
    pub pool_bufs: usize,
    /// Where rings and buffers come from: [`dma::RegionOptions::HARDWARE`]
    /// for a real device (the default), [`dma::RegionOptions::EMULATED`]
    /// for a model.
    pub region: dma::RegionOptions,
    /// Accept every unicast and multicast frame (UPE/MPE). Default true.
    pub promiscuous: bool,
    /// How long `init` waits for the link before returning (it returns
    /// with the link down rather than fail; see [`Nic::wait_link`]). Default 10 s.
    pub link_timeout: Duration,
}

impl Default for NicOptions {
    fn default() -> Self {
        NicOptions {
            rx_queues: 1,
            tx_queues: 1,
            rx_ring: 512,
            tx_ring: 512,
            buf_size: 2048,
            pool_bufs: 4096,
            region: dma::RegionOptions::HARDWARE,
            promiscuous: true,
            link_timeout: Duration::from_secs(10),
        }
    }
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mb/s (0 when down).
    pub speed_mbps: u32,
}

/// Port counters, accumulated by the driver from the device's clear-on-read
/// registers (so they count from `init`). Octet counts are the device's
/// "good octets", which include the 4-byte FCS of every frame.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStats {
    /// Good packets received (GPRC).
    pub rx_packets: u64,
    /// Good packets transmitted (GPTC).
    pub tx_packets: u64,
    /// Good octets received (GORC).
    pub rx_bytes: u64,
    /// Good octets transmitted (GOTC).
    pub tx_bytes: u64,
    /// Frames lost for lack of packet buffer space (MPC).
    pub rx_missed: u64,
    /// Frames dropped because their queue had no free descriptor
    /// (82576/I350: RQDPC of the configured queues; 82599: QPRDC).
    pub rx_no_desc: u64,
    /// Frames that arrived while no descriptor was free (RNBC; on the
    /// chips these may overlap the two counters above).
    pub rx_no_buffer: u64,
    /// Frames received with a CRC error (CRCERRS).
    pub rx_crc_errors: u64,
}

impl DeviceStats {
    /// Frames the port dropped on receive: missed plus no-descriptor drops.
    pub fn rx_dropped(&self) -> u64 {
        self.rx_missed + self.rx_no_desc
    }

    fn add(&mut self, o: &DeviceStats) {
        self.rx_packets += o.rx_packets;
        self.tx_packets += o.tx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_bytes += o.tx_bytes;
        self.rx_missed += o.rx_missed;
        self.rx_no_desc += o.rx_no_desc;
        self.rx_no_buffer += o.rx_no_buffer;
        self.rx_crc_errors += o.rx_crc_errors;
    }
}

/// Everything the chip init code needs to know about the RX set-up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RxSetup {
    /// RX queues.
    pub queues: u16,
    /// Bytes the device may write per buffer (a multiple of 1 KiB).
    pub buf_len: usize,
    /// Largest frame without FCS.
    pub max_frame: usize,
    /// UPE/MPE.
    pub promiscuous: bool,
}

impl RxSetup {
    /// Whether frames beyond the standard 1518 bytes (with a VLAN tag) are accepted.
    pub fn jumbo(&self) -> bool {
        self.max_frame > spec::nic::ETH_MAX_FRAME + 4
    }
}

/// Register offsets of one descriptor ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingRegs {
    pub bal: usize,
    pub bah: usize,
    pub len: usize,
    pub head: usize,
    pub tail: usize,
    pub ctl: usize,
    pub enable: u32,
}

impl RingRegs {
    /// The registers of RX ring `q` in a chip family's per-queue map
    /// (`spec::nic::{igb, ixgbe}::RX_QUEUES`); `enable` is RXDCTL.ENABLE.
    pub(crate) fn rx(map: &QueueMap<RxReg>, q: u16, enable: u32) -> RingRegs {
        RingRegs {
            bal: map.addr(q, RxReg::Bal),
            bah: map.addr(q, RxReg::Bah),
            len: map.addr(q, RxReg::Len),
            head: map.addr(q, RxReg::Head),
            tail: map.addr(q, RxReg::Tail),
            ctl: map.addr(q, RxReg::Dctl),
            enable,
        }
    }

    /// The registers of TX ring `q` in a chip family's per-queue map;
    /// `enable` is TXDCTL.ENABLE.
    pub(crate) fn tx(map: &QueueMap<TxReg>, q: u16, enable: u32) -> RingRegs {
        RingRegs {
            bal: map.addr(q, TxReg::Bal),
            bah: map.addr(q, TxReg::Bah),
            len: map.addr(q, TxReg::Len),
            head: map.addr(q, TxReg::Head),
            tail: map.addr(q, TxReg::Tail),
            ctl: map.addr(q, TxReg::Dctl),
            enable,
        }
    }

    fn queue_regs(&self) -> QueueRegs {
        QueueRegs {
            tail: self.tail,
            head: self.head,
            ctl: self.ctl,
            enable: self.enable,
        }
    }
}

/// Poll `cond` until it holds or `timeout` passes; whether it held.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    // No spinning: yield for 63 polls, then sleep 100 µs per poll.
    let mut backoff = dma::Backoff::new(0, 64, Some(Duration::from_micros(100)));
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return cond();
        }
        backoff.idle();
    }
}

/// Point the device at `ring` and make it empty (head = tail = 0). Done
/// while the queue is disabled.
fn program_ring<R: RegisterAccess>(regs: &R, rr: &RingRegs, ring: &DescRing) {
    let iova = ring.iova();
    regs.write32(rr.bal, iova as u32);
    regs.write32(rr.bah, (iova >> 32) as u32);
    regs.write32(rr.len, ring.bytes() as u32);
    regs.write32(rr.head, 0);
    regs.write32(rr.tail, 0);
}

/// Set a queue's ENABLE bit and wait for it to read back (82576 datasheet
/// §4.5 receive/transmit initialization, 82599 datasheet §4.6.7 / §4.6.8: the tail may be bumped
/// only once ENABLE reads 1).
fn enable_queue<R: RegisterAccess>(
    regs: &R,
    rr: &RingRegs,
    queue: u16,
    dir: &'static str,
) -> Result<(), NicError> {
    let ctl = regs.read32(rr.ctl);
    regs.write32(rr.ctl, ctl | rr.enable);
    let timeout = Duration::from_secs(1);
    if wait_until(timeout, || regs.read32(rr.ctl) & rr.enable != 0) {
        Ok(())
    } else {
        Err(NicError::QueueEnableTimeout {
            queue,
            dir,
            after: timeout,
        })
    }
}

/// Read the MAC address from receive address entry 0 and make sure the
/// entry is marked valid.
fn read_mac<R: RegisterAccess>(
    regs: &R,
    ral: usize,
    rah: usize,
    av: u32,
) -> Result<[u8; 6], NicError> {
    let lo = regs.read32(ral).to_le_bytes();
    let hi_reg = regs.read32(rah);
    let hi = hi_reg.to_le_bytes();
    let mac = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]];
    if mac == [0; 6] || mac == [0xff; 6] || mac[0] & 1 != 0 {
        return Err(NicError::DeviceMisbehaved(format!(
            "receive address 0 holds {}, not a unicast MAC address (is the EEPROM programmed?)",
            spec::net::MacAddr(mac)
        )));
    }
    if hi_reg & av == 0 {
        regs.write32(rah, hi_reg | av);
    }
    Ok(mac)
}

/// The 32-bit RSS key registers (RSSRK): byte 4n in bits 7:0 of register n.
fn rss_key_words() -> [u32; spec::nic::RSSRK_REGS] {
    let mut w = [0u32; spec::nic::RSSRK_REGS];
    for (i, chunk) in spec::nic::RSS_KEY.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    w
}

/// The redirection table registers: entry e (byte e % 4 of register e / 4)
/// names queue e % queues.
fn reta_words(queues: u16) -> [u32; spec::nic::RETA_REGS] {
    let mut w = [0u32; spec::nic::RETA_REGS];
    for e in 0..spec::nic::RETA_ENTRIES {
        let q = (e % queues.max(1) as usize) as u32;
        w[e / 4] |= q << (8 * (e % 4));
    }
    w
}

/// A configured port: its queues (each taken once), pools, statistics and link.
pub struct Nic<R: RegisterAccess> {
    regs: Arc<R>,
    chip: Chip,
    mac: [u8; 6],
    max_frame: usize,
    rx: Vec<Mutex<Option<RxQueue<R>>>>,
    tx: Vec<Mutex<Option<TxQueue<R>>>>,
    pools: Vec<dma::Pool>,
    stats: Mutex<DeviceStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves no broken invariant
    // (they guard plain values), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: RegisterAccess> Nic<R> {
    /// Reset the device and set it up: interrupts off, global reset, wait
    /// for the EEPROM (and on the 82599 DMA) initialisation, MAC address,
    /// link, statistics cleared, RX queues with a pool each and every
    /// descriptor posted, TX queues, RSS when `rx_queues > 1`, then RX and TX
    /// enabled. Waits up to `opts.link_timeout` for the link, but returns
    /// with the link down rather than fail.
    ///
    /// The device must be enabled for DMA first (bus mastering: the VFIO
    /// open does it; for a model, `pci().enable()`).
    pub fn init(
        regs: R,
        mapper: Arc<dyn dma::Mapper>,
        chip: Chip,
        opts: NicOptions,
    ) -> Result<Nic<R>, NicError> {
        let (rx_ring, tx_ring, buf_len, max_frame) = check_options(chip, &opts)?;
        let regs = Arc::new(regs);
        let r = &*regs;
        let setup = RxSetup {
            queues: opts.rx_queues,
            buf_len,
            max_frame,
            promiscuous: opts.promiscuous,
        };

        // Reset, EEPROM (and DMA) init, MAC, link, statistics.
        let mac = if chip.is_igb() {
            igb::reset(r)?;
            let mac = read_mac(
                r,
                spec::nic::igb::ral(0),
                spec::nic::igb::rah(0),
                spec::nic::igb::rah::AV.bit(),
            )?;
            igb::setup_link(r);
            mac
        } else {
            ixgbe::reset(r)?;
            let mac = read_mac(
                r,
                spec::nic::ixgbe::ral(0),
                spec::nic::ixgbe::rah(0),
                spec::nic::ixgbe::rah::AV.bit(),
            )?;
            ixgbe::setup_link(r);
            mac
        };
        let mut discard = DeviceStats::default();
        read_stats(r, chip, opts.rx_queues, &mut discard);

        // Receive: global set-up with RX off, then the rings.
        if chip.is_igb() {
            igb::configure_rx(r, &setup);
        } else {
            ixgbe::configure_rx(r, &setup);
        }
        let mut rxqs = Vec::with_capacity(opts.rx_queues as usize);
        let mut pools = Vec::with_capacity(opts.rx_queues as usize);
        for q in 0..opts.rx_queues {
            let rr = if chip.is_igb() {
                igb::rx_ring_regs(q)
            } else {
                ixgbe::rx_ring_regs(q)
            };
            let ring = DescRing::new(mapper.clone(), rx_ring, opts.region)?;
            program_ring(r, &rr, &ring);
            let pool = dma::Pool::new(mapper.clone(), opts.pool_bufs, opts.buf_size, opts.region)?;
            let rxq = RxQueue::new(
                regs.clone(),
                ring,
                &pool,
                buf_len,
                chip.rx_frame_errors(),
                rr.queue_regs(),
                q,
            );
            enable_queue(r, &rr, q, "RX")?;
            pools.push(pool);
            rxqs.push(rxq);
        }
        for rxq in &mut rxqs {
            rxq.refill();
        }
        if chip.is_igb() {
            igb::start_rx(r);
        } else {
            ixgbe::start_rx(r);
        }

        // Transmit.
        let limits = TxLimits {
            max_segments: chip.max_tx_segments(),
            max_segment_len: chip.max_tx_segment_len(),
            max_frame,
        };
        if chip.is_igb() {
            igb::configure_tx(r);
        } else {
            ixgbe::configure_tx(r);
        }
        let mut txqs = Vec::with_capacity(opts.tx_queues as usize);
        let mut tx_rings = Vec::with_capacity(opts.tx_queues as usize);
        for q in 0..opts.tx_queues {
            let rr = if chip.is_igb() {
                igb::tx_ring_regs(q)
            } else {
                ixgbe::tx_ring_regs(q)
            };
            let ring = DescRing::new(mapper.clone(), tx_ring, opts.region)?;
            program_ring(r, &rr, &ring);
            tx_rings.push((rr, ring));
        }
        if !chip.is_igb() {
            ixgbe::start_tx_dma(r);
        }
        for (q, (rr, ring)) in tx_rings.into_iter().enumerate() {
            let q = q as u16;
            enable_queue(r, &rr, q, "TX")?;
            txqs.push(TxQueue::new(regs.clone(), ring, limits, rr.queue_regs(), q));
        }
        if chip.is_igb() {
            igb::start_tx(r);
        }

        let nic = Nic {
            regs,
            chip,
            mac,
            max_frame,
            rx: rxqs.into_iter().map(|q| Mutex::new(Some(q))).collect(),
            tx: txqs.into_iter().map(|q| Mutex::new(Some(q))).collect(),
            pools,
            stats: Mutex::new(DeviceStats::default()),
        };
        if !opts.link_timeout.is_zero() {
            // Best effort: the link may come up later.
            let _ = nic.wait_link(opts.link_timeout);
        }
        Ok(nic)
    }

    /// The chip.
    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// The port's MAC address (from the EEPROM, via receive address 0).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The link state now.
    pub fn link(&self) -> LinkStatus {
        if self.chip.is_igb() {
            igb::link(&*self.regs)
        } else {
            ixgbe::link(&*self.regs)
        }
    }

    /// Wait up to `timeout` for the link to come up.
    pub fn wait_link(&self, timeout: Duration) -> Result<LinkStatus, NicError> {
        let mut status = self.link();
        let up = wait_until(timeout, || {
            status = self.link();
            status.up
        });
        if up {
            Ok(status)
        } else {
            Err(NicError::LinkDown { after: timeout })
        }
    }

    /// The port counters since `init`: reads the device's clear-on-read
    /// counters and adds them to the driver's totals.
    pub fn stats(&self) -> DeviceStats {
        let mut total = lock(&self.stats);
        let mut now = DeviceStats::default();
        read_stats(&*self.regs, self.chip, self.rx.len() as u16, &mut now);
        total.add(&now);
        *total
    }

    /// Take RX queue `q` (each queue can be taken once).
    pub fn rx_queue(&self, q: u16) -> Result<RxQueue<R>, NicError> {
        let slot = self.rx.get(q as usize).ok_or(NicError::NoSuchQueue {
            q,
            have: self.rx.len() as u16,
        })?;
        lock(slot).take().ok_or(NicError::QueueTaken(q))
    }

    /// Take TX queue `q` (each queue can be taken once).
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue<R>, NicError> {
        let slot = self.tx.get(q as usize).ok_or(NicError::NoSuchQueue {
            q,
            have: self.tx.len() as u16,
        })?;
        lock(slot).take().ok_or(NicError::QueueTaken(q))
    }

    /// The RX buffer pool of queue `q` (apps may allocate TX buffers from it).
    ///
    /// # Panics
    /// If `q` is not a configured RX queue (a caller bug, like a slice index).
    pub fn pool(&self, q: u16) -> &dma::Pool {
        &self.pools[q as usize]
    }

    /// The largest frame (without FCS) the port receives into one buffer
    /// and accepts for transmission.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Configured RX queues.
    pub fn rx_queues(&self) -> u16 {
        self.rx.len() as u16
    }

    /// Configured TX queues.
    pub fn tx_queues(&self) -> u16 {
        self.tx.len() as u16
    }

    /// The register access (for tools and tests).
    pub fn registers(&self) -> &R {
        &self.regs
    }
}

/// Read every clear-on-read counter once into `s`.
fn read_stats<R: RegisterAccess>(regs: &R, chip: Chip, rx_queues: u16, s: &mut DeviceStats) {
    if chip.is_igb() {
        igb::read_stats(regs, rx_queues, s)
    } else {
        ixgbe::read_stats(regs, s)
    }
}

/// What one [`forward`] call moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Frames.
    pub frames: usize,
    /// Their bytes (without FCS).
    pub bytes: u64,
}

/// Move up to `max` received frames from `rx` to `tx` (another port's, or
/// the same port's), each buffer going from one ring to the other without
/// a list in between, then send buffers the device has finished back to
/// `rx`'s cache. Frames are neither read nor written by the CPU. Returns
/// what was moved: fewer than `max` frames when `rx` has fewer or `tx` has
/// no more room (the rest stay in `rx`'s ring, where flow control or the
/// device's drop counter deals with them).
///
/// Fails with [`NicError::InvalidOptions`] if `rx` can deliver frames
/// longer than `tx` sends (ports set up with different buffer sizes); the
/// RX checks of [`RxQueue::rx_batch`] apply.
pub fn forward<R1: RegisterAccess, R2: RegisterAccess>(
    rx: &mut RxQueue<R1>,
    tx: &mut TxQueue<R2>,
    max: usize,
) -> Result<Forwarded, NicError> {
    if rx.buf_len() > tx.max_one_segment() {
        return Err(NicError::InvalidOptions(format!(
            "RX queue {} delivers frames up to {} bytes, TX queue {} sends at most {}",
            rx.queue(),
            rx.buf_len(),
            tx.queue(),
            tx.max_one_segment()
        )));
    }
    // Every time (one load when nothing is done): sent buffers go straight
    // back into `rx`'s ring (what does not fit, into its cache), so the
    // ring stays full without a refill from a free list.
    tx.clean_into_ring(rx);
    // Most polls of an idle or lightly loaded port find nothing: one load.
    if !rx.frame_waiting() {
        rx.top_up(tx.in_flight());
        return Ok(Forwarded::default());
    }
    let room = max.min(tx.free_descriptors());
    if room == 0 {
        return Ok(Forwarded::default());
    }
    tx.accept_devices_of(rx.pool());
    let (mut frames, mut bytes) = (0, 0);
    while frames < room {
        let want = (room - frames).min(rx::BURST);
        let r = rx.take_burst::<false>(want);
        // No checks needed in `send_burst`: `rx` delivers at most `room`
        // frames, none longer than its buffers, which `tx` sends whole
        // (checked above). The CPU never gets a handle to a buffer, let
        // alone a slice.
        let burst = rx.burst();
        let n = burst.len();
        if n > 0 {
            bytes += tx.send_burst(burst);
            frames += n;
        }
        // What `tx` holds comes back into `rx`'s ring.
        rx.top_up(tx.in_flight());
        r?;
        if n < want {
            break;
        }
    }
    Ok(Forwarded { frames, bytes })
}

/// Check the options against the chip; returns (RX ring size, TX ring size,
/// device buffer length, max frame).
fn check_options(chip: Chip, o: &NicOptions) -> Result<(usize, usize, usize, usize), NicError> {
    let max_q = chip.max_queues();
    for (what, n) in [("rx_queues", o.rx_queues), ("tx_queues", o.tx_queues)] {
        if n == 0 || n > max_q {
            return Err(NicError::InvalidOptions(format!(
                "{what} = {n}: the {chip} has 1 to {max_q}"
            )));
        }
    }
    if o.rx_queues > 1 && o.rx_queues > chip.max_rss_queues() {
        return Err(NicError::InvalidOptions(format!(
            "rx_queues = {}: RSS on the {chip} spreads over at most {} queues",
            o.rx_queues,
            chip.max_rss_queues()
        )));
    }
    let rx_ring = ring::check_ring_size("rx_ring", o.rx_ring)?;
    let tx_ring = ring::check_ring_size("tx_ring", o.tx_ring)?;
    let unit = 1024;
    let max_kib = chip.max_bsizepacket_kib();
    if o.buf_size < unit || !o.buf_size.is_multiple_of(unit) {
        return Err(NicError::InvalidOptions(format!(
            "buf_size = {}: use a multiple of 1024 (the device's buffer size unit), at least 1024",
            o.buf_size
        )));
    }
    let buf_len = o.buf_size.min(max_kib * unit);
    let max_frame = buf_len.min(chip.max_frame_jumbo());
    if o.pool_bufs < rx_ring {
        return Err(NicError::InvalidOptions(format!(
            "pool_bufs = {} is less than rx_ring = {rx_ring}: the ring could not be filled",
            o.pool_bufs
        )));
    }
    Ok((rx_ring, tx_ring, buf_len, max_frame))
}

#[cfg(test)]
mod tests;
