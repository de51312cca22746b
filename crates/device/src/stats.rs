//! Per-area I/O counters and latency histograms, and the snapshot types handed to monitors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::latency;
use crate::op::IoOp;
// Re-exported here because `area` re-exports it from here: one type, wherever it is named.
pub use crate::latency::LatencySummary;

/// A snapshot of one area's I/O counters. `reads`/`writes` count I/Os (clusters), the
/// `pages_*` fields count pages moved; failed I/Os count in `*_errors`, not in the others.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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
            read_hist: Mutex::new(latency::histogram()),
            write_hist: Mutex::new(latency::histogram()),
        }
    }

    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished I/O of `pages` pages (counted as begun by `begin`).
    pub(crate) fn end(&self, op: IoOp, pages: u64, ok: bool, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
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
            latency::record(&mut hist.lock(), took);
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
