//! The memory workloads of the region bench (`--only region`): loads and stores to a plain
//! slice of memory, the same code whether that memory is a [`region::Region`] in the bench
//! or anonymous memory in a child process that the kernel swaps (`xtask mem-child`).
//!
//! A *touch* is one access to one whole 4 KiB page: a read loads its 512 words, a write
//! stores them. Every page carries a stamp in its first word (its index and a non-zero
//! generation), and every read checks it: a page that comes back wrong (or zero) is
//! counted in [`Outcome::bad_pages`], which the bench turns into an error, so a fast figure
//! is never a wrong one. Every `sample_every`-th touch is timed: the per-touch latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::latency::{LatencyStats, Recorder};

/// Words of a page.
const WORDS: usize = device::PAGE_SIZE / 8;
/// The page index part of a stamp; the generation is above it.
const INDEX_BITS: u32 = 40;

/// What a phase does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Writes every page front to back (generation `gen`).
    SeqWrite,
    /// Reads every page front to back.
    SeqRead,
    /// Reads pages uniformly at random.
    Rand,
    /// Reads a hot set (`hot_pages` at the front) 90% of the time, the rest uniformly.
    HotCold,
}

/// One phase, as the bench sends it to either side (the child gets it as a JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub kind: Kind,
    /// Touches to make (sequential phases: pages, at most the whole memory).
    pub touches: u64,
    pub threads: u32,
    /// Time every n-th touch.
    pub sample_every: u64,
    /// Stop early after this long (the touches done are reported).
    pub deadline_ms: u64,
    pub seed: u64,
    /// `HotCold`: pages of the hot set.
    pub hot_pages: u64,
    /// Generation stamped by writes (non-zero).
    pub generation: u64,
}

/// What a phase measured, on either side.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub touches: u64,
    pub seconds: f64,
    pub latency: LatencyStats,
    /// User + system CPU seconds of the whole process around the phase.
    pub cpu_seconds: f64,
    /// Faults that read from swap during the phase (the side says how it counts them).
    pub major_faults: u64,
    /// Pages read back with a wrong stamp: must be 0.
    pub bad_pages: u64,
}

/// Runs `phase` on `mem` (whole pages), timing it; `major_faults` reads the side's fault
/// counter before and after, `cancelled` is polled every few hundred touches.
/// One piece: the threads, the clock and the counters read around them are one
/// measurement, and each side (region, kernel child) runs exactly this code.
pub fn measure(
    mem: &[AtomicU64],
    phase: &Phase,
    major_faults: &dyn Fn() -> u64,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Outcome {
    let pages = (mem.len() / WORDS) as u64;
    let cpu0 = crate::cpu::used();
    let mf0 = major_faults();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(phase.deadline_ms);
    let stop = AtomicBool::new(false);
    let threads = phase.threads.max(1) as u64;
    let results: Vec<(u64, u64, Recorder)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let stop = &stop;
                s.spawn(move || {
                    let share = phase.touches.div_ceil(threads);
                    let mut w = Worker {
                        mem,
                        pages,
                        phase,
                        rng: SmallRng::seed_from_u64(phase.seed ^ (t << 32) ^ 0x5eed),
                        rec: Recorder::new(),
                        bad: 0,
                        sum: 0,
                    };
                    let mut done = 0;
                    // Sequential phases: each thread its own contiguous share, in order.
                    let first = (t * share).min(pages);
                    while done < share {
                        if done % 256 == 0
                            && (stop.load(Ordering::Relaxed)
                                || Instant::now() >= deadline
                                || cancelled())
                        {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                        let page = match phase.kind {
                            Kind::SeqRead | Kind::SeqWrite => {
                                let p = first + done;
                                if p >= pages {
                                    break;
                                }
                                p
                            }
                            Kind::Rand => w.rng.random_range(0..pages),
                            Kind::HotCold => w.hot_or_cold(),
                        };
                        let timed = done % phase.sample_every.max(1) == 0;
                        let t0 = timed.then(Instant::now);
                        w.touch(page);
                        if let Some(t0) = t0 {
                            w.rec.record(t0.elapsed());
                        }
                        done += 1;
                    }
                    std::hint::black_box(w.sum);
                    (done, w.bad, w.rec)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 1, Recorder::new())))
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut rec = Recorder::new();
    let mut out = Outcome {
        seconds,
        ..Outcome::default()
    };
    for (done, bad, r) in &results {
        out.touches += done;
        out.bad_pages += bad;
        rec.merge(r);
    }
    out.latency = rec.summary();
    out.major_faults = major_faults().saturating_sub(mf0);
    out.cpu_seconds = crate::cpu::used().saturating_sub(cpu0).as_secs_f64();
    out
}

struct Worker<'a> {
    mem: &'a [AtomicU64],
    pages: u64,
    phase: &'a Phase,
    rng: SmallRng,
    rec: Recorder,
    bad: u64,
    sum: u64,
}

impl Worker<'_> {
    fn hot_or_cold(&mut self) -> u64 {
        let hot = self.phase.hot_pages.clamp(1, self.pages);
        if hot == self.pages || self.rng.random_range(0..10) < 9 {
            self.rng.random_range(0..hot)
        } else {
            self.rng.random_range(hot..self.pages)
        }
    }

    /// One access to all of page `p`.
    fn touch(&mut self, p: u64) {
        let page = &self.mem[p as usize * WORDS..(p as usize + 1) * WORDS];
        if self.phase.kind == Kind::SeqWrite {
            let s = stamp(p, self.phase.generation);
            page[0].store(s, Ordering::Relaxed);
            for (i, w) in page.iter().enumerate().skip(1) {
                w.store(
                    s ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    Ordering::Relaxed,
                );
            }
        } else {
            let s = page[0].load(Ordering::Relaxed);
            if !stamp_ok(s, p) {
                self.bad += 1;
            }
            self.sum = page
                .iter()
                .fold(self.sum, |a, w| a.wrapping_add(w.load(Ordering::Relaxed)));
        }
    }
}

/// The first word of page `p` written in `generation` (non-zero: a zero page never
/// passes as data).
fn stamp(p: u64, generation: u64) -> u64 {
    (generation.max(1) << INDEX_BITS) | (p & ((1 << INDEX_BITS) - 1))
}

fn stamp_ok(word: u64, p: u64) -> bool {
    word >> INDEX_BITS != 0 && word & ((1 << INDEX_BITS) - 1) == p & ((1 << INDEX_BITS) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(kind: Kind, touches: u64, threads: u32) -> Phase {
        Phase {
            kind,
            touches,
            threads,
            sample_every: 1,
            deadline_ms: 60_000,
            seed: 1,
            hot_pages: 2,
            generation: 1,
        }
    }

    fn memory(pages: usize) -> Vec<AtomicU64> {
        (0..pages * WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn a_written_memory_reads_back_clean_and_a_zero_or_wrong_page_is_caught() {
        let mem = memory(8);
        let never = || false;
        let zero = || 0;
        let w = measure(&mem, &phase(Kind::SeqWrite, 8, 3), &zero, &never);
        assert_eq!((w.touches, w.bad_pages), (8, 0));
        assert_eq!(w.latency.count, 8);
        for kind in [Kind::SeqRead, Kind::Rand, Kind::HotCold] {
            let r = measure(&mem, &phase(kind, 50, 2), &zero, &never);
            assert_eq!(
                (r.touches, r.bad_pages),
                (if kind == Kind::SeqRead { 8 } else { 50 }, 0)
            );
        }
        // A page that lost its data (zeroes) or holds another page's bytes is counted.
        mem[3 * WORDS].store(0, Ordering::Relaxed);
        mem[5 * WORDS].store(stamp(4, 1), Ordering::Relaxed);
        let r = measure(&mem, &phase(Kind::SeqRead, 8, 1), &zero, &never);
        assert_eq!(r.bad_pages, 2);
    }

    #[test]
    fn hot_touches_stay_mostly_in_the_hot_set() {
        let mem = memory(100);
        let p = phase(Kind::HotCold, 0, 1);
        let mut w = Worker {
            mem: &mem,
            pages: 100,
            phase: &p,
            rng: SmallRng::seed_from_u64(7),
            rec: Recorder::new(),
            bad: 0,
            sum: 0,
        };
        let hot = (0..10_000).filter(|_| w.hot_or_cold() < 2).count();
        assert!((8_700..9_300).contains(&hot), "{hot}");
    }

    #[test]
    fn a_cancelled_phase_stops_early_and_says_how_far_it_got() {
        let mem = memory(4);
        let always = || true;
        let r = measure(&mem, &phase(Kind::Rand, 1_000_000, 1), &|| 0, &always);
        assert_eq!(r.touches, 0);
    }
}
