//! `cargo bench -p swmeta`: memory per page and operations per second, as a markdown table.
//!
//! A small self-timed harness rather than criterion: each figure here is one pass over an
//! object of 2^20 or 2^26 pages (millions of operations, so one pass is already an average),
//! the whole run must stay short on a shared 2-core machine, and criterion's warm-up,
//! resampling and plots would multiply the time and the dependencies for no better number.
//! Run it alone for stable figures; `SWMETA_BENCH_SMALL=1` skips the 2^26 objects and
//! `SWMETA_BENCH_MEMORY=1` prints only the memory table (with and without checksums).
//!
//! Orders: "sequential" walks page indices upwards (a pager streaming an object out or in);
//! "random" visits the same pages in a scattered order (a bijection `i * odd mod 2^k`), which
//! defeats the caches the way random page faults do. Memory comes from `memory_bytes()` and is
//! cross-checked against a counting global allocator ("allocator" column).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use swmeta::{Block, SwapMeta};

/// Bytes held from the allocator by the whole (single-threaded) benchmark.
static HELD: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`; the
// bookkeeping is one atomic add.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// An object to measure: `pages` mapped pages, page `i` at index `i * stride`.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    span_log2: u32,
    stride: u64,
}

impl Shape {
    fn pages(self) -> u64 {
        (1u64 << self.span_log2) / self.stride
    }

    /// The `i`-th page visited, in order or scattered.
    fn pindex(self, i: u64, random: bool) -> u64 {
        let n = self.pages();
        let j = if random {
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & (n - 1)
        } else {
            i
        };
        j * self.stride
    }
}

fn build(shape: Shape) -> SwapMeta {
    let mut meta = SwapMeta::new();
    for i in 0..shape.pages() {
        meta.insert(shape.pindex(i, false), i as Block);
    }
    meta
}

/// Millions of operations per second for `ops` operations taking `seconds`.
fn mops(ops: u64, seconds: f64) -> String {
    format!("{:.1}", ops as f64 / seconds / 1e6)
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// Times one operation over every page of `shape`, in order and scattered.
fn rows(shape: Shape, table: &mut Vec<String>) {
    let n = shape.pages();
    let mut line = |op: &str, seq: f64, rnd: f64| {
        table.push(format!(
            "| {op} | {} | {n} | {} | {} |",
            shape.name,
            mops(n, seq),
            mops(n, rnd)
        ));
    };
    // Small objects are measured several times and the best pass kept, so that one pass is
    // long enough not to be one scheduler tick on a busy machine.
    let reps = ((1u64 << 22) / n).clamp(1, 64);
    let best = |pass: &mut dyn FnMut() -> f64| (0..reps).map(|_| pass()).fold(f64::MAX, f64::min);
    let mut insert = [0.0; 2];
    let mut pop = [0.0; 2];
    let mut lookup = [0.0; 2];
    let mut contiguous = [0.0; 2];
    for (k, random) in [false, true].into_iter().enumerate() {
        insert[k] = best(&mut || {
            let mut meta = SwapMeta::new();
            let seconds = timed(|| {
                for i in 0..n {
                    black_box(meta.insert(shape.pindex(i, random), i as Block));
                }
            });
            meta.clear(|_, _| {});
            seconds
        });
        // Blocks follow page order, so `contiguous` finds full runs (its worst case).
        let meta = build(shape);
        lookup[k] = best(&mut || {
            timed(|| {
                for i in 0..n {
                    black_box(meta.lookup(black_box(shape.pindex(i, random))));
                }
            })
        });
        contiguous[k] = best(&mut || {
            timed(|| {
                for i in 0..n {
                    black_box(meta.contiguous(black_box(shape.pindex(i, random)), 31, 31));
                }
            })
        });
        drop(meta);
        pop[k] = best(&mut || {
            let mut meta = build(shape);
            let seconds = timed(|| {
                for i in 0..n {
                    black_box(meta.pop(shape.pindex(i, random)));
                }
            });
            assert_eq!(meta.memory_bytes(), 0);
            seconds
        });
    }
    line("insert", insert[0], insert[1]);
    line("lookup", lookup[0], lookup[1]);
    line("pop", pop[0], pop[1]);
    line("contiguous 31/31", contiguous[0], contiguous[1]);
}

/// One memory row; with `checksums` every page gets a CRC beside its block.
fn memory_row(shape: Shape, checksums: bool) -> String {
    let before = HELD.load(Ordering::Relaxed);
    let mut meta = if checksums {
        let mut meta = SwapMeta::with_checksums();
        for i in 0..shape.pages() {
            meta.insert_checked(shape.pindex(i, false), i as Block, Some(i as u32));
        }
        meta
    } else {
        build(shape)
    };
    let held = HELD.load(Ordering::Relaxed) - before;
    let pages = meta.pages() as f64;
    let row = format!(
        "| {} | {} | {} | {} | {:.3} | {:.3} |",
        shape.name,
        if checksums { "crc32c" } else { "none" },
        meta.pages(),
        meta.clusters(),
        meta.memory_bytes() as f64 / pages,
        held as f64 / pages
    );
    meta.clear(|_, _| {});
    row
}

fn main() {
    let small = std::env::var_os("SWMETA_BENCH_SMALL").is_some();
    let dense = |span_log2, name| Shape {
        name,
        span_log2,
        stride: 1,
    };
    let sparse = |span_log2, name| Shape {
        name,
        span_log2,
        stride: 64,
    };
    let mut shapes = vec![dense(20, "dense 2^20"), sparse(20, "sparse 2^20")];
    if !small {
        shapes.push(dense(26, "dense 2^26"));
        shapes.push(sparse(26, "sparse 2^26"));
    }

    println!("| object | checksums | pages | clusters | bytes/page | allocator bytes/page |");
    println!("|---|---|---:|---:|---:|---:|");
    for &shape in &shapes {
        for checksums in [false, true] {
            println!("{}", memory_row(shape, checksums));
        }
    }
    if std::env::var_os("SWMETA_BENCH_MEMORY").is_some() {
        return;
    }

    println!();
    println!("| operation | object | ops | sequential Mops/s | random Mops/s |");
    println!("|---|---|---:|---:|---:|");
    for &shape in &shapes {
        let mut table = Vec::new();
        rows(shape, &mut table);
        for line in table {
            println!("{line}");
        }
    }
    let clear_shape = if small {
        dense(20, "dense 2^20")
    } else {
        dense(26, "dense 2^26")
    };
    let mut meta = build(clear_shape);
    let mut handed_back = 0u64;
    let seconds = timed(|| meta.clear(|_, b| handed_back += u64::from(b) & 1));
    black_box(handed_back);
    println!(
        "| clear | {} | {} | {} | |",
        clear_shape.name,
        clear_shape.pages(),
        mops(clear_shape.pages(), seconds)
    );
}
