//! `swapctl daemon`: host a swap space and serve it on a Unix socket.
//!
//! One thread accepts; one thread serves each client ([`session`]). Shutdown (SIGTERM,
//! SIGINT, or [`Shutdown::trigger`]) stops accepting, shuts the read side of every client
//! so no new request starts, lets the requests in flight finish and answer, waits for async
//! writes, removes the socket and returns. The daemon never exits on a client's mistake.

pub mod backend;
pub mod log;
pub mod pager_backend;
pub mod session;
pub mod socket;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use parking_lot::Mutex;

pub use backend::{Backend, BackendError, MemoryBackend};
use log::{log_error, log_info, log_warn};
use session::{ObjectTable, Shared};

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

/// Block SIGTERM and SIGINT in the calling thread and every thread it creates after, and
/// start a thread that waits for them and triggers `shutdown`. Call it first thing, before
/// the pager starts its I/O threads: a signal delivered to a thread that does not block it
/// would kill the process with the default action.
pub fn handle_signals(shutdown: Shutdown) -> std::io::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                log_info!("{sig}: shutting down");
                shutdown.trigger();
            }
        })?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Socket(#[from] socket::SocketError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
pub struct DaemonOptions {
    pub socket: PathBuf,
    pub socket_group: Option<String>,
    pub config: Config,
    /// Swap on the config file's non-`noauto` devices at start.
    pub auto_on: bool,
}

/// The listening daemon, between `bind` and `serve`.
#[derive(Debug)]
pub struct Daemon {
    listener: UnixListener,
    socket: PathBuf,
    config: Config,
    auto_on: bool,
}

impl Daemon {
    /// Bind the socket (refusing a live one) before the swap space starts, so a second
    /// daemon fails fast without touching any device.
    pub fn bind(opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let listener = socket::bind(&opts.socket, opts.socket_group.as_deref())?;
        Ok(Daemon {
            listener,
            socket: opts.socket,
            config: opts.config,
            auto_on: opts.auto_on,
        })
    }

    /// The socket path, for messages.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Swap on the config devices, then serve `backend` until `shutdown`.
    pub fn serve(self, backend: Arc<dyn Backend>, shutdown: Shutdown) -> Result<(), DaemonError> {
        let shared = Arc::new(Shared {
            backend,
            config: self.config.clone(),
            objects: Mutex::new(ObjectTable::default()),
            daemon_uid: nix::unistd::geteuid().as_raw(),
        });
        if self.auto_on {
            for d in shared.config.auto_devices() {
                match shared.backend.swapon(&d.path, d.priority, d.discard) {
                    Ok(()) => log_info!("swapon {} priority {}", d.path.display(), d.priority),
                    Err(e) => log_error!("swapon {}: {e}", d.path.display()),
                }
            }
        }
        log_info!("listening on {}", self.socket.display());
        self.listener.set_nonblocking(true)?;
        let clients: Arc<Mutex<HashMap<u64, UnixStream>>> = Arc::default();
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let next_conn = AtomicU64::new(1);
        while !shutdown.is_set() {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let conn = next_conn.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = spawn_client(&shared, stream, conn, &clients) {
                        threads.push(t);
                    }
                    threads.retain(|t| !t.is_finished());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(&mut fds, PollTimeout::from(100u16));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log_warn!("accept: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        let _ = std::fs::remove_file(&self.socket);
        drop(self.listener);
        let open: Vec<UnixStream> = clients.lock().drain().map(|(_, s)| s).collect();
        log_info!(
            "stopped accepting; {} clients finishing their requests",
            open.len()
        );
        for s in &open {
            let _ = s.shutdown(std::net::Shutdown::Read);
        }
        for t in threads {
            let _ = t.join();
        }
        shared.backend.flush();
        log_info!("all I/O finished; exiting");
        Ok(())
    }
}

/// How long a reply may wait for a client to read it before the connection is dropped.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connections served at once: one thread each, so bounded.
pub const MAX_CLIENTS: usize = 1024;

/// Start the thread that serves one accepted connection, and register a clone of its stream
/// so shutdown can close its read side.
fn spawn_client(
    shared: &Arc<Shared>,
    stream: UnixStream,
    conn: u64,
    clients: &Arc<Mutex<HashMap<u64, UnixStream>>>,
) -> Option<JoinHandle<()>> {
    let peer = match session::peer_of(&stream, conn) {
        Ok(p) => p,
        Err(e) => {
            log_warn!("client {conn}: no peer credentials: {e}");
            return None;
        }
    };
    let mut stream = stream;
    // A client that stops reading its replies must not hold a thread (and shutdown) forever.
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return None;
    }
    if clients.lock().len() >= MAX_CLIENTS {
        log_warn!(
            "client {conn} (uid {}): refused, {MAX_CLIENTS} clients already",
            peer.uid
        );
        let _ = Reply::error(
            ErrorKind::Failed,
            format!("too many clients ({MAX_CLIENTS})"),
        )
        .frame(Vec::new())
        .write_to(&mut stream);
        return None;
    }
    if let Ok(c) = stream.try_clone() {
        clients.lock().insert(conn, c);
    }
    let shared = Arc::clone(shared);
    let clients = Arc::clone(clients);
    let spawned = std::thread::Builder::new()
        .name(format!("client-{conn}"))
        .spawn(move || {
            session::serve(&shared, stream, peer);
            clients.lock().remove(&conn);
        });
    match spawned {
        Ok(t) => Some(t),
        Err(e) => {
            log_error!("client {conn}: cannot start a thread: {e}");
            None
        }
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
