//! Latency histograms the store keeps for its operators: fixed buckets of relaxed atomic
//! counters, so that recording costs a few uncontended additions and never a lock.
//!
//! - CommitLog append: one append in [`APPEND_SAMPLE_EVERY`] is timed (taking the writer lock
//!   included), so the append path pays two clock reads only once in that many records.
//! - CommitLog flush: every fsync round of the flusher (one per group commit), timed in the
//!   flusher thread, off the append path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One append in this many is timed.
pub const APPEND_SAMPLE_EVERY: u64 = 16;

/// Upper bounds of the buckets, in microseconds (a last, unbounded bucket follows).
const BOUNDS_US: [u64; 19] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
    250_000, 500_000, 1_000_000,
];

/// A histogram of durations.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    /// Observations per bucket (not cumulative); the last is above every bound.
    counts: [AtomicU64; BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    /// Records one observation.
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|b| b.saturating_mul(1_000) < ns);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts so far.
    pub(crate) fn snapshot(&self) -> LatencySnapshot {
        let buckets = BOUNDS_US
            .iter()
            .map(|b| *b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        LatencySnapshot {
            buckets,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// `(upper bound in seconds, observations in this bucket)`, not cumulative; the last bound
    /// is infinite.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of every observation, seconds.
    pub sum_seconds: f64,
}

impl LatencySnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }
}

/// The store's latency histograms.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreLatencies {
    /// CommitLog appends (one in [`APPEND_SAMPLE_EVERY`]), writer lock wait included.
    pub append: LatencySnapshot,
    /// CommitLog flushes: one observation per fsync round of the flusher.
    pub flush: LatencySnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let l = Latency::default();
        l.record(Duration::from_nanos(500)); // <= 1 us
        l.record(Duration::from_micros(1)); // <= 1 us
        l.record(Duration::from_micros(30)); // <= 50 us
        l.record(Duration::from_nanos(1_900)); // <= 2 us
        l.record(Duration::from_millis(3)); // <= 5 ms
        l.record(Duration::from_secs(2)); // above every bound
        let s = l.snapshot();
        assert_eq!(s.count(), 6);
        let at = |bound: f64| {
            s.buckets
                .iter()
                .find(|(b, _)| (*b - bound).abs() < 1e-12)
                .map(|(_, n)| *n)
        };
        assert_eq!(at(1e-6), Some(2));
        assert_eq!(at(2e-6), Some(1));
        assert_eq!(at(50e-6), Some(1));
        assert_eq!(at(5e-3), Some(1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!(
            (s.sum_seconds - 2.003_033_4).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
    }
}
