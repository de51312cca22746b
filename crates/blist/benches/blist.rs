//! `cargo bench -p blist`: alloc+free throughput of the blist at several fill levels, and the
//! cost of creating a 2^32-block list. Prints a markdown table (kept in the crate README).
//! Throughputs are per second of CPU time of the benchmark thread, so that a busy machine
//! slows the run down without skewing the figures much (caches are still shared).
//!
//! A self-timed harness rather than criterion: the numbers wanted are plain throughputs of
//! steady-state loops that run for a fixed time, which `Instant` measures well, and criterion
//! would add a large dependency tree (and minutes of build on our 2-core machine) for
//! statistics this table does not need. Set `BLIST_BENCH_SECS` to change the time per cell
//! (default 0.3 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use blist::Blist;

fn main() {
    let secs: f64 = std::env::var("BLIST_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.3);
    let budget = Duration::from_secs_f64(secs);
    println!(
        "| blocks | full | alloc(1)+free /s | alloc(32)+free /s | alloc_range(1,32)+free /s |"
    );
    println!("|---|---|---|---|---|");
    // `cargo bench -p blist -- 20` runs only the 2^20 rows (numbers name the sizes to run).
    let only: Vec<u32> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    for log in [20u32, 28]
        .into_iter()
        .filter(|l| only.is_empty() || only.contains(l))
    {
        for full in [0, 50, 90, 99] {
            let bl = fragmented(1 << log, full, 0x5eed ^ u64::from(log));
            let actual = 1.0 - bl.avail() as f64 / bl.capacity() as f64;
            let one = pairs_per_sec(&bl, budget, |bl| bl.alloc(1).map(|b| (b, 1)));
            let many = pairs_per_sec(&bl, budget, |bl| bl.alloc(32).map(|b| (b, 32)));
            let range = pairs_per_sec(&bl, budget, |bl| bl.alloc_range(1, 32));
            println!(
                "| 2^{log} | {:.0}% | {} | {} | {} |",
                actual * 100.0,
                human(one),
                human(many),
                human(range)
            );
        }
    }
    let start = Instant::now();
    let big = black_box(Blist::new(1 << 32));
    let created = start.elapsed();
    let bytes = big.memory_bytes();
    println!();
    println!(
        "`Blist::new(2^32)`: {:.3} ms, `memory_bytes()` = {} ({:.4} bits per block)",
        created.as_secs_f64() * 1e3,
        bytes,
        bytes as f64 * 8.0 / (1u64 << 32) as f64
    );
}

/// A list of `blocks` blocks about `full` allocated, as alternating runs: free runs of 1 to 63
/// blocks (mean 32) and allocated runs of 1 to `2m - 1` blocks, `m` the mean that gives the
/// fill level, so that free space is scattered in holes of every size up to 63. The lengths
/// come from splitmix64 and integer arithmetic only, so that a C driver can rebuild the very
/// same list and replay the same operations.
fn fragmented(blocks: u64, full_percent: u64, seed: u64) -> Blist {
    let mut bl = Blist::new(blocks);
    bl.free(0, blocks).expect("a new list is all allocated");
    if full_percent == 0 {
        return bl;
    }
    let mean_used = (32 * full_percent / (100 - full_percent)).max(1);
    let mut state = seed;
    let mut at = 0;
    while at < blocks {
        at += 1 + splitmix64(&mut state) % 63;
        let used =
            (1 + splitmix64(&mut state) % (2 * mean_used - 1)).min(blocks.saturating_sub(at));
        if at < blocks {
            bl.fill(at, used).expect("within the list");
        }
        at += used;
    }
    bl
}

/// Sebastiano Vigna's splitmix64: a tiny generator that is easy to reproduce bit for bit.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Allocation + free pairs per second of CPU time on a copy of `bl`, for `budget`. Every
/// allocation is freed at once, so the fill level stays put while the cursor sweeps the list.
fn pairs_per_sec(
    bl: &Blist,
    budget: Duration,
    mut alloc: impl FnMut(&mut Blist) -> Option<(u64, u64)>,
) -> f64 {
    let mut bl = bl.clone();
    let mut pairs = 0u64;
    let start = cpu_time();
    loop {
        for _ in 0..BATCH {
            if let Some((first, len)) = alloc(black_box(&mut bl)) {
                bl.free(first, len)
                    .expect("freeing what was just allocated");
            }
        }
        pairs += BATCH;
        let elapsed = cpu_time() - start;
        if elapsed >= budget {
            return pairs as f64 / elapsed.as_secs_f64();
        }
    }
}

/// Pairs between two clock readings: enough to make the reading's cost negligible.
const BATCH: u64 = 16384;

/// The CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds on the
/// CPU), so that other processes sharing the machine do not count against us; wall time when
/// that file is missing.
fn cpu_time() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| START.get_or_init(Instant::now).elapsed())
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.1} M", rate / 1e6)
    } else {
        format!("{:.0} k", rate / 1e3)
    }
}
