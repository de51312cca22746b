//! Which faults are sequential: per faulting thread, where its last major fault was and
//! how far was read for it, and the read-ahead window that grows while the pattern holds.
//! The prefetch thread (`prefetch.rs`) reads the windows this asks for.
//!
//! Streams are per faulting thread (the kernel gives its id with
//! `UFFD_FEATURE_THREAD_ID`). A fault is sequential when it lands after the thread's last
//! fault and no further than the end of what was read for it (read-around or prefetch).
//! The window doubles while the pattern holds (up to `RegionConfig::prefetch` pages) and
//! falls back to nothing when it breaks, as the kernel's swap read-ahead does per VMA.
//! Hits are counted when the thread's next sequential fault is past a prefetched window:
//! the prefetched pages it passed, and that were not evicted meanwhile, were served from
//! memory.

use std::collections::HashMap;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::book::Book;
use crate::stats::bump;

/// Streams kept at most; more threads than this forget the oldest (all, for simplicity).
const MAX_STREAMS: usize = 256;

/// A read-ahead asked of the prefetch thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub first: u64,
    pub n: u64,
    /// The stream writes: map the pages dirty and writable (see [`Streams::after_major_fault`]).
    pub dirty: bool,
}

/// One faulting thread's sequential state.
#[derive(Debug, Default, Clone, Copy)]
struct Stream {
    last: Option<u64>,
    /// The end of what was read for the thread so far.
    next: u64,
    window: u64,
    /// The last prefetched window whose hits are not yet counted.
    pf_first: u64,
    pf_end: u64,
}

#[derive(Debug)]
pub(crate) struct Streams {
    map: Mutex<HashMap<u32, Stream>>,
    tx: Sender<Job>,
    /// Pages read around a local fault, each side.
    pub read_around: u64,
    /// The largest read-ahead window (0: none).
    pub prefetch: u64,
    pages: u64,
}

impl Streams {
    pub fn new(tx: Sender<Job>, read_around: u64, prefetch: u64, pages: u64) -> Streams {
        Streams {
            map: Mutex::new(HashMap::new()),
            tx,
            read_around,
            prefetch,
            pages,
        }
    }

    /// Whether a major fault of `thread` at `p` is near its previous one (within the span
    /// a read-around covers, or inside what was read for it): a sequential or local
    /// pattern, whose neighbours are worth reading with it. A thread's first fault and a
    /// fault far from its last one (random access) read only the page: the neighbours of
    /// a random fault are seldom touched, and mapping them would push out pages that are.
    pub fn is_local(&self, thread: u32, p: u64) -> bool {
        let streams = self.map.lock();
        streams.get(&thread).is_some_and(|s| {
            s.last.is_some_and(|last| {
                p.abs_diff(last) <= 2 * self.read_around + 1 || (p > last && p <= s.next)
            })
        })
    }

    /// Notes a fault of `thread` at `p` that mapped up to page `end` (exclusive) without
    /// a read (fresh memory): later faults near it count as local. No read-ahead: there is
    /// nothing on swap ahead of memory never written.
    pub fn note(&self, thread: u32, p: u64, end: u64) {
        let mut streams = self.map.lock();
        if streams.len() >= MAX_STREAMS && !streams.contains_key(&thread) {
            streams.clear();
        }
        let s = streams.entry(thread).or_default();
        s.last = Some(p);
        s.next = end;
        s.window = 0;
    }

    /// Called after a major fault of `thread` at `p` that read up to page `end`
    /// (exclusive). `write`: the fault was a store. A thread storing front to back is
    /// taken to overwrite what is ahead too: its read-ahead is mapped dirty and writable,
    /// saving a write-protect fault per page; a wrong guess costs only a write of
    /// unchanged bytes at eviction. Lock order: streams, then the table.
    pub fn after_major_fault(&self, book: &Book, thread: u32, p: u64, end: u64, write: bool) {
        let mut streams = self.map.lock();
        if streams.len() >= MAX_STREAMS && !streams.contains_key(&thread) {
            streams.clear();
        }
        let s = streams.entry(thread).or_default();
        let sequential = s.last.is_some_and(|last| p > last && p <= s.next);
        if sequential && s.pf_end > s.pf_first && p >= s.pf_first {
            // The thread walked over the prefetched pages before `p`: those still marked
            // (mapped by prefetch and not evicted since) were served from memory.
            let mut t = book.lock();
            let mut hits = 0;
            for q in s.pf_first..p.min(s.pf_end) {
                if t.take_prefetched(q) {
                    hits += 1;
                }
            }
            drop(t);
            bump(&book.counters.prefetch_hit, hits);
            s.pf_first = s.pf_end;
        }
        s.last = Some(p);
        s.next = end;
        if !sequential || self.prefetch == 0 {
            s.window = 0;
            return;
        }
        s.window = if s.window == 0 {
            (self.read_around + 1).clamp(1, self.prefetch)
        } else {
            s.window.saturating_mul(2).min(self.prefetch)
        };
        let n = s.window.min(self.pages - end);
        if n == 0 {
            return;
        }
        s.pf_first = end;
        s.pf_end = end + n;
        s.next = end + n;
        drop(streams);
        let _ = self.tx.send(Job {
            first: end,
            n,
            dirty: write,
        });
    }
}
