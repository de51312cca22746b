//! The library's own memory allocator, installed as its global allocator.
//!
//! Written by hand because the library runs inside someone else's program: its threads
//! serve that program's page faults, so they must never call the program's `malloc` (the
//! program may hold malloc's lock while it faults, and the handler would wait for it for
//! ever), and the scanner must be able to tell the library's memory from the program's (a
//! handler faulting on its own heap would wait on itself). So every byte the library's
//! Rust code allocates comes from one reservation made here: a single private anonymous
//! mapping, `MAP_NORESERVE` (untouched parts cost nothing), whose address range
//! [`Arena::range`] gives the scanner to leave alone. General allocators on crates.io take
//! their memory from the system allocator or from many mappings; this one needs neither.
//!
//! Blocks come in power-of-two size classes from 16 bytes up; a freed block goes on its
//! class's free list for the next allocation of that class, and a freed block of 64 KiB or
//! more gives its pages back to the system (`MADV_DONTNEED`). Every block is aligned to its
//! size, so any alignment up to the block's size holds. The library
//! allocates little besides buffers of up to a few hundred KiB and its page table, so the
//! simple scheme wastes at most half of each block and nothing else.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Address space reserved for the library: 16 GiB of address space, not of memory.
const RESERVATION: usize = 16 << 30;
/// The smallest block (a free block holds the next free block's address).
const MIN_BLOCK: usize = 16;
/// Size classes: 16 B, 32 B, ... up to half the reservation.
const CLASSES: usize = 30;
/// Freed blocks of at least this size give their pages back.
const GIVE_BACK: usize = 64 << 10;

#[derive(Debug)]
struct Heap {
    /// The reservation's first byte; 0 until the first allocation.
    base: usize,
    /// The first byte never handed out.
    next: usize,
    /// Per class, the first free block (each holds the address of the next one), or 0.
    free: [usize; CLASSES],
}

/// The global allocator of the library; see the module doc.
///
/// Its lock is a spin lock with `sched_yield` rather than a `Mutex`, because a `fork`
/// must take it in the prepare handler and release it in two other functions, the parent
/// and the child handlers (see [`Arena::hold`]), which a guard cannot do. Every section it
/// guards is a few dozen instructions (an `madvise` at most).
#[derive(Debug)]
pub struct Arena {
    taken: AtomicBool,
    heap: UnsafeCell<Heap>,
}

// SAFETY: `heap` is only reached through `with`, under `taken`.
unsafe impl Sync for Arena {}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            taken: AtomicBool::new(false),
            heap: UnsafeCell::new(Heap {
                base: 0,
                next: 0,
                free: [0; CLASSES],
            }),
        }
    }

    /// The address range of the library's memory, `None` before its first allocation.
    pub fn range(&self) -> Option<(u64, u64)> {
        self.with(|h| (h.base != 0).then(|| (h.base as u64, (h.base + RESERVATION) as u64)))
    }

    fn acquire(&self) {
        while self
            .taken
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Heap) -> T) -> T {
        self.acquire();
        // SAFETY: `taken` is ours until released below: no other reference to the heap.
        let r = f(unsafe { &mut *self.heap.get() });
        self.taken.store(false, Ordering::Release);
        r
    }

    /// Takes the allocator's lock for a `fork` (the prepare handler), so the child does
    /// not inherit it taken by a thread that does not exist there; [`Arena::release`]
    /// gives it back in the parent and in the child. Nothing may allocate in between.
    pub fn hold(&self) {
        self.acquire();
    }

    /// Gives back the lock [`Arena::hold`] took.
    pub fn release(&self) {
        self.taken.store(false, Ordering::Release);
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

/// The class of a block for `layout`, and its size.
fn class_of(layout: Layout) -> Option<(usize, usize)> {
    let size = layout.size().max(layout.align()).max(MIN_BLOCK);
    let block = size.checked_next_power_of_two()?;
    let class = (block.trailing_zeros() - MIN_BLOCK.trailing_zeros()) as usize;
    (class < CLASSES).then_some((class, block))
}

impl Heap {
    fn reserve(&mut self) -> bool {
        if self.base != 0 {
            return true;
        }
        // SAFETY: a fresh private anonymous mapping; it aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RESERVATION,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        self.base = p as usize;
        self.next = self.base;
        true
    }

    fn take(&mut self, class: usize, block: usize) -> *mut u8 {
        let head = self.free[class];
        if head != 0 {
            // SAFETY: a free block of this class holds the next free block's address in
            // its first word (written by `give`), and nothing else uses it.
            self.free[class] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        if !self.reserve() {
            return std::ptr::null_mut();
        }
        // Every block is aligned to its size: a block of the class satisfies any
        // alignment the class was chosen for, whether new or reused.
        let at = self.next.next_multiple_of(block);
        match at.checked_add(block) {
            Some(end) if end <= self.base + RESERVATION => {
                self.next = end;
                at as *mut u8
            }
            _ => std::ptr::null_mut(),
        }
    }

    fn give(&mut self, p: *mut u8, class: usize, block: usize) {
        if block >= GIVE_BACK {
            // SAFETY: the block is ours, aligned to its size (so to a page) and whole
            // pages long; its contents are garbage now.
            unsafe { libc::madvise(p.cast(), block, libc::MADV_DONTNEED) };
        }
        // SAFETY: the block is at least MIN_BLOCK bytes and aligned to 16: room for the
        // link, and no one else holds it once freed.
        unsafe { *(p as *mut usize) = self.free[class] };
        self.free[class] = p as usize;
    }
}

// SAFETY: blocks are handed out once until freed (free lists and the bump pointer are
// changed under the lock only), each at least `layout.size()` long and aligned to at least
// `layout.align()` (see `class_of` and `take`).
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((class, block)) = class_of(layout) else {
            return std::ptr::null_mut();
        };
        self.with(|h| h.take(class, block))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some((class, block)) = class_of(layout) {
            self.with(|h| h.give(ptr, class, block));
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if class_of(new) == class_of(layout) {
            return ptr;
        }
        // SAFETY: `new` has a non-zero size (a realloc's new size is non-zero).
        let q = unsafe { self.alloc(new) };
        if !q.is_null() {
            // SAFETY: both blocks are ours and distinct; the old one holds at least
            // min(old, new) initialised bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        q
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        let a = Arena::new();
        let mut seen = Vec::new();
        for (size, align) in [(1, 1), (24, 8), (4096, 4096), (5000, 64), (1 << 20, 4096)] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero size.
            let p = unsafe { a.alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "{size} {align}");
            let (lo, hi) = a.range().unwrap();
            assert!(p as u64 >= lo && p as u64 + size as u64 <= hi);
            // SAFETY: the block is ours and `size` long.
            unsafe { std::ptr::write_bytes(p, 0xA5, size) };
            seen.push((p, l));
        }
        for w in seen.windows(2) {
            assert_ne!(w[0].0, w[1].0);
        }
        let (p, l) = seen[3];
        // SAFETY: allocated above with `l`.
        unsafe { a.dealloc(p, l) };
        // SAFETY: a non-zero size.
        let q = unsafe { a.alloc(Layout::from_size_align(6000, 8).unwrap()) };
        assert_eq!(q, p, "a freed block of the class is reused");
    }

    #[test]
    fn realloc_keeps_the_bytes() {
        let a = Arena::new();
        let l = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: a non-zero size; the block is written within its size.
        unsafe {
            let p = a.alloc(l);
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            let q = a.realloc(p, l, 10_000);
            assert!((0..100).all(|i| *q.add(i) == i as u8));
        }
    }

    #[test]
    fn too_large_is_refused_not_wrapped() {
        let a = Arena::new();
        // SAFETY: a non-zero size.
        let p = unsafe { a.alloc(Layout::from_size_align(1 << 40, 8).unwrap()) };
        assert!(p.is_null());
    }
}
