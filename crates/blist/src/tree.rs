//! The shape of the tree: how many nodes, where a node's children sit in the pre-order array,
//! and the bit masks every routine shares.
//!
//! A node of *span* `s` covers `s` blocks (a leaf: 64; its parent: 4096; and so on). A full
//! subtree of span `s` holds `1 + 64 + ... + s/64 = (s - 1) / 63` nodes, which integer division
//! gives as `s / 63` since `s` is a power of 64. Child `d` of a meta node at index `i` therefore
//! sits at `i + 1 + d * (child_span / 63)`.

use crate::{Blist, RADIX};

/// Index of the bitmap in a node.
pub(crate) const BITMAP: usize = 0;
/// Index of the hint in a node.
pub(crate) const HINT: usize = 1;

/// The node count of FreeBSD's layout for `blocks` (sentinel included) and the root span.
///
/// Only nodes whose range starts below `blocks` are stored. In pre-order every such node comes
/// before every node that starts at or after `blocks`, so the stored nodes are a prefix of the
/// full tree: per level, `ceil(blocks / span)` of them. The sentinel is one more node when the
/// last leaf is full (see the crate documentation).
pub(crate) fn shape(blocks: u64) -> (usize, u64) {
    let mut nodes: u64 = 1;
    let mut radix: u64 = 1;
    let leaves_but_one = (blocks - 1) / RADIX;
    while leaves_but_one / radix > 0 {
        nodes += 1 + leaves_but_one / radix;
        radix *= RADIX;
    }
    if blocks.is_multiple_of(RADIX) {
        nodes += 1;
    }
    let nodes = usize::try_from(nodes).unwrap_or(usize::MAX);
    (nodes, radix * RADIX)
}

/// Nodes in a full subtree of `span` blocks: the distance between siblings of that span.
#[inline]
pub(crate) fn skip(span: u64) -> usize {
    (span / (RADIX - 1)) as usize
}

/// `count` set bits from bit `lo` (`1 <= count`, `lo + count <= 64`).
#[inline]
pub(crate) fn bit_range(lo: u64, count: u64) -> u64 {
    (u64::MAX >> (RADIX - count)) << lo
}

/// Whether the set bits of `bits` (if any) form one run that reaches bit 63: then the clear
/// bits are all at the bottom, and adding 1 to them carries through every one of them.
#[inline]
pub(crate) fn top_contiguous(bits: u64) -> bool {
    let clear = !bits;
    clear & clear.wrapping_add(1) == 0
}

impl Blist {
    #[inline]
    pub(crate) fn bitmap(&self, idx: usize) -> u64 {
        self.nodes[idx][BITMAP]
    }

    #[inline]
    pub(crate) fn hint(&self, idx: usize) -> u64 {
        self.nodes[idx][HINT]
    }

    /// The index of the leaf that holds `block` (`block < capacity`): one step per level.
    pub(crate) fn leaf_index(&self, block: u64) -> usize {
        let mut idx = 0;
        let mut span = self.span;
        while span > RADIX {
            let child = span / RADIX;
            idx += 1 + ((block >> child.trailing_zeros()) % RADIX) as usize * skip(child);
            span = child;
        }
        idx
    }

    /// The bitmap of the leaf that holds `block` (`block < capacity`).
    pub(crate) fn leaf_bitmap(&self, block: u64) -> u64 {
        self.bitmap(self.leaf_index(block))
    }

    /// Given the leaf at `idx` whose successor starts at block `next` (`next < capacity`), the
    /// index of that successor. In pre-order, between two neighbouring leaves lie exactly the
    /// meta nodes (below the root) whose range starts at `next`: one per level at which `next`
    /// is aligned.
    #[inline]
    pub(crate) fn next_leaf_index(&self, idx: usize, next: u64) -> usize {
        let mut idx = idx + 1;
        let mut span = RADIX * RADIX;
        while span < self.span && next & (span - 1) == 0 {
            idx += 1;
            span *= RADIX;
        }
        idx
    }
}
