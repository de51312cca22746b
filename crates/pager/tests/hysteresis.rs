//! Swap exhaustion: FAIL for pages without space, the seed's low/high-water hysteresis
//! (`swp_sizecheck`) with each event announced once, and recovery when space is freed.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use common::{area, page, pager, pages, tempdir};
use pager::{PageResult, PagerEvent, PutMode, SwaponOptions};

#[test]
fn filling_swap_fails_pages_and_announces_each_threshold_once() {
    let dir = tempdir();
    let p = pager(32); // lowat 16, hiwat 32
    let events = p.subscribe();
    p.swapon(&area(dir.path(), "a", 65), SwaponOptions::default())
        .unwrap(); // 64 blocks
    let obj = p.alloc_object(None, 100);
    for i in 0..48 {
        assert_eq!(
            p.putpages(&obj, i, &page(i), PutMode::Sync),
            vec![PageResult::Ok]
        );
    }
    let ev: Vec<_> = events.try_iter().collect();
    assert!(matches!(ev[..], [PagerEvent::DeviceAdded { .. }]), "{ev:?}");
    p.putpages(&obj, 48, &page(48), PutMode::Sync); // 15 free: below lowat
    p.putpages(&obj, 49, &page(49), PutMode::Sync);
    let ev: Vec<_> = events.try_iter().collect();
    assert_eq!(ev, vec![PagerEvent::AlmostFull { free: 15 }]);
    let res = p.putpages(&obj, 50, &pages(50, 20), PutMode::Sync);
    assert_eq!(res.iter().filter(|r| **r == PageResult::Ok).count(), 14);
    assert_eq!(res.iter().filter(|r| **r == PageResult::Fail).count(), 6);
    assert!(p.stats().hysteresis.full);
    assert_eq!(
        p.putpages(&obj, 70, &page(70), PutMode::Sync),
        vec![PageResult::Fail]
    );
    let ev: Vec<_> = events.try_iter().collect();
    assert_eq!(ev, vec![PagerEvent::Full], "full is announced once");
    assert_eq!(p.stats().counters.alloc_failures, 7);

    p.freespace(&obj, 0, 20); // 20 free: at or above lowat, not above hiwat
    let ev: Vec<_> = events.try_iter().collect();
    assert_eq!(ev, vec![PagerEvent::NotFull { free: 16 }]);
    assert!(p.stats().hysteresis.almost_full);
    p.freespace(&obj, 20, 20); // 40 free: above hiwat
    let ev: Vec<_> = events.try_iter().collect();
    assert_eq!(ev, vec![PagerEvent::NotAlmostFull { free: 33 }]);
    assert_eq!(
        p.putpages(&obj, 70, &page(70), PutMode::Sync),
        vec![PageResult::Ok]
    );
    p.verify().unwrap();
}

#[test]
fn reserve_is_all_or_nothing() {
    let dir = tempdir();
    let p = pager(32);
    p.swapon(&area(dir.path(), "a", 33), SwaponOptions::default())
        .unwrap(); // 32 blocks
    let obj = p.alloc_object(None, 100);
    p.reserve(&obj, 0, 20).unwrap();
    assert_eq!(obj.swapped_pages(), 20);
    assert!(p.reserve(&obj, 20, 13).is_err());
    assert_eq!(obj.swapped_pages(), 20);
    assert_eq!(p.stats().used_pages, 20);
    p.reserve(&obj, 20, 12).unwrap();
    assert_eq!(p.stats().free_pages, 0);
    p.verify().unwrap();
}

#[test]
fn no_area_left_is_not_almost_full() {
    let dir = tempdir();
    let p = pager(32); // lowat 16
    let events = p.subscribe();
    let a = p
        .swapon(&area(dir.path(), "a", 65), SwaponOptions::default())
        .unwrap();
    p.swapoff(a, pager::SwapoffOptions::default(), &mut |_, _| {})
        .unwrap();
    let ev: Vec<_> = events.try_iter().collect();
    assert!(
        !ev.iter()
            .any(|e| matches!(e, PagerEvent::AlmostFull { .. })),
        "{ev:?}"
    );
    assert!(!p.stats().hysteresis.almost_full);
}
