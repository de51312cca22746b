//! swmeta: the swap metadata of one object — which swap block holds each swapped-out page.
//!
//! This is the layer of FreeBSD's `struct swblock` and `swp_pager_meta_build`, `_free`,
//! `_free_all` and `_ctl` (see the seed's `swap_pager.c`), kept per object the way today's
//! FreeBSD keeps it: a radix trie of page clusters. A [`SwapMeta`] maps a page index (`u64`,
//! the whole range) to a [`Block`] (`u32`, a global swap block number).
//!
//! # Layout
//! Pages are grouped in clusters of [`META_PAGES`] (32) consecutive indices: 32 `u32` blocks
//! and a 32-bit mask of which are set (128 + 4 bytes). Up to 64 clusters of 2048 consecutive
//! indices are packed, in order, in one allocation (a leaf); leaves hang in a path-compressed
//! radix trie of 64-way nodes. A dense object costs about 4.17 bytes per page; a cluster with
//! a single page costs 132 bytes (see the README for measured figures).
//!
//! # Checksums
//! A map made with [`SwapMeta::with_checksums`] keeps a 32-bit checksum beside each block
//! ([`SwapMeta::insert_checked`], [`SwapMeta::checksum`]): the pager stores each page's
//! CRC32C there when it writes the page and checks it on every read. It must live in
//! memory, next to the block number: a checksum stored on disk beside the data cannot tell
//! a stale or misdirected page from the right one. Per cluster the checksums are 32 `u32`
//! and a mask of which pages have one (a page mapped by [`SwapMeta::insert`] has none),
//! 132 bytes in a vector parallel to the leaf's clusters, so a dense object costs about
//! 8.29 bytes per page with them, and a map without them pays nothing for the feature.
//!
//! # Invariants
//! - It never frees swap itself. Every block it drops — replaced by [`SwapMeta::insert`],
//!   removed by [`SwapMeta::pop`], [`SwapMeta::free_range`] or [`SwapMeta::clear`] — is handed
//!   back to the caller (by return value or through the `freed` callback), exactly once, so the
//!   caller can return it to the allocator. `SwapMeta` is not `Clone` for that reason: two
//!   copies would hand the same block back twice.
//! - A cluster is freed the moment its last page goes, a leaf with its last cluster, an inner
//!   node when it is left with one child; an empty `SwapMeta` holds no heap memory.
//! - [`SwapMeta::memory_bytes`] is the heap it holds, counted from the sizes it allocated
//!   (the allocator's own headers excluded: one or two per 64 clusters).
//! - Any `u64` page index works, `u64::MAX` included, and any `u32` block: there is no "none"
//!   value inside the map, absence is `None`.
//! - It does no I/O, takes no locks and depends on nothing: it is plain data, `Send + Sync`;
//!   the pager serialises access per object.
//!
//! Dropping a `SwapMeta` that still holds blocks forgets them (they stay allocated in the swap
//! allocator): call [`SwapMeta::clear`] first.
//!
//! # Example
//! ```
//! use swmeta::SwapMeta;
//!
//! let mut meta = SwapMeta::new();
//! assert_eq!(meta.insert(7, 100), None);
//! assert_eq!(meta.insert(8, 101), None);
//! assert_eq!(meta.insert(8, 555), Some(101)); // the caller frees block 101
//! meta.insert(8, 101);
//! // haspage: page 7 is on block 100, and page 8 right after it on block 101.
//! assert_eq!(meta.contiguous(7, 31, 31), Some((0, 1)));
//! let mut freed = Vec::new();
//! meta.clear(|pindex, blk| freed.push((pindex, blk)));
//! assert_eq!(freed, [(7, 100), (8, 101)]);
//! assert_eq!(meta.memory_bytes(), 0);
//! ```

mod iter;
mod leaf;
mod trie;

#[cfg(test)]
mod tests;

use leaf::{CLUSTER_SHIFT, Cluster, Delta, LEAF_SHIFT, MAX_LEAF_KEY};
use trie::Trie;

/// A global swap block number; `u32` covers 16 TiB of 4 KiB pages.
pub type Block = u32;

/// Consecutive page indices per metadata cluster.
pub const META_PAGES: u64 = 1 << CLUSTER_SHIFT;

/// The swap metadata of one object: page index to swap block. See the crate docs.
#[derive(Default)]
pub struct SwapMeta {
    trie: Trie,
    pages: u64,
    clusters: usize,
    /// Heap bytes of all leaves' vectors (clusters and checksums), for `memory_bytes`.
    leaf_heap: usize,
    /// Whether a checksum is kept beside each block (`with_checksums`).
    checksums: bool,
}

impl std::fmt::Debug for SwapMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwapMeta")
            .field("pages", &self.pages)
            .field("clusters", &self.clusters)
            .field("checksums", &self.checksums)
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl SwapMeta {
    /// An empty map without checksums; allocates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map that keeps a 32-bit checksum beside each block (see
    /// [`SwapMeta::insert_checked`]); allocates nothing. It costs 4 more bytes per page in
    /// a dense object, and 132 more per cluster.
    ///
    /// ```
    /// use swmeta::SwapMeta;
    ///
    /// let mut meta = SwapMeta::with_checksums();
    /// meta.insert_checked(5, 40, Some(0xdead_beef));
    /// meta.insert(6, 41); // no checksum: `reserve`, say
    /// assert_eq!(meta.checksum(5), Some(0xdead_beef));
    /// assert_eq!(meta.checksum(6), None);
    /// // A new block comes with its own checksum (or none).
    /// assert_eq!(meta.insert_checked(5, 42, Some(7)), Some(40));
    /// assert_eq!(meta.checksum(5), Some(7));
    /// meta.clear(|_, _| {});
    /// ```
    pub fn with_checksums() -> Self {
        SwapMeta {
            checksums: true,
            ..Self::default()
        }
    }

    /// Whether this map keeps checksums.
    pub fn has_checksums(&self) -> bool {
        self.checksums
    }

    /// The checksum stored with `pindex`'s block: `None` if the page is not mapped, the map
    /// keeps no checksums, or the page was mapped without one.
    pub fn checksum(&self, pindex: u64) -> Option<u32> {
        self.trie.leaf(pindex >> LEAF_SHIFT)?.crc(pindex)
    }

    /// The block of `pindex` (`swp_pager_meta_ctl(.., 0)`).
    pub fn lookup(&self, pindex: u64) -> Option<Block> {
        self.trie.leaf(pindex >> LEAF_SHIFT)?.get(pindex)
    }

    /// Maps `pindex` to `blk` (`swp_pager_meta_build`) and returns the block it replaced,
    /// which the caller must free. Allocates a cluster when `pindex` is the first page of its
    /// 32 to be mapped.
    /// In a map with checksums the page is left without one.
    pub fn insert(&mut self, pindex: u64, blk: Block) -> Option<Block> {
        self.insert_checked(pindex, blk, None)
    }

    /// [`SwapMeta::insert`] that also stores `crc` as the page's checksum (in a map with
    /// checksums; a map without ignores it). `None` leaves the page without one. The
    /// checksum belongs to the block: it goes with the page's next block only if given
    /// again.
    pub fn insert_checked(&mut self, pindex: u64, blk: Block, crc: Option<u32>) -> Option<Block> {
        let checked = self.checksums;
        let leaf = self.trie.leaf_or_insert(pindex >> LEAF_SHIFT);
        let heap = leaf.heap_bytes();
        let mut delta = Delta::default();
        let old = leaf.insert(pindex, blk, checked, crc, &mut delta);
        self.leaf_heap += leaf.heap_bytes() - heap;
        self.pages += delta.pages;
        self.clusters += delta.clusters;
        old
    }

    /// Unmaps `pindex` and returns its block without freeing it (`SWM_POP`); frees the
    /// cluster if that was its last page.
    pub fn pop(&mut self, pindex: u64) -> Option<Block> {
        let key = pindex >> LEAF_SHIFT;
        let leaf = self.trie.leaf_mut(key)?;
        let heap = leaf.heap_bytes();
        let mut delta = Delta::default();
        let blk = leaf.pop(pindex, &mut delta)?;
        let (shrunk, emptied) = (heap - leaf.heap_bytes(), leaf.present == 0);
        self.account_removal(shrunk, delta);
        if emptied {
            self.remove_leaf(key);
        }
        Some(blk)
    }

    /// Unmaps the `count` pages from `start` (`swp_pager_meta_free`), handing each block that
    /// was mapped to `freed(pindex, blk)` in ascending order. The range is clamped at
    /// `u64::MAX`: `free_range(start, u64::MAX, ..)` unmaps everything from `start` on.
    /// Costs time in the clusters present, not in `count`. `freed` must not panic (the map
    /// would be left inconsistent, though memory-safe).
    pub fn free_range(&mut self, start: u64, count: u64, mut freed: impl FnMut(u64, Block)) {
        if count == 0 || self.pages == 0 {
            return;
        }
        let last = start.saturating_add(count - 1);
        let last_key = last >> LEAF_SHIFT;
        let mut key = start >> LEAF_SHIFT;
        while let Some(found) = self.trie.leaf_at_or_after(key).map(|leaf| leaf.key) {
            if found > last_key {
                break;
            }
            let first = start.max(found << LEAF_SHIFT);
            let end = last.min((found << LEAF_SHIFT) | ((1 << LEAF_SHIFT) - 1));
            self.free_in_leaf(found, first, end, &mut freed);
            if found == last_key {
                break;
            }
            key = found + 1;
        }
    }

    /// Unmaps every page (`swp_pager_meta_free_all`), handing each block to `freed(pindex,
    /// blk)` in ascending order, and releases all memory.
    pub fn clear(&mut self, mut freed: impl FnMut(u64, Block)) {
        let root = self.trie.take();
        self.pages = 0;
        self.clusters = 0;
        self.leaf_heap = 0;
        trie::drain(root, &mut |leaf| leaf.drain(&mut freed));
    }

    /// The mapped pages and their blocks, by ascending page index.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        iter::Iter::new(&self.trie, 0, u64::MAX)
    }

    /// The mapped pages in `r` and their blocks, by ascending page index.
    pub fn range(&self, r: std::ops::Range<u64>) -> impl Iterator<Item = (u64, Block)> + '_ {
        match r.end.checked_sub(1) {
            Some(last) => iter::Iter::new(&self.trie, r.start, last),
            None => iter::Iter::new(&self.trie, 1, 0),
        }
    }

    /// `swap_pager_haspage`: `None` if `pindex` has no block, else `(before, after)`: how many
    /// pages right before `pindex` (at most `max_before`) hold the blocks `blk - 1, blk - 2, ..`
    /// and how many right after it (at most `max_after`) hold `blk + 1, blk + 2, ..` — the run
    /// one read can fetch along with the page. Runs stop at page index 0 and `u64::MAX` and at
    /// block 0 and `u32::MAX`; they never wrap.
    pub fn contiguous(&self, pindex: u64, max_before: u64, max_after: u64) -> Option<(u64, u64)> {
        let blk = self.lookup(pindex)?;
        Some((
            self.run::<false>(pindex, blk, max_before),
            self.run::<true>(pindex, blk, max_after),
        ))
    }

    /// Length (at most `max`) of the run of pages `pindex ± n` holding blocks `blk ± n`, for
    /// `n = 1, 2, ..` (`+` when `UP`). `max` is first cut to the room left before the ends of
    /// the page and block ranges, so the loop itself cannot overflow; each cluster is found
    /// through the trie once and then compared slot by slot.
    fn run<const UP: bool>(&self, pindex: u64, blk: Block, max: u64) -> u64 {
        let (room_pages, room_blocks) = if UP {
            (u64::MAX - pindex, Block::MAX - blk)
        } else {
            (pindex, blk)
        };
        let max = max.min(room_pages).min(u64::from(room_blocks));
        let mut n = 0;
        while n < max {
            let page = if UP { pindex + n + 1 } else { pindex - n - 1 };
            let Some(cluster) = self.cluster(page >> CLUSTER_SHIFT) else {
                break;
            };
            let first = (page & (META_PAGES - 1)) as usize;
            let span = if UP { 32 - first } else { first + 1 } as u64;
            for k in 0..span.min(max - n) as usize {
                let i = if UP { first + k } else { first - k };
                // `n + 1 <= max <= room_blocks`, so the block cannot wrap.
                let want = if UP {
                    blk + (n + 1) as Block
                } else {
                    blk - (n + 1) as Block
                };
                if cluster.mask & (1 << i) == 0 || cluster.blocks[i] != want {
                    return n;
                }
                n += 1;
            }
        }
        n
    }

    /// The first mapped page index `>= from`, if any (`SEEK_DATA`).
    pub fn seek_data(&self, from: u64) -> Option<u64> {
        iter::Iter::new(&self.trie, from, u64::MAX)
            .next()
            .map(|(pindex, _)| pindex)
    }

    /// The first unmapped page index `>= from` (`SEEK_HOLE`). Every page from `from` through
    /// `u64::MAX` mapped is the one case without an answer; then it returns `u64::MAX`, as
    /// `SEEK_HOLE` returns the end of a file.
    pub fn seek_hole(&self, from: u64) -> u64 {
        let mut pindex = from;
        loop {
            let key = pindex >> LEAF_SHIFT;
            let Some(leaf) = self.trie.leaf(key) else {
                return pindex;
            };
            let mut c = ((pindex >> CLUSTER_SHIFT) & 63) as u32;
            let mut lo = (pindex & (META_PAGES - 1)) as u32;
            while c < 64 {
                let base = leaf.base() | (u64::from(c) << CLUSTER_SHIFT);
                let Some(cluster) = leaf.cluster(c) else {
                    return base | u64::from(lo);
                };
                let holes = !cluster.mask & (u32::MAX << lo);
                if holes != 0 {
                    return base | u64::from(holes.trailing_zeros());
                }
                c += 1;
                lo = 0;
            }
            if key == MAX_LEAF_KEY {
                return u64::MAX;
            }
            pindex = (key + 1) << LEAF_SHIFT;
        }
    }

    /// Mapped pages; O(1).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Clusters allocated (each holds at least one page); O(1).
    pub fn clusters(&self) -> usize {
        self.clusters
    }

    /// Heap bytes held: trie nodes, leaves and the clusters' (and checksums') vectors by
    /// capacity; O(1).
    pub fn memory_bytes(&self) -> usize {
        self.trie.inners * Trie::INNER_BYTES + self.trie.leaves * Trie::LEAF_BYTES + self.leaf_heap
    }

    /// The cluster of cluster key `pindex >> CLUSTER_SHIFT`, if it exists.
    fn cluster(&self, key: u64) -> Option<&Cluster> {
        let leaf_key = key >> (LEAF_SHIFT - CLUSTER_SHIFT);
        self.trie.leaf(leaf_key)?.cluster_of(key << CLUSTER_SHIFT)
    }

    fn free_in_leaf(
        &mut self,
        key: u64,
        first: u64,
        last: u64,
        freed: &mut impl FnMut(u64, Block),
    ) {
        let Some(leaf) = self.trie.leaf_mut(key) else {
            return;
        };
        let heap = leaf.heap_bytes();
        let mut delta = Delta::default();
        leaf.free_pages(first, last, freed, &mut delta);
        let (shrunk, emptied) = (heap - leaf.heap_bytes(), leaf.present == 0);
        self.account_removal(shrunk, delta);
        if emptied {
            self.remove_leaf(key);
        }
    }

    fn account_removal(&mut self, shrunk: usize, delta: Delta) {
        self.leaf_heap -= shrunk;
        self.pages -= delta.pages;
        self.clusters -= delta.clusters;
    }

    fn remove_leaf(&mut self, key: u64) {
        if let Some(leaf) = self.trie.remove(key) {
            self.leaf_heap -= leaf.heap_bytes();
        }
    }
}
