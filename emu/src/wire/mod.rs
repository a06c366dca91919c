//! Wires: what an emulated NIC port is plugged into.
//!
//! A [`Wire`] is one end of a link. It carries Ethernet frames without the
//! FCS (the emulated MAC neither adds nor checks one). [`open_wire`] makes
//! one from a spec string:
//!
//! | spec | what it is |
//! |------|------------|
//! | `pair:NAME` | two ports in one process, cross-connected. The first open of `NAME` is end A, the second end B; a third open while both ends live is an error. Once both ends are dropped the name can be used again. Each direction is a bounded queue ([`PAIR_QUEUE_FRAMES`] frames): a receiver that does not poll makes drops ([`Wire::drops`] of the sender), never unbounded memory. |
//! | `loop` | loopback: every frame sent is received back (bounded like a pair). |
//! | `pcap:FILE` | a capture: every frame sent is appended to FILE (created or truncated; pcap format, LINKTYPE_ETHERNET, snaplen 65535, real-time timestamps in microseconds). Nothing is ever received. |
//! | `pcap-in:FILE` | a replay: the frames of the capture FILE are received, once each, in order, as fast as the port takes them (none before its receiver is set up or while its rings are full, so the whole capture arrives); frames sent are discarded (and counted in [`Wire::drops`]). |
//! | `unix:PATH` | an AF_UNIX datagram socket, for ports in two processes. The rendezvous: the first process binds `PATH.a` and sends to `PATH.b`; the second finds `PATH.a` in use and binds `PATH.b`, sending to `PATH.a`. A socket file left behind by a dead process is detected (nobody answers a connect) and replaced. |
//! | `unix:LOCAL>PEER` | the explicit form: bind LOCAL, send to PEER (quote it in a shell: `>` redirects). |
//! | `tap:IFNAME` | a Linux TAP interface (`/dev/net/tun`, IFF_TAP without packet information): the host's network stack is the peer. Needs CAP_NET_ADMIN unless the interface was created for the user beforehand. |
//!
//! Every wire is non-blocking: [`Wire::recv`] returns `None` when no frame
//! waits, and [`Wire::send`] never waits for the peer. A frame that cannot
//! be delivered because the peer is absent or full is lost, as on a cable,
//! and counted in [`Wire::drops`]; `send` returns an error only when the
//! wire itself is broken (a write to a capture file failed). A port with flow
//! control asks [`Wire::peer_ready`] before it sends: on a `pair:` or
//! `unix:` wire its frames then wait in its TX ring instead of being lost.

mod loopback;
mod pair;
mod pcap;
mod queue;
mod tap;
mod unix;

pub use loopback::LoopWire;
pub use pair::PairWire;
pub use pcap::{PcapReplayWire, PcapWire};
pub use tap::TapWire;
pub use unix::UnixWire;

use crate::DeviceWaker;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Frames each direction of a `pair:` (and a `loop`) holds before it drops.
pub const PAIR_QUEUE_FRAMES: usize = queue::QUEUE_FRAMES;

/// The largest frame any wire carries: a 16 KiB jumbo frame, above the
/// 82599's largest (9.5 KiB) and the 82576's (9.7 KiB).
pub const MAX_FRAME: usize = 16 * 1024;

/// Length of the frame buffers ports exchange with [`Wire::send_buf`] and
/// [`Wire::recv_buf`]: a largest frame ([`MAX_FRAME`]) and the 4-byte FCS
/// a receiving port appends. One length for every port, so that a buffer
/// one port sent can become the next port's receive buffer.
pub const FRAME_BUF: usize = MAX_FRAME + spec::nic::ETH_FCS_LEN;

/// A zeroed frame buffer of [`FRAME_BUF`] bytes.
pub fn frame_buf() -> Box<[u8]> {
    vec![0u8; FRAME_BUF].into_boxed_slice()
}

/// One end of a link that carries Ethernet frames (without FCS).
pub trait Wire: Send + Sync {
    /// Put `frame` on the wire. A frame the peer cannot take (absent,
    /// full) is dropped and counted, not an error.
    fn send(&self, frame: &[u8]) -> std::io::Result<()>;

    /// Take the next frame that arrived into `buf`, non-blocking: its
    /// length, or None when nothing waits. A frame longer than `buf` is
    /// truncated to `buf.len()` (datagram semantics): use a buffer of
    /// [`MAX_FRAME`] bytes.
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>>;

    /// [`Wire::send`] of `buf[..len]`, handing over the buffer: a wire
    /// that queues frames in memory (`pair:`, `loop`) keeps `buf` and puts
    /// another buffer, at least as long, in its place (contents
    /// unspecified), so that the frame is not copied; other wires send a
    /// copy and leave `buf` alone. Use buffers from [`frame_buf`].
    fn send_buf(&self, buf: &mut Box<[u8]>, len: usize) -> std::io::Result<()> {
        self.send(&buf[..len.min(buf.len())])
    }

    /// [`Wire::recv`] into `buf[..MAX_FRAME]`, or by exchanging `buf` for
    /// the buffer that holds the frame when it is at least as long (a
    /// `pair:` or `loop` frame sent with [`Wire::send_buf`]): the frame is
    /// then not copied. Its length (at most [`MAX_FRAME`]), or None when
    /// nothing waits. Use buffers from [`frame_buf`].
    fn recv_buf(&self, buf: &mut Box<[u8]>) -> std::io::Result<Option<usize>> {
        let n = buf.len().min(MAX_FRAME);
        self.recv(&mut buf[..n])
    }

    /// What the wire is, for messages ("pair:p0 end A").
    fn describe(&self) -> String;

    /// Frames sent on this end that were lost: peer queue full, peer
    /// absent, or a wire that discards (pcap-in).
    fn drops(&self) -> u64 {
        0
    }

    /// Whether the peer can take another frame now. Wires that cannot tell
    /// say yes; a pair says whether the peer's queue has room, a `unix:`
    /// wire whether its backlog of frames the peer's socket could not take
    /// yet is below its XOFF threshold. Ports with flow control
    /// ([`crate::nic::NicModelConfig::flow_control`]) hold
    /// transmission while it says no, as 802.3x PAUSE does.
    fn peer_ready(&self) -> bool {
        true
    }

    /// Whether the wire's frames wait for the port (a replay from a file,
    /// not a live network): a port takes them only when its RX rings have
    /// room, from the first time the driver enabled its receiver, as with
    /// flow control; otherwise a replay would be taken and dropped while
    /// the port is still being set up, or while its rings are full.
    fn waits_for_receiver(&self) -> bool {
        false
    }

    /// Write out anything buffered (a capture file). Also done on drop.
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }

    /// Register the device thread of the port on this end: the wire wakes
    /// it when a frame arrives for it, and (for [`Wire::peer_ready`]) when
    /// room frees up towards the peer. True if the wire does so for every
    /// such event, so that an idle port may sleep until woken; false (the
    /// default: a socket or a file wakes nobody) if the port must keep
    /// looking.
    fn set_waker(&self, waker: Arc<DeviceWaker>) -> bool {
        let _ = waker;
        false
    }
}

/// The wire kinds [`open_wire`] knows, for messages.
pub const WIRE_KINDS: &str =
    "pair:NAME, loop, pcap:FILE, pcap-in:FILE, unix:PATH, unix:LOCAL>PEER, tap:IFNAME";

/// Why a wire could not be opened.
#[derive(Debug)]
pub enum WireError {
    /// The spec names no known kind of wire.
    UnknownKind(String),
    /// The spec lacks the name or path its kind needs (`pair:` without a name).
    MissingArgument {
        /// The kind ("pair", "pcap", ...).
        kind: &'static str,
        /// What is missing, as the spec syntax shows it ("NAME", "FILE").
        what: &'static str,
    },
    /// Both ends of `pair:NAME` are open already.
    PairInUse(String),
    /// A capture file could not be created, opened or written.
    PcapFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file given to `pcap-in:` is not a capture this reader understands.
    PcapFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A `pcap-in:` capture has a record cut short or absurdly long (the
    /// message of [`crate::pcap::PcapError`] names the file and the record).
    PcapRecord(crate::pcap::PcapError),
    /// An AF_UNIX socket could not be made, bound or probed.
    Unix {
        /// The socket path involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `unix:PATH`: both `PATH.a` and `PATH.b` are bound by live processes.
    UnixBothEndsTaken(PathBuf),
    /// `tap:`: the process may not create or attach to the interface.
    TapPermission(String),
    /// `tap:`: `/dev/net/tun` is missing or unusable.
    TunUnavailable(std::io::Error),
    /// `tap:IFNAME`: the name is empty or longer than 15 bytes.
    TapName(String),
    /// `tap:`: another failure of the TUNSETIFF ioctl.
    Tap {
        /// The interface.
        ifname: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::UnknownKind(spec) => {
                write!(f, "unknown wire {spec:?}; use one of: {WIRE_KINDS}")
            }
            WireError::MissingArgument { kind, what } => {
                write!(
                    f,
                    "wire {kind}: {what} is missing; write it as {kind}:{what}"
                )
            }
            WireError::PairInUse(name) => write!(
                f,
                "both ends of wire pair:{name} are already open; close one or use another name"
            ),
            WireError::PcapFile { path, source } => write!(
                f,
                "cannot use capture file {}: {source}; give a path in a writable (or, for \
                 pcap-in, readable) directory, e.g. pcap:/tmp/out.pcap",
                path.display()
            ),
            WireError::PcapFormat { path, why } => write!(
                f,
                "{} is not a usable capture: {why}; give a classic pcap file of Ethernet frames \
                 (convert pcapng with `editcap -F pcap IN OUT`)",
                path.display()
            ),
            WireError::PcapRecord(e) => write!(
                f,
                "{e}; the replay would stop there: give a capture written to its end"
            ),
            WireError::Unix { path, source } => write!(
                f,
                "cannot use AF_UNIX socket {}: {source}; check that its directory exists and is \
                 writable",
                path.display()
            ),
            WireError::UnixBothEndsTaken(path) => write!(
                f,
                "both ends of unix:{} ({0}.a and {0}.b) are bound by running processes; stop one \
                 or use another path",
                path.display()
            ),
            WireError::TapPermission(ifname) => write!(
                f,
                "not permitted to create TAP interface {ifname}: needs CAP_NET_ADMIN; run as \
                 root, or create it once for your user with `ip tuntap add dev {ifname} mode tap \
                 user $USER`"
            ),
            WireError::TunUnavailable(e) => write!(
                f,
                "cannot open /dev/net/tun: {e}; load the driver with `modprobe tun` (in a \
                 container, pass the device in with --device /dev/net/tun)"
            ),
            WireError::TapName(name) => write!(
                f,
                "TAP interface name {name:?} is empty or longer than 15 bytes; use a short name \
                 such as tap0"
            ),
            WireError::Tap { ifname, source } => write!(
                f,
                "cannot attach TAP interface {ifname}: {source}; check that no other process \
                 holds it and that it is a TAP (not TUN) interface"
            ),
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::PcapFile { source, .. }
            | WireError::Unix { source, .. }
            | WireError::Tap { source, .. } => Some(source),
            WireError::TunUnavailable(e) => Some(e),
            _ => None,
        }
    }
}

/// Open the wire that `spec` describes (see the table in the module
/// documentation).
pub fn open_wire(spec: &str) -> Result<Arc<dyn Wire>, WireError> {
    let (kind, arg) = match spec.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (spec, None),
    };
    let need = |kind: &'static str, what: &'static str| -> Result<&str, WireError> {
        match arg {
            Some(a) if !a.is_empty() => Ok(a),
            _ => Err(WireError::MissingArgument { kind, what }),
        }
    };
    Ok(match kind {
        "pair" => Arc::new(PairWire::open(need("pair", "NAME")?)?),
        "loop" if arg.is_none() => Arc::new(LoopWire::new()),
        "pcap" => Arc::new(PcapWire::create(need("pcap", "FILE")?)?),
        "pcap-in" => Arc::new(PcapReplayWire::open(need("pcap-in", "FILE")?)?),
        "unix" => Arc::new(UnixWire::open(need("unix", "PATH")?)?),
        "tap" => Arc::new(TapWire::open(need("tap", "IFNAME")?)?),
        _ => return Err(WireError::UnknownKind(spec.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        for spec in ["ether:eth0", "", "loop:x", "PAIR:a"] {
            let e = open_wire(spec).err().expect("must fail");
            let msg = e.to_string();
            assert!(matches!(e, WireError::UnknownKind(_)), "{spec}: {msg}");
            assert!(msg.contains(WIRE_KINDS), "{msg}");
        }
    }

    #[test]
    fn missing_argument_says_what_to_write() {
        for (spec, hint) in [
            ("pair", "pair:NAME"),
            ("pair:", "pair:NAME"),
            ("pcap:", "pcap:FILE"),
            ("pcap-in", "pcap-in:FILE"),
            ("unix:", "unix:PATH"),
            ("tap:", "tap:IFNAME"),
        ] {
            let msg = open_wire(spec).err().expect("must fail").to_string();
            assert!(msg.contains(hint), "{spec}: {msg}");
        }
    }

    #[test]
    fn loop_spec_opens_a_loopback() {
        let w = open_wire("loop").unwrap();
        w.send(&[1, 2, 3]).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(w.recv(&mut buf).unwrap(), Some(3));
        assert_eq!(w.describe(), "loop");
    }
}
