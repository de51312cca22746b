//! `cargo bench -p blist`: alloc+free throughput of the blist at several fill levels, and the
//! cost of creating a 2^32-block list. Prints a markdown table (kept in the crate README).
//!
//! A self-timed harness rather than criterion: the numbers wanted are plain throughputs of
//! steady-state loops that run for a fixed time, which `Instant` measures well, and criterion
//! would add a large dependency tree (and minutes of build on our 2-core machine) for
//! statistics this table does not need. Set `BLIST_BENCH_SECS` to change the time per cell
//! (default 0.3 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use blist::Blist;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Mean length of a free run left by the fragmentation.
const MEAN_FREE_RUN: f64 = 32.0;

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
        for full in [0.0, 0.5, 0.9, 0.99] {
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

/// A list of `blocks` blocks about `full` allocated, as alternating runs: free runs of mean
/// `MEAN_FREE_RUN` blocks and allocated runs of the mean that gives the fill level, both of
/// geometric length, so that free space is scattered in holes of every size.
fn fragmented(blocks: u64, full: f64, seed: u64) -> Blist {
    let mut bl = Blist::new(blocks);
    bl.free(0, blocks).expect("a new list is all allocated");
    if full == 0.0 {
        return bl;
    }
    let mean_used = MEAN_FREE_RUN * full / (1.0 - full);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut geometric = |mean: f64| -> u64 {
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        1 + (u.ln() / (1.0 - 1.0 / mean).ln()) as u64
    };
    let mut at = 0;
    while at < blocks {
        at += geometric(MEAN_FREE_RUN);
        let used = geometric(mean_used).min(blocks.saturating_sub(at));
        if at < blocks {
            bl.fill(at, used).expect("within the list");
        }
        at += used;
    }
    bl
}

/// Allocation + free pairs per second on a copy of `bl`, for `budget`. Every allocation is
/// freed at once, so the fill level stays put while the cursor sweeps the list.
fn pairs_per_sec(
    bl: &Blist,
    budget: Duration,
    mut alloc: impl FnMut(&mut Blist) -> Option<(u64, u64)>,
) -> f64 {
    let mut bl = bl.clone();
    let mut pairs = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..4096 {
            if let Some((first, len)) = alloc(black_box(&mut bl)) {
                bl.free(first, len)
                    .expect("freeing what was just allocated");
            }
        }
        pairs += 4096;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return pairs as f64 / elapsed.as_secs_f64();
        }
    }
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.1} M", rate / 1e6)
    } else {
        format!("{:.0} k", rate / 1e3)
    }
}
