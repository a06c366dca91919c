//! The model's half of the descriptor trace ([`drivers::trace`]): what the
//! device did, recorded through its [`DeviceDma`](crate::DeviceDma)'s tap
//! by the engine that did it. Descriptor fetches and write-backs carry the
//! 16 descriptor bytes (and are not recorded again as DMA), buffer DMA its
//! IOVA and length, frames their length and first 64 bytes; an IOMMU fault
//! names the access it stopped. Each hook is one test of the tap when
//! tracing is off; the events are built only when it is on.
#![forbid(unsafe_code)]

use super::model::NicModel;
use super::queue_state::Dir;
use crate::DmaError;
use drivers::trace::{Agent, Engine, Event, Kind, Queue};
use spec::nic::adv_desc::DESC_SIZE;

impl Dir {
    /// The trace's name of queue `q` of this direction (`RXq`, `TXq`).
    pub(super) fn queue(self, q: u16) -> Queue {
        match self {
            Dir::Rx => Queue::Rx(q),
            Dir::Tx => Queue::Tx(q),
        }
    }

    /// The engine that works on queue `q` of this direction.
    pub(super) fn engine(self, q: u16) -> Engine {
        match self {
            Dir::Rx => Engine::Rx(q),
            Dir::Tx => Engine::Tx(q),
        }
    }
}

impl NicModel {
    /// A remark by `engine`. A text longer than an event's
    /// [`RAW_MAX`](drivers::trace::RAW_MAX)
    /// bytes becomes several `note` events in a row, cut at character
    /// boundaries, numbered in `value` from 0: a reader joins a note with
    /// the ones numbered 1, 2, ... after it.
    pub(super) fn note_by(&self, engine: Engine, f: impl FnOnce() -> String) {
        let tap = self.dma.tap();
        if !tap.is_on() {
            return;
        }
        let text = f();
        let mut rest = text.as_str();
        let mut piece = 0;
        loop {
            let note = Event {
                agent: Agent::Device(engine),
                ..Event::note(rest)
            }
            .value(piece);
            tap.record(|| note);
            rest = &rest[note.raw.as_slice().len()..];
            if rest.is_empty() {
                break;
            }
            piece += 1;
        }
    }

    /// Record the IOMMU fault behind `e` (if it is one) as a fault of the
    /// engine of queue `q`; `e` back.
    pub(super) fn fault(&self, dir: Dir, q: u16, e: DmaError) -> DmaError {
        if let DmaError::Fault(f) = e {
            self.dma.tap().record(|| {
                Event::device(Kind::Fault, dir.engine(q))
                    .queue(dir.queue(q))
                    .addr(f.iova)
                    .len(f.len as u32)
                    .value(f.write as u64)
            });
        }
        e
    }

    /// DMA read of a packet buffer by queue `q`'s engine, traced.
    #[inline]
    pub(super) fn buffer_read(
        &self,
        dir: Dir,
        q: u16,
        iova: u64,
        dst: &mut [u8],
    ) -> Result<(), DmaError> {
        self.dma
            .read(iova, dst)
            .map_err(|e| self.fault(dir, q, e))?;
        self.buffer_dma(Kind::DmaRead, dir, q, iova, dst.len());
        Ok(())
    }

    /// DMA write of a packet buffer by queue `q`'s engine, traced.
    #[inline]
    pub(super) fn buffer_write(
        &self,
        dir: Dir,
        q: u16,
        iova: u64,
        src: &[u8],
    ) -> Result<(), DmaError> {
        self.dma
            .write(iova, src)
            .map_err(|e| self.fault(dir, q, e))?;
        self.buffer_dma(Kind::DmaWrite, dir, q, iova, src.len());
        Ok(())
    }

    #[inline]
    fn buffer_dma(&self, kind: Kind, dir: Dir, q: u16, iova: u64, len: usize) {
        self.dma.tap().record(|| {
            Event::device(kind, dir.engine(q))
                .queue(dir.queue(q))
                .addr(iova)
                .len(len as u32)
        });
    }

    /// Descriptors `first..` of queue `q` fetched from `iova` (`bytes`, a
    /// whole number of descriptors): one `fetch` event each, with its bytes.
    #[inline]
    pub(super) fn fetched(&self, dir: Dir, q: u16, first: u32, iova: u64, bytes: &[u8]) {
        if self.dma.tap().is_on() {
            self.trace_fetch(dir, q, first, iova, bytes);
        }
    }

    #[cold]
    #[inline(never)]
    fn trace_fetch(&self, dir: Dir, q: u16, first: u32, iova: u64, bytes: &[u8]) {
        for (i, d) in bytes.chunks_exact(DESC_SIZE).enumerate() {
            self.dma.tap().record(|| {
                Event::device(Kind::Fetch, dir.engine(q))
                    .queue(dir.queue(q))
                    .index(first + i as u32)
                    .addr(iova + (i * DESC_SIZE) as u64)
                    .bytes(d)
            });
        }
    }

    /// Descriptor `index` of queue `q`, at `iova`, written back: it holds
    /// `desc` with the dword at `status_at` replaced by `status` (written
    /// last, apart).
    #[inline]
    pub(super) fn written_back(
        &self,
        dir: Dir,
        q: u16,
        index: u32,
        iova: u64,
        desc: &[u8; DESC_SIZE],
        (status_at, status): (usize, u32),
    ) {
        self.dma.tap().record(|| {
            let mut d = *desc;
            d[status_at..status_at + 4].copy_from_slice(&status.to_le_bytes());
            Event::device(Kind::WriteBack, dir.engine(q))
                .queue(dir.queue(q))
                .index(index)
                .addr(iova)
                .bytes(&d)
        });
    }

    /// A frame of queue `q` on the wire: sent (TX) or arriving for the
    /// queue (RX).
    #[inline]
    pub(super) fn frame(&self, dir: Dir, q: u16, data: &[u8]) {
        self.dma.tap().record(|| {
            Event::device(Kind::Frame, Engine::Wire)
                .queue(dir.queue(q))
                .len(data.len() as u32)
                .bytes(data)
        });
    }
}
