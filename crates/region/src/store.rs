//! Where a space's pages live while they are not in memory: a [`Store`]. The region calls
//! it in four places only: a fault's read ([`Store::getpages`]), prefetch (the same), the
//! evictor's write ([`Store::putpages_async`]) and the freeing of swap a page no longer
//! needs ([`Store::freespace`]); [`Store::free_pages`] answers the room check when memory
//! is adopted. A page's index in the store is its index in the space's page table.
//!
//! [`LocalStore`] is a [`pager::Object`] of a pager in this process (what a [`crate::Region`]
//! made by [`crate::Region::new`] uses); the preload of `swapctl run` implements the trait
//! over its socket to the daemon.
//!
//! Contract for implementations: the methods may be called from any of the space's
//! threads, some of them under the space's page table lock, so they must never call back
//! into the space, and they must not call the program's code (the space's threads run
//! inside an unmodified program: no `malloc` of its allocator, no lock it may hold).

use std::ops::Range;

use pager::{AsyncDone, Object, Pager, PutMode};

/// Why a store could not read a page: one line, for the log and the error counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{cause}")]
pub struct StoreError {
    /// What failed, in one line (no trailing newline).
    pub cause: String,
}

impl StoreError {
    pub fn new(cause: impl std::fmt::Display) -> StoreError {
        StoreError {
            cause: cause.to_string(),
        }
    }
}

impl From<pager::PagerError> for StoreError {
    fn from(e: pager::PagerError) -> StoreError {
        StoreError::new(e)
    }
}

/// The callback of [`Store::putpages_async`], run exactly once.
pub type PutDone = Box<dyn FnOnce(AsyncDone) + Send + 'static>;

/// The swap behind a space: see the module doc. Object safe; shared as `Arc<dyn Store>`.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// [`Pager::getpages`] semantics: reads page `pindex` and up to `max_behind` /
    /// `max_ahead` of its neighbours that one I/O can bring with it into `out`, which
    /// covers pages `pindex - max_behind ..= pindex + max_ahead`; returns the pages read,
    /// always including `pindex`. A page with no copy in the store is an error (the region
    /// asks only for pages it wrote).
    fn getpages(
        &self,
        pindex: u64,
        max_behind: u64,
        max_ahead: u64,
        out: &mut [u8],
    ) -> Result<Range<u64>, StoreError>;

    /// Writes `data` (whole pages, the first at `start`) and calls `done` once with the
    /// result of each page (`Ok`, `Fail`: no room, the previous copy kept, or `Error`),
    /// from any thread, possibly before this returns. A page written `Ok` replaces its
    /// previous copy.
    fn putpages_async(&self, start: u64, data: Vec<u8>, done: PutDone);

    /// Frees the copies of pages `pindex .. pindex + count` (those that have one).
    fn freespace(&self, pindex: u64, count: u64);

    /// Pages of swap the store could still take, for the room check of new memory; `None`
    /// when it cannot tell (the check is then skipped).
    fn free_pages(&self) -> Option<u64>;
}

/// A [`Store`] over an object of a [`Pager`] in this process.
#[derive(Debug)]
pub struct LocalStore {
    pager: Pager,
    obj: Object,
}

impl LocalStore {
    /// A new anonymous object of `pages` pages on `pager` (the largest index the space may
    /// give a page is `pages - 1`).
    pub fn new(pager: &Pager, pages: u64) -> LocalStore {
        LocalStore {
            pager: pager.clone(),
            obj: pager.alloc_object(None, pages),
        }
    }

    /// The object holding the pages.
    pub fn object(&self) -> &Object {
        &self.obj
    }

    /// The pager it lives in.
    pub fn pager(&self) -> &Pager {
        &self.pager
    }
}

impl Store for LocalStore {
    fn getpages(
        &self,
        pindex: u64,
        max_behind: u64,
        max_ahead: u64,
        out: &mut [u8],
    ) -> Result<Range<u64>, StoreError> {
        Ok(self
            .pager
            .getpages(&self.obj, pindex, max_behind, max_ahead, out)?)
    }

    fn putpages_async(&self, start: u64, data: Vec<u8>, done: PutDone) {
        // An async put copies `data` before it returns: it may go with this frame. The
        // per-page answers here are `Pend` or final; `done` gets the final ones.
        self.pager
            .putpages(&self.obj, start, &data, PutMode::Async(Some(done)));
    }

    fn freespace(&self, pindex: u64, count: u64) {
        self.pager.freespace(&self.obj, pindex, count);
    }

    fn free_pages(&self) -> Option<u64> {
        Some(self.pager.stats().free_pages)
    }
}
