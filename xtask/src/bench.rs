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
    if plan.quick {
        r.notes.push(
            "--quick: a smoke run of about a minute (small devices, short phases); read the \
             full run's figures, not these"
                .into(),
        );
    }
    if !crate::fio::available() {
        // The first thing said: without fio the limits are only our own engine's.
        eprintln!("{}", crate::fio::MISSING);
        r.notes.insert(0, crate::fio::MISSING.into());
    } else if !plan.fio {
        r.notes.push(
            "without --fio the baselines are our own engine only, not the device's limit".into(),
        );
    }
    eprintln!(
        "swapkit bench{}: {} devices of {} each",
        if plan.quick {
            " --quick (a smoke run of about a minute)"
        } else {
            ""
        },
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
    // The raw baselines always run (everything else is read against them), interleaved
    // with fio's same-shape jobs and the pager's workloads.
    streaming(plan, paths, &sizes, r)?;
    if plan.runs(Workload::PageoutSeq) && plan.runs(Workload::PageinSeq) {
        checksum_cost(paths, &sizes, r)?;
    }
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
        // One device's read (the drain's R) just before the drain; the engine lets go of
        // the device before the drain's pager opens it.
        let engine = Engine::new(EngineKind::Auto)?;
        let one = raw::RawRig::open(&paths[..1], &raw_plan(plan, &sizes, true), true)?;
        let mut reps = Vec::new();
        for _ in 0..sizes.repetitions.max(1) {
            cancel::check()?;
            reps.push(one.once(&engine, "raw-seq-read-1dev")?);
        }
        drop((one, engine));
        if let Some(f) = Figure::median_of(reps) {
            crate::results::line(&f);
            r.raw.push(f);
        }
        let drained = swapoff::drain(paths, &sizes, queue_depth());
        // Not repeated and no CPU figure: the drain's own time is only part of the phase
        // (the data set is paged out first), and every repetition would need a fresh set.
        if let Some(s) = unless_skipped(drained, r)? {
            let f = Figure::new(
                "swapoff-drain",
                format!("swapoff of {} holding {}", s.device, human_iec(s.bytes)),
                s.bytes,
                s.bytes / device::PAGE_SIZE as u64,
                s.seconds,
            );
            crate::results::line(&f);
            r.pager.push(f);
            r.swapoff = Some(s);
        }
    }
    if plan.runs(Workload::Micro) {
        r.micro = micro::summaries();
    }
    if plan.fio && crate::fio::available() {
        let rand_bytes = sizes.rand_ops * device::PAGE_SIZE as u64;
        r.notes.push(crate::fio::run(
            paths,
            &mut r.fio,
            sizes.fio_seq_bytes,
            rand_bytes,
        ));
    }
    if plan.runs(Workload::Region) {
        crate::membench::run(plan, paths, r)?;
    }
    if plan.runs(Workload::Run) {
        crate::runbench::run(plan, paths, r)?;
    }
    if plan.kernel_baseline {
        kernel_baseline(plan, paths, r)?;
    }
    if let Some((_, why)) = drain_limit(r) {
        r.notes.push(why);
    }
    r.comparisons = comparisons(r);
    r.comparisons.extend(crate::membench::comparisons(r));
    r.comparisons.extend(crate::runbench::comparisons(r));
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

/// What the raw baselines of this run move: as much as the streaming data set for the
/// sequential ones (so both sides see the same span of disk), `sizes.rand_ops` reads for
/// the random ones, and half a device for `raw-seq-read-1dev` when `one_device`.
fn raw_plan(plan: &Plan, sizes: &Sizes, one_device: bool) -> RawPlan {
    let total_bytes: u64 = plan.size * plan.devices as u64;
    RawPlan {
        seq_queue_depth: queue_depth(),
        cluster_pages: PagerConfig::default().max_cluster as usize,
        seq_bytes: (total_bytes as f64 * sizes.data_fraction) as u64,
        rand_bytes: sizes.rand_ops * device::PAGE_SIZE as u64,
        repetitions: sizes.repetitions,
        one_device_bytes: one_device.then_some((plan.size as f64 * sizes.data_fraction) as u64),
    }
}

/// The figures of one kind (raw, fio, pager) gathered repetition by repetition, by id in
/// the order first seen; [`Reps::medians`] turns them into the reported figures.
#[derive(Default)]
struct Reps(Vec<(String, Vec<Figure>)>);

impl Reps {
    fn push(&mut self, f: Figure) {
        match self.0.iter_mut().find(|(id, _)| *id == f.id) {
            Some((_, v)) => v.push(f),
            None => self.0.push((f.id.clone(), vec![f])),
        }
    }

    fn medians(self) -> Vec<Figure> {
        self.0
            .into_iter()
            .filter_map(|(_, v)| Figure::median_of(v))
            .collect()
    }
}

/// The streaming shapes, interleaved: in every repetition, each shape's raw baseline, fio's
/// job at the same shape and depth (with `--fio`) and the pager workload of that shape run
/// one after the other, so the ratios compare figures taken seconds apart (measured phase
/// after phase they drifted by up to 30% on a shared VM). `r.raw`, `r.fio` (the same-shape
/// jobs; the rest of the sweep comes later), `r.pager`.
///
/// The pager keeps its data set on the devices throughout; the raw engine and fio open them
/// beside it (not exclusively). Their writes land on the pager's blocks, so the write shape
/// runs first in a repetition and `pageout-seq` then writes the whole data set again before
/// anything reads it (every read still checks its stamps). Then the mixed workload, on the
/// same data set.
fn streaming(plan: &Plan, paths: &[PathBuf], sizes: &Sizes, r: &mut Report) -> Result<(), Error> {
    let streaming = [
        Workload::PageoutSeq,
        Workload::PageinSeq,
        Workload::PageinRand,
        Workload::Mixed,
    ];
    cancel::check()?;
    let qd = queue_depth();
    let rig = if streaming.iter().any(|w| plan.runs(*w)) {
        Some(streaming_rig(paths, sizes, r)?)
    } else {
        None
    };
    let engine = Engine::new(EngineKind::Auto)?;
    if rig.is_none() {
        r.setup.engine = engine.kind().to_string();
    }
    let raw = raw::RawRig::open(paths, &raw_plan(plan, sizes, false), rig.is_none())?;
    let mut fio = plan.fio && crate::fio::available();
    let rand_bytes = sizes.rand_ops * device::PAGE_SIZE as u64;
    let (mut raws, mut fios, mut pagers) = (Reps::default(), Reps::default(), Reps::default());
    for _ in 0..sizes.repetitions.max(1) {
        for a in AGAINST.iter().filter(|a| a.streaming) {
            cancel::check()?;
            raws.push(raw.once(&engine, a.raw)?);
            if fio {
                match crate::fio::once(a.shape, a.qd, paths, sizes.fio_seq_bytes, rand_bytes) {
                    Ok(f) => fios.push(f),
                    Err(why) => {
                        r.notes
                            .push(format!("--fio: {}: {why}", crate::fio::id(a.shape, a.qd)));
                        fio = false;
                    }
                }
            }
            let Some((rig, ds)) = &rig else { continue };
            let wanted = match a.workload {
                // Always: the reads need the data set written after the raw and fio writes.
                "pageout-seq" => true,
                "pagein-seq" => plan.runs(Workload::PageinSeq),
                _ => plan.runs(Workload::PageinRand),
            };
            if !wanted {
                continue;
            }
            // Profiled when asked (`SWAPKIT_PERF_PHASE`), the CPU figure taken inside.
            let (f, cpu) = crate::perf::during(a.workload, || {
                crate::cpu::measure(|| match a.workload {
                    "pageout-seq" => {
                        stream::pageout_seq(rig, ds, "pageout-seq", qd as u32, Duration::ZERO)
                    }
                    "pagein-seq" => stream::pagein_seq(rig, ds, qd, "pagein-seq", Duration::ZERO),
                    "pagein-rand-1t" => random::pagein_rand(rig, ds, 1, sizes.phase),
                    _ => random::pagein_rand(rig, ds, 8, sizes.phase),
                })
            });
            pagers.push(f?.with_cpu(cpu));
        }
    }
    // The pager opens devices exclusively in the phases after this one: the engine must
    // let go of them first.
    drop(raw);
    drop(engine);
    r.raw = raws.medians();
    r.fio.extend(fios.medians());
    for f in r.raw.iter().chain(&r.fio) {
        crate::results::line(f);
    }
    for f in pagers.medians() {
        crate::results::line(&f);
        if f.id != "pageout-seq" || plan.runs(Workload::PageoutSeq) {
            r.pager.push(f);
        }
    }
    let Some((rig, ds)) = rig else {
        return Ok(());
    };
    r.setup.engine = rig.pager.stats().engine.clone();
    if plan.runs(Workload::Mixed) {
        mixed(&rig, &ds, sizes, r)?;
    }
    Ok(())
}

/// The pager and its data set for the streaming workloads; the pager's tunables go into
/// the report's setup.
fn streaming_rig(
    paths: &[PathBuf],
    sizes: &Sizes,
    r: &mut Report,
) -> Result<(Rig, DataSet), Error> {
    let rig = Rig::new(paths, PagerConfig::default().interleave)?;
    let st = rig.pager.stats();
    r.setup.interleave = st.tunables.interleave;
    r.setup.max_cluster = st.tunables.max_cluster;
    r.setup.swap_async_max = st.tunables.swap_async_max;
    r.setup.nswbuf = st.tunables.nswbuf;
    let ds = DataSet::streaming(&rig, sizes);
    Ok((rig, ds))
}

/// mixed, mixed-reads, mixed-writes on the streaming data set: each the median of its own
/// repetitions; the CPU of the phase is charged to `mixed` alone.
fn mixed(rig: &Rig, ds: &DataSet, sizes: &Sizes, r: &mut Report) -> Result<(), Error> {
    let mut runs = Reps::default();
    for _ in 0..sizes.repetitions.max(1) {
        cancel::check()?;
        let (figs, cpu) = crate::cpu::measure(|| random::mixed(rig, ds, 4, sizes.phase));
        for (i, f) in figs?.into_iter().enumerate() {
            runs.push(if i == 0 { f.with_cpu(cpu) } else { f });
        }
    }
    for f in runs.medians() {
        crate::results::line(&f);
        r.pager.push(f);
    }
    Ok(())
}

/// The price of the end-to-end page checksums: sequential pageout then pagein on a pager
/// with `checksum = crc32c` and on one with `checksum = none`, alternated repetition by
/// repetition on the same devices so both see the same conditions. [`comparisons`] sets
/// the `*-crc32c` figures beside the `*-nocsum` ones (target: ≥ 0.97×).
fn checksum_cost(paths: &[PathBuf], sizes: &Sizes, r: &mut Report) -> Result<(), Error> {
    let qd = queue_depth();
    let modes = [
        (pager::Checksum::Crc32c, "crc32c"),
        (pager::Checksum::None, "nocsum"),
    ];
    // reps[mode][0] pageout, reps[mode][1] pagein
    let mut reps: [[Vec<Figure>; 2]; 2] = Default::default();
    for _ in 0..sizes.repetitions.max(1) {
        for (m, (checksum, tag)) in modes.iter().enumerate() {
            cancel::check()?;
            let rig = Rig::with_config(
                paths,
                PagerConfig {
                    checksum: *checksum,
                    ..PagerConfig::default()
                },
            )?;
            let ds = DataSet::streaming(&rig, sizes);
            let out_id = format!("pageout-seq-{tag}");
            let (f, cpu) = crate::cpu::measure(|| {
                stream::pageout_seq(&rig, &ds, &out_id, qd as u32, Duration::ZERO)
            });
            reps[m][0].push(f?.with_cpu(cpu));
            let in_id = format!("pagein-seq-{tag}");
            let (f, cpu) =
                crate::cpu::measure(|| stream::pagein_seq(&rig, &ds, qd, &in_id, Duration::ZERO));
            reps[m][1].push(f?.with_cpu(cpu));
        }
    }
    for f in reps.into_iter().flatten().filter_map(Figure::median_of) {
        crate::results::line(&f);
        r.pager.push(f);
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
    // As many readers as our pagein-seq had: a fair comparison.
    let readers = r
        .pager
        .iter()
        .find(|f| f.id == "pagein-seq")
        .map_or(queue_depth() as u32, |f| f.threads);
    match unless_skipped(crate::kernel::run(paths, data, data / 4, readers), r) {
        Ok(Some(k)) => {
            for f in &k.figures {
                crate::results::line(f);
            }
            r.kernel = k.figures;
        }
        Ok(None) => {}
        Err(e @ Error::Workload { .. }) => r.notes.push(format!("failed: {e}")),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// How a pager workload is compared: its shape (a [`fio::SHAPES`] name), the depth of that
/// shape it matches, its raw baseline, and the targets against the best at the same
/// shape and the best at any depth.
struct Against {
    workload: &'static str,
    raw: &'static str,
    shape: &'static str,
    qd: u32,
    metric: Metric,
    same: Option<f64>,
    any: Option<f64>,
    /// Measured in [`streaming`], interleaved with its raw baseline and fio's job.
    streaming: bool,
}

const AGAINST: [Against; 5] = [
    Against {
        workload: "pageout-seq",
        raw: "raw-seq-write",
        shape: "seq-write",
        qd: 4,
        metric: Metric::MibS,
        same: None,
        any: Some(0.9),
        streaming: true,
    },
    Against {
        workload: "pagein-seq",
        raw: "raw-seq-read",
        shape: "seq-read",
        qd: 4,
        metric: Metric::MibS,
        same: Some(0.95),
        any: None,
        streaming: true,
    },
    Against {
        workload: "pagein-rand-1t",
        raw: "raw-rand-read-qd1",
        shape: "rand-read",
        qd: 1,
        metric: Metric::Iops,
        same: Some(0.9),
        any: None,
        streaming: true,
    },
    Against {
        workload: "pagein-rand-8t",
        raw: "raw-rand-read-qd16",
        shape: "rand-read",
        qd: 16,
        metric: Metric::Iops,
        same: Some(0.9),
        any: None,
        streaming: true,
    },
    Against {
        workload: "swapoff-drain",
        raw: "raw-seq-read-1dev",
        shape: "seq-read-1dev",
        qd: 4,
        metric: Metric::MibS,
        same: None,
        any: Some(0.9),
        streaming: false,
    },
];

/// The best of `candidates` by `metric` (the highest throughput, the lowest latency).
fn best<'a>(candidates: impl Iterator<Item = &'a Figure>, metric: Metric) -> Option<&'a Figure> {
    candidates.max_by(|a, b| {
        let (x, y) = (metric.of(a), metric.of(b));
        if metric.higher_is_better() {
            x.total_cmp(&y)
        } else {
            y.total_cmp(&x)
        }
    })
}

/// Each pager figure beside the best at its own shape (our raw engine or fio), the
/// device's best at any QD ≤ 32, fio's latency and CPU, and the kernel; then our raw
/// engine against fio. With the targets.
/// One piece: the table of comparisons reads top to bottom as the report prints it.
fn comparisons(r: &Report) -> Vec<Comparison> {
    let fig = |id: &str| {
        r.pager
            .iter()
            .chain(&r.raw)
            .chain(&r.kernel)
            .chain(&r.fio)
            .find(|f| f.id == id)
    };
    let mut out = Vec::new();
    for a in &AGAINST {
        let Some(w) = r.pager.iter().find(|f| f.id == a.workload) else {
            continue;
        };
        let fio_same = crate::fio::id(a.shape, a.qd);
        let same = best(
            [a.raw, fio_same.as_str()].into_iter().filter_map(fig),
            a.metric,
        );
        if let Some(b) = same {
            out.push(Comparison::new(w, b, a.metric, a.same).on("same shape"));
        }
        let sweep = crate::fio::sweep_ids(a.shape);
        let any = best(
            std::iter::once(a.raw)
                .chain(sweep.iter().map(String::as_str))
                .filter_map(fig),
            a.metric,
        );
        if let Some(b) = any {
            let basis = if crate::fio::PER_DEVICE_SHAPES.contains(&a.shape) {
                "any QD, any layout"
            } else {
                "any QD ≤ 32"
            };
            out.push(Comparison::new(w, b, a.metric, a.any).on(basis));
        }
        if let Some(f) = fig(&fio_same) {
            if a.workload == "pagein-rand-1t" {
                out.push(Comparison::new(w, f, Metric::P50Us, Some(1.15)).on("fio"));
                out.push(Comparison::new(w, f, Metric::P99Us, Some(1.15)).on("fio"));
            }
            if w.cpu_s_per_gib.is_some() && f.cpu_s_per_gib.is_some() {
                out.push(Comparison::new(w, f, Metric::CpuPerGib, Some(1.5)).on("fio"));
            }
        }
    }
    // What the page checksums cost (issue #11: with ≥ 0.97× without).
    for (w, plain) in [
        ("pageout-seq-crc32c", "pageout-seq-nocsum"),
        ("pagein-seq-crc32c", "pagein-seq-nocsum"),
    ] {
        if let (Some(w), Some(p)) = (fig(w), fig(plain)) {
            out.push(Comparison::new(w, p, Metric::MibS, Some(0.97)).on("no checksum"));
        }
    }
    // Issue 24: the drain reads R and writes W on devices that share one disk here.
    if let (Some(w), Some((limit, _))) = (fig("swapoff-drain"), drain_limit(r)) {
        out.push(Comparison::new(w, &limit, Metric::MibS, Some(0.95)).on("drain limit"));
    }
    for (w, k, t) in [
        ("pagein-seq", "kernel-pagein-seq", 2.0),
        ("swapoff-drain", "kernel-swapoff", 5.0),
    ] {
        if let (Some(w), Some(k)) = (fig(w), fig(k)) {
            out.push(Comparison::new(w, k, Metric::MibS, Some(t)).on("kernel"));
        }
    }
    // Our engine against fio at the same shape: is the engine the limit?
    for a in &AGAINST {
        let (Some(raw), Some(f)) = (fig(a.raw), fig(&crate::fio::id(a.shape, a.qd))) else {
            continue;
        };
        out.push(Comparison::new(raw, f, a.metric, None).on("engine"));
        if a.qd == 1 {
            out.push(Comparison::new(raw, f, Metric::P50Us, Some(1.15)).on("engine"));
            out.push(Comparison::new(raw, f, Metric::P99Us, Some(1.15)).on("engine"));
        }
        if raw.cpu_s_per_gib.is_some() && f.cpu_s_per_gib.is_some() {
            out.push(Comparison::new(raw, f, Metric::CpuPerGib, None).on("engine"));
        }
    }
    out
}

/// The limit of a swapoff drain that reads every page from one device and writes it to the
/// others, when reads and writes share one disk (the bench's loop devices sit on files of
/// one file system): 1 / (1/R + 1/W), R the best sequential read of one device (our raw
/// engine or fio at any depth) and W the best sequential write (any depth and layout),
/// both measured in this run. The figure `drain-limit`, and a note naming R and W.
fn drain_limit(r: &Report) -> Option<(Figure, String)> {
    let best_of = |shape: &str, raw: &str| {
        let ids = crate::fio::sweep_ids(shape);
        best(
            r.raw
                .iter()
                .chain(&r.fio)
                .filter(|f| f.id == raw || ids.contains(&f.id)),
            Metric::MibS,
        )
    };
    let read = best_of("seq-read-1dev", "raw-seq-read-1dev")?;
    let write = best_of("seq-write", "raw-seq-write")?;
    if read.mib_s <= 0.0 || write.mib_s <= 0.0 {
        return None;
    }
    let mut limit = Figure::new("drain-limit", "1 / (1/R + 1/W)", 0, 0, 1.0);
    limit.mib_s = 1.0 / (1.0 / read.mib_s + 1.0 / write.mib_s);
    let why = format!(
        "drain limit 1 / (1/R + 1/W) = {:.0} MiB/s, R = {} {:.0} MiB/s (one device's best \
         read), W = {} {:.0} MiB/s (the best write at any QD and layout), both of this run",
        limit.mib_s, read.id, read.mib_s, write.id, write.mib_s
    );
    Some((limit, why))
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
    fn pageout_is_compared_with_the_best_write_of_any_layout_and_swapoff_with_the_drain_limit() {
        let fig = |id: &str, mib: u64| Figure::new(id, "", mib << 20, 1, 1.0).with_cpu(0.1);
        let r = Report {
            raw: vec![fig("raw-seq-write", 900), fig("raw-seq-read-1dev", 1200)],
            fio: vec![
                fig("fio-seq-write-qd32", 1500),
                fig("fio-seq-write-perdev-qd4", 2400),
                fig("fio-seq-read-1dev-qd4", 1000),
            ],
            pager: vec![fig("pageout-seq", 1200), fig("swapoff-drain", 760)],
            ..Report::default()
        };
        let (limit, why) = drain_limit(&r).unwrap();
        // R = raw-seq-read-1dev 1200, W = fio-seq-write-perdev-qd4 2400: 800 MiB/s.
        assert!((limit.mib_s - 800.0).abs() < 1e-9, "{}", limit.mib_s);
        assert!(why.contains("fio-seq-write-perdev-qd4"), "{why}");
        let cs = comparisons(&r);
        let any = cs
            .iter()
            .find(|c| c.workload == "pageout-seq" && c.basis == "any QD, any layout")
            .unwrap();
        assert_eq!(any.baseline, "fio-seq-write-perdev-qd4");
        assert_eq!(any.met, Some(false));
        let drain = cs.iter().find(|c| c.basis == "drain limit").unwrap();
        assert!((drain.ratio - 0.95).abs() < 1e-9);
        assert_eq!(drain.met, Some(true));
    }

    #[test]
    fn interleaved_repetitions_give_one_median_per_id_in_the_order_first_run() {
        let mut reps = Reps::default();
        for mib in [300u64, 100, 200] {
            reps.push(Figure::new("b", "", mib << 20, 1, 1.0));
            reps.push(Figure::new("a", "", (mib + 1) << 20, 1, 1.0));
        }
        let m = reps.medians();
        let got: Vec<(&str, f64, usize)> = m
            .iter()
            .map(|f| (f.id.as_str(), f.mib_s.round(), f.repetitions.len()))
            .collect();
        assert_eq!(got, [("b", 200.0, 3), ("a", 201.0, 3)]);
    }

    #[test]
    fn utc_now_looks_like_rfc3339() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
