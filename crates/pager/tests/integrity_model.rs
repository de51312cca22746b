//! The model-based test of issue #11's rule: after `putpages` of a page returns `Ok` or
//! `Pend`, every later read of it returns exactly those bytes or an error — never other
//! bytes, an older version or zeroes — until it is written again or freed.
//!
//! Random operations over 3 objects on 2–4 file-backed areas, on both engines: sync and
//! async writes overlapping on the same pages (async puts are not waited for), reads with
//! read-around and through `strategy`, frees, reserves, copies, injected write and read
//! faults and latency, garbage written straight into an area's backing file under a live
//! page, a backing file truncated and grown back, swapoff and swapon. Every read is
//! compared with the model: the last acknowledged bytes or an error. Errors are allowed
//! (faults make them); wrong bytes never are. At the end, with the faults gone, every page
//! is read once more, and most must come back (so the test cannot pass by erroring).
//!
//! `SWAPKIT_INTEGRITY_OPS` sets the number of operations (default 3000, split over both
//! engines and several seeds); `SWAPKIT_INTEGRITY_SEED` the first seed. A release run:
//! `SWAPKIT_INTEGRITY_OPS=100000 cargo test --release -p pager --test integrity_model`.
//! `SWAPKIT_INTEGRITY_CHECKSUM=none` runs it without page checksums, to see it fail: the
//! garbage written under live pages then comes back as data.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use common::{ENGINES, area, config, page, pages, tempdir};
use device::{EngineKind, PAGE_SIZE};
use pager::{
    Bio, DeviceId, Object, PageResult, Pager, PagerConfig, PagerError, PutMode, SwapoffOptions,
    SwaponOptions,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Memory for a read of `pages` pages, and where in it the read goes: every other read
/// (by `n`) page-aligned, which getpages reads into directly (`Engine::read_into`), the
/// others 8 bytes off, which it reads through a pbuf and copies.
fn lent_or_not(pages: usize, n: u64) -> (device::PageBuf, usize) {
    (
        device::PageBuf::new(pages + 1),
        if n.is_multiple_of(2) { 0 } else { 8 },
    )
}

const OBJECTS: usize = 3;
const OBJ_PAGES: u64 = 48;
const AREA_PAGES: [u64; 4] = [161, 129, 97, 65];
/// Operations per run (one pager); runs go on until the budget is spent.
const RUN_OPS: u64 = 400;

/// What a page must read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Acknowledged with this tag: `page(tag)` or an error.
    Tag(u64),
    /// Reserved: any bytes.
    Any,
}

#[derive(Debug, Default)]
struct Tally {
    ops: u64,
    reads: u64,
    pages_checked: u64,
    read_errors: u64,
    wrong: u64,
    final_ok: u64,
    final_err: u64,
    async_failures: u64,
    /// Pages put: acknowledged (`Ok`/`Pend`), no space (`Fail`), failed everywhere (`Error`).
    put_acked: u64,
    put_fail: u64,
    put_error: u64,
}

struct Run {
    p: Pager,
    _dir: tempfile::TempDir,
    areas: Vec<(PathBuf, Option<DeviceId>)>,
    objs: Vec<Object>,
    model: Vec<HashMap<u64, Want>>,
    tag: u64,
    rng: SmallRng,
    log: VecDeque<String>,
}

impl Run {
    fn new(engine: EngineKind, seed: u64) -> Run {
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempdir();
        let checksum = match std::env::var("SWAPKIT_INTEGRITY_CHECKSUM").as_deref() {
            Ok("none") => pager::Checksum::None,
            _ => pager::Checksum::Crc32c,
        };
        let p = Pager::new(PagerConfig {
            engine,
            checksum,
            ..config([0, 1, 4, 32][rng.random_range(0..4)])
        })
        .unwrap();
        let on = rng.random_range(2..=4);
        let areas = AREA_PAGES
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let path = area(dir.path(), &format!("i{i}"), n);
                let id = (i < on).then(|| p.swapon(&path, SwaponOptions::default()).unwrap());
                (path, id)
            })
            .collect();
        let objs = (0..OBJECTS)
            .map(|_| p.alloc_object(None, OBJ_PAGES))
            .collect();
        Run {
            p,
            _dir: dir,
            areas,
            objs,
            model: vec![HashMap::new(); OBJECTS],
            tag: seed << 32,
            rng,
            log: VecDeque::new(),
        }
    }

    fn note(&mut self, what: String) {
        if self.log.len() == 30 {
            self.log.pop_front();
        }
        self.log.push_back(what);
    }

    /// Checks one page a read returned.
    fn check(&self, t: &mut Tally, obj: usize, q: u64, got: &[u8], absent_zero: bool) {
        t.pages_checked += 1;
        let ok = match self.model[obj].get(&q) {
            Some(Want::Tag(tag)) => got == page(*tag).as_slice(),
            Some(Want::Any) => true,
            None => absent_zero && got.iter().all(|&b| b == 0),
        };
        if !ok {
            t.wrong += 1;
            panic!(
                "WRONG BYTES: object {obj} page {q}: want {:?}; last operations:\n{}",
                self.model[obj].get(&q),
                self.log.iter().cloned().collect::<Vec<_>>().join("\n")
            );
        }
    }

    fn live_areas(&self) -> Vec<usize> {
        (0..self.areas.len())
            .filter(|&i| self.areas[i].1.is_some())
            .collect()
    }

    /// One piece: one match arm per operation, each checked against the model.
    fn step(&mut self, t: &mut Tally) {
        t.ops += 1;
        let obj = self.rng.random_range(0..OBJECTS);
        let start = self.rng.random_range(0..OBJ_PAGES);
        let n = self.rng.random_range(1..=(OBJ_PAGES - start).min(12));
        let p = self.p.clone();
        match self.rng.random_range(0..100) {
            0..=29 => {
                let asynch = self.rng.random_bool(0.5);
                let tag = self.tag;
                self.tag += n;
                self.note(format!("put {obj} {start}+{n} async {asynch} tag {tag}"));
                let mode = if asynch {
                    PutMode::Async(None)
                } else {
                    PutMode::Sync
                };
                let res = p.putpages(&self.objs[obj], start, &pages(tag, n), mode);
                for r in &res {
                    match r {
                        PageResult::Ok | PageResult::Pend => t.put_acked += 1,
                        PageResult::Fail => t.put_fail += 1,
                        PageResult::Error => t.put_error += 1,
                    }
                }
                for (k, r) in res.iter().enumerate() {
                    if matches!(r, PageResult::Ok | PageResult::Pend) {
                        self.model[obj].insert(start + k as u64, Want::Tag(tag + k as u64));
                    }
                }
            }
            30..=54 => {
                let behind = self.rng.random_range(0..4u64).min(start);
                let ahead = self.rng.random_range(0..4u64);
                self.note(format!("get {obj} {start} -{behind} +{ahead}"));
                let n = (behind + 1 + ahead) as usize;
                let mut mem = lent_or_not(n, t.reads);
                let out = &mut mem.0.as_mut_slice()[mem.1..mem.1 + n * PAGE_SIZE];
                t.reads += 1;
                match p.getpages(&self.objs[obj], start, behind, ahead, out) {
                    Ok(r) => {
                        assert!(r.contains(&start));
                        for q in r {
                            let at = (q + behind - start) as usize * PAGE_SIZE;
                            self.check(t, obj, q, &out[at..at + PAGE_SIZE], false);
                        }
                    }
                    Err(PagerError::NotOnSwap { .. }) => {
                        // Acknowledged pages are never silently gone.
                        if let Some(Want::Tag(_)) = self.model[obj].get(&start) {
                            t.wrong += 1;
                            panic!(
                                "LOST: object {obj} page {start} not on swap; last:\n{}",
                                self.log.iter().cloned().collect::<Vec<_>>().join("\n")
                            );
                        }
                    }
                    Err(_) => t.read_errors += 1,
                }
            }
            55..=61 => {
                self.note(format!("sread {obj} {start}+{n}"));
                let mut buf = vec![7u8; n as usize * PAGE_SIZE];
                let bio = Bio::Read {
                    offset: start * PAGE_SIZE as u64,
                    buf: &mut buf,
                };
                t.reads += 1;
                match p.strategy(&self.objs[obj], bio) {
                    Ok(()) => {
                        for q in start..start + n {
                            let at = (q - start) as usize * PAGE_SIZE;
                            self.check(t, obj, q, &buf[at..at + PAGE_SIZE], true);
                        }
                    }
                    Err(_) => t.read_errors += 1,
                }
            }
            62..=65 => {
                self.note(format!("free {obj} {start}+{n}"));
                p.freespace(&self.objs[obj], start, n);
                for q in start..start + n {
                    self.model[obj].remove(&q);
                }
            }
            66..=67 => {
                self.note(format!("reserve {obj} {start}+{n}"));
                if p.reserve(&self.objs[obj], start, n).is_ok() {
                    for q in start..start + n {
                        self.model[obj].insert(q, Want::Any);
                    }
                }
            }
            68..=69 => {
                let dst = self.rng.random_range(0..OBJECTS);
                let offset = self.rng.random_range(0..8);
                let destroy = self.rng.random_bool(0.3);
                self.note(format!("copy {obj} -> {dst} at {offset} destroy {destroy}"));
                p.copy(&self.objs[obj], &self.objs[dst], offset, destroy);
                if obj != dst {
                    for i in 0..OBJ_PAGES {
                        let s = self.model[obj].remove(&(i + offset));
                        if let Some(v) = s
                            && !self.model[dst].contains_key(&i)
                        {
                            self.model[dst].insert(i, v);
                        }
                    }
                    if destroy {
                        self.model[obj].clear();
                    }
                }
            }
            70..=73 => {
                // Garbage straight into the backing file under a live page.
                if let Some((dev, at)) = p.locate(&self.objs[obj], start)
                    && let Some(a) = p.area(dev)
                {
                    self.note(format!("scribble {obj} {start} (device {dev} page {at})"));
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(a.path())
                        .unwrap();
                    let junk = vec![self.rng.random::<u8>() | 1; PAGE_SIZE];
                    f.write_all_at(&junk, at * PAGE_SIZE as u64).unwrap();
                    f.sync_all().unwrap();
                }
            }
            74 => {
                // Truncate a backing file and grow it back: the tail reads as zeroes.
                let live = self.live_areas();
                let i = live[self.rng.random_range(0..live.len())];
                let cut = self.rng.random_range(2..AREA_PAGES[i]);
                self.note(format!("truncate area {i} at page {cut}"));
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.areas[i].0)
                    .unwrap();
                f.set_len(cut * PAGE_SIZE as u64).unwrap();
                f.set_len(AREA_PAGES[i] * PAGE_SIZE as u64).unwrap();
            }
            75..=80 => {
                let live = self.live_areas();
                let i = live[self.rng.random_range(0..live.len())];
                let Some(a) = self.areas[i].1.and_then(|id| p.area(id)) else {
                    return;
                };
                let at = self.rng.random_range(1..AREA_PAGES[i]);
                let len = self.rng.random_range(1..8);
                match self.rng.random_range(0..5) {
                    0 | 1 => {
                        self.note(format!("fail writes area {i} {at}+{len}"));
                        a.faults().fail_writes(at..at + len);
                    }
                    2 => {
                        self.note(format!("fail reads area {i} {at}+{len}"));
                        a.faults().fail_reads(at..at + len);
                    }
                    _ => {
                        let ms = self.rng.random_range(0..4);
                        self.note(format!("latency area {i} {ms} ms"));
                        a.faults().set_latency(std::time::Duration::from_millis(ms));
                    }
                }
            }
            81 => {
                // A burst in which every area refuses writes (a full file system under all
                // of them): an async put and a sync put of the same page overlap and both
                // fail everywhere; the async one was acknowledged, so the page must read as
                // an error from now on, never as its older copy. One page, so that each
                // area sees two errors and is not marked failing by the burst alone.
                let n = 1;
                let tag = self.tag;
                self.tag += 2 * n;
                self.note(format!(
                    "burst: all writes fail; put {obj} {start}+{n} async then sync, tags {tag}.."
                ));
                let live = self.live_areas();
                for &i in &live {
                    if let Some(a) = self.areas[i].1.and_then(|id| p.area(id)) {
                        a.faults().fail_writes(1..AREA_PAGES[i]);
                        a.faults().set_latency(std::time::Duration::from_millis(1));
                    }
                }
                let first =
                    p.putpages(&self.objs[obj], start, &pages(tag, n), PutMode::Async(None));
                let second = p.putpages(&self.objs[obj], start, &pages(tag + n, n), PutMode::Sync);
                for (k, (a, b)) in first.iter().zip(&second).enumerate() {
                    let q = start + k as u64;
                    if matches!(b, PageResult::Ok) {
                        self.model[obj].insert(q, Want::Tag(tag + n + k as u64));
                    } else if matches!(a, PageResult::Ok | PageResult::Pend) {
                        self.model[obj].insert(q, Want::Tag(tag + k as u64));
                    }
                }
                for &i in &live {
                    if let Some(a) = self.areas[i].1.and_then(|id| p.area(id)) {
                        a.faults().clear();
                    }
                }
            }
            82..=85 => {
                let live = self.live_areas();
                let i = live[self.rng.random_range(0..live.len())];
                if let Some(a) = self.areas[i].1.and_then(|id| p.area(id)) {
                    self.note(format!("clear faults area {i}"));
                    a.faults().clear();
                }
            }
            86..=89 => {
                // An area marked failing is taken off (drained) first, as an administrator
                // would; otherwise any area goes off or comes on.
                let failing: Vec<u32> = p
                    .stats()
                    .devices
                    .iter()
                    .filter(|d| d.state == pager::DeviceState::Failing)
                    .map(|d| d.id)
                    .collect();
                let is_failing =
                    |id: Option<DeviceId>| id.is_some_and(|id| failing.contains(&id.0));
                let off = self.areas.iter().position(|(_, id)| id.is_none());
                let all_failing = self
                    .areas
                    .iter()
                    .all(|(_, id)| id.is_none() || is_failing(*id));
                let i = match off {
                    // No healthy area left: bring one in first, so the others can drain.
                    Some(off) if all_failing => off,
                    _ => self
                        .areas
                        .iter()
                        .position(|(_, id)| is_failing(*id))
                        .filter(|_| self.live_areas().len() > 1)
                        .unwrap_or_else(|| self.rng.random_range(0..self.areas.len())),
                };
                match self.areas[i].1 {
                    Some(id) if self.live_areas().len() > 1 => {
                        self.note(format!("swapoff area {i}"));
                        match p.swapoff(id, SwapoffOptions::default(), &mut |_, _| {}) {
                            Ok(_) => self.areas[i].1 = None,
                            Err(e) => self.note(format!("  swapoff refused: {e}")),
                        }
                    }
                    Some(_) => {}
                    None => {
                        self.note(format!("swapon area {i}"));
                        let prio = self.rng.random_range(0..2);
                        let opts = SwaponOptions {
                            priority: prio,
                            ..SwaponOptions::default()
                        };
                        self.areas[i].1 = Some(p.swapon(&self.areas[i].0, opts).unwrap());
                    }
                }
            }
            90..=92 => {
                self.note(format!("unswapped {obj} {start}"));
                p.unswapped(&self.objs[obj], start);
                self.model[obj].remove(&start);
            }
            93..=95 => {
                self.note("wait".into());
                p.wait_async();
                // Failed async pages are reported (the page may have been freed or written
                // again since; reads of it are checked as any other).
                for obj in &self.objs {
                    let failed = p.take_async_failures(obj);
                    assert!(failed.iter().all(|&q| q < OBJ_PAGES));
                    t.async_failures += failed.len() as u64;
                }
            }
            _ => {
                self.note(format!("new object {obj}"));
                self.objs[obj] = p.alloc_object(None, OBJ_PAGES);
                self.model[obj].clear();
            }
        }
        if let Err(e) = p.verify() {
            panic!(
                "verify: {e}; last:\n{}",
                self.log.iter().cloned().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// Faults off, everything read once more, every block given back.
    fn finish(mut self, t: &mut Tally) {
        self.p.wait_async();
        for (_, id) in &self.areas {
            if let Some(a) = id.and_then(|id| self.p.area(id)) {
                a.faults().clear();
            }
        }
        for obj in 0..OBJECTS {
            let mut keys: Vec<u64> = self.model[obj].keys().copied().collect();
            keys.sort_unstable();
            for q in keys {
                let mut mem = lent_or_not(1, t.reads);
                let out = &mut mem.0.as_mut_slice()[mem.1..mem.1 + PAGE_SIZE];
                t.reads += 1;
                match self.p.getpages(&self.objs[obj], q, 0, 0, out) {
                    Ok(_) => {
                        self.check(t, obj, q, out, false);
                        t.final_ok += 1;
                    }
                    Err(PagerError::NotOnSwap { .. })
                        if self.model[obj].get(&q) == Some(&Want::Any) => {}
                    Err(PagerError::NotOnSwap { .. }) => {
                        t.wrong += 1;
                        panic!("LOST at the end: object {obj} page {q}");
                    }
                    Err(_) => t.final_err += 1,
                }
            }
        }
        self.p.verify().unwrap();
        let p = self.p.clone();
        self.objs.clear();
        assert_eq!(
            p.stats().used_pages,
            0,
            "blocks left after the objects went"
        );
        self.note(String::new());
    }
}

fn budget() -> u64 {
    std::env::var("SWAPKIT_INTEGRITY_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

#[test]
fn every_read_is_the_last_acknowledged_bytes_or_an_error() {
    let first_seed: u64 = std::env::var("SWAPKIT_INTEGRITY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let per_engine = budget() / ENGINES.len() as u64;
    let mut total = Tally::default();
    for engine in ENGINES {
        let mut t = Tally::default();
        let mut seed = first_seed;
        while t.ops < per_engine {
            let mut run = Run::new(engine, seed);
            for _ in 0..RUN_OPS.min(per_engine - t.ops) {
                run.step(&mut t);
            }
            run.finish(&mut t);
            seed += 1;
        }
        eprintln!("{engine:?}: {t:?}");
        assert_eq!(t.wrong, 0);
        // Not vacuous: most pages come back once the faults are gone.
        assert!(
            t.final_ok > 2 * t.final_err && t.pages_checked > t.ops / 4,
            "{engine:?}: too few pages read back at the end: {t:?}"
        );
        total.ops += t.ops;
        total.reads += t.reads;
        total.pages_checked += t.pages_checked;
        total.read_errors += t.read_errors;
        total.final_ok += t.final_ok;
        total.final_err += t.final_err;
    }
    eprintln!(
        "integrity model: {} operations, {} reads, {} pages checked, {} read errors, \
         {} pages whole at the end, {} in error, 0 wrong",
        total.ops,
        total.reads,
        total.pages_checked,
        total.read_errors,
        total.final_ok,
        total.final_err
    );
}
