//! Objects: the seed's `OBJT_SWAP` objects, each with its swap metadata under its own lock,
//! found again by handle when named (`swap_pager_alloc`) and freed with their last handle
//! (`swap_pager_dealloc`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Condvar;
use swmeta::{Block, SwapMeta};

use crate::config::DeviceId;
use crate::core::Core;
use crate::objlock::StateLock;
use crate::space::Space;

/// A swap-backed object: a sparse array of pages indexed by `pindex`. Cheap to clone;
/// dropping the last clone deallocates it and frees all its swap (`swap_pager_dealloc`).
#[derive(Clone)]
pub struct Object {
    pub(crate) inner: Arc<ObjectInner>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("id", &self.inner.id)
            .field("handle", &self.inner.handle)
            .field("size_pages", &self.inner.size)
            .finish_non_exhaustive()
    }
}

impl Object {
    /// The pager-wide id of this object (unique while the pager lives).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The handle of a named object.
    pub fn handle(&self) -> Option<&str> {
        self.inner.handle.as_deref()
    }

    /// The object's size in pages (given at allocation; bounds `copy` and `strategy`).
    pub fn size_pages(&self) -> u64 {
        self.inner.size
    }

    /// Pages that hold a swap block.
    pub fn swapped_pages(&self) -> u64 {
        self.inner.st.lock().meta.pages()
    }

    /// Whether two handles are the same object.
    pub fn same(&self, other: &Object) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

pub(crate) struct ObjectInner {
    pub id: u64,
    pub handle: Option<String>,
    pub size: u64,
    pub core: Arc<Core>,
    pub st: StateLock,
    /// Signalled when a pending write completes or is cancelled, and when reads end.
    pub cond: Condvar,
}

impl fmt::Debug for ObjectInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectInner")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ObjectInner {
    /// "name" or "#id", for messages.
    pub(crate) fn name(&self) -> String {
        match &self.handle {
            Some(h) => h.clone(),
            None => format!("#{}", self.id),
        }
    }
}

/// Why a page with no block must read as an error rather than "not on swap".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// Its last write was async (acknowledged) and failed on every area.
    WriteFailed,
    /// A swapoff read it back and its checksum did not match: `page` of area `device`.
    Corrupt { device: DeviceId, page: u64 },
    /// A forced swapoff removed area `device` while the page could not be read from it.
    Dropped { device: DeviceId },
    /// The file behind area `device` was cut short below the page: a swapoff found it gone.
    Truncated { device: DeviceId },
}

/// The mutable state of one object.
#[derive(Debug, Default)]
pub(crate) struct ObjState {
    /// `pindex -> block` (the seed's swblocks).
    pub meta: SwapMeta,
    /// Pages with a write in flight: `pindex -> sequence` of the newest write. A write's
    /// completion installs its block only if it is still the newest (the seed's
    /// `PG_SWAPINPROG` busy page, as data).
    pub pending: HashMap<u64, u64>,
    pub next_seq: u64,
    /// The block ranges `(first, len)` of the reads in flight from this object's blocks,
    /// one entry per read (the same range may appear twice).
    pub reads: Vec<(u64, u64)>,
    /// Blocks dropped from the metadata while a read of them was in flight: freed as soon
    /// as no read covers them any more, so no block is reused under a reader, and no
    /// block is held longer than that read (a swapoff pass registers each cluster read
    /// alone, so blocks the object frees meanwhile go back at once).
    pub deferred: Vec<Block>,
    /// Pages whose acknowledged bytes are gone (see [`Lost`]): they have no block, and a
    /// read of them is an error until they are written again or freed.
    pub lost: HashMap<u64, Lost>,
    /// Pages whose async write failed everywhere since the last
    /// [`crate::Pager::take_async_failures`], in order of failure.
    pub async_failures: Vec<u64>,
    /// `meta.memory_bytes()` as last added to the pager's count (see `objlock`).
    pub accounted: u64,
}

impl ObjState {
    /// An empty state; the metadata keeps checksums if `checksums`.
    pub(crate) fn new(checksums: bool) -> ObjState {
        ObjState {
            meta: if checksums {
                SwapMeta::with_checksums()
            } else {
                SwapMeta::new()
            },
            ..ObjState::default()
        }
    }

    /// Forgets the markers of `start..start+n` (the pages were written again or freed).
    pub(crate) fn clear_lost(&mut self, start: u64, n: u64) {
        if self.lost.is_empty() {
            return;
        }
        let end = start.saturating_add(n);
        self.lost.retain(|p, _| *p < start || *p >= end);
    }

    /// Whether a read in flight covers `blk`.
    fn being_read(&self, blk: u64) -> bool {
        self.reads
            .iter()
            .any(|&(first, len)| blk >= first && blk < first + len)
    }

    /// Frees a block dropped from the metadata, or parks it while a read of it is in flight.
    pub(crate) fn release(&mut self, space: &mut Space, blk: Block) {
        if self.being_read(u64::from(blk)) {
            self.deferred.push(blk);
        } else {
            space.free(u64::from(blk), 1);
        }
    }

    /// [`ObjState::release`] without the space lock: a block to free now goes to `free`
    /// (for [`free_blocks`] under one later hold of the space lock), one being read is
    /// parked. The caller keeps this object locked until then, so nobody sees the block
    /// between.
    pub(crate) fn release_into(&mut self, blk: Block, free: &mut Vec<u64>) {
        if self.being_read(u64::from(blk)) {
            self.deferred.push(blk);
        } else {
            free.push(u64::from(blk));
        }
    }

    /// Registers a read of `len` blocks from `first`: none of them is freed until
    /// [`ObjState::end_read`] of the same range.
    pub(crate) fn begin_read(&mut self, first: u64, len: u64) {
        self.reads.push((first, len));
    }

    /// Forgets one read (nothing is parked: see [`ObjState::end_read`]).
    pub(crate) fn forget_read(&mut self, first: u64, len: u64) {
        if let Some(i) = self.reads.iter().position(|&r| r == (first, len)) {
            self.reads.swap_remove(i);
        }
    }

    /// Ends one read; frees the parked blocks no other read covers.
    pub(crate) fn end_read(&mut self, space: &mut Space, first: u64, len: u64) {
        self.forget_read(first, len);
        if self.deferred.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.deferred);
        for blk in parked {
            if self.being_read(u64::from(blk)) {
                self.deferred.push(blk);
            } else {
                space.free(u64::from(blk), 1);
            }
        }
    }

    /// Cancels the writes in flight on `start..start+n`: their completions free their
    /// blocks instead of installing them.
    pub(crate) fn cancel_pending(&mut self, start: u64, n: u64) {
        if self.pending.is_empty() {
            return;
        }
        let end = start.saturating_add(n);
        if n < self.pending.len() as u64 {
            for p in start..end {
                self.pending.remove(&p);
            }
        } else {
            self.pending.retain(|p, _| *p < start || *p >= end);
        }
    }

    /// Removes the blocks of `start..start+n` (`swp_pager_meta_free`), freeing or parking
    /// them. Returns how many pages had one.
    pub(crate) fn free_range(&mut self, space: &mut Space, start: u64, n: u64) -> u64 {
        self.clear_lost(start, n);
        let mut freed = Vec::new();
        self.meta.free_range(start, n, |_, b| freed.push(b));
        for &b in &freed {
            self.release(space, b);
        }
        freed.len() as u64
    }
}

impl Drop for ObjectInner {
    /// `swap_pager_dealloc`: out of the lists first so lookups fail, then every block
    /// freed. In-flight I/O holds a reference, so none is running here.
    fn drop(&mut self) {
        {
            let mut reg = self.core.registry.lock();
            // Uncounted together with unlisting, so `verify` sees both or neither.
            self.st.uncount();
            reg.all.remove(&self.id);
            if let Some(h) = &self.handle {
                let me: *const ObjectInner = self;
                if reg
                    .named
                    .get(h)
                    .is_some_and(|w| std::ptr::eq(w.as_ptr(), me))
                {
                    reg.named.remove(h);
                }
            }
        }
        let st = self.st.get_mut();
        let mut space = self.core.space.lock();
        st.meta.clear(|_, b| space.free(u64::from(b), 1));
        for b in st.deferred.drain(..) {
            space.free(u64::from(b), 1);
        }
    }
}

/// Frees `blocks` (any order), coalesced into runs of consecutive numbers: one blist free
/// and one hysteresis check per run instead of per block. Consecutive numbers are on one
/// area (areas keep a gap between them).
pub(crate) fn free_blocks(space: &mut Space, blocks: &mut [u64]) {
    blocks.sort_unstable();
    let mut i = 0;
    while i < blocks.len() {
        let mut n = 1;
        while i + n < blocks.len() && blocks[i + n] == blocks[i] + n as u64 {
            n += 1;
        }
        space.free(blocks[i], n as u64);
        i += n;
    }
}
