//! The segment table: which address each page index of a space stands for.
//!
//! A space pages ranges of memory anywhere in the process; its page table is one linear
//! index space. Each adopted range is a *segment* `{addr, pages, index}`: its page `k` is
//! index `index + k`, in the page table and in the store. Indices of segments that go away
//! (unmapped) are given back to a free list and reused by later segments, so a program
//! that maps and unmaps again and again does not grow the table without bound.
//!
//! Contiguous indices of two segments are not contiguous addresses: every run of pages
//! that becomes one kernel call is cut at segment boundaries ([`Segments::split`],
//! [`Segments::bounds`]). The table is behind a read-write lock in `Mem`, taken after
//! the page table lock and never held while another lock is taken.

use std::collections::BTreeMap;
use std::ops::Range;

const PAGE: u64 = device::PAGE_SIZE as u64;

/// One range of memory under the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Its first byte (page aligned).
    pub addr: u64,
    pub pages: u64,
    /// The index of its first page.
    pub index: u64,
    /// Memory the space mapped itself (a region's): the program has no business unmapping
    /// or moving it, so its bytes are read with plain loads.
    pub owned: bool,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.addr + self.pages * PAGE
    }

    pub fn indices(&self) -> Range<u64> {
        self.index..self.index + self.pages
    }
}

#[derive(Debug, Default)]
pub(crate) struct Segments {
    /// By first address.
    by_addr: BTreeMap<u64, Segment>,
    /// First index -> first address.
    by_index: BTreeMap<u64, u64>,
    /// Free index extents: first -> length, never adjacent.
    free: BTreeMap<u64, u64>,
    /// Indices handed out so far are below this.
    pub end: u64,
}

impl Segments {
    fn at_index(&self, p: u64) -> Option<&Segment> {
        let (_, addr) = self.by_index.range(..=p).next_back()?;
        let seg = &self.by_addr[addr];
        (p < seg.index + seg.pages).then_some(seg)
    }

    fn at_addr(&self, addr: u64) -> Option<&Segment> {
        let (_, seg) = self.by_addr.range(..=addr).next_back()?;
        (addr < seg.end()).then_some(seg)
    }

    /// The index of the page holding `addr`, if a segment covers it.
    pub fn page_of(&self, addr: u64) -> Option<u64> {
        let seg = self.at_addr(addr)?;
        Some(seg.index + (addr - seg.addr) / PAGE)
    }

    /// The address of page `p`, if it is in a segment.
    pub fn addr(&self, p: u64) -> Option<u64> {
        let seg = self.at_index(p)?;
        Some(seg.addr + (p - seg.index) * PAGE)
    }

    /// The indices of the segment holding page `p` (empty if none does).
    pub fn bounds(&self, p: u64) -> Range<u64> {
        self.at_index(p).map_or(p..p, Segment::indices)
    }

    /// Whether page `p` was mapped by the space itself.
    pub fn owned(&self, p: u64) -> bool {
        self.at_index(p).is_some_and(|s| s.owned)
    }

    /// The run `first..first + len` cut at segment boundaries into pieces of contiguous
    /// addresses `(first, len, addr)`; indices in no segment are left out.
    pub fn split(&self, first: u64, len: u64) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        let end = first + len;
        let mut p = first;
        while p < end {
            match self.at_index(p) {
                Some(seg) => {
                    let n = (seg.index + seg.pages).min(end) - p;
                    out.push((p, n, seg.addr + (p - seg.index) * PAGE));
                    p += n;
                }
                None => p += 1,
            }
        }
        out
    }

    /// The index runs of `start..end` that segments cover, as `(first, len)`.
    pub fn indices_in(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let from = self.at_addr(start).map_or(start, |s| s.addr);
        for seg in self.by_addr.range(from..end).map(|(_, s)| s) {
            let a = seg.addr.max(start);
            let b = seg.end().min(end);
            if a < b {
                out.push((seg.index + (a - seg.addr) / PAGE, (b - a) / PAGE));
            }
        }
        out
    }

    /// The segments, by address.
    pub fn iter(&self) -> impl Iterator<Item = &Segment> {
        self.by_addr.values()
    }

    /// Pages in all segments.
    pub fn pages(&self) -> u64 {
        self.by_addr.values().map(|s| s.pages).sum()
    }

    /// The parts of `addr..addr + len` no segment covers, as `(addr, len)`.
    pub fn uncovered(&self, addr: u64, len: u64) -> Vec<(u64, u64)> {
        let end = addr + len;
        let mut out = Vec::new();
        let mut at = addr;
        if let Some(seg) = self.at_addr(addr) {
            at = seg.end().min(end);
        }
        for seg in self.by_addr.range(addr..end).map(|(_, s)| s) {
            if seg.addr > at {
                out.push((at, seg.addr - at));
            }
            at = at.max(seg.end()).min(end);
        }
        if at < end {
            out.push((at, end - at));
        }
        out
    }

    /// `pages` free indices in a row: the first free extent that holds them, else new ones
    /// past the end. Returns the first.
    pub fn alloc(&mut self, pages: u64) -> u64 {
        let found = self
            .free
            .iter()
            .find(|&(_, &len)| len >= pages)
            .map(|(&first, &len)| (first, len));
        if let Some((first, len)) = found {
            self.free.remove(&first);
            if len > pages {
                self.free.insert(first + pages, len - pages);
            }
            return first;
        }
        // A free extent at the very end grows instead of leaving a gap.
        if let Some((&first, &len)) = self.free.iter().next_back()
            && first + len == self.end
        {
            self.free.remove(&first);
            self.end = first + pages;
            return first;
        }
        let first = self.end;
        self.end += pages;
        first
    }

    /// Gives indices `first..first + pages` back for reuse.
    pub fn release(&mut self, first: u64, pages: u64) {
        if pages == 0 {
            return;
        }
        let mut start = first;
        let mut len = pages;
        if let Some((&f, &l)) = self.free.range(..first).next_back()
            && f + l == first
        {
            self.free.remove(&f);
            start = f;
            len += l;
        }
        if let Some(&l) = self.free.get(&(first + pages)) {
            self.free.remove(&(first + pages));
            len += l;
        }
        self.free.insert(start, len);
    }

    pub fn insert(&mut self, seg: Segment) {
        debug_assert!(seg.pages > 0);
        self.by_index.insert(seg.index, seg.addr);
        self.by_addr.insert(seg.addr, seg);
    }

    /// Takes `start..end` out of the segments (splitting those it cuts through) and
    /// returns the pieces taken, with their addresses and indices. Their indices are not
    /// released: the caller does when their pages are settled.
    pub fn cut(&mut self, start: u64, end: u64) -> Vec<Segment> {
        let hit: Vec<Segment> = self
            .by_addr
            .range(..end)
            .map(|(_, s)| *s)
            .filter(|s| s.end() > start)
            .collect();
        let mut taken = Vec::new();
        for seg in hit {
            self.by_addr.remove(&seg.addr);
            self.by_index.remove(&seg.index);
            let a = seg.addr.max(start);
            let b = seg.end().min(end);
            let piece = |from: u64, to: u64| Segment {
                addr: from,
                pages: (to - from) / PAGE,
                index: seg.index + (from - seg.addr) / PAGE,
                owned: seg.owned,
            };
            if seg.addr < a {
                self.insert(piece(seg.addr, a));
            }
            if b < seg.end() {
                self.insert(piece(b, seg.end()));
            }
            taken.push(piece(a, b));
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(addr: u64, pages: u64, index: u64) -> Segment {
        Segment {
            addr: addr * PAGE,
            pages,
            index,
            owned: false,
        }
    }

    #[test]
    fn addresses_and_indices_map_both_ways_and_runs_stop_at_segment_ends() {
        let mut s = Segments::default();
        let a = s.alloc(4);
        s.insert(seg(100, 4, a));
        let b = s.alloc(3);
        s.insert(seg(10, 3, b));
        assert_eq!((a, b), (0, 4));
        assert_eq!(s.page_of(101 * PAGE + 5), Some(1));
        assert_eq!(s.page_of(11 * PAGE), Some(5));
        assert_eq!(s.page_of(13 * PAGE), None);
        assert_eq!(s.addr(6), Some(12 * PAGE));
        assert_eq!(s.addr(7), None);
        assert_eq!(s.bounds(2), 0..4);
        // Indices 2..6 are contiguous but cross from one segment into the other.
        assert_eq!(s.split(2, 4), vec![(2, 2, 102 * PAGE), (4, 2, 10 * PAGE)]);
        assert_eq!(
            s.uncovered(8 * PAGE, 100 * PAGE),
            vec![
                (8 * PAGE, 2 * PAGE),
                (13 * PAGE, 87 * PAGE),
                (104 * PAGE, 4 * PAGE)
            ]
        );
    }

    #[test]
    fn a_cut_splits_a_segment_and_its_indices_are_reused_after_release() {
        let mut s = Segments::default();
        let a = s.alloc(10);
        s.insert(seg(0, 10, a));
        let taken = s.cut(3 * PAGE, 5 * PAGE);
        assert_eq!(taken, vec![seg(3, 2, 3)]);
        assert_eq!(s.addr(2), Some(2 * PAGE));
        assert_eq!(s.addr(3), None);
        assert_eq!(s.addr(5), Some(5 * PAGE));
        assert_eq!(s.pages(), 8);
        s.release(3, 2);
        // Two pages fit the hole; three do not and come from the end.
        assert_eq!(s.alloc(3), 10);
        assert_eq!(s.alloc(2), 3);
        s.release(10, 3);
        assert_eq!(s.alloc(5), 10, "a free tail grows in place");
        assert_eq!(s.end, 15);
    }
}
