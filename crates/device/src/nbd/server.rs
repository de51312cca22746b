//! NBD servers for tests and benches: `nbdkit` or `qemu-nbd` as child processes, on a Unix
//! socket or loopback TCP (optionally inside a network namespace), killed on drop.
//!
//! Not used by the areas themselves: swapkit runs no server of its own. It lives here so
//! the device tests, the pager tests and `cargo xtask bench --nbd` share one way of starting
//! and removing servers.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What serves the export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `nbdkit memory SIZE`: RAM of the server process, gone when it exits.
    NbdkitMemory { bytes: u64 },
    /// `nbdkit file FILE`: persistent.
    NbdkitFile { file: PathBuf },
    /// `qemu-nbd -f raw FILE`: persistent.
    QemuNbd { file: PathBuf },
}

/// Where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// A running server; killed (and its socket removed) on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    backend: Backend,
    listen: Listen,
    netns: Option<String>,
    export: String,
}

/// Whether `program` can be run here.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback TCP port free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `backend` listening on `listen`, exporting `export`, inside network namespace
    /// `netns` when given, and waits (up to 10 s) until it accepts connections.
    pub fn start(
        backend: Backend,
        listen: Listen,
        export: &str,
        netns: Option<&str>,
    ) -> io::Result<Server> {
        let mut server = Server {
            child: None,
            backend,
            listen,
            netns: netns.map(str::to_owned),
            export: export.to_owned(),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        if let Listen::Unix(p) = &self.listen {
            let _ = std::fs::remove_file(p);
        }
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c
            }
            None => Command::new("true"),
        };
        let program = match self.backend {
            Backend::QemuNbd { .. } => "qemu-nbd",
            _ => "nbdkit",
        };
        if self.netns.is_some() {
            cmd.arg(program);
        } else {
            cmd = Command::new(program);
        }
        match (&self.backend, &self.listen) {
            (Backend::QemuNbd { file }, listen) => {
                cmd.args(["-f", "raw", "-t", "--shared=16", "--cache=none", "-x"]);
                cmd.arg(&self.export);
                match listen {
                    Listen::Unix(p) => cmd.arg("-k").arg(p),
                    Listen::Tcp(a) => cmd
                        .arg("-b")
                        .arg(a.ip().to_string())
                        .arg("-p")
                        .arg(a.port().to_string()),
                };
                cmd.arg(file);
            }
            (backend, listen) => {
                cmd.args(["--foreground", "--exit-with-parent", "-e"]);
                cmd.arg(&self.export);
                match listen {
                    Listen::Unix(p) => cmd.arg("-U").arg(p),
                    Listen::Tcp(a) => cmd
                        .arg("-i")
                        .arg(a.ip().to_string())
                        .arg("-p")
                        .arg(a.port().to_string()),
                };
                match backend {
                    Backend::NbdkitMemory { bytes } => {
                        cmd.arg("memory").arg(bytes.to_string());
                    }
                    Backend::NbdkitFile { file } => {
                        cmd.arg("file").arg(file);
                    }
                    Backend::QemuNbd { .. } => {}
                }
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the server dies with the thread that started
        // it, so a test or bench that is killed leaves no server behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn()?);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(io::Error::other(format!("NBD server exited: {status}")));
            }
            if self.netns.is_some() || self.accepts() {
                // Inside a namespace we cannot connect from here: give it a moment.
                if self.netns.is_some() {
                    std::thread::sleep(Duration::from_millis(300));
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "NBD server did not start listening",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn accepts(&self) -> bool {
        match &self.listen {
            Listen::Unix(p) => UnixStream::connect(p).is_ok(),
            Listen::Tcp(a) => TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok(),
        }
    }

    /// The URI of the export.
    pub fn uri(&self) -> String {
        match &self.listen {
            Listen::Unix(p) => format!("nbd+unix:///{}?socket={}", self.export, p.display()),
            Listen::Tcp(a) => format!("nbd://{a}/{}", self.export),
        }
    }

    /// Stops the server (SIGKILL: as a crash would), leaving its backing file.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Listen::Unix(p) = &self.listen {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Starts it again the same way (a persistent backend comes back with its data).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// The socket, for a Unix listener.
    pub fn socket(&self) -> Option<&Path> {
        match &self.listen {
            Listen::Unix(p) => Some(p),
            Listen::Tcp(_) => None,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
