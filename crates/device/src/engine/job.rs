//! One request's life in the engine, whichever peer serves it: the request and its
//! completion, the queued [`Job`] with its accounting, and the synchronous paths' memory.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::area::SwapArea;
use crate::buf::PageBuf;
use crate::error::DeviceError;
use crate::op::IoOp;
use crate::{PAGE_SIZE, sys};

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

impl IoRequest {
    /// The request's end: its buffer handed back with `result` and `latency`.
    fn complete(self, result: Result<(), DeviceError>, latency: Duration) -> IoCompletion {
        let IoRequest { tag, op, page, buf } = self;
        IoCompletion {
            tag,
            op,
            page,
            buf,
            result,
            latency,
        }
    }
}

/// A completion callback.
pub type Done = Box<dyn FnOnce(IoCompletion) + Send>;

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
        (req.complete(result, latency), done)
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
    pub(crate) fn op(&self) -> IoOp {
        match self {
            Mem::Read(_) => IoOp::Read,
            Mem::Write(_) => IoOp::Write,
        }
    }

    pub(crate) fn len(&self) -> usize {
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

/// The bytes of `mem`, for checks.
pub(crate) fn mem_bytes<'a>(mem: &'a Mem<'_>) -> &'a [u8] {
    match mem {
        Mem::Read(b) => b,
        Mem::Write(b) => b,
    }
}

impl Job {
    /// A request counted as begun, with its range checked (a bad range fails it later,
    /// without I/O).
    pub(crate) fn new(area: &Arc<SwapArea>, req: IoRequest, done: Done) -> Job {
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
pub(crate) fn blocking_mem(
    area: &SwapArea,
    page: u64,
    mem: &mut Mem<'_>,
) -> Result<(), DeviceError> {
    let (op, pages) = (mem.op(), (mem.len() / PAGE_SIZE) as u64);
    area.issue(op, page, pages, |medium, offset| {
        // Only a local medium's I/O comes here (a remote one's goes to its connections).
        let file = medium
            .file()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        match mem {
            Mem::Read(buf) => sys::read_full(file, buf, offset),
            Mem::Write(buf) => sys::write_full(file, buf, offset),
        }
    })
}

/// What serves the I/O of a medium: the thread pool or io_uring for a local one, the
/// export's connections for a remote one. The engine picks the peer once per I/O, by the
/// area's medium; the contract of each method is the [`Engine`](super::Engine)'s.
pub(crate) trait Peer {
    /// [`Engine::submit`](super::Engine::submit) of a job counted as begun.
    fn submit(&self, job: Job);
    /// [`Engine::submit_wait`](super::Engine::submit_wait).
    fn submit_wait(&self, area: &Arc<SwapArea>, req: IoRequest) -> IoCompletion;
    /// [`Engine::read_into`](super::Engine::read_into) and
    /// [`write_from`](super::Engine::write_from): `mem` is the caller's, lent for the call.
    fn lent(&self, area: &Arc<SwapArea>, page: u64, mem: Mem<'_>) -> Result<(), DeviceError>;
}

/// How a local peer does one synchronous I/O of `mem` at `page` on the caller's thread
/// (range checked): the result, and whether the memory must be leaked (see [`IfStuck`]).
pub(crate) type WaitFn<'f> =
    &'f dyn Fn(&SwapArea, u64, &mut Mem<'_>, IfStuck) -> (Result<(), DeviceError>, bool);

/// [`Peer::submit_wait`] on a local medium, with `io` doing the I/O: on the engine's own
/// buffer, leaked when `io` says it must be.
pub(crate) fn submit_wait_local(
    area: &Arc<SwapArea>,
    mut req: IoRequest,
    io: WaitFn<'_>,
) -> IoCompletion {
    let mut leaked = false;
    let (result, latency) = {
        let mem = match req.op {
            IoOp::Read => Mem::Read(req.buf.as_mut_slice()),
            IoOp::Write => Mem::Write(req.buf.as_slice()),
        };
        wait_io(area, req.page, mem, Some(&mut leaked), io)
    };
    if leaked {
        // The kernel may still write into it: never free or reuse it.
        std::mem::forget(std::mem::replace(&mut req.buf, PageBuf::new(0)));
    }
    req.complete(result, latency)
}

/// [`Peer::lent`] on a local medium, with `io` doing the I/O.
pub(crate) fn lent_local(
    area: &Arc<SwapArea>,
    page: u64,
    mem: Mem<'_>,
    io: WaitFn<'_>,
) -> Result<(), DeviceError> {
    wait_io(area, page, mem, None, io).0
}

/// Whether `buf` can be lent: whole pages (at least one), starting on a page boundary, as
/// `O_DIRECT` needs.
pub(crate) fn lendable(buf: &[u8]) -> bool {
    !buf.is_empty()
        && buf.len().is_multiple_of(PAGE_SIZE)
        && (buf.as_ptr() as usize).is_multiple_of(PAGE_SIZE)
}

/// The refusal of lent memory that is not [`lendable`].
pub(crate) fn unaligned(area: &SwapArea, len: usize) -> DeviceError {
    DeviceError::Unaligned {
        path: area.path().to_owned(),
        what: format!("a lent buffer of {len} bytes is not whole, page-aligned pages"),
    }
}

/// The body of the synchronous I/Os on a local medium: counted, range (and for lent memory
/// alignment) checked, done on the caller's thread by `io`, accounted. `leaked` is `Some`
/// for the engine's own buffer (set when it must be leaked, see [`IfStuck`]), `None` for
/// lent memory.
fn wait_io(
    area: &Arc<SwapArea>,
    page: u64,
    mut mem: Mem<'_>,
    leaked: Option<&mut bool>,
    io: WaitFn<'_>,
) -> (Result<(), DeviceError>, Duration) {
    let (op, len) = (mem.op(), mem.len());
    let pages = (len / PAGE_SIZE) as u64;
    area.counters().begin();
    let start = Instant::now();
    let lent = leaked.is_none();
    let result = if lent && !lendable(mem_bytes(&mem)) {
        Err(unaligned(area, len))
    } else {
        area.check_range(page, pages)
    };
    let result = result.and_then(|()| {
        let if_stuck = if lent { IfStuck::Wait } else { IfStuck::Leak };
        let (result, stuck) = io(area, page, &mut mem, if_stuck);
        if let Some(leaked) = leaked {
            *leaked = stuck;
        }
        result
    });
    account(area, op, page, pages, start, result)
}
