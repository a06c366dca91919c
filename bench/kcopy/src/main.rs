//! kcopy: the kernel's own ways of moving a file to a TCP socket
//! (read+write, mmap+write, sendfile, splice through a pipe), measured the
//! way blkfwd is measured, so the two can be compared: GiB/s, and CPU
//! seconds and system calls per GiB of the one thread that sends.
//!
//! A receiver thread in the same process drains the socket (loopback,
//! 127.0.0.1) and checksums every byte it gets; the run fails unless the
//! byte count and the checksum of each pass match the file, so a method
//! that loses or garbles data cannot report a figure.

use apps::cputime::thread_cpu_time;
use apps::stream::pattern::fill_block;
use apps::{exit_on_error, human_bytes, AppResult};
use clap::{Parser, ValueEnum};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GIB: f64 = (1u64 << 30) as f64;
mod placement;
mod udp;

use placement::{Cpus, Placement};

/// Bytes the temp file must leave free on its file system.
const FREE_MARGIN: u64 = 64 << 20;
/// Largest --chunk: the read-write method holds one chunk in memory.
const MAX_CHUNK: u64 = 256 << 20;
/// Block size of the fill pattern and of the checksum pass over the file.
const FILL_BLOCK: usize = 4096;
/// Seed of the temp file's pattern ("kcopy" in ASCII).
const FILL_SEED: u64 = u64::from_be_bytes(*b"\0\0\0kcopy");
const IO_BUF: usize = 1 << 20;
/// The receiver's buffer: small enough to stay in the L2 cache while it is
/// checksummed.
const RECV_BUF: usize = 256 << 10;

/// Copy a file in the page cache to a TCP socket on 127.0.0.1 with the
/// kernel's copy paths and report throughput, sender CPU time and system
/// calls per GiB.
#[derive(Debug, Parser)]
#[command(
    name = "kcopy",
    version,
    after_help = "Methods: read-write (pread into a buffer, write it to the socket), mmap-write \
(map the file, write from the mapping), sendfile, splice (file -> pipe -> socket) over TCP; \
udp-gso (pread, one 64 KiB send cut into --udp-payload datagrams by UDP_SEGMENT), \
udp-gso-zerocopy (the same with MSG_ZEROCOPY; on loopback the kernel copies anyway and says so), \
io-uring (O_DIRECT reads into registered buffers, send_zc on the GSO socket) over UDP; all. \
A method this kernel cannot run is reported as unsupported with the reason, not measured.\n\n\
Without --file, a temp file of --size bytes is made in $TMPDIR (default /tmp), filled with a \
pseudo-random pattern and removed at the end (it is unlinked as soon as it is open, so it goes \
away even if kcopy is killed).\n\nExamples:\n  kcopy --method all --size 1g\n  \
kcopy --method sendfile --method splice --chunk 1m --repeat 4\n  \
kcopy --file disk.img --method read-write\n  kcopy --method sendfile --placement free\n\n\
Placement: on loopback the receiver shares the machine, and where its thread runs moves the \
sender's CPU time per GiB by about four times (the socket's lock and cache lines go back and forth \
between CPUs when the two are apart). So each method runs once per --placement, with both threads \
pinned: `same` (one CPU) and `apart` (two) by default. With both on one CPU, the receiver's \
ACK pushes the sender's queued TCP segments in the receiver's context, so part of the sending \
work is not counted as the sender's: `same` flatters the kernel."
)]
struct Args {
    /// Copy method; repeat the option for several, or give `all`.
    #[arg(
        long = "method",
        value_enum,
        value_delimiter = ',',
        default_value = "all"
    )]
    methods: Vec<MethodArg>,
    /// File to send (default: a temp file of --size bytes, deleted at the end).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Bytes of the file to send per pass (default 1g, or all of --file), e.g. 8m, 1g.
    #[arg(long, value_parser = apps::parse_size)]
    size: Option<u64>,
    /// Bytes per system call of the sender (read, write, sendfile or splice).
    #[arg(long, default_value = "128k", value_parser = apps::parse_size)]
    chunk: u64,
    /// Passes over the file per method (bytes sent = repeat * size).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// UDP methods: payload bytes per datagram (1472 fills a 1500-byte MTU,
    /// 8972 a 9000-byte one), 512 to 8972.
    #[arg(long, default_value_t = 1472, value_parser = clap::value_parser!(u64).range(512..=8972))]
    udp_payload: u64,
    /// Where the sending and the receiving thread run, for each method:
    /// `same` (both pinned to one CPU), `apart` (pinned to two CPUs) or
    /// `free` (the scheduler decides); several give a row each [default:
    /// same,apart; same alone where the process may use only one CPU].
    #[arg(long = "placement", value_enum, value_delimiter = ',')]
    placements: Vec<Placement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MethodArg {
    ReadWrite,
    MmapWrite,
    Sendfile,
    Splice,
    UdpGso,
    UdpGsoZerocopy,
    IoUring,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    ReadWrite,
    MmapWrite,
    Sendfile,
    Splice,
    UdpGso,
    UdpGsoZerocopy,
    IoUring,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::ReadWrite,
        Method::MmapWrite,
        Method::Sendfile,
        Method::Splice,
        Method::UdpGso,
        Method::UdpGsoZerocopy,
        Method::IoUring,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::ReadWrite => "read-write",
            Method::MmapWrite => "mmap-write",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::UdpGso => "udp-gso",
            Method::UdpGsoZerocopy => "udp-gso-zerocopy",
            Method::IoUring => "io-uring",
        }
    }

    /// Over UDP (the udp module), not TCP.
    fn is_udp(self) -> bool {
        matches!(
            self,
            Method::UdpGso | Method::UdpGsoZerocopy | Method::IoUring
        )
    }
}

/// The methods in the order given, `all` expanded, each once.
fn methods(args: &[MethodArg]) -> Vec<Method> {
    let mut out = Vec::new();
    for a in args {
        let add: &[Method] = match a {
            MethodArg::ReadWrite => &[Method::ReadWrite],
            MethodArg::MmapWrite => &[Method::MmapWrite],
            MethodArg::Sendfile => &[Method::Sendfile],
            MethodArg::Splice => &[Method::Splice],
            MethodArg::UdpGso => &[Method::UdpGso],
            MethodArg::UdpGsoZerocopy => &[Method::UdpGsoZerocopy],
            MethodArg::IoUring => &[Method::IoUring],
            MethodArg::All => &Method::ALL,
        };
        for m in add {
            if !out.contains(m) {
                out.push(*m);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Checksum

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;

/// A 64-bit checksum of a byte stream that does not depend on how the
/// stream is cut into pieces: four independent multiply-rotate lanes over
/// 32-byte blocks (the structure of xxHash64, not its exact values).
/// A byte-at-a-time hash such as FNV-1a runs at about 1 GB/s and would make
/// the receiver, not the method under test, the bottleneck.
#[derive(Clone)]
struct StreamSum {
    lanes: [u64; 4],
    tail: [u8; 32],
    tail_len: usize,
    len: u64,
}

#[inline(always)]
fn lane_round(acc: u64, word: u64) -> u64 {
    acc.wrapping_add(word.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

impl StreamSum {
    fn new() -> Self {
        StreamSum {
            lanes: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)],
            tail: [0; 32],
            tail_len: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn block(lanes: &mut [u64; 4], b: &[u8; 32]) {
        let (words, _) = b.as_chunks::<8>();
        for (lane, w) in lanes.iter_mut().zip(words) {
            *lane = lane_round(*lane, u64::from_le_bytes(*w));
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let take = (32 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 32 {
                return;
            }
            let tail = self.tail;
            Self::block(&mut self.lanes, &tail);
            self.tail_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<32>();
        let mut lanes = self.lanes;
        for b in blocks {
            Self::block(&mut lanes, b);
        }
        self.lanes = lanes;
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn finish(&self) -> u64 {
        let mut h = self.len.wrapping_mul(P1) ^ P4;
        for (i, l) in self.lanes.iter().enumerate() {
            h ^= lane_round(0, *l).rotate_left(i as u32 * 7 + 1);
            h = h.wrapping_mul(P1).wrapping_add(P4);
        }
        for b in &self.tail[..self.tail_len] {
            h ^= (*b as u64).wrapping_mul(P3);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

// ---------------------------------------------------------------------------
// The file

/// The file to send and how many of its bytes each pass sends.
struct Source {
    file: File,
    /// Where it is, for messages ("temp file /tmp/kcopy-..." or the --file path).
    name: String,
    size: u64,
}

/// Bytes free for an unprivileged user on the file system holding `dir`.
fn free_bytes(dir: &Path) -> AppResult<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
        format!(
            "{} contains a NUL byte; set TMPDIR to a plain path",
            dir.display()
        )
    })?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path that outlives the call and `st`
    // is a statvfs the call fills in; nothing else is touched.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(format!(
            "cannot read the free space of {}: {}",
            dir.display(),
            io::Error::last_os_error()
        )
        .into());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Make the temp file: in $TMPDIR (std's temp_dir, /tmp when unset), after
/// checking there is room, and unlinked right after it is created so the
/// space comes back however the program ends, even by SIGKILL.
fn temp_source(size: u64) -> AppResult<Source> {
    let dir = std::env::temp_dir();
    let fix = "set TMPDIR to a directory with room, give a smaller --size, or --file PATH";
    let meta = std::fs::metadata(&dir).map_err(|e| {
        format!(
            "the temp directory {} is not usable ({e}); {fix}",
            dir.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!(
            "the temp directory {} is not a directory; {fix}",
            dir.display()
        )
        .into());
    }
    let free = free_bytes(&dir)?;
    if free < size.saturating_add(FREE_MARGIN) {
        return Err(format!(
            "not enough free space in {} for the {} temp file ({} free, {} needed with a {} \
             margin); {fix}",
            dir.display(),
            human_bytes(size),
            human_bytes(free),
            human_bytes(size.saturating_add(FREE_MARGIN)),
            human_bytes(FREE_MARGIN)
        )
        .into());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let path = dir.join(format!("kcopy-{}-{nanos:09}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create the temp file {}: {e}; {fix}", path.display()))?;
    std::fs::remove_file(&path).map_err(|e| {
        format!(
            "cannot unlink the temp file {} after creating it: {e}; remove it by hand",
            path.display()
        )
    })?;
    let name = format!("temp file {} (already unlinked)", path.display());
    let mut buf = vec![0u8; IO_BUF];
    let mut written = 0u64;
    while written < size {
        let n = (size - written).min(IO_BUF as u64) as usize;
        for (i, block) in buf[..n].chunks_mut(FILL_BLOCK).enumerate() {
            let lba = written / FILL_BLOCK as u64 + i as u64;
            fill_block(block, 0, lba, FILL_SEED);
        }
        file.write_all(&buf[..n]).map_err(|e| {
            format!(
                "writing the temp file in {} failed after {}: {e}; {fix}",
                dir.display(),
                human_bytes(written)
            )
        })?;
        written += n as u64;
    }
    Ok(Source { file, name, size })
}

fn file_source(path: &Path, size: Option<u64>) -> AppResult<Source> {
    let file = File::open(path).map_err(|e| {
        format!(
            "cannot open {}: {e}; check the path and its permissions",
            path.display()
        )
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file; mmap, sendfile and splice need one",
            path.display()
        )
        .into());
    }
    let len = meta.len();
    if len == 0 {
        return Err(format!("{} is empty; give a file with data in it", path.display()).into());
    }
    let size = size.unwrap_or(len);
    if size > len {
        return Err(format!(
            "--size {size} is larger than {} ({len} bytes); give --size {len} or less, or leave it out",
            path.display()
        )
        .into());
    }
    Ok(Source {
        file,
        name: path.display().to_string(),
        size,
    })
}

/// Read the first `size` bytes once: this brings them into the page cache
/// before any timing, and gives the checksum every pass must arrive with.
fn warm_and_checksum(src: &Source) -> AppResult<u64> {
    let mut buf = vec![0u8; IO_BUF];
    let mut sum = StreamSum::new();
    let mut off = 0u64;
    while off < src.size {
        let want = (src.size - off).min(IO_BUF as u64) as usize;
        let n = match src.file.read_at(&mut buf[..want], off) {
            Ok(0) => {
                return Err(format!(
                    "{} ends at {off} bytes, before the {} to send; did it shrink?",
                    src.name, src.size
                )
                .into())
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading {} failed: {e}", src.name).into()),
        };
        sum.update(&buf[..n]);
        off += n as u64;
    }
    Ok(sum.finish())
}

/// MemAvailable of /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

// ---------------------------------------------------------------------------
// The sender

/// What the sender thread used, from the start to the end of its sending.
struct Sent {
    start: Instant,
    cpu: Duration,
    user: Duration,
    sys: Duration,
    syscalls: u64,
    minflt: u64,
}

impl Sent {
    /// What the thread used between two readings, with `syscalls` calls.
    fn between(start: Instant, before: &ThreadUsage, after: &ThreadUsage, syscalls: u64) -> Sent {
        Sent {
            start,
            cpu: after.cpu.saturating_sub(before.cpu),
            user: after.user.saturating_sub(before.user),
            sys: after.sys.saturating_sub(before.sys),
            syscalls,
            minflt: after.minflt.saturating_sub(before.minflt),
        }
    }
}

struct ThreadUsage {
    cpu: Duration,
    user: Duration,
    sys: Duration,
    minflt: u64,
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

impl ThreadUsage {
    fn now() -> io::Result<ThreadUsage> {
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills in the rusage we pass and touches nothing
        // else; RUSAGE_THREAD asks for the calling thread (Linux >= 2.6.26).
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ThreadUsage {
            cpu: thread_cpu_time(),
            user: timeval(ru.ru_utime),
            sys: timeval(ru.ru_stime),
            minflt: ru.ru_minflt as u64,
        })
    }
}

fn retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

/// A file that ends before `size`: someone truncated it during the run.
fn shrank(off: u64, size: u64) -> io::Error {
    io::Error::other(format!(
        "the file ended at byte {off} of {size}; was it truncated during the run?"
    ))
}

/// The sender's count of data-path system calls.
struct Calls(u64);

impl Calls {
    /// Make a system call through `f` (a libc call that returns a byte
    /// count or -1 with errno), again while it fails with EINTR or EAGAIN;
    /// every try counts.
    fn bytes(&mut self, mut f: impl FnMut() -> isize) -> io::Result<usize> {
        loop {
            self.0 += 1;
            let n = f();
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if !retryable(&e) {
                return Err(e);
            }
        }
    }

    /// Count a call that moves no data (mmap, munmap).
    fn other(&mut self) {
        self.0 += 1;
    }
}

/// write(2) all `len` bytes at `ptr` to `sock`; partial writes are resumed
/// (and each counts).
///
/// # Safety
/// `ptr..ptr+len` must be readable memory for the whole call.
unsafe fn write_all(sock: i32, ptr: *const u8, len: usize, calls: &mut Calls) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        // SAFETY: the caller promises ptr..ptr+len is readable; we pass a
        // sub-range of it, and the kernel only reads it.
        let n = calls.bytes(|| unsafe { libc::write(sock, ptr.add(done).cast(), len - done) })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the socket took no bytes",
            ));
        }
        done += n;
    }
    Ok(())
}

/// A read-only shared mapping of the first `len` bytes of a file.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(file: &File, len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot
        // overlap memory Rust owns; the fd is open for reading and stays open
        // for the life of the mapping (it is borrowed by the caller, and the
        // kernel holds its own reference anyway).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, unmapped once here;
        // no reference into the mapping exists (it is only ever handed to the
        // kernel as a raw pointer).
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// A pipe for splice, sized to hold one chunk where the system allows.
struct Pipe {
    read: i32,
    write: i32,
    capacity: usize,
}

impl Pipe {
    fn new(chunk: usize) -> io::Result<(Pipe, Option<String>)> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors into the array we pass.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut pipe = Pipe {
            read: fds[0],
            write: fds[1],
            capacity: 0,
        };
        let mut warning = None;
        // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int.
        let got = unsafe {
            libc::fcntl(
                pipe.write,
                libc::F_SETPIPE_SZ,
                chunk.min(i32::MAX as usize) as libc::c_int,
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            warning = Some(format!(
                "the pipe cannot hold a {} chunk ({e}; see /proc/sys/fs/pipe-max-size), so \
                 splice moves less per call",
                human_bytes(chunk as u64)
            ));
        }
        // SAFETY: fcntl on a descriptor we own; F_GETPIPE_SZ has no argument.
        let size = unsafe { libc::fcntl(pipe.write, libc::F_GETPIPE_SZ) };
        if size <= 0 {
            return Err(io::Error::last_os_error());
        }
        pipe.capacity = size as usize;
        Ok((pipe, warning))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both descriptors are ours and closed exactly once, here.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// Make SIGPIPE on this thread a plain EPIPE error: sendfile and splice
/// cannot pass MSG_NOSIGNAL, and main() restores SIGPIPE's default action
/// (for `kcopy | head`), which would otherwise kill the process silently
/// if the receiver went away.
fn block_sigpipe() -> io::Result<()> {
    // SAFETY: sigset_t is plain data that sigemptyset initialises; the calls
    // only touch the set we pass and this thread's signal mask.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// One pass of read-write: pread a chunk into `buf`, write it to the socket.
fn pass_read_write(
    fd: i32,
    sock: i32,
    size: u64,
    buf: &mut [u8],
    calls: &mut Calls,
) -> io::Result<()> {
    let mut off = 0u64;
    while off < size {
        let want = (size - off).min(buf.len() as u64) as usize;
        let dst = buf.as_mut_ptr();
        // SAFETY: dst..dst+want is inside `buf`, which we own and nothing
        // else borrows during the call; pread writes at most `want` bytes.
        let n = calls.bytes(|| unsafe { libc::pread(fd, dst.cast(), want, off as libc::off_t) })?;
        if n == 0 {
            return Err(shrank(off, size));
        }
        // SAFETY: buf[..n] is initialised memory we own for the call.
        unsafe { write_all(sock, buf.as_ptr(), n, calls)? };
        off += n as u64;
    }
    Ok(())
}

/// One pass of mmap-write: map the file, write the mapping to the socket a
/// chunk at a time, unmap. A fresh mapping each pass: setting up and
/// faulting in the page tables is part of what this method costs.
fn pass_mmap_write(
    file: &File,
    sock: i32,
    size: u64,
    chunk: usize,
    calls: &mut Calls,
) -> io::Result<()> {
    calls.other();
    let map = Mapping::new(file, size as usize)?;
    let mut off = 0usize;
    while off < map.len {
        let n = (map.len - off).min(chunk);
        // SAFETY: off+n <= len, so the range is inside the mapping, which
        // lives until `map` drops below. Its bytes are never read by Rust
        // code, only by the kernel, so another process writing the file
        // meanwhile cannot break Rust's aliasing rules; truncating it would
        // raise SIGBUS (the temp file is unlinked, so only a --file can be
        // truncated by others).
        unsafe { write_all(sock, map.ptr.cast::<u8>().add(off), n, calls)? };
        off += n;
    }
    drop(map);
    calls.other();
    Ok(())
}

/// One pass of sendfile, at most `chunk` bytes per call.
fn pass_sendfile(fd: i32, sock: i32, size: u64, chunk: usize, calls: &mut Calls) -> io::Result<()> {
    let mut off: libc::off_t = 0;
    while (off as u64) < size {
        let want = (size - off as u64).min(chunk as u64) as usize;
        // SAFETY: both descriptors are open for the call; sendfile reads
        // `off` and writes back the new offset, nothing else of ours.
        let n = calls.bytes(|| unsafe { libc::sendfile(sock, fd, &mut off, want) })?;
        if n == 0 {
            return Err(shrank(off as u64, size));
        }
    }
    Ok(())
}

/// One pass of splice: at most a chunk (and what the pipe holds) from the
/// file into the pipe, then all of it from the pipe into the socket.
fn pass_splice(
    fd: i32,
    sock: i32,
    size: u64,
    chunk: usize,
    pipe: &Pipe,
    calls: &mut Calls,
) -> io::Result<()> {
    let mut off: libc::loff_t = 0;
    while (off as u64) < size {
        let want = (size - off as u64).min(chunk.min(pipe.capacity) as u64) as usize;
        let null = std::ptr::null_mut();
        // SAFETY: the file and the pipe's write end are open; the kernel
        // reads and updates `off` only.
        let n = calls.bytes(|| unsafe {
            libc::splice(fd, &mut off, pipe.write, null, want, libc::SPLICE_F_MOVE)
        })?;
        if n == 0 {
            return Err(shrank(off as u64, size));
        }
        let mut left = n;
        while left > 0 {
            // SAFETY: the pipe's read end and the socket are open; neither is
            // seekable, so no offsets are passed.
            let m = calls.bytes(|| unsafe {
                libc::splice(pipe.read, null, sock, null, left, libc::SPLICE_F_MOVE)
            })?;
            if m == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "splice to the socket moved no bytes",
                ));
            }
            left -= m;
        }
    }
    Ok(())
}

/// What a method needs set up before the clock starts.
enum Prepared {
    ReadWrite(Vec<u8>),
    MmapWrite,
    Sendfile,
    Splice(Pipe),
}

/// The sender thread: `repeat` passes over the first `size` bytes of
/// `file` into `sock`, then the socket is closed (dropped) so the receiver
/// sees the end.
fn send(
    method: Method,
    file: File,
    sock: TcpStream,
    size: u64,
    chunk: usize,
    repeat: u64,
) -> io::Result<Sent> {
    block_sigpipe()?;
    let mut prepared = match method {
        // Filled (not just reserved) so no page faults land in the timing.
        Method::ReadWrite => Prepared::ReadWrite(vec![0x5a; chunk]),
        Method::MmapWrite => Prepared::MmapWrite,
        Method::Sendfile => Prepared::Sendfile,
        Method::Splice => {
            let (pipe, warning) = Pipe::new(chunk)?;
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            Prepared::Splice(pipe)
        }
        Method::UdpGso | Method::UdpGsoZerocopy | Method::IoUring => {
            return Err(io::Error::other(format!(
                "{} is a UDP method, sent by the udp module (a bug)",
                method.name()
            )))
        }
    };
    let fd = file.as_raw_fd();
    let sock_fd = sock.as_raw_fd();
    let mut calls = Calls(0);

    let before = ThreadUsage::now()?;
    let start = Instant::now();
    for _ in 0..repeat {
        match &mut prepared {
            Prepared::ReadWrite(buf) => pass_read_write(fd, sock_fd, size, buf, &mut calls)?,
            Prepared::MmapWrite => pass_mmap_write(&file, sock_fd, size, chunk, &mut calls)?,
            Prepared::Sendfile => pass_sendfile(fd, sock_fd, size, chunk, &mut calls)?,
            Prepared::Splice(pipe) => pass_splice(fd, sock_fd, size, chunk, pipe, &mut calls)?,
        }
    }
    let after = ThreadUsage::now()?;
    drop(sock);
    Ok(Sent::between(start, &before, &after, calls.0))
}

// ---------------------------------------------------------------------------
// The receiver

/// What the receiver got.
struct Received {
    bytes: u64,
    /// Checksum of each complete pass, in order.
    pass_sums: Vec<u64>,
    /// When the last expected byte arrived.
    done: Option<Instant>,
}

/// The receiver's running count: bytes, and the checksum of each pass of
/// `size` bytes as it completes. Shared by the TCP and the UDP receivers.
struct Tally {
    got: Received,
    sum: StreamSum,
    in_pass: u64,
    size: u64,
    repeat: u64,
    expected: u64,
}

impl Tally {
    fn new(size: u64, repeat: u64) -> Tally {
        Tally {
            got: Received {
                bytes: 0,
                pass_sums: Vec::new(),
                done: None,
            },
            sum: StreamSum::new(),
            in_pass: 0,
            size,
            repeat,
            expected: size * repeat,
        }
    }

    fn take(&mut self, mut data: &[u8]) {
        self.got.bytes += data.len() as u64;
        // Bytes beyond the last pass are only counted: the count check fails.
        while !data.is_empty() && (self.got.pass_sums.len() as u64) < self.repeat {
            let take = (self.size - self.in_pass).min(data.len() as u64) as usize;
            self.sum.update(&data[..take]);
            self.in_pass += take as u64;
            data = &data[take..];
            if self.in_pass == self.size {
                self.got.pass_sums.push(self.sum.finish());
                self.sum = StreamSum::new();
                self.in_pass = 0;
            }
        }
        if self.got.done.is_none() && self.got.bytes >= self.expected {
            self.got.done = Some(Instant::now());
        }
    }
}

/// Drain `sock` to its end, checksumming each pass of `size` bytes.
fn receive(mut sock: TcpStream, size: u64, repeat: u64) -> io::Result<Received> {
    let mut buf = vec![0u8; RECV_BUF];
    let mut tally = Tally::new(size, repeat);
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        tally.take(&buf[..n]);
    }
    Ok(tally.got)
}

/// The receiver's bytes must be exactly `repeat` passes over the file.
fn check(got: &Received, size: u64, repeat: u64, want: u64) -> Result<(), String> {
    let expected = size * repeat;
    if got.bytes != expected {
        return Err(format!(
            "the receiver got {} bytes, not the {expected} sent ({repeat} x {size}); this copy \
             path lost or added data",
            got.bytes
        ));
    }
    if let Some((pass, sum)) = got.pass_sums.iter().enumerate().find(|(_, s)| **s != want) {
        return Err(format!(
            "pass {} arrived with checksum {sum:#018x}, the file's is {want:#018x}; this copy \
             path garbled data",
            pass + 1
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running and reporting

struct Measured {
    method: Method,
    cpus: Cpus,
    bytes: u64,
    secs: f64,
    sent: Sent,
}

fn run_method(
    method: Method,
    cpus: Cpus,
    src: &Source,
    chunk: usize,
    repeat: u64,
    want: u64,
) -> AppResult<Measured> {
    let name = method.name();
    let net = |e: io::Error| format!("{name}: setting up the loopback TCP connection failed: {e}");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(net)?;
    let client = TcpStream::connect(listener.local_addr().map_err(net)?).map_err(net)?;
    let (server, _) = listener.accept().map_err(net)?;
    let file = src
        .file
        .try_clone()
        .map_err(|e| format!("{name}: cannot duplicate the file descriptor: {e}"))?;
    let (size, bytes) = (src.size, src.size * repeat);

    let receiver = std::thread::Builder::new()
        .name("kcopy-recv".into())
        .spawn(move || {
            placement::pin(cpus.recv, "receiver")?;
            receive(server, size, repeat)
        })
        .map_err(|e| format!("cannot start the receiver thread: {e}"))?;
    let sender = std::thread::Builder::new()
        .name("kcopy-send".into())
        .spawn(move || {
            placement::pin(cpus.send, "sender")?;
            send(method, file, client, size, chunk, repeat)
        });
    let sent = match sender {
        Ok(h) => h.join(),
        Err(e) => {
            // The receiver holds the only end: it has seen EOF and returns.
            let _ = receiver.join();
            return Err(format!("cannot start the sender thread: {e}").into());
        }
    };
    let got = receiver
        .join()
        .map_err(|_| format!("{name}: the receiver thread panicked"))?
        .map_err(|e| format!("{name}: the receiver failed reading the socket: {e}"))?;
    let sent = sent
        .map_err(|_| format!("{name}: the sender thread panicked"))?
        .map_err(|e| format!("{name}: sending failed: {e}"))?;
    check(&got, size, repeat, want).map_err(|e| format!("{name}: {e}"))?;
    let done = got
        .done
        .ok_or_else(|| format!("{name}: the receiver saw no end time (a bug)"))?;
    Ok(Measured {
        method,
        cpus,
        bytes,
        secs: done.duration_since(sent.start).as_secs_f64(),
        sent,
    })
}

const HEADER: &str =
    "method           placement      bytes     secs   GiB/s   cpu_s  user_s   sys_s  cpu_s/GiB  \
                      syscalls  calls/GiB   faults";

fn row(m: &Measured) -> String {
    let gib = m.bytes as f64 / GIB;
    let cpu = m.sent.cpu.as_secs_f64();
    format!(
        "{:<16} {:<10} {:>10} {:>8.3} {:>7.2} {:>7.3} {:>7.3} {:>7.3} {:>10.3} {:>9} {:>10.0} {:>8}",
        m.method.name(),
        m.cpus.placement.name(),
        human_bytes(m.bytes),
        m.secs,
        gib / m.secs.max(1e-9),
        cpu,
        m.sent.user.as_secs_f64(),
        m.sent.sys.as_secs_f64(),
        cpu / gib,
        m.sent.syscalls,
        m.sent.syscalls as f64 / gib,
        m.sent.minflt
    )
}

fn machine_line(m: &Measured) -> String {
    let gib = m.bytes as f64 / GIB;
    let cpu = m.sent.cpu.as_secs_f64();
    format!(
        "kcopy: method={} {} bytes={} cpu_s={cpu:.6} cpu_s_per_gib={:.6} syscalls={} \
         syscalls_per_gib={:.1} secs={:.6} gib_per_s={:.3} user_s={:.6} sys_s={:.6} minflt={}",
        m.method.name(),
        m.cpus.fields(),
        m.bytes,
        cpu / gib,
        m.sent.syscalls,
        m.sent.syscalls as f64 / gib,
        m.secs,
        gib / m.secs.max(1e-9),
        m.sent.user.as_secs_f64(),
        m.sent.sys.as_secs_f64(),
        m.sent.minflt
    )
}

/// The placements asked for, once each, with their CPUs.
fn placements(args: &[Placement]) -> AppResult<Vec<Cpus>> {
    let allowed = placement::allowed_cpus()
        .map_err(|e| format!("cannot read this process's CPU affinity: {e}"))?;
    let default = [Placement::Same, Placement::Apart];
    let args = match args {
        [] if allowed.len() < 2 => &default[..1],
        [] => &default[..],
        given => given,
    };
    let mut out: Vec<Cpus> = Vec::new();
    for &p in args {
        if !out.iter().any(|c| c.placement == p) {
            out.push(Cpus::choose(p, &allowed)?);
        }
    }
    Ok(out)
}

fn run(args: Args) -> AppResult<()> {
    if args.size == Some(0) {
        return Err("--size 0 sends nothing; give at least 1 byte, e.g. --size 8m".into());
    }
    if args.chunk == 0 || args.chunk > MAX_CHUNK {
        return Err(format!(
            "--chunk {} is out of range; give 1 byte to {}, e.g. --chunk 128k",
            args.chunk,
            human_bytes(MAX_CHUNK)
        )
        .into());
    }
    let methods = methods(&args.methods);
    let placements = placements(&args.placements)?;
    let src = match &args.file {
        Some(path) => file_source(path, args.size)?,
        None => temp_source(args.size.unwrap_or(1 << 30))?,
    };
    if src.size.checked_mul(args.repeat).is_none() {
        return Err("--repeat times --size overflows 64 bits; give a smaller --repeat".into());
    }
    if let Some(avail) = mem_available() {
        if src.size > avail {
            eprintln!(
                "warning: {} to send is more than the available memory ({}); it will not stay \
                 in the page cache, so the figures include reading the disk",
                human_bytes(src.size),
                human_bytes(avail)
            );
        }
    }
    let want = warm_and_checksum(&src)?;
    println!(
        "measured: {} of {} x {} per method -> TCP 127.0.0.1, {} per call, receiver thread \
         checks bytes + checksum; GiB/s: first byte sent to last received; cpu: sending thread \
         only (user + sys, incl. loopback TCP work the kernel does in its context); syscalls: \
         its read/write/sendfile/splice/mmap/munmap calls, partial writes and retries \
         included; faults: its minor page faults",
        human_bytes(src.size),
        src.name,
        args.repeat,
        human_bytes(args.chunk)
    );
    println!(
        "UDP methods: {} B datagrams, GSO sends of {} B, to a UDP socket on 127.0.0.1 in this \
         process (same checks; the sender waits, counted as a call, when 16 MiB ahead of it); \
         syscalls also count pread, poll and error-queue reads, and io_uring_enter",
        args.udp_payload,
        udp::gso_send_len(args.udp_payload as usize)
    );
    println!("{HEADER}");
    let mut done = Vec::new();
    let mut unsupported = Vec::new();
    for (m, cpus) in methods
        .iter()
        .flat_map(|&m| placements.iter().map(move |&c| (m, c)))
    {
        if unsupported.iter().any(|(u, _)| *u == m) {
            continue;
        }
        let measured = if m.is_udp() {
            match udp::run(m, cpus, &src, args.udp_payload as usize, args.repeat)? {
                Ok(r) => {
                    check(&r.received, src.size, args.repeat, want)
                        .map_err(|e| format!("{}: {e}", m.name()))?;
                    let done_at = r.received.done.ok_or_else(|| {
                        format!("{}: the receiver saw no end time (a bug)", m.name())
                    })?;
                    if let Some((notes, copied)) = r.zc {
                        println!(
                            "{}: {notes} zero-copy completions, {copied} of them saying the \
                             kernel copied the data (expected on loopback)",
                            m.name()
                        );
                    }
                    Measured {
                        method: m,
                        cpus,
                        bytes: src.size * args.repeat,
                        secs: done_at.duration_since(r.sent.start).as_secs_f64(),
                        sent: r.sent,
                    }
                }
                Err(udp::Unsupported(why)) => {
                    println!("{:<10} unsupported here: {why}", m.name());
                    unsupported.push((m, why));
                    continue;
                }
            }
        } else {
            run_method(m, cpus, &src, args.chunk as usize, args.repeat, want)?
        };
        println!("{}", row(&measured));
        done.push(measured);
    }
    println!(
        "receiver check: every method delivered {} bytes, each pass with the file's checksum \
         {want:#018x}",
        src.size * args.repeat
    );
    for m in &done {
        println!("{}", machine_line(m));
    }
    for (m, why) in &unsupported {
        println!("kcopy: unsupported method={} reason={why}", m.name());
    }
    Ok(())
}

fn main() {
    apps::restore_sigpipe();
    exit_on_error(run(Args::parse()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_of(pieces: &[&[u8]]) -> u64 {
        let mut s = StreamSum::new();
        for p in pieces {
            s.update(p);
        }
        s.finish()
    }

    fn data(len: usize) -> Vec<u8> {
        apps::stream::pattern::pseudo_random(1, len)
    }

    #[test]
    fn checksum_does_not_depend_on_how_the_stream_is_cut() {
        let d = data(10_000);
        let whole = sum_of(&[&d]);
        for cut in [1, 7, 31, 32, 33, 64, 999, 4096] {
            let pieces: Vec<&[u8]> = d.chunks(cut).collect();
            assert_eq!(sum_of(&pieces), whole, "pieces of {cut}");
        }
        assert_eq!(sum_of(&[&d[..5], &d[5..6], &d[6..]]), whole);
    }

    #[test]
    fn checksum_sees_flips_swaps_and_lengths() {
        let d = data(4096);
        let whole = sum_of(&[&d]);
        for i in [0, 1, 8, 31, 32, 1000, 4064, 4095] {
            let mut e = d.clone();
            e[i] ^= 0x80;
            assert_ne!(sum_of(&[&e]), whole, "flip at {i}");
        }
        // Two 8-byte words of the same lane swapped, and two whole blocks.
        let mut e = d.clone();
        e.copy_within(0..8, 4000);
        e[0..8].copy_from_slice(&d[32..40]);
        assert_ne!(sum_of(&[&e]), whole);
        let mut e = d.clone();
        e[0..32].copy_from_slice(&d[32..64]);
        e[32..64].copy_from_slice(&d[0..32]);
        assert_ne!(sum_of(&[&e]), whole);
        assert_ne!(sum_of(&[&d[..4095]]), whole);
        assert_ne!(sum_of(&[&d, &[0]]), whole);
        assert_ne!(sum_of(&[&[]]), sum_of(&[&[0]]));
    }

    /// Feed `stream` to the receiver through a real loopback connection.
    fn receive_stream(stream: Vec<u8>, size: u64, repeat: u64) -> Received {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let w = std::thread::spawn(move || {
            for piece in stream.chunks(1000) {
                c.write_all(piece).unwrap();
            }
        });
        let got = receive(s, size, repeat).unwrap();
        w.join().unwrap();
        got
    }

    #[test]
    fn the_check_passes_exact_passes_and_fails_anything_else() {
        let file = data(50_000);
        let want = sum_of(&[&file]);
        let two = [file.clone(), file.clone()].concat();
        let got = receive_stream(two.clone(), 50_000, 2);
        assert_eq!(got.bytes, 100_000);
        assert_eq!(got.pass_sums, vec![want, want]);
        assert!(got.done.is_some());
        assert_eq!(check(&got, 50_000, 2, want), Ok(()));

        let short = receive_stream(two[..99_999].to_vec(), 50_000, 2);
        let e = check(&short, 50_000, 2, want).unwrap_err();
        assert!(e.contains("99999 bytes"), "{e}");

        let long = receive_stream([two.clone(), vec![0]].concat(), 50_000, 2);
        assert!(check(&long, 50_000, 2, want)
            .unwrap_err()
            .contains("100001 bytes"));

        let mut bad = two;
        bad[70_000] ^= 1;
        let e = check(&receive_stream(bad, 50_000, 2), 50_000, 2, want).unwrap_err();
        assert!(e.starts_with("pass 2 arrived with checksum"), "{e}");
    }

    #[test]
    fn methods_expand_all_and_keep_order_once() {
        use MethodArg as A;
        assert_eq!(methods(&[A::All]), Method::ALL.to_vec());
        assert_eq!(
            methods(&[A::Splice, A::Sendfile, A::Splice]),
            vec![Method::Splice, Method::Sendfile]
        );
        assert_eq!(
            methods(&[A::Splice, A::All]),
            vec![
                Method::Splice,
                Method::ReadWrite,
                Method::MmapWrite,
                Method::Sendfile,
                Method::UdpGso,
                Method::UdpGsoZerocopy,
                Method::IoUring
            ]
        );
    }
}
