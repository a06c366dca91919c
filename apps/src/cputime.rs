//! CPU time of the calling thread, for "CPU per I/O" figures.

use std::time::Duration;

/// CPU time the calling thread has used so far (user + system).
pub fn thread_cpu_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The time of clock `id` (`clock_gettime(2)`, async-signal-safe, so a
/// signal handler may call this too); zero if the clock cannot be read.
pub(crate) fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass and nothing else;
    // an unknown clock id is an error return, not undefined behaviour.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_thread_accumulates_cpu_time() {
        // Spin until this thread has 10 ms of CPU: on a loaded machine that
        // takes longer in wall time, never forever (the bound is generous).
        let start = thread_cpu_time();
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(10) && t0.elapsed() < Duration::from_secs(20) {
            for _ in 0..10_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            used = thread_cpu_time() - start;
        }
        std::hint::black_box(x);
        assert!(used >= Duration::from_millis(10), "used {used:?}");
        // CPU time never runs ahead of wall time for one thread.
        assert!(
            used <= t0.elapsed() + Duration::from_millis(1),
            "used {used:?}"
        );
    }
}
