//! The evictor: one thread that keeps resident pages under the limit.
//!
//! # Policy: a clock, an inactive list, and refault distances
//! Reads of mapped pages are invisible to userspace (no accessed bits). The region makes
//! them visible the way BSD's page daemon did on machines without reference bits: it
//! unmaps a page before it evicts it, and watches whether it is touched meanwhile.
//!
//! - **The clock.** The hand walks the mapped pages in index order. A page with its
//!   `referenced` bit set (it came in, was first written, or was touched on the inactive
//!   list since the hand last passed) loses the bit and is skipped; one with extra turns
//!   left (below) spends one; any other page is *deactivated*.
//! - **The inactive list.** A deactivated page is write-protected, copied into a slot of
//!   the inactive cache (half the limit) and unmapped; its bytes stay in memory
//!   and it still counts as resident. A touch maps it back from the slot with no I/O (a
//!   *hint fault*, `hint_faults`) and sets its `referenced` bit: a page read often
//!   survives. Pages leave the list oldest first: a clean one with a valid swap copy is
//!   dropped, a dirty one is written with async `putpages`, in clusters of neighbours.
//! - **Refault distance.** A page faulted back from swap fewer than `limit` evictions
//!   after it went out (its refault distance, as the kernel's `mm/workingset.c`
//!   measures it) would have stayed in a memory twice as large: it is working set, and
//!   gets `ACTIVE_CHANCES` extra turns of the hand (`Table::refault`, `activations`).
//!   A scan's pages (whose refault distance is the whole scan) keep only the first chance.
//!   A page touched on the inactive list gets the same extra turns (the kernel activates
//!   a page accessed on its inactive list): it is hot, and each pass of the hand that took
//!   it off again would cost it one more hint fault.
//!
//! # A round, and why no store is lost
//! 1. Under the table lock: the hand chooses pages to deactivate and marks them
//!    `Deactivating` (`state.rs` has every move and who may make it).
//! 2. Write-protect the dirty ones (`UFFDIO_WRITEPROTECT`; clean pages are mapped
//!    write-protected already). From here a store faults, and its handler
//!    waits until the page is `Inactive` (the toucher then retries, faults, and the page is
//!    mapped back from its slot with its last bytes) or `Resident` again.
//! 3. Copy each into its slot (stable now; outside the table lock, as the page and the
//!    slot are the evictor's), drop it (`MADV_DONTNEED`): `Inactive`. A dirty page
//!    holding only zeroes needs no slot: it becomes `Absent` without swap.
//! 4. The oldest inactive pages leave: clean ones become `Absent` at once; dirty ones are
//!    marked `WritingOut` (a fault on one waits) and written from their slots. A page whose
//!    write is done becomes `Absent`; one whose write failed or found swap full goes back
//!    on the list, dirty (counted; swap full blocks eviction for a while instead of
//!    losing the page).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use device::PAGE_SIZE;
use pager::{AsyncDone, PageResult};

use crate::shared::Shared;
use crate::state::{Page, Table};
use crate::stats::bump;

const PAGE: u64 = PAGE_SIZE as u64;

/// How long the evictor backs off when swap is full or nothing could be chosen.
const BACKOFF: Duration = Duration::from_millis(10);
/// How long the evictor waits for the handlers to take the `REMOVE` events of its own
/// drop (they read them within microseconds; a drop that failed part way raised fewer).
const OWN_EVENTS_WAIT: Duration = Duration::from_millis(100);

pub(crate) fn run(sh: Arc<Shared>) {
    // SAFETY: gettid(2) has no preconditions.
    let tid = unsafe { libc::gettid() };
    sh.evictor_tid
        .store(tid as u32, std::sync::atomic::Ordering::Release);
    let (tx, rx) = crossbeam_channel::unbounded();
    loop {
        let (want, chosen) = {
            let mut t = sh.lock();
            loop {
                if sh.paused() && !sh.stopping() {
                    // A fork is being prepared: stand still until it is done, and say so.
                    t.evictor_parked = true;
                    sh.book.changed.notify_all();
                    while sh.paused() && !sh.stopping() {
                        sh.book
                            .need_room
                            .wait_for(&mut t, Duration::from_millis(100));
                    }
                    t.evictor_parked = false;
                    continue;
                }
                if sh.stopping() || t.is_failed() || t.resident > sh.watermark() {
                    break;
                }
                sh.book
                    .need_room
                    .wait_for(&mut t, Duration::from_millis(100));
            }
            if sh.stopping() || t.is_failed() {
                return;
            }
            let want = (t.resident - sh.watermark() + sh.headroom()).min(sh.evict_batch);
            // Refill the inactive list, as far as it has free slots.
            let room = t.free_slots().min(sh.evict_batch);
            (want, choose(&mut t, room))
        };
        let refilled = !chosen.is_empty();
        deactivate(&sh, chosen);
        // Pages must stay on the list long enough to be touched: only what is beyond half
        // of it leaves, unless the hand found nothing more to put on it.
        let leave = if refilled {
            let listed = sh.lock().slots_used();
            want.min(listed.saturating_sub(sh.inactive_slots / 2))
        } else {
            want
        };
        let (left, victims) = oldest_inactive(&sh, leave);
        if left == 0 {
            if !refilled {
                // Everything is referenced or on its way: let faults and the hand move on.
                let mut t = sh.lock();
                sh.book.changed.wait_for(&mut t, BACKOFF);
            }
            continue;
        }
        let blocked = write_out(&sh, victims, &tx, &rx);
        sh.notify();
        if blocked {
            bump(&sh.book.counters.evict_blocked, 1);
            std::thread::sleep(BACKOFF);
        }
    }
}

/// The clock sweep: up to `want` mapped pages to deactivate, in hand order, each moved to
/// `Deactivating`. Returns `(page, dirty)`. At most two turns of the hand.
fn choose(t: &mut Table, want: u64) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    let mut steps = 0;
    let len = t.len();
    while (out.len() as u64) < want && steps < 2 * len {
        let p = t.hand % len;
        t.hand = (p + 1) % len;
        steps += 1;
        let Page::Resident { referenced, .. } = t.page(p) else {
            continue;
        };
        if referenced {
            t.unreference(p);
        } else if t.chances[p as usize] > 0 {
            t.chances[p as usize] -= 1;
        } else if let Some(dirty) = t.begin_deactivate(p) {
            out.push((p, dirty));
        }
    }
    out
}

/// Splits sorted page numbers into runs of consecutive pages `(first, len)`.
fn runs(pages: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for p in pages {
        match out.last_mut() {
            Some((first, len)) if *first + *len == p => *len += 1,
            _ => out.push((p, 1)),
        }
    }
    out
}

/// Moves `chosen` (all `Deactivating`, mapped) to the inactive list: write-protect, copy
/// into a slot, unmap. A page that cannot be protected, given a slot or unmapped goes back
/// to `Resident`.
fn deactivate(sh: &Shared, chosen: Vec<(u64, bool)>) {
    if chosen.is_empty() {
        return;
    }
    if sh.mem.events {
        // From here the evictor may wait on a read of the descriptor: a fault of its own
        // (a page the program dropped, read to copy it out) and the `REMOVE` events of its
        // drop. Handlers waiting on the table read messages while this is up.
        let _t = sh.lock();
        sh.dropping.fetch_add(1, Ordering::AcqRel);
        sh.book.changed.notify_all();
    }
    let (protected, failed) = protect(sh, &chosen);
    if !failed.is_empty() {
        let mut t = sh.lock();
        for p in failed {
            t.keep(&sh.mem, p, None);
        }
    }
    let dirty: std::collections::HashSet<u64> =
        chosen.iter().filter(|v| v.1).map(|v| v.0).collect();
    let copied = copy_into_slots(sh, &protected, &dirty);
    let mut all: Vec<u64> = copied
        .slotted
        .iter()
        .chain(copied.zero.iter())
        .map(|s| s.0)
        .collect();
    all.sort_unstable();
    // One call for every run (one TLB flush where the kernel can); exactly the pages it
    // dropped, run by run from the first, are unmapped. A run is cut where its segment
    // ends: the next index of another segment is not the next address.
    let pieces: Vec<(u64, u64, u64)> = runs(all.iter().copied())
        .into_iter()
        .flat_map(|(first, len)| sh.mem.split(first, len))
        .collect();
    let by_addr: Vec<(u64, u64)> = pieces.iter().map(|&(_, n, a)| (a, n * PAGE)).collect();
    if sh.mem.events {
        // Each page dropped raises a `REMOVE` event, and the drop waits until a handler
        // reads it: they are told apart from the program's by being expected.
        sh.lock().expect_removes(&all);
    }
    let mut left = sh.mem.calls.drop_runs(&by_addr);
    let mut unmapped = std::collections::HashSet::new();
    for (first, len, _) in pieces {
        let n = len.min(left);
        unmapped.extend(first..first + n);
        left -= n;
    }
    let mut t = sh.lock();
    if sh.mem.events {
        // The drop returned once its events were read; settle only after they were
        // handled too, or a late one would find the page settled and take it for the
        // program's. A drop that failed part way raised fewer: bounded.
        let dropped: Vec<u64> = all
            .iter()
            .copied()
            .filter(|p| unmapped.contains(p))
            .collect();
        let until = std::time::Instant::now() + OWN_EVENTS_WAIT;
        while t.expecting(&dropped) && std::time::Instant::now() < until && !sh.stopping() {
            sh.book.changed.wait_for(&mut t, Duration::from_millis(1));
        }
        // A page whose event never came was not dropped where the space has it: the
        // program moved (or unmapped) its memory between the address lookup and the
        // drop, which hit the old place. It is still mapped where it went: kept.
        for &p in &dropped {
            if t.expecting(&[p]) {
                unmapped.remove(&p);
            }
        }
        t.forget_expected(&all);
        sh.dropping.fetch_sub(1, Ordering::AcqRel);
    }
    for &(p, slot) in &copied.slotted {
        if unmapped.contains(&p) {
            t.deactivated(&sh.mem, p, slot);
            bump(&sh.book.counters.deactivations, 1);
        } else {
            t.keep(&sh.mem, p, Some(slot));
        }
    }
    for &(p, slot) in &copied.zero {
        if unmapped.contains(&p) {
            sh.store.freespace(p, 1);
            t.dropped_zero(&sh.mem, p, slot);
            bump(&sh.book.counters.evictions_zero, 1);
        } else {
            t.keep(&sh.mem, p, Some(slot));
        }
    }
    drop(t);
    sh.notify();
}

/// Write-protects the dirty pages of `chosen`, in runs. A clean page is mapped
/// write-protected already (a store to it would have made it dirty through a write-protect
/// fault, which now waits on `Deactivating`): only the dirty ones need the ioctl, which
/// saves one per page when victims are scattered. Returns (protected, sorted; failed).
fn protect(sh: &Shared, chosen: &[(u64, bool)]) -> (Vec<u64>, Vec<u64>) {
    let mut protected: Vec<u64> = chosen.iter().filter(|v| !v.1).map(|v| v.0).collect();
    let mut failed = Vec::new();
    for (first, len) in runs(chosen.iter().filter(|v| v.1).map(|v| v.0)) {
        let pieces = sh.mem.split(first, len);
        if pieces.iter().map(|piece| piece.1).sum::<u64>() < len {
            // Part of it left the space meanwhile: leave the run alone this time.
            failed.extend(first..first + len);
            continue;
        }
        for (first, len, addr) in pieces {
            match sh.mem.uffd.write_protect(addr, len * PAGE, true) {
                Ok(()) => protected.extend(first..first + len),
                Err(_) => failed.extend(first..first + len),
            }
        }
    }
    protected.sort_unstable();
    (protected, failed)
}

/// Where [`copy_into_slots`] put each page.
struct Copied {
    /// Copied into an inactive slot.
    slotted: Vec<(u64, u32)>,
    /// Dirty and all zeroes: its slot is given back once it is unmapped, and its swap is
    /// freed instead.
    zero: Vec<(u64, u32)>,
}

/// Copies each protected page into a free slot. The slots are taken under the table lock
/// and filled outside it: the pages are stable (write-protected, `Deactivating`) and the
/// slots the evictor's. A page for which no slot is free goes back to `Resident`.
fn copy_into_slots(
    sh: &Shared,
    protected: &[u64],
    dirty: &std::collections::HashSet<u64>,
) -> Copied {
    let mut taken = Vec::with_capacity(protected.len());
    {
        let mut t = sh.lock();
        for &p in protected {
            match t.take_slot() {
                Some(slot) => taken.push((p, slot)),
                None => t.keep(&sh.mem, p, None),
            }
        }
    }
    let mut out = Copied {
        slotted: Vec::with_capacity(taken.len()),
        zero: Vec::new(),
    };
    let mut unread = Vec::new();
    for (p, slot) in taken {
        // The slot is the evictor's (taken above); page `p` is mapped and write-protected
        // (`Deactivating`, the evictor's), so no store changes it while it is copied.
        let Some(zeroes) = sh.mem.fill_slot(slot, p) else {
            unread.push((p, slot));
            continue;
        };
        if dirty.contains(&p) && zeroes {
            out.zero.push((p, slot));
        } else {
            out.slotted.push((p, slot));
        }
    }
    if !unread.is_empty() {
        let mut t = sh.lock();
        for (p, slot) in unread {
            t.keep(&sh.mem, p, Some(slot));
        }
    }
    out
}

/// Up to `want` of the oldest inactive pages leave the list: clean ones are dropped here
/// (`Absent`, their swap copy valid); dirty ones become `WritingOut` and are returned with
/// their slots, to be written. Also returns how many left.
fn oldest_inactive(sh: &Shared, want: u64) -> (u64, Vec<(u64, u32)>) {
    let mut t = sh.lock();
    let mut out = Vec::new();
    let mut taken = 0;
    while taken < want {
        let Some((p, slot)) = t.pop_inactive() else {
            break;
        };
        taken += 1;
        match slot {
            Some(slot) => out.push((p, slot)),
            None => bump(&sh.book.counters.evictions_clean, 1),
        }
    }
    drop(t);
    if taken > 0 {
        sh.notify();
    }
    (taken, out)
}

/// Writes `victims` (`WritingOut`, unmapped, their bytes in their slots) with async
/// `putpages`, a cluster per run of neighbours. Returns whether swap was full.
fn write_out(
    sh: &Shared,
    mut victims: Vec<(u64, u32)>,
    tx: &Sender<AsyncDone>,
    rx: &Receiver<AsyncDone>,
) -> bool {
    victims.sort_unstable();
    let slot_of: std::collections::HashMap<u64, u32> = victims.iter().copied().collect();
    let mut in_flight = 0;
    for (first, len) in runs(victims.iter().map(|v| v.0)) {
        let mut data = vec![0u8; (len * PAGE) as usize];
        for (k, chunk) in data.chunks_mut(PAGE_SIZE).enumerate() {
            if let Some(&slot) = slot_of.get(&(first + k as u64)) {
                // SAFETY: the slot belongs to a `WritingOut` page, which only the evictor
                // (this thread) moves: no one writes it meanwhile.
                chunk.copy_from_slice(unsafe { sh.mem.cache.bytes(slot) });
            }
        }
        let tx = tx.clone();
        let done = Box::new(move |d: AsyncDone| {
            let _ = tx.send(d);
        });
        sh.store.putpages_async(first, data, done);
        in_flight += 1;
    }
    let mut full = false;
    while in_flight > 0 {
        let Ok(d) = rx.recv() else { break };
        in_flight -= 1;
        let mut t = sh.lock();
        for (k, r) in d.results.iter().enumerate() {
            let p = d.start + k as u64;
            if !slot_of.contains_key(&p) {
                continue;
            }
            match r {
                PageResult::Ok | PageResult::Pend => {
                    t.written(&sh.mem, p, true);
                    bump(&sh.book.counters.evictions_dirty, 1);
                }
                PageResult::Fail | PageResult::Error => {
                    if matches!(r, PageResult::Fail) {
                        full = true;
                    } else {
                        bump(&sh.book.counters.write_errors, 1);
                    }
                    t.written(&sh.mem, p, false);
                }
            }
        }
        drop(t);
        sh.notify();
    }
    full
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_split_at_gaps_and_wraps() {
        assert_eq!(runs([3, 4, 5, 9, 10, 0, 1]), vec![(3, 3), (9, 2), (0, 2)]);
        assert_eq!(runs([]), Vec::<(u64, u64)>::new());
    }
}
