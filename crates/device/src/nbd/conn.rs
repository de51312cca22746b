//! One NBD connection: a libnbd handle and the thread that owns it.
//!
//! Every libnbd call on a handle is made by its thread, so completion callbacks (which
//! libnbd runs inside whichever call made progress) run there too and only record
//! `(id, errno)` in a thread-local list; the thread then finishes the requests outside
//! libnbd, running the engine callbacks (which may submit more: that only queues).
//!
//! Loop: take queued requests; while connected issue them at once (pipelined: any number
//! in flight, matched by libnbd's cookies and our ids), then poll the socket in the
//! direction libnbd wants plus an eventfd that `send` rings; let libnbd read or write;
//! finish what completed.
//!
//! Failures: when the handle dies (server gone, connection reset) or a request stays
//! unanswered past `request_timeout`, the handle is closed and every request in flight
//! fails (`ECONNRESET`, `ETIMEDOUT`): we cannot know whether a write landed, so it is the
//! caller's to retry elsewhere. The thread then reconnects, at once and then with back-off
//! (50 ms doubling to 2 s), whether or not requests wait, so an idle area notices its
//! server's return (`Remote::reconnects` counts it). Meanwhile a write fails at once
//! (`ENOTCONN`: the pager writes it elsewhere, it must not wait on a server that is not
//! there); a read waits for the connection at most `read_wait` from the break, then fails
//! with `ENOTCONN`, so a client's read of a lost server's page is answered in time (also
//! while a reconnection attempt is under way: the attempt ticks the expiry); once the
//! server has been unreachable for `dead_after`, everything fails with `ENXIO` at once (the
//! area is gone: the pager marks it failed). A server that comes back with its data
//! (persistent backing) is used again.
//!
//! Every break and every failed attempt is kept with its cause and time in the area's
//! [`Shared`] health (`Remote::link`); the area's listener hears when its last connection
//! is lost (with the cause) and when one is made again, once each.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use parking_lot::Mutex;

use super::ffi::{self, Lib};
use super::uri::NbdTuning;
use crate::buf::PageBuf;
use crate::error::DeviceError;

/// What to ask the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmd {
    Read,
    Write,
    Trim { len: u64 },
    Flush,
}

/// An engine request as a connection sees it: the engine implements this for its jobs, so
/// this layer knows nothing of the engine, and the engine nothing of connections.
pub(crate) trait Pending: Send {
    /// The error the request must fail with before it reaches the server, if any: a bad
    /// range found at submit, or an injected fault for its `pages` (asked once).
    fn refusal(&mut self, pages: u64) -> Option<DeviceError>;
    /// Hands `buf` back and completes the request with `result`.
    fn finish(self: Box<Self>, buf: PageBuf, result: Result<(), DeviceError>);
    /// The error of a failed I/O, named after the request's area, operation and page.
    fn error(&self, e: io::Error) -> DeviceError;
}

/// Who waits for a request.
pub(crate) enum Reply {
    /// An engine request: its callback runs on the connection thread.
    Job(Box<dyn Pending>),
    /// A blocking caller (header, mkswap, discard, sync).
    Wait(Sender<(PageBuf, io::Result<()>)>),
}

/// One request: `buf` is the data to write or the room to read into (empty for trim and
/// flush); for a `Job` it was taken out of the job and goes back into it at the end.
pub(crate) struct Request {
    pub(crate) cmd: Cmd,
    pub(crate) offset: u64,
    pub(crate) buf: PageBuf,
    pub(crate) reply: Reply,
    pub(crate) queued: Instant,
}

impl Request {
    /// Hands the request back to whoever waits for it.
    fn finish(self, result: io::Result<()>) {
        let result = match (&self.reply, result) {
            (_, Ok(())) => Ok(()),
            (Reply::Job(job), Err(e)) => Err(job.error(e)),
            (Reply::Wait(_), Err(e)) => return self.reply_wait(Err(e)),
        };
        self.finish_with(result);
    }

    /// Like `finish`, with the error already made.
    fn finish_with(self, result: Result<(), DeviceError>) {
        match self.reply {
            Reply::Wait(tx) => {
                let _ = tx.send((self.buf, result.map_err(io::Error::other)));
            }
            Reply::Job(job) => job.finish(self.buf, result),
        }
    }

    fn reply_wait(self, result: io::Result<()>) {
        if let Reply::Wait(tx) = self.reply {
            let _ = tx.send((self.buf, result));
        }
    }

    /// Finishes a request that must fail without reaching the server (a bad range found
    /// at submit, or an injected fault) and returns `None`; else hands it back.
    fn refuse(mut self) -> Option<Request> {
        let Reply::Job(job) = &mut self.reply else {
            return Some(self);
        };
        match job.refusal(self.buf.pages() as u64) {
            Some(e) => {
                self.finish_with(Err(e));
                None
            }
            None => Some(self),
        }
    }
}

/// An open libnbd handle, closed on drop (which frees whatever libnbd still holds).
pub(crate) struct Nbd {
    lib: &'static Lib,
    h: *mut ffi::Handle,
}

// SAFETY: libnbd handles may be used from any thread (libnbd locks them); we use each from
// one thread at a time: the opener, then its connection thread.
unsafe impl Send for Nbd {}

impl Drop for Nbd {
    fn drop(&mut self) {
        // SAFETY: h came from nbd_create and is closed once, here.
        unsafe { (self.lib.close)(self.h) };
    }
}

/// What the server said about the export at the handshake.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExportInfo {
    pub(crate) size: u64,
    pub(crate) multi_conn: bool,
    pub(crate) can_trim: bool,
    pub(crate) can_flush: bool,
    pub(crate) read_only: bool,
}

impl Nbd {
    /// Connects to `uri` (libnbd's form) within `timeout`: TCP or Unix connect, TLS if the
    /// URI asks for it, and the handshake. Gives up early once `stop` is set (the area is
    /// being closed), so closing an area whose server is unreachable does not wait out
    /// the connect timeout. `tick` runs every [`STOP_CHECK`] while it waits (the
    /// connection thread expires the requests that wait for it).
    pub(crate) fn connect(
        lib: &'static Lib,
        uri: &str,
        timeout: Duration,
        stop: &AtomicBool,
        tick: &mut dyn FnMut(),
    ) -> io::Result<Nbd> {
        let curi = CString::new(uri).map_err(|_| io::Error::other("NUL in URI"))?;
        // SAFETY: plain constructor; NULL on failure.
        let h = unsafe { (lib.create)() };
        if h.is_null() {
            return Err(lib_error(lib));
        }
        let nbd = Nbd { lib, h };
        // SAFETY: h is valid; the flag lets `tls-psk-file=` in the URI be read.
        unsafe { (lib.set_uri_allow_local_file)(h, true) };
        // SAFETY: h is valid and curi a NUL-terminated string libnbd copies.
        if unsafe { (lib.aio_connect_uri)(h, curi.as_ptr()) } == -1 {
            return Err(lib_error(lib));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if nbd.state(lib.aio_is_ready) {
                return Ok(nbd);
            }
            if nbd.is_dead() {
                return Err(lib_error(lib));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                ));
            }
            if stop.load(Ordering::Relaxed) {
                return Err(io::Error::other("area closed while connecting"));
            }
            tick();
            let mut fds = [nbd.pollfd()];
            poll(&mut fds, left.min(STOP_CHECK))?;
            nbd.notify(fds[0].revents)?;
        }
    }

    pub(crate) fn info(&self) -> io::Result<ExportInfo> {
        let flag = |f: unsafe extern "C" fn(*mut ffi::Handle) -> c_int| {
            // SAFETY: h is valid and connected; these only read handshake results.
            (unsafe { f(self.h) }) == 1
        };
        // SAFETY: as above.
        let size = unsafe { (self.lib.get_size)(self.h) };
        if size < 0 {
            return Err(lib_error(self.lib));
        }
        Ok(ExportInfo {
            size: size as u64,
            multi_conn: flag(self.lib.can_multi_conn),
            can_trim: flag(self.lib.can_trim),
            can_flush: flag(self.lib.can_flush),
            read_only: flag(self.lib.is_read_only),
        })
    }

    /// The socket and the events libnbd waits for on it.
    fn pollfd(&self) -> libc::pollfd {
        // SAFETY: h is valid.
        let (fd, dir) = unsafe {
            (
                (self.lib.aio_get_fd)(self.h),
                (self.lib.aio_get_direction)(self.h),
            )
        };
        let mut events = 0;
        if dir & ffi::DIRECTION_READ != 0 {
            events |= libc::POLLIN;
        }
        if dir & ffi::DIRECTION_WRITE != 0 {
            events |= libc::POLLOUT;
        }
        libc::pollfd {
            fd,
            events,
            revents: 0,
        }
    }

    /// Lets libnbd read or write after `revents` (a hang-up or error is read, so libnbd
    /// sees the end of the connection).
    fn notify(&self, revents: i16) -> io::Result<()> {
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: h is valid; completion callbacks run inside and only touch `DONE`.
            if unsafe { (self.lib.aio_notify_read)(self.h) } == -1 {
                return Err(lib_error(self.lib));
            }
        }
        if revents & libc::POLLOUT != 0 {
            // SAFETY: as above.
            if unsafe { (self.lib.aio_notify_write)(self.h) } == -1 {
                return Err(lib_error(self.lib));
            }
        }
        Ok(())
    }

    /// One of libnbd's boolean state queries.
    fn state(&self, query: unsafe extern "C" fn(*mut ffi::Handle) -> c_int) -> bool {
        // SAFETY: h is valid; the state queries only read the handle.
        (unsafe { query(self.h) }) == 1
    }

    fn is_dead(&self) -> bool {
        self.state(self.lib.aio_is_dead) || self.state(self.lib.aio_is_closed)
    }

    /// Issues `req` under `id`; `Err` when libnbd refuses it at once.
    fn issue(&self, id: u64, req: &mut Request) -> io::Result<()> {
        let cb = ffi::Completion {
            callback: Some(on_complete),
            user_data: id as *mut c_void,
            free: None,
        };
        let len = req.buf.len();
        // SAFETY: h is valid; the buffer lives in `req`, which stays in the in-flight
        // table (its heap memory does not move) until the command completed or the handle
        // was closed, after which libnbd no longer touches it.
        let cookie = unsafe {
            match req.cmd {
                Cmd::Read => (self.lib.aio_pread)(
                    self.h,
                    req.buf.as_mut_slice().as_mut_ptr().cast(),
                    len,
                    req.offset,
                    cb,
                    0,
                ),
                Cmd::Write => (self.lib.aio_pwrite)(
                    self.h,
                    req.buf.as_slice().as_ptr().cast(),
                    len,
                    req.offset,
                    cb,
                    0,
                ),
                Cmd::Trim { len } => (self.lib.aio_trim)(self.h, len, req.offset, cb, 0),
                Cmd::Flush => (self.lib.aio_flush)(self.h, cb, 0),
            }
        };
        if cookie == -1 {
            return Err(lib_error(self.lib));
        }
        Ok(())
    }
}

thread_local! {
    /// Completions libnbd reported on this thread: (our id, errno).
    static DONE: RefCell<Vec<(u64, c_int)>> = const { RefCell::new(Vec::new()) };
}

/// libnbd's completion callback: records the outcome; returning 1 retires the command.
unsafe extern "C" fn on_complete(user_data: *mut c_void, error: *mut c_int) -> c_int {
    let errno = if error.is_null() {
        0
    } else {
        // SAFETY: libnbd passes a valid pointer to the command's error.
        unsafe { *error }
    };
    DONE.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            d.push((user_data as u64, errno));
        }
    });
    1
}

/// The calling thread's libnbd error as an `io::Error` (libnbd's text says it all), with
/// its errno when libnbd has one (`ECONNREFUSED` of a connect, ...).
fn lib_error(lib: &Lib) -> io::Error {
    let (text, errno) = lib.last_error();
    match crate::errno_name(errno) {
        Some(name) => io::Error::new(
            io::Error::from_raw_os_error(errno).kind(),
            format!("{name}: {text}"),
        ),
        None => io::Error::other(text),
    }
}

/// `poll(2)` for at most `timeout`; `EINTR` is a wake-up like any other.
fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<()> {
    let ms = timeout.as_millis().min(60_000) as c_int;
    let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
    // SAFETY: fds is a valid array of pollfd of the given length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n == -1 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// The eventfd that wakes a connection thread.
#[derive(Debug)]
pub(crate) struct Wake(OwnedFd);

impl Wake {
    pub(crate) fn new() -> io::Result<Wake> {
        // SAFETY: plain syscall; the fd is owned at once.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(Wake(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(crate) fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd (a full counter only
        // means the thread is already due to wake).
        unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    fn drain(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
        unsafe { libc::read(self.0.as_raw_fd(), (&raw mut n).cast(), 8) };
    }
}

/// How often a connection attempt looks at its `stop` flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// First back-off between reconnection attempts, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The connection thread's state.
pub(crate) struct Conn {
    pub(crate) lib: &'static Lib,
    pub(crate) uri: String,
    pub(crate) tuning: NbdTuning,
    pub(crate) nbd: Option<Nbd>,
    pub(crate) rx: Receiver<Request>,
    pub(crate) wake: Arc<Wake>,
    /// Whether this connection is made, for `Remote::send` to steer requests to live ones.
    pub(crate) up: Arc<AtomicBool>,
    /// Requests waiting for a connection.
    waiting: VecDeque<Request>,
    in_flight: HashMap<u64, (Request, Instant)>,
    next_id: u64,
    down_since: Option<Instant>,
    next_try: Instant,
    backoff: Duration,
    shared: Arc<Shared>,
}

/// What an area's connections share with it.
#[derive(Default)]
pub(crate) struct Shared {
    /// Connections re-established after a break, all connections together.
    pub(crate) reconnects: AtomicU64,
    /// Set when the area is closed (with the channels), for connection attempts under way.
    pub(crate) stop: AtomicBool,
    /// Connections made now.
    pub(crate) up: AtomicUsize,
    /// Since when none is made, and the last break or failed attempt.
    pub(crate) health: Mutex<Health>,
    /// Told when the last connection is lost and when one is made again.
    pub(crate) listener: Mutex<Option<Listener>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("up", &self.up)
            .field("health", &*self.health.lock())
            .finish_non_exhaustive()
    }
}

/// What an area's listener hears (see `Remote::listen`). It runs on a connection thread:
/// it must not block or take a lock a completion needs.
pub type Listener = std::sync::Arc<dyn Fn(&LinkEvent) + Send + Sync>;

/// A change of a remote area's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Its last connection broke: `cause` says why (`EOF`, `ECONNRESET`, `ETIMEDOUT`...).
    Lost { cause: String },
    /// A connection is made again.
    Back,
}

/// One failure of a connection: what, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkError {
    pub at: SystemTime,
    pub what: String,
}

#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Set when the last connection broke, cleared when one is made.
    pub(crate) down_since: Option<Instant>,
    /// Why the last connection broke, while none is made.
    pub(crate) cause: Option<String>,
    pub(crate) last_error: Option<LinkError>,
}

impl Shared {
    fn note_error(&self, what: String) {
        self.health.lock().last_error = Some(LinkError {
            at: SystemTime::now(),
            what,
        });
    }

    /// A reconnection attempt failed: kept after the break's cause, which stays the news.
    fn attempt_failed(&self, why: &str) {
        let mut h = self.health.lock();
        let what = match &h.cause {
            Some(cause) => format!("{cause}; reconnecting: {why}"),
            None => format!("reconnecting: {why}"),
        };
        h.last_error = Some(LinkError {
            at: SystemTime::now(),
            what,
        });
    }

    fn tell(&self, ev: &LinkEvent) {
        let listener = self.listener.lock().clone();
        if let Some(l) = listener {
            l(ev);
        }
    }

    /// One connection broke because of `cause`: the area is down when it was the last.
    fn lost(&self, cause: String) {
        self.note_error(cause.clone());
        if self.up.fetch_sub(1, Ordering::AcqRel) == 1 {
            {
                let mut h = self.health.lock();
                h.down_since = Some(Instant::now());
                h.cause = Some(format!("connection lost: {cause}"));
            }
            self.tell(&LinkEvent::Lost { cause });
        }
    }

    /// One connection is made again: the area is back when it was the first.
    fn made(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        if self.up.fetch_add(1, Ordering::AcqRel) == 0 {
            {
                let mut h = self.health.lock();
                h.down_since = None;
                h.cause = None;
            }
            self.tell(&LinkEvent::Back);
        }
    }
}

impl Conn {
    pub(crate) fn new(
        lib: &'static Lib,
        uri: String,
        tuning: NbdTuning,
        nbd: Option<Nbd>,
        rx: Receiver<Request>,
        wake: Arc<Wake>,
        shared: Arc<Shared>,
    ) -> Conn {
        let now = Instant::now();
        Conn {
            lib,
            uri,
            tuning,
            down_since: nbd.is_none().then_some(now),
            up: Arc::new(AtomicBool::new(nbd.is_some())),
            nbd,
            rx,
            wake,
            waiting: VecDeque::new(),
            in_flight: HashMap::new(),
            next_id: 1,
            next_try: now,
            backoff: BACKOFF_MIN,
            shared,
        }
    }

    /// The thread's body: runs until the area is dropped (its channel closed) and every
    /// request has finished.
    pub(crate) fn run(mut self) {
        let mut closing = false;
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(req) => self.waiting.extend(req.refuse()),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closing = true;
                        break;
                    }
                }
            }
            if closing && self.waiting.is_empty() && self.in_flight.is_empty() {
                break;
            }
            let now = Instant::now();
            if self.nbd.is_none() && now >= self.next_try && !closing {
                self.reconnect();
            }
            if self.nbd.is_some() {
                self.issue_waiting();
            } else {
                self.expire_waiting(closing);
            }
            let mut fds = vec![libc::pollfd {
                fd: self.wake.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Some(nbd) = &self.nbd {
                fds.push(nbd.pollfd());
            }
            let _ = poll(&mut fds, self.next_deadline());
            if fds[0].revents != 0 {
                self.wake.drain();
            }
            let notified = match (&self.nbd, fds.get(1)) {
                (Some(nbd), Some(fd)) => nbd.notify(fd.revents),
                _ => Ok(()),
            };
            self.finish_completed();
            let broken = match notified {
                Err(e) => Some(crate::error::with_errno(&e)),
                Ok(()) if self.nbd.as_ref().is_some_and(Nbd::is_dead) => {
                    Some("EOF: the server closed the connection".to_owned())
                }
                Ok(()) => None,
            };
            if let Some(cause) = broken {
                self.drop_connection(libc::ECONNRESET, cause);
            } else if self
                .in_flight
                .values()
                .any(|(_, at)| at.elapsed() >= self.tuning.request_timeout)
            {
                let cause = format!(
                    "ETIMEDOUT: no answer within the request timeout ({:?})",
                    self.tuning.request_timeout
                );
                self.drop_connection(libc::ETIMEDOUT, cause);
            }
        }
    }

    /// One attempt to connect again. While it waits (up to `connect_timeout` on a server
    /// that accepts and then says nothing) the requests waiting for it still expire on time.
    fn reconnect(&mut self) {
        let (lib, uri, shared) = (self.lib, self.uri.clone(), Arc::clone(&self.shared));
        let timeout = self.tuning.connect_timeout;
        let made = Nbd::connect(lib, &uri, timeout, &shared.stop, &mut || {
            self.take_queued();
            self.expire_waiting(false);
        });
        match made {
            Ok(nbd) => {
                self.nbd = Some(nbd);
                self.up.store(true, Ordering::Relaxed);
                self.down_since = None;
                self.backoff = BACKOFF_MIN;
                self.shared.made();
            }
            Err(e) => {
                self.shared.attempt_failed(&crate::error::with_errno(&e));
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// Moves what was sent meanwhile to the waiting list (the closed channel is seen by
    /// the main loop).
    fn take_queued(&mut self) {
        while let Ok(req) = self.rx.try_recv() {
            self.waiting.extend(req.refuse());
        }
    }

    fn issue_waiting(&mut self) {
        let Some(nbd) = &self.nbd else { return };
        while let Some(mut req) = self.waiting.pop_front() {
            let id = self.next_id;
            self.next_id += 1;
            match nbd.issue(id, &mut req) {
                Ok(()) => {
                    self.in_flight.insert(id, (req, Instant::now()));
                }
                // The connection died under us: the request was never sent, so it waits
                // for the next connection like those behind it.
                Err(_) if nbd.is_dead() => {
                    self.waiting.push_front(req);
                    return;
                }
                Err(e) => req.finish(Err(e)),
            }
        }
    }

    /// Without a connection: fails every write of the pager at once and the reads that
    /// waited `read_wait` since the break (`ENOTCONN`); other requests (header, mkswap,
    /// flush) after `request_timeout`; all of them once the server is gone for
    /// `dead_after` (`ENXIO`) or the area is closing.
    fn expire_waiting(&mut self, closing: bool) {
        let dead = self
            .down_since
            .is_some_and(|t| t.elapsed() >= self.tuning.dead_after);
        let now = Instant::now();
        let mut keep = VecDeque::new();
        while let Some(req) = self.waiting.pop_front() {
            if dead {
                req.finish(Err(io::Error::from_raw_os_error(libc::ENXIO)));
            } else if closing || self.expiry(&req) <= now {
                req.finish(Err(io::Error::from_raw_os_error(libc::ENOTCONN)));
            } else {
                keep.push_back(req);
            }
        }
        self.waiting = keep;
    }

    /// When a request waiting for the connection fails.
    fn expiry(&self, req: &Request) -> Instant {
        match (&req.reply, req.cmd) {
            (Reply::Job(_), Cmd::Write) => req.queued,
            (Reply::Job(_), _) => {
                self.down_since.unwrap_or(req.queued).min(req.queued) + self.tuning.read_wait
            }
            (Reply::Wait(_), _) => req.queued + self.tuning.request_timeout,
        }
    }

    /// How long the next poll may sleep: until a request times out or the next
    /// reconnection attempt, and never more than a second.
    fn next_deadline(&self) -> Duration {
        let now = Instant::now();
        let mut until = now + Duration::from_secs(1);
        for (_, at) in self.in_flight.values() {
            until = until.min(*at + self.tuning.request_timeout);
        }
        if self.nbd.is_none() {
            for req in &self.waiting {
                until = until.min(self.expiry(req));
            }
            until = until.min(self.next_try);
        }
        until.saturating_duration_since(now)
    }

    fn finish_completed(&mut self) {
        let done = DONE.with(|d| std::mem::take(&mut *d.borrow_mut()));
        for (id, errno) in done {
            if let Some((req, _)) = self.in_flight.remove(&id) {
                let result = if errno == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(errno))
                };
                req.finish(result);
            }
        }
    }

    /// Closes the handle and fails every request in flight with `errno`; `cause` is kept
    /// as the area's last error (and told to its listener if no connection is left).
    fn drop_connection(&mut self, errno: i32, cause: String) {
        // Closing first: libnbd touches no buffer after nbd_close returns.
        self.nbd = None;
        self.up.store(false, Ordering::Relaxed);
        self.shared.lost(cause);
        DONE.with(|d| d.borrow_mut().clear());
        for (_, (req, _)) in self.in_flight.drain() {
            req.finish(Err(io::Error::from_raw_os_error(errno)));
        }
        let now = Instant::now();
        self.down_since.get_or_insert(now);
        self.next_try = now;
    }
}
