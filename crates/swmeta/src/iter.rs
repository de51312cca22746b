//! Ascending walk over the mapped pages of a range.
//!
//! The walk finds a leaf through the trie once, then reads its clusters in order through the
//! `present` bits and each cluster's `mask`, so a step costs a few bit operations and only
//! the move to the next leaf descends the trie again.

use crate::Block;
use crate::leaf::{CLUSTER_SHIFT, LEAF_SHIFT, Leaf, MAX_LEAF_KEY};
use crate::trie::Trie;

/// The mapped pages in `first..=last`, ascending.
pub(crate) struct Iter<'a> {
    trie: &'a Trie,
    first: u64,
    last: u64,
    /// The leaf being read; `None` once the walk is over.
    leaf: Option<&'a Leaf>,
    /// Cluster slots of `leaf` not yet started.
    rest: u64,
    /// Index in `leaf.clusters` of the lowest slot in `rest`.
    next: usize,
    /// Page index of slot 0 of the cluster being read, its blocks, and its pages not yet read.
    base: u64,
    blocks: &'a [Block; 32],
    mask: u32,
}

impl<'a> Iter<'a> {
    /// Starts at `first`; empty when `first > last`.
    pub(crate) fn new(trie: &'a Trie, first: u64, last: u64) -> Self {
        let mut iter = Iter {
            trie,
            first,
            last,
            leaf: None,
            rest: 0,
            next: 0,
            base: 0,
            blocks: &[0; 32],
            mask: 0,
        };
        if first <= last {
            let key = first >> LEAF_SHIFT;
            iter.enter(trie.leaf_at_or_after(key));
            if let Some(leaf) = iter.leaf.filter(|leaf| leaf.key == key) {
                // Skip the clusters below `first`; pages below it in its own cluster are
                // skipped one by one in `next`.
                let below = (1u64 << ((first >> CLUSTER_SHIFT) & 63)) - 1;
                iter.rest = leaf.present & !below;
                iter.next = (leaf.present & below).count_ones() as usize;
            }
        }
        iter
    }

    fn enter(&mut self, leaf: Option<&'a Leaf>) {
        self.leaf = leaf.filter(|leaf| leaf.base() <= self.last);
        self.rest = self.leaf.map_or(0, |leaf| leaf.present);
        self.next = 0;
    }
}

impl Iterator for Iter<'_> {
    type Item = (u64, Block);

    fn next(&mut self) -> Option<(u64, Block)> {
        loop {
            if self.mask != 0 {
                let i = self.mask.trailing_zeros();
                self.mask &= self.mask - 1;
                let pindex = self.base | u64::from(i);
                if pindex < self.first {
                    continue;
                }
                if pindex > self.last {
                    self.leaf = None;
                    self.mask = 0;
                    return None;
                }
                return Some((pindex, self.blocks[i as usize]));
            }
            let leaf = self.leaf?;
            if self.rest != 0 {
                let c = self.rest.trailing_zeros();
                self.rest &= self.rest - 1;
                let cluster = &leaf.clusters[self.next];
                self.next += 1;
                self.base = leaf.base() | (u64::from(c) << CLUSTER_SHIFT);
                self.blocks = &cluster.blocks;
                self.mask = cluster.mask;
                continue;
            }
            if leaf.key == MAX_LEAF_KEY {
                self.leaf = None;
                return None;
            }
            self.enter(self.trie.leaf_at_or_after(leaf.key + 1));
        }
    }
}

impl std::iter::FusedIterator for Iter<'_> {}
