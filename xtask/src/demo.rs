//! `cargo xtask demo`: the live view for newcomers. Temporary devices, a `swapctl daemon` on
//! them, a `swapctl load` pushing pages through it in the background, and `swapctl top` in the
//! foreground. Quitting the TUI stops the load and the daemon and removes the devices.
//!
//! The daemon and the load run in their own process groups, so a Ctrl-C typed at the terminal
//! reaches only the TUI (and us); we stop them ourselves, politely (SIGTERM, then SIGKILL after
//! a grace period), through [`ChildGuard`]s that also fire on error and panic.
//!
//! The terminal closing tears everything down too: a SIGHUP reaches us through
//! [`cancel`], and a hang-up we see on the tty ourselves counts the same (we may not be in its
//! foreground group). The TUI gets SIGTERM and 2 s, then SIGKILL. Nothing here panics when
//! stderr is gone with the terminal: messages go through [`say`].
//!
//! `SWAPKIT_SWAPCTL=/path/to/swapctl` uses that binary instead of building one (tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cancel;
use crate::cli::DemoArgs;
use crate::error::Error;
use crate::setup::{Want, Workbench};

pub fn run(args: &DemoArgs) -> Result<(), Error> {
    let swapctl = build_swapctl()?;
    let wb = Workbench::create(&Want {
        devices: args.devices,
        size: args.size,
        parent: args.dir.clone(),
        force_files: false,
        tag: "swapkit-demo",
    })?;
    let socket = wb.dir.join("swapctl.sock");
    let sock = socket.display().to_string();
    let daemon_log = wb.dir.join("daemon.log");
    let mut daemon = ChildGuard::spawn(
        "swapctl daemon",
        Command::new(&swapctl).args(["daemon", "--no-auto", "--socket", &sock]),
        &daemon_log,
    )?;
    wait_for_socket(&socket, &mut daemon, &daemon_log)?;
    let mut on = Command::new(&swapctl);
    on.args(["on", "--socket", &sock]).args(wb.paths());
    let status = on.status().map_err(|e| Error::io("running", &swapctl, e))?;
    if !status.success() {
        return Err(missing(&format!("`swapctl on` exited with {status}")));
    }
    let load = ChildGuard::spawn(
        "swapctl load",
        Command::new(&swapctl).args([
            "load",
            "--socket",
            &sock,
            "--duration",
            "24h",
            "--threads",
            "2",
            "--objects",
            "8",
            "--size",
            "32M",
            "--pattern",
            "mixed",
            "--verify",
        ]),
        &wb.dir.join("load.log"),
    )?;
    say(&format!(
        "demo: daemon and load running on {sock}; opening swapctl top (q quits)"
    ));
    let mut top = Command::new(&swapctl);
    top.args(["top", "--socket", &sock]);
    // SAFETY: the closure only calls pthread_sigmask, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        top.pre_exec(cancel::restore_in_child);
    }
    let mut top = top.spawn().map_err(|e| Error::io("running", &swapctl, e))?;
    // Wait for the TUI. A SIGTERM/SIGHUP sent to us (not a key: the TUI owns those), or our
    // terminal hanging up, is passed on to it as SIGTERM so it restores the terminal; if it
    // has not exited 2 s later it is killed. Then everything below tears down as usual.
    let status = wait_for_tui(&mut top, &swapctl)?;
    drop(load);
    drop(daemon);
    drop(wb);
    say("demo: stopped the load and the daemon, removed the devices");
    cancel::check()?;
    if status.success() {
        Ok(())
    } else {
        Err(missing(&format!("`swapctl top` exited with {status}")))
    }
}

/// How long the TUI has to exit after SIGTERM before it is killed.
const TUI_GRACE: Duration = Duration::from_secs(2);

fn wait_for_tui(top: &mut Child, swapctl: &Path) -> Result<std::process::ExitStatus, Error> {
    let tty = Tty::watch();
    let mut told: Option<Instant> = None;
    loop {
        match top.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(Error::io("waiting for", swapctl, e)),
        }
        let stop = cancel::cancelled() || tty.gone();
        match told {
            None if stop => {
                let pid = nix::unistd::Pid::from_raw(top.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                told = Some(Instant::now());
            }
            Some(at) if at.elapsed() >= TUI_GRACE => {
                let _ = top.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Our terminal, watched for a hang-up (the window closed).
struct Tty(Option<std::os::fd::OwnedFd>);

impl Tty {
    fn watch() -> Tty {
        use std::io::IsTerminal;
        let fd = std::io::stdin()
            .is_terminal()
            .then(|| {
                std::os::fd::AsFd::as_fd(&std::io::stdin())
                    .try_clone_to_owned()
                    .ok()
            })
            .flatten();
        Tty(fd)
    }

    fn gone(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let Some(fd) = &self.0 else { return false };
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
    }
}

/// A line on stderr that cannot panic: after the terminal closed, `eprintln!` would.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn missing(what: &str) -> Error {
    Error::Setup(format!(
        "demo: {what}. The demo needs the swapctl daemon, load and top commands \
         (the swapctl and tui branches); they may not be merged yet"
    ))
}

/// How the demo builds swapctl: with the versions of `Cargo.lock` (the tested ones), and
/// not `--quiet`, so a first build of minutes shows cargo's progress instead of silence.
/// swapctl, and the preload library `swapctl run` loads (the run bench runs programs on it).
const BUILD_ARGS: [&str; 7] = [
    "build",
    "--release",
    "--locked",
    "-p",
    "swapctl",
    "-p",
    "preload",
];

/// Build swapctl with the cargo that runs us and return the binary's path.
pub(crate) fn build_swapctl() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("SWAPKIT_SWAPCTL") {
        return Ok(PathBuf::from(bin));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    say(&format!(
        "demo: building swapctl (cargo {}): the first time some two minutes, with cargo's progress below",
        BUILD_ARGS.join(" ")
    ));
    let status = Command::new(&cargo)
        .args(BUILD_ARGS)
        .current_dir(&root)
        .status()
        .map_err(|e| Error::io("running", PathBuf::from(&cargo), e))?;
    if !status.success() {
        return Err(missing("building swapctl failed"));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release").join("swapctl");
    if !bin.exists() {
        return Err(missing(&format!("{} was not built", bin.display())));
    }
    // A skeleton binary accepts anything silently; a real command documents its --socket.
    for cmd in ["daemon", "load", "top"] {
        let ok = Command::new(&bin)
            .args([cmd, "--help"])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--socket")
            });
        if !ok {
            return Err(missing(&format!("`swapctl {cmd}` is not there")));
        }
    }
    Ok(bin)
}

/// The daemon is ready when its socket exists; give up (with its log) if it exits first.
pub(crate) fn wait_for_socket(
    socket: &Path,
    daemon: &mut ChildGuard,
    log: &Path,
) -> Result<(), Error> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        cancel::check()?;
        if socket.exists() {
            return Ok(());
        }
        if daemon.exited() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(missing(&format!(
                "the daemon exited at start: {}",
                text.lines().last().unwrap_or("no output")
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(missing("the daemon did not open its socket within 15 s"))
}

/// A background child in its own process group, output to a log file; SIGTERM on drop,
/// SIGKILL if it has not exited 5 s later.
#[derive(Debug)]
pub struct ChildGuard {
    name: &'static str,
    child: Child,
}

impl ChildGuard {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Result<ChildGuard, Error> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).map_err(|e| Error::io("creating", log, e))?;
        let err = out.try_clone().map_err(|e| Error::io("opening", log, e))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: the closure only calls pthread_sigmask, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(cancel::restore_in_child);
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::io("starting", PathBuf::from(name), e))?;
        cancel::register_child(child.id());
        Ok(ChildGuard { name, child })
    }

    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let child = &mut self.child;
        cancel::unregister_child(child.id());
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        say(&format!(
            "demo: {} did not stop on SIGTERM; killing it",
            self.name
        ));
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::BUILD_ARGS;

    #[test]
    fn the_demo_builds_with_the_lock_file_and_shows_cargos_progress() {
        assert!(BUILD_ARGS.contains(&"--locked"), "{BUILD_ARGS:?}");
        assert!(!BUILD_ARGS.contains(&"--quiet"), "{BUILD_ARGS:?}");
    }
}
