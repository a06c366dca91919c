//! The storage behind a namespace: lazily allocated RAM or a file.
#![forbid(unsafe_code)]

use super::command::Status;
use super::config::{Backing, ModelError, NamespaceConfig};
use super::events;
use super::prp::Segment;
use crate::ram_chunk::{RamChunk, CHUNK, CHUNK_SHIFT};
use crate::DeviceDma;
use spec::nvme::sc_media;
use spec::nvme::sct;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// What an unwritten RAM chunk reads as. All-zero statics live in .bss, so
/// this costs no memory until read, and then only shared zero pages.
pub(super) static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// File transfers go through a bounce buffer of at most this many bytes.
const FILE_PIECE: usize = 1 << 20;

/// Unrecovered Read Error: the backing file could not be read.
const READ_ERROR: Status = Status {
    sct: sct::MEDIA,
    sc: sc_media::UNRECOVERED_READ_ERROR,
    dnr: false,
};

/// Write Fault: the backing file could not be written.
const WRITE_FAULT: Status = Status {
    sct: sct::MEDIA,
    sc: sc_media::WRITE_FAULT,
    dnr: false,
};

enum Medium {
    /// One slot per chunk; None reads as zeros.
    Ram(Vec<Option<RamChunk>>),
    File {
        file: File,
        path: PathBuf,
    },
}

/// One namespace: its geometry and its storage.
pub(super) struct Namespace {
    lba_shift: u32,
    blocks: u64,
    medium: Medium,
}

impl Namespace {
    /// Open the storage of namespace `nsid` as configured.
    pub(super) fn open(nsid: u32, cfg: &NamespaceConfig) -> Result<Namespace, ModelError> {
        let lba_shift = match cfg.lba_size {
            512 => 9,
            4096 => 12,
            lba_size => return Err(ModelError::InvalidLbaSize { nsid, lba_size }),
        };
        let invalid_size = |size_bytes| ModelError::InvalidNamespaceSize {
            nsid,
            size_bytes,
            lba_size: cfg.lba_size,
        };
        let (size, medium) = match &cfg.backing {
            Backing::Ram => {
                let chunks = cfg.size_bytes.div_ceil(CHUNK as u64);
                let chunks = usize::try_from(chunks).map_err(|_| invalid_size(cfg.size_bytes))?;
                let mut v = Vec::new();
                v.try_reserve_exact(chunks)
                    .map_err(|_| invalid_size(cfg.size_bytes))?;
                v.resize_with(chunks, || None);
                (cfg.size_bytes, Medium::Ram(v))
            }
            Backing::File(path) => {
                let err = |source| ModelError::BackingFile {
                    path: path.clone(),
                    source,
                };
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(err)?;
                let len = file.metadata().map_err(err)?.len();
                let size = if cfg.size_bytes == 0 {
                    len
                } else {
                    if len < cfg.size_bytes {
                        file.set_len(cfg.size_bytes).map_err(err)?;
                    }
                    cfg.size_bytes
                };
                (
                    size,
                    Medium::File {
                        file,
                        path: path.clone(),
                    },
                )
            }
        };
        if size == 0 || size % cfg.lba_size as u64 != 0 {
            return Err(invalid_size(size));
        }
        Ok(Namespace {
            lba_shift,
            blocks: size >> lba_shift,
            medium,
        })
    }

    /// Size in logical blocks.
    pub(super) fn blocks(&self) -> u64 {
        self.blocks
    }

    /// log2 of the logical block size.
    pub(super) fn lba_shift(&self) -> u32 {
        self.lba_shift
    }

    /// Size in bytes.
    pub(super) fn size_bytes(&self) -> u64 {
        self.blocks << self.lba_shift
    }

    /// Whether the namespace has a volatile cache worth flushing (a file's page cache).
    pub(super) fn is_file(&self) -> bool {
        matches!(self.medium, Medium::File { .. })
    }

    /// A read command's data movement: bytes from `offset` on go to `segments`
    /// by DMA writes.
    pub(super) fn read_to_host(
        &mut self,
        dma: &DeviceDma,
        mut offset: u64,
        segments: &[Segment],
        bounce: &mut Vec<u8>,
    ) -> Result<(), Status> {
        let dte = |e| {
            events::fault(dma, &e);
            Status::DATA_TRANSFER_ERROR
        };
        match &mut self.medium {
            Medium::Ram(chunks) => {
                for seg in segments {
                    let (mut iova, mut left) = (seg.iova, seg.len);
                    while left > 0 {
                        let (index, start, n) = piece(offset, left);
                        let src = match &chunks[index] {
                            Some(chunk) => &chunk[start..start + n],
                            None => &ZEROS[..n],
                        };
                        dma.write(iova, src).map_err(dte)?;
                        (iova, offset, left) =
                            (iova + n as u64, offset + n as u64, left - n as u64);
                    }
                    dma.tap().record(|| events::data(seg.iova, seg.len, true));
                }
            }
            Medium::File { file, .. } => {
                for seg in segments {
                    let (mut iova, mut left) = (seg.iova, seg.len);
                    while left > 0 {
                        let n = left.min(FILE_PIECE as u64) as usize;
                        bounce.resize(n, 0);
                        file.read_exact_at(&mut bounce[..n], offset)
                            .map_err(|_| READ_ERROR)?;
                        dma.write(iova, &bounce[..n]).map_err(dte)?;
                        (iova, offset, left) =
                            (iova + n as u64, offset + n as u64, left - n as u64);
                    }
                    dma.tap().record(|| events::data(seg.iova, seg.len, true));
                }
            }
        }
        Ok(())
    }

    /// A write command's data movement: `segments` are read by DMA and stored
    /// from `offset` on.
    pub(super) fn write_from_host(
        &mut self,
        dma: &DeviceDma,
        mut offset: u64,
        segments: &[Segment],
        bounce: &mut Vec<u8>,
    ) -> Result<(), Status> {
        let dte = |e| {
            events::fault(dma, &e);
            Status::DATA_TRANSFER_ERROR
        };
        match &mut self.medium {
            Medium::Ram(chunks) => {
                for seg in segments {
                    let (mut iova, mut left) = (seg.iova, seg.len);
                    while left > 0 {
                        let (index, start, n) = piece(offset, left);
                        let chunk = chunks[index].get_or_insert_with(RamChunk::new);
                        dma.read(iova, &mut chunk[start..start + n]).map_err(dte)?;
                        (iova, offset, left) =
                            (iova + n as u64, offset + n as u64, left - n as u64);
                    }
                    dma.tap().record(|| events::data(seg.iova, seg.len, false));
                }
            }
            Medium::File { file, .. } => {
                for seg in segments {
                    let (mut iova, mut left) = (seg.iova, seg.len);
                    while left > 0 {
                        let n = left.min(FILE_PIECE as u64) as usize;
                        bounce.resize(n, 0);
                        dma.read(iova, &mut bounce[..n]).map_err(dte)?;
                        file.write_all_at(&bounce[..n], offset)
                            .map_err(|_| WRITE_FAULT)?;
                        (iova, offset, left) =
                            (iova + n as u64, offset + n as u64, left - n as u64);
                    }
                    dma.tap().record(|| events::data(seg.iova, seg.len, false));
                }
            }
        }
        Ok(())
    }

    /// Make written data durable (Flush, FUA, shutdown): fsync for a file,
    /// nothing for RAM.
    pub(super) fn flush(&self) -> std::io::Result<()> {
        match &self.medium {
            Medium::Ram(_) => Ok(()),
            Medium::File { file, .. } => file.sync_data(),
        }
    }

    /// Copy bytes from the medium, bypassing DMA (tests and tools). The
    /// caller checked the range.
    pub(super) fn read_bytes(&self, mut offset: u64, buf: &mut [u8]) -> Result<(), ModelError> {
        match &self.medium {
            Medium::Ram(chunks) => {
                let mut done = 0;
                while done < buf.len() {
                    let (index, start, n) = piece(offset, (buf.len() - done) as u64);
                    let src = match &chunks[index] {
                        Some(chunk) => &chunk[start..start + n],
                        None => &ZEROS[..n],
                    };
                    buf[done..done + n].copy_from_slice(src);
                    done += n;
                    offset += n as u64;
                }
                Ok(())
            }
            Medium::File { file, path } => {
                file.read_exact_at(buf, offset)
                    .map_err(|source| ModelError::BackingFile {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }

    /// Copy bytes to the medium, bypassing DMA (tests and tools). The
    /// caller checked the range.
    pub(super) fn write_bytes(&mut self, mut offset: u64, buf: &[u8]) -> Result<(), ModelError> {
        match &mut self.medium {
            Medium::Ram(chunks) => {
                let mut done = 0;
                while done < buf.len() {
                    let (index, start, n) = piece(offset, (buf.len() - done) as u64);
                    let chunk = chunks[index].get_or_insert_with(RamChunk::new);
                    chunk[start..start + n].copy_from_slice(&buf[done..done + n]);
                    done += n;
                    offset += n as u64;
                }
                Ok(())
            }
            Medium::File { file, path } => {
                file.write_all_at(buf, offset)
                    .map_err(|source| ModelError::BackingFile {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }
}

/// The part of `offset..offset + left` that lies in one RAM chunk: (chunk
/// index, offset in the chunk, length).
#[inline]
fn piece(offset: u64, left: u64) -> (usize, usize, usize) {
    let index = (offset >> CHUNK_SHIFT) as usize;
    let start = (offset & (CHUNK as u64 - 1)) as usize;
    let n = left.min((CHUNK - start) as u64) as usize;
    (index, start, n)
}
