//! The state of one object under its lock: its swap metadata, its writes and reads in
//! flight, the blocks parked for those reads and the pages marked lost. Every change of a
//! page's block that depends on what the page maps now goes through here.

use std::collections::HashMap;

use swmeta::{Block, SwapMeta};

use crate::config::DeviceId;
use crate::space::Space;

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

    /// Whether page `p` still maps block `blk`: not rewritten or freed since `blk` was
    /// looked up.
    pub(crate) fn maps(&self, p: u64, blk: u64) -> bool {
        self.meta.lookup(p).map(u64::from) == Some(blk)
    }

    /// Installs a move of pages `p0..p0+len` from blocks `old0..` to blocks `new0..` (a
    /// swapoff's rewrite): each page that still maps its old block gets the new one, with
    /// its checksum, and the old one is released; a page its owner rewrote or freed
    /// meanwhile keeps what it has and the new block is freed. Returns pages moved.
    pub(crate) fn install_moved(
        &mut self,
        space: &mut Space,
        p0: u64,
        old0: u64,
        new0: u64,
        len: u64,
    ) -> u64 {
        let mut moved = 0;
        for k in 0..len {
            let (p, old, new) = (p0 + k, old0 + k, new0 + k);
            if self.maps(p, old) {
                let crc = self.meta.checksum(p);
                self.meta.insert_checked(p, new as Block, crc);
                self.release(space, old as Block);
                moved += 1;
            } else {
                space.free(new, 1);
            }
        }
        moved
    }

    /// Drops page `p` if it still maps block `old`: the block is released and the page
    /// marked lost (`why`), so reads of it are an error from now on, not a hole (strategy
    /// would read a hole as zeroes). Returns whether it was dropped.
    pub(crate) fn drop_lost(&mut self, space: &mut Space, p: u64, old: u64, why: Lost) -> bool {
        if !self.maps(p, old) {
            return false;
        }
        self.meta.pop(p);
        self.release(space, old as Block);
        self.lost.insert(p, why);
        true
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
