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
    /// On its way out: being moved to the inactive list (mapped, write-protected) or
    /// written from it (unmapped); touches wait until it is gone or back.
    Evicting,
    /// Unmapped, its bytes in slot `slot` of the inactive cache (still in memory, counted
    /// resident); a touch maps it back from there without I/O. `dirty` as for `Resident`.
    Inactive { slot: u32, dirty: bool },
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
    /// Pages evicted so far (wrapping): the clock that refault distances are read on.
    pub evictions: u32,
    /// The value of `evictions` when each page was last evicted; 0 never.
    pub evicted_at: Vec<u32>,
    /// Extra turns of the hand a resident page survives unreferenced: set when it
    /// refaults soon after its eviction (see `evict.rs`).
    pub chances: Vec<u8>,
    /// The inactive cache: one page of bytes per slot.
    pub cache: Vec<u8>,
    pub free_slots: Vec<u32>,
    /// Inactive pages, oldest first (entries of pages mapped back since are stale).
    pub inactive: std::collections::VecDeque<u64>,
}

impl Table {
    /// The table of a region of `pages` pages with `slots` inactive cache slots, every
    /// page absent and never written.
    pub fn new(pages: u64, slots: u64) -> Table {
        let n = pages as usize;
        Table {
            pages: vec![Page::Absent { swap: false }; n],
            resident: 0,
            hand: 0,
            prefetched: vec![false; n],
            evictions: 0,
            evicted_at: vec![0; n],
            chances: vec![0; n],
            cache: vec![0; slots as usize * device::PAGE_SIZE],
            free_slots: (0..slots as u32).rev().collect(),
            inactive: std::collections::VecDeque::new(),
        }
    }

    /// The bytes of inactive cache slot `slot`.
    pub fn slot_mut(&mut self, slot: u32) -> &mut [u8] {
        let at = slot as usize * device::PAGE_SIZE;
        &mut self.cache[at..at + device::PAGE_SIZE]
    }

    /// Page `p` was just evicted: stamp it on the eviction clock.
    pub fn evicted(&mut self, p: u64) {
        self.evictions = self.evictions.wrapping_add(1).max(1);
        self.evicted_at[p as usize] = self.evictions;
        self.chances[p as usize] = 0;
    }

    /// Page `p` is being faulted back in. If fewer than `limit` pages were evicted since it
    /// went out, a memory twice as large would have kept it: it is part of the working
    /// set, and gets [`ACTIVE_CHANCES`] extra turns of the hand. Returns whether it did.
    pub fn refault(&mut self, p: u64, limit: u64) -> bool {
        let at = self.evicted_at[p as usize];
        let hot = at != 0 && u64::from(self.evictions.wrapping_sub(at)) <= limit;
        self.chances[p as usize] = if hot { ACTIVE_CHANCES } else { 0 };
        hot
    }
}

/// Extra turns of the clock hand a refaulting (working set) page survives unreferenced.
pub const ACTIVE_CHANCES: u8 = 1;

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
    /// Slots of the inactive cache ([`Shared::inactive_slots`] of the limit).
    pub inactive_slots: u64,
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

    /// Slots of the inactive cache: half the limit (at least one).
    pub fn inactive_slots(limit: u64) -> u64 {
        (limit / 2).max(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pages: u64) -> Table {
        Table::new(pages, 1)
    }

    #[test]
    fn a_page_refaulting_within_the_limit_is_active_and_a_scanned_one_is_not() {
        let mut t = table(100);
        t.evicted(1);
        for q in 10..20 {
            t.evicted(q);
        }
        // 10 evictions since page 1 went out: under a limit of 16, it is working set.
        assert!(t.refault(1, 16));
        assert_eq!(t.chances[1], ACTIVE_CHANCES);
        for q in 20..60 {
            t.evicted(q);
        }
        // Page 10 went out 49 evictions ago, page 99 never: neither is.
        assert!(!t.refault(10, 16));
        assert!(!t.refault(99, 16));
        assert_eq!((t.chances[10], t.chances[99]), (0, 0));
        // Evicting an active page takes its chances away.
        t.evicted(1);
        assert_eq!(t.chances[1], 0);
    }

    #[test]
    fn the_eviction_clock_wraps_without_losing_distances() {
        let mut t = table(4);
        t.evictions = u32::MAX - 2;
        t.evicted(0);
        t.evicted(1);
        t.evicted(2);
        t.evicted(3);
        // Three evictions since page 0 went out, and the clock skipped 0 ("never").
        assert!(t.refault(0, 4));
        assert!(!t.refault(0, 2));
    }
}
