//! A daemon on a thread of its own: what a program that embeds the pager runs beside its
//! own work (and what the tests run), instead of giving its main thread to [`Daemon::serve`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Backend, Daemon, DaemonError, Shutdown};

/// A [`Daemon`] serving on its own thread. [`Server::stop`], or dropping it, shuts it down
/// the way a stop signal does (requests in flight answer, the socket is removed, async writes
/// finish) and joins the thread.
#[derive(Debug)]
pub struct Server {
    socket: PathBuf,
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), DaemonError>>>,
}

impl Daemon {
    /// Serve `backend` on a new thread (`swapkit-daemon`) until the returned [`Server`] is
    /// stopped or dropped. Signals are the caller's business: this installs no handler
    /// (see [`super::handle_signals`] for the ones `swapctl daemon` uses).
    pub fn spawn(self, backend: Arc<dyn Backend>) -> Result<Server, DaemonError> {
        let shutdown = Shutdown::default();
        let socket = self.socket().to_owned();
        let flag = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("swapkit-daemon".into())
            .spawn(move || self.serve(backend, flag))?;
        Ok(Server {
            socket,
            shutdown,
            thread: Some(thread),
        })
    }
}

impl Server {
    /// The socket clients connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A handle that stops the server when triggered (from a signal thread, say).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Shut down and wait for the serving thread; its error, if it failed.
    pub fn stop(mut self) -> Result<(), DaemonError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), DaemonError> {
        self.shutdown.trigger();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| DaemonError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
