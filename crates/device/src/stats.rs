//! Per-area I/O counters and latency histograms, and the snapshot types handed to monitors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::engine::IoOp;

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
    /// The summary of a histogram recorded in microseconds.
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

/// A snapshot of one area's I/O counters. `reads`/`writes` count I/Os (clusters), the
/// `pages_*` fields count pages moved; failed I/Os count in `*_errors`, not in the others.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AreaStats {
    pub reads: u64,
    pub writes: u64,
    pub pages_read: u64,
    pub pages_written: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub in_flight: u64,
    pub read_latency: LatencySummary,
    pub write_latency: LatencySummary,
    /// Discard requests that reached the device.
    #[serde(default)]
    pub discards: u64,
}

/// Largest latency the histograms hold: 60 s, in microseconds. Longer ones are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;

/// The live counters behind [`AreaStats`]: atomics for counts, a lock per histogram.
#[derive(Debug)]
pub(crate) struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    pages_read: AtomicU64,
    pages_written: AtomicU64,
    read_errors: AtomicU64,
    write_errors: AtomicU64,
    in_flight: AtomicU64,
    discards: AtomicU64,
    read_hist: Mutex<Histogram<u64>>,
    write_hist: Mutex<Histogram<u64>>,
}

fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: creation cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            pages_read: AtomicU64::new(0),
            pages_written: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            discards: AtomicU64::new(0),
            read_hist: Mutex::new(new_histogram()),
            write_hist: Mutex::new(new_histogram()),
        }
    }

    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished I/O of `pages` pages (counted as begun by `begin`).
    pub(crate) fn end(&self, op: IoOp, pages: u64, ok: bool, latency: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let (count, moved, errors, hist) = match op {
            IoOp::Read => (
                &self.reads,
                &self.pages_read,
                &self.read_errors,
                &self.read_hist,
            ),
            IoOp::Write => (
                &self.writes,
                &self.pages_written,
                &self.write_errors,
                &self.write_hist,
            ),
        };
        if ok {
            count.fetch_add(1, Ordering::Relaxed);
            moved.fetch_add(pages, Ordering::Relaxed);
            hist.lock().saturating_record(us);
        } else {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets an I/O counted by `begin` that was refused before reaching the device.
    pub(crate) fn cancel(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn discarded(&self) {
        self.discards.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AreaStats {
        AreaStats {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            pages_read: self.pages_read.load(Ordering::Relaxed),
            pages_written: self.pages_written.load(Ordering::Relaxed),
            read_errors: self.read_errors.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            read_latency: LatencySummary::of(&self.read_hist.lock()),
            write_latency: LatencySummary::of(&self.write_hist.lock()),
            discards: self.discards.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn histograms(&self) -> (Histogram<u64>, Histogram<u64>) {
        (
            self.read_hist.lock().clone(),
            self.write_hist.lock().clone(),
        )
    }
}
