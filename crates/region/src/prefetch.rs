//! The prefetch thread: reads ahead of a thread whose major faults walk the region front
//! to back (`streams.rs` decides when, and how far), asynchronously to the faults.
//! Prefetch only takes room below the evictor's watermark, never waits for room, and a
//! failed prefetch read leaves the pages `Absent` (the fault that touches one reads it
//! again and poisons it if that fails too).

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use device::PAGE_SIZE;

use crate::shared::Shared;
use crate::state::Page;
use crate::stats::bump;
use crate::streams::Job;

const PAGE: u64 = PAGE_SIZE as u64;

/// The prefetch thread: serves jobs until the region stops or dies.
pub(crate) fn run(sh: Arc<Shared>, rx: Receiver<Job>) {
    let mut buf = device::PageBuf::new(sh.streams.prefetch.max(1) as usize);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(job) => fetch(&sh, job, &mut buf),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if sh.stopping() {
            return;
        }
    }
}

/// Reads the non-resident pages with swap in `job`, in runs the pager can read in one I/O,
/// and maps them clean and without the clock's second chance (untouched read-ahead goes
/// first).
fn fetch(sh: &Shared, job: Job, buf: &mut device::PageBuf) {
    // Within the segment of its first page: the next index of another is not the next
    // address.
    let end = (job.first + job.n).min(sh.mem.bounds(job.first).end);
    let mut at = job.first;
    while at < end && !sh.stopping() && !sh.paused() {
        let mut t = sh.lock();
        if t.is_failed() {
            return;
        }
        let absent = |q: u64| t.page(q) == Page::Absent { swap: true };
        while at < end && !absent(at) {
            at += 1;
        }
        let room = sh.watermark().saturating_sub(t.resident);
        let mut n = 0;
        while at + n < end && n < room && absent(at + n) {
            n += 1;
        }
        if n == 0 {
            return;
        }
        t.begin_load(at, n);
        drop(t);
        let buf = &mut buf.as_mut_slice()[..(n * PAGE) as usize];
        let got = sh.store.getpages(at, 0, n - 1, buf);
        let got = match got {
            Ok(range) if sh.mem.events => Ok(sh.lock().trim_discarded(range)),
            got => got,
        };
        let out = got
            .ok()
            .map(|range| (range.clone(), sh.mem.install(at, buf, range)));
        let mut t = sh.lock();
        let Some((range, out)) = out else {
            t.loaded(&sh.mem, at, n, at, None, None);
            drop(t);
            sh.notify();
            return;
        };
        let mapped = t.loaded(&sh.mem, at, n, range.start, Some(&out), None);
        for q in mapped.clone() {
            t.prefetched[q as usize] = true;
        }
        if job.dirty && !mapped.is_empty() {
            t.make_dirty(&sh.mem, mapped.clone());
        } else {
            let writable = t.map_written_writable(&sh.mem, mapped.clone());
            bump(&sh.book.counters.writable_on_read, writable);
        }
        drop(t);
        bump(&sh.book.counters.prefetch_issued, mapped.end - mapped.start);
        sh.notify();
        if mapped.end < range.end {
            // The kernel stopped part way: leave the rest to the faults.
            return;
        }
        at = range.end;
    }
}
