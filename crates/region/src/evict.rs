//! The evictor: one thread that keeps resident pages under the limit.
//!
//! # Policy: a clock with a second chance
//! The hand walks the pages in index order. A resident page with its `referenced` bit set
//! (it came in, or was first written, since the hand last passed) loses the bit and is
//! skipped; one without it is a victim. So a page that was just faulted in or written
//! survives one full turn of the hand, where umap's FIFO would drop it by age alone.
//! Reads of resident pages are invisible to userspace (no accessed bits), so the bit is
//! set by faults only. Victims the hand finds one after another are neighbours, which
//! gives `putpages` whole clusters.
//!
//! What the missing accessed bits hide, refaults show: a page faulted back in fewer than
//! `limit` evictions after it went out (its *refault distance*, as the kernel's
//! `mm/workingset.c` measures it) would have stayed in a memory twice as large, so it is
//! part of the working set. Such a page gets `ACTIVE_CHANCES` extra turns of the hand
//! (`Table::refault`, counted in `activations`), so a hot page read often but never
//! written stays resident for several turns instead of one, while a scan's pages (whose
//! refault distance is the whole scan) keep only the first chance.
//!
//! # A round, and why no store is lost
//! 1. Under the table lock: choose victims, mark them `Evicting`.
//! 2. Write-protect them (`UFFDIO_WRITEPROTECT`). From here a store faults, and its handler
//!    waits until the page is `Absent` (the toucher then retries, faults the page back in
//!    and sees its last bytes) or `Resident` again.
//! 3. Copy the dirty ones out (stable now) and write them with async `putpages`; clean
//!    pages with a swap copy, and dirty pages holding only zeroes, need no write.
//! 4. A page whose write is done is dropped (`MADV_DONTNEED`) and becomes `Absent`. A
//!    page whose write failed or found swap full stays `Resident` and dirty (counted;
//!    swap full blocks eviction for a while instead of losing the page).

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use device::PAGE_SIZE;
use pager::{AsyncDone, PageResult, PutMode};

use crate::shared::{Page, Shared, Table};
use crate::stats::bump;

const PAGE: u64 = PAGE_SIZE as u64;

/// How long the evictor backs off when swap is full or nothing could be chosen.
const BACKOFF: Duration = Duration::from_millis(10);

pub(crate) fn run(sh: Arc<Shared>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    loop {
        let victims = {
            let mut t = sh.lock();
            while !sh.stopping() && t.resident <= sh.watermark() {
                sh.need_room.wait_for(&mut t, Duration::from_millis(100));
            }
            if sh.stopping() {
                return;
            }
            let want = (t.resident - sh.watermark() + sh.headroom()).min(sh.evict_batch.max(1));
            let v = choose(&sh, &mut t, want);
            if v.is_empty() {
                sh.changed.wait_for(&mut t, BACKOFF);
                continue;
            }
            v
        };
        let blocked = round(&sh, victims, &tx, &rx);
        sh.changed.notify_all();
        if blocked {
            bump(&sh.counters.evict_blocked, 1);
            std::thread::sleep(BACKOFF);
        }
    }
}

/// The clock sweep: up to `want` victims, in hand order, each marked `Evicting`. Returns
/// `(page, dirty)`. At most two turns of the hand (the first may only clear bits).
fn choose(sh: &Shared, t: &mut Table, want: u64) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    let mut steps = 0;
    while (out.len() as u64) < want && steps < 2 * sh.pages {
        let p = t.hand;
        t.hand = (t.hand + 1) % sh.pages;
        steps += 1;
        if let Page::Resident { dirty, referenced } = t.pages[p as usize] {
            if referenced {
                t.pages[p as usize] = Page::Resident {
                    dirty,
                    referenced: false,
                };
            } else if t.chances[p as usize] > 0 {
                t.chances[p as usize] -= 1;
            } else {
                t.pages[p as usize] = Page::Evicting;
                t.prefetched[p as usize] = false;
                out.push((p, dirty));
            }
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

/// One eviction round over `victims` (all `Evicting`). Returns whether swap was full.
fn round(
    sh: &Shared,
    victims: Vec<(u64, bool)>,
    tx: &Sender<AsyncDone>,
    rx: &Receiver<AsyncDone>,
) -> bool {
    let mut protected = Vec::new();
    let mut failed = Vec::new();
    for (first, len) in runs(victims.iter().map(|v| v.0)) {
        match sh
            .uffd
            .write_protect(sh.map.page_addr(first), len * PAGE, true)
        {
            Ok(()) => protected.extend(first..first + len),
            Err(_) => failed.extend(first..first + len),
        }
    }
    let dirty: std::collections::HashSet<u64> =
        victims.iter().filter(|v| v.1).map(|v| v.0).collect();
    let mut clean = Vec::new();
    let mut zero = Vec::new();
    let mut to_write = Vec::new();
    let mut page = vec![0u8; PAGE_SIZE];
    for &p in &protected {
        if !dirty.contains(&p) {
            clean.push(p);
            continue;
        }
        read_page(sh, p, &mut page);
        if page.iter().all(|&b| b == 0) {
            zero.push(p);
        } else {
            to_write.push(p);
        }
    }
    // Protection failed (should not happen): such a page cannot be evicted safely.
    restore(sh, &failed, &dirty);
    finish(sh, &clean, Page::Absent { swap: true });
    if !zero.is_empty() {
        for &p in &zero {
            sh.pager.freespace(&sh.obj, p, 1);
        }
        finish(sh, &zero, Page::Absent { swap: false });
    }
    bump(&sh.counters.evictions_clean, clean.len() as u64);
    bump(&sh.counters.evictions_zero, zero.len() as u64);

    let mut in_flight = 0;
    for (first, len) in runs(to_write) {
        let mut data = vec![0u8; (len * PAGE) as usize];
        for (k, chunk) in data.chunks_mut(PAGE_SIZE).enumerate() {
            read_page(sh, first + k as u64, chunk);
        }
        let tx = tx.clone();
        let done = Box::new(move |d: AsyncDone| {
            let _ = tx.send(d);
        });
        sh.pager
            .putpages(&sh.obj, first, &data, PutMode::Async(Some(done)));
        in_flight += 1;
    }
    let mut full = false;
    while in_flight > 0 {
        let Ok(d) = rx.recv() else { break };
        in_flight -= 1;
        let mut ok = Vec::new();
        let mut kept = Vec::new();
        for (k, r) in d.results.iter().enumerate() {
            let p = d.start + k as u64;
            match r {
                PageResult::Ok | PageResult::Pend => ok.push(p),
                PageResult::Fail => {
                    full = true;
                    kept.push(p);
                }
                PageResult::Error => {
                    bump(&sh.counters.write_errors, 1);
                    kept.push(p);
                }
            }
        }
        finish(sh, &ok, Page::Absent { swap: true });
        bump(&sh.counters.evictions_dirty, ok.len() as u64);
        restore(sh, &kept, &dirty);
    }
    full
}

/// Copies page `p` out of the region into `out` (one page).
fn read_page(sh: &Shared, p: u64, out: &mut [u8]) {
    // SAFETY: page `p` is mapped (Evicting pages are dropped only after this) and
    // write-protected, so no store changes it while it is copied; the read goes through
    // a raw pointer into our own mapping, never through a reference the program holds.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sh.map.page_addr(p) as *const u8,
            out.as_mut_ptr(),
            PAGE_SIZE,
        )
    };
}

/// Drops `pages` (all `Evicting`) and gives them state `to`.
fn finish(sh: &Shared, pages: &[u64], to: Page) {
    if pages.is_empty() {
        return;
    }
    let mut dropped = Vec::new();
    let mut kept = Vec::new();
    for (first, len) in runs(pages.iter().copied()) {
        match sh.map.drop_pages(first, len) {
            Ok(()) => dropped.extend(first..first + len),
            Err(_) => kept.extend(first..first + len),
        }
    }
    {
        let mut t = sh.lock();
        for &p in &dropped {
            t.pages[p as usize] = to;
            t.resident -= 1;
            t.evicted(p);
        }
    }
    let all_dirty: std::collections::HashSet<u64> = kept.iter().copied().collect();
    restore(sh, &kept, &all_dirty);
    sh.changed.notify_all();
}

/// Puts `pages` (all `Evicting`, still mapped and write-protected) back as resident. A
/// store waiting on one of them is woken by its handler, which lifts the protection.
fn restore(sh: &Shared, pages: &[u64], dirty: &std::collections::HashSet<u64>) {
    if pages.is_empty() {
        return;
    }
    let mut t = sh.lock();
    for &p in pages {
        t.pages[p as usize] = Page::Resident {
            dirty: dirty.contains(&p),
            referenced: true,
        };
    }
    drop(t);
    sh.changed.notify_all();
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
