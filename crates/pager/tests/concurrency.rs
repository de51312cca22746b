//! Many threads at once: workers page private and shared objects (sync and async) while
//! another thread takes areas off and puts them back, and a monitor polls `stats()`.
//! Every read is checked as it happens, and everything again at the end.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{area, config, page, tempdir};
use device::{EngineKind, PAGE_SIZE};
use pager::{
    Object, PageResult, Pager, PagerConfig, PagerError, PutMode, SwapoffOptions, SwaponOptions,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const WORKERS: u64 = 4;
const SLICE: u64 = 48;
const ROUNDS: usize = 400;

/// One worker: its own object and its own slice of the shared one, checked against a
/// private model. Returns the models for the final check.
fn worker(
    p: &Pager,
    own: &Object,
    shared: &Object,
    w: u64,
) -> (HashMap<u64, u64>, HashMap<u64, u64>) {
    let mut rng = SmallRng::seed_from_u64(w);
    let mut mine: HashMap<u64, u64> = HashMap::new();
    let mut ours: HashMap<u64, u64> = HashMap::new();
    let mut out = vec![0u8; PAGE_SIZE];
    for round in 0..ROUNDS {
        let use_shared = rng.random_bool(0.5);
        let (obj, model, base) = if use_shared {
            (shared, &mut ours, w * SLICE)
        } else {
            (own, &mut mine, 0)
        };
        let i = base + rng.random_range(0..SLICE);
        match rng.random_range(0..10) {
            0..=3 => {
                let n = rng.random_range(1..=6).min(base + SLICE - i);
                let tag = (w << 40) | ((round as u64) << 8);
                let data: Vec<u8> = (0..n).flat_map(|k| page(tag + k)).collect();
                let mode = if rng.random_bool(0.5) {
                    PutMode::Async(None)
                } else {
                    PutMode::Sync
                };
                let res = p.putpages(obj, i, &data, mode);
                for (k, r) in res.iter().enumerate() {
                    assert_ne!(*r, PageResult::Error, "no faults here");
                    if matches!(r, PageResult::Ok | PageResult::Pend) {
                        model.insert(i + k as u64, tag + k as u64);
                    }
                }
            }
            4..=7 => match (p.getpages(obj, i, 0, 0, &mut out), model.get(&i)) {
                (Ok(_), Some(&t)) => assert!(out == page(t), "worker {w} page {i}: wrong data"),
                (Err(PagerError::NotOnSwap { .. }), None) => {}
                (got, want) => panic!("worker {w} page {i}: got {got:?}, model {want:?}"),
            },
            8 => {
                p.unswapped(obj, i);
                model.remove(&i);
            }
            _ => {
                let n = p.set_swap_async_max(rng.random_range(1..8));
                assert!((1..=8).contains(&n));
            }
        }
    }
    (mine, ours)
}

#[test]
fn threads_paging_during_swapoff_and_swapon_see_correct_data_throughout() {
    paging_during_swapoff_and_swapon(EngineKind::ThreadPool);
}

/// The same on the default engine (io_uring where the kernel allows it): its completions
/// all run on one reaper thread.
#[test]
fn io_uring_keeps_every_page_correct_under_threads_and_swapoff() {
    paging_during_swapoff_and_swapon(EngineKind::IoUring);
}

fn paging_during_swapoff_and_swapon(engine: EngineKind) {
    let dir = tempdir();
    let p = Pager::new(PagerConfig {
        engine,
        ..config(4)
    })
    .unwrap();
    let paths: Vec<_> = (0..3)
        .map(|i| area(dir.path(), &format!("c{i}"), 400))
        .collect();
    for path in &paths {
        p.swapon(path, SwaponOptions::default()).unwrap();
    }
    let shared = p.alloc_object(Some("shared"), WORKERS * SLICE);
    let stop = Arc::new(AtomicBool::new(false));
    let (models, swapoffs) = std::thread::scope(|s| {
        let swapper = s.spawn(|| {
            let mut done = 0;
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let path = &paths[k % paths.len()];
                k += 1;
                let Some(id) = p.device_id(path) else {
                    continue;
                };
                match p.swapoff(id, SwapoffOptions::default(), &mut |_, _| {}) {
                    Ok(_) => {
                        done += 1;
                        p.swapon(path, SwaponOptions::default()).unwrap();
                    }
                    Err(PagerError::NotEnoughSpace { .. }) => {}
                    Err(e) => panic!("swapoff: {e}"),
                }
            }
            done
        });
        let monitor = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let st = p.stats();
                assert!(st.used_pages <= st.total_pages);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (p, shared) = (p.clone(), shared.clone());
                s.spawn(move || {
                    let own = p.alloc_object(None, SLICE);
                    let (mine, ours) = worker(&p, &own, &shared, w);
                    (own, mine, ours)
                })
            })
            .collect();
        let models: Vec<_> = workers.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        monitor.join().unwrap();
        (models, swapper.join().unwrap())
    });
    assert!(swapoffs > 0, "the swapper never got an area off");
    p.wait_async();
    p.verify().unwrap();
    let mut out = vec![0u8; PAGE_SIZE];
    for (own, mine, ours) in &models {
        for (obj, model) in [(own, mine), (&shared, ours)] {
            for (&i, &t) in model {
                p.getpages(obj, i, 0, 0, &mut out).unwrap();
                assert!(out == page(t), "page {i} wrong at the end");
            }
        }
    }
    drop(models);
    drop(shared);
    assert_eq!(p.stats().used_pages, 0);
    p.verify().unwrap();
}

/// The integrity rule under threads and faults, on both engines: 4 workers put (sync and
/// async, overlapping on their own pages) and read their own objects, while another thread
/// arms and clears write faults on the areas (so writes fail, are retried elsewhere, and
/// areas go failing) and takes areas off and back on. Every read is the last acknowledged
/// bytes or an error; never other bytes.
#[test]
fn under_threads_and_write_faults_every_read_is_the_last_acknowledged_bytes_or_an_error() {
    for engine in [EngineKind::ThreadPool, EngineKind::IoUring] {
        faulty_paging(engine);
    }
}

fn faulty_paging(engine: EngineKind) {
    let dir = tempdir();
    let p = Pager::new(PagerConfig {
        engine,
        ..config(4)
    })
    .unwrap();
    let paths: Vec<_> = (0..3)
        .map(|i| area(dir.path(), &format!("f{i}"), 300))
        .collect();
    for path in &paths {
        p.swapon(path, SwaponOptions::default()).unwrap();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let chaos = s.spawn(|| {
            let mut rng = SmallRng::seed_from_u64(99);
            while !stop.load(Ordering::Relaxed) {
                let path = &paths[rng.random_range(0..paths.len())];
                let Some(id) = p.device_id(path) else {
                    continue;
                };
                match rng.random_range(0..10) {
                    0..=3 => {
                        if let Some(a) = p.area(id) {
                            let at = rng.random_range(1..300);
                            a.faults().fail_writes(at..at + rng.random_range(1..16));
                        }
                    }
                    4..=7 => {
                        if let Some(a) = p.area(id) {
                            a.faults().clear();
                        }
                    }
                    _ => {
                        // Off and on again: the way back for an area marked failing.
                        if p.swapoff(id, SwapoffOptions::default(), &mut |_, _| {})
                            .is_ok()
                        {
                            p.swapon(path, SwaponOptions::default()).unwrap();
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        });
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let p = p.clone();
                s.spawn(move || faulty_worker(&p, w))
            })
            .collect();
        for h in workers {
            h.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        chaos.join().unwrap();
    });
    p.wait_async();
    p.verify().unwrap();
    assert!(
        p.stats().counters.write_errors > 0,
        "{engine:?}: no write failed, the test proved nothing"
    );
}

/// One worker of `faulty_paging`: its own object, a model of acknowledged tags, every
/// read checked: right bytes or an error.
fn faulty_worker(p: &Pager, w: u64) {
    let mut rng = SmallRng::seed_from_u64(1000 + w);
    let obj = p.alloc_object(None, SLICE);
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut out = vec![0u8; PAGE_SIZE];
    for round in 0..ROUNDS {
        let i = rng.random_range(0..SLICE);
        if rng.random_bool(0.5) {
            let n = rng.random_range(1..=4).min(SLICE - i);
            let tag = (w << 40) | ((round as u64) << 8);
            let data: Vec<u8> = (0..n).flat_map(|k| page(tag + k)).collect();
            let mode = if rng.random_bool(0.5) {
                PutMode::Async(None)
            } else {
                PutMode::Sync
            };
            for (k, r) in p.putpages(&obj, i, &data, mode).iter().enumerate() {
                if matches!(r, PageResult::Ok | PageResult::Pend) {
                    model.insert(i + k as u64, tag + k as u64);
                }
            }
        } else {
            match p.getpages(&obj, i, 0, 0, &mut out) {
                Ok(_) => {
                    let want = model.get(&i).copied();
                    assert!(
                        want.is_some_and(|t| out == page(t)),
                        "{w}: page {i} read wrong bytes (want {want:?})"
                    );
                }
                Err(PagerError::NotOnSwap { .. }) => {
                    assert!(!model.contains_key(&i), "{w}: acknowledged page {i} gone");
                }
                Err(_) => {}
            }
        }
    }
}
