//! `pair:NAME`: two ports of one process, cross-connected.
//!
//! Flow control: [`Wire::peer_ready`] says no once the queue towards the
//! peer has fewer than [`SENDERS_HEADROOM`] free places. A port with
//! `pause=on` asks before each frame, and the TX engines of one port that
//! may ask at the same moment are at most its queues (inline ports whose
//! doorbells several threads write); each sends at most one frame after a
//! yes, so the queue never overflows and nothing is dropped.
#![forbid(unsafe_code)]

use super::queue::{FrameQueue, QUEUE_FRAMES};
use super::{Wire, WireError, MAX_FRAME};
use crate::DeviceWaker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Free places kept for TX engines that ask [`Wire::peer_ready`] at once:
/// the most queues a port has (128 on the 82599).
pub const SENDERS_HEADROOM: usize = 128;

/// The cable between the two ends: one queue per direction.
struct Link {
    /// Frames travelling from end A to end B.
    a_to_b: FrameQueue,
    /// Frames travelling from end B to end A.
    b_to_a: FrameQueue,
    /// The device threads of the ports on end A and end B, woken when a
    /// frame arrives for them or room frees up towards their peer.
    waker_a: OnceLock<Arc<DeviceWaker>>,
    waker_b: OnceLock<Arc<DeviceWaker>>,
}

impl Link {
    fn new() -> Link {
        Link {
            a_to_b: FrameQueue::new(QUEUE_FRAMES),
            b_to_a: FrameQueue::new(QUEUE_FRAMES),
            waker_a: OnceLock::new(),
            waker_b: OnceLock::new(),
        }
    }
}

/// A name in the registry: the link (weak, so dropping both ends frees the
/// name) and whether end B has been handed out.
struct Entry {
    link: Weak<Link>,
    b_taken: bool,
}

/// The process-wide registry of pair names.
fn registry() -> &'static Mutex<HashMap<String, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// One end of a `pair:NAME` wire.
pub struct PairWire {
    link: Arc<Link>,
    name: String,
    is_b: bool,
}

impl PairWire {
    /// Open an end of the pair `name`: end A if the name is free (or both
    /// its ends are gone), end B if only A is open, an error if both are.
    pub fn open(name: &str) -> Result<PairWire, WireError> {
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = reg.get_mut(name) {
            if let Some(link) = entry.link.upgrade() {
                if entry.b_taken {
                    return Err(WireError::PairInUse(name.to_string()));
                }
                entry.b_taken = true;
                return Ok(PairWire {
                    link,
                    name: name.to_string(),
                    is_b: true,
                });
            }
        }
        // Drop entries whose ends are all gone, so the map stays small.
        reg.retain(|_, e| e.link.strong_count() > 0);
        let link = Arc::new(Link::new());
        reg.insert(
            name.to_string(),
            Entry {
                link: Arc::downgrade(&link),
                b_taken: false,
            },
        );
        Ok(PairWire {
            link,
            name: name.to_string(),
            is_b: false,
        })
    }

    /// Two connected ends without a registry name (tests, benchmarks).
    pub fn connected() -> (PairWire, PairWire) {
        let link = Arc::new(Link::new());
        let end = |is_b| PairWire {
            link: link.clone(),
            name: String::new(),
            is_b,
        };
        (end(false), end(true))
    }

    /// Whether this is end B (the second opened).
    pub fn is_end_b(&self) -> bool {
        self.is_b
    }

    /// Frames waiting to be received on this end.
    pub fn pending(&self) -> usize {
        self.incoming().len()
    }

    #[inline]
    fn outgoing(&self) -> &FrameQueue {
        if self.is_b {
            &self.link.b_to_a
        } else {
            &self.link.a_to_b
        }
    }

    /// The waker of the port on this end (`peer`: on the other end).
    #[inline]
    fn waker(&self, peer: bool) -> Option<&Arc<DeviceWaker>> {
        if self.is_b != peer {
            self.link.waker_b.get()
        } else {
            self.link.waker_a.get()
        }
    }

    /// After a receive: wake the peer if this frame made room it waits
    /// for; the frame's length.
    #[inline]
    fn received(&self, got: Option<(usize, usize)>) -> Option<usize> {
        let (n, before) = got?;
        if before + SENDERS_HEADROOM >= self.incoming().capacity() {
            // The peer's `peer_ready` said no before this frame left: it
            // may be holding frames and asleep.
            if let Some(w) = self.waker(true) {
                w.wake();
            }
        }
        Some(n)
    }

    #[inline]
    fn incoming(&self) -> &FrameQueue {
        if self.is_b {
            &self.link.a_to_b
        } else {
            &self.link.b_to_a
        }
    }
}

impl Wire for PairWire {
    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        if self.outgoing().push(frame) {
            if let Some(w) = self.waker(true) {
                w.wake();
            }
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let got = self.incoming().pop_counted(buf);
        Ok(self.received(got))
    }

    fn send_buf(&self, buf: &mut Box<[u8]>, len: usize) -> std::io::Result<()> {
        if self.outgoing().push_buf(buf, len) {
            if let Some(w) = self.waker(true) {
                w.wake();
            }
        }
        Ok(())
    }

    fn recv_buf(&self, buf: &mut Box<[u8]>) -> std::io::Result<Option<usize>> {
        let got = self.incoming().pop_buf(buf, MAX_FRAME);
        Ok(self.received(got))
    }

    fn describe(&self) -> String {
        let end = if self.is_b { "B" } else { "A" };
        if self.name.is_empty() {
            format!("pair end {end}")
        } else {
            format!("pair:{} end {end}", self.name)
        }
    }

    fn peer_ready(&self) -> bool {
        self.outgoing().len() + SENDERS_HEADROOM < self.outgoing().capacity()
    }

    fn drops(&self) -> u64 {
        self.outgoing().drops()
    }

    /// The first port on each end registers (a wire end serves one port).
    fn set_waker(&self, waker: Arc<DeviceWaker>) -> bool {
        let slot = if self.is_b {
            &self.link.waker_b
        } else {
            &self.link.waker_a
        };
        slot.set(waker).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::open_wire;

    #[test]
    fn two_ends_are_cross_connected() {
        let a = open_wire("pair:wire-test-cross").unwrap();
        let b = open_wire("pair:wire-test-cross").unwrap();
        assert_eq!(a.describe(), "pair:wire-test-cross end A");
        assert_eq!(b.describe(), "pair:wire-test-cross end B");
        a.send(b"from a").unwrap();
        b.send(b"from b").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(b.recv(&mut buf).unwrap(), Some(6));
        assert_eq!(&buf[..6], b"from a");
        assert_eq!(a.recv(&mut buf).unwrap(), Some(6));
        assert_eq!(&buf[..6], b"from b");
        // Nothing echoes back to the sender.
        assert_eq!(a.recv(&mut buf).unwrap(), None);
        assert_eq!(b.recv(&mut buf).unwrap(), None);
    }

    #[test]
    fn third_open_fails_and_name_is_free_after_both_ends_drop() {
        let a = open_wire("pair:wire-test-reuse").unwrap();
        let b = open_wire("pair:wire-test-reuse").unwrap();
        let e = open_wire("pair:wire-test-reuse").err().expect("third end");
        assert!(matches!(e, WireError::PairInUse(_)));
        assert!(e.to_string().contains("another name"), "{e}");
        drop(a);
        drop(b);
        let a2 = open_wire("pair:wire-test-reuse").unwrap();
        assert_eq!(a2.describe(), "pair:wire-test-reuse end A");
    }

    #[test]
    fn stalled_receiver_makes_counted_drops() {
        let (a, b) = PairWire::connected();
        for _ in 0..QUEUE_FRAMES + 10 {
            a.send(&[0u8; 60]).unwrap();
        }
        assert_eq!(a.drops(), 10);
        assert_eq!(b.drops(), 0);
        assert_eq!(b.pending(), QUEUE_FRAMES);
    }

    /// Senders that send only after a yes from `peer_ready` never overflow
    /// the queue, even when every queue of a port asked at the same moment.
    #[test]
    fn peer_ready_leaves_room_for_every_sender_that_asked() {
        let (a, b) = PairWire::connected();
        let mut sent = 0;
        while a.peer_ready() {
            a.send(&[1u8; 60]).unwrap();
            sent += 1;
        }
        assert_eq!(sent, QUEUE_FRAMES - SENDERS_HEADROOM);
        // All of them had asked just before the last yes.
        for _ in 0..SENDERS_HEADROOM {
            a.send(&[2u8; 60]).unwrap();
        }
        assert_eq!(a.drops(), 0);
        assert_eq!(b.pending(), QUEUE_FRAMES);
        let mut buf = [0u8; 64];
        b.recv(&mut buf).unwrap();
        assert!(!a.peer_ready(), "one frame out is not room for all senders");
    }
}
