//! A bounded frame queue: the "cable" inside `pair` and `loop` wires.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Frames a queue holds before it drops: enough for a few bursts of a
/// 512-descriptor ring, small enough that a receiver that never polls costs
/// at most this many frames of memory.
pub(super) const QUEUE_FRAMES: usize = 1024;

/// The slots of a [`FrameQueue`]: a ring of byte vectors that keep their
/// capacity, so a queue in steady state copies frames but never allocates.
struct Slots {
    frames: Vec<Vec<u8>>,
    head: usize,
    len: usize,
}

/// A bounded first-in first-out queue of frames. A push to a full queue
/// drops the frame and counts it, as a switch port with a full buffer does:
/// a stalled receiver costs frames, never unbounded memory.
pub(super) struct FrameQueue {
    slots: Mutex<Slots>,
    /// Slots, fixed at creation (read without the lock).
    capacity: usize,
    /// Frames waiting, mirrored from the slots at every change so that
    /// [`Self::len`] (a sender's flow-control question, asked per frame)
    /// takes no lock.
    waiting: AtomicUsize,
    drops: AtomicU64,
}

impl FrameQueue {
    /// An empty queue of `capacity` frames (at least 1).
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        FrameQueue {
            slots: Mutex::new(Slots {
                frames: (0..capacity).map(|_| Vec::new()).collect(),
                head: 0,
                len: 0,
            }),
            capacity,
            waiting: AtomicUsize::new(0),
            drops: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves the ring consistent (every
        // update is a plain index or length change after the copy).
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append a copy of `frame`; false (and counted) when the queue is full.
    pub(super) fn push(&self, frame: &[u8]) -> bool {
        let mut s = self.lock();
        let cap = s.frames.len();
        if s.len == cap {
            drop(s);
            self.drops.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let i = (s.head + s.len) % cap;
        let slot = &mut s.frames[i];
        slot.clear();
        slot.extend_from_slice(frame);
        s.len += 1;
        self.waiting.store(s.len, Ordering::Release);
        true
    }

    /// Take the oldest frame into `buf`: its length, truncated to
    /// `buf.len()` (datagram semantics); None when empty.
    pub(super) fn pop(&self, buf: &mut [u8]) -> Option<usize> {
        self.pop_counted(buf).map(|(n, _)| n)
    }

    /// [`Self::pop`], and the frames that were waiting before it (so a
    /// receiver can tell when it made room for a sender held by flow
    /// control).
    pub(super) fn pop_counted(&self, buf: &mut [u8]) -> Option<(usize, usize)> {
        let mut s = self.lock();
        let before = s.len;
        if before == 0 {
            return None;
        }
        let head = s.head;
        let frame = &s.frames[head];
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        s.head = (head + 1) % s.frames.len();
        s.len -= 1;
        self.waiting.store(s.len, Ordering::Release);
        Some((n, before))
    }

    /// Frames the queue holds at most.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames waiting.
    pub(super) fn len(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Frames dropped because the queue was full.
    pub(super) fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_bounded_with_drop_count() {
        let q = FrameQueue::new(2);
        assert!(q.push(&[1, 2, 3]));
        assert!(q.push(&[4]));
        assert!(!q.push(&[5]));
        assert_eq!(q.drops(), 1);
        assert_eq!(q.len(), 2);
        let mut buf = [0u8; 8];
        assert_eq!(q.pop(&mut buf), Some(3));
        assert_eq!(&buf[..3], &[1, 2, 3]);
        assert!(q.push(&[6, 7]));
        assert_eq!(q.pop(&mut buf), Some(1));
        assert_eq!(buf[0], 4);
        assert_eq!(q.pop(&mut buf), Some(2));
        assert_eq!(&buf[..2], &[6, 7]);
        assert_eq!(q.pop(&mut buf), None);
    }

    #[test]
    fn long_frame_is_truncated_to_the_buffer() {
        let q = FrameQueue::new(4);
        q.push(&[9; 10]);
        let mut buf = [0u8; 4];
        assert_eq!(q.pop(&mut buf), Some(4));
        assert_eq!(buf, [9; 4]);
    }
}
