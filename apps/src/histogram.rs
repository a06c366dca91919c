//! A latency histogram with about 1.5 % resolution over the whole u64 range
//! (log-linear buckets: 64 sub-buckets per power of two), fixed size, no
//! allocation when recording.
#![forbid(unsafe_code)]

/// Values below this are exact.
const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
const BUCKETS: usize = 58 * 64 + 128;

/// Counts of values (nanoseconds, usually).
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    // Keep the top 7 bits: v >> e lies in 64..128.
    let e = 64 - v.leading_zeros() - (SUB_BITS + 1);
    (e as usize) * 64 + (v >> e) as usize
}

fn lower_bound(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let e = (i / 64 - 1) as u32;
    let m = (i - e as usize * 64) as u64;
    m << e
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += v as u128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Count `n` values of `v` (as `n` calls of [`Self::record`]).
    #[inline]
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.counts[index(v)] += n;
        self.total += n;
        self.sum += u128::from(v) * u128::from(n);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Add another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest value.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean value (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the lower bound of the bucket
    /// holding it, clamped to the observed min and max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_bound(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7).chain([u64::MAX / 3, u64::MAX]) {
            let i = index(v);
            assert!(i >= last, "index not monotonic at {v}");
            last = i;
            let lb = lower_bound(i);
            assert!(lb <= v, "lower bound {lb} above {v}");
            assert!(v - lb <= v / 64, "bucket of {v} too wide: starts at {lb}");
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.max(), 1_000_000);
        assert!((h.mean() - 500_500.0).abs() < 1e-6);
        let p50 = h.quantile(0.5);
        assert!((492_000..=500_000).contains(&p50), "p50 {p50}");
        let p99 = h.quantile(0.99);
        assert!((975_000..=990_000).contains(&p99), "p99 {p99}");
        assert_eq!(h.quantile(1.0), h.quantile(0.9999).max(h.quantile(1.0)));
        let mut h2 = Histogram::new();
        h2.record(5);
        h.merge(&h2);
        assert_eq!(h.min(), 5);
        assert_eq!(h.count(), 1001);
    }

    #[test]
    fn counting_a_run_at_once_equals_counting_each() {
        let mut each = Histogram::new();
        let mut runs = Histogram::new();
        for (v, n) in [
            (90u64, 3u64),
            (7_000, 64),
            (7_000, 1),
            (u64::MAX, 2),
            (12, 0),
        ] {
            for _ in 0..n {
                each.record(v);
            }
            runs.record_n(v, n);
        }
        assert_eq!(runs.count(), 70);
        assert_eq!(runs.counts, each.counts);
        assert_eq!(
            (runs.sum, runs.min(), runs.max()),
            (each.sum, each.min(), each.max())
        );
        assert_eq!(runs.min(), 90, "a run of none counts nothing");
        for q in [0.0, 0.5, 0.99, 1.0] {
            assert_eq!(runs.quantile(q), each.quantile(q));
        }
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::new();
        assert_eq!((h.min(), h.max(), h.quantile(0.5)), (0, 0, 0));
        assert_eq!(h.mean(), 0.0);
    }
}
