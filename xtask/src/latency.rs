//! Latency recording: the device crate's histogram (`device::latency`: 1 µs to 60 s at 3
//! significant digits, the same as the areas' own), summarised with the percentiles fio
//! prints, plus a CDF for the plots.
//!
//! Each worker thread records into its own [`Recorder`] (no locking on the hot path); the
//! workload merges them at the end.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The percentiles of fio's `clat percentiles (usec)` block.
pub const FIO_PERCENTILES: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95,
    99.99,
];

#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            hist: device::latency::histogram(),
        }
    }

    /// Record one latency, clamped into 1 µs ..= 60 s.
    pub fn record(&mut self, d: Duration) {
        device::latency::record(&mut self.hist, d);
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides: adding cannot fail; if it ever did, the samples that
        // could not be added are lost from the summary, which is better than a crash.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn summary(&self) -> LatencyStats {
        let h = &self.hist;
        if h.is_empty() {
            return LatencyStats::default();
        }
        let percentiles = FIO_PERCENTILES
            .iter()
            .map(|&p| Percentile {
                p,
                us: h.value_at_quantile(p / 100.0),
            })
            .collect();
        LatencyStats {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            stdev_us: h.stdev(),
            max_us: h.max(),
            percentiles,
            cdf: cdf(h),
        }
    }
}

/// About a hundred points, dense in the tail where the interesting part of a latency CDF is.
fn cdf(h: &Histogram<u64>) -> Vec<(u64, f64)> {
    let mut qs: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
    qs.extend((1..10).map(|i| 0.99 + i as f64 / 1000.0));
    qs.extend((1..10).map(|i| 0.999 + i as f64 / 10_000.0));
    qs.push(1.0);
    let mut points: Vec<(u64, f64)> = Vec::with_capacity(qs.len());
    for q in qs {
        let v = h.value_at_quantile(q);
        // Fraction of samples at or below v: the CDF's y at x = v.
        let y = h.quantile_below(v);
        if points.last().is_none_or(|&(pv, _)| pv != v) {
            points.push((v, y));
        } else if let Some(last) = points.last_mut() {
            last.1 = y;
        }
    }
    points
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    pub p: f64,
    pub us: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub stdev_us: f64,
    pub max_us: u64,
    /// At [`FIO_PERCENTILES`].
    pub percentiles: Vec<Percentile>,
    /// (latency µs, fraction of I/Os at or below it), ascending.
    pub cdf: Vec<(u64, f64)>,
}

impl LatencyStats {
    /// The value at percentile `p` (one of [`FIO_PERCENTILES`]), 0 when absent.
    pub fn at(&self, p: f64) -> u64 {
        self.percentiles
            .iter()
            .find(|x| (x.p - p).abs() < 1e-9)
            .map_or(0, |x| x.us)
    }

    /// fio's layout: `|  1.00th=[   12],  5.00th=[   13], ...`, four to a line.
    pub fn fio_block(&self) -> String {
        let mut out = String::new();
        for chunk in self.percentiles.chunks(4) {
            out.push_str("     | ");
            let cells: Vec<String> = chunk
                .iter()
                .map(|x| format!("{:>5.2}th=[{:>5}]", x.p, x.us))
                .collect();
            out.push_str(&cells.join(", "));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_recorded_distribution() {
        let mut r = Recorder::new();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.at(50.0), 500);
        assert_eq!(s.at(99.0), 990);
        assert_eq!(s.percentiles.len(), FIO_PERCENTILES.len());
        assert_eq!(s.cdf.last().map(|p| p.1), Some(1.0));
        assert!(
            s.cdf
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut r = Recorder::new();
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(3600));
        let s = r.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.min_us, 1);
        assert!(s.max_us >= 59_900_000, "{}", s.max_us);
    }

    #[test]
    fn merged_recorders_count_every_sample() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.record(Duration::from_micros(10));
        b.record(Duration::from_micros(20));
        a.merge(&b);
        assert_eq!(a.count(), 2);
    }
}
