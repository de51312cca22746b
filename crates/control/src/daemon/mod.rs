//! The daemon server (`swapctl daemon`, or an embedder's own program): host a swap space and
//! serve it on a Unix socket.
//!
//! One thread accepts; one thread serves each client ([`session`]). What one peer may cost is
//! bounded by [`limits::Limits`]: connections per uid and in all, objects, handle length and
//! swap pages per uid (`uids.rs`), a read, idle and write timeout per connection (`timed.rs`),
//! and a pace for control requests. File descriptors: the soft `RLIMIT_NOFILE` is raised to
//! the hard one at start, and a reserve is kept so that a refused client is always told why.
//!
//! Shutdown (SIGTERM and the other terminating signals, or [`Shutdown::trigger`]) stops
//! accepting, removes the socket, shuts the read side of every client so no new request
//! starts, lets the requests in flight finish and answer for up to [`DRAIN`], then cuts every
//! connection and returns within [`SHUTDOWN_LIMIT`] whatever the clients do, after waiting
//! for async writes. SIGHUP reloads the config file (the accept loop re-reads it). The
//! daemon never exits on a client's mistake.

pub mod backend;
pub mod integrity;
pub mod limits;
pub mod log;
pub mod pager_backend;
pub mod peer;
pub mod registry;
mod requests;
pub mod runs;
mod server;
pub mod session;
pub mod shared;
mod signals;
pub mod socket;
mod timed;
mod uids;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use parking_lot::Mutex;

pub use backend::{Backend, BackendError, BackendObject, Landed, MemoryBackend};
use log::{log_error, log_info, log_uid, log_warn};
pub use server::Server;
use shared::Shared;

use crate::config::Config;
use crate::proto::{ErrorKind, Reply};

/// A flag the accept loop polls; set by the signal thread or by a test.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Handle the daemon's signals (see `signals.rs`): the terminating ones trigger `shutdown`,
/// SIGHUP sets `reload`, SIGUSR1/2 are ignored, and a fatal one unlinks `socket` first.
pub fn handle_signals(
    shutdown: Shutdown,
    reload: Arc<AtomicBool>,
    socket: &std::path::Path,
) -> std::io::Result<()> {
    signals::install(shutdown, reload, socket)
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Socket(#[from] socket::SocketError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon's thread panicked")]
    Panicked,
}

#[derive(Debug)]
pub struct DaemonOptions {
    pub socket: PathBuf,
    pub socket_group: Option<String>,
    pub config: Config,
    /// The config file SIGHUP re-reads (`None`: nothing to reload), and whether it must exist.
    pub config_path: Option<(PathBuf, bool)>,
    /// Whether `--log-level` was given (then a reload leaves the level alone).
    pub log_level_flag: bool,
    /// Swap on the config file's non-`noauto` devices at start.
    pub auto_on: bool,
}

impl DaemonOptions {
    /// Serve on `socket` (mode 0600, no group) with the default config, no
    /// config file to reload, no device swapped on at start (an embedder's own pager has its
    /// areas already).
    pub fn new(socket: impl Into<PathBuf>) -> DaemonOptions {
        DaemonOptions {
            socket: socket.into(),
            socket_group: None,
            config: Config::default(),
            config_path: None,
            log_level_flag: false,
            auto_on: false,
        }
    }
}

/// The listening daemon, between `bind` and `serve`.
#[derive(Debug)]
pub struct Daemon {
    listener: UnixListener,
    socket: PathBuf,
    config: Config,
    config_path: Option<(PathBuf, bool)>,
    log_level_flag: bool,
    auto_on: bool,
    reload: Arc<AtomicBool>,
}

/// How long requests in flight may finish after a stop signal before connections are cut.
pub const DRAIN: Duration = Duration::from_millis(1000);
/// Shutdown returns within this of the stop signal being seen, whatever clients do.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_millis(1700);
/// File descriptors kept free for the daemon itself (devices, config reload, the refusal of a
/// client): clients are refused before they could use these.
const FD_RESERVE: u64 = 64;
/// Stack of a client thread: requests are shallow; 1,024 clients then reserve 512 MiB of
/// address space, not 8 GiB.
const CLIENT_STACK: usize = 512 * 1024;

impl Daemon {
    /// Bind the socket (refusing a live one) before the swap space starts, so a second
    /// daemon fails fast without touching any device.
    pub fn bind(opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let listener = socket::bind(&opts.socket, opts.socket_group.as_deref())?;
        Ok(Daemon {
            listener,
            socket: opts.socket,
            config: opts.config,
            config_path: opts.config_path,
            log_level_flag: opts.log_level_flag,
            auto_on: opts.auto_on,
            reload: Arc::default(),
        })
    }

    /// The socket path, for messages.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// The flag SIGHUP sets; the accept loop reloads the config file when it sees it.
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reload)
    }

    /// Swap on the config devices, then serve `backend` until `shutdown`.
    pub fn serve(self, backend: Arc<dyn Backend>, shutdown: Shutdown) -> Result<(), DaemonError> {
        let mut shared = Shared::new(
            backend,
            self.config.clone(),
            nix::unistd::geteuid().as_raw(),
        );
        shared.shutdown = shutdown.clone();
        let shared = Arc::new(shared);
        if self.auto_on {
            for d in shared.config().auto_devices() {
                match shared.backend.swapon(&d.path, d.priority, d.discard) {
                    Ok(()) => log_info!("swapon {} priority {}", d.path.display(), d.priority),
                    Err(e) => log_error!("swapon {} failed: {e}", d.path.display()),
                }
            }
        }
        let nofile = raise_nofile();
        log_info!(
            "listening on {} ({nofile} file descriptors)",
            self.socket.display()
        );
        self.listener.set_nonblocking(true)?;
        let mut acceptor = Acceptor {
            shared: Arc::clone(&shared),
            clients: Arc::default(),
            threads: Vec::new(),
            next_conn: AtomicU64::new(1),
            spare: spare_fd(),
            // Two descriptors per client: its stream and the clone shutdown uses.
            fd_clients: (nofile.saturating_sub(FD_RESERVE) / 2) as usize,
            backoff: None,
        };
        while !shutdown.is_set() {
            if self.reload.swap(false, Ordering::SeqCst) {
                self.reload_config(&shared);
            }
            log::flush_suppressed();
            acceptor.accept_one(&self.listener);
        }
        let _ = std::fs::remove_file(&self.socket);
        drop(self.listener);
        acceptor.stop();
        shared.backend.flush();
        log::flush_all_suppressed();
        log_info!("all I/O finished; exiting");
        Ok(())
    }

    /// SIGHUP: re-read the config file; apply its limits, devices, `log_level` and
    /// `swap_async_max`, logging each change. A file that does not parse changes nothing.
    fn reload_config(&self, shared: &Shared) {
        let Some((path, must_exist)) = &self.config_path else {
            log_info!("reload: no config file to read");
            return;
        };
        let new = match Config::load(path, *must_exist) {
            Ok(c) => c,
            Err(e) => {
                log_error!("reload: {e}; keeping the config in force");
                return;
            }
        };
        let old = shared.config();
        let mut changes = new.limits.changes(&old.limits);
        for d in &new.devices {
            match old.device(&d.path) {
                None => changes.push(format!("device {} added", d.path.display())),
                // A device that is on keeps its priority and discard until it is turned
                // on again (the pager has no priority change of a live area).
                Some(o) if o != d => changes.push(format!(
                    "device {} changed: takes effect at its next `swapctl on`",
                    d.path.display()
                )),
                Some(_) => {}
            }
        }
        for d in &old.devices {
            if new.device(&d.path).is_none() {
                changes.push(format!("device {} removed", d.path.display()));
            }
        }
        if !self.log_level_flag
            && let Some(l) = new.daemon.log_level
            && l != log::level()
        {
            changes.push(format!("log_level {} -> {}", log::level().name(), l.name()));
            log::set_level(l);
        }
        if let Some(v) = new.daemon.swap_async_max
            && old.daemon.swap_async_max != Some(v)
        {
            let now = shared.backend.set_swap_async_max(v);
            changes.push(format!("swap_async_max -> {now}"));
        }
        for (name, a, b) in [
            ("interleave", old.daemon.interleave, new.daemon.interleave),
            ("nswbuf", old.daemon.nswbuf, new.daemon.nswbuf),
        ] {
            if a != b {
                changes.push(format!(
                    "{name} changed: takes effect when the daemon restarts"
                ));
            }
        }
        if new.daemon.checksum != old.daemon.checksum {
            changes.push("checksum changed: takes effect when the daemon restarts".into());
        }
        if new.daemon.socket != old.daemon.socket
            || new.daemon.socket_group != old.daemon.socket_group
        {
            changes.push("socket settings changed: take effect when the daemon restarts".into());
        }
        *shared.config.write() = Arc::new(new);
        if changes.is_empty() {
            log_info!("reload: {}: nothing changed", path.display());
        } else {
            log_info!("reload: {}: {}", path.display(), changes.join(", "));
        }
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (the default soft 1,024 would let ~500
/// idle clients exhaust the daemon); returns the soft limit in force.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                log_warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// A descriptor held in reserve: when accept fails for want of descriptors, closing it lets
/// the daemon accept the waiting client and tell it why it is refused.
fn spare_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// The accept side: the clients served and what bounds them.
struct Acceptor {
    shared: Arc<Shared>,
    clients: Arc<Mutex<HashMap<u64, UnixStream>>>,
    threads: Vec<JoinHandle<()>>,
    next_conn: AtomicU64,
    spare: Option<std::fs::File>,
    /// Clients the open-file limit leaves room for.
    fd_clients: usize,
    /// The current back-off after accept errors, and when it was last logged.
    backoff: Option<Duration>,
}

impl Acceptor {
    /// Accept one connection, or wait up to 100 ms for one.
    fn accept_one(&mut self, listener: &UnixListener) {
        match listener.accept() {
            Ok((stream, _)) => {
                self.backoff = None;
                let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = self.start_client(stream, conn) {
                    self.threads.push(t);
                }
                self.threads.retain(|t| !t.is_finished());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                self.refuse_out_of_fds(listener);
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
            Err(e) => {
                // Back off, doubling up to a second, and log each step only: a persistent
                // error costs a few lines, not twenty a second.
                let next = self.backoff.map_or(Duration::from_millis(10), |b| {
                    (b * 2).min(Duration::from_secs(1))
                });
                if self.backoff != Some(next) {
                    log_warn!("accept failed: {e}; retrying in {} ms", next.as_millis());
                }
                self.backoff = Some(next);
                std::thread::sleep(next);
            }
        }
    }

    /// Out of descriptors: use the spare one to accept the waiting client, tell it, close it.
    fn refuse_out_of_fds(&mut self, listener: &UnixListener) {
        drop(self.spare.take());
        if let Ok((stream, _)) = listener.accept() {
            refuse(
                stream,
                "too many clients: the daemon is out of file descriptors",
            );
        }
        self.spare = spare_fd();
        if self.spare.is_none() {
            // Not even one descriptor came back: wait for clients to leave.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Check the peer against the quotas, then start the thread that serves it and register
    /// a clone of its stream so shutdown can close its read side.
    fn start_client(&mut self, stream: UnixStream, conn: u64) -> Option<JoinHandle<()>> {
        let shared = &self.shared;
        let peer = match peer::peer_of(&stream, conn) {
            Ok(p) => p,
            Err(e) => {
                log_warn!("client {conn}: no peer credentials: {e}");
                return None;
            }
        };
        let limits = shared.limits();
        let admin = shared.is_admin(peer.uid);
        let open = self.clients.lock().len();
        let cap = if admin {
            self.fd_clients + (FD_RESERVE as usize / 4)
        } else {
            self.fd_clients.min(limits.max_connections as usize)
        };
        if open >= cap {
            log_uid!(
                Warn,
                peer.uid,
                "client {conn} (uid {}): refused, {open} clients already",
                peer.uid
            );
            refuse(stream, &format!("too many clients ({open})"));
            return None;
        }
        if let Err(why) = shared.registry.uids.connect(peer.uid, admin, &limits) {
            log_uid!(Warn, peer.uid, "client {conn}: refused: {why}");
            refuse(stream, &why);
            return None;
        }
        let clone = match stream
            .set_nonblocking(false)
            .and_then(|()| stream.try_clone())
        {
            Ok(c) => c,
            Err(e) => {
                log_warn!("client {conn}: {e}");
                shared.registry.uids.disconnect(peer.uid, &limits);
                return None;
            }
        };
        self.clients.lock().insert(conn, clone);
        let shared = Arc::clone(shared);
        let clients = Arc::clone(&self.clients);
        let spawned = std::thread::Builder::new()
            .name(format!("client-{conn}"))
            .stack_size(CLIENT_STACK)
            .spawn(move || {
                session::serve(&shared, stream, peer);
                clients.lock().remove(&conn);
            });
        match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                log_error!("client {conn}: cannot start a thread: {e}");
                self.clients.lock().remove(&conn);
                self.shared.registry.uids.disconnect(peer.uid, &limits);
                None
            }
        }
    }

    /// Shutdown: no new request, then [`DRAIN`] for those in flight, then cut what is left;
    /// returns within [`SHUTDOWN_LIMIT`].
    fn stop(self) {
        let start = Instant::now();
        let open: Vec<(u64, UnixStream)> = self
            .clients
            .lock()
            .iter()
            .filter_map(|(c, s)| s.try_clone().ok().map(|s| (*c, s)))
            .collect();
        log_info!(
            "stopped accepting; {} clients finishing their requests",
            open.len()
        );
        for (_, s) in &open {
            let _ = s.shutdown(std::net::Shutdown::Read);
        }
        let empty = |c: &Mutex<HashMap<u64, UnixStream>>| c.lock().is_empty();
        while !empty(&self.clients) && start.elapsed() < DRAIN {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left: Vec<u64> = self.clients.lock().keys().copied().collect();
        if !left.is_empty() {
            log_warn!(
                "cutting {} clients still busy after {} ms",
                left.len(),
                DRAIN.as_millis()
            );
            for (_, s) in open.iter().filter(|(c, _)| left.contains(c)) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        while !empty(&self.clients) && start.elapsed() < SHUTDOWN_LIMIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in self.threads {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Tell a refused client why, without ever blocking the accept loop on it.
fn refuse(stream: UnixStream, why: &str) {
    let mut s = stream;
    if s.set_nonblocking(true).is_ok() {
        let _ = Reply::error(ErrorKind::Quota, why)
            .frame(Vec::new())
            .write_to(&mut s);
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod runs_tests;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
