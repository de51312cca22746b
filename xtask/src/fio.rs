//! `--fio`: the same shapes as the raw baselines, run by fio on the same devices, to show
//! that our engine is not the bottleneck. Skipped with a note when fio is not installed.

use std::path::PathBuf;
use std::process::Command;

use crate::results::Figure;

/// (id, fio --rw, block size, iodepth)
const JOBS: [(&str, &str, &str, u32); 4] = [
    ("fio-seq-write", "write", "128k", 4),
    ("fio-seq-read", "read", "128k", 4),
    ("fio-rand-read-qd1", "randread", "4k", 1),
    ("fio-rand-read-qd16", "randread", "4k", 16),
];

/// Run the jobs, push their figures into `out`, return one line for the report's notes.
pub fn run(paths: &[PathBuf], out: &mut Vec<Figure>, quick: bool) -> String {
    if Command::new("fio").arg("--version").output().is_err() {
        return "--fio: fio is not installed; fio figures skipped".into();
    }
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let runtime = if quick { "2" } else { "10" };
    for (id, rw, bs, qd) in JOBS {
        if crate::cancel::cancelled() {
            return "--fio: interrupted".into();
        }
        let output = Command::new("fio")
            .args([
                "--name=swapkit",
                &format!("--filename={}", files.join(":")),
                &format!("--rw={rw}"),
                &format!("--bs={bs}"),
                &format!("--iodepth={qd}"),
                "--ioengine=io_uring",
                "--direct=1",
                "--time_based",
                &format!("--runtime={runtime}"),
                // Skip page 0: the swap header.
                "--offset=4096",
                "--output-format=json",
            ])
            .output();
        let Ok(output) = output else {
            return format!("--fio: running fio for {id} failed");
        };
        match parse(id, rw, qd, &output.stdout) {
            Some(f) => out.push(f),
            None => {
                return format!(
                    "--fio: could not read fio's output for {id}: {}",
                    String::from_utf8_lossy(&output.stderr)
                        .lines()
                        .next()
                        .unwrap_or("")
                );
            }
        }
    }
    "--fio: fio ran the raw shapes on the same devices".into()
}

fn parse(id: &str, rw: &str, qd: u32, json: &[u8]) -> Option<Figure> {
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
    let mut f = Figure::new(
        id,
        format!("fio --rw={rw} --iodepth={qd}"),
        bytes,
        ops,
        ms as f64 / 1000.0,
    )
    .with_shape(1, qd);
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
