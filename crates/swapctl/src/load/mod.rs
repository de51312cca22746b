//! `swapctl load`: page data through a running daemon, measure it, and with `--verify` prove
//! that every page read back is the page last written.
//!
//! Each thread has its own connection and its own objects (object `i` belongs to thread
//! `i % threads`), so a thread knows the generation of every page it owns without locks.
//! What a read may return is [`model`]'s rule: data must be exactly the last acknowledged
//! generation; an explicit read error is counted, never a failure; a page whose put failed
//! may be absent. With `--async`, each thread sends `sync` every `SYNC_EVERY` writes and
//! before the final read-back: pages it reports lost (their acknowledged async write failed
//! on every swap area) are counted as `async writes lost` and expected to read as errors.
//! With `--verify` the run ends with a full read-back of every page, and the first wrong page
//! stops all threads and exits 4 with its location.
//!
//! Exit status (`output::exit`): 0 when every page was stored; 4 when some were not (a put
//! that failed, an async write `sync` reported lost) or a page read back wrong; 8 when the
//! daemon went away; 16 for bad arguments. Before the run, a warning on stderr when the
//! objects do not fit in the free swap space: the run then measures failures, not paging.

pub mod content;
pub mod model;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use device::PAGE_SIZE;
use device::latency::{self, LatencySummary};

use crate::cli::{LoadArgs, Pattern};
use crate::output::exit::{EX_FAILURE, EX_SYSERR};
use crate::output::{CliError, print};
use control::client::{Client, ClientError};
use control::proto::ProtoError;
use control::proto::{GetStatus, PutStatus};

use model::{Page, Verdict};

/// Async writes between two `sync`s of a thread.
const SYNC_EVERY: u64 = 64;

#[derive(Debug, Clone)]
struct Plan {
    socket: PathBuf,
    pages: u64,
    cluster: u64,
    pattern: Pattern,
    verify: bool,
    sync: bool,
    deadline: Instant,
    seed: u64,
}

/// One thread's tally.
#[derive(Debug)]
struct Tally {
    hist: Histogram<u64>,
    pages_out: u64,
    pages_in: u64,
    put_failures: u64,
    read_errors: u64,
    verified: u64,
    async_lost: u64,
    /// Async write requests since the last `sync`.
    unsynced: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: latency::histogram(),
            pages_out: 0,
            pages_in: 0,
            put_failures: 0,
            read_errors: 0,
            verified: 0,
            async_lost: 0,
            unsynced: 0,
        }
    }
}

/// What the run reports, on a line each or as JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seconds: f64,
    pub requests: u64,
    pub pages_out: u64,
    pub pages_in: u64,
    pub mib_per_s_out: f64,
    pub mib_per_s_in: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Pages a put did not store (`fail`: no space; `error`: I/O on every area).
    pub put_failures: u64,
    /// Reads answered with an explicit error (corrupt, lost or unreadable pages): allowed.
    pub read_errors: u64,
    /// Pages whose acknowledged async write failed on every area, as `sync` reported them.
    pub async_writes_lost: u64,
    pub verified_pages: Option<u64>,
    /// Pages read back with other bytes than their last acknowledged generation (or read as
    /// absent when acknowledged): with `--verify` always 0, since the first one ends the run.
    pub wrong_pages: Option<u64>,
}

struct Worker<'a> {
    plan: &'a Plan,
    client: Client,
    /// (global object index, wire id, model of each page)
    objects: Vec<(u64, u64, Vec<Page>)>,
    tally: Tally,
    rng: SmallRng,
    stop: &'a AtomicBool,
}

/// Why a thread stopped, and the exit status it means.
#[derive(Debug)]
struct Stop {
    code: i32,
    why: String,
}

impl Stop {
    /// The same stop, its text prefixed with what was being done.
    fn context(self, what: &str) -> Stop {
        Stop {
            why: format!("{what}: {}", self.why),
            ..self
        }
    }
}

impl From<String> for Stop {
    fn from(why: String) -> Stop {
        Stop {
            code: EX_FAILURE,
            why,
        }
    }
}

/// A connection the daemon closed (it exited, crashed or was killed): the socket error
/// (`Broken pipe`, `Connection reset`, a truncated reply) says nothing an admin can use.
fn daemon_went_away(e: &ClientError) -> bool {
    use std::io::ErrorKind as K;
    match e {
        ClientError::Proto(ProtoError::Closed | ProtoError::Incomplete(_)) => true,
        ClientError::Proto(ProtoError::Io(io)) => matches!(
            io.kind(),
            K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
        ),
        _ => false,
    }
}

fn daemon_err(e: ClientError) -> Stop {
    if daemon_went_away(&e) {
        Stop {
            code: EX_SYSERR,
            why: "the daemon went away".into(),
        }
    } else {
        Stop {
            code: crate::output::exit::of_client(&e),
            why: e.to_string(),
        }
    }
}

impl Worker<'_> {
    /// Run one request and record its round-trip latency (daemon plus pager plus device).
    fn timed<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, Stop> {
        let t = Instant::now();
        let r = f(&mut self.client).map_err(daemon_err);
        latency::record(&mut self.tally.hist, t.elapsed());
        r
    }

    /// Page out `count` pages of object `k` at `pindex`, each with the next generation. A
    /// page swap did not take (FAIL/ERROR) becomes "unknown": swap may still hold its last
    /// acknowledged copy, or nothing, and both are legal.
    fn write(&mut self, k: usize, pindex: u64, count: u64) -> Result<(), Stop> {
        let (obj, id) = (self.objects[k].0, self.objects[k].1);
        let mut data = vec![0u8; count as usize * PAGE_SIZE];
        let mut gens = Vec::with_capacity(count as usize);
        for (i, page) in data.chunks_mut(PAGE_SIZE).enumerate() {
            let g = self.objects[k].2[pindex as usize + i].next_generation();
            fill_page(page, obj, pindex + i as u64, g);
            gens.push(g);
        }
        let sync = self.plan.sync;
        let res = self.timed(|c| c.putpages(id, pindex, data, sync))?;
        for (i, st) in res.iter().enumerate() {
            let ok = *st == PutStatus::Ok;
            self.objects[k].2[pindex as usize + i].put(gens[i], ok);
            if ok {
                self.tally.pages_out += 1;
            } else {
                self.tally.put_failures += 1;
            }
        }
        if !sync {
            self.tally.unsynced += 1;
            if self.tally.unsynced >= SYNC_EVERY {
                self.sync()?;
            }
        }
        Ok(())
    }

    /// Ask which acknowledged async writes of this thread's objects failed since the last
    /// `sync` (waiting for those in flight): those pages are lost, expected to read as errors.
    fn sync(&mut self) -> Result<(), Stop> {
        self.tally.unsynced = 0;
        let lost = self
            .timed(|c| c.sync(None))
            .map_err(|e| e.context("sync"))?;
        for (id, p) in lost {
            let Some(o) = self.objects.iter_mut().find(|o| o.1 == id) else {
                return Err(format!("sync reported object {id}, which is not ours").into());
            };
            let Some(page) = o.2.get_mut(p as usize) else {
                return Err(format!("sync reported page {p} of object {id}, never written").into());
            };
            page.lost();
            self.tally.async_lost += 1;
        }
        Ok(())
    }

    /// Page in `count` pages of object `k` at `pindex`; with `verify`, each is judged by
    /// [`model`]: data must be exactly the last acknowledged generation, read errors are
    /// counted. The first wrong page is the run's error.
    fn read(&mut self, k: usize, pindex: u64, count: u64) -> Result<(), Stop> {
        let (obj, id) = (self.objects[k].0, self.objects[k].1);
        let (st, data) = self.timed(|c| c.getpages(id, pindex, count as u32))?;
        for (i, (s, page)) in st.iter().zip(data.chunks(PAGE_SIZE)).enumerate() {
            let p = pindex + i as u64;
            match s {
                GetStatus::Ok => self.tally.pages_in += 1,
                GetStatus::Error => self.tally.read_errors += 1,
                GetStatus::Absent => {}
            }
            if !self.plan.verify {
                continue;
            }
            match self.objects[k].2[p as usize].judge(*s, page, obj, p) {
                Verdict::Verified => self.tally.verified += 1,
                Verdict::ReadError | Verdict::Unchecked => {}
                Verdict::Wrong(m) => return Err(format!("verify failed: {m}").into()),
            }
        }
        Ok(())
    }

    /// The next (object, start, pages, is_write) of the random patterns.
    fn pick(&mut self, reads: f64) -> (usize, u64, u64, bool) {
        let k = self.rng.random_range(0..self.objects.len());
        let count = self.plan.cluster.min(self.plan.pages);
        let start = self.rng.random_range(0..=self.plan.pages - count);
        (k, start, count, !self.rng.random_bool(reads))
    }

    /// The pattern until the deadline (or another thread's failure), then, with `verify`,
    /// a read-back of every page of every object this thread owns.
    fn run(&mut self) -> Result<(), Stop> {
        let (pages, cluster) = (self.plan.pages, self.plan.cluster);
        let mut seq_pos = 0u64; // position in the concatenation of all objects, write then read
        let span = pages * self.objects.len() as u64;
        while Instant::now() < self.plan.deadline && !self.stop.load(Ordering::Relaxed) {
            match self.plan.pattern {
                Pattern::Seq => {
                    let pos = seq_pos % (2 * span);
                    let (k, p) = ((pos % span / pages) as usize, pos % pages);
                    let n = cluster.min(pages - p);
                    if pos < span {
                        self.write(k, p, n)?
                    } else {
                        self.read(k, p, n)?
                    }
                    seq_pos += n;
                }
                Pattern::Random => {
                    let (k, s, n, w) = self.pick(0.5);
                    if w {
                        self.write(k, s, n)?
                    } else {
                        self.read(k, s, n)?
                    }
                }
                Pattern::Mixed => {
                    let (k, s, _, w) = self.pick(1.0 / 3.0);
                    let run = self.rng.random_range(1..=4u64) * cluster;
                    let end = (s + run).min(pages);
                    let mut p = s;
                    while p < end {
                        let n = cluster.min(end - p);
                        if w {
                            self.write(k, p, n)?
                        } else {
                            self.read(k, p, n)?
                        }
                        p += n;
                    }
                }
            }
        }
        if !self.plan.sync && !self.stop.load(Ordering::Relaxed) {
            self.sync()?;
        }
        if self.plan.verify && !self.stop.load(Ordering::Relaxed) {
            for k in 0..self.objects.len() {
                let mut p = 0;
                while p < pages {
                    let n = cluster.min(pages - p);
                    self.read(k, p, n)?;
                    p += n;
                }
            }
        }
        Ok(())
    }
}

fn fill_page(page: &mut [u8], obj: u64, pindex: u64, g: u32) {
    content::fill(page, obj, pindex, g);
}

/// One thread: its own connection, objects `t, t + threads, ...`, anonymous (freed by the
/// daemon if this process dies), destroyed at the end.
fn worker(
    plan: &Plan,
    t: u64,
    threads: u64,
    objects: u64,
    stop: &AtomicBool,
) -> Result<Tally, Stop> {
    let mut client = Client::connect(&plan.socket).map_err(daemon_err)?;
    let mut owned = Vec::new();
    for obj in (t..objects).step_by(threads as usize) {
        let id = client
            .create(None)
            .map_err(|e| daemon_err(e).context("create object"))?;
        owned.push((obj, id, vec![Page::default(); plan.pages as usize]));
    }
    let mut w = Worker {
        plan,
        client,
        objects: owned,
        tally: Tally::new(),
        rng: SmallRng::seed_from_u64(plan.seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        stop,
    };
    let r = w.run();
    for (_, id, _) in &w.objects {
        let _ = w.client.destroy(*id);
    }
    r.map(|()| w.tally)
}

/// `swapctl load`: start the threads, stop them all at the first error, report.
pub fn run(a: &LoadArgs) -> Result<i32, CliError> {
    if a.cluster == 0 || a.cluster > 32 {
        return Err(CliError::usage("load", "--cluster must be in 1..=32"));
    }
    if a.objects == 0 || a.threads == 0 || a.size < PAGE_SIZE as u64 {
        return Err(CliError::usage(
            "load",
            "--objects and --threads must be at least 1, --size at least 4K",
        ));
    }
    let threads = a.threads.min(a.objects);
    let plan = Plan {
        socket: a.socket.socket.clone(),
        pages: a.size.div_ceil(PAGE_SIZE as u64),
        cluster: u64::from(a.cluster),
        pattern: a.pattern,
        verify: a.verify,
        sync: !a.async_writes,
        deadline: Instant::now() + a.duration,
        seed: a.seed,
    };
    // Fail fast, in one line, when there is no daemon; warn when the objects cannot fit.
    let fail = |e: ClientError| match e {
        ClientError::Connect { .. } | ClientError::Permission { .. } => CliError::from(e),
        e => {
            let s = daemon_err(e);
            CliError::new("load", s.why).with_code(s.code)
        }
    };
    let stats = Client::connect(&plan.socket)
        .and_then(|mut c| c.stats())
        .map_err(fail)?;
    if let Some(w) = size_warning(a.objects, plan.pages, stats.free_pages) {
        eprintln!("swapctl: load: {w}");
    }
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Stop>> = Mutex::new(None);
    let tallies: Mutex<Vec<Tally>> = Mutex::default();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (plan, stop, first_error, tallies) = (&plan, &stop, &first_error, &tallies);
            s.spawn(move || match worker(plan, t, threads, a.objects, stop) {
                Ok(tally) => tallies.lock().push(tally),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.lock().get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner() {
        return Err(CliError::new("load", e.why).with_code(e.code));
    }
    let report = summarize(&tallies.into_inner(), start.elapsed(), a.verify);
    if a.json {
        print(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"));
    } else {
        print(&render(&report));
    }
    let (code, why) = outcome(&report);
    if let Some(why) = why {
        eprintln!("swapctl: load: {why}");
    }
    Ok(code)
}

/// The warning before the run when `objects` of `pages` each exceed the free swap space.
fn size_warning(objects: u64, pages: u64, free_pages: u64) -> Option<String> {
    let asked = objects.saturating_mul(pages);
    (asked > free_pages).then(|| {
        format!(
            "warning: {objects} objects of {pages} pages ({asked} pages) exceed the free swap space ({free_pages} pages): pages that do not fit will not be stored"
        )
    })
}

/// The exit status of a finished run, and why it is not 0: a page that could not be stored
/// (a failed put, an async write lost) is a failure of the operation, as in `swapoff(8)`'s 4.
fn outcome(r: &Report) -> (i32, Option<String>) {
    let lost = r.put_failures + r.async_writes_lost;
    if lost == 0 {
        return (0, None);
    }
    let pages = if lost == 1 { "page" } else { "pages" };
    (
        EX_FAILURE,
        Some(format!("{lost} {pages} could not be stored")),
    )
}

fn summarize(tallies: &[Tally], elapsed: Duration, verify: bool) -> Report {
    let mut hist = latency::histogram();
    for t in tallies {
        // Same bounds on both sides: adding cannot fail.
        let _ = hist.add(&t.hist);
    }
    let lat = LatencySummary::of(&hist);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let mib = |pages: u64| pages as f64 * PAGE_SIZE as f64 / (1 << 20) as f64 / secs;
    Report {
        seconds: secs,
        requests: lat.count,
        pages_out: sum(|t| t.pages_out),
        pages_in: sum(|t| t.pages_in),
        mib_per_s_out: mib(sum(|t| t.pages_out)),
        mib_per_s_in: mib(sum(|t| t.pages_in)),
        p50_us: lat.p50_us,
        p99_us: lat.p99_us,
        p999_us: lat.p999_us,
        max_us: lat.max_us,
        put_failures: sum(|t| t.put_failures),
        read_errors: sum(|t| t.read_errors),
        async_writes_lost: sum(|t| t.async_lost),
        verified_pages: verify.then(|| sum(|t| t.verified)),
        wrong_pages: verify.then_some(0),
    }
}

fn render(r: &Report) -> String {
    let mut s = format!(
        "{} requests in {:.1}s\npaged out  {} pages  {:.1} MiB/s\npaged in   {} pages  {:.1} MiB/s\n\
         latency    p50 {}us  p99 {}us  p99.9 {}us  max {}us\n",
        r.requests,
        r.seconds,
        r.pages_out,
        r.mib_per_s_out,
        r.pages_in,
        r.mib_per_s_in,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        r.max_us
    );
    if r.put_failures > 0 || r.read_errors > 0 || r.async_writes_lost > 0 {
        s.push_str(&format!(
            "errors     {} pages not stored, {} async writes lost (reported by sync), {} read errors (explicit errors, never data)\n",
            r.put_failures, r.async_writes_lost, r.read_errors
        ));
    }
    if let (Some(v), Some(w)) = (r.verified_pages, r.wrong_pages) {
        s.push_str(&format!(
            "verified   {v} pages, no mismatch: {w} wrong (every page read as data was its last acknowledged write)\n"
        ));
    }
    s
}

#[cfg(test)]
mod daemon_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn report(put_failures: u64, async_writes_lost: u64) -> Report {
        summarize(&[], Duration::from_secs(1), false).with_failures(put_failures, async_writes_lost)
    }

    impl Report {
        fn with_failures(mut self, put_failures: u64, async_writes_lost: u64) -> Report {
            self.put_failures = put_failures;
            self.async_writes_lost = async_writes_lost;
            self
        }
    }

    #[test]
    fn pages_not_stored_make_the_run_fail() {
        assert_eq!(outcome(&report(0, 0)), (0, None));
        let (code, why) = outcome(&report(791_565, 0));
        assert_eq!(code, EX_FAILURE);
        assert_eq!(why.as_deref(), Some("791565 pages could not be stored"));
        let (code, why) = outcome(&report(0, 1));
        assert_eq!(code, EX_FAILURE);
        assert_eq!(why.as_deref(), Some("1 page could not be stored"));
    }

    #[test]
    fn a_size_over_the_free_swap_space_is_warned_about() {
        assert_eq!(size_warning(4, 4096, 16384), None);
        let w = size_warning(4, 4096, 16383).expect("one page short");
        assert!(
            w.contains("16384 pages") && w.contains("16383 pages"),
            "{w}"
        );
        assert!(size_warning(u64::MAX, u64::MAX, 0).is_some(), "no overflow");
    }

    #[test]
    fn a_closed_connection_is_the_daemon_going_away() {
        use std::io::{Error, ErrorKind};
        for e in [
            ClientError::Proto(ProtoError::Io(Error::from(ErrorKind::BrokenPipe))),
            ClientError::Proto(ProtoError::Io(Error::from(ErrorKind::ConnectionReset))),
            ClientError::Proto(ProtoError::Closed),
        ] {
            let s = daemon_err(e).context("sync");
            assert_eq!(s.why, "sync: the daemon went away");
            assert_eq!(s.code, EX_SYSERR);
        }
        let s = daemon_err(ClientError::Daemon {
            kind: control::proto::ErrorKind::Quota,
            message: "over quota".into(),
        });
        assert_eq!((s.code, s.why.as_str()), (EX_FAILURE, "over quota"));
    }
}
