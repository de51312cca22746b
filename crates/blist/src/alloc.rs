//! The allocation search: meta nodes pick children by bitmap and hint, a leaf finds the first
//! run long enough, and a run that reaches the top of its leaf may continue into the next ones.
//!
//! The hints are kept exactly as FreeBSD keeps them, so that the debug dump (`p` in the REPL)
//! prints the same tree for the same script.

use crate::tree::{BITMAP, HINT, bit_range, skip, top_contiguous};
use crate::{Blist, MAX_ALLOC, RADIX};

impl Blist {
    /// Searches the subtree at `idx` (covering `span` blocks) for the lowest block at or after
    /// `cursor` that starts `min` free blocks, and allocates up to `max` from there.
    ///
    /// A child is entered only when its meta bit says it holds a free block and its hint says
    /// a run of `min` may begin in it. On success the meta bit of a child left empty is cleared.
    /// On failure, and only when the whole subtree was searched (the cursor was at its start),
    /// the hint drops to `min - 1`: no run of `min` begins here. The one exception is a last
    /// child still hinting `MAX_ALLOC`: its run may continue into the next subtree, whose state
    /// can change without this subtree hearing of it, so nothing may be concluded.
    pub(crate) fn alloc_at(
        &mut self,
        idx: usize,
        cursor: u64,
        min: u64,
        max: u64,
        span: u64,
    ) -> Option<(u64, u64)> {
        if span == RADIX {
            return self.alloc_leaf(idx, cursor, min, max);
        }
        let child_span = span / RADIX;
        let base = cursor & !(span - 1);
        let cursor_digit = (cursor - base) >> child_span.trailing_zeros();
        let child_skip = skip(child_span);
        // Children before the cursor's are of no interest.
        let mut mask = self.bitmap(idx) & (u64::MAX << cursor_digit);
        let mut last = (0, 0);
        while mask != 0 {
            let digit = u64::from(mask.trailing_zeros());
            mask &= mask - 1;
            let child = idx + 1 + digit as usize * child_skip;
            if min <= self.hint(child) {
                // Only the child holding the cursor starts the search part-way.
                let child_cursor = if digit == cursor_digit {
                    cursor
                } else {
                    base + digit * child_span
                };
                let found = if child_span == RADIX {
                    self.alloc_leaf(child, child_cursor, min, max)
                } else {
                    self.alloc_at(child, child_cursor, min, max, child_span)
                };
                if let Some(found) = found {
                    if self.bitmap(child) == 0 {
                        self.nodes[idx][BITMAP] &= !(1 << digit);
                    }
                    return Some(found);
                }
            }
            last = (digit, child);
        }
        let (digit, child) = last;
        if cursor == base && !(digit == RADIX - 1 && self.hint(child) == MAX_ALLOC) {
            self.nodes[idx][HINT] = min - 1;
        }
        None
    }

    /// The leaf case of [`Blist::alloc_at`].
    ///
    /// First the candidates: the positions `i` such that `i .. i+min` are free, where blocks
    /// past bit 63 count as free (they belong to the next leaf, examined only if needed). They
    /// are found by doubling, in about log2(min) steps: when every candidate `i` is known to
    /// start `k + 1` free blocks, keeping the `i` for which `i + s` is a candidate too
    /// (`s <= k + 1`) leaves candidates that start `k + s + 1`. Taking `k` through the leading
    /// bits of `min - 1` (`k' = 2k` or `2k + 1`, so `s = ceil(k'/2)`) lands on `min - 1`
    /// exactly, with no table and no loop over positions. The doubling may
    /// stop early once the candidates form one run up to bit 63, since they then all lie in the
    /// single free run that reaches the top. On failure the hint becomes the `k` reached: no
    /// run of `k + 1` begins here (plus the part of the leaf below the cursor, which this
    /// search ignored).
    ///
    /// Then the lowest candidate at or after the cursor wins. When its run ends inside the leaf
    /// its exact length is known; when it reaches bit 63 and `max` wants more, the following
    /// leaves supply the rest (see [`Blist::extend_run`]).
    #[inline]
    fn alloc_leaf(&mut self, idx: usize, cursor: u64, min: u64, max: u64) -> Option<(u64, u64)> {
        let bitmap = self.bitmap(idx);
        let min1 = min - 1;
        let mut shifts = u64::BITS - min1.leading_zeros();
        let mut cand = bitmap;
        while !top_contiguous(cand) && shifts > 0 {
            shifts -= 1;
            let k = min1 >> shifts;
            cand &= !(!cand >> k.div_ceil(2));
        }
        let mut hint = min1 >> shifts;
        if cand == 0 {
            self.nodes[idx][HINT] = hint;
            return None;
        }
        let offset = cursor % RADIX;
        if offset != 0 {
            let below = bit_range(0, offset);
            if cand & below != 0 {
                // Runs beginning below the cursor were not considered: they may be long.
                hint += offset;
                cand &= !below;
                if cand == 0 {
                    self.nodes[idx][HINT] = hint;
                    return None;
                }
            }
        }
        let leaf_base = cursor - offset;
        let lo = u64::from(cand.trailing_zeros());
        let len;
        if !top_contiguous(cand) {
            // The doubling ran to the end, so `cand` is exact: the run starting at `lo` ends
            // `min - 1` blocks after the last candidate of the first group.
            let first_non = u64::from((!cand & (u64::MAX << lo)).trailing_zeros());
            len = (first_non + min1 - lo).min(max);
        } else if max <= RADIX - lo {
            len = max;
            if lo + len == RADIX {
                self.nodes[idx][HINT] = hint;
            }
        } else {
            let here = RADIX - lo;
            let more =
                self.extend_run(idx, leaf_base + RADIX, min.saturating_sub(here), max - here)?;
            len = here + more;
            self.nodes[idx][HINT] = hint;
        }
        self.nodes[idx][BITMAP] &= !bit_range(lo, len.min(RADIX - lo));
        Some((leaf_base + lo, len))
    }

    /// Continues a run that fills the leaf at `idx` up to its top into the leaves after it:
    /// counts the free blocks from `next` (the following leaf's first block) up to `want`, and
    /// if at least `need` are there, allocates up to `want` of them and returns how many.
    ///
    /// The walk goes forward through the array: between two leaves lie only the meta nodes that
    /// start at the same block, and a meta node whose first child is empty ends the run at once.
    /// Past the last leaf the walk meets the sentinel (or, with a partial last leaf, an allocated
    /// bit first), whose empty bitmap ends the run inside the array. The hints of the leaves
    /// taken from are left alone, as FreeBSD does: a hint may overstate, never understate.
    fn extend_run(&mut self, idx: usize, next: u64, need: u64, want: u64) -> Option<u64> {
        let mut got = 0;
        let mut idx = idx;
        let mut blk = next;
        while got < want {
            idx += 1;
            let mut span = RADIX * RADIX;
            while blk & (span - 1) == 0 && self.bitmap(idx) & 1 == 1 {
                idx += 1;
                span = span.saturating_mul(RADIX);
            }
            let at_meta = blk & (span - 1) == 0;
            let bitmap = self.bitmap(idx);
            if !at_meta && bitmap == u64::MAX {
                got += RADIX;
                blk += RADIX;
                continue;
            }
            if !at_meta {
                got += u64::from(bitmap.trailing_ones());
            }
            break;
        }
        if got < need {
            return None;
        }
        let got = got.min(want);
        if got > RADIX {
            self.fill_at(0, next, got, 0, self.span);
        } else if got > 0 {
            self.fill_in_leaf(next, got);
        }
        Some(got)
    }
}
