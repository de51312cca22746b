//! Latency histograms: one construction and one summary for every place that measures I/O
//! time (the areas' counters, `swapctl load`, `cargo xtask bench`, the device bench), so
//! their figures share a range and a precision and can be compared.
//!
//! The range is 1 µs to [`MAX_LATENCY_US`] = 60 s at 3 significant digits (about 190 KiB per
//! histogram). 60 s is far beyond any I/O that still completes (the block layer's default
//! timeout is 30 s) and beyond any daemon request a client would wait for; anything longer is
//! clamped to it rather than lost, so counts stay exact.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest latency a histogram holds, in microseconds: 60 s. Longer ones are clamped.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// An empty histogram of microseconds, 1 µs ..= [`MAX_LATENCY_US`], 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Constant bounds: hdrhistogram refuses only low < 1, high < 2 * low or more than 5
    // digits, none of which these are, so creation cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// `d` in whole microseconds, clamped into the histogram's range.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

/// Records `d` into a histogram made by [`histogram`]: never fails, never drops a sample.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(micros(d));
}

/// Latency percentiles of one kind of I/O, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// The summary of a histogram recorded in microseconds; all zeroes when it is empty.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut h = histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(3600));
        record(&mut h, Duration::from_micros(250));
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 3);
        assert_eq!(h.min(), 1);
        assert_eq!(s.p50_us, 250);
        assert!(h.equivalent(s.max_us, MAX_LATENCY_US), "{}", s.max_us);
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeroes() {
        assert_eq!(LatencySummary::of(&histogram()), LatencySummary::default());
    }
}
