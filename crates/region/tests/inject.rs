//! Every kernel call can fail: the model test of `model.rs` with failures injected into
//! the region's userfaultfd calls (`UFFDIO_COPY` stopping part way with `ENOMEM` or
//! `EEXIST`, `EAGAIN`, `EINTR`, a failed `UFFDIO_ZEROPAGE`, `UFFDIO_WRITEPROTECT`,
//! `MADV_DONTNEED` or poison), over several seeds, on both engines. Every load is checked
//! against a model of what each page must hold, and while the threads run the page table
//! is checked against the kernel's (`Region::verify`, `mincore`) again and again.
//!
//! Faults per engine: `REGION_INJECT_FAULTS` (default 100 000). A hang guard aborts the
//! process if the load stops making progress.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use region::{Region, RegionConfig, RegionStats, UffdFaults};

const PAGES: u64 = 256;
const THREADS: u64 = 4;
/// Failures per kind, in parts per million of calls: 3% each, about a fifth of all calls.
const PPM: u32 = 30_000;
/// How long the load may go without a fault served before it counts as hung.
const STALL: Duration = Duration::from_secs(60);

fn target_faults() -> u64 {
    std::env::var("REGION_INJECT_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn faults_of(s: &RegionStats) -> u64 {
    s.major_faults + s.zero_fills + s.hint_faults + s.wp_faults
}

/// One seed's run on `engine`: `THREADS` threads store and load random pages of a region
/// four times its limit until `faults` faults were served. Returns the region's stats.
/// One piece: set-up, the racing threads with the table checks beside them, and the final
/// check read as one scenario.
fn run(engine: device::EngineKind, seed: u64, faults: u64) -> Option<RegionStats> {
    let dir = common::tempdir();
    let swap = common::swap(dir.path(), engine, 2, PAGES + 64, false)?;
    let pager = &swap.pager;
    let injector = Arc::new(UffdFaults::all(seed, PPM));
    let region = Region::with_injector(
        pager,
        RegionConfig {
            len: PAGES * 4096,
            resident_limit: PAGES / 4 * 4096,
            read_around: 7,
            evict_batch: 16,
            ..RegionConfig::default()
        },
        Arc::clone(&injector),
    )
    .unwrap();
    let monitor = region.monitor();
    let model: Vec<Mutex<u64>> = (0..PAGES).map(|_| Mutex::new(0)).collect();
    let mismatches = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    // SAFETY: the mapping is page aligned, `len` a multiple of 8, and any thread may load
    // and store through `as_ptr` while the region lives (it outlives the scope below);
    // through `&region`, `verify` can check the table meanwhile.
    let mem: &[std::sync::atomic::AtomicU64] =
        unsafe { std::slice::from_raw_parts(region.as_ptr().cast(), region.len() / 8) };
    let mut checks = 0;
    std::thread::scope(|s| {
        for tid in 0..THREADS {
            let (model, mismatches, done) = (&model, &mismatches, &done);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed << 8 | tid);
                while !done.load(Ordering::Relaxed) {
                    let p = rng.random_range(0..PAGES);
                    common::touch(mem, model, mismatches, &mut rng, p);
                }
            });
        }
        // Watch progress and check the table against the kernel while the threads run.
        let mut last = (0, Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let st = monitor.stats();
            let served = faults_of(&st);
            if served >= faults {
                break;
            }
            if served > last.0 {
                last = (served, Instant::now());
            } else if last.1.elapsed() > STALL {
                eprintln!("hung at {served} faults: {st:?}");
                std::process::abort();
            }
            region.verify().unwrap();
            checks += 1;
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(
        checks > 0,
        "the table was never checked while the threads ran"
    );
    region.verify().unwrap();
    let stats = region.stats();
    eprintln!(
        "{engine:?} seed {seed}: {} injected, {stats:?}",
        injector.injected.load(Ordering::Relaxed)
    );
    assert_eq!(mismatches.load(Ordering::Relaxed), 0, "{stats:?}");
    assert!(stats.resident <= stats.resident_limit, "{stats:?}");
    assert_eq!(stats.fault_errors, 0, "a fault gave up: {stats:?}");
    assert_eq!(stats.read_errors, 0, "{stats:?}");
    assert!(!stats.dead, "{stats:?}");
    assert!(injector.injected.load(Ordering::Relaxed) > 0);
    drop(region);
    pager.verify().unwrap();
    assert_eq!(
        pager.stats().used_pages,
        0,
        "dropping the region frees its swap"
    );
    Some(stats)
}

/// Seeds until the engine has served the target number of faults.
fn every_injection_over_seeds(engine: device::EngineKind) {
    if !common::uffd_usable() {
        return;
    }
    let target = target_faults();
    let per_seed = (target / 4).max(1);
    let mut served = 0;
    let mut seed = 1;
    while served < target {
        let Some(st) = run(engine, seed, per_seed) else {
            return;
        };
        served += faults_of(&st);
        seed += 1;
    }
    eprintln!("{engine:?}: {served} faults over {} seeds", seed - 1);
}

#[test]
fn injected_kernel_call_failures_lose_no_store_and_hang_no_fault_threads_engine() {
    every_injection_over_seeds(device::EngineKind::ThreadPool);
}

#[test]
fn injected_kernel_call_failures_lose_no_store_and_hang_no_fault_io_uring() {
    every_injection_over_seeds(device::EngineKind::IoUring);
}
