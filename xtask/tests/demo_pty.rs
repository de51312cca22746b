//! Issue #12: `cargo xtask demo` whose terminal closes must tear everything down like `q`
//! does: within 2 s no daemon, load or `top` of the demo runs, no loop device of it stays
//! attached and its temp dir is gone.
//!
//! The demo runs in a real pseudo-terminal (as its controlling terminal: `testkit::pty`, the
//! driver the TUI's tests use too), on one small device, with the debug `swapctl` binary
//! (`SWAPKIT_SWAPCTL`, built here first). Skips with a message where there is no
//! pseudo-terminal or no root.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::pty::PtyChild;

/// The workspace's debug `swapctl`, built with the cargo that runs this test.
fn swapctl() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "swapctl"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "building swapctl failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("debug").join("swapctl")
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// One piece: the demo is started, its terminal closed and every kind of leftover looked
/// for in one scenario that reads top to bottom.
#[test]
fn closing_the_demos_terminal_tears_everything_down_within_two_seconds() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the demo needs root for its loop devices");
        return;
    }
    let bin = swapctl();
    let parent = std::env::temp_dir().join(format!("swapkit-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&parent).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(["demo", "--devices", "1", "--size", "16M", "--dir"])
        .arg(&parent)
        .env("SWAPKIT_SWAPCTL", &bin);
    let Some(mut demo) = PtyChild::spawn_sized(command, 30, 100) else {
        let _ = std::fs::remove_dir_all(&parent);
        return;
    };
    // The TUI is up once its title shows the socket path on the alternate screen.
    demo.wait_for(&["swapctl.sock", "\x1b[?1049h"]);
    // Let the load and the TUI run a moment, then close the terminal.
    std::thread::sleep(Duration::from_millis(500));
    demo.hang_up();
    let exited = demo.exit_within(Duration::from_secs(2));
    let left = processes_with(&parent.display().to_string());
    // Whatever the outcome, nothing of ours stays running.
    for p in &left {
        if let Some(pid) = p.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let loops: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .filter(|b| b.starts_with(&parent.display().to_string()))
        .collect();
    let files: Vec<PathBuf> = std::fs::read_dir(&parent)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&parent);
    assert!(
        exited.is_some(),
        "the demo still ran 2 s after its terminal closed"
    );
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(loops.is_empty(), "loop devices left: {loops:?}");
    assert!(files.is_empty(), "files left: {files:?}");
}
