//! Tests against real devices behind a real IOMMU: they run inside the QEMU
//! guest of the real-VFIO lane (hw-setup/vm/run.sh), which sets
//! `VFIO_GUEST_NVME=ADDR,ADDR` (two NVMe controllers bound to vfio-pci, the
//! first with a 512 B-LBA namespace 1, the second with a 4 KiB-LBA one) and
//! `VFIO_GUEST_NIC=ADDR` (an igb port bound to vfio-pci) and
//! `VFIO_GUEST_GROUP=ADDR,ADDR` (two NVMe controllers behind a PCI bridge,
//! so in one IOMMU group). Anywhere else they are skipped with one line.
//!
//! What the apps do not cover: several devices open in one process share one
//! VFIO container, so one pool serves DMA of two controllers; the process's
//! bookkeeping refuses a second open; a device can be closed and opened
//! again; two functions of one IOMMU group are open at once, and closing one
//! leaves the group (and the DMA mappings) to the other.
#![forbid(unsafe_code)]

use dma::{Pool, RegionOptions};
use drivers::nvme::{NvmeController, NvmeOptions};
use drivers::pci::PciAddress;
use drivers::regs::RegisterAccess;
use drivers::vfio::{VfioBar, VfioError, VfioPciDevice};
use std::sync::{Arc, Mutex};

/// The process's VFIO state is global: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Devices {
    nvme: [PciAddress; 2],
    nic: PciAddress,
    group: [PciAddress; 2],
}

fn two(var: &str, value: &str) -> [PciAddress; 2] {
    let addrs: Vec<PciAddress> = value
        .split(',')
        .map(|a| a.parse().unwrap_or_else(|e| panic!("{var}: {e}")))
        .collect();
    addrs
        .try_into()
        .unwrap_or_else(|_| panic!("{var} holds two PCI addresses"))
}

fn devices() -> Option<Devices> {
    let (Ok(nvme), Ok(nic), Ok(group)) = (
        std::env::var("VFIO_GUEST_NVME"),
        std::env::var("VFIO_GUEST_NIC"),
        std::env::var("VFIO_GUEST_GROUP"),
    ) else {
        eprintln!(
            "skipped: no real devices (VFIO_GUEST_NVME, VFIO_GUEST_NIC, VFIO_GUEST_GROUP); these \
             tests run in the QEMU guest of `bash hw-setup/vm/run.sh`"
        );
        return None;
    };
    Some(Devices {
        nvme: two("VFIO_GUEST_NVME", &nvme),
        nic: nic.parse().expect("VFIO_GUEST_NIC is a PCI address"),
        group: two("VFIO_GUEST_GROUP", &group),
    })
}

fn controller(dev: &VfioPciDevice) -> NvmeController<VfioBar> {
    NvmeController::init(
        dev.bar0().clone(),
        dev.mapper(),
        NvmeOptions {
            region: RegionOptions::HARDWARE,
            ..NvmeOptions::default()
        },
    )
    .expect("controller init")
}

#[test]
fn devices_of_one_process_share_one_container() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(d) = devices() else { return };
    let a = VfioPciDevice::open(&d.nvme[0]).expect("open the first NVMe controller");
    let b = VfioPciDevice::open(&d.nvme[1]).expect("open the second NVMe controller");
    let nic = VfioPciDevice::open(&d.nic).expect("open the igb port");
    assert!(Arc::ptr_eq(a.container_mapper(), b.container_mapper()));
    assert!(Arc::ptr_eq(a.container_mapper(), nic.container_mapper()));
    assert_ne!(a.iommu_group(), b.iommu_group());
    assert_eq!((a.vendor_id(), a.device_id()), (0x1b36, 0x0010));
    assert_eq!((nic.vendor_id(), nic.device_id()), (0x8086, 0x10c9));
    eprintln!(
        "opened {} (group {}, reset {}), {} (group {}, reset {}), {} (group {}, reset {})",
        a.addr(),
        a.iommu_group(),
        a.was_reset(),
        b.addr(),
        b.iommu_group(),
        b.was_reset(),
        nic.addr(),
        nic.iommu_group(),
        nic.was_reset()
    );

    // A second open of a function this process holds is refused by name.
    let again = VfioPciDevice::open(&d.nvme[0]).unwrap_err();
    assert!(matches!(again, VfioError::AlreadyOpen { .. }), "{again:?}");

    // BAR0 answers: NVMe CAP.MQES is not all ones; the 82576's STATUS
    // register (0x0008) reads as a register, not as a missing device.
    let cap = a.read64(0);
    assert_ne!(cap, u64::MAX);
    assert_ne!(cap & 0xffff, 0);
    let status = nic.read32(0x0008);
    assert_ne!(status, u32::MAX);
    eprintln!(
        "NVMe CAP {cap:#018x}; igb BAR0 {} KiB, STATUS {status:#010x}",
        nic.bar0().len() >> 10
    );

    // Config space through VFIO matches sysfs, and bus mastering is on.
    let mut cmd = [0u8; 2];
    nic.read_config(4, &mut cmd).expect("config read");
    assert_eq!(u16::from_le_bytes(cmd) & 0b110, 0b110);
}

#[test]
fn one_pool_serves_dma_of_two_controllers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(d) = devices() else { return };
    let a = VfioPciDevice::open(&d.nvme[0]).expect("open the first NVMe controller");
    let b = VfioPciDevice::open(&d.nvme[1]).expect("open the second NVMe controller");
    let ca = controller(&a);
    let cb = controller(&b);
    // One pool, mapped once into the shared container, used by both.
    let pool = Pool::new(a.mapper(), 2, 256 << 10, RegionOptions::HARDWARE).expect("pool");
    let mut data = pool.alloc().unwrap();
    let mut back = pool.alloc().unwrap();
    let mut qa = ca.create_io_queue_pair(8).expect("queue pair on A");
    let mut qb = cb.create_io_queue_pair(8).expect("queue pair on B");
    // 256 KiB from A's namespace 1 (512 B blocks) at 1 MiB ...
    data = qa.read(1, (1 << 20) / 512, data).expect("read from A");
    assert!(
        data.as_slice().iter().any(|&x| x != 0),
        "the disk image is not all zeros"
    );
    // ... written to B's namespace 1 (4 KiB blocks) at 8 MiB, read back.
    data = qb.write(1, (8 << 20) / 4096, data).expect("write to B");
    back = qb
        .read(1, (8 << 20) / 4096, back)
        .expect("read back from B");
    assert!(
        data.as_slice() == back.as_slice(),
        "B gave back other bytes"
    );
    ca.delete_io_queue_pair(qa).unwrap();
    cb.delete_io_queue_pair(qb).unwrap();
    drop((data, back, pool));
    ca.shutdown().expect("shutdown A");
    cb.shutdown().expect("shutdown B");
}

#[test]
fn a_closed_device_opens_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(d) = devices() else { return };
    for round in 0..3 {
        // Every device of the process is closed at the end of a round, so the
        // container loses its last group and its IOMMU, and gets them back.
        let dev = VfioPciDevice::open(&d.nvme[1])
            .unwrap_or_else(|e| panic!("open in round {round}: {e}"));
        let ctrl = controller(&dev);
        let ns = ctrl.namespace(1).expect("namespace 1").clone();
        assert_eq!(ns.lba_size, 4096);
        let pool = Pool::new(dev.mapper(), 1, 64 << 10, RegionOptions::HARDWARE).unwrap();
        let mut buf = pool.alloc().unwrap();
        let mut qp = ctrl.create_io_queue_pair(4).unwrap();
        buf = qp
            .read(1, 0, buf)
            .unwrap_or_else(|e| panic!("read in round {round}: {e}"));
        ctrl.delete_io_queue_pair(qp).unwrap();
        drop((buf, pool));
        ctrl.shutdown().unwrap();
    }
}

#[test]
fn two_functions_of_one_group() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(d) = devices() else { return };
    let a = VfioPciDevice::open(&d.group[0]).expect("open the first function of the group");
    // The process holds /dev/vfio/N already: the second open must use it,
    // not open the node again (which the kernel refuses with EBUSY).
    let b = VfioPciDevice::open(&d.group[1]).expect("open the second function of the group");
    assert_eq!(a.iommu_group(), b.iommu_group());
    assert!(Arc::ptr_eq(a.container_mapper(), b.container_mapper()));
    let ca = controller(&a);
    let cb = controller(&b);
    let pool = Pool::new(b.mapper(), 1, 64 << 10, RegionOptions::HARDWARE).unwrap();
    let mut buf = pool.alloc().unwrap();
    let mut qa = ca.create_io_queue_pair(4).unwrap();
    buf = qa
        .write(1, 16, buf)
        .expect("write through the first function");
    ca.delete_io_queue_pair(qa).unwrap();
    ca.shutdown().unwrap();
    // Closing the first function keeps the group attached for the second:
    // its queues and the pool stay mapped.
    drop(a);
    let mut qb = cb.create_io_queue_pair(4).unwrap();
    buf.as_mut_slice().fill(0xa5);
    buf = qb
        .read(1, 0, buf)
        .expect("read through the second function after the first closed");
    assert!(
        buf.as_slice().iter().all(|&x| x == 0),
        "the null device reads zeros"
    );
    cb.delete_io_queue_pair(qb).unwrap();
    drop((buf, pool));
    cb.shutdown().unwrap();
}
