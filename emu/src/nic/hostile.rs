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

use super::queue_state::{QueueShared, ACTIVE};
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
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small local splitmix64 stream, for the draws of one act.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// Uniform-enough in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(super) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// The hostile mode's state in the model: off unless `on`.
#[derive(Debug, Default)]
pub(crate) struct Hostile {
    pub(super) on: AtomicBool,
    pub(super) rx: AtomicBool,
    pub(super) tx: AtomicBool,
    pub(super) registers: AtomicBool,
    /// The splitmix64 state.
    pub(super) state: AtomicU64,
    /// While set, TX descriptors with RS are not written back.
    pub(super) tx_never_dd: AtomicBool,
    /// Acts done, for reports.
    pub(super) acts: AtomicU64,
}

impl Hostile {
    /// A fresh local stream, split off the shared one.
    pub(super) fn split(&self) -> Rng {
        Rng(mix(self.state.fetch_add(GAMMA, Ordering::Relaxed)))
    }
}

/// A length chosen to hurt a driver with `buf`-byte buffers.
pub(super) fn evil_len(r: &mut Rng, buf: usize) -> u16 {
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
pub(super) fn pick_active(r: &mut Rng, queues: &[QueueShared]) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nic::{EmuNic, NicModelConfig};
    use crate::wire::open_wire;
    use drivers::nic::Chip;
    use drivers::regs::RegisterAccess;
    use spec::nic::igb;
    use spec::nic::queue::RxReg;

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
