//! Raw device measurements: how fast a swap area is through an engine, with nothing of the
//! pager in the way. Bench code, not library code: `benches/device.rs` prints these figures,
//! and `tests/rawbench.rs` includes this same file (`#[path]`) to check that a run counts
//! its I/Os and keeps off page 0. (`cargo xtask bench` has its own multi-device driver,
//! `xtask/src/raw.rs`, for the pager's shapes across all devices at once.)
//!
//! A run keeps `queue_depth` I/Os in flight (each completion submits the next) until its
//! time or I/O budget is spent, and records every I/O's latency. Sequential runs walk the
//! data pages from page 1 and wrap; random runs pick aligned starts uniformly. Page 0 is
//! never touched (the engine refuses it anyway).

use std::sync::Arc;
use std::time::{Duration, Instant};

use device::latency::{self, LatencySummary};
use device::{DeviceError, Engine, IoCompletion, IoOp, IoRequest, PAGE_SIZE, PageBuf, SwapArea};
use hdrhistogram::Histogram;

/// Where successive I/Os go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pattern {
    Sequential,
    Random,
}

/// One measurement to make.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawSpec {
    /// A short name for tables, e.g. `seq-write-128k-qd4`.
    pub name: String,
    pub op: IoOp,
    pub pattern: Pattern,
    /// Pages per I/O (32 = 128 KiB clusters).
    pub pages_per_io: usize,
    pub queue_depth: usize,
    /// Stop after this long...
    pub duration: Duration,
    /// ...or after this many I/Os, whichever comes first.
    pub max_ios: u64,
}

impl RawSpec {
    pub fn new(
        op: IoOp,
        pattern: Pattern,
        pages_per_io: usize,
        queue_depth: usize,
        duration: Duration,
    ) -> RawSpec {
        let kind = match pattern {
            Pattern::Sequential => "seq",
            Pattern::Random => "rand",
        };
        let name = format!(
            "{kind}-{}-{}k-qd{queue_depth}",
            op.name(),
            pages_per_io * PAGE_SIZE / 1024
        );
        RawSpec {
            name,
            op,
            pattern,
            pages_per_io,
            queue_depth,
            duration,
            max_ios: u64::MAX,
        }
    }
}

/// The issue's standard set: sequential write and read of 128 KiB clusters at QD4, random
/// 4 KiB reads at QD1 and QD16, each run for `duration`.
pub fn standard_suite(duration: Duration) -> Vec<RawSpec> {
    vec![
        RawSpec::new(IoOp::Write, Pattern::Sequential, 32, 4, duration),
        RawSpec::new(IoOp::Read, Pattern::Sequential, 32, 4, duration),
        RawSpec::new(IoOp::Read, Pattern::Random, 1, 1, duration),
        RawSpec::new(IoOp::Read, Pattern::Random, 1, 16, duration),
    ]
}

/// What one run measured.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RawResult {
    pub name: String,
    /// `io_uring` or `threads`.
    pub engine: String,
    pub ios: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub iops: f64,
    pub mib_per_s: f64,
    pub latency: LatencySummary,
}

impl RawResult {
    /// One table row: name, engine, IOPS, MiB/s, mean/p50/p99 latency.
    pub fn line(&self) -> String {
        format!(
            "{:<22} {:<11} {:>10.0} {:>9.1} {:>9.1} {:>8} {:>8}",
            self.name,
            self.engine,
            self.iops,
            self.mib_per_s,
            self.latency.mean_us,
            self.latency.p50_us,
            self.latency.p99_us
        )
    }

    /// The header matching [`RawResult::line`].
    pub fn header() -> String {
        format!(
            "{:<22} {:<11} {:>10} {:>9} {:>9} {:>8} {:>8}",
            "workload", "engine", "IOPS", "MiB/s", "mean us", "p50 us", "p99 us"
        )
    }
}

impl RawResult {
    /// The figures of `ios` completed I/Os of `pages` pages each over `elapsed`.
    fn of(
        spec: &RawSpec,
        engine: String,
        ios: u64,
        pages: u64,
        elapsed: Duration,
        hist: &Histogram<u64>,
    ) -> RawResult {
        let bytes = ios * pages * PAGE_SIZE as u64;
        let secs = elapsed.as_secs_f64().max(1e-9);
        RawResult {
            name: spec.name.clone(),
            engine,
            ios,
            bytes,
            elapsed,
            iops: ios as f64 / secs,
            mib_per_s: bytes as f64 / secs / (1024.0 * 1024.0),
            latency: LatencySummary::of(hist),
        }
    }
}

/// Formats results as a table with a header.
pub fn table(results: &[RawResult]) -> String {
    let mut out = RawResult::header();
    for r in results {
        out.push('\n');
        out.push_str(&r.line());
    }
    out
}

/// Measures `spec` on `area` through `engine`. Writes put a fixed pattern on the data pages
/// (never page 0); the first I/O error ends the run with that error.
pub fn run(
    engine: &Engine,
    area: &Arc<SwapArea>,
    spec: &RawSpec,
) -> Result<RawResult, DeviceError> {
    let mut next = Placement::for_run(area, spec)?;
    let pages = next.pages;
    let (tx, rx) = crossbeam_channel::unbounded::<IoCompletion>();
    let submit = |buf: PageBuf, page: u64| {
        let tx = tx.clone();
        let req = IoRequest {
            tag: 0,
            op: spec.op,
            page,
            buf,
        };
        engine.submit(area, req, Box::new(move |c| drop(tx.send(c))));
    };
    let mut hist = latency::histogram();
    let start = Instant::now();
    let mut in_flight = 0usize;
    let mut issued = 0u64;
    for _ in 0..spec.queue_depth.max(1) {
        if issued >= spec.max_ios {
            break;
        }
        let mut buf = PageBuf::new(pages as usize);
        buf.as_mut_slice().fill(0x5a);
        submit(buf, next.page());
        in_flight += 1;
        issued += 1;
    }
    let mut done = 0u64;
    let mut failure = None;
    while in_flight > 0 {
        let Ok(c) = rx.recv() else { break };
        in_flight -= 1;
        if let Err(e) = c.result {
            failure.get_or_insert(e);
            continue;
        }
        done += 1;
        latency::record(&mut hist, c.latency);
        if failure.is_none() && issued < spec.max_ios && start.elapsed() < spec.duration {
            submit(c.buf, next.page());
            in_flight += 1;
            issued += 1;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(RawResult::of(
        spec,
        engine.kind().to_string(),
        done,
        pages,
        start.elapsed(),
        &hist,
    ))
}

/// Queue depth 1 the way a caller waiting on each I/O does it: [`Engine::submit_wait`]
/// in a loop, so the calling thread issues every I/O and reaps its own completion (no
/// engine thread, no hand-off), as fio does at `--iodepth=1`. Latency is the caller's:
/// from the call to its return. Rows of this run are named `<engine>/wait`.
pub fn run_waiting(
    engine: &Engine,
    area: &Arc<SwapArea>,
    spec: &RawSpec,
) -> Result<RawResult, DeviceError> {
    let mut next = Placement::for_run(area, spec)?;
    let pages = next.pages;
    let mut buf = PageBuf::new(pages as usize);
    buf.as_mut_slice().fill(0x5a);
    let mut hist = latency::histogram();
    let start = Instant::now();
    let mut done = 0u64;
    while done < spec.max_ios && start.elapsed() < spec.duration {
        let req = IoRequest {
            tag: done,
            op: spec.op,
            page: next.page(),
            buf,
        };
        let t = Instant::now();
        let c = engine.submit_wait(area, req);
        latency::record(&mut hist, t.elapsed());
        c.result?;
        buf = c.buf;
        done += 1;
    }
    Ok(RawResult::of(
        spec,
        format!("{}/wait", engine.kind()),
        done,
        pages,
        start.elapsed(),
        &hist,
    ))
}

/// Like [`run`], but each completion's callback submits the next I/O itself, on the
/// engine's thread, the way an asynchronous program (or fio, in its one thread) keeps its
/// queue full. [`run`] instead hands every completion to the calling thread, which then
/// submits: that measures the engine plus a thread hand-off per I/O, which the engine's
/// contract (callbacks on engine threads) makes unavoidable for a waiting caller. The two
/// side by side show where the time goes.
pub fn run_chained(
    engine: &Arc<Engine>,
    area: &Arc<SwapArea>,
    spec: &RawSpec,
) -> Result<RawResult, DeviceError> {
    let next = Placement::for_run(area, spec)?;
    let pages = next.pages;
    let (end_tx, end_rx) = crossbeam_channel::unbounded::<Option<DeviceError>>();
    let chain = Arc::new(Chain {
        engine: Arc::clone(engine),
        area: Arc::clone(area),
        op: spec.op,
        duration: spec.duration,
        max_ios: spec.max_ios,
        start: Instant::now(),
        state: parking_lot::Mutex::new(ChainState {
            next,
            issued: 0,
            done: 0,
            failed: false,
            hist: latency::histogram(),
        }),
        end: end_tx,
    });
    let mut chains = 0;
    for _ in 0..spec.queue_depth.max(1) {
        let page = {
            let mut st = chain.state.lock();
            if st.issued >= spec.max_ios {
                break;
            }
            st.issued += 1;
            st.next.page()
        };
        let mut buf = PageBuf::new(pages as usize);
        buf.as_mut_slice().fill(0x5a);
        Chain::issue(&chain, buf, page);
        chains += 1;
    }
    let mut failure = None;
    for _ in 0..chains {
        match end_rx.recv() {
            Ok(Some(e)) => {
                failure.get_or_insert(e);
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = chain.start.elapsed();
    let st = chain.state.lock();
    Ok(RawResult::of(
        spec,
        format!("{}/cb", engine.kind()),
        st.done,
        pages,
        elapsed,
        &st.hist,
    ))
}

/// The shared state of [`run_chained`]: one per run, each in-flight I/O holding an `Arc`.
struct Chain {
    engine: Arc<Engine>,
    area: Arc<SwapArea>,
    op: IoOp,
    duration: Duration,
    max_ios: u64,
    start: Instant,
    state: parking_lot::Mutex<ChainState>,
    /// One message per chain when it stops: its error, if it stopped on one.
    end: crossbeam_channel::Sender<Option<DeviceError>>,
}

struct ChainState {
    next: Placement,
    issued: u64,
    done: u64,
    failed: bool,
    hist: Histogram<u64>,
}

impl Chain {
    fn issue(chain: &Arc<Chain>, buf: PageBuf, page: u64) {
        let me = Arc::clone(chain);
        let req = IoRequest {
            tag: 0,
            op: chain.op,
            page,
            buf,
        };
        chain
            .engine
            .submit(&chain.area, req, Box::new(move |c| Chain::done(me, c)));
    }

    /// Records a completion and submits the next I/O from the callback, or ends the chain.
    fn done(chain: Arc<Chain>, c: IoCompletion) {
        let next = {
            let mut st = chain.state.lock();
            match &c.result {
                Err(_) => st.failed = true,
                Ok(()) => {
                    st.done += 1;
                    latency::record(&mut st.hist, c.latency);
                }
            }
            let go =
                !st.failed && st.issued < chain.max_ios && chain.start.elapsed() < chain.duration;
            if go {
                st.issued += 1;
                Some(st.next.page())
            } else {
                None
            }
        };
        match (next, c.result) {
            (Some(page), _) => Chain::issue(&chain, c.buf, page),
            (None, result) => drop(chain.end.send(result.err())),
        }
    }
}

/// Chooses the first page of each I/O.
struct Placement {
    pattern: Pattern,
    pages: u64,
    last: u64,
    seq: u64,
    rng: u64,
}

impl Placement {
    /// Where the I/Os of `spec` go on `area`; refused when one I/O does not fit its data pages.
    fn for_run(area: &SwapArea, spec: &RawSpec) -> Result<Placement, DeviceError> {
        let pages = spec.pages_per_io.max(1) as u64;
        let last = area.last_page();
        if last < pages {
            return Err(DeviceError::OutOfRange {
                path: area.path().into(),
                page: 1,
                count: pages,
                last_page: last,
            });
        }
        Ok(Placement {
            pattern: spec.pattern,
            pages,
            last,
            seq: 1,
            rng: 0x853c_49e6_748f_ea9b,
        })
    }

    fn page(&mut self) -> u64 {
        match self.pattern {
            Pattern::Sequential => {
                if self.seq + self.pages - 1 > self.last {
                    self.seq = 1;
                }
                let page = self.seq;
                self.seq += self.pages;
                page
            }
            Pattern::Random => {
                // xorshift64*: enough for spreading I/Os, no dependency.
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
                let slots = (self.last - self.pages + 1) / self.pages;
                1 + (r % slots.max(1)) * self.pages
            }
        }
    }
}
