//! The snapshot a monitor reads: `Pager::stats()` returns a [`PagerStats`].
//!
//! These types are the contract between the pager and everything that watches it (the
//! daemon's `status`/`list` replies, `swapctl top`, the benchmark). They are plain data,
//! serializable, and cheap to build: a TUI asks for one every 100 ms.

use serde::{Deserialize, Serialize};

/// Everything a monitor shows about one swap space, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PagerStats {
    /// Milliseconds since the pager was created.
    pub uptime_ms: u64,
    /// Bytes per page (4096).
    pub page_size: u64,
    /// The resolved I/O engine: "io_uring" or "threads".
    pub engine: String,
    /// Usable blocks of all devices (page 0 and bad pages excluded).
    pub total_pages: u64,
    /// Blocks that hold a page or are reserved.
    pub used_pages: u64,
    /// Blocks the allocator can still hand out: the free blocks of the areas in service (the
    /// seed's `vm_swap_size`); an area that drains or fails counts none. Not `total - used -
    /// bad`: `bad` counts header bad pages, which `total` already leaves out.
    pub free_pages: u64,
    /// Bad pages of all devices: header bad pages plus blocks quarantined after write errors.
    pub bad_pages: u64,
    /// The seed's hysteresis flags (`swp_sizecheck`).
    pub hysteresis: Hysteresis,
    /// Live tunables and the limits they derive from.
    pub tunables: Tunables,
    /// The three pbuf pools.
    pub pbufs: PbufStats,
    /// Event counters since start.
    pub counters: Counters,
    /// One entry per swap area, in swapon order.
    pub devices: Vec<DeviceStats>,
    /// Live objects (named and anonymous).
    pub objects: u64,
    /// Named objects among them.
    pub named_objects: u64,
    /// Heap bytes held by all objects' swap metadata (a running count).
    pub meta_bytes: u64,
}

/// `swap_pager_almost_full` and `swap_pager_full` of the seed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hysteresis {
    pub almost_full: bool,
    pub full: bool,
}

impl Hysteresis {
    /// The one word a monitor shows: "full" wins over "almost full".
    pub fn label(&self) -> &'static str {
        if self.full {
            "full"
        } else if self.almost_full {
            "almost full"
        } else {
            "ok"
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunables {
    /// Blocks taken from one device before the allocator moves on (the seed's `dmmax`).
    pub interleave: u64,
    /// Total pbufs (`nswbuf`).
    pub nswbuf: u64,
    /// Live limit on in-flight async write clusters per area in service, in
    /// `1..=nswbuf/2` (the pool's total is `pbufs.async_write.max`).
    pub swap_async_max: u64,
    /// Largest cluster, in pages.
    pub max_cluster: u64,
    pub nswap_lowat: u64,
    pub nswap_hiwat: u64,
    /// The page checksum in force (`crc32c` or `none`).
    pub checksum: crate::config::Checksum,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbufStats {
    /// `nsw_rcount`: reads.
    pub read: PoolStats,
    /// `nsw_wcount_sync`: synchronous writes.
    pub sync_write: PoolStats,
    /// `nsw_wcount_async`: asynchronous writes; `max` is the live `swap_async_max` times
    /// the areas in service (at least one), at most `nswbuf / 2`.
    pub async_write: PoolStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    pub in_use: u64,
    pub max: u64,
    /// Callers that found the pool empty and waited.
    pub waits: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Read clusters issued (the seed's `swapin` / `v_swapin`).
    pub swapin: u64,
    /// Write clusters issued (`swapout` / `v_swapout`).
    pub swapout: u64,
    pub pages_in: u64,
    pub pages_out: u64,
    /// Waits for a page whose I/O was in flight (`intrans`).
    pub intrans_waits: u64,
    /// Pages that got no swap space (FAIL).
    pub alloc_failures: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    /// Pages read whose checksum did not match (never returned as data).
    pub corrupt_pages: u64,
    /// Writes that failed and were written again on another area (the caller saw `Ok`).
    pub write_retries: u64,
    /// Pages of async writes that failed on every area: they read as an error after
    /// (see [`crate::Pager::take_async_failures`]).
    pub async_write_failures: u64,
    /// Hysteresis events emitted.
    pub events: u64,
}

/// What a swap area is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
    #[default]
    Active,
    /// `swapoff` in progress: no new allocations, data moving off.
    Draining { moved: u64, total: u64 },
    /// The device vanished or failed; its blocks read as errors.
    Failed,
    /// Its writes kept failing: no new allocations; what it holds is still read, and
    /// `swapoff` drains it. Back in service only through swapoff and swapon, or for a
    /// remote area once its connection is made again.
    Failing,
    /// A remote area with no connection for `down_ms`: no new allocations, its reads wait
    /// a bounded time (`read-wait`) and then fail; back in service when it reconnects.
    Reconnecting { down_ms: u64 },
}

/// An area's last failed I/O (or, remote, its last broken connection or failed attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The operation, the page and the cause (`read at page 12: EIO: ...`).
    pub what: String,
}

impl LastError {
    pub(crate) fn at(at: std::time::SystemTime, what: String) -> LastError {
        let at_unix_ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        LastError { at_unix_ms, what }
    }

    pub(crate) fn now(what: String) -> LastError {
        LastError::at(std::time::SystemTime::now(), what)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceStats {
    /// The pager's id for this area, stable while it is on.
    pub id: u32,
    pub path: String,
    pub priority: i32,
    pub state: DeviceState,
    /// "block", "file" or "nbd".
    pub kind: String,
    pub direct_io: bool,
    /// Added with discard (`swapon --discard`, `discard = true`): its data pages were
    /// discarded at swapon. Absent in replies of older daemons, hence the default.
    #[serde(default)]
    pub discard: bool,
    pub uuid: String,
    pub label: String,
    /// First global block number of this area.
    pub first_block: u64,
    /// Device size in bytes.
    pub size_bytes: u64,
    /// Usable blocks (pages 1..=last_page minus header bad pages).
    pub total_pages: u64,
    pub used_pages: u64,
    /// Free blocks the allocator can hand out here (0 while the area drains or fails).
    pub free_pages: u64,
    /// Header bad pages plus blocks quarantined after write errors.
    pub bad_pages: u64,
    /// The area's I/O counters and latencies as the device keeps them (`SwapArea::stats`),
    /// passed through whole: in JSON their fields sit beside this struct's own.
    #[serde(flatten)]
    pub io: device::AreaStats,
    /// Pages read from this area whose checksum did not match.
    pub corrupt: u64,
    /// Its last failed I/O or broken connection, with its cause and time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// The device's free-space fragmentation (its blist `stats()`): filled only by
    /// `Pager::stats_with_frag` (empty in `Pager::stats`, which must stay cheap).
    pub frag: FragStats,
}

/// A blist's `stats()` as plain data: maximal free ranges by Fibonacci size class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragStats {
    pub free_ranges: u64,
    pub largest: u64,
    pub average: u64,
    /// Non-empty size classes, ascending: (smallest size, largest size, ranges in class).
    pub buckets: Vec<(u64, u64, u64)>,
    /// FreeBSD's `blist_stats` text, as `swapctl frag` prints it.
    pub text: String,
}
