//! Test-only: checks the tree's internal invariants after random operations.
//!
//! The model tests in `tests/` see only the public behaviour; these look inside: meta bits
//! exact, nothing free past the capacity, `avail` right, and every hint at least the longest
//! run (up to `MAX_ALLOC`) that can begin in its subtree, runs into the next subtree included.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use proptest::prelude::*;

use crate::tree::skip;
use crate::{Blist, MAX_ALLOC, RADIX};

/// Walks the subtree at `idx` and returns whether it holds a free block.
fn check_node(bl: &Blist, idx: usize, base: u64, span: u64, runs: &[(u64, u64)]) -> bool {
    let bitmap = bl.bitmap(idx);
    // The longest run beginning in this subtree, capped at MAX_ALLOC.
    let longest = runs
        .iter()
        .filter_map(|&(s, len)| {
            let end = s + len;
            let from = s.max(base);
            (from < base + span && from < end).then(|| end - from)
        })
        .max()
        .unwrap_or(0)
        .min(MAX_ALLOC);
    assert!(
        bl.hint(idx) >= longest,
        "node {idx} at {base:#x} (span {span}) hints {} but a run of {longest} begins there",
        bl.hint(idx)
    );
    if span == RADIX {
        for bit in 0..RADIX {
            if base + bit >= bl.blocks {
                assert_eq!(
                    bitmap >> bit,
                    0,
                    "leaf at {base:#x} has free bits past the capacity"
                );
                break;
            }
        }
        return bitmap != 0;
    }
    let child_span = span / RADIX;
    for digit in 0..RADIX {
        let child_base = base + digit * child_span;
        let set = bitmap & (1 << digit) != 0;
        if child_base >= bl.blocks {
            assert!(
                !set,
                "meta at {base:#x} marks child {digit} past the capacity"
            );
            continue;
        }
        let child = idx + 1 + digit as usize * skip(child_span);
        let has_free = check_node(bl, child, child_base, child_span, runs);
        assert_eq!(
            set, has_free,
            "meta at {base:#x}, child {digit}: bit {set}, free {has_free}"
        );
    }
    bitmap != 0
}

pub(crate) fn check(bl: &Blist) {
    let runs: Vec<(u64, u64)> = bl.free_ranges().collect();
    check_node(bl, 0, 0, bl.span, &runs);
    assert_eq!(bl.avail, runs.iter().map(|r| r.1).sum::<u64>());
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(u64, u64),
    Free(u64, u64),
    Fill(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..=MAX_ALLOC, 0..200u64).prop_map(|(min, extra)| Op::Alloc(min, min + extra)),
        (any::<u64>(), 1..150u64).prop_map(|(s, c)| Op::Free(s, c)),
        (any::<u64>(), 1..150u64).prop_map(|(s, c)| Op::Fill(s, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_operations_keep_the_tree_invariants(
        size in prop_oneof![1..300u64, 4000..4200u64, 8190..8194u64, 262_100..262_200u64],
        ops in prop::collection::vec(op(), 1..50),
    ) {
        let mut bl = Blist::new(size);
        bl.free(0, size).unwrap();
        check(&bl);
        for op in ops {
            match op {
                Op::Alloc(min, max) => {
                    bl.alloc_range(min, max);
                }
                Op::Free(s, c) => {
                    // A free of an allocated range: fill it first.
                    let s = s % size;
                    let c = c.min(size - s);
                    bl.fill(s, c).unwrap();
                    bl.free(s, c).unwrap();
                }
                Op::Fill(s, c) => {
                    let s = s % size;
                    bl.fill(s, c.min(size - s)).unwrap();
                }
            }
            check(&bl);
        }
    }
}
