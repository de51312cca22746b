//! The integrity rule of issue #11, case by case, on both engines: after `putpages` of a
//! page returns `Ok` or `Pend`, every later read of it returns exactly those bytes or an
//! error. Storage is corrupted underneath (garbage written into an area's backing file, a
//! backing file truncated), writes fail on one area or on all, and areas are marked failing.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::os::unix::fs::FileExt;

use common::{ENGINES, area, config, page, pager_on, pages, tempdir};
use device::{EngineKind, PAGE_SIZE};
use pager::{
    Bio, Checksum, DeviceState, Object, PageResult, Pager, PagerConfig, PagerError, PagerEvent,
    PutMode, SwapoffOptions, SwaponOptions,
};

/// Overwrites the block holding page `pindex` of `obj` with garbage, straight into the
/// area's backing file (the area's page `n` is at byte `n * PAGE_SIZE`, as `locate` says).
fn scribble(p: &Pager, obj: &Object, pindex: u64) {
    let (dev, at) = p.locate(obj, pindex).unwrap();
    let path = p.area(dev).unwrap().path().to_owned();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&[0xee; PAGE_SIZE], at * PAGE_SIZE as u64)
        .unwrap();
    file.sync_all().unwrap();
}

fn corrupt_count(p: &Pager) -> u64 {
    p.stats().devices.iter().map(|d| d.corrupt).sum()
}

#[test]
fn a_page_overwritten_underneath_reads_as_corrupt_never_as_its_new_bytes() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 32);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 8);
        assert_eq!(
            p.putpages(&obj, 0, &pages(0, 8), PutMode::Sync),
            vec![PageResult::Ok; 8]
        );
        scribble(&p, &obj, 3);
        let mut out = vec![0u8; PAGE_SIZE];
        match p.getpages(&obj, 3, 0, 0, &mut out) {
            Err(PagerError::Corrupt { device, block, .. }) => {
                assert_eq!((device, block), p.locate(&obj, 3).unwrap());
                assert_eq!(device, a);
            }
            other => panic!("{engine:?}: {other:?}"),
        }
        assert!(
            out.iter().all(|&b| b == 0),
            "corrupt bytes left in the buffer"
        );
        // Read-around stops short of the corrupt page; the wanted page is fine.
        let mut out = vec![0u8; 8 * PAGE_SIZE];
        let got = p.getpages(&obj, 1, 1, 6, &mut out).unwrap();
        assert_eq!(got, 0..3, "{engine:?}");
        assert!(out[..3 * PAGE_SIZE] == pages(0, 3)[..]);
        let got = p.getpages(&obj, 5, 5, 2, &mut out).unwrap();
        assert_eq!(got, 4..8, "{engine:?}");
        // strategy reads check too.
        let mut buf = vec![0u8; 8 * PAGE_SIZE];
        let bio = Bio::Read {
            offset: 0,
            buf: &mut buf,
        };
        assert!(matches!(
            p.strategy(&obj, bio),
            Err(PagerError::Corrupt { pindex: 3, .. })
        ));
        assert_eq!(corrupt_count(&p), 4, "{engine:?}: one per failed check");
        assert_eq!(p.stats().counters.corrupt_pages, 4);
        // Written again, the page is whole again.
        p.putpages(&obj, 3, &page(99), PutMode::Sync);
        let mut out = vec![0u8; PAGE_SIZE];
        p.getpages(&obj, 3, 0, 0, &mut out).unwrap();
        assert!(out == page(99));
        p.verify().unwrap();
    }
}

#[test]
fn a_truncated_backing_file_is_an_error_never_zeroes() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let path = area(dir.path(), "a", 64);
        p.swapon(&path, SwaponOptions::default()).unwrap();
        let obj = p.alloc_object(None, 8);
        p.putpages(&obj, 0, &pages(0, 8), PutMode::Sync);
        // Cut the file after page 4 and grow it back: pages 5.. read as zeroes now.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(5 * PAGE_SIZE as u64).unwrap();
        f.set_len(64 * PAGE_SIZE as u64).unwrap();
        let mut out = vec![0u8; PAGE_SIZE];
        for i in 0..8 {
            let (_, at) = p.locate(&obj, i).unwrap();
            match p.getpages(&obj, i, 0, 0, &mut out) {
                Ok(_) => {
                    assert!(at < 5, "{engine:?}: page {i} at {at} read back");
                    assert!(out == page(i));
                }
                Err(PagerError::Corrupt { .. }) | Err(PagerError::Read { .. }) => {
                    assert!(at >= 5, "{engine:?}: page {i} at {at}")
                }
                Err(e) => panic!("{engine:?}: {e}"),
            }
        }
    }
}

/// Issue #22: a backing file cut short under live data loses only the pages past the cut.
/// Those before it still read (read-around stops at the cut); the area is marked failing
/// (no new pages), and a swapoff without force moves the intact pages to the other area and
/// reports exactly those past the cut lost, which read as an error saying why. On both
/// engines.
#[test]
fn a_truncated_area_keeps_its_intact_pages_and_off_moves_them_losing_only_those_past_the_cut() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let path = area(dir.path(), "cut", 64);
        let hi = SwaponOptions {
            priority: 10,
            ..SwaponOptions::default()
        };
        let a = p.swapon(&path, hi).unwrap();
        p.swapon(&area(dir.path(), "spare", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 48);
        assert_eq!(
            p.putpages(&obj, 0, &pages(0, 48), PutMode::Sync),
            vec![PageResult::Ok; 48]
        );
        // Keep the header and data pages 1..=23.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(24 * PAGE_SIZE as u64).unwrap();
        let past: Vec<u64> = (0..48)
            .filter(|&i| p.locate(&obj, i).unwrap() >= (a, 24))
            .collect();
        assert!(!past.is_empty() && past.len() < 48, "{past:?}");
        let mut out = vec![0u8; PAGE_SIZE];
        for i in 0..48 {
            match p.getpages(&obj, i, 0, 0, &mut out) {
                Ok(_) => {
                    assert!(!past.contains(&i), "{engine:?}: page {i} past the cut read");
                    assert!(out == page(i), "{engine:?}: page {i}");
                }
                Err(e) => assert!(past.contains(&i), "{engine:?}: page {i}: {e}"),
            }
        }
        let mut out = vec![0u8; 6 * PAGE_SIZE];
        let got = p.getpages(&obj, past[0] - 2, 0, 5, &mut out).unwrap();
        assert_eq!(
            got,
            past[0] - 2..past[0],
            "{engine:?}: read-around stops at the cut"
        );
        let state = |p: &Pager| {
            p.stats()
                .devices
                .iter()
                .find(|d| d.id == a.0)
                .unwrap()
                .state
        };
        assert_eq!(state(&p), DeviceState::Failing, "{engine:?}");

        let report = p
            .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!(report.lost, past.len() as u64, "{engine:?}: {report:?}");
        assert_eq!(
            report.moved,
            48 - past.len() as u64,
            "{engine:?}: {report:?}"
        );
        let mut out = vec![0u8; PAGE_SIZE];
        for i in 0..48 {
            match p.getpages(&obj, i, 0, 0, &mut out) {
                Ok(_) => assert!(out == page(i) && !past.contains(&i), "{engine:?}: {i}"),
                Err(PagerError::Truncated { device, .. }) => {
                    assert!(device == a && past.contains(&i), "{engine:?}: {i}")
                }
                Err(e) => panic!("{engine:?}: page {i}: {e}"),
            }
        }
        p.verify().unwrap();
    }
}

#[test]
fn without_checksums_the_garbage_would_come_back_as_data() {
    let dir = tempdir();
    let p = Pager::new(PagerConfig {
        checksum: Checksum::None,
        ..config(32)
    })
    .unwrap();
    assert_eq!(p.stats().tunables.checksum, Checksum::None);
    p.swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
        .unwrap();
    let obj = p.alloc_object(None, 1);
    p.putpages(&obj, 0, &page(1), PutMode::Sync);
    scribble(&p, &obj, 0);
    let mut out = vec![0u8; PAGE_SIZE];
    p.getpages(&obj, 0, 0, 0, &mut out).unwrap();
    assert!(out == [0xee; PAGE_SIZE], "the check is what catches it");
    assert_eq!(
        serde_json::to_value(Checksum::Crc32c).unwrap(),
        serde_json::json!("crc32c")
    );
    assert_eq!(PagerConfig::default().checksum, Checksum::Crc32c);
}

#[test]
fn swapoff_drops_a_corrupt_page_and_later_reads_of_it_are_an_error() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        p.swapon(&area(dir.path(), "b", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 8);
        p.putpages(&obj, 0, &pages(0, 8), PutMode::Sync);
        scribble(&p, &obj, 2);
        let report = p
            .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!((report.moved, report.lost), (7, 1), "{engine:?}");
        let mut out = vec![0u8; PAGE_SIZE];
        for i in 0..8 {
            let r = p.getpages(&obj, i, 0, 0, &mut out);
            if i == 2 {
                assert!(
                    matches!(r, Err(PagerError::Corrupt { device, .. }) if device == a),
                    "{engine:?}: {r:?}"
                );
            } else {
                r.unwrap();
                assert!(out == page(i));
            }
        }
        assert!(p.haspage(&obj, 2).is_none());
        // A copy carries checksums (and the loss) along with the blocks.
        let dst = p.alloc_object(None, 8);
        p.copy(&obj, &dst, 0, true);
        assert!(matches!(
            p.getpages(&dst, 2, 0, 0, &mut out),
            Err(PagerError::Corrupt { .. })
        ));
        scribble(&p, &dst, 5);
        assert!(matches!(
            p.getpages(&dst, 5, 0, 0, &mut out),
            Err(PagerError::Corrupt { pindex: 5, .. })
        ));
        p.getpages(&dst, 4, 0, 0, &mut out).unwrap();
        assert!(out == page(4));
        // Freed, the page is simply not on swap.
        p.freespace(&dst, 2, 1);
        assert!(matches!(
            p.getpages(&dst, 2, 0, 0, &mut out),
            Err(PagerError::NotOnSwap { .. })
        ));
        p.verify().unwrap();
    }
}

#[test]
fn a_write_that_fails_on_one_area_lands_on_another_and_the_caller_sees_ok() {
    for engine in ENGINES {
        for asynch in [false, true] {
            let dir = tempdir();
            let p = pager_on(engine, 4);
            let a = p
                .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
                .unwrap();
            let b = p
                .swapon(&area(dir.path(), "b", 64), SwaponOptions::default())
                .unwrap();
            p.area(a).unwrap().faults().fail_writes(1..3);
            let obj = p.alloc_object(None, 16);
            let (tx, rx) = crossbeam_channel::unbounded();
            let mode = if asynch {
                PutMode::Async(Some(Box::new(move |d| tx.send(d.results).unwrap())))
            } else {
                PutMode::Sync
            };
            let res = p.putpages(&obj, 0, &pages(0, 16), mode);
            let res = if asynch { rx.recv().unwrap() } else { res };
            assert_eq!(res, vec![PageResult::Ok; 16], "{engine:?} async {asynch}");
            let s = p.stats();
            assert!(s.counters.write_retries >= 1);
            assert_eq!(s.counters.write_errors, 1);
            assert_eq!(
                s.bad_pages, 4,
                "the failed run (one stripe of 4) is quarantined"
            );
            let mut out = vec![0u8; PAGE_SIZE];
            for i in 0..16 {
                p.getpages(&obj, i, 0, 0, &mut out).unwrap();
                assert!(out == page(i), "{engine:?}: page {i}");
            }
            assert!(p.locate(&obj, 0).unwrap().0 == b);
            assert!(p.take_async_failures(&obj).is_empty());
            p.verify().unwrap();
        }
    }
}

#[test]
fn an_area_whose_writes_keep_failing_is_marked_failing_and_drained_by_swapoff() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let events = p.subscribe();
        let a = p
            .swapon(&area(dir.path(), "a", 128), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 64);
        p.putpages(&obj, 0, &pages(0, 16), PutMode::Sync);
        let b = p
            .swapon(&area(dir.path(), "b", 128), SwaponOptions::default())
            .unwrap();
        // a is full from here on, as a file system that filled up.
        p.area(a).unwrap().faults().fail_writes(17..128);
        for k in 0..4 {
            let res = p.putpages(&obj, 16 + k * 8, &pages(100 + k * 8, 8), PutMode::Sync);
            assert_eq!(res, vec![PageResult::Ok; 8], "{engine:?} call {k}");
        }
        let state = |d: pager::DeviceId| {
            p.stats()
                .devices
                .iter()
                .find(|s| s.id == d.0)
                .unwrap()
                .state
        };
        assert_eq!(state(a), DeviceState::Failing, "{engine:?}");
        assert_eq!(state(b), DeviceState::Active);
        let failing: Vec<_> = events
            .try_iter()
            .filter(|e| matches!(e, PagerEvent::DeviceFailing { .. }))
            .collect();
        assert_eq!(failing.len(), 1, "{engine:?}: announced once");
        let errors = p.stats().counters.write_errors;
        // No new allocation lands there.
        p.putpages(&obj, 48, &pages(148, 16), PutMode::Sync);
        assert_eq!(p.stats().counters.write_errors, errors);
        assert!((48..64).all(|i| p.locate(&obj, i).unwrap().0 == b));
        // Its readable pages are drained by swapoff.
        let report = p
            .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!((report.moved, report.lost), (16, 0), "{engine:?}");
        let mut out = vec![0u8; PAGE_SIZE];
        for i in 0..16 {
            p.getpages(&obj, i, 0, 0, &mut out).unwrap();
            assert!(out == page(i));
        }
        p.verify().unwrap();
    }
}

#[test]
fn an_async_write_that_fails_everywhere_reads_as_an_error_and_is_reported_once() {
    for engine in ENGINES {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 8);
        assert_eq!(
            p.putpages(&obj, 0, &pages(0, 4), PutMode::Sync),
            vec![PageResult::Ok; 4]
        );
        p.area(a).unwrap().faults().fail_writes(1..64);
        let (tx, rx) = crossbeam_channel::unbounded();
        let cb = Box::new(move |d: pager::AsyncDone| tx.send(d.results).unwrap());
        assert_eq!(
            p.putpages(&obj, 1, &pages(50, 2), PutMode::Async(Some(cb))),
            vec![PageResult::Pend; 2]
        );
        assert_eq!(rx.recv().unwrap(), vec![PageResult::Error; 2]);
        // A sync write that fails keeps the old copy: it was never acknowledged.
        assert_eq!(
            p.putpages(&obj, 3, &page(60), PutMode::Sync),
            vec![PageResult::Error]
        );
        p.area(a).unwrap().faults().clear();
        let mut out = vec![0u8; PAGE_SIZE];
        for i in [1, 2] {
            assert!(
                matches!(
                    p.getpages(&obj, i, 0, 0, &mut out),
                    Err(PagerError::WriteLost { pindex, .. }) if pindex == i
                ),
                "{engine:?}: page {i} must not read back as its older copy"
            );
        }
        let mut buf = vec![0u8; 4 * PAGE_SIZE];
        let bio = Bio::Read {
            offset: 0,
            buf: &mut buf,
        };
        assert!(matches!(
            p.strategy(&obj, bio),
            Err(PagerError::WriteLost { pindex: 1, .. })
        ));
        p.getpages(&obj, 3, 0, 0, &mut out).unwrap();
        assert!(out == page(3));
        assert_eq!(p.take_async_failures(&obj), vec![1, 2]);
        assert!(p.take_async_failures(&obj).is_empty(), "reported once");
        assert_eq!(p.stats().counters.async_write_failures, 2);
        // Written again, the page is back.
        assert_eq!(
            p.putpages(&obj, 1, &page(70), PutMode::Sync),
            vec![PageResult::Ok]
        );
        p.getpages(&obj, 1, 0, 0, &mut out).unwrap();
        assert!(out == page(70));
        p.verify().unwrap();
    }
}

/// The engines are named here so a reader sees both run.
#[test]
fn both_engines_are_available_for_these_tests() {
    for engine in ENGINES {
        let p = pager_on(engine, 0);
        let want = match engine {
            EngineKind::IoUring => "io_uring",
            _ => "threads",
        };
        assert_eq!(p.stats().engine, want);
    }
}

/// getpages into page-aligned memory reads straight into it (no pbuf, no copy): the
/// checksums are still checked, over the caller's bytes (a corrupt page is wiped and is the
/// error; a corrupt neighbour ends the run short of it), and a failed read leaves nothing
/// of itself behind. Unaligned memory (8 bytes off) gets the same answers through a pbuf.
#[test]
fn getpages_into_page_aligned_memory_checks_every_page_as_through_a_pbuf() {
    for engine in ENGINES {
        for off in [0, 8] {
            let dir = tempdir();
            let p = pager_on(engine, 32);
            let a = p
                .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
                .unwrap();
            let obj = p.alloc_object(None, 8);
            p.putpages(&obj, 0, &pages(0, 8), PutMode::Sync);
            let mut mem = device::PageBuf::new(9);
            let out = &mut mem.as_mut_slice()[off..off + 8 * PAGE_SIZE];
            assert_eq!(device::Engine::lendable(out), off == 0);
            let got = p.getpages(&obj, 0, 0, 7, out).unwrap();
            assert_eq!(got, 0..8, "{engine:?} {off}");
            assert!(out == &pages(0, 8)[..], "{engine:?} {off}");

            scribble(&p, &obj, 5);
            out.fill(0x55);
            match p.getpages(&obj, 5, 5, 2, out) {
                Err(PagerError::Corrupt { device, pindex, .. }) => {
                    assert_eq!((device, pindex), (a, 5), "{engine:?} {off}")
                }
                other => panic!("{engine:?} {off}: {other:?}"),
            }
            let page5 = &out[5 * PAGE_SIZE..6 * PAGE_SIZE];
            assert!(
                page5.iter().all(|&b| b == 0),
                "{engine:?} {off}: corrupt bytes left"
            );
            let got = p.getpages(&obj, 2, 2, 5, out).unwrap();
            assert_eq!(got, 0..5, "{engine:?} {off}: the run ends short of page 5");
            assert!(out[..5 * PAGE_SIZE] == pages(0, 5)[..]);
            assert!(out[5 * PAGE_SIZE..6 * PAGE_SIZE].iter().all(|&b| b == 0));

            p.area(a).unwrap().faults().fail_reads(1..64);
            out.fill(0x55);
            match p.getpages(&obj, 0, 0, 7, out) {
                Err(PagerError::Read { pindex: 0, .. }) => {}
                other => panic!("{engine:?} {off}: {other:?}"),
            }
            assert!(
                out.iter().all(|&b| b == 0),
                "{engine:?} {off}: a failed read left bytes behind"
            );
            p.area(a).unwrap().faults().clear();
            assert_eq!(corrupt_count(&p), 2, "{engine:?} {off}");
        }
    }
}

#[test]
fn a_sync_put_from_page_aligned_memory_stores_its_bytes_and_checksums_as_through_a_pbuf() {
    for engine in ENGINES {
        // At 0 the memory is lent to the writes; at 8 it goes through a pbuf: the same rules.
        // One call of one cluster (32 pages, the default max_cluster): a longer one goes
        // through pbufs, which keep several clusters in flight.
        for off in [0, 8] {
            let ctx = format!("{engine:?} {off}");
            let dir = tempdir();
            let p = pager_on(engine, 4);
            let a = p
                .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
                .unwrap();
            let b = p
                .swapon(&area(dir.path(), "b", 64), SwaponOptions::default())
                .unwrap();
            let obj = p.alloc_object(None, 32);
            let mut mem = device::PageBuf::new(33);
            let src = &mut mem.as_mut_slice()[off..off + 32 * PAGE_SIZE];
            assert_eq!(device::Engine::lendable(src), off == 0);
            src.copy_from_slice(&pages(0, 32));
            let put = |src: &[u8]| p.putpages(&obj, 0, src, PutMode::Sync);
            assert_eq!(put(src), vec![PageResult::Ok; 32], "{ctx}");
            let mut out = vec![0u8; PAGE_SIZE];
            for i in 0..32 {
                p.getpages(&obj, i, 0, 0, &mut out).unwrap();
                assert!(out == page(i), "{ctx}: page {i}");
            }
            // The stored checksum is that of the bytes written: bytes changed under it read
            // as corrupt.
            scribble(&p, &obj, 7);
            match p.getpages(&obj, 7, 0, 0, &mut out) {
                Err(PagerError::Corrupt { pindex: 7, .. }) => {}
                other => panic!("{ctx}: {other:?}"),
            }
            p.verify().unwrap();

            // Writes failing on one area are retried on the other, from the same memory.
            src.copy_from_slice(&pages(100, 32));
            p.area(a).unwrap().faults().fail_writes(1..64);
            assert_eq!(put(src), vec![PageResult::Ok; 32], "{ctx}");
            let s = p.stats();
            assert!(s.counters.write_errors >= 1, "{ctx}");
            assert!(s.counters.write_retries >= 1, "{ctx}");
            assert!(s.bad_pages >= 4, "{ctx}: the failed runs are quarantined");
            for i in 0..32 {
                assert_eq!(p.locate(&obj, i).unwrap().0, b, "{ctx}: page {i}");
                p.getpages(&obj, i, 0, 0, &mut out).unwrap();
                assert!(out == page(100 + i), "{ctx}: page {i}");
            }
            p.area(a).unwrap().faults().clear();

            // Failing everywhere: the caller sees Error, the previous copy survives, the
            // blocks written to are quarantined and never reused.
            let bad_before = p.stats().bad_pages;
            src[..PAGE_SIZE].copy_from_slice(&page(999));
            p.area(a).unwrap().faults().fail_writes(1..64);
            p.area(b).unwrap().faults().fail_writes(1..64);
            assert_eq!(put(&src[..PAGE_SIZE]), vec![PageResult::Error], "{ctx}");
            assert!(p.stats().bad_pages > bad_before, "{ctx}");
            p.getpages(&obj, 0, 0, 0, &mut out).unwrap();
            assert!(out == page(100), "{ctx}: the last good copy survives");
            assert!(p.take_async_failures(&obj).is_empty());
            p.area(a).unwrap().faults().clear();
            p.area(b).unwrap().faults().clear();
            p.verify().unwrap();
        }
    }
}
