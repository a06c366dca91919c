//! Command slots: the state a queue keeps for every command identifier
//! (CID) it may have outstanding, and the free list of CIDs.
//!
//! A CID is outstanding from the moment its entry is filled until its
//! completion is consumed, so a completion can be checked against it: a
//! completion for a CID that is free, or filled but not yet announced by a
//! doorbell, is a controller bug. A command that timed out keeps its CID
//! until its completion arrives (if ever): a late completion must not be
//! taken for a new command's.
#![forbid(unsafe_code)]

use dma::DeviceBuf;
use std::time::Instant;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// Written into the submission queue, doorbell not yet rung.
    Filled,
    /// Announced to the controller.
    InFlight,
}

#[derive(Debug)]
struct Slot {
    state: State,
    owner: Owner,
    tag: u64,
    buf: Option<DeviceBuf>,
    /// The command's opcode, for naming it in a timeout (one byte, not the
    /// name: the name is looked up only when a command times out).
    opcode: u8,
    submitted: Instant,
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
    /// CIDs filled since the last doorbell.
    filled: Vec<u16>,
    user_in_flight: usize,
}

impl CommandSlots {
    /// Slots for CIDs 0..count (count <= 65535).
    pub fn new(count: u16) -> Self {
        let now = Instant::now();
        CommandSlots {
            slots: (0..count)
                .map(|_| Slot {
                    state: State::Free,
                    owner: Owner::Internal,
                    tag: 0,
                    buf: None,
                    opcode: 0,
                    submitted: now,
                })
                .collect(),
            free: (0..count).rev().collect(),
            filled: Vec::with_capacity(count as usize),
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
        self.free.push(cid);
    }

    /// Record the command written with `cid`. `buf`, if any, is the
    /// command's data buffer; it comes back with the completion.
    #[inline]
    pub fn fill(&mut self, cid: u16, owner: Owner, tag: u64, opcode: u8, buf: Option<DeviceBuf>) {
        let s = &mut self.slots[cid as usize];
        debug_assert_eq!(s.state, State::Free);
        debug_assert!(s.buf.is_none());
        s.state = State::Filled;
        s.owner = owner;
        s.tag = tag;
        s.opcode = opcode;
        s.buf = buf;
        self.user_in_flight += usize::from(owner == Owner::User);
        self.filled.push(cid);
    }

    /// The doorbell for every filled command is about to be rung at `now`.
    #[inline]
    pub fn announce(&mut self, now: Instant) {
        for &cid in &self.filled {
            let s = &mut self.slots[cid as usize];
            s.state = State::InFlight;
            s.submitted = now;
        }
        self.filled.clear();
    }

    /// Whether a completion may name `cid`: it is in flight.
    #[inline]
    pub fn is_in_flight(&self, cid: u16) -> bool {
        self.slots
            .get(cid as usize)
            .is_some_and(|s| s.state == State::InFlight)
    }

    /// Free the in-flight `cid` (checked with [`Self::is_in_flight`]) and
    /// return what it held.
    #[inline]
    pub fn retire(&mut self, cid: u16) -> Finished {
        let s = &mut self.slots[cid as usize];
        debug_assert_eq!(s.state, State::InFlight);
        s.state = State::Free;
        self.user_in_flight -= usize::from(s.owner == Owner::User);
        let done = Finished {
            owner: s.owner,
            tag: s.tag,
            buf: s.buf.take(),
        };
        self.free.push(cid);
        done
    }

    /// The longest-outstanding in-flight command of `owner`: its opcode and submit time.
    pub fn oldest(&self, owner: Owner) -> Option<(u8, Instant)> {
        self.slots
            .iter()
            .filter(|s| s.state == State::InFlight && s.owner == owner)
            .min_by_key(|s| s.submitted)
            .map(|s| (s.opcode, s.submitted))
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
    }
}
