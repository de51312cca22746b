//! Work on a given range of blocks: free, fill, and the two searches that find where free space
//! begins and ends (used by `free`'s double-free check, `free_ranges` and `stats`).

use crate::tree::{BITMAP, HINT, bit_range, skip};
use crate::{Blist, MAX_ALLOC, RADIX};

impl Blist {
    /// Frees `start .. start+count`, which lies within the node at `idx` (covering
    /// `base .. base+span`) and holds no free block (the caller checked).
    ///
    /// Every node on the way gets the hint `MAX_ALLOC`: the freed blocks may join neighbours
    /// into a run of any length, and a hint may overstate but never understate. The next failed
    /// search through the node brings the hint back down.
    pub(crate) fn free_at(&mut self, idx: usize, start: u64, count: u64, base: u64, span: u64) {
        self.nodes[idx][HINT] = MAX_ALLOC;
        if span == RADIX {
            self.nodes[idx][BITMAP] |= bit_range(start - base, count);
            return;
        }
        let child_span = span / RADIX;
        let child_skip = skip(child_span);
        let first = (start - base) >> child_span.trailing_zeros();
        let last = (start + count - 1 - base) >> child_span.trailing_zeros();
        self.nodes[idx][BITMAP] |= bit_range(first, last - first + 1);
        for digit in first..=last {
            let child_base = base + digit * child_span;
            let from = start.max(child_base);
            let to = (start + count).min(child_base + child_span);
            let child = idx + 1 + digit as usize * child_skip;
            self.free_at(child, from, to - from, child_base, child_span);
        }
    }

    /// Allocates `start .. start+count` (within the node at `idx`, covering `base .. base+span`)
    /// whatever its state, and returns how many of those blocks were free.
    ///
    /// Children without a free block are passed over (their meta bit is clear, nothing to do);
    /// a child left empty has its meta bit cleared. Hints stay: filling only shortens runs.
    pub(crate) fn fill_at(
        &mut self,
        idx: usize,
        start: u64,
        count: u64,
        base: u64,
        span: u64,
    ) -> u64 {
        if span == RADIX {
            let mask = bit_range(start - base, count);
            let taken = self.bitmap(idx) & mask;
            self.nodes[idx][BITMAP] &= !mask;
            return u64::from(taken.count_ones());
        }
        let child_span = span / RADIX;
        let child_skip = skip(child_span);
        let first = (start - base) >> child_span.trailing_zeros();
        let last = (start + count - 1 - base) >> child_span.trailing_zeros();
        let mut mask = self.bitmap(idx) & bit_range(first, last - first + 1);
        let mut filled = 0;
        while mask != 0 {
            let digit = u64::from(mask.trailing_zeros());
            mask &= mask - 1;
            let child_base = base + digit * child_span;
            let from = start.max(child_base);
            let to = (start + count).min(child_base + child_span);
            let child = idx + 1 + digit as usize * child_skip;
            filled += self.fill_at(child, from, to - from, child_base, child_span);
            if self.bitmap(child) == 0 {
                self.nodes[idx][BITMAP] &= !(1 << digit);
            }
        }
        filled
    }

    /// The lowest free block at or after `pos` (`pos < capacity`), found by descending only
    /// into children whose meta bit promises a free block.
    pub(crate) fn next_free(&self, pos: u64) -> Option<u64> {
        self.next_free_at(0, pos, 0, self.span)
    }

    fn next_free_at(&self, idx: usize, pos: u64, base: u64, span: u64) -> Option<u64> {
        if span == RADIX {
            let bits = self.bitmap(idx) & (u64::MAX << (pos - base));
            return (bits != 0).then(|| base + u64::from(bits.trailing_zeros()));
        }
        let child_span = span / RADIX;
        let pos_digit = (pos - base) >> child_span.trailing_zeros();
        let mut mask = self.bitmap(idx) & (u64::MAX << pos_digit);
        while mask != 0 {
            let digit = u64::from(mask.trailing_zeros());
            mask &= mask - 1;
            let child_base = base + digit * child_span;
            let child = idx + 1 + digit as usize * skip(child_span);
            // Only the child holding `pos` can come back empty-handed.
            if let Some(found) =
                self.next_free_at(child, pos.max(child_base), child_base, child_span)
            {
                return Some(found);
            }
        }
        None
    }

    /// The lowest allocated block at or after `pos` (`pos < capacity`), or the capacity.
    ///
    /// Meta bitmaps only say "some block is free", not "all are", so this walks leaf by leaf:
    /// O(length of the free run / 64).
    pub(crate) fn next_allocated(&self, pos: u64) -> u64 {
        let mut idx = self.leaf_index(pos);
        let mut leaf_base = pos - pos % RADIX;
        let mut used = !self.bitmap(idx) & (u64::MAX << (pos % RADIX));
        loop {
            if used != 0 {
                return (leaf_base + u64::from(used.trailing_zeros())).min(self.blocks);
            }
            leaf_base += RADIX;
            if leaf_base >= self.blocks {
                return self.blocks;
            }
            idx = self.next_leaf_index(idx, leaf_base);
            used = !self.bitmap(idx);
        }
    }
}
