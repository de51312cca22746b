//! swapctl: administer a swapkit swap space from a shell.
//!
//! The crate is a library plus the `swapctl` binary (`main.rs` only parses and exits).
//! The library, by module:
//! - [`cli`]: every command and flag (clap derive); the man page and completions come
//!   from it. [`commands`] runs a parsed command line; [`output`] is how a command
//!   reports (its error line, exit status and stdout), shared with [`load`].
//! - The protocol, the client, the daemon server and its config file are the `control`
//!   crate's (no terminal or command-line dependency, so an embedder can serve the socket
//!   alone); `commands::serve` runs its daemon, `load` and `top` use its client.
//! - [`format`](mod@format): `list`, `summary`, `status`, `frag` as pure functions of a
//!   `pager::PagerStats` snapshot.
//! - [`load`]: the load generator and verifier; [`top`]: the live TUI.
//!
//! Invariants:
//! - Only this crate touches the terminal and the command line; `pager` and `device` never
//!   print.
//! - Output layouts are pure functions of a `PagerStats` snapshot.
//!
//! ```
//! use swapctl::format::{list_table, ListOptions};
//! let text = list_table(&pager::PagerStats::default(), &ListOptions::default());
//! assert!(text.starts_with("Device"));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod commands;
pub mod format;
pub mod load;
pub mod output;
pub mod top;
pub mod units;
