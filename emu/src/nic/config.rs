//! What an emulated NIC is built from, why building one can fail, and the
//! model's own counters.
#![forbid(unsafe_code)]

use drivers::nic::Chip;
use std::fmt;

/// The configuration of an emulated NIC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicModelConfig {
    /// The port's MAC address: what the "EEPROM" holds and what RAL\[0\] /
    /// RAH\[0\] read after a reset. Must be a unicast address.
    pub mac: [u8; 6],
    /// RX and TX queues the model has; 0 means all the chip has (82576: 16,
    /// I350: 8, 82599: 128).
    pub queues: u16,
    /// Whether the link is up (STATUS.LU / LINKS.LINK_UP). Change it later
    /// with `EmuNic::set_link`.
    pub link_up: bool,
    /// 802.3x flow control with the link partner: when no RX ring has room
    /// for a frame, the port leaves frames on the wire (it would send
    /// XOFF) instead of dropping them, and it holds transmission while the
    /// peer cannot take a frame ([`crate::wire::Wire::peer_ready`]). Frames
    /// that arrive before the driver first enables RX wait too (the chips
    /// would drop them). Off by default: an overrun ring drops and counts,
    /// as without flow control.
    pub flow_control: bool,
}

impl Default for NicModelConfig {
    /// MAC 02:00:00:00:00:01 (locally administered), all queues, link up.
    fn default() -> Self {
        NicModelConfig {
            mac: [0x02, 0, 0, 0, 0, 0x01],
            queues: 0,
            link_up: true,
            flow_control: false,
        }
    }
}

impl NicModelConfig {
    /// The default configuration with MAC `mac`.
    pub fn with_mac(mac: [u8; 6]) -> Self {
        NicModelConfig {
            mac,
            ..Self::default()
        }
    }

    /// The number of queues the model gets on a chip with `max`.
    pub(crate) fn queues_for(&self, chip: Chip, max: u16) -> Result<u16, ModelError> {
        match self.queues {
            0 => Ok(max),
            q if q <= max => Ok(q),
            q => Err(ModelError::InvalidConfig(format!(
                "{q} queues asked for, but the {chip:?} has {max}; use 1 to {max} (or 0 for all)"
            ))),
        }
    }

    /// Check the fields that do not depend on the chip.
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        if self.mac[0] & 1 != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "MAC {} is a multicast address; use a unicast one such as 02:00:00:00:00:01",
                spec::net::MacAddr(self.mac)
            )));
        }
        if self.mac == [0; 6] {
            return Err(ModelError::InvalidConfig(
                "MAC 00:00:00:00:00:00 is not a station address; use one such as 02:00:00:00:00:01"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Why an emulated NIC could not be built.
#[derive(Debug)]
pub enum ModelError {
    /// A configuration field is out of range (the message says which and why).
    InvalidConfig(String),
    /// The device thread of a threaded model could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::InvalidConfig(why) => write!(f, "invalid NIC model configuration: {why}"),
            ModelError::Thread(e) => write!(
                f,
                "cannot start the device thread of the NIC model: {e}; use RunMode::Inline or \
                 free some threads"
            ),
        }
    }
}

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ModelError::Thread(e) => Some(e),
            ModelError::InvalidConfig(_) => None,
        }
    }
}

/// What the model did, beyond the datasheet's statistics registers (which
/// clear when the driver reads them). Monotonic for the life of the model:
/// a device reset does not clear them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelCounters {
    /// Frames taken from the wire.
    pub rx_frames: u64,
    /// Frames written into a receive ring (with a final write-back).
    pub rx_delivered: u64,
    /// Frames the destination address filter rejected.
    pub rx_filtered: u64,
    /// Frames dropped because receive was disabled (RCTL.EN / RXCTRL.RXEN
    /// clear) or the target queue was not enabled.
    pub rx_disabled: u64,
    /// Frames dropped because the target ring had no free descriptor.
    pub rx_no_descriptor: u64,
    /// Frames dropped as longer than the configured maximum.
    pub rx_oversize: u64,
    /// Frames dropped as shorter than an Ethernet header.
    pub rx_runt: u64,
    /// Frames lost because the IOMMU refused the DMA write of their data.
    pub rx_dma_faults: u64,
    /// Frames put on the wire.
    pub tx_frames: u64,
    /// Packets dropped because the IOMMU refused a DMA read of their data.
    pub tx_dma_faults: u64,
    /// Packets dropped because their descriptors were malformed (too long,
    /// too many descriptors, TSO, unknown descriptor type).
    pub tx_malformed: u64,
    /// Packets sent without the offload they asked for (bad context offsets).
    pub tx_offload_errors: u64,
    /// Packets discarded because the link was down.
    pub tx_link_down: u64,
    /// Queues that went into the error state (bad ring registers, ring memory
    /// the IOMMU refused).
    pub queue_errors: u64,
    /// Errors the wire reported (a failed capture write, a socket error).
    pub wire_errors: u64,
}
