//! control: the swapkit control socket, for programs that embed the pager.
//!
//! A program that embeds [`pager::Pager`] and wants `swapctl list`, `swapctl top` or its own
//! clients to reach it serves the socket with this crate alone: no terminal and no command
//! line comes with it (`swapctl` is the CLI and the TUI built on top). What an embedder does:
//! - **serve** its own pager: wrap it in a [`daemon::pager_backend::PagerBackend`], bind a
//!   [`daemon::Daemon`] on a socket, and either give it a thread ([`daemon::Daemon::serve`],
//!   what `swapctl daemon` does) or let it run on one of its own ([`daemon::Daemon::spawn`],
//!   stopped when the [`daemon::Server`] is dropped). Signal handling is opt-in
//!   ([`daemon::handle_signals`]).
//! - **talk** to a daemon: [`client::Client`], one connection, one request at a time, never
//!   waiting without a time limit.
//!
//! By module:
//! - [`proto`]: the framed, versioned, size-limited wire protocol (`docs/protocol.md`).
//! - [`client`]: the client side.
//! - [`daemon`]: the server, serving a [`daemon::Backend`] (the real `pager::Pager`, or the
//!   in-memory [`daemon::MemoryBackend`] the tests use as a model) with a thread per client;
//!   its limits, log and signals.
//! - [`config`]: the daemon's TOML config file (`swapctl.toml(5)`), `[limits]` included.
//!
//! Invariants:
//! - The daemon never trusts a peer: every frame is size-limited and decoded without panics,
//!   privileged requests are checked against `SO_PEERCRED`, objects are scoped per uid, and
//!   one client's bad request never disturbs another.
//! - Page data travels as raw bytes after the JSON header, never inside JSON.
//! - No dependency on a terminal or command-line crate; the daemon writes only its log lines
//!   (stderr).
//!
//! ```
//! use std::sync::Arc;
//! use control::client::Client;
//! use control::daemon::{Daemon, DaemonOptions, pager_backend::PagerBackend};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let socket = dir.path().join("pager.sock");
//! // The program's own pager, which it keeps using for its own objects.
//! let pager = pager::Pager::new(pager::PagerConfig::default())?;
//! let server = Daemon::bind(DaemonOptions::new(&socket))?
//!     .spawn(Arc::new(PagerBackend::new(pager.clone())))?;
//! // Any client (`swapctl list --socket ...`, or this one) now sees the same pager.
//! let _mine = pager.alloc_object(None, 16);
//! let stats = Client::connect(server.socket())?.stats()?;
//! assert_eq!(stats.objects, pager.stats().objects);
//! server.stop()?;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod config;
pub mod daemon;
pub mod proto;
