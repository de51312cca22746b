//! Regression tests for the four pager defects of issue #11 (§4), each on both engines:
//! overlapping writes of one page, `copy` against completions, stripe rotation after a
//! trimmed run, and swapoff holding freed blocks for a whole pass.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::time::Duration;

use common::{area, config, page, pages, tempdir};
use device::{EngineKind, PAGE_SIZE};
use pager::{PageResult, Pager, PagerConfig, PutMode, SwapoffOptions, SwaponOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const ENGINES: [EngineKind; 2] = [EngineKind::ThreadPool, EngineKind::IoUring];

fn pager_on(engine: EngineKind, interleave: u64) -> Pager {
    Pager::new(PagerConfig {
        engine,
        ..config(interleave)
    })
    .unwrap()
}

/// Defect 1: async put A of a page, then a sync put B of the same page whose write fails.
/// A was acknowledged (`Pend`) and B was not, so the page must read back as A — before the
/// fix A's block was freed as "superseded" when it completed, B failed, and the page was
/// gone (`NotOnSwap`).
#[test]
fn an_acknowledged_async_write_survives_a_later_failing_write_of_the_same_page() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 32);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 4);
        let faults = p.area(a).unwrap();
        faults.faults().set_latency(Duration::from_millis(50));
        // A lands on page 1 of the area; every later block fails.
        faults.faults().fail_writes(2..64);
        assert_eq!(
            p.putpages(&obj, 0, &page(1), PutMode::Async(None)),
            vec![PageResult::Pend]
        );
        assert_eq!(
            p.putpages(&obj, 0, &page(2), PutMode::Sync),
            vec![PageResult::Error],
            "{engine:?}"
        );
        p.wait_async();
        faults.faults().clear();
        let mut out = vec![0u8; PAGE_SIZE];
        p.getpages(&obj, 0, 0, 0, &mut out)
            .unwrap_or_else(|e| panic!("{engine:?}: acknowledged page lost: {e}"));
        assert!(out == page(1), "{engine:?}: not the acknowledged bytes");
        p.verify().unwrap();
    }
}

/// Defect 2: `copy` waited for the source's write while holding the destination's lock; a
/// destination write completing meanwhile blocked the engine's completion thread on that
/// lock, and the source's completion queued behind it forever (io_uring has one reaper).
/// The source's write is made slower than the destination's so the destination's
/// completion arrives while `copy` waits.
#[test]
fn copy_while_writes_of_both_objects_are_in_flight_does_not_deadlock() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let slow = p
            .swapon(&area(dir.path(), "slow", 64), SwaponOptions::default())
            .unwrap();
        p.area(slow)
            .unwrap()
            .faults()
            .set_latency(Duration::from_millis(400));
        let src = p.alloc_object(None, 4);
        let dst = p.alloc_object(None, 4);
        assert_eq!(
            p.putpages(&src, 0, &page(1), PutMode::Async(None)),
            vec![PageResult::Pend]
        );
        // The destination's write goes to a faster area of higher priority.
        let fast = p
            .swapon(
                &area(dir.path(), "fast", 64),
                SwaponOptions {
                    priority: 5,
                    ..SwaponOptions::default()
                },
            )
            .unwrap();
        p.area(fast)
            .unwrap()
            .faults()
            .set_latency(Duration::from_millis(100));
        assert_eq!(
            p.putpages(&dst, 1, &page(2), PutMode::Async(None)),
            vec![PageResult::Pend]
        );
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (p2, s2, d2) = (p.clone(), src.clone(), dst.clone());
        std::thread::spawn(move || {
            p2.copy(&s2, &d2, 0, false);
            let _ = tx.send(());
        });
        // Not a timing goal: a deadlock detector with a wide margin.
        assert!(
            rx.recv_timeout(Duration::from_secs(30)).is_ok(),
            "{engine:?}: copy deadlocked against a completion"
        );
        p.wait_async();
        let mut out = vec![0u8; PAGE_SIZE];
        for (pi, tag) in [(0, 1), (1, 2)] {
            p.getpages(&dst, pi, 0, 0, &mut out).unwrap();
            assert!(out == page(tag), "{engine:?}: page {pi}");
        }
        p.verify().unwrap();
    }
}

/// Defect 3: with interleave 32 over 4 equal areas, 300 pages written front to back in
/// calls of random sizes must stripe exactly as one big call does: 96, 76, 64, 64 pages.
/// Before the fix the tail trimmed at a stripe end was freed behind the blist's cursor, the
/// area's next run started past that hole and rotated too early.
#[test]
fn a_sequential_pageout_in_random_sized_calls_stripes_exactly() {
    for engine in ENGINES {
        for seed in 0..8 {
            let dir = tempdir();
            let p = Pager::new(PagerConfig {
                max_cluster: 32,
                engine,
                ..config(32)
            })
            .unwrap();
            let devs: Vec<_> = (0..4)
                .map(|i| {
                    p.swapon(
                        &area(dir.path(), &format!("a{i}"), 257),
                        SwaponOptions::default(),
                    )
                    .unwrap()
                })
                .collect();
            let obj = p.alloc_object(None, 300);
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut at = 0;
            while at < 300 {
                let n = rng.random_range(1..=40u64).min(300 - at);
                let res = p.putpages(&obj, at, &pages(at, n), PutMode::Sync);
                assert!(res.iter().all(|r| *r == PageResult::Ok));
                at += n;
            }
            let mut per = [0u64; 4];
            for i in 0..300 {
                let (dev, page) = p.locate(&obj, i).unwrap();
                let k = devs.iter().position(|d| *d == dev).unwrap();
                per[k] += 1;
                // Stripe s of the pageout is stripe s / 4 of area s % 4.
                let s = i / 32;
                assert_eq!(
                    (k as u64, page),
                    (s % 4, (s / 4) * 32 + i % 32 + 1),
                    "{engine:?} seed {seed}: page {i}"
                );
            }
            assert_eq!(per, [96, 76, 64, 64], "{engine:?} seed {seed}");
            p.verify().unwrap();
        }
    }
}

/// Defect 4: blocks freed by a client while a swapoff pass runs go back at once (no read of
/// them is in flight), not when the pass ends. The progress callback runs between the
/// pass's clusters: there the object frees its pages on the other area, and their blocks
/// must be free before the pass goes on.
#[test]
fn blocks_freed_during_a_swapoff_pass_are_free_at_once() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let a = p
            .swapon(&area(dir.path(), "a", 128), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 200);
        assert_eq!(
            p.putpages(&obj, 0, &pages(0, 64), PutMode::Sync),
            vec![PageResult::Ok; 64]
        );
        // b is preferred (higher priority): the next pages land there.
        let b = p
            .swapon(
                &area(dir.path(), "b", 256),
                SwaponOptions {
                    priority: 1,
                    ..SwaponOptions::default()
                },
            )
            .unwrap();
        assert_eq!(
            p.putpages(&obj, 100, &pages(100, 64), PutMode::Sync),
            vec![PageResult::Ok; 64]
        );
        let mut freed_at_once = None;
        let (p2, o2) = (p.clone(), obj.clone());
        p.swapoff(a, SwapoffOptions::default(), &mut |_, _| {
            if freed_at_once.is_none() {
                let before = p2
                    .stats()
                    .devices
                    .iter()
                    .find(|d| d.id == b.0)
                    .unwrap()
                    .used_pages;
                p2.freespace(&o2, 100, 64);
                let after = p2
                    .stats()
                    .devices
                    .iter()
                    .find(|d| d.id == b.0)
                    .unwrap()
                    .used_pages;
                freed_at_once = Some(before - after);
            }
        })
        .unwrap();
        let moved = 64;
        let freed = freed_at_once.unwrap();
        assert_eq!(
            freed, 64,
            "{engine:?}: blocks freed during the pass were held back"
        );
        let mut out = vec![0u8; PAGE_SIZE];
        for i in 0..moved {
            p.getpages(&obj, i, 0, 0, &mut out).unwrap();
            assert!(out == page(i), "{engine:?}: page {i}");
        }
        p.verify().unwrap();
    }
}
