//! `memory_bytes()` against the allocator: a counting global allocator tracks the bytes this
//! test's thread holds, and the map must claim exactly those.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use swmeta::SwapMeta;

/// Counts, per thread, the bytes allocated and not yet freed, then defers to `System`.
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
}

fn held() -> isize {
    HELD.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`; the
// bookkeeping only touches a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.with(|h| h.set(h.get() + layout.size() as isize));
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.with(|h| h.set(h.get() - layout.size() as isize));
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (see `alloc`/`realloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.with(|h| h.set(h.get() - layout.size() as isize + new_size as isize));
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// A small deterministic generator, so that the test needs no RNG state from outside.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn memory_bytes_is_exactly_what_the_map_holds_from_the_allocator() {
    exact(SwapMeta::new());
}

#[test]
fn memory_bytes_is_exact_with_checksums_too() {
    exact(SwapMeta::with_checksums());
}

/// The budget of issue #11: a dense object costs at most 4.5 heap bytes per page without
/// checksums and 8.5 with (FreeBSD's metadata alone costs about 8.5), counted by the
/// allocator. A sparse one (one page in 64) is measured for the README, not bounded.
#[test]
fn a_dense_object_stays_within_its_bytes_per_page_budget() {
    for (checksums, budget) in [(false, 4.5), (true, 8.5)] {
        let base = held();
        let mut meta = if checksums {
            SwapMeta::with_checksums()
        } else {
            SwapMeta::new()
        };
        let pages = 1u64 << 18;
        for p in 0..pages {
            meta.insert_checked(p, p as u32, Some(p as u32));
        }
        let per_page = (held() - base) as f64 / pages as f64;
        assert_eq!(held() - base, meta.memory_bytes() as isize);
        assert!(
            per_page <= budget,
            "checksums {checksums}: {per_page:.3} bytes per page > {budget}"
        );
        meta.clear(|_, _| {});
    }
}

fn exact(mut meta: SwapMeta) {
    let base = held();
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut handed_back = 0u64;
    for round in 0..40_000u64 {
        let r = xorshift(&mut state);
        // Mostly a dense-ish window, sometimes far away, sometimes at the top.
        let pindex = match r % 8 {
            0 => u64::MAX - (r >> 40) % 5000,
            1 => r,
            _ => (r >> 20) % 200_000,
        };
        match (r >> 8) % 10 {
            0..=5 => {
                let old = meta.insert_checked(pindex, round as u32, Some(r as u32));
                handed_back += u64::from(old.is_some());
            }
            6..=8 => handed_back += u64::from(meta.pop(pindex).is_some()),
            _ => meta.free_range(pindex, (r >> 32) % 3000, |_, _| handed_back += 1),
        }
        if round % 97 == 0 {
            assert_eq!(held() - base, meta.memory_bytes() as isize, "round {round}");
        }
    }
    assert!(handed_back > 0);
    assert_eq!(held() - base, meta.memory_bytes() as isize);
    meta.clear(|_, _| {});
    assert_eq!(meta.memory_bytes(), 0);
    assert_eq!(held(), base, "clear gives every byte back");
}
