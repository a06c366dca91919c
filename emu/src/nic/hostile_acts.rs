//! What the hostile mode of [`super::hostile`] does to the model: the
//! `NicModel` methods that turn it on and act on register writes, device
//! rounds and register reads.
#![forbid(unsafe_code)]

use super::hostile::*;
use super::layout::Reg;
use super::model::NicModel;
use crate::RunMode;
use spec::nic::adv_desc::rx::{self as rxd, info, status as rxs};
use spec::nic::adv_desc::tx::{olinfo, WB_STATUS};
use spec::nic::adv_desc::DESC_SIZE;
use spec::nic::queue::{RxReg, TxReg};
use std::sync::atomic::{AtomicBool, Ordering};

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
        // Hostile mode acts in the rounds of an idle device too: the
        // thread goes back to polling (see `Pollable::waker`).
        self.waker.wake();
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
