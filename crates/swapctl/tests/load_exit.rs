//! End to end, `swapctl load`'s exit status (issue #14): pages not stored are a failure (4),
//! announced before the run when the objects do not fit; a daemon that goes away is said in
//! those words (8); a bad `--cluster` is a usage error (16).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Devices, stderr};

const MIB: u64 = 1 << 20;

#[test]
fn pages_that_could_not_be_stored_exit_4_after_a_warning() {
    let devs = Devices::new(&[4 * MIB]);
    let d = Daemon::start(&[]);
    d.ok(&["mkswap", devs.path(0)]);
    d.ok(&["on", devs.path(0)]);
    // 2 x 8 MiB of objects on 4 MiB of swap: `seq` writes them whole before reading.
    let out = d.run(&[
        "load",
        "--objects",
        "2",
        "--size",
        "8M",
        "--pattern",
        "seq",
        "--duration",
        "2s",
        "--json",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("swapctl: load: warning: ") && first.contains("exceed the free swap"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let not_stored = report["put_failures"].as_u64().unwrap();
    assert!(not_stored > 0, "{report}");
    assert!(
        err.lines()
            .last()
            .unwrap_or_default()
            .contains(&format!("{not_stored} pages could not be stored")),
        "{err}"
    );
}

#[test]
fn a_daemon_that_goes_away_is_said_so() {
    let mut d = Daemon::start(&[]);
    let load = d.spawn(&["load", "--duration", "60s", "--size", "64K"]);
    // Wait until the load's workers hold their objects, then stop the daemon under them.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
        if s["objects"].as_u64().unwrap_or(0) >= 4 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the load never created its objects: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait();
    let out = load.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert_eq!(
        err.lines().last(),
        Some("swapctl: load: the daemon went away"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
}

#[test]
fn a_bad_cluster_is_a_usage_error() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-none")
        .tempdir()
        .unwrap();
    for c in ["0", "33"] {
        let out = common::swapctl_env(&["load", "--cluster", c], &dir.path().join("absent.sock"));
        assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));
        assert_eq!(stderr(&out), "swapctl: load: --cluster must be in 1..=32\n");
    }
}
