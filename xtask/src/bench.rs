//! `cargo xtask bench`: the whole run, in order: set up the devices, measure them raw, run
//! the workloads through the pager, compare, report, tear down.
//!
//! Every phase checks the cancel flag; every resource is a guard held by this function's
//! frame, so an error, a panic or Ctrl-C at any point unwinds through the same teardown.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use device::{Engine, EngineKind};
use pager::PagerConfig;

use crate::cli::{Plan, Workload};
use crate::error::Error;
use crate::machine::Machine;
use crate::raw::{self, RawPlan};
use crate::report;
use crate::results::{Comparison, Figure, Metric, Report, SCHEMA, SetupInfo};
use crate::setup::{Mode, Want, Workbench};
use crate::workloads::{DataSet, Rig, Sizes, fragmentation, interleave, random, stream, swapoff};
use crate::{cancel, micro};
use device::units::human_iec;

pub fn run(plan: &Plan) -> Result<(), Error> {
    let wall = Instant::now();
    let mut r = Report {
        schema: SCHEMA,
        name: plan.name.clone(),
        started_utc: utc_now(),
        quick: plan.quick,
        machine: Machine::detect(),
        ..Report::default()
    };
    eprintln!(
        "swapkit bench{}: {} devices of {} each",
        if plan.quick { " --quick" } else { "" },
        plan.devices,
        human_iec(plan.size)
    );
    let wb = Workbench::create(&Want {
        devices: plan.devices,
        size: plan.size,
        parent: plan.dir.clone(),
        force_files: plan.files,
        tag: "swapkit-bench",
    })?;
    let paths = wb.paths();
    r.setup = SetupInfo {
        mode: match &wb.mode {
            Mode::Loop => "loop".into(),
            Mode::Files { .. } => "files".into(),
        },
        why_files: match &wb.mode {
            Mode::Loop => None,
            Mode::Files { why } => Some(why.clone()),
        },
        devices: wb.info(),
        backing_dir: wb.dir.display().to_string(),
        ..SetupInfo::default()
    };

    measure(plan, &paths, &mut r)?;

    let loops = wb.mode == Mode::Loop;
    drop(wb);
    r.seconds = wall.elapsed().as_secs_f64();
    eprintln!(
        "  torn down: {}backing files removed",
        if loops { "loop devices detached, " } else { "" }
    );
    print!("{}", report::terminal(&r));
    let written = report::write_all(&r, &plan.out)?;
    println!("wrote:");
    for p in written {
        println!("  {}", p.display());
    }
    Ok(())
}

/// All measurements, into `r`, phase by phase. The devices in `paths` stay attached
/// meanwhile. A phase that cannot run here ([`Error::Skipped`]) leaves a note instead.
fn measure(plan: &Plan, paths: &[PathBuf], r: &mut Report) -> Result<(), Error> {
    let sizes = Sizes::new(plan.quick);
    // The raw baselines, always: everything else is read against them.
    raw_baselines(plan, paths, &sizes, r)?;
    streaming(plan, paths, &sizes, r)?;
    if plan.runs(Workload::Interleave) {
        interleave_matrix(paths, &sizes, r)?;
    }
    if plan.runs(Workload::Fragmentation) {
        cancel::check()?;
        let f = fragmentation::churn(paths, 0.95, sizes.phase)?;
        eprintln!(
            "  {:<28} {} ops at {:.1}% full, {} allocation failures",
            "fragmentation churn", f.churn_ops, f.fill_percent, f.alloc_failures
        );
        r.fragmentation = Some(f);
    }
    if plan.runs(Workload::Swapoff) {
        cancel::check()?;
        let drained = swapoff::drain(paths, &sizes, queue_depth());
        if let Some(s) = unless_skipped(drained, r)? {
            let f = Figure::new(
                "swapoff-drain",
                format!("swapoff of {} holding {}", s.device, human_iec(s.bytes)),
                s.bytes,
                s.bytes / device::PAGE_SIZE as u64,
                s.seconds,
            );
            line(&f);
            r.pager.push(f);
            r.swapoff = Some(s);
        }
    }
    if plan.runs(Workload::Micro) {
        r.micro = micro::summaries();
    }
    if plan.fio {
        r.notes.push(crate::fio::run(paths, &mut r.fio, plan.quick));
    }
    if plan.kernel_baseline {
        kernel_baseline(plan, paths, r)?;
    }
    r.comparisons = comparisons(r);
    Ok(())
}

/// The pager's default async queue depth: the depth of every sequential comparison.
fn queue_depth() -> usize {
    PagerConfig::default().swap_async_max as usize
}

/// `Ok(None)` and a note in the report when `result` is [`Error::Skipped`]; other errors
/// end the run.
fn unless_skipped<T>(result: Result<T, Error>, r: &mut Report) -> Result<Option<T>, Error> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e @ Error::Skipped { .. }) => {
            r.notes.push(e.to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The devices raw through the engine, with the pager's shapes: `r.raw`.
fn raw_baselines(
    plan: &Plan,
    paths: &[PathBuf],
    sizes: &Sizes,
    r: &mut Report,
) -> Result<(), Error> {
    let engine = Engine::new(EngineKind::Auto)?;
    r.setup.engine = engine.kind().to_string();
    let total_bytes: u64 = plan.size * plan.devices as u64;
    let raw_plan = RawPlan {
        seq_queue_depth: queue_depth(),
        cluster_pages: PagerConfig::default().max_cluster as usize,
        // As much as the streaming data set moves, so both sides see the same span of disk.
        seq_bytes: (total_bytes as f64 * sizes.data_fraction) as u64,
        seq_min_time: sizes.seq_min_time,
        rand_time: if plan.quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(10)
        },
        one_device_bytes: plan
            .runs(Workload::Swapoff)
            .then_some((plan.size as f64 * sizes.data_fraction) as u64),
    };
    r.raw = raw::baselines(&engine, paths, &raw_plan)?;
    // The pager opens the devices exclusively next: the engine must let go of them first.
    drop(engine);
    for f in &r.raw {
        line(f);
    }
    Ok(())
}

/// Pageout, then pagein (sequential, random) and mixed on the same data set: `r.pager`.
fn streaming(plan: &Plan, paths: &[PathBuf], sizes: &Sizes, r: &mut Report) -> Result<(), Error> {
    let streaming = [
        Workload::PageoutSeq,
        Workload::PageinSeq,
        Workload::PageinRand,
        Workload::Mixed,
    ];
    if !streaming.iter().any(|w| plan.runs(*w)) {
        return Ok(());
    }
    cancel::check()?;
    let qd = queue_depth();
    let rig = Rig::new(paths, PagerConfig::default().interleave)?;
    let st = rig.pager.stats();
    r.setup.interleave = st.tunables.interleave;
    r.setup.max_cluster = st.tunables.max_cluster;
    r.setup.swap_async_max = st.tunables.swap_async_max;
    r.setup.nswbuf = st.tunables.nswbuf;
    r.setup.engine = st.engine.clone();
    let pages = (rig.usable_pages() as f64 * sizes.data_fraction) as u64;
    let ds = DataSet::alloc(
        &rig,
        (pages / sizes.object_pages).max(1),
        sizes.object_pages,
    )?;
    let mut keep = |f: Figure| {
        line(&f);
        r.pager.push(f);
    };
    // pageout-seq always runs here: the others need the data on swap.
    let f = stream::pageout_seq(&rig, &ds, "pageout-seq", qd as u32, sizes.seq_min_time)?;
    if plan.runs(Workload::PageoutSeq) {
        keep(f);
    } else {
        line(&f);
    }
    if plan.runs(Workload::PageinSeq) {
        keep(stream::pagein_seq(
            &rig,
            &ds,
            qd,
            "pagein-seq",
            sizes.seq_min_time,
        )?);
    }
    if plan.runs(Workload::PageinRand) {
        keep(random::pagein_rand(&rig, &ds, 1, sizes.phase)?);
        keep(random::pagein_rand(&rig, &ds, 8, sizes.phase)?);
    }
    if plan.runs(Workload::Mixed) {
        for f in random::mixed(&rig, &ds, 4, sizes.phase)? {
            keep(f);
        }
    }
    Ok(())
}

/// Pageout and pagein over 1..n devices at several interleaves: `r.interleave`.
fn interleave_matrix(paths: &[PathBuf], sizes: &Sizes, r: &mut Report) -> Result<(), Error> {
    cancel::check()?;
    r.interleave = interleave::matrix(paths, sizes, queue_depth())?;
    for c in &r.interleave {
        eprintln!(
            "  {:<28} out {:>7.1} MiB/s, in {:>7.1} MiB/s, pages per device {:?}",
            format!("interleave {} dev × {}", c.devices, c.interleave),
            c.pageout_mib_s,
            c.pagein_mib_s,
            c.pages_per_device
        );
    }
    Ok(())
}

/// The kernel's own swap on the same devices: `r.kernel`. A failure of the baseline is a
/// note, not the end of the run: it measures the kernel, not us.
fn kernel_baseline(plan: &Plan, paths: &[PathBuf], r: &mut Report) -> Result<(), Error> {
    cancel::check()?;
    // A quarter of the data fits in the cgroup: the rest must go through swap.
    let data = (plan.size * plan.devices as u64 / 4).min(1 << 30);
    match unless_skipped(crate::kernel::run(paths, data, data / 4), r) {
        Ok(Some(k)) => {
            for f in &k.figures {
                line(f);
            }
            r.kernel = k.figures;
        }
        Ok(None) => {}
        Err(e @ Error::Workload { .. }) => r.notes.push(format!("failed: {e}")),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// One progress line per finished figure.
fn line(f: &Figure) {
    let lat = f.p(99.0).map_or(String::new(), |p99| {
        format!(", p50 {} µs, p99 {p99} µs", f.p(50.0).unwrap_or(0))
    });
    eprintln!(
        "  {:<28} {:>8.1} MiB/s {:>9.0} IOPS{lat}",
        f.id, f.mib_s, f.iops
    );
}

/// Each pager figure beside its raw baseline, with the targets.
fn comparisons(r: &Report) -> Vec<Comparison> {
    let pairs: [(&str, &str, Metric, Option<f64>); 13] = [
        ("pageout-seq", "raw-seq-write", Metric::MibS, Some(0.9)),
        ("pagein-seq", "raw-seq-read", Metric::MibS, Some(0.9)),
        ("pagein-rand-1t", "raw-rand-read-qd1", Metric::Iops, None),
        (
            "pagein-rand-1t",
            "raw-rand-read-qd1",
            Metric::P99Us,
            Some(1.25),
        ),
        ("pagein-rand-8t", "raw-rand-read-qd16", Metric::Iops, None),
        ("pagein-rand-8t", "raw-rand-read-qd16", Metric::P99Us, None),
        (
            "swapoff-drain",
            "raw-seq-read-1dev",
            Metric::MibS,
            Some(0.7),
        ),
        ("pagein-seq", "kernel-pagein-seq", Metric::MibS, Some(2.0)),
        ("swapoff-drain", "kernel-swapoff", Metric::MibS, Some(5.0)),
        // Our engine against fio: is the engine the limit?
        ("raw-seq-write", "fio-seq-write", Metric::MibS, None),
        ("raw-seq-read", "fio-seq-read", Metric::MibS, None),
        ("raw-rand-read-qd1", "fio-rand-read-qd1", Metric::Iops, None),
        (
            "raw-rand-read-qd16",
            "fio-rand-read-qd16",
            Metric::Iops,
            None,
        ),
    ];
    pairs
        .iter()
        .filter_map(|(w, b, m, t)| {
            let wf = r.pager.iter().chain(&r.raw).find(|f| f.id == *w)?;
            let bf = r
                .raw
                .iter()
                .chain(&r.kernel)
                .chain(&r.fio)
                .find(|f| f.id == *b)?;
            Some(Comparison::new(wf, bf, *m, *t))
        })
        .collect()
}

/// Now as RFC 3339 UTC, without a date crate: days since the epoch to a civil date
/// (Howard Hinnant's `civil_from_days`).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_phase_becomes_a_note_and_a_failed_one_ends_the_run() {
        let mut r = Report::default();
        let skipped: Result<(), Error> = Err(Error::skipped("swapoff", "needs 2 devices"));
        assert!(matches!(unless_skipped(skipped, &mut r), Ok(None)));
        assert_eq!(r.notes, ["swapoff skipped: needs 2 devices"]);
        // A message that happens to start with "needs" is still a failure.
        let failed: Result<(), Error> = Err(Error::workload("swapoff", "needs more swap"));
        assert!(matches!(
            unless_skipped(failed, &mut r),
            Err(Error::Workload { .. })
        ));
        assert_eq!(unless_skipped(Ok(7), &mut r).ok().flatten(), Some(7));
    }
    #[test]
    fn utc_now_looks_like_rfc3339() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
