//! swapctl: administer a swapkit swap space from a shell.
//!
//! The crate is a library plus the `swapctl` binary (`main.rs` only parses and exits).
//! The library, by module:
//! - [`cli`]: every command and flag (clap derive); the man page and completions come
//!   from it. [`commands`] runs a parsed command line; [`output`] is how a command
//!   reports (its error line, exit status and stdout), shared with [`load`].
//! - [`config`]: the daemon's TOML config file.
//! - [`proto`]: the framed, versioned, size-limited wire protocol (`docs/protocol.md`).
//! - [`daemon`]: `swapctl daemon`, serving a [`daemon::Backend`] (the real
//!   `pager::Pager`, or an in-memory model for tests) with a thread per client.
//! - [`client`]: the client side, and `top`'s [`client::DaemonSource`].
//! - [`format`](mod@format): `list`, `summary`, `status`, `frag` as pure functions of a
//!   `pager::PagerStats` snapshot.
//! - [`load`]: the load generator and verifier; [`top`]: the live TUI.
//!
//! Invariants:
//! - Only this crate touches the terminal, sockets and the command line; `pager` and `device`
//!   never print.
//! - The daemon never trusts a peer: every frame is size-limited and decoded without panics,
//!   privileged requests are checked against `SO_PEERCRED`, objects are scoped per uid, and
//!   one client's bad request never disturbs another.
//! - Page data travels as raw bytes after the JSON header, never inside JSON.
//! - Output layouts are pure functions of a `PagerStats` snapshot.
//!
//! ```
//! use swapctl::format::{list_table, ListOptions};
//! let text = list_table(&pager::PagerStats::default(), &ListOptions::default());
//! assert!(text.starts_with("Device"));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod format;
pub mod load;
pub mod output;
pub mod proto;
pub mod top;
pub mod units;
