//! `--fio`: fio on the same devices, to find the limit of the devices themselves rather than
//! of our engine. Every shape the pager is compared on (sequential write and read of 128 KiB
//! over all devices, random 4 KiB reads over all devices, sequential reads of one device)
//! runs at queue depths 1, 4, 16 and 32, each a fixed amount of work repeated
//! [`REPETITIONS`] times: the same-depth figure is the "same shape" baseline, the best of
//! the sweep the "device's best at any QD ≤ 32". The bench installs nothing: without fio
//! this says so (and how to get it) in the report's first lines.

use std::path::PathBuf;
use std::process::Command;

use crate::results::Figure;

/// Queue depths of the sweep.
pub const DEPTHS: [u32; 4] = [1, 4, 16, 32];

/// Queue depths of each job of the one-job-per-device layout of sequential writes.
pub const PER_DEVICE_DEPTHS: [u32; 4] = [1, 2, 4, 8];

/// Repetitions of each job (the figure is their median).
pub const REPETITIONS: usize = 3;

/// One shape of I/O: the id stem of its figures (`fio-<shape>-qd<N>`), fio's `--rw`, the
/// block size in bytes, and whether it runs on the first device only.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub rw: &'static str,
    pub block: u64,
    pub one_device: bool,
}

pub const SHAPES: [Shape; 4] = [
    Shape {
        name: "seq-write",
        rw: "write",
        block: 128 << 10,
        one_device: false,
    },
    Shape {
        name: "seq-read",
        rw: "read",
        block: 128 << 10,
        one_device: false,
    },
    Shape {
        name: "rand-read",
        rw: "randread",
        block: 4 << 10,
        one_device: false,
    },
    Shape {
        name: "seq-read-1dev",
        rw: "read",
        block: 128 << 10,
        one_device: true,
    },
];

/// The id of the figure of `shape` at `qd`.
pub fn id(shape: &str, qd: u32) -> String {
    format!("fio-{shape}-qd{qd}")
}

/// The id of the figure of `shape` run as one job per device, each at `qd`.
pub fn per_device_id(shape: &str, qd: u32) -> String {
    format!("fio-{shape}-perdev-qd{qd}")
}

/// The shapes run one job per device as well (sequential writes: pageout's any-layout best).
pub const PER_DEVICE_SHAPES: [&str; 1] = ["seq-write"];

/// Every id the sweep can produce for `shape`, in the order the report lists them: the
/// single-job depths, then the one-job-per-device depths.
pub fn sweep_ids(shape: &str) -> Vec<String> {
    let mut ids: Vec<String> = DEPTHS.iter().map(|&qd| id(shape, qd)).collect();
    if PER_DEVICE_SHAPES.contains(&shape) {
        ids.extend(PER_DEVICE_DEPTHS.iter().map(|&qd| per_device_id(shape, qd)));
    }
    ids
}

/// One repetition of `shape` (a [`SHAPES`] name) at `qd` as a single job over `paths` (the
/// first one alone for a one-device shape): `seq_bytes` / `rand_bytes` of fixed work.
pub fn once(
    shape: &str,
    qd: u32,
    paths: &[PathBuf],
    seq_bytes: u64,
    rand_bytes: u64,
) -> Result<Figure, String> {
    let shape = SHAPES
        .iter()
        .find(|s| s.name == shape)
        .ok_or_else(|| format!("no fio shape {shape}"))?;
    let files: Vec<String> = paths
        .iter()
        .take(if shape.one_device { 1 } else { paths.len() })
        .map(|p| p.display().to_string())
        .collect();
    let bytes = if shape.rw.starts_with("rand") {
        rand_bytes
    } else {
        seq_bytes
    };
    job(
        &id(shape.name, qd),
        shape,
        qd,
        Layout::OneJob(&files),
        bytes,
    )
}

/// Whether fio can be run here.
pub fn available() -> bool {
    Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The line the report starts with when fio is missing.
pub const MISSING: &str = "fio is not installed: the baselines are our own engine only, not the \
     device's limit; install it with `apt-get install fio` (or your system's package) and run \
     again with --fio";

/// Run the sweep, push the median figures into `out` (skipping ids already there: the
/// same-shape jobs measured beside the pager), sort `out` in the sweep's order, return one
/// line for the report's notes. `seq_bytes` / `rand_bytes`: the fixed work of one
/// sequential / random job (a one-job-per-device run splits it between its jobs).
pub fn run(paths: &[PathBuf], out: &mut Vec<Figure>, seq_bytes: u64, rand_bytes: u64) -> String {
    if !available() {
        return MISSING.into();
    }
    let Some(first) = paths.first() else {
        return "--fio: no devices".into();
    };
    let all: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let one = [first.display().to_string()];
    for shape in SHAPES {
        let files = if shape.one_device { &one[..] } else { &all[..] };
        let bytes = if shape.rw.starts_with("rand") {
            rand_bytes
        } else {
            seq_bytes
        };
        let per_device = PER_DEVICE_SHAPES.contains(&shape.name);
        let layouts = DEPTHS
            .iter()
            .map(|&qd| (id(shape.name, qd), qd, Layout::OneJob(files)))
            .chain(
                PER_DEVICE_DEPTHS
                    .iter()
                    .filter(|_| per_device)
                    .map(|&qd| (per_device_id(shape.name, qd), qd, Layout::PerDevice(files))),
            );
        for (id, qd, layout) in layouts {
            if out.iter().any(|f| f.id == id) {
                continue;
            }
            let mut reps = Vec::new();
            for _ in 0..REPETITIONS {
                if crate::cancel::cancelled() {
                    return "--fio: interrupted".into();
                }
                match job(&id, &shape, qd, layout, bytes) {
                    Ok(f) => reps.push(f),
                    Err(why) => return format!("--fio: {id}: {why}"),
                }
            }
            if let Some(f) = Figure::median_of(reps) {
                crate::results::line(&f);
                out.push(f);
            }
        }
    }
    let order: Vec<String> = SHAPES.iter().flat_map(|s| sweep_ids(s.name)).collect();
    out.sort_by_key(|f| {
        order
            .iter()
            .position(|id| *id == f.id)
            .unwrap_or(usize::MAX)
    });
    format!(
        "--fio: fio swept QD {DEPTHS:?} on the same devices, and sequential writes as one job \
         per device at QD {PER_DEVICE_DEPTHS:?} in parallel, {REPETITIONS} repetitions of a \
         fixed amount of work each; the same-shape jobs ran beside the pager's, shape by shape"
    )
}

/// How a job spreads over the devices: one job over all of them (`--filename=a:b:c`), or
/// one job per device in parallel (reported as one group).
#[derive(Debug, Clone, Copy)]
enum Layout<'a> {
    OneJob(&'a [String]),
    PerDevice(&'a [String]),
}

/// One fio run of `bytes` (not time-based: a fixed amount of work; a one-job-per-device
/// run gives each job its share).
fn job(id: &str, shape: &Shape, qd: u32, layout: Layout, bytes: u64) -> Result<Figure, String> {
    let mut args = vec![
        format!("--rw={}", shape.rw),
        format!("--bs={}", shape.block),
        format!("--iodepth={qd}"),
        "--ioengine=io_uring".into(),
        "--direct=1".into(),
        // Skip page 0: the swap header.
        "--offset=4096".into(),
        "--randrepeat=0".into(),
        "--norandommap".into(),
        "--output-format=json".into(),
    ];
    match layout {
        Layout::OneJob(files) => args.extend([
            format!("--io_size={bytes}"),
            "--name=swapkit".into(),
            format!("--filename={}", files.join(":")),
        ]),
        Layout::PerDevice(files) => {
            args.extend([
                format!("--io_size={}", bytes / files.len().max(1) as u64),
                "--group_reporting".into(),
            ]);
            for (i, f) in files.iter().enumerate() {
                args.extend([format!("--name=swapkit{i}"), format!("--filename={f}")]);
            }
        }
    }
    let output = Command::new("fio")
        .args(&args)
        .output()
        .map_err(|e| format!("running fio failed: {e}"))?;
    let what = match layout {
        Layout::OneJob(_) => format!("fio --rw={} --iodepth={qd}", shape.rw),
        Layout::PerDevice(files) => format!(
            "fio --rw={}, {} jobs (one per device) at --iodepth={qd} each",
            shape.rw,
            files.len()
        ),
    };
    let threads = match layout {
        Layout::OneJob(_) => 1,
        Layout::PerDevice(files) => files.len() as u32,
    };
    let figure = parse_report(id, what, shape.rw, qd, &output.stdout);
    figure.map(|f| f.with_shape(threads, qd)).ok_or_else(|| {
        let err = String::from_utf8_lossy(&output.stderr);
        format!(
            "could not read fio's output: {}",
            err.lines().next().unwrap_or("")
        )
    })
}

#[cfg(test)]
fn parse(id: &str, rw: &str, qd: u32, json: &[u8]) -> Option<Figure> {
    parse_report(id, format!("fio --rw={rw} --iodepth={qd}"), rw, qd, json)
}

/// The figure `id` (described as `what`) of one fio JSON report of a `rw` job at `qd`:
/// bytes, ops, run time, CPU, and fio's completion latency percentiles.
pub(crate) fn parse_report(
    id: &str,
    what: String,
    rw: &str,
    qd: u32,
    json: &[u8],
) -> Option<Figure> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let job = v.get("jobs")?.get(0)?;
    let side = job.get(if rw.contains("write") {
        "write"
    } else {
        "read"
    })?;
    let bytes = side.get("io_bytes")?.as_u64()?;
    let ops = side.get("total_ios")?.as_u64()?;
    let ms = side.get("runtime")?.as_u64()?;
    let mut f = Figure::new(id, what, bytes, ops, ms as f64 / 1000.0).with_shape(1, qd);
    // fio's usr/sys are percentages of the job's run time.
    let pct = |k: &str| job.get(k).and_then(|x| x.as_f64());
    let run_ms = job
        .get("job_runtime")
        .and_then(|x| x.as_u64())
        .unwrap_or(ms);
    if let (Some(usr), Some(sys)) = (pct("usr_cpu"), pct("sys_cpu")) {
        f = f.with_cpu((usr + sys) / 100.0 * run_ms as f64 / 1000.0);
    }
    if let Some(p) = side.get("clat_ns").and_then(|c| c.get("percentile")) {
        let mut lat = crate::latency::LatencyStats::default();
        for &q in &crate::latency::FIO_PERCENTILES {
            let key = format!("{q:.6}");
            if let Some(ns) = p.get(&key).and_then(|x| x.as_u64()) {
                lat.percentiles.push(crate::latency::Percentile {
                    p: q,
                    us: ns / 1000,
                });
            }
        }
        lat.count = ops;
        f.latency = Some(lat);
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_writes_are_swept_in_both_layouts_and_the_rest_in_one() {
        let w = sweep_ids("seq-write");
        assert_eq!(w.len(), DEPTHS.len() + PER_DEVICE_DEPTHS.len());
        assert!(w.contains(&"fio-seq-write-qd32".to_owned()));
        assert!(w.contains(&"fio-seq-write-perdev-qd8".to_owned()));
        assert_eq!(sweep_ids("seq-read-1dev").len(), DEPTHS.len());
        assert!(once("no-such-shape", 1, &[], 0, 0).is_err());
    }

    #[test]
    fn fio_json_becomes_a_figure_with_cpu_seconds_and_percentiles() {
        let json = br#"{"jobs":[{"job_runtime":2000,"usr_cpu":10.0,"sys_cpu":40.0,
            "read":{"io_bytes":1073741824,"total_ios":8192,"runtime":2000,
            "clat_ns":{"percentile":{"50.000000":45000,"99.000000":120000}}}}]}"#;
        let f = parse("fio-seq-read-qd4", "read", 4, json).unwrap();
        assert_eq!((f.bytes, f.ops, f.queue_depth), (1 << 30, 8192, 4));
        assert!((f.mib_s - 512.0).abs() < 1e-9);
        assert!((f.cpu_seconds.unwrap() - 1.0).abs() < 1e-9);
        assert!((f.cpu_s_per_gib.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!((f.p(50.0), f.p(99.0)), (Some(45), Some(120)));
        assert!(parse("x", "read", 1, b"not json").is_none());
    }
}
