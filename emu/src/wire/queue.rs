//! A bounded frame queue: the "cable" inside `pair` and `loop` wires.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Frames a queue holds before it drops: enough for a few bursts of a
/// 512-descriptor ring, small enough that a receiver that never polls costs
/// at most this many frames of memory.
pub(super) const QUEUE_FRAMES: usize = 1024;

/// The slots of a [`FrameQueue`]: a ring of frame buffers and their
/// lengths, and the spare buffers that frames left behind.
struct Slots {
    frames: Vec<(Box<[u8]>, usize)>,
    head: usize,
    len: usize,
    /// Buffers to hand out: a port that sends by [`FrameQueue::push_buf`]
    /// gets one in exchange for the buffer that holds its frame, and a port
    /// that receives by [`FrameQueue::pop_buf`] leaves its old one here. At
    /// most `capacity`, so a queue never holds more than twice its capacity
    /// in buffers; in steady state it allocates nothing.
    spare: Vec<Box<[u8]>>,
}

/// A bounded first-in first-out queue of frames. A push to a full queue
/// drops the frame and counts it, as a switch port with a full buffer does:
/// a stalled receiver costs frames, never unbounded memory.
///
/// Frames move through it by copy ([`Self::push`], [`Self::pop`]) or, for
/// ports that hand over whole frame buffers, by exchanging buffers
/// ([`Self::push_buf`], [`Self::pop_buf`]): then the wire copies nothing,
/// and the only copies of a frame are the two DMA copies of the ports.
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
                frames: (0..capacity).map(|_| (Box::default(), 0)).collect(),
                head: 0,
                len: 0,
                spare: Vec::new(),
            }),
            capacity,
            waiting: AtomicUsize::new(0),
            drops: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves the ring consistent (every
        // update is a plain index or length change after the copy or swap).
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Index of the slot the next frame goes to, or None (and counted)
    /// when the queue is full.
    fn tail(&self, s: &Slots) -> Option<usize> {
        let cap = s.frames.len();
        if s.len == cap {
            self.drops.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some((s.head + s.len) % cap)
    }

    /// Count the frame just put in the tail slot.
    fn pushed(&self, s: &mut Slots) {
        s.len += 1;
        self.waiting.store(s.len, Ordering::Release);
    }

    /// Advance past the head slot's frame: the frames waiting before.
    fn popped(&self, s: &mut Slots) -> usize {
        let before = s.len;
        s.head = (s.head + 1) % s.frames.len();
        s.len -= 1;
        self.waiting.store(s.len, Ordering::Release);
        before
    }

    /// A spare buffer of at least `len` bytes (allocated if none is left).
    fn spare(s: &mut Slots, len: usize) -> Box<[u8]> {
        match s.spare.pop() {
            Some(b) if b.len() >= len => b,
            _ => vec![0u8; len].into_boxed_slice(),
        }
    }

    /// Keep `buf` for a later exchange (dropped when enough are kept).
    fn keep(&self, s: &mut Slots, buf: Box<[u8]>) {
        if s.spare.len() < self.capacity && !buf.is_empty() {
            s.spare.push(buf);
        }
    }

    /// Append a copy of `frame`; false (and counted) when the queue is full.
    pub(super) fn push(&self, frame: &[u8]) -> bool {
        let mut s = self.lock();
        let s = &mut *s;
        let Some(i) = self.tail(s) else {
            return false;
        };
        if s.frames[i].0.len() < frame.len() {
            let new = Self::spare(s, frame.len());
            let old = std::mem::replace(&mut s.frames[i].0, new);
            self.keep(s, old);
        }
        let slot = &mut s.frames[i];
        slot.0[..frame.len()].copy_from_slice(frame);
        slot.1 = frame.len();
        self.pushed(s);
        true
    }

    /// Append the frame `buf[..len]` without copying it: the buffer goes
    /// into the queue and `buf` is given another one, at least as long
    /// (contents unspecified). False (and counted) when the queue is full;
    /// `buf` is then left as it was.
    pub(super) fn push_buf(&self, buf: &mut Box<[u8]>, len: usize) -> bool {
        let len = len.min(buf.len());
        let mut s = self.lock();
        let s = &mut *s;
        let Some(i) = self.tail(s) else {
            return false;
        };
        let spare = Self::spare(s, buf.len());
        let frame = std::mem::replace(buf, spare);
        let old = std::mem::replace(&mut s.frames[i], (frame, len)).0;
        self.keep(s, old);
        self.pushed(s);
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
        if s.len == 0 {
            return None;
        }
        let (frame, len) = &s.frames[s.head];
        let n = (*len).min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Some((n, self.popped(&mut s)))
    }

    /// Take the oldest frame without copying it: `buf` is exchanged for
    /// the buffer that holds the frame when that one is at least as long
    /// (as it is between ports that use [`Self::push_buf`] with buffers of
    /// one size); otherwise the frame is copied into `buf`. Its length,
    /// at most `max`, and the frames that were waiting before; None when
    /// empty.
    pub(super) fn pop_buf(&self, buf: &mut Box<[u8]>, max: usize) -> Option<(usize, usize)> {
        let mut s = self.lock();
        let s = &mut *s;
        if s.len == 0 {
            return None;
        }
        let head = s.head;
        let n = s.frames[head].1.min(max).min(buf.len());
        if s.frames[head].0.len() >= buf.len() {
            let frame = std::mem::take(&mut s.frames[head].0);
            let old = std::mem::replace(buf, frame);
            self.keep(s, old);
        } else {
            buf[..n].copy_from_slice(&s.frames[head].0[..n]);
        }
        Some((n, self.popped(s)))
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

    /// Between buffers of one size the frame itself changes hands: the
    /// receiver gets the very allocation the sender filled, and the sender
    /// a buffer as long as its own; a full queue leaves the sender's buffer
    /// alone and counts the drop.
    #[test]
    fn push_buf_and_pop_buf_exchange_buffers_without_copying() {
        let q = FrameQueue::new(2);
        let mut tx: Box<[u8]> = vec![0u8; 64].into_boxed_slice();
        tx[..3].copy_from_slice(&[7, 8, 9]);
        let sent_at = tx.as_ptr();
        assert!(q.push_buf(&mut tx, 3));
        assert_eq!(tx.len(), 64);
        assert_ne!(tx.as_ptr(), sent_at, "the sender got another buffer");
        let mut rx: Box<[u8]> = vec![0u8; 64].into_boxed_slice();
        let rx_was = rx.as_ptr();
        assert_eq!(q.pop_buf(&mut rx, 64), Some((3, 1)));
        assert_eq!(rx.as_ptr(), sent_at, "the receiver got the sender's buffer");
        assert_eq!(&rx[..3], &[7, 8, 9]);
        // The receiver's old buffer is the next sender's spare.
        tx[0] = 1;
        assert!(q.push_buf(&mut tx, 1));
        assert_eq!(tx.as_ptr(), rx_was);
        assert!(q.push_buf(&mut tx, 1));
        let full_at = tx.as_ptr();
        assert!(!q.push_buf(&mut tx, 1));
        assert_eq!((tx.as_ptr(), q.drops()), (full_at, 1));
        // Copies and exchanges mix: a frame pushed by copy pops by
        // exchange, truncated to `max`; one in a shorter buffer is copied.
        let mut small: Box<[u8]> = vec![0u8; 2].into_boxed_slice();
        assert_eq!(q.pop_buf(&mut small, 64), Some((1, 2)));
        assert_eq!(q.pop(&mut [0u8; 8]), Some(1));
        assert!(q.push(&[5; 10]));
        assert_eq!(q.pop_buf(&mut rx, 4), Some((4, 1)));
        assert_eq!((rx.len(), &rx[..4]), (64, &[5u8; 4][..]));
        assert_eq!(q.pop_buf(&mut rx, 64), None);
        assert_eq!(q.len(), 0);
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
