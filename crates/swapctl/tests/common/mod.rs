//! What the end-to-end tests share: swap devices (loop devices, or files when loop devices
//! are unavailable), a real `swapctl daemon` process, and a way to run `swapctl` against it.
//! Everything is torn down by guards, also when a test panics.

#![allow(dead_code, clippy::unwrap_used)]

/// The pseudo-terminal driver, shared with xtask's demo test.
#[allow(unused_imports)] // not every test file drives a terminal
pub use testkit::pty;
pub mod users;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use device::loopdev::{self, LoopDevice, LoopOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_swapctl");

/// `snap!(name, text)`: an insta snapshot under the top-level `snapshots/swapctl/`, named
/// `name` alone (test files take it with `#[macro_use] mod common;`).
#[allow(unused_macros)]
macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots/swapctl"),
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// Swap devices for one test: backing files named `swapkit-*` in a temp dir, each behind a
/// loop device when we can attach one. Dropping it detaches the loop devices.
pub struct Devices {
    pub dir: tempfile::TempDir,
    pub paths: Vec<PathBuf>,
    loops: Vec<LoopDevice>,
    pub loop_backed: bool,
}

impl Devices {
    /// `sizes` in bytes, one device each.
    pub fn new(sizes: &[u64]) -> Devices {
        let dir = tempfile::Builder::new()
            .prefix("swapkit-e2e")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let use_loops = match loopdev::available() {
            Ok(()) => true,
            Err(why) => {
                eprintln!("loop devices unavailable ({why}); using plain files");
                false
            }
        };
        let mut d = Devices {
            dir,
            paths: Vec::new(),
            loops: Vec::new(),
            loop_backed: use_loops,
        };
        for (i, size) in sizes.iter().enumerate() {
            let file = d.dir.path().join(format!("swapkit-dev{i}.img"));
            std::fs::File::create(&file)
                .unwrap()
                .set_len(*size)
                .unwrap();
            if use_loops {
                let opts = LoopOptions {
                    direct_io: true,
                    block_size: 4096,
                    autoclear: true,
                    read_only: false,
                };
                match LoopDevice::attach(&file, &opts) {
                    Ok(l) => {
                        d.paths.push(l.path().to_owned());
                        d.loops.push(l);
                        continue;
                    }
                    Err(e) => eprintln!(
                        "{}: cannot attach a loop device ({e}); using the file",
                        file.display()
                    ),
                }
            }
            d.paths.push(file);
        }
        d
    }

    pub fn path(&self, i: usize) -> &str {
        self.paths[i].to_str().unwrap()
    }

    /// Replace device paths by `devN` so snapshots do not depend on which loop devices (or
    /// files) we got. Columns are then separated by one space: alignment depends on the
    /// path lengths, and the layout itself is snapshot-tested from fixtures.
    pub fn redact(&self, text: &str) -> String {
        let mut t = text.to_owned();
        // Longest first: /dev/loop1 is a prefix of /dev/loop10.
        let mut order: Vec<usize> = (0..self.paths.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(self.path(*i).len()));
        for i in order {
            t = t.replace(self.path(i), &format!("dev{i}"));
        }
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect()
    }
}

impl Drop for Devices {
    /// Detach, then wait (10 s at most) until the kernel has really let go: a daemon's
    /// io_uring ring releases its registered files a moment after the process exits, and
    /// until then an autoclear loop device stays attached.
    fn drop(&mut self) {
        for l in self.loops.drain(..) {
            let _ = l.detach();
        }
        let dir = self.dir.path().to_owned();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let ours = loopdev::list()
                .map(|l| l.iter().any(|i| i.backing_file.starts_with(&dir)))
                .unwrap_or(false);
            if !ours {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "loop devices of {} still attached after 10 s",
            dir.display()
        );
    }
}

/// A `swapctl daemon` child on a socket in its own temp dir; killed and reaped on drop.
/// Its log (stderr) goes to a file, never to the terminal: a passing test prints none of
/// its warnings (a test of failures makes many), and a failing one shows it as it unwinds.
pub struct Daemon {
    pub child: Option<Child>,
    pub socket: PathBuf,
    /// The daemon's stderr.
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        Daemon::start_with_config("", extra)
    }

    pub fn start_with_config(config: &str, extra: &[&str]) -> Daemon {
        Daemon::start_opts(config, extra, None, None)
    }

    /// With its log (stderr) in `log` (else `daemon.log` beside the socket), and with
    /// `nofile` as both its open-file limits.
    pub fn start_opts(
        config: &str,
        extra: &[&str],
        log: Option<&Path>,
        nofile: Option<u64>,
    ) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("swapkit-sock")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("swapctl.sock");
        let cfg = dir.path().join("swapctl.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(BIN);
        child
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .arg("--config")
            .arg(&cfg)
            .args(extra)
            .stdin(Stdio::null());
        let mut command = child;
        let log = log.map_or_else(|| dir.path().join("daemon.log"), Path::to_owned);
        command.stderr(std::fs::File::create(&log).unwrap());
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    // No core files in the crate directory from tests that send fatal signals.
                    let none = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::setrlimit(libc::RLIMIT_CORE, &none);
                    if let Some(n) = nofile {
                        let lim = libc::rlimit {
                            rlim_cur: n,
                            rlim_max: n,
                        };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().unwrap();
        let mut d = Daemon {
            child: Some(child),
            socket,
            log,
            dir,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited at start: {status}\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the daemon did not listen on {}", self.socket.display());
    }

    pub fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// What the daemon has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Open descriptors and resident memory (KiB) of the daemon, from /proc.
    pub fn fds_and_rss(&self) -> (usize, u64) {
        let pid = self.pid();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (fds, rss)
    }

    /// Whether the daemon still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Wait at most `limit` for the daemon to exit.
    pub fn wait_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `swapctl ARGS` against this daemon.
    pub fn run(&self, args: &[&str]) -> Output {
        swapctl_env(args, &self.socket)
    }

    /// Like `run`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "swapctl {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(args)
            .env("SWAPKIT_SOCKET", &self.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
    }

    /// Wait for the daemon to exit (after a signal), at most 60 s.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + Duration::from_secs(60);
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return s;
            }
            assert!(Instant::now() < end, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    /// SIGTERM first, so the daemon closes its devices itself (the kernel releases a killed
    /// process's io_uring files only later, which keeps loop devices attached a while);
    /// SIGKILL if it has not exited after 10 s. When the test failed, the daemon's log is
    /// printed (on the test's own stderr, which the harness shows with the failure).
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- the daemon's log ({}) ---\n{}--- end of the daemon's log ---",
                self.log.display(),
                self.log_text()
            );
        }
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn swapctl_env(args: &[&str], socket: &Path) -> Output {
    // `loop attach` records its devices beside the socket, not in /run/swapkit.
    let state = socket.parent().unwrap_or(Path::new("/nonexistent"));
    Command::new(BIN)
        .args(args)
        .env("SWAPKIT_SOCKET", socket)
        .env("SWAPKIT_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
