//! Forwarding ([`forward`]): received buffers straight to TX descriptors,
//! and what one call moved ([`Forwarded`]).
#![forbid(unsafe_code)]

use super::error::NicError;
use super::rx::{self, RxQueue};
use super::tx::TxQueue;
use crate::regs::RegisterAccess;

/// What one [`forward`] call moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Frames.
    pub frames: usize,
    /// Their bytes (without FCS).
    pub bytes: u64,
}

/// Move up to `max` received frames from `rx` to `tx` (another port's, or
/// the same port's), each buffer going from one ring to the other without
/// a list in between, then send buffers the device has finished back to
/// `rx`'s cache. Frames are neither read nor written by the CPU. Returns
/// what was moved: fewer than `max` frames when `rx` has fewer or `tx` has
/// no more room (the rest stay in `rx`'s ring, where flow control or the
/// device's drop counter deals with them).
///
/// Fails with [`NicError::InvalidOptions`] if `rx` can deliver frames
/// longer than `tx` sends (ports set up with different buffer sizes); the
/// RX checks of [`RxQueue::rx_batch`] apply.
pub fn forward<R1: RegisterAccess, R2: RegisterAccess>(
    rx: &mut RxQueue<R1>,
    tx: &mut TxQueue<R2>,
    max: usize,
) -> Result<Forwarded, NicError> {
    if rx.buf_len() > tx.max_one_segment() {
        return Err(NicError::InvalidOptions(format!(
            "RX queue {} delivers frames up to {} bytes, TX queue {} sends at most {}",
            rx.queue(),
            rx.buf_len(),
            tx.queue(),
            tx.max_one_segment()
        )));
    }
    // Every time (one load when nothing is done): sent buffers go straight
    // back into `rx`'s ring (what does not fit, into its cache), so the
    // ring stays full without a refill from a free list.
    tx.clean_into_ring(rx);
    // Most polls of an idle or lightly loaded port find nothing: one load.
    if !rx.frame_waiting() {
        rx.top_up(tx.in_flight());
        return Ok(Forwarded::default());
    }
    let room = max.min(tx.free_descriptors());
    if room == 0 {
        return Ok(Forwarded::default());
    }
    tx.accept_devices_of(rx.pool());
    let (mut frames, mut bytes) = (0, 0);
    while frames < room {
        let want = (room - frames).min(rx::BURST);
        let r = rx.take_burst::<false>(want);
        // No checks needed in `send_burst`: `rx` delivers at most `room`
        // frames, none longer than its buffers, which `tx` sends whole
        // (checked above). The CPU never gets a handle to a buffer, let
        // alone a slice.
        let burst = rx.burst();
        let n = burst.len();
        if n > 0 {
            bytes += tx.send_burst(burst);
            frames += n;
        }
        // What `tx` holds comes back into `rx`'s ring.
        rx.top_up(tx.in_flight());
        r?;
        if n < want {
            break;
        }
    }
    Ok(Forwarded { frames, bytes })
}
