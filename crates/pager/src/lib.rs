//! pager: the swap pager of FreeBSD's `swap_pager.c` (Matthew Dillon's "new swap system"),
//! in userspace. It joins [`blist`] (one allocator per swap area), [`swmeta`] (the swap
//! metadata of each object) and [`device`] (swap areas and the I/O engine), so a program
//! can page its memory out to block devices and files and back.
//!
//! # The integrity rule
//! **After [`Pager::putpages`] of a page returns [`PageResult::Ok`] or [`PageResult::Pend`],
//! every later read of it ([`Pager::getpages`], read-around, [`Pager::strategy`]) returns
//! exactly those bytes or an explicit error — never other bytes, never an older version,
//! never zeroes — until the page is written again or freed.** It holds on both engines,
//! under faults, concurrency, swapoff, and storage that changes underneath. The means:
//! - *End-to-end checksums* ([`Checksum`], CRC32C by default): each page's checksum is
//!   computed in `putpages` and kept in memory in the object's metadata beside its block
//!   (`swmeta`), never on the storage (where a stale or misdirected page would carry a
//!   matching one). Every read checks it: a mismatch is [`PagerError::Corrupt`], counted
//!   per device ([`DeviceStats::corrupt`]), and the bytes are never returned (read-around
//!   pages that fail are left out of the range returned; swapoff drops such a page and
//!   marks it, so later reads of it are `Corrupt` too). `copy` moves checksums with blocks.
//! - *One write per page at a time*, as the seed's busy page: a `putpages` of a page whose
//!   previous write is in flight waits for it, so an older write can never be installed
//!   over a newer one, nor a newer failure drop an acknowledged older one.
//! - *Failures absorbed*: a write that fails is retried at once on another area while the
//!   pager still holds the data; the caller sees `Ok` if any area took it. An area with
//!   [`FAILING_AFTER`] write errors in a row is marked [`DeviceState::Failing`]: no new
//!   allocations, a [`PagerEvent::DeviceFailing`]; `swapoff` drains it. A sync write that
//!   no area takes is `Error` and the previous copy stays; an async one (already
//!   acknowledged) leaves the page marked lost: reads are [`PagerError::WriteLost`], never
//!   the older copy, and [`Pager::take_async_failures`] reports it once, as `fsync` reports
//!   write-back errors.
//! - *Losses are explicit*: a page a forced swapoff drops (its device unreadable) reads as
//!   [`PagerError::Dropped`], never as a hole (which `strategy` would read as zeroes).
//!
//! # The lock rule
//! **Nothing waits while holding a lock that a completion callback needs.** Completions
//! run on the engine's threads — io_uring has a single reaper — and take the object's lock
//! and the space lock; one callback blocked on a lock stalls every completion behind it,
//! including the one the waiter waits for. So: a wait for a write in flight (getpages,
//! putpages, strategy, copy) holds at most the object's own lock through its condition
//! variable (which releases it while waiting); `copy` waits holding only the source's lock
//! and takes the destination's after; swapoff registers each cluster read only while it is
//! in flight and holds no lock while it waits for completions or pbufs; no lock is held
//! across a `submit` (an io_uring submit may wait for ring space), and callbacks never wait.
//!
//! # The job
//! - Swap areas are added and removed at runtime ([`Pager::swapon`], [`Pager::swapoff`]).
//!   Each gets a range of global block numbers (`u32`), with a one-page gap after it so no
//!   I/O can span two areas, and its own blist over its data pages.
//! - An [`Object`] is a sparse array of pages (the seed's `OBJT_SWAP` object), named or
//!   anonymous. [`Pager::putpages`] writes pages in clusters to freshly allocated swap,
//!   [`Pager::getpages`] reads a page with its swap-contiguous neighbours, and the other
//!   operations (`haspage`, `unswapped`, `freespace`, `reserve`, `copy`, `strategy`) follow
//!   the seed's functions of the same names.
//! - Allocation goes by priority, then rotates through the areas of one priority every
//!   `interleave` blocks (the seed's `dmmax` stripe); a cluster never crosses a stripe.
//!
//! # The seed, operation by operation
//! | seed (`swap_pager.c`)                     | here                                   |
//! |-------------------------------------------|----------------------------------------|
//! | `swap_pager_init`, `swap_pager_swap_init` | [`Pager::new`] (pbuf pools from `nswbuf`) |
//! | `swap_pager_alloc`, `NOBJLIST` lookup     | [`Pager::alloc_object`], [`Pager::lookup_object`] |
//! | `swap_pager_dealloc`                      | dropping the last [`Object`]           |
//! | `swp_pager_getswapspace` / `freeswapspace`| `space::Space::alloc` / `free` (per-area blists) |
//! | `swp_sizecheck`                           | `Space::sizecheck`, [`PagerEvent`]s    |
//! | `swap_pager_putpages`, `swp_pager_async_iodone` | [`Pager::putpages`]              |
//! | `swap_pager_getpages`                     | [`Pager::getpages`]                    |
//! | `swap_pager_haspage`                      | [`Pager::haspage`]                     |
//! | `swap_pager_unswapped`                    | [`Pager::unswapped`]                   |
//! | `swap_pager_freespace`                    | [`Pager::freespace`]                   |
//! | `swap_pager_reserve`                      | [`Pager::reserve`] (now all or nothing) |
//! | `swap_pager_copy`                         | [`Pager::copy`]                        |
//! | `swap_pager_strategy`, chain bufs         | [`Pager::strategy`]                    |
//! | the `swap_async_max` sysctl               | [`Pager::set_swap_async_max`]          |
//! | `swp_pager_meta_*`                        | the `swmeta` crate, one per object     |
//! | (later FreeBSD) `swapon`, `swapoff_one`   | [`Pager::swapon`], [`Pager::swapoff`]  |
//!
//! Where we differ from the seed, on purpose: a write failure quarantines its block (the
//! seed's comment wished it could) and is retried on another area; pages carry checksums;
//! the old copy of a page is freed only after the new one
//! is written (the seed frees it at submit time, relying on the busy page); allocation
//! halves down to one block instead of stopping at four, so FAIL means swap is really out;
//! and areas have their own blists and priorities instead of one global stripe.
//!
//! # Invariants
//! - **No block leaks or is used twice.** Every allocated block is in exactly one place:
//!   an object's metadata, an I/O in flight, the deferred-free list of an object being
//!   read, an area's stashed stripe tail, or quarantine. `avail + used + bad == usable`
//!   holds per area at rest.
//! - **A page's last acknowledged copy is never dropped by an error**, except an async
//!   write that fails on every area: then the page reads as an error (see above). A write
//!   goes to a new block; the old block is freed only after the new one is written. A
//!   failed write quarantines its block (never allocated again).
//! - **A failed read is an error, never zeroes; a failed checksum is an error, never data.**
//! - **I/O runs outside locks.** Locks are held only to change metadata and allocators;
//!   the lock order is object -> space, and two objects are locked in id order.
//! - **A block is not reused while it is being read.** Each read registers its block range
//!   with its object; a block freed meanwhile is parked until no read covers it, and no
//!   longer (so a swapoff pass does not hold what clients free during it).
//! - **Sequential pageout stripes exactly.** The tail of a run trimmed at a stripe end is
//!   the area's next allocation (the seed's first-fit blist gave it out next by itself).
//!
//! # What it must never do
//! Panic on I/O errors or full swap, touch a device it did not open, or hold a lock across
//! an I/O. (It does panic on caller bugs: `putpages` data that is not whole pages, or an
//! object used with a pager that did not make it.)
//!
//! # Threads
//! Every operation may be called from any thread. Pages in flight are tracked per object:
//! `getpages` and `haspage` of a page whose write is in flight wait for it (the seed's
//! `PG_SWAPINPROG` sleep, counted as `intrans`), so a page is seen as soon as `putpages`
//! returns, even `Pend`.
//!
//! # Example
//! ```no_run
//! use pager::{Pager, PagerConfig, PutMode, PageResult, SwaponOptions};
//! let pager = Pager::new(PagerConfig::default())?;
//! pager.swapon("/dev/loop7".as_ref(), SwaponOptions::default())?;
//! let obj = pager.alloc_object(None, 16);
//! let page = vec![7u8; device::PAGE_SIZE];
//! assert_eq!(pager.putpages(&obj, 3, &page, PutMode::Sync), vec![PageResult::Ok]);
//! let mut back = vec![0u8; device::PAGE_SIZE];
//! pager.getpages(&obj, 3, 0, 0, &mut back)?;
//! assert_eq!(back, page);
//! # Ok::<(), pager::PagerError>(())
//! ```

mod config;
mod core;
mod drain;
mod error;
mod events;
mod getpages;
mod integrity;
mod io;
mod object;
mod objlock;
mod objstate;
mod ops;
mod pbuf;
mod putpages;
mod snapshot;
mod space;
pub mod stats;
mod strategy;
mod swapoff;
mod swapon;
mod verify;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

pub use config::{
    Checksum, DeviceId, PagerConfig, SwapoffOptions, SwapoffReport, SwaponOptions,
    default_max_area_bytes,
};
pub use device::PAGE_SIZE;
pub use error::PagerError;
pub use io::{AsyncCallback, AsyncDone, Bio, PageResult, PagerEvent, PutMode};
pub use object::Object;
pub use space::FAILING_AFTER;
pub use stats::{
    Counters, DeviceState, DeviceStats, FragStats, Hysteresis, LastError, PagerStats, PbufStats,
    PoolStats, Tunables,
};
pub use verify::{VerifyError, Where};

/// The swap pager: swap areas, objects, pbuf pools, counters. `Send + Sync`; clone it (a
/// cheap handle) or share it with `Arc` between threads.
#[derive(Clone)]
pub struct Pager {
    core: Arc<core::Core>,
    objects: Arc<object::Objects>,
}

impl std::fmt::Debug for Pager {
    /// A summary: the core holds every blist, far too much to print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("engine", &self.core.engine().kind())
            .field("devices", &self.devices())
            .field("tunables", &self.core.tun)
            .finish_non_exhaustive()
    }
}

impl Pager {
    /// A pager with no swap area yet (`swap_pager_init` + `swap_pager_swap_init`): starts
    /// the I/O engine and sizes the pbuf pools from `nswbuf`.
    pub fn new(cfg: PagerConfig) -> Result<Pager, PagerError> {
        check_config(&cfg)?;
        // No registered files: the ring would keep an area's file open for up to ~100 ms
        // after swapoff drops it, and an `O_EXCL` reopen right after swapoff would fail.
        let engine = device::Engine::with_config(device::EngineConfig {
            kind: cfg.engine,
            register_files: false,
            ..device::EngineConfig::default()
        })?;
        Ok(Pager {
            core: Arc::new(core::Core::new(&cfg, engine)),
            objects: Arc::default(),
        })
    }

    /// Adds the swap area at `path` (header required; see `swapctl mkswap`). It gets the
    /// lowest free range of global block numbers that fits, and its blist frees every data
    /// page except the header's bad pages. Safe while paging goes on. Refuses an area that
    /// is already on and one whose blocks would not fit `u32`.
    pub fn swapon(&self, path: &Path, opts: SwaponOptions) -> Result<DeviceId, PagerError> {
        self.core.swapon(path, opts)
    }

    /// Removes an area: stops allocating on it (fills its blist), reads every page on it
    /// back in clusters and rewrites it elsewhere, pass after pass until none is left, then
    /// closes it: when this returns, the device's file is closed (an `O_EXCL` open of it
    /// succeeds). Readers and writers go on meanwhile and always see correct data.
    /// Refuses up front, changing nothing, when the other areas cannot hold its pages
    /// ("not enough free swap: need N, have M"). `progress(moved, total)` is called after
    /// every cluster. A failed device needs `force`, which drops its pages (`lost`).
    pub fn swapoff(
        &self,
        dev: DeviceId,
        opts: SwapoffOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SwapoffReport, PagerError> {
        self.core.swapoff(&self.objects, dev, opts, progress)
    }

    /// The id of the area opened from `path` (compared by device/inode, so another path to
    /// the same device or file finds it too).
    pub fn device_id(&self, path: &Path) -> Option<DeviceId> {
        self.core.device_id(path)
    }

    /// The ids of all areas, in swapon order.
    pub fn devices(&self) -> Vec<DeviceId> {
        self.core.space.lock().areas.iter().map(|a| a.id).collect()
    }

    /// The open area behind `dev`: its header, stats and [`device::FaultInjector`]
    /// (`area.faults()`) for tests. Holding the `Arc` keeps the device open after a
    /// swapoff (a loop device with autoclear stays attached until it is dropped).
    pub fn area(&self, dev: DeviceId) -> Option<Arc<device::SwapArea>> {
        let space = self.core.space.lock();
        space.index(dev).map(|i| Arc::clone(&space.areas[i].area))
    }

    /// A new object of `size_pages` pages (`swap_pager_alloc`). With a handle, an existing
    /// object of that handle is returned instead (the seed's `NOBJLIST` lookup), so
    /// unrelated users can share it.
    /// It cannot fail: an object is only metadata until its pages are put.
    pub fn alloc_object(&self, handle: Option<&str>, size_pages: u64) -> Object {
        self.objects.alloc(&self.core, handle, size_pages)
    }

    /// The live named object with `handle` (`vm_pager_object_lookup`).
    pub fn lookup_object(&self, handle: &str) -> Option<Object> {
        self.objects.lookup(handle)
    }

    /// Pages `start..start+n` out, `data.len() == n * PAGE_SIZE` (`swap_pager_putpages`).
    /// Each cluster of up to `max_cluster` pages gets new swap (largest run first, halving
    /// on failure, trimmed at stripe boundaries) and one write; a page's previous block is
    /// freed once the new one is written. A page whose previous write is still in flight
    /// waits for it first. A write that fails is retried at once on other areas. With
    /// checksums, each page's CRC32C is computed here. `data` is free again when this
    /// returns, even for `Async`: an async put copies it into pbufs; a sync put of at most
    /// one cluster (`max_cluster` pages) from page-aligned memory (whole pages,
    /// [`device::Engine::lendable`]) writes straight from it on the caller's thread, and
    /// other memory, or a longer call (whose clusters go out together), is copied.
    /// Per page: `Ok`, `Pend`, `Fail`, `Error` (see [`PageResult`]).
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of `PAGE_SIZE` (a caller bug).
    pub fn putpages(
        &self,
        obj: &Object,
        start: u64,
        data: &[u8],
        mode: PutMode,
    ) -> Vec<PageResult> {
        self.check_object(obj);
        self.core.putpages(&obj.inner, start, data, mode)
    }

    /// Reads page `pindex` and, in the same I/O, neighbours contiguous in swap on the same
    /// device and stripe (`swap_pager_getpages`). `out` covers pages
    /// `pindex - max_behind ..= pindex + max_ahead` (so `max_behind <= pindex`); returns the
    /// indices filled, which always include `pindex`. Waits if the page's write is in
    /// flight. No block: [`PagerError::NotOnSwap`]; failed read: [`PagerError::Read`];
    /// checksum mismatch: [`PagerError::Corrupt`] (neighbours that fail theirs are left
    /// out of the range, and wiped in `out`); last async write failed everywhere:
    /// [`PagerError::WriteLost`]. After a failed read the pages it was to fill are wiped.
    /// Page-aligned `out` is read into directly (no pbuf, no copy); other memory through a
    /// pbuf and one copy.
    pub fn getpages(
        &self,
        obj: &Object,
        pindex: u64,
        max_behind: u64,
        max_ahead: u64,
        out: &mut [u8],
    ) -> Result<Range<u64>, PagerError> {
        self.check_object(obj);
        self.core
            .getpages(&obj.inner, pindex, max_behind, max_ahead, out)
    }

    /// Reads every page of `pindex .. pindex + out.len() / PAGE_SIZE` into `out`, with one
    /// read per run of them contiguous on swap, each page read once: per page `Ok(true)`
    /// (read), `Ok(false)` (not on swap: zeroes), or its error as [`Pager::getpages`] gives
    /// it (the page wiped). A page that fails its checksum is counted corrupt once per call,
    /// however many of its run fail too; a failed read is the error of the run's first
    /// page, and the pages after it are tried again.
    ///
    /// # Panics
    /// If `out.len()` is not a multiple of `PAGE_SIZE` (a caller bug).
    pub fn getpages_each(
        &self,
        obj: &Object,
        pindex: u64,
        out: &mut [u8],
    ) -> Vec<Result<bool, PagerError>> {
        assert!(out.len().is_multiple_of(PAGE_SIZE), "out is whole pages");
        self.check_object(obj);
        self.core.getpages_each(&obj.inner, pindex, out)
    }

    /// `Some((before, after))` if the page has swap: how many pages right before and after
    /// it are contiguous in swap (up to `max_cluster/2 - 1` each, as the seed) — what one
    /// `getpages` could bring in with it (`swap_pager_haspage`).
    pub fn haspage(&self, obj: &Object, pindex: u64) -> Option<(u64, u64)> {
        self.check_object(obj);
        self.core.haspage(&obj.inner, pindex)
    }

    /// The page was dirtied: drop its swap block (`swap_pager_unswapped`).
    pub fn unswapped(&self, obj: &Object, pindex: u64) {
        self.check_object(obj);
        self.core.freespace(&obj.inner, pindex, 1)
    }

    /// Frees the swap of pages `start..start+n` (`swap_pager_freespace`).
    pub fn freespace(&self, obj: &Object, start: u64, n: u64) {
        self.check_object(obj);
        self.core.freespace(&obj.inner, start, n)
    }

    /// Gives pages `start..start+n` swap blocks without writing them (`swap_pager_reserve`):
    /// all or nothing. Their previous blocks are freed; their content is undefined.
    pub fn reserve(&self, obj: &Object, start: u64, n: u64) -> Result<(), PagerError> {
        self.check_object(obj);
        self.core.reserve(&obj.inner, start, n)
    }

    /// Moves `src`'s blocks at `offset..offset+dst.size_pages()` into `dst`'s holes at
    /// `0..dst.size_pages()`; where `dst` has a block, `src`'s is freed
    /// (`swap_pager_copy`). With `destroy_source`, all of `src`'s remaining swap is freed
    /// and a named `src` can no longer be looked up. Copying an object onto itself does
    /// nothing. Metadata only: each page's checksum moves with its block, and a page of
    /// `src` marked lost stays lost in `dst`. Waits (holding no lock a completion needs)
    /// until no read of `src` and no write of the pages it gives is in flight.
    pub fn copy(&self, src: &Object, dst: &Object, offset: u64, destroy_source: bool) {
        self.check_object(src);
        self.check_object(dst);
        self.core
            .copy(&src.inner, &dst.inner, offset, destroy_source)
    }

    /// Block-device style I/O over an object (`swap_pager_strategy`, FreeBSD's `md -t swap`):
    /// reads fill unmapped pages with zeroes, writes allocate, deletes free. Anything not
    /// page aligned is [`PagerError::Unaligned`] and does nothing.
    pub fn strategy(&self, obj: &Object, bio: Bio<'_>) -> Result<(), PagerError> {
        self.check_object(obj);
        self.core.strategy(&obj.inner, bio)
    }

    /// Sets the live limit of in-flight async write clusters **per swap area in
    /// service** (allocatable: not draining, failing or failed), clamped to
    /// `1..=nswbuf/2` as the seed does; the async pool then holds `n × areas` pbufs, at
    /// most `nswbuf/2` in all ([`PbufStats::async_write`]`.max` shows the total). Striping
    /// spreads a pageout over the areas, so each device gets about `n` writes in flight
    /// however many there are; the seed's one global limit (4, for one disk) left
    /// several devices mostly idle. Lowering takes effect as writes complete. Returns the
    /// per-area value in force.
    pub fn set_swap_async_max(&self, n: u64) -> u64 {
        let n = core::clamp_async(n, self.core.tun.nswbuf);
        let space = self.core.space.lock();
        self.core
            .async_max
            .store(n, std::sync::atomic::Ordering::Relaxed);
        self.core.retune_async(&space);
        n
    }

    /// The pages of `obj` whose async `putpages` (acknowledged with `Pend`) failed on every
    /// area since the last call, ascending and each once — the way `fsync` reports
    /// write-back errors. Reads of those pages return [`PagerError::WriteLost`] until they
    /// are written again or freed; the previous copy is never handed out instead. Call it
    /// after [`Pager::wait_async`] to learn the fate of everything put so far.
    pub fn take_async_failures(&self, obj: &Object) -> Vec<u64> {
        self.check_object(obj);
        let mut failed = std::mem::take(&mut obj.inner.st.lock().async_failures);
        failed.sort_unstable();
        failed.dedup();
        failed
    }

    /// Blocks until no async `putpages` is in flight (their callbacks have run).
    pub fn wait_async(&self) {
        let mut n = self.core.async_batches.lock();
        while *n > 0 {
            self.core.async_idle.wait(&mut n);
        }
    }

    /// A channel of [`PagerEvent`]s from now on (hysteresis, devices). Unbounded; drop the
    /// receiver to unsubscribe.
    pub fn subscribe(&self) -> crossbeam_channel::Receiver<PagerEvent> {
        self.core.events.subscribe()
    }

    /// Where page `pindex` of `obj` is on swap: its area and the page in that area (for
    /// tools and tests; the answer may change as soon as it is returned).
    pub fn locate(&self, obj: &Object, pindex: u64) -> Option<(DeviceId, u64)> {
        self.check_object(obj);
        self.core.locate(&obj.inner, pindex)
    }

    /// Checks that the allocators and every object's metadata agree: per area
    /// `avail + used + quarantined + filled == usable`, every mapped block allocated and used
    /// once, and, when no I/O is in flight, blocks held == blocks used. For tests and
    /// debugging: it locks every object at once.
    pub fn verify(&self) -> Result<(), VerifyError> {
        self.core.verify(&self.objects)
    }

    /// A snapshot for monitors; cheap enough to call every 100 ms and from many clients:
    /// the space lock that paging needs is held only to copy counters. Each device's
    /// `frag` is left empty ([`FragStats::default`]); ask [`Pager::stats_with_frag`] or
    /// [`Pager::frag`] for it.
    pub fn stats(&self) -> PagerStats {
        self.core.stats(&self.objects)
    }

    /// [`Pager::stats`] with every device's `frag` filled in. Walks each area's whole free
    /// list (under the space lock, one area at a time): for a fragmentation view, not for
    /// polling many times a second.
    pub fn stats_with_frag(&self) -> PagerStats {
        self.core.stats_with_frag(&self.objects)
    }

    /// The free-space fragmentation of area `dev` (its blist's `stats()`), or `None` if
    /// no such area is on.
    pub fn frag(&self, dev: DeviceId) -> Option<FragStats> {
        self.core.frag(dev)
    }

    /// Objects belong to the pager that made them: using one with another pager would mix
    /// two block spaces.
    fn check_object(&self, obj: &Object) {
        assert!(
            Arc::ptr_eq(&obj.inner.core, &self.core),
            "object {} belongs to another pager",
            obj.id()
        );
    }
}

/// Refuses configurations the pager cannot run with.
fn check_config(cfg: &PagerConfig) -> Result<(), PagerError> {
    let bad = |what: &str| {
        Err(PagerError::Config {
            what: what.to_owned(),
        })
    };
    if cfg.max_cluster == 0 {
        return bad("max_cluster must be at least 1 page");
    }
    if cfg.nswbuf == 0 {
        return bad("nswbuf must be at least 1");
    }
    if cfg.nswap_hiwat < cfg.nswap_lowat {
        return bad("nswap_hiwat must not be below nswap_lowat");
    }
    Ok(())
}
