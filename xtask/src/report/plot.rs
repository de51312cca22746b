//! SVG plots with plotters: throughput against devices × interleave, and latency CDFs of the
//! pager next to the raw devices. A plot with no data is skipped, not drawn empty.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::Error;
use crate::results::{Figure, Report};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("drawing {}: {e}", path.display()))
}

/// Draw every plot the report has data for; return the files written.
pub fn all(r: &Report, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    if !r.interleave.is_empty() {
        let p = dir.join(format!("{}-interleave.svg", r.name));
        interleave(r, &p).map_err(|e| plot_err(&p, e))?;
        out.push(p);
    }
    let pairs = latency_pairs(r);
    if !pairs.is_empty() {
        let p = dir.join(format!("{}-latency.svg", r.name));
        latency(&pairs, &p).map_err(|e| plot_err(&p, e))?;
        out.push(p);
    }
    if r.memory.iter().any(|f| f.id.starts_with("region-"))
        && r.memory.iter().any(|f| f.id.starts_with("kernel-"))
    {
        let p = dir.join(format!("{}-region.svg", r.name));
        region(r, &p).map_err(|e| plot_err(&p, e))?;
        out.push(p);
    }
    Ok(out)
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Two panels, pageout and pagein: MiB/s against the number of devices, a line per interleave.
fn interleave(r: &Report, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let mut ils: Vec<u64> = r.interleave.iter().map(|c| c.interleave).collect();
    ils.sort_by_key(|&i| if i == 0 { u64::MAX } else { i });
    ils.dedup();
    let max_dev = r.interleave.iter().map(|c| c.devices).max().unwrap_or(1) as f64;
    for (panel, (title, pick)) in panels.iter().zip([
        (
            "sequential pageout",
            (|c: &crate::results::InterleaveCell| c.pageout_mib_s) as fn(&_) -> f64,
        ),
        ("sequential pagein", |c: &crate::results::InterleaveCell| {
            c.pagein_mib_s
        }),
    ]) {
        let ymax = r.interleave.iter().map(pick).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5f64..max_dev + 0.5, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("devices")
            .y_desc("MiB/s")
            .x_labels(max_dev as usize + 1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (i, &il) in ils.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut pts: Vec<(f64, f64)> = r
                .interleave
                .iter()
                .filter(|c| c.interleave == il)
                .map(|c| (c.devices as f64, pick(c)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let label = match il {
                0 => "interleave 0 (fill)".to_string(),
                n => format!("interleave {n}"),
            };
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)).point_size(4))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The random-read figures worth drawing together: each pager figure beside its raw baseline.
fn latency_pairs(r: &Report) -> Vec<&Figure> {
    let ids = [
        "raw-rand-read-qd1",
        "pagein-rand-1t",
        "raw-rand-read-qd16",
        "pagein-rand-8t",
    ];
    ids.iter()
        .filter_map(|id| r.raw.iter().chain(&r.pager).find(|f| f.id == *id))
        .filter(|f| f.latency.as_ref().is_some_and(|l| !l.cdf.is_empty()))
        .collect()
}

/// Latency CDFs on a log time axis: the pager's lines should sit just right of the raw ones.
fn latency(figs: &[&Figure], path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let lats = figs.iter().filter_map(|f| f.latency.as_ref());
    let lo = lats.clone().map(|l| l.min_us).min().unwrap_or(1).max(1) as f64;
    let hi = lats.map(|l| l.max_us).max().unwrap_or(10).max(2) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "random 4 KiB reads: latency CDF, pager vs raw",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lo * 0.8..hi * 1.25).log_scale(), 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (µs, log scale)")
        .y_desc("fraction of I/Os ≤ x")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    for (i, f) in figs.iter().enumerate() {
        let Some(l) = &f.latency else { continue };
        let color = COLORS[i % COLORS.len()];
        let style = if f.id.starts_with("raw") {
            color.stroke_width(1)
        } else {
            color.stroke_width(3)
        };
        let pts = l.cdf.iter().map(|&(us, y)| (us.max(1) as f64, y));
        chart
            .draw_series(LineSeries::new(pts, style))?
            .label(format!("{} (p99 {} µs)", f.id, l.at(99.0)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The region bench's workloads that have both a region and a kernel figure, in order.
fn paired_workloads(r: &Report) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for f in &r.memory {
        if let Some(id) = f.id.strip_prefix("region-")
            && r.memory.iter().any(|k| k.id == format!("kernel-{id}"))
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

/// The region bench side by side: per workload a region bar and a kernel bar, for
/// throughput (MiB/s, log scale), p99 per touch (µs, log scale) and major faults per 1000
/// touches.
fn region(r: &Report, path: &Path) -> PlotResult {
    use crate::results::Metric;
    let root = SVGBackend::new(path, (1200, 430)).into_drawing_area();
    root.fill(&WHITE)?;
    let ids = paired_workloads(r);
    let get = |side: &str, id: &str| r.memory.iter().find(|f| f.id == format!("{side}-{id}"));
    let panels = root.split_evenly((1, 3));
    let specs = [
        ("throughput (MiB/s, log)", Metric::MibS, true),
        ("p99 per touch (µs, log)", Metric::P99Us, true),
        (
            "major faults per 1000 touches",
            Metric::MajorFaultsPerKTouch,
            false,
        ),
    ];
    let sides = [("region", COLORS[0]), ("kernel", COLORS[1])];
    for (panel, (title, metric, log)) in panels.iter().zip(specs) {
        let vals: Vec<f64> = ids
            .iter()
            .flat_map(|id| sides.iter().filter_map(move |(s, _)| get(s, id)))
            .map(|f| metric.of(f))
            .collect();
        let hi = vals.iter().copied().fold(1.0, f64::max) * 1.5;
        let lo = vals
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(hi, f64::min)
            .max(0.01)
            / 2.0;
        let n = ids.len() as f64;
        let mut b = ChartBuilder::on(panel);
        b.caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(70)
            .y_label_area_size(55);
        let labels = ids.clone();
        let x_fmt = move |x: &f64| {
            let i = x.floor();
            if (x - i - 0.5).abs() < 0.01 && i >= 0.0 {
                labels
                    .get(i as usize)
                    .map_or(String::new(), |s| s.trim_start_matches("mem-").to_string())
            } else {
                String::new()
            }
        };
        // One bar pair per workload at x = i .. i + 1, region left, kernel right.
        let bars = |k: usize, base: f64| -> Vec<Rectangle<(f64, f64)>> {
            let side = sides[k].0;
            ids.iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    let v = metric.of(get(side, id)?);
                    let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                    Some(Rectangle::new(
                        [(x0, base), (x0 + 0.4, v.max(base))],
                        sides[k].1.filled(),
                    ))
                })
                .collect()
        };
        if log {
            let chart = b.build_cartesian_2d(0f64..n, (lo..hi).log_scale())?;
            bar_pairs(chart, ids.len(), &x_fmt, &sides, &|k| bars(k, lo))?;
        } else {
            let chart = b.build_cartesian_2d(0f64..n, 0f64..hi)?;
            bar_pairs(chart, ids.len(), &x_fmt, &sides, &|k| bars(k, 0.0))?;
        }
    }
    root.present()?;
    Ok(())
}

/// Draws the mesh, a pair of bars per workload (`bars(k)` gives side `k`'s) and the legend
/// of the two `sides` on `chart`, whatever its y axis (linear or log).
fn bar_pairs<'a, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    workloads: usize,
    x_fmt: &dyn Fn(&f64) -> String,
    sides: &[(&str, RGBColor); 2],
    bars: &dyn Fn(usize) -> Vec<Rectangle<(f64, f64)>>,
) -> PlotResult
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * workloads + 1)
        .x_label_formatter(x_fmt)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (k, (side, color)) in sides.iter().enumerate() {
        let color = *color;
        chart
            .draw_series(bars(k))?
            .label(*side)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
