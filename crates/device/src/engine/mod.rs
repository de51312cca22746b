//! The I/O engine: asynchronous cluster reads and writes on swap areas, with completion
//! callbacks carrying the request's tag, result and latency.
//!
//! Two back ends behind one [`Engine`]: io_uring (one ring that callers submit to directly,
//! under a short lock, and a reaper thread that runs the callbacks) and a pool of threads
//! doing `pread`/`pwrite`. [`EngineKind::Auto`] takes io_uring when the kernel allows it (many
//! containers refuse it) and the threads otherwise; `SWAPKIT_ENGINE=io_uring|threads|auto`
//! overrides `Auto`.
//!
//! Contract of every back end:
//! - `done` runs exactly once per request, on an engine thread, never on the caller's;
//! - [`Engine::submit_wait`] does its I/O on the caller's thread (no callback, no hand-off);
//!   so do [`Engine::read_into`] and [`Engine::write_from`], straight on memory the caller
//!   lends for the call (whole, page-aligned pages; anything else is refused without I/O),
//!   which they never touch once they have returned;
//! - a request touching page 0, a page past `last_page`, or with an empty buffer completes
//!   with [`DeviceError::OutOfRange`] and does no I/O;
//! - the area's [`FaultInjector`](crate::FaultInjector) is asked before each I/O;
//! - short reads and writes are continued until done, or reported as errors, never ignored;
//! - counters and latency go to the area's [`stats`](crate::SwapArea::stats);
//! - dropping the engine waits for every queued request to complete.
//!
//! Callbacks run on the engine's few threads: they must be short, must not panic, and
//! should not call [`Engine::submit_wait`] (it blocks that engine thread for the I/O); they may
//! [`Engine::submit`] more I/O (never blocking: on a full io_uring ring such a request
//! waits in a backlog the reaper pushes first). A caller on another thread may block in
//! `submit` while the ring is full, until completions make room.
//!
//! Speed: on io_uring a request costs its caller one short lock and usually one syscall,
//! and its completion one wake-up of the reaper. A caller that waited on its own thread for
//! each completion of `submit` would pay one more hand-off (reaper to caller) per I/O; that
//! was most of the gap to fio at queue depth 1. So [`Engine::submit_wait`] skips the engine's
//! threads altogether (the caller reaps its own completion), and async work submits the next
//! I/O from the callback (the device bench, `benches/rawbench/`, measures all three paths).

mod threads;
mod uring;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{DeviceError, PAGE_SIZE, PageBuf, SwapArea};

/// Which back end to use.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum EngineKind {
    /// io_uring if the kernel allows it, else threads; `SWAPKIT_ENGINE` overrides it.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "io_uring")]
    IoUring,
    #[serde(rename = "threads")]
    ThreadPool,
}

/// The environment variable that chooses the engine when the configuration says `Auto`.
pub const ENGINE_ENV: &str = "SWAPKIT_ENGINE";

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Auto => "auto",
            EngineKind::IoUring => "io_uring",
            EngineKind::ThreadPool => "threads",
        })
    }
}

impl FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<EngineKind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(EngineKind::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(EngineKind::IoUring),
            "threads" | "thread" | "threadpool" | "thread_pool" => Ok(EngineKind::ThreadPool),
            other => Err(format!(
                "unknown engine `{other}` (expected auto, io_uring or threads)"
            )),
        }
    }
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoOp {
    Read,
    Write,
}

impl IoOp {
    /// "read" or "write", for messages.
    pub fn name(self) -> &'static str {
        match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
        }
    }
}

/// One cluster I/O: `buf.pages()` contiguous pages from `page` on one area.
#[derive(Debug)]
pub struct IoRequest {
    /// The caller's name for this request, handed back in the completion.
    pub tag: u64,
    pub op: IoOp,
    /// First page index in the area, `>= 1`.
    pub page: u64,
    /// The data to write, or the buffer to read into.
    pub buf: PageBuf,
}

/// The end of one request. The buffer is always handed back, filled on a successful read.
#[derive(Debug)]
pub struct IoCompletion {
    pub tag: u64,
    pub op: IoOp,
    pub page: u64,
    pub buf: PageBuf,
    pub result: Result<(), DeviceError>,
    /// From `submit` to completion, queueing included.
    pub latency: Duration,
}

/// A completion callback.
pub type Done = Box<dyn FnOnce(IoCompletion) + Send>;

/// How to build an engine beyond its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    pub kind: EngineKind,
    /// Worker threads of the thread pool: the most I/Os it has in flight.
    pub threads: usize,
    /// Submission queue entries of the io_uring ring: the most I/Os it has in flight.
    pub ring_entries: u32,
    /// Register each area's file with the ring (saves an fd lookup per I/O). The catch: a
    /// registered file stays open in the kernel until the reaper next sweeps (~50-100 ms)
    /// after its area is dropped, so an `O_EXCL` device reopened at once may look busy.
    pub register_files: bool,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            kind: EngineKind::Auto,
            threads: 16,
            ring_entries: 256,
            register_files: true,
        }
    }
}

/// One queued request with everything needed to finish it.
pub(crate) struct Job {
    pub(crate) area: Arc<SwapArea>,
    pub(crate) req: IoRequest,
    pub(crate) done: Done,
    pub(crate) start: Instant,
    /// Set when the request must fail without I/O (bad range, injected fault).
    pub(crate) error: Option<DeviceError>,
}

impl Job {
    /// Accounts for and delivers the completion. Runs on an engine thread.
    pub(crate) fn finish(self, result: Result<(), DeviceError>) {
        let (completion, done) = self.settle(result);
        done(completion);
    }

    /// Accounts for the request and turns it into its completion, handing back the
    /// callback still to run (or, for [`Engine::submit_wait`], to drop unused).
    ///
    /// The job's reference to the area is dropped here, before the callback runs: the
    /// caller woken by the callback may close the area (swapoff) and expects its file
    /// closed with it, so nothing the engine holds may outlive the completion.
    fn settle(self, result: Result<(), DeviceError>) -> (IoCompletion, Done) {
        let pages = self.req.buf.pages() as u64;
        let (result, latency) = account(
            &self.area,
            self.req.op,
            self.req.page,
            pages,
            self.start,
            result,
        );
        let Job {
            req, done, area, ..
        } = self;
        drop(area);
        let IoRequest { tag, op, page, buf } = req;
        let completion = IoCompletion {
            tag,
            op,
            page,
            buf,
            result,
            latency,
        };
        (completion, done)
    }
}

/// Ends one I/O counted as begun at `start` (`Counters::begin`): a file area or loop device
/// whose file shrank fails it whatever it returned (see `SwapArea::settle`); a request
/// refused before any I/O (bad range, unaligned lent buffer) is no device error. Returns the
/// final result and the latency.
fn account(
    area: &SwapArea,
    op: IoOp,
    page: u64,
    pages: u64,
    start: Instant,
    result: Result<(), DeviceError>,
) -> (Result<(), DeviceError>, Duration) {
    let result = area.settle(result, page, pages);
    let latency = start.elapsed();
    match &result {
        Err(DeviceError::OutOfRange { .. } | DeviceError::Unaligned { .. }) => {
            area.counters().cancel()
        }
        _ => area.counters().end(op, pages, result.is_ok(), latency),
    }
    (result, latency)
}

/// The memory of one synchronous I/O: filled by a read, written out by a write.
pub(crate) enum Mem<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

impl Mem<'_> {
    fn op(&self) -> IoOp {
        match self {
            Mem::Read(_) => IoOp::Read,
            Mem::Write(_) => IoOp::Write,
        }
    }

    fn len(&self) -> usize {
        match self {
            Mem::Read(b) => b.len(),
            Mem::Write(b) => b.len(),
        }
    }

    /// Start and length for the kernel. A write's memory is only ever read through it.
    pub(crate) fn raw(&mut self) -> (*mut u8, usize) {
        match self {
            Mem::Read(b) => (b.as_mut_ptr(), b.len()),
            Mem::Write(b) => (b.as_ptr().cast_mut(), b.len()),
        }
    }
}

/// What a synchronous I/O on io_uring does when the ring itself fails with the I/O
/// perhaps still in the kernel's hands (never seen: `io_uring_enter` only fails that way
/// on a broken ring), so that the memory cannot be given back yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfStuck {
    /// The memory is the engine's own ([`Engine::submit_wait`]'s `PageBuf`): leak it.
    Leak,
    /// The memory is lent by the caller ([`Engine::read_into`], [`Engine::write_from`]) and
    /// must not be written after the call returns: wait for the I/O to end.
    Wait,
}

enum Backend {
    Threads(threads::ThreadPool),
    Uring(uring::Uring),
}

/// The I/O engine. `Send + Sync`: share it with `Arc` and submit from any thread.
pub struct Engine {
    backend: Backend,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine of `kind` with the default configuration. `Auto` (or `SWAPKIT_ENGINE`)
    /// picks io_uring when the kernel allows it and threads otherwise; an explicit
    /// `IoUring` fails when the ring cannot be set up.
    pub fn new(kind: EngineKind) -> Result<Engine, DeviceError> {
        Engine::with_config(EngineConfig {
            kind,
            ..EngineConfig::default()
        })
    }

    /// An engine built from `config`.
    pub fn with_config(config: EngineConfig) -> Result<Engine, DeviceError> {
        let kind = match config.kind {
            EngineKind::Auto => Self::kind_from_env()?,
            other => other,
        };
        let backend = match kind {
            EngineKind::ThreadPool => Backend::Threads(threads::ThreadPool::new(config.threads)?),
            EngineKind::IoUring => Backend::Uring(uring::Uring::new(&config)?),
            EngineKind::Auto => match uring::Uring::new(&config) {
                Ok(ring) => Backend::Uring(ring),
                Err(_) => Backend::Threads(threads::ThreadPool::new(config.threads)?),
            },
        };
        Ok(Engine { backend })
    }

    /// `SWAPKIT_ENGINE` if set (and valid), else `Auto`.
    fn kind_from_env() -> Result<EngineKind, DeviceError> {
        match std::env::var(ENGINE_ENV) {
            Ok(v) => v.parse().map_err(|why: String| DeviceError::Engine {
                what: format!("{ENGINE_ENV}={v}"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
            }),
            Err(_) => Ok(EngineKind::Auto),
        }
    }

    /// The back end in use: `IoUring` or `ThreadPool`, never `Auto`.
    pub fn kind(&self) -> EngineKind {
        match self.backend {
            Backend::Threads(_) => EngineKind::ThreadPool,
            Backend::Uring(_) => EngineKind::IoUring,
        }
    }

    /// Queues one I/O; `done` runs exactly once, on an engine thread, when it completes or
    /// fails. Never blocks for the I/O itself (may block briefly when the queue is full).
    pub fn submit(
        &self,
        area: &Arc<SwapArea>,
        req: IoRequest,
        done: Box<dyn FnOnce(IoCompletion) + Send>,
    ) {
        let job = Job::new(area, req, done);
        if let Some(remote) = area.remote() {
            return remote.submit(job);
        }
        match &self.backend {
            Backend::Threads(pool) => pool.submit(job),
            Backend::Uring(ring) => ring.submit(job),
        }
    }

    /// Does one I/O on the caller's thread and returns its completion.
    ///
    /// The caller issues the I/O and reaps its own completion, as fio does at queue depth
    /// 1: on io_uring, one `io_uring_enter` on the thread's own small ring (made on first
    /// use; `pread`/`pwrite` where it cannot be set up); on the thread pool, one
    /// `pread`/`pwrite`. Handing the request to an engine thread instead would cost a
    /// wake-up of that thread and one more of the caller (reaper to caller) per I/O, which
    /// at queue depth 1 is most of the gap to fio. Range check, injected faults and
    /// latency, short transfers, accounting and errors are those of [`Engine::submit`],
    /// on either back end. Async work (many I/Os in flight) keeps using `submit` and its
    /// callbacks. From a callback this blocks that engine thread for the I/O's time.
    pub fn submit_wait(&self, area: &Arc<SwapArea>, req: IoRequest) -> IoCompletion {
        if let Some(remote) = area.remote() {
            return crate::nbd::submit_wait(remote, Job::new(area, req, Box::new(|_| {})));
        }
        let IoRequest {
            tag,
            op,
            page,
            mut buf,
        } = req;
        let mut leaked = false;
        let (result, latency) = {
            let mem = match op {
                IoOp::Read => Mem::Read(buf.as_mut_slice()),
                IoOp::Write => Mem::Write(buf.as_slice()),
            };
            self.wait_io(area, page, mem, Some(&mut leaked))
        };
        if leaked {
            // The kernel may still write into it: never free or reuse it.
            std::mem::forget(std::mem::replace(&mut buf, PageBuf::new(0)));
        }
        IoCompletion {
            tag,
            op,
            page,
            buf,
            result,
            latency,
        }
    }

    /// Whether `buf` can be lent to [`Engine::read_into`] or [`Engine::write_from`]: whole
    /// pages (at least one), starting on a page boundary, as `O_DIRECT` needs.
    pub fn lendable(buf: &[u8]) -> bool {
        !buf.is_empty()
            && buf.len().is_multiple_of(PAGE_SIZE)
            && (buf.as_ptr() as usize).is_multiple_of(PAGE_SIZE)
    }

    /// [`Engine::submit_wait`] of a read straight into the caller's `buf` (whole pages from
    /// `page`): no engine buffer and no copy. The caller's memory outlives the I/O because
    /// this returns only once the I/O has ended. A `buf` that is not
    /// [lendable](Engine::lendable) is refused with [`DeviceError::Unaligned`], without I/O.
    pub fn read_into(
        &self,
        area: &Arc<SwapArea>,
        page: u64,
        buf: &mut [u8],
    ) -> Result<(), DeviceError> {
        if area.remote().is_some() {
            return self.lend_to_remote(area, page, Mem::Read(buf));
        }
        self.wait_io(area, page, Mem::Read(buf), None).0
    }

    /// [`Engine::submit_wait`] of a write straight from the caller's `buf`; see
    /// [`Engine::read_into`].
    pub fn write_from(
        &self,
        area: &Arc<SwapArea>,
        page: u64,
        buf: &[u8],
    ) -> Result<(), DeviceError> {
        if area.remote().is_some() {
            return self.lend_to_remote(area, page, Mem::Write(buf));
        }
        self.wait_io(area, page, Mem::Write(buf), None).0
    }

    /// Lent memory on a remote area: the connection threads send and receive from engine
    /// buffers only (they outlive a caller that gives up on a broken connection), so the
    /// bytes go through one with a copy. The contract is [`Engine::read_into`]'s.
    fn lend_to_remote(
        &self,
        area: &Arc<SwapArea>,
        page: u64,
        mem: Mem<'_>,
    ) -> Result<(), DeviceError> {
        let bytes = mem_bytes(&mem);
        if !Self::lendable(bytes) {
            return Err(DeviceError::Unaligned {
                path: area.path().to_owned(),
                what: format!(
                    "a lent buffer of {} bytes is not whole, page-aligned pages",
                    bytes.len()
                ),
            });
        }
        let mut buf = PageBuf::new(bytes.len() / PAGE_SIZE);
        let op = mem.op();
        if let Mem::Write(data) = &mem {
            buf.as_mut_slice().copy_from_slice(data);
        }
        let done = self.submit_wait(
            area,
            IoRequest {
                tag: 0,
                op,
                page,
                buf,
            },
        );
        done.result?;
        if let Mem::Read(out) = mem {
            out.copy_from_slice(done.buf.as_slice());
        }
        Ok(())
    }

    /// The body of the synchronous I/Os: counted, range (and for lent memory alignment)
    /// checked, done on the caller's thread (its own ring on io_uring, else
    /// `pread`/`pwrite`), accounted. `leaked` is `Some` for the engine's own buffer (set
    /// when it must be leaked, see [`IfStuck`]), `None` for lent memory.
    fn wait_io(
        &self,
        area: &Arc<SwapArea>,
        page: u64,
        mut mem: Mem<'_>,
        leaked: Option<&mut bool>,
    ) -> (Result<(), DeviceError>, Duration) {
        let (op, len) = (mem.op(), mem.len());
        let pages = (len / PAGE_SIZE) as u64;
        area.counters().begin();
        let start = Instant::now();
        let lent = leaked.is_none();
        let result = if lent && !Self::lendable(mem_bytes(&mem)) {
            Err(DeviceError::Unaligned {
                path: area.path().to_owned(),
                what: format!("a lent buffer of {len} bytes is not whole, page-aligned pages"),
            })
        } else {
            area.check_range(page, pages)
        };
        let result = result.and_then(|()| match &self.backend {
            Backend::Uring(_) => {
                let if_stuck = if lent { IfStuck::Wait } else { IfStuck::Leak };
                match uring::wait_on_own_ring(area, page, &mut mem, if_stuck) {
                    Some((result, stuck)) => {
                        if let Some(leaked) = leaked {
                            *leaked = stuck;
                        }
                        result
                    }
                    None => blocking_mem(area, page, &mut mem),
                }
            }
            Backend::Threads(_) => blocking_mem(area, page, &mut mem),
        });
        account(area, op, page, pages, start, result)
    }
}

/// The bytes of `mem`, for checks.
fn mem_bytes<'a>(mem: &'a Mem<'_>) -> &'a [u8] {
    match mem {
        Mem::Read(b) => b,
        Mem::Write(b) => b,
    }
}

impl Job {
    /// A request counted as begun, with its range checked (a bad range fails it later,
    /// without I/O).
    fn new(area: &Arc<SwapArea>, req: IoRequest, done: Done) -> Job {
        area.counters().begin();
        let error = area.check_range(req.page, req.buf.pages() as u64).err();
        Job {
            area: Arc::clone(area),
            req,
            done,
            start: Instant::now(),
            error,
        }
    }
}

/// Whether the current thread is one of `threads` (an engine dropped from its own callback).
pub(crate) fn on_engine_thread(threads: &[std::thread::JoinHandle<()>]) -> bool {
    let me = std::thread::current().id();
    threads.iter().any(|t| t.thread().id() == me)
}

/// Does one job's I/O synchronously with `pread`/`pwrite` (the thread pool's worker body).
/// The range was checked and the I/O counted as begun at submit; `finish` accounts for it.
pub(crate) fn run_blocking(mut job: Job) {
    let result = blocking_io(&mut job);
    job.finish(result);
}

/// The I/O of `job` with `pread`/`pwrite` on the calling thread (or its refusal).
fn blocking_io(job: &mut Job) -> Result<(), DeviceError> {
    if let Some(e) = job.error.take() {
        return Err(e);
    }
    let area = Arc::clone(&job.area);
    let page = job.req.page;
    let mem = match job.req.op {
        IoOp::Read => Mem::Read(job.req.buf.as_mut_slice()),
        IoOp::Write => Mem::Write(job.req.buf.as_slice()),
    };
    blocking_mem(&area, page, &mut { mem })
}

/// `pread`/`pwrite` of `mem` at `page` on the calling thread (range already checked).
fn blocking_mem(area: &SwapArea, page: u64, mem: &mut Mem<'_>) -> Result<(), DeviceError> {
    let (op, pages) = (mem.op(), (mem.len() / PAGE_SIZE) as u64);
    sync_io(area, op, page, pages, |file, offset| match mem {
        Mem::Read(buf) => crate::sys::read_full(file, buf, offset),
        Mem::Write(buf) => crate::sys::write_full(file, buf, offset),
    })
}

/// One synchronous I/O of `pages` pages at `page`, the way every blocking path does it: the
/// area's injected latency and fault first, then `io(file, byte offset)`; an error names the
/// area, the operation and the page (`ENXIO` becomes `Vanished`). No range check and no
/// accounting: the engine does both around a job (`submit`, [`Job::finish`]), and
/// `SwapArea::read_pages`/`write_pages` around their own call.
pub(crate) fn sync_io(
    area: &SwapArea,
    op: IoOp,
    page: u64,
    pages: u64,
    io: impl FnOnce(&std::fs::File, u64) -> std::io::Result<()>,
) -> Result<(), DeviceError> {
    let latency = area.faults().latency();
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
    let result = match area.faults().check(op, page, pages) {
        Some(e) => Err(e),
        None => io(area.file(), page * crate::PAGE_SIZE as u64),
    };
    result.map_err(|e| DeviceError::io(area.path(), op.name(), page, e))
}
