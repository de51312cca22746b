//! The operations one by one, on file-backed areas.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use common::{area, page, pager, pages, tempdir};
use device::PAGE_SIZE;
use pager::{Bio, PageResult, PagerError, PutMode, SwapoffOptions, SwaponOptions};

#[test]
fn putpages_then_getpages_returns_the_same_bytes() {
    let dir = tempdir();
    let p = pager(32);
    p.swapon(&area(dir.path(), "a", 256), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 100);
    let res = p.putpages(&obj, 10, &pages(1, 20), PutMode::Sync);
    assert_eq!(res, vec![PageResult::Ok; 20]);
    let mut out = vec![0u8; 5 * PAGE_SIZE];
    let got = p.getpages(&obj, 12, 2, 2, &mut out).unwrap();
    assert_eq!(got, 10..15);
    assert_eq!(out, pages(1, 5));
    p.verify().unwrap();
}

#[test]
fn getpages_of_a_page_without_swap_is_not_on_swap() {
    let dir = tempdir();
    let p = pager(32);
    p.swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 10);
    let mut out = vec![0u8; PAGE_SIZE];
    let err = p.getpages(&obj, 3, 0, 0, &mut out).unwrap_err();
    assert!(
        matches!(err, PagerError::NotOnSwap { pindex: 3, .. }),
        "{err}"
    );
}

#[test]
fn rewriting_a_page_frees_its_previous_block() {
    let dir = tempdir();
    let p = pager(32);
    p.swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 10);
    for round in 0..200 {
        assert_eq!(
            p.putpages(&obj, 0, &pages(round, 4), PutMode::Sync),
            vec![PageResult::Ok; 4]
        );
    }
    assert_eq!(p.stats().used_pages, 4);
    p.verify().unwrap();
}

#[test]
fn async_putpages_reports_pend_then_ok_in_the_callback() {
    let dir = tempdir();
    let p = pager(32);
    p.swapon(&area(dir.path(), "a", 256), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 100);
    let (tx, rx) = crossbeam_channel::unbounded();
    let cb = Box::new(move |d| tx.send(d).unwrap());
    let res = p.putpages(&obj, 0, &pages(7, 40), PutMode::Async(Some(cb)));
    assert_eq!(res, vec![PageResult::Pend; 40]);
    let done = rx.recv().unwrap();
    assert_eq!(done.results, vec![PageResult::Ok; 40]);
    p.wait_async();
    let mut out = vec![0u8; PAGE_SIZE];
    p.getpages(&obj, 39, 0, 0, &mut out).unwrap();
    assert_eq!(out, page(7 + 39));
}

#[test]
fn named_objects_are_found_again_and_dropping_frees_swap() {
    let dir = tempdir();
    let p = pager(32);
    p.swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
        .unwrap();
    let a = p.alloc_object(Some("shm"), 10);
    let b = p.alloc_object(Some("shm"), 10);
    assert!(a.same(&b));
    p.putpages(&a, 0, &pages(1, 3), PutMode::Sync);
    assert_eq!(p.stats().used_pages, 3);
    drop(a);
    assert!(p.lookup_object("shm").is_some());
    drop(b);
    assert!(p.lookup_object("shm").is_none());
    assert_eq!(p.stats().used_pages, 0);
}

#[test]
fn strategy_reads_zeroes_where_nothing_was_written_and_refuses_unaligned_io() {
    let dir = tempdir();
    let p = pager(32);
    p.swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 8);
    p.strategy(
        &obj,
        Bio::Write {
            offset: 2 * PAGE_SIZE as u64,
            data: &pages(3, 2),
        },
    )
    .unwrap();
    let mut buf = vec![1u8; 8 * PAGE_SIZE];
    p.strategy(
        &obj,
        Bio::Read {
            offset: 0,
            buf: &mut buf,
        },
    )
    .unwrap();
    assert!(buf[..2 * PAGE_SIZE].iter().all(|&b| b == 0));
    assert_eq!(&buf[2 * PAGE_SIZE..4 * PAGE_SIZE], &pages(3, 2)[..]);
    let err = p
        .strategy(
            &obj,
            Bio::Delete {
                offset: 100,
                len: 4096,
            },
        )
        .unwrap_err();
    assert!(matches!(err, PagerError::Unaligned { .. }), "{err}");
    assert_eq!(obj.swapped_pages(), 2);
    p.strategy(
        &obj,
        Bio::Delete {
            offset: 0,
            len: 8 * PAGE_SIZE as u64,
        },
    )
    .unwrap();
    assert_eq!(obj.swapped_pages(), 0);
}

#[test]
fn swapoff_moves_every_page_and_loses_none() {
    let dir = tempdir();
    let p = pager(4);
    let a = p
        .swapon(&area(dir.path(), "a", 128), SwaponOptions::default())
        .unwrap();
    let _b = p
        .swapon(&area(dir.path(), "b", 128), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 100);
    assert_eq!(
        p.putpages(&obj, 0, &pages(100, 64), PutMode::Sync),
        vec![PageResult::Ok; 64]
    );
    let mut calls = 0;
    let report = p
        .swapoff(a, SwapoffOptions::default(), &mut |_, _| calls += 1)
        .unwrap();
    assert_eq!(report.moved, 32);
    assert!(calls > 0);
    assert_eq!(p.devices().len(), 1);
    let mut out = vec![0u8; PAGE_SIZE];
    for i in 0..64 {
        p.getpages(&obj, i, 0, 0, &mut out).unwrap();
        assert_eq!(out, page(100 + i), "page {i}");
    }
    p.verify().unwrap();
}

#[test]
fn swapoff_refuses_up_front_when_the_others_cannot_hold_its_pages() {
    let dir = tempdir();
    let p = pager(0);
    let a = p
        .swapon(&area(dir.path(), "a", 128), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 100);
    p.putpages(&obj, 0, &pages(1, 60), PutMode::Sync);
    let _b = p
        .swapon(&area(dir.path(), "b", 32), SwaponOptions::default())
        .unwrap();
    let err = p
        .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "swapoff {}: not enough free swap: need 60 pages (240K), have 31 (124K)",
            dir.path().join("swapkit-a.swap").display()
        )
    );
    assert_eq!(p.devices().len(), 2);
    p.verify().unwrap();
}

#[test]
fn swapon_refuses_the_same_area_twice() {
    let dir = tempdir();
    let p = pager(32);
    let path = area(dir.path(), "a", 64);
    p.swapon(&path, SwaponOptions::default()).unwrap();
    let err = p.swapon(&path, SwaponOptions::default()).unwrap_err();
    assert!(matches!(err, PagerError::AlreadyOn { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{}: already on (swap device 0)", path.display())
    );
}

#[test]
fn stats_describe_devices_pools_counters_and_objects() {
    let dir = tempdir();
    let p = pager(32);
    let opts = SwaponOptions {
        priority: 3,
        ..SwaponOptions::default()
    };
    p.swapon(&area(dir.path(), "a", 65), opts).unwrap();
    let named = p.alloc_object(Some("n"), 64);
    let _anon = p.alloc_object(None, 64);
    p.putpages(&named, 0, &pages(0, 10), PutMode::Sync);
    let mut out = vec![0u8; 10 * PAGE_SIZE];
    let got = p.getpages(&named, 0, 0, 9, &mut out).unwrap();
    assert_eq!(got, 0..8, "one read is at most max_cluster pages");
    let s = p.stats();
    assert_eq!((s.total_pages, s.used_pages, s.free_pages), (64, 10, 54));
    assert_eq!((s.objects, s.named_objects), (2, 1));
    assert!(s.meta_bytes > 0);
    assert_eq!(s.counters.swapout, 2, "max_cluster 8: two writes");
    assert_eq!(
        (s.counters.swapin, s.counters.pages_in, s.counters.pages_out),
        (1, 8, 10)
    );
    assert_eq!(s.pbufs.read.max, 8);
    assert_eq!(s.pbufs.sync_write.max, 4);
    assert_eq!(s.pbufs.async_write.max, 4);
    let d = &s.devices[0];
    assert_eq!(
        (d.priority, d.total_pages, d.used_pages, d.bad_pages),
        (3, 64, 10, 0)
    );
    assert_eq!((d.io.writes, d.io.pages_written), (2, 10));
    // Fragmentation walks the free list: only when asked for (#12).
    assert_eq!(
        d.frag,
        pager::FragStats::default(),
        "stats() computes no frag"
    );
    let with = p.stats_with_frag();
    let d = &with.devices[0];
    assert_eq!(p.frag(pager::DeviceId(d.id)).as_ref(), Some(&d.frag));
    assert_eq!(d.frag.free_ranges, 1);
    assert_eq!(d.frag.largest, 54);
    assert!(
        d.frag.text.contains("number of maximal free ranges: 1"),
        "{}",
        d.frag.text
    );
    assert_eq!(d.kind, "file");
    assert_eq!(d.uuid.len(), 36);
    let json = serde_json_roundtrip(&with);
    assert_eq!(json, with);
    drop((named, _anon));
    let s = p.stats();
    assert_eq!((s.objects, s.named_objects, s.meta_bytes), (0, 0, 0));
}

fn serde_json_roundtrip(s: &pager::PagerStats) -> pager::PagerStats {
    // serde is the contract with the daemon; a debug-format roundtrip is not enough, so
    // use the same JSON the daemon sends.
    serde_json::from_str(&serde_json::to_string(s).unwrap()).unwrap()
}

#[test]
fn set_swap_async_max_is_clamped_as_the_seed_does() {
    let p = pager(32); // nswbuf 16
    assert_eq!(p.set_swap_async_max(0), 1);
    assert_eq!(p.set_swap_async_max(100), 8);
    assert_eq!(p.set_swap_async_max(5), 5);
    assert_eq!(p.stats().tunables.swap_async_max, 5);
    assert_eq!(p.stats().pbufs.async_write.max, 5);
}

/// Issue #13: one global limit of 4 async clusters left several devices mostly idle; the
/// limit is per area in service, the total still at most `nswbuf / 2`.
#[test]
fn the_async_limit_applies_per_area_in_service() {
    for engine in common::ENGINES {
        let dir = tempdir();
        let p = common::pager_on(engine, 32); // nswbuf 16: 8 async pbufs at most
        let max = || p.stats().pbufs.async_write.max;
        assert_eq!(p.set_swap_async_max(3), 3);
        assert_eq!(max(), 3, "no area yet: as one");
        let on = |name: &str| {
            p.swapon(&area(dir.path(), name, 64), SwaponOptions::default())
                .unwrap()
        };
        let a = on("a");
        assert_eq!(max(), 3, "{engine:?}");
        let b = on("b");
        assert_eq!(max(), 6, "{engine:?}: 3 per area");
        let c = on("c");
        assert_eq!(max(), 8, "{engine:?}: nswbuf / 2 in all");
        assert_eq!(p.set_swap_async_max(2), 2);
        assert_eq!(max(), 6, "{engine:?}: live");
        assert_eq!(p.stats().tunables.swap_async_max, 2);
        p.swapoff(c, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!(max(), 4, "{engine:?}: swapoff gives its share back");
        // An area whose writes keep failing takes no new writes, nor their pbufs.
        p.area(b).unwrap().faults().fail_writes(0..u64::MAX);
        let obj = p.alloc_object(None, 64);
        for k in 0..pager::FAILING_AFTER as u64 {
            p.putpages(&obj, k * 32, &pages(k, 32), PutMode::Sync);
        }
        assert_eq!(max(), 2, "{engine:?}: b is failing");
        p.verify().unwrap();
        drop(obj);
        p.swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
    }
}

#[test]
fn swapoff_reports_progress_up_to_the_total_and_catches_writes_in_flight() {
    let dir = tempdir();
    let p = pager(8);
    let a = p
        .swapon(&area(dir.path(), "a", 200), SwaponOptions::default())
        .unwrap();
    let _b = p
        .swapon(&area(dir.path(), "b", 200), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 160);
    p.putpages(&obj, 0, &pages(0, 96), PutMode::Sync);
    p.area(a)
        .unwrap()
        .faults()
        .set_latency(std::time::Duration::from_millis(5));
    // Async writes still in flight to `a` when swapoff begins.
    p.putpages(&obj, 96, &pages(96, 64), PutMode::Async(None));
    let mut seen = Vec::new();
    let report = p
        .swapoff(a, SwapoffOptions::default(), &mut |done, total| {
            seen.push((done, total))
        })
        .unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress goes forward: {seen:?}"
    );
    let &(done, total) = seen.last().unwrap();
    assert_eq!(done, total);
    assert_eq!(report.moved, done);
    assert_eq!(report.lost, 0);
    p.wait_async();
    let mut out = vec![0u8; PAGE_SIZE];
    for i in 0..160 {
        p.getpages(&obj, i, 0, 0, &mut out).unwrap();
        assert_eq!(out, page(i), "page {i}");
    }
    p.verify().unwrap();
}

#[test]
fn areas_get_block_ranges_with_a_gap_and_reuse_freed_ranges() {
    let dir = tempdir();
    let p = pager(32);
    let a = p
        .swapon(&area(dir.path(), "a", 65), SwaponOptions::default())
        .unwrap();
    p.swapon(&area(dir.path(), "b", 65), SwaponOptions::default())
        .unwrap();
    let firsts = |p: &pager::Pager| {
        p.stats()
            .devices
            .iter()
            .map(|d| (d.path.clone(), d.first_block))
            .collect::<Vec<_>>()
    };
    let f = firsts(&p);
    assert_eq!((f[0].1, f[1].1), (0, 65), "64 blocks, then a one-block gap");
    p.swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
        .unwrap();
    p.swapon(&area(dir.path(), "c", 33), SwaponOptions::default())
        .unwrap();
    p.swapon(&area(dir.path(), "d", 65), SwaponOptions::default())
        .unwrap();
    let f = firsts(&p);
    assert_eq!(
        f.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![65, 0, 130],
        "{f:?}"
    );
}

#[test]
fn async_writes_beyond_swap_async_max_wait_for_a_pbuf_and_the_wait_is_counted() {
    let dir = tempdir();
    let p = pager(32);
    let a = p
        .swapon(&area(dir.path(), "a", 128), SwaponOptions::default())
        .unwrap();
    p.area(a)
        .unwrap()
        .faults()
        .set_latency(std::time::Duration::from_millis(100));
    assert_eq!(p.set_swap_async_max(1), 1);
    let obj = p.alloc_object(None, 32);
    for k in 0..4 {
        let res = p.putpages(&obj, k * 8, &pages(k * 8, 8), PutMode::Async(None));
        assert_eq!(res, vec![PageResult::Pend; 8]);
        let pool = p.stats().pbufs.async_write;
        assert!(pool.in_use <= 1, "{pool:?}");
    }
    p.wait_async();
    let pool = p.stats().pbufs.async_write;
    assert_eq!((pool.in_use, pool.max), (0, 1));
    assert!(pool.waits >= 1, "{pool:?}");
    let mut out = vec![0u8; 8 * PAGE_SIZE];
    p.getpages(&obj, 24, 0, 7, &mut out).unwrap();
    assert_eq!(out, pages(24, 8));
}

#[test]
fn a_config_file_may_give_only_some_tunables() {
    let cfg: pager::PagerConfig =
        serde_json::from_str(r#"{"interleave": 8, "swap_async_max": 16}"#).unwrap();
    let want = pager::PagerConfig {
        interleave: 8,
        swap_async_max: 16,
        ..pager::PagerConfig::default()
    };
    assert_eq!(cfg, want);
    let back: pager::PagerConfig =
        serde_json::from_str(&serde_json::to_string(&want).unwrap()).unwrap();
    assert_eq!(back, want);
}

/// The last handle on a pager may go away inside a completion, on an engine thread: the
/// engine must not join its own thread there (one guard, in the engine, since #17).
#[test]
fn the_last_pager_handle_may_be_dropped_in_an_async_callback() {
    for engine in common::ENGINES {
        let dir = tempdir();
        let path = area(dir.path(), "a", 64);
        let p = common::pager_on(engine, 32);
        p.swapon(&path, SwaponOptions::default()).unwrap();
        let obj = p.alloc_object(None, 8);
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<bool>(1);
        let mine = p.clone();
        let cb = Box::new(move |d: pager::AsyncDone| {
            // The test lets go of its handles first: this one is the last but the
            // completion's own.
            go_rx.recv().unwrap();
            drop(mine);
            done_tx
                .send(d.results.iter().all(|r| *r == PageResult::Ok))
                .unwrap();
        });
        p.putpages(&obj, 0, &pages(0, 8), PutMode::Async(Some(cb)));
        drop((obj, p));
        go_tx.send(()).unwrap();
        let ok = done_rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(ok, Ok(true), "{engine:?}");
        // The area is closed once the core is gone: another pager can take it.
        let again = common::pager_on(engine, 32);
        let t = std::time::Instant::now();
        while again.swapon(&path, SwaponOptions::default()).is_err() {
            assert!(
                t.elapsed().as_secs() < 30,
                "{engine:?}: the core never went"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// A synchronous page-in does its I/O on the caller's thread (`Engine::submit_wait`), so it
/// completes while every engine thread is stuck in a slow async callback (issue #13: the
/// hand-off of each completion through an engine thread was most of a QD-1 page-in's cost).
/// Before, getpages waited for an engine thread to deliver its completion and hung here.
#[test]
fn getpages_completes_while_every_engine_thread_is_busy_in_a_callback() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    // The thread pool's workers (the engine's default) or the io_uring reaper.
    const POOL_THREADS: usize = 16;
    for engine in common::ENGINES {
        let dir = tempdir();
        let path = area(dir.path(), "a", 256);
        let p = common::pager_on(engine, 32);
        p.swapon(&path, SwaponOptions::default()).unwrap();
        let obj = p.alloc_object(None, 8);
        assert!(
            p.putpages(&obj, 0, &pages(7, 8), PutMode::Sync)
                .iter()
                .all(|r| *r == PageResult::Ok)
        );
        // Each async putpages' callback that runs on an engine thread (not inline, on this
        // one, when the write was done before putpages returned) holds that thread until
        // `go` is closed.
        let busy = std::sync::Arc::new(AtomicUsize::new(0));
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(0);
        let others = p.alloc_object(None, 64);
        let blockers = match engine {
            device::EngineKind::IoUring => 1,
            _ => POOL_THREADS,
        };
        let mut k = 0;
        while busy.load(Ordering::SeqCst) < blockers {
            assert!(k < 64, "{engine:?}: callbacks kept running inline");
            let (entered, started, go_rx) = (
                std::sync::Arc::clone(&busy),
                std::sync::Arc::clone(&ran),
                go_rx.clone(),
            );
            let cb = Box::new(move |_: pager::AsyncDone| {
                let name = std::thread::current().name().map(str::to_owned);
                if name.is_some_and(|n| n.starts_with("swapkit-")) {
                    entered.fetch_add(1, Ordering::SeqCst);
                    started.fetch_add(1, Ordering::SeqCst);
                    let _ = go_rx.recv();
                } else {
                    started.fetch_add(1, Ordering::SeqCst);
                }
            });
            p.putpages(&others, k, &page(100 + k), PutMode::Async(Some(cb)));
            k += 1;
            let t = std::time::Instant::now();
            while ran.load(Ordering::SeqCst) < k as usize {
                assert!(
                    t.elapsed().as_secs() < 30,
                    "{engine:?}: callback {k} never ran"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::scope(|s| {
            let (p, obj) = (&p, &obj);
            s.spawn(move || {
                let mut out = vec![0u8; 8 * PAGE_SIZE];
                let got = p.getpages(obj, 0, 0, 7, &mut out).map(|r| (r, out));
                let _ = tx.send(got);
            });
            let got = rx.recv_timeout(Duration::from_secs(30));
            // Let the callbacks (and so the engine) go before judging, so a failure
            // does not leave the scope's thread hanging.
            drop(go_tx);
            let (range, out) = got
                .unwrap_or_else(|_| panic!("{engine:?}: getpages waited for an engine thread"))
                .unwrap();
            assert_eq!(range, 0..8, "{engine:?}");
            assert!(out == pages(7, 8), "{engine:?}: wrong bytes");
        });
        p.wait_async();
    }
}
