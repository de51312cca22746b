//! The model test: several threads store and load random pages of a region four times its
//! resident limit while the evictor runs; every load is checked against a model of what
//! each page must hold. Touches per engine: `REGION_TOUCHES` (default 20 000).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use region::{Region, RegionConfig};

fn touches() -> u64 {
    std::env::var("REGION_TOUCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// One run: `threads` threads, `pages` pages, a limit of `pages / 4`.
/// One piece: set-up, the racing threads and the final check against the model read as
/// one scenario, top to bottom.
fn run(engine: device::EngineKind, threads: u64, pages: u64, loops: bool) {
    if !common::uffd_usable() {
        return;
    }
    let dir = common::tempdir();
    let Some(swap) = common::swap(dir.path(), engine, 2, pages + 64, loops) else {
        return;
    };
    let pager = &swap.pager;
    let mut region = Region::new(
        pager,
        RegionConfig {
            len: pages * 4096,
            resident_limit: pages / 4 * 4096,
            read_around: 7,
            evict_batch: 16,
            ..RegionConfig::default()
        },
    )
    .unwrap();
    // Per page: the version it holds (0: never written, reads as zeroes). A thread holds
    // the page's lock across its access, so the model is exact under concurrency; pages
    // are shared by all threads, so evictions race with every thread's stores.
    let model: Vec<Mutex<u64>> = (0..pages).map(|_| Mutex::new(0)).collect();
    let total = touches();
    let mem = region.as_atomic_u64s();
    let mismatches = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for tid in 0..threads {
            let (model, mismatches) = (&model, &mismatches);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(0x5eed + tid);
                for _ in 0..total / threads {
                    let p = rng.random_range(0..pages);
                    common::touch(mem, model, mismatches, &mut rng, p);
                }
            });
        }
    });
    let stats = region.stats();
    eprintln!("{engine:?}: {total} touches, {stats:?}");
    assert_eq!(mismatches.load(Ordering::Relaxed), 0);
    assert!(stats.resident <= stats.resident_limit);
    assert!(
        stats.evictions_dirty > 0,
        "the test must make eviction write"
    );
    assert!(stats.major_faults > 0, "the test must read pages back");
    assert_eq!(stats.read_errors, 0);
    drop(region);
    pager.verify().unwrap();
    assert_eq!(
        pager.stats().used_pages,
        0,
        "dropping the region frees its swap"
    );
}

#[test]
fn threads_storing_and_loading_random_pages_see_every_store_threads_engine() {
    run(device::EngineKind::ThreadPool, 4, 256, false);
}

#[test]
fn threads_storing_and_loading_random_pages_see_every_store_io_uring() {
    run(device::EngineKind::IoUring, 4, 256, false);
}

#[test]
fn threads_storing_and_loading_random_pages_see_every_store_on_loop_devices() {
    run(device::EngineKind::IoUring, 4, 256, true);
    run(device::EngineKind::ThreadPool, 4, 256, true);
}
