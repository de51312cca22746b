//! `swapctl run` end to end (issue 25): the real binary against no daemon, a daemon without
//! swap, and a real daemon with swap on loop devices (or files), with a do-nothing preload
//! library built here with `cc` (the real one is `crates/preload`'s): the one-line errors and
//! their exit statuses, the environment the program gets, that swapctl becomes the program
//! (same pid, its exit status, SIGPIPE not ignored), and a run as `status` shows it.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Daemon, Devices, stderr, stdout};

const MIB: u64 = 1 << 20;

/// `swapctl run ARGS` with `SWAPKIT_SOCKET` = `socket` and `SWAPKIT_PRELOAD` = `preload`
/// (removed when `None`), `SWAPKIT_STRICT` set as a shell might have left it, and the
/// other variables given.
fn run(args: &[&str], socket: &Path, preload: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(common::BIN);
    c.arg("run")
        .args(args)
        .env("SWAPKIT_SOCKET", socket)
        .env("SWAPKIT_STRICT", "1")
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null());
    match preload {
        Some(p) => c.env("SWAPKIT_PRELOAD", p),
        None => c.env_remove("SWAPKIT_PRELOAD"),
    };
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn assert_one_line(out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("swapctl: run: "), "{err}");
    assert!(stdout(out).is_empty(), "{}", stdout(out));
    err
}

#[test]
fn without_a_daemon_run_says_so_in_one_line_and_exits_8() {
    let socket = Path::new("/nonexistent/swapkit-run.sock");
    let out = run(&["--", "/bin/echo", "ran"], socket, None, &[]);
    snap!("run_no_daemon", assert_one_line(&out, 8));
}

#[test]
fn run_help_says_what_it_does() {
    let out = Command::new(common::BIN)
        .args(["run", "--help"])
        .env_remove("SWAPKIT_SOCKET")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    snap!("run_help", stdout(&out));
}

/// The do-nothing preload library, built into `dir`; `None` (the test then skips what needs
/// it) without a C compiler.
fn noop_preload(dir: &Path) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/noop_preload.c");
    let lib = dir.join("libswapkit_preload.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .status();
    match built {
        Ok(s) if s.success() => Some(lib),
        other => {
            eprintln!(
                "skipped the exec checks: cannot build a preload library with cc ({other:?})"
            );
            None
        }
    }
}

/// `NAME=value` of the program's environment (`env`'s output).
fn var(env: &str, name: &str) -> Option<String> {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

#[test]
fn run_checks_the_daemon_and_the_library_then_becomes_the_program() {
    let devices = Devices::new(&[64 * MIB]);
    let d = Daemon::start(&[]);
    let socket = d.socket.clone();
    let missing = Path::new("/nonexistent/libswapkit_preload.so");

    // No swap on: refused before anything runs.
    let out = run(&["--", "/bin/echo", "ran"], &socket, Some(missing), &[]);
    let err = assert_one_line(&out, 4);
    assert!(err.contains("no swap is on"), "{err}");
    d.ok(&["mkswap", devices.path(0)]);
    d.ok(&["on", devices.path(0)]);

    // A library that is not there, named or looked for.
    let out = run(&["--", "/bin/echo", "ran"], &socket, Some(missing), &[]);
    let err = assert_one_line(&out, 8);
    assert!(
        err.contains(missing.to_str().unwrap()) && err.contains("SWAPKIT_PRELOAD"),
        "{err}"
    );
    let beside = Path::new(common::BIN).with_file_name("libswapkit_preload.so");
    if !beside.exists() {
        let out = run(&["--", "/bin/echo", "ran"], &socket, None, &[]);
        let err = assert_one_line(&out, 8);
        assert!(
            err.contains(beside.to_str().unwrap()) && err.contains("cargo build -p preload"),
            "{err}"
        );
    }

    let tmp = tempfile::Builder::new()
        .prefix("swapkit-run")
        .tempdir()
        .unwrap();
    let Some(lib) = noop_preload(tmp.path()) else {
        return;
    };

    // The program's environment: the library, the socket (absolute, from a relative
    // --socket), the sizes in bytes, no SWAPKIT_STRICT without --strict.
    let sock_dir = socket.parent().unwrap();
    let other = tmp.path().join("libother.so");
    std::fs::copy(&lib, &other).unwrap();
    let mut c = Command::new(common::BIN);
    c.args([
        "run",
        "--socket",
        "swapctl.sock",
        "--limit",
        "64M",
        "--",
        "env",
    ])
    .current_dir(sock_dir)
    .env("SWAPKIT_PRELOAD", &lib)
    .env("SWAPKIT_STRICT", "1")
    .env("LD_PRELOAD", &other);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    assert_eq!(
        var(&env, "LD_PRELOAD").unwrap(),
        format!("{}:{}", lib.display(), other.display())
    );
    assert_eq!(
        var(&env, "SWAPKIT_SOCKET").unwrap(),
        socket.to_str().unwrap()
    );
    assert_eq!(var(&env, "SWAPKIT_LIMIT").unwrap(), (64 * MIB).to_string());
    assert_eq!(var(&env, "SWAPKIT_MIN_MAPPING").unwrap(), MIB.to_string());
    assert_eq!(var(&env, "SWAPKIT_STRICT"), None, "{env}");
    // --strict and --min-mapping; --limit's default is a quarter of the memory, in bytes.
    let out = run(
        &["--strict", "--min-mapping", "4M", "env"],
        &socket,
        Some(&lib),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    assert_eq!(var(&env, "SWAPKIT_STRICT").unwrap(), "1");
    assert_eq!(
        var(&env, "SWAPKIT_MIN_MAPPING").unwrap(),
        (4 * MIB).to_string()
    );
    let limit: u64 = var(&env, "SWAPKIT_LIMIT").unwrap().parse().unwrap();
    assert!(limit > 0 && limit.is_multiple_of(4096), "{limit}");
    assert_eq!(var(&env, "LD_PRELOAD").unwrap(), lib.to_str().unwrap());

    // The program's exit status is its own.
    let out = run(&["--", "sh", "-c", "exit 3"], &socket, Some(&lib), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // swapctl becomes the program: same pid, and SIGPIPE (which swapctl ignores) as a shell
    // would leave it.
    let child = Command::new(common::BIN)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "echo $$; grep SigIgn /proc/$$/status",
        ])
        .env("SWAPKIT_SOCKET", &socket)
        .env("SWAPKIT_PRELOAD", &lib)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        pid.to_string(),
        "not the same process"
    );
    let ignored = lines
        .next()
        .unwrap()
        .strip_prefix("SigIgn:")
        .unwrap()
        .trim();
    let ignored = u64::from_str_radix(ignored, 16).unwrap();
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored: {ignored:x}"
    );

    // A program that cannot be run: one line, exit 8.
    let out = run(&["--", "/nonexistent/prog"], &socket, Some(&lib), &[]);
    let err = assert_one_line(&out, 8);
    assert!(err.contains("/nonexistent/prog"), "{err}");
    let out = run(&["--", "swapkit-no-such-command"], &socket, Some(&lib), &[]);
    let err = assert_one_line(&out, 8);
    assert!(err.contains("command not found"), "{err}");
}

/// What the admin sees of a run, end to end: a client that created an object, paged to it
/// and reported (as the preload library does) is a row of `status` and in `status --json`,
/// with its pid; when it closes, the row goes.
#[test]
fn a_reporting_program_is_a_row_of_status_until_it_goes() {
    let devices = Devices::new(&[64 * MIB]);
    let d = Daemon::start(&[]);
    d.ok(&["mkswap", devices.path(0)]);
    d.ok(&["on", devices.path(0)]);
    let mut c = control::client::Client::connect(&d.socket).unwrap();
    let object = c.create(None).unwrap();
    c.putpages(object, 0, vec![7u8; 8 * 4096], true).unwrap();
    c.report(&control::proto::ProcessReport {
        command: "bigsort --in huge.txt".into(),
        resident_pages: 256,
        limit_pages: 1024,
        faults: 5000,
        read_errors: 1,
        ..Default::default()
    })
    .unwrap();
    let text = d.ok(&["status"]);
    let table = text
        .split_once("processes\n")
        .map(|(_, t)| t)
        .unwrap_or_default();
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row.first().copied(),
        Some(std::process::id().to_string().as_str()),
        "{text}"
    );
    assert!(table.contains("bigsort --in huge.txt"), "{text}");
    let h = |pages: u64| swapctl::units::human(pages * 4096);
    let want = [h(256), h(8), h(1024), "5000".into(), "1".into()];
    assert_eq!(row[row.len() - 5..], want, "{text}");
    let json: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    let p = &json["processes"][0];
    assert_eq!(p["pid"], std::process::id());
    assert_eq!(
        (p["swapped_pages"].as_u64(), p["objects"].as_u64()),
        (Some(8), Some(1))
    );
    drop(c);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while d.ok(&["status"]).contains("processes") {
        assert!(
            std::time::Instant::now() < end,
            "the run outlived its connection"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
