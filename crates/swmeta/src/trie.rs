//! A path-compressed radix trie of leaves, keyed by `pindex >> LEAF_SHIFT`.
//!
//! This is the shape of FreeBSD's `pctrie`: inner nodes of 64 slots, each node remembering which
//! 6-bit digit of the key it indexes (`shift`) and the digits above it (`prefix`), so levels
//! that would have a single child are skipped. A dense object of 2^26 pages (2^15 leaves) is
//! three inner levels deep whatever its offset; an object with one page at 0 and one at
//! `u64::MAX` has one inner node.
//!
//! Invariant: every inner node has at least two non-empty slots (removal collapses a node
//! left with one child into its parent's slot), so there are fewer inner nodes than leaves.

use crate::leaf::{Leaf, MAX_LEAF_KEY};

/// Key bits one inner node indexes.
const RADIX: u32 = 6;
const FANOUT: usize = 1 << RADIX;
const DIGIT: u64 = FANOUT as u64 - 1;

#[derive(Debug, Default)]
pub(crate) enum Slot {
    #[default]
    Empty,
    Inner(Box<Inner>),
    Leaf(Box<Leaf>),
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// `key >> (shift + RADIX)` of every leaf below.
    prefix: u64,
    /// The digit `(key >> shift) & DIGIT` picks the slot; a multiple of `RADIX`.
    shift: u32,
    slots: [Slot; FANOUT],
}

impl Inner {
    fn covers(&self, key: u64) -> bool {
        key >> (self.shift + RADIX) == self.prefix
    }

    fn index(&self, key: u64) -> usize {
        ((key >> self.shift) & DIGIT) as usize
    }

    /// The smallest key this node can hold; used to place it when it is split off.
    fn first_key(&self) -> u64 {
        self.prefix << (self.shift + RADIX)
    }
}

/// The trie and the count of nodes it holds, for `memory_bytes`.
#[derive(Debug, Default)]
pub(crate) struct Trie {
    root: Slot,
    pub(crate) inners: usize,
    pub(crate) leaves: usize,
}

/// What `leaf_or_insert` does at the slot it has reached.
enum Step {
    Found,
    Create,
    Descend,
    Split(u64),
}

impl Trie {
    pub(crate) const INNER_BYTES: usize = std::mem::size_of::<Inner>();
    pub(crate) const LEAF_BYTES: usize = std::mem::size_of::<Leaf>();

    /// The leaf of `key`, if it exists.
    pub(crate) fn leaf(&self, key: u64) -> Option<&Leaf> {
        let mut slot = &self.root;
        loop {
            match slot {
                Slot::Inner(node) if node.covers(key) => slot = &node.slots[node.index(key)],
                Slot::Leaf(leaf) if leaf.key == key => return Some(leaf),
                _ => return None,
            }
        }
    }

    /// The leaf of `key`, if it exists, for changing.
    pub(crate) fn leaf_mut(&mut self, key: u64) -> Option<&mut Leaf> {
        let mut slot = &mut self.root;
        loop {
            match slot {
                Slot::Inner(node) if node.covers(key) => {
                    let i = node.index(key);
                    slot = &mut node.slots[i];
                }
                Slot::Leaf(leaf) if leaf.key == key => return Some(leaf),
                _ => return None,
            }
        }
    }

    /// The leaf of `key`, created (empty) if it does not exist. Where the path to it is taken
    /// by a leaf or a compressed node of other keys, a new inner node is put in that slot at the
    /// highest digit where the keys differ, holding both.
    pub(crate) fn leaf_or_insert(&mut self, key: u64) -> &mut Leaf {
        let mut slot = &mut self.root;
        loop {
            let step = match &*slot {
                Slot::Empty => Step::Create,
                Slot::Leaf(leaf) if leaf.key == key => Step::Found,
                Slot::Leaf(leaf) => Step::Split(leaf.key),
                Slot::Inner(node) if node.covers(key) => Step::Descend,
                Slot::Inner(node) => Step::Split(node.first_key()),
            };
            match step {
                Step::Found => break,
                Step::Create => {
                    *slot = Slot::Leaf(Box::new(Leaf::new(key)));
                    self.leaves += 1;
                    break;
                }
                Step::Descend => {
                    if let Slot::Inner(node) = slot {
                        let i = node.index(key);
                        slot = &mut node.slots[i];
                    }
                }
                Step::Split(other) => {
                    let top = 63 - (key ^ other).leading_zeros();
                    let shift = top / RADIX * RADIX;
                    let mut node = Box::new(Inner {
                        prefix: key >> (shift + RADIX),
                        shift,
                        slots: [const { Slot::Empty }; FANOUT],
                    });
                    node.slots[((other >> shift) & DIGIT) as usize] = std::mem::take(slot);
                    *slot = Slot::Inner(node);
                    self.inners += 1;
                }
            }
        }
        match slot {
            Slot::Leaf(leaf) => leaf,
            // The loop leaves only on `Found` or `Create`, both at a leaf of `key`.
            _ => unreachable!("leaf_or_insert stopped at a slot without a leaf"),
        }
    }

    /// Removes the leaf of `key` and returns it; collapses the inner nodes left with one child.
    pub(crate) fn remove(&mut self, key: u64) -> Option<Box<Leaf>> {
        let mut collapsed = 0;
        let leaf = remove_in(&mut self.root, key, &mut collapsed)?;
        self.inners -= collapsed;
        self.leaves -= 1;
        Some(leaf)
    }

    /// The first leaf whose key is `>= key`.
    pub(crate) fn leaf_at_or_after(&self, key: u64) -> Option<&Leaf> {
        at_or_after(&self.root, key)
    }

    /// Takes the whole trie out, leaving it empty.
    pub(crate) fn take(&mut self) -> Slot {
        self.inners = 0;
        self.leaves = 0;
        std::mem::take(&mut self.root)
    }
}

fn remove_in(slot: &mut Slot, key: u64, collapsed: &mut usize) -> Option<Box<Leaf>> {
    match slot {
        Slot::Leaf(leaf) if leaf.key == key => match std::mem::take(slot) {
            Slot::Leaf(leaf) => Some(leaf),
            _ => None,
        },
        Slot::Inner(node) if node.covers(key) => {
            let i = node.index(key);
            let leaf = remove_in(&mut node.slots[i], key, collapsed)?;
            let mut live = node
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !matches!(s, Slot::Empty));
            if let (Some((only, _)), None) = (live.next(), live.next()) {
                let child = std::mem::take(&mut node.slots[only]);
                *slot = child;
                *collapsed += 1;
            }
            Some(leaf)
        }
        _ => None,
    }
}

fn at_or_after(slot: &Slot, key: u64) -> Option<&Leaf> {
    match slot {
        Slot::Empty => None,
        Slot::Leaf(leaf) => (leaf.key >= key).then_some(&**leaf),
        Slot::Inner(node) => {
            let prefix = key >> (node.shift + RADIX);
            if node.prefix > prefix {
                return first(slot);
            }
            if node.prefix < prefix {
                return None;
            }
            let i = node.index(key);
            at_or_after(&node.slots[i], key).or_else(|| node.slots[i + 1..].iter().find_map(first))
        }
    }
}

/// The leaf of the smallest key below `slot`.
fn first(slot: &Slot) -> Option<&Leaf> {
    match slot {
        Slot::Empty => None,
        Slot::Leaf(leaf) => Some(leaf),
        Slot::Inner(node) => node.slots.iter().find_map(first),
    }
}

/// Walks every leaf of an owned subtree in ascending key order, dropping nodes as it goes.
pub(crate) fn drain(slot: Slot, each: &mut impl FnMut(&Leaf)) {
    match slot {
        Slot::Empty => {}
        Slot::Leaf(leaf) => each(&leaf),
        Slot::Inner(node) => {
            for child in node.slots {
                drain(child, each);
            }
        }
    }
}

const _: () = assert!(
    MAX_LEAF_KEY >> (48 + RADIX) == 0,
    "the top digit must cover the key"
);

/// Checks the trie's shape and returns `(inners, leaves, leaf heap bytes)` counted by walking
/// it: every inner node has two or more children, in the right digit, every leaf clusters,
/// and the checksums (if any) in step with the clusters.
#[cfg(test)]
pub(crate) fn audit(trie: &Trie) -> (usize, usize, usize) {
    fn walk(slot: &Slot, lo: u64, hi: u64, counts: &mut (usize, usize, usize)) {
        match slot {
            Slot::Empty => {}
            Slot::Leaf(leaf) => {
                assert!(
                    (lo..=hi).contains(&leaf.key),
                    "leaf {} outside {lo}..={hi}",
                    leaf.key
                );
                assert_ne!(leaf.present, 0, "empty leaf {}", leaf.key);
                assert_eq!(leaf.present.count_ones() as usize, leaf.clusters.len());
                assert!(leaf.clusters.iter().all(|c| c.mask != 0), "empty cluster");
                assert!(
                    leaf.crcs.is_empty() || leaf.crcs.len() == leaf.clusters.len(),
                    "checksums out of step with clusters"
                );
                for (crcs, cluster) in leaf.crcs.iter().zip(&leaf.clusters) {
                    assert_eq!(crcs.mask & !cluster.mask, 0, "checksum of an unmapped page");
                }
                counts.1 += 1;
                counts.2 += leaf.heap_bytes();
            }
            Slot::Inner(node) => {
                let first = node.first_key();
                let span = (1u64 << (node.shift + RADIX)) - 1;
                let end = first.saturating_add(span).min(MAX_LEAF_KEY);
                assert!(lo <= first && end <= hi, "node outside parent");
                let live = node
                    .slots
                    .iter()
                    .filter(|s| !matches!(s, Slot::Empty))
                    .count();
                assert!(live >= 2, "inner node with {live} children");
                counts.0 += 1;
                for (i, child) in node.slots.iter().enumerate() {
                    let lo = first | ((i as u64) << node.shift);
                    walk(child, lo, lo + ((1u64 << node.shift) - 1), counts);
                }
            }
        }
    }
    let mut counts = (0, 0, 0);
    walk(&trie.root, 0, MAX_LEAF_KEY, &mut counts);
    counts
}
