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
//! only 10) at a receiving socket, far fewer than one TX batch. So a frame
//! the peer's queue cannot take yet waits in a bounded backlog on the
//! sending side ([`BACKLOG_FRAMES`]), in order, and goes out on the next
//! send or receive of this end (a threaded port calls both all the time),
//! or on [`Wire::flush`]. A frame that finds the backlog full, or no peer
//! socket at all, is lost as on a cable and counted in [`Wire::drops`].
//! Dropping the wire tries for up to [`LINGER`] to deliver the backlog.

use super::{Wire, WireError};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Frames a sender holds for a peer whose socket queue is full.
pub const BACKLOG_FRAMES: usize = 4096;
/// How long dropping a wire keeps trying to deliver its backlog.
pub const LINGER: Duration = Duration::from_secs(1);

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
        Ok(UnixWire {
            socket,
            local,
            peer,
            drops: AtomicU64::new(0),
            backlog: Mutex::new(Backlog::default()),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Frames waiting for room at the peer.
    pub fn backlog(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Backlog> {
        // The backlog stays consistent whatever panicked while it was held.
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_one(&self, frame: &[u8]) -> std::io::Result<Sent> {
        match self.socket.send_to(frame, &self.peer) {
            Ok(_) => Ok(Sent::Done),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Sent::Full),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Sent::Full),
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
        if self.waiting.load(Ordering::Relaxed) == 0 {
            match self.send_one(frame)? {
                Sent::Done => return Ok(()),
                Sent::NoPeer => {
                    // The peer is not there (yet, or any more): lost, as on
                    // an unplugged cable.
                    self.drops.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Sent::Full => {}
            }
        }
        // Order matters: older frames go first, this one waits behind them.
        let mut b = self.lock();
        if self.drain(&mut b)? {
            match self.send_one(frame)? {
                Sent::Done => return Ok(()),
                Sent::NoPeer => {
                    self.drops.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Sent::Full => {}
            }
        }
        self.hold(&mut b, frame);
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        if self.waiting.load(Ordering::Relaxed) != 0 {
            // A busy sender must not stall a receiving thread: skip if locked.
            if let Ok(mut b) = self.backlog.try_lock() {
                self.drain(&mut b)?;
            }
        }
        loop {
            match self.socket.recv(buf) {
                // An empty datagram is no frame (a probe of some other tool).
                Ok(0) => continue,
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
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

    fn flush(&self) -> std::io::Result<()> {
        let mut b = self.lock();
        self.drain(&mut b).map(|_| ())
    }
}

impl Drop for UnixWire {
    fn drop(&mut self) {
        // Give the peer a moment to take what still waits (a sender that
        // exits right after its last frame would otherwise lose the tail).
        let deadline = Instant::now() + LINGER;
        let mut b = self.lock();
        while !matches!(self.drain(&mut b), Ok(true) | Err(_)) && Instant::now() < deadline {
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
