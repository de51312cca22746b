//! Errors lose nothing: the model test with write errors, read errors and vanishing
//! devices injected. Errors must be reported (never zeroes), and every page reported OK
//! must read back exactly once the faults are gone.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use common::model::{Harness, cases, engine, op};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    #[test]
    fn pages_reported_ok_survive_injected_faults(
        interleave in prop_oneof![Just(0u64), Just(4), Just(32)],
        engine in engine(),
        ops in prop::collection::vec(op(true), 1..80),
    ) {
        let mut h = Harness::new(interleave, true, engine);
        for op in &ops {
            h.apply(op)?;
        }
        h.finish()?;
    }
}

mod one_by_one {
    use super::common::{area, page, pager_on, pages, tempdir};
    use device::EngineKind;
    use device::PAGE_SIZE;
    use pager::{
        DeviceState, PageResult, PagerError, PagerEvent, PutMode, SwapoffOptions, SwaponOptions,
    };

    fn a_failed_write_keeps_the_previous_copy_and_quarantines_the_block(engine: EngineKind) {
        let dir = tempdir();
        let p = pager_on(engine, 32);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 4);
        assert_eq!(
            p.putpages(&obj, 0, &page(1), PutMode::Sync),
            vec![PageResult::Ok]
        );
        p.area(a).unwrap().faults().fail_writes(1..64);
        assert_eq!(
            p.putpages(&obj, 0, &page(2), PutMode::Sync),
            vec![PageResult::Error]
        );
        let mut out = vec![0u8; PAGE_SIZE];
        p.getpages(&obj, 0, 0, 0, &mut out).unwrap();
        assert_eq!(out, page(1), "the last good copy survives");
        let s = p.stats();
        assert_eq!(
            (s.bad_pages, s.used_pages, s.counters.write_errors),
            (1, 1, 1)
        );
        p.area(a).unwrap().faults().clear();
        for round in 3..100 {
            assert_eq!(
                p.putpages(&obj, 0, &page(round), PutMode::Sync),
                vec![PageResult::Ok]
            );
            assert_ne!(
                p.locate(&obj, 0).unwrap().1,
                2,
                "the quarantined block came back"
            );
        }
        assert_eq!(p.stats().bad_pages, 1);
        p.verify().unwrap();
    }

    fn a_failed_async_write_reports_error_in_its_completion(engine: EngineKind) {
        let dir = tempdir();
        let p = pager_on(engine, 32);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 8);
        p.area(a).unwrap().faults().fail_writes(1..3);
        let (tx, rx) = crossbeam_channel::unbounded();
        let res = p.putpages(
            &obj,
            0,
            &pages(0, 2),
            PutMode::Async(Some(Box::new(move |d| tx.send(d).unwrap()))),
        );
        assert_eq!(res, vec![PageResult::Pend; 2]);
        assert_eq!(rx.recv().unwrap().results, vec![PageResult::Error; 2]);
        assert_eq!(p.haspage(&obj, 0), None);
    }

    fn a_failed_read_is_an_error_never_zeroes(engine: EngineKind) {
        let dir = tempdir();
        let p = pager_on(engine, 32);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 4);
        p.putpages(&obj, 0, &pages(5, 4), PutMode::Sync);
        p.area(a).unwrap().faults().fail_reads(1..64);
        let mut out = vec![0u8; PAGE_SIZE];
        let err = p.getpages(&obj, 2, 0, 0, &mut out).unwrap_err();
        assert!(matches!(err, PagerError::Read { pindex: 2, .. }), "{err}");
        let mut buf = vec![0u8; 4 * PAGE_SIZE];
        let bio = pager::Bio::Read {
            offset: 0,
            buf: &mut buf,
        };
        assert!(matches!(
            p.strategy(&obj, bio),
            Err(PagerError::Read { .. })
        ));
        p.area(a).unwrap().faults().clear();
        p.getpages(&obj, 2, 0, 0, &mut out).unwrap();
        assert_eq!(out, page(7));
    }

    fn a_vanished_device_fails_over_and_forced_swapoff_reports_lost_pages(engine: EngineKind) {
        let dir = tempdir();
        let p = pager_on(engine, 8);
        let events = p.subscribe();
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let b = p
            .swapon(&area(dir.path(), "b", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 32);
        assert_eq!(
            p.putpages(&obj, 0, &pages(0, 32), PutMode::Sync),
            vec![PageResult::Ok; 32]
        );
        p.area(a).unwrap().faults().vanish();
        let mut out = vec![0u8; PAGE_SIZE];
        assert!(matches!(
            p.getpages(&obj, 0, 0, 0, &mut out),
            Err(PagerError::Read { .. })
        ));
        assert!(
            events
                .try_iter()
                .any(|e| matches!(e, PagerEvent::DeviceFailed { id, .. } if id == a.0))
        );
        assert_eq!(p.stats().devices[0].state, DeviceState::Failed);
        let more = p.alloc_object(None, 16);
        assert_eq!(
            p.putpages(&more, 0, &pages(100, 16), PutMode::Sync),
            vec![PageResult::Ok; 16]
        );
        assert!(
            (0..16).all(|i| p.locate(&more, i).unwrap().0 == b),
            "new writes go elsewhere"
        );
        let err = p
            .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap_err();
        assert!(
            matches!(err, PagerError::DeviceFailed { pages: 16, .. }),
            "{err}"
        );
        let report = p
            .swapoff(a, SwapoffOptions { force: true }, &mut |_, _| {})
            .unwrap();
        assert_eq!(report.lost, 16);
        for i in 0..32 {
            let on_b = (i / 8) % 2 == 1;
            match p.getpages(&obj, i, 0, 0, &mut out) {
                Ok(_) => assert!(on_b && out == page(i), "page {i}"),
                // Dropped pages read as an explicit loss (a `strategy` read would take "not
                // on swap" for a hole and return zeroes).
                Err(e) => assert!(
                    !on_b && matches!(e, PagerError::Dropped { device, .. } if device == a),
                    "page {i}: {e}"
                ),
            }
        }
        p.verify().unwrap();
    }

    fn a_failed_device_holding_no_page_goes_off_without_force(engine: EngineKind) {
        let dir = tempdir();
        let p = pager_on(engine, 8);
        let a = p
            .swapon(&area(dir.path(), "a", 64), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 8);
        assert_eq!(
            p.putpages(&obj, 0, &pages(0, 8), PutMode::Sync),
            vec![PageResult::Ok; 8]
        );
        p.area(a).unwrap().faults().vanish();
        let mut out = vec![0u8; PAGE_SIZE];
        assert!(p.getpages(&obj, 0, 0, 0, &mut out).is_err());
        assert_eq!(p.stats().devices[0].state, DeviceState::Failed);
        // Its pages freed, nothing on it is left to read or to drop.
        p.freespace(&obj, 0, 8);
        assert_eq!(p.stats().devices[0].used_pages, 0);
        let report = p
            .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!((report.moved, report.lost), (0, 0));
        assert!(p.stats().devices.is_empty());
        p.verify().unwrap();
    }

    fn swapoff_whose_rewrites_fail_retries_on_fresh_blocks_and_loses_nothing(engine: EngineKind) {
        let dir = tempdir();
        let p = pager_on(engine, 0);
        let a = p
            .swapon(&area(dir.path(), "a", 128), SwaponOptions::default())
            .unwrap();
        let obj = p.alloc_object(None, 96);
        assert_eq!(
            p.putpages(&obj, 0, &pages(0, 96), PutMode::Sync),
            vec![PageResult::Ok; 96]
        );
        let b = p
            .swapon(&area(dir.path(), "b", 256), SwaponOptions::default())
            .unwrap();
        // The first rewrites land at the start of b and fail.
        p.area(b).unwrap().faults().fail_writes(1..9);
        let report = p
            .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!((report.moved, report.lost), (96, 0));
        assert!(p.stats().counters.write_errors > 0, "no rewrite failed");
        p.area(b).unwrap().faults().clear();
        let mut out = vec![0u8; PAGE_SIZE];
        for i in 0..96 {
            p.getpages(&obj, i, 0, 0, &mut out).unwrap();
            assert!(out == page(i), "page {i}");
            assert_eq!(p.locate(&obj, i).unwrap().0, b);
        }
        p.verify().unwrap();
    }

    /// Each test of this module, on both engines.
    mod on_both_engines {
        use super::super::common::ENGINES;

        #[test]
        fn a_failed_write_keeps_the_previous_copy_and_quarantines_the_block() {
            for engine in ENGINES {
                super::a_failed_write_keeps_the_previous_copy_and_quarantines_the_block(engine);
            }
        }

        #[test]
        fn a_failed_async_write_reports_error_in_its_completion() {
            for engine in ENGINES {
                super::a_failed_async_write_reports_error_in_its_completion(engine);
            }
        }

        #[test]
        fn a_failed_read_is_an_error_never_zeroes() {
            for engine in ENGINES {
                super::a_failed_read_is_an_error_never_zeroes(engine);
            }
        }

        #[test]
        fn a_vanished_device_fails_over_and_forced_swapoff_reports_lost_pages() {
            for engine in ENGINES {
                super::a_vanished_device_fails_over_and_forced_swapoff_reports_lost_pages(engine);
            }
        }

        #[test]
        fn a_failed_device_holding_no_page_goes_off_without_force() {
            for engine in ENGINES {
                super::a_failed_device_holding_no_page_goes_off_without_force(engine);
            }
        }

        #[test]
        fn swapoff_whose_rewrites_fail_retries_on_fresh_blocks_and_loses_nothing() {
            for engine in ENGINES {
                super::swapoff_whose_rewrites_fail_retries_on_fresh_blocks_and_loses_nothing(
                    engine,
                );
            }
        }
    }
}
