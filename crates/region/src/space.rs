//! [`Space`]: the paging machinery without memory of its own. It pages ranges of this
//! process's private anonymous memory it is given ([`Space::adopt`]); a [`crate::Region`]
//! is a space and one mapping of its own, adopted when it is made.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use device::PAGE_SIZE;

use crate::book::Book;
use crate::config::SpaceConfig;
use crate::error::RegionError;
use crate::fork::ForkGuard;
use crate::inject::UffdFaults;
use crate::segments::Segment;
use crate::shared::{self, Shared};
use crate::stats::{RegionStats, bump};
use crate::store::Store;
use crate::tls::spawn_quiet;
use crate::{MAX_PAGES, MAX_PREFETCH, MAX_READ_AROUND, evict, prefetch};
use crate::{RegionMonitor, cache, fault, mapping, state, streams, uffd};

const PAGE: u64 = PAGE_SIZE as u64;

/// Memory of this process paged through a [`Store`]: see the crate doc ("Space").
/// `Send + Sync`.
#[derive(Debug)]
pub struct Space {
    sh: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// An eventfd made readable when the space drops: the handlers' stop signal.
    stop_fd: OwnedFd,
    /// The handlers' epoll descriptors (their threads own them), closed by
    /// [`Space::forget_in_child`].
    epoll_fds: Vec<RawFd>,
    /// An address on each thread's stack, noted by the thread as it starts: see
    /// [`Space::thread_stack_points`].
    stacks: Arc<parking_lot::Mutex<Vec<u64>>>,
    /// The threads' DTVs (glibc's, in the program's heap): see [`crate::tls`].
    dtvs: Arc<parking_lot::Mutex<Vec<(u64, u64)>>>,
    /// The first `handlers` of `threads` are the fault handlers.
    handlers: usize,
}

/// The settings of a space in pages, checked and clamped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub limit: u64,
    pub read_around: u64,
    pub prefetch: u64,
    pub evict_batch: u64,
}

fn pages_of(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE)
}

impl Sizes {
    fn of(cfg: &SpaceConfig) -> Result<Sizes, RegionError> {
        let limit = pages_of(cfg.resident_limit).min(MAX_PAGES);
        if limit < 2 {
            return Err(RegionError::Config(
                "resident_limit must be at least two pages".into(),
            ));
        }
        if cfg.handlers == 0 {
            return Err(RegionError::Config("handlers must be at least 1".into()));
        }
        Ok(Sizes {
            limit,
            read_around: cfg.read_around.min(MAX_READ_AROUND),
            prefetch: cfg.prefetch.min(MAX_PREFETCH),
            evict_batch: cfg.evict_batch.clamp(1, limit),
        })
    }
}

/// An eventfd that wakes the handler threads out of their epoll: when the space stops,
/// and when a fault goes to the backlog.
fn stop_eventfd() -> Result<OwnedFd, RegionError> {
    // SAFETY: eventfd(2) with flags by value; returns a new fd or -1.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(RegionError::Userfaultfd {
            what: "its stop eventfd",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(efd) })
}

impl Space {
    /// A space with nothing in it yet: opens its userfaultfd (with the events of `munmap`,
    /// `mremap` and `madvise` on its memory) and starts its handler threads, evictor and
    /// prefetch thread. Memory comes with [`Space::adopt`].
    pub fn new(store: Arc<dyn Store>, cfg: SpaceConfig) -> Result<Space, RegionError> {
        Space::build(store, &cfg, Sizes::of(&cfg)?, None, true)
    }

    /// As [`Space::new`], with failures injected into its kernel calls (see
    /// [`crate::inject`]).
    pub fn with_injector(
        store: Arc<dyn Store>,
        cfg: SpaceConfig,
        faults: Arc<UffdFaults>,
    ) -> Result<Space, RegionError> {
        Space::build(store, &cfg, Sizes::of(&cfg)?, Some(faults), true)
    }

    /// The space of a region (no memory events: the region's memory is its own) or of
    /// [`Space::new`].
    pub(crate) fn build(
        store: Arc<dyn Store>,
        cfg: &SpaceConfig,
        sizes: Sizes,
        faults: Option<Arc<UffdFaults>>,
        events: bool,
    ) -> Result<Space, RegionError> {
        let uffd = uffd::Uffd::open(faults.clone(), events).map_err(|source| {
            RegionError::Userfaultfd {
                what: "open",
                source,
            }
        })?;
        let slots = Shared::inactive_slots(sizes.limit);
        let cache = cache::SlotCache::new(slots).map_err(|source| RegionError::Map {
            len: slots * PAGE,
            source,
        })?;
        let stop_fd = stop_eventfd()?;
        let backlog_fd = stop_eventfd()?;
        let epolls = (0..cfg.handlers)
            .map(|index| {
                fault::Epoll::new(uffd.raw(), stop_fd.as_raw_fd(), backlog_fd.as_raw_fd())
                    .map_err(|source| RegionError::Handler { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let epoll_fds = epolls.iter().map(fault::Epoll::raw).collect();
        let (prefetch_tx, prefetch_rx) = crossbeam_channel::unbounded();
        let sh = Arc::new(Shared {
            book: Arc::new(Book::new(sizes.limit, slots)),
            mem: state::Mem {
                uffd,
                segs: Default::default(),
                calls: mapping::Calls::new(faults),
                cache,
                store: Arc::clone(&store),
                events,
            },
            store,
            limit: sizes.limit,
            streams: streams::Streams::new(
                prefetch_tx,
                sizes.read_around,
                sizes.prefetch,
                u64::MAX,
            ),
            evict_batch: sizes.evict_batch,
            inactive_slots: slots,
            zeros: vec![0; ((sizes.read_around + 1).min(shared::MAX_FRESH) * PAGE) as usize],
            room_wait: cfg.room_wait,
            stop: AtomicBool::new(false),
            handlers_alive: AtomicUsize::new(cfg.handlers),
            room_logged: AtomicBool::new(false),
            evictor_tid: AtomicU32::new(0),
            paused: AtomicUsize::new(0),
            overcommit: cfg.overcommit,
            dropping: AtomicUsize::new(0),
            reader: Default::default(),
            backlog: Default::default(),
            backlog_fd,
            drain_wanted: AtomicBool::new(false),
            stray: Default::default(),
        });
        let mut space = Space {
            sh,
            threads: Vec::new(),
            stop_fd,
            epoll_fds,
            stacks: Default::default(),
            dtvs: Default::default(),
            handlers: cfg.handlers,
        };
        for (i, ep) in epolls.into_iter().enumerate() {
            let name = format!("region-fault-{i}");
            let label = name.clone();
            space.spawn(name, move |sh| fault::run(sh, ep, label))?;
        }
        space.spawn("region-evict".into(), evict::run)?;
        if sizes.prefetch > 0 {
            space.spawn("region-prefetch".into(), move |sh| {
                prefetch::run(sh, prefetch_rx)
            })?;
        }
        Ok(space)
    }

    /// Starts one of the space's threads on its shared state; `Drop` stops and joins it.
    fn spawn(
        &mut self,
        name: String,
        body: impl FnOnce(Arc<Shared>) + Send + 'static,
    ) -> Result<(), RegionError> {
        let sh = Arc::clone(&self.sh);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let h = spawn_quiet(name, move || {
            let here = 0u8;
            let _ = tx.send((
                std::ptr::addr_of!(here) as u64,
                crate::tls::thread_dtv_range(),
            ));
            body(sh)
        })
        .map_err(RegionError::Thread)?;
        // Noted before `new` returns, so a scanner never sees the thread without them.
        if let Ok((point, dtv)) = rx.recv() {
            self.stacks.lock().push(point);
            self.dtvs.lock().extend(dtv);
        }
        self.threads.push(h);
        Ok(())
    }

    /// Puts `addr..addr + len` (page aligned) of this process's private anonymous memory
    /// under the space. Parts already under it are left as they are (the preload scans
    /// again and again; a mapping that grew shows up as a larger range). Each new part is
    /// registered for missing and write-protect faults with huge pages off; its pages the
    /// kernel holds data for (present, or on the kernel's own swap) become resident and
    /// dirty, the others read as zeroes as before. The table lock is held from before the
    /// registration until the states are set: a fault meanwhile waits, then sees them.
    /// Pages over the limit are evicted as usual.
    ///
    /// Fails on a range that is not page aligned or not this process's registrable memory,
    /// and (unless `overcommit`) when the store's free swap cannot hold what of the
    /// space's memory would not fit under the limit. Parts adopted before a failing one
    /// stay adopted.
    pub fn adopt(&self, addr: u64, len: u64) -> Result<(), RegionError> {
        self.adopt_range(addr, len, false)
    }

    /// [`Space::adopt`]; `owned`: the memory is the space's own, fresh (no pagemap scan,
    /// every page absent; no room check: its region checked) and read with plain loads.
    pub(crate) fn adopt_range(&self, addr: u64, len: u64, owned: bool) -> Result<(), RegionError> {
        let fail = |what: &'static str, source: std::io::Error| RegionError::Adopt {
            addr,
            len,
            what,
            source,
        };
        if len == 0 || !addr.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(fail(
                "the range",
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        }
        let sh = &self.sh;
        let mut t = sh.lock();
        if t.is_failed() {
            return Err(fail(
                "the space is dead",
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        let mut segs = sh.mem.segs.write();
        let parts = segs.uncovered(addr, len);
        let new: u64 = parts.iter().map(|p| p.1 / PAGE).sum();
        if !owned && !sh.overcommit {
            let had = segs.pages();
            let need = (had + new).saturating_sub(sh.limit) - had.saturating_sub(sh.limit);
            if let Some(free) = sh.store.free_pages()
                && need > free
            {
                return Err(RegionError::NotEnoughSwap { need, free });
            }
        }
        for (a, l) in parts {
            let n = l / PAGE;
            if !owned {
                mapping::advise(a, l, libc::MADV_NOHUGEPAGE)
                    .map_err(|e| fail("MADV_NOHUGEPAGE", e))?;
            }
            sh.mem.uffd.register(a, l).map_err(|source| {
                if owned {
                    RegionError::Userfaultfd {
                        what: "register",
                        source,
                    }
                } else {
                    fail("registering it with the userfaultfd", source)
                }
            })?;
            let data = if owned {
                vec![false; n as usize]
            } else {
                match mapping::has_data(a, l) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = sh.mem.uffd.unregister(a, l);
                        return Err(fail("reading /proc/self/pagemap", e));
                    }
                }
            };
            let first = segs.alloc(n);
            if first + n > MAX_PAGES {
                segs.release(first, n);
                let _ = sh.mem.uffd.unregister(a, l);
                return Err(fail(
                    "the space's largest page index",
                    std::io::Error::from_raw_os_error(libc::ENOSPC),
                ));
            }
            t.grow(segs.end);
            t.adopt(first, &data);
            segs.insert(Segment {
                addr: a,
                pages: n,
                index: first,
                owned,
            });
            sh.book.pages.fetch_add(n, Ordering::Relaxed);
            if !owned {
                bump(&sh.book.counters.adopted_pages, n);
            }
        }
        drop(segs);
        if t.resident > sh.watermark() {
            sh.book.need_room.notify_one();
        }
        Ok(())
    }

    /// Whether every page of `addr..addr + len` is under the space.
    pub fn covered(&self, addr: u64, len: u64) -> bool {
        self.sh.mem.segs.read().uncovered(addr, len).is_empty()
    }

    /// The ranges under the space now, `(addr, len)` by address (neighbours adopted apart
    /// are listed apart).
    pub fn segments(&self) -> Vec<(u64, u64)> {
        self.sh
            .mem
            .segs
            .read()
            .iter()
            .map(|s| (s.addr, s.pages * PAGE))
            .collect()
    }

    /// The page index of `addr` (its index in the page table and the store), if it is
    /// under the space.
    pub fn page_of(&self, addr: u64) -> Option<u64> {
        self.sh.mem.page_of(addr)
    }

    /// Whether faults the kernel takes for the program are served (see the crate doc).
    pub fn serves_kernel_faults(&self) -> bool {
        self.sh.mem.uffd.caps.kernel_faults
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RegionStats {
        self.monitor().stats()
    }

    /// A handle on the counters and page states that does not borrow the space.
    pub fn monitor(&self) -> RegionMonitor {
        RegionMonitor {
            book: Arc::clone(&self.sh.book),
        }
    }

    /// Checks the page table against its resident count and against the kernel's
    /// (`mincore(2)`), over every segment: see [`crate::Region::verify`].
    pub fn verify(&self) -> Result<(), RegionError> {
        let t = self.sh.lock();
        let states = t.resident_states();
        if states != t.resident {
            return Err(RegionError::Miscounted {
                counted: t.resident,
                states,
            });
        }
        let segs: Vec<Segment> = self.sh.mem.segs.read().iter().copied().collect();
        let mut bad = Vec::new();
        for seg in segs {
            let present = mapping::present(seg.addr, seg.pages * PAGE).map_err(|source| {
                RegionError::Map {
                    len: seg.pages * PAGE,
                    source,
                }
            })?;
            bad.extend(t.disagreements(seg.index, &present));
        }
        match bad.first() {
            None => Ok(()),
            Some(&(page, state)) => Err(RegionError::Disagrees {
                pages: bad.len() as u64,
                page,
                state: format!("{state:?}"),
                present: !matches!(state, state::Page::Resident { .. }),
            }),
        }
    }

    /// The memory the space itself works in, as `(start, end)` address ranges: its
    /// inactive cache, and the pages holding its threads' DTVs (glibc allocates those in
    /// the program's heap: see [`crate::tls`]). Whoever adopts memory by looking at the
    /// process's mappings (the preload's scanner) must leave these alone: a handler
    /// faulting on them would wait for itself.
    pub fn own_memory(&self) -> Vec<(u64, u64)> {
        let mut v = vec![self.sh.mem.cache.range()];
        v.extend(self.dtvs.lock().iter().copied());
        v
    }

    /// An address on the stack of each of the space's threads (handlers, evictor,
    /// prefetch), for the same reason as [`Space::own_memory`]: a mapping holding one is a
    /// thread stack the space runs on, never to be adopted. Each thread tells its point
    /// before [`Space::new`] returns.
    pub fn thread_stack_points(&self) -> Vec<u64> {
        self.stacks.lock().clone()
    }

    /// For the preload's `pthread_atfork` prepare handler: stops eviction and prefetch,
    /// then brings every page that has data but is not mapped (on swap, inactive, being
    /// written) back into memory, so a child forked now sees exactly the parent's bytes
    /// (the kernel drops the registrations in the child: a hole there reads as zeroes).
    /// Pages that never had data stay holes. Eviction stays stopped, and the resident
    /// limit exceeded, until the guard drops (in the parent, after `fork`); faults
    /// meanwhile do not wait for room. Pages that could not be brought in are reported by
    /// [`ForkGuard::check`]: a child forked anyway would not see them.
    pub fn prepare_fork(&self) -> ForkGuard {
        crate::fork::prepare(&self.sh)
    }

    /// In the child after `fork` (where only the forking thread exists): closes the
    /// space's descriptors (the userfaultfd, the handlers' epolls and stop eventfd, the
    /// pidfd) without unregistering, freeing swap, joining threads or calling the store,
    /// all of which the parent owns, and leaks the rest. Takes no lock (a parent thread
    /// may have held one at the fork) and allocates nothing.
    pub fn forget_in_child(self) {
        let own = [
            self.sh.mem.uffd.raw(),
            self.stop_fd.as_raw_fd(),
            self.sh.backlog_fd.as_raw_fd(),
        ];
        let pidfd = self.sh.mem.calls.pidfd_raw();
        let fds = own.iter().chain(&self.epoll_fds).chain(pidfd.as_ref());
        for &fd in fds {
            // SAFETY: descriptors this space opened, inherited by the child; their owners
            // are leaked below, so nothing closes them again.
            unsafe { libc::close(fd) };
        }
        std::mem::forget(self);
    }

    /// Stops the threads: the evictor after its writes in flight complete, then the
    /// handlers (every wait of theirs checks the stop flag: this never waits on a fault).
    fn stop_threads(&mut self) {
        self.sh.stop.store(true, Ordering::Release);
        {
            let _t = self.sh.lock();
            self.sh.book.need_room.notify_all();
            self.sh.book.changed.notify_all();
        }
        // The evictor and prefetch first, while the handlers still read messages: the
        // evictor's drop waits until a handler reads its `REMOVE` events.
        for h in self.threads.drain(self.handlers.min(self.threads.len())..) {
            let _ = h.join();
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from `one` to our eventfd.
        unsafe { libc::write(self.stop_fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Space {
    /// Stops the threads, unregisters every segment and frees all of the space's swap and
    /// its inactive cache. The memory stays the program's: pages that were not in memory
    /// read as zeroes from here on, so drop a space only when its memory is done with.
    fn drop(&mut self) {
        self.stop_threads();
        let segs: Vec<Segment> = self.sh.mem.segs.read().iter().copied().collect();
        for seg in segs {
            let _ = self.sh.mem.uffd.unregister(seg.addr, seg.pages * PAGE);
            self.sh.store.freespace(seg.index, seg.pages);
        }
        // Monitors keep the book: only its counts stay.
        self.sh.lock().clear();
    }
}
