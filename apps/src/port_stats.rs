//! Per-second statistics of NIC ports: what the driver counted and what
//! the device's own counters say.
#![forbid(unsafe_code)]

use drivers::nic::{DeviceStats, Nic};
use drivers::regs::RegisterAccess;
use std::time::{Duration, Instant};

/// Packets and bytes counted by the app (driver side).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes of frames received (without FCS).
    pub rx_bytes: u64,
    /// Bytes of frames sent (without FCS).
    pub tx_bytes: u64,
}

/// Prints one line per port each second.
pub struct RatePrinter {
    last: Instant,
    prev: Vec<(Counts, DeviceStats)>,
    start: Instant,
}

fn mpps(p: u64, dt: f64) -> f64 {
    p as f64 / dt / 1e6
}

/// Mbit/s of frames including the 4-byte FCS.
fn mbit(bytes: u64, packets: u64, dt: f64) -> f64 {
    (bytes + 4 * packets) as f64 * 8.0 / dt / 1e6
}

impl RatePrinter {
    /// A printer for `ports` ports.
    pub fn new(ports: usize) -> Self {
        RatePrinter {
            last: Instant::now(),
            prev: vec![Default::default(); ports],
            start: Instant::now(),
        }
    }

    /// Whether a second has passed since the last line.
    #[inline]
    pub fn due(&self) -> bool {
        self.last.elapsed() >= Duration::from_secs(1)
    }

    /// Print the lines for `ports` with the app's `counts` of each.
    pub fn print<R: RegisterAccess>(
        &mut self,
        names: &[String],
        ports: &[&Nic<R>],
        counts: &[Counts],
    ) {
        let dt = self.last.elapsed().as_secs_f64();
        let t = self.start.elapsed().as_secs();
        for (i, (nic, c)) in ports.iter().zip(counts).enumerate() {
            let dev = nic.stats();
            let (pc, pd) = self.prev[i];
            eprintln!(
                "[{t:>3}s] {}: RX {:.3} Mpps {:.1} Mbit/s, TX {:.3} Mpps {:.1} Mbit/s | device: RX {:.3} Mpps, TX {:.3} Mpps, dropped {}",
                names[i],
                mpps(c.rx_packets - pc.rx_packets, dt),
                mbit(c.rx_bytes - pc.rx_bytes, c.rx_packets - pc.rx_packets, dt),
                mpps(c.tx_packets - pc.tx_packets, dt),
                mbit(c.tx_bytes - pc.tx_bytes, c.tx_packets - pc.tx_packets, dt),
                mpps(dev.rx_packets - pd.rx_packets, dt),
                mpps(dev.tx_packets - pd.tx_packets, dt),
                dev.rx_dropped() - pd.rx_dropped(),
            );
            self.prev[i] = (*c, dev);
        }
        self.last = Instant::now();
    }
}
