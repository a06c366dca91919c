//! `tap:IFNAME`: a Linux TAP interface, so the host's network stack (or
//! anything attached to the interface: a bridge, tcpdump) is the peer.
//!
//! The interface is created (or, if it exists as a persistent TAP, attached)
//! with the TUNSETIFF ioctl on `/dev/net/tun`, flags IFF_TAP | IFF_NO_PI: one
//! read or write is one Ethernet frame, with no packet-information prefix
//! (Linux Documentation/networking/tuntap.rst). The descriptor is
//! non-blocking. A non-persistent interface disappears when the wire is
//! dropped. The interface starts down; bring it up (`ip link set dev IFNAME
//! up`) for the kernel to pass frames.

use super::{Wire, WireError};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The clone device of the TUN/TAP driver.
const TUN_DEVICE: &str = "/dev/net/tun";

/// One end of a `tap:` wire: the user-space side of a TAP interface.
pub struct TapWire {
    file: File,
    ifname: String,
    drops: AtomicU64,
}

impl TapWire {
    /// Create or attach TAP interface `ifname`.
    pub fn open(ifname: &str) -> Result<TapWire, WireError> {
        // IFNAMSIZ includes the terminating NUL.
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
            return Err(WireError::TapName(ifname.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(TUN_DEVICE)
            .map_err(|e| match e.kind() {
                ErrorKind::PermissionDenied => WireError::TapPermission(ifname.to_string()),
                _ => WireError::TunUnavailable(e),
            })?;
        // SAFETY: `ifreq` is a plain C struct (arrays and a union of
        // integers, arrays and pointers) for which all-zero bytes are a
        // valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req`
        // is, alive and exclusively borrowed for the call; the descriptor is
        // open (owned by `file`).
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    WireError::TapPermission(ifname.to_string())
                }
                _ => WireError::Tap {
                    ifname: ifname.to_string(),
                    source: e,
                },
            });
        }
        Ok(TapWire {
            file,
            ifname: ifname.to_string(),
            drops: AtomicU64::new(0),
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
}

impl Wire for TapWire {
    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        match (&self.file).write(frame) {
            Ok(_) => Ok(()),
            // The kernel's backlog is full, or the interface is down (EIO):
            // the frame is lost as on a cable to a switched-off host.
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EIO) => {
                self.drops.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        loop {
            match (&self.file).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn describe(&self) -> String {
        format!("tap:{}", self.ifname)
    }

    fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn bad_names_are_rejected_before_any_system_call() {
        for name in ["", "a-name-that-is-too-long", "a\0b"] {
            let e = TapWire::open(name).err().expect("bad name");
            assert!(matches!(e, WireError::TapName(_)), "{name:?}: {e}");
        }
    }

    /// A raw AF_PACKET socket bound to one interface (test helper).
    struct PacketSocket(std::os::fd::OwnedFd);

    impl PacketSocket {
        fn bind(ifname: &str) -> std::io::Result<PacketSocket> {
            use std::os::fd::FromRawFd;
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2) call; the result is checked.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    proto as i32,
                )
            };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            let sock = PacketSocket(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            let name = std::ffi::CString::new(ifname).unwrap();
            // SAFETY: `name` is a NUL-terminated string alive for the call.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if index == 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = proto;
            addr.sll_ifindex = index as i32;
            // SAFETY: `addr` is a sockaddr_ll of the length given, alive for the call.
            let rc = unsafe {
                libc::bind(
                    sock.0.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(sock)
        }

        fn send(&self, frame: &[u8]) -> std::io::Result<()> {
            // SAFETY: `frame` is a live slice of the length given.
            let rc =
                unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }

        fn recv(&self, buf: &mut [u8]) -> Option<usize> {
            // SAFETY: `buf` is a live, writable slice of the length given.
            let rc =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            (rc >= 0).then_some(rc as usize)
        }
    }

    fn test_frame(tag: u8) -> Vec<u8> {
        // Locally administered MACs, a private EtherType, a tag to find it.
        let mut f = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb, 0x88, 0xb5];
        f.extend_from_slice(&[tag; 46]);
        f
    }

    #[test]
    fn frames_cross_between_the_wire_and_the_kernel_when_tun_is_usable() {
        let ifname = format!("wtap{}", std::process::id() % 100_000);
        let wire = match TapWire::open(&ifname) {
            Ok(w) => w,
            Err(e) => {
                println!("skipped: TAP unusable here: {e}");
                return;
            }
        };
        let up = Command::new("ip")
            .args(["link", "set", "dev", &ifname, "up"])
            .status();
        if !matches!(up, Ok(s) if s.success()) {
            println!("skipped: cannot bring {ifname} up with `ip link set` ({up:?})");
            return;
        }
        let sock = match PacketSocket::bind(&ifname) {
            Ok(s) => s,
            Err(e) => {
                println!("skipped: no AF_PACKET socket on {ifname}: {e}");
                wire.send(&test_frame(1)).unwrap();
                return;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 2048];
        // Wire -> kernel: the frame arrives on the interface.
        let sent = test_frame(0x5a);
        wire.send(&sent).unwrap();
        loop {
            if let Some(n) = sock.recv(&mut buf) {
                if buf[..n] == sent[..] {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "frame never reached {ifname}");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Kernel -> wire: a frame sent out of the interface is read.
        let back = test_frame(0xa5);
        sock.send(&back).unwrap();
        loop {
            if let Some(n) = wire.recv(&mut buf).unwrap() {
                if buf[..n] == back[..] {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "frame never came out of {ifname}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(wire.describe(), format!("tap:{ifname}"));
    }
}
