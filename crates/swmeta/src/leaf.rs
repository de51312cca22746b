//! Leaves of the trie: up to 64 clusters of 32 pages, packed in one allocation.
//!
//! A leaf covers `LEAF_PAGES` (2048) consecutive page indices. Only the clusters that hold at
//! least one block exist; they sit in slot order in one `Vec`, and bit `c` of `present` says
//! whether slot `c` has a cluster, so the cluster of slot `c` is at index
//! `popcount(present & below(c))`. Packing the clusters of a leaf into one allocation, rather
//! than boxing each, is what keeps a dense object at ~4.1 bytes per page once the allocator's
//! own per-allocation header is counted too: one header per 64 clusters instead of one per
//! cluster.

use crate::Block;

/// Page slots in one cluster (`META_PAGES`), as a shift.
pub(crate) const CLUSTER_SHIFT: u32 = 5;
/// Cluster slots in one leaf, as a shift.
pub(crate) const LEAF_CLUSTER_SHIFT: u32 = 6;
/// Page slots in one leaf, as a shift: a leaf's key is `pindex >> LEAF_SHIFT`.
pub(crate) const LEAF_SHIFT: u32 = CLUSTER_SHIFT + LEAF_CLUSTER_SHIFT;
/// The largest leaf key (`u64::MAX >> LEAF_SHIFT`).
pub(crate) const MAX_LEAF_KEY: u64 = u64::MAX >> LEAF_SHIFT;
/// Clusters kept at most in one leaf.
const LEAF_CLUSTERS: usize = 1 << LEAF_CLUSTER_SHIFT;

/// The blocks of 32 consecutive page indices; bit `i` of `mask` says whether `blocks[i]` holds
/// one (there is no sentinel: every `u32` is a valid block).
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) mask: u32,
    pub(crate) blocks: [Block; 32],
}

/// The checksums of one cluster's pages, kept only in maps made with checksums, in a
/// vector parallel to the clusters: bit `i` of `mask` says whether page slot `i` has one
/// (a page mapped without a checksum, as `reserve` maps them, has none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crcs {
    pub(crate) mask: u32,
    pub(crate) crc: [u32; 32],
}

const NO_CRCS: Crcs = Crcs {
    mask: 0,
    crc: [0; 32],
};

/// What the leaf operations changed, for the object's counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Delta {
    pub(crate) pages: u64,
    pub(crate) clusters: usize,
}

#[derive(Debug)]
pub(crate) struct Leaf {
    /// `pindex >> LEAF_SHIFT` of every page in the leaf.
    pub(crate) key: u64,
    /// Bit `c`: cluster slot `c` exists (and so holds at least one block).
    pub(crate) present: u64,
    /// The existing clusters, in slot order; `len() == present.count_ones()`.
    pub(crate) clusters: Vec<Cluster>,
    /// With checksums: one entry per cluster, same order and same capacity; empty (and
    /// allocating nothing) without.
    pub(crate) crcs: Vec<Crcs>,
}

/// Cluster slot of a page inside its leaf.
fn cluster_slot(pindex: u64) -> u32 {
    ((pindex >> CLUSTER_SHIFT) & (LEAF_CLUSTERS as u64 - 1)) as u32
}

/// Page slot of a page inside its cluster.
fn page_slot(pindex: u64) -> u32 {
    (pindex & 31) as u32
}

impl Leaf {
    pub(crate) fn new(key: u64) -> Self {
        Leaf {
            key,
            present: 0,
            clusters: Vec::new(),
            crcs: Vec::new(),
        }
    }

    /// Heap bytes of the leaf's vectors (by capacity), for `memory_bytes`.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.clusters.capacity() * std::mem::size_of::<Cluster>()
            + self.crcs.capacity() * std::mem::size_of::<Crcs>()
    }

    /// First page index of the leaf.
    pub(crate) fn base(&self) -> u64 {
        self.key << LEAF_SHIFT
    }

    /// Index in `clusters` of slot `c` (whether or not slot `c` exists).
    fn position(&self, c: u32) -> usize {
        (self.present & ((1u64 << c) - 1)).count_ones() as usize
    }

    /// The cluster of slot `c`, if it exists.
    pub(crate) fn cluster(&self, c: u32) -> Option<&Cluster> {
        if self.present & (1 << c) == 0 {
            return None;
        }
        self.clusters.get(self.position(c))
    }

    /// The cluster holding `pindex`, if it exists (`pindex` must lie in this leaf).
    pub(crate) fn cluster_of(&self, pindex: u64) -> Option<&Cluster> {
        self.cluster(cluster_slot(pindex))
    }

    /// The block of `pindex`, which must lie in this leaf.
    pub(crate) fn get(&self, pindex: u64) -> Option<Block> {
        let cluster = self.cluster_of(pindex)?;
        let i = page_slot(pindex);
        (cluster.mask & (1 << i) != 0).then(|| cluster.blocks[i as usize])
    }

    /// The checksum of `pindex` (in this leaf), if the map keeps checksums and the page has
    /// one.
    pub(crate) fn crc(&self, pindex: u64) -> Option<u32> {
        let c = cluster_slot(pindex);
        if self.present & (1 << c) == 0 {
            return None;
        }
        let crcs = self.crcs.get(self.position(c))?;
        let i = page_slot(pindex);
        (crcs.mask & (1 << i) != 0).then(|| crcs.crc[i as usize])
    }

    /// Sets the block of `pindex` (in this leaf) and returns the one it replaced. A new cluster
    /// is inserted in slot order; the vector grows by doubling up to the 64 clusters a leaf can
    /// hold, so a full leaf wastes nothing and a partial one at most half its size. With
    /// `checked` (the map keeps checksums) the page's checksum becomes `crc`.
    pub(crate) fn insert(
        &mut self,
        pindex: u64,
        blk: Block,
        checked: bool,
        crc: Option<u32>,
        delta: &mut Delta,
    ) -> Option<Block> {
        let c = cluster_slot(pindex);
        let i = page_slot(pindex) as usize;
        let pos = self.position(c);
        if checked {
            self.set_crc(c, pos, i, crc);
        }
        if self.present & (1 << c) != 0 {
            let cluster = &mut self.clusters[pos];
            if cluster.mask & (1 << i) != 0 {
                return Some(std::mem::replace(&mut cluster.blocks[i], blk));
            }
            cluster.mask |= 1 << i;
            cluster.blocks[i] = blk;
            delta.pages += 1;
            return None;
        }
        let len = self.clusters.len();
        if len == self.clusters.capacity() {
            let want = (len * 2).clamp(1, LEAF_CLUSTERS);
            self.clusters.reserve_exact(want - len);
        }
        if !checked {
            debug_assert!(self.crcs.is_empty(), "checksums in a map without them");
        }
        let mut blocks = [0; 32];
        blocks[i] = blk;
        self.clusters.insert(
            pos,
            Cluster {
                mask: 1 << i,
                blocks,
            },
        );
        self.present |= 1 << c;
        delta.pages += 1;
        delta.clusters += 1;
        None
    }

    /// Sets the checksum of page slot `i` of cluster slot `c` (at `pos`); creates the
    /// cluster's entry, in step with the cluster `insert` is about to create.
    fn set_crc(&mut self, c: u32, pos: usize, i: usize, crc: Option<u32>) {
        if self.present & (1 << c) == 0 {
            if self.crcs.len() == self.crcs.capacity() {
                let want = (self.crcs.len() * 2).clamp(1, LEAF_CLUSTERS);
                self.crcs.reserve_exact(want - self.crcs.len());
            }
            self.crcs.insert(pos, NO_CRCS);
        }
        let entry = &mut self.crcs[pos];
        match crc {
            Some(v) => {
                entry.mask |= 1 << i;
                entry.crc[i] = v;
            }
            None => entry.mask &= !(1 << i),
        }
    }

    /// Removes the block of `pindex` (in this leaf) and returns it; drops the cluster if that
    /// was its last block.
    pub(crate) fn pop(&mut self, pindex: u64, delta: &mut Delta) -> Option<Block> {
        let c = cluster_slot(pindex);
        if self.present & (1 << c) == 0 {
            return None;
        }
        let i = page_slot(pindex);
        let pos = self.position(c);
        let cluster = &mut self.clusters[pos];
        if cluster.mask & (1 << i) == 0 {
            return None;
        }
        cluster.mask &= !(1 << i);
        let blk = cluster.blocks[i as usize];
        delta.pages += 1;
        if let Some(crcs) = self.crcs.get_mut(pos) {
            crcs.mask &= !(1 << i);
        }
        if cluster.mask == 0 {
            self.clusters.remove(pos);
            if !self.crcs.is_empty() {
                self.crcs.remove(pos);
            }
            self.present &= !(1 << c);
            delta.clusters += 1;
            self.shrink();
        }
        Some(blk)
    }

    /// Removes every block of the pages `first..=last` (both in this leaf), handing each to
    /// `freed` in ascending order, and drops the clusters that empty.
    pub(crate) fn free_pages(
        &mut self,
        first: u64,
        last: u64,
        freed: &mut impl FnMut(u64, Block),
        delta: &mut Delta,
    ) {
        let (c_first, c_last) = (cluster_slot(first), cluster_slot(last));
        let base = self.base();
        let mut rest = self.present;
        let mut present = 0;
        // Bit `k`: the cluster at position `k` was emptied (so are its checksums).
        let mut dropped = 0u64;
        let mut k = 0;
        let crcs = &mut self.crcs;
        self.clusters.retain_mut(|cluster| {
            let c = rest.trailing_zeros();
            rest &= rest - 1;
            let at = k;
            k += 1;
            if (c_first..=c_last).contains(&c) {
                let lo = if c == c_first { page_slot(first) } else { 0 };
                let hi = if c == c_last { page_slot(last) } else { 31 };
                let mut hit = cluster.mask & (u32::MAX << lo) & (u32::MAX >> (31 - hi));
                cluster.mask &= !hit;
                if let Some(entry) = crcs.get_mut(at) {
                    entry.mask &= !hit;
                }
                delta.pages += u64::from(hit.count_ones());
                while hit != 0 {
                    let i = hit.trailing_zeros();
                    hit &= hit - 1;
                    freed(
                        base | u64::from(c << CLUSTER_SHIFT | i),
                        cluster.blocks[i as usize],
                    );
                }
            }
            if cluster.mask == 0 {
                delta.clusters += 1;
                dropped |= 1 << at;
                return false;
            }
            present |= 1 << c;
            true
        });
        if !self.crcs.is_empty() {
            let mut k = 0;
            self.crcs.retain(|_| {
                k += 1;
                dropped & (1 << (k - 1)) == 0
            });
        }
        self.present = present;
        self.shrink();
    }

    /// Hands every block to `freed` in ascending order; the leaf is dropped afterwards.
    pub(crate) fn drain(&self, freed: &mut impl FnMut(u64, Block)) {
        let base = self.base();
        let mut rest = self.present;
        for cluster in &self.clusters {
            let c = rest.trailing_zeros();
            rest &= rest - 1;
            let mut mask = cluster.mask;
            while mask != 0 {
                let i = mask.trailing_zeros();
                mask &= mask - 1;
                freed(
                    base | u64::from(c << CLUSTER_SHIFT | i),
                    cluster.blocks[i as usize],
                );
            }
        }
    }

    /// Gives memory back once three quarters of the vector is unused (so that popping and
    /// re-inserting around a boundary does not reallocate each time), and all of it when empty.
    fn shrink(&mut self) {
        let len = self.clusters.len();
        if len * 4 <= self.clusters.capacity() {
            self.clusters.shrink_to(len * 2);
        }
        if len * 4 <= self.crcs.capacity() {
            self.crcs.shrink_to(len * 2);
        }
    }
}
