//! How a region is built.

use serde::{Deserialize, Serialize};

/// The settings of [`crate::Region::new`]. Sizes are bytes, rounded up to whole pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionConfig {
    /// Size of the region.
    pub len: u64,
    /// At most this much of it is resident at once (at least two pages).
    pub resident_limit: u64,
    /// Pages read around a major fault, each side, when they are contiguous on swap and
    /// not resident (bounded by the pager's `max_cluster`), if the fault is near the same
    /// thread's previous one (a sequential or local pattern; a random fault reads its
    /// page only). 0 reads the faulting page only.
    pub read_around: u64,
    /// Largest sequential read-ahead, in pages, started when faults walk the region front
    /// to back; 0 turns it off. See `prefetch.rs`: per thread, asynchronous, the window
    /// doubling while faults stay sequential.
    pub prefetch: u64,
    /// Threads serving faults (at least 1). A handler serves one fault at a time (its
    /// `getpages` is synchronous), so this bounds the reads in flight for faults: as many
    /// as the program has threads faulting at random, or the kernel, which serves every
    /// faulting thread at once, keeps more disks busy.
    pub handlers: usize,
    /// Pages the evictor takes out in one round (written as clusters of neighbours).
    pub evict_batch: u64,
}

impl Default for RegionConfig {
    fn default() -> RegionConfig {
        RegionConfig {
            len: 0,
            resident_limit: 0,
            read_around: 15,
            prefetch: 256,
            handlers: 4,
            evict_batch: 128,
        }
    }
}
