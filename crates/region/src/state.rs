//! The page states: one state per page of the region (or space), every move between them,
//! and every kernel call that changes a page's mapping. Nothing else in the crate writes a page's
//! state or calls userfaultfd on the region's memory; the fault handlers (`fault.rs`), the
//! prefetch thread (`prefetch.rs`) and the evictor (`evict.rs`) choose *which* pages move,
//! and ask this module to move them.
//!
//! # The rule: the table never disagrees with the kernel
//! A kernel call on a range can stop part way (`UFFDIO_COPY` with `ENOMEM` after some
//! pages, `EEXIST` where a page is mapped already) and the pages before that point are
//! mapped all the same. Each move below takes the call's exact outcome
//! ([`crate::uffd::Outcome`]): the pages the kernel mapped become mapped states, the others
//! stay unmapped ones. A page the kernel calls mapped where the table says it is not
//! (`EEXIST`) is zapped back to unmapped (`MADV_DONTNEED`) before its state is settled, so
//! both sides agree again. A page is never recorded `Poisoned` unless the poison took.
//!
//! # States and moves
//! *Mapped* states have a page table entry in the kernel; *unmapped* ones do not, and a
//! touch of one raises a missing fault. Who moves a page, and with what call; every move
//! is made under the table lock except the kernel calls on pages their mover *owns*
//! (`Loading`: the reader; `Deactivating`, `WritingOut`: the evictor), which no one else
//! may move.
//!
//! | from | to | by | kernel call |
//! |---|---|---|---|
//! | `Absent{swap: false}` | `Resident{dirty}` | handler | `UFFDIO_ZEROPAGE` |
//! | `Absent{swap: true}` | `Loading` | handler, prefetch | — (taken to read) |
//! | `Loading` | `Resident{clean}` | its reader | `UFFDIO_COPY` (WP), pages copied |
//! | `Loading` | `Absent{swap: true}` | its reader | — (not read or not copied) |
//! | `Loading` | `Poisoned` | its reader | `UFFDIO_POISON` (or `mprotect`), read failed |
//! | `Resident{clean}` | `Resident{dirty}` | handler | `UFFDIO_WRITEPROTECT` off |
//! | `Resident` | `Deactivating` | evictor (clock) | — |
//! | `Deactivating` | `Resident` | evictor | — (protect, copy or unmap failed) |
//! | `Deactivating` | `Inactive` | evictor | WP on (dirty), copy to a slot, `MADV_DONTNEED` |
//! | `Deactivating{dirty}` | `Absent{swap: false}` | evictor | as above, the page all zeroes |
//! | `Inactive` | `Resident` | handler (hint fault) | `UFFDIO_COPY` from the slot |
//! | `Inactive{clean}` | `Absent{swap: true}` | evictor | — (its swap copy is valid) |
//! | `Inactive{dirty}` | `WritingOut` | evictor | — |
//! | `WritingOut` | `Absent{swap: true}` | evictor | — (`putpages` done) |
//! | `WritingOut` | `Inactive{dirty}` | evictor | — (`putpages` failed) |
//! | any unmapped | `Poisoned` | [`Table::fail`] | `UFFDIO_POISON`: the region is dead |
//! | `Unused` | `Resident{dirty}`, `Absent{swap: false}` | [`Table::adopt`] | — (registered under the lock) |
//! | `Resident` (missing fault) | `Resident{dirty}` | handler | `UFFDIO_ZEROPAGE` (the program dropped it) |
//! | unmapped, no one's | `Absent{swap: false}`, `Unused` | [`Table::discard`] (event) | — (swap, slot freed) |
//! | `Resident` | `Resident{dirty}`, `Unused` | [`Table::discard`] (event) | — (the kernel drops it) |
//! | `Loading`, `Deactivating`, `WritingOut` | marked | [`Table::discard`] (event) | — (the owner settles it as above) |
//!
//! In a space (see the crate doc) pages come from adopted memory and leave it: an index in
//! no segment is `Unused`, and every walker skips it. A page the program drops or unmaps
//! while its owner holds it is only marked; the owner's settling move sees the mark and
//! puts the page where the event meant, freeing its swap and slot. With the memory events
//! on, no `madvise` is made under the table lock (it would wait for a handler to read its
//! event): a page found mapped where the table says not (`EEXIST`) is left so.
//!
//! A fault on a page in an owned state waits on `changed` until its owner settles it.
//!
//! # Failures the caller retries
//! A move whose kernel call fails leaves the page unmapped and its state as before; the
//! handler wakes the toucher, whose access faults again and is served afresh. Failures
//! in a row on one page are counted ([`Table::retry`]); past [`MAX_FAULT_RETRIES`] the
//! fault is ended with `SIGBUS` in the faulting thread instead of bouncing for ever.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use device::PAGE_SIZE;

use std::sync::Arc;

use parking_lot::RwLock;

use crate::cache::SlotCache;
use crate::mapping::Calls;
use crate::segments::{Segment, Segments};
use crate::store::Store;
use crate::uffd::{Outcome, Uffd};

const PAGE: u64 = PAGE_SIZE as u64;

/// Failed attempts in a row to serve a fault on one page before the fault gets `SIGBUS`.
/// An injected or transient failure (no memory for a moment) almost never repeats this
/// often; a persistent one must not keep the toucher bouncing between fault and wake.
pub const MAX_FAULT_RETRIES: u8 = 16;

/// Reads of a page mapped writable at once after a store to it clean (see
/// [`Table::map_written_writable`]).
pub const WRITE_TURNS: u8 = 8;

/// Extra turns of the clock hand a refaulting (working set) page survives unreferenced.
pub const ACTIVE_CHANCES: u8 = 1;

/// The state of one page of the region; see the module doc for the moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// Unmapped. `swap`: the object holds the page's bytes on swap; otherwise the page
    /// has never been evicted with data and reads as zeroes.
    Absent { swap: bool },
    /// Unmapped; a reader is bringing it in. Counts as resident.
    Loading,
    /// Mapped. A clean page is write-protected and equal to its swap copy; a dirty page is
    /// writable (or was zero-filled, or its unprotect failed) and its swap copy, if any,
    /// is stale. `referenced`: the clock's second-chance bit.
    Resident { dirty: bool, referenced: bool },
    /// Mapped and write-protected; the evictor is moving it to the inactive list. A store
    /// waits in its write-protect fault.
    Deactivating { dirty: bool },
    /// Unmapped, its bytes in slot `slot` of the inactive cache (counted resident); a touch
    /// maps it back from there without I/O.
    Inactive { slot: u32, dirty: bool },
    /// Unmapped; the evictor is writing it from slot `slot`.
    WritingOut { slot: u32 },
    /// Its read failed (or the region died): every access gets `SIGBUS`.
    Poisoned,
    /// An index no segment uses (its memory left the space, or no memory came yet): every
    /// walker of the table skips it.
    Unused,
}

impl Page {
    /// Whether the page counts as resident (in memory, mapped or held by the region).
    pub fn is_resident(self) -> bool {
        !matches!(self, Page::Absent { .. } | Page::Poisoned | Page::Unused)
    }

    /// Whether the kernel has a page table entry for it.
    fn is_mapped(self) -> bool {
        matches!(self, Page::Resident { .. } | Page::Deactivating { .. })
    }
}

/// The kernel side of the moves: the descriptor, the segments (which address each page
/// index stands for), the other calls on the memory and the inactive cache.
#[derive(Debug)]
pub(crate) struct Mem {
    pub uffd: Uffd,
    pub segs: RwLock<Segments>,
    pub calls: Calls,
    pub cache: SlotCache,
    /// Where the pages live off memory: the moves that let go of a page's swap free it.
    pub store: Arc<dyn Store>,
    /// The descriptor has the memory events (a space's, not a region's): then a
    /// `madvise(MADV_DONTNEED)` by one of the space's threads blocks until a handler reads
    /// the event it raises, so none is ever made under the table lock.
    pub events: bool,
}

/// The address of a page in no segment (it left the space while its owner held it): above
/// every user address space, so each call on it fails (`EINVAL`, `ENOMEM`, `EFAULT`)
/// without touching memory.
pub(crate) const GONE: u64 = 1 << 63;

impl Mem {
    /// The address of page `p` now ([`GONE`] if it is in no segment).
    pub fn addr(&self, p: u64) -> u64 {
        self.segs.read().addr(p).unwrap_or(GONE)
    }

    /// The index of the page holding `addr`, if it is in the space.
    pub fn page_of(&self, addr: u64) -> Option<u64> {
        self.segs.read().page_of(addr)
    }

    /// The indices of page `p`'s segment (empty if it has none): no run of one kernel call
    /// may leave it.
    pub fn bounds(&self, p: u64) -> Range<u64> {
        self.segs.read().bounds(p)
    }

    /// `first..first + len` cut into pieces of contiguous addresses `(first, len, addr)`.
    pub fn split(&self, first: u64, len: u64) -> Vec<(u64, u64, u64)> {
        self.segs.read().split(first, len)
    }

    /// Wakes the threads waiting on a fault at page `p`: they retry the access.
    pub fn wake(&self, p: u64) {
        let _ = self.uffd.wake(self.addr(p), PAGE);
    }

    /// Drops pages `p..p + n` (one segment): the next access is a missing fault.
    pub fn drop_pages(&self, p: u64, n: u64) -> std::io::Result<()> {
        self.calls.drop_pages(self.addr(p), n * PAGE)
    }

    /// Makes page `p` inaccessible (the poison fallback before 6.6).
    pub fn forbid(&self, p: u64) -> std::io::Result<()> {
        self.calls.forbid(self.addr(p))
    }

    /// Copies page `p` (mapped and write-protected: the evictor's) into `slot`. Returns
    /// whether it was all zeroes, or `None` if it could not be read (the program unmapped
    /// or moved it meanwhile). A region's own memory is read with plain loads; adopted
    /// memory, which the program may unmap at any moment, with `process_vm_readv(2)`.
    pub fn fill_slot(&self, slot: u32, p: u64) -> Option<bool> {
        let (addr, owned) = {
            let segs = self.segs.read();
            (segs.addr(p)?, segs.owned(p))
        };
        if owned {
            // SAFETY: the slot is the caller's; page `p` is mapped and write-protected in
            // memory the space mapped itself (no store changes it while it is copied).
            return Some(unsafe { self.cache.fill(slot, addr as *const u8) });
        }
        if !crate::mapping::read_page(addr, self.cache.slot(slot)) {
            return None;
        }
        // SAFETY: the slot is the caller's, just written.
        Some(unsafe { self.cache.bytes(slot) }.iter().all(|&b| b == 0))
    }

    /// Maps `range` from `buf` (which starts at page `first`) write-protected with one
    /// `UFFDIO_COPY` (retried from where it stopped on `EAGAIN`), waking their waiters.
    /// Reports exactly what was mapped; the caller settles the states with
    /// [`Table::loaded`] under the lock.
    ///
    /// The pages must be the caller's (`Loading`), so no one else maps them meanwhile, and
    /// in one segment.
    pub fn install(&self, first: u64, buf: &[u8], range: Range<u64>) -> Outcome {
        let off = ((range.start - first) * PAGE) as usize;
        let len = (range.end - range.start) * PAGE;
        assert!(off + len as usize <= buf.len());
        // SAFETY: `buf[off..off+len]` holds the pages read (checked above); the destination
        // pages are Loading, owned by the caller, in one segment of registered memory.
        unsafe {
            self.uffd
                .copy(self.addr(range.start), buf[off..].as_ptr(), len, true)
        }
    }
}

/// Where a fault stands after a failed attempt: see [`Table::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Wake the toucher: it faults again and is served afresh.
    Again,
    /// Too many failures in a row: end the fault with `SIGBUS`.
    GiveUp,
}

#[derive(Debug)]
pub(crate) struct Table {
    pages: Vec<Page>,
    /// Pages in a resident state (see [`Page::is_resident`]).
    pub resident: u64,
    /// The clock hand.
    pub hand: u64,
    /// Mapped by prefetch and not yet counted as a hit nor evicted.
    pub prefetched: Vec<bool>,
    /// How many more times a read maps the page writable at once
    /// ([`Table::map_written_writable`]): set to [`WRITE_TURNS`] by a store to the page
    /// clean (a write-protect fault), one less at each eviction of it dirty, zero at an
    /// eviction clean.
    written: Vec<u8>,
    /// Pages evicted so far (wrapping): the clock that refault distances are read on.
    pub evictions: u32,
    /// The value of `evictions` when each page was last evicted; 0 never.
    evicted_at: Vec<u32>,
    /// Extra turns of the hand a resident page survives unreferenced: set when it
    /// refaults soon after its eviction (see `evict.rs`).
    pub chances: Vec<u8>,
    free_slots: Vec<u32>,
    /// Inactive pages, oldest first (entries of pages mapped back since are stale).
    pub inactive: VecDeque<u64>,
    /// Failed attempts in a row to serve a fault, per page (absent: none).
    retries: HashMap<u64, u8>,
    /// The region is dead (its handlers are gone): every unmapped page is poisoned.
    failed: bool,
    /// Pages the program dropped (`false`) or unmapped (`true`) while their owner (a
    /// reader, the evictor) held them: the owner settles them ([`Table::take_discarded`]).
    discarded: HashMap<u64, bool>,
    /// `REMOVE` events the evictor's own drops raise, not yet read, per page.
    expected: HashMap<u64, u32>,
    /// The evictor stands still while a fork is prepared (and says so here).
    pub evictor_parked: bool,
    /// Inactive cache slots in all.
    slots: u64,
}

impl Table {
    /// An empty table with `slots` inactive cache slots (see [`Table::grow`]).
    pub fn new(slots: u64) -> Table {
        Table {
            pages: Vec::new(),
            resident: 0,
            hand: 0,
            prefetched: Vec::new(),
            written: Vec::new(),
            evictions: 0,
            evicted_at: Vec::new(),
            chances: Vec::new(),
            free_slots: (0..slots as u32).rev().collect(),
            inactive: VecDeque::new(),
            retries: HashMap::new(),
            failed: false,
            discarded: HashMap::new(),
            expected: HashMap::new(),
            evictor_parked: false,
            slots,
        }
    }

    /// The state of page `p` (`Unused` past the end, as after the space dropped).
    pub fn page(&self, p: u64) -> Page {
        self.pages.get(p as usize).copied().unwrap_or(Page::Unused)
    }

    /// Indices in the table (used or not).
    pub fn len(&self) -> u64 {
        self.pages.len() as u64
    }

    /// Makes room for indices below `end`; the new ones are `Unused`.
    pub fn grow(&mut self, end: u64) {
        let n = end as usize;
        if n <= self.pages.len() {
            return;
        }
        self.pages.resize(n, Page::Unused);
        self.prefetched.resize(n, false);
        self.written.resize(n, 0);
        self.evicted_at.resize(n, 0);
        self.chances.resize(n, 0);
    }

    /// `Unused` pages `first..` come into use, one state per page: `true` (the kernel has
    /// data for it) `Resident{dirty}`, `false` `Absent{swap: false}`. The caller holds
    /// the lock from before the memory is registered, so no fault sees them unused.
    pub fn adopt(&mut self, first: u64, has_data: &[bool]) {
        for (k, &data) in has_data.iter().enumerate() {
            let p = first + k as u64;
            debug_assert_eq!(self.page(p), Page::Unused);
            let to = if data {
                Page::Resident {
                    dirty: true,
                    referenced: false,
                }
            } else {
                Page::Absent { swap: false }
            };
            self.set(p, to);
            let i = p as usize;
            self.prefetched[i] = false;
            self.written[i] = 0;
            self.evicted_at[i] = 0;
            self.chances[i] = 0;
        }
    }

    /// Takes prefetched page `q`'s mark (whether it was still marked).
    pub fn take_prefetched(&mut self, q: u64) -> bool {
        self.prefetched
            .get_mut(q as usize)
            .is_some_and(std::mem::take)
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Inactive cache slots in use.
    pub fn slots_used(&self) -> u64 {
        self.slots - self.free_slots.len() as u64
    }

    pub fn free_slots(&self) -> u64 {
        self.free_slots.len() as u64
    }

    fn set(&mut self, p: u64, to: Page) {
        let from = std::mem::replace(&mut self.pages[p as usize], to);
        match (from.is_resident(), to.is_resident()) {
            (false, true) => self.resident += 1,
            (true, false) => self.resident -= 1,
            _ => {}
        }
    }

    /// Page `p` was just evicted: stamp it on the eviction clock.
    fn evicted(&mut self, p: u64) {
        self.evictions = self.evictions.wrapping_add(1).max(1);
        self.evicted_at[p as usize] = self.evictions;
        self.chances[p as usize] = 0;
        self.prefetched[p as usize] = false;
    }

    /// Page `p` is being faulted back in. If fewer than `limit` pages were evicted since it
    /// went out, a memory twice as large would have kept it: it is part of the working
    /// set, and gets [`ACTIVE_CHANCES`] extra turns of the hand. Returns whether it did.
    pub fn refault(&mut self, p: u64, limit: u64) -> bool {
        let at = self.evicted_at[p as usize];
        let hot = at != 0 && u64::from(self.evictions.wrapping_sub(at)) <= limit;
        self.chances[p as usize] = if hot { ACTIVE_CHANCES } else { 0 };
        hot
    }

    /// A fault on page `p` could not be served this time. Counts it; says whether to let
    /// the toucher try again or to give up on the fault.
    pub fn retry(&mut self, p: u64) -> Retry {
        let n = self.retries.entry(p).or_insert(0);
        *n += 1;
        if *n >= MAX_FAULT_RETRIES {
            self.retries.remove(&p);
            Retry::GiveUp
        } else {
            Retry::Again
        }
    }

    /// A fault on page `p` was served: its failures in a row start again from zero.
    fn served(&mut self, p: u64) {
        if !self.retries.is_empty() {
            self.retries.remove(&p);
        }
    }

    /// A page the kernel reported mapped (`EEXIST`) where the table has it unmapped: zap it
    /// so the two agree. Under the lock, on a page whose state the caller holds.
    fn zap(&self, mem: &Mem, p: u64, outcome: &Outcome) {
        if mem.events {
            // Not under the table lock (see `Mem::events`): the page stays as the kernel
            // has it, and `verify` would say so.
            return;
        }
        let eexist = outcome
            .error
            .as_ref()
            .is_some_and(|e| e.raw_os_error() == Some(libc::EEXIST));
        if eexist {
            let _ = mem.drop_pages(p, 1);
        }
    }

    /// An unmapped page goes to state `to`; in a dead region it is poisoned instead, so no
    /// touch of it can wait for a handler that is gone.
    fn unmapped(&mut self, mem: &Mem, p: u64, to: Page) {
        if self.failed {
            self.set(p, Page::Poisoned);
            let _ = poison_page(mem, p);
        } else {
            self.set(p, to);
        }
    }

    // ---- memory events -------------------------------------------------------------

    /// Page `q` lost its data (the program dropped it: `gone` false) or left the space
    /// (`gone`). Its swap copy and inactive slot are freed; a page no one holds becomes
    /// `Absent{swap: false}` at once (it reads as zeroes, as without the space) or
    /// `Unused` with its index given back; a `Resident` page stays mapped, dirty (the kernel
    /// drops it, before or after this, and a fault on it then maps zeroes:
    /// [`Table::refill_dropped`]); a page a reader or the evictor holds is marked, and its
    /// owner settles it so ([`Table::take_discarded`]). Returns whether it was in use.
    pub fn discard(&mut self, mem: &Mem, q: u64, gone: bool) -> bool {
        match self.page(q) {
            Page::Unused => return false,
            Page::Loading | Page::Deactivating { .. } | Page::WritingOut { .. } => {
                *self.discarded.entry(q).or_insert(false) |= gone;
                return true;
            }
            Page::Inactive { slot, .. } => self.free_slots.push(slot),
            Page::Resident { referenced, .. } if !gone => {
                mem.store.freespace(q, 1);
                self.set(
                    q,
                    Page::Resident {
                        dirty: true,
                        referenced,
                    },
                );
                return true;
            }
            Page::Resident { .. } | Page::Absent { .. } | Page::Poisoned => {}
        }
        mem.store.freespace(q, 1);
        self.leave(mem, q, gone);
        true
    }

    /// Page `q`, unmapped and no one's, holds zeroes from now (`Absent{swap: false}`), or
    /// leaves the space (`gone`: `Unused`, its index free for reuse).
    fn leave(&mut self, mem: &Mem, q: u64, gone: bool) {
        let i = q as usize;
        self.written[i] = 0;
        self.evicted_at[i] = 0;
        self.chances[i] = 0;
        self.prefetched[i] = false;
        self.retries.remove(&q);
        if gone {
            self.set(q, Page::Unused);
            mem.segs.write().release(q, 1);
        } else {
            self.set(q, Page::Absent { swap: false });
        }
    }

    /// Whether page `q` was discarded while its owner held it (and whether it left the
    /// space), taking the mark: the owner settles it.
    pub fn take_discarded(&mut self, q: u64) -> Option<bool> {
        if self.discarded.is_empty() {
            return None;
        }
        self.discarded.remove(&q)
    }

    /// `range` (pages a reader holds, just read) up to its first page discarded meanwhile:
    /// only those are mapped, so no discarded page comes back with its old bytes.
    pub fn trim_discarded(&self, range: Range<u64>) -> Range<u64> {
        if self.discarded.is_empty() {
            return range;
        }
        let end = range
            .clone()
            .find(|q| self.discarded.contains_key(q))
            .unwrap_or(range.end);
        range.start..end
    }

    /// An owned page that was discarded goes where the discard meant: its swap and
    /// `slot` freed, `Unused` (gone) or `Absent{swap: false}` (unmapped by its owner), or
    /// `Resident{dirty}` (`mapped`: still mapped; the program's drop unmaps it).
    fn settle_discarded(&mut self, mem: &Mem, q: u64, gone: bool, mapped: bool, slot: Option<u32>) {
        if let Some(slot) = slot {
            self.free_slots.push(slot);
        }
        mem.store.freespace(q, 1);
        if mapped && !gone {
            self.set(
                q,
                Page::Resident {
                    dirty: true,
                    referenced: true,
                },
            );
        } else {
            self.leave(mem, q, gone);
        }
    }

    /// The evictor is about to drop `pages`: each raises one `REMOVE` event of its own.
    pub fn expect_removes(&mut self, pages: &[u64]) {
        for &q in pages {
            *self.expected.entry(q).or_insert(0) += 1;
        }
    }

    /// A `REMOVE` event covers page `q`: whether it was one the evictor raised (taken).
    pub fn consume_expected(&mut self, q: u64) -> bool {
        match self.expected.get_mut(&q) {
            None => false,
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.expected.remove(&q);
                }
                true
            }
        }
    }

    /// Whether any of `pages` still waits for its own `REMOVE` event to be read.
    pub fn expecting(&self, pages: &[u64]) -> bool {
        !self.expected.is_empty() && pages.iter().any(|q| self.expected.contains_key(q))
    }

    /// Forgets what is left of the evictor's expectations for `pages` (events its failed
    /// drops never raised).
    pub fn forget_expected(&mut self, pages: &[u64]) {
        if self.expected.is_empty() {
            return;
        }
        for q in pages {
            self.expected.remove(q);
        }
    }

    // ---- handler moves ---------------------------------------------------------------

    /// `Absent{swap: false}` pages `p..p + n` → `Resident{dirty}`: memory never written
    /// is mapped fresh. With `zeros` (at least `n` zeroed pages: the fault was a store)
    /// the pages are copied in writable, one fault each where the zero page would cost a
    /// copy-on-write fault more at the store; without, the zero page is mapped. A
    /// zero-filled page counts as dirty: the kernel copies the zero page on the first
    /// store without telling us. All come in referenced: a program filling its memory
    /// touches them next (unreferenced, the clock would take them out of order, and
    /// their swap copies would no longer be neighbours).
    /// Returns the pages mapped, a prefix of the run.
    pub fn zero_fill(&mut self, mem: &Mem, p: u64, n: u64, zeros: Option<&[u8]>) -> Range<u64> {
        debug_assert!((p..p + n).all(|q| self.page(q) == Page::Absent { swap: false }));
        let out = match zeros {
            Some(zeros) => {
                assert!(zeros.len() as u64 >= n * PAGE);
                // SAFETY: `zeros` holds `n` pages; the destination pages are unmapped
                // (`Absent`, under the table lock) inside the registered mapping.
                unsafe { mem.uffd.copy(mem.addr(p), zeros.as_ptr(), n * PAGE, false) }
            }
            None => mem.uffd.zeropage(mem.addr(p), n * PAGE),
        };
        let mapped = p..p + out.pages().min(n);
        for q in mapped.clone() {
            self.set(
                q,
                Page::Resident {
                    dirty: true,
                    referenced: true,
                },
            );
        }
        if mapped.contains(&p) {
            self.served(p);
        }
        if mapped.end < p + n {
            self.zap(mem, mapped.end, &out);
        }
        mapped
    }

    /// A missing fault on page `p`, which the table holds `Resident`: either another
    /// handler served it already, or the program dropped it (`madvise(MADV_DONTNEED)`,
    /// `MADV_FREE`: the kernel drops it and tells the space after, if at all) and it reads
    /// as zeroes now. The zero page is mapped there: `EEXIST` says it was mapped (nothing
    /// changes); otherwise the page holds zeroes, dirty, and its swap copy is stale.
    /// Returns whether it was mapped here (the caller frees its swap).
    pub fn refill_dropped(&mut self, mem: &Mem, p: u64) -> bool {
        let Page::Resident { referenced, .. } = self.page(p) else {
            return false;
        };
        if mem.uffd.zeropage(mem.addr(p), PAGE).pages() != 1 {
            return false;
        }
        self.set(
            p,
            Page::Resident {
                dirty: true,
                referenced,
            },
        );
        self.served(p);
        true
    }

    /// The evictor faulted reading `Deactivating` page `p` (its own): the program dropped
    /// the page since it was chosen, so it reads as zeroes. Zeroes are mapped there
    /// write-protected (a store by the program waits in its write-protect fault until the
    /// evictor is done, as for any page it moves), the evictor's read goes on; the state
    /// stays the evictor's to settle.
    pub fn zero_owned(&mut self, mem: &Mem, p: u64, zeros: &[u8]) {
        if !matches!(self.page(p), Page::Deactivating { .. }) {
            return;
        }
        assert!(zeros.len() >= PAGE_SIZE);
        // SAFETY: `zeros` is one page; page `p` is in registered memory, unmapped (the
        // fault says so) and held by the evictor, which waits in that fault.
        let _ = unsafe { mem.uffd.copy(mem.addr(p), zeros.as_ptr(), PAGE, true) };
        mem.wake(p);
    }

    /// `Absent{swap: true}` pages `first..first + n` → `Loading`: taken by the caller to
    /// read.
    pub fn begin_load(&mut self, first: u64, n: u64) {
        for q in first..first + n {
            debug_assert_eq!(self.page(q), Page::Absent { swap: true });
            self.set(q, Page::Loading);
        }
    }

    /// Settles a read of `first..first + n` (all `Loading`, the caller's): the pages the
    /// kernel mapped (`out`, from `mapped_from` on) become `Resident`, clean and
    /// unreferenced but for `hot` (the faulting page if it refaulted soon: it comes in
    /// referenced); the rest go back to `Absent{swap: true}`. A page no longer `Loading`
    /// (the region died meanwhile) is left as it is. Returns the pages mapped.
    pub fn loaded(
        &mut self,
        mem: &Mem,
        first: u64,
        n: u64,
        mapped_from: u64,
        out: Option<&Outcome>,
        hot: Option<u64>,
    ) -> Range<u64> {
        let mapped_end = mapped_from + out.map_or(0, Outcome::pages);
        for q in first..first + n {
            if self.page(q) != Page::Loading {
                continue;
            }
            if let Some(gone) = self.take_discarded(q) {
                let mapped = (mapped_from..mapped_end).contains(&q);
                self.settle_discarded(mem, q, gone, mapped, None);
                continue;
            }
            if (mapped_from..mapped_end).contains(&q) {
                self.set(
                    q,
                    Page::Resident {
                        dirty: false,
                        referenced: hot == Some(q),
                    },
                );
                self.served(q);
            } else {
                if q == mapped_end
                    && let Some(out) = out
                {
                    self.zap(mem, q, out);
                }
                self.unmapped(mem, q, Page::Absent { swap: true });
            }
        }
        mapped_from..mapped_end
    }

    /// Of the pages just read in (`mapped`, `Resident` and clean), those the program
    /// stored to after reading them in lately (a read-modify-write: a sort, a buffer pool)
    /// are made dirty and writable at once: a store to a clean page costs a write-protect
    /// fault, a round trip through a handler. A wrong guess costs a write of unchanged
    /// bytes at eviction, and the guess is made at most [`WRITE_TURNS`] times after the
    /// last write-protect fault (a page stored to once and only read since goes back to
    /// clean evictions). Returns how many were made writable.
    pub fn map_written_writable(&mut self, mem: &Mem, mapped: Range<u64>) -> u64 {
        let mut made = 0;
        let mut q = mapped.start;
        while q < mapped.end {
            if self.written[q as usize] == 0 || !matches!(self.page(q), Page::Resident { .. }) {
                q += 1;
                continue;
            }
            let start = q;
            while q < mapped.end
                && self.written[q as usize] > 0
                && matches!(self.page(q), Page::Resident { .. })
            {
                q += 1;
            }
            self.make_dirty(mem, start..q);
            made += q - start;
        }
        made
    }

    /// `Loading` page `p` could not be read: it becomes `Poisoned` and its toucher is woken
    /// into `SIGBUS` (`UFFDIO_POISON`; before 6.6 `PROT_NONE`, so `SIGSEGV`). If the poison
    /// does not take, the page goes back to `Absent{swap: true}` (its next touch reads it
    /// again) and the toucher, `thread`, is sent `SIGBUS` directly. Returns whether the
    /// page was poisoned.
    pub fn poison(&mut self, mem: &Mem, p: u64, thread: u32) -> bool {
        if self.page(p) != Page::Loading || self.discarded.contains_key(&p) {
            // A page the program dropped meanwhile reads as zeroes: `loaded` settles it.
            return false;
        }
        if poison_page(mem, p) {
            self.set(p, Page::Poisoned);
            return true;
        }
        self.set(p, Page::Absent { swap: true });
        crate::uffd::sigbus_thread(thread);
        mem.wake(p);
        false
    }

    /// `Resident` → `Resident{dirty}` for the pages of `range`, write protection lifted
    /// (under the lock: the evictor protects only pages it saw dirty, so it can never see
    /// a page it thinks clean become writable behind it). Returns whether the kernel lifted
    /// it; if not, the pages stay protected and dirty, and a store takes one more
    /// write-protect fault.
    pub fn make_dirty(&mut self, mem: &Mem, range: Range<u64>) -> bool {
        for q in range.clone() {
            if let Page::Resident { referenced, .. } = self.page(q) {
                self.set(
                    q,
                    Page::Resident {
                        dirty: true,
                        referenced,
                    },
                );
            }
        }
        mem.uffd
            .write_protect(
                mem.addr(range.start),
                (range.end - range.start) * PAGE,
                false,
            )
            .is_ok()
    }

    /// A store to write-protected page `p`: marks it dirty and referenced and lifts the
    /// protection. Returns whether the store can go on (if not, the caller retries).
    pub fn write_fault(&mut self, mem: &Mem, p: u64) -> bool {
        self.written[p as usize] = WRITE_TURNS;
        if let Page::Resident { dirty, .. } = self.page(p) {
            self.set(
                p,
                Page::Resident {
                    dirty,
                    referenced: true,
                },
            );
        }
        let ok = self.make_dirty(mem, p..p + 1);
        if ok {
            self.served(p);
        }
        ok
    }

    /// `Inactive` → `Resident`: a touch maps page `p` back from its slot with no I/O (a
    /// hint fault), referenced (it was in use); a dirty page comes back writable, a clean
    /// one write-protected. Returns whether it was mapped.
    pub fn map_back(&mut self, mem: &Mem, p: u64) -> bool {
        let Page::Inactive { slot, dirty } = self.page(p) else {
            return false;
        };
        // SAFETY: the slot holds page `p`'s bytes and belongs to its Inactive state, which
        // only this call (under the table lock) ends; page `p` is unmapped, inside the
        // registered mapping.
        let out = unsafe {
            mem.uffd
                .copy(mem.addr(p), mem.cache.slot(slot), PAGE, !dirty)
        };
        if out.pages() == 1 {
            self.set(
                p,
                Page::Resident {
                    dirty,
                    referenced: true,
                },
            );
            self.free_slots.push(slot);
            // Touched while off the clock: working set, as a page that refaults soon after
            // its eviction. It gets the same extra turns, or every pass of the hand would
            // take a hot page off again and cost it one more hint fault.
            self.chances[p as usize] = ACTIVE_CHANCES;
            self.served(p);
            return true;
        }
        self.zap(mem, p, &out);
        false
    }

    // ---- evictor moves ---------------------------------------------------------------

    /// The clock hand passed resident page `p`: it loses its second-chance bit.
    pub fn unreference(&mut self, p: u64) {
        if let Page::Resident { dirty, .. } = self.page(p) {
            self.set(
                p,
                Page::Resident {
                    dirty,
                    referenced: false,
                },
            );
        }
    }

    /// `Resident` → `Deactivating`: the clock chose page `p`. Returns whether it was dirty.
    pub fn begin_deactivate(&mut self, p: u64) -> Option<bool> {
        let Page::Resident { dirty, .. } = self.page(p) else {
            return None;
        };
        self.set(p, Page::Deactivating { dirty });
        self.prefetched[p as usize] = false;
        Some(dirty)
    }

    /// `Deactivating` → `Resident`: page `p` could not be moved (its protect, copy or unmap
    /// failed); it stays in memory, referenced. Its slot, if it took one, comes back.
    pub fn keep(&mut self, mem: &Mem, p: u64, slot: Option<u32>) {
        if let Page::Deactivating { .. } = self.page(p)
            && let Some(gone) = self.take_discarded(p)
        {
            self.settle_discarded(mem, p, gone, true, slot);
            return;
        }
        if let Page::Deactivating { dirty } = self.page(p) {
            self.set(
                p,
                Page::Resident {
                    dirty,
                    referenced: true,
                },
            );
        }
        if let Some(slot) = slot {
            self.free_slots.push(slot);
        }
    }

    /// A free slot of the inactive cache, now the caller's.
    pub fn take_slot(&mut self) -> Option<u32> {
        self.free_slots.pop()
    }

    /// `Deactivating` → `Inactive{slot}`: page `p`, its bytes copied into `slot`, was
    /// unmapped. In a dead region it is poisoned instead (and the slot freed).
    pub fn deactivated(&mut self, mem: &Mem, p: u64, slot: u32) {
        let Page::Deactivating { dirty } = self.page(p) else {
            return;
        };
        if let Some(gone) = self.take_discarded(p) {
            self.settle_discarded(mem, p, gone, false, Some(slot));
            return;
        }
        if self.failed {
            self.unmapped(mem, p, Page::Poisoned);
            self.free_slots.push(slot);
            return;
        }
        self.set(p, Page::Inactive { slot, dirty });
        self.inactive.push_back(p);
    }

    /// `Deactivating{dirty}` → `Absent{swap: false}`: page `p` held only zeroes and was
    /// unmapped; its slot (used to look at it) comes back, and the caller frees its stale
    /// swap copy.
    pub fn dropped_zero(&mut self, mem: &Mem, p: u64, slot: u32) {
        if !matches!(self.page(p), Page::Deactivating { .. }) {
            return;
        }
        if let Some(gone) = self.take_discarded(p) {
            self.settle_discarded(mem, p, gone, false, Some(slot));
            return;
        }
        self.unmapped(mem, p, Page::Absent { swap: false });
        self.free_slots.push(slot);
        self.evicted(p);
    }

    /// The oldest inactive page, if any, leaves the list: a clean one becomes
    /// `Absent{swap: true}` here (`Some((p, None))`); a dirty one becomes `WritingOut` and
    /// is returned with its slot, to be written.
    pub fn pop_inactive(&mut self) -> Option<(u64, Option<u32>)> {
        loop {
            let p = self.inactive.pop_front()?;
            // Entries of pages mapped back since are stale: skip them.
            let Page::Inactive { slot, dirty } = self.page(p) else {
                continue;
            };
            let w = &mut self.written[p as usize];
            *w = if dirty { w.saturating_sub(1) } else { 0 };
            if dirty {
                self.set(p, Page::WritingOut { slot });
                return Some((p, Some(slot)));
            }
            self.set(p, Page::Absent { swap: true });
            self.free_slots.push(slot);
            self.evicted(p);
            return Some((p, None));
        }
    }

    /// `WritingOut` → `Absent{swap: true}` (`written`) or back to `Inactive{dirty}` at the
    /// end of the list (its write failed or found no swap; its bytes are still in the slot).
    pub fn written(&mut self, mem: &Mem, p: u64, written: bool) {
        let Page::WritingOut { slot } = self.page(p) else {
            return;
        };
        if let Some(gone) = self.take_discarded(p) {
            // Its new copy (if the write took) is stale too.
            self.settle_discarded(mem, p, gone, false, Some(slot));
            return;
        }
        if written {
            self.set(p, Page::Absent { swap: true });
            self.free_slots.push(slot);
            self.evicted(p);
        } else {
            self.set(p, Page::Inactive { slot, dirty: true });
            self.inactive.push_back(p);
        }
    }

    // ---- the end ---------------------------------------------------------------------

    /// The region is dead (no handler serves its faults any more): every unmapped page is
    /// poisoned, so that every waiting and later touch of one ends in `SIGBUS` instead of
    /// waiting for ever, and the whole range is unprotected and woken (a store waiting in
    /// a write-protect fault goes on; mapped pages stay readable). From here on each page
    /// that becomes unmapped is poisoned too ([`Table::unmapped`]).
    pub fn fail(&mut self, mem: &Mem) {
        self.failed = true;
        let segs: Vec<Segment> = mem.segs.read().iter().copied().collect();
        for seg in &segs {
            let mut p = seg.index;
            let n = seg.index + seg.pages;
            while p < n {
                if self.page(p).is_mapped() || self.page(p) == Page::Poisoned {
                    p += 1;
                    continue;
                }
                let start = p;
                while p < n && !self.page(p).is_mapped() && self.page(p) != Page::Poisoned {
                    self.set(p, Page::Poisoned);
                    p += 1;
                }
                for q in poison_run(mem, start, p) {
                    // Mapped after all (a reader's copy landed before the poison): it keeps
                    // its bytes and is readable, as the table now says.
                    self.set(
                        q,
                        Page::Resident {
                            dirty: true,
                            referenced: true,
                        },
                    );
                }
            }
        }
        self.inactive.clear();
        for seg in &segs {
            let _ = mem.uffd.write_protect(seg.addr, seg.pages * PAGE, false);
            let _ = mem.uffd.wake(seg.addr, seg.pages * PAGE);
        }
    }

    /// The pages whose state says mapped where the kernel has no page, or unmapped where it
    /// has one (`present`: the kernel's view, from `mincore`, of the pages from `first`).
    /// Pages in an owned state (`Loading`, `Deactivating`) are between the two by design and
    /// are not compared.
    pub fn disagreements(&self, first: u64, present: &[bool]) -> Vec<(u64, Page)> {
        let mut out = Vec::new();
        for (k, &there) in present.iter().enumerate() {
            let p = first + k as u64;
            let page = self.page(p);
            let mapped = match page {
                Page::Loading | Page::Deactivating { .. } | Page::Unused => continue,
                Page::Resident { .. } => true,
                Page::Absent { .. }
                | Page::Inactive { .. }
                | Page::WritingOut { .. }
                | Page::Poisoned => false,
            };
            if mapped != there {
                out.push((p, page));
            }
        }
        out
    }

    /// The pages in a resident state, counted one by one: always equal to
    /// [`Table::resident`], which the moves keep.
    pub fn resident_states(&self) -> u64 {
        self.pages.iter().filter(|p| p.is_resident()).count() as u64
    }

    /// Forgets the pages (the region dropped): only counts are left for monitors.
    pub fn clear(&mut self) {
        self.pages = Vec::new();
        self.prefetched = Vec::new();
        self.written = Vec::new();
        self.evicted_at = Vec::new();
        self.chances = Vec::new();
        self.free_slots = Vec::new();
        self.inactive = VecDeque::new();
        self.retries = HashMap::new();
        self.resident = 0;
    }
}

/// Poisons the pages `start..end` with as few calls as the kernel allows, going on past a
/// page that turns out mapped (`EEXIST`: a reader's copy landed first) and making the rest
/// `PROT_NONE` where poison cannot be had (before 6.6, or a call that fails otherwise), so
/// that no page of the run is left to a fault no one serves. Returns the pages found mapped.
fn poison_run(mem: &Mem, start: u64, end: u64) -> Vec<u64> {
    let mut mapped = Vec::new();
    let mut at = start;
    while at < end && mem.uffd.caps.poison {
        let out = mem.uffd.poison(mem.addr(at), (end - at) * PAGE);
        at += out.pages();
        match out.error.as_ref().and_then(std::io::Error::raw_os_error) {
            None if out.error.is_none() => return mapped,
            Some(libc::EEXIST) => {
                mapped.push(at);
                at += 1;
            }
            _ => break,
        }
    }
    for q in at..end {
        let _ = mem.forbid(q);
    }
    let _ = mem.uffd.wake(mem.addr(start), (end - start) * PAGE);
    mapped
}

/// Poisons page `p` (or, before 6.6, makes it `PROT_NONE` and wakes its waiters). Returns
/// whether it took.
fn poison_page(mem: &Mem, p: u64) -> bool {
    if mem.uffd.caps.poison {
        return mem.uffd.poison(mem.addr(p), PAGE).pages() == 1;
    }
    let ok = mem.forbid(p).is_ok();
    mem.wake(p);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pages: u64) -> Table {
        let mut t = Table::new(1);
        t.grow(pages);
        t.adopt(0, &vec![false; pages as usize]);
        t
    }

    #[test]
    fn a_page_refaulting_within_the_limit_is_active_and_a_scanned_one_is_not() {
        let mut t = table(100);
        t.evicted(1);
        for q in 10..20 {
            t.evicted(q);
        }
        // 10 evictions since page 1 went out: under a limit of 16, it is working set.
        assert!(t.refault(1, 16));
        assert_eq!(t.chances[1], ACTIVE_CHANCES);
        for q in 20..60 {
            t.evicted(q);
        }
        // Page 10 went out 49 evictions ago, page 99 never: neither is.
        assert!(!t.refault(10, 16));
        assert!(!t.refault(99, 16));
        assert_eq!((t.chances[10], t.chances[99]), (0, 0));
        // Evicting an active page takes its chances away.
        t.evicted(1);
        assert_eq!(t.chances[1], 0);
    }

    #[test]
    fn the_eviction_clock_wraps_without_losing_distances() {
        let mut t = table(4);
        t.evictions = u32::MAX - 2;
        t.evicted(0);
        t.evicted(1);
        t.evicted(2);
        t.evicted(3);
        // Three evictions since page 0 went out, and the clock skipped 0 ("never").
        assert!(t.refault(0, 4));
        assert!(!t.refault(0, 2));
    }

    #[test]
    fn the_resident_count_follows_every_move() {
        let mut t = table(4);
        t.set(0, Page::Absent { swap: true });
        t.set(1, Page::Absent { swap: true });
        assert_eq!(t.resident, 0);
        t.begin_load(0, 2);
        assert_eq!(t.resident, 2);
        t.set(
            0,
            Page::Resident {
                dirty: false,
                referenced: false,
            },
        );
        t.set(1, Page::Absent { swap: true });
        assert_eq!(t.resident, 1);
        assert_eq!(t.begin_deactivate(0), Some(false));
        assert_eq!(t.resident, 1);
        t.set(0, Page::Poisoned);
        assert_eq!(t.resident, 0);
    }

    #[test]
    fn a_fault_failing_again_and_again_is_given_up_and_then_counts_afresh() {
        let mut t = table(2);
        for _ in 1..MAX_FAULT_RETRIES {
            assert_eq!(t.retry(1), Retry::Again);
        }
        assert_eq!(t.retry(1), Retry::GiveUp);
        assert_eq!(t.retry(1), Retry::Again);
        t.served(1);
        assert!(t.retries.is_empty());
    }
}
