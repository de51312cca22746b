//! Turning a [`Report`] into what people read: the terminal table, `<name>.json`,
//! `<name>.md` and the SVG plots, all from the same data.

mod plot;
mod table;

use std::path::{Path, PathBuf};

pub use table::Table;

use crate::error::Error;
use crate::results::{Comparison, Figure, Report};
use device::units::human_iec;

/// Everything a reader sees, in order. The terminal and the markdown share it.
pub fn tables(r: &Report) -> Vec<Table> {
    let mut out = Vec::new();
    if !r.raw.is_empty() {
        out.push(figures(
            "Raw devices (the physical limit)",
            "The devices themselves through the same I/O engine the pager uses, all devices at once.",
            &r.raw,
        ));
    }
    if !r.pager.is_empty() {
        out.push(figures(
            "Through the pager",
            "Whole pager calls: ops are putpages/getpages calls, latency is per call.",
            &r.pager,
        ));
    }
    if !r.comparisons.is_empty() {
        out.push(comparisons(&r.comparisons, r.quick));
    }
    if !r.interleave.is_empty() {
        out.push(interleave(r));
    }
    if let Some(f) = &r.fragmentation {
        out.extend(fragmentation(f));
    }
    if let Some(s) = &r.swapoff {
        let mut t = Table::new(
            "Swapoff drain",
            "Time to move every page off one device onto the others.",
            &["device", "data", "seconds", "MiB/s", "pages lost"],
        );
        t.row(vec![
            s.device.clone(),
            human_iec(s.bytes),
            format!("{:.2}", s.seconds),
            format!("{:.1}", s.mib_s),
            s.pages_lost.to_string(),
        ]);
        out.push(t);
    }
    if !r.fio.is_empty() {
        out.push(figures("fio on the same devices", "", &r.fio));
    }
    if !r.kernel.is_empty() {
        out.push(figures(
            "Linux kernel swap on the same devices",
            "",
            &r.kernel,
        ));
    }
    if !r.memory.is_empty() {
        out.push(memory(r));
    }
    for m in &r.micro {
        let mut t = Table::new(
            &format!("Micro-benchmarks: {}", m.crate_name),
            m.link.as_deref().unwrap_or(""),
            &["benchmark", "result"],
        );
        t.left = vec![0, 1];
        for (k, v) in &m.lines {
            t.row(vec![k.clone(), v.clone()]);
        }
        out.push(t);
    }
    out
}

fn figures(title: &str, caption: &str, figs: &[Figure]) -> Table {
    let mut t = Table::new(
        title,
        caption,
        &[
            "workload",
            "threads",
            "QD",
            "MiB/s",
            "IOPS",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "seconds",
            "spread",
            "CPU s/GiB",
        ],
    );
    for f in figs {
        let p = |q| f.p(q).map_or("-".to_string(), |v| v.to_string());
        let spread = f.spread_pct.map_or("-".to_string(), |s| {
            format!("±{:.0}% ({})", s / 2.0, f.repetitions.len())
        });
        let cpu = f
            .cpu_s_per_gib
            .map_or("-".to_string(), |c| format!("{c:.2}"));
        t.row(vec![
            f.id.clone(),
            f.threads.to_string(),
            f.queue_depth.to_string(),
            format!("{:.1}", f.mib_s),
            format!("{:.0}", f.iops),
            p(50.0),
            p(99.0),
            p(99.9),
            format!("{:.2}", f.seconds),
            spread,
            cpu,
        ]);
    }
    t
}

/// The region bench: each workload's region row above its kernel row.
fn memory(r: &Report) -> Table {
    let caption = match &r.memory_setup {
        Some(s) => format!(
            "The same workload code on a region with resident_limit L = {} and on plain \
             memory in a process whose memory cgroup is limited to L, with the kernel's swap on \
             the same devices; {} of data. A touch is one whole 4 KiB page read or written; \
             MiB/s = touches × 4 KiB / s; latency per touch (every touch of the random \
             phases, every 16th of the sequential ones); major faults: the region's faults \
             served from swap, the kernel child's ru_majflt; CPU s/GiB: the whole process \
             (the region's threads and the pager's included; the child's reclaim and swap-in).",
            human_iec(s.limit_bytes),
            human_iec(s.data_bytes)
        ),
        None => String::new(),
    };
    let mut t = Table::new(
        "Region vs the kernel's swap (memory)",
        &caption,
        &[
            "workload",
            "side",
            "MiB/s",
            "touches/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "major faults",
            "seconds",
            "spread",
            "CPU s/GiB",
        ],
    );
    t.left = vec![0, 1];
    let mut ids: Vec<&str> = r
        .memory
        .iter()
        .filter_map(|f| {
            f.id.strip_prefix("region-")
                .or(f.id.strip_prefix("swapkit-"))
                .or(f.id.strip_prefix("kernel-"))
        })
        .collect();
    ids.dedup();
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    for id in ids {
        // `swapkit-` is a program under `swapctl run` (the run bench).
        for side in ["region", "swapkit", "kernel"] {
            let Some(f) = r.memory.iter().find(|f| f.id == format!("{side}-{id}")) else {
                continue;
            };
            let p = |q| f.p(q).map_or("-".to_string(), |v| v.to_string());
            t.row(vec![
                id.to_string(),
                side.to_string(),
                format!("{:.1}", f.mib_s),
                format!("{:.0}", f.iops),
                p(50.0),
                p(99.0),
                p(99.9),
                f.major_faults.map_or("-".into(), |m| m.to_string()),
                format!("{:.2}", f.seconds),
                f.spread_pct.map_or("-".to_string(), |s| {
                    format!("±{:.0}% ({})", s / 2.0, f.repetitions.len())
                }),
                f.cpu_s_per_gib
                    .map_or("-".to_string(), |c| format!("{c:.2}")),
            ]);
        }
    }
    t
}

/// The ratios against their baselines. A `--quick` run's are indicative only (small
/// devices, short phases): its targets are shown, never judged met or missed.
fn comparisons(cs: &[Comparison], quick: bool) -> Table {
    let mut t = Table::new(
        if quick {
            "Pager vs raw (--quick: indicative ratios, targets not judged)"
        } else {
            "Pager vs raw"
        },
        "ratio = figure / baseline. basis `same shape`: the best of our raw engine and fio at \
         the workload's own queue depth; `any QD ≤ 32`: the device's best over the whole sweep \
         (QD 1, 4, 16, 32); `any QD, any layout`: the same with fio's one-job-per-device \
         writes (QD 1-8 each); `drain limit`: 1 / (1/R + 1/W) of this run's best one-device \
         read R and best write W; `fio`: fio itself at the same shape (latency, CPU s/GiB); `kernel`: \
         the kernel's swap (--kernel-baseline); `kernel swap`: the region bench, region / \
         kernel on the same memory workload; `engine`: our raw engine against fio. For \
         throughput higher is better; for latency, CPU and major faults lower is better. Figures are medians \
         of their repetitions. Targets are the issue's, read from the report and never asserted.",
        &[
            "workload", "basis", "baseline", "metric", "figure", "base", "ratio", "target",
        ],
    );
    t.left = vec![0, 1, 2, 3];
    for c in cs {
        let target = match (c.target, c.met) {
            (Some(x), Some(met)) => format!(
                "{}{x:.2}× {}",
                if c.metric.higher_is_better() {
                    "≥"
                } else {
                    "≤"
                },
                match (quick, met) {
                    (true, _) => "(indicative)",
                    (false, true) => "met",
                    (false, false) => "MISSED",
                }
            ),
            _ => "-".to_string(),
        };
        t.row(vec![
            c.workload.clone(),
            c.basis.clone(),
            c.baseline.clone(),
            c.metric.unit().to_string(),
            format!("{:.2}", c.value),
            format!("{:.2}", c.base),
            format!("{:.2}×", c.ratio),
            target,
        ]);
    }
    t
}

fn interleave(r: &Report) -> Table {
    let mut ils: Vec<u64> = r.interleave.iter().map(|c| c.interleave).collect();
    ils.sort_by_key(|&i| if i == 0 { u64::MAX } else { i });
    ils.dedup();
    let mut header = vec!["devices".to_string()];
    header.extend(ils.iter().map(|i| match i {
        0 => "interleave 0 (fill)".to_string(),
        n => format!("interleave {n}"),
    }));
    let mut t = Table::new(
        "Interleave: pageout / pagein MiB/s",
        "Each cell: sequential pageout MiB/s / sequential pagein MiB/s. Striping should scale \
         with devices when interleave > 0; interleave 0 fills one device first.",
        &[],
    );
    t.header = header;
    let mut devs: Vec<u32> = r.interleave.iter().map(|c| c.devices).collect();
    devs.sort();
    devs.dedup();
    for d in devs {
        let mut row = vec![d.to_string()];
        for &il in &ils {
            let cell = r
                .interleave
                .iter()
                .find(|c| c.devices == d && c.interleave == il)
                .map_or("-".to_string(), |c| {
                    format!("{:.0} / {:.0}", c.pageout_mib_s, c.pagein_mib_s)
                });
            row.push(cell);
        }
        t.row(row);
    }
    t
}

fn fragmentation(f: &crate::results::Fragmentation) -> Vec<Table> {
    let mut summary = Table::new(
        "Fragmentation churn",
        "Filled to the level shown, then random frees and re-allocations of random sizes. \
         Cluster sizes are the runs putpages got from the allocator during the churn.",
        &[
            "fill %",
            "churn ops",
            "seconds",
            "alloc failures",
            "cluster sizes (pages: count)",
        ],
    );
    summary.left = vec![4];
    let sizes: Vec<String> = f
        .cluster_sizes
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    summary.row(vec![
        format!("{:.1}", f.fill_percent),
        f.churn_ops.to_string(),
        format!("{:.2}", f.churn_seconds),
        f.alloc_failures.to_string(),
        sizes.join(", "),
    ]);
    let mut blist = Table::new(
        "Free space before / after the churn (blist stats)",
        "",
        &[
            "device",
            "when",
            "free pages",
            "free ranges",
            "largest",
            "average",
        ],
    );
    blist.left = vec![0, 1];
    for (when, snaps) in [("before", &f.before), ("after", &f.after)] {
        for s in snaps {
            blist.row(vec![
                s.device.clone(),
                when.to_string(),
                s.free_pages.to_string(),
                s.free_ranges.to_string(),
                s.largest.to_string(),
                s.average.to_string(),
            ]);
        }
    }
    vec![summary, blist]
}

/// What the terminal shows at the end of a run.
pub fn terminal(r: &Report) -> String {
    let mut out = format!(
        "\nswapkit bench ({}): {}\n{}\n\n",
        r.name,
        r.setup.headline(),
        r.machine.line()
    );
    for t in tables(r) {
        out.push_str(&t.text());
        out.push('\n');
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The markdown summary: the same tables, the plots, and fio-style latency blocks.
pub fn markdown(r: &Report, plots: &[PathBuf]) -> String {
    // The first line says what the figures were measured on (files or loop devices).
    let mut out = format!("# swapkit bench `{}`: {}\n\n", r.name, r.setup.headline());
    out.push_str(&format!(
        "Machine: {}. Started {}, {:.0} s in all. Pager: interleave {}, max cluster {} \
         pages, swap_async_max {}, nswbuf {}.\n\n",
        r.machine.line(),
        r.started_utc,
        r.seconds,
        r.setup.interleave,
        r.setup.max_cluster,
        r.setup.swap_async_max,
        r.setup.nswbuf
    ));
    if !r.notes.is_empty() {
        for n in &r.notes {
            out.push_str(&format!("- Note: {n}\n"));
        }
        out.push('\n');
    }
    // The micro-benchmarks get their own sections below, with the crates' tables.
    for t in tables(r)
        .iter()
        .filter(|t| !t.title.starts_with("Micro-benchmarks"))
    {
        out.push_str(&t.markdown());
    }
    for m in &r.micro {
        let link = m.link.as_deref().unwrap_or("");
        if m.tables.is_empty() {
            out.push_str(&format!(
                "### {} micro-benchmarks\n\nNo figures found; see [its README]({link}) and run \
                 `cargo bench -p {}`.\n\n",
                m.crate_name, m.crate_name
            ));
        } else {
            out.push_str(&format!(
                "### {} micro-benchmarks\n\nFrom [its README]({link}) (its latest `cargo bench -p {}`; \
                 not re-run by xtask).\n\n{}\n\n",
                m.crate_name,
                m.crate_name,
                m.tables.join("\n")
            ));
        }
    }
    if !plots.is_empty() {
        out.push_str("### Plots\n\n");
        for p in plots {
            let name = p
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into());
            out.push_str(&format!("![{name}]({name})\n\n"));
        }
    }
    let with_lat: Vec<&Figure> = r
        .raw
        .iter()
        .chain(&r.pager)
        .filter(|f| f.latency.as_ref().is_some_and(|l| l.count > 0))
        .collect();
    if !with_lat.is_empty() {
        out.push_str("### Latency percentiles (µs), as fio prints them\n\n```\n");
        for f in with_lat {
            if let Some(l) = &f.latency {
                out.push_str(&format!(
                    "{}: {} ops, min {} mean {:.1} max {} stdev {:.1}\n    clat percentiles (usec):\n{}",
                    f.id, l.count, l.min_us, l.mean_us, l.max_us, l.stdev_us, l.fio_block()
                ));
            }
        }
        out.push_str("```\n");
    }
    out
}

/// Write `<name>.json`, `<name>.md` and the plots into `dir`; return the paths written.
pub fn write_all(r: &Report, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut written = Vec::new();
    let json = dir.join(format!("{}.json", r.name));
    let text = serde_json::to_string_pretty(r)
        .map_err(|e| Error::Setup(format!("serialising the results: {e}")))?;
    std::fs::write(&json, text + "\n").map_err(|e| Error::io("writing", &json, e))?;
    written.push(json);
    let plots = plot::all(r, dir)?;
    let md = dir.join(format!("{}.md", r.name));
    std::fs::write(&md, markdown(r, &plots)).map_err(|e| Error::io("writing", &md, e))?;
    written.push(md);
    written.extend(plots);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Recorder;
    use crate::results::{Comparison, InterleaveCell, Metric, SetupInfo};
    use std::time::Duration;

    fn sample() -> Report {
        let mut lat = Recorder::new();
        for us in [80u64, 90, 100, 120, 400] {
            lat.record(Duration::from_micros(us));
        }
        let raw = Figure::new("raw-rand-read-qd1", "4 KiB random reads", 4096 * 5, 5, 0.01)
            .with_latency(lat.summary());
        let pager = Figure::new("pagein-rand-1t", "getpages of one page", 4096 * 5, 5, 0.012)
            .with_latency(lat.summary());
        let mut interleave = Vec::new();
        for d in [1, 2, 4] {
            for il in [1, 32, 0] {
                interleave.push(InterleaveCell {
                    devices: d,
                    interleave: il,
                    pageout_mib_s: 100.0 * d as f64,
                    pagein_mib_s: 90.0 * d as f64,
                    pages_per_device: vec![],
                });
            }
        }
        Report {
            name: "sample".into(),
            setup: SetupInfo {
                mode: "files".into(),
                why_files: Some("not root".into()),
                engine: "threads".into(),
                ..Default::default()
            },
            comparisons: vec![Comparison::new(&pager, &raw, Metric::P99Us, Some(1.25))],
            raw: vec![raw],
            pager: vec![pager],
            interleave,
            ..Default::default()
        }
    }

    #[test]
    fn a_quick_run_labels_its_ratios_indicative_and_judges_no_target() {
        let mut r = sample();
        r.comparisons[0].met = Some(false);
        let full = terminal(&r);
        assert!(full.contains("MISSED"), "{full}");
        r.quick = true;
        let quick = terminal(&r);
        assert!(
            !quick.contains("MISSED") && !quick.contains("× met"),
            "{quick}"
        );
        assert!(quick.contains("indicative"), "{quick}");
    }

    #[test]
    fn report_says_files_in_its_first_line() {
        let text = terminal(&sample());
        let first = text.trim_start().lines().next().unwrap_or_default();
        assert!(first.contains("NOT loop devices: not root"), "{first}");
    }

    #[test]
    fn write_all_produces_json_markdown_and_both_plots() {
        let dir = std::env::temp_dir().join(format!("swapkit-xtask-report-{}", std::process::id()));
        let files = write_all(&sample(), &dir).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "sample.json",
                "sample.md",
                "sample-interleave.svg",
                "sample-latency.svg"
            ]
        );
        let md = std::fs::read_to_string(dir.join("sample.md")).unwrap();
        assert!(md.contains("![sample-latency.svg](sample-latency.svg)"));
        assert!(md.contains("clat percentiles (usec)"));
        let back: Report =
            serde_json::from_str(&std::fs::read_to_string(dir.join("sample.json")).unwrap())
                .unwrap();
        assert_eq!(back.interleave.len(), 9);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
