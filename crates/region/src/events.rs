//! The memory events of a space: what the program does to adopted memory besides loads
//! and stores, as the kernel tells it on the userfaultfd (`UFFD_FEATURE_EVENT_REMOVE`,
//! `_UNMAP`, `_REMAP`). A handler that reads one handles it at once, under the reader lock
//! (`Shared::reader`), so a fault read after it is served after it. The program's thread
//! goes on as soon as the event is read, so the kernel may change the memory before or
//! after the table hears of it: each move here is right either way.
//!
//! - `REMOVE` (`madvise(MADV_DONTNEED, MADV_FREE, MADV_REMOVE)`): the pages read as zeroes
//!   from now. Their swap and inactive slots are freed and they become
//!   `Absent{swap: false}`; a mapped page stays mapped, dirty (the kernel's drop makes a
//!   touch fault, which maps zeroes: `Table::refill_dropped`); a page being read in,
//!   moved out or written is marked, and its owner settles it the same way, so it never
//!   comes back with its old bytes. The evictor's own drops raise `REMOVE` too: it
//!   announces them first (`Table::expect_removes`) and they are only counted off here.
//! - `UNMAP` (`munmap`, a mapping over it, an `mremap` that shrinks): as `REMOVE`, and the
//!   pages leave the space: their segment shrinks, splits or goes, and their indices are
//!   reused (those of owned pages once their owner settles them).
//! - `REMAP` (`mremap` that moves): the segments move with it; swap and page states stay
//!   (indices do not change). A mapping that grew keeps its registration on the new part,
//!   which the next [`crate::Space::adopt`] of it takes in.
//!
//! Every event wakes the threads waiting on a fault in the old range: they retry and find
//! what is there now.

use std::sync::atomic::Ordering;

use device::PAGE_SIZE;

use crate::segments::Segment;
use crate::shared::Shared;
use crate::state::Table;
use crate::stats::bump;
use crate::uffd::Message;

const PAGE: u64 = PAGE_SIZE as u64;

/// Handles one event (a fault is not one: the caller serves it).
pub(crate) fn handle(sh: &Shared, m: &Message) {
    match *m {
        Message::Fault(_) => {}
        Message::Remove { start, end } => removed(sh, start, end),
        Message::Unmap { start, end } => {
            let n = unmapped(sh, &mut sh.lock(), start, end);
            bump(&sh.book.counters.unmapped_pages, n);
            let _ = sh.mem.uffd.wake(start, end.saturating_sub(start));
            sh.notify();
        }
        Message::Remap { from, to, len } => remapped(sh, from, to, len),
    }
}

fn removed(sh: &Shared, start: u64, end: u64) {
    let mut t = sh.lock();
    let runs = sh.mem.segs.read().indices_in(start, end);
    let mut n = 0;
    for (first, len) in runs {
        for q in first..first + len {
            if t.consume_expected(q) {
                continue;
            }
            if t.discard(&sh.mem, q, false) {
                n += 1;
            }
        }
    }
    drop(t);
    bump(&sh.book.counters.removed_pages, n);
    sh.notify();
}

/// Takes `start..end` out of the space. Returns the pages that left.
fn unmapped(sh: &Shared, t: &mut Table, start: u64, end: u64) -> u64 {
    let cut: Vec<Segment> = sh.mem.segs.write().cut(start, end);
    let mut n = 0;
    for seg in cut {
        sh.book.pages.fetch_sub(seg.pages, Ordering::Relaxed);
        for q in seg.indices() {
            t.discard(&sh.mem, q, true);
            n += 1;
        }
    }
    n
}

fn remapped(sh: &Shared, from: u64, to: u64, len: u64) {
    let mut t = sh.lock();
    // Whatever was at the destination was unmapped first (its own event came before);
    // anything of the space's still listed there is gone all the same.
    let lost = unmapped(sh, &mut t, to, to + len);
    bump(&sh.book.counters.unmapped_pages, lost);
    {
        let mut segs = sh.mem.segs.write();
        for seg in segs.cut(from, from + len) {
            segs.insert(Segment {
                addr: seg.addr - from + to,
                ..seg
            });
        }
    }
    drop(t);
    bump(&sh.book.counters.remaps, 1);
    let _ = sh.mem.uffd.wake(from, len);
    sh.notify();
}

/// A fault at `addr`, which is in no segment. Memory the space lets go of is no longer
/// registered, so the address is either one the program unmapped or moved since (the
/// toucher, woken, finds what is there now) or registered memory not adopted yet: the
/// grown part of a mapping `mremap` grew in place, which inherits the registration until
/// the next adopt. The toucher is woken to retry; the same address faulting
/// [`STRAY_RETRIES`] times in a row is taken for the latter and gets the zero page (fresh
/// memory reads as zeroes; the adopt finds it present).
pub(crate) fn stray(sh: &Shared, addr: u64) {
    let page = addr & !(PAGE - 1);
    let zero = {
        let mut s = sh.stray.lock();
        if s.0 == page {
            s.1 += 1;
        } else {
            *s = (page, 1);
        }
        s.1 >= STRAY_RETRIES
    };
    if zero {
        let _ = sh.mem.uffd.zeropage(page, PAGE);
        *sh.stray.lock() = (0, 0);
    }
    let _ = sh.mem.uffd.wake(page, PAGE);
}

/// Faults in a row at one address in no segment before it is taken for registered memory
/// no one adopted (see [`stray`]).
pub(crate) const STRAY_RETRIES: u32 = 64;
