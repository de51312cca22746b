//! Property tests against a `BTreeMap<u64, u32>` model, and the edge cases by name.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::{Block, SwapMeta, trie};

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, Block),
    /// Maps `len` pages from `start` to consecutive blocks from `blk` (wrapping), which builds
    /// the dense runs `contiguous` and `seek_hole` walk.
    Fill(u64, u64, Block),
    Pop(u64),
    Lookup(u64),
    FreeRange(u64, u64),
    Clear,
    Contiguous(u64, u64, u64),
    SeekData(u64),
    SeekHole(u64),
    Range(u64, u64),
}

/// Page indices where the edge cases are: near 0, around cluster and leaf boundaries low and
/// high in the index space, near `u64::MAX`, and anywhere.
fn pindex() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..200u64,
        3 => (0..8u64, -3..3i64).prop_map(|(k, d)| (k * 32).wrapping_add_signed(d)),
        2 => (0..4u64, -3..3i64).prop_map(|(k, d)| (k * 2048).wrapping_add_signed(d)),
        2 => (0..4u64, -3..3i64).prop_map(|(k, d)| ((1u64 << 40) + k * 2048).wrapping_add_signed(d)),
        3 => (0..200u64).prop_map(|d| u64::MAX - d),
        1 => (0..4u64, 0..64u64).prop_map(|(k, d)| (u64::MAX - 4096 * 64) + k * 4096 * 16 + d),
        1 => any::<u64>(),
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        0..100u32,
        (0..100u32).prop_map(|d| u32::MAX - d),
        any::<u32>()
    ]
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0..80u64, 2000..4200u64, Just(u64::MAX), any::<u64>()]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (pindex(), block()).prop_map(|(p, b)| Op::Insert(p, b)),
        2 => (pindex(), 0..300u64, block()).prop_map(|(p, n, b)| Op::Fill(p, n, b)),
        4 => pindex().prop_map(Op::Pop),
        2 => pindex().prop_map(Op::Lookup),
        2 => (pindex(), count()).prop_map(|(p, n)| Op::FreeRange(p, n)),
        1 => Just(Op::Clear),
        3 => (pindex(), prop_oneof![0..40u64, Just(u64::MAX)], prop_oneof![0..40u64, Just(u64::MAX)])
            .prop_map(|(p, b, a)| Op::Contiguous(p, b, a)),
        1 => pindex().prop_map(Op::SeekData),
        2 => pindex().prop_map(Op::SeekHole),
        1 => (pindex(), pindex()).prop_map(|(a, b)| Op::Range(a, b)),
    ]
}

/// `contiguous` on the model: the seed's `haspage` loops, without wrapping.
fn model_contiguous(
    m: &BTreeMap<u64, Block>,
    p: u64,
    before: u64,
    after: u64,
) -> Option<(u64, u64)> {
    let blk = u64::from(*m.get(&p)?);
    let run = |max: u64, step: &dyn Fn(u64, u64) -> Option<u64>| {
        let mut n = 0;
        while n < max {
            match (step(p, n + 1), step(blk, n + 1)) {
                (Some(q), Some(want)) if m.get(&q).map(|&b| u64::from(b)) == Some(want) => n += 1,
                _ => break,
            }
        }
        n
    };
    Some((
        run(before, &|x, n| x.checked_sub(n)),
        run(after, &|x, n| x.checked_add(n)),
    ))
}

fn model_seek_hole(m: &BTreeMap<u64, Block>, from: u64) -> u64 {
    let mut p = from;
    while m.contains_key(&p) {
        if p == u64::MAX {
            return u64::MAX;
        }
        p += 1;
    }
    p
}

/// Checks the counters against the model and the trie's shape against its counters.
fn check_shape(meta: &SwapMeta, model: &BTreeMap<u64, Block>) {
    assert_eq!(meta.pages(), model.len() as u64);
    let mut clusters: Vec<u64> = model.keys().map(|p| p >> 5).collect();
    clusters.dedup();
    assert_eq!(meta.clusters(), clusters.len());
    let (inners, leaves, slots) = trie::audit(&meta.trie);
    assert_eq!(
        (inners, leaves, slots),
        (meta.trie.inners, meta.trie.leaves, meta.leaf_heap)
    );
    if model.is_empty() {
        assert_eq!(meta.memory_bytes(), 0, "an empty map holds memory");
    }
}

/// The checksum a test stores with `blk`: none for every seventh block (as `reserve`).
fn crc_of(blk: Block) -> Option<u32> {
    (!blk.is_multiple_of(7)).then(|| blk.rotate_left(13) ^ 0xa5a5_5a5a)
}

/// One piece: one match arm per operation, each checked against the model.
fn run_ops(ops: Vec<Op>, checksums: bool) {
    let mut meta = if checksums {
        SwapMeta::with_checksums()
    } else {
        SwapMeta::new()
    };
    assert_eq!(meta.has_checksums(), checksums);
    let mut model: BTreeMap<u64, Block> = BTreeMap::new();
    // Every page's checksum is `crc_of` its block, so the model needs no second map.
    let want_crc = |model: &BTreeMap<u64, Block>, p: u64| {
        model
            .get(&p)
            .and_then(|&b| if checksums { crc_of(b) } else { None })
    };
    for op in ops {
        let mut got: Vec<(u64, Block)> = Vec::new();
        let mut want: Vec<(u64, Block)> = Vec::new();
        match op {
            Op::Insert(p, b) => {
                got.extend(meta.insert_checked(p, b, crc_of(b)).map(|old| (p, old)));
                want.extend(model.insert(p, b).map(|old| (p, old)));
            }
            Op::Fill(p, n, b) => {
                for i in 0..n {
                    let (q, blk) = (p.wrapping_add(i), b.wrapping_add(i as u32));
                    let old = if crc_of(blk).is_some() {
                        meta.insert_checked(q, blk, crc_of(blk))
                    } else {
                        meta.insert(q, blk)
                    };
                    got.extend(old.map(|old| (q, old)));
                    want.extend(model.insert(q, blk).map(|old| (q, old)));
                }
            }
            Op::Pop(p) => {
                got.extend(meta.pop(p).map(|old| (p, old)));
                want.extend(model.remove(&p).map(|old| (p, old)));
            }
            Op::Lookup(p) => {
                assert_eq!(meta.lookup(p), model.get(&p).copied(), "{op:?}");
                assert_eq!(meta.checksum(p), want_crc(&model, p), "{op:?}");
            }
            Op::FreeRange(p, n) => {
                meta.free_range(p, n, |q, b| got.push((q, b)));
                if n > 0 {
                    let last = p.saturating_add(n - 1);
                    let keys: Vec<u64> = model.range(p..=last).map(|(&q, _)| q).collect();
                    want.extend(keys.into_iter().map(|q| (q, model.remove(&q).unwrap_or(0))));
                }
                assert_eq!(got, want, "{op:?}");
            }
            Op::Clear => {
                meta.clear(|q, b| got.push((q, b)));
                want.extend(std::mem::take(&mut model));
                assert_eq!(got, want, "{op:?}");
            }
            Op::Contiguous(p, b, a) => {
                assert_eq!(
                    meta.contiguous(p, b, a),
                    model_contiguous(&model, p, b, a),
                    "{op:?}"
                );
            }
            Op::SeekData(p) => {
                assert_eq!(
                    meta.seek_data(p),
                    model.range(p..).next().map(|(&q, _)| q),
                    "{op:?}"
                );
            }
            Op::SeekHole(p) => assert_eq!(meta.seek_hole(p), model_seek_hole(&model, p), "{op:?}"),
            Op::Range(a, b) => {
                let got: Vec<_> = meta.range(a..b).collect();
                let want: Vec<_> = if a < b {
                    model.range(a..b).map(|(&q, &b)| (q, b)).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(got, want, "{op:?}");
            }
        }
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "handed-back blocks differ after {op:?}");
        check_shape(&meta, &model);
    }
    let all: Vec<_> = meta.iter().collect();
    assert_eq!(all, model.iter().map(|(&q, &b)| (q, b)).collect::<Vec<_>>());
    for &(q, _) in &all {
        assert_eq!(meta.checksum(q), want_crc(&model, q), "checksum of {q}");
    }
    let mut freed = Vec::new();
    meta.clear(|q, b| freed.push((q, b)));
    assert_eq!(freed, all, "clear hands back every block once, ascending");
    assert_eq!(meta.memory_bytes(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(400)
    ))]

    #[test]
    fn every_answer_and_every_handed_back_block_match_the_model(
        ops in proptest::collection::vec(op(), 1..120),
        checksums in any::<bool>(),
    ) {
        run_ops(ops, checksums);
    }
}
