//! The region's counters and their snapshot, [`RegionStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use device::latency::LatencySummary;
use serde::{Deserialize, Serialize};

/// Everything a region counts, as of one moment. Counters only grow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionStats {
    /// Pages in the region (in a space: in its segments now).
    pub pages: u64,
    /// The resident limit, in pages.
    pub resident_limit: u64,
    /// Pages in memory now: mapped (including those being brought in or written out) or
    /// on the inactive list.
    pub resident: u64,
    /// Faults served from swap (one `getpages` each).
    pub major_faults: u64,
    /// Pages brought in from swap, read-around included.
    pub pages_in: u64,
    /// Faults served with the zero page (the page had never been evicted).
    pub zero_fills: u64,
    /// Stores to a clean page: the page became dirty.
    pub wp_faults: u64,
    /// Pages dropped without a write: clean, with a valid swap copy.
    pub evictions_clean: u64,
    /// Pages dropped without a write because they held only zeroes.
    pub evictions_zero: u64,
    /// Pages written to swap and dropped.
    pub evictions_dirty: u64,
    /// Eviction rounds that stopped because swap was full (pages kept resident).
    pub evict_blocked: u64,
    /// Page writes that failed (the page stayed resident and dirty).
    pub write_errors: u64,
    /// Page reads that failed: the page was poisoned and its toucher got `SIGBUS`.
    pub read_errors: u64,
    /// Pages read ahead by sequential prefetch.
    pub prefetch_issued: u64,
    /// Prefetched pages later touched.
    pub prefetch_hit: u64,
    /// Pages faulted back in soon after their eviction (refault distance under the
    /// limit): the clock keeps them for extra turns.
    #[serde(default)]
    pub activations: u64,
    /// Pages the clock moved to the inactive list (unmapped, kept in memory).
    #[serde(default)]
    pub deactivations: u64,
    /// Touches of inactive pages: mapped back from memory, no I/O (the page was in use).
    #[serde(default)]
    pub hint_faults: u64,
    /// Pages read in and mapped writable (dirty) at once because they were written while
    /// they were last in memory: each saves a write-protect fault if written again.
    #[serde(default)]
    pub writable_on_read: u64,
    /// Faults that found no room under the resident limit and waited for the evictor.
    #[serde(default)]
    pub room_waits: u64,
    /// Faults that waited `RegionConfig::room_wait` for room in vain and got `SIGBUS`.
    #[serde(default)]
    pub room_timeouts: u64,
    /// Faults whose kernel call failed (no memory, ...) and were tried again.
    #[serde(default)]
    pub fault_retries: u64,
    /// Faults that failed too often in a row and got `SIGBUS`.
    #[serde(default)]
    pub fault_errors: u64,
    /// Errors of the fault handlers' own descriptor (reading faults, waiting for them).
    #[serde(default)]
    pub handler_errors: u64,
    /// Pages a space took over from the program ([`crate::Space::adopt`]).
    #[serde(default)]
    pub adopted_pages: u64,
    /// Pages of a space the program dropped (`madvise(MADV_DONTNEED, MADV_FREE,
    /// MADV_REMOVE)`): their swap freed, they read as zeroes.
    #[serde(default)]
    pub removed_pages: u64,
    /// Pages of a space the program unmapped: they left it, their swap freed.
    #[serde(default)]
    pub unmapped_pages: u64,
    /// Moves of a space's memory by `mremap(2)` (its swap follows).
    #[serde(default)]
    pub remaps: u64,
    /// The region is dead: its last fault handler stopped, and every touch of a page not
    /// in memory gets `SIGBUS`.
    #[serde(default)]
    pub dead: bool,
    /// Time to serve a fault, from reading it to waking the toucher.
    pub fault_latency: LatencySummary,
}

/// A few lines for people: what was paged and how, the trouble counters when there was
/// any, and the fault latency.
impl std::fmt::Display for RegionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} of {} pages resident (limit {}){}",
            self.resident,
            self.pages,
            self.resident_limit,
            if self.dead {
                ", DEAD: no fault handler left"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "major_faults {}, pages_in {}, zero_fills {}, wp_faults {},",
            self.major_faults, self.pages_in, self.zero_fills, self.wp_faults
        )?;
        writeln!(
            f,
            "evictions_clean {}, evictions_dirty {}, evictions_zero {}, prefetch_issued {}, \
             prefetch_hit {},",
            self.evictions_clean,
            self.evictions_dirty,
            self.evictions_zero,
            self.prefetch_issued,
            self.prefetch_hit
        )?;
        writeln!(
            f,
            "activations {}, deactivations {}, hint_faults {}, writable_on_read {},",
            self.activations, self.deactivations, self.hint_faults, self.writable_on_read
        )?;
        let trouble = [
            ("evict_blocked", self.evict_blocked),
            ("write_errors", self.write_errors),
            ("read_errors", self.read_errors),
            ("room_waits", self.room_waits),
            ("room_timeouts", self.room_timeouts),
            ("fault_retries", self.fault_retries),
            ("fault_errors", self.fault_errors),
            ("handler_errors", self.handler_errors),
        ];
        let seen: Vec<String> = trouble
            .iter()
            .filter(|t| t.1 > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if !seen.is_empty() {
            writeln!(f, "{},", seen.join(", "))?;
        }
        let l = &self.fault_latency;
        write!(
            f,
            "fault latency p50 {} µs, p99 {} µs, p99.9 {} µs",
            l.p50_us, l.p99_us, l.p999_us
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub major_faults: AtomicU64,
    pub pages_in: AtomicU64,
    pub zero_fills: AtomicU64,
    pub wp_faults: AtomicU64,
    pub evictions_clean: AtomicU64,
    pub evictions_zero: AtomicU64,
    pub evictions_dirty: AtomicU64,
    pub evict_blocked: AtomicU64,
    pub write_errors: AtomicU64,
    pub read_errors: AtomicU64,
    pub prefetch_issued: AtomicU64,
    pub prefetch_hit: AtomicU64,
    pub activations: AtomicU64,
    pub deactivations: AtomicU64,
    pub hint_faults: AtomicU64,
    pub writable_on_read: AtomicU64,
    pub room_waits: AtomicU64,
    pub room_timeouts: AtomicU64,
    pub fault_retries: AtomicU64,
    pub fault_errors: AtomicU64,
    pub handler_errors: AtomicU64,
    pub adopted_pages: AtomicU64,
    pub removed_pages: AtomicU64,
    pub unmapped_pages: AtomicU64,
    pub remaps: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn fill(&self, s: &mut RegionStats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.major_faults = get(&self.major_faults);
        s.pages_in = get(&self.pages_in);
        s.zero_fills = get(&self.zero_fills);
        s.wp_faults = get(&self.wp_faults);
        s.evictions_clean = get(&self.evictions_clean);
        s.evictions_zero = get(&self.evictions_zero);
        s.evictions_dirty = get(&self.evictions_dirty);
        s.evict_blocked = get(&self.evict_blocked);
        s.write_errors = get(&self.write_errors);
        s.read_errors = get(&self.read_errors);
        s.prefetch_issued = get(&self.prefetch_issued);
        s.prefetch_hit = get(&self.prefetch_hit);
        s.activations = get(&self.activations);
        s.deactivations = get(&self.deactivations);
        s.hint_faults = get(&self.hint_faults);
        s.writable_on_read = get(&self.writable_on_read);
        s.room_waits = get(&self.room_waits);
        s.room_timeouts = get(&self.room_timeouts);
        s.fault_retries = get(&self.fault_retries);
        s.fault_errors = get(&self.fault_errors);
        s.handler_errors = get(&self.handler_errors);
        s.adopted_pages = get(&self.adopted_pages);
        s.removed_pages = get(&self.removed_pages);
        s.unmapped_pages = get(&self.unmapped_pages);
        s.remaps = get(&self.remaps);
    }
}
