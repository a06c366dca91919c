//! `unix:PATH` and `unix:LOCAL>PEER`: an AF_UNIX datagram socket, so ports
//! in different processes can be connected. One datagram is one frame.
//!
//! Rendezvous of `unix:PATH`: each side tries to bind `PATH.a`, then
//! `PATH.b`, and sends to the other one. A name is taken if a live socket
//! answers a connect to it; a socket file whose process died (connect
//! refused) is removed and reused. So the first process started becomes
//! `a` and the second `b`, whatever order they stop and restart in.
//! `unix:LOCAL>PEER` binds exactly LOCAL and sends to exactly PEER.
//!
//! The socket file is removed when the wire is dropped.
//!
//! The kernel queues at most `net.unix.max_dgram_qlen` datagrams (often
//! only 10) at a receiving socket: ten frames per wake-up of the receiver,
//! which makes a busy chain of processes crawl on a loaded machine. Unless
//! the receiving socket is connected to the sender: then only the sender's
//! send buffer (`SO_SNDBUF`, a few hundred small frames) bounds what waits
//! for the receiver (Linux `unix_dgram_sendmsg` skips the queue-length
//! check when `unix_peer(other) == sk`). So each end connects its socket
//! to the peer's path as soon as a socket is bound there (at open, after
//! the first frame that crosses, and on every 64th receive that finds
//! nothing), and keeps sending with an explicit address. A connected end
//! takes datagrams only from its peer's socket: a restarted peer's new
//! socket is refused (EPERM) until this end reconnects, which it does when
//! it next finds nothing to receive (so a reconnect never discards queued
//! frames); the new peer keeps its frames in its backlog meanwhile.
//!
//! A frame the peer's queue cannot take yet waits in a bounded backlog on
//! the sending side ([`BACKLOG_FRAMES`]), in order, and goes out on the next
//! send or receive of this end (a threaded port calls both all the time),
//! or on [`Wire::flush`]. A frame that finds the backlog full, or no peer
//! socket at all, is lost as on a cable and counted in [`Wire::drops`].
//! Dropping the wire keeps delivering the backlog while the peer takes
//! frames, and gives up after [`LINGER`] in which it took none.
//!
//! # Flow control (`pause=on`)
//!
//! [`Wire::peer_ready`] says no while the backlog holds [`PAUSE_FRAMES`]
//! or more (and tries to move it along first). A port with flow control
//! asks before every TX descriptor and sends a frame only at the end of a
//! packet, after a yes; so each TX engine puts at most one frame into the
//! backlog after it passed [`PAUSE_FRAMES`]. The engines of one port that
//! can run at once are at most its queues (128 on the 82599: inline ports
//! whose doorbells are written by several threads; a threaded port has
//! one device thread), so the backlog never exceeds `PAUSE_FRAMES + 128`,
//! well below [`BACKLOG_FRAMES`]: no frame is dropped for want of room.
//! A receiving port with flow control leaves frames in its socket queue
//! while its RX rings are full, so the chain holds all the way back: a
//! full RX ring fills the kernel queue, that fills the sender's backlog,
//! which holds the sender's TX ring, which makes its driver wait. Frames
//! are still lost when there is no peer socket (a process not started
//! yet, or gone) or when the sender does not use flow control.
#![forbid(unsafe_code)]

use super::{Wire, WireError};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Frames a sender holds for a peer whose socket queue is full.
pub const BACKLOG_FRAMES: usize = 4096;
/// Backlog at which [`Wire::peer_ready`] says no (the XOFF threshold): a
/// sixteenth of [`BACKLOG_FRAMES`], so the frames a sender may still add
/// after it (one per TX engine, see the module documentation) always fit.
pub const PAUSE_FRAMES: usize = BACKLOG_FRAMES / 16;
/// How long dropping a wire waits for the peer to take any frame of the
/// backlog before it gives up on the rest.
pub const LINGER: Duration = Duration::from_secs(1);
/// Empty receives between two connects to the peer's path (which follow a
/// peer that was restarted; see the module documentation): a system call
/// per 64 idle polls.
const RECONNECT_EVERY: u32 = 64;

/// Frames waiting for room in the peer's socket queue, oldest first, and
/// spare buffers (so a backlog in steady use does not allocate).
#[derive(Default)]
struct Backlog {
    frames: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

/// One end of a `unix:` wire.
pub struct UnixWire {
    socket: UnixDatagram,
    local: PathBuf,
    peer: PathBuf,
    drops: AtomicU64,
    backlog: Mutex<Backlog>,
    /// Frames in the backlog (read without the lock on the receive path).
    waiting: AtomicUsize,
    /// Whether the socket has been connected to the peer's path once.
    connected: AtomicBool,
    /// Receives that found nothing, to pace the reconnects.
    empty_receives: AtomicU32,
}

/// What became of one datagram handed to the kernel.
enum Sent {
    /// It went out.
    Done,
    /// The peer's queue is full: try again later.
    Full,
    /// There is no peer socket: the frame is lost.
    NoPeer,
}

/// Whether `e` is EPERM: the peer's socket is connected to another socket
/// (its previous peer, until it reconnects), so it takes nothing from us.
fn is_eperm(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPERM)
}

/// `base` with `suffix` appended to its file name ("/tmp/w" -> "/tmp/w.a").
fn with_suffix(base: &str, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{base}{suffix}"))
}

/// Bind `path`: Some(socket), or None if a live socket holds it. A stale
/// socket file (nobody answers) is removed and the bind retried.
fn claim(path: &Path) -> Result<Option<UnixDatagram>, WireError> {
    let err = |source| WireError::Unix {
        path: path.to_path_buf(),
        source,
    };
    match UnixDatagram::bind(path) {
        Ok(s) => return Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {}
        Err(e) => return Err(err(e)),
    }
    let probe = UnixDatagram::unbound().map_err(err)?;
    match probe.connect(path) {
        Ok(()) => Ok(None),
        // A live socket connected to its peer refuses everyone else.
        Err(e) if is_eperm(&e) => Ok(None),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(err)?;
            UnixDatagram::bind(path).map(Some).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

impl UnixWire {
    /// Open `unix:ARG`: ARG is `PATH` (rendezvous on `PATH.a`/`PATH.b`) or
    /// `LOCAL>PEER`.
    pub fn open(arg: &str) -> Result<UnixWire, WireError> {
        let (socket, local, peer) = match arg.split_once('>') {
            Some((local, peer)) if !local.is_empty() && !peer.is_empty() => {
                let local = PathBuf::from(local);
                let socket = claim(&local)?.ok_or_else(|| WireError::Unix {
                    path: local.clone(),
                    source: ErrorKind::AddrInUse.into(),
                })?;
                (socket, local, PathBuf::from(peer))
            }
            Some(_) => {
                return Err(WireError::MissingArgument {
                    kind: "unix",
                    what: "LOCAL>PEER",
                })
            }
            None => {
                let (a, b) = (with_suffix(arg, ".a"), with_suffix(arg, ".b"));
                if let Some(s) = claim(&a)? {
                    (s, a, b)
                } else if let Some(s) = claim(&b)? {
                    (s, b, a)
                } else {
                    return Err(WireError::UnixBothEndsTaken(PathBuf::from(arg)));
                }
            }
        };
        socket
            .set_nonblocking(true)
            .map_err(|source| WireError::Unix {
                path: local.clone(),
                source,
            })?;
        let wire = UnixWire {
            socket,
            local,
            peer,
            drops: AtomicU64::new(0),
            backlog: Mutex::new(Backlog::default()),
            waiting: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
            empty_receives: AtomicU32::new(0),
        };
        wire.connect_peer();
        Ok(wire)
    }

    /// Connect the socket to the peer's path, if a socket is bound there
    /// (see the module documentation for why). A failure leaves the socket
    /// as it was: no peer yet, or the peer's predecessor, tried again later.
    fn connect_peer(&self) {
        if self.socket.connect(&self.peer).is_ok() {
            self.connected.store(true, Ordering::Relaxed);
        }
    }

    /// Frames waiting for room at the peer.
    pub fn backlog(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Backlog> {
        // The backlog stays consistent whatever panicked while it was held.
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The backlog, or None while another thread holds it.
    fn try_lock(&self) -> Option<MutexGuard<'_, Backlog>> {
        match self.backlog.try_lock() {
            Ok(b) => Some(b),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn send_one(&self, frame: &[u8]) -> std::io::Result<Sent> {
        match self.socket.send_to(frame, &self.peer) {
            Ok(_) => {
                if !self.connected.load(Ordering::Relaxed) {
                    // The peer is there now.
                    self.connect_peer();
                }
                Ok(Sent::Done)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Sent::Full),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Sent::Full),
            // The peer has not yet followed us from a predecessor of ours:
            // wait, as for a full queue (it reconnects when it idles).
            Err(e) if is_eperm(&e) => Ok(Sent::Full),
            // An error the kernel reports once on a connected socket whose
            // peer dropped frames of ours when it reconnected: try again.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(Sent::Full),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                Ok(Sent::NoPeer)
            }
            Err(e) => Err(e),
        }
    }

    /// Send what the backlog holds until the peer's queue is full again.
    /// True when the backlog is empty afterwards.
    fn drain(&self, b: &mut Backlog) -> std::io::Result<bool> {
        while let Some(frame) = b.frames.front() {
            let result = self.send_one(frame);
            match result {
                Ok(Sent::Full) => break,
                Ok(Sent::Done) => {}
                // The peer went away, or the socket refused this frame: it
                // is lost (and must not block the ones behind it).
                Ok(Sent::NoPeer) | Err(_) => {
                    self.drops.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(f) = b.frames.pop_front() {
                b.spare.push(f);
            }
            if let Err(e) = result {
                self.waiting.store(b.frames.len(), Ordering::Relaxed);
                return Err(e);
            }
        }
        self.waiting.store(b.frames.len(), Ordering::Relaxed);
        Ok(b.frames.is_empty())
    }

    /// Send `frame` now if the socket takes it; true if that settled it
    /// (sent, or lost because the peer is not there, yet or any more, as
    /// on an unplugged cable), false if the socket is full.
    fn send_now(&self, frame: &[u8]) -> std::io::Result<bool> {
        match self.send_one(frame)? {
            Sent::Done => Ok(true),
            Sent::NoPeer => {
                self.drops.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Sent::Full => Ok(false),
        }
    }

    /// Keep `frame` for later, or count it lost when the backlog is full.
    fn hold(&self, b: &mut Backlog, frame: &[u8]) {
        if b.frames.len() >= BACKLOG_FRAMES {
            self.drops.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut v = b.spare.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(frame);
        b.frames.push_back(v);
        self.waiting.store(b.frames.len(), Ordering::Relaxed);
    }

    /// The path this end is bound to.
    pub fn local(&self) -> &Path {
        &self.local
    }

    /// The path frames are sent to.
    pub fn peer(&self) -> &Path {
        &self.peer
    }
}

impl Wire for UnixWire {
    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        if self.waiting.load(Ordering::Relaxed) == 0 && self.send_now(frame)? {
            return Ok(());
        }
        // Order matters: older frames go first, this one waits behind them.
        let mut b = self.lock();
        if self.drain(&mut b)? && self.send_now(frame)? {
            return Ok(());
        }
        self.hold(&mut b, frame);
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        if self.waiting.load(Ordering::Relaxed) != 0 {
            // A busy sender must not stall a receiving thread: skip if locked.
            if let Some(mut b) = self.try_lock() {
                self.drain(&mut b)?;
            }
        }
        loop {
            match self.socket.recv(buf) {
                // An empty datagram is no frame (a probe of some other tool).
                Ok(0) => continue,
                Ok(n) => {
                    if !self.connected.load(Ordering::Relaxed) {
                        // The peer is there now.
                        self.connect_peer();
                    }
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Nothing queued, so a reconnect drops nothing: follow a
                    // peer that was restarted (its new socket cannot send
                    // to us while we are connected to the old one).
                    let n = self.empty_receives.fetch_add(1, Ordering::Relaxed);
                    if n.is_multiple_of(RECONNECT_EVERY) {
                        self.connect_peer();
                    }
                    return Ok(None);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Reported once on a connected socket (see send_one).
                Err(e) if e.kind() == ErrorKind::ConnectionReset => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn describe(&self) -> String {
        format!("unix:{}>{}", self.local.display(), self.peer.display())
    }

    fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    fn peer_ready(&self) -> bool {
        if self.waiting.load(Ordering::Relaxed) < PAUSE_FRAMES {
            return true;
        }
        // Move the backlog along here too: a port whose own RX rings are
        // full (flow control) does not call recv, and its send path is
        // held by this very answer.
        if let Some(mut b) = self.try_lock() {
            // A frame the socket refused is dropped and counted by `drain`;
            // the next send reports a socket that stays broken.
            let _ = self.drain(&mut b);
        }
        self.waiting.load(Ordering::Relaxed) < PAUSE_FRAMES
    }

    fn flush(&self) -> std::io::Result<()> {
        let mut b = self.lock();
        self.drain(&mut b).map(|_| ())
    }
}

impl Drop for UnixWire {
    fn drop(&mut self) {
        // Give the peer time to take what still waits (a sender that exits
        // right after its last frame would otherwise lose the tail), as long
        // as it keeps taking frames.
        let mut deadline = Instant::now() + LINGER;
        let mut b = self.lock();
        loop {
            let before = b.frames.len();
            if matches!(self.drain(&mut b), Ok(true) | Err(_)) {
                break;
            }
            let now = Instant::now();
            if b.frames.len() < before {
                deadline = now + LINGER;
            } else if now >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let lost = b.frames.len() as u64;
        self.drops.fetch_add(lost, Ordering::Relaxed);
        drop(b);
        // Best effort: a leftover file is detected as stale by the next open.
        let _ = std::fs::remove_file(&self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::open_wire;

    fn base(name: &str) -> String {
        std::env::temp_dir()
            .join(format!("wire-{}-{name}", std::process::id()))
            .display()
            .to_string()
    }

    #[test]
    fn rendezvous_gives_a_then_b_and_frames_cross() {
        let p = base("rdv");
        let first = UnixWire::open(&p).unwrap();
        let second = UnixWire::open(&p).unwrap();
        assert_eq!(first.local(), Path::new(&format!("{p}.a")));
        assert_eq!(second.local(), Path::new(&format!("{p}.b")));
        assert_eq!(first.peer(), second.local());
        first.send(b"hello b").unwrap();
        second.send(b"hello a").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(second.recv(&mut buf).unwrap(), Some(7));
        assert_eq!(&buf[..7], b"hello b");
        assert_eq!(first.recv(&mut buf).unwrap(), Some(7));
        assert_eq!(&buf[..7], b"hello a");
        assert_eq!(first.recv(&mut buf).unwrap(), None);
        let e = UnixWire::open(&p).err().expect("both taken");
        assert!(matches!(e, WireError::UnixBothEndsTaken(_)), "{e}");
        drop(first);
        assert!(!Path::new(&format!("{p}.a")).exists());
        // The next process takes the freed end.
        let third = open_wire(&format!("unix:{p}")).unwrap();
        assert_eq!(third.describe(), format!("unix:{p}.a>{p}.b"));
    }

    #[test]
    fn a_burst_beyond_the_kernel_queue_waits_in_the_backlog_in_order() {
        let p = base("burst");
        let tx = UnixWire::open(&p).unwrap();
        let rx = UnixWire::open(&p).unwrap();
        let n = 2000u32;
        for i in 0..n {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(tx.drops(), 0);
        let mut buf = [0u8; 16];
        let mut next = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while next < n {
            assert!(Instant::now() < deadline, "stuck at frame {next}");
            match rx.recv(&mut buf).unwrap() {
                Some(len) => {
                    assert_eq!(len, 4);
                    assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), next);
                    next += 1;
                }
                // The sender's next receive (a device thread polls) or flush
                // moves the backlog along.
                None => tx.flush().unwrap(),
            }
        }
        assert_eq!(tx.backlog(), 0);
        assert_eq!(tx.drops(), 0);
    }

    #[test]
    fn a_full_backlog_drops_and_counts() {
        let p = base("full");
        let tx = UnixWire::open(&p).unwrap();
        let rx = UnixWire::open(&p).unwrap();
        let n = BACKLOG_FRAMES as u64 + 5000;
        for i in 0..n {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        assert!(tx.drops() > 0);
        let mut got = 0u64;
        let mut buf = [0u8; 16];
        loop {
            while rx.recv(&mut buf).unwrap().is_some() {
                got += 1;
            }
            if tx.backlog() == 0 {
                break;
            }
            tx.flush().unwrap();
        }
        assert_eq!(got + tx.drops(), n);
    }

    #[test]
    fn a_receiver_that_does_not_read_makes_peer_ready_say_no_before_any_drop() {
        let p = base("pause");
        let tx = UnixWire::open(&p).unwrap();
        let rx = UnixWire::open(&p).unwrap();
        // A sender with flow control: one frame per yes, as a TX engine.
        let mut sent = 0u32;
        while tx.peer_ready() {
            assert!((sent as usize) < BACKLOG_FRAMES, "peer_ready never said no");
            tx.send(&sent.to_le_bytes()).unwrap();
            sent += 1;
        }
        // The kernel's queue took some, the backlog holds exactly the XOFF
        // threshold, nothing was lost, and the answer stays no.
        assert_eq!(tx.backlog(), PAUSE_FRAMES);
        assert!(sent as usize > PAUSE_FRAMES, "{sent}");
        assert_eq!(tx.drops(), 0);
        assert!(!tx.peer_ready());
        assert_eq!(tx.backlog(), PAUSE_FRAMES);
        // The receiver empties its queue: the next question moves the
        // backlog into the room made, and the answer is yes again.
        let mut buf = [0u8; 16];
        let mut next = 0u32;
        while let Some(len) = rx.recv(&mut buf).unwrap() {
            assert_eq!(len, 4);
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), next);
            next += 1;
        }
        assert!(next > 0);
        assert!(tx.peer_ready());
        assert!(tx.backlog() < PAUSE_FRAMES);
        // Every frame arrives once, in order.
        let deadline = Instant::now() + Duration::from_secs(10);
        while next < sent {
            assert!(Instant::now() < deadline, "stuck at frame {next} of {sent}");
            match rx.recv(&mut buf).unwrap() {
                Some(_) => {
                    assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), next);
                    next += 1;
                }
                None => tx.flush().unwrap(),
            }
        }
        assert_eq!(rx.recv(&mut buf).unwrap(), None);
        assert_eq!(tx.backlog(), 0);
        assert_eq!(tx.drops(), 0);
    }

    #[test]
    fn dropping_the_sender_delivers_the_backlog_to_a_slow_reader() {
        let p = base("linger");
        let tx = UnixWire::open(&p).unwrap();
        let rx = UnixWire::open(&p).unwrap();
        let n = 1500u32;
        for i in 0..n {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        assert!(tx.backlog() > 0);
        // The reader takes a frame every millisecond: all of them take
        // longer than LINGER, but the sender keeps going while frames move.
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let mut got = Vec::new();
            let mut last = Instant::now();
            while got.len() < n as usize && last.elapsed() < 3 * LINGER {
                match rx.recv(&mut buf).unwrap() {
                    Some(_) => {
                        got.push(u32::from_le_bytes(buf[..4].try_into().unwrap()));
                        last = Instant::now();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    None => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            got
        });
        drop(tx);
        assert_eq!(reader.join().unwrap(), (0..n).collect::<Vec<u32>>());
    }

    #[test]
    fn connected_ends_queue_more_than_max_dgram_qlen() {
        let qlen: usize = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(10);
        let p = base("qlen");
        let tx = UnixWire::open(&p).unwrap();
        let rx = UnixWire::open(&p).unwrap();
        // rx connected to tx at open (tx was there): the queue-length limit
        // is gone for tx's frames, only tx's send buffer bounds them.
        let n = 100;
        for i in 0..n as u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        let in_kernel = n - tx.backlog();
        if qlen < n / 2 {
            assert!(
                in_kernel > 2 * qlen,
                "{in_kernel} queued, max_dgram_qlen {qlen}"
            );
        }
        let mut buf = [0u8; 16];
        let mut next = 0u32;
        while rx.recv(&mut buf).unwrap().is_some() {
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), next);
            next += 1;
        }
        assert_eq!(next as usize, in_kernel);
    }

    #[test]
    fn a_restarted_peer_is_followed_without_losing_frames() {
        let p = base("restart");
        let a = UnixWire::open(&p).unwrap();
        let b = UnixWire::open(&p).unwrap();
        b.send(b"first b").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(a.recv(&mut buf).unwrap(), Some(7));
        drop(b);
        // a is still connected to the dead socket; the new b finds a live
        // (its probe is refused with EPERM) and takes the b end.
        let b2 = UnixWire::open(&p).unwrap();
        assert_eq!(b2.local(), Path::new(&format!("{p}.b")));
        for i in 0..20u32 {
            b2.send(&i.to_le_bytes()).unwrap();
        }
        // Refused until a reconnects: held, not lost.
        assert_eq!(b2.drops(), 0);
        let mut next = 0u32;
        let mut idle = 0;
        while next < 20 {
            match a.recv(&mut buf).unwrap() {
                Some(len) => {
                    assert_eq!(len, 4);
                    assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), next);
                    next += 1;
                }
                None => {
                    idle += 1;
                    assert!(idle <= 4 * RECONNECT_EVERY, "a never took b2's frames");
                    b2.flush().unwrap();
                }
            }
        }
        assert_eq!(b2.drops(), 0);
        assert_eq!(b2.backlog(), 0);
        // And the other way.
        a.send(b"to b2").unwrap();
        assert_eq!(b2.recv(&mut buf).unwrap(), Some(5));
        assert_eq!(&buf[..5], b"to b2");
    }

    #[test]
    fn stale_socket_file_is_replaced() {
        let p = base("stale");
        let a = format!("{p}.a");
        // A socket whose process "died": the file stays, nobody listens.
        drop(UnixDatagram::bind(&a).unwrap());
        assert!(Path::new(&a).exists());
        let w = UnixWire::open(&p).unwrap();
        assert_eq!(w.local(), Path::new(&a));
    }

    #[test]
    fn absent_peer_is_a_counted_drop_and_explicit_form_works() {
        let l = base("explicit-l");
        let r = base("explicit-r");
        let left = open_wire(&format!("unix:{l}>{r}")).unwrap();
        left.send(&[1; 60]).unwrap();
        assert_eq!(left.drops(), 1);
        let right = open_wire(&format!("unix:{r}>{l}")).unwrap();
        left.send(&[2; 60]).unwrap();
        let mut buf = [0u8; 100];
        assert_eq!(right.recv(&mut buf).unwrap(), Some(60));
        assert_eq!(buf[0], 2);
        let e = open_wire(&format!("unix:{l}>")).err().expect("no peer");
        assert!(e.to_string().contains("LOCAL>PEER"), "{e}");
    }

    #[test]
    fn unusable_directory_names_the_path() {
        let e = open_wire("unix:/nonexistent-dir/sock")
            .err()
            .expect("fails");
        assert!(e.to_string().contains("/nonexistent-dir/sock.a"), "{e}");
    }
}
