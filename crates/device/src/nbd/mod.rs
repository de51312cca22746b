//! Remote swap areas over NBD (the Network Block Device protocol), through libnbd.
//!
//! An area named by an NBD URI (`nbd://HOST[:PORT]/EXPORT`, `nbd+unix:///EXPORT?socket=PATH`,
//! `nbds://` for TLS; see [`uri`]) is a [`SwapArea`](crate::SwapArea) like any other: the
//! same mkswap header on page 0 (read and written over NBD), the same range checks,
//! counters and fault injector. Only its medium differs ([`Medium::Remote`](crate::Medium)):
//! the engine hands a remote area's requests to the export's own connections instead of
//! io_uring or the thread pool, whichever engine runs. This module knows nothing of areas
//! or of the engine: a request reaches a connection as a `Pending` it finishes.
//!
//! - **Connections** (`conn`): one thread per connection owns a libnbd handle, keeps any
//!   number of requests in flight on it (pipelined, matched by libnbd's cookies), and
//!   reconnects with back-off when it breaks. Several connections (the URI's
//!   `connections=`, 4 by default) only when the server announces multi-conn, which makes
//!   a flush on one cover all; else one. Requests go round-robin.
//! - **Discard** is NBD `TRIM` where the server supports it (advice, like `BLKDISCARD`).
//! - **Faults**: the area's injected errors apply as on local areas (checked on the
//!   connection thread before a request is sent); injected *latency* does not (the thread
//!   serves many requests and cannot sleep for one).
//! - **Identity**: the server (`host:port` or socket path) and the export name, whatever
//!   else the URI says: [`StorageId::Remote`](crate::StorageId), so the pager refuses the
//!   same export twice. Nothing locks an export across processes (NBD has no such thing):
//!   two machines pointed at one export would overwrite each other.
//! - **libnbd** is loaded at run time (`ffi`): without `libnbd.so.0` an NBD swapon fails
//!   with one line saying what to install.

mod conn;
mod ffi;

pub use ffi::LIB_ENV;
#[cfg(feature = "test-servers")]
pub mod server;
pub mod uri;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub use uri::{NbdTuning, NbdUri, is_uri};

use crate::PAGE_SIZE;
use crate::buf::PageBuf;
use crate::error::DeviceError;
use crate::op::IoOp;
pub(crate) use conn::Pending;
use conn::{Cmd, Conn, ExportInfo, Nbd, Reply, Request, Shared, Wake};
pub use conn::{LinkError, LinkEvent, Listener};

/// Whether libnbd can be loaded here (tests skip where it cannot).
pub fn available() -> bool {
    ffi::Lib::get().is_ok()
}

/// The open connections to one export.
pub struct Remote {
    uri: NbdUri,
    info: ExportInfo,
    conns: Vec<ConnHandle>,
    next: AtomicUsize,
    /// Reconnections, and the flag that stops connection attempts on close.
    shared: Arc<Shared>,
}

struct ConnHandle {
    /// `None` only while dropping: closing the channel tells the thread to finish.
    tx: Option<Sender<Request>>,
    wake: Arc<Wake>,
    /// The connection is made (set by its thread).
    up: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("uri", &self.uri.connect_uri())
            .field("connections", &self.conns.len())
            .field("size", &self.info.size)
            .finish_non_exhaustive()
    }
}

/// A remote area's connection as a monitor shows it ([`Remote::link`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub state: LinkState,
    /// The last break or failed reconnection attempt, with its time.
    pub last_error: Option<LinkError>,
}

/// Whether a remote area can be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// At least one connection is made.
    Connected,
    /// None is made since `down`: reads wait for it (at most `read-wait`), writes go
    /// elsewhere, and it keeps trying.
    Reconnecting { down: Duration },
    /// Unreachable for `dead-after`: its I/O fails as vanished (the pager marks it failed).
    Dead,
}

/// The error of a remote area that could not be opened.
fn remote_error(path: &Path, what: impl fmt::Display) -> DeviceError {
    DeviceError::Remote {
        path: path.into(),
        what: what.to_string(),
    }
}

impl Remote {
    /// Connects to the export `path` names: the first connection here (so a server that
    /// is not there fails the swapon at once, within the connect timeout), more when the
    /// server allows multi-conn. Refuses a read-only export unless `read_only`.
    pub(crate) fn open(path: &Path, read_only: bool) -> Result<Remote, DeviceError> {
        let text = path
            .to_str()
            .ok_or_else(|| remote_error(path, "URI is not UTF-8"))?;
        let uri = NbdUri::parse(text).map_err(|e| remote_error(path, e))?;
        let lib = ffi::Lib::get().map_err(|e| remote_error(path, e))?;
        let t = uri.tuning;
        let never = AtomicBool::new(false);
        let first = Nbd::connect(
            lib,
            uri.connect_uri(),
            t.connect_timeout,
            &never,
            &mut || {},
        )
        .map_err(|e| remote_error(path, format!("cannot connect: {e}")))?;
        let info = first
            .info()
            .map_err(|e| remote_error(path, format!("export size: {e}")))?;
        if info.read_only && !read_only {
            return Err(DeviceError::ReadOnly { path: path.into() });
        }
        let mut handles = vec![first];
        if info.multi_conn {
            while handles.len() < t.connections {
                match Nbd::connect(
                    lib,
                    uri.connect_uri(),
                    t.connect_timeout,
                    &never,
                    &mut || {},
                ) {
                    Ok(h) => handles.push(h),
                    Err(_) => break,
                }
            }
        }
        let shared = Arc::new(Shared::default());
        shared.up.store(handles.len(), Ordering::Relaxed);
        let mut conns = Vec::with_capacity(handles.len());
        for (i, nbd) in handles.into_iter().enumerate() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let wake = Arc::new(Wake::new().map_err(|e| DeviceError::io(path, "eventfd", 0, e))?);
            let conn = Conn::new(
                lib,
                uri.connect_uri().to_owned(),
                t,
                Some(nbd),
                rx,
                Arc::clone(&wake),
                Arc::clone(&shared),
            );
            let up = Arc::clone(&conn.up);
            let thread = std::thread::Builder::new()
                .name(format!("swapkit-nbd{i}"))
                .spawn(move || conn.run())
                .map_err(|source| DeviceError::Engine {
                    what: "start NBD connection thread".into(),
                    source,
                })?;
            conns.push(ConnHandle {
                tx: Some(tx),
                wake,
                up,
                thread: Some(thread),
            });
        }
        Ok(Remote {
            uri,
            info,
            conns,
            next: AtomicUsize::new(0),
            shared,
        })
    }

    pub(crate) fn uri(&self) -> &NbdUri {
        &self.uri
    }

    /// The export's size in bytes.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.info.size
    }

    /// Connections in use (more than one only with multi-conn).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// How often a connection was made again after it broke (its server went away and
    /// came back, or stopped answering). The pager puts a remote area it marked failing
    /// back in service when this moves.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Whether a connection to the server is made now (the pager allocates on a remote
    /// area only then: a write must not wait for a server that is not there).
    pub fn connected(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed) > 0
    }

    /// The connection's state and its last failure, for monitors.
    pub fn link(&self) -> Link {
        let health = self.shared.health.lock();
        let state = if self.connected() {
            LinkState::Connected
        } else {
            let down = health.down_since.map_or(Duration::ZERO, |t| t.elapsed());
            if down >= self.uri.tuning.dead_after {
                LinkState::Dead
            } else {
                LinkState::Reconnecting { down }
            }
        };
        Link {
            state,
            last_error: health.last_error.clone(),
        }
    }

    /// Calls `listener` (on a connection thread) when the area's last connection is lost,
    /// with the cause, and when one is made again; replaces an earlier listener.
    pub fn listen(&self, listener: Option<Listener>) {
        *self.shared.listener.lock() = listener;
    }

    /// Sends `req` on the next connection in turn that is made: a connection still
    /// remaking itself after a break (its back-off up to 2 s) must not fail requests, or
    /// hold them, while a sibling serves. With none made, on the next in turn, where the
    /// request waits for the connection (or fails once the server is gone for good).
    fn send(&self, req: Request) {
        let n = self.conns.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let i = (0..n)
            .map(|k| (first + k) % n)
            .find(|&i| self.conns[i].up.load(Ordering::Relaxed))
            .unwrap_or(first);
        self.send_on(i, req);
    }

    fn send_on(&self, i: usize, req: Request) {
        let c = &self.conns[i];
        match &c.tx {
            Some(tx) => match tx.send(req) {
                Ok(()) => c.wake.ring(),
                // The thread is gone (it only stops when we drop): still answer.
                Err(crossbeam_channel::SendError(req)) => {
                    finish_unsent(req);
                }
            },
            None => finish_unsent(req),
        }
    }

    /// An engine request on this remote area (`op` of `buf` at `page`): `pending` is
    /// finished on a connection thread.
    pub(crate) fn submit(&self, op: IoOp, page: u64, buf: PageBuf, pending: Box<dyn Pending>) {
        let cmd = match op {
            IoOp::Read => Cmd::Read,
            IoOp::Write => Cmd::Write,
        };
        self.send(Request {
            cmd,
            offset: page * PAGE_SIZE as u64,
            buf,
            reply: Reply::Job(pending),
            queued: Instant::now(),
        });
    }

    /// One command, waited for on the caller's thread, on connection `on` (or the next).
    fn wait(
        &self,
        on: Option<usize>,
        cmd: Cmd,
        offset: u64,
        buf: PageBuf,
    ) -> (PageBuf, io::Result<()>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let req = Request {
            cmd,
            offset,
            buf,
            reply: Reply::Wait(tx),
            queued: Instant::now(),
        };
        match on {
            Some(i) => self.send_on(i, req),
            None => self.send(req),
        }
        rx.recv().unwrap_or_else(|_| {
            (
                PageBuf::new(0),
                Err(io::Error::other("NBD connection thread died")),
            )
        })
    }

    /// Reads `buf.len()` bytes at byte `offset` (header and mkswap: page 0 included).
    pub(crate) fn read_at(&self, offset: u64, buf: &mut PageBuf) -> io::Result<()> {
        let taken = std::mem::replace(buf, PageBuf::new(0));
        let (back, result) = self.wait(None, Cmd::Read, offset, taken);
        if back.pages() > 0 {
            *buf = back;
        }
        result
    }

    /// Writes `buf` at byte `offset`.
    pub(crate) fn write_at(&self, offset: u64, buf: &PageBuf) -> io::Result<()> {
        self.wait(None, Cmd::Write, offset, buf.clone()).1
    }

    /// NBD `TRIM` of `len` bytes at `offset` (nothing where the server cannot).
    pub(crate) fn trim(&self, offset: u64, len: u64) -> io::Result<bool> {
        if !self.info.can_trim {
            return Ok(false);
        }
        // Within the NBD limit of 32-bit lengths, in whole pages.
        const STEP: u64 = 1 << 30;
        let mut at = 0;
        while at < len {
            let n = (len - at).min(STEP);
            self.wait(None, Cmd::Trim { len: n }, offset + at, PageBuf::new(0))
                .1?;
            at += n;
        }
        Ok(true)
    }

    /// NBD `FLUSH` on every connection (one would do with multi-conn; all is simpler).
    pub(crate) fn flush(&self) -> io::Result<()> {
        if !self.info.can_flush {
            return Ok(());
        }
        for i in 0..self.conns.len() {
            self.wait(Some(i), Cmd::Flush, 0, PageBuf::new(0)).1?;
        }
        Ok(())
    }
}

/// Answers a request whose connection thread is gone.
fn finish_unsent(req: Request) {
    let gone = || io::Error::from_raw_os_error(libc::ENOTCONN);
    match req.reply {
        Reply::Wait(tx) => {
            let _ = tx.send((req.buf, Err(gone())));
        }
        Reply::Job(job) => {
            let err = job.error(gone());
            job.finish(req.buf, Err(err));
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for c in &mut self.conns {
            c.tx = None;
            c.wake.ring();
        }
        let me = std::thread::current().id();
        for c in &mut self.conns {
            if let Some(t) = c.thread.take() {
                // Dropped on one of our own threads (the last reference to the area went
                // with a completion): that thread finishes on its own.
                if t.thread().id() != me {
                    let _ = t.join();
                }
            }
        }
    }
}

/// The size in bytes of the export an NBD URI names (one connection, closed again).
pub fn export_size(path: &Path) -> Result<u64, DeviceError> {
    Ok(Remote::open(path, true)?.size_bytes())
}
