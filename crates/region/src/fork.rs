//! `fork(2)` of a program whose memory a space pages. The space's descriptor has no
//! `UFFD_FEATURE_EVENT_FORK`, so the kernel gives the child the parent's memory with the
//! registrations dropped: a page that is not mapped at that moment (on swap, on the
//! inactive list, being written) would read as zeroes in the child. So before the fork
//! ([`crate::Space::prepare_fork`], from the preload's `pthread_atfork` prepare handler)
//! the evictor and prefetch stop, and every page with data that is not mapped is brought
//! back in: read from the store and copied in, or mapped back from the inactive cache.
//! Pages that never had data stay holes (zeroes are right for them). The resident limit is
//! exceeded meanwhile; eviction starts again when the [`ForkGuard`] drops (the parent,
//! after `fork` returned). In the child, [`crate::Space::forget_in_child`] lets go of the
//! space without touching what the parent owns.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use device::PAGE_SIZE;

use crate::error::ForkError;
use crate::segments::Segment;
use crate::shared::Shared;
use crate::state::Page;
use crate::stats::bump;

const PAGE: u64 = PAGE_SIZE as u64;
/// The most pages one read asks for.
const RUN: u64 = 64;
/// Failed copies of one page before it is given up as unreadable.
const TRIES: u32 = 4;

/// Keeps the evictor and prefetch of a space still while it lives: the parent side of a
/// fork drops it once `fork` returned. See [`crate::Space::prepare_fork`].
#[derive(Debug)]
#[must_use = "dropping the guard restarts eviction: hold it across fork"]
pub struct ForkGuard {
    sh: Arc<Shared>,
    unreadable: Vec<u64>,
}

impl ForkGuard {
    /// `Ok` if every page with data is in memory; else the pages that could not be
    /// brought in (a read or its copy failed), which a child forked now would not see.
    pub fn check(&self) -> Result<(), ForkError> {
        if self.unreadable.is_empty() {
            Ok(())
        } else {
            Err(ForkError {
                addrs: self.unreadable.clone(),
            })
        }
    }
}

impl Drop for ForkGuard {
    fn drop(&mut self) {
        self.sh.paused.fetch_sub(1, Ordering::AcqRel);
        let _t = self.sh.lock();
        self.sh.book.need_room.notify_all();
        self.sh.book.changed.notify_all();
    }
}

/// Stops eviction and brings every page with data into memory: see the module doc.
pub(crate) fn prepare(sh: &Arc<Shared>) -> ForkGuard {
    sh.paused.fetch_add(1, Ordering::AcqRel);
    let mut unreadable = HashSet::new();
    let mut tries: HashMap<u64, u32> = HashMap::new();
    let mut buf = device::PageBuf::new(RUN as usize);
    {
        let mut t = sh.lock();
        sh.book.need_room.notify_all();
        while !t.evictor_parked && !t.is_failed() && !sh.stopping() {
            sh.book.changed.wait_for(&mut t, Duration::from_millis(10));
        }
    }
    loop {
        let segs: Vec<Segment> = sh.mem.segs.read().iter().copied().collect();
        let mut t = sh.lock();
        if t.is_failed() || sh.stopping() {
            break;
        }
        let mut busy = false;
        let mut run = None;
        'scan: for seg in &segs {
            let mut q = seg.index;
            while q < seg.index + seg.pages {
                match t.page(q) {
                    Page::Inactive { .. } if !unreadable.contains(&q) => {
                        if t.map_back(&sh.mem, q) {
                            bump(&sh.book.counters.hint_faults, 1);
                        } else {
                            give_up_after(&mut tries, &mut unreadable, q);
                            busy = true;
                        }
                    }
                    Page::Absent { swap: true } if !unreadable.contains(&q) => {
                        let mut n = 1;
                        while n < RUN
                            && q + n < seg.index + seg.pages
                            && t.page(q + n) == (Page::Absent { swap: true })
                            && !unreadable.contains(&(q + n))
                        {
                            n += 1;
                        }
                        run = Some((q, n));
                        break 'scan;
                    }
                    Page::Loading | Page::Deactivating { .. } | Page::WritingOut { .. } => {
                        busy = true;
                    }
                    _ => {}
                }
                q += 1;
            }
        }
        let Some((first, n)) = run else {
            if !busy {
                break;
            }
            // A handler's read or a write finishing: wait for it to settle.
            sh.book.changed.wait_for(&mut t, Duration::from_millis(10));
            continue;
        };
        t.begin_load(first, n);
        drop(t);
        let buf = &mut buf.as_mut_slice()[..(n * PAGE) as usize];
        let got = sh.store.getpages(first, 0, n - 1, buf);
        let out = got
            .as_ref()
            .ok()
            .map(|range| sh.mem.install(first, buf, range.clone()));
        let mut t = sh.lock();
        match (&got, &out) {
            (Ok(range), Some(out)) => {
                let mapped = t.loaded(&sh.mem, first, n, range.start, Some(out), None);
                bump(&sh.book.counters.pages_in, mapped.end - mapped.start);
                if mapped.is_empty() {
                    give_up_after(&mut tries, &mut unreadable, first);
                }
            }
            _ => {
                t.loaded(&sh.mem, first, n, first, None, None);
                bump(&sh.book.counters.read_errors, 1);
                unreadable.insert(first);
            }
        }
        drop(t);
        sh.notify();
    }
    let segs = sh.mem.segs.read();
    let mut addrs: Vec<u64> = unreadable.iter().filter_map(|&q| segs.addr(q)).collect();
    addrs.sort_unstable();
    ForkGuard {
        sh: Arc::clone(sh),
        unreadable: addrs,
    }
}

/// A page whose copy failed again: after [`TRIES`] it is unreadable.
fn give_up_after(tries: &mut HashMap<u64, u32>, unreadable: &mut HashSet<u64>, q: u64) {
    let n = tries.entry(q).or_insert(0);
    *n += 1;
    if *n >= TRIES {
        unreadable.insert(q);
    }
}
