//! `swapctl run` with real, unmodified programs: a C program of ours that forks, mremaps,
//! madvises and reads into paged-out buffers from several threads; python3 building and
//! hashing a large structure; `sort -S` of a generated file. Each runs bare and under
//! `swapctl run` with `--limit` a quarter of its bare peak RSS, through a real daemon on
//! loop devices (files where loop devices are unavailable), on both engines of the daemon,
//! and must print exactly the same; the daemon's counters show its pages really went to
//! swap and came back, and no object is left once it exits or is killed.
//!
//! The tests skip, with one line, where the program or a C compiler is missing.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Daemon, Devices};
use control::client::Client;

const MIB: u64 = 1 << 20;
/// The daemon's engines: every program runs on both (one hides deadlocks the other shows).
const ENGINES: [&str; 2] = ["threads", "io_uring"];

/// The preload library cargo built for this test run (a dev-dependency: the cdylib lands
/// beside the test binary, in `deps/`).
fn preload() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    for p in [
        dir.join("libswapkit_preload.so"),
        dir.join("../libswapkit_preload.so"),
    ] {
        if p.exists() {
            return p;
        }
    }
    panic!("libswapkit_preload.so not found beside {}", exe.display());
}

/// A daemon on `engine` with swap on two loop devices of `mib_each` MiB.
fn daemon(engine: &str, mib_each: u64) -> (Devices, Daemon) {
    daemon_with(engine, mib_each, "")
}

/// [`daemon`] with more of a config file (`[limits]` and below).
fn daemon_with(engine: &str, mib_each: u64, more: &str) -> (Devices, Daemon) {
    let devs = Devices::new(&[mib_each * MIB, mib_each * MIB]);
    let d = Daemon::start_with_config(&format!("[daemon]\nengine = \"{engine}\"\n{more}"), &[]);
    for i in 0..2 {
        d.ok(&["mkswap", devs.path(i)]);
    }
    d.ok(&["on", devs.path(0), devs.path(1)]);
    (devs, d)
}

/// What one run of a program gave.
#[derive(Debug)]
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    /// Peak resident set, bytes.
    max_rss: u64,
}

/// Runs `cmd` to its end; its peak RSS from `wait4` (which reaps it: `Child::wait` cannot
/// give the rusage).
#[allow(clippy::zombie_processes)]
fn run(mut cmd: Command) -> Ran {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.unwrap();
    let mut err = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
    let stderr = reader.join().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the locals above.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    Ran {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout,
        stderr,
        max_rss: usage.ru_maxrss as u64 * 1024,
    }
}

/// `swapctl run --limit LIMIT -- argv` against `d`.
fn under_run(d: &Daemon, limit: u64, argv: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["run", "--limit", &limit.to_string(), "--"])
        .args(argv)
        .env("SWAPKIT_SOCKET", &d.socket)
        .env("SWAPKIT_PRELOAD", preload())
        .env("LC_ALL", "C");
    c
}

fn bare(argv: &[&str]) -> Command {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]).env("LC_ALL", "C");
    c
}

fn counters(d: &Daemon) -> (u64, u64, u64) {
    let s = Client::connect(&d.socket).unwrap().stats().unwrap();
    (s.counters.pages_out, s.counters.pages_in, s.objects)
}

/// Waits until the daemon holds no object and no used swap (a program's objects go with
/// its connections); panics after 20 s.
fn wait_empty(d: &Daemon) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = Client::connect(&d.socket).unwrap().stats().unwrap();
        if s.objects == 0 && s.used_pages == 0 {
            return;
        }
        assert!(
            Instant::now() < end,
            "the daemon still holds {} objects, {} pages",
            s.objects,
            s.used_pages
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `argv` bare, then under `swapctl run` with a quarter of the bare peak RSS, on a
/// daemon on `engine`; both outputs must be equal, and at least `min_out` pages must have
/// gone to swap and come back. An argument `{out}` becomes a file of each run's own in
/// `dir`, and the two files must be equal too.
fn same_under_run(engine: &str, argv: &[&str], min_out: u64, dir: &Path) {
    let with_out = |name: &str| -> Vec<String> {
        let file = dir.join(name);
        argv.iter()
            .map(|a| a.replace("{out}", file.to_str().unwrap()))
            .collect()
    };
    let (bare_argv, paged_argv) = (with_out("bare.out"), with_out("paged.out"));
    let bare_argv: Vec<&str> = bare_argv.iter().map(String::as_str).collect();
    let paged_argv: Vec<&str> = paged_argv.iter().map(String::as_str).collect();
    let alone = run(bare(&bare_argv));
    assert!(alone.status.success(), "{argv:?} bare: {alone:?}");
    let limit = (alone.max_rss / 4).max(MIB) / 4096 * 4096;
    let (_devs, d) = daemon(engine, 1024);
    let before = counters(&d);
    let t = Instant::now();
    let paged = run(under_run(&d, limit, &paged_argv));
    let took = t.elapsed();
    assert!(paged.status.success(), "{argv:?} under run: {paged:?}");
    assert_eq!(paged.stdout, alone.stdout, "{argv:?}: {}", paged.stderr);
    if argv.contains(&"{out}") {
        let (a, b) = (dir.join("bare.out"), dir.join("paged.out"));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{argv:?}: {} and {} differ",
            a.display(),
            b.display()
        );
    }
    assert!(
        !paged.stderr.contains("swapkit:"),
        "the library complained: {}",
        paged.stderr
    );
    let after = counters(&d);
    let (out, back) = (after.0 - before.0, after.1 - before.1);
    eprintln!(
        "{argv:?} on {engine}: bare peak {} MiB, limit {} MiB, peak under run {} MiB, \
         {out} pages out, {back} in, {took:.1?}",
        alone.max_rss / MIB,
        limit / MIB,
        paged.max_rss / MIB,
    );
    assert!(out >= min_out, "only {out} pages went to swap");
    assert!(back > 0, "no page came back from swap");
    wait_empty(&d);
}

/// The C test program, built from `tests/data/pagetest.c` into `dir`; `None` (with a line)
/// without a C compiler.
fn pagetest(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pagetest.c");
    let bin = dir.join("pagetest");
    let built = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .status();
    match built {
        Ok(s) if s.success() => Some(bin),
        other => {
            eprintln!("SKIPPED: no C compiler to build pagetest.c ({other:?})");
            None
        }
    }
}

fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: {program} is not installed");
    }
    found
}

#[test]
fn the_c_program_forks_remaps_madvises_and_reads_the_same_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = pagetest(dir.path()) else {
        return;
    };
    let bin = bin.to_str().unwrap();
    for engine in ENGINES {
        same_under_run(engine, &[bin, "128", "4"], 16 * 1024, dir.path());
    }
}

#[test]
fn python_builds_and_hashes_a_large_structure_the_same() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hashbuild.py");
    for engine in ENGINES {
        same_under_run(
            engine,
            &["python3", script.to_str().unwrap(), "1024"],
            128 * 1024,
            dir.path(),
        );
    }
}

#[test]
fn sort_sorts_a_generated_file_the_same() {
    if !have("sort") || !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("lines.txt");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lines.py");
    let made = Command::new("python3")
        .arg(&generator)
        .arg(&input)
        .arg("8")
        .status()
        .unwrap();
    assert!(made.success());
    let input = input.to_str().unwrap();
    // Every run has LC_ALL=C: the same order whatever the machine's locale.
    let sort = ["sort", "-S", "512M", "-o", "{out}", input];
    for engine in ENGINES {
        same_under_run(engine, &sort, 1024, dir.path());
    }
}

#[test]
fn a_killed_program_leaves_no_object_behind() {
    if !have("python3") {
        return;
    }
    for engine in ENGINES {
        killed_on(engine);
    }
}

fn killed_on(engine: &str) {
    let (_devs, d) = daemon(engine, 256);
    // 200 MiB touched under a 32 MiB limit, then it waits to be killed.
    let code = "b = bytearray(200 << 20)\n\
                for i in range(0, len(b), 4096): b[i] = 1\n\
                print('ready', flush=True)\n\
                import time; time.sleep(600)\n";
    let mut child = under_run(&d, 32 * MIB, &["python3", "-c", code])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let (swapped_out, _, objects) = counters(&d);
    assert!(objects >= 1, "the program has no object in the daemon");
    assert!(swapped_out > 0, "nothing of the program went to swap");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_empty(&d);
}

#[test]
fn a_program_idle_past_the_daemons_idle_timeout_reads_its_pages_back() {
    if !have("python3") {
        return;
    }
    // The daemon closes connections idle for a second; the program's pages are on swap
    // while it sleeps three, then read back through connections the daemon closed.
    for engine in ENGINES {
        idle_on(engine);
    }
}

fn idle_on(engine: &str) {
    let (_devs, d) = daemon_with(engine, 256, "[limits]\nidle_timeout_ms = 1000\n");
    let code = "import hashlib, time\n\
                b = bytearray(64 << 20)\n\
                for i in range(0, len(b), 4096): b[i:i + 8] = i.to_bytes(8, 'little')\n\
                h1 = hashlib.sha256(b).hexdigest()\n\
                time.sleep(3)\n\
                print(h1 == hashlib.sha256(b).hexdigest(), h1)\n";
    let alone = run(bare(&["python3", "-c", code]));
    let paged = run(under_run(&d, 8 * MIB, &["python3", "-c", code]));
    assert!(paged.status.success(), "{paged:?}");
    assert_eq!(paged.stdout, alone.stdout, "{}", paged.stderr);
    assert!(paged.stdout.starts_with("True "), "{}", paged.stdout);
    wait_empty(&d);
}
