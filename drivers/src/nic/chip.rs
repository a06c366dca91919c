//! The chips this driver knows ([`Chip`]): PCI IDs, names and the limits
//! each datasheet sets (queues, RSS, TX segments, frame and buffer sizes).
#![forbid(unsafe_code)]

/// The NICs this driver knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chip {
    /// Intel 82576 (1 GbE, 16 queues); what QEMU's `igb` device models.
    I82576,
    /// Intel I350 (1 GbE, 8 queues); programmed like the 82576.
    I350,
    /// Intel 82599 (10 GbE, 128 queues).
    X82599,
}

impl Chip {
    /// The chip behind a PCI vendor and device ID, if this driver knows it.
    pub fn from_pci_ids(vendor: u16, device: u16) -> Option<Chip> {
        if vendor != spec::nic::igb::VENDOR_INTEL {
            return None;
        }
        if spec::nic::igb::DEV_IDS_82576.contains(&device) {
            Some(Chip::I82576)
        } else if spec::nic::igb::DEV_IDS_I350.contains(&device) {
            Some(Chip::I350)
        } else if spec::nic::ixgbe::DEV_IDS_82599.contains(&device) {
            Some(Chip::X82599)
        } else {
            None
        }
    }

    /// The PCI IDs a model of this chip presents (vendor, device).
    pub fn pci_ids(self) -> (u16, u16) {
        match self {
            Chip::I82576 => (spec::nic::igb::VENDOR_INTEL, spec::nic::igb::DEV_82576),
            Chip::I350 => (
                spec::nic::igb::VENDOR_INTEL,
                spec::nic::igb::DEV_I350_COPPER,
            ),
            Chip::X82599 => (
                spec::nic::ixgbe::VENDOR_INTEL,
                spec::nic::ixgbe::DEV_82599_SFP,
            ),
        }
    }

    /// Short name ("82576", "I350", "82599").
    pub fn name(self) -> &'static str {
        match self {
            Chip::I82576 => "82576",
            Chip::I350 => "I350",
            Chip::X82599 => "82599",
        }
    }

    /// RX (and TX) queues the chip has.
    pub fn max_queues(self) -> u16 {
        match self {
            Chip::I82576 => spec::nic::igb::QUEUES_82576,
            Chip::I350 => spec::nic::igb::QUEUES_I350,
            Chip::X82599 => spec::nic::ixgbe::QUEUES,
        }
    }

    /// RX queues RSS can spread over.
    pub fn max_rss_queues(self) -> u16 {
        match self {
            Chip::I82576 | Chip::I350 => spec::nic::igb::MAX_RSS_QUEUES,
            Chip::X82599 => spec::nic::ixgbe::MAX_RSS_QUEUES,
        }
    }

    /// Data descriptors the chip takes per packet.
    pub fn max_tx_segments(self) -> usize {
        match self {
            Chip::I82576 | Chip::I350 => spec::nic::igb::MAX_TX_DESC_PER_PACKET,
            Chip::X82599 => spec::nic::ixgbe::MAX_TX_DESC_PER_PACKET,
        }
    }

    /// Bytes one TX data descriptor may carry (as the driver uses it).
    pub fn max_tx_segment_len(self) -> usize {
        match self {
            Chip::I82576 | Chip::I350 => spec::nic::igb::MAX_TX_SEGMENT,
            Chip::X82599 => spec::nic::ixgbe::MAX_TX_SEGMENT,
        }
    }

    pub(crate) fn is_igb(self) -> bool {
        matches!(self, Chip::I82576 | Chip::I350)
    }

    /// RX write-back error bits that mean the frame itself is bad.
    pub(super) fn rx_frame_errors(self) -> u32 {
        if self.is_igb() {
            spec::nic::adv_desc::rx::error_82576::FRAME_ERRORS
        } else {
            spec::nic::adv_desc::rx::error_82599::FRAME_ERRORS
        }
    }

    pub(super) fn max_frame_jumbo(self) -> usize {
        if self.is_igb() {
            spec::nic::igb::MAX_FRAME_JUMBO
        } else {
            spec::nic::ixgbe::MAX_FRAME_JUMBO
        }
    }

    /// Largest SRRCTL.BSIZEPACKET in KiB.
    pub(super) fn max_bsizepacket_kib(self) -> usize {
        if self.is_igb() {
            spec::nic::igb::srrctl::BSIZEPACKET.get(u32::MAX) as usize
        } else {
            16
        }
    }
}

impl std::fmt::Display for Chip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
