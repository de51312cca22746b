//! Sequential prefetch: when a thread's major faults walk the region front to back, a
//! prefetch thread reads ahead of it asynchronously, in a window that doubles while the
//! pattern holds (up to `RegionConfig::prefetch` pages) and falls back to nothing when it
//! breaks, as the kernel's swap read-ahead does per VMA.
//!
//! Streams are per faulting thread (the kernel gives its id with
//! `UFFD_FEATURE_THREAD_ID`). A fault is sequential when it lands after the thread's last
//! fault and no further than the end of what was read for it (read-around or prefetch).
//! Hits are counted when the thread's next sequential fault is past a prefetched window:
//! the prefetched pages it passed, and that were not evicted meanwhile, were served from
//! memory. Prefetch only takes room below the evictor's watermark,
//! never waits for room, and a failed prefetch read leaves the pages `Absent` (the fault
//! that touches one reads it again and poisons it if that fails too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use device::PAGE_SIZE;

use crate::fault::{give_back, install};
use crate::shared::{Page, Shared};
use crate::stats::bump;

const PAGE: u64 = PAGE_SIZE as u64;
/// Streams kept at most; more threads than this forget the oldest (all, for simplicity).
const MAX_STREAMS: usize = 256;

/// A read-ahead asked of the prefetch thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub first: u64,
    pub n: u64,
    /// The stream writes: map the pages dirty and writable (see [`after_major_fault`]).
    pub dirty: bool,
}

/// One faulting thread's sequential state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stream {
    last: Option<u64>,
    /// The end of what was read for the thread so far.
    next: u64,
    window: u64,
    /// The last prefetched window whose hits are not yet counted.
    pf_first: u64,
    pf_end: u64,
}

pub(crate) type Streams = HashMap<u32, Stream>;

/// Called after a major fault of `thread` at `p` that read up to page `end` (exclusive).
/// `write`: the fault was a store. A thread storing front to back is taken to overwrite
/// what is ahead too: its read-ahead is mapped dirty and writable, saving a write-protect
/// fault per page; a wrong guess costs only a write of unchanged bytes at eviction.
pub(crate) fn after_major_fault(sh: &Shared, thread: u32, p: u64, end: u64, write: bool) {
    let mut streams = sh.streams.lock();
    if streams.len() >= MAX_STREAMS && !streams.contains_key(&thread) {
        streams.clear();
    }
    let s = streams.entry(thread).or_default();
    let sequential = s.last.is_some_and(|last| p > last && p <= s.next);
    if sequential && s.pf_end > s.pf_first && p >= s.pf_first {
        // The thread walked over the prefetched pages before `p`: those still marked
        // (mapped by prefetch and not evicted since) were served from memory.
        let mut t = sh.lock();
        let mut hits = 0;
        for q in s.pf_first..p.min(s.pf_end) {
            if std::mem::take(&mut t.prefetched[q as usize]) {
                hits += 1;
            }
        }
        drop(t);
        bump(&sh.counters.prefetch_hit, hits);
        s.pf_first = s.pf_end;
    }
    s.last = Some(p);
    s.next = end;
    if !sequential || sh.prefetch == 0 {
        s.window = 0;
        return;
    }
    s.window = if s.window == 0 {
        (sh.read_around + 1).clamp(1, sh.prefetch)
    } else {
        s.window.saturating_mul(2).min(sh.prefetch)
    };
    let n = s.window.min(sh.pages - end);
    if n == 0 {
        return;
    }
    s.pf_first = end;
    s.pf_end = end + n;
    s.next = end + n;
    drop(streams);
    let _ = sh.prefetch_tx.send(Job {
        first: end,
        n,
        dirty: write,
    });
}

/// Whether a major fault of `thread` at `p` is near its previous one (within the span a
/// read-around covers, or inside what was read for it): a sequential or local pattern,
/// whose neighbours are worth reading with it. A thread's first fault and a fault far
/// from its last one (random access) read only the page: the neighbours of a random
/// fault are seldom touched, and mapping them would push out pages that are.
pub(crate) fn is_local(sh: &Shared, thread: u32, p: u64) -> bool {
    let streams = sh.streams.lock();
    streams.get(&thread).is_some_and(|s| {
        s.last.is_some_and(|last| {
            p.abs_diff(last) <= 2 * sh.read_around + 1 || (p > last && p <= s.next)
        })
    })
}

/// The prefetch thread: serves jobs until the region stops.
pub(crate) fn run(sh: Arc<Shared>, rx: Receiver<Job>) {
    let mut buf = Vec::new();
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
fn fetch(sh: &Shared, job: Job, buf: &mut Vec<u8>) {
    let end = job.first + job.n;
    let mut at = job.first;
    while at < end && !sh.stopping() {
        let mut t = sh.lock();
        let absent = |q: u64| t.pages[q as usize] == Page::Absent { swap: true };
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
        for q in at..at + n {
            t.pages[q as usize] = Page::Loading;
        }
        t.resident += n;
        drop(t);
        buf.resize((n * PAGE) as usize, 0);
        let got = sh.pager.getpages(&sh.obj, at, 0, n - 1, buf);
        let mut t = sh.lock();
        match got {
            Ok(range) if install(sh, at, buf, range.clone()).is_ok() => {
                for q in range.clone() {
                    t.pages[q as usize] = Page::Resident {
                        dirty: false,
                        referenced: false,
                    };
                    t.prefetched[q as usize] = true;
                }
                if job.dirty {
                    crate::fault::dirty_now(sh, &mut t, range.clone());
                }
                give_back(&mut t, at, n, range.clone());
                bump(&sh.counters.prefetch_issued, range.end - range.start);
                at = range.end;
            }
            _ => {
                give_back(&mut t, at, n, at..at);
                drop(t);
                sh.changed.notify_all();
                return;
            }
        }
        drop(t);
        sh.changed.notify_all();
    }
}
