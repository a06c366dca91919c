//! How to set a port up ([`NicOptions`]) and the check of those options
//! against the chip ([`check_options`]).
#![forbid(unsafe_code)]

use super::chip::Chip;
use super::error::NicError;
use super::ring;
use crate::trace::Tap;
use std::time::Duration;

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
    /// with the link down rather than fail; see
    /// [`Nic::wait_link`](super::port::Nic::wait_link)). Default 10 s.
    pub link_timeout: Duration,
    /// Where the driver records what it writes and reads back (off by
    /// default; see [`crate::trace`]).
    pub trace: Tap,
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
            trace: Tap::OFF,
        }
    }
}

/// Check the options against the chip; returns (RX ring size, TX ring size,
/// device buffer length, max frame).
pub(super) fn check_options(
    chip: Chip,
    o: &NicOptions,
) -> Result<(usize, usize, usize, usize), NicError> {
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
