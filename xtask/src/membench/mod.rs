//! The region bench (`cargo xtask bench --only region`, issue 15): ordinary memory paged
//! by a [`region::Region`] against the same memory paged by the kernel's swap, on the same
//! devices, in the same run.
//!
//! Each repetition runs the same workload code ([`crate::workloads::mem`]) twice, on fresh
//! memory of `4 × L`: on a region with `resident_limit = L` (`region_side`), and on plain
//! anonymous memory in a child process inside a memory cgroup limited to `L` with kernel
//! swap on the devices (`kernel_side`). The sides alternate which goes first. The phases,
//! in order: `mem-fill` (the first write of every page), `mem-seq-read`, `mem-seq-write`
//! (an overwrite), `mem-rand-1t`, `mem-rand-4t`, a hot/cold warm-up (not reported) and
//! `mem-hotcold`. Each figure is the median of its repetitions; [`comparisons`] sets the
//! region beside the kernel with the issue's targets.

mod kernel_side;
mod region_side;

use std::collections::BTreeMap;
use std::path::PathBuf;

use region::RegionConfig;

use crate::cli::Plan;
use crate::error::Error;
use crate::results::{Comparison, Figure, MemSetup, Metric, Report};
use crate::workloads::mem::{Kind, Outcome, Phase};
use device::units::human_iec;

pub use kernel_side::child_main;

const PAGE: u64 = device::PAGE_SIZE as u64;
const MIB: u64 = 1 << 20;

/// How big and how long: `--quick`, the full run, or `--region-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSizes {
    /// `L`: the region's resident limit and the cgroup's memory limit, in bytes.
    pub limit: u64,
    /// The data set: 4 × L.
    pub data: u64,
    /// Touches of `mem-rand-1t`; `mem-rand-4t` makes twice as many.
    pub rand_touches: u64,
    /// No phase runs longer than this (it reports the touches it made).
    pub deadline_ms: u64,
    pub repetitions: usize,
    /// No repetition starts when the ones so far say it would end after this.
    pub budget: std::time::Duration,
}

impl MemSizes {
    /// `L` = 512 MiB (32 MiB with `--quick`, or `limit` when given), but never more than
    /// an eighth of the swap (`swap_bytes`), so the data set fills at most half of it.
    pub fn new(quick: bool, limit: Option<u64>, swap_bytes: u64) -> MemSizes {
        let want = limit.unwrap_or(if quick { 32 * MIB } else { 512 * MIB });
        let limit = (want.min(swap_bytes / 8) / MIB * MIB).max(4 * MIB);
        let limit_pages = limit / PAGE;
        MemSizes {
            limit,
            data: 4 * limit,
            // A quarter of L's pages: a few seconds per phase at full size (the seq phases
            // move 4 × L each).
            rand_touches: if quick { limit_pages } else { limit_pages / 4 },
            deadline_ms: if quick { 5_000 } else { 20_000 },
            repetitions: 3,
            budget: std::time::Duration::from_secs(if quick { 60 } else { 360 }),
        }
    }

    fn pages(&self) -> u64 {
        self.data / PAGE
    }

    /// Touches of each hot/cold phase: twice L's pages (the hot set is L / 2).
    fn hot_touches(&self) -> u64 {
        2 * self.limit / PAGE
    }

    /// The phases of one repetition: (id, phase, reported).
    fn phases(&self, rep: usize) -> Vec<(&'static str, Phase, bool)> {
        let base = Phase {
            kind: Kind::SeqWrite,
            touches: self.pages(),
            threads: 1,
            sample_every: 16,
            deadline_ms: self.deadline_ms,
            seed: 0x5a1d ^ rep as u64,
            hot_pages: self.limit / PAGE / 2,
            generation: 1,
        };
        let rand = |touches, threads, kind| Phase {
            kind,
            touches,
            threads,
            sample_every: 1,
            ..base.clone()
        };
        let mut phases = vec![
            ("mem-fill", base.clone(), true),
            (
                "mem-seq-read",
                Phase {
                    kind: Kind::SeqRead,
                    ..base.clone()
                },
                true,
            ),
            (
                "mem-seq-write",
                Phase {
                    generation: 2,
                    ..base.clone()
                },
                true,
            ),
            ("mem-rand-1t", rand(self.rand_touches, 1, Kind::Rand), true),
            (
                "mem-rand-4t",
                rand(2 * self.rand_touches, 4, Kind::Rand),
                true,
            ),
            // Both the warm-up and the measured phase touch each hot page about 3.6
            // times: the measured phase sees the steady state of each side's policy, not
            // how fast it learns.
            (
                "mem-hotcold-warmup",
                Phase {
                    // A warm-up cut short would leave the measured phase colder on the
                    // slower side: it gets four times the deadline.
                    deadline_ms: 4 * self.deadline_ms,
                    ..rand(self.hot_touches(), 1, Kind::HotCold)
                },
                false,
            ),
            (
                "mem-hotcold",
                rand(self.hot_touches(), 1, Kind::HotCold),
                true,
            ),
        ];
        // Every phase its own random pages (the warm-up's must not be replayed).
        for (i, (_, p, _)) in phases.iter_mut().enumerate() {
            p.seed ^= (i as u64 + 1) << 16;
        }
        phases
    }
}

/// What each reported phase is, for the tables.
fn what(id: &str, s: &MemSizes) -> String {
    let data = human_iec(s.data);
    let hot = human_iec(s.limit / 2);
    match id {
        "mem-fill" => format!("first write of {data}, front to back, whole pages"),
        "mem-seq-read" => format!("read {data} front to back, whole pages"),
        "mem-seq-write" => format!("overwrite {data} front to back, whole pages"),
        "mem-rand-1t" => "whole 4 KiB pages read at random, 1 thread".into(),
        "mem-rand-4t" => "whole 4 KiB pages read at random, 4 threads".into(),
        "mem-hotcold" => {
            format!("90% of reads to a hot {hot} (L/2), 10% over the rest, after a warm-up")
        }
        _ => String::new(),
    }
}

/// Runs the region bench on `paths`: `r.memory` and `r.memory_setup`, comparisons after.
pub fn run(plan: &Plan, paths: &[PathBuf], r: &mut Report) -> Result<(), Error> {
    crate::cancel::check()?;
    let sizes = MemSizes::new(
        plan.quick,
        plan.region_limit,
        plan.size * plan.devices as u64,
    );
    let cfg = RegionConfig {
        len: sizes.data,
        resident_limit: sizes.limit,
        ..RegionConfig::default()
    };
    eprintln!(
        "  region bench: {} of data, L = {} resident (region limit = cgroup limit), {} repetitions",
        human_iec(sizes.data),
        human_iec(sizes.limit),
        sizes.repetitions
    );
    pager_tunables_if_unset(r);
    let mut setup = MemSetup {
        limit_bytes: sizes.limit,
        data_bytes: sizes.data,
        repetitions: sizes.repetitions,
        region_config: Some(cfg.clone()),
        kernel_page_cluster: sysctl("vm/page-cluster"),
        kernel_swappiness: sysctl("vm/swappiness"),
        ..MemSetup::default()
    };
    // outcomes[side][phase id] = one per repetition; side 0 the region, 1 the kernel.
    let mut outcomes: [BTreeMap<&'static str, Vec<Outcome>>; 2] = Default::default();
    let mut kernel_ok = true;
    let started = std::time::Instant::now();
    for rep in 0..sizes.repetitions {
        // Stop repeating when one more repetition (as long as the average so far) would
        // end past the budget: `--only region` at full size stays under ~8 minutes.
        let spent = started.elapsed();
        if rep > 0 && spent + spent / rep as u32 > sizes.budget {
            r.notes.push(format!(
                "region bench: {rep} of {} repetitions (the next would pass the {} s budget)",
                sizes.repetitions,
                sizes.budget.as_secs()
            ));
            break;
        }
        let phases = sizes.phases(rep);
        let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            if side == 0 {
                let got = region_rep(paths, &cfg, &phases, rep)?;
                setup.region_stats.push(got.1);
                for (id, o) in got.0 {
                    outcomes[0].entry(id).or_default().push(o);
                }
            } else if kernel_ok {
                match kernel_rep(paths, &sizes, &phases, rep) {
                    Ok(got) => {
                        for (id, o, cg) in got {
                            setup
                                .cgroup_pgmajfault
                                .entry(id.into())
                                .or_default()
                                .push(cg);
                            outcomes[1].entry(id).or_default().push(o);
                        }
                    }
                    Err(e @ (Error::Skipped { .. } | Error::Workload { .. })) => {
                        r.notes.push(format!("region bench, kernel side: {e}"));
                        kernel_ok = false;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    record_medians(&outcomes, &sizes, r);
    r.notes.push(setup_note(&sizes, &setup));
    r.memory_setup = Some(setup);
    Ok(())
}

/// `--only region`: no other phase said which pager tunables the run used; the region's
/// pager has the defaults.
fn pager_tunables_if_unset(r: &mut Report) {
    if r.setup.max_cluster == 0 {
        let d = pager::PagerConfig::default();
        r.setup.interleave = d.interleave;
        r.setup.max_cluster = d.max_cluster;
        r.setup.swap_async_max = d.swap_async_max;
        r.setup.nswbuf = d.nswbuf;
    }
}

/// The median of each reported phase's repetitions, per side, printed and kept in `r.memory`.
fn record_medians(
    outcomes: &[BTreeMap<&'static str, Vec<Outcome>>; 2],
    sizes: &MemSizes,
    r: &mut Report,
) {
    for (side, prefix) in [(0, "region"), (1, "kernel")] {
        for (id, _, reported) in sizes.phases(0) {
            let Some(reps) = outcomes[side].get(id).filter(|_| reported) else {
                continue;
            };
            let figs = reps
                .iter()
                .map(|o| figure(&format!("{prefix}-{id}"), &what(id, sizes), o))
                .collect();
            if let Some(f) = Figure::median_of(figs) {
                crate::results::line(&f);
                r.memory.push(f);
            }
        }
    }
}

/// The report's note on how the two sides were set up.
fn setup_note(sizes: &MemSizes, setup: &MemSetup) -> String {
    format!(
        "region bench: L = {} (region resident_limit = the kernel child's memory cgroup \
         limit), {} of data; kernel side: vm.page-cluster {}, swappiness {}; major faults: \
         the region's faults served from swap, the child's ru_majflt",
        human_iec(sizes.limit),
        human_iec(sizes.data),
        setup
            .kernel_page_cluster
            .map_or("?".into(), |v| v.to_string()),
        setup
            .kernel_swappiness
            .map_or("?".into(), |v| v.to_string()),
    )
}

/// Each phase's outcome, in order.
type PhaseOutcomes = Vec<(&'static str, Outcome)>;

/// One repetition on a fresh region: each phase's outcome, and the region's stats after.
fn region_rep(
    paths: &[PathBuf],
    cfg: &RegionConfig,
    phases: &[(&'static str, Phase, bool)],
    rep: usize,
) -> Result<(PhaseOutcomes, region::RegionStats), Error> {
    let mut side = region_side::RegionMem::start(paths, cfg.clone())?;
    let mut out = Vec::new();
    for (id, phase, _) in phases {
        let o = side.run(phase)?;
        checked("region", id, &o)?;
        progress("region", id, rep, &o);
        out.push((*id, o));
    }
    Ok((out, side.stats()))
}

/// One repetition in a fresh child process: each phase's outcome and the cgroup's
/// `pgmajfault` during it.
fn kernel_rep(
    paths: &[PathBuf],
    sizes: &MemSizes,
    phases: &[(&'static str, Phase, bool)],
    rep: usize,
) -> Result<Vec<(&'static str, Outcome, u64)>, Error> {
    let mut side = kernel_side::KernelMem::start(paths, sizes.pages(), sizes.limit)?;
    let mut out = Vec::new();
    for (id, phase, _) in phases {
        let (o, cg) = side.run(phase)?;
        checked("kernel", id, &o)?;
        progress("kernel", id, rep, &o);
        out.push((*id, o, cg));
    }
    Ok(out)
}

/// A phase that read back a wrong page is an error, never a figure.
fn checked(side: &str, id: &str, o: &Outcome) -> Result<(), Error> {
    if o.bad_pages == 0 {
        return Ok(());
    }
    Err(Error::workload(
        "region bench",
        format!("{side} {id}: {} pages read back wrong", o.bad_pages),
    ))
}

fn progress(side: &str, id: &str, rep: usize, o: &Outcome) {
    eprintln!(
        "    {side:<6} {id:<19} rep {}: {:>8.1} MiB/s, p50 {} µs, p99 {} µs, {} major faults",
        rep + 1,
        (o.touches * PAGE) as f64 / MIB as f64 / o.seconds.max(1e-9),
        o.latency.at(50.0),
        o.latency.at(99.0),
        o.major_faults
    );
}

fn figure(id: &str, what: &str, o: &Outcome) -> Figure {
    let threads = if id.ends_with("-4t") { 4 } else { 1 };
    Figure::new(id, what, o.touches * PAGE, o.touches, o.seconds)
        .with_shape(threads, 1)
        .with_latency(o.latency.clone())
        .with_cpu(o.cpu_seconds)
        .with_major_faults(o.major_faults)
}

/// `/proc/sys/<key>` as a number.
fn sysctl(key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The issue's targets, region / kernel: (workload, metric, target).
pub const TARGETS: [(&str, Metric, Option<f64>); 10] = [
    ("mem-seq-read", Metric::MibS, Some(2.0)),
    ("mem-seq-write", Metric::MibS, Some(1.5)),
    ("mem-rand-1t", Metric::MibS, Some(0.9)),
    ("mem-rand-1t", Metric::P99Us, Some(1.2)),
    ("mem-rand-4t", Metric::MibS, Some(1.0)),
    ("mem-hotcold", Metric::MajorFaultsPerKTouch, Some(1.2)),
    ("mem-hotcold", Metric::MibS, None),
    ("mem-fill", Metric::MibS, None),
    ("mem-seq-read", Metric::MajorFaultsPerKTouch, None),
    ("mem-rand-1t", Metric::P50Us, None),
];

/// Each region figure beside the kernel's: the targets, then CPU per GiB for every phase.
pub fn comparisons(r: &Report) -> Vec<Comparison> {
    let fig = |id: String| r.memory.iter().find(|f| f.id == id);
    let mut out = Vec::new();
    let pair = |w: &str| (fig(format!("region-{w}")), fig(format!("kernel-{w}")));
    for (w, metric, target) in TARGETS {
        if let (Some(a), Some(b)) = pair(w) {
            out.push(Comparison::new(a, b, metric, target).on("kernel swap"));
        }
    }
    for w in [
        "mem-fill",
        "mem-seq-read",
        "mem-seq-write",
        "mem-rand-1t",
        "mem-rand-4t",
        "mem-hotcold",
    ] {
        if let (Some(a), Some(b)) = pair(w) {
            out.push(Comparison::new(a, b, Metric::CpuPerGib, None).on("kernel swap"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_run_is_512_mib_over_2_gib_and_a_small_swap_shrinks_it() {
        let full = MemSizes::new(false, None, 4 << 30);
        assert_eq!((full.limit, full.data), (512 * MIB, 2 << 30));
        let quick = MemSizes::new(true, None, 256 * MIB);
        assert_eq!((quick.limit, quick.data), (32 * MIB, 128 * MIB));
        // 4 × 64 MiB of swap: L at most 32 MiB, whatever was asked.
        let small = MemSizes::new(false, Some(1 << 30), 256 * MIB);
        assert_eq!(small.limit, 32 * MIB);
    }

    #[test]
    fn every_repetition_runs_the_same_phases_and_only_the_warm_up_is_unreported() {
        let s = MemSizes::new(true, None, 256 * MIB);
        let ids: Vec<&str> = s.phases(0).iter().map(|p| p.0).collect();
        assert_eq!(ids, s.phases(1).iter().map(|p| p.0).collect::<Vec<_>>());
        let hidden: Vec<&str> = s.phases(0).iter().filter(|p| !p.2).map(|p| p.0).collect();
        let seeds: std::collections::HashSet<u64> = s.phases(0).iter().map(|p| p.1.seed).collect();
        assert_eq!(
            seeds.len(),
            s.phases(0).len(),
            "a phase replays another's pages"
        );
        assert_eq!(hidden, ["mem-hotcold-warmup"]);
        for (id, _, reported) in s.phases(0) {
            assert_eq!(reported, !what(id, &s).is_empty(), "{id}");
        }
    }

    #[test]
    fn the_region_is_set_beside_the_kernel_with_the_issues_targets() {
        let mut r = Report::default();
        let f = |id: &str, mib: u64, faults| {
            Figure::new(id, "", mib << 20, (mib << 20) / PAGE, 1.0)
                .with_cpu(1.0)
                .with_major_faults(faults)
        };
        r.memory = vec![
            f("region-mem-seq-read", 400, 10),
            f("kernel-mem-seq-read", 100, 10),
            f("region-mem-hotcold", 10, 130),
            f("kernel-mem-hotcold", 10, 100),
        ];
        let cs = comparisons(&r);
        let seq = cs
            .iter()
            .find(|c| c.workload == "region-mem-seq-read" && c.metric == Metric::MibS)
            .unwrap();
        assert_eq!(
            (seq.baseline.as_str(), seq.met),
            ("kernel-mem-seq-read", Some(true))
        );
        assert!((seq.ratio - 4.0).abs() < 1e-9);
        let hot = cs
            .iter()
            .find(|c| c.workload == "region-mem-hotcold" && c.target.is_some())
            .unwrap();
        assert_eq!(hot.metric, Metric::MajorFaultsPerKTouch);
        assert_eq!(hot.met, Some(false));
    }
}
