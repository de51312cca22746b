//! The pager on real loop devices (`device::loopdev`, direct I/O, 4 KiB blocks), with the
//! default engine; plain files when loop devices are unavailable, saying so. Everything
//! attached is detached again, also when the test fails (the guards detach on drop).

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::path::{Path, PathBuf};

use common::{page, pages, tempdir};
use device::{LoopDevice, LoopOptions, MkswapOptions, PAGE_SIZE};
use pager::{PageResult, Pager, PagerConfig, PutMode, SwapoffOptions, SwaponOptions};

/// A swap area of `pages` pages: a loop device over a file in `dir` when possible.
fn swap_device(dir: &Path, name: &str, pages: u64) -> (PathBuf, Option<LoopDevice>) {
    let file = dir.join(format!("swapkit-{name}.img"));
    let opts = MkswapOptions {
        pages: Some(pages),
        ..MkswapOptions::default()
    };
    device::mkswap(&file, &opts).unwrap();
    match device::loopdev::available() {
        Ok(()) => {
            let dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
            println!(
                "{name}: loop device {} over {}",
                dev.path().display(),
                file.display()
            );
            (dev.path().to_owned(), Some(dev))
        }
        Err(why) => {
            println!(
                "loop devices unavailable ({why}); using the plain file {}",
                file.display()
            );
            (file, None)
        }
    }
}

#[test]
fn pages_go_out_and_back_on_loop_devices_and_survive_a_swapoff() {
    let dir = tempdir();
    let (a_path, a_loop) = swap_device(dir.path(), "loop-a", 2048);
    let (b_path, b_loop) = swap_device(dir.path(), "loop-b", 2048);
    {
        let p = Pager::new(PagerConfig::default()).unwrap();
        println!("engine: {}", p.stats().engine);
        let a = p.swapon(&a_path, SwaponOptions::default()).unwrap();
        p.swapon(&b_path, SwaponOptions::default()).unwrap();
        let obj = p.alloc_object(None, 1536);
        for chunk in 0..48 {
            let res = p.putpages(
                &obj,
                chunk * 32,
                &pages(chunk * 32, 32),
                PutMode::Async(None),
            );
            assert_eq!(res, vec![PageResult::Pend; 32]);
        }
        p.wait_async();
        let mut out = vec![0u8; 32 * PAGE_SIZE];
        for i in (0..1536).step_by(32) {
            let got = p.getpages(&obj, i, 0, 31, &mut out).unwrap();
            assert_eq!(got, i..i + 32, "one read per stripe");
            assert!(out == pages(i, 32), "pages {i}..+32");
        }
        let report = p
            .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        assert_eq!(report.moved, 768);
        let mut one = vec![0u8; PAGE_SIZE];
        for i in 0..1536 {
            p.getpages(&obj, i, 0, 0, &mut one).unwrap();
            assert!(one == page(i), "page {i} after swapoff");
        }
        p.verify().unwrap();
    }
    for dev in [a_loop, b_loop].into_iter().flatten() {
        dev.detach().unwrap();
    }
    assert_no_loop_under(dir.path());
}

/// Fails if a loop device still points into `dir` after a grace period: the kernel drops
/// an io_uring's file references asynchronously, so autoclear can lag the last close.
fn assert_no_loop_under(dir: &Path) {
    let dir = std::fs::canonicalize(dir).unwrap();
    let mut left = Vec::new();
    for _ in 0..100 {
        left = device::loopdev::list()
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.backing_file.starts_with(&dir))
            .map(|l| l.path)
            .collect();
        if left.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("loop devices left attached: {left:?}");
}

/// swapoff closes the area before it returns, also after I/O through io_uring (whose
/// registered files and completions could keep the file open for a moment): the same
/// device opens with `O_EXCL` at once, several times in a row; so does the other area once
/// the pager is dropped.
#[test]
fn swapoff_closes_the_device_so_an_exclusive_open_succeeds_at_once() {
    let dir = tempdir();
    let (a_path, a_loop) = swap_device(dir.path(), "excl-a", 1024);
    let (b_path, b_loop) = swap_device(dir.path(), "excl-b", 1024);
    let excl = SwaponOptions {
        open: device::OpenOptions {
            exclusive: true,
            ..device::OpenOptions::default()
        },
        ..SwaponOptions::default()
    };
    {
        let cfg = PagerConfig {
            engine: device::EngineKind::IoUring,
            ..PagerConfig::default()
        };
        let p = match Pager::new(cfg) {
            Ok(p) => p,
            Err(e) => {
                println!("io_uring unavailable ({e}); using the default engine");
                Pager::new(PagerConfig::default()).unwrap()
            }
        };
        println!("engine: {}", p.stats().engine);
        p.swapon(&b_path, SwaponOptions::default()).unwrap();
        let obj = p.alloc_object(None, 256);
        for round in 0..5u64 {
            let a = p.swapon(&a_path, excl.clone()).unwrap();
            let data = pages(round * 1000, 256);
            p.putpages(&obj, 0, &data, PutMode::Async(None));
            p.wait_async();
            let mut out = vec![0u8; 32 * PAGE_SIZE];
            p.getpages(&obj, 0, 0, 31, &mut out).unwrap();
            p.swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
                .unwrap();
            let reopened = device::SwapArea::open(&a_path, &excl.open);
            assert!(
                reopened.is_ok(),
                "round {round}: exclusive open right after swapoff: {:?}",
                reopened.err()
            );
            drop(reopened);
            let mut one = vec![0u8; PAGE_SIZE];
            p.getpages(&obj, 7, 0, 0, &mut one).unwrap();
            assert!(one == page(round * 1000 + 7), "round {round}: page 7");
        }
        p.verify().unwrap();
    }
    // Dropping the pager closes its other area as well.
    let reopened = device::SwapArea::open(&b_path, &excl.open);
    assert!(
        reopened.is_ok(),
        "exclusive open right after the pager is dropped: {:?}",
        reopened.err()
    );
    drop(reopened);
    for dev in [a_loop, b_loop].into_iter().flatten() {
        dev.detach().unwrap();
    }
    assert_no_loop_under(dir.path());
}

/// Issue #11 on real loop devices, both engines: a loop device's backing file truncated
/// under it (the hole reads as zeroes through the loop device) and garbage written into the
/// backing file under live pages. Every page reads back exactly or as an error — never as
/// the zeroes or the garbage — and a swapoff drains what is still whole.
#[test]
fn on_loop_devices_a_truncated_or_overwritten_backing_file_is_an_error_never_data() {
    use std::os::unix::fs::FileExt;
    for engine in common::ENGINES {
        let dir = tempdir();
        let (a_path, a_loop) = swap_device(dir.path(), "trunc-a", 512);
        let (b_path, b_loop) = swap_device(dir.path(), "trunc-b", 512);
        let a_file = dir.path().join("swapkit-trunc-a.img");
        {
            let p = common::pager_on(engine, 32);
            let a = p.swapon(&a_path, SwaponOptions::default()).unwrap();
            let obj = p.alloc_object(None, 256);
            assert_eq!(
                p.putpages(&obj, 0, &pages(0, 256), PutMode::Sync),
                vec![PageResult::Ok; 256]
            );
            p.swapon(&b_path, SwaponOptions::default()).unwrap();
            // Garbage under pages 10..14, and everything past the area's page 200 cut off.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&a_file)
                .unwrap();
            for i in 10..14 {
                let (_, at) = p.locate(&obj, i).unwrap();
                f.write_all_at(&[0x5a; PAGE_SIZE], at * PAGE_SIZE as u64)
                    .unwrap();
            }
            f.set_len(200 * PAGE_SIZE as u64).unwrap();
            f.set_len(512 * PAGE_SIZE as u64).unwrap();
            f.sync_all().unwrap();
            let bad: Vec<bool> = (0..256)
                .map(|i| (10..14).contains(&i) || p.locate(&obj, i).unwrap().1 >= 200)
                .collect();
            let bad = |i: u64| bad[i as usize];
            let mut out = vec![0u8; PAGE_SIZE];
            let mut errors = 0;
            for i in 0..256 {
                match p.getpages(&obj, i, 0, 0, &mut out) {
                    Ok(_) => {
                        assert!(!bad(i), "{engine:?}: page {i} read back");
                        assert!(out == page(i), "{engine:?}: page {i}");
                    }
                    Err(e) => {
                        assert!(bad(i), "{engine:?}: page {i}: {e}");
                        errors += 1;
                    }
                }
            }
            assert!(errors > 4, "{engine:?}: the truncation hit nothing");
            assert_eq!(p.stats().counters.corrupt_pages, errors);
            let report = p
                .swapoff(a, SwapoffOptions::default(), &mut |_, _| {})
                .unwrap();
            assert_eq!((report.moved, report.lost), (256 - errors, errors));
            for i in 0..256 {
                let r = p.getpages(&obj, i, 0, 0, &mut out);
                if bad(i) {
                    assert!(r.is_err(), "{engine:?}: page {i} after swapoff");
                } else {
                    r.unwrap();
                    assert!(out == page(i), "{engine:?}: page {i} after swapoff");
                }
            }
            p.verify().unwrap();
        }
        for dev in [a_loop, b_loop].into_iter().flatten() {
            dev.detach().unwrap();
        }
        assert_no_loop_under(dir.path());
    }
}
