//! A configured port ([`Nic`]): init, link, counters and its queues.
#![forbid(unsafe_code)]

use super::chip::Chip;
use super::error::NicError;
use super::igb;
use super::ixgbe;
use super::options::{check_options, NicOptions};
use super::ring::DescRing;
use super::rx::RxQueue;
use super::setup::{check_responding, enable_queue, program_ring, read_mac, wait_until, RxSetup};
use super::status::{DeviceStats, LinkStatus};
use super::tx::{TxLimits, TxQueue};
use crate::regs::RegisterAccess;
use crate::trace::Queue;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
    ///
    /// A device that does not answer (every register reads FFFFFFFFh:
    /// removed, powered down, memory space off) is [`NicError::DeviceRemoved`],
    /// found at the first read, before any write; so is one that goes away
    /// during init, whatever step then failed.
    pub fn init(
        regs: R,
        mapper: Arc<dyn dma::Mapper>,
        chip: Chip,
        opts: NicOptions,
    ) -> Result<Nic<R>, NicError> {
        let checked = check_options(chip, &opts)?;
        let regs = Arc::new(regs);
        Self::bring_up(regs.clone(), mapper, chip, opts, checked).map_err(|e| {
            // A step that failed because the device went away (a reset
            // that never clears, a queue that never enables, a MAC of all
            // ones) reports the removal, not its symptom.
            match check_responding(&*regs, status_reg(chip)) {
                Err(removed) => removed,
                Ok(_) => e,
            }
        })
    }

    /// [`Nic::init`] after the options were checked.
    fn bring_up(
        regs: Arc<R>,
        mapper: Arc<dyn dma::Mapper>,
        chip: Chip,
        opts: NicOptions,
        (rx_ring, tx_ring, buf_len, max_frame): (usize, usize, usize, usize),
    ) -> Result<Nic<R>, NicError> {
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
            let ring = DescRing::new(mapper.clone(), rx_ring, opts.region)?
                .traced(opts.trace.clone(), Queue::Rx(q));
            program_ring(r, &rr, &ring);
            let pool = dma::Pool::new(mapper.clone(), opts.pool_bufs, opts.buf_size, opts.region)?;
            let rxq = RxQueue::new(
                regs.clone(),
                ring,
                &pool,
                buf_len,
                chip.rx_frame_errors(),
                rr.queue_regs(status_reg(chip)),
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
            let ring = DescRing::new(mapper.clone(), tx_ring, opts.region)?
                .traced(opts.trace.clone(), Queue::Tx(q));
            program_ring(r, &rr, &ring);
            tx_rings.push((rr, ring));
        }
        if !chip.is_igb() {
            ixgbe::start_tx_dma(r);
        }
        for (q, (rr, ring)) in tx_rings.into_iter().enumerate() {
            let q = q as u16;
            enable_queue(r, &rr, q, "TX")?;
            txqs.push(TxQueue::new(
                regs.clone(),
                ring,
                limits,
                rr.queue_regs(status_reg(chip)),
                q,
            ));
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
            // Best effort: the link may come up later. A device that went
            // away will not.
            if let Err(e @ NicError::DeviceRemoved { .. }) = nic.wait_link(opts.link_timeout) {
                return Err(e);
            }
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

    /// The link state now; [`NicError::DeviceRemoved`] when the device no
    /// longer answers (its link registers read all ones, which would
    /// otherwise look like a link up at full speed).
    pub fn link(&self) -> Result<LinkStatus, NicError> {
        self.link_probe().link()
    }

    /// A handle that reads the link state as [`Nic::link`] does, for a
    /// thread that holds a queue but not the port (a sender whose frames
    /// stopped completing asks it why).
    pub fn link_probe(&self) -> LinkProbe<R> {
        LinkProbe {
            regs: self.regs.clone(),
            chip: self.chip,
        }
    }

    /// Wait up to `timeout` for the link to come up. A device that does not
    /// answer ends the wait at once with [`NicError::DeviceRemoved`].
    pub fn wait_link(&self, timeout: Duration) -> Result<LinkStatus, NicError> {
        let mut status = self.link();
        let settled =
            |s: &Result<LinkStatus, NicError>| !matches!(s, Ok(LinkStatus { up: false, .. }));
        if !settled(&status) {
            wait_until(timeout, || {
                status = self.link();
                settled(&status)
            });
        }
        match status {
            Ok(LinkStatus { up: false, .. }) => Err(NicError::LinkDown { after: timeout }),
            other => other,
        }
    }

    /// The port counters since `init`: reads the device's clear-on-read
    /// counters and adds them to the driver's totals. On a device that no
    /// longer answers nothing is added (its counters read FFFFFFFFh) and
    /// the totals so far are returned; [`Nic::try_stats`] says so.
    pub fn stats(&self) -> DeviceStats {
        match self.try_stats() {
            Ok(s) => s,
            Err(_) => *lock(&self.stats),
        }
    }

    /// [`Nic::stats`], with [`NicError::DeviceRemoved`] when the device no
    /// longer answers (then nothing is added to the totals).
    pub fn try_stats(&self) -> Result<DeviceStats, NicError> {
        let mut total = lock(&self.stats);
        let mut now = DeviceStats::default();
        read_stats(&*self.regs, self.chip, self.rx.len() as u16, &mut now);
        // STATUS after the counters, not before: a removal is for good, so
        // a device gone at any point during the reads reads all ones here
        // too, and none of its all-ones counters is added.
        check_responding(&*self.regs, status_reg(self.chip))?;
        total.add(&now);
        Ok(*total)
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

/// The offset of STATUS, whose reserved bits read 0 (so it never reads all
/// ones from a device that answers).
fn status_reg(chip: Chip) -> usize {
    if chip.is_igb() {
        spec::nic::igb::STATUS
    } else {
        spec::nic::ixgbe::STATUS
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

/// Reads a port's link state ([`Nic::link_probe`]).
pub struct LinkProbe<R: RegisterAccess> {
    regs: Arc<R>,
    chip: Chip,
}

impl<R: RegisterAccess> LinkProbe<R> {
    /// The link state now, as [`Nic::link`].
    pub fn link(&self) -> Result<LinkStatus, NicError> {
        if self.chip.is_igb() {
            igb::link(&*self.regs)
        } else {
            ixgbe::link(&*self.regs)
        }
    }
}
