//! The lock around an object's state, keeping the pager-wide count of metadata bytes.
//!
//! `PagerStats::meta_bytes` used to be summed over every object under each object's
//! lock, on every snapshot. Instead each unlock adds the change of its object's
//! `SwapMeta::memory_bytes()` (three field reads) to one pager-wide atomic, so no site
//! that changes metadata can forget to count, and a snapshot reads one number.
//! `Pager::verify` checks the count against the sum.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::objstate::ObjState;

/// `Mutex<ObjState>` whose guard accounts metadata bytes when it is released.
#[derive(Debug)]
pub(crate) struct StateLock {
    m: Mutex<ObjState>,
    total: Arc<AtomicU64>,
}

impl StateLock {
    pub(crate) fn new(st: ObjState, total: Arc<AtomicU64>) -> StateLock {
        StateLock {
            m: Mutex::new(st),
            total,
        }
    }

    pub(crate) fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            g: self.m.lock(),
            total: &self.total,
        }
    }

    /// Takes an object being dropped out of the count (under the registry lock, as it
    /// is unlisted); what it frees after is not counted again.
    pub(crate) fn uncount(&mut self) {
        let st = self.m.get_mut();
        self.total.fetch_sub(st.accounted, Ordering::Relaxed);
        st.accounted = 0;
    }

    pub(crate) fn get_mut(&mut self) -> &mut ObjState {
        self.m.get_mut()
    }
}

pub(crate) struct StateGuard<'a> {
    g: MutexGuard<'a, ObjState>,
    total: &'a AtomicU64,
}

impl StateGuard<'_> {
    /// Waits on `cond`, releasing the lock meanwhile (the accounting stays exact: it is
    /// kept in the state, so whoever unlocks next counts any change made so far).
    pub(crate) fn wait(&mut self, cond: &Condvar) {
        cond.wait(&mut self.g);
    }
}

impl Deref for StateGuard<'_> {
    type Target = ObjState;
    fn deref(&self) -> &ObjState {
        &self.g
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut ObjState {
        &mut self.g
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let now = self.g.meta.memory_bytes() as u64;
        let before = self.g.accounted;
        if now != before {
            // Wrapping: a shrink adds the two's complement of the difference.
            self.total
                .fetch_add(now.wrapping_sub(before), Ordering::Relaxed);
            self.g.accounted = now;
        }
    }
}
