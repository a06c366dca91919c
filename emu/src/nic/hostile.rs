//! Hostile-device mode: the model turned into the adversary of the threat
//! model (DESIGN "Threat model": the device is a buggy or hostile peer that
//! may write anything in the rings at any time), for fuzzing the driver.
//!
//! Off by default; [`super::EmuNic::set_hostile`] turns it on with a seed
//! and a choice of [`HostileConfig`] targets. While on, besides its normal
//! work, the model:
//! - **RX write-backs**: the genuine write-back of a received frame gets,
//!   now and then, a length of 0, 1, the buffer size, the buffer size + 1,
//!   65535 or a random one, random status and error bits (DD kept), EOP
//!   cleared, and garbage RSS type, packet type and hash; and on its own it
//!   writes back forged frames at its head (random lengths and bits), runs
//!   of descriptors without EOP (a frame that never ends), and DD on
//!   descriptors the driver never posted (beyond the tail) or already got
//!   back.
//! - **TX write-backs**: DD on descriptors not handed to the device, DD on
//!   descriptors handed but not yet sent, DD on every descriptor of the
//!   ring, and spells of never writing DD at all.
//! - **Register reads**: RDH/TDH read random, beyond any ring, or all ones
//!   (one read in three); any other register reads random or all ones (one
//!   read in 64).
//!
//! The mischief happens on every register write (inline mode: the driver's
//! own thread) and on every round of device work, so in
//! [`RunMode::Threaded`](crate::RunMode::Threaded) it races the driver from
//! the device thread. All randomness comes from one splitmix64 stream
//! (lock-free: an atomic counter, mixed), so an inline run with the same
//! seed and the same driver calls does the same things. Every write goes
//! through [`DeviceDma`](crate::DeviceDma) like the model's own (IOMMU-checked);
//! the model never panics, whatever it writes.
#![forbid(unsafe_code)]

use super::layout::Reg;
use super::model::NicModel;
use super::queue_state::{QueueShared, ACTIVE};
use crate::RunMode;
use spec::nic::adv_desc::rx::{self as rxd, info, status as rxs};
use spec::nic::adv_desc::tx::{olinfo, WB_STATUS};
use spec::nic::adv_desc::DESC_SIZE;
use spec::nic::queue::{RxReg, TxReg};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a hostile model attacks ([`super::EmuNic::set_hostile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostileConfig {
    /// Corrupt and forge RX write-backs.
    pub rx: bool,
    /// Forge, spray and withhold TX DD bits.
    pub tx: bool,
    /// Return random, out-of-range and all-ones register values.
    pub registers: bool,
}

impl HostileConfig {
    /// Everything.
    pub const ALL: HostileConfig = HostileConfig {
        rx: true,
        tx: true,
        registers: true,
    };
}

/// splitmix64's increment (Steele, Lea, Flood: "Fast splittable
/// pseudorandom number generators", OOPSLA 2014).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small local splitmix64 stream, for the draws of one act.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// Uniform-enough in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// The hostile mode's state in the model: off unless `on`.
#[derive(Debug, Default)]
pub(crate) struct Hostile {
    on: AtomicBool,
    rx: AtomicBool,
    tx: AtomicBool,
    registers: AtomicBool,
    /// The splitmix64 state.
    state: AtomicU64,
    /// While set, TX descriptors with RS are not written back.
    tx_never_dd: AtomicBool,
    /// Acts done, for reports.
    acts: AtomicU64,
}

impl Hostile {
    /// A fresh local stream, split off the shared one.
    fn split(&self) -> Rng {
        Rng(mix(self.state.fetch_add(GAMMA, Ordering::Relaxed)))
    }
}

/// A length chosen to hurt a driver with `buf`-byte buffers.
fn evil_len(r: &mut Rng, buf: usize) -> u16 {
    match r.below(6) {
        0 => 0,
        1 => 1,
        2 => buf.min(u16::MAX as usize) as u16,
        3 => (buf + 1).min(u16::MAX as usize) as u16,
        4 => u16::MAX,
        _ => r.next() as u16,
    }
}

/// A random queue of `queues` that is running (the model has more queues
/// than a driver usually enables).
fn pick_active(r: &mut Rng, queues: &[QueueShared]) -> Option<usize> {
    let active = |s: &QueueShared| s.state.load(Ordering::Acquire) == ACTIVE;
    let n = queues.iter().filter(|s| active(s)).count();
    if n == 0 {
        return None;
    }
    let k = r.below(n as u64) as usize;
    queues
        .iter()
        .enumerate()
        .filter(|(_, s)| active(s))
        .nth(k)
        .map(|(q, _)| q)
}

impl NicModel {
    /// Turn hostile mode on with `seed` (restarting its random stream) or,
    /// with `None`, off.
    pub fn set_hostile(&self, seed: u64, cfg: Option<HostileConfig>) {
        let h = &self.hostile;
        h.on.store(false, Ordering::Release);
        h.tx_never_dd.store(false, Ordering::Release);
        h.state.store(seed, Ordering::Release);
        if let Some(c) = cfg {
            h.rx.store(c.rx, Ordering::Release);
            h.tx.store(c.tx, Ordering::Release);
            h.registers.store(c.registers, Ordering::Release);
            h.on.store(true, Ordering::Release);
            self.note(|| format!("hostile mode on, seed {seed:#x}, {c:?}"));
        }
    }

    /// Hostile acts done since the model was made.
    pub fn hostile_acts(&self) -> u64 {
        self.hostile.acts.load(Ordering::Relaxed)
    }

    #[inline]
    fn hostile_on(&self, what: &AtomicBool) -> bool {
        self.hostile.on.load(Ordering::Acquire) && what.load(Ordering::Acquire)
    }

    /// A register read, replaced by a hostile value (or not: None).
    #[inline]
    pub(super) fn hostile_read(&self, offset: usize, size: u8) -> Option<u64> {
        if !self.hostile_on(&self.hostile.registers) {
            return None;
        }
        let mut r = self.hostile.split();
        let head = matches!(
            self.layout.slots.get(offset / 4).map(|s| s.reg),
            Some(Reg::Rx(RxReg::Head, _)) | Some(Reg::Tx(TxReg::Head, _))
        );
        if !r.one_in(if head { 3 } else { 64 }) {
            return None;
        }
        self.hostile.acts.fetch_add(1, Ordering::Relaxed);
        let v = match r.below(4) {
            0 => u64::MAX,
            // Beyond any ring the driver accepts (4096 descriptors).
            1 if head => 4096 + r.below(1 << 20),
            1 => r.next() & 0xffff,
            _ => r.next(),
        };
        Some(if size == 8 { v } else { v & 0xffff_ffff })
    }

    /// Spoil the genuine write-back `wb` (and its status dword `st`) of an
    /// RX descriptor whose buffer holds `buf` bytes, now and then.
    #[inline]
    pub(super) fn hostile_rx_writeback(&self, wb: &mut [u8; DESC_SIZE], st: &mut u32, buf: usize) {
        if !self.hostile_on(&self.hostile.rx) {
            return;
        }
        let mut r = self.hostile.split();
        if !r.one_in(4) {
            return;
        }
        self.hostile.acts.fetch_add(1, Ordering::Relaxed);
        match r.below(4) {
            0 => {
                let len = evil_len(&mut r, buf);
                wb[rxd::WB_LENGTH..rxd::WB_LENGTH + 2].copy_from_slice(&len.to_le_bytes());
            }
            // Random status and error bits, DD kept (else it is no write-back).
            1 => *st = r.next() as u32 | rxs::DD.bit(),
            2 => *st &= !rxs::EOP.bit(),
            _ => {
                let dw0 = info::RSS_TYPE.value(r.next() as u32)
                    | info::PACKET_TYPE.value((r.next() >> 8) as u32);
                wb[rxd::WB_INFO..rxd::WB_INFO + 4].copy_from_slice(&dw0.to_le_bytes());
                wb[rxd::WB_RSS_HASH..rxd::WB_RSS_HASH + 4]
                    .copy_from_slice(&(r.next() as u32).to_le_bytes());
            }
        }
    }

    /// Whether the TX write-back of a descriptor with RS is withheld.
    #[inline]
    pub(super) fn hostile_drops_tx_dd(&self) -> bool {
        self.hostile_on(&self.hostile.tx) && self.hostile.tx_never_dd.load(Ordering::Acquire)
    }

    /// One hostile act on the rings, now and then (on register writes and
    /// rounds of device work).
    #[inline]
    pub(super) fn hostile_act(&self) {
        if !self.hostile.on.load(Ordering::Acquire) {
            return;
        }
        let mut r = self.hostile.split();
        // A device thread spins through rounds far faster than a driver
        // polls: act on fewer of them, so frames still get through.
        let rate = if self.mode == RunMode::Threaded {
            64
        } else {
            4
        };
        if !r.one_in(rate) {
            return;
        }
        let rx = self.hostile.rx.load(Ordering::Acquire);
        let tx = self.hostile.tx.load(Ordering::Acquire);
        let done = if rx && (!tx || r.one_in(2)) {
            let act = r.below(4);
            self.hostile_rx_act(&mut r, act)
        } else if tx {
            // Weighted: a premature DD or a spell without DD leaves the
            // driver waiting for a DD that never comes (as a device that
            // stopped would); DD everywhere is what ends such a wait.
            let act = match r.below(8) {
                0..=2 => 0,
                3 => 1,
                4 => 3,
                _ => 2,
            };
            self.hostile_tx_act(&mut r, act)
        } else {
            false
        };
        if done {
            self.hostile.acts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// RX ring mischief on a random enabled queue: 0 and 1 a forged frame
    /// at the head, 2 a run without EOP, 3 DD beyond the tail (on a
    /// descriptor never posted, or written back already: then rewritten
    /// with a good-looking frame or garbage). The device
    /// head moves past what it forges, as a real write-back would.
    fn hostile_rx_act(&self, r: &mut Rng, act: u64) -> bool {
        let Some(q) = pick_active(r, &self.rxq) else {
            return false;
        };
        let tail = self.rxq[q].tail.load(Ordering::Acquire);
        let mut eng = self.rx_engine();
        let buf = eng.config.queues.get(q).map_or(2048, |c| c.buf_size);
        let Some(ring) = eng.rings[q].as_mut() else {
            return false;
        };
        let avail = ring.available(tail);
        let (count, at, advance) = match act {
            0 | 1 => (1.min(avail), ring.head, true),
            2 => ((1 + r.below(8) as u32).min(avail), ring.head, true),
            _ => {
                // Not posted: from the tail up to the head (what the driver
                // owns: never posted, or written back already).
                let unposted = ring.entries - avail;
                if unposted <= 1 {
                    return false;
                }
                (
                    1,
                    (tail + r.below(unposted as u64) as u32) % ring.entries,
                    false,
                )
            }
        };
        for k in 0..count {
            let index = (at + k) % ring.entries;
            let mut wb = [0u8; DESC_SIZE];
            let (len, st) = match act {
                0 | 1 => (
                    evil_len(r, buf),
                    r.next() as u32 | rxs::DD.bit() | rxs::EOP.bit() & r.next() as u32,
                ),
                2 => (buf as u16, rxs::DD.bit()),
                // A good-looking frame, or (half the time) garbage: on a
                // descriptor written back and not yet taken, a write-back
                // that changes under the driver's feet.
                _ if r.one_in(2) => (evil_len(r, buf), r.next() as u32 | rxs::DD.bit()),
                _ => (
                    (60 + r.below(buf.saturating_sub(60) as u64 + 1)) as u16,
                    rxs::DD.bit() | rxs::EOP.bit(),
                ),
            };
            wb[rxd::WB_INFO..rxd::WB_INFO + 8].copy_from_slice(&r.next().to_le_bytes());
            wb[rxd::WB_LENGTH..rxd::WB_LENGTH + 2].copy_from_slice(&len.to_le_bytes());
            let iova = ring.desc_iova(index);
            let ok = self.dma.write(iova, &wb).and_then(|()| {
                self.dma
                    .store_u32_release(iova + rxd::WB_STATUS_ERROR as u64, st)
            });
            if ok.is_err() {
                return false;
            }
            if advance {
                ring.head = (ring.head + 1) % ring.entries;
                // The prefetched addresses no longer start at the head.
                ring.pos = 0;
                ring.len = 0;
                self.rxq[q].head.store(ring.head, Ordering::Release);
            }
        }
        count > 0 || !advance
    }

    /// TX ring mischief on a random enabled queue: 0 DD on a descriptor
    /// not handed to the device, 1 DD on one handed but not yet sent, 2 DD
    /// on every descriptor, 3 toggle a spell of never writing DD.
    fn hostile_tx_act(&self, r: &mut Rng, act: u64) -> bool {
        if act == 3 {
            self.hostile.tx_never_dd.fetch_xor(true, Ordering::AcqRel);
            return true;
        }
        let Some(q) = pick_active(r, &self.txq) else {
            return false;
        };
        let q = q as u16;
        let tail = self.txq[q as usize].tail.load(Ordering::Acquire);
        let ring = self.tx_ring(q);
        let Some(ring) = ring.as_ref() else {
            return false;
        };
        let handed = (tail + ring.entries - ring.head) % ring.entries;
        // The first descriptor and how many.
        let (start, n) = match act {
            0 => {
                let not_handed = ring.entries - handed;
                (tail + r.below(not_handed as u64) as u32, 1)
            }
            1 if handed > 0 => (ring.head + r.below(handed as u64) as u32, 1),
            1 => return false,
            _ => (0, ring.entries),
        };
        for i in start..start + n {
            let iova = ring.desc_iova(i % ring.entries) + WB_STATUS as u64;
            if self.dma.store_u32_release(iova, olinfo::DD.bit()).is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nic::{EmuNic, NicModelConfig};
    use crate::wire::open_wire;
    use drivers::nic::Chip;
    use drivers::regs::RegisterAccess;
    use spec::nic::igb;

    fn rdh_reads(nic: &EmuNic, n: usize) -> Vec<u32> {
        let bar = nic.bar();
        let rdh = igb::RX_QUEUES.addr(0, RxReg::Head);
        (0..n).map(|_| bar.read32(rdh)).collect()
    }

    #[test]
    fn hostile_registers_are_seeded_and_off_means_off() {
        let cfg = NicModelConfig::with_mac([2, 0, 0, 0, 0, 1]);
        let nic = EmuNic::new(
            Chip::I82576,
            cfg,
            open_wire("loop").unwrap(),
            crate::RunMode::Inline,
        )
        .unwrap();
        assert!(rdh_reads(&nic, 300).iter().all(|&h| h == 0));
        let regs = Some(HostileConfig {
            rx: false,
            tx: false,
            registers: true,
        });
        nic.set_hostile(42, regs);
        let a = rdh_reads(&nic, 300);
        // About one read in three is hostile: beyond any ring or all ones.
        let bad = a.iter().filter(|&&h| h >= 4096).count();
        assert!((50..200).contains(&bad), "{bad} hostile reads of 300");
        assert!(a.contains(&u32::MAX), "no all-ones read");
        assert_eq!(nic.model().hostile_acts(), bad as u64);
        // The same seed, the same reads.
        nic.set_hostile(42, regs);
        assert_eq!(rdh_reads(&nic, 300), a);
        nic.set_hostile(0, None);
        assert!(rdh_reads(&nic, 300).iter().all(|&h| h == 0));
    }
}
