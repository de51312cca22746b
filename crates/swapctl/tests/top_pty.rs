//! `swapctl top` in a real pseudo-terminal, over a fixture source: it draws the devices and
//! pbuf gauges, `q` and SIGTERM end it with status 0, and every way out (a panic too) leaves
//! the terminal as it found it (cooked mode, main screen, cursor shown).
//!
//! The TUI runs in a child process: this test binary itself, re-run with
//! `SWAPKIT_TOP_PTY_CHILD` set so that only [`pty_child_runs_top_over_a_fixture`] acts. This one
//! needs neither root nor devices; `top_pty_daemon.rs` runs `swapctl top` against a real daemon.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::pty::{PATIENCE, PtyChild};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use swapctl::top::fixture::{Fixture, FixtureSource};
use swapctl::top::{self, TopOptions};

const CHILD_ENV: &str = "SWAPKIT_TOP_PTY_CHILD";

/// In the child: run the TUI over a fixture. In a normal test run: nothing.
#[test]
fn pty_child_runs_top_over_a_fixture() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let kind = if mode == "never_connected" {
        Fixture::NeverConnected
    } else {
        Fixture::Normal
    };
    let mut source = FixtureSource::new(kind);
    if mode == "panic" {
        source.panic_at = Some(3);
    }
    let opts = TopOptions {
        interval: Duration::from_millis(100),
        source: "fixture".to_string(),
        ..TopOptions::default()
    };
    top::run(source, opts).unwrap();
}

/// This test binary again in a pty, running `top` over fixture `mode`.
fn top_over_fixture(mode: &str) -> Option<PtyChild> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "pty_child_runs_top_over_a_fixture",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode);
    PtyChild::spawn(command)
}

#[test]
fn q_quits_with_status_zero_and_restores_the_terminal() {
    let Some(mut pty) = top_over_fixture("normal") else {
        return;
    };
    pty.wait_for(&["/dev/loop0", "pbufs", "async", "Devices"]);
    // A few keys on the way, as a person would, then quit. (Only changed cells are redrawn,
    // so their effect is not searchable in the byte stream; the snapshots cover it.)
    pty.send(b"j?");
    pty.wait_for(&["Esc or ? to close"]);
    pty.send(b"\x1bsq");
    let status = pty.wait_exit();
    assert!(status.success(), "{status}: {}", pty.tail());
    pty.assert_restored();
}

#[test]
fn sigterm_ends_it_with_status_zero_and_restores_the_terminal() {
    let Some(mut pty) = top_over_fixture("normal") else {
        return;
    };
    pty.wait_for(&["/dev/loop0", "pbufs"]);
    kill(Pid::from_raw(pty.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = pty.wait_exit();
    assert!(status.success(), "{status}: {}", pty.tail());
    pty.assert_restored();
}

#[test]
fn a_panic_restores_the_terminal_before_the_message_is_printed() {
    let Some(mut pty) = top_over_fixture("panic") else {
        return;
    };
    let status = pty.wait_exit();
    assert!(!status.success(), "the child was told to panic");
    pty.assert_restored();
    let start = Instant::now();
    while !pty.text().contains("panic requested") && start.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = pty.text();
    let left = text.rfind("\x1b[?1049l").unwrap();
    let message = text.find("panic requested").expect("panic message printed");
    assert!(
        left < message,
        "the message must land on the restored screen"
    );
}

/// Issue #12: a `top` whose terminal closed was reparented and spun at 100% CPU. Closing the
/// terminal must end it within 2 s (a hang-up: SIGHUP, then EOF/EIO on the tty).
#[test]
fn closing_the_terminal_ends_it_within_two_seconds() {
    for mode in ["normal", "never_connected"] {
        let Some(mut pty) = top_over_fixture(mode) else {
            return;
        };
        pty.wait_for(&["fixture"]);
        pty.hang_up();
        let status = pty.exit_within(Duration::from_secs(2));
        assert!(
            status.is_some(),
            "{mode}: top still runs 2 s after its terminal closed"
        );
    }
}
