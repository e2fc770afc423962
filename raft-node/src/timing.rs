//! Disk latency histograms (etcd's `etcd_disk_wal_fsync_duration_seconds`
//! and `etcd_disk_backend_commit_duration_seconds`), observed on the
//! member's thread and read by whoever renders metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// etcd's buckets for both: `ExponentialBuckets(0.001, 2, 14)`, 1 ms to 8.192 s.
pub const BUCKETS: [f64; 14] =
    [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

/// A Prometheus histogram over [`BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or under each bound (not cumulative here).
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// (upper bound, cumulative count) per bucket, then the total count and
    /// the sum in seconds, as Prometheus' text format lists them.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let buckets = BUCKETS
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c.load(Relaxed);
                (*b, acc)
            })
            .collect();
        (buckets, self.count.load(Relaxed), self.sum_nanos.load(Relaxed) as f64 / 1e9)
    }
}

/// The member's disk timings.
#[derive(Debug, Default)]
pub struct DiskTimings {
    /// Each fdatasync of the WAL.
    pub wal_fsync: Histogram,
    /// Each commit of the backend (bbolt) transaction.
    pub backend_commit: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let (b, count, sum) = h.snapshot();
        assert_eq!((b[0], b[2], b[13]), ((0.001, 1), (0.004, 2), (8.192, 2)));
        assert_eq!(count, 3, "+Inf counts the one past every bound");
        assert!((sum - 20.0035).abs() < 1e-9);
    }
}
