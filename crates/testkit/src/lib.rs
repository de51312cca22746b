//! testkit: what more than one crate's tests need, kept once. A dev-dependency only:
//! nothing that ships depends on it.
//!
//! - [`pty`]: a program in a real pseudo-terminal (what it drew, keys sent to it, a
//!   terminal closed under it, whether it left the terminal as it found it), for the TUI's
//!   tests in `swapctl` and the demo's in `xtask`.

pub mod pty;
