//! `loop`: a wire whose far end is itself.
#![forbid(unsafe_code)]

use super::queue::{FrameQueue, QUEUE_FRAMES};
use super::{Wire, MAX_FRAME};
use crate::DeviceWaker;
use std::sync::Arc;

/// A loopback wire: every frame sent is received back, in order. Bounded
/// like a pair: a port that sends without receiving makes drops.
pub struct LoopWire {
    queue: FrameQueue,
}

impl Default for LoopWire {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopWire {
    /// An empty loopback.
    pub fn new() -> Self {
        LoopWire {
            queue: FrameQueue::new(QUEUE_FRAMES),
        }
    }
}

impl Wire for LoopWire {
    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        self.queue.push(frame);
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        Ok(self.queue.pop(buf))
    }

    fn send_buf(&self, buf: &mut Box<[u8]>, len: usize) -> std::io::Result<()> {
        self.queue.push_buf(buf, len);
        Ok(())
    }

    fn recv_buf(&self, buf: &mut Box<[u8]>) -> std::io::Result<Option<usize>> {
        Ok(self.queue.pop_buf(buf, MAX_FRAME).map(|(n, _)| n))
    }

    fn describe(&self) -> String {
        "loop".into()
    }

    fn drops(&self) -> u64 {
        self.queue.drops()
    }

    /// Nothing to register: only the port on this end sends, and its round
    /// of device work receives right after it sends.
    fn set_waker(&self, _waker: Arc<DeviceWaker>) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sent_comes_back_in_order_and_overflow_is_counted() {
        let w = LoopWire::new();
        for i in 0..QUEUE_FRAMES + 3 {
            w.send(&(i as u32).to_le_bytes()).unwrap();
        }
        assert_eq!(w.drops(), 3);
        let mut buf = [0u8; 8];
        for i in 0..QUEUE_FRAMES {
            assert_eq!(w.recv(&mut buf).unwrap(), Some(4));
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i as u32);
        }
        assert_eq!(w.recv(&mut buf).unwrap(), None);
    }
}
