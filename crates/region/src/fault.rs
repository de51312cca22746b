//! The fault handlers: threads that read page faults from the userfaultfd and serve them
//! by asking the page table (`state.rs`) to move the page.
//!
//! A missing fault on a page with swap reads it with its swap-contiguous, non-resident
//! neighbours in one `getpages` and installs them write-protected with one `UFFDIO_COPY`;
//! a missing fault on a page without swap maps the zero page; one on an inactive page maps
//! it back from memory. A write-protect fault marks a clean page dirty and lifts the
//! protection. A page that is being brought in or evicted is waited for, then looked at
//! again. A failed read poisons the page: the toucher gets `SIGBUS`, never zeroes.
//!
//! # Nothing waits for ever
//! - A kernel call that fails leaves the page as it was; the toucher is woken, faults
//!   again and is served afresh, and after [`crate::state::MAX_FAULT_RETRIES`] failures
//!   in a row gets `SIGBUS` (counted `fault_errors`).
//! - A fault that finds no room under the limit waits for the evictor, at most
//!   `RegionConfig::room_wait`; then it gets `SIGBUS` (`room_timeouts`). A wait of over a
//!   second is logged once per region: swap is full or failing.
//! - A handler whose descriptor fails (a read or `epoll_wait` error) retries with
//!   back-off, then stops, logged. When the last handler stops, the region is dead
//!   ([`crate::state::Table::fail`]): every page not in memory is poisoned, so every
//!   waiting and later touch of one ends in `SIGBUS`.
//! - Every wait checks the stop flag: dropping the region never waits on a fault.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use device::PAGE_SIZE;
use parking_lot::MutexGuard;

use crate::events;
use crate::shared::Shared;
use crate::state::{Page, Retry, Table};
use crate::stats::bump;
use crate::uffd::{Fault, Message};

const PAGE: u64 = PAGE_SIZE as u64;

/// Descriptor errors in a row a handler rides out (with back-off, about 1.5 s in all)
/// before it stops.
const MAX_HANDLER_ERRORS: u32 = 20;
/// Longest sleep of a wait on the page table: waits re-check the stop flag this often.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// The wait slice while the evictor's drop waits for its events to be read.
const DRAIN_SLICE: Duration = Duration::from_millis(1);
/// A wait for room this long is logged (once per region).
const ROOM_WAIT_LOGGED: Duration = Duration::from_secs(1);

/// One handler thread: waits on its epoll (the userfaultfd and the stop eventfd) and
/// serves the faults it reads, one at a time.
///
/// Each handler has its own epoll instance holding the userfaultfd with `EPOLLEXCLUSIVE`:
/// a new fault wakes one idle handler, not all of them (with `poll(2)` every fault woke
/// every handler, and all but one went back to sleep: on a 2-core machine those wake-ups
/// were in the faulting thread's way). Reading one message per wake-up leaves the other
/// faults waiting to the other handlers, so concurrent faults are served concurrently.
/// The wait times out once a second and reads anyway, so a fault queued while a sibling
/// handler stopped is never left unread.
pub(crate) fn run(sh: Arc<Shared>, ep: Epoll, name: String) {
    let mut msgs = Vec::new();
    // Page-aligned, so the pager reads into it with no copy of its own.
    let mut buf = device::PageBuf::new((2 * sh.streams.read_around + 1) as usize);
    let mut errors = 0;
    loop {
        // Faults a sibling read while it waited on the table come first.
        let waiting = sh.backlog.lock().pop_front();
        if let Some(f) = waiting {
            serve(&sh, &f, &mut buf);
            continue;
        }
        // After an error the back-off was the wait: read again at once. (Spinning for the
        // next fault before sleeping was tried: on 2 cores it took the CPU the faulting
        // threads, the prefetch thread and the pager need; mem-rand-1t lost a fifth.)
        let woke = if errors > 0 {
            Ok(Wake::Fault)
        } else {
            ep.wait()
        };
        match woke {
            Ok(Wake::Stop) => return,
            Ok(Wake::Fault) => {}
            Err(e) => {
                if ride_out(&sh, &name, "epoll_wait", &e, &mut errors) {
                    continue;
                }
                return stopped(&sh, &name);
            }
        }
        msgs.clear();
        if let Err(e) = read(&sh, &mut msgs) {
            if ride_out(&sh, &name, "reading faults", &e, &mut errors) {
                continue;
            }
            return stopped(&sh, &name);
        }
        errors = 0;
        for m in &msgs {
            if let Message::Fault(f) = m {
                serve(&sh, f, &mut buf);
            }
        }
    }
}

/// Reads one message; an event is handled at once, under the reader lock (see
/// `events.rs`), before any fault read after it can be served.
fn read(sh: &Shared, msgs: &mut Vec<Message>) -> std::io::Result<()> {
    if !sh.mem.events {
        return sh.mem.uffd.read_messages(msgs, 1);
    }
    let _reader = sh.reader.lock();
    sh.mem.uffd.read_messages(msgs, 1)?;
    for m in msgs.iter() {
        events::handle(sh, m);
    }
    Ok(())
}

/// While the evictor moves pages out, a handler waiting on the table reads the messages
/// waiting now and then: the evictor may wait on a read (its drop's events, a fault of its
/// own), and every handler may be waiting on the evictor.
fn drain(sh: &Shared) {
    if let Some(reader) = sh.reader.try_lock() {
        drain_locked(sh, reader);
    }
}

/// Reads every message waiting now (at most a few hundred): events are handled, faults
/// go to the backlog, and the evictor's own faults (a page the program dropped while it
/// was moved out) are served once the reading is done. Nothing is woken while it reads:
/// the kernel hands out faults before events, so a toucher woken to retry would be read
/// again and again ahead of an event that fails its every call with `EAGAIN` until read.
fn drain_all(sh: &Shared) -> usize {
    drain_locked(sh, sh.reader.lock())
}

fn drain_locked(sh: &Shared, reader: parking_lot::MutexGuard<'_, ()>) -> usize {
    let mut msgs = Vec::new();
    let mut events = 0;
    let mut evictor = Vec::new();
    let mut backlogged = false;
    for _ in 0..512 {
        msgs.clear();
        if sh.mem.uffd.read_messages(&mut msgs, 1).is_err() || msgs.is_empty() {
            break;
        }
        for m in &msgs {
            match m {
                Message::Fault(f) if f.thread != 0 && f.thread == sh.evictor_tid() => {
                    evictor.push(*f);
                }
                Message::Fault(f) => {
                    sh.backlog.lock().push_back(*f);
                    backlogged = true;
                }
                _ => {
                    events += 1;
                    events::handle(sh, m);
                }
            }
        }
    }
    drop(reader);
    for f in evictor {
        if let Some(p) = sh.mem.page_of(f.address) {
            sh.lock().zero_owned(&sh.mem, p, &sh.zeros[..PAGE as usize]);
        }
        let _ = sh.mem.uffd.wake(f.address & !(PAGE - 1), PAGE);
    }
    if backlogged {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from `one` to our eventfd: an idle handler wakes for it.
        unsafe { libc::write(sh.backlog_fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
    events
}

/// A descriptor error: logged the first time, counted, slept off. Returns whether the
/// handler goes on.
fn ride_out(sh: &Shared, name: &str, what: &str, e: &std::io::Error, errors: &mut u32) -> bool {
    if sh.stopping() {
        return false;
    }
    *errors += 1;
    bump(&sh.book.counters.handler_errors, 1);
    if *errors == 1 {
        eprintln!("region: {name}: {what} failed: {e}; retrying");
    }
    if *errors >= MAX_HANDLER_ERRORS {
        eprintln!("region: {name}: {what} failed {errors} times in a row ({e}): stopping");
        return false;
    }
    std::thread::sleep(Duration::from_millis(1 << (*errors).min(7)));
    true
}

/// A handler stops for good. The last one fails the region: nothing would serve its
/// faults any more.
fn stopped(sh: &Shared, name: &str) {
    if sh.stopping() {
        return;
    }
    if sh.handlers_alive.fetch_sub(1, Ordering::AcqRel) > 1 {
        return;
    }
    eprintln!(
        "region: {name} was the last fault handler: the region is dead; every touch of a \
         page not in memory now gets SIGBUS"
    );
    sh.lock().fail(&sh.mem);
    sh.notify();
    sh.book.need_room.notify_all();
}

pub(crate) enum Wake {
    Fault,
    Stop,
}

/// A handler's epoll instance: the userfaultfd (exclusive) and the stop eventfd. Made by
/// [`crate::Region::new`], so a region that cannot have its handlers is never returned.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
    stop_fd: RawFd,
    /// Written when a fault goes to the backlog (`Shared::backlog_fd`).
    backlog_fd: RawFd,
}

impl Epoll {
    pub fn new(uffd: RawFd, stop_fd: RawFd, backlog_fd: RawFd) -> std::io::Result<Epoll> {
        // SAFETY: epoll_create1 with a flag by value; returns a new fd or -1.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for (target, flags) in [
            (uffd, (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32),
            (stop_fd, libc::EPOLLIN as u32),
            (backlog_fd, (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32),
        ] {
            let mut ev = libc::epoll_event {
                events: flags,
                u64: target as u64,
            };
            // SAFETY: adds a descriptor we hold open to our epoll instance; `ev` is a
            // valid epoll_event that outlives the call.
            let rc = unsafe { libc::epoll_ctl(raw, libc::EPOLL_CTL_ADD, target, &mut ev) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Epoll {
            fd,
            stop_fd,
            backlog_fd,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Waits up to a second for a fault or the stop signal; a timeout or an interrupted
    /// wait reads anyway (a read finds nothing or a fault no wake-up announced).
    fn wait(&self) -> std::io::Result<Wake> {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 3];
        // SAFETY: `evs` has room for the 3 events asked for and outlives the call.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), evs.as_mut_ptr(), 3, 1000) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(Wake::Fault);
            }
            return Err(e);
        }
        let ready = &evs[..n as usize];
        if ready.iter().any(|e| e.u64 == self.backlog_fd as u64) {
            let mut count = 0u64;
            // SAFETY: reads the 8-byte counter of our non-blocking eventfd into `count`
            // (resetting it); the loop then takes the backlog.
            unsafe { libc::read(self.backlog_fd, (&mut count as *mut u64).cast(), 8) };
        }
        if ready.iter().any(|e| e.u64 == self.stop_fd as u64) {
            Ok(Wake::Stop)
        } else {
            Ok(Wake::Fault)
        }
    }
}

fn serve(sh: &Shared, f: &Fault, buf: &mut device::PageBuf) {
    let start = Instant::now();
    let Some(p) = sh.mem.page_of(f.address) else {
        events::stray(sh, f.address);
        return;
    };
    if f.wp {
        write_fault(sh, p, f.thread);
    } else {
        missing(sh, p, f.thread, f.write, buf);
    }
    device::latency::record(&mut sh.book.latency.lock(), start.elapsed());
    let busy = sh.mem.uffd.busy.take();
    if sh.mem.events && (sh.drain_wanted.swap(false, Ordering::AcqRel) | busy) {
        drain_all(sh);
    }
}

/// Waits for a change of the page table (at most a slice). Returns false when the region
/// is stopping: the caller gives up on the fault.
fn wait(sh: &Shared, t: &mut MutexGuard<'_, Table>, slice: Duration) -> bool {
    if sh.stopping() {
        return false;
    }
    if sh.mem.events && sh.dropping.load(Ordering::Acquire) > 0 {
        MutexGuard::unlocked(t, || drain(sh));
        sh.book.changed.wait_for(t, slice.min(DRAIN_SLICE));
    } else {
        sh.book.changed.wait_for(t, slice.min(WAIT_SLICE));
    }
    !sh.stopping()
}

/// A fault on page `p` could not be served this time: the toucher tries again, or, after
/// too many failures in a row, gets `SIGBUS` (logged once per region).
/// `what`: the kernel call that failed, for the one line logged when the fault is given up.
fn failed(sh: &Shared, t: &mut Table, p: u64, thread: u32, what: &str) {
    if sh.mem.events && sh.mem.uffd.busy.peek() {
        // `EAGAIN`: the memory is changing (an event is pending, or its thread has not
        // run since it was read). Not the page's failure: the toucher retries, as the
        // kernel asks, however often.
        bump(&sh.book.counters.fault_retries, 1);
        sh.mem.wake(p);
        return;
    }
    match t.retry(p) {
        Retry::Again => bump(&sh.book.counters.fault_retries, 1),
        Retry::GiveUp => {
            if sh
                .book
                .counters
                .fault_errors
                .fetch_add(1, Ordering::Relaxed)
                == 0
            {
                eprintln!(
                    "region: a fault at page {p} failed {} times in a row ({what}): SIGBUS",
                    crate::state::MAX_FAULT_RETRIES
                );
            }
            crate::uffd::sigbus_thread(thread);
        }
    }
    if sh.mem.events {
        // Most likely an event not read yet: every userfaultfd call fails with `EAGAIN`
        // until it is, and the toucher's next fault would be read before it.
        sh.drain_wanted.store(true, Ordering::Release);
    }
    sh.mem.wake(p);
}

/// A store to a write-protected page. The protection is lifted under the table lock: the
/// evictor marks a page `Deactivating` under that lock before it protects it, so it can
/// never see a page it thinks is clean become writable behind it.
fn write_fault(sh: &Shared, p: u64, thread: u32) {
    let mut t = sh.lock();
    loop {
        match t.page(p) {
            Page::Loading | Page::Deactivating { .. } | Page::WritingOut { .. } => {
                if !wait(sh, &mut t, WAIT_SLICE) {
                    return;
                }
            }
            Page::Resident { .. } => {
                if t.write_fault(&sh.mem, p) {
                    bump(&sh.book.counters.wp_faults, 1);
                } else {
                    failed(sh, &mut t, p, thread, "lifting write-protection");
                }
                return;
            }
            Page::Absent { .. } | Page::Poisoned | Page::Inactive { .. } | Page::Unused => {
                // Unmapped meanwhile: the toucher retries and takes a missing fault.
                drop(t);
                sh.mem.wake(p);
                return;
            }
        }
    }
}

/// A load or store to an unmapped page.
fn missing(sh: &Shared, p: u64, thread: u32, write: bool, buf: &mut device::PageBuf) {
    // Before the table lock (lock order: streams, then table).
    let around = if sh.streams.is_local(thread, p) {
        sh.streams.read_around
    } else {
        0
    };
    let mut t = sh.lock();
    let Some(swap) = until_absent_with_room(sh, &mut t, p, thread) else {
        return;
    };
    if !swap {
        let mapped = fresh(sh, &mut t, p, around, thread, write);
        // After the table lock (lock order: streams, then table).
        drop(t);
        if let Some(end) = mapped {
            sh.streams.note(thread, p, end);
        }
        return;
    }
    let active = t.refault(p, sh.limit);
    if active {
        bump(&sh.book.counters.activations, 1);
    }
    let (first, n) = plan(sh, &t, p, around);
    t.begin_load(first, n);
    if t.resident > sh.watermark() {
        sh.book.need_room.notify_one();
    }
    drop(t);
    let buf = &mut buf.as_mut_slice()[..(n * PAGE) as usize];
    let read = Read {
        p,
        first,
        n,
        active,
        write,
        thread,
    };
    let read_to = read_and_install(sh, &read, buf);
    sh.notify();
    if let Some(end) = read_to {
        sh.streams
            .after_major_fault(&sh.book, thread, p, end, write);
    }
}

/// Waits until page `p` is `Absent` with room under the limit for it, and returns whether
/// it has swap; serves or ends the fault itself (`None`) when the page is mapped meanwhile,
/// on the inactive list (mapped back), the wait for room times out, or the region stops.
fn until_absent_with_room(
    sh: &Shared,
    t: &mut MutexGuard<'_, Table>,
    p: u64,
    thread: u32,
) -> Option<bool> {
    let mut waiting: Option<Instant> = None;
    loop {
        match t.page(p) {
            Page::Resident { .. } => {
                // Mapped, says the table: served already by another handler, or dropped
                // by the program (`madvise`) before the space heard of it.
                if t.refill_dropped(&sh.mem, p) {
                    sh.store.freespace(p, 1);
                    bump(&sh.book.counters.zero_fills, 1);
                }
                sh.mem.wake(p);
                return None;
            }
            Page::Poisoned | Page::Unused => {
                sh.mem.wake(p);
                return None;
            }
            Page::Deactivating { .. } if thread != 0 && thread == sh.evictor_tid() => {
                // The evictor reading the page to copy it out found it dropped by the
                // program: it reads as zeroes now (see `Table::zero_owned`).
                t.zero_owned(&sh.mem, p, &sh.zeros[..PAGE as usize]);
                return None;
            }
            Page::Loading | Page::Deactivating { .. } | Page::WritingOut { .. } => {
                if !wait(sh, t, WAIT_SLICE) {
                    return None;
                }
            }
            Page::Inactive { .. } => {
                if t.map_back(&sh.mem, p) {
                    bump(&sh.book.counters.hint_faults, 1);
                } else {
                    failed(sh, t, p, thread, "mapping it back from the inactive cache");
                }
                return None;
            }
            Page::Absent { swap } => {
                // While a fork is being prepared the evictor stands still: faults go over
                // the limit rather than wait for it.
                if t.resident < sh.limit || sh.paused() {
                    return Some(swap);
                }
                let since = *waiting.get_or_insert_with(|| {
                    bump(&sh.book.counters.room_waits, 1);
                    Instant::now()
                });
                let waited = since.elapsed();
                if waited >= sh.room_wait {
                    room_timeout(sh, p, thread, waited);
                    return None;
                }
                if waited >= ROOM_WAIT_LOGGED && !sh.room_logged.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "region: faults have waited over {ROOM_WAIT_LOGGED:?} for room under \
                         the resident limit: swap is full or failing (a fault gets SIGBUS \
                         after {:?})",
                        sh.room_wait
                    );
                }
                sh.book.need_room.notify_one();
                if !wait(sh, t, sh.room_wait - waited) {
                    return None;
                }
            }
        }
    }
}

/// A fault on memory never written: maps it fresh, and when the fault is near the same
/// thread's last one (a program filling its memory front to back), the never-written
/// pages ahead of it too, up to `around` and the room under the limit, in one call. A
/// store gets them writable and zeroed, a load the zero page. Returns where the pages
/// mapped end, for the caller to note in the thread's stream once the table is unlocked.
fn fresh(sh: &Shared, t: &mut Table, p: u64, around: u64, thread: u32, write: bool) -> Option<u64> {
    let room = sh.limit.saturating_sub(t.resident);
    let never = |q: u64| t.page(q) == Page::Absent { swap: false };
    let end = sh.mem.bounds(p).end;
    let mut n = 1;
    while n <= around && n < room && p + n < end && never(p + n) {
        n += 1;
    }
    let zeros = write.then_some(&sh.zeros[..]);
    let n = if write {
        n.min(sh.zeros.len() as u64 / PAGE)
    } else {
        n
    };
    let mapped = t.zero_fill(&sh.mem, p, n, zeros);
    if !mapped.contains(&p) {
        failed(sh, t, p, thread, "zero-filling");
        return None;
    }
    bump(&sh.book.counters.zero_fills, mapped.end - mapped.start);
    if t.resident > sh.watermark() {
        sh.book.need_room.notify_one();
    }
    Some(mapped.end)
}

/// A fault that waited `waited` for room in vain ends in `SIGBUS`.
fn room_timeout(sh: &Shared, p: u64, thread: u32, waited: Duration) {
    if sh
        .book
        .counters
        .room_timeouts
        .fetch_add(1, Ordering::Relaxed)
        == 0
    {
        eprintln!(
            "region: a fault at page {p} found no room under the resident limit in \
             {waited:?} (swap full?): SIGBUS"
        );
    }
    crate::uffd::sigbus_thread(thread);
    sh.mem.wake(p);
}

/// One fault's read: page `p` in the run `first..first + n`, all `Loading`.
struct Read {
    p: u64,
    first: u64,
    n: u64,
    /// The page refaulted soon after its eviction: it comes in referenced.
    active: bool,
    /// A store faulted it in: it comes in dirty and writable.
    write: bool,
    thread: u32,
}

/// Reads the run, maps what was read (outside the lock: the pages are ours while
/// `Loading`), and settles the states with what the kernel did. Returns where the read
/// ended, for prefetch, if the faulting page is now mapped.
fn read_and_install(sh: &Shared, r: &Read, buf: &mut [u8]) -> Option<u64> {
    let (p, first, n) = (r.p, r.first, r.n);
    let got = sh.store.getpages(p, p - first, first + n - 1 - p, buf);
    let range = match got {
        Ok(range) => range,
        Err(_) => {
            let mut t = sh.lock();
            bump(&sh.book.counters.read_errors, 1);
            t.poison(&sh.mem, p, r.thread);
            t.loaded(&sh.mem, first, n, first, None, None);
            return None;
        }
    };
    let range = if sh.mem.events {
        sh.lock().trim_discarded(range)
    } else {
        range
    };
    let out = sh.mem.install(first, buf, range.clone());
    let mut t = sh.lock();
    let mapped = t.loaded(
        &sh.mem,
        first,
        n,
        range.start,
        Some(&out),
        r.active.then_some(p),
    );
    bump(&sh.book.counters.pages_in, mapped.end - mapped.start);
    let writable = t.map_written_writable(&sh.mem, mapped.clone());
    bump(&sh.book.counters.writable_on_read, writable);
    if !mapped.contains(&p) {
        // The kernel would not map it (no memory, say): its bytes are still on swap.
        failed(sh, &mut t, p, r.thread, "copying it in after its read");
        return None;
    }
    if r.write {
        // A store brought it in: dirty now, writable at once, instead of one more trip
        // through a write-protect fault (under the lock, as there).
        t.make_dirty(&sh.mem, p..p + 1);
    }
    bump(&sh.book.counters.major_faults, 1);
    Some(mapped.end)
}

/// The window read for a fault at `p`: `p` and its non-resident neighbours with swap,
/// ahead first, within `around` each side and the room left under the limit. The pager
/// trims it further to what is contiguous on swap.
fn plan(sh: &Shared, t: &Table, p: u64, around: u64) -> (u64, u64) {
    // Over the limit while a fork is prepared: the faulting page alone.
    let room = sh.limit.saturating_sub(t.resident).max(1);
    let absent = |q: u64| t.page(q) == Page::Absent { swap: true };
    // Neighbours in the same segment only: the next index of another is not the next
    // address.
    let seg = sh.mem.bounds(p);
    let mut ahead = 0;
    while ahead < around && ahead + 1 < room && p + ahead + 1 < seg.end && absent(p + ahead + 1) {
        ahead += 1;
    }
    let mut behind = 0;
    while behind < around
        && behind + ahead + 1 < room
        && p - behind > seg.start
        && absent(p - behind - 1)
    {
        behind += 1;
    }
    (p - behind, behind + ahead + 1)
}
