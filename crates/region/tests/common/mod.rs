//! Helpers of the region tests: a pager over swap files in a temp dir (names contain
//! `swapkit`), on the engine asked for; page stamps.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use device::{EngineKind, LoopDevice, LoopOptions, MkswapOptions};
use pager::{Pager, PagerConfig, SwaponOptions};

/// Both engines, for tests that run on each.
pub const ENGINES: [EngineKind; 2] = [EngineKind::ThreadPool, EngineKind::IoUring];

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("swapkit-region-test")
        .tempdir()
        .unwrap()
}

/// A pager on `engine` with `areas` swap files of `pages` pages each in `dir`. Small
/// clusters and pools, so the tests reach every limit. Returns `None` (and says why) when
/// the engine cannot start here.
pub fn pager(dir: &Path, engine: EngineKind, areas: u32, pages: u64) -> Option<Pager> {
    swap(dir, engine, areas, pages, false).map(|s| s.pager.clone())
}

/// A pager and the loop devices under its areas (detached on drop, after the pager).
pub struct Swap {
    pub pager: Pager,
    pub loops: Vec<LoopDevice>,
}

/// As [`pager`], on loop devices over the files when `loops` and loop devices are usable
/// here (says so when they are not, and uses the files).
pub fn swap(dir: &Path, engine: EngineKind, areas: u32, pages: u64, loops: bool) -> Option<Swap> {
    let cfg = PagerConfig {
        interleave: 16,
        nswbuf: 32,
        swap_async_max: 8,
        nswap_lowat: 4,
        nswap_hiwat: 8,
        max_cluster: 16,
        engine,
        ..PagerConfig::default()
    };
    let pager = match Pager::new(cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("engine {engine:?} unavailable here ({e}); skipped");
            return None;
        }
    };
    let use_loops = loops
        && match device::loopdev::available() {
            Ok(()) => true,
            Err(why) => {
                eprintln!("loop devices unavailable ({why}); swap files instead");
                false
            }
        };
    let mut attached = Vec::new();
    for i in 0..areas {
        let path = dir.join(format!("swapkit-region-{i}.swap"));
        let opts = MkswapOptions {
            pages: Some(pages),
            ..MkswapOptions::default()
        };
        device::mkswap(&path, &opts).unwrap();
        if use_loops {
            let dev = LoopDevice::attach(&path, &LoopOptions::default()).unwrap();
            pager.swapon(dev.path(), SwaponOptions::default()).unwrap();
            attached.push(dev);
        } else {
            pager.swapon(&path, SwaponOptions::default()).unwrap();
        }
    }
    Some(Swap {
        pager,
        loops: attached,
    })
}

/// Whether this process may make a userfaultfd (root, or the sysctl allows it).
pub fn uffd_usable() -> bool {
    let ok = std::fs::File::open("/dev/userfaultfd").is_ok() || nix_root();
    if !ok {
        eprintln!("no userfaultfd for this user; skipped");
    }
    ok
}

fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The word `w` of page `p` at version `v`: never zero, different per page, word, version.
pub fn stamp(p: u64, v: u64, w: u64) -> u64 {
    (p << 40 | v << 12 | w).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// Runs `test` of the current test binary again as a child process with `env` set (the
/// child's part of a scenario whose signal or hang would take the test runner with it),
/// under a hang guard of `guard`. Returns its status and stdout, or `None` when the child
/// said it could not run here (`SKIPPED`). A child still running after `guard` is killed
/// and the test fails: that is the hang the scenario is about.
pub fn child(
    test: &str,
    env: &[(&str, &str)],
    guard: std::time::Duration,
) -> Option<(std::process::ExitStatus, String)> {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + guard;
    while proc.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            proc.kill().unwrap();
            let out = proc.wait_with_output().unwrap();
            panic!(
                "{test} {env:?}: the child hung\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = proc.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "{test} {env:?}: child {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (!stdout.contains("SKIPPED")).then_some((out.status, stdout))
}

/// Prints `line` and flushes it at once (a child may die by a signal right after).
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Set by [`park_toucher`]: a thread of this child got the signal it handles.
pub static SIGNAL_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A child's handler of SIGBUS (or SIGSEGV): notes the signal and parks the thread for
/// good (returning would retry the access and fault again).
pub extern "C" fn park_toucher(_: libc::c_int) {
    SIGNAL_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
    loop {
        // SAFETY: pause(2) is async-signal-safe.
        unsafe { libc::pause() };
    }
}

/// Installs [`park_toucher`] for `signal`.
pub fn park_on(signal: libc::c_int) {
    // SAFETY: the handler only stores to an atomic and calls pause(2).
    unsafe { libc::signal(signal, park_toucher as *const () as libc::sighandler_t) };
}

/// Words of a page.
pub const WORDS: u64 = 512;

/// One touch of page `p` in a model test: a store of the next version (front to back or
/// back to front, so an eviction racing it sees it half done either way) or a load
/// checked against the model, `model[p]` the version the page holds (0: never written).
/// The page's model lock is held across the access, so the model is exact under
/// concurrency. A mismatch is counted (the first five printed).
pub fn touch(
    mem: &[std::sync::atomic::AtomicU64],
    model: &[parking_lot::Mutex<u64>],
    mismatches: &std::sync::atomic::AtomicU64,
    rng: &mut rand::rngs::SmallRng,
    p: u64,
) {
    use rand::Rng;
    use std::sync::atomic::Ordering;
    let mut v = model[p as usize].lock();
    let words = &mem[(p * WORDS) as usize..((p + 1) * WORDS) as usize];
    if rng.random_bool(0.4) {
        *v += 1;
        if rng.random_bool(0.5) {
            for (w, word) in words.iter().enumerate() {
                word.store(stamp(p, *v, w as u64), Ordering::Relaxed);
            }
        } else {
            for (w, word) in words.iter().enumerate().rev() {
                word.store(stamp(p, *v, w as u64), Ordering::Relaxed);
            }
        }
        return;
    }
    for (w, word) in words.iter().enumerate() {
        let want = if *v == 0 { 0 } else { stamp(p, *v, w as u64) };
        let got = word.load(Ordering::Relaxed);
        if got != want {
            if mismatches.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!(
                    "page {p} word {w}: got {got:#x}, want {want:#x} (version {})",
                    *v
                );
            }
            break;
        }
    }
}

/// A child scenario's `engine:mode` from `spec_env` and its directory from `dir_env`, or
/// `None` outside a child (the test then does nothing).
pub fn child_spec(
    spec_env: &str,
    dir_env: &str,
) -> Option<(EngineKind, String, std::path::PathBuf)> {
    let spec = std::env::var(spec_env).ok()?;
    let (engine, mode) = spec.split_once(':').unwrap();
    let engine = match engine {
        "io_uring" => EngineKind::IoUring,
        _ => EngineKind::ThreadPool,
    };
    let dir = std::path::PathBuf::from(std::env::var_os(dir_env).unwrap());
    Some((engine, mode.to_owned(), dir))
}
