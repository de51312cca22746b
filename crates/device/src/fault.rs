//! Fault injection: make chosen I/Os on one swap area fail, for tests that must prove no data
//! is lost and every error is reported.
//!
//! Every area carries a [`FaultInjector`], disabled by default. The engines and the blocking
//! `read_pages`/`write_pages` ask [`FaultInjector::check`] before each I/O; an injected error
//! replaces the I/O (nothing reaches the device). When nothing is armed the check is one
//! relaxed atomic load.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::op::IoOp;

/// The armed faults of one area. Interior mutability: arm and clear through `&self`.
#[derive(Debug, Default)]
pub struct FaultInjector {
    armed: AtomicBool,
    state: Mutex<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    fail_writes: Vec<Range<u64>>,
    fail_reads: Vec<Range<u64>>,
    /// I/Os still allowed before every I/O fails; `None` when not armed.
    fail_after: Option<u64>,
    vanished: bool,
    latency: Duration,
}

impl Faults {
    fn is_armed(&self) -> bool {
        !self.fail_writes.is_empty()
            || !self.fail_reads.is_empty()
            || self.fail_after.is_some()
            || self.vanished
            || !self.latency.is_zero()
    }
}

impl FaultInjector {
    pub fn new() -> FaultInjector {
        FaultInjector::default()
    }

    /// Writes touching any page of `pages` fail with `EIO`.
    pub fn fail_writes(&self, pages: Range<u64>) {
        self.update(|f| f.fail_writes.push(pages));
    }

    /// Reads touching any page of `pages` fail with `EIO`.
    pub fn fail_reads(&self, pages: Range<u64>) {
        self.update(|f| f.fail_reads.push(pages));
    }

    /// The next `ios` I/Os go through; every one after them fails with `EIO`.
    pub fn fail_after(&self, ios: u64) {
        self.update(|f| f.fail_after = Some(ios));
    }

    /// The device is gone: every I/O fails with `ENXIO`.
    pub fn vanish(&self) {
        self.update(|f| f.vanished = true);
    }

    /// Every I/O is delayed by `d` before it is issued (zero turns the delay off).
    pub fn set_latency(&self, d: Duration) {
        self.update(|f| f.latency = d);
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.update(|f| *f = Faults::default());
    }

    /// The delay set by [`FaultInjector::set_latency`]; the engine applies it.
    pub fn latency(&self) -> Duration {
        if !self.armed.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        self.state.lock().latency
    }

    /// Decides the fate of one I/O of `pages` pages at `page`: `Some(error)` to fail it
    /// instead of doing it. Counts the I/O against `fail_after`. Called once per I/O.
    pub fn check(&self, op: IoOp, page: u64, pages: u64) -> Option<io::Error> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        let mut f = self.state.lock();
        if f.vanished {
            return Some(io::Error::from_raw_os_error(libc::ENXIO));
        }
        if let Some(left) = f.fail_after.as_mut() {
            if *left == 0 {
                return Some(io::Error::from_raw_os_error(libc::EIO));
            }
            *left -= 1;
        }
        let io = page..page.saturating_add(pages);
        let ranges = match op {
            IoOp::Read => &f.fail_reads,
            IoOp::Write => &f.fail_writes,
        };
        if ranges.iter().any(|r| r.start < io.end && io.start < r.end) {
            return Some(io::Error::from_raw_os_error(libc::EIO));
        }
        None
    }

    fn update(&self, change: impl FnOnce(&mut Faults)) {
        let mut f = self.state.lock();
        change(&mut f);
        self.armed.store(f.is_armed(), Ordering::Relaxed);
    }
}
