//! The region's bookkeeping: the page table with its condition variables, the counters
//! and the fault latency histogram. It is all a [`crate::RegionMonitor`] keeps: the memory,
//! the inactive cache, the userfaultfd and the pager object belong to the region's
//! threads and go when the region drops.
//!
//! Lock order: the reader lock (`Shared::reader`), then the table, then the segment table
//! and the store's (the pager's) locks (a store call may be made under the table lock; a
//! store callback never takes it); streams before the table. Page table changes are
//! announced on `changed`; the evictor sleeps on `need_room`.

use std::sync::atomic::AtomicU64;

use hdrhistogram::Histogram;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::state::Table;
use crate::stats::Counters;

#[derive(Debug)]
pub(crate) struct Book {
    /// Pages in the space's segments (a region's: its pages).
    pub pages: AtomicU64,
    /// The resident limit in pages (at most `pages`).
    pub limit: u64,
    pub table: Mutex<Table>,
    pub changed: Condvar,
    pub need_room: Condvar,
    pub counters: Counters,
    pub latency: Mutex<Histogram<u64>>,
}

impl Book {
    pub fn new(limit: u64, slots: u64) -> Book {
        Book {
            pages: AtomicU64::new(0),
            limit,
            table: Mutex::new(Table::new(slots)),
            changed: Condvar::new(),
            need_room: Condvar::new(),
            counters: Counters::default(),
            latency: Mutex::new(device::latency::histogram()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock()
    }
}
