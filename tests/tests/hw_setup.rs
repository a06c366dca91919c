//! Tests of the hw-setup/ shell scripts against fake sysfs/procfs/devfs trees.
//!
//! The scripts read and write every system path through SYSFS_ROOT,
//! PROCFS_ROOT, DEVFS_ROOT, ETC_ROOT and HWSETUP_STATE_DIR, so a test builds a
//! tree, runs a script, and checks what it printed and what it wrote. In a
//! fake tree nothing reacts to writes; the kernel's answer to a bind is
//! simulated up front: the kernel links /sys/bus/pci/drivers/DRV/ADDR when
//! DRV has claimed ADDR, so a test creates that link for a bind that works
//! and leaves it out for one that fails. The hugepage shortfall test plays
//! the kernel through a FIFO.
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hw-setup")
        .canonicalize()
        .expect("hw-setup/ next to tests/")
        .join(name)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fake tree: ROOT/{sys,proc,dev,etc,state}. Removed on drop.
struct Tree {
    root: PathBuf,
}

const DEVICES: &str = "sys/devices/pci0000:00";

impl Tree {
    fn new(name: &str) -> Tree {
        let root = std::env::temp_dir().join(format!(
            "hw-setup-{}-{}-{}",
            name,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&root);
        let t = Tree { root };
        for d in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/kernel/iommu_groups",
            "sys/class/net",
            "sys/module",
            DEVICES,
            "proc/net",
            "dev",
            "etc",
        ] {
            fs::create_dir_all(t.path(d)).unwrap();
        }
        t.write("sys/bus/pci/drivers_probe", "");
        t.write(
            "proc/mounts",
            "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n",
        );
        t.write(
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
        );
        t
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn sys(&self) -> String {
        self.path("sys").display().to_string()
    }

    fn state(&self) -> String {
        self.path("state").display().to_string()
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    fn link(&self, rel: &str, target_rel: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(self.path(target_rel), p).unwrap();
    }

    fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.path(rel)).unwrap();
    }

    /// A registered PCI driver with its bind/unbind files.
    fn driver(&self, name: &str) {
        self.write(&format!("sys/bus/pci/drivers/{name}/bind"), "");
        self.write(&format!("sys/bus/pci/drivers/{name}/unbind"), "");
    }

    fn dev(&self, addr: &str) -> String {
        format!("{DEVICES}/{addr}")
    }

    /// A PCI function, optionally bound to a driver and in an IOMMU group.
    fn pci(&self, addr: &str, class: &str, ids: &str, driver: Option<&str>, group: Option<u32>) {
        let d = self.dev(addr);
        let (v, dv) = ids.split_once(':').unwrap();
        self.write(&format!("{d}/class"), &format!("{class}\n"));
        self.write(&format!("{d}/vendor"), &format!("0x{v}\n"));
        self.write(&format!("{d}/device"), &format!("0x{dv}\n"));
        self.write(&format!("{d}/driver_override"), "(null)\n");
        self.link(&format!("sys/bus/pci/devices/{addr}"), &d);
        if let Some(drv) = driver {
            self.driver_link(addr, drv);
            self.claimed(addr, drv);
        }
        if let Some(g) = group {
            self.link(
                &format!("{d}/iommu_group"),
                &format!("sys/kernel/iommu_groups/{g}"),
            );
            self.link(&format!("sys/kernel/iommu_groups/{g}/devices/{addr}"), &d);
        }
    }

    /// The device's own `driver` link.
    fn driver_link(&self, addr: &str, drv: &str) {
        if !self.exists(&format!("sys/bus/pci/drivers/{drv}")) {
            self.driver(drv);
        }
        self.link(
            &format!("{}/driver", self.dev(addr)),
            &format!("sys/bus/pci/drivers/{drv}"),
        );
    }

    /// The link the kernel makes in the driver's directory when it claims the
    /// device: what the scripts look at to see whether a bind worked.
    fn claimed(&self, addr: &str, drv: &str) {
        if !self.exists(&format!("sys/bus/pci/drivers/{drv}")) {
            self.driver(drv);
        }
        self.link(
            &format!("sys/bus/pci/drivers/{drv}/{addr}"),
            &self.dev(addr),
        );
    }

    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(script(name));
        c.env("SYSFS_ROOT", self.path("sys"))
            .env("PROCFS_ROOT", self.path("proc"))
            .env("DEVFS_ROOT", self.path("dev"))
            .env("ETC_ROOT", self.path("etc"))
            .env("HWSETUP_STATE_DIR", self.path("state"))
            .env("HWSETUP_BIND_TIMEOUT", "0");
        c
    }

    fn run(&self, name: &str, args: &[&str]) -> Run {
        let mut c = self.cmd(name);
        c.args(args);
        run_cmd(c)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Run with a deadline so a script blocked on a FIFO fails the test instead
/// of hanging it.
fn run_cmd(mut c: Command) -> Run {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("spawn script");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => {
            let out = out.expect("wait for script");
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("script did not finish within 60 s");
        }
    }
}

const NVME: &str = "0000:04:00.0";
const NIC0: &str = "0000:03:00.0";
const NIC1: &str = "0000:03:00.1";

/// A host with an NVMe drive (nvme, group 13, nvme0n1 with partition p1), a
/// two-port 82599 (ixgbe, both ports in group 12, eth1/eth2), a SATA
/// controller that status must not list, and vfio-pci registered.
fn host(name: &str) -> Tree {
    let t = Tree::new(name);
    t.driver("vfio-pci");
    t.pci(NVME, "0x010802", "144d:a808", Some("nvme"), Some(13));
    let ns = format!("{}/nvme/nvme0/nvme0n1", t.dev(NVME));
    t.write(&format!("{ns}/dev"), "259:0\n");
    t.write(&format!("{ns}/nvme0n1p1/partition"), "1\n");
    t.mkdir(&format!("{ns}/holders"));
    t.mkdir(&format!("{ns}/nvme0n1p1/holders"));
    t.pci(NIC0, "0x020000", "8086:10fb", Some("ixgbe"), Some(12));
    t.pci(NIC1, "0x020000", "8086:10fb", Some("ixgbe"), Some(12));
    t.mkdir(&format!("{}/net/eth1", t.dev(NIC0)));
    t.mkdir(&format!("{}/net/eth2", t.dev(NIC1)));
    t.pci(
        "0000:00:1f.2",
        "0x010601",
        "8086:a352",
        Some("ahci"),
        Some(5),
    );
    t
}

fn assert_untouched(t: &Tree, addr: &str, drv: &str) {
    assert_eq!(
        t.read(&format!("{}/driver_override", t.dev(addr))),
        "(null)\n"
    );
    assert_eq!(t.read(&format!("sys/bus/pci/drivers/{drv}/unbind")), "");
    assert_eq!(t.read("sys/bus/pci/drivers_probe"), "");
    assert!(!t.exists(&format!("state/{addr}")), "state file written");
}

// ------------------------------------------------------------------ devbind

#[test]
fn bind_rejects_malformed_addresses() {
    let t = host("badaddr");
    for bad in [
        "3:00.0",
        "03:00",
        "0000:03:20.0",
        "03:00.8",
        "zz:00.0",
        "0000:03:00.0.1",
    ] {
        let r = t.run("devbind.sh", &["bind", bad]);
        assert_eq!(r.code, 1, "{bad}: {r:?}");
        assert_eq!(r.stdout, "", "{bad}");
        assert_eq!(
            r.stderr,
            format!(
                "devbind.sh: error: invalid PCI address '{bad}': expected DDDD:BB:DD.F or BB:DD.F in hex \
                 (domain:bus:device.function, device 00-1f, function 0-7), e.g. 0000:03:00.0 or 03:00.0; \
                 'devbind.sh status' lists the addresses on this host\n"
            ),
            "{bad}"
        );
    }
    // One bad address in a list stops everything before any write.
    let r = t.run("devbind.sh", &["bind", "04:00.0", "4:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_untouched(&t, NVME, "nvme");
    // A well-formed address of a device that does not exist.
    let r = t.run("devbind.sh", &["bind", "0a:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "devbind.sh: error: no PCI device 0000:0a:00.0 (no {}/bus/pci/devices/0000:0a:00.0); \
             'devbind.sh status' lists the NICs and NVMe drives\n",
            t.sys()
        )
    );
}

#[test]
fn status_lists_nvme_and_nics_with_driver_group_and_names() {
    let t = host("status");
    let r = t.run("devbind.sh", &["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr, "");
    assert_eq!(
        r.stdout,
        "IOMMU: 3 groups\n\
         \n\
         Network controllers (PCI class 0x02):\n\
         \x20 0000:03:00.0 8086:10fb driver=ixgbe iommu_group=12 if=eth1\n\
         \x20     group 12 also has: 0000:03:00.1 driver=ixgbe (host driver: bind it too before using the group)\n\
         \x20 0000:03:00.1 8086:10fb driver=ixgbe iommu_group=12 if=eth2\n\
         \x20     group 12 also has: 0000:03:00.0 driver=ixgbe (host driver: bind it too before using the group)\n\
         \n\
         NVMe drives (PCI class 0x010802):\n\
         \x20 0000:04:00.0 144d:a808 driver=nvme iommu_group=13 block=nvme0n1,nvme0n1p1\n"
    );
}

#[test]
fn status_shows_vfio_node_recorded_driver_and_what_is_in_use() {
    let t = host("status2");
    // The NVMe drive already bound to vfio-pci by us, the NIC carrying the
    // default route, a multipath NVMe controller whose disk is mounted.
    fs::remove_file(t.path(&format!("{}/driver", t.dev(NVME)))).unwrap();
    t.driver_link(NVME, "vfio-pci");
    t.write("dev/vfio/13", "");
    t.write(&format!("state/{NVME}"), "driver=nvme\n");
    t.write(
        "proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         eth1\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
    );
    let mp = "0000:05:00.0";
    t.pci(mp, "0x010802", "1b36:0010", Some("nvme"), Some(14));
    t.mkdir(&format!("{}/nvme/nvme1/nvme1c1n1", t.dev(mp)));
    let sub = "sys/devices/virtual/nvme-subsystem/nvme-subsys1";
    t.link(
        &format!("{sub}/nvme1"),
        &format!("{}/nvme/nvme1", t.dev(mp)),
    );
    t.write(&format!("{sub}/nvme1n1/nvme1n1p2/partition"), "2\n");
    t.link("sys/class/nvme-subsystem/nvme-subsys1", sub);
    t.write("proc/mounts", "/dev/nvme1n1p2 /srv ext4 rw 0 0\n");

    let r = t.run("devbind.sh", &["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    let expected = format!(
        "IOMMU: 4 groups\n\
         \n\
         Network controllers (PCI class 0x02):\n\
         \x20 0000:03:00.0 8086:10fb driver=ixgbe iommu_group=12 if=eth1\n\
         \x20     in use: its interface eth1 carries the default route\n\
         \x20     group 12 also has: 0000:03:00.1 driver=ixgbe (host driver: bind it too before using the group)\n\
         \x20 0000:03:00.1 8086:10fb driver=ixgbe iommu_group=12 if=eth2\n\
         \x20     group 12 also has: 0000:03:00.0 driver=ixgbe (host driver: bind it too before using the group)\n\
         \n\
         NVMe drives (PCI class 0x010802):\n\
         \x20 0000:04:00.0 144d:a808 driver=vfio-pci iommu_group=13 block=nvme0n1,nvme0n1p1 dev={}/dev/vfio/13 original=nvme\n\
         \x20 0000:05:00.0 1b36:0010 driver=nvme iommu_group=14 block=nvme1n1,nvme1n1p2\n\
         \x20     in use: nvme1n1p2 is mounted on /srv\n",
        t.root.display()
    );
    assert_eq!(r.stdout, expected);
}

#[test]
fn bind_uses_driver_override_and_records_the_original_driver() {
    let t = host("bind");
    t.claimed(NVME, "vfio-pci"); // the kernel will accept it
    let r = t.run("devbind.sh", &["bind", "04:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "0000:04:00.0: bound to vfio-pci (was nvme; recorded in {}/0000:04:00.0), IOMMU group 13\n",
            t.state()
        )
    );
    assert_eq!(r.stderr, "");
    assert_eq!(
        t.read(&format!("{}/driver_override", t.dev(NVME))),
        "vfio-pci\n"
    );
    assert_eq!(t.read("sys/bus/pci/drivers/nvme/unbind"), "0000:04:00.0\n");
    assert_eq!(t.read("sys/bus/pci/drivers_probe"), "0000:04:00.0\n");
    // Never new_id, never a direct bind to vfio-pci.
    assert!(!t.exists("sys/bus/pci/drivers/vfio-pci/new_id"));
    assert_eq!(t.read("sys/bus/pci/drivers/vfio-pci/bind"), "");
    assert_eq!(t.read("state/0000:04:00.0"), "driver=nvme\n");

    // Binding again keeps the first record (it must not become "vfio-pci").
    fs::remove_file(t.path(&format!("{}/driver", t.dev(NVME)))).unwrap();
    t.driver_link(NVME, "vfio-pci");
    let r = t.run("devbind.sh", &["bind", NVME]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "0000:04:00.0: already bound to vfio-pci\n");
    assert_eq!(t.read("state/0000:04:00.0"), "driver=nvme\n");
}

#[test]
fn bind_warns_about_group_members_with_a_host_driver() {
    let t = host("group");
    t.claimed(NIC0, "vfio-pci");
    let r = t.run("devbind.sh", &["bind", "03:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stderr,
        "devbind.sh: warning: IOMMU group 12 is not usable yet: 0000:03:00.1 (ixgbe) still has a host driver. \
         All devices of a group go to one process: bind them too ('devbind.sh bind 0000:03:00.1') or move \
         the card to another slot.\n"
    );
    // Binding both ports in one run: no warning.
    let t = host("group2");
    t.claimed(NIC0, "vfio-pci");
    t.claimed(NIC1, "vfio-pci");
    let r = t.run("devbind.sh", &["bind", "03:00.0", "03:00.1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr, "");
    assert_eq!(
        t.read("sys/bus/pci/drivers/ixgbe/unbind"),
        "0000:03:00.0\n0000:03:00.1\n"
    );
    assert_eq!(
        t.read("sys/bus/pci/drivers_probe"),
        "0000:03:00.0\n0000:03:00.1\n"
    );
}

#[test]
fn failed_bind_gives_the_device_back_to_its_driver() {
    let t = host("bindfail");
    // No vfio-pci/0000:04:00.0 link: vfio-pci does not claim the device.
    let r = t.run("devbind.sh", &["bind", NVME]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "devbind.sh: error: binding 0000:04:00.0 to vfio-pci failed: vfio-pci did not claim the device \
         (see 'dmesg | grep 0000:04:00.0'). Fix: check that no other process holds the device, and run \
         check-iommu.sh. The device was given back to nvme.\n"
    );
    // It was unbound from nvme and offered to vfio-pci...
    assert_eq!(t.read("sys/bus/pci/drivers/nvme/unbind"), "0000:04:00.0\n");
    assert_eq!(t.read("sys/bus/pci/drivers_probe"), "0000:04:00.0\n");
    // ...then driver_override was cleared and it was bound to nvme again.
    assert_eq!(t.read(&format!("{}/driver_override", t.dev(NVME))), "\n");
    assert_eq!(t.read("sys/bus/pci/drivers/nvme/bind"), "0000:04:00.0\n");
    assert!(
        !t.exists("state/0000:04:00.0"),
        "record of a device we gave back"
    );
}

#[test]
fn bind_without_iommu_group_is_refused_and_forced_bind_explains_error_22() {
    let t = Tree::new("noiommu");
    t.driver("vfio-pci");
    t.pci(NVME, "0x010802", "144d:a808", Some("nvme"), None);
    let fix = "Fix: enable VT-d (Intel) or AMD-Vi (AMD) in the firmware setup and boot with intel_iommu=on \
               or amd_iommu=on; for testing without isolation only: modprobe vfio \
               enable_unsafe_noiommu_mode=1 (see check-iommu.sh)";
    let r = t.run("devbind.sh", &["bind", NVME]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "devbind.sh: error: refusing to bind 0000:04:00.0: it has no IOMMU group, so vfio-pci would \
             fail to probe it (error -22). {fix}\n"
        )
    );
    assert_untouched(&t, NVME, "nvme");

    let r = t.run("devbind.sh", &["bind", "--force", NVME]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "devbind.sh: warning: 0000:04:00.0 has no IOMMU group; trying anyway (--force)\n\
             devbind.sh: error: binding 0000:04:00.0 to vfio-pci failed: the device has no IOMMU group, so \
             vfio-pci refuses it (kernel log: \"vfio-pci: probe of 0000:04:00.0 failed with error -22\"). \
             {fix}. The device was given back to nvme.\n"
        )
    );
    assert_eq!(t.read("sys/bus/pci/drivers/nvme/bind"), "0000:04:00.0\n");
    assert_eq!(t.read(&format!("{}/driver_override", t.dev(NVME))), "\n");
    assert!(!t.exists("state/0000:04:00.0"));
}

#[test]
fn bind_refuses_a_drive_with_a_mounted_partition_unless_forced() {
    let t = host("mounted");
    t.claimed(NVME, "vfio-pci");
    t.write(
        "proc/mounts",
        "/dev/sda1 / ext4 rw 0 0\n/dev/nvme0n1p1 /data xfs rw,relatime 0 0\n",
    );
    let r = t.run("devbind.sh", &["bind", "04:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "devbind.sh: error: refusing to bind 0000:04:00.0: nvme0n1p1 is mounted on /data. Fix: unmount \
         its filesystems (umount), swapoff, or stop the LVM/RAID/dm-crypt on it first, or pass --force \
         (the host then loses the drive under its users)\n"
    );
    assert_untouched(&t, NVME, "nvme");

    // A namespace under LVM (a holder) is refused too.
    t.write("proc/mounts", "/dev/sda1 / ext4 rw 0 0\n");
    t.mkdir(&format!("{}/nvme/nvme0/nvme0n1/holders/dm-0", t.dev(NVME)));
    let r = t.run("devbind.sh", &["bind", "04:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("refusing to bind 0000:04:00.0: nvme0n1 is held by dm-0 (LVM, RAID or dm-crypt on top of it)."),
        "{r:?}"
    );
    assert_untouched(&t, NVME, "nvme");

    t.write("proc/mounts", "/dev/nvme0n1p1 /data xfs rw,relatime 0 0\n");
    fs::remove_dir(t.path(&format!("{}/nvme/nvme0/nvme0n1/holders/dm-0", t.dev(NVME)))).unwrap();
    let r = t.run("devbind.sh", &["bind", "--force", "04:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stderr,
        "devbind.sh: warning: 0000:04:00.0 is in use, binding anyway (--force): nvme0n1p1 is mounted on /data\n"
    );
    assert_eq!(
        t.read(&format!("{}/driver_override", t.dev(NVME))),
        "vfio-pci\n"
    );
    assert_eq!(t.read("state/0000:04:00.0"), "driver=nvme\n");
}

#[test]
fn bind_refuses_a_nic_carrying_the_default_route() {
    let t = host("route");
    t.claimed(NIC0, "vfio-pci");
    t.claimed(NIC1, "vfio-pci");
    // IPv4 default route on eth1 (0000:03:00.0).
    t.write(
        "proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         eth1\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
         eth2\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
    );
    // IPv6 default route on eth2 (0000:03:00.1); lo's unreachable default does not count.
    t.write(
        "proc/net/ipv6_route",
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth2\n\
         00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n",
    );
    let fix = "Fix: move the default route to another interface first (or use another port), or pass --force \
               (this host then loses that network path)";
    let r = t.run("devbind.sh", &["bind", "03:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!("devbind.sh: error: refusing to bind 0000:03:00.0: its interface eth1 carries the default route. {fix}\n")
    );
    let r = t.run("devbind.sh", &["bind", "03:00.1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!("devbind.sh: error: refusing to bind 0000:03:00.1: its interface eth2 carries the default route. {fix}\n")
    );
    assert_untouched(&t, NIC0, "ixgbe");
    assert_untouched(&t, NIC1, "ixgbe");

    // A NIC enslaved to a bridge that carries the default route is refused too.
    t.write("proc/net/ipv6_route", "");
    t.write(
        "proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         br0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
    );
    t.mkdir("sys/devices/virtual/net/br0");
    t.link(
        &format!("{}/net/eth2/master", t.dev(NIC1)),
        "sys/devices/virtual/net/br0",
    );
    let r = t.run("devbind.sh", &["bind", "03:00.1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("its interface eth2 is part of br0, which carries the default route."),
        "{r:?}"
    );
    assert_untouched(&t, NIC1, "ixgbe");

    // The other port, not carrying it, binds.
    let r = t.run("devbind.sh", &["bind", "03:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        t.read(&format!("{}/driver_override", t.dev(NIC0))),
        "vfio-pci\n"
    );
}

#[test]
fn restore_gives_the_device_back_to_its_original_driver() {
    let t = host("restore");
    // State after a successful bind: the device is on vfio-pci, nvme recorded.
    fs::remove_file(t.path(&format!("{}/driver", t.dev(NVME)))).unwrap();
    t.driver_link(NVME, "vfio-pci");
    t.claimed(NVME, "vfio-pci");
    t.write(&format!("{}/driver_override", t.dev(NVME)), "vfio-pci\n");
    t.write(&format!("state/{NVME}"), "driver=nvme\n");
    // (sys/bus/pci/drivers/nvme/0000:04:00.0 exists: nvme will claim it.)
    let r = t.run("devbind.sh", &["restore", "04:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "0000:04:00.0: bound to nvme\n");
    assert_eq!(r.stderr, "");
    assert_eq!(
        t.read("sys/bus/pci/drivers/vfio-pci/unbind"),
        "0000:04:00.0\n"
    );
    assert_eq!(t.read(&format!("{}/driver_override", t.dev(NVME))), "\n");
    assert_eq!(t.read("sys/bus/pci/drivers/nvme/bind"), "0000:04:00.0\n");
    assert!(!t.exists("state/0000:04:00.0"), "record kept after restore");
}

#[test]
fn restore_needs_a_record_or_driver_and_reports_a_failed_rebind() {
    let t = host("restore2");
    fs::remove_file(t.path(&format!("{}/driver", t.dev(NIC0)))).unwrap();
    fs::remove_file(t.path(&format!("sys/bus/pci/drivers/ixgbe/{NIC0}"))).unwrap();
    t.driver_link(NIC0, "vfio-pci");

    // No record, no --driver.
    let r = t.run("devbind.sh", &["unbind", "03:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "devbind.sh: error: 0000:03:00.0: no record of its original driver in {}/0000:03:00.0 (not bound by \
             this script, or the record was lost at reboot); name it: 'devbind.sh restore --driver nvme \
             0000:03:00.0' (or ixgbe, igb, ..., none)\n",
            t.state()
        )
    );
    assert_eq!(t.read("sys/bus/pci/drivers/vfio-pci/unbind"), "");

    // --driver ixgbe, but ixgbe does not claim it (no drivers/ixgbe/ADDR link).
    let r = t.run("devbind.sh", &["restore", "--driver", "ixgbe", "03:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with(
            "devbind.sh: error: 0000:03:00.0: could not give the device back to ixgbe; try"
        ),
        "{r:?}"
    );
    assert_eq!(
        t.read("sys/bus/pci/drivers/vfio-pci/unbind"),
        "0000:03:00.0\n"
    );
    assert_eq!(t.read("sys/bus/pci/drivers/ixgbe/bind"), "0000:03:00.0\n");

    // --driver none: just leave it without a driver.
    let r = t.run("devbind.sh", &["restore", "--driver", "none", "03:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "0000:03:00.0: left without a driver\n");
    assert_eq!(t.read(&format!("{}/driver_override", t.dev(NIC0))), "\n");
}

// ---------------------------------------------------------------- hugepages

fn hugepage_tree(name: &str, nodes: usize) -> Tree {
    let t = Tree::new(name);
    for kb in [2048, 1048576] {
        let g = format!("sys/kernel/mm/hugepages/hugepages-{kb}kB");
        for f in [
            "nr_hugepages",
            "free_hugepages",
            "resv_hugepages",
            "surplus_hugepages",
        ] {
            t.write(&format!("{g}/{f}"), "0\n");
        }
        for n in 0..nodes {
            let d = format!("sys/devices/system/node/node{n}/hugepages/hugepages-{kb}kB");
            for f in ["nr_hugepages", "free_hugepages", "surplus_hugepages"] {
                t.write(&format!("{d}/{f}"), "0\n");
            }
        }
    }
    t
}

#[test]
fn hugepages_reserve_writes_every_node_and_reports_a_shortfall() {
    let t = hugepage_tree("hpshort", 2);
    // node1 plays the kernel through a FIFO: it takes the request and answers
    // that only 300 pages could be allocated.
    let fifo = t.path("sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages");
    fs::remove_file(&fifo).unwrap();
    let st = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(st.success());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut asked = String::new();
        File::open(&fifo)
            .unwrap()
            .read_to_string(&mut asked)
            .unwrap();
        OpenOptions::new()
            .write(true)
            .open(&fifo)
            .unwrap()
            .write_all(b"300\n")
            .unwrap();
        let _ = tx.send(asked);
    });

    let r = t.run("hugepages.sh", &["reserve", "512"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        r.stdout,
        "node0 2M: asked 512, got 512\n\
         node1 2M: asked 512, got 300 (short by 212)\n\
         total: 812 pages of 2M = 1624 MiB\n"
    );
    assert_eq!(
        r.stderr,
        "hugepages.sh: error: the kernel gave fewer 2M pages than asked: not enough free contiguous memory. \
         Fix: reserve right after boot, or free memory first (as root: sync; echo 3 > /proc/sys/vm/drop_caches; \
         echo 1 > /proc/sys/vm/compact_memory) and retry, or reserve at boot with the kernel command line \
         (hugepagesz=2M hugepages=N).\n"
    );
    let asked = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("FIFO node saw no request");
    assert_eq!(asked, "512\n");
    assert_eq!(
        t.read("sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"),
        "512\n"
    );
    // 1G pools untouched.
    assert_eq!(
        t.read("sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages"),
        "0\n"
    );
}

#[test]
fn hugepages_reserve_on_one_node_free_and_show() {
    let t = hugepage_tree("hpnode", 2);
    let node = |n: u32, kb: u32| {
        format!("sys/devices/system/node/node{n}/hugepages/hugepages-{kb}kB/nr_hugepages")
    };
    let r = t.run(
        "hugepages.sh",
        &["reserve", "4", "--size", "1G", "--node", "1"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "node1 1G: asked 4, got 4\ntotal: 4 pages of 1G = 4096 MiB\n"
    );
    assert_eq!(t.read(&node(1, 1048576)), "4\n");
    assert_eq!(t.read(&node(0, 1048576)), "0\n");
    assert_eq!(t.read(&node(1, 2048)), "0\n");

    let r = t.run("hugepages.sh", &["reserve", "4", "--node", "7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "hugepages.sh: error: no NUMA node 7 with 2M pages (no {}/devices/system/node/node7/hugepages/\
             hugepages-2048kB/nr_hugepages); nodes here: 0,1\n",
            t.sys()
        )
    );
    let r = t.run("hugepages.sh", &["reserve", "many"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .starts_with("hugepages.sh: error: invalid page count 'many'"),
        "{r:?}"
    );
    let r = t.run("hugepages.sh", &["reserve", "1", "--size", "16M"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("page size 16M is not supported here"),
        "{r:?}"
    );

    t.write(&node(0, 2048), "8\n");
    let r = t.run("hugepages.sh", &["free"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "node0 2M: asked 0, got 0\nnode1 2M: asked 0, got 0\nnode0 1G: asked 0, got 0\nnode1 1G: asked 0, got 0\n"
    );
    for n in 0..2 {
        for kb in [2048, 1048576] {
            assert_eq!(t.read(&node(n, kb)), "0\n");
        }
    }

    t.write(&node(0, 2048), "512\n");
    t.write(
        "sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages",
        "500\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
        "512\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "500\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages",
        "3\n",
    );
    let r = t.run("hugepages.sh", &["show"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "NODE   SIZE     TOTAL     FREE  RESERVED  SURPLUS\n\
         node0  2M         512      500         -        0\n\
         node0  1G           0        0         -        0\n\
         node1  2M           0        0         -        0\n\
         node1  1G           0        0         -        0\n\
         all    2M         512      500         3        0\n\
         all    1G           0        0         0        0\n\
         \n\
         hugepage memory: 1024 MiB, free 1000 MiB\n\
         (RESERVED = promised to a mapping but not yet touched; the kernel counts it system-wide only)\n"
    );
}

// -------------------------------------------------------------- check-iommu

fn cpuinfo(t: &Tree) {
    t.write(
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse vmx sse sse2\n",
    );
}

/// Run with RLIMIT_MEMLOCK lowered to 64 KiB so the memlock line does not
/// depend on the limits of whoever runs the tests.
fn run_low_memlock(t: &Tree, name: &str) -> Run {
    let mut c = t.cmd(name);
    let mut sh = Command::new("bash");
    sh.arg("-c")
        .arg("ulimit -l 64 && exec \"$0\"")
        .arg(script(name));
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    c = sh;
    run_cmd(c)
}

#[test]
fn check_iommu_reports_missing_items_with_fixes_and_exits_1() {
    let t = Tree::new("chkmiss");
    cpuinfo(&t);
    t.mkdir("sys/class/iommu");
    t.write(
        "proc/cmdline",
        "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n",
    );
    t.write(
        "proc/self/status",
        "Name:\tbash\nCapEff:\t0000000000000000\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
        "0\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "0\n",
    );
    let r = run_low_memlock(&t, "check-iommu.sh");
    assert_eq!(r.code, 1, "{r:?}");
    let (sys, proc_, dev) = (
        t.sys(),
        t.path("proc").display().to_string(),
        t.path("dev").display().to_string(),
    );
    let hp = script("hugepages.sh");
    let hp = hp.parent().unwrap().display();
    let grub =
        "in /etc/default/grub (GRUB_CMDLINE_LINUX), then run update-grub (or grub2-mkconfig -o \
                /boot/grub2/grub.cfg) and reboot";
    let pad = " ".repeat(33);
    let expected = [
        "INFO     cpu-virt                 vmx present (Intel VT-x; VFIO itself needs the IOMMU, VT-d, checked below)".to_string(),
        format!("MISSING  iommu                    no IOMMU registered ({sys}/class/iommu is empty)"),
        format!(
            "{pad} fix: enable VT-d in the firmware setup, then boot with 'intel_iommu=on iommu=pt': add it {grub}; \
             in a QEMU guest add -machine q35,kernel-irqchip=split -device intel-iommu,caching-mode=on"
        ),
        format!(
            "MISSING  iommu-groups             no IOMMU groups ({sys}/kernel/iommu_groups is empty): vfio-pci will \
             refuse devices (error -22)"
        ),
        format!(
            "{pad} fix: follows from the iommu line: enable the IOMMU and reboot; for tests without isolation \
             only: modprobe vfio enable_unsafe_noiommu_mode=1"
        ),
        format!("MISSING  kernel-cmdline           no intel_iommu=on in {proc_}/cmdline"),
        format!("{pad} fix: boot with 'intel_iommu=on iommu=pt': add it {grub}"),
        format!("MISSING  module vfio              not loaded (no {sys}/module/vfio)"),
        format!("{pad} fix: modprobe vfio; if modprobe cannot find it, install your distribution's extra kernel modules"),
        format!("MISSING  module vfio_iommu_type1  not loaded (no {sys}/module/vfio_iommu_type1)"),
        format!(
            "{pad} fix: modprobe vfio-iommu-type1 (the type-1 IOMMU backend our DMA mapper uses); if modprobe \
             cannot find it, install your distribution's extra kernel modules"
        ),
        format!("MISSING  module vfio_pci          not loaded (no {sys}/module/vfio_pci)"),
        format!(
            "{pad} fix: modprobe vfio-pci (also loads vfio); devbind.sh bind does this for you; if modprobe \
             cannot find it, install your distribution's extra kernel modules"
        ),
        format!("MISSING  /dev/vfio/vfio           no {dev}/vfio/vfio"),
        format!(
            "{pad} fix: modprobe vfio; if it is still missing the kernel lacks the VFIO container \
             (CONFIG_VFIO_CONTAINER=y)"
        ),
        "MISSING  hugepages                no free hugepages (2M: 0 free of 0)".to_string(),
        format!("{pad} fix: sudo {hp}/hugepages.sh reserve 512   (512 x 2M = 1 GiB per NUMA node)"),
        "MISSING  memlock                  ulimit -l is 64 KiB < 1024 MiB needed for 1 GiB, as no hugepages are reserved".to_string(),
    ];
    let lines: Vec<&str> = r.stdout.lines().collect();
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            lines.get(i).copied(),
            Some(want.as_str()),
            "line {i} of\n{}",
            r.stdout
        );
    }
    assert!(
        lines[expected.len()].starts_with(&format!("{pad} fix: as root: ulimit -l unlimited")),
        "{r:?}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        "result: 9 item(s) MISSING; binding devices to vfio-pci or mapping DMA memory will fail until they are fixed"
    );
}

#[test]
fn check_iommu_passes_on_a_ready_host() {
    let t = Tree::new("chkok");
    cpuinfo(&t);
    t.mkdir("sys/class/iommu/dmar0");
    t.mkdir("sys/class/iommu/dmar1");
    t.mkdir("sys/kernel/iommu_groups/0/devices");
    t.mkdir("sys/kernel/iommu_groups/1/devices");
    t.write(
        "proc/cmdline",
        "BOOT_IMAGE=/vmlinuz ro intel_iommu=on iommu=pt\n",
    );
    for m in ["vfio", "vfio_iommu_type1"] {
        t.write(&format!("sys/module/{m}/initstate"), "live\n");
    }
    t.mkdir("sys/module/vfio_pci/parameters"); // built in
    t.write("dev/vfio/vfio", "");
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
        "512\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "512\n",
    );
    // CAP_IPC_LOCK (bit 14) makes the kernel ignore RLIMIT_MEMLOCK.
    t.write(
        "proc/self/status",
        "Name:\tbash\nCapEff:\t0000000000004000\n",
    );
    let r = run_low_memlock(&t, "check-iommu.sh");
    assert_eq!(r.code, 0, "{r:?}");
    let sys = t.sys();
    assert_eq!(
        r.stdout,
        format!(
            "INFO     cpu-virt                 vmx present (Intel VT-x; VFIO itself needs the IOMMU, VT-d, checked below)\n\
             OK       iommu                    2 dmar0 dmar1 in {sys}/class/iommu\n\
             OK       iommu-groups             2 groups in {sys}/kernel/iommu_groups\n\
             OK       kernel-cmdline           intel_iommu=on\n\
             OK       module vfio              loaded\n\
             OK       module vfio_iommu_type1  loaded\n\
             OK       module vfio_pci          built in\n\
             OK       /dev/vfio/vfio           present ({}/dev/vfio/vfio)\n\
             OK       hugepages                2M: 512 free of 512\n\
             OK       memlock                  ulimit -l is 64 KiB, but this process has CAP_IPC_LOCK (root), which \
             ignores it; a non-root user needs 1024 MiB or more (nonroot.sh setup)\n\
             \n\
             result: ready for VFIO user-space drivers\n",
            t.root.display()
        )
    );
}

#[test]
fn check_iommu_noiommu_checks_the_mode_and_cap_sys_rawio() {
    let t = Tree::new("chknoiommu");
    cpuinfo(&t);
    t.mkdir("sys/class/iommu");
    t.write("proc/cmdline", "BOOT_IMAGE=/vmlinuz ro quiet\n");
    for m in ["vfio", "vfio_pci"] {
        t.write(&format!("sys/module/{m}/initstate"), "live\n");
    }
    t.write(
        "sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
        "N\n",
    );
    t.write("dev/vfio/vfio", "");
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
        "512\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "512\n",
    );
    // CAP_IPC_LOCK only.
    t.write(
        "proc/self/status",
        "Name:\tbash\nCapEff:\t0000000000004000\n",
    );
    let sys = t.sys();
    let r = run_low_memlock(&t, "check-iommu.sh");
    assert_eq!(r.code, 1, "{r:?}");
    // Without --noiommu the mode is not mentioned while it is off.
    assert!(!r.stdout.contains("vfio-noiommu"), "{r:?}");
    let r = t.run("check-iommu.sh", &["--noiommu"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[1],
        format!(
            "INFO     iommu                    no IOMMU registered ({sys}/class/iommu is empty) (not needed \
             with --noiommu)"
        )
    );
    assert!(lines[2].starts_with("INFO     iommu-groups "), "{r:?}");
    assert!(lines[3].starts_with("INFO     kernel-cmdline "), "{r:?}");
    assert!(!r.stdout.contains("vfio_iommu_type1"), "{r:?}");
    assert!(
        r.stdout
            .contains("MISSING  vfio-noiommu             enable_unsafe_noiommu_mode is off\n"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(
            "fix: 'echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode' as root"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(
            "MISSING  cap-sys-rawio            no CAP_SYS_RAWIO: /dev/vfio/noiommu-N and physical \
             addresses need it\n"
        ),
        "{r:?}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        "result: 2 item(s) MISSING; binding devices to vfio-pci or mapping DMA memory will fail until they are fixed"
    );

    // The mode on and CAP_SYS_RAWIO (bit 17) held: ready.
    t.write(
        "sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
        "Y\n",
    );
    t.write(
        "proc/self/status",
        "Name:\tbash\nCapEff:\t0000000000024000\n",
    );
    let r = t.run("check-iommu.sh", &["--noiommu"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "OK       vfio-noiommu             enable_unsafe_noiommu_mode=Y: devices without an IOMMU bind \
             as /dev/vfio/noiommu-N; the apps use them with VFIO_UNSAFE_NOIOMMU=1"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("OK       cap-sys-rawio            this process has CAP_SYS_RAWIO\n"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("MISSING"), "{r:?}");
    // Without --noiommu the mode being on is an INFO line, and the missing
    // IOMMU still counts.
    let r = run_low_memlock(&t, "check-iommu.sh");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("INFO     vfio-noiommu             enable_unsafe_noiommu_mode=Y"),
        "{r:?}"
    );
}

// ------------------------------------------------------------------ nonroot

#[test]
fn nonroot_setup_gives_the_vfio_group_access_and_check_agrees() {
    let t = host("nonroot");
    // The drive is bound to vfio-pci; /dev/vfio/13 as the kernel makes it.
    fs::remove_file(t.path(&format!("{}/driver", t.dev(NVME)))).unwrap();
    t.driver_link(NVME, "vfio-pci");
    t.write("dev/vfio/13", "");
    t.write("dev/vfio/vfio", "");
    fs::set_permissions(t.path("dev/vfio/13"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(t.path("dev/vfio/vfio"), fs::Permissions::from_mode(0o600)).unwrap();
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
        "512\n",
    );
    t.write(
        "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "512\n",
    );
    // Give the vfio group our own gid so chgrp works without root.
    let gid = fs::metadata(t.path("dev/vfio/13")).unwrap().gid();
    t.write(
        "etc/passwd",
        "root:x:0:0::/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n",
    );
    t.write(
        "etc/group",
        &format!("root:x:0:\nalice:x:1001:\nvfio:x:{gid}:bob\n"),
    );

    let r = t.run("nonroot.sh", &["check", "alice", "04:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("MISSING  alice is not in group vfio\n"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(&format!(
            "MISSING  {}/dev/vfio/vfio is mode 600, others cannot open it\n",
            t.root.display()
        )),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("result: 4 item(s) MISSING for alice\n"),
        "{r:?}"
    );

    let r = t.run("nonroot.sh", &["setup", "alice", "04:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        t.read("etc/group"),
        format!("root:x:0:\nalice:x:1001:\nvfio:x:{gid}:bob,alice\n")
    );
    let m = fs::metadata(t.path("dev/vfio/13")).unwrap();
    assert_eq!((m.mode() & 0o777, m.gid()), (0o660, gid));
    assert_eq!(
        fs::metadata(t.path("dev/vfio/vfio")).unwrap().mode() & 0o777,
        0o666
    );
    assert_eq!(
        t.read("etc/security/limits.d/90-vfio-memlock.conf"),
        "# Written by hw-setup/nonroot.sh: DMA memory must be locked (mlock and VFIO pinning).\n\
         @vfio - memlock unlimited\n"
    );
    assert_eq!(
        t.read("etc/udev/rules.d/90-vfio.rules"),
        "# Written by hw-setup/nonroot.sh: VFIO group devices belong to group vfio.\n\
         SUBSYSTEM==\"vfio\", GROUP=\"vfio\", MODE=\"0660\"\n"
    );
    assert!(
        r.stdout
            .contains("sudo prlimit --pid PID --memlock=unlimited:unlimited"),
        "{r:?}"
    );

    let r = t.run("nonroot.sh", &["check", "alice", "04:00.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("MISSING"), "{r:?}");

    // A device not bound to vfio-pci is reported with the fix.
    let r = t.run("nonroot.sh", &["check", "alice", "03:00.0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "MISSING  0000:03:00.0 is not bound to vfio-pci (driver: ixgbe)\n         fix: sudo {}/devbind.sh bind 0000:03:00.0\n",
            script("devbind.sh").parent().unwrap().display()
        )),
        "{r:?}"
    );
}
