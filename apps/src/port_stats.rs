//! Per-second statistics of NIC ports: what the driver counted and what
//! the device's own counters say.
#![forbid(unsafe_code)]

use crate::monitor::{Counters, JsonObject, PortFigures, StatsFile};
use crate::AppResult;
use drivers::nic::{DeviceStats, Nic};
use drivers::regs::RegisterAccess;
use std::time::{Duration, Instant};

/// The app's own counts of a port (defined with the figures the monitor
/// writes, which carry them).
pub use crate::monitor::Counts;

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

    /// Print the lines for `ports` with the app's `counts` of each. A port
    /// whose device no longer answers (surprise removal: its counters read
    /// all ones) is an error naming it, and no line is printed: the run
    /// ends there instead of showing a dead port as idle.
    pub fn print<R: RegisterAccess>(
        &mut self,
        names: &[String],
        ports: &[&Nic<R>],
        counts: &[Counts],
    ) -> AppResult<()> {
        let dt = self.last.elapsed().as_secs_f64();
        let t = self.start.elapsed().as_secs();
        let devs = ports
            .iter()
            .zip(names)
            .map(|(nic, name)| device_stats(name, nic))
            .collect::<AppResult<Vec<_>>>()?;
        for (i, (dev, c)) in devs.into_iter().zip(counts).enumerate() {
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
        Ok(())
    }
}

/// The device counters of port `name` ([`Nic::try_stats`]); a device that
/// no longer answers is an error naming the port, where [`Nic::stats`]
/// would give the last totals as if the port were idle.
pub fn device_stats<R: RegisterAccess>(name: &str, nic: &Nic<R>) -> AppResult<DeviceStats> {
    nic.try_stats()
        .map_err(|e| format!("port {name} is gone: {e}").into())
}

/// The figures of `ports` (named `names`, the app's counts `counts` on
/// queue 0 of each) for `--stats` and `--prometheus`; a port whose device
/// no longer answers is an error naming it, as for the per-second line.
pub fn port_figures<R: RegisterAccess>(
    names: &[String],
    ports: &[&Nic<R>],
    counts: &[Counts],
) -> AppResult<Vec<PortFigures>> {
    names
        .iter()
        .zip(ports)
        .zip(counts)
        .map(|((name, nic), c)| {
            Ok(PortFigures {
                port: name.clone(),
                queue: 0,
                app: *c,
                device: device_stats(name, nic)?,
            })
        })
        .collect()
}

/// The counters of a NIC app's line: `bytes` and `frames` as the app counts
/// them (sent, received or forwarded); `errors`: frames its ports received
/// with a CRC error; `drops`: frames its ports dropped on receive (missed
/// or no descriptor).
pub fn nic_counters(bytes: u64, frames: u64, ports: &[PortFigures]) -> Counters {
    let sum = |f: fn(&DeviceStats) -> u64| {
        ports
            .iter()
            .fold(0u64, |s, p| s.saturating_add(f(&p.device)))
    };
    Counters {
        bytes,
        frames: Some(frames),
        ios: None,
        reads: None,
        errors: sum(|d| d.rx_crc_errors),
        drops: Some(sum(|d| d.rx_dropped())),
    }
}

/// The per-second line of a NIC app to `--stats`/`--prometheus`, if a
/// second has passed: see [`port_figures`] and [`nic_counters`].
pub fn monitor_second<R: RegisterAccess>(
    monitor: Option<&mut StatsFile>,
    names: &[String],
    ports: &[&Nic<R>],
    counts: &[Counts],
    bytes: u64,
    frames: u64,
) -> AppResult<()> {
    let Some(m) = monitor.filter(|m| m.due()) else {
        return Ok(());
    };
    let figs = port_figures(names, ports, counts)?;
    let c = nic_counters(bytes, frames, &figs);
    m.set_ports(figs);
    m.second(c);
    Ok(())
}

/// The final report of a NIC app to `--stats`/`--prometheus`: the ports'
/// figures now, the counters of [`nic_counters`], the app's `report`.
#[allow(clippy::too_many_arguments)]
pub fn monitor_finish<R: RegisterAccess>(
    monitor: Option<&mut StatsFile>,
    names: &[String],
    ports: &[&Nic<R>],
    counts: &[Counts],
    bytes: u64,
    frames: u64,
    ok: bool,
    report: JsonObject,
) -> AppResult<()> {
    let Some(m) = monitor else {
        return Ok(());
    };
    let figs = port_figures(names, ports, counts)?;
    let c = nic_counters(bytes, frames, &figs);
    m.set_ports(figs);
    let stopped_by = crate::signals::stop_signal_name();
    m.finish(ok, c, report.opt_str("stopped_by", stopped_by.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dma::{EmuIommu, RegionOptions};
    use drivers::nic::{Chip, NicOptions};
    use emu::nic::{EmuNic, NicModelConfig};
    use emu::RunMode;
    use std::sync::Arc;

    /// A port pulled off the bus mid-run: the per-second line and the
    /// final counters end the run with one error naming the port, where
    /// `Nic::stats` went on showing the last totals (an idle port).
    #[test]
    fn a_removed_port_ends_the_run_with_its_name() {
        for chip in [Chip::I82576, Chip::I350, Chip::X82599] {
            let cfg = NicModelConfig {
                mac: [2, 0, 0, 0, 0, 9],
                queues: 0,
                link_up: true,
                flow_control: false,
            };
            let wire = emu::wire::open_wire("loop").unwrap();
            let iommu = Arc::new(EmuIommu::new());
            let emu = EmuNic::with_iommu(chip, cfg, wire, RunMode::Inline, iommu).unwrap();
            emu.pci().enable();
            let opts = NicOptions {
                region: RegionOptions::EMULATED,
                ..NicOptions::default()
            };
            let nic = Nic::init(emu.bar(), emu.mapper(), chip, opts).unwrap();
            let names = ["emu:port-a".to_string()];
            let mut printer = RatePrinter::new(1);
            printer
                .print(&names, &[&nic], &[Counts::default()])
                .unwrap();
            assert!(device_stats(&names[0], &nic).is_ok());
            emu.surprise_remove();
            let e = printer
                .print(&names, &[&nic], &[Counts::default()])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("port emu:port-a is gone: NIC not responding"),
                "{chip:?}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
            let e = device_stats(&names[0], &nic).unwrap_err().to_string();
            assert!(e.contains("emu:port-a") && e.contains("FFFFFFFFh"), "{e}");
        }
    }
}
