//! End to end, every row of docs/swapctl.md's table "util-linux / FreeBSD / NetBSD form →
//! swapctl form": the real binary against a real daemon on real devices (loop devices, or
//! files). Each test names the rows it covers.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[macro_use]
mod common;

use common::{Daemon, Devices, stderr, stdout};

const MIB: u64 = 1 << 20;

fn mkswap(devs: &Devices, i: usize) {
    let uuid = format!("00000000-0000-4000-8000-{:012x}", i + 1);
    let label = format!("swap{i}");
    let out = common::swapctl_env(
        &["mkswap", devs.path(i), "-L", &label, "-U", &uuid],
        &devs.dir.path().join("none"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A daemon whose config file lists both devices (priority 5 and 7), not swapping at start.
fn daemon_with(devs: &Devices) -> Daemon {
    let config = format!(
        "[[device]]\npath = \"{}\"\npriority = 5\n\n[[device]]\npath = \"{}\"\npriority = 7\n",
        devs.path(0),
        devs.path(1)
    );
    Daemon::start_with_config(&config, &["--no-auto"])
}

fn names_on(d: &Daemon) -> Vec<String> {
    d.ok(&["list", "--show=NAME", "--noheadings", "--raw"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Rows: FreeBSD `swapctl -a DEV`, NetBSD `swapctl -a -p PRIO DEV`, FreeBSD `swapctl -d DEV`,
/// `-A`, `-U`, `-l`, `-s`, `-h`/`-k`/`-m`/`-g`.
#[test]
fn freebsd_and_netbsd_swapctl_forms() {
    let devs = Devices::new(&[16 * MIB, 16 * MIB]);
    mkswap(&devs, 0);
    mkswap(&devs, 1);
    let d = daemon_with(&devs);
    // -a with NetBSD's -p.
    d.ok(&["-p", "3", "-a", devs.path(0)]);
    let prio = d.ok(&["list", "--show=PRIO", "--noheadings", "--raw"]);
    assert_eq!(prio, "3\n");
    // -l, -s and the units.
    snap!("e2e_bsd_l", devs.redact(&d.ok(&["-l"])));
    snap!("e2e_bsd_s", devs.redact(&d.ok(&["-s"])));
    snap!(
        "e2e_bsd_units",
        devs.redact(
            &(d.ok(&["-lsh"]) + &d.ok(&["-lk"]) + &d.ok(&["-l", "-m"]) + &d.ok(&["-s", "-g"]))
        )
    );
    // -d moves the data off and stops swapping.
    d.ok(&["-d", devs.path(0)]);
    assert!(names_on(&d).is_empty());
    // -A: every config-file device, with the config file's priorities.
    d.ok(&["-A"]);
    let prio = d.ok(&["list", "--show=NAME,PRIO", "--noheadings", "--raw"]);
    assert_eq!(
        prio,
        format!("{} 5\n{} 7\n", devs.path(0), devs.path(1)),
        "{prio}"
    );
    // -U: every device off.
    d.ok(&["-U"]);
    assert!(names_on(&d).is_empty());
    // -p needs -a or -A; -a and -d do not mix: usage errors.
    for args in [
        &["-p", "3", "-l"][..],
        &["-a", devs.path(0), "-d", devs.path(1)],
    ] {
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(16), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}

/// Rows: util-linux bare `swapon`, `swapon --show` (nothing when nothing is on),
/// `swapon --show=NAME,SIZE --json`, `swapon -s`, `swapon -v`, `swapon -e`,
/// `swapon --discard[=once|pages]`, `swapon -f`, `swapon -p` range, `swapoff -v`,
/// `swapoff -a`.
#[test]
fn util_linux_swapon_and_swapoff_habits() {
    let devs = Devices::new(&[16 * MIB, 16 * MIB]);
    mkswap(&devs, 0);
    mkswap(&devs, 1);
    let d = daemon_with(&devs);
    // Nothing on: bare `on` and `--show` print nothing at all, not even a heading.
    assert_eq!(d.ok(&["on"]), "");
    assert_eq!(d.ok(&["on", "--show"]), "");
    assert_eq!(d.ok(&["list", "--show"]), "");
    // -v says what it does; -e skips what does not exist; --discard=once and -f are taken.
    let missing = devs.dir.path().join("no-such-device");
    let out = d.ok(&[
        "on",
        "-v",
        "-e",
        "-f",
        "--discard=once",
        devs.path(0),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out, format!("swapon {}\n", devs.path(0)));
    // --discard=pages is refused with its reason, as a usage error.
    let out = d.run(&["on", "--discard=pages", devs.path(1)]);
    assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a whole area once"),
        "{}",
        stderr(&out)
    );
    // -p is Linux's range, -1..32767.
    for p in ["-2", "32768", "99999"] {
        let out = d.run(&["on", "-p", p, devs.path(1)]);
        assert_eq!(out.status.code(), Some(16), "-p {p}: {}", stderr(&out));
    }
    d.ok(&["on", "--discard", "-p", "32767", devs.path(1)]);
    // Bare `on` is `--show`'s table.
    assert_eq!(d.ok(&["on"]), d.ok(&["on", "--show"]));
    assert_eq!(d.ok(&["on"]), d.ok(&["list", "--show"]));
    // --show=NAME,SIZE --json has those columns only.
    snap!(
        "e2e_show_json",
        devs.redact(&d.ok(&["on", "--show=NAME,SIZE", "--json", "--bytes"]))
    );
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["list", "--show=NAME,SIZE", "--json"])).unwrap();
    let keys: Vec<&String> = v["swapdevices"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "size"]);
    // -s: /proc/swaps' layout.
    let s = d.ok(&["on", "-s"]);
    assert!(
        s.starts_with("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"),
        "{s}"
    );
    assert_eq!(s.lines().count(), 3, "{s}");
    // off -v, then off -a.
    assert_eq!(
        d.ok(&["off", "-v", devs.path(0)]),
        format!("swapoff {}\n", devs.path(0))
    );
    d.ok(&["off", "-a"]);
    assert!(names_on(&d).is_empty());
}

/// Rows: `-h` is help for util-linux's commands and with no other option, "human" with
/// FreeBSD's `-l`/`-s`; `--help` always helps.
#[test]
fn dash_h_is_help_alone_and_human_with_l_or_s() {
    let none = std::path::Path::new("/nonexistent/swapkit.sock");
    for args in [&["-h"][..], &["--help"], &["on", "-h"], &["mkswap", "-h"]] {
        let out = common::swapctl_env(args, none);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
    let help = stdout(&common::swapctl_env(&["--help"], none));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("`-h` means human-readable sizes"), "{help}");
    // With -l, -h is a unit: it needs the daemon, so it fails to connect (not help).
    let out = common::swapctl_env(&["-l", "-h"], none);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
}
