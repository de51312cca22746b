//! Single-threaded behaviour on both engines: dirty tracking, dropping frees all swap,
//! swap full blocks eviction without losing a page.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use device::MkswapOptions;
use pager::SwaponOptions;
use region::{Region, RegionConfig};

use common::{ENGINES, stamp};

const WORDS: usize = 512;

fn config(pages: u64, limit: u64) -> RegionConfig {
    RegionConfig {
        len: pages * 4096,
        resident_limit: limit * 4096,
        read_around: 3,
        evict_batch: 4,
        ..RegionConfig::default()
    }
}

fn write_page(mem: &[std::sync::atomic::AtomicU64], p: u64, v: u64) {
    for w in 0..WORDS {
        mem[p as usize * WORDS + w].store(stamp(p, v, w as u64), Ordering::Relaxed);
    }
}

fn check_page(mem: &[std::sync::atomic::AtomicU64], p: u64, v: u64) {
    for w in 0..WORDS {
        let got = mem[p as usize * WORDS + w].load(Ordering::Relaxed);
        assert_eq!(got, stamp(p, v, w as u64), "page {p} word {w}");
    }
}

#[test]
fn a_clean_page_is_evicted_without_a_write() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        let Some(pager) = common::pager(dir.path(), engine, 1, 256) else {
            continue;
        };
        let mut region = Region::new(&pager, config(64, 8)).unwrap();
        let monitor = region.monitor();
        let mem = region.as_atomic_u64s();
        for p in 0..64 {
            write_page(mem, p, 1);
        }
        // Two reading passes: the first brings every page back clean, the second evicts
        // those clean pages again under pressure.
        for _ in 0..2 {
            for p in 0..64 {
                check_page(mem, p, 1);
            }
        }
        let s = monitor.stats();
        let written = pager.stats().counters.pages_out;
        eprintln!("{engine:?}: {s:?}, pager pages_out {written}");
        assert!(s.evictions_clean >= 40, "clean pages were written: {s:?}");
        assert_eq!(written, s.evictions_dirty, "only dirty evictions write");
        assert_eq!(s.wp_faults, 0, "nothing was stored to a clean page");
        // A store to a clean page makes it dirty again: the next eviction writes it.
        // (Read first: a store that faults a page in from swap marks it dirty at once,
        // with no write-protect fault. Nothing else faults meanwhile, so page 5 cannot
        // leave memory between the two.)
        check_page(mem, 5, 1);
        write_page(mem, 5, 2);
        for p in 16..64 {
            check_page(mem, p, 1);
        }
        check_page(mem, 5, 2);
        assert!(monitor.stats().wp_faults >= 1);
        drop(region);
        pager.verify().unwrap();
    }
}

#[test]
fn dropping_a_region_frees_all_its_swap() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        let Some(pager) = common::pager(dir.path(), engine, 2, 128) else {
            continue;
        };
        let mut region = Region::new(&pager, config(128, 16)).unwrap();
        let mem = region.as_atomic_u64s();
        for p in 0..128 {
            write_page(mem, p, 3);
        }
        assert!(pager.stats().used_pages > 64);
        drop(region);
        pager.verify().unwrap();
        let st = pager.stats();
        assert_eq!(st.used_pages, 0);
        assert_eq!(st.objects, 0);
    }
}

#[test]
fn swap_full_blocks_eviction_until_swap_is_added_and_loses_nothing() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        // 24 data pages of swap for a region of 64 pages with 8 resident: it fills up.
        let Some(pager) = common::pager(dir.path(), engine, 1, 25) else {
            continue;
        };
        let cfg = RegionConfig {
            overcommit: true,
            ..config(64, 8)
        };
        let mut region = Region::new(&pager, cfg).unwrap();
        let monitor = region.monitor();
        let mem = region.as_atomic_u64s();
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                for p in 0..64 {
                    write_page(mem, p, 7);
                }
            });
            // The writer blocks once swap is full; add an area to let it go on.
            let extra = dir.path().join("swapkit-region-extra.swap");
            device::mkswap(
                &extra,
                &MkswapOptions {
                    pages: Some(128),
                    ..MkswapOptions::default()
                },
            )
            .unwrap();
            while pager.stats().counters.alloc_failures == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert!(!writer.is_finished(), "the writer got past a full swap");
            pager.swapon(&extra, SwaponOptions::default()).unwrap();
            writer.join().unwrap();
        });
        for p in 0..64 {
            check_page(mem, p, 7);
        }
        let s = monitor.stats();
        eprintln!("{engine:?}: {s:?}");
        assert!(s.evict_blocked >= 1, "{s:?}");
        drop(region);
        pager.verify().unwrap();
    }
}

#[test]
fn a_sequential_scan_is_prefetched_and_every_page_is_right() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        let Some(pager) = common::pager(dir.path(), engine, 2, 1024) else {
            continue;
        };
        let cfg = RegionConfig {
            prefetch: 64,
            read_around: 3,
            evict_batch: 16,
            ..config(1024, 128)
        };
        let mut region = Region::new(&pager, cfg).unwrap();
        let monitor = region.monitor();
        let mem = region.as_atomic_u64s();
        for p in 0..1024 {
            write_page(mem, p, 9);
        }
        for p in 0..1024 {
            check_page(mem, p, 9);
        }
        let s = monitor.stats();
        eprintln!("{engine:?}: {s:?}");
        assert!(s.prefetch_issued > 0, "{s:?}");
        assert!(s.prefetch_hit > 0, "{s:?}");
        assert!(s.prefetch_hit <= s.prefetch_issued, "{s:?}");
        assert!(
            s.major_faults < 1024 / 4,
            "prefetch should spare most faults: {s:?}"
        );
        drop(region);
        pager.verify().unwrap();
    }
}

#[test]
fn a_page_read_on_the_inactive_list_comes_back_from_memory_and_stays() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        let Some(pager) = common::pager(dir.path(), engine, 1, 1024) else {
            continue;
        };
        // No read-around or prefetch: every cold page of the scan is one major fault.
        let cfg = RegionConfig {
            read_around: 0,
            prefetch: 0,
            ..config(512, 64)
        };
        let mut region = Region::new(&pager, cfg).unwrap();
        let monitor = region.monitor();
        let mem = region.as_atomic_u64s();
        for p in 0..512 {
            write_page(mem, p, 3);
        }
        // A hot set read between every cold page of a scan: the clock moves the hot pages
        // to the inactive list now and then (reads are invisible to it), and each comes
        // back from there with no read from swap, still holding its bytes.
        let before = monitor.stats();
        for round in 0..2 {
            for cold in 8..512 {
                check_page(mem, cold, 3);
                for hot in 0..8 {
                    assert_eq!(
                        mem[hot as usize * WORDS].load(Ordering::Relaxed),
                        stamp(hot, 3, 0),
                        "hot page {hot}, round {round}"
                    );
                }
            }
        }
        let s = monitor.stats();
        eprintln!("{engine:?}: {s:?}");
        assert!(s.hint_faults > 0, "{s:?}");
        assert!(s.deactivations >= s.hint_faults, "{s:?}");
        // The scan faults every cold page in twice; the hot pages add few faults of
        // their own (a clock alone, blind to reads, would drop each of them once per
        // turn of the hand: some 16 turns here, over a hundred faults).
        let faults = s.major_faults - before.major_faults;
        assert!(faults <= 2 * 504 + 8 * 4, "{faults} major faults: {s:?}");
        for p in 0..512 {
            check_page(mem, p, 3);
        }
        assert!(s.resident <= s.resident_limit, "{s:?}");
        drop(region);
        pager.verify().unwrap();
    }
}

#[test]
fn a_page_stored_to_after_its_read_comes_back_writable_and_only_a_few_times_if_unwritten() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        let Some(pager) = common::pager(dir.path(), engine, 1, 256) else {
            continue;
        };
        let mut region = Region::new(&pager, config(64, 8)).unwrap();
        let monitor = region.monitor();
        let mem = region.as_atomic_u64s();
        for p in 0..64 {
            write_page(mem, p, 1);
        }
        // Read-modify-write rounds: after the first round's write-protect faults, the
        // pages come back writable and the stores take (almost) none. (A page evicted
        // between its read and its store comes back by a store fault, with no write-protect
        // fault and no mark: the counts are compared, not fixed.)
        let mut wp = Vec::new();
        for round in 2..5 {
            let before = monitor.stats().wp_faults;
            for p in 0..64 {
                check_page(mem, p, round - 1);
                write_page(mem, p, round);
            }
            wp.push(monitor.stats().wp_faults - before);
        }
        let s = monitor.stats();
        eprintln!("{engine:?} read-modify-write: write-protect faults per round {wp:?}, {s:?}");
        assert!(s.writable_on_read > 0, "{s:?}");
        assert!(
            wp[1] + wp[2] < wp[0],
            "stores to pages read back took a fault each round: {wp:?}"
        );
        // Then only reads: after the guess runs out, pages leave clean again.
        let clean_before = s.evictions_clean;
        for _ in 0..region::WRITE_TURNS + 3 {
            for p in 0..64 {
                check_page(mem, p, 4);
            }
        }
        let s = monitor.stats();
        assert!(s.evictions_clean > clean_before + 40, "{s:?}");
        drop(region);
        pager.verify().unwrap();
    }
}
