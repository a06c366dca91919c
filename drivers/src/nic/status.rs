//! What a port reports: its link state ([`LinkStatus`]) and its counters
//! ([`DeviceStats`]).
#![forbid(unsafe_code)]

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mb/s (0 when down).
    pub speed_mbps: u32,
    /// Full duplex (false when down, or up at half duplex).
    pub full_duplex: bool,
}

/// Port counters, accumulated by the driver from the device's clear-on-read
/// registers (so they count from `init`). Octet counts are the device's
/// "good octets", which include the 4-byte FCS of every frame.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStats {
    /// Good packets received (GPRC).
    pub rx_packets: u64,
    /// Good packets transmitted (GPTC).
    pub tx_packets: u64,
    /// Good octets received (GORC).
    pub rx_bytes: u64,
    /// Good octets transmitted (GOTC).
    pub tx_bytes: u64,
    /// Frames lost for lack of packet buffer space (MPC).
    pub rx_missed: u64,
    /// Frames dropped because their queue had no free descriptor
    /// (82576/I350: RQDPC of the configured queues; 82599: QPRDC).
    pub rx_no_desc: u64,
    /// Frames that arrived while no descriptor was free (RNBC; on the
    /// chips these may overlap the two counters above).
    pub rx_no_buffer: u64,
    /// Frames received with a CRC error (CRCERRS).
    pub rx_crc_errors: u64,
}

impl DeviceStats {
    /// Frames the port dropped on receive: missed plus no-descriptor drops.
    pub fn rx_dropped(&self) -> u64 {
        self.rx_missed.saturating_add(self.rx_no_desc)
    }

    /// Add `o` to these totals. Saturating: the values come from the
    /// device, which is not trusted, and a total that stops at `u64::MAX`
    /// is better than a panic (debug) or a wrap to a small number (release).
    pub(super) fn add(&mut self, o: &DeviceStats) {
        self.rx_packets = self.rx_packets.saturating_add(o.rx_packets);
        self.tx_packets = self.tx_packets.saturating_add(o.tx_packets);
        self.rx_bytes = self.rx_bytes.saturating_add(o.rx_bytes);
        self.tx_bytes = self.tx_bytes.saturating_add(o.tx_bytes);
        self.rx_missed = self.rx_missed.saturating_add(o.rx_missed);
        self.rx_no_desc = self.rx_no_desc.saturating_add(o.rx_no_desc);
        self.rx_no_buffer = self.rx_no_buffer.saturating_add(o.rx_no_buffer);
        self.rx_crc_errors = self.rx_crc_errors.saturating_add(o.rx_crc_errors);
    }
}
