//! The edge cases of the contract, by name, through the public API.

use swmeta::{Block, META_PAGES, SwapMeta};

fn drained(meta: &mut SwapMeta) -> Vec<(u64, Block)> {
    let mut freed = Vec::new();
    meta.clear(|p, b| freed.push((p, b)));
    freed
}

#[test]
fn swap_meta_is_plain_data_that_threads_can_share() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SwapMeta>();
}

#[test]
fn an_empty_map_holds_no_heap_and_maps_nothing() {
    let meta = SwapMeta::new();
    assert_eq!(meta.memory_bytes(), 0);
    assert_eq!((meta.pages(), meta.clusters()), (0, 0));
    assert_eq!(meta.lookup(0), None);
    assert_eq!(meta.lookup(u64::MAX), None);
    assert_eq!(meta.seek_data(0), None);
    assert_eq!(meta.seek_hole(u64::MAX), u64::MAX);
    assert_eq!(meta.contiguous(5, 31, 31), None);
    assert_eq!(meta.iter().count(), 0);
}

#[test]
fn the_last_page_index_and_the_extreme_blocks_are_ordinary_entries() {
    let mut meta = SwapMeta::new();
    assert_eq!(meta.insert(u64::MAX, u32::MAX), None);
    assert_eq!(meta.insert(0, 0), None);
    assert_eq!(meta.lookup(u64::MAX), Some(u32::MAX));
    assert_eq!(meta.lookup(0), Some(0));
    assert_eq!(
        meta.iter().collect::<Vec<_>>(),
        [(0, 0), (u64::MAX, u32::MAX)]
    );
    assert_eq!(meta.seek_data(1), Some(u64::MAX));
    assert_eq!(meta.pop(u64::MAX), Some(u32::MAX));
    assert_eq!(meta.pop(u64::MAX), None);
    assert_eq!(drained(&mut meta), [(0, 0)]);
    assert_eq!(meta.memory_bytes(), 0);
}

#[test]
fn free_range_clamps_a_count_that_runs_past_the_last_index() {
    let mut meta = SwapMeta::new();
    for (i, p) in [0, 10, u64::MAX - 40, u64::MAX - 1, u64::MAX]
        .into_iter()
        .enumerate()
    {
        meta.insert(p, i as Block);
    }
    let mut freed = Vec::new();
    meta.free_range(u64::MAX - 1, u64::MAX, |p, b| freed.push((p, b)));
    assert_eq!(freed, [(u64::MAX - 1, 3), (u64::MAX, 4)]);
    freed.clear();
    meta.free_range(5, u64::MAX, |p, b| freed.push((p, b)));
    assert_eq!(freed, [(10, 1), (u64::MAX - 40, 2)]);
    meta.free_range(0, 0, |_, _| panic!("a count of 0 frees nothing"));
    assert_eq!(meta.iter().collect::<Vec<_>>(), [(0, 0)]);
}

#[test]
fn replaced_and_popped_blocks_come_back_once() {
    let mut meta = SwapMeta::new();
    assert_eq!(meta.insert(3, 30), None);
    assert_eq!(meta.insert(3, 31), Some(30));
    assert_eq!(meta.pages(), 1);
    assert_eq!(meta.pop(3), Some(31));
    assert_eq!(meta.pop(3), None);
    assert_eq!(meta.memory_bytes(), 0, "the last pop frees the cluster");
}

#[test]
fn contiguous_stops_at_block_zero_and_block_max_without_wrapping() {
    let mut meta = SwapMeta::new();
    // Pages 10..=12 hold u32::MAX - 1, u32::MAX, then 0: the run breaks at the wrap.
    meta.insert(10, u32::MAX - 1);
    meta.insert(11, u32::MAX);
    meta.insert(12, 0);
    meta.insert(13, 1);
    assert_eq!(meta.contiguous(11, 31, 31), Some((1, 0)));
    assert_eq!(meta.contiguous(12, 31, 31), Some((0, 1)));
}

#[test]
fn contiguous_stops_at_page_zero_and_the_last_page_index() {
    let mut meta = SwapMeta::new();
    meta.insert(0, 100);
    meta.insert(1, 101);
    meta.insert(u64::MAX - 1, 7);
    meta.insert(u64::MAX, 8);
    assert_eq!(meta.contiguous(1, u64::MAX, u64::MAX), Some((1, 0)));
    assert_eq!(
        meta.contiguous(u64::MAX - 1, u64::MAX, u64::MAX),
        Some((0, 1))
    );
    assert_eq!(meta.contiguous(u64::MAX, 31, 31), Some((1, 0)));
}

#[test]
fn contiguous_is_haspage_across_cluster_boundaries_and_capped_by_the_caller() {
    let mut meta = SwapMeta::new();
    for p in 0..200u64 {
        meta.insert(1000 + p, 5000 + p as Block);
    }
    meta.insert(1100, 1); // breaks the run of blocks in the middle
    assert_eq!(meta.contiguous(1050, 31, 31), Some((31, 31)));
    assert_eq!(meta.contiguous(1050, 100, 100), Some((50, 49)));
    assert_eq!(meta.contiguous(1101, 0, 2), Some((0, 2)));
    assert_eq!(meta.contiguous(999, 31, 31), None);
}

#[test]
fn seek_hole_saturates_at_the_last_index_when_everything_after_is_mapped() {
    let mut meta = SwapMeta::new();
    for p in u64::MAX - 70..=u64::MAX {
        meta.insert(p, 1);
    }
    assert_eq!(meta.seek_hole(u64::MAX - 80), u64::MAX - 80);
    assert_eq!(meta.seek_hole(u64::MAX - 70), u64::MAX);
    assert_eq!(meta.seek_data(u64::MAX - 80), Some(u64::MAX - 70));
}

#[test]
fn seek_hole_crosses_full_clusters_and_leaves() {
    let mut meta = SwapMeta::new();
    for p in 0..5000u64 {
        meta.insert(p, p as Block);
    }
    assert_eq!(meta.seek_hole(0), 5000);
    meta.pop(4095);
    assert_eq!(meta.seek_hole(17), 4095);
    assert_eq!(meta.seek_data(4095), Some(4096));
}

#[test]
fn range_is_half_open_and_empty_when_reversed() {
    let mut meta = SwapMeta::new();
    for p in [0, 31, 32, 33, 2047, 2048, u64::MAX - 1, u64::MAX] {
        meta.insert(p, p as Block);
    }
    let keys = |r: std::ops::Range<u64>| meta.range(r).map(|(p, _)| p).collect::<Vec<_>>();
    assert_eq!(keys(31..33), [31, 32]);
    assert_eq!(keys(33..2049), [33, 2047, 2048]);
    assert_eq!(keys(0..u64::MAX), [0, 31, 32, 33, 2047, 2048, u64::MAX - 1]);
    assert_eq!(keys(40..40), Vec::<u64>::new());
    let (hi, lo) = (50, 10);
    assert_eq!(keys(hi..lo), Vec::<u64>::new());
}

#[test]
fn a_cluster_goes_with_its_last_page() {
    let mut meta = SwapMeta::new();
    for p in 0..META_PAGES * 2 {
        meta.insert(p, 1);
    }
    assert_eq!(meta.clusters(), 2);
    meta.free_range(0, META_PAGES - 1, |_, _| {});
    assert_eq!(meta.clusters(), 2);
    meta.pop(META_PAGES - 1);
    assert_eq!(meta.clusters(), 1);
}

#[test]
fn dense_object_costs_at_most_4_5_bytes_per_page() {
    let mut meta = SwapMeta::new();
    let pages = 1u64 << 20;
    for p in 0..pages {
        meta.insert(p, p as Block);
    }
    let per_page = meta.memory_bytes() as f64 / meta.pages() as f64;
    assert!(per_page <= 4.5, "dense: {per_page:.3} bytes per page");
    let mut count = 0;
    meta.clear(|p, b| {
        assert_eq!(p as Block, b);
        count += 1;
    });
    assert_eq!((count, meta.memory_bytes()), (pages, 0));
}
