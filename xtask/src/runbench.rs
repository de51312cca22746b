//! `--only run` (issue 25): an unmodified python3 building and hashing a large structure
//! (`crates/swapctl/tests/data/hashbuild.py`: 1 GiB, 128 MiB with `--quick`) under
//! `swapctl run --limit L`, against the same program in a memory cgroup limited to L with
//! the kernel's swap on the same devices, in the same run, alternated, medians of 3. L is a
//! quarter of the program's peak RSS when it runs bare (measured first, in the same run).
//! Every run's output must equal the bare run's, or the bench fails.
//!
//! Wall time is what is compared (the target: swapkit within 1.0× of the kernel's, as
//! MiB/s of the structure's size, so higher is better). CPU is the program's own (its
//! threads include the preload's handlers); the daemon's CPU is not counted.
//!
//! Clean-up: the daemon is a [`ChildGuard`] (SIGTERM on drop and on Ctrl-C), the kernel's
//! swap and the cgroup are the kernel baseline's guards (`kernel.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use device::units::human_iec;

use crate::cancel;
use crate::cli::Plan;
use crate::demo::{ChildGuard, build_swapctl, wait_for_socket};
use crate::error::Error;
use crate::kernel::{Cgroup, KernelSwap};
use crate::results::{Comparison, Figure, Metric, Report};

const MIB: u64 = 1 << 20;
const PAGE: u64 = device::PAGE_SIZE as u64;
const REPETITIONS: usize = 3;

/// One run of the program.
#[derive(Debug)]
struct Ran {
    seconds: f64,
    cpu_seconds: f64,
    stdout: String,
    max_rss: u64,
}

/// Runs the bench; its figures go to `r.memory` (`swapkit-run-python`,
/// `kernel-run-python`), its setup to `r.notes`.
pub fn run(plan: &Plan, paths: &[PathBuf], r: &mut Report) -> Result<(), Error> {
    cancel::check()?;
    let have_python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_python {
        r.notes.push("run bench: skipped: no python3".into());
        return Ok(());
    }
    let mib: u64 = if plan.quick { 128 } else { 1024 };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/swapctl/tests/data/hashbuild.py");
    let argv = [
        "python3".to_owned(),
        script.display().to_string(),
        mib.to_string(),
    ];
    let swapctl = build_swapctl()?;
    let bare = timed(&mut program(&argv))?;
    let limit = (bare.max_rss / 4).max(MIB) / PAGE * PAGE;
    eprintln!(
        "  run bench: python3 hashbuild.py {mib} (bare: {:.1} s, peak RSS {}), L = {}",
        bare.seconds,
        human_iec(bare.max_rss),
        human_iec(limit)
    );
    let mut figs: [Vec<Figure>; 2] = Default::default();
    let mut kernel_ok = true;
    for rep in 0..REPETITIONS {
        let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            cancel::check()?;
            let got = if side == 0 {
                swapkit_side(&swapctl, paths, limit, &argv).map(Some)?
            } else if kernel_ok {
                match kernel_side(paths, limit, &argv) {
                    Ok(got) => Some(got),
                    Err(e @ Error::Skipped { .. }) => {
                        r.notes.push(format!("run bench, kernel side: {e}"));
                        kernel_ok = false;
                        None
                    }
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            let Some(got) = got else { continue };
            if got.stdout != bare.stdout {
                return Err(Error::workload(
                    "run bench",
                    format!(
                        "{} side printed {:?}, bare {:?}",
                        ["swapkit", "kernel"][side],
                        got.stdout.trim(),
                        bare.stdout.trim()
                    ),
                ));
            }
            eprintln!(
                "    {:<7} rep {}: {:.1} s, {:.1} CPU s, peak RSS {}",
                ["swapkit", "kernel"][side],
                rep + 1,
                got.seconds,
                got.cpu_seconds,
                human_iec(got.max_rss)
            );
            let id = ["swapkit-run-python", "kernel-run-python"][side];
            let what = format!(
                "python3 builds and hashes {mib} MiB under a {} limit",
                human_iec(limit)
            );
            figs[side].push(
                Figure::new(id, what, mib * MIB, mib * MIB / PAGE, got.seconds)
                    .with_cpu(got.cpu_seconds),
            );
        }
    }
    for side in figs {
        if let Some(f) = Figure::median_of(side) {
            crate::results::line(&f);
            r.memory.push(f);
        }
    }
    r.notes.push(format!(
        "run bench: python3 hashbuild.py {mib}, L = {} (a quarter of its bare peak RSS {}; \
         swapctl run --limit L, and the kernel's swap with memory.max L); bare {:.1} s; \
         CPU is the program's own, the daemon's not counted",
        human_iec(limit),
        human_iec(bare.max_rss),
        bare.seconds
    ));
    Ok(())
}

/// The run bench's figure beside the kernel's, with the issue's target (wall time at most
/// the kernel's: MiB/s at least 1.0×).
pub fn comparisons(r: &Report) -> Vec<Comparison> {
    let fig = |id: &str| r.memory.iter().find(|f| f.id == id);
    match (fig("swapkit-run-python"), fig("kernel-run-python")) {
        (Some(a), Some(b)) => vec![
            Comparison::new(a, b, Metric::MibS, Some(1.0)).on("kernel swap"),
            Comparison::new(a, b, Metric::CpuPerGib, None).on("kernel swap"),
        ],
        _ => Vec::new(),
    }
}

fn program(argv: &[String]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// A fresh daemon on `paths`, the program under `swapctl run --limit`, the daemon stopped
/// (and the devices free again) after.
fn swapkit_side(
    swapctl: &Path,
    paths: &[PathBuf],
    limit: u64,
    argv: &[String],
) -> Result<Ran, Error> {
    let dir = std::env::temp_dir().join(format!("swapkit-runbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let socket = dir.join("swapctl.sock");
    let sock = socket.display().to_string();
    let log = dir.join("daemon.log");
    let got = {
        let mut daemon = ChildGuard::spawn(
            "swapctl daemon",
            Command::new(swapctl).args(["daemon", "--no-auto", "--socket", &sock]),
            &log,
        )?;
        wait_for_socket(&socket, &mut daemon, &log)?;
        for p in paths {
            quiet(Command::new(swapctl).arg("mkswap").arg(p), "swapctl mkswap")?;
        }
        quiet(
            Command::new(swapctl)
                .args(["on", "--socket", &sock])
                .args(paths),
            "swapctl on",
        )?;
        let mut run = Command::new(swapctl);
        run.args([
            "run",
            "--socket",
            &sock,
            "--limit",
            &limit.to_string(),
            "--",
        ])
        .args(argv);
        timed(&mut run)
    };
    crate::setup::wait_all_free(paths);
    let _ = std::fs::remove_dir_all(&dir);
    got
}

/// The kernel's swap on `paths`, the program in a fresh memory cgroup limited to `limit`.
fn kernel_side(paths: &[PathBuf], limit: u64, argv: &[String]) -> Result<Ran, Error> {
    let _swap = KernelSwap::on_all(paths)?;
    let cg = Cgroup::create(limit)?;
    // The shell joins the cgroup before it becomes the program: no byte is allocated
    // outside it.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"echo $$ > "$0" && exec "$@""#)
        .arg(cg.procs_file())
        .args(argv);
    timed(&mut sh)
}

/// Runs a setup command, its output dropped unless it fails.
fn quiet(cmd: &mut Command, what: &'static str) -> Result<(), Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running", PathBuf::from(what), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::workload(
        "run bench",
        format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    ))
}

/// Runs `cmd` to its end: wall time, its CPU and peak RSS (from `wait4`, which reaps it:
/// `Child::wait` cannot give the rusage), stdout.
#[allow(clippy::zombie_processes)]
fn timed(cmd: &mut Command) -> Result<Ran, Error> {
    use std::io::Read;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io("starting", PathBuf::from("the run bench's program"), e))?;
    cancel::register_child(child.id());
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for (and reaps) our own child, writing into the locals above.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    cancel::unregister_child(child.id());
    let seconds = started.elapsed().as_secs_f64();
    if rc < 0 {
        return Err(Error::io(
            "waiting for",
            PathBuf::from("the run bench's program"),
            std::io::Error::last_os_error(),
        ));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(Error::workload(
            "run bench",
            format!("the program ended with wait status {status:#x}"),
        ));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Ran {
        seconds,
        cpu_seconds: tv(usage.ru_utime) + tv(usage.ru_stime),
        stdout,
        max_rss: usage.ru_maxrss as u64 * 1024,
    })
}
