//! NBD servers for tests and benches: `nbdkit` or `qemu-nbd` as child processes, on a Unix
//! socket or loopback TCP (optionally inside a network namespace), killed on drop; and
//! [`DelayRelay`], a TCP relay that adds latency.
//!
//! Not used by the areas themselves: swapkit runs no server of its own. It lives here so
//! the device tests, the pager tests and `cargo xtask bench --nbd` share one way of starting
//! and removing servers.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What serves the export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `nbdkit memory SIZE`: RAM of the server process, gone when it exits.
    NbdkitMemory { bytes: u64 },
    /// `nbdkit file FILE`: persistent.
    NbdkitFile { file: PathBuf },
    /// `nbdkit file FILE` behind its `error` filter: every read answers `EIO` while the
    /// file `trigger` exists (writes always work).
    NbdkitFileReadErrors { file: PathBuf, trigger: PathBuf },
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
    /// TLS with a pre-shared key: (user name, PSK file). nbdkit only.
    tls: Option<(String, PathBuf)>,
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

/// Why remote areas cannot be served here with `programs` (libnbd or one of them missing),
/// naming the package to install; `None` when they can. Tests skip with it, the bench
/// refuses with it.
pub fn missing(programs: &[&str]) -> Option<String> {
    if !super::available() {
        return Some("libnbd.so.0 is missing (apt-get install libnbd0)".into());
    }
    programs.iter().find(|p| !have(p)).map(|p| {
        let package = if *p == "qemu-nbd" { "qemu-utils" } else { p };
        format!("{p} is missing (apt-get install {package})")
    })
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
            tls: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `nbdkit --tls=require` with the PSK file `psk` (lines `user:hexkey`); the URI is
    /// `nbds://USER@...?tls-psk-file=PSK`.
    pub fn start_tls(
        backend: Backend,
        listen: Listen,
        user: &str,
        psk: &Path,
    ) -> io::Result<Server> {
        let mut server = Server {
            child: None,
            backend,
            listen,
            netns: None,
            export: String::new(),
            tls: Some((user.to_owned(), psk.to_owned())),
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
                if let Some((_, psk)) = &self.tls {
                    cmd.arg("--tls=require")
                        .arg(format!("--tls-psk={}", psk.display()));
                }
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
                    Backend::NbdkitFileReadErrors { file, trigger } => {
                        cmd.arg("--filter=error").arg("file").arg(file);
                        cmd.args(["error=EIO", "error-pread-rate=100%"]);
                        cmd.arg(format!("error-file={}", trigger.display()));
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
        let (s, user, tls) = match &self.tls {
            Some((user, psk)) => (
                "s",
                format!("{user}@"),
                format!("tls-psk-file={}", psk.display()),
            ),
            None => ("", String::new(), String::new()),
        };
        match &self.listen {
            Listen::Unix(p) => {
                let amp = if tls.is_empty() { "" } else { "&" };
                format!(
                    "nbd{s}+unix:///{}?socket={}{amp}{tls}",
                    self.export,
                    p.display()
                )
            }
            Listen::Tcp(a) => {
                let q = if tls.is_empty() { "" } else { "?" };
                format!("nbd{s}://{user}{a}/{}{q}{tls}", self.export)
            }
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

/// A TCP relay on loopback that holds every chunk from the server `delay` before passing
/// it on, so each round trip takes `delay` longer: added network latency where the kernel
/// has no `sch_netem`. Stops accepting
/// on drop; open connections end when either side closes.
#[derive(Debug)]
pub struct DelayRelay {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DelayRelay {
    /// Listens on a free loopback port and relays each connection to `target`.
    pub fn start(target: SocketAddr, delay: Duration) -> io::Result<DelayRelay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        std::thread::spawn(move || relay_one(client, target, delay));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(DelayRelay {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `target` (the server may be restarting: a few tries) and pumps both ways.
fn relay_one(client: TcpStream, target: SocketAddr, delay: Duration) {
    let mut server = None;
    for _ in 0..50 {
        if let Ok(s) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
            server = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(server) = server else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Requests pass at once, replies `delay` late: each round trip is `delay` longer, as
    // with `tc netem delay` on the server's side of the link.
    let up = std::thread::spawn(move || pump(client, server, Duration::ZERO));
    pump(s2, c2, delay);
    let _ = up.join();
}

/// Waits until `due`: sleeps while far from it, then spins, since a sleep of 100 µs
/// overshoots by about half as much again here.
fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(150));
        } else {
            std::thread::yield_now();
        }
    }
}

/// Copies `from` to `to`, each chunk `delay` after it arrived (a reader and a writer
/// thread, so chunks arriving meanwhile are not delayed twice).
fn pump(mut from: TcpStream, to: TcpStream, delay: Duration) {
    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Vec<u8>)>();
    let mut to_w = to;
    let writer = std::thread::spawn(move || {
        for (at, chunk) in rx {
            wait_until(at + delay);
            if to_w.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to_w.shutdown(Shutdown::Both);
    });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = from.shutdown(Shutdown::Both);
    let _ = writer.join();
}
