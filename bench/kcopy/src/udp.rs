//! The kernel's best UDP paths from a file to a socket, measured as the TCP
//! ones are (the sending thread's CPU time and system calls):
//!
//! - `udp-gso`: pread a run of datagrams into a buffer, one send(2) of up
//!   to 64 KiB that the kernel cuts into datagrams of `--udp-payload` bytes
//!   (`UDP_SEGMENT`, generic segmentation offload).
//! - `udp-gso-zerocopy`: the same with `MSG_ZEROCOPY`: the kernel pins the
//!   user buffer instead of copying it, and reports on the socket's error
//!   queue when it is done with it. On loopback the kernel copies anyway
//!   (a zero-copy skb looped to a local socket is copied before it is
//!   queued, and the completion says so: `SO_EE_CODE_ZEROCOPY_COPIED`);
//!   the figure is what a user gets on loopback, and kcopy prints how many
//!   completions said "copied".
//! - `io-uring`: `O_DIRECT` reads (no page cache: from the disk, as blkfwd
//!   reads from its drive) into registered buffers, sent with `send_zc`
//!   (`IORING_OP_SEND_ZC`) on the same GSO socket; one `io_uring_enter`
//!   submits and reaps many operations. The same loopback caveat holds.
//!
//! Receiver: a UDP socket on 127.0.0.1 in the same process, with the same
//! byte count and per-pass checksum as the TCP receiver. UDP has no flow
//! control, so a sender more than `WINDOW` bytes ahead of the receiver
//! waits (a futex sleep, counted as a system call); the receive buffer is
//! sized well above the window so no datagram is dropped. A loss or
//! reordering still fails the run's check instead of giving a figure.
//! Segmentation happens in the sender's context on loopback too: the
//! receiving socket has no `UDP_GRO`, so the kernel cuts the GSO packet into
//! datagrams as it queues them, as it would for a NIC without segmentation
//! offload.

use crate::placement::{self, Cpus};
use crate::{block_sigpipe, shrank, Calls, Method, Received, Sent, Source, Tally, ThreadUsage};
use apps::AppResult;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Linux uapi values the libc crate does not export for every target.
/// `<linux/udp.h>`: the GSO segment size socket option (level SOL_UDP).
const UDP_SEGMENT: libc::c_int = 103;
/// `<asm-generic/socket.h>`.
const SO_ZEROCOPY: libc::c_int = 60;
/// `<linux/errqueue.h>`.
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
/// `<linux/io_uring.h>`: ask send_zc's notification to say whether the
/// kernel copied, and the bit of the notification's result that says so.
const IORING_SEND_ZC_REPORT_USAGE: u16 = 8;
const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// Largest UDP payload of one IPv4 datagram (65535 - 20 - 8), the bound of a
/// GSO send too.
const MAX_UDP: usize = 65_507;
/// The kernel's limit of segments per GSO send (UDP_MAX_SEGMENTS, 64 before
/// Linux 6.10).
const MAX_SEGMENTS: usize = 64;
/// How far the sender may run ahead of the receiver, in bytes.
const WINDOW: u64 = 16 << 20;
/// Receive buffer asked for (SO_RCVBUFFORCE, as root; else SO_RCVBUF up to
/// net.core.rmem_max): room for the window with the kernel's per-datagram
/// overhead.
const RCVBUF: libc::c_int = 128 << 20;
/// Buffers of the pread and io_uring senders: sends in flight at most.
const SLOTS: usize = 16;
/// io_uring read size: 64 KiB, a multiple of any logical block size, as
/// O_DIRECT needs.
const DIRECT_READ: usize = 64 << 10;
/// O_DIRECT alignment of buffers, offsets and lengths.
const DIRECT_ALIGN: usize = 4096;

/// Bytes of one GSO send: the largest whole number of datagrams under the
/// UDP size limit and the kernel's segment limit.
pub(crate) fn gso_send_len(payload: usize) -> usize {
    (MAX_UDP / payload).clamp(1, MAX_SEGMENTS) * payload
}

/// A method the kernel or the file system here cannot run, and why.
pub(crate) struct Unsupported(pub(crate) String);

/// The outcome of one UDP method.
pub(crate) struct UdpRun {
    pub(crate) received: Received,
    pub(crate) sent: Sent,
    /// Zero-copy completions, and how many said the kernel copied.
    pub(crate) zc: Option<(u64, u64)>,
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a c_int on our stack, passed with its size;
    // the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run one UDP method: a receiver thread, a sender thread, the counts.
/// `Err(Unsupported)` inside Ok when the kernel here cannot do it.
pub(crate) fn run(
    method: Method,
    cpus: Cpus,
    src: &Source,
    payload: usize,
    repeat: u64,
) -> AppResult<Result<UdpRun, Unsupported>> {
    let name = method.name();
    let net = |e: io::Error| format!("{name}: setting up the loopback UDP sockets failed: {e}");
    let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(net)?;
    if setsockopt_int(
        rx.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        RCVBUF,
    )
    .is_err()
    {
        // Not root: as much as net.core.rmem_max allows. The window keeps the
        // sender within it unless rmem_max is tiny, and a loss fails the check.
        setsockopt_int(rx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF).map_err(net)?;
    }
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(net)?;
    tx.connect(rx.local_addr().map_err(net)?).map_err(net)?;
    setsockopt_int(
        tx.as_raw_fd(),
        libc::SOL_UDP,
        UDP_SEGMENT,
        payload as libc::c_int,
    )
    .map_err(|e| {
        format!(
            "{name}: UDP_SEGMENT (GSO) is not available here ({e}); it needs Linux 4.18 or later"
        )
    })?;
    let file = src
        .file
        .try_clone()
        .map_err(|e| format!("{name}: cannot duplicate the file descriptor: {e}"))?;
    let (size, consumed, done) = (
        src.size,
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let receiver = {
        let (consumed, done) = (consumed.clone(), done.clone());
        std::thread::Builder::new()
            .name("kcopy-recv".into())
            .spawn(move || {
                placement::pin(cpus.recv, "receiver")?;
                receive(rx, size, repeat, &consumed, &done)
            })
            .map_err(|e| format!("cannot start the receiver thread: {e}"))?
    };
    let sender = {
        let (consumed, done) = (consumed.clone(), done.clone());
        std::thread::Builder::new()
            .name("kcopy-send".into())
            .spawn(move || {
                let r = placement::pin(cpus.send, "sender")
                    .and_then(|()| send(method, file, tx, size, payload, repeat, &consumed));
                done.store(true, Ordering::Release);
                r
            })
    };
    let sent = match sender {
        Ok(h) => h.join(),
        Err(e) => {
            done.store(true, Ordering::Release);
            let _ = receiver.join();
            return Err(format!("cannot start the sender thread: {e}").into());
        }
    };
    let received = receiver
        .join()
        .map_err(|_| format!("{name}: the receiver thread panicked"))?
        .map_err(|e| format!("{name}: the receiver failed reading the socket: {e}"))?;
    match sent.map_err(|_| format!("{name}: the sender thread panicked"))? {
        Ok(Ok((sent, zc))) => Ok(Ok(UdpRun { received, sent, zc })),
        Ok(Err(u)) => Ok(Err(u)),
        Err(e) => Err(format!("{name}: sending failed: {e}").into()),
    }
}

/// Drain the UDP socket until every byte came, or the sender is done and
/// nothing came for a second (a loss: the check then fails).
fn receive(
    sock: UdpSocket,
    size: u64,
    repeat: u64,
    consumed: &AtomicU64,
    sender_done: &AtomicBool,
) -> io::Result<Received> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; MAX_UDP];
    let mut tally = Tally::new(size, repeat);
    let mut quiet = 0;
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                tally.take(&buf[..n]);
                consumed.store(tally.got.bytes, Ordering::Release);
                quiet = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if sender_done.load(Ordering::Acquire) {
                    quiet += 1;
                    if quiet >= 10 {
                        break;
                    }
                }
            }
            Err(e) => return Err(e),
        }
        if tally.got.bytes >= tally.expected && sender_done.load(Ordering::Acquire) {
            break;
        }
    }
    Ok(tally.got)
}

type SendResult = io::Result<Result<(Sent, Option<(u64, u64)>), Unsupported>>;

fn send(
    method: Method,
    file: File,
    sock: UdpSocket,
    size: u64,
    payload: usize,
    repeat: u64,
    consumed: &AtomicU64,
) -> SendResult {
    block_sigpipe()?;
    match method {
        Method::UdpGso => send_pread(&file, &sock, size, payload, repeat, consumed, false),
        Method::UdpGsoZerocopy => {
            if let Err(e) = setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, SO_ZEROCOPY, 1) {
                return Ok(Err(Unsupported(format!(
                    "SO_ZEROCOPY is refused on this kernel ({e}; needs Linux 5.0 or later for UDP)"
                ))));
            }
            send_pread(&file, &sock, size, payload, repeat, consumed, true)
        }
        Method::IoUring => send_io_uring(&file, &sock, size, payload, repeat, consumed),
        _ => Err(io::Error::other(format!(
            "{} is not a UDP method",
            method.name()
        ))),
    }
}

/// Wait (futex sleeps, each counted) until the receiver is within WINDOW of
/// `sent` bytes.
fn wait_window(sent: u64, consumed: &AtomicU64, calls: &mut Calls) {
    while sent.saturating_sub(consumed.load(Ordering::Acquire)) > WINDOW {
        calls.other();
        std::thread::park_timeout(Duration::from_micros(50));
    }
}

/// The zero-copy send ids the kernel is done with, from the socket's error
/// queue; `block` waits for at least one notification.
struct ZcBook {
    /// done[id % SLOTS]: the send with that id is released.
    done: [bool; SLOTS],
    notes: u64,
    copied: u64,
}

impl ZcBook {
    fn reap(&mut self, fd: i32, block: bool, calls: &mut Calls) -> io::Result<()> {
        loop {
            if block {
                let mut p = libc::pollfd {
                    fd,
                    events: 0,
                    revents: 0,
                };
                calls.other();
                // SAFETY: one pollfd on our stack; POLLERR is reported when
                // the error queue has a notification.
                if unsafe { libc::poll(&mut p, 1, 1000) } < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
            let mut control = [0u64; 16];
            // SAFETY: an all-zero msghdr is a valid value of this C struct.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            calls.other();
            // SAFETY: msg points at our control buffer with its length; no
            // data buffer; MSG_ERRQUEUE reads one queued notification.
            let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    if block {
                        continue;
                    }
                    return Ok(());
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // SAFETY: CMSG_FIRSTHDR reads msg, which points at our control
            // buffer of msg_controllen bytes (set by the kernel).
            let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
            while !c.is_null() {
                // SAFETY: c is non-null and was returned by CMSG_FIRSTHDR or
                // CMSG_NXTHDR: a whole cmsghdr inside the control buffer.
                let h = unsafe { &*c };
                if h.cmsg_level == libc::SOL_IP && h.cmsg_type == libc::IP_RECVERR {
                    // SAFETY: an IP_RECVERR message carries a sock_extended_err
                    // after its header, within the buffer; read unaligned.
                    let ee: libc::sock_extended_err =
                        unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                    if ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY && ee.ee_errno == 0 {
                        let (lo, hi) = (ee.ee_info, ee.ee_data);
                        let mut id = lo;
                        loop {
                            self.done[id as usize % SLOTS] = true;
                            self.notes += 1;
                            if ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0 {
                                self.copied += 1;
                            }
                            if id == hi {
                                break;
                            }
                            id = id.wrapping_add(1);
                        }
                    } else if ee.ee_errno != 0 {
                        return Err(io::Error::from_raw_os_error(ee.ee_errno as i32));
                    }
                }
                // SAFETY: c is a header of msg's control buffer; CMSG_NXTHDR
                // returns the next one within msg_controllen, or null.
                c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
            }
            return Ok(());
        }
    }
}

/// udp-gso and udp-gso-zerocopy: pread a GSO send's worth into one of SLOTS
/// buffers, send it; with zero copy, a buffer is reused only once the
/// kernel has released the send that last used it.
fn send_pread(
    file: &File,
    sock: &UdpSocket,
    size: u64,
    payload: usize,
    repeat: u64,
    consumed: &AtomicU64,
    zerocopy: bool,
) -> SendResult {
    let len = gso_send_len(payload);
    // Filled (not just reserved) so no page faults land in the timing.
    let mut bufs = vec![vec![0x5au8; len]; SLOTS];
    let fd = sock.as_raw_fd();
    let mut calls = Calls(0);
    let mut book = ZcBook {
        done: [true; SLOTS],
        notes: 0,
        copied: 0,
    };
    let flags = if zerocopy { libc::MSG_ZEROCOPY } else { 0 };
    let mut id: u64 = 0;
    let mut sent_bytes = 0u64;
    let before = ThreadUsage::now()?;
    let start = Instant::now();
    for _ in 0..repeat {
        let mut off = 0u64;
        while off < size {
            let slot = (id % SLOTS as u64) as usize;
            if zerocopy {
                while !book.done[slot] {
                    book.reap(fd, true, &mut calls)?;
                }
                book.done[slot] = false;
            }
            let buf = &mut bufs[slot];
            let want = (size - off).min(len as u64) as usize;
            let mut got = 0;
            while got < want {
                calls.other();
                match file.read_at(&mut buf[got..want], off + got as u64) {
                    Ok(0) => return Err(shrank(off + got as u64, size)),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            wait_window(sent_bytes, consumed, &mut calls);
            loop {
                let p = buf.as_ptr();
                // SAFETY: buf[..want] is ours and stays unchanged until the
                // kernel releases it (zero copy: the slot is not reused
                // before its notification; else the kernel copied already).
                match calls.bytes(|| unsafe { libc::send(fd, p.cast(), want, flags) }) {
                    Ok(n) if n == want => break,
                    Ok(n) => {
                        return Err(io::Error::other(format!(
                            "a UDP send took {n} of {want} bytes (datagrams are all or nothing)"
                        )))
                    }
                    // Zero copy: the socket's option memory holds too many
                    // notifications; take some and try again.
                    Err(e) if zerocopy && e.raw_os_error() == Some(libc::ENOBUFS) => {
                        book.reap(fd, true, &mut calls)?
                    }
                    Err(e) => return Err(e),
                }
            }
            if zerocopy {
                book.reap(fd, false, &mut calls)?;
            }
            id += 1;
            off += want as u64;
            sent_bytes += want as u64;
        }
    }
    if zerocopy {
        while book.done.iter().any(|d| !d) {
            book.reap(fd, true, &mut calls)?;
        }
    }
    let after = ThreadUsage::now()?;
    Ok(Ok((
        Sent::between(start, &before, &after, calls.0),
        zerocopy.then_some((book.notes, book.copied)),
    )))
}

/// Page-aligned buffers for O_DIRECT, freed on drop.
struct Aligned {
    ptr: *mut u8,
    layout: Layout,
}

impl Aligned {
    fn new(len: usize) -> io::Result<Aligned> {
        let layout = Layout::from_size_align(len, DIRECT_ALIGN)
            .map_err(|e| io::Error::other(format!("buffer layout: {e}")))?;
        // SAFETY: the layout has a non-zero size (SLOTS * DIRECT_READ).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::other("out of memory for the io_uring buffers"));
        }
        Ok(Aligned { ptr, layout })
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: ptr came from alloc_zeroed with this layout, freed once.
        unsafe { alloc::dealloc(self.ptr, self.layout) }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Reading,
    /// Read, waiting for its turn to be sent (file order).
    Ready,
    /// Sends and notifications outstanding.
    Sending {
        sends: u32,
        notes: u32,
    },
}

const READ: u64 = 1 << 32;
const SEND: u64 = 2 << 32;

/// io-uring: O_DIRECT reads into SLOTS registered 64 KiB buffers (several
/// in flight), each sent with send_zc in pieces of a GSO send at most, in
/// file order: the sends of all buffers ready in order go as one linked
/// chain, and a new chain only once the last one completed, so datagrams
/// never overtake each other. A buffer is read again only when every
/// notification of its sends has come.
fn send_io_uring(
    file: &File,
    sock: &UdpSocket,
    size: u64,
    payload: usize,
    repeat: u64,
    consumed: &AtomicU64,
) -> SendResult {
    let direct = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
    {
        Ok(f) => f,
        Err(e) => {
            return Ok(Err(Unsupported(format!(
                "the file cannot be opened with O_DIRECT here ({e}); put it on a file system that \
                 supports direct I/O (TMPDIR or --file)"
            ))))
        }
    };
    // Declared before the ring, so dropped after it.
    let mem = Aligned::new(SLOTS * DIRECT_READ)?;
    let mut ring: IoUring = match IoUring::new(64) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Err(Unsupported(format!(
                "io_uring_setup failed ({e}); io_uring is off (sysctl kernel.io_uring_disabled) or \
                 the kernel predates it"
            ))))
        }
    };
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (op, what) in [
        (opcode::SendZc::CODE, "IORING_OP_SEND_ZC (Linux 6.0)"),
        (opcode::ReadFixed::CODE, "IORING_OP_READ_FIXED"),
    ] {
        if !probe.is_supported(op) {
            return Ok(Err(Unsupported(format!(
                "this kernel's io_uring has no {what}"
            ))));
        }
    }
    let iovecs: Vec<libc::iovec> = (0..SLOTS)
        .map(|i| libc::iovec {
            // SAFETY: i * DIRECT_READ < SLOTS * DIRECT_READ, inside `mem`.
            iov_base: unsafe { mem.ptr.add(i * DIRECT_READ) }.cast(),
            iov_len: DIRECT_READ,
        })
        .collect();
    // SAFETY: the buffers live in `mem`, which outlives the ring: it is
    // dropped after it, and leaked if the run ends with operations that may
    // still be in flight (see below).
    if let Err(e) = unsafe { ring.submitter().register_buffers(&iovecs) } {
        return Ok(Err(Unsupported(format!(
            "registering the io_uring buffers failed ({e}); raise the locked-memory limit \
             (ulimit -l)"
        ))));
    }
    let run = stream_direct(
        &mut ring, &direct, sock, &mem, &iovecs, size, payload, repeat, consumed,
    );
    // The ring (with the registration) goes before the memory it points at.
    // A run that ended early may leave reads or sends in flight, which the
    // kernel finishes after the ring's file is closed: their buffers are
    // leaked (1 MiB) rather than freed under them.
    drop(ring);
    if matches!(run, Ok(Ok(_))) {
        drop(mem);
    } else {
        std::mem::forget(mem);
    }
    run
}

/// The loop of send_io_uring.
#[allow(clippy::too_many_arguments)]
fn stream_direct(
    ring: &mut IoUring,
    direct: &File,
    sock: &UdpSocket,
    mem: &Aligned,
    iovecs: &[libc::iovec],
    size: u64,
    payload: usize,
    repeat: u64,
    consumed: &AtomicU64,
) -> SendResult {
    let fd = types::Fd(direct.as_raw_fd());
    let sfd = types::Fd(sock.as_raw_fd());
    let piece = gso_send_len(payload);
    let total = size * repeat;
    let mut slots = [Slot::Free; SLOTS];
    let mut slot_off = [0u64; SLOTS];
    let mut slot_len = [0usize; SLOTS];
    // Stream offsets: next to read, next to send.
    let (mut next_read, mut next_send) = (0u64, 0u64);
    let mut chain_in_flight = 0u32;
    let mut sent_ok = 0u64;
    let (mut notes, mut copied) = (0u64, 0u64);
    let mut calls = Calls(0);
    let before = ThreadUsage::now()?;
    let start = Instant::now();
    loop {
        // Reads into free buffers.
        {
            let mut sq = ring.submission();
            for (i, s) in slots.iter_mut().enumerate() {
                if next_read >= total || sq.is_full() {
                    break;
                }
                if *s != Slot::Free {
                    continue;
                }
                let file_off = next_read % size;
                let want = (size - file_off).min(DIRECT_READ as u64) as usize;
                let len = want.next_multiple_of(DIRECT_ALIGN).min(DIRECT_READ);
                let e = opcode::ReadFixed::new(fd, iovecs[i].iov_base.cast(), len as u32, i as u16)
                    .offset(file_off)
                    .build()
                    .user_data(READ | i as u64);
                // SAFETY: the buffer is registered and Free: nothing else
                // uses it until this read's completion.
                unsafe { sq.push(&e) }.map_err(|_| io::Error::other("io_uring SQ full"))?;
                *s = Slot::Reading;
                slot_off[i] = next_read;
                slot_len[i] = want;
                next_read += want as u64;
            }
        }
        // The sends of every buffer ready in stream order, as one chain.
        if chain_in_flight == 0 {
            let mut order: Vec<usize> = Vec::new();
            let mut at = next_send;
            while let Some(i) = (0..SLOTS).find(|&i| slots[i] == Slot::Ready && slot_off[i] == at) {
                order.push(i);
                at += slot_len[i] as u64;
            }
            if !order.is_empty() {
                wait_window(next_send, consumed, &mut calls);
                let mut entries = Vec::new();
                for &i in &order {
                    let mut sends = 0;
                    let mut o = 0;
                    while o < slot_len[i] {
                        let n = (slot_len[i] - o).min(piece);
                        // SAFETY: o + n <= slot_len[i] <= DIRECT_READ: inside
                        // registered buffer i.
                        let p = unsafe { mem.ptr.add(i * DIRECT_READ + o) };
                        entries.push(
                            opcode::SendZc::new(sfd, p, n as u32)
                                .buf_index(Some(i as u16))
                                .zc_flags(IORING_SEND_ZC_REPORT_USAGE)
                                .build()
                                .user_data(SEND | i as u64 | ((n as u64) << 40)),
                        );
                        sends += 1;
                        o += n;
                    }
                    slots[i] = Slot::Sending { sends, notes: 0 };
                    next_send += slot_len[i] as u64;
                }
                let last = entries.len() - 1;
                let mut sq = ring.submission();
                for (k, e) in entries.into_iter().enumerate() {
                    let e = if k < last {
                        e.flags(squeue::Flags::IO_LINK)
                    } else {
                        e
                    };
                    // SAFETY: the buffers stay untouched until every
                    // notification of their sends has come.
                    unsafe { sq.push(&e) }.map_err(|_| io::Error::other("io_uring SQ full"))?;
                    chain_in_flight += 1;
                }
            }
        }
        let busy = slots.iter().any(|s| *s != Slot::Free);
        if !busy && next_read >= total {
            break;
        }
        calls.other();
        ring.submit_and_wait(1)?;
        for cqe in ring.completion() {
            let ud = cqe.user_data();
            let i = (ud & 0xffff_ffff) as usize;
            let res = cqe.result();
            if ud & READ != 0 && ud & SEND == 0 {
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res));
                }
                if (res as usize) < slot_len[i] {
                    return Err(shrank(slot_off[i] % size + res as u64, size));
                }
                slots[i] = Slot::Ready;
                continue;
            }
            let Slot::Sending { sends, notes: n } = &mut slots[i] else {
                return Err(io::Error::other(
                    "an io_uring completion for a buffer not sending (a bug)",
                ));
            };
            if cqueue::notif(cqe.flags()) {
                *n -= 1;
                notes += 1;
                if res as u32 & IORING_NOTIF_USAGE_ZC_COPIED != 0 {
                    copied += 1;
                }
            } else {
                chain_in_flight -= 1;
                *sends -= 1;
                if cqueue::more(cqe.flags()) {
                    *n += 1;
                }
                let want = (ud >> 40) as i32;
                if res < 0 {
                    let e = io::Error::from_raw_os_error(-res);
                    if sent_ok == 0 && matches!(-res, libc::EOPNOTSUPP | libc::EINVAL) {
                        return Ok(Err(Unsupported(format!(
                            "send_zc on a UDP socket is refused by this kernel ({e})"
                        ))));
                    }
                    return Err(e);
                }
                if res != want {
                    return Err(io::Error::other(format!(
                        "send_zc took {res} of {want} bytes (datagrams are all or nothing)"
                    )));
                }
                sent_ok += res as u64;
            }
            if *sends == 0 && *n == 0 {
                slots[i] = Slot::Free;
            }
        }
    }
    let after = ThreadUsage::now()?;
    Ok(Ok((
        Sent::between(start, &before, &after, calls.0),
        Some((notes, copied)),
    )))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gso_send_is_whole_datagrams_under_the_limits() {
        assert_eq!(gso_send_len(1472), 44 * 1472);
        assert_eq!(gso_send_len(8972), 7 * 8972);
        // Small datagrams: the segment limit, not the size limit.
        assert_eq!(gso_send_len(512), 64 * 512);
        assert_eq!(gso_send_len(MAX_UDP), MAX_UDP);
    }
}
