//! How a region is built.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The settings of [`crate::Region::new`]. Sizes are bytes, rounded up to whole pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionConfig {
    /// Size of the region (at most 16 TiB, the pager's largest object).
    pub len: u64,
    /// At most this much of it is resident at once (at least two pages). A limit above
    /// `len` is taken as `len`: the whole region may be resident.
    pub resident_limit: u64,
    /// Pages read around a major fault, each side, when they are contiguous on swap and
    /// not resident (bounded by the pager's `max_cluster`), if the fault is near the same
    /// thread's previous one (a sequential or local pattern; a random fault reads its
    /// page only). 0 reads the faulting page only; more than the region's pages (or
    /// [`crate::MAX_READ_AROUND`]) is taken as that.
    pub read_around: u64,
    /// Largest sequential read-ahead, in pages, started when faults walk the region front
    /// to back; 0 turns it off. See `streams.rs`: per thread, asynchronous, the window
    /// doubling while faults stay sequential. More than the region's pages (or
    /// [`crate::MAX_PREFETCH`]) is taken as that.
    pub prefetch: u64,
    /// Threads serving faults (at least 1). A handler serves one fault at a time (its
    /// `getpages` is synchronous), so this bounds the reads in flight for faults: as many
    /// as the program has threads faulting at random, or the kernel, which serves every
    /// faulting thread at once, keeps more disks busy.
    pub handlers: usize,
    /// Pages the evictor takes out in one round (written as clusters of neighbours).
    pub evict_batch: u64,
    /// How long a fault waits for room under the resident limit (the evictor cannot make
    /// any while swap is full or failing) before the touching thread gets `SIGBUS`.
    pub room_wait: Duration,
    /// Make the region even if the pager's free swap cannot hold the part of it that does
    /// not fit under the limit (`len - resident_limit`). Off, [`crate::Region::new`]
    /// refuses such a region ([`crate::RegionError::NotEnoughSwap`]): its faults would
    /// wait for swap that may never come. On, the region relies on swap being added (or
    /// freed) in time, and a fault that waits `room_wait` in vain gets `SIGBUS`.
    pub overcommit: bool,
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
            room_wait: Duration::from_secs(30),
            overcommit: false,
        }
    }
}

/// The settings of [`crate::Space::new`]: as [`RegionConfig`], without a length (a space
/// pages the memory it is given, [`crate::Space::adopt`]). Sizes are bytes, rounded up to
/// whole pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpaceConfig {
    /// At most this much of the adopted memory is resident at once (at least two pages),
    /// but while a fork is prepared ([`crate::Space::prepare_fork`]). Memory adopted over
    /// the limit is evicted down to it.
    pub resident_limit: u64,
    /// As [`RegionConfig::read_around`] (at most [`crate::MAX_READ_AROUND`]); a read
    /// never crosses from one adopted range into another.
    pub read_around: u64,
    /// As [`RegionConfig::prefetch`] (at most [`crate::MAX_PREFETCH`]).
    pub prefetch: u64,
    /// As [`RegionConfig::handlers`]; the handlers also read the space's memory events
    /// (`madvise`, `munmap`, `mremap`).
    pub handlers: usize,
    /// As [`RegionConfig::evict_batch`].
    pub evict_batch: u64,
    /// As [`RegionConfig::room_wait`].
    pub room_wait: Duration,
    /// Adopt memory even if the store's free swap cannot hold what of it does not fit
    /// under the limit; off, [`crate::Space::adopt`] refuses it
    /// ([`crate::RegionError::NotEnoughSwap`]).
    pub overcommit: bool,
}

impl Default for SpaceConfig {
    fn default() -> SpaceConfig {
        let r = RegionConfig::default();
        SpaceConfig {
            resident_limit: 0,
            read_around: r.read_around,
            prefetch: r.prefetch,
            handlers: r.handlers,
            evict_batch: r.evict_batch,
            room_wait: r.room_wait,
            overcommit: r.overcommit,
        }
    }
}
