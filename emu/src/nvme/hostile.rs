//! Hostile mode ([`Fault::Hostile`](super::Fault)): a controller that lies at
//! random, seeded, to fuzz the driver. What it can do wrong:
//! - completions: a wrong CID (random, or a neighbour's, which may be in
//!   flight), the phase bit flipped, a random status (SCT, SC, More, DNR),
//!   a random SQ head or SQ identifier, a completion posted twice (possibly
//!   over an entry the host has not consumed: past the queue's room), and
//!   entries written with no doorbell behind them (on a CQ head doorbell
//!   write, and from the device thread, racing the driver);
//! - Identify data: random pages, NN huge, LBA formats whose LBADS is out of
//!   range, MDTS 0 or huge, absurd NSZE/NCAP/NUSE, random active namespace
//!   lists;
//! - register reads: CAP, VS and CSTS read random values or all ones.
//!
//! The generator is splitmix64 over one atomic counter: lock-free, and the
//! same seed gives the same sequence of choices on one thread (the device
//! thread makes the order of draws, and so a threaded run, nondeterministic).
#![forbid(unsafe_code)]

use spec::nvme::reg::{self, csts};
use spec::nvme::{cns, cqe, id_ctrl, id_ns};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What a hostile controller does wrong, and how often
/// ([`Fault::Hostile`](super::Fault)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hostility {
    /// Seed of the controller's choices.
    pub seed: u64,
    /// Chance of each lie, in 1/1024: per completion, per Identify data
    /// structure, per register read, per CQ head doorbell write (inline)
    /// and per device-thread pass that did work (threaded).
    pub rate: u32,
    /// Lie in completions (and post some nobody asked for).
    pub completions: bool,
    /// Lie in Identify data.
    pub identify: bool,
    /// Lie in reads of CAP, VS and CSTS.
    pub registers: bool,
}

const COMPLETIONS: u32 = 1;
const IDENTIFY: u32 = 2;
const REGISTERS: u32 = 4;

/// The hostile mode's state in the model: off (`on` = 0) costs one relaxed
/// load per completion, Identify and register read.
#[derive(Debug, Default)]
pub(super) struct Hostile {
    on: AtomicU32,
    rate: AtomicU32,
    rng: AtomicU64,
    acts: AtomicU64,
}

/// splitmix64's increment.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A completion entry as the controller is about to write it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawCqe {
    pub(super) dw0: u32,
    pub(super) dw2: u32,
    /// CID and status, phase bit included.
    pub(super) dw3: u32,
}

impl Hostile {
    /// Turn hostile mode on (again, with a new seed).
    pub(super) fn arm(&self, h: Hostility) {
        self.rng.store(h.seed, Ordering::Relaxed);
        self.rate.store(h.rate.min(1024), Ordering::Relaxed);
        let on = if h.completions { COMPLETIONS } else { 0 }
            | if h.identify { IDENTIFY } else { 0 }
            | if h.registers { REGISTERS } else { 0 };
        self.on.store(on, Ordering::Release);
    }

    /// Turn it off.
    pub(super) fn disarm(&self) {
        self.on.store(0, Ordering::Release);
    }

    /// Lies told so far.
    pub(super) fn acts(&self) -> u64 {
        self.acts.load(Ordering::Relaxed)
    }

    fn next(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&self, n: u64) -> u64 {
        self.next() % n
    }

    /// Whether to lie now about `what`; counts the lie.
    #[inline]
    fn lies_about(&self, what: u32) -> bool {
        if self.on.load(Ordering::Relaxed) & what == 0 {
            return false;
        }
        let lie = self.below(1024) < u64::from(self.rate.load(Ordering::Relaxed));
        if lie {
            self.acts.fetch_add(1, Ordering::Relaxed);
        }
        lie
    }

    /// Whether completions are hostile at all (for the device thread).
    pub(super) fn completions_on(&self) -> bool {
        self.on.load(Ordering::Relaxed) & COMPLETIONS != 0
    }

    /// A register read of `offset` that the truth says is `value`.
    #[inline]
    pub(super) fn register(&self, offset: usize, value: u32) -> u32 {
        let lied_about = matches!(offset, reg::CAP | reg::VS | reg::CSTS) || offset == reg::CAP + 4;
        if !lied_about || !self.lies_about(REGISTERS) {
            return value;
        }
        match self.below(4) {
            0 => u32::MAX,
            1 if offset == reg::CSTS => value ^ csts::RDY.bit(),
            2 if offset == reg::CSTS => value | csts::CFS.bit(),
            _ => self.next() as u32,
        }
    }

    /// Identify data of CNS `cns_value`, about to be copied to the host.
    pub(super) fn identify(&self, cns_value: u32, d: &mut [u8; cns::DATA_SIZE]) {
        if !self.lies_about(IDENTIFY) {
            return;
        }
        let put = |d: &mut [u8; cns::DATA_SIZE], at: usize, v: &[u8]| {
            d[at..at + v.len()].copy_from_slice(v);
        };
        match (cns_value, self.below(4)) {
            (_, 0) => d.iter_mut().for_each(|b| *b = self.next() as u8),
            (cns::CONTROLLER, 1) => {
                let nn = [u32::MAX, u32::MAX - 1, self.next() as u32][self.below(3) as usize];
                put(d, id_ctrl::NN, &nn.to_le_bytes());
            }
            (cns::CONTROLLER, 2) => {
                d[id_ctrl::MDTS] = [0, 255, self.next() as u8][self.below(3) as usize]
            }
            (cns::NAMESPACE, 1) => {
                let index = self.below(16) as usize;
                let lbads = [0, 8, 31, 32, 63, 64, 255, self.next() as u8][self.below(8) as usize];
                d[id_ns::FLBAS] = index as u8;
                d[id_ns::NLBAF] = self.next() as u8;
                let entry =
                    id_ns::LBAF_LBADS.value(u32::from(lbads)) | (self.next() as u32 & 0xffff);
                put(d, id_ns::LBAF0 + 4 * index, &entry.to_le_bytes());
            }
            (cns::NAMESPACE, 2) => {
                for at in [id_ns::NSZE, id_ns::NCAP, id_ns::NUSE] {
                    let v = [0, u64::MAX, 1 << 63, self.next()][self.below(4) as usize];
                    put(d, at, &v.to_le_bytes());
                }
            }
            (cns::ACTIVE_NAMESPACES, 1) => {
                // Unsorted, repeated, broadcast and zero NSIDs.
                let n = self.below(cns::NAMESPACE_LIST_ENTRIES as u64) as usize;
                for slot in 0..n {
                    let nsid = [0, 1, u32::MAX, self.next() as u32][self.below(4) as usize];
                    put(d, slot * 4, &nsid.to_le_bytes());
                }
            }
            _ => {
                let at = self.below(cns::DATA_SIZE as u64) as usize;
                d[at] ^= 1 << self.below(8);
            }
        }
    }

    /// A completion about to be posted; returns whether to post it twice.
    #[inline]
    pub(super) fn completion(&self, e: &mut RawCqe) -> bool {
        if !self.lies_about(COMPLETIONS) {
            return false;
        }
        match self.below(8) {
            0 => {
                let cid = self.next() as u32;
                e.dw3 = cqe::dw3::CID.set(e.dw3, cid);
            }
            1 => {
                // A neighbour's CID: likely one in flight.
                let cid = cqe::dw3::CID.get(e.dw3) ^ (1 + self.below(3) as u32);
                e.dw3 = cqe::dw3::CID.set(e.dw3, cid);
            }
            2 => e.dw3 ^= cqe::dw3::P.bit(),
            3 => {
                // Random SC, SCT, CRD, More and DNR; the phase stays.
                let p = e.dw3 & cqe::dw3::P.bit();
                let status = (self.next() as u32) & 0xfffe_0000;
                e.dw3 = (e.dw3 & 0xffff) | status | p;
            }
            4 => e.dw2 = cqe::dw2::SQHD.set(e.dw2, self.next() as u32),
            5 => e.dw2 = cqe::dw2::SQID.set(e.dw2, self.next() as u32),
            6 => return true,
            _ => e.dw0 = self.next() as u32,
        }
        false
    }

    /// A completion nobody asked for, for a queue whose entries carry
    /// phase `phase` now: a random CID below `cids` (likely one in flight)
    /// or any, random status mostly success, random DW2.
    pub(super) fn unasked(&self, phase: bool, cids: u32) -> RawCqe {
        let cid = if self.below(2) == 0 {
            self.below(u64::from(cids.max(1))) as u32
        } else {
            self.next() as u32
        };
        let status = if self.below(2) == 0 {
            0
        } else {
            (self.next() as u32) & 0xfffe_0000
        };
        let phase = phase ^ (self.below(8) == 0);
        RawCqe {
            dw0: self.next() as u32,
            dw2: self.next() as u32,
            dw3: cqe::dw3::CID.value(cid & 0xffff) | status | cqe::dw3::P.value(u32::from(phase)),
        }
    }

    /// Whether to post an unasked completion now; counts it.
    pub(super) fn posts_unasked(&self) -> bool {
        self.lies_about(COMPLETIONS)
    }

    /// A random number below `n` (choices of the engine in hostile mode).
    pub(super) fn pick(&self, n: u64) -> u64 {
        self.below(n.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armed(seed: u64, rate: u32) -> Hostile {
        let h = Hostile::default();
        h.arm(Hostility {
            seed,
            rate,
            completions: true,
            identify: true,
            registers: true,
        });
        h
    }

    #[test]
    fn same_seed_same_lies() {
        let (a, b) = (armed(7, 512), armed(7, 512));
        let draw = |h: &Hostile| {
            (0..100)
                .map(|_| h.register(reg::CSTS, 1))
                .collect::<Vec<_>>()
        };
        let first = draw(&a);
        assert_eq!(first, draw(&b));
        assert_ne!(first, draw(&armed(8, 512)));
        assert!(first.contains(&1) && first.iter().any(|&v| v != 1));
    }

    #[test]
    fn rate_zero_and_off_tell_the_truth() {
        let h = armed(1, 0);
        let mut e = RawCqe {
            dw0: 1,
            dw2: 2,
            dw3: 3,
        };
        for _ in 0..1000 {
            assert_eq!(h.register(reg::CAP, 5), 5);
            assert!(!h.completion(&mut e));
        }
        assert_eq!((e.dw0, e.dw2, e.dw3, h.acts()), (1, 2, 3, 0));
        let h = armed(1, 1024);
        h.disarm();
        assert_eq!(h.register(reg::CSTS, 1), 1);
        // Registers other than CAP, VS and CSTS never lie.
        let h = armed(1, 1024);
        assert_eq!(h.register(reg::CC, 9), 9);
        assert_ne!(
            (0..50)
                .map(|_| h.register(reg::VS, 9))
                .filter(|&v| v != 9)
                .count(),
            0
        );
    }
}
