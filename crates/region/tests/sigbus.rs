//! A page whose read fails is never zero-filled: the toucher gets `SIGBUS`. The touch runs
//! in a child process (this test binary again, with `REGION_SIGBUS_CHILD` set), since the
//! signal kills it.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use region::{Region, RegionConfig};

const CHILD_ENV: &str = "REGION_SIGBUS_CHILD";
const DIR_ENV: &str = "REGION_SIGBUS_DIR";
/// How long a child may run before it counts as hung (it needs well under a second).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs the child test with `mode` on `engine`; returns its status and stdout, or `None`
/// when the child could not run the engine here.
fn child(engine: &str, mode: &str) -> Option<(std::process::ExitStatus, String)> {
    // The parent owns the swap files: a child killed by the signal cleans nothing.
    let dir = common::tempdir();
    let spec = format!("{engine}:{mode}");
    let dir_s = dir.path().to_str().unwrap().to_owned();
    common::child(
        "child_touches_a_page_whose_read_fails",
        &[(CHILD_ENV, &spec), (DIR_ENV, &dir_s)],
        HANG_GUARD,
    )
}

/// After a failed read the region goes on: the poisoned page is no longer resident, the
/// resident count agrees with the page states, and other pages still page in and out.
#[test]
fn a_region_goes_on_after_a_failed_read() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ["threads", "io_uring"] {
        let Some((status, stdout)) = child(engine, "survive") else {
            continue;
        };
        assert!(stdout.contains("toucher got SIGBUS"), "{stdout}");
        assert!(stdout.contains("region consistent"), "{stdout}");
        assert!(status.success(), "{status:?}");
    }
}

#[test]
fn a_failed_read_sends_sigbus_to_the_toucher_never_zeroes() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ["threads", "io_uring"] {
        let Some((status, stdout)) = child(engine, "die") else {
            continue;
        };
        assert!(
            stdout.contains("touching"),
            "the child never got to the touch"
        );
        assert!(
            !stdout.contains("read "),
            "the toucher read a value instead of SIGBUS"
        );
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    }
}

/// The child's part: does nothing unless `REGION_SIGBUS_CHILD` is `engine:mode`. Mode
/// `die` touches the failed page on the main thread (the default action kills the child);
/// `survive` touches it on another thread, parks that thread in a SIGBUS handler and
/// checks the region afterwards.
#[test]
fn child_touches_a_page_whose_read_fails() {
    let Some((engine, mode, dir)) = common::child_spec(CHILD_ENV, DIR_ENV) else {
        return;
    };
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
    if mode != "survive" {
        println!("touching");
        let v = mem[0].load(Ordering::Relaxed);
        println!("read {v:#x}");
        return;
    }
    common::park_on(libc::SIGBUS);
    let first = &mem[0];
    std::thread::scope(|s| {
        // Never joined: the toucher stays parked in the handler until the process exits,
        // so nothing here may panic (the scope would wait for it for ever): a failed check
        // is printed and ends the child with status 1.
        let _ = std::thread::Builder::new().spawn_scoped(s, || {
            let v = first.load(Ordering::Relaxed);
            println!("read {v:#x}");
        });
        while !common::SIGNAL_SEEN.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        println!("toucher got SIGBUS");
        match goes_on_after_sigbus(&monitor, mem) {
            Ok(()) => {
                println!("region consistent");
                std::process::exit(0);
            }
            Err(e) => {
                println!("FAILED: {e}");
                std::process::exit(1);
            }
        }
    });
}

/// After the toucher's `SIGBUS`: page 0 failed once and is not resident; every other page
/// still pages in and out with its contents; the resident count agrees with the page
/// states (read under one lock: the handlers go on moving pages meanwhile).
fn goes_on_after_sigbus(
    monitor: &region::RegionMonitor,
    mem: &[std::sync::atomic::AtomicU64],
) -> Result<(), String> {
    let st = monitor.stats();
    if st.read_errors != 1 || monitor.is_resident(0) {
        return Err(format!("page 0 after its failed read: {st:?}"));
    }
    for round in 1..=2u64 {
        for p in 1..32 {
            mem[p * 512].store(round << 32 | p as u64, Ordering::Relaxed);
        }
        for p in 1..32 {
            let v = mem[p * 512].load(Ordering::Relaxed);
            if v != round << 32 | p as u64 {
                return Err(format!("page {p} round {round} read {v:#x}"));
            }
        }
    }
    let (counted, states) = monitor.resident_counts();
    let st = monitor.stats();
    if counted != states || st.resident > st.resident_limit {
        return Err(format!(
            "counted {counted}, in resident states {states}: {st:?}"
        ));
    }
    Ok(())
}
