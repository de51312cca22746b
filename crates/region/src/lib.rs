//! region: ordinary memory paged through swapkit. A [`Region`] is anonymous memory that a
//! program reads and writes with loads and stores; at most `resident_limit` bytes of it
//! are in memory at once, the rest lives on swap in a [`pager::Object`]. Its faults are
//! served in userspace through a userfaultfd.
//!
//! # How a fault travels
//! A load or store to a page that is not mapped stops the touching thread in the kernel,
//! which queues a message on the region's userfaultfd. A handler thread (`fault.rs`) reads
//! it and looks the page up in the page table (`state.rs`, which owns every page state,
//! every move between them and every kernel call on the memory, with a table of who may
//! make which move):
//! - it has swap: the handler marks it and its swap-contiguous non-resident neighbours
//!   (`read_around` each side, when the fault is near the same thread's previous one;
//!   a random fault reads its page alone) `Loading`, reads them with one
//!   [`pager::Pager::getpages`], and maps them write-protected with one `UFFDIO_COPY`
//!   (`UFFDIO_COPY_MODE_WP`), which wakes the toucher;
//! - it is on the inactive list (below): its bytes are mapped back from memory with one
//!   `UFFDIO_COPY`, no I/O (a *hint fault*), and it gets its second chance;
//! - it never had data on swap: `UFFDIO_ZEROPAGE`;
//! - its read failed: `UFFDIO_POISON`, and the toucher gets `SIGBUS`.
//!
//! A store to a clean (write-protected) page raises a write-protect fault: the handler
//! marks the page dirty and lifts the protection. When resident pages pass the watermark
//! the evictor (`evict.rs`) works in two stages, because reads of mapped pages are
//! invisible to userspace: a second-chance clock *deactivates* pages (write-protects
//! them, copies them into the inactive cache, half the limit, and unmaps them: a touch
//! now faults and shows the page is in use), and the oldest inactive pages leave memory:
//! dirty ones written with async [`pager::Pager::putpages`] in clusters of neighbours,
//! clean ones with a valid swap copy dropped with no write. Pages that refault soon after
//! their eviction (refault distance under the limit) get extra turns of the clock.
//! When one thread's major faults walk the region front to back, the prefetch thread
//! (`prefetch.rs`) reads ahead of it asynchronously, in a window that doubles while the
//! walk goes on.
//!
//! # Invariants
//! (Of a region and of a [`Space`], but where the Space section says otherwise.)
//! - **The page table never disagrees with the kernel.** Every kernel call reports exactly
//!   which pages it changed (a copy can stop part way), and only those change state;
//!   [`Region::verify`] checks it against `mincore(2)`.
//! - **No store is lost by eviction.** A page is write-protected before it is copied
//!   into the inactive cache and unmapped only after; a store to it meanwhile waits in its
//!   write-protect fault until the page is inactive (the store then faults its bytes back
//!   in from the cache) or back. A page being written from the cache is waited for by
//!   its faults, and goes back on the list, dirty, if the write fails.
//! - **No zero fill on error.** A page is zero-filled only if it never had data written to
//!   swap (or was evicted holding zeroes); a page whose read fails is poisoned, never
//!   mapped with other bytes. The error is counted (`read_errors`).
//! - **No page is lost to a full swap.** A write that finds no swap leaves the page
//!   resident and dirty; eviction backs off (`evict_blocked`) and faults wait for room,
//!   at most [`RegionConfig::room_wait`] (then the toucher gets `SIGBUS`, counted in
//!   `room_timeouts`). [`Region::new`] refuses a region whose pages beyond the limit the
//!   free swap cannot hold, unless [`RegionConfig::overcommit`].
//! - **No fault waits for ever.** A kernel call that fails is retried by faulting again;
//!   a fault that keeps failing gets `SIGBUS` (`fault_errors`). A handler that cannot be
//!   set up fails [`Region::new`]; one whose descriptor fails later stops, logged, and when
//!   the last one stops the region is dead ([`RegionStats::dead`]): every touch of a page
//!   not in memory gets `SIGBUS`. Dropping the region never waits on a fault.
//! - At most `resident_limit` pages are in memory: mapped, being brought in or out, or
//!   held on the inactive list.
//! - Dropping the region unmaps it and frees all of its swap, its inactive cache and its
//!   userfaultfd; a [`RegionMonitor`] kept past it holds only the counters.
//! - Messages about trouble (a long wait for room, a handler stopping, a fault given up)
//!   go to standard error, each once per region, prefixed `region:`.
//!
//! # Limits
//! - **Privileges.** A userfaultfd comes from `/dev/userfaultfd` (its file permissions
//!   decide, 6.1+) or the `userfaultfd(2)` syscall, which an unprivileged process may use
//!   only with `vm.unprivileged_userfaultfd = 1` or in `UFFD_USER_MODE_ONLY` mode. The
//!   region asks for full mode first and falls back to user-mode-only: then a fault the
//!   kernel takes on the program's behalf — a `read(2)`, `recv(2)` or `io_uring` op
//!   writing into a non-resident page of the region — is not served, and that syscall
//!   fails with `EFAULT`. Touch the pages first, or read into other memory.
//!   [`Region::serves_kernel_faults`] says which mode is in force.
//! - **Kernel.** Write-protect faults on anonymous memory need 5.7+ ([`RegionError`]
//!   otherwise); `UFFDIO_POISON` needs 6.6+. Before it a failed page is made `PROT_NONE`
//!   and its toucher gets `SIGSEGV` instead of `SIGBUS` (still never zeroes).
//! - **No `fork` sharing.** The mapping is `MADV_DONTFORK`: a child does not see it (it
//!   could not: the child has no handler, its holes would read as zeroes).
//! - **Huge pages off** (`MADV_NOHUGEPAGE`): every fault is one 4 KiB page.
//! - The toucher of a poisoned page dies of `SIGBUS` unless it handles the signal.
//! - Reads of mapped pages are invisible (no accessed bits): the clock learns of them only
//!   when a page is touched on the inactive list (a hint fault, a few µs) or refaults.
//!
//! # Space: paging memory the program already has
//! A [`Space`] is the same machinery (handlers, evictor, prefetch, page table, one
//! resident limit, one [`Store`]) without memory of its own: `swapctl run`'s preload hands
//! it an unmodified program's large private anonymous mappings. A [`Region`] is a space
//! plus one mapping of its own, adopted when it is made (a region's descriptor asks for no
//! memory events: its memory is its own).
//! - **Adopting** ([`Space::adopt`]) registers a page-aligned range of this process's
//!   private anonymous memory for missing and write-protect faults, huge pages off. Its
//!   pages the kernel holds data for (`/proc/self/pagemap`: present or on the kernel's own
//!   swap) become resident and dirty, the others read as zeroes as before; pages over the
//!   limit are evicted as usual. Parts already under the space are left alone (the preload
//!   rescans). The page table is one linear index space (a page's index is its `pindex`
//!   in the store): each adopted range is a segment (`segments.rs`), indices of segments
//!   that go are reused, and no run of a kernel call crosses a segment boundary.
//! - **Events.** The descriptor has `UFFD_FEATURE_EVENT_REMOVE`, `_UNMAP` and `_REMAP`
//!   (not `_FORK`); the handlers read them with the faults and handle each at once
//!   (`events.rs`): `madvise(MADV_DONTNEED, MADV_FREE, MADV_REMOVE)` frees the pages'
//!   swap and they read as zeroes, `munmap` takes them out of the space, `mremap` moves
//!   their segment with their swap. Counted in `removed_pages`, `unmapped_pages`, `remaps`.
//!   The program's thread goes on once the event is read, before or after the table hears
//!   of it; a fault read after an event is served after it (the reader lock).
//! - **Fork** ([`Space::prepare_fork`], [`Space::forget_in_child`]): without
//!   `EVENT_FORK` the child gets the memory with the registrations dropped, so before the
//!   fork every page with data is brought into memory, eviction stopped until the
//!   [`ForkGuard`] drops: the resident limit is exceeded meanwhile. In the child the space
//!   closes its descriptors and leaks the rest; the parent owns swap, threads and store.
//! - **Limits of a space.** The evictor's own `madvise(MADV_DONTNEED)` raises a `REMOVE`
//!   event too and waits until a handler reads it (it announces its pages first, and
//!   handlers waiting on the table read messages meanwhile): an eviction costs a round
//!   trip per run more than a region's. While an event is unread (or its thread has not
//!   run since), every userfaultfd call fails with `EAGAIN` and faults retry. The evictor
//!   reads adopted pages with `process_vm_readv(2)` (the program may unmap them under it);
//!   it still acts on a page's address after that check, so a program that unmaps or moves
//!   memory in one thread while another maps new memory at the same address, inside one
//!   eviction's microseconds, could see the new memory's page dropped. A page the program
//!   drops while a read of it is in flight is not mapped by the reader, but one dropped
//!   between that check and the copy shows its old bytes until the program writes it. A
//!   mapping grown in place by `mremap` faults on its new part before the next adopt: after
//!   64 faults in a row at one address such a page is mapped as zeroes.
//!   **Not yet right:** `mremap` moving memory back and forth while other threads fault
//!   and the evictor runs (a test that does so hangs or ends in `SIGBUS`/`SIGSEGV`; the
//!   moves alone, and `madvise` under load, pass). Dropping a space leaves the pages that
//!   were not in memory as zeroes: drop it when the memory is done with (at exit). The space's threads start with every signal blocked and
//!   call no code of the program's (Rust allocation only: the preload brings its own
//!   allocator).
//!
//! # Example
//! ```no_run
//! use pager::{Pager, PagerConfig, SwaponOptions};
//! use region::{Region, RegionConfig};
//! let pager = Pager::new(PagerConfig::default())?;
//! pager.swapon("/dev/loop7".as_ref(), SwaponOptions::default())?;
//! let mut region = Region::new(&pager, RegionConfig {
//!     len: 1 << 30,
//!     resident_limit: 64 << 20,
//!     ..RegionConfig::default()
//! })?;
//! let mem = region.as_mut_slice();
//! mem.fill(7); // 1 GiB written through 64 MiB of memory
//! assert!(mem.iter().all(|&b| b == 7));
//! println!("{:?}", region.stats());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod book;
mod cache;
mod config;
mod error;
mod events;
mod evict;
mod fault;
mod fork;
pub mod inject;
mod mapping;
mod prefetch;
mod segments;
mod shared;
mod space;
mod state;
mod stats;
mod store;
mod streams;
mod temp;
pub mod tls;
mod uffd;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use device::PAGE_SIZE;
use pager::Pager;

/// The crates a region stands on, so a program needs `region` alone: `region::pager` for
/// the [`Pager`] and its settings, `region::device` for swap areas (`mkswap`, loop
/// devices).
pub use device;
pub use pager;

pub use config::{RegionConfig, SpaceConfig};
pub use error::{ForkError, RegionError};
pub use fork::ForkGuard;
pub use inject::UffdFaults;
pub use space::Space;
pub use state::WRITE_TURNS;
pub use stats::RegionStats;
pub use store::{LocalStore, PutDone, Store, StoreError};

use book::Book;

/// The largest region in pages: the pager's largest object (its blocks are 32-bit), and
/// what keeps every page and slot count inside `u32`.
pub const MAX_PAGES: u64 = u32::MAX as u64;

/// The most pages read around a fault, each side (the pager reads at most `max_cluster`
/// in one I/O anyway): a larger `read_around` is taken as this.
pub const MAX_READ_AROUND: u64 = 64;
/// The largest read-ahead window in pages (16 MiB): a larger `prefetch` is taken as this.
pub const MAX_PREFETCH: u64 = 4096;

/// Memory paged through a [`Pager`]: see the crate doc. `Send + Sync`; share it between
/// threads by reference (scoped threads) or through [`Region::as_atomic_u64s`].
#[derive(Debug)]
pub struct Region {
    /// Dropped first: it lets go of the mapping before the mapping goes.
    space: Space,
    map: mapping::Mapping,
    /// The pager object behind the region, when it is a local one ([`Region::new`]).
    local: Option<Arc<LocalStore>>,
}

fn pages_of(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE as u64)
}

/// The settings of a region in pages, checked and clamped (see [`RegionConfig`]).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    pages: u64,
    limit: u64,
    read_around: u64,
    prefetch: u64,
    evict_batch: u64,
}

/// `cfg`'s sizes in pages, or why they cannot be. A limit above the region is the region
/// (an inactive cache sized from a 64 GiB limit on a 1 MiB region would be 32 GiB);
/// read-around and prefetch are clamped to the region, so no page arithmetic overflows.
fn checked_sizes(cfg: &RegionConfig) -> Result<Sizes, RegionError> {
    let pages = pages_of(cfg.len);
    if pages == 0 {
        return Err(RegionError::Config("len must be at least one byte".into()));
    }
    if pages > MAX_PAGES {
        return Err(RegionError::Config(format!(
            "len {} bytes is over the largest region, {MAX_PAGES} pages (16 TiB)",
            cfg.len
        )));
    }
    if pages_of(cfg.resident_limit) < 2 {
        return Err(RegionError::Config(
            "resident_limit must be at least two pages".into(),
        ));
    }
    if cfg.handlers == 0 {
        return Err(RegionError::Config("handlers must be at least 1".into()));
    }
    let limit = pages_of(cfg.resident_limit).min(pages.max(2));
    Ok(Sizes {
        pages,
        limit,
        read_around: cfg.read_around.min(pages).min(MAX_READ_AROUND),
        prefetch: cfg.prefetch.min(pages).min(MAX_PREFETCH),
        evict_batch: cfg.evict_batch.clamp(1, limit),
    })
}

/// Refuses a region whose pages beyond the limit the store's free swap cannot hold.
fn check_swap(free: Option<u64>, cfg: &RegionConfig, sizes: &Sizes) -> Result<(), RegionError> {
    if cfg.overcommit {
        return Ok(());
    }
    let need = sizes.pages - sizes.limit;
    let Some(free) = free else {
        return Ok(());
    };
    if need > free {
        return Err(RegionError::NotEnoughSwap { need, free });
    }
    Ok(())
}

impl Region {
    /// Maps `cfg.len` bytes (`MAP_NORESERVE`), backs them with a new anonymous object of
    /// `pager`, registers them with a userfaultfd for missing and write-protect faults and
    /// starts the handler threads and the evictor. Every page reads as zeroes at first.
    ///
    /// Fails when the settings cannot work, when the pager's free swap cannot hold
    /// `len - resident_limit` (unless `overcommit`), and when any part of the fault path
    /// cannot be set up: a region is never returned that would hang its first fault.
    pub fn new(pager: &Pager, cfg: RegionConfig) -> Result<Region, RegionError> {
        Region::local(pager, cfg, None)
    }

    /// As [`Region::new`], its pages kept in `store` (page `p` of the region is the
    /// store's page `p`) instead of a new object of a local pager. The room check asks
    /// [`Store::free_pages`].
    pub fn with_store(store: Arc<dyn Store>, cfg: RegionConfig) -> Result<Region, RegionError> {
        Region::build(store, None, cfg, None)
    }

    /// As [`Region::new`], with failures injected into its kernel calls (see
    /// [`inject`]): for tests of the region's own error paths.
    pub fn with_injector(
        pager: &Pager,
        cfg: RegionConfig,
        faults: Arc<UffdFaults>,
    ) -> Result<Region, RegionError> {
        Region::local(pager, cfg, Some(faults))
    }

    fn local(
        pager: &Pager,
        cfg: RegionConfig,
        faults: Option<Arc<UffdFaults>>,
    ) -> Result<Region, RegionError> {
        let sizes = checked_sizes(&cfg)?;
        // Checked before the object is made: a refused region leaves nothing behind.
        check_swap(Some(pager.stats().free_pages), &cfg, &sizes)?;
        let local = Arc::new(LocalStore::new(pager, sizes.pages));
        let store: Arc<dyn Store> = local.clone();
        Region::build(store, Some(local), cfg, faults)
    }

    fn build(
        store: Arc<dyn Store>,
        local: Option<Arc<LocalStore>>,
        cfg: RegionConfig,
        faults: Option<Arc<UffdFaults>>,
    ) -> Result<Region, RegionError> {
        let sizes = checked_sizes(&cfg)?;
        check_swap(store.free_pages(), &cfg, &sizes)?;
        let space_cfg = SpaceConfig {
            resident_limit: sizes.limit * PAGE_SIZE as u64,
            read_around: sizes.read_around,
            prefetch: sizes.prefetch,
            handlers: cfg.handlers,
            evict_batch: sizes.evict_batch,
            room_wait: cfg.room_wait,
            overcommit: cfg.overcommit,
        };
        let space_sizes = space::Sizes {
            limit: sizes.limit,
            read_around: sizes.read_around,
            prefetch: sizes.prefetch,
            evict_batch: sizes.evict_batch,
        };
        let space = Space::build(store, &space_cfg, space_sizes, faults, false)?;
        let len = sizes.pages * PAGE_SIZE as u64;
        let map = mapping::Mapping::new(len).map_err(|source| RegionError::Map { len, source })?;
        // The first memory of the space: its pages are indices 0..pages.
        space.adopt_range(map.base, map.len, true)?;
        Ok(Region { space, map, local })
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.map.len as usize
    }

    /// Never: a region has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Pages in the region.
    pub fn pages(&self) -> u64 {
        self.map.len / PAGE_SIZE as u64
    }

    /// The first byte. Valid for [`Region::len`] bytes while the region lives; any thread
    /// may load and store through it (data races between the program's own threads are
    /// the program's business, as with any memory).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.base as *mut u8
    }

    /// The region as bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for the life of `self`; stores
        // through `as_ptr` while this borrow lives are the caller's `unsafe` to answer for.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The region as mutable bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, and `&mut self` makes this the only borrow of the bytes
        // (the evictor only reads pages that are write-protected, through raw pointers).
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }

    /// The region as 64-bit words (a typed view; the mapping is page aligned).
    pub fn as_mut_u64s(&mut self) -> &mut [u64] {
        // SAFETY: as `as_mut_slice`; the base is page aligned and `len` a multiple of 8,
        // and every bit pattern is a valid `u64`.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr().cast::<u64>(), self.len() / 8) }
    }

    /// The region as 64-bit atomics, for many threads at once (`&mut self`: no plain
    /// slice can be alive beside it).
    pub fn as_atomic_u64s(&mut self) -> &[AtomicU64] {
        // SAFETY: the mapping is page aligned (so 8-byte aligned) and `len` is a multiple
        // of 8; `AtomicU64` has the layout of `u64` and any bit pattern is valid.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast::<AtomicU64>(), self.len() / 8) }
    }

    /// Whether faults the kernel takes for the program (syscalls writing into the region)
    /// are served; `false` in `UFFD_USER_MODE_ONLY` mode (see the crate doc).
    pub fn serves_kernel_faults(&self) -> bool {
        self.space.serves_kernel_faults()
    }

    /// The object holding the region's pages on swap (for tools and tests).
    ///
    /// # Panics
    /// If the region keeps its pages in a store of its caller ([`Region::with_store`]).
    pub fn object(&self) -> &pager::Object {
        match &self.local {
            Some(local) => local.object(),
            None => panic!("Region::object: the region's pages are in a store, not an object"),
        }
    }

    /// Whether page `p` is in memory now (see [`RegionMonitor::is_resident`]).
    pub fn is_resident(&self, p: u64) -> bool {
        self.monitor().is_resident(p)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RegionStats {
        self.monitor().stats()
    }

    /// Checks the region's page table against its resident count and against the kernel's
    /// (`mincore(2)`): every page it holds mapped must be in memory, and every page it
    /// holds unmapped (absent, inactive, being written, poisoned) must not be. Pages being
    /// brought in or deactivated at this moment are skipped. Like [`Pager::verify`], for
    /// tests and tools; it holds the table lock while it looks, so faults wait meanwhile.
    pub fn verify(&self) -> Result<(), RegionError> {
        self.space.verify()
    }

    /// A handle that reads the region's counters and page states without borrowing the
    /// region, so they can be read while its memory is borrowed (even mutably).
    pub fn monitor(&self) -> RegionMonitor {
        self.space.monitor()
    }

    /// The space under the region (its one segment is the region's memory).
    pub fn space(&self) -> &Space {
        &self.space
    }
}

/// Reads a region's counters and page states; see [`Region::monitor`]. Holding one after
/// the region drops keeps only the bookkeeping (the counters, the latency histogram),
/// never the memory, the inactive cache, the userfaultfd or the swap.
#[derive(Debug, Clone)]
pub struct RegionMonitor {
    pub(crate) book: Arc<Book>,
}

impl RegionMonitor {
    /// Whether page `p` is in memory now: mapped, being brought in or written out, or on
    /// the inactive list (unmapped, its bytes held by the region). For tests and tools:
    /// the answer may change as soon as it is returned. `false` once the region dropped.
    pub fn is_resident(&self, p: u64) -> bool {
        self.book.lock().page(p).is_resident()
    }

    /// The resident count and the pages in a resident state counted one by one, read
    /// under one lock: the two are equal unless the bookkeeping is broken. For tests and
    /// tools that cannot [`Region::verify`] while the region's memory is borrowed.
    pub fn resident_counts(&self) -> (u64, u64) {
        let t = self.book.lock();
        (t.resident, t.resident_states())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RegionStats {
        let (resident, dead) = {
            let t = self.book.lock();
            (t.resident, t.is_failed())
        };
        let mut s = RegionStats {
            pages: self.book.pages.load(Ordering::Relaxed),
            resident_limit: self.book.limit,
            resident,
            dead,
            fault_latency: device::latency::LatencySummary::of(&self.book.latency.lock()),
            ..RegionStats::default()
        };
        self.book.counters.fill(&mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_region_and_its_monitor_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<super::Region>();
        shared::<super::Space>();
        shared::<super::RegionMonitor>();
    }
}
