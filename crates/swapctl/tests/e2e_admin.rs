//! End to end, the admin side: the config file, mkswap's refusals, tunables, status, frag,
//! and the man page and completions.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Devices, stderr};

const MIB: u64 = 1 << 20;

#[test]
fn the_daemon_swaps_on_its_config_devices_except_noauto_ones() {
    let devs = Devices::new(&[16 * MIB, 16 * MIB]);
    // mkswap needs no daemon: run it before the daemon that will use the devices.
    for i in 0..2 {
        let out = common::swapctl_env(&["mkswap", devs.path(i)], &devs.dir.path().join("none"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let config = format!(
        "[daemon]\ninterleave = 8\nswap_async_max = 2\n\n\
         [[device]]\npath = \"{}\"\npriority = 5\n\n\
         [[device]]\npath = \"{}\"\npriority = 7\nnoauto = true\n",
        devs.path(0),
        devs.path(1)
    );
    let d = Daemon::start_with_config(&config, &[]);
    let list = d.ok(&["list", "--show=NAME,PRIO", "--noheadings", "--raw"]);
    assert_eq!(list, format!("{} 5\n", devs.path(0)));
    // `on -a` skips noauto devices and those already on.
    d.ok(&["on", "-a"]);
    assert_eq!(d.ok(&["list", "--noheadings"]).lines().count(), 1);
    // `on PATH` of a noauto device takes its priority from the file.
    d.ok(&["on", devs.path(1)]);
    let list = d.ok(&["list", "--show=NAME,PRIO", "--noheadings", "--raw"]);
    assert!(list.contains(&format!("{} 7\n", devs.path(1))), "{list}");
    let status: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["tunables"]["interleave"], 8);
    assert_eq!(status["tunables"]["swap_async_max"], 2);
}

#[test]
fn a_bad_config_file_stops_the_daemon_with_one_line_and_the_spot() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-cfg")
        .tempdir()
        .unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[daemon]\ninterleve = 3\n").unwrap();
    let out = common::swapctl_env(
        &[
            "daemon",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            dir.path().join("s").to_str().unwrap(),
        ],
        &dir.path().join("s"),
    );
    assert!(!out.status.success());
    // One line saying what, then toml's excerpt with the caret under the spot.
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("swapctl: config: ")
            && lines[0].contains("bad.toml: line 2, column 1: unknown field `interleve`"),
        "{err}"
    );
    assert_eq!(
        &lines[1..],
        ["  |", "2 | interleve = 3", "  | ^^^^^^^^^"],
        "{err}"
    );
}

#[test]
fn mkswap_refuses_a_device_that_is_on() {
    let devs = Devices::new(&[16 * MIB]);
    let d = Daemon::start(&[]);
    d.ok(&["mkswap", devs.path(0)]);
    d.ok(&["on", devs.path(0)]);
    let out = d.run(&["mkswap", devs.path(0)]);
    if devs.loop_backed {
        // O_EXCL on the block device: the daemon holds it.
        assert!(!out.status.success(), "mkswap overwrote a device in use");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("swapctl: "), "{err}");
    }
}

#[test]
fn set_clamps_swap_async_max_and_status_and_frag_report_the_devices() {
    let devs = Devices::new(&[16 * MIB, 16 * MIB]);
    let d = Daemon::start(&["--nswbuf", "16"]);
    for i in 0..2 {
        d.ok(&["mkswap", devs.path(i)]);
    }
    d.ok(&["on", devs.path(0), devs.path(1)]);
    assert_eq!(
        d.ok(&["set", "swap_async_max", "1000"]),
        "swap_async_max: clamped to 8 (asked for 1000; it must be 1..=nswbuf/2)\n"
    );
    assert_eq!(
        d.ok(&["set", "swap_async_max", "0"]),
        "swap_async_max: clamped to 1 (asked for 0; it must be 1..=nswbuf/2)\n"
    );
    let status = d.ok(&["status"]);
    assert!(status.contains("swap_async_max 1"), "{status}");
    assert_eq!(
        status.lines().filter(|l| l.starts_with("device ")).count(),
        2,
        "{status}"
    );
    let frag = d.ok(&["frag"]);
    assert_eq!(frag.matches("Free space on device").count(), 2, "{frag}");
    // A fresh area is one free range: the daemon walked its free list for `frag` (a plain
    // `stats` leaves fragmentation out).
    assert_eq!(
        frag.matches("number of maximal free ranges: 1\n").count(),
        2,
        "{frag}"
    );
    let one = d.ok(&["frag", devs.path(1)]);
    assert_eq!(one.matches("Free space on device").count(), 1, "{one}");
    let out = d.run(&["frag", "/nonexistent/swapkit"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a swap device that is on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_finished_load_leaves_no_objects_behind() {
    let devs = Devices::new(&[16 * MIB]);
    let d = Daemon::start(&[]);
    d.ok(&["mkswap", devs.path(0)]);
    d.ok(&["on", devs.path(0)]);
    let out = d.ok(&[
        "load",
        "--objects",
        "3",
        "--size",
        "1M",
        "--duration",
        "1s",
        "--pattern",
        "seq",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["pages_out"].as_u64().unwrap() > 0, "{out}");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
        if s["objects"] == 0 && s["used_pages"] == 0 {
            break;
        }
        assert!(Instant::now() < end, "objects left behind: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_daemon_is_one_line_and_a_non_zero_exit() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-none")
        .tempdir()
        .unwrap();
    for args in [
        &["list"][..],
        &["status"],
        &["load", "--duration", "1s"],
        &["set", "swap_async_max", "2"],
    ] {
        let out = common::swapctl_env(args, &dir.path().join("absent.sock"));
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("swapctl: cannot connect to "), "{err}");
    }
    let out = common::swapctl_env(&["off", "/dev/loop0"], &dir.path().join("absent.sock"));
    assert_eq!(out.status.code(), Some(8), "system error bit");
}

#[test]
fn man_page_and_completions_come_from_the_cli() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-man")
        .tempdir()
        .unwrap();
    let none = dir.path().join("none");
    let man = common::stdout(&common::swapctl_env(&["man"], &none));
    assert!(
        man.starts_with(".ie") || man.contains(".TH swapctl"),
        "{}",
        &man[..200.min(man.len())]
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = common::swapctl_env(&["completions", shell], &none);
        assert!(out.status.success());
        assert!(common::stdout(&out).contains("mkswap"), "{shell}");
    }
}

#[test]
fn a_socket_left_by_a_killed_daemon_is_replaced() {
    let mut d = Daemon::start(&[]);
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait();
    assert!(
        d.socket.exists(),
        "a killed daemon cannot remove its socket"
    );
    let socket = d.socket.clone();
    let mut again = std::process::Command::new(common::BIN)
        .args(["daemon", "--no-auto", "--socket", socket.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let served = loop {
        if common::swapctl_env(&["status"], &socket).status.success() {
            break true;
        }
        if Instant::now() > end || again.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(again.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = again.wait_with_output().unwrap();
    assert!(
        served,
        "the second daemon did not take over the stale socket: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn every_listing_command_takes_json_and_status_json_has_fragmentation() {
    let devs = Devices::new(&[16 * MIB, 16 * MIB]);
    let d = Daemon::start(&[]);
    for i in 0..2 {
        d.ok(&["mkswap", devs.path(i)]);
    }
    d.ok(&["on", devs.path(0), devs.path(1)]);
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&d.ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    // status --json: each fresh area is one free range as long as its free pages.
    let status = json(&["status", "--json"]);
    for dev in status["devices"].as_array().unwrap() {
        assert_eq!(dev["frag"]["free_ranges"], 1, "{dev}");
        assert_eq!(dev["frag"]["largest"], dev["free_pages"], "{dev}");
        assert!(!dev["frag"]["text"].as_str().unwrap().is_empty(), "{dev}");
    }
    let total = json(&["summary", "--json"]);
    snap!("e2e_summary_json", d.ok(&["summary", "--json"]));
    assert_eq!(
        json(&["-s", "--json"]),
        serde_json::json!({ "total": total })
    );
    let both = json(&["-l", "-s", "--json"]);
    assert_eq!(both["swapdevices"].as_array().unwrap().len(), 2, "{both}");
    assert_eq!(both["total"], total);
    assert_eq!(json(&["-l", "--json"]), json(&["list", "--json"]));
    snap!(
        "e2e_frag_json",
        d.ok(&["frag", "--json", devs.path(1)])
            .replace(devs.path(1), "dev1")
    );
    let frag = json(&["frag", "--json"]);
    assert_eq!(frag["swapdevices"].as_array().unwrap().len(), 2, "{frag}");
    let out = d.run(&["frag", "--json", "/nonexistent/swapkit"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = d.run(&["--json"]);
    assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));
}

#[test]
fn on_twice_says_already_on_and_no_device_left_is_not_almost_full() {
    let devs = Devices::new(&[16 * MIB]);
    let d = Daemon::start(&[]);
    d.ok(&["mkswap", devs.path(0)]);
    d.ok(&["on", devs.path(0)]);
    let out = d.run(&["on", devs.path(0)]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "swapctl: {}: swapon failed: already on (swap device 0)\n",
            devs.path(0)
        )
    );
    d.ok(&["off", "-a"]);
    let status: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["hysteresis"]["almost_full"], false, "{status}");
    // The daemon logs events from a thread of its own: give it the time to (not) say it.
    std::thread::sleep(Duration::from_millis(500));
    let log = d.log_text();
    assert!(!log.contains("almost full"), "{log}");
}

#[test]
fn a_priority_changed_by_sighup_is_said_to_apply_at_the_next_on() {
    let devs = Devices::new(&[16 * MIB]);
    let out = common::swapctl_env(&["mkswap", devs.path(0)], &devs.dir.path().join("none"));
    assert!(out.status.success(), "{}", stderr(&out));
    let config = |prio: i32| {
        format!(
            "[[device]]\npath = \"{}\"\npriority = {prio}\n",
            devs.path(0)
        )
    };
    let d = Daemon::start_with_config(&config(5), &[]);
    let prio = || d.ok(&["list", "--show=PRIO", "--noheadings", "--raw"]);
    assert_eq!(prio(), "5\n");
    std::fs::write(d.dir.path().join("swapctl.toml"), config(10)).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let end = Instant::now() + Duration::from_secs(10);
    while !d.log_text().contains("reload:") {
        assert!(Instant::now() < end, "no reload logged: {}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "device {} changed: takes effect at its next `swapctl on`",
            devs.path(0)
        )),
        "{log}"
    );
    assert_eq!(prio(), "5\n", "the live priority is kept");
    d.ok(&["off", devs.path(0)]);
    d.ok(&["on", devs.path(0)]);
    assert_eq!(prio(), "10\n");
}
