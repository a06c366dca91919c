//! What an emulated NVMe controller is built from, and why building one can fail.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;

/// Where a namespace keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// Process memory, zero-filled. It is allocated lazily (2 MiB at a time,
    /// on the first write to it), so a large namespace costs nothing until
    /// it is written. Lost when the model is dropped.
    Ram,
    /// A file, read with `pread` and written with `pwrite`. It is created if
    /// missing and extended to the namespace size; a namespace size of 0
    /// takes the file's size instead.
    File(PathBuf),
}

/// One namespace of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Size in bytes, a multiple of `lba_size` (0 with a file backing: the file's size).
    pub size_bytes: u64,
    /// Logical block size: 512 or 4096.
    pub lba_size: u32,
    /// Where the data lives.
    pub backing: Backing,
}

impl NamespaceConfig {
    /// A RAM namespace of `size_bytes` with 512-byte blocks.
    pub fn ram(size_bytes: u64) -> Self {
        NamespaceConfig {
            size_bytes,
            lba_size: 512,
            backing: Backing::Ram,
        }
    }
}

/// The configuration of an emulated NVMe controller.
#[derive(Debug, Clone)]
pub struct NvmeModelConfig {
    /// The namespaces; their NSIDs are 1..=n in this order.
    pub namespaces: Vec<NamespaceConfig>,
    /// Identify MDTS: transfers are limited to 2^mdts pages of CAP.MPSMIN
    /// (4 KiB); 0 means no limit. Default 5 (128 KiB).
    pub mdts: u8,
    /// CAP.MQES: the largest I/O queue, in entries, 0's based. Default 1023.
    pub mqes: u16,
    /// The most I/O submission (and completion) queues that Set Features
    /// Number of Queues grants. Default 64.
    pub max_io_queues: u16,
    /// CAP.DSTRD: doorbells are `4 << dstrd` bytes apart. Default 0.
    pub dstrd: u8,
    /// CAP.TO in 500 ms units: how long a driver waits for CSTS.RDY. Default 20 (10 s).
    pub timeout_500ms: u8,
    /// Identify serial number (at most 20 ASCII characters).
    pub serial: String,
    /// Identify model number (at most 40 ASCII characters).
    pub model: String,
    /// Identify firmware revision (at most 8 ASCII characters).
    pub firmware: String,
}

impl Default for NvmeModelConfig {
    /// One 1 GiB RAM namespace with 512-byte blocks, MDTS 5 (128 KiB),
    /// 1024-entry queues, 64 I/O queues, doorbell stride 4, CAP.TO 10 s.
    fn default() -> Self {
        NvmeModelConfig {
            namespaces: vec![NamespaceConfig::ram(1 << 30)],
            mdts: 5,
            mqes: 1023,
            max_io_queues: 64,
            dstrd: 0,
            timeout_500ms: 20,
            serial: "EMU0001".into(),
            model: "emulated NVMe controller".into(),
            firmware: "1.0".into(),
        }
    }
}

/// Largest MDTS accepted: 2^32 pages of 4 KiB (16 TiB) is far beyond any
/// transfer a 16-bit block count can ask for.
pub(super) const MAX_MDTS: u8 = 32;

impl NvmeModelConfig {
    /// Check the controller-wide fields (namespaces are checked when opened).
    pub(super) fn validate(&self) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::InvalidConfig(why));
        if self.mqes == 0 {
            return bad(
                "mqes 0 allows 1-entry queues, which hold no command; use at least 1 (2 entries)"
                    .into(),
            );
        }
        if self.max_io_queues == 0 || self.max_io_queues == u16::MAX {
            return bad(format!(
                "max_io_queues {} is out of range; use 1 to 65534",
                self.max_io_queues
            ));
        }
        if self.dstrd > 15 {
            return bad(format!(
                "dstrd {} does not fit CAP.DSTRD (4 bits); use 0 to 15",
                self.dstrd
            ));
        }
        if self.mdts > MAX_MDTS {
            return bad(format!(
                "mdts {} is too large; use 0 (no limit) to {MAX_MDTS}",
                self.mdts
            ));
        }
        for (name, value, max) in [
            ("serial", &self.serial, 20),
            ("model", &self.model, 40),
            ("firmware", &self.firmware, 8),
        ] {
            if value.len() > max || !value.is_ascii() {
                return bad(format!(
                    "{name} {value:?} must be at most {max} ASCII characters (an Identify field)"
                ));
            }
        }
        Ok(())
    }
}

/// Why an emulated controller could not be built, or a test access to its medium failed.
#[derive(Debug)]
pub enum ModelError {
    /// A namespace's LBA size is neither 512 nor 4096.
    InvalidLbaSize {
        /// The namespace.
        nsid: u32,
        /// The size asked for.
        lba_size: u32,
    },
    /// A namespace's size is zero or not a multiple of its LBA size.
    InvalidNamespaceSize {
        /// The namespace.
        nsid: u32,
        /// The size asked for (or the file's size).
        size_bytes: u64,
        /// Its LBA size.
        lba_size: u32,
    },
    /// A controller-wide field is out of range (the message says which and why).
    InvalidConfig(String),
    /// The backing file could not be opened, created, sized, read or written.
    BackingFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A medium access named a namespace that does not exist.
    NoSuchNamespace(u32),
    /// A medium access runs past the end of the namespace.
    OutOfRange {
        /// The namespace.
        nsid: u32,
        /// First byte asked for.
        offset: u64,
        /// Length asked for.
        len: usize,
        /// Size of the namespace in bytes.
        size: u64,
    },
    /// The device thread of a threaded model could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::InvalidLbaSize { nsid, lba_size } => write!(
                f,
                "namespace {nsid}: lba size must be 512 or 4096, not {lba_size}"
            ),
            ModelError::InvalidNamespaceSize {
                nsid,
                size_bytes,
                lba_size,
            } => write!(
                f,
                "namespace {nsid}: size {size_bytes} is not a positive multiple of the LBA size \
                 {lba_size}; give a size such as 1G or a non-empty file"
            ),
            ModelError::InvalidConfig(why) => write!(f, "invalid NVMe model configuration: {why}"),
            ModelError::BackingFile { path, source } => write!(
                f,
                "cannot use backing file {}: {source}; check the path and its permissions",
                path.display()
            ),
            ModelError::NoSuchNamespace(nsid) => write!(
                f,
                "namespace {nsid} does not exist; the controller has NSIDs 1 to the number configured"
            ),
            ModelError::OutOfRange {
                nsid,
                offset,
                len,
                size,
            } => write!(
                f,
                "access of {len} bytes at offset {offset} runs past the end of namespace {nsid} \
                 ({size} bytes)"
            ),
            ModelError::Thread(e) => write!(
                f,
                "cannot start the device thread of the NVMe model: {e}; use RunMode::Inline or \
                 free some threads"
            ),
        }
    }
}

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ModelError::BackingFile { source, .. } => Some(source),
            ModelError::Thread(e) => Some(e),
            _ => None,
        }
    }
}
