//! Command slots: the state a queue keeps for every command identifier
//! (CID) it may have outstanding, and the free list of CIDs.
//!
//! A CID is outstanding from the moment its entry is filled until its
//! completion is consumed, so a completion can be checked against it: a
//! completion for a CID that is free, or filled but not yet announced by a
//! doorbell, is a controller bug. A command that timed out keeps its CID
//! until its completion arrives (if ever): a late completion must not be
//! taken for a new command's.
//!
//! Nothing is done per command at the doorbell: a command is stamped when
//! it is filled with the last doorbell's stamp, one number that is both its
//! submit time (see [`STAMP_SLACK`]) and what tells whether a doorbell has
//! announced it (a later doorbell has a larger stamp).
#![forbid(unsafe_code)]

use dma::DeviceBuf;
use std::time::{Duration, Instant};

/// How much earlier than its doorbell a command's submit time may be. A
/// command is stamped when it is filled with the time of the previous
/// doorbell (no clock read per command); a doorbell that comes more than
/// this after the previous one restamps the commands it announces with its
/// own time. So a timeout never fires more than this early, and under load
/// (doorbells microseconds apart) no command is restamped. (A doorbell's
/// stamp is at least one nanosecond above the previous one's, so a submit
/// time may also be a few nanoseconds late.)
pub(crate) const STAMP_SLACK: Duration = Duration::from_millis(10);

/// Who waits for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The asynchronous interface: the completion goes to the user's poll
    /// callback with the user's tag and buffer.
    User,
    /// The driver itself (admin commands, the blocking helpers); the tag is
    /// the generation of the call that submitted it.
    Internal,
}

/// The `stamp` of a free slot: above every doorbell's stamp (nanoseconds
/// since the slots were made, capped at [`MAX_STAMP`]), so a free slot is
/// never in flight.
const FREE: u64 = u64::MAX;

/// The largest doorbell stamp (some 290 years).
const MAX_STAMP: u64 = u64::MAX / 2;

/// One cache line per slot: a command's fill and retire touch one line,
/// and a slot's index is its CID shifted (42 bytes of fields).
#[derive(Debug)]
#[repr(align(64))]
struct Slot {
    owner: Owner,
    tag: u64,
    buf: Option<DeviceBuf>,
    /// The command's opcode, for naming it in a timeout (one byte, not the
    /// name: the name is looked up only when a command times out).
    opcode: u8,
    /// [`FREE`], or the stamp of the last doorbell before the command was
    /// filled (or of its own, if that restamped it): its submit time, in
    /// nanoseconds since the slots' `epoch` (the doorbell time of the
    /// command, or up to [`STAMP_SLACK`] before). It is in flight once a
    /// doorbell has announced it, when `stamp` is below the slots' `stamp`
    /// (every doorbell's is above the previous one's). One comparison tells
    /// free, filled and in flight apart, and one store per command keeps
    /// both.
    stamp: u64,
}

/// A command taken back from its slot when its completion arrived.
#[derive(Debug)]
pub(crate) struct Finished {
    pub owner: Owner,
    pub tag: u64,
    pub buf: Option<DeviceBuf>,
}

/// The slots of one queue: `count` CIDs, 0..count.
#[derive(Debug)]
pub(crate) struct CommandSlots {
    slots: Vec<Slot>,
    /// Free CIDs (a stack: the most recently freed is reused first, its slot
    /// still in cache). Capacity `count`, so pushes never allocate.
    free: Vec<u16>,
    /// Where stamps count from.
    epoch: Instant,
    /// The last doorbell's stamp (nanoseconds since `epoch`, above the
    /// previous doorbell's): the submit time of commands filled now, and
    /// above the stamp of every command it announced.
    stamp: u64,
    user_in_flight: usize,
}

impl CommandSlots {
    /// Slots for CIDs 0..count (count <= 65535).
    pub fn new(count: u16) -> Self {
        CommandSlots {
            slots: (0..count)
                .map(|_| Slot {
                    owner: Owner::Internal,
                    tag: 0,
                    buf: None,
                    opcode: 0,
                    stamp: FREE,
                })
                .collect(),
            free: (0..count).rev().collect(),
            epoch: Instant::now(),
            stamp: 0,
            user_in_flight: 0,
        }
    }

    /// Free CIDs.
    #[inline]
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Outstanding commands (filled or in flight), including timed-out ones.
    #[inline]
    pub fn outstanding(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Outstanding commands of the asynchronous interface.
    #[inline]
    pub fn user_in_flight(&self) -> usize {
        self.user_in_flight
    }

    /// Take a free CID (None: all are outstanding).
    #[inline]
    pub fn alloc(&mut self) -> Option<u16> {
        self.free.pop()
    }

    /// Give back a CID taken with [`Self::alloc`] whose command was not written.
    #[inline]
    pub fn unalloc(&mut self, cid: u16) {
        self.free_cid(cid);
    }

    /// Put `cid`, taken from the free list, back on it. The list has room
    /// for every CID, so it never grows: the test tells the compiler so,
    /// and the push has no reallocating call (whose possibility made the
    /// retire path keep the command's buffer on the stack around it).
    #[inline]
    fn free_cid(&mut self, cid: u16) {
        debug_assert!(self.free.len() < self.free.capacity());
        if self.free.len() < self.free.capacity() {
            self.free.push(cid);
        }
    }

    /// Record the command written with `cid`. `buf`, if any, is the
    /// command's data buffer; it comes back with the completion.
    #[inline]
    pub fn fill(&mut self, cid: u16, owner: Owner, tag: u64, opcode: u8, buf: Option<DeviceBuf>) {
        let s = &mut self.slots[cid as usize];
        debug_assert_eq!(s.stamp, FREE);
        // A free slot holds no buffer (`retire` took it): the old value is
        // None, and forgetting it spares a drop check per command.
        let old = std::mem::replace(&mut s.buf, buf);
        debug_assert!(old.is_none());
        std::mem::forget(old);
        s.owner = owner;
        s.tag = tag;
        s.opcode = opcode;
        s.stamp = self.stamp;
        self.user_in_flight += usize::from(owner == Owner::User);
    }

    /// The doorbell for every filled command is about to be rung at `now`:
    /// they are in flight from now on. Constant time unless the last
    /// doorbell was more than [`STAMP_SLACK`] ago; then the commands it
    /// announces get `now` as their submit time (a scan of the slots, after
    /// an idle spell).
    #[inline]
    pub fn announce(&mut self, now: Instant) {
        let ns = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos())
            .map_or(MAX_STAMP, |ns| ns.min(MAX_STAMP));
        self.stamp = if ns.saturating_sub(self.stamp) > STAMP_SLACK.as_nanos() as u64 {
            self.restamp(ns)
        } else {
            // Above the last stamp even if the clock did not move (or stopped
            // at MAX_STAMP), so the commands filled since are in flight.
            ns.max(self.stamp + 1)
        };
    }

    /// Give the commands filled since the last doorbell (their stamp is
    /// its stamp) `ns` as their submit time; returns the new doorbell's
    /// stamp, above it.
    #[cold]
    #[inline(never)]
    fn restamp(&mut self, ns: u64) -> u64 {
        let last = self.stamp;
        for s in &mut self.slots {
            if s.stamp == last {
                s.stamp = ns;
            }
        }
        ns + 1
    }

    /// Whether `s` is in flight: filled and announced.
    #[inline]
    fn in_flight(&self, s: &Slot) -> bool {
        s.stamp < self.stamp
    }

    /// The submit time of a command stamped `stamp`.
    fn time_of(&self, stamp: u64) -> Instant {
        self.epoch + Duration::from_nanos(stamp)
    }

    /// Whether a completion may name `cid`: it is in flight.
    #[inline]
    pub fn is_in_flight(&self, cid: u16) -> bool {
        self.slots
            .get(cid as usize)
            .is_some_and(|s| self.in_flight(s))
    }

    /// Free the in-flight `cid` (checked with [`Self::is_in_flight`]) and
    /// return what it held.
    #[inline]
    pub fn retire(&mut self, cid: u16) -> Finished {
        debug_assert!(self.is_in_flight(cid));
        let s = &mut self.slots[cid as usize];
        s.stamp = FREE;
        self.user_in_flight -= usize::from(s.owner == Owner::User);
        let done = Finished {
            owner: s.owner,
            tag: s.tag,
            buf: s.buf.take(),
        };
        self.free_cid(cid);
        done
    }

    /// Undo [`Self::fill`] of a command of the asynchronous interface that
    /// was not written after all (no doorbell announced it): its CID is
    /// free again and its buffer comes back.
    pub fn unfill(&mut self, cid: u16) -> DeviceBuf {
        let s = &mut self.slots[cid as usize];
        debug_assert!(s.stamp == self.stamp && s.owner == Owner::User);
        s.stamp = FREE;
        let buf = s.buf.take();
        self.user_in_flight -= 1;
        self.free_cid(cid);
        // `fill` was given the buffer just before.
        buf.expect("submit_buf filled the slot with its buffer")
    }

    /// The longest-outstanding in-flight command of `owner`: its opcode and submit time.
    pub fn oldest(&self, owner: Owner) -> Option<(u8, Instant)> {
        self.slots
            .iter()
            .filter(|s| self.in_flight(s) && s.owner == owner)
            .min_by_key(|s| s.stamp)
            .map(|s| (s.opcode, self.time_of(s.stamp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_cycle_through_fill_announce_retire() {
        let mut s = CommandSlots::new(3);
        let a = s.alloc().unwrap();
        let b = s.alloc().unwrap();
        assert_ne!(a, b);
        s.fill(a, Owner::User, 10, 0x02, None);
        s.fill(b, Owner::Internal, 1, 0x00, None);
        assert_eq!(s.user_in_flight(), 1);
        assert_eq!(s.outstanding(), 2);
        // Not announced yet: a completion for it would be bogus.
        assert!(!s.is_in_flight(a));
        s.announce(Instant::now());
        assert!(s.is_in_flight(a) && s.is_in_flight(b));
        assert!(!s.is_in_flight(2) && !s.is_in_flight(3) && !s.is_in_flight(u16::MAX));
        assert_eq!(s.oldest(Owner::User).unwrap().0, 0x02);
        assert_eq!(s.oldest(Owner::Internal).unwrap().0, 0x00);
        let f = s.retire(a);
        assert_eq!((f.owner, f.tag), (Owner::User, 10));
        assert!(s.oldest(Owner::User).is_none());
        assert_eq!(s.user_in_flight(), 0);
        assert!(!s.is_in_flight(a));
        assert_eq!(s.free_count(), 2);
        let c = s.alloc().unwrap();
        s.unalloc(c);
        assert_eq!(s.free_count(), 2);
        // Filled after the doorbell: not in flight until the next one.
        let d = s.alloc().unwrap();
        s.fill(d, Owner::User, 11, 0x01, None);
        assert!(!s.is_in_flight(d));
        assert!(s.is_in_flight(b), "b stays in flight");
        s.announce(Instant::now());
        assert!(s.is_in_flight(d));
    }

    #[test]
    fn submit_times_are_the_doorbells_within_the_slack() {
        let mut s = CommandSlots::new(4);
        let t0 = Instant::now();
        s.announce(t0);
        // A doorbell soon after the last: the command keeps the stamp it
        // got when filled, the last doorbell's time.
        let a = s.alloc().unwrap();
        s.fill(a, Owner::User, 1, 0x02, None);
        s.announce(t0 + STAMP_SLACK / 2);
        assert_eq!(s.oldest(Owner::User), Some((0x02, t0)));
        // A doorbell after an idle spell: its commands get its time, and
        // those already in flight keep theirs.
        let b = s.alloc().unwrap();
        s.fill(b, Owner::Internal, 1, 0x06, None);
        let t1 = t0 + STAMP_SLACK * 3;
        s.announce(t1);
        assert_eq!(s.oldest(Owner::Internal), Some((0x06, t1)));
        assert_eq!(s.oldest(Owner::User), Some((0x02, t0)));
    }

    #[test]
    fn doorbells_at_one_instant_still_announce_what_was_filled_between() {
        let mut s = CommandSlots::new(3);
        let t = Instant::now();
        s.announce(t);
        let a = s.alloc().unwrap();
        s.fill(a, Owner::User, 1, 0x02, None);
        assert!(!s.is_in_flight(a));
        // The clock has not moved: the doorbell is after the fill all the same.
        s.announce(t);
        assert!(s.is_in_flight(a));
        let b = s.alloc().unwrap();
        s.fill(b, Owner::User, 2, 0x01, None);
        assert!(!s.is_in_flight(b));
        s.announce(t);
        assert!(s.is_in_flight(a) && s.is_in_flight(b));
        // Submit times a nanosecond apart at most, none before the doorbell.
        let (op, when) = s.oldest(Owner::User).unwrap();
        assert_eq!(op, 0x02);
        assert!(
            when >= t && when - t <= Duration::from_nanos(1),
            "{:?}",
            when - t
        );
        s.retire(a);
        let (op, when) = s.oldest(Owner::User).unwrap();
        assert_eq!(op, 0x01);
        assert!(
            when > t && when - t <= Duration::from_nanos(2),
            "{:?}",
            when - t
        );
    }
}
