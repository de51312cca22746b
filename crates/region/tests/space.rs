//! A space paging memory the program already has: adopted mappings keep their bytes, and
//! `madvise`, `munmap`, `mremap` and `fork` keep their meaning. Each test runs on both
//! engines, checks every page against a model of what it must hold, and ends with
//! `Space::verify`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pager::Pager;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use region::{LocalStore, Space, SpaceConfig, Store};

const PAGE: u64 = 4096;
const WORDS: u64 = common::WORDS;

/// Private anonymous memory of this test, as a program has it (not the space's).
struct Anon {
    base: u64,
    len: u64,
}

impl Anon {
    fn new(pages: u64) -> Anon {
        // SAFETY: a fresh private anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                (pages * PAGE) as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Anon {
            base: p as u64,
            len: pages * PAGE,
        }
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is ours, page aligned and `len` bytes long while `self` lives.
        unsafe {
            std::slice::from_raw_parts(self.base as *const AtomicU64, (self.len / 8) as usize)
        }
    }

    fn addr(&self, p: u64) -> u64 {
        self.base + p * PAGE
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: unmaps what is left of our mapping (parts unmapped already are no error).
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len as usize) };
    }
}

fn fill(words: &[AtomicU64], p: u64, v: u64) {
    for w in 0..WORDS {
        words[(p * WORDS + w) as usize].store(common::stamp(p, v, w), Ordering::Relaxed);
    }
}

/// Whether page `p` holds version `v` (0: zeroes).
fn holds(words: &[AtomicU64], p: u64, v: u64) -> bool {
    (0..WORDS).all(|w| {
        let want = if v == 0 { 0 } else { common::stamp(p, v, w) };
        words[(p * WORDS + w) as usize].load(Ordering::Relaxed) == want
    })
}

/// Every page against `model` (the version each page holds); the pages that disagree.
fn wrong(words: &[AtomicU64], model: &[u64]) -> Vec<u64> {
    (0..model.len() as u64)
        .filter(|&p| !holds(words, p, model[p as usize]))
        .collect()
}

fn advise(addr: u64, len: u64, advice: libc::c_int) {
    // SAFETY: a range of this test's own mapping.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len as usize, advice) };
    assert_eq!(rc, 0, "madvise: {}", std::io::Error::last_os_error());
}

/// A pager on `engine` with one swap area, a store of it and a space over the store with
/// a limit of `limit` pages. `None` when userfaultfd or the engine is not to be had here.
struct Rig {
    _dir: tempfile::TempDir,
    pager: Pager,
    space: Space,
}

fn rig(engine: device::EngineKind, limit: u64, handlers: usize) -> Option<Rig> {
    if !common::uffd_usable() {
        return None;
    }
    let dir = common::tempdir();
    let pager = common::pager(dir.path(), engine, 1, 4096)?;
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(&pager, 1 << 20));
    let space = Space::new(
        store,
        SpaceConfig {
            resident_limit: limit * PAGE,
            read_around: 7,
            prefetch: 32,
            handlers,
            evict_batch: 16,
            room_wait: Duration::from_secs(20),
            ..SpaceConfig::default()
        },
    )
    .unwrap();
    Some(Rig {
        _dir: dir,
        pager,
        space,
    })
}

/// Waits (at most 10 s) until `cond` holds for the space's stats.
fn until(space: &Space, what: &str, cond: impl Fn(&region::RegionStats) -> bool) {
    let start = Instant::now();
    while !cond(&space.stats()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: {}",
            space.stats()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn used(pager: &Pager) -> u64 {
    pager.stats().used_pages
}

#[test]
fn adopted_memory_keeps_its_bytes_and_is_paged_through_the_store() {
    for engine in common::ENGINES {
        let mem = Anon::new(256);
        let words = mem.words();
        let mut model = vec![0u64; 256];
        for p in (0..256).step_by(2) {
            fill(words, p, 1);
            model[p as usize] = 1;
        }
        let Some(rig) = rig(engine, 32, 2) else {
            return;
        };
        rig.space.adopt(mem.base, mem.len).unwrap();
        assert!(rig.space.covered(mem.base, mem.len));
        let s = rig.space.stats();
        assert_eq!((s.pages, s.adopted_pages), (256, 256));
        // Adopting again (a rescan) takes nothing new.
        rig.space.adopt(mem.base, mem.len).unwrap();
        assert_eq!(rig.space.stats().adopted_pages, 256);
        assert_eq!(wrong(words, &model), Vec::<u64>::new(), "{engine:?}");
        for p in 0..256 {
            model[p as usize] += 1;
            fill(words, p, model[p as usize]);
        }
        for _ in 0..2 {
            assert_eq!(wrong(words, &model), Vec::<u64>::new(), "{engine:?}");
        }
        let s = rig.space.stats();
        assert!(s.evictions_dirty > 0 && s.pages_in > 0, "{engine:?}: {s}");
        assert!(used(&rig.pager) > 0);
        rig.space.verify().unwrap();
        until(&rig.space, "back under the limit", |s| s.resident <= 32);
        drop(rig.space);
        // The space's swap went with it; the memory stays the program's.
        assert_eq!(used(&rig.pager), 0, "{engine:?}");
    }
}

/// Adopts `pages` pages holding version 1 each, with a limit of 16: most go to swap.
fn adopted_and_swapped(engine: device::EngineKind, pages: u64) -> Option<(Rig, Anon, Vec<u64>)> {
    let mem = Anon::new(pages);
    let rig = rig(engine, 16, 2)?;
    rig.space.adopt(mem.base, mem.len).unwrap();
    let model = vec![1u64; pages as usize];
    for p in 0..pages {
        fill(mem.words(), p, 1);
    }
    until(&rig.space, "swapped out", |s| s.evictions_dirty > pages / 2);
    Some((rig, mem, model))
}

#[test]
fn dropped_pages_read_zeroes_and_lose_their_swap() {
    for engine in common::ENGINES {
        let Some((rig, mem, mut model)) = adopted_and_swapped(engine, 128) else {
            return;
        };
        let before = used(&rig.pager);
        advise(mem.addr(32), 64 * PAGE, libc::MADV_DONTNEED);
        until(&rig.space, "removed", |s| s.removed_pages >= 64);
        let after = used(&rig.pager);
        assert!(
            after + 32 <= before,
            "{engine:?}: swap in use {before} -> {after}"
        );
        for p in 32..96 {
            model[p as usize] = 0;
        }
        assert_eq!(wrong(mem.words(), &model), Vec::<u64>::new(), "{engine:?}");
        // The dropped pages take new bytes like any.
        for p in 32..96 {
            model[p as usize] = 2;
            fill(mem.words(), p, 2);
        }
        assert_eq!(wrong(mem.words(), &model), Vec::<u64>::new(), "{engine:?}");
        rig.space.verify().unwrap();

        // MADV_FREE: a page may keep its bytes until the kernel reclaims it, or read as
        // zeroes; pages that were not in memory read as zeroes.
        let resident: Vec<bool> = (0..128)
            .map(|p| {
                rig.space
                    .monitor()
                    .is_resident(rig.space.page_of(mem.addr(p)).unwrap())
            })
            .collect();
        let removed = rig.space.stats().removed_pages;
        advise(mem.addr(0), 32 * PAGE, libc::MADV_FREE);
        until(&rig.space, "freed", |s| s.removed_pages >= removed + 32);
        for p in 0..32 {
            let zero = holds(mem.words(), p, 0);
            assert!(
                zero || (resident[p as usize] && holds(mem.words(), p, 1)),
                "{engine:?}: page {p} after MADV_FREE"
            );
            model[p as usize] = 0;
            fill(mem.words(), p, 3);
            model[p as usize] = 3;
        }
        assert_eq!(wrong(mem.words(), &model), Vec::<u64>::new(), "{engine:?}");
        rig.space.verify().unwrap();
    }
}

#[test]
fn unmapping_the_middle_of_a_segment_keeps_its_ends_paging() {
    for engine in common::ENGINES {
        let Some((rig, mem, mut model)) = adopted_and_swapped(engine, 96) else {
            return;
        };
        let before = used(&rig.pager);
        // SAFETY: the middle of our own mapping.
        let rc = unsafe { libc::munmap(mem.addr(32) as *mut libc::c_void, (32 * PAGE) as usize) };
        assert_eq!(rc, 0);
        until(&rig.space, "unmapped", |s| s.unmapped_pages >= 32);
        assert_eq!(rig.space.stats().pages, 64);
        assert!(
            used(&rig.pager) < before,
            "{engine:?}: the middle's swap freed"
        );
        assert_eq!(
            rig.space.segments(),
            vec![(mem.base, 32 * PAGE), (mem.addr(64), 32 * PAGE)]
        );
        // Something new where the middle was: not the space's, untouched by it.
        // SAFETY: a fresh mapping at a hole of our own.
        let p = unsafe {
            libc::mmap(
                mem.addr(32) as *mut libc::c_void,
                (32 * PAGE) as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        assert_eq!(p as u64, mem.addr(32));
        assert!(!rig.space.covered(mem.addr(32), PAGE));
        let faults = rig.space.stats().zero_fills + rig.space.stats().major_faults;
        for p in 32..64 {
            assert!(holds(mem.words(), p, 0));
            fill(mem.words(), p, 9);
            model[p as usize] = 9;
        }
        let s = rig.space.stats();
        assert!(
            s.zero_fills + s.major_faults == faults || s.evictions_dirty > 0,
            "the new mapping took no fault of the space"
        );
        for round in 2..4 {
            for p in (0..32).chain(64..96) {
                assert!(
                    holds(mem.words(), p, model[p as usize]),
                    "{engine:?} page {p}"
                );
                fill(mem.words(), p, round);
                model[p as usize] = round;
            }
        }
        assert_eq!(wrong(mem.words(), &model), Vec::<u64>::new(), "{engine:?}");
        rig.space.verify().unwrap();
    }
}

#[test]
fn moved_and_grown_memory_keeps_its_bytes() {
    for engine in common::ENGINES {
        let Some((rig, mem, mut model)) = adopted_and_swapped(engine, 64) else {
            return;
        };
        // Move it to a place of its own (a placeholder the move replaces).
        let dest = Anon::new(64);
        // SAFETY: moves our own mapping over our own placeholder.
        let to = unsafe {
            libc::mremap(
                mem.base as *mut libc::c_void,
                mem.len as usize,
                mem.len as usize,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                dest.base as *mut libc::c_void,
            )
        };
        assert_eq!(to as u64, dest.base);
        std::mem::forget(mem);
        until(&rig.space, "moved", |s| s.remaps >= 1);
        assert!(rig.space.covered(dest.base, dest.len));
        assert_eq!(wrong(dest.words(), &model), Vec::<u64>::new(), "{engine:?}");
        // Grow it: the new part is adopted by the next scan.
        // SAFETY: grows our own mapping (it may move).
        let grown = unsafe {
            libc::mremap(
                dest.base as *mut libc::c_void,
                dest.len as usize,
                (128 * PAGE) as usize,
                libc::MREMAP_MAYMOVE,
            )
        };
        assert_ne!(grown, libc::MAP_FAILED);
        std::mem::forget(dest);
        let big = Anon {
            base: grown as u64,
            len: 128 * PAGE,
        };
        rig.space.adopt(big.base, big.len).unwrap();
        assert_eq!(rig.space.stats().pages, 128);
        model.resize(128, 0);
        assert_eq!(wrong(big.words(), &model), Vec::<u64>::new(), "{engine:?}");
        for p in 0..128 {
            model[p as usize] = 5;
            fill(big.words(), p, 5);
        }
        assert_eq!(wrong(big.words(), &model), Vec::<u64>::new(), "{engine:?}");
        rig.space.verify().unwrap();
    }
}

#[test]
fn a_forked_child_sees_every_page_of_the_parent() {
    for engine in common::ENGINES {
        let Some((rig, mem, mut model)) = adopted_and_swapped(engine, 128) else {
            return;
        };
        // Pages of every kind: rewritten, never written (zeroes), dropped by the program.
        for p in (0..128).step_by(3) {
            model[p as usize] = 2;
            fill(mem.words(), p, 2);
        }
        advise(mem.addr(100), 8 * PAGE, libc::MADV_DONTNEED);
        for p in 100..108 {
            model[p as usize] = 0;
        }
        let guard = rig.space.prepare_fork();
        guard.check().unwrap();
        // SAFETY: the child only reads memory, closes descriptors and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            rig.space.forget_in_child();
            let ok = (0..128u64).all(|p| holds(mem.words(), p, model[p as usize]));
            // SAFETY: leaves the child at once, running nothing of the parent's.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{engine:?}: the child saw other bytes (status {status:#x})"
        );
        drop(guard);
        // The parent goes on paging.
        for round in 3..5 {
            for p in 0..128 {
                model[p as usize] = round;
                fill(mem.words(), p, round);
            }
            assert_eq!(wrong(mem.words(), &model), Vec::<u64>::new(), "{engine:?}");
        }
        until(&rig.space, "back under the limit", |s| s.resident <= 16);
        rig.space.verify().unwrap();
    }
}

#[test]
fn threads_touching_pages_the_program_drops_meanwhile_see_every_store() {
    for engine in common::ENGINES {
        let pages = 192u64;
        let mem = Anon::new(pages);
        let Some(rig) = rig(engine, 32, 3) else {
            return;
        };
        rig.space.adopt(mem.base, mem.len).unwrap();
        let model: Vec<Mutex<u64>> = (0..pages).map(|_| Mutex::new(0)).collect();
        let mismatches = AtomicU64::new(0);
        let words = mem.words();
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let (model, mismatches) = (&model, &mismatches);
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(t + 1);
                    for _ in 0..3000 {
                        // Overlapping hot ranges: each thread's is shared with the next.
                        let p = (t * 48 + rng.random_range(0..96)) % pages;
                        common::touch(words, model, mismatches, &mut rng, p);
                    }
                });
            }
            // The program drops runs of pages now and then, holding their model entries
            // across the call: a touch after it must read zeroes.
            let (model, mem) = (&model, &mem);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(99);
                for _ in 0..60 {
                    let first = rng.random_range(0..pages - 8);
                    let n = rng.random_range(1..8);
                    let mut held: Vec<_> = (first..first + n)
                        .map(|p| model[p as usize].lock())
                        .collect();
                    advise(mem.addr(first), n * PAGE, libc::MADV_DONTNEED);
                    for v in held.iter_mut() {
                        **v = 0;
                    }
                    drop(held);
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        });
        assert_eq!(
            mismatches.load(Ordering::Relaxed),
            0,
            "{engine:?}: {}",
            rig.space.stats()
        );
        let flat: Vec<u64> = model.iter().map(|m| *m.lock()).collect();
        assert_eq!(wrong(words, &flat), Vec::<u64>::new(), "{engine:?}");
        let s = rig.space.stats();
        eprintln!("{engine:?}: {s}");
        assert!(
            s.removed_pages > 0 && s.evictions_dirty > 0,
            "{engine:?}: {s}"
        );
        rig.space.verify().unwrap();
    }
}
