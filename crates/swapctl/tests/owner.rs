//! One owner per piece of storage through the real `swapctl` binary (issue 11 §2): `mkswap`
//! refuses storage a daemon uses, `--force` or not; a second daemon's `on` is refused; `loop
//! attach` of a file that already has a loop device names it unless `--shared`. Every
//! process, loop device and file made here is removed again, also on failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Daemon, Devices, stderr, stdout};

const MIB: u64 = 1 << 20;

/// Detaches a loop device `swapctl loop attach` left attached (it persists them).
struct Detach(PathBuf);

impl Drop for Detach {
    fn drop(&mut self) {
        let _ = device::loopdev::detach_path(&self.0);
    }
}

fn backing(devs: &Devices, i: usize) -> PathBuf {
    devs.dir.path().join(format!("swapkit-dev{i}.img"))
}

fn assert_refused(out: &std::process::Output, expect: &str) {
    assert!(
        !out.status.success(),
        "not refused; stdout: {}",
        stdout(out)
    );
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("swapctl: ") && err.contains(expect),
        "wanted {expect:?} in: {err}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn mkswap_refuses_storage_a_daemon_uses_even_with_force() {
    let devs = Devices::new(&[16 * MIB]);
    let file = devs.dir.path().join("swapkit-file.swap");
    let d = Daemon::start(&[]);
    d.ok(&["mkswap", devs.path(0)]);
    d.ok(&["mkswap", "--pages", "1024", s(&file)]);
    d.ok(&["on", devs.path(0)]);
    d.ok(&["on", s(&file)]);
    if devs.loop_backed {
        // The same daemon names its own area.
        let img = backing(&devs, 0);
        let out = d.run(&["on", s(&img)]);
        assert_refused(&out, &img.display().to_string());
        assert_refused(&out, &format!("in use as {} (swap device ", devs.path(0)));
    }
    for force in [false, true] {
        let args = |p: &Path| {
            let mut a = vec!["mkswap".to_owned()];
            if force {
                a.push("--force".into());
            }
            a.push(s(p).into());
            a
        };
        let run = |p: &Path| {
            let a = args(p);
            d.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
        };
        assert_refused(
            &run(&file),
            &format!("{}: in use by a swapkit pager or mkswap", file.display()),
        );
        if devs.loop_backed {
            let img = backing(&devs, 0);
            assert_refused(
                &run(&img),
                &format!("{}: in use as {}", img.display(), devs.path(0)),
            );
        }
    }
    // Off, the storage is idle again.
    d.ok(&["off", s(&file)]);
    d.ok(&["mkswap", "--force", s(&file)]);
}

#[test]
fn a_second_daemon_cannot_swap_on_what_the_first_uses() {
    let devs = Devices::new(&[16 * MIB]);
    let file = devs.dir.path().join("swapkit-file.swap");
    let first = Daemon::start(&[]);
    first.ok(&["mkswap", devs.path(0)]);
    first.ok(&["mkswap", "--pages", "1024", s(&file)]);
    first.ok(&["on", devs.path(0)]);
    first.ok(&["on", s(&file)]);
    let second = Daemon::start(&[]);
    // The daemon puts "swapon failed" between the path and the device's reason.
    let out = second.run(&["on", s(&file)]);
    assert_refused(&out, &file.display().to_string());
    assert_refused(&out, "in use by a swapkit pager or mkswap");
    if devs.loop_backed {
        let img = backing(&devs, 0);
        let out = second.run(&["on", s(&img)]);
        assert_refused(&out, &img.display().to_string());
        assert_refused(&out, &format!("in use as {}", devs.path(0)));
    }
    first.ok(&["off", s(&file)]);
    second.ok(&["on", s(&file)]);
}

#[test]
fn loop_attach_of_an_attached_file_names_the_device_unless_shared() {
    let devs = Devices::new(&[16 * MIB]);
    if !devs.loop_backed {
        println!("loop devices unavailable; skipped");
        return;
    }
    let img = backing(&devs, 0);
    let out = common::swapctl_env(&["loop", "attach", s(&img)], &devs.dir.path().join("none"));
    assert_refused(
        &out,
        &format!(
            "{}: already attached as {} (--shared attaches another device anyway)",
            img.display(),
            devs.path(0)
        ),
    );
    let out = common::swapctl_env(
        &["loop", "attach", "--shared", s(&img)],
        &devs.dir.path().join("none"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let second = Detach(PathBuf::from(stdout(&out).trim()));
    assert_ne!(second.0, Path::new(devs.path(0)));
    let mut attached = device::loopdev::attached_to(&img).unwrap();
    attached.sort();
    let mut want = vec![PathBuf::from(devs.path(0)), second.0.clone()];
    want.sort();
    assert_eq!(attached, want);
    drop(second);
}
