//! A page whose read fails is never zero-filled: the toucher gets `SIGBUS`. The touch runs
//! in a child process (this test binary again, with `REGION_SIGBUS_CHILD` set), since the
//! signal kills it.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use region::{Region, RegionConfig};

const CHILD_ENV: &str = "REGION_SIGBUS_CHILD";
const DIR_ENV: &str = "REGION_SIGBUS_DIR";

#[test]
fn a_failed_read_sends_sigbus_to_the_toucher_never_zeroes() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ["threads", "io_uring"] {
        // The parent owns the swap files: the child dies of the signal and cleans nothing.
        let dir = common::tempdir();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_touches_a_page_whose_read_fails",
                "--nocapture",
            ])
            .env(CHILD_ENV, engine)
            .env(DIR_ENV, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{engine}: child {:?}\n{stdout}\n{stderr}", out.status);
        if stdout.contains("SKIPPED") {
            continue;
        }
        assert!(
            stdout.contains("touching"),
            "the child never got to the touch"
        );
        assert!(
            !stdout.contains("read "),
            "the toucher read a value instead of SIGBUS"
        );
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{:?}", out.status);
    }
}

/// The child's part: does nothing unless `REGION_SIGBUS_CHILD` names an engine.
#[test]
fn child_touches_a_page_whose_read_fails() {
    let Ok(engine) = std::env::var(CHILD_ENV) else {
        return;
    };
    let engine = match engine.as_str() {
        "io_uring" => device::EngineKind::IoUring,
        _ => device::EngineKind::ThreadPool,
    };
    let dir = std::path::PathBuf::from(std::env::var_os(DIR_ENV).unwrap());
    let Some(pager) = common::pager(&dir, engine, 1, 128) else {
        println!("SKIPPED");
        return;
    };
    let mut region = Region::new(
        &pager,
        RegionConfig {
            len: 32 * 4096,
            resident_limit: 4 * 4096,
            read_around: 3,
            evict_batch: 2,
            ..RegionConfig::default()
        },
    )
    .unwrap();
    let monitor = region.monitor();
    let obj = region.object().clone();
    let mem = region.as_atomic_u64s();
    for p in 0..32 {
        mem[p * 512].store(0xAB00 + p as u64, Ordering::Relaxed);
    }
    while monitor.is_resident(0) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (dev, page) = pager.locate(&obj, 0).unwrap();
    pager.area(dev).unwrap().faults().fail_reads(page..page + 1);
    println!("touching");
    let v = mem[0].load(Ordering::Relaxed);
    println!("read {v:#x}");
}
