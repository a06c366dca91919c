//! Everything that can go wrong in the NIC drivers, one variant per cause a
//! user can act on.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

/// A NIC driver error. `Display` is one line naming the cause and what to do.
#[derive(Debug)]
pub enum NicError {
    /// CTRL.RST did not clear after a global reset.
    ResetTimeout {
        /// How long the driver waited.
        after: Duration,
    },
    /// The EEPROM auto-read after reset did not finish (82599 EEC.ARD; igb
    /// goes on without EECD.AUTO_RD, as Linux does).
    EepromTimeout {
        /// How long the driver waited.
        after: Duration,
    },
    /// The 82599 did not report DMA initialisation done (RDRXCTL.DMAIDONE).
    DmaInitTimeout {
        /// How long the driver waited.
        after: Duration,
    },
    /// RXDCTL.ENABLE / TXDCTL.ENABLE did not read back as set.
    QueueEnableTimeout {
        /// The queue.
        queue: u16,
        /// "RX" or "TX".
        dir: &'static str,
        /// How long the driver waited.
        after: Duration,
    },
    /// The link stayed down.
    LinkDown {
        /// How long the driver waited.
        after: Duration,
    },
    /// A queue number beyond those configured.
    NoSuchQueue {
        /// The queue asked for.
        q: u16,
        /// How many queues of that direction the port has.
        have: u16,
    },
    /// The queue was already taken (each queue can be taken once).
    QueueTaken(u16),
    /// A frame longer than the port's largest frame.
    FrameTooLarge {
        /// Frame length in bytes (without FCS).
        len: usize,
        /// The limit ([`super::port::Nic::max_frame`]).
        max: usize,
    },
    /// A packet with more segments than the chip takes per packet.
    TooManySegments {
        /// Segments of the packet.
        segments: usize,
        /// The chip's limit (40 on the 82599).
        max: usize,
    },
    /// A segment longer than one TX descriptor may carry.
    SegmentTooLarge {
        /// Segment length in bytes.
        len: usize,
        /// The per-descriptor limit.
        max: usize,
    },
    /// A packet without bytes: no segments, or a segment of length 0.
    EmptySegment,
    /// Checksum offload parameters the context descriptor cannot carry.
    InvalidOffload(String),
    /// Options that cannot work (ring size, buffer size, queue count...).
    InvalidOptions(String),
    /// [`super::TxBatch::push_cut`] on a TX queue without a header area.
    NoHeaderArea,
    /// The device wrote something impossible (a length beyond the buffer, a
    /// MAC address that is not unicast...). The device is not trusted; the
    /// driver stopped using what it wrote.
    DeviceMisbehaved(String),
    /// A register that cannot read all-ones (reserved bits are 0) did: the
    /// device no longer answers on BAR0. On PCIe a read of a function that
    /// was surprise-removed, powered down (D3cold) or had memory space
    /// disabled completes with all ones (PCIe base spec §2.3.2, unsupported
    /// request / completion timeout), so every register looks "set": link
    /// up, counters at FFFFFFFFh. Nothing read from it means anything.
    DeviceRemoved {
        /// The register that read FFFFFFFFh.
        register: &'static str,
    },
    /// Getting or mapping DMA memory failed.
    Dma(dma::Error),
    /// The device or configuration is not supported by this driver.
    Unsupported(String),
}

impl fmt::Display for NicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NicError::ResetTimeout { after } => write!(
                f,
                "NIC reset did not complete within {after:?} (CTRL.RST stayed set); \
                 check that the device is bound to vfio-pci and not in a low-power state, then power-cycle it"
            ),
            NicError::EepromTimeout { after } => write!(
                f,
                "NIC EEPROM auto-read did not finish within {after:?}; \
                 the NVM may be blank or corrupt: check the card with the vendor tool"
            ),
            NicError::DmaInitTimeout { after } => write!(
                f,
                "82599 DMA initialisation (RDRXCTL.DMAIDONE) did not finish within {after:?}; \
                 reset the device (unbind/rebind or power-cycle) and retry"
            ),
            NicError::QueueEnableTimeout { queue, dir, after } => write!(
                f,
                "{dir} queue {queue} did not report enabled within {after:?}; \
                 the device is stuck: reset it and retry"
            ),
            NicError::LinkDown { after } => write!(
                f,
                "link is down after waiting {after:?}; check the cable / peer, or wait longer"
            ),
            NicError::NoSuchQueue { q, have } => write!(
                f,
                "queue {q} does not exist (the port has {have}); \
                 ask for a queue below {have} or configure more in NicOptions"
            ),
            NicError::QueueTaken(q) => write!(
                f,
                "queue {q} was already taken; each queue has one owner: keep the first handle"
            ),
            NicError::FrameTooLarge { len, max } => write!(
                f,
                "frame of {len} bytes exceeds the port's maximum of {max}; \
                 send smaller frames or raise NicOptions::buf_size"
            ),
            NicError::TooManySegments { segments, max } => write!(
                f,
                "packet has {segments} segments but the NIC takes at most {max}; \
                 merge segments into fewer buffers"
            ),
            NicError::SegmentTooLarge { len, max } => write!(
                f,
                "TX segment of {len} bytes exceeds the per-descriptor limit of {max}; split it"
            ),
            NicError::EmptySegment => write!(
                f,
                "packet has no bytes or a segment of length 0; drop empty segments before sending"
            ),
            NicError::InvalidOffload(why) => {
                write!(f, "checksum offload parameters not possible: {why}; fix the header lengths")
            }
            NicError::InvalidOptions(why) => write!(f, "invalid NIC options: {why}"),
            NicError::NoHeaderArea => write!(
                f,
                "cutting frames needs the TX queue's header area: call \
                 TxQueue::add_header_area first"
            ),
            NicError::DeviceMisbehaved(what) => write!(
                f,
                "NIC misbehaved: {what}; this is a device (or device model) bug: reset the device"
            ),
            NicError::DeviceRemoved { register } => write!(
                f,
                "NIC not responding ({register} reads FFFFFFFFh, as all registers of a gone \
                 device do): removed, not powered or memory space disabled; check `lspci`, \
                 reset the function or re-bind it to vfio-pci"
            ),
            NicError::Dma(e) => write!(f, "NIC DMA memory: {e}"),
            NicError::Unsupported(what) => write!(f, "not supported by this driver: {what}"),
        }
    }
}

impl std::error::Error for NicError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NicError::Dma(e) => Some(e),
            _ => None,
        }
    }
}

impl From<dma::Error> for NicError {
    fn from(e: dma::Error) -> Self {
        NicError::Dma(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_one_line() {
        let all = [
            NicError::ResetTimeout {
                after: Duration::from_secs(1),
            },
            NicError::EepromTimeout {
                after: Duration::from_secs(1),
            },
            NicError::DmaInitTimeout {
                after: Duration::from_secs(1),
            },
            NicError::QueueEnableTimeout {
                queue: 3,
                dir: "RX",
                after: Duration::from_secs(1),
            },
            NicError::LinkDown {
                after: Duration::from_secs(1),
            },
            NicError::NoSuchQueue { q: 4, have: 2 },
            NicError::QueueTaken(0),
            NicError::FrameTooLarge {
                len: 9000,
                max: 2048,
            },
            NicError::TooManySegments {
                segments: 41,
                max: 40,
            },
            NicError::SegmentTooLarge {
                len: 70000,
                max: 16384,
            },
            NicError::EmptySegment,
            NicError::InvalidOffload("IP header of 8 bytes".into()),
            NicError::InvalidOptions("ring of 7".into()),
            NicError::DeviceMisbehaved("length 9000 > buffer 2048".into()),
            NicError::DeviceRemoved { register: "STATUS" },
            NicError::Dma(dma::Error::InvalidLength(0)),
            NicError::Unsupported("chip".into()),
        ];
        for e in all {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{s}");
            assert!(s.len() > 20, "{s}");
        }
        assert!(NicError::TooManySegments {
            segments: 41,
            max: 40
        }
        .to_string()
        .contains("at most 40"));
    }
}
