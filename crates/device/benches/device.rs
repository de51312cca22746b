//! `cargo bench -p device`: raw speed of each engine on a loop device (a plain file when
//! loop devices are unavailable): sequential write and read of 128 KiB clusters at QD4,
//! random 4 KiB reads at QD1 and QD16. When `fio` is installed, the same workloads run
//! through fio's io_uring engine on the same device and the table shows ours/fio (IOPS).
//!
//! Each engine runs each workload twice: `io_uring`/`threads` rows hand every completion to
//! the bench's thread, which submits the next I/O (a client waiting on its I/O, one thread
//! hand-off per I/O); `io_uring/cb`/`threads/cb` rows submit the next I/O from the
//! completion callback (the engine's own path, as fio keeps its queue full in one thread);
//! at QD1, `io_uring/wait`/`threads/wait` rows call `Engine::submit_wait` in a loop (the
//! caller does the I/O and reaps its own completion, as fio does at `--iodepth=1`).
//!
//! Knobs: `SWAPKIT_BENCH_SECS` (per workload, default 2), `SWAPKIT_BENCH_MIB` (device
//! size, default 512), `SWAPKIT_BENCH_NO_FIO=1`.

// Bench-only code (not part of the library); `tests/rawbench.rs` includes it too. This bench
// prints its own table with the fio column, so `rawbench::table` goes unused here.
#[allow(dead_code)]
mod rawbench;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use device::{
    Engine, EngineKind, IoOp, LoopDevice, LoopOptions, MkswapOptions, OpenOptions, PAGE_SIZE,
    SwapArea,
};
use rawbench::{Pattern, RawResult, RawSpec};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs benches with no `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if let Err(e) = bench() {
        eprintln!("device bench: {e}");
        std::process::exit(1);
    }
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn bench() -> BenchResult<()> {
    let secs = env_u64("SWAPKIT_BENCH_SECS", 2);
    let mib = env_u64("SWAPKIT_BENCH_MIB", 512);
    let duration = Duration::from_secs(secs);
    let dir = tempfile::Builder::new()
        .prefix("swapkit-bench-")
        .tempdir()?;
    let (target, guard) = make_target(dir.path(), mib)?;
    device::mkswap(&target, &MkswapOptions::default())?;
    let area = Arc::new(SwapArea::open(&target, &OpenOptions::default())?);
    println!(
        "device bench: {} ({} MiB, direct I/O {}), {secs} s per workload",
        target.display(),
        mib,
        area.direct_io()
    );
    fill(&area)?;

    let suite = rawbench::standard_suite(duration);
    let fio = std::env::var_os("SWAPKIT_BENCH_NO_FIO").is_none() && fio_available();
    if !fio {
        println!("fio not installed (or SWAPKIT_BENCH_NO_FIO): no comparison");
    }
    // Workload by workload, every engine and then fio back to back, so drifting load on a
    // shared machine skews the ratios as little as it can.
    let mut engines = Vec::new();
    for kind in [EngineKind::IoUring, EngineKind::ThreadPool] {
        match Engine::new(kind) {
            Ok(e) => engines.push(Arc::new(e)),
            Err(e) => println!("{kind}: unavailable ({e})"),
        }
    }
    let mut rows: Vec<(RawResult, Option<f64>)> = Vec::new();
    let mut fio_iops = Vec::new();
    for spec in &suite {
        let mut ours = Vec::new();
        for engine in &engines {
            ours.push(rawbench::run(engine, &area, spec)?);
            ours.push(rawbench::run_chained(engine, &area, spec)?);
            if spec.queue_depth == 1 {
                ours.push(rawbench::run_waiting(engine, &area, spec)?);
            }
        }
        let theirs = if fio {
            run_fio(&target, spec, area.last_page())
        } else {
            None
        };
        fio_iops.push(theirs);
        rows.extend(ours.into_iter().map(|r| {
            let ratio = theirs.map(|f| r.iops / f.iops);
            (r, ratio)
        }));
    }
    print_table(&rows, fio.then_some((&suite[..], &fio_iops[..])));
    drop(area);
    drop(guard);
    Ok(())
}

/// A `mib` MiB file in `dir` with its blocks allocated (so reads measure the disk, not
/// holes), behind a loop device when loop devices are available; the path to measure and
/// the guard that detaches the loop device.
fn make_target(dir: &Path, mib: u64) -> BenchResult<(PathBuf, Option<LoopDevice>)> {
    let file = dir.join("swapkit-bench.img");
    let f = std::fs::File::create(&file)?;
    f.set_len(mib << 20)?;
    nix::fcntl::fallocate(
        &f,
        nix::fcntl::FallocateFlags::empty(),
        0,
        (mib << 20) as i64,
    )?;
    drop(f);
    let guard = match device::loopdev::available() {
        Ok(()) => Some(LoopDevice::attach(&file, &LoopOptions::default())?),
        Err(why) => {
            println!("loop devices unavailable ({why}); measuring the plain file");
            None
        }
    };
    let target = guard.as_ref().map_or(file, |d| d.path().to_owned());
    Ok((target, guard))
}

/// One pass of writes so every page holds data before anything is read.
fn fill(area: &Arc<SwapArea>) -> BenchResult<()> {
    let engine = Engine::new(EngineKind::ThreadPool)?;
    let fill = RawSpec {
        max_ios: area.last_page() / 32,
        ..RawSpec::new(
            IoOp::Write,
            Pattern::Sequential,
            32,
            8,
            Duration::from_secs(600),
        )
    };
    rawbench::run(&engine, area, &fill)?;
    Ok(())
}

/// The table with its ours/fio column, then fio's own IOPS per workload when it ran.
fn print_table(rows: &[(RawResult, Option<f64>)], fio: Option<(&[RawSpec], &[Option<Fio>])>) {
    println!();
    println!("{}  {:>8}", RawResult::header(), "ours/fio");
    for (r, ratio) in rows {
        let ratio = ratio.map_or("-".to_owned(), |x| format!("{x:.2}"));
        println!("{}  {:>8}", r.line(), ratio);
    }
    if let Some((suite, fio_iops)) = fio {
        println!();
        println!("fio (io_uring, direct, same device and depth): IOPS, p50 us, p99 us:");
        for (spec, f) in suite.iter().zip(fio_iops) {
            println!(
                "  {:<22} {}",
                spec.name,
                f.as_ref().map_or("failed".to_owned(), |f| format!(
                    "{:>8.0} {:>8} {:>8}",
                    f.iops, f.p50_us, f.p99_us
                ))
            );
        }
    }
}

fn fio_available() -> bool {
    Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What fio measured for one workload.
#[derive(Clone, Copy)]
struct Fio {
    iops: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Runs `spec` with fio's io_uring engine on `dev`, over the data pages only (page 0 holds
/// the header); returns its IOPS and completion latency, or `None` (printing why) when fio
/// fails.
fn run_fio(dev: &Path, spec: &RawSpec, last_page: u64) -> Option<Fio> {
    let rw = match (spec.op, spec.pattern) {
        (IoOp::Write, Pattern::Sequential) => "write",
        (IoOp::Read, Pattern::Sequential) => "read",
        (IoOp::Write, Pattern::Random) => "randwrite",
        (IoOp::Read, Pattern::Random) => "randread",
    };
    let out = Command::new("fio")
        .args([
            "--name=swapkit",
            &format!("--filename={}", dev.display()),
            "--ioengine=io_uring",
            "--direct=1",
            &format!("--rw={rw}"),
            &format!("--bs={}", spec.pages_per_io * PAGE_SIZE),
            &format!("--iodepth={}", spec.queue_depth),
            &format!("--offset={PAGE_SIZE}"),
            &format!("--size={}", last_page * PAGE_SIZE as u64),
            "--time_based",
            &format!("--runtime={}", spec.duration.as_secs().max(1)),
            "--randrepeat=0",
            "--norandommap",
            "--output-format=json",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        println!(
            "fio {}: {}",
            spec.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let job = json.get("jobs")?.get(0)?;
    let side = if spec.op == IoOp::Write {
        "write"
    } else {
        "read"
    };
    let side = job.get(side)?;
    let pct = |key: &str| {
        side.get("clat_ns")
            .and_then(|c| c.get("percentile"))
            .and_then(|p| p.get(key))
            .and_then(|ns| ns.as_u64())
            .map_or(0, |ns| ns / 1000)
    };
    Some(Fio {
        iops: side.get("iops")?.as_f64()?,
        p50_us: pct("50.000000"),
        p99_us: pct("99.000000"),
    })
}
