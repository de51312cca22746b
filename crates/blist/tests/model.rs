//! Model-based property tests: every operation on a `Blist` is also done on a plain `Vec<bool>`
//! that computes the exact expected answer (same block, same length) from the documented
//! semantics, and the two must agree after every step.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use blist::{Blist, BlistError, BlistStats, MAX_ALLOC};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The obviously-right reference: one flag per block and the cursor.
#[derive(Debug, Clone)]
struct Model {
    free: Vec<bool>,
    cursor: u64,
}

impl Model {
    fn new(blocks: u64) -> Model {
        Model {
            free: vec![false; blocks as usize],
            cursor: 0,
        }
    }

    fn capacity(&self) -> u64 {
        self.free.len() as u64
    }

    fn avail(&self) -> u64 {
        self.free.iter().filter(|&&f| f).count() as u64
    }

    fn ranges(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, &f) in self.free.iter().enumerate() {
            match (f, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    out.push((s as u64, (i - s) as u64));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s as u64, (self.free.len() - s) as u64));
        }
        out
    }

    /// The lowest `b >= from` starting `min` free blocks, with the length taken there.
    fn search(&self, from: u64, min: u64, max: u64) -> Option<(u64, u64)> {
        self.ranges().into_iter().find_map(|(s, len)| {
            let end = s + len;
            let b = s.max(from);
            (end >= b + min).then(|| (b, (end - b).min(max)))
        })
    }

    fn alloc_range(&mut self, min: u64, max: u64) -> Option<(u64, u64)> {
        let found = self.search(self.cursor, min, max).or_else(|| {
            if self.cursor != 0 {
                self.search(0, min, max)
            } else {
                None
            }
        });
        let (b, len) = found?;
        self.free[b as usize..(b + len) as usize].fill(false);
        self.cursor = if b + len == self.capacity() {
            0
        } else {
            b + len
        };
        Some((b, len))
    }

    fn free(&mut self, start: u64, count: u64) -> Result<(), ()> {
        let end = start
            .checked_add(count)
            .filter(|&e| e <= self.capacity())
            .ok_or(())?;
        let range = start as usize..end as usize;
        if self.free[range.clone()].iter().any(|&f| f) {
            return Err(());
        }
        self.free[range].fill(true);
        Ok(())
    }

    fn fill(&mut self, start: u64, count: u64) -> Result<u64, ()> {
        let end = start
            .checked_add(count)
            .filter(|&e| e <= self.capacity())
            .ok_or(())?;
        let range = start as usize..end as usize;
        let was = self.free[range.clone()].iter().filter(|&&f| f).count() as u64;
        self.free[range].fill(false);
        Ok(was)
    }

    fn resize(&mut self, blocks: u64, free_new: bool) {
        self.free.resize(blocks as usize, free_new);
        self.cursor = 0;
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(u64),
    AllocRange(u64, u64),
    /// Free part of an allocated range, chosen by the seeds (always valid when one exists).
    FreeAllocated(u64, u64, u64),
    /// Free an arbitrary range: often refused (already free, out of range).
    FreeAny(u64, u64),
    Fill(u64, u64),
    /// Free or fill many short ranges all over the list, to fragment large lists quickly.
    Scatter(u64),
    Resize(u64, bool),
    /// Make `start .. start+count` exactly allocated (`false`) or exactly free (`true`), where
    /// `start` is near a leaf or subtree boundary: runs that cross into the next subtree are
    /// where the hints are subtle.
    Edge(u64, i64, u64, bool),
}

fn op(size: u64) -> impl Strategy<Value = Op> {
    let max_min = MAX_ALLOC;
    prop_oneof![
        4 => (1..=max_min).prop_map(Op::Alloc),
        4 => (1..=max_min, 0..300u64).prop_map(|(min, extra)| Op::AllocRange(min, min + extra)),
        2 => (1..=max_min).prop_map(|min| Op::AllocRange(min, u64::MAX)),
        5 => (any::<u64>(), any::<u64>(), 1..200u64).prop_map(|(a, b, c)| Op::FreeAllocated(a, b, c)),
        1 => (0..size + 70, 0..200u64).prop_map(|(s, c)| Op::FreeAny(s, c)),
        2 => (0..size + 70, 0..300u64).prop_map(|(s, c)| Op::Fill(s, c)),
        1 => any::<u64>().prop_map(Op::Scatter),
        1 => (sizes(), any::<bool>()).prop_map(|(n, f)| Op::Resize(n, f)),
        6 => (any::<u64>(), -70..70i64, 1..80u64, any::<bool>())
            .prop_map(|(k, d, c, f)| Op::Edge(k, d, c, f)),
    ]
}

/// Sizes from 1 to a few 100k, weighted toward the leaf and meta boundaries (multiples of 64
/// and 4096, and one either side) where FreeBSD once corrupted its tree.
fn sizes() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 1..200u64,
        3 => (1..70u64, -1..=1i64).prop_map(|(k, d)| (k * 64).saturating_add_signed(d).max(1)),
        3 => (1..70u64, -1..=1i64).prop_map(|(k, d)| (k * 4096).saturating_add_signed(d)),
        1 => (1..5u64, -1..=1i64).prop_map(|(k, d)| (k * 262144).saturating_add_signed(d)),
        1 => 1..400_000u64,
    ]
}

/// Runs one operation on both and asserts the answers are the same.
///
/// One piece: one match arm per operation, each checked against the model.
fn apply(bl: &mut Blist, model: &mut Model, op: &Op) {
    match *op {
        Op::Alloc(n) => {
            let want = model.alloc_range(n, n).map(|(b, _)| b);
            assert_eq!(bl.alloc(n), want, "{op:?}");
        }
        Op::AllocRange(min, max) => {
            let want = model.alloc_range(min, max);
            assert_eq!(bl.alloc_range(min, max), want, "{op:?}");
        }
        Op::FreeAllocated(a, b, c) => {
            let cap = model.capacity();
            let used: Vec<(u64, u64)> = complement(&model.ranges(), cap);
            if used.is_empty() {
                return;
            }
            let (s, len) = used[(a % used.len() as u64) as usize];
            let start = s + b % len;
            let count = c.min(s + len - start);
            model
                .free(start, count)
                .expect("the model frees an allocated range");
            assert_eq!(bl.free(start, count), Ok(()), "{op:?}");
        }
        Op::FreeAny(start, count) => {
            let before = bl.clone();
            let want = model.free(start, count);
            let got = bl.free(start, count);
            assert_eq!(got.is_ok(), want.is_ok(), "{op:?}: {got:?}");
            if got.is_err() {
                assert_eq!(
                    bl.free_ranges().collect::<Vec<_>>(),
                    before.free_ranges().collect::<Vec<_>>()
                );
                assert_eq!(bl.avail(), before.avail());
            }
        }
        Op::Fill(start, count) => {
            let want = model.fill(start, count);
            let got = bl.fill(start, count);
            assert_eq!(got.as_ref().ok(), want.as_ref().ok(), "{op:?}");
        }
        Op::Scatter(seed) => {
            let mut rng = SmallRng::seed_from_u64(seed);
            let cap = model.capacity();
            for _ in 0..(cap / 64).clamp(4, 2000) {
                let start = rng.random_range(0..cap);
                let count = rng.random_range(1..=(cap - start).min(90));
                if rng.random_bool(0.5) {
                    assert_eq!(bl.fill(start, count).ok(), model.fill(start, count).ok());
                } else {
                    // Free only what is allocated: a fill first makes that so.
                    assert_eq!(bl.fill(start, count).ok(), model.fill(start, count).ok());
                    assert_eq!(
                        bl.free(start, count).is_ok(),
                        model.free(start, count).is_ok()
                    );
                }
            }
        }
        Op::Edge(k, d, count, free) => {
            let cap = model.capacity();
            let unit = if k % 3 == 0 { 64 } else { 4096 };
            let start = ((k % (cap / unit + 1)) * unit)
                .saturating_add_signed(d)
                .min(cap - 1);
            let count = count.min(cap - start);
            assert_eq!(bl.fill(start, count).ok(), model.fill(start, count).ok());
            if free {
                assert_eq!(bl.free(start, count), Ok(()));
                model.free(start, count).unwrap();
            }
        }
        Op::Resize(n, free_new) => {
            model.resize(n, free_new);
            bl.resize(n, free_new);
            assert_eq!(bl.capacity(), n);
        }
    }
    assert_eq!(bl.avail(), model.avail(), "avail after {op:?}");
}

/// The allocated ranges of a list of `cap` blocks whose free ranges are `free`.
fn complement(free: &[(u64, u64)], cap: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    for &(s, len) in free {
        if s > pos {
            out.push((pos, s - pos));
        }
        pos = s + len;
    }
    if pos < cap {
        out.push((pos, cap - pos));
    }
    out
}

fn assert_same_state(bl: &Blist, model: &Model) {
    let ranges = model.ranges();
    assert_eq!(bl.free_ranges().collect::<Vec<_>>(), ranges);
    assert_eq!(bl.stats(), BlistStats::from_ranges(ranges.iter().copied()));
    assert_eq!(bl.capacity(), model.capacity());
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok());
    ProptestConfig {
        cases: cases.unwrap_or(default_cases),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn every_operation_matches_the_model_on_any_size(
        size in sizes(),
        free_all in prop::bool::weighted(0.8),
        ops in prop::collection::vec(op(300), 1..60),
    ) {
        let mut bl = Blist::new(size);
        let mut model = Model::new(size);
        if free_all {
            bl.free(0, size).unwrap();
            model.free(0, size).unwrap();
        }
        assert_same_state(&bl, &model);
        for op in &ops {
            let op = rescale(op, model.capacity());
            apply(&mut bl, &mut model, &op);
            assert_same_state(&bl, &model);
            for probe in [0, model.capacity() / 2, model.capacity() - 1, model.capacity()] {
                assert_eq!(bl.is_free(probe), model.free.get(probe as usize).copied().unwrap_or(false));
            }
        }
    }
}

proptest! {
    #![proptest_config(config(60))]

    /// Long runs: mostly-free large lists and allocations whose `max` spans many leaves.
    #[test]
    fn long_runs_across_leaves_match_the_model(
        size in prop_oneof![(1..8u64).prop_map(|k| k * 4096), 4000..300_000u64],
        holes in prop::collection::vec((any::<u64>(), 1..3000u64), 0..20),
        asks in prop::collection::vec((1..=MAX_ALLOC, 1..20_000u64, any::<bool>()), 1..40),
    ) {
        let mut bl = Blist::new(size);
        let mut model = Model::new(size);
        bl.free(0, size).unwrap();
        model.free(0, size).unwrap();
        for (at, len) in holes {
            let start = at % size;
            let len = len.min(size - start);
            assert_eq!(bl.fill(start, len).ok(), model.fill(start, len).ok());
        }
        for (min, extra, give_back) in asks {
            let got = bl.alloc_range(min, min + extra);
            assert_eq!(got, model.alloc_range(min, min + extra));
            if let (Some((b, len)), true) = (got, give_back) {
                let keep = len / 3;
                bl.free(b + keep, len - keep).unwrap();
                model.free(b + keep, len - keep).unwrap();
            }
            assert_eq!(bl.avail(), model.avail());
        }
        assert_same_state(&bl, &model);
    }
}

/// Operations that only touch the blocks around leaf and subtree boundaries, on a list that
/// starts full: runs crossing into the next subtree, whose hints are the subtle part.
fn edge_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..=MAX_ALLOC).prop_map(Op::Alloc),
        2 => (1..=MAX_ALLOC, 0..100u64).prop_map(|(min, extra)| Op::AllocRange(min, min + extra)),
        6 => (prop_oneof![0..6u64, 62..66u64], -70..70i64, 1..80u64, any::<bool>())
            .prop_map(|(k, d, c, f)| Op::Edge(k * 3 + 1, d, c, f)),
        1 => (0..6u64, -70..70i64, 1..80u64, any::<bool>())
            .prop_map(|(k, d, c, f)| Op::Edge(k * 3, d, c, f)),
    ]
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn runs_crossing_subtree_boundaries_match_the_model(
        size in prop_oneof![
            (1..5u64).prop_map(|k| k * 4096),
            (1..5u64).prop_map(|k| k * 4096 + 1),
            (0..3u64).prop_map(|k| 262_144 + k * 4096),
        ],
        ops in prop::collection::vec(edge_op(), 1..80),
    ) {
        let mut bl = Blist::new(size);
        let mut model = Model::new(size);
        for op in &ops {
            apply(&mut bl, &mut model, op);
        }
        assert_same_state(&bl, &model);
    }
}

/// Rescales ranges drawn for a size of 300 to the current capacity, so that large lists see
/// operations all over their range, not only in the first blocks.
fn rescale(op: &Op, cap: u64) -> Op {
    let scale = |x: u64| {
        if cap > 300 {
            x * (cap / 300) + x % 7
        } else {
            x
        }
    };
    match *op {
        Op::FreeAny(s, c) => Op::FreeAny(scale(s), c),
        Op::Fill(s, c) => Op::Fill(scale(s), c),
        ref other => other.clone(),
    }
}

#[test]
fn a_run_ending_a_subtree_is_found_once_the_next_subtree_frees_its_start() {
    // The only free blocks of the first 4096 are its last 6: a run of 10 there needs 4 from
    // the next subtree, which has none. The failed search must not hint the first subtree
    // below 10, or the run is missed once the next subtree frees its first blocks.
    let mut bl = Blist::new(8192);
    bl.free(4090, 6).unwrap();
    assert_eq!(bl.alloc(10), None);
    bl.free(4096, 4).unwrap();
    assert_eq!(bl.alloc(10), Some(4090));
}

#[test]
fn a_new_list_has_every_block_allocated() {
    for size in [1, 63, 64, 65, 4095, 4096, 4097, 262_144] {
        let bl = Blist::new(size);
        assert_eq!(bl.avail(), 0);
        assert_eq!(bl.free_ranges().count(), 0);
        assert!(!bl.is_free(0));
    }
}

#[test]
fn double_free_is_refused_and_changes_nothing() {
    let mut bl = Blist::new(5000);
    bl.free(100, 200).unwrap();
    let before: Vec<_> = bl.free_ranges().collect();
    let err = bl.free(250, 100).unwrap_err();
    assert_eq!(
        err,
        BlistError::AlreadyFree {
            start: 250,
            count: 100,
            block: 250
        }
    );
    assert_eq!(
        bl.free(50, 60),
        Err(BlistError::AlreadyFree {
            start: 50,
            count: 60,
            block: 100
        })
    );
    assert_eq!(bl.free_ranges().collect::<Vec<_>>(), before);
    assert_eq!(bl.avail(), 200);
}

#[test]
fn out_of_range_calls_are_refused_and_change_nothing() {
    let mut bl = Blist::new(4096);
    bl.free(0, 4000).unwrap();
    let out = BlistError::OutOfRange {
        start: 4000,
        count: 97,
        capacity: 4096,
    };
    assert_eq!(bl.free(4000, 97), Err(out.clone()));
    assert_eq!(bl.fill(4000, 97), Err(out));
    assert!(bl.free(u64::MAX, 2).is_err());
    assert!(bl.fill(1, u64::MAX).is_err());
    assert_eq!(bl.avail(), 4000);
    assert_eq!(bl.free_ranges().collect::<Vec<_>>(), vec![(0, 4000)]);
    assert!(!bl.is_free(4096));
}

#[test]
fn allocation_wraps_to_the_start_once_and_fails_when_nothing_fits() {
    let mut bl = Blist::new(128);
    bl.free(0, 128).unwrap();
    assert_eq!(bl.alloc(64), Some(0));
    assert_eq!(bl.alloc(64), Some(64));
    assert_eq!(bl.cursor(), 0);
    bl.free(10, 5).unwrap();
    assert_eq!(bl.alloc(6), None);
    assert_eq!(bl.alloc_range(2, 100), Some((10, 5)));
}

#[test]
#[should_panic(expected = "min 65 is not within 1..=64")]
fn asking_for_more_than_max_alloc_panics() {
    Blist::new(1000).alloc(65);
}

#[test]
#[should_panic(expected = "min 8 is above max 4")]
fn a_min_above_max_panics() {
    Blist::new(1000).alloc_range(8, 4);
}

#[test]
fn memory_is_two_bits_per_block_within_five_percent() {
    for size in [1u64 << 20, 1 << 24, (1 << 24) + 1] {
        let bits = Blist::new(size).memory_bytes() as f64 * 8.0 / size as f64;
        assert!(bits < 2.0 * 1.05, "{size} blocks take {bits} bits each");
    }
}
