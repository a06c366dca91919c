//! Where kcopy's sending and receiving threads run.
//!
//! On loopback the receiver is on the same machine, and where the
//! scheduler puts it moves the sender's CPU time per GiB by about four
//! times (measured on a 2-core machine: TCP sendfile 0.10 s per GiB with
//! both threads on one CPU, 0.43 to 0.65 with them on two; the socket lock
//! and the socket's cache lines then go back and forth between the CPUs,
//! in the sender's context). Left to the scheduler, a quiet machine puts
//! the threads apart and a busy one together, so the kernel's figure
//! depended on what else ran. Pinning both threads makes each placement
//! a figure of its own. Neither is the sender's cost alone: on one CPU the
//! receiver's ACK, sent from its own thread, pushes the sender's queued TCP
//! segments there (perf shows `__tcp_push_pending_frames` under the
//! receiver's `recv`), so `same` leaves part of the sending uncounted;
//! `apart` counts it, with the cross-CPU cost.

use clap::ValueEnum;
use std::io;

/// A placement of the two threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Placement {
    /// Both threads pinned to one CPU.
    Same,
    /// The sender pinned to one CPU, the receiver to another.
    Apart,
    /// Not pinned: the scheduler decides (the figures move with the load).
    Free,
}

impl Placement {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Placement::Same => "same",
            Placement::Apart => "apart",
            Placement::Free => "free",
        }
    }
}

/// The CPUs of one placement: `None` is not pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cpus {
    pub(crate) placement: Placement,
    pub(crate) send: Option<usize>,
    pub(crate) recv: Option<usize>,
}

impl Cpus {
    /// The CPUs for `placement`, chosen among `allowed` (the CPUs this
    /// process may run on, in order): the first, or the first two.
    pub(crate) fn choose(placement: Placement, allowed: &[usize]) -> Result<Cpus, String> {
        let (send, recv) = match (placement, allowed) {
            (Placement::Free, _) => (None, None),
            (_, []) => return Err("this process may run on no CPU (empty affinity mask)".into()),
            (Placement::Same, [c, ..]) => (Some(*c), Some(*c)),
            (Placement::Apart, [s, r, ..]) => (Some(*s), Some(*r)),
            (Placement::Apart, [only]) => {
                return Err(format!(
                    "--placement apart needs two CPUs, but this process may only run on CPU \
                     {only}; give --placement same (or free), or allow more CPUs (taskset)"
                ))
            }
        };
        Ok(Cpus {
            placement,
            send,
            recv,
        })
    }

    /// The CPUs as `send_cpu=N recv_cpu=M` (`-` for not pinned).
    pub(crate) fn fields(&self) -> String {
        let cpu = |c: Option<usize>| c.map_or_else(|| "-".to_string(), |c| c.to_string());
        format!(
            "placement={} send_cpu={} recv_cpu={}",
            self.placement.name(),
            cpu(self.send),
            cpu(self.recv)
        )
    }
}

/// The CPUs this process may run on, in ascending order.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is the empty set, a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most the size we pass into the
    // set we own; pid 0 is the calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads bit `c` < CPU_SETSIZE of the set we own.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pin the calling thread to `cpu` (nothing for `None`); `who` names the
/// thread in the error.
pub(crate) fn pin(cpu: Option<usize>, who: &str) -> io::Result<()> {
    let Some(cpu) = cpu else { return Ok(()) };
    // SAFETY: an all-zero cpu_set_t is the empty set, a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes bit `cpu` of the set we own; `cpu` came from
    // `allowed_cpus`, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity reads the set we pass; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot pin the {who} thread to CPU {cpu}: {e}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_pick_the_first_allowed_cpus() {
        let c = Cpus::choose(Placement::Same, &[3, 5]).unwrap();
        assert_eq!((c.send, c.recv), (Some(3), Some(3)));
        let c = Cpus::choose(Placement::Apart, &[3, 5, 7]).unwrap();
        assert_eq!((c.send, c.recv), (Some(3), Some(5)));
        assert_eq!(c.fields(), "placement=apart send_cpu=3 recv_cpu=5");
        let c = Cpus::choose(Placement::Free, &[]).unwrap();
        assert_eq!(c.fields(), "placement=free send_cpu=- recv_cpu=-");
        let e = Cpus::choose(Placement::Apart, &[2]).unwrap_err();
        assert!(e.contains("two CPUs") && e.contains("CPU 2"), "{e}");
        assert!(Cpus::choose(Placement::Same, &[]).is_err());
    }

    #[test]
    fn a_pinned_thread_runs_only_there() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        let last = *allowed.last().unwrap();
        let got = std::thread::spawn(move || {
            pin(Some(last), "test").unwrap();
            allowed_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(got, vec![last]);
        // Not pinned: unchanged.
        pin(None, "test").unwrap();
        assert_eq!(allowed_cpus().unwrap(), allowed);
    }
}
