//! The I/O engines: random cluster I/O from several threads checked against a model,
//! refusals, fault injection, short transfers, callbacks and shutdown — on each engine,
//! on loop devices when available (plain files otherwise).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use device::loopdev::{LoopDevice, LoopOptions};
use device::{
    DeviceError, Engine, EngineKind, IoCompletion, IoOp, IoRequest, MkswapOptions, OpenOptions,
    PAGE_SIZE, PageBuf, SwapArea,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Every engine this machine can run, named.
fn engines() -> Vec<Engine> {
    let mut all = vec![Engine::new(EngineKind::ThreadPool).unwrap()];
    match Engine::new(EngineKind::IoUring) {
        Ok(e) => all.push(e),
        Err(e) => println!("io_uring engine unavailable ({e}); testing threads only"),
    }
    all
}

fn open(path: &std::path::Path) -> Arc<SwapArea> {
    Arc::new(SwapArea::open(path, &OpenOptions::default()).unwrap())
}

/// A request of `pages` pages at `page` filled with the pattern of `generation`.
fn write_req(tag: u64, page: u64, pages: u64, generation: u64) -> IoRequest {
    let mut buf = PageBuf::new(pages as usize);
    for i in 0..pages {
        buf.page_mut(i as usize)
            .copy_from_slice(&common::pattern(page + i, generation));
    }
    IoRequest {
        tag,
        op: IoOp::Write,
        page,
        buf,
    }
}

fn read_req(tag: u64, page: u64, pages: u64) -> IoRequest {
    IoRequest {
        tag,
        op: IoOp::Read,
        page,
        buf: PageBuf::new(pages as usize),
    }
}

/// Pages a test thread owns: 32-page chunks `t, t + threads, ...`, so threads never race.
const CHUNK: u64 = 32;

#[test]
fn random_cluster_io_from_several_threads_matches_a_model_on_each_engine() {
    const THREADS: u64 = 4;
    const BATCHES: usize = 40;
    const PAGES: u64 = 1 + CHUNK * 64;
    let dir = common::scratch();
    for engine in engines() {
        let t = common::swap_target(dir.path(), &format!("model-{}", engine.kind()), PAGES);
        println!(
            "{}: {} ({})",
            engine.kind(),
            t.path.display(),
            if t.is_loop() { "loop device" } else { "file" }
        );
        let area = open(&t.path);
        let engine = &engine;
        let models: Vec<HashMap<u64, u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let area = Arc::clone(&area);
                    s.spawn(move || run_model_thread(engine, &area, thread, THREADS, BATCHES))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Everything, read back through the blocking path, is what the model says.
        let mut buf = PageBuf::new(CHUNK as usize);
        for chunk in 0..(PAGES - 1) / CHUNK {
            let first = 1 + chunk * CHUNK;
            area.read_pages(first, &mut buf).unwrap();
            let model = &models[(chunk % THREADS) as usize];
            for i in 0..CHUNK {
                let expect = model
                    .get(&(first + i))
                    .map_or(vec![0u8; PAGE_SIZE], |&g| common::pattern(first + i, g));
                assert!(
                    buf.page(i as usize) == expect.as_slice(),
                    "page {} differs",
                    first + i
                );
            }
        }
        let s = area.stats();
        assert_eq!((s.read_errors, s.write_errors, s.in_flight), (0, 0, 0));
        assert!(s.reads > 0 && s.writes > 0 && s.read_latency.count == s.reads);
        drop(area);
        drop(t);
    }
    common::assert_no_loop_under(dir.path());
}

/// One thread's share: batches of up to 8 concurrent cluster I/Os on distinct chunks it
/// owns, each read checked against its model. Returns the model (page -> generation).
fn run_model_thread(
    engine: &Engine,
    area: &Arc<SwapArea>,
    thread: u64,
    threads: u64,
    batches: usize,
) -> HashMap<u64, u64> {
    let mut rng = SmallRng::seed_from_u64(0x5eed + thread);
    let mut model: HashMap<u64, u64> = HashMap::new();
    let owned: Vec<u64> = (0..(area.last_page()) / CHUNK)
        .filter(|c| c % threads == thread)
        .collect();
    let mut generation = thread << 32;
    for _ in 0..batches {
        let depth = rng.random_range(1..=8usize).min(owned.len());
        let mut chunks = owned.clone();
        let (tx, rx) = crossbeam_channel::unbounded::<IoCompletion>();
        let mut pending = HashMap::new();
        for tag in 0..depth as u64 {
            let chunk = chunks.swap_remove(rng.random_range(0..chunks.len()));
            let start = rng.random_range(0..CHUNK);
            let pages = rng.random_range(1..=CHUNK - start);
            let page = 1 + chunk * CHUNK + start;
            let req = if rng.random_bool(0.5) {
                generation += 1;
                pending.insert(tag, Some(generation));
                write_req(tag, page, pages, generation)
            } else {
                pending.insert(tag, None);
                read_req(tag, page, pages)
            };
            let tx = tx.clone();
            engine.submit(area, req, Box::new(move |c| tx.send(c).unwrap()));
        }
        for _ in 0..depth {
            let c = rx.recv_timeout(Duration::from_secs(60)).unwrap();
            c.result.as_ref().unwrap();
            let pages = c.buf.pages() as u64;
            match pending.remove(&c.tag).unwrap() {
                Some(g) => (c.page..c.page + pages).for_each(|p| {
                    model.insert(p, g);
                }),
                None => {
                    for i in 0..pages {
                        let p = c.page + i;
                        let expect = model
                            .get(&p)
                            .map_or(vec![0u8; PAGE_SIZE], |&g| common::pattern(p, g));
                        assert!(
                            c.buf.page(i as usize) == expect.as_slice(),
                            "read of page {p} differs"
                        );
                    }
                }
            }
        }
    }
    model
}

#[test]
fn requests_outside_the_data_pages_fail_without_doing_io() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "range", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    for engine in engines() {
        for (page, pages) in [(0, 1), (63, 2), (64, 1), (5, 0), (u64::MAX, 1)] {
            let c = engine.submit_wait(&area, read_req(1, page, pages));
            assert!(
                matches!(c.result, Err(DeviceError::OutOfRange { .. })),
                "{page}+{pages}: {:?}",
                c.result
            );
            assert_eq!(c.buf.pages() as u64, pages, "the buffer comes back");
            let c = engine.submit_wait(&area, write_req(2, page, pages, 1));
            assert!(matches!(c.result, Err(DeviceError::OutOfRange { .. })));
        }
        let s = area.stats();
        assert_eq!(
            (
                s.reads,
                s.writes,
                s.read_errors,
                s.write_errors,
                s.in_flight
            ),
            (0, 0, 0, 0, 0)
        );
    }
    // Page 0 still holds the header nobody overwrote.
    drop(area);
    assert!(SwapArea::open(&file, &OpenOptions::default()).is_ok());
}

/// One piece: the same fault plan run on each engine, step by step.
#[test]
fn injected_faults_fail_exactly_the_chosen_ios_on_each_engine() {
    let dir = common::scratch();
    for engine in engines() {
        let t = common::swap_target(dir.path(), &format!("faults-{}", engine.kind()), 128);
        let area = open(&t.path);
        engine
            .submit_wait(&area, write_req(0, 10, 4, 1))
            .result
            .unwrap();
        let eio = |c: &IoCompletion| matches!(&c.result, Err(DeviceError::Io { source, .. }) if source.raw_os_error() == Some(libc::EIO));

        area.faults().fail_writes(11..12);
        let c = engine.submit_wait(&area, write_req(1, 10, 2, 2));
        assert!(eio(&c), "{:?}", c.result);
        assert_eq!(
            c.result.as_ref().unwrap_err().to_string(),
            format!(
                "{}: write at page 10 failed: EIO: Input/output error (os error 5)",
                t.path.display()
            )
        );
        assert!(
            engine
                .submit_wait(&area, write_req(2, 12, 1, 2))
                .result
                .is_ok(),
            "pages beside the range work"
        );
        let c = engine.submit_wait(&area, read_req(3, 10, 2));
        assert_eq!(
            c.buf.page(0),
            common::pattern(10, 1).as_slice(),
            "the failed write changed nothing"
        );

        area.faults().clear();
        area.faults().fail_reads(13..20);
        assert!(eio(&engine.submit_wait(&area, read_req(4, 12, 2))));
        assert!(
            engine
                .submit_wait(&area, write_req(5, 13, 1, 3))
                .result
                .is_ok(),
            "writes still work"
        );

        area.faults().clear();
        area.faults().fail_after(2);
        assert!(engine.submit_wait(&area, read_req(6, 1, 1)).result.is_ok());
        assert!(engine.submit_wait(&area, read_req(7, 1, 1)).result.is_ok());
        assert!(eio(&engine.submit_wait(&area, read_req(8, 1, 1))));
        assert!(eio(&engine.submit_wait(&area, write_req(9, 1, 1, 1))));

        area.faults().clear();
        area.faults().vanish();
        let c = engine.submit_wait(&area, read_req(10, 1, 1));
        assert_eq!(
            c.result.unwrap_err().to_string(),
            format!(
                "{}: device vanished (ENXIO) during read at page 1",
                t.path.display()
            )
        );

        area.faults().clear();
        area.faults().set_latency(Duration::from_millis(30));
        let c = engine.submit_wait(&area, read_req(11, 10, 1));
        assert!(c.result.is_ok());
        assert!(
            c.latency >= Duration::from_millis(30),
            "latency injected: {:?}",
            c.latency
        );
        area.faults().clear();

        let s = area.stats();
        assert_eq!((s.write_errors, s.read_errors, s.in_flight), (2, 3, 0));
        drop(area);
        drop(t);
    }
    common::assert_no_loop_under(dir.path());
}

/// Truncates `file` to `pages` pages under a live area.
fn truncate(file: &std::path::Path, pages: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(pages * PAGE_SIZE as u64)
        .unwrap();
}

/// Issue 11 §3, issue 22: once the file behind an area is shorter than the area, an I/O
/// that reaches past its end fails and says so (a short read, or across the cut), on both
/// engines and the blocking path; the pages before the cut are intact and their I/O goes on.
#[test]
fn a_truncated_file_area_fails_io_past_the_cut_never_zeroes() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "cut", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    for engine in engines() {
        let w = engine.submit_wait(&area, write_req(1, 20, 4, 7));
        w.result.unwrap();
    }
    truncate(&file, 32);
    for engine in engines() {
        for (page, write) in [(40, false), (30, false), (30, true), (60, true)] {
            let req = if write {
                write_req(1, page, 4, 9)
            } else {
                read_req(1, page, 4)
            };
            let err = engine.submit_wait(&area, req).result.unwrap_err();
            assert!(
                matches!(err, DeviceError::Shrunk { size_bytes, .. } if size_bytes == 32 * PAGE_SIZE as u64),
                "{} page {page} write {write}: {err}",
                engine.kind()
            );
        }
        let c = engine.submit_wait(&area, read_req(1, 20, 4));
        c.result.unwrap();
        assert_eq!(
            c.buf.page(0),
            &common::pattern(20, 7)[..],
            "{}",
            engine.kind()
        );
        engine
            .submit_wait(&area, write_req(1, 24, 4, 5))
            .result
            .unwrap();
    }
    assert_eq!(area.shrunk_pages(), Some(32));
    let mut buf = PageBuf::new(1);
    let err = area.read_pages(40, &mut buf).unwrap_err();
    assert!(err.to_string().contains("shrank to 131072 bytes"), "{err}");
    assert!(buf.as_slice().iter().all(|&b| b == 0), "nothing read");
    area.read_pages(5, &mut buf).unwrap();
}

/// The same under a loop device, buffered and direct. Past the backing file's end the loop
/// driver answers `EIO` on recent kernels (older ones zero-filled the read); the area
/// notices through the backing file it holds and fails it with what happened. Before the
/// cut it reads.
#[test]
fn a_truncated_backing_file_under_a_loop_device_fails_reads_never_zeroes() {
    let Some(()) = common::loop_or_skip("a_truncated_backing_file_under_a_loop_device") else {
        return;
    };
    let dir = common::scratch();
    for direct_io in [false, true] {
        let file = common::backing_file(dir.path(), &format!("loopcut-{direct_io}"), 64);
        let opts = LoopOptions {
            direct_io,
            ..LoopOptions::default()
        };
        let dev = LoopDevice::attach(&file, &opts).unwrap();
        device::mkswap(dev.path(), &MkswapOptions::default()).unwrap();
        let area = open(dev.path());
        assert_eq!(
            area.backing_file(),
            Some(std::fs::canonicalize(&file).unwrap().as_path())
        );
        for engine in engines() {
            let w = engine.submit_wait(&area, write_req(1, 40, 4, 3));
            w.result.unwrap();
        }
        area.sync().unwrap();
        truncate(&file, 32);
        for engine in engines() {
            let c = engine.submit_wait(&area, read_req(1, 40, 4));
            let err = c.result.unwrap_err();
            assert!(
                matches!(err, DeviceError::Shrunk { .. }),
                "direct I/O {direct_io}, {} page 40: {err}",
                engine.kind()
            );
            assert!(err.to_string().contains("shrank"), "{err}");
            // Before the cut the file is intact.
            let c = engine.submit_wait(&area, read_req(1, 20, 4));
            c.result.unwrap();
        }
        drop(area);
        drop(dev);
    }
    common::assert_no_loop_under(dir.path());
}

#[test]
fn every_callback_runs_once_on_an_engine_thread() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "callbacks", 256);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    for engine in engines() {
        let calls = Arc::new(Mutex::new(HashMap::<u64, u32>::new()));
        let foreign = Arc::new(AtomicU64::new(0));
        for tag in 0..300u64 {
            let (calls, foreign) = (Arc::clone(&calls), Arc::clone(&foreign));
            let req = if tag % 3 == 0 {
                write_req(tag, 1 + tag % 200, 2, tag)
            } else {
                read_req(tag, tag % 256, 1)
            };
            engine.submit(
                &area,
                req,
                Box::new(move |c| {
                    *calls.lock().unwrap().entry(c.tag).or_default() += 1;
                    let name = std::thread::current().name().unwrap_or("").to_owned();
                    if !name.starts_with("swapkit-") {
                        foreign.fetch_add(1, Ordering::Relaxed);
                    }
                }),
            );
        }
        drop(engine); // waits for every queued request
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 300);
        assert!(calls.values().all(|&n| n == 1));
        assert_eq!(foreign.load(Ordering::Relaxed), 0);
    }
    assert_eq!(area.stats().in_flight, 0);
}

#[test]
fn callbacks_may_submit_more_io() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "chain", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    for engine in engines() {
        let engine = Arc::new(engine);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (e2, a2) = (Arc::clone(&engine), Arc::clone(&area));
        engine.submit(
            &area,
            write_req(1, 5, 1, 9),
            Box::new(move |c| {
                c.result.unwrap();
                e2.submit(
                    &a2,
                    read_req(2, 5, 1),
                    Box::new(move |c| tx.send(c).unwrap()),
                );
            }),
        );
        let c = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(c.buf.page(0), common::pattern(5, 9).as_slice());
    }
}

#[test]
fn the_last_engine_handle_may_be_dropped_in_a_callback() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "selfdrop", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    for engine in engines() {
        let engine = Arc::new(engine);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
        let mine = Arc::clone(&engine);
        engine.submit(
            &area,
            read_req(1, 1, 1),
            Box::new(move |c| {
                go_rx.recv().unwrap(); // the test has dropped its handle: this one is the last
                drop(mine);
                tx.send(c.result.is_ok()).unwrap();
            }),
        );
        drop(engine);
        go_tx.send(()).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(30)).unwrap());
    }
}

#[test]
fn discarded_pages_read_back_as_zeroes_where_discard_is_supported() {
    let dir = common::scratch();
    let t = common::swap_target(dir.path(), "discard", 128);
    let area = open(&t.path);
    area.write_pages(8, &write_req(0, 8, 8, 5).buf).unwrap();
    area.discard(10, 4).unwrap();
    let mut buf = PageBuf::new(8);
    area.read_pages(8, &mut buf).unwrap();
    assert_eq!(buf.page(0), common::pattern(8, 5).as_slice());
    assert_eq!(buf.page(6), common::pattern(14, 5).as_slice());
    if area.stats().discards == 1 {
        assert!(
            buf.as_slice()[2 * PAGE_SIZE..6 * PAGE_SIZE]
                .iter()
                .all(|&b| b == 0)
        );
    } else {
        println!(
            "discard unsupported on {}; only checked it is harmless",
            t.path.display()
        );
    }
    assert!(matches!(
        area.discard(0, 1),
        Err(DeviceError::OutOfRange { .. })
    ));
    drop(area);
    drop(t);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn engine_kinds_parse_and_print() {
    for (text, kind) in [
        ("auto", EngineKind::Auto),
        ("io_uring", EngineKind::IoUring),
        ("threads", EngineKind::ThreadPool),
    ] {
        assert_eq!(text.parse::<EngineKind>().unwrap(), kind);
        assert_eq!(kind.to_string(), text);
    }
    assert_eq!(
        "aio".parse::<EngineKind>().unwrap_err(),
        "unknown engine `aio` (expected auto, io_uring or threads)"
    );
    assert_ne!(
        Engine::new(EngineKind::Auto).unwrap().kind(),
        EngineKind::Auto
    );
}

#[test]
fn registered_files_round_trip_and_are_released_when_the_area_goes() {
    let Ok(engine) = Engine::with_config(device::EngineConfig {
        kind: EngineKind::IoUring,
        register_files: true,
        ..Default::default()
    }) else {
        println!("io_uring unavailable; skipped");
        return;
    };
    let dir = common::scratch();
    let t = common::swap_target(dir.path(), "registered", 64);
    let area = open(&t.path);
    engine
        .submit_wait(&area, write_req(1, 3, 2, 4))
        .result
        .unwrap();
    let c = engine.submit_wait(&area, read_req(2, 3, 2));
    c.result.unwrap();
    assert_eq!(c.buf.page(1), common::pattern(4, 4).as_slice());
    drop(area);
    // The ring's reference goes at the submitter's next sweep; then O_EXCL succeeds again.
    let mut reopened = None;
    for _ in 0..100 {
        match SwapArea::open(&t.path, &OpenOptions::default()) {
            Ok(a) => {
                reopened = Some(a);
                break;
            }
            Err(DeviceError::InUse { .. }) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(reopened.is_some(), "the registered file was never released");
    drop(reopened);
    drop(engine);
    drop(t);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn engines_and_areas_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Engine>();
    shareable::<SwapArea>();
    shareable::<PageBuf>();
    shareable::<device::FaultInjector>();
}

#[test]
fn a_full_ring_holds_back_callers_and_callbacks_without_losing_or_deadlocking() {
    // Eight slots, latency injected so they stay taken, four threads submitting at once and
    // every callback submitting one more I/O: the ring is full most of the time, both for
    // callers (who wait) and for callbacks on the reaper (whose requests queue behind).
    let Ok(engine) = Engine::with_config(device::EngineConfig {
        kind: EngineKind::IoUring,
        ring_entries: 8,
        ..Default::default()
    }) else {
        println!("io_uring unavailable; skipped");
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "full", 128);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    area.faults().set_latency(Duration::from_millis(1));
    let engine = Arc::new(engine);
    let (tx, rx) = crossbeam_channel::unbounded::<(u64, Option<String>)>();
    const PER_THREAD: u64 = 60;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (engine, area, tx) = (Arc::clone(&engine), Arc::clone(&area), tx.clone());
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let tag = t * 1000 + i;
                    let (e2, a2, tx2, tx3) = (
                        Arc::clone(&engine),
                        Arc::clone(&area),
                        tx.clone(),
                        tx.clone(),
                    );
                    engine.submit(
                        &area,
                        read_req(tag, 1 + tag % 100, 1 + tag % 3),
                        Box::new(move |c| {
                            tx2.send((c.tag, c.result.err().map(|e| e.to_string())))
                                .unwrap();
                            e2.submit(
                                &a2,
                                read_req(c.tag + 500, 1 + c.tag % 50, 2),
                                Box::new(move |c| {
                                    tx3.send((c.tag, c.result.err().map(|e| e.to_string())))
                                        .unwrap()
                                }),
                            );
                        }),
                    );
                }
            });
        }
    });
    drop(tx);
    let mut seen = HashMap::<u64, u32>::new();
    for _ in 0..4 * PER_THREAD * 2 {
        let (tag, err) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(err, None, "request {tag}");
        *seen.entry(tag).or_default() += 1;
    }
    assert_eq!(seen.len() as u64, 4 * PER_THREAD * 2);
    assert!(seen.values().all(|&n| n == 1), "every callback once");
    drop(engine);
    assert!(rx.try_recv().is_err(), "no extra completions");
    assert_eq!(area.stats().in_flight, 0);
}

#[test]
fn a_request_succeeds_after_the_thread_that_submitted_it_has_exited() {
    // On io_uring the kernel ties a request to the thread that entered it and cancels what
    // that thread left unissued when it exits (here: reads waiting behind injected latency).
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "orphan", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    area.faults().set_latency(Duration::from_millis(5));
    for engine in engines() {
        let engine = Arc::new(engine);
        let (tx, rx) = crossbeam_channel::unbounded();
        for tag in 0..20u64 {
            let (engine, area, tx) = (Arc::clone(&engine), Arc::clone(&area), tx.clone());
            std::thread::spawn(move || {
                engine.submit(
                    &area,
                    read_req(tag, 1 + tag, 2),
                    Box::new(move |c| {
                        tx.send((c.tag, c.result.err().map(|e| e.to_string())))
                            .unwrap()
                    }),
                );
            })
            .join()
            .unwrap();
        }
        for _ in 0..20 {
            let (tag, err) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(err, None, "{}: request {tag}", engine.kind());
        }
    }
    assert_eq!(area.stats().in_flight, 0);
}

/// `submit_wait` does its I/O on the caller's thread: it completes while every engine
/// thread (the one pool worker, the io_uring reaper) is held up in a callback. A wait that
/// went through the engine's threads would only complete after the release (the old path).
#[test]
fn submit_wait_reaps_its_own_completion_while_every_engine_thread_is_busy() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "selfreap", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file);
    for kind in [EngineKind::ThreadPool, EngineKind::IoUring] {
        let config = device::EngineConfig {
            kind,
            threads: 1,
            ..Default::default()
        };
        let Ok(engine) = Engine::with_config(config) else {
            println!("{kind}: unavailable here, not tested");
            continue;
        };
        let (busy_tx, busy_rx) = crossbeam_channel::bounded::<()>(1);
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
        engine.submit(
            &area,
            read_req(1, 1, 1),
            Box::new(move |_| {
                busy_tx.send(()).unwrap();
                // Held until the test has its answer (or gave up waiting for it).
                let _ = release_rx.recv();
            }),
        );
        busy_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let before = area.stats();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::scope(|s| {
            s.spawn(|| {
                let w = engine.submit_wait(&area, write_req(2, 7, 2, 5));
                let r = engine.submit_wait(&area, read_req(3, 7, 2));
                let bad = engine.submit_wait(&area, read_req(4, 0, 1));
                let _ = tx.send((w, r, bad));
            });
            let got = rx.recv_timeout(Duration::from_secs(20));
            release_tx.send(()).unwrap();
            let (w, r, bad) = got.expect("submit_wait waited for a busy engine thread");
            w.result.unwrap();
            assert_eq!((w.tag, r.tag), (2, 3), "{kind}");
            assert_eq!(r.buf.page(1), common::pattern(8, 5).as_slice(), "{kind}");
            assert!(
                matches!(bad.result, Err(DeviceError::OutOfRange { .. })),
                "{kind}: {:?}",
                bad.result
            );
        });
        let after = area.stats();
        assert_eq!(after.writes - before.writes, 1, "{kind}");
        assert_eq!(after.reads - before.reads, 1, "{kind}");
        drop(engine);
        assert_eq!(area.stats().in_flight, 0, "{kind}");
    }
}

/// `read_into`/`write_from` do the I/O straight on the caller's memory (no engine buffer):
/// what they write reads back through either path; memory that is not whole page-aligned
/// pages, and pages outside the area, are refused without I/O; faults and accounting are
/// those of `submit_wait`.
#[test]
fn lent_buffers_are_read_into_and_written_from_directly_on_each_engine() {
    let dir = common::scratch();
    for engine in engines() {
        let t = common::swap_target(dir.path(), &format!("lent-{}", engine.kind()), 128);
        let area = open(&t.path);
        // Page-aligned memory the engine does not own: the pages of a PageBuf, lent.
        let mut mine = PageBuf::new(4);
        for i in 0..4 {
            mine.page_mut(i)
                .copy_from_slice(&common::pattern(20 + i as u64, 7));
        }
        assert!(Engine::lendable(mine.as_slice()));
        engine.write_from(&area, 20, mine.as_slice()).unwrap();
        let c = engine.submit_wait(&area, read_req(1, 20, 4));
        assert!(c.buf.as_slice() == mine.as_slice(), "{}", engine.kind());
        let mut back = PageBuf::new(4);
        engine.read_into(&area, 20, back.as_mut_slice()).unwrap();
        assert!(back.as_slice() == mine.as_slice(), "{}", engine.kind());

        // Not lendable: off a page boundary, part of a page, empty. Refused, no I/O.
        let before = area.stats();
        let mut big = PageBuf::new(3);
        for (at, len) in [(512, PAGE_SIZE), (0, 100), (0, 0)] {
            let bad = &mut big.as_mut_slice()[at..at + len];
            assert!(!Engine::lendable(bad));
            let err = engine.read_into(&area, 20, bad).unwrap_err();
            assert!(matches!(err, DeviceError::Unaligned { .. }), "{err}");
            let err = engine.write_from(&area, 20, bad).unwrap_err();
            assert!(matches!(err, DeviceError::Unaligned { .. }), "{err}");
        }
        let err = engine
            .read_into(&area, 126, back.as_mut_slice())
            .unwrap_err();
        assert!(matches!(err, DeviceError::OutOfRange { .. }), "{err}");
        let after = area.stats();
        assert_eq!(
            (after.reads, after.writes, after.in_flight),
            (before.reads, before.writes, 0),
            "{}: refusals are no I/O",
            engine.kind()
        );

        // Injected faults apply, and a failed read is an error.
        area.faults().fail_reads(21..22);
        let err = engine
            .read_into(&area, 20, back.as_mut_slice())
            .unwrap_err();
        assert!(matches!(err, DeviceError::Io { .. }), "{err}");
        area.faults().clear();
        let s = area.stats();
        assert_eq!((s.read_errors, s.in_flight), (1, 0), "{}", engine.kind());
        drop(area);
        drop(t);
    }
}
