//! Register programming shared by the chip init sequences: the RX set-up
//! ([`RxSetup`]), a ring's registers ([`RingRegs`], [`program_ring`],
//! [`enable_queue`]), the MAC address ([`read_mac`]), the RSS key and
//! redirection table words, and polling a register ([`wait_until`]).
#![forbid(unsafe_code)]

use super::error::NicError;
use super::ring::{DescRing, QueueRegs};
use crate::regs::RegisterAccess;
use spec::nic::queue::{QueueMap, RxReg, TxReg};
use std::time::{Duration, Instant};

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

    pub(super) fn queue_regs(&self, status: usize) -> QueueRegs {
        QueueRegs {
            status,
            tail: self.tail,
            head: self.head,
            ctl: self.ctl,
            enable: self.enable,
        }
    }
}

pub(super) use super::ring::ALL_ONES;

/// Read STATUS (at `status`, the chip's offset) and refuse all-ones: its
/// reserved bits read 0 on every chip (82576 datasheet §8.2.2, 82599
/// datasheet §8.2.3.1.2), so FFFFFFFFh means the device no longer answers,
/// not a state it is in. The value, when it is one.
pub(super) fn check_responding<R: RegisterAccess>(
    regs: &R,
    status: usize,
) -> Result<u32, NicError> {
    let v = regs.read32(status);
    if v == ALL_ONES {
        return Err(NicError::DeviceRemoved { register: "STATUS" });
    }
    Ok(v)
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
pub(super) fn program_ring<R: RegisterAccess>(regs: &R, rr: &RingRegs, ring: &DescRing) {
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
pub(super) fn enable_queue<R: RegisterAccess>(
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
pub(super) fn read_mac<R: RegisterAccess>(
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
pub(super) fn rss_key_words() -> [u32; spec::nic::RSSRK_REGS] {
    let mut w = [0u32; spec::nic::RSSRK_REGS];
    for (i, chunk) in spec::nic::RSS_KEY.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    w
}

/// The redirection table registers: entry e (byte e % 4 of register e / 4)
/// names queue e % queues.
pub(super) fn reta_words(queues: u16) -> [u32; spec::nic::RETA_REGS] {
    let mut w = [0u32; spec::nic::RETA_REGS];
    for e in 0..spec::nic::RETA_ENTRIES {
        let q = (e % queues.max(1) as usize) as u32;
        w[e / 4] |= q << (8 * (e % 4));
    }
    w
}
