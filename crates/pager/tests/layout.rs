//! Where pages land: priorities, interleave stripes (1, 32, 0) and cluster trimming at
//! stripe boundaries, as the seed's `dmmax` logic.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use common::{area, config, pages, tempdir};
use pager::{DeviceId, Object, PageResult, Pager, PagerConfig, PutMode, SwaponOptions};

fn pager_with(interleave: u64, max_cluster: u64) -> Pager {
    Pager::new(PagerConfig {
        max_cluster,
        ..config(interleave)
    })
    .unwrap()
}

fn where_(p: &Pager, obj: &Object, range: std::ops::Range<u64>) -> Vec<(DeviceId, u64)> {
    range.map(|i| p.locate(obj, i).unwrap()).collect()
}

#[test]
fn interleave_32_stripes_a_sequential_pageout_across_devices() {
    let dir = tempdir();
    let p = pager_with(32, 32);
    let a = p
        .swapon(&area(dir.path(), "a", 129), SwaponOptions::default())
        .unwrap();
    let b = p
        .swapon(&area(dir.path(), "b", 129), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 128);
    assert_eq!(
        p.putpages(&obj, 0, &pages(0, 128), PutMode::Sync),
        vec![PageResult::Ok; 128]
    );
    let got = where_(&p, &obj, 0..128);
    for (i, &(dev, page)) in got.iter().enumerate() {
        let i = i as u64;
        let want_dev = if (i / 32).is_multiple_of(2) { a } else { b };
        let want_page = (i / 64) * 32 + i % 32 + 1;
        assert_eq!((dev, page), (want_dev, want_page), "object page {i}");
    }
    assert_eq!(p.stats().counters.swapout, 4, "one write per stripe");
}

#[test]
fn interleave_1_alternates_devices_page_by_page() {
    let dir = tempdir();
    let p = pager_with(1, 32);
    let a = p
        .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
        .unwrap();
    let b = p
        .swapon(&area(dir.path(), "b", 64), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 16);
    p.putpages(&obj, 0, &pages(0, 16), PutMode::Sync);
    let got = where_(&p, &obj, 0..16);
    let want: Vec<_> = (0..16)
        .map(|i: u64| (if i.is_multiple_of(2) { a } else { b }, i / 2 + 1))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn interleave_0_fills_a_device_before_the_next() {
    let dir = tempdir();
    let p = pager_with(0, 32);
    let a = p
        .swapon(&area(dir.path(), "a", 41), SwaponOptions::default())
        .unwrap();
    let b = p
        .swapon(&area(dir.path(), "b", 64), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 60);
    assert_eq!(
        p.putpages(&obj, 0, &pages(0, 60), PutMode::Sync),
        vec![PageResult::Ok; 60]
    );
    let got = where_(&p, &obj, 0..60);
    let want: Vec<_> = (0..60)
        .map(|i| if i < 40 { (a, i + 1) } else { (b, i - 39) })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_cluster_is_trimmed_at_the_stripe_boundary_and_the_rest_goes_to_the_next_device() {
    let dir = tempdir();
    let p = pager_with(32, 32);
    let a = p
        .swapon(&area(dir.path(), "a", 129), SwaponOptions::default())
        .unwrap();
    let b = p
        .swapon(&area(dir.path(), "b", 129), SwaponOptions::default())
        .unwrap();
    let first = p.alloc_object(None, 5);
    p.putpages(&first, 0, &pages(0, 5), PutMode::Sync);
    let obj = p.alloc_object(None, 32);
    let before = p.stats().counters.swapout;
    p.putpages(&obj, 0, &pages(100, 32), PutMode::Sync);
    assert_eq!(
        p.stats().counters.swapout - before,
        2,
        "split in two writes"
    );
    let got = where_(&p, &obj, 0..32);
    let want: Vec<_> = (0..32)
        .map(|i| if i < 27 { (a, i + 6) } else { (b, i - 26) })
        .collect();
    assert_eq!(got, want);
    p.verify().unwrap();
}

#[test]
fn higher_priority_devices_are_used_first() {
    let dir = tempdir();
    let p = pager_with(32, 32);
    let low = p
        .swapon(&area(dir.path(), "low", 64), SwaponOptions::default())
        .unwrap();
    let opts = SwaponOptions {
        priority: 5,
        ..SwaponOptions::default()
    };
    let high = p.swapon(&area(dir.path(), "high", 17), opts).unwrap();
    let obj = p.alloc_object(None, 20);
    p.putpages(&obj, 0, &pages(0, 20), PutMode::Sync);
    let got = where_(&p, &obj, 0..20);
    assert!(got[..16].iter().all(|&(d, _)| d == high), "{got:?}");
    assert!(got[16..].iter().all(|&(d, _)| d == low), "{got:?}");
}

#[test]
fn getpages_reads_ahead_only_within_one_stripe() {
    let dir = tempdir();
    let p = pager_with(4, 32);
    p.swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 16);
    p.putpages(&obj, 0, &pages(0, 16), PutMode::Sync);
    let mut out = vec![0u8; 9 * device::PAGE_SIZE];
    // Page 5 is in the stripe of pages 4..8: three behind would cross into 0..4.
    let got = p.getpages(&obj, 5, 3, 5, &mut out).unwrap();
    assert_eq!(got, 4..8);
    assert_eq!(
        &out[device::PAGE_SIZE * 2..device::PAGE_SIZE * 6],
        &pages(4, 4)[..]
    );
    assert_eq!(p.haspage(&obj, 5), Some((5, 10)));
}

/// Issue #22: a put that continues an area's stashed stripe tail into the free blocks right
/// after it is one write, not the stash and then a second run from the blist. Two areas,
/// interleave 32: 28 pages on a, then 13 (4 end a's stripe, 9 stashed there; 9 start b's),
/// 23 more end b's stripe; the next 13 take a's stash of 9 and the 4 blocks after it, all
/// contiguous on a: one write. On both engines.
#[test]
fn a_run_continuing_a_stashed_stripe_tail_is_one_write() {
    for engine in common::ENGINES {
        let dir = tempdir();
        let p = Pager::new(PagerConfig {
            engine,
            max_cluster: 32,
            ..config(32)
        })
        .unwrap();
        let a = p
            .swapon(&area(dir.path(), "a", 129), SwaponOptions::default())
            .unwrap();
        p.swapon(&area(dir.path(), "b", 129), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 128);
        let mut at = 0;
        for n in [28, 13, 23] {
            let res = p.putpages(&obj, at, &pages(at, n), PutMode::Sync);
            assert_eq!(res, vec![PageResult::Ok; n as usize]);
            at += n;
        }
        let before = p.stats().counters.swapout;
        let res = p.putpages(&obj, at, &pages(at, 13), PutMode::Sync);
        assert_eq!(res, vec![PageResult::Ok; 13]);
        let writes = p.stats().counters.swapout - before;
        let got = where_(&p, &obj, at..at + 13);
        let want: Vec<(DeviceId, u64)> = (33..46).map(|page| (a, page)).collect();
        assert_eq!(got, want, "{engine:?}: the stash and what follows it, on a");
        assert_eq!(writes, 1, "{engine:?}: one contiguous run, one write");
        p.verify().unwrap();
    }
}
