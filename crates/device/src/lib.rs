//! device: swap areas on block devices and files. Work in progress: see docs/ARCHITECTURE.md.

/// Bytes per page: the unit of every I/O.
pub const PAGE_SIZE: usize = 4096;

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
