//! The fault handlers: threads that read page faults from the userfaultfd and serve them.
//!
//! A missing fault on a page with swap reads it with its swap-contiguous, non-resident
//! neighbours in one `getpages` and installs them write-protected with one `UFFDIO_COPY`;
//! a missing fault on a page without swap maps the zero page. A write-protect fault marks a
//! clean page dirty and lifts the protection. A page that is being brought in or evicted is
//! waited for, then looked at again. A failed read poisons the page: the toucher gets
//! `SIGBUS`, never zeroes.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use device::PAGE_SIZE;

use crate::shared::{Page, Shared, Table};
use crate::stats::bump;
use crate::uffd::Fault;

const PAGE: u64 = PAGE_SIZE as u64;

/// One handler thread: waits on the userfaultfd and `stop_fd` (readable once the region
/// drops) and serves the faults it reads, one at a time.
///
/// Each handler has its own epoll instance holding the userfaultfd with `EPOLLEXCLUSIVE`:
/// a new fault wakes one idle handler, not all of them (with `poll(2)` every fault woke
/// every handler, and all but one went back to sleep: on a 2-core machine those wake-ups
/// were in the faulting thread's way). Reading one message per wake-up leaves the other
/// faults waiting to the other handlers, so concurrent faults are served concurrently.
pub(crate) fn run(sh: Arc<Shared>, stop_fd: RawFd) {
    let Some(ep) = Epoll::new(sh.uffd.raw(), stop_fd) else {
        return;
    };
    let mut faults = Vec::new();
    let mut buf = Vec::new();
    loop {
        match ep.wait() {
            Wake::Stop => return,
            Wake::Again => continue,
            Wake::Fault => {}
        }
        faults.clear();
        if sh.uffd.read_faults(&mut faults, 1).is_err() {
            return;
        }
        for f in &faults {
            serve(&sh, f, &mut buf);
        }
    }
}

enum Wake {
    Fault,
    Stop,
    /// Interrupted, or woken with nothing to do.
    Again,
}

/// A handler's epoll instance: the userfaultfd (exclusive) and the stop eventfd.
struct Epoll {
    fd: std::os::fd::OwnedFd,
    stop_fd: RawFd,
}

impl Epoll {
    fn new(uffd: RawFd, stop_fd: RawFd) -> Option<Epoll> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1 with a flag by value; returns a new fd or -1.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        for (target, flags) in [
            (uffd, (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32),
            (stop_fd, libc::EPOLLIN as u32),
        ] {
            let mut ev = libc::epoll_event {
                events: flags,
                u64: target as u64,
            };
            // SAFETY: adds a descriptor we hold open to our epoll instance; `ev` is a
            // valid epoll_event that outlives the call.
            let rc = unsafe { libc::epoll_ctl(raw, libc::EPOLL_CTL_ADD, target, &mut ev) };
            if rc < 0 {
                return None;
            }
        }
        Some(Epoll { fd, stop_fd })
    }

    fn wait(&self) -> Wake {
        use std::os::fd::AsRawFd;
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: `evs` has room for the 2 events asked for and outlives the call.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), evs.as_mut_ptr(), 2, -1) };
        if n <= 0 {
            let e = std::io::Error::last_os_error();
            return if n == 0 || e.kind() == std::io::ErrorKind::Interrupted {
                Wake::Again
            } else {
                Wake::Stop
            };
        }
        let ready = &evs[..n as usize];
        if ready.iter().any(|e| e.u64 == self.stop_fd as u64) {
            Wake::Stop
        } else {
            Wake::Fault
        }
    }
}

fn serve(sh: &Shared, f: &Fault, buf: &mut Vec<u8>) {
    let start = Instant::now();
    let Some(p) = sh.page_of(f.address) else {
        return;
    };
    if f.wp {
        wp_fault(sh, p);
    } else {
        missing(sh, p, f.thread, f.write, buf);
    }
    device::latency::record(&mut sh.latency.lock(), start.elapsed());
}

/// Wakes the threads waiting on page `p` so they retry the access (the page was served by
/// someone else, is gone again, or is poisoned).
fn wake(sh: &Shared, p: u64) {
    let _ = sh.uffd.wake(sh.map.page_addr(p), PAGE);
}

/// A store to a write-protected page. The protection is lifted under the table lock: the
/// evictor marks a page `Evicting` under that lock before it protects it, so it can never
/// see a page it thinks is clean become writable behind it.
fn wp_fault(sh: &Shared, p: u64) {
    let mut t = sh.lock();
    loop {
        match t.pages[p as usize] {
            Page::Loading | Page::Evicting => sh.changed.wait(&mut t),
            Page::Resident { .. } => {
                t.pages[p as usize] = Page::Resident {
                    dirty: true,
                    referenced: true,
                };
                bump(&sh.counters.wp_faults, 1);
                if sh
                    .uffd
                    .write_protect(sh.map.page_addr(p), PAGE, false)
                    .is_err()
                {
                    wake(sh, p);
                }
                return;
            }
            Page::Absent { .. } | Page::Poisoned | Page::Inactive { .. } => {
                // Unmapped meanwhile: the toucher retries and takes a missing fault.
                drop(t);
                wake(sh, p);
                return;
            }
        }
    }
}

/// A load or store to an unmapped page.
fn missing(sh: &Shared, p: u64, thread: u32, write: bool, buf: &mut Vec<u8>) {
    // Before the table lock (lock order: streams, then table).
    let around = if crate::prefetch::is_local(sh, thread, p) {
        sh.read_around
    } else {
        0
    };
    let mut t = sh.lock();
    let swap = loop {
        match t.pages[p as usize] {
            Page::Resident { .. } | Page::Poisoned => {
                drop(t);
                wake(sh, p);
                return;
            }
            Page::Loading | Page::Evicting => sh.changed.wait(&mut t),
            Page::Inactive { slot, dirty } => {
                map_back(sh, &mut t, p, slot, dirty);
                return;
            }
            Page::Absent { swap } => {
                if t.resident < sh.limit {
                    break swap;
                }
                sh.need_room.notify_one();
                sh.changed.wait(&mut t);
            }
        }
    };
    if !swap {
        zero_fill(sh, &mut t, p);
        return;
    }
    let active = t.refault(p, sh.limit);
    if active {
        bump(&sh.counters.activations, 1);
    }
    let (first, n) = plan(sh, &t, p, around);
    for q in first..first + n {
        t.pages[q as usize] = Page::Loading;
    }
    t.resident += n;
    if t.resident > sh.watermark() {
        sh.need_room.notify_one();
    }
    drop(t);
    buf.resize((n * PAGE) as usize, 0);
    let got = sh
        .pager
        .getpages(&sh.obj, p, p - first, first + n - 1 - p, buf);
    let mut t = sh.lock();
    let read = Read {
        p,
        first,
        n,
        active,
        write,
    };
    let read_to = settle_read(sh, &mut t, &read, buf, got);
    drop(t);
    sh.changed.notify_all();
    if let Some(end) = read_to {
        crate::prefetch::after_major_fault(sh, thread, p, end, write);
    }
}

/// One fault's read: page `p` in the run `first..first + n` marked `Loading`.
struct Read {
    p: u64,
    first: u64,
    n: u64,
    /// The page refaulted soon after its eviction: it comes in referenced.
    active: bool,
    /// A store faulted it in: it comes in dirty and writable.
    write: bool,
}

/// Maps what `got` read (or poisons the faulting page if the read or the map failed) and
/// gives the rest of the run back to `Absent`. Returns where the read ended, for prefetch.
fn settle_read(
    sh: &Shared,
    t: &mut Table,
    r: &Read,
    buf: &[u8],
    got: Result<std::ops::Range<u64>, pager::PagerError>,
) -> Option<u64> {
    let (p, first, n) = (r.p, r.first, r.n);
    let Ok(range) = got else {
        give_back(t, first, n, p..p + 1);
        poison(sh, t, p);
        return None;
    };
    if install(sh, first, buf, range.clone()).is_err() {
        // The kernel refused to map the bytes (no memory): treat as a failed read.
        give_back(t, first, n, p..p + 1);
        poison(sh, t, p);
        return None;
    }
    // Pages come in unreferenced, as the kernel starts anonymous pages on its inactive
    // list: the hand deactivates them at its first pass, and only a touch on the inactive
    // list keeps them. A page refaulting soon after its eviction (working set) comes in
    // referenced, with extra turns.
    for q in range.clone() {
        t.pages[q as usize] = Page::Resident {
            dirty: false,
            referenced: q == p && r.active,
        };
    }
    if r.write {
        // A store brought it in: dirty now, writable at once, instead of one more trip
        // through a write-protect fault (under the lock, as there).
        dirty_now(sh, t, p..p + 1);
    }
    give_back(t, first, n, range.clone());
    bump(&sh.counters.major_faults, 1);
    bump(&sh.counters.pages_in, range.end - range.start);
    Some(range.end)
}

/// Marks the resident pages `range` dirty and lifts their write protection, under the
/// table lock (so the evictor, which protects only pages it saw dirty, never sees a
/// page it thinks clean become writable). A page that cannot be unprotected stays
/// protected and dirty: its next store takes a write-protect fault, nothing more.
pub(crate) fn dirty_now(sh: &Shared, t: &mut Table, range: std::ops::Range<u64>) {
    for q in range.clone() {
        if let Page::Resident { referenced, .. } = t.pages[q as usize] {
            t.pages[q as usize] = Page::Resident {
                dirty: true,
                referenced,
            };
        }
    }
    let _ = sh.uffd.write_protect(
        sh.map.page_addr(range.start),
        (range.end - range.start) * PAGE,
        false,
    );
}

/// Maps the pages `range` from `buf` (which starts at page `first`) write-protected with
/// one `UFFDIO_COPY`, waking their waiters. The pages must be ours (`Loading`).
pub(crate) fn install(
    sh: &Shared,
    first: u64,
    buf: &[u8],
    range: std::ops::Range<u64>,
) -> std::io::Result<bool> {
    let off = ((range.start - first) * PAGE) as usize;
    let len = (range.end - range.start) * PAGE;
    assert!(off + len as usize <= buf.len());
    // SAFETY: `buf[off..off+len]` holds the pages read (checked above); the destination
    // pages are Loading, so no one else maps them, and lie inside the registered mapping.
    unsafe {
        sh.uffd
            .copy_wp(sh.map.page_addr(range.start), buf[off..].as_ptr(), len)
    }
}

/// The window read for a fault at `p`: `p` and its non-resident neighbours with swap,
/// ahead first, within `around` each side and the room left under the limit. The pager
/// trims it further to what is contiguous on swap.
fn plan(sh: &Shared, t: &Table, p: u64, around: u64) -> (u64, u64) {
    let room = sh.limit - t.resident;
    let absent = |q: u64| t.pages[q as usize] == Page::Absent { swap: true };
    let mut ahead = 0;
    while ahead < around && ahead + 1 < room && p + ahead + 1 < sh.pages && absent(p + ahead + 1) {
        ahead += 1;
    }
    let mut behind = 0;
    while behind < around && behind + ahead + 1 < room && behind < p && absent(p - behind - 1) {
        behind += 1;
    }
    (p - behind, behind + ahead + 1)
}

/// Pages of the window `first..first+n` outside `kept` go back to `Absent` (they still
/// have swap) and stop counting as resident.
pub(crate) fn give_back(t: &mut Table, first: u64, n: u64, kept: std::ops::Range<u64>) {
    for q in first..first + n {
        if !kept.contains(&q) {
            t.pages[q as usize] = Page::Absent { swap: true };
            t.resident -= 1;
        }
    }
}

/// A touch of inactive page `p`: maps its bytes back from slot `slot` (write-protected;
/// a dirty page takes one write-protect fault more on its next store), frees the slot
/// and gives the page its second chance: it was in use. Under the lock: one ioctl.
fn map_back(sh: &Shared, t: &mut Table, p: u64, slot: u32, dirty: bool) {
    let src = t.slot_mut(slot).as_ptr();
    // SAFETY: the slot holds one page and stays ours while the table lock is held; page
    // `p` is unmapped (Inactive) inside the registered mapping.
    let mapped = unsafe { sh.uffd.copy_wp(sh.map.page_addr(p), src, PAGE) };
    if mapped.is_err() {
        // The kernel could not map it (no memory): the toucher retries.
        wake(sh, p);
        return;
    }
    t.pages[p as usize] = Page::Resident {
        dirty,
        referenced: true,
    };
    t.free_slots.push(slot);
    bump(&sh.counters.hint_faults, 1);
}

/// Maps the zero page at `p` (under the lock: one ioctl). A zero-filled page counts as
/// dirty: the kernel copies the zero page on the first store without telling us.
fn zero_fill(sh: &Shared, t: &mut Table, p: u64) {
    if sh.uffd.zeropage(sh.map.page_addr(p), PAGE).is_err() {
        wake(sh, p);
        return;
    }
    t.pages[p as usize] = Page::Resident {
        dirty: true,
        referenced: true,
    };
    t.resident += 1;
    bump(&sh.counters.zero_fills, 1);
    if t.resident > sh.watermark() {
        sh.need_room.notify_one();
    }
}

/// Page `p` (Loading, counted resident) could not be read: it becomes `Poisoned` and its
/// toucher is woken into `SIGBUS` (`UFFDIO_POISON`; before 6.6, `PROT_NONE`: `SIGSEGV`).
fn poison(sh: &Shared, t: &mut Table, p: u64) {
    t.pages[p as usize] = Page::Poisoned;
    t.resident -= 1;
    bump(&sh.counters.read_errors, 1);
    let addr = sh.map.page_addr(p);
    if sh.uffd.caps.poison {
        let _ = sh.uffd.poison(addr, PAGE);
    } else {
        let _ = sh.map.forbid(p);
        wake(sh, p);
    }
}
