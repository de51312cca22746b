//! blist: the radix-tree bitmap allocator of swap blocks, after FreeBSD's `subr_blist.c`.
//!
//! # The job
//!
//! A [`Blist`] hands out runs of contiguous blocks (swap slots) from a space of `capacity()`
//! blocks, takes them back, and reports how fragmented the free space is. It is the allocator
//! the pager calls for every pageout, so alloc and free are short, never block, and never touch
//! the memory allocator.
//!
//! # The structure
//!
//! - A *leaf* is a 64-bit bitmap of 64 blocks; a set bit is a free block.
//! - A *meta node* covers 64 children. Its bitmap has bit `i` set exactly when child `i` holds
//!   at least one free block, so a search descends only into children that can help.
//! - The nodes live in one array in pre-order: a meta node is followed by its first child's
//!   whole subtree, then its second child's, and so on. The distance between siblings (the
//!   "skip") is the node count of a full subtree, computed from the span alone.
//! - Every node keeps a *hint*: an upper bound on the longest run that can begin in its subtree.
//!   A search skips a child whose hint is below the request; a failed search lowers the hint;
//!   a free raises it to [`MAX_ALLOC`] on the way down.
//! - Only nodes that cover a block below `capacity()` are stored, plus one *sentinel* node (an
//!   always-empty bitmap) when `capacity()` is a multiple of 64: an allocation that runs off the
//!   end of a leaf walks forward through the array and must find an allocated bit before it
//!   leaves the array. With a partial last leaf, that leaf's unused high bits play this part.
//!
//! Memory is 16 bytes per node, that is 2 bits per block plus 1/63 for the meta levels.
//!
//! # Invariants
//!
//! - Blocks at or beyond `capacity()` are never free (their bits stay 0).
//! - A meta bit is set if and only if the child holds a free block.
//! - A hint never understates the longest run that can begin in its subtree, so a search never
//!   misses a fit that exists.
//! - `avail()` equals the number of set leaf bits.
//!
//! # What it must never do
//!
//! Allocate memory after [`Blist::new`] (only `new` and `resize` allocate), do I/O, block,
//! or use `unsafe`. A wrong `free` or an out-of-range `fill` is refused with a [`BlistError`]
//! and leaves the state untouched, where FreeBSD would panic.
//!
//! # Example
//!
//! ```
//! use blist::Blist;
//!
//! let mut bl = Blist::new(1000); // every block starts allocated
//! bl.free(0, 1000).unwrap(); // the owner frees the usable range
//! assert_eq!(bl.alloc(8), Some(0));
//! assert_eq!(bl.alloc_range(4, 16), Some((8, 16)));
//! bl.free(0, 8).unwrap();
//! assert_eq!(bl.avail(), 1000 - 16);
//! assert_eq!(bl.free_ranges().collect::<Vec<_>>(), vec![(0, 8), (24, 976)]);
//! ```

mod alloc;
#[cfg(test)]
mod check;
mod debug;
mod range;
mod stats;
mod tree;

use std::fmt;

pub use debug::TreeDump;
pub use stats::{BlistStats, FIB};

/// Blocks covered by a leaf, and children of a meta node.
pub const RADIX: u64 = 64;

/// The largest `min` one allocation may ask for (a run longer than this may still be returned
/// when `max` allows it).
pub const MAX_ALLOC: u64 = 64;

/// The largest capacity [`Blist::new`] accepts: beyond it the root span would overflow `u64`.
pub const MAX_BLOCKS: u64 = 1 << 60;

/// A refused `free` or `fill`. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlistError {
    /// The range `start .. start+count` does not lie within `0 .. capacity`.
    OutOfRange {
        start: u64,
        count: u64,
        capacity: u64,
    },
    /// `free` was asked to free `block`, which is already free.
    AlreadyFree { start: u64, count: u64, block: u64 },
}

impl fmt::Display for BlistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlistError::OutOfRange {
                start,
                count,
                capacity,
            } => write!(
                f,
                "blist range {start:#x}+{count} lies outside the {capacity} blocks of the list"
            ),
            BlistError::AlreadyFree {
                start,
                count,
                block,
            } => write!(
                f,
                "blist free of {start:#x}+{count}: block {block:#x} is already free"
            ),
        }
    }
}

impl std::error::Error for BlistError {}

/// A radix-tree bitmap allocator of `capacity()` blocks. See the crate documentation.
#[derive(Clone)]
pub struct Blist {
    /// The tree in pre-order, `[bitmap, hint]` per node (a plain array, so that a large list
    /// is created from zeroed pages instead of being written node by node).
    nodes: Vec<[u64; 2]>,
    /// Blocks managed: `0 .. blocks`.
    blocks: u64,
    /// Blocks covered by the root: a power of 64, at least `blocks`.
    span: u64,
    /// Free blocks.
    avail: u64,
    /// Where the next allocation starts looking (next fit).
    cursor: u64,
}

impl fmt::Debug for Blist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blist")
            .field("capacity", &self.blocks)
            .field("avail", &self.avail)
            .field("cursor", &self.cursor)
            .field("span", &self.span)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl Blist {
    /// A list of `blocks` blocks, every one of them allocated (as FreeBSD's `blist_create`):
    /// the owner frees the usable range. The memory is wired here, once.
    ///
    /// Panics when `blocks` is 0 or above [`MAX_BLOCKS`]: a caller bug.
    pub fn new(blocks: u64) -> Blist {
        assert!(blocks >= 1, "Blist::new: a blist needs at least one block");
        assert!(
            blocks <= MAX_BLOCKS,
            "Blist::new: {blocks} blocks is more than MAX_BLOCKS"
        );
        let (nodes, span) = tree::shape(blocks);
        Blist {
            nodes: vec![[0; 2]; nodes],
            blocks,
            span,
            avail: 0,
            cursor: 0,
        }
    }

    /// The number of blocks managed.
    pub fn capacity(&self) -> u64 {
        self.blocks
    }

    /// The number of free blocks, in O(1).
    pub fn avail(&self) -> u64 {
        self.avail
    }

    /// Allocates exactly `count` contiguous blocks and returns the first, or `None` when no such
    /// run exists. Same as `alloc_range(count, count)`, same panics.
    pub fn alloc(&mut self, count: u64) -> Option<u64> {
        self.alloc_range(count, count).map(|(first, _)| first)
    }

    /// Allocates a run of at least `min` and at most `max` contiguous blocks, next fit.
    ///
    /// Returns `(first, len)` where `first` is the lowest block at or after the cursor such that
    /// `first .. first+min` are free, and `len` is `max` or the free run starting at `first`,
    /// whichever is shorter. When there is none and the cursor is not 0, the same search from
    /// block 0. The cursor then moves to `first + len` (0 at the end of the list). `None` when
    /// no run of `min` free blocks exists anywhere.
    ///
    /// Panics unless `1 <= min <= MAX_ALLOC` and `min <= max`: a caller bug.
    pub fn alloc_range(&mut self, min: u64, max: u64) -> Option<(u64, u64)> {
        assert!(
            (1..=MAX_ALLOC).contains(&min),
            "Blist::alloc_range: min {min} is not within 1..={MAX_ALLOC}"
        );
        assert!(
            min <= max,
            "Blist::alloc_range: min {min} is above max {max}"
        );
        // At most two passes: from the cursor, then (if that was not 0) from the start.
        let mut cursor = self.cursor;
        loop {
            if let Some((first, len)) = self.alloc_at(0, cursor, min, max, self.span) {
                self.avail -= len;
                self.cursor = if first + len == self.blocks {
                    0
                } else {
                    first + len
                };
                return Some((first, len));
            }
            if cursor == 0 {
                return None;
            }
            cursor = 0;
        }
    }

    /// Frees `start .. start+count`. Refused, with nothing changed, when the range leaves the
    /// list or holds a block that is already free (a double free is a caller bug that would
    /// otherwise hand the same block out twice). `count == 0` frees nothing.
    pub fn free(&mut self, start: u64, count: u64) -> Result<(), BlistError> {
        self.check_range(start, count)?;
        if count == 0 {
            return Ok(());
        }
        // The pager frees one cluster at a time, which rarely crosses a leaf: then the check
        // reads one bitmap instead of searching from the root.
        let offset = start % RADIX;
        let already_free = if offset + count <= RADIX {
            let free = self.leaf_bitmap(start) & tree::bit_range(offset, count);
            (free != 0).then(|| start - offset + u64::from(free.trailing_zeros()))
        } else {
            self.next_free(start).filter(|&b| b < start + count)
        };
        if let Some(block) = already_free {
            return Err(BlistError::AlreadyFree {
                start,
                count,
                block,
            });
        }
        self.free_at(0, start, count, 0, self.span);
        self.avail += count;
        Ok(())
    }

    /// Marks `start .. start+count` allocated whatever its state and returns how many of those
    /// blocks were free. Refused, with nothing changed, when the range leaves the list.
    pub fn fill(&mut self, start: u64, count: u64) -> Result<u64, BlistError> {
        self.check_range(start, count)?;
        if count == 0 {
            return Ok(0);
        }
        let filled = self.fill_at(0, start, count, 0, self.span);
        self.avail -= filled;
        Ok(filled)
    }

    /// Changes the capacity to `blocks`, keeping the state of the blocks that remain; blocks
    /// added are freed when `free_new`, else allocated. As in FreeBSD a fresh tree is built (the
    /// only allocation besides `new`), so the hints and the cursor (back to 0) start over.
    ///
    /// Panics like [`Blist::new`] on a bad `blocks`.
    pub fn resize(&mut self, blocks: u64, free_new: bool) {
        let mut grown = Blist::new(blocks);
        let kept = self.blocks.min(blocks);
        for (first, len) in self.free_ranges() {
            if first >= kept {
                break;
            }
            let len = len.min(kept - first);
            grown.free_at(0, first, len, 0, grown.span);
            grown.avail += len;
        }
        if free_new && kept < blocks {
            grown.free_at(0, kept, blocks - kept, 0, grown.span);
            grown.avail += blocks - kept;
        }
        *self = grown;
    }

    /// Whether `block` is free. Blocks at or beyond the capacity are never free.
    pub fn is_free(&self, block: u64) -> bool {
        block < self.blocks && self.leaf_bitmap(block) & (1 << (block % RADIX)) != 0
    }

    /// The maximal runs of free blocks as `(first, len)`, in ascending order.
    pub fn free_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= self.blocks {
                return None;
            }
            let first = self.next_free(pos)?;
            let end = self.next_allocated(first);
            pos = end;
            Some((first, end - first))
        })
    }

    /// The fragmentation report of FreeBSD's `blist_stats`; its `Display` is that text.
    pub fn stats(&self) -> BlistStats {
        BlistStats::from_ranges(self.free_ranges())
    }

    /// Bytes of memory the list holds (the node array and the header).
    pub fn memory_bytes(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<[u64; 2]>() + std::mem::size_of::<Blist>()
    }

    /// The number of nodes of the tree, sentinel included (FreeBSD's "records").
    pub fn node_count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The blocks the root covers: a power of 64, at least the capacity.
    pub fn span(&self) -> u64 {
        self.span
    }

    /// The cursor: where the next allocation starts looking.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    fn check_range(&self, start: u64, count: u64) -> Result<(), BlistError> {
        match start.checked_add(count) {
            Some(end) if end <= self.blocks => Ok(()),
            _ => Err(BlistError::OutOfRange {
                start,
                count,
                capacity: self.blocks,
            }),
        }
    }
}
