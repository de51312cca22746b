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

mod job;
mod remote;
mod threads;
mod uring;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::area::SwapArea;
use crate::error::DeviceError;
use crate::medium::Medium;
use job::{Job, Mem, Peer};

pub use crate::op::IoOp;
pub use job::{Done, IoCompletion, IoRequest};

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

    /// The peer that serves `area`'s medium: the one place the engine looks at what an
    /// area is stored on.
    fn peer<'a>(&'a self, area: &'a SwapArea) -> &'a dyn Peer {
        match area.medium() {
            Medium::Local(_) => match &self.backend {
                Backend::Threads(pool) => pool,
                Backend::Uring(ring) => ring,
            },
            Medium::Remote(export) => export.remote(),
        }
    }

    /// Queues one I/O; `done` runs exactly once, on an engine thread, when it completes or
    /// fails. Never blocks for the I/O itself (may block briefly when the queue is full).
    /// A remote area's I/O goes to its own connections, whichever back end runs.
    pub fn submit(
        &self,
        area: &Arc<SwapArea>,
        req: IoRequest,
        done: Box<dyn FnOnce(IoCompletion) + Send>,
    ) {
        self.peer(area).submit(Job::new(area, req, done));
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
    /// callbacks. From a callback this blocks that engine thread for the I/O's time. (A
    /// remote area's I/O is its connections': submitted to them and waited for.)
    pub fn submit_wait(&self, area: &Arc<SwapArea>, req: IoRequest) -> IoCompletion {
        self.peer(area).submit_wait(area, req)
    }

    /// Whether `buf` can be lent to [`Engine::read_into`] or [`Engine::write_from`]: whole
    /// pages (at least one), starting on a page boundary, as `O_DIRECT` needs.
    pub fn lendable(buf: &[u8]) -> bool {
        job::lendable(buf)
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
        self.peer(area).lent(area, page, Mem::Read(buf))
    }

    /// [`Engine::submit_wait`] of a write straight from the caller's `buf`; see
    /// [`Engine::read_into`].
    pub fn write_from(
        &self,
        area: &Arc<SwapArea>,
        page: u64,
        buf: &[u8],
    ) -> Result<(), DeviceError> {
        self.peer(area).lent(area, page, Mem::Write(buf))
    }
}
