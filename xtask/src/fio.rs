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

/// Run the sweep, push the median figures into `out`, return one line for the report's
/// notes. `seq_bytes` / `rand_bytes`: the fixed work of one sequential / random job.
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
        for qd in DEPTHS {
            let id = id(shape.name, qd);
            let mut reps = Vec::new();
            for _ in 0..REPETITIONS {
                if crate::cancel::cancelled() {
                    return "--fio: interrupted".into();
                }
                match job(&id, &shape, qd, files, bytes) {
                    Ok(f) => reps.push(f),
                    Err(why) => return format!("--fio: {id}: {why}"),
                }
            }
            if let Some(f) = Figure::median_of(reps) {
                crate::bench::line(&f);
                out.push(f);
            }
        }
    }
    format!(
        "--fio: fio swept QD {DEPTHS:?} on the same devices, {REPETITIONS} repetitions of a fixed amount of work each"
    )
}

/// One fio run of `bytes` (not time-based: a fixed amount of work).
fn job(id: &str, shape: &Shape, qd: u32, files: &[String], bytes: u64) -> Result<Figure, String> {
    let output = Command::new("fio")
        .args([
            "--name=swapkit",
            &format!("--filename={}", files.join(":")),
            &format!("--rw={}", shape.rw),
            &format!("--bs={}", shape.block),
            &format!("--iodepth={qd}"),
            "--ioengine=io_uring",
            "--direct=1",
            // Skip page 0: the swap header.
            "--offset=4096",
            &format!("--io_size={bytes}"),
            "--randrepeat=0",
            "--norandommap",
            "--output-format=json",
        ])
        .output()
        .map_err(|e| format!("running fio failed: {e}"))?;
    parse(id, shape.rw, qd, &output.stdout).ok_or_else(|| {
        let err = String::from_utf8_lossy(&output.stderr);
        format!(
            "could not read fio's output: {}",
            err.lines().next().unwrap_or("")
        )
    })
}

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
