//! End to end: the real `swapctl` binary as a daemon on real devices (loop devices, or
//! files), driven by the real binary. Sizes are fixed by the tests so tables snapshot.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[macro_use]
mod common;

use std::time::Duration;

use common::{Daemon, Devices, stderr, stdout};
use control::client::Client;
use control::proto::GetStatus;
use device::PAGE_SIZE;
use swapctl::load::content;

const MIB: u64 = 1 << 20;

fn mkswap_all(d: &Daemon, devs: &Devices) {
    for i in 0..devs.paths.len() {
        let uuid = format!("00000000-0000-4000-8000-{:012x}", i + 1);
        let out = d.ok(&[
            "mkswap",
            devs.path(i),
            "-L",
            &format!("swap{i}"),
            "-U",
            &uuid,
        ]);
        assert!(out.contains("Setting up swapspace version 1"), "{out}");
    }
}

/// Write `pages` pages into a named object and return (client, object).
fn fill_object(d: &Daemon, name: &str, pages: u64) -> (Client, u64) {
    let mut c = Client::connect(&d.socket).unwrap();
    let o = c.create(Some(name)).unwrap();
    for start in (0..pages).step_by(16) {
        let n = 16.min(pages - start);
        let mut data = vec![0u8; n as usize * PAGE_SIZE];
        for (i, page) in data.chunks_mut(PAGE_SIZE).enumerate() {
            content::fill(page, 9, start + i as u64, 1);
        }
        let st = c.putpages(o, start, data, true).unwrap();
        assert!(
            st.iter().all(|s| *s == control::proto::PutStatus::Ok),
            "{st:?}"
        );
    }
    (c, o)
}

fn check_object(c: &mut Client, o: u64, pages: u64) {
    for start in (0..pages).step_by(16) {
        let n = 16.min(pages - start);
        let (st, data) = c.getpages(o, start, n as u32).unwrap();
        for (i, page) in data.chunks(PAGE_SIZE).enumerate() {
            assert_eq!(st[i], GetStatus::Ok, "page {}", start + i as u64);
            content::check(page, 9, start + i as u64, 1).unwrap();
        }
    }
}

#[test]
fn mkswap_on_list_and_off_with_data_on_the_device_lose_nothing() {
    let devs = Devices::new(&[16 * MIB, 16 * MIB, 32 * MIB]);
    let d = Daemon::start(&[]);
    mkswap_all(&d, &devs);
    // A device that holds a swap header but is not on yet refuses nothing; on it goes.
    d.ok(&["on", devs.path(0), "-p", "10"]);
    d.ok(&["on", devs.path(1), devs.path(2)]);
    snap!("e2e_list", devs.redact(&d.ok(&["list"])));
    snap!(
        "e2e_list_show",
        devs.redact(&d.ok(&["list", "--show=NAME,SIZE,USED,PRIO,UUID,LABEL"]))
    );
    // TYPE depends on whether we got loop devices: checked apart from the snapshot.
    let types = d.ok(&["list", "--show=TYPE", "--noheadings"]);
    let want = if devs.loop_backed {
        "partition"
    } else {
        "file"
    };
    assert!(types.lines().all(|t| t.trim() == want), "{types}");
    assert!(d.ok(&["-s"]).starts_with("Total: "));
    let json: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
    assert_eq!(json["swapdevices"].as_array().unwrap().len(), 3);

    // Priority 10 fills first: the data lands on dev0, then dev0 goes off.
    let (mut c, o) = fill_object(&d, "kept", 600);
    let before: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
    assert!(
        before["swapdevices"][0]["used"].as_u64().unwrap() > 0,
        "no data on dev0: {before}"
    );
    d.ok(&["off", devs.path(0)]);
    let after = d.ok(&["list", "--noheadings", "--raw"]);
    assert!(!after.contains(devs.path(0)), "{after}");
    check_object(&mut c, o, 600);

    // Off of something that is not on: util-linux's failure bit, one line on stderr.
    let out = d.run(&["off", devs.path(0)]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("swapctl: "));

    // The last device cannot go while it holds the only copy: "some failed" with the
    // no-room bit, and the data is still there.
    let out = d.run(&["off", "-a"]);
    assert_eq!(out.status.code(), Some(2 | 64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not enough free swap"),
        "{}",
        stderr(&out)
    );
    check_object(&mut c, o, 600);
    c.destroy(o).unwrap();
    d.ok(&["off", "-a"]);
    assert_eq!(d.ok(&["list", "--noheadings"]), "");
}

/// Pages the daemon holds on `dev`, waiting (bounded) until there are some: a test that
/// swaps a device off must know it had data to move, not hope a sleep was long enough.
fn wait_for_pages_on(d: &Daemon, dev: &str) -> u64 {
    let mut c = Client::connect(&d.socket).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = c.stats().unwrap();
        let used = stats
            .devices
            .iter()
            .find(|s| s.path == dev)
            .map_or(0, |s| s.used_pages);
        if used > 0 {
            return used;
        }
        assert!(
            std::time::Instant::now() < end,
            "no page ever reached {dev}: {:?}",
            stats.devices
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn load_verify_holds_while_a_device_goes_off_and_comes_back() {
    let devs = Devices::new(&[32 * MIB, 32 * MIB]);
    let d = Daemon::start(&[]);
    mkswap_all(&d, &devs);
    d.ok(&["on", devs.path(0), devs.path(1)]);
    let load = d.spawn(&[
        "load",
        "--verify",
        "--objects",
        "4",
        "--size",
        "4M",
        "--threads",
        "2",
        "--duration",
        "5s",
        "--pattern",
        "mixed",
    ]);
    let held = wait_for_pages_on(&d, devs.path(1));
    // swapoff returns only once every page on the device has moved (or it fails), and
    // `--verify` checks each of them afterwards.
    d.ok(&["off", devs.path(1)]);
    let after = d.ok(&["list", "--noheadings", "--raw"]);
    assert!(!after.contains(devs.path(1)), "{after}");
    eprintln!("{held} pages were on {} when it went off", devs.path(1));
    // No retry: after a successful swapoff the device is no longer held (O_EXCL), so an
    // immediate swapon must succeed.
    d.ok(&["on", devs.path(1)]);
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success(), "load failed: {}", stderr(&out));
    assert!(stdout(&out).contains("no mismatch"), "{}", stdout(&out));
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = Daemon::start(&[]);
    let out = d.run(&["daemon", "--socket", d.socket()]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!("swapctl: daemon: a daemon already runs on {}", d.socket())
    );
    assert!(
        d.run(&["status"]).status.success(),
        "the first daemon stopped serving"
    );
}

#[test]
fn malformed_requests_are_answered_while_a_load_continues() {
    use std::io::{Read, Write};
    let devs = Devices::new(&[32 * MIB]);
    let d = Daemon::start(&[]);
    mkswap_all(&d, &devs);
    d.ok(&["on", devs.path(0)]);
    let load = d.spawn(&[
        "load",
        "--verify",
        "--objects",
        "2",
        "--size",
        "2M",
        "--duration",
        "3s",
    ]);
    for garbage in [
        b"not a frame at all, just text".to_vec(),
        {
            let mut f = b"SWPK\x01\x00\x01\x00".to_vec();
            f.extend_from_slice(&5u32.to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(b"{bad}");
            f
        },
        {
            let mut f = b"SWPK\x01\x00\x01\x00".to_vec();
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(&u32::MAX.to_le_bytes());
            f
        },
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.write_all(&garbage).unwrap();
        let mut reply = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if let Ok((f, _)) = control::proto::Frame::decode(&reply) {
                let r = control::proto::Reply::decode(&f).unwrap();
                assert!(matches!(r, control::proto::Reply::Error { .. }), "{r:?}");
                break;
            }
        }
        assert!(!reply.is_empty(), "no reply to {garbage:?}");
    }
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success(), "load failed: {}", stderr(&out));
}

#[test]
fn a_non_root_peer_may_list_but_not_swap_on() {
    let devs = Devices::new(&[16 * MIB]);
    let d = Daemon::start(&["--socket-group", "nogroup"]);
    mkswap_all(&d, &devs);
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "nobody",
                "--regid",
                "nogroup",
                "--clear-groups",
                "--",
            ])
            .arg(common::BIN)
            .args(args)
            .env("SWAPKIT_SOCKET", &d.socket)
            .output()
            .unwrap()
    };
    let out = as_nobody(&["on", devs.path(0)]);
    if stderr(&out).contains("setpriv") {
        eprintln!("setpriv unusable here ({}); skipping", stderr(&out).trim());
        return;
    }
    assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // The same permission bit for every command that needs root (exit-status table).
    for args in [
        &["off", devs.path(0)][..],
        &["set", "swap_async_max", "2"],
        &["-a", devs.path(0)],
    ] {
        let out = as_nobody(args);
        assert_eq!(out.status.code(), Some(16), "{args:?}: {}", stderr(&out));
    }
    let out = as_nobody(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        d.ok(&["list", "--noheadings"]),
        "",
        "nobody managed to swap on"
    );
}

#[test]
fn sigterm_with_io_in_flight_exits_zero_and_removes_the_socket() {
    let devs = Devices::new(&[32 * MIB]);
    let mut d = Daemon::start(&[]);
    mkswap_all(&d, &devs);
    d.ok(&["on", devs.path(0)]);
    let load = d.spawn(&[
        "load",
        "--objects",
        "4",
        "--size",
        "4M",
        "--threads",
        "4",
        "--duration",
        "30s",
        "--async",
    ]);
    // The load is paging (pages reached the device), not merely started.
    wait_for_pages_on(&d, devs.path(0));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let status = d.wait();
    assert_eq!(status.code(), Some(0));
    assert!(!d.socket.exists());
    // The load loses its daemon: it must say so in one line, not hang.
    let out = load.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("swapctl: load: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn loop_attach_outlives_the_command_until_detached() {
    if let Err(why) = device::loopdev::available() {
        eprintln!("loop devices unavailable ({why}); skipping");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("swapkit-loop")
        .tempdir()
        .unwrap();
    let file = dir.path().join("swapkit-attach.img");
    let out = common::swapctl_env(
        &[
            "loop",
            "attach",
            file.to_str().unwrap(),
            "--create",
            "--size",
            "8M",
        ],
        &dir.path().join("none"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let dev = stdout(&out).trim().to_owned();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = device::loopdev::detach_path(std::path::Path::new(&self.0));
        }
    }
    let guard = Detach(dev.clone());
    let list = stdout(&common::swapctl_env(
        &["loop", "list", "--json"],
        &dir.path().join("none"),
    ));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let me = v["loopdevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == dev.as_str())
        .cloned();
    let me = me.unwrap_or_else(|| panic!("{dev} not listed: {list}"));
    assert_eq!(me["autoclear"], false);
    let out = common::swapctl_env(&["loop", "detach", &dev], &dir.path().join("none"));
    assert!(out.status.success(), "{}", stderr(&out));
    drop(guard);
}
