//! A program in a real pseudo-terminal: what it drew, keys sent to it, and whether it left
//! the terminal as it found it. Shared by the `top` PTY tests and the demo's.

#![allow(clippy::unwrap_used)] // test support: a panic is the failure report

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{LocalFlags, tcgetattr};

/// How long to wait for the child before declaring it hung (not a speed assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A child TUI on the slave side of a fresh pty (80x24 unless asked), and everything it
/// wrote.
#[derive(Debug)]
pub struct PtyChild {
    pub child: Child,
    master: Option<File>,
    slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
    /// Tells the reader thread to let go of its master descriptor ([`PtyChild::hang_up`]).
    stop_reading: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl PtyChild {
    /// Runs `command` on the slave side of a fresh 80x24 pty, as its controlling terminal.
    /// `None` (after saying why) where no pseudo-terminal can be had, as in some sandboxes.
    pub fn spawn(command: Command) -> Option<Self> {
        PtyChild::spawn_sized(command, 24, 80)
    }

    /// As [`PtyChild::spawn`], on a pty of `rows` x `cols`.
    pub fn spawn_sized(mut command: Command, rows: u16, cols: u16) -> Option<Self> {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = match openpty(Some(&size), None) {
            Ok(pty) => pty,
            Err(err) => {
                eprintln!("skipped: no pseudo-terminal here (openpty: {err})");
                return None;
            }
        };
        command
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        // SAFETY: between fork and exec the closure calls only setsid and ioctl, both
        // async-signal-safe; it makes the pty the child's controlling terminal, as a shell would.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // The child must not inherit the master: it would keep the terminal open after we
        // close it (hang_up).
        nix::fcntl::fcntl(
            &pty.master,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
        let child = command.spawn().unwrap();
        let master = File::from(pty.master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&output);
        let stop_reading = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stop_reading);
        let reader = thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // Ends with EIO once every slave descriptor is closed, or when told to stop
            // (polled, so the descriptor can be let go of while the child still runs).
            while !stop.load(Ordering::SeqCst) {
                let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(50u16)) {
                    Ok(0) => continue,
                    Ok(_) => {}
                    Err(_) => break,
                }
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
        Some(Self {
            child,
            master: Some(master),
            slave: pty.slave,
            output,
            stop_reading,
            reader: Some(reader),
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// The end of the output, escaped, for failure messages.
    pub fn tail(&self) -> String {
        let text = self.text();
        let start = text.len().saturating_sub(1500);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("{:?}", &text[start..])
    }

    /// Wait until the screen shows all of `needles`.
    pub fn wait_for(&mut self, needles: &[&str]) {
        let start = Instant::now();
        while !needles.iter().all(|n| self.text().contains(n)) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("child exited early ({status}): {}", self.tail());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "never drew {needles:?}: {}",
                self.tail()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.master.as_mut().unwrap().write_all(bytes).unwrap();
    }

    /// Close the terminal, as a terminal emulator's window closing does: every master
    /// descriptor goes, so the kernel hangs up the slave (SIGHUP to the session, EIO or EOF
    /// on reads).
    pub fn hang_up(&mut self) {
        self.stop_reading.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        drop(self.master.take());
    }

    /// Wait at most `limit` for the child to exit; `None` if it still runs (it is killed).
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("child did not exit: {}", self.tail());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Cooked mode again (canonical input, echo), and the main screen and cursor restored
    /// after the last time the TUI took the alternate screen.
    pub fn assert_restored(&self) {
        // The child has exited, but what it wrote last may still sit in the pty on its way to
        // the reader thread: give it time to arrive before reading the byte stream.
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            let text = self.text();
            let restored = text.rfind("\x1b[?1049h").is_some_and(|at| {
                text[at..].contains("\x1b[?1049l") && text[at..].contains("\x1b[?25h")
            });
            if restored {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let termios = tcgetattr(self.slave.as_fd()).unwrap();
        assert!(
            termios
                .local_flags
                .contains(LocalFlags::ICANON | LocalFlags::ECHO),
            "terminal left in raw mode: {:?}",
            termios.local_flags
        );
        let text = self.text();
        let entered = text
            .rfind("\x1b[?1049h")
            .expect("never entered the alternate screen");
        let after = &text[entered..];
        assert!(after.contains("\x1b[?1049l"), "alternate screen not left");
        assert!(after.contains("\x1b[?25h"), "cursor not shown again");
    }
}
