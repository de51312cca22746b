//! The daemon's log: one line per event on stderr, filtered by `--log-level`.
//!
//! Invariants, so that no peer can flood or forge the log:
//! - every event is exactly one line: control characters (a newline in a peer's handle or
//!   path) are shown as `\u{..}` escapes, never written;
//! - a line is at most [`MAX_LINE`] bytes; a longer one is cut and says how much was cut;
//! - events caused by one non-root uid (`log_uid!`) pass at most
//!   [`BURST`] per [`WINDOW`]; the rest are counted and summarised in one line
//!   ("uid 1000: ... 1,204 more like this") when the window ends ([`flush_suppressed`]).
//! - a failed write to stderr (a closed terminal) is ignored: logging never kills the daemon.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error = 0,
    #[serde(alias = "warning")]
    Warn = 1,
    Info = 2,
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Longest line written, in bytes (the prefix included).
pub const MAX_LINE: usize = 512;
/// Lines one non-root uid may cause per [`WINDOW`] before they are summarised.
pub const BURST: u32 = 20;
/// The rate-limit window of `log_uid!`.
pub const WINDOW: Duration = Duration::from_secs(10);

impl Level {
    pub fn parse(s: &str) -> Result<Level, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warn" | "warning" => Ok(Level::Warn),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            _ => Err(format!(
                "unknown log level {s:?} (error, warn, info, debug)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Level::Error,
        1 => Level::Warn,
        2 => Level::Info,
        _ => Level::Debug,
    }
}

pub fn enabled(l: Level) -> bool {
    l as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// The line for one event: prefix, text with control characters escaped, cut at [`MAX_LINE`].
pub fn line(l: Level, args: std::fmt::Arguments<'_>) -> String {
    let raw = args.to_string();
    let mut out = format!("swapctl daemon: {}: ", l.name());
    let mut cut = 0usize;
    for (i, c) in raw.char_indices() {
        // Room for the longest escape and the cut note.
        if out.len() + 40 > MAX_LINE {
            cut = raw.len() - i;
            break;
        }
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    if cut > 0 {
        let _ = write!(out, "... ({cut} bytes cut)");
    }
    out.push('\n');
    out
}

/// Whether lines go through `eprint!` (see [`to_test_harness`]); on in this crate's tests.
static TO_TEST_HARNESS: AtomicBool = AtomicBool::new(cfg!(test));

/// Tests that run a daemon in their own process call this first: the lines then go through
/// `eprint!`, which the test harness captures and shows only for a test that fails, instead
/// of straight to the terminal where a passing run's warnings read as failures. Never in a
/// real daemon: `eprint!` panics when stderr is gone.
pub fn to_test_harness() {
    TO_TEST_HARNESS.store(true, Ordering::Relaxed);
}

fn emit(text: &str) {
    if TO_TEST_HARNESS.load(Ordering::Relaxed) {
        eprint!("{text}");
        return;
    }
    // One write of the whole line, and no panic if stderr is gone (eprintln! would panic).
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub fn write(l: Level, args: std::fmt::Arguments<'_>) {
    if enabled(l) {
        emit(&line(l, args));
    }
}

/// What one key of a [`Limiter`] has passed and held back in its window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    passed: u32,
    held: u64,
}

/// A rate limit per key: [`BURST`] lines per [`WINDOW`], the rest counted, to be summed up
/// in one line once the window has ended. The log keys it by uid, corrupt reads by device
/// (`integrity.rs`); each key keeps the label its summary names.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: HashMap<u32, (String, Window)>,
}

impl Limiter {
    /// Whether a line for `key` may pass at `now`. When the key's last window ended with
    /// lines held back, also its label and how many (for the summary, which goes first).
    /// `label` is called only for a key not seen in the current window.
    pub(crate) fn admit(
        &mut self,
        key: u32,
        label: impl FnOnce() -> String,
        now: Instant,
    ) -> (bool, Option<(String, u64)>) {
        let fresh = Window {
            start: now,
            passed: 0,
            held: 0,
        };
        let (name, w) = self.windows.entry(key).or_insert_with(|| (label(), fresh));
        let mut ended = None;
        if now.duration_since(w.start) >= WINDOW {
            if w.held > 0 {
                ended = Some((name.clone(), w.held));
            }
            *w = fresh;
        }
        if w.passed >= BURST {
            w.held += 1;
            return (false, ended);
        }
        w.passed += 1;
        (true, ended)
    }

    /// The labels and held-back counts of the windows that have ended at `now` (all of them
    /// with `all`); those keys are forgotten.
    pub(crate) fn flush(&mut self, now: Instant, all: bool) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        self.windows.retain(|_, (name, w)| {
            if !all && now.duration_since(w.start) < WINDOW {
                return true;
            }
            if w.held > 0 {
                out.push((std::mem::take(name), w.held));
            }
            false
        });
        out
    }
}

static WINDOWS: Mutex<Option<Limiter>> = Mutex::new(None);

/// 1204 as "1,204".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn summary(label: &str, held: u64) -> String {
    line(
        Level::Warn,
        format_args!("{label}: ... {} more like this", thousands(held)),
    )
}

/// Log an event caused by `uid`. Root's events always pass; another uid's pass
/// [`BURST`] per [`WINDOW`], the rest are summarised when the window ends.
pub fn write_uid(l: Level, uid: u32, args: std::fmt::Arguments<'_>) {
    if !enabled(l) {
        return;
    }
    if uid == 0 {
        emit(&line(l, args));
        return;
    }
    let (pass, ended) = WINDOWS.lock().get_or_insert_with(Limiter::default).admit(
        uid,
        || format!("uid {uid}"),
        Instant::now(),
    );
    if let Some((label, held)) = ended {
        emit(&summary(&label, held));
    }
    if pass {
        emit(&line(l, args));
    }
}

/// Write the summary of every window that has ended with lines held back, and forget quiet
/// uids. The accept loop calls it every tick, so a summary is never later than a window.
pub fn flush_suppressed() {
    flush_windows(false);
}

/// At exit: the summaries of every window, ended or not.
pub fn flush_all_suppressed() {
    flush_windows(true);
}

fn flush_windows(all: bool) {
    let ended = match WINDOWS.lock().as_mut() {
        Some(l) => l.flush(Instant::now(), all),
        None => return,
    };
    for (label, held) in ended {
        emit(&summary(&label, held));
    }
}

macro_rules! log_error { ($($t:tt)*) => { $crate::daemon::log::write($crate::daemon::log::Level::Error, format_args!($($t)*)) } }
macro_rules! log_warn { ($($t:tt)*) => { $crate::daemon::log::write($crate::daemon::log::Level::Warn, format_args!($($t)*)) } }
macro_rules! log_info { ($($t:tt)*) => { $crate::daemon::log::write($crate::daemon::log::Level::Info, format_args!($($t)*)) } }
macro_rules! log_debug { ($($t:tt)*) => { $crate::daemon::log::write($crate::daemon::log::Level::Debug, format_args!($($t)*)) } }
/// `log_uid!(Warn, uid, "...")`: an event a peer caused, rate-limited per uid.
macro_rules! log_uid { ($l:ident, $uid:expr, $($t:tt)*) => { $crate::daemon::log::write_uid($crate::daemon::log::Level::$l, $uid, format_args!($($t)*)) } }
pub(crate) use {log_debug, log_error, log_info, log_uid, log_warn};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_line_and_capped() {
        let l = line(Level::Warn, format_args!("handle {}", "a\nb\x1b[2J"));
        assert_eq!(l.matches('\n').count(), 1);
        assert!(l.contains("a\\u{a}b\\u{1b}[2J"), "{l}");
        let long = "x".repeat(200_000);
        let l = line(Level::Warn, format_args!("{long}"));
        assert!(l.len() <= MAX_LINE, "{}", l.len());
        assert!(l.contains("bytes cut)"), "{l}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
