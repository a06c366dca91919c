//! The driver's half of the descriptor trace ([`crate::trace`]) for NVMe:
//! each submission queue entry as written (`desc_write`, 64 bytes) and each
//! completion queue entry as read, before it is validated (`desc_read`, 16
//! bytes). Register reads and writes (doorbells among them) are recorded by
//! the BAR ([`crate::vfio::VfioBar::set_trace`], `emu::EmuBar::set_trace`),
//! not here. These builders run only when tracing is on: the queue calls
//! them inside `tap.record(|| ...)`. They work on real hardware too: they
//! read nothing but the driver's own queue memory.
#![forbid(unsafe_code)]

use crate::trace::{Event, Kind, Queue};
use spec::nvme::{cqe, sqe};

/// Submission queue `qid`'s entry `index` at `iova` was filled with `entry`.
#[cold]
pub(super) fn sqe_written(qid: u16, index: u16, iova: u64, entry: &[u8; sqe::SIZE]) -> Event {
    Event::new(Kind::DescWrite)
        .queue(Queue::Sq(qid))
        .index(u32::from(index))
        .addr(iova)
        .len(sqe::SIZE as u32)
        .bytes(entry)
}

/// Completion queue `qid`'s entry `index` at `iova` was read as `entry`.
#[cold]
pub(super) fn cqe_read(qid: u16, index: u16, iova: u64, entry: &[u8; cqe::SIZE]) -> Event {
    Event::new(Kind::DescRead)
        .queue(Queue::Cq(qid))
        .index(u32::from(index))
        .addr(iova)
        .len(cqe::SIZE as u32)
        .bytes(entry)
}
