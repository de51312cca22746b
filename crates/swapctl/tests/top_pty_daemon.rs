//! The smoke test of `swapctl top` as a person uses it: a real daemon on loop devices (files
//! where loop devices are unavailable), a `swapctl load` paging through it, and the real
//! binary's `top` in a pseudo-terminal. It must show the devices and the pbuf gauges, and `q`
//! must end it with status 0 and the terminal restored.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::path::Path;
use std::process::Command;

use common::pty::PtyChild;
use common::{BIN, Daemon, Devices, stderr};

const MIB: u64 = 1 << 20;

#[test]
fn top_shows_a_daemon_under_load_and_q_restores_the_terminal() {
    let devs = Devices::new(&[16 * MIB, 16 * MIB]);
    let d = Daemon::start(&[]);
    for i in 0..devs.paths.len() {
        d.ok(&["mkswap", devs.path(i)]);
    }
    d.ok(&["on", devs.path(0), devs.path(1)]);
    let mut command = Command::new(BIN);
    command.args(["top", "--socket", d.socket(), "-d", "0.2"]);
    let Some(mut pty) = PtyChild::spawn(command) else {
        return;
    };
    let mut load = d.spawn(&[
        "load",
        "--verify",
        "--objects",
        "2",
        "--size",
        "2M",
        "--threads",
        "2",
        "--duration",
        "20s",
    ]);

    // The device table shows each device by its last path component at least.
    let names: Vec<String> = devs
        .paths
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    wanted.extend(["Devices", "pbufs", "read", "async"]);
    pty.wait_for(&wanted);
    pty.send(b"q");
    let status = pty.wait_exit();
    assert!(status.success(), "{status}: {}", pty.tail());
    pty.assert_restored();

    let _ = load.kill();
    let out = load.wait_with_output().unwrap();
    // Killed on purpose: only a mismatch report would be a failure here.
    assert!(
        !stderr(&out).contains("mismatch"),
        "load reported: {}",
        stderr(&out)
    );
}
