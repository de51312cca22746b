//! The terminal's raw mode and alternate screen, entered once and always left again: on
//! return, on error, on panic (a panic hook) and on SIGTERM / SIGINT / SIGHUP (a flag the event
//! loop checks). [`gone`] tells the event loop when the terminal itself went away (hung up,
//! closed), whether or not a SIGHUP reached us.

use std::io::{self, Stdout, stdout};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Once};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};

/// Whether the terminal is in raw mode on the alternate screen (so restoring has work to do).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by the signal handlers; the event loop stops when it sees it.
static STOP_FLAG: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);
static PANIC_HOOK: Once = Once::new();

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Owns the terminal while the TUI runs; dropping it restores the terminal.
#[derive(Debug)]
pub struct TerminalGuard {
    terminal: Term,
}

impl TerminalGuard {
    /// Raw mode, alternate screen, hidden cursor. A failure half-way restores what was done.
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = execute!(stdout(), EnterAlternateScreen, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())));
        match entered {
            Ok(terminal) => Ok(Self { terminal }),
            Err(err) => {
                restore();
                Err(err)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Term {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave raw mode and the alternate screen, show the cursor. Safe to call twice; errors are
/// ignored because there is nothing better to do with them on the way out.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), LeaveAlternateScreen, Show);
    }
}

/// A panic hook that restores the terminal before the previous hook prints the panic, so the
/// message lands on a sane screen. Installed once per process, whatever the number of runs.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Whether SIGTERM, SIGINT or SIGHUP arrived since [`SignalGuard::install`].
pub fn stop_requested() -> bool {
    STOP_FLAG.load(Ordering::SeqCst)
}

const SIGNALS: [i32; 3] = [SIGTERM, SIGINT, SIGHUP];

/// Catches the stop signals while the TUI runs (with `signal-hook`), and takes its handlers
/// away on drop.
///
/// The first signal only sets a flag: the event loop notices it within a tick and leaves
/// through the normal path, restoring the terminal. A second one, while the flag is still set,
/// exits at once with status 1 (after restoring what it can), so a TUI stuck somewhere can
/// still be stopped without SIGKILL.
#[derive(Debug)]
pub struct SignalGuard {
    ids: Vec<signal_hook::SigId>,
}

impl SignalGuard {
    pub fn install() -> io::Result<Self> {
        STOP_FLAG.store(false, Ordering::SeqCst);
        let mut guard = Self { ids: Vec::new() };
        for signal in SIGNALS {
            // Registered first, so it sees the flag as the previous signal left it.
            guard
                .ids
                .push(signal_hook::flag::register_conditional_shutdown(
                    signal,
                    1,
                    Arc::clone(&STOP_FLAG),
                )?);
            guard
                .ids
                .push(signal_hook::flag::register(signal, Arc::clone(&STOP_FLAG))?);
        }
        Ok(guard)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The terminal crossterm reads keys from: stdin when it is a terminal, else `/dev/tty`.
#[derive(Debug)]
pub enum Tty {
    Stdin,
    Opened(std::fs::File),
    /// No terminal to watch (then the event loop's own errors end it).
    None,
}

impl Tty {
    pub fn open() -> Tty {
        use std::io::IsTerminal;
        if io::stdin().is_terminal() {
            Tty::Stdin
        } else {
            std::fs::File::open("/dev/tty").map_or(Tty::None, Tty::Opened)
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            // SAFETY: fd 0 stays open for the whole process: nothing here closes stdin.
            Tty::Stdin => Some(unsafe { BorrowedFd::borrow_raw(io::stdin().as_raw_fd()) }),
            Tty::Opened(f) => Some(f.as_fd()),
            Tty::None => None,
        }
    }

    /// Whether the terminal went away: its other side closed (a hang-up), so reads would see
    /// EOF or EIO forever. Checked without waiting.
    pub fn gone(&self) -> bool {
        let Some(fd) = self.fd() else { return false };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => false,
            Ok(_) => fds[0].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            }),
            Err(_) => false,
        }
    }
}

/// Whether an I/O error on the terminal means it is gone (EIO after a hang-up, a closed
/// pipe, ENXIO/EBADF on a revoked tty), rather than a passing error.
pub fn is_gone_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO) | Some(libc::ENXIO) | Some(libc::EBADF) | Some(libc::EPIPE)
    ) || e.kind() == io::ErrorKind::UnexpectedEof
        || e.kind() == io::ErrorKind::BrokenPipe
}
