//! `swapctl status`'s processes table: the programs running on the swap space (`swapctl
//! run`), one row each, from the `stats` reply's `processes`.

use control::proto::{ProcessUsage, clean_command};

use super::table::{Align, render};
use crate::units::human;

/// Widest COMMAND shown; a longer one is cut with `…` (the whole one is in `--json`).
pub const COMMAND_WIDTH: usize = 40;

/// `pages` pages of `page_size` bytes in the human unit, whatever a report claims.
fn pages(n: u64, page_size: u64) -> String {
    human(n.saturating_mul(page_size))
}

/// A command in at most `width` columns, cleaned of control characters (a daemon of
/// another version may not have).
pub fn command(c: &str, width: usize) -> String {
    let c = clean_command(c);
    if c.chars().count() <= width {
        return c;
    }
    let mut cut: String = c.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The table under a `processes` heading, or nothing when no program runs on the swap
/// space. `user` names a uid (its login name, or the number).
pub fn processes(p: &[ProcessUsage], page_size: u64, user: impl Fn(u32) -> String) -> String {
    if p.is_empty() {
        return String::new();
    }
    let mut rows = vec![
        [
            "PID",
            "USER",
            "COMMAND",
            "RESIDENT",
            "SWAPPED",
            "LIMIT",
            "FAULTS",
            "READ ERRORS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for u in p {
        rows.push(vec![
            u.pid.to_string(),
            user(u.uid),
            command(&u.command, COMMAND_WIDTH),
            pages(u.resident_pages, page_size),
            pages(u.swapped_pages, page_size),
            pages(u.limit_pages, page_size),
            u.faults.to_string(),
            u.read_errors.to_string(),
        ]);
    }
    use Align::{Left, Right};
    let align = [Right, Left, Left, Right, Right, Right, Right, Right];
    format!("processes\n{}", render(&rows, &align, false))
}

/// A uid's login name, or its number when it has none.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}
