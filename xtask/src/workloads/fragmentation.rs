//! `fragmentation`: fill the swap to 95%, then churn (free a random run of a random object,
//! write it again) and watch what the allocator can still hand out.
//!
//! The fill uses `reserve` (blocks without I/O) so it costs nothing; the churn uses real
//! sync `putpages`. Cluster sizes are read from the devices' write counters around each
//! call: a `putpages` of n pages that took k writes got clusters of n/k pages on average.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pager::{PageResult, PagerStats, PutMode};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{DataSet, PAGE, Rig, stamp};
use crate::cancel;
use crate::error::Error;
use crate::progress::Progress;
use crate::results::{FragSnapshot, Fragmentation};

const OBJECT_PAGES: u64 = 32;

/// Objects of [`OBJECT_PAGES`] with swap reserved, until `target` pages are (or swap is full).
fn reserve_until(rig: &Rig, target: u64) -> Result<DataSet, Error> {
    let mut ds = DataSet::alloc(rig, 0, OBJECT_PAGES);
    let mut filled = 0;
    while filled + OBJECT_PAGES <= target {
        cancel::check()?;
        let obj = rig.pager.alloc_object(None, OBJECT_PAGES);
        if rig.pager.reserve(&obj, 0, OBJECT_PAGES).is_err() {
            break;
        }
        ds.objects.push(obj);
        filled += OBJECT_PAGES;
    }
    if ds.objects.is_empty() {
        return Err(Error::workload(
            "fragmentation",
            "could not reserve any swap",
        ));
    }
    Ok(ds)
}

/// A mean cluster size rounded down to a power of two (at least 1): the allocator halves
/// its ask on failure, so these are the sizes it hands out.
fn size_class(mean: u64) -> u64 {
    if mean == 0 {
        1
    } else {
        1 << (63 - mean.leading_zeros())
    }
}

pub fn churn(paths: &[PathBuf], fill: f64, time: Duration) -> Result<Fragmentation, Error> {
    let rig = Rig::new(paths, 32)?;
    let total = rig.usable_pages();
    let target = (total as f64 * fill) as u64;
    let ds = reserve_until(&rig, target)?;
    let before_stats = rig.pager.stats_with_frag();
    let fill_percent = before_stats.used_pages as f64 * 100.0 / total.max(1) as f64;
    let areas: Vec<Arc<device::SwapArea>> = rig
        .devices
        .iter()
        .filter_map(|&d| rig.pager.area(d))
        .collect();
    let writes = || areas.iter().map(|a| a.stats().writes).sum::<u64>();

    let mut rng = SmallRng::seed_from_u64(0xf7a6);
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    let mut failures = 0u64;
    let mut ops = 0u64;
    let mut buf = vec![0u8; OBJECT_PAGES as usize * PAGE];
    let progress = Progress::start("fragmentation churn", time.as_millis() as u64);
    let start = Instant::now();
    let mut last_tick = 0u64;
    while start.elapsed() < time && !cancel::cancelled() {
        let i = rng.random_range(0..ds.objects.len());
        let len = rng.random_range(1..=OBJECT_PAGES);
        let at = rng.random_range(0..=OBJECT_PAGES - len);
        let obj = &ds.objects[i];
        rig.pager.freespace(obj, at, len);
        let data = &mut buf[..len as usize * PAGE];
        stamp(data, i as u64, at);
        let w0 = writes();
        let res = rig.pager.putpages(obj, at, data, PutMode::Sync);
        let clusters = writes() - w0;
        let ok = res.iter().filter(|r| **r == PageResult::Ok).count() as u64;
        failures += res.iter().filter(|r| **r == PageResult::Fail).count() as u64;
        if res.contains(&PageResult::Error) {
            return Err(Error::workload(
                "fragmentation",
                format!("write error on object {i}"),
            ));
        }
        if clusters > 0 && ok > 0 {
            *sizes.entry(size_class(ok / clusters)).or_default() += clusters;
        }
        ops += 1;
        let ms = start.elapsed().as_millis() as u64;
        progress.add(ms - last_tick);
        last_tick = ms;
    }
    let churn_seconds = start.elapsed().as_secs_f64();
    drop(progress);
    cancel::check()?;
    let after_stats = rig.pager.stats_with_frag();
    Ok(Fragmentation {
        fill_percent,
        churn_ops: ops,
        churn_seconds,
        cluster_sizes: sizes.into_iter().collect(),
        alloc_failures: failures.max(
            after_stats.counters.alloc_failures
                - before_stats
                    .counters
                    .alloc_failures
                    .min(after_stats.counters.alloc_failures),
        ),
        before: snapshot(&before_stats),
        after: snapshot(&after_stats),
    })
}

fn snapshot(s: &PagerStats) -> Vec<FragSnapshot> {
    s.devices
        .iter()
        .map(|d| FragSnapshot {
            device: d.path.clone(),
            free_pages: d.free_pages,
            free_ranges: d.frag.free_ranges,
            largest: d.frag.largest,
            average: d.frag.average,
        })
        .collect()
}
