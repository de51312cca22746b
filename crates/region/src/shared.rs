//! What the handler threads, the evictor and the [`crate::Region`] handle share: the page
//! table (one state per page, under one mutex), the counters and the latency histogram.
//!
//! Lock order: the table, then the pager's locks (a pager call may be made under the table
//! lock; a pager callback never takes it). Page table changes are announced on `changed`;
//! the evictor sleeps on `need_room`.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use pager::{Object, Pager};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::mapping::Mapping;
use crate::stats::Counters;
use crate::uffd::Uffd;

/// The state of one page of the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// Not mapped. `swap`: the object holds the page's bytes on swap; otherwise the page
    /// has never been evicted with data and reads as zeroes.
    Absent { swap: bool },
    /// A handler is bringing it in; it counts as resident.
    Loading,
    /// Mapped. A clean page is write-protected and equal to its swap copy; a dirty page is
    /// writable (or was zero-filled) and its swap copy, if any, is stale.
    /// `referenced`: the clock's second-chance bit, set when it came in or was written.
    Resident { dirty: bool, referenced: bool },
    /// Write-protected and on its way out; stores wait until it is gone or back.
    Evicting,
    /// Its read failed: every access gets `SIGBUS`. It stays so until the region drops.
    Poisoned,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub pages: Vec<Page>,
    /// Pages Loading, Resident or Evicting.
    pub resident: u64,
    /// The clock hand.
    pub hand: u64,
    /// Mapped by prefetch and not yet counted as a hit nor evicted.
    pub prefetched: Vec<bool>,
}

pub(crate) struct Shared {
    pub pager: Pager,
    pub obj: Object,
    pub uffd: Uffd,
    pub map: Mapping,
    pub pages: u64,
    pub limit: u64,
    pub read_around: u64,
    pub prefetch: u64,
    pub streams: Mutex<crate::prefetch::Streams>,
    pub prefetch_tx: crossbeam_channel::Sender<crate::prefetch::Job>,
    pub evict_batch: u64,
    pub table: Mutex<Table>,
    pub changed: Condvar,
    pub need_room: Condvar,
    pub counters: Counters,
    pub latency: Mutex<Histogram<u64>>,
    pub stop: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("pages", &self.pages)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Pages the evictor keeps free below the limit, so faults seldom wait for room.
    pub fn headroom(&self) -> u64 {
        (self.limit / 8).clamp(1, self.evict_batch.max(1))
    }

    /// The evictor starts when resident pages pass this.
    pub fn watermark(&self) -> u64 {
        self.limit.saturating_sub(self.headroom())
    }

    /// Index of the page holding `addr`, if it is inside the region.
    pub fn page_of(&self, addr: u64) -> Option<u64> {
        let off = addr.checked_sub(self.map.base)?;
        let p = off / device::PAGE_SIZE as u64;
        (p < self.pages).then_some(p)
    }
}
