//! swapctl: administer a swapkit swap space from a shell.
//!
//! The crate is a library plus the `swapctl` binary. The library holds the command line
//! ([`cli`]), the daemon's config file ([`config`]), the wire protocol ([`proto`]), the
//! output layouts ([`format`]), and later the daemon, the client, the load generator and the
//! live TUI ([`top`]).
//!
//! Invariants:
//! - Only this crate touches the terminal, sockets and the command line; `pager` and `device`
//!   never print.
//! - The daemon never trusts a peer: every frame is size-limited and decoded without panics,
//!   privileged requests are checked against `SO_PEERCRED`, and objects are scoped per uid.
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
pub mod proto;
pub mod top;
pub mod units;
