//! Progress for long phases: a bar redrawn in place on a terminal, one line when done.
//!
//! Workers bump a shared counter ([`Progress::add`], lock-free, `&self`); a ticker thread redraws the
//! bar ten times a second. When stderr is not a terminal (CI, `| tee`), only the final line
//! is printed, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Shared {
    done: AtomicU64,
    total: u64,
    stop: AtomicBool,
}

/// A running phase. Dropping it (or [`Progress::finish`]) clears the bar.
#[derive(Debug)]
pub struct Progress {
    shared: Arc<Shared>,
    ticker: Option<JoinHandle<()>>,
    label: String,
    start: Instant,
}

impl Progress {
    /// Start a phase of `total` units (bytes, operations: the caller's choice).
    pub fn start(label: &str, total: u64) -> Progress {
        let shared = Arc::new(Shared {
            done: AtomicU64::new(0),
            total: total.max(1),
            stop: AtomicBool::new(false),
        });
        let ticker = if std::io::stderr().is_terminal() {
            let s = Arc::clone(&shared);
            let l = label.to_string();
            let start = Instant::now();
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    while !s.stop.load(Ordering::Relaxed) {
                        draw(&l, &s, start);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
                .ok()
        } else {
            None
        };
        Progress {
            shared,
            ticker,
            label: label.to_string(),
            start: Instant::now(),
        }
    }

    pub fn add(&self, n: u64) {
        self.shared.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Stop the bar and print `label: summary (time)` in its place.
    pub fn finish(mut self, summary: &str) {
        self.stop();
        eprintln!(
            "  {:<28} {summary} ({:.1} s)",
            self.label,
            self.start.elapsed().as_secs_f64()
        );
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn draw(label: &str, s: &Shared, start: Instant) {
    const WIDTH: usize = 30;
    let done = s.done.load(Ordering::Relaxed).min(s.total);
    let frac = done as f64 / s.total as f64;
    let filled = (frac * WIDTH as f64).round() as usize;
    eprint!(
        "\r\x1b[2K  {label:<28} [{}{}] {:>3.0}%  {:.1} s",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled.min(WIDTH)),
        frac * 100.0,
        start.elapsed().as_secs_f64()
    );
    let _ = std::io::stderr().flush();
}
