//! The per-process view of `swapctl run` (issue 25): what a program's preload library reports
//! about itself ([`ProcessReport`], the `report` request) and what the daemon shows of each
//! such program ([`ProcessUsage`], in the `stats` reply).
//!
//! A report comes from the program itself, so nothing in it is trusted: its figures are
//! shown as they came (never used for a quota or a decision), and its command is checked
//! ([`ProcessReport::check`]) and cleaned ([`clean_command`]) before anyone sees it. Both
//! types take `#[serde(default)]`, so a newer preload or daemon may add fields and an older
//! peer simply leaves them out.

use serde::{Deserialize, Serialize};

/// Longest `command` a report may carry, in bytes. The preload cuts the program's argv to
/// about 200 characters; anything past this limit is refused as malformed.
pub const MAX_COMMAND_LEN: usize = 1024;

/// What a program run with `swapctl run` says about itself, about once a second, on its main
/// connection (the one that created its objects). Counters are totals since the program
/// started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessReport {
    /// The program's argv joined with spaces, cut to about 200 characters.
    pub command: String,
    /// Pages of its paged mappings in memory now.
    pub resident_pages: u64,
    /// The most pages of them it keeps in memory (`swapctl run --limit`).
    pub limit_pages: u64,
    /// Faults served in its paged mappings.
    pub faults: u64,
    /// Of those, the faults that read from swap.
    pub major_faults: u64,
    /// Pages read from swap.
    pub pages_in: u64,
    /// Pages written to swap.
    pub pages_out: u64,
    /// Pages whose read failed (each a SIGBUS to the program).
    pub read_errors: u64,
}

impl ProcessReport {
    /// Whether the daemon takes this report: its command fits [`MAX_COMMAND_LEN`]. Nothing
    /// else is checked: the figures are shown as they are, whatever they are.
    pub fn check(&self) -> Result<(), String> {
        if self.command.len() > MAX_COMMAND_LEN {
            return Err(format!(
                "report: a command of {} bytes is over the limit of {MAX_COMMAND_LEN}",
                self.command.len()
            ));
        }
        Ok(())
    }
}

/// A command as others see it: every control character (a newline, an escape sequence
/// meant for an admin's terminal) shown as `?`.
pub fn clean_command(command: &str) -> String {
    command
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// One program that runs on the daemon's swap space (`swapctl run`), as `status` and `top`
/// show it: who it is (from the connection's `SO_PEERCRED`), what the daemon holds for it
/// (its objects and their swap pages), and its last [`ProcessReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessUsage {
    pub pid: i32,
    pub uid: u32,
    /// Cleaned ([`clean_command`]).
    pub command: String,
    /// Objects its connection created.
    pub objects: u32,
    /// Swap pages those objects hold.
    pub swapped_pages: u64,
    pub resident_pages: u64,
    pub limit_pages: u64,
    pub faults: u64,
    pub major_faults: u64,
    pub pages_in: u64,
    pub pages_out: u64,
    pub read_errors: u64,
    /// Seconds since its first report.
    pub since: u64,
}
