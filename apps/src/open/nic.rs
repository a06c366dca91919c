//! Opening NIC ports from device strings, real or emulated, and handing
//! them to code that is generic over the register access.
#![forbid(unsafe_code)]

use crate::open::device::{DeviceSpec, EmuNicSpec};
use crate::trace::{session, step};
use crate::AppResult;
use dma::{EmuIommu, Mapper, RegionOptions};
use drivers::nic::{Chip, Nic, NicOptions};
use drivers::regs::RegisterAccess;
use drivers::trace::DeviceKind;
use drivers::vfio::VfioPciDevice;
use emu::nic::{EmuNic, NicModelConfig};
use emu::wire::open_wire;
use emu::RunMode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An opened port.
pub struct Port<R: RegisterAccess> {
    /// The driver's port.
    pub nic: Arc<Nic<R>>,
    /// The mapper its DMA memory goes through (shared by all ports of the process).
    pub mapper: Arc<dyn Mapper>,
    /// Region options for pools of this port (hugepages; emulated: with fallback).
    pub region: RegionOptions,
    /// The device string as given.
    pub name: String,
    /// "vfio", "emulated igb (threaded) on pair:a", ...
    pub backend: String,
    /// `port NAME: link up, 10 Gb/s full duplex`, once the link was seen up.
    link: Option<String>,
}

impl<R: RegisterAccess> Port<R> {
    /// Bring up the port `name` of `chip` behind `regs`, its DMA memory
    /// through `mapper` with `region`.
    fn init(
        regs: R,
        mapper: Arc<dyn Mapper>,
        chip: Chip,
        region: RegionOptions,
        opts: &NicOptions,
        name: &str,
        backend: String,
    ) -> AppResult<Port<R>> {
        let nic = Nic::init(
            regs,
            mapper.clone(),
            chip,
            NicOptions {
                region,
                ..opts.clone()
            },
        )?;
        Ok(Port {
            nic: Arc::new(nic),
            mapper,
            region,
            name: name.to_string(),
            backend,
            link: None,
        })
    }

    /// Print the line that names the port's link, its speed and duplex, as
    /// found at start ([`crate::link::await_link`]); apps print it after
    /// their own first line.
    pub fn print_link(&self) {
        if let Some(l) = &self.link {
            println!("{l}");
        }
    }
}

/// Work to do with opened ports.
pub trait NicJob {
    /// The job's result.
    type Output;
    /// Run the job on the ports, in the order of the device strings.
    fn run<R: RegisterAccess + 'static>(self, ports: Vec<Port<R>>) -> AppResult<Self::Output>;

    /// Check port `index` (device string `name`), a `chip` with `queues` RX
    /// and TX queues, before it is set up: a job refuses here, in its own
    /// options' terms, what the driver would refuse in its own (a thread
    /// count that needs more queues than the port has).
    fn check_port(&self, _index: usize, _name: &str, _chip: Chip, _queues: u16) -> AppResult<()> {
        Ok(())
    }
}

/// A port of `chip` in the trace's device table.
fn trace_kind(chip: Chip) -> DeviceKind {
    match chip {
        Chip::I82576 | Chip::I350 => DeviceKind::Igb,
        Chip::X82599 => DeviceKind::Ixgbe,
    }
}

fn emu_mac(index: usize) -> [u8; 6] {
    // Locally administered, unique per port of the process and per process.
    let pid = std::process::id();
    [
        0x02,
        (pid >> 16) as u8,
        (pid >> 8) as u8,
        pid as u8,
        0,
        index as u8 + 1,
    ]
}

fn not_a_nic(device: &str, what: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!(
        "{device} is {what}, not a NIC; give an Intel 82576/I350/82599 port (see \
         `hw-setup/devbind.sh status`) or an emulated one like emu:igb,wire=pair:a"
    )
    .into()
}

/// Open the ports named by `devices` (all emulated or all real: one kind of
/// register access per process run) and run `job` on them. Each port's link
/// is waited for up to `opts.link_timeout` (the apps' `--link-timeout`) and
/// named with its speed and duplex ([`crate::link::await_link`]); a port
/// without link by then is an error naming it.
pub fn with_nics<J: NicJob>(devices: &[String], opts: NicOptions, job: J) -> AppResult<J::Output> {
    with_nics_in(devices, opts, None, job)
}

/// Like [`with_nics`]; emulated ports go behind `iommu` when one is given
/// (shared with an emulated NVMe controller opened with
/// [`crate::open::with_nvme_in`], so a port can send from its buffers).
pub fn with_nics_in<J: NicJob>(
    devices: &[String],
    opts: NicOptions,
    iommu: Option<Arc<EmuIommu>>,
    job: J,
) -> AppResult<J::Output> {
    // The driver's init does not wait: the ports are brought up first, then
    // waited for together, and a link still down is an error here (the
    // driver's init would return with it down).
    let link_timeout = opts.link_timeout;
    let opts = NicOptions {
        link_timeout: Duration::ZERO,
        ..opts
    };
    let specs = devices
        .iter()
        .map(|d| d.parse::<DeviceSpec>().map_err(|e| e.into()))
        .collect::<AppResult<Vec<_>>>()?;
    for (i, a) in devices.iter().enumerate() {
        if devices[..i].contains(a) && !a.starts_with("emu:") {
            return Err(format!("{a} is given twice; give each port once").into());
        }
    }
    let emulated = specs
        .iter()
        .filter(|s| matches!(s, DeviceSpec::EmuNic(_) | DeviceSpec::EmuNvme(_)))
        .count();
    if emulated != 0 && emulated != specs.len() {
        return Err(
            "emulated and real ports cannot be mixed in one run; give only emu: \
                    devices or only PCI addresses"
                .into(),
        );
    }
    if emulated != 0 {
        let nics: Vec<&EmuNicSpec> = specs
            .iter()
            .zip(devices)
            .map(|(s, d)| match s {
                DeviceSpec::EmuNic(n) => Ok(n),
                _ => Err(not_a_nic(d, "an emulated NVMe controller")),
            })
            .collect::<AppResult<_>>()?;
        // One IOMMU for all ports, like one VFIO container per process, so a
        // buffer received on one port can be sent on another.
        let iommu = iommu.unwrap_or_else(|| Arc::new(EmuIommu::new()));
        let mut models = Vec::new();
        let mut ports = Vec::new();
        for (n, dev) in nics.iter().zip(devices) {
            session::check_step(dev, n.mode == RunMode::Inline)?;
        }
        for (i, (n, dev)) in nics.iter().zip(devices).enumerate() {
            job.check_port(i, dev, n.chip, n.queues.unwrap_or(n.chip.max_queues()))?;
            let wire = open_wire(&n.wire)?;
            let cfg = NicModelConfig {
                mac: n.mac.unwrap_or_else(|| emu_mac(i)),
                queues: n.queues.unwrap_or(0),
                link_up: n.link_down.is_none_or(|d| !d.at.is_zero()),
                flow_control: n.flow_control,
            };
            let emu = EmuNic::with_iommu(n.chip, cfg, wire, n.mode, iommu.clone())?;
            emu.pci().enable();
            if let Some(after) = n.remove_after {
                // The surprise removal asked for (remove-after=): the model
                // is shared, the timer thread ends with the process.
                let model = emu.model().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(after);
                    model.surprise_remove();
                });
            }
            if let Some(down) = n.link_down {
                // The pulled cable asked for (link-down=AT[:FOR]); the timer
                // thread holds the model, and ends with the process.
                let model = emu.model().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(down.at);
                    model.set_link(false);
                    if let Some(d) = down.duration {
                        std::thread::sleep(d);
                        model.set_link(true);
                    }
                });
            }
            let backend = format!(
                "emulated {} ({}) on {}",
                n.chip,
                format!("{:?}", n.mode).to_lowercase(),
                n.wire
            );
            let (mut regs, mapper) = (emu.bar(), emu.mapper());
            let trace = session::device(dev, trace_kind(n.chip), true);
            if trace.is_on() {
                regs.set_trace(trace.clone());
                emu.set_tap(trace.clone());
            }
            if let Some(hook) =
                session::current()
                    .and_then(|s| s.step_parts())
                    .map(|(stepper, source)| {
                        step::nic_hook(stepper, source, emu.model().clone(), emu.iommu().clone())
                    })
            {
                regs.set_step(hook);
            }
            let region = RegionOptions::EMULATED;
            let opts = NicOptions {
                trace,
                ..opts.clone()
            };
            ports.push(Port::init(
                regs, mapper, n.chip, region, &opts, dev, backend,
            )?);
            models.push(emu);
        }
        await_links(&mut ports, link_timeout)?;
        let out = job.run(ports);
        drop(models);
        return out;
    }
    if let Some(dev) = devices.first() {
        session::check_step(dev, false)?;
    }
    let mut ports = Vec::new();
    let mut devs = Vec::new();
    for (i, (spec, dev)) in specs.iter().zip(devices).enumerate() {
        let DeviceSpec::Pci(addr) = spec else {
            unreachable!("all specs are PCI addresses here (checked above)")
        };
        let d = VfioPciDevice::open(addr)?;
        let Some(chip) = Chip::from_pci_ids(d.vendor_id(), d.device_id()) else {
            let what = if d.class() == spec::nvme::PCI_CLASS_NVME {
                "an NVMe controller".to_string()
            } else {
                format!(
                    "a device this framework has no NIC driver for ({:04x}:{:04x}, class {:06x})",
                    d.vendor_id(),
                    d.device_id(),
                    d.class()
                )
            };
            return Err(not_a_nic(dev, &what));
        };
        job.check_port(i, dev, chip, chip.max_queues())?;
        let region = RegionOptions {
            page_size: opts.region.page_size,
            ..RegionOptions::HARDWARE
        };
        let (mut regs, mapper) = (d.bar0().clone(), d.mapper());
        let trace = session::device(dev, trace_kind(chip), false);
        if trace.is_on() {
            regs.set_trace(trace.clone());
        }
        let opts = NicOptions {
            trace,
            ..opts.clone()
        };
        let backend = format!("vfio {chip}");
        ports.push(Port::init(regs, mapper, chip, region, &opts, dev, backend)?);
        devs.push(d);
    }
    await_links(&mut ports, link_timeout)?;
    let out = job.run(ports);
    drop(devs);
    out
}

/// Wait for every port's link, all against one deadline `timeout` from now
/// (the ports came up together, so their links negotiate at once).
fn await_links<R: RegisterAccess>(ports: &mut [Port<R>], timeout: Duration) -> AppResult<()> {
    let deadline = Instant::now() + timeout;
    for p in ports {
        p.link = Some(crate::link::await_link(&p.nic, &p.name, deadline, timeout)?);
    }
    Ok(())
}
