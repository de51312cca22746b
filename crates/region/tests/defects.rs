//! Defects of the region's core, each seen failing (hanging, aborting, losing a page)
//! before the page-state module: a handler that cannot be set up or dies, a drop while a
//! fault waits for room, limits larger than the region, a region its swap cannot hold, a
//! poison that does not take. Scenarios that end in a signal or could hang run in a child
//! process (this test binary again, with `REGION_DEFECT_CHILD` set) under a hang guard.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use region::{Region, RegionConfig, RegionError, UffdFaults};

use common::{ENGINES, say};

const CHILD_ENV: &str = "REGION_DEFECT_CHILD";
const DIR_ENV: &str = "REGION_DEFECT_DIR";
/// A child needs a few seconds at most; past this it hangs.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs scenario `mode` in a child on each engine; returns (status, stdout) per engine
/// that could run here.
fn children(mode: &str) -> Vec<(std::process::ExitStatus, String)> {
    let mut out = Vec::new();
    for engine in ["threads", "io_uring"] {
        let dir = common::tempdir();
        let spec = format!("{engine}:{mode}");
        let dir_s = dir.path().to_str().unwrap().to_owned();
        if let Some(r) = common::child(
            "child_runs_a_defect_scenario",
            &[(CHILD_ENV, &spec), (DIR_ENV, &dir_s)],
            HANG_GUARD,
        ) {
            out.push(r);
        }
    }
    out
}

fn atomics(region: &Region) -> &[AtomicU64] {
    // SAFETY: the mapping is page aligned, its length a multiple of 8, and any thread may
    // load and store through `as_ptr` while the region lives (the borrow of `region`).
    unsafe { std::slice::from_raw_parts(region.as_ptr().cast(), region.len() / 8) }
}

fn small(pages: u64, limit: u64) -> RegionConfig {
    RegionConfig {
        len: pages * 4096,
        resident_limit: limit * 4096,
        read_around: 3,
        evict_batch: 2,
        ..RegionConfig::default()
    }
}

/// Writes `v + p` into the first word of pages `0..pages`, then waits until page 0 has
/// left memory.
fn write_and_wait_out(region: &Region, pages: u64, v: u64) {
    let mem = atomics(region);
    for p in 0..pages {
        mem[(p * 512) as usize].store(v + p, Ordering::Relaxed);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while region.is_resident(0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---- 2. A fault handler that cannot be set up, or dies --------------------------------

#[test]
fn a_region_whose_handlers_cannot_be_set_up_is_refused_never_returned_to_hang() {
    if !common::uffd_usable() {
        return;
    }
    for (status, stdout) in children("fd-limit") {
        assert!(status.success(), "{status:?}\n{stdout}");
        assert!(stdout.contains("fd-limit done"), "{stdout}");
        assert!(
            stdout.contains("setting up fault handler"),
            "no limit hit the handlers' set-up: {stdout}"
        );
    }
}

#[test]
fn when_the_last_handler_dies_every_fault_ends_in_sigbus_never_a_hang() {
    if !common::uffd_usable() {
        return;
    }
    for (status, stdout) in children("handlers-die") {
        assert!(status.success(), "{status:?}\n{stdout}");
        assert!(stdout.contains("toucher got SIGBUS"), "{stdout}");
        assert!(stdout.contains("dead: true"), "{stdout}");
        assert!(stdout.contains("verified"), "{stdout}");
    }
}

// ---- 3. Dropping a region while a fault waits for room ---------------------------------

#[test]
fn dropping_a_region_while_a_fault_waits_for_room_returns() {
    if !common::uffd_usable() {
        return;
    }
    for (status, stdout) in children("drop-waiting") {
        assert!(status.success(), "{status:?}\n{stdout}");
        assert!(stdout.contains("dropped"), "{stdout}");
    }
}

// ---- 5. Limits and sizes ------------------------------------------------------------------

#[test]
fn limits_past_the_region_are_clamped_and_sizes_that_overflow_are_refused() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        let Some(pager) = common::pager(dir.path(), engine, 1, 512) else {
            continue;
        };
        // 64 GiB and u64::MAX of limit for a 1 MiB region: the whole region, no more (the
        // inactive cache follows the clamped limit: 128 slots, not 8 Mi).
        for limit in [64 << 30, u64::MAX] {
            let region = Region::new(
                &pager,
                RegionConfig {
                    len: 1 << 20,
                    resident_limit: limit,
                    read_around: u64::MAX,
                    prefetch: u64::MAX,
                    evict_batch: u64::MAX,
                    ..RegionConfig::default()
                },
            )
            .unwrap();
            assert_eq!(region.stats().resident_limit, 256);
            let mem = atomics(&region);
            for p in 0..256 {
                mem[p * 512].store(p as u64 + 1, Ordering::Relaxed);
            }
            for p in 0..256 {
                assert_eq!(mem[p * 512].load(Ordering::Relaxed), p as u64 + 1);
            }
            region.verify().unwrap();
        }
        for len in [u64::MAX, (region::MAX_PAGES + 1) * 4096] {
            let err = Region::new(
                &pager,
                RegionConfig {
                    len,
                    resident_limit: 1 << 20,
                    overcommit: true,
                    ..RegionConfig::default()
                },
            )
            .unwrap_err();
            assert!(matches!(err, RegionError::Config(_)), "len {len}: {err}");
            eprintln!("len {len}: {err}");
        }
        // A region with read-around past its end still pages: a small limit, many evictions.
        let region = Region::new(
            &pager,
            RegionConfig {
                read_around: u64::MAX,
                ..small(64, 4)
            },
        )
        .unwrap();
        write_and_wait_out(&region, 64, 100);
        let mem = atomics(&region);
        for p in 0..64 {
            assert_eq!(mem[p * 512].load(Ordering::Relaxed), 100 + p as u64);
        }
    }
}

// ---- 6. Not enough swap -------------------------------------------------------------------

#[test]
fn a_region_its_swap_cannot_hold_is_refused_in_one_line() {
    if !common::uffd_usable() {
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        // 128 pages of swap; 512 pages with 64 resident need 448.
        let Some(pager) = common::pager(dir.path(), engine, 1, 129) else {
            continue;
        };
        let err = Region::new(&pager, small(512, 64)).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                RegionError::NotEnoughSwap {
                    need: 448,
                    free: 128
                }
            ),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
        eprintln!("{text}");
        // Under the limit it fits; with overcommit it is made regardless.
        Region::new(&pager, small(128 + 64, 64)).unwrap();
        Region::new(
            &pager,
            RegionConfig {
                overcommit: true,
                ..small(512, 64)
            },
        )
        .unwrap();
    }
}

#[test]
fn a_fault_that_waits_for_swap_in_vain_gets_sigbus_and_is_counted() {
    if !common::uffd_usable() {
        return;
    }
    for (status, stdout) in children("room-timeout") {
        assert!(status.success(), "{status:?}\n{stdout}");
        assert!(stdout.contains("toucher got SIGBUS"), "{stdout}");
        assert!(stdout.contains("room timeouts 1"), "{stdout}");
    }
}

// ---- 1. A poison that does not take --------------------------------------------------------

#[test]
fn a_poison_that_fails_still_ends_the_fault_and_the_page_is_read_again_later() {
    if !common::uffd_usable() {
        return;
    }
    for (status, stdout) in children("poison-fails") {
        assert!(status.success(), "{status:?}\n{stdout}");
        assert!(stdout.contains("toucher got SIGBUS"), "{stdout}");
        assert!(stdout.contains("read back 0xab00"), "{stdout}");
    }
}

// ---- The children --------------------------------------------------------------------------

fn park_on_sigbus() {
    common::park_on(libc::SIGBUS);
}

/// Touches word `w` on a thread of its own (parked for good if it gets SIGBUS) and waits
/// for the value or the signal. Returns the value read, `None` on SIGBUS.
fn touch_on_a_thread(mem: &'static [AtomicU64], w: usize) -> Option<u64> {
    let got = Arc::new(parking_lot::Mutex::new(None));
    let slot = Arc::clone(&got);
    std::thread::spawn(move || {
        let v = mem[w].load(Ordering::Relaxed);
        *slot.lock() = Some(v);
    });
    loop {
        if let Some(v) = *got.lock() {
            return Some(v);
        }
        if common::SIGNAL_SEEN.swap(false, Ordering::SeqCst) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The child's part: does nothing unless `REGION_DEFECT_CHILD` is `engine:mode`.
#[test]
fn child_runs_a_defect_scenario() {
    let Some((engine, mode, dir)) = common::child_spec(CHILD_ENV, DIR_ENV) else {
        return;
    };
    let swap_pages = if mode == "drop-waiting" || mode == "room-timeout" {
        16
    } else {
        256
    };
    let Some(pager) = common::pager(&dir, engine, 1, swap_pages) else {
        say("SKIPPED");
        return;
    };
    match mode.as_str() {
        "fd-limit" => fd_limit(&pager),
        "handlers-die" => handlers_die(&pager),
        "drop-waiting" => drop_waiting(&pager),
        "room-timeout" => room_timeout(&pager),
        "poison-fails" => poison_fails(&pager),
        _ => panic!("unknown scenario {mode}"),
    }
}

fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(2)
}

fn set_fd_limit(soft: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let old = lim.rlim_cur;
    lim.rlim_cur = soft.min(lim.rlim_max);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    old
}

/// With the descriptor table full but for `extra` free slots, for each `extra` from 0 to
/// 15, `Region::new` either fails or returns a region that serves faults: a region is
/// never returned with dead handlers. The table is filled with copies of a descriptor
/// below a lowered limit, and one more of them is closed for each `extra`.
fn fd_limit(pager: &pager::Pager) {
    let old = set_fd_limit(highest_fd() + 1 + 32);
    let mut fillers = Vec::new();
    loop {
        // SAFETY: dup(2) of stdin until the table is full; each copy is closed below.
        let fd = unsafe { libc::dup(0) };
        if fd < 0 {
            break;
        }
        fillers.push(fd);
    }
    for extra in 0..16 {
        if extra > 0 {
            // SAFETY: a copy made above, closed once.
            unsafe { libc::close(fillers.pop().unwrap()) };
        }
        match Region::new(pager, small(16, 2)) {
            Err(e) => say(&format!("extra {extra}: refused: {e}")),
            Ok(region) => {
                // Pages go out and come back: the handlers serve.
                write_and_wait_out(&region, 16, 7);
                let mem = atomics(&region);
                for p in 0..16 {
                    assert_eq!(mem[p * 512].load(Ordering::Relaxed), 7 + p as u64);
                }
                say(&format!("extra {extra}: serves"));
            }
        }
    }
    for fd in fillers {
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    }
    set_fd_limit(old);
    say("fd-limit done");
}

/// Every handler's reads fail: they ride the errors out, then stop; the last one kills the
/// region, and a touch of a page on swap gets SIGBUS.
fn handlers_die(pager: &pager::Pager) {
    let faults = Arc::new(UffdFaults::new(1));
    let region = Region::with_injector(pager, small(32, 4), Arc::clone(&faults)).unwrap();
    write_and_wait_out(&region, 32, 0xab00);
    faults.reads_fail.store(true, Ordering::Relaxed);
    park_on_sigbus();
    let region: &'static Region = Box::leak(Box::new(region));
    let mem = atomics(region);
    match touch_on_a_thread(mem, 0) {
        Some(v) => say(&format!("read {v:#x}")),
        None => say("toucher got SIGBUS"),
    }
    let st = region.stats();
    say(&format!(
        "dead: {}, handler errors {}",
        st.dead, st.handler_errors
    ));
    // The dead region's table still agrees with the kernel: every page in memory is mapped
    // and readable, every other one poisoned.
    region.verify().unwrap();
    let resident: Vec<u64> = (1..32).filter(|&p| region.is_resident(p)).collect();
    for &p in &resident {
        assert_eq!(mem[(p * 512) as usize].load(Ordering::Relaxed), 0xab00 + p);
    }
    say(&format!("verified, {} resident pages read", resident.len()));
    std::process::exit(0);
}

/// Swap fills up, a store waits for room; the region is dropped meanwhile and the drop
/// returns.
fn drop_waiting(pager: &pager::Pager) {
    let region = Region::new(
        pager,
        RegionConfig {
            overcommit: true,
            room_wait: Duration::from_secs(3600),
            ..small(64, 4)
        },
    )
    .unwrap();
    let monitor = region.monitor();
    let raw: *mut Region = Box::into_raw(Box::new(region));
    // SAFETY: `raw` is valid until it is dropped below; the writer's use of the memory
    // after that is the scenario (see there).
    let mem = atomics(unsafe { &*raw });
    std::thread::spawn(move || {
        for p in 0..64 {
            mem[p * 512].store(1, Ordering::Relaxed);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while monitor.stats().room_waits == 0 || pager.stats().counters.alloc_failures == 0 {
        assert!(
            Instant::now() < deadline,
            "the writer never waited for room"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    // After the drop the writer's next store lands in unmapped memory: park it there.
    common::park_on(libc::SIGSEGV);
    say("dropping");
    // SAFETY: `raw` came from `Box::into_raw` and is dropped once. The writer thread still
    // touches the memory through `mem`, and is parked by its SIGSEGV once it is gone.
    drop(unsafe { Box::from_raw(raw) });
    say("dropped");
    std::process::exit(0);
}

/// Swap fills up, a store waits for room in vain and gets SIGBUS after `room_wait`.
fn room_timeout(pager: &pager::Pager) {
    let region = Region::new(
        pager,
        RegionConfig {
            overcommit: true,
            room_wait: Duration::from_millis(300),
            ..small(64, 4)
        },
    )
    .unwrap();
    park_on_sigbus();
    let region: &'static Region = Box::leak(Box::new(region));
    let mem = atomics(region);
    let stored = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&stored);
    std::thread::spawn(move || {
        for p in 0..64 {
            mem[p * 512].store(1, Ordering::Relaxed);
            count.fetch_add(1, Ordering::Relaxed);
        }
        say("writer finished");
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !common::SIGNAL_SEEN.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "no SIGBUS");
        std::thread::sleep(Duration::from_millis(5));
    }
    say("toucher got SIGBUS");
    let st = region.stats();
    say(&format!(
        "room timeouts {}, room waits {}, stored {}",
        st.room_timeouts,
        st.room_waits,
        stored.load(Ordering::Relaxed)
    ));
    std::process::exit(0);
}

/// A page whose read fails and whose poison fails too: the toucher still gets SIGBUS, the
/// page is not recorded poisoned, and once the device reads again a touch reads it right.
fn poison_fails(pager: &pager::Pager) {
    let faults = Arc::new(UffdFaults::new(1));
    let region = Region::with_injector(pager, small(32, 4), Arc::clone(&faults)).unwrap();
    write_and_wait_out(&region, 32, 0xab00);
    let (dev, page) = pager.locate(region.object(), 0).unwrap();
    let area = pager.area(dev).unwrap();
    area.faults().fail_reads(page..page + 1);
    faults
        .poison_fails
        .store(region::inject::ALWAYS, Ordering::Relaxed);
    park_on_sigbus();
    let region: &'static Region = Box::leak(Box::new(region));
    let mem = atomics(region);
    match touch_on_a_thread(mem, 0) {
        Some(v) => say(&format!("read {v:#x} from a failing page")),
        None => say("toucher got SIGBUS"),
    }
    assert!(!region.is_resident(0));
    assert_eq!(region.stats().read_errors, 1);
    region.verify().unwrap();
    area.faults().clear();
    faults.poison_fails.store(0, Ordering::Relaxed);
    match touch_on_a_thread(mem, 0) {
        Some(v) => say(&format!("read back {v:#x}")),
        None => say("SIGBUS again"),
    }
    std::process::exit(0);
}
