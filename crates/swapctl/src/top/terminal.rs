//! The terminal's raw mode and alternate screen, entered once and always left again: on
//! return, on error, on panic (a panic hook) and on SIGTERM / SIGINT / SIGHUP (a flag the event
//! loop checks).

use std::io::{self, Stdout, stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Whether the terminal is in raw mode on the alternate screen (so restoring has work to do).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by the signal handler; the event loop stops when it sees it.
static STOP: AtomicBool = AtomicBool::new(false);
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
    STOP.load(Ordering::SeqCst)
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do here.
    STOP.store(true, Ordering::SeqCst);
}

const SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Catches the stop signals while the TUI runs, and puts the previous handlers back on drop.
///
/// The first signal only sets a flag: the event loop notices it within a tick and leaves
/// through the normal path, restoring the terminal. `SA_RESETHAND` makes a second signal act as
/// it would without us, so a TUI stuck in a hung daemon call can still be killed.
#[derive(Debug)]
pub struct SignalGuard {
    previous: Vec<(Signal, SigAction)>,
}

impl SignalGuard {
    pub fn install() -> io::Result<Self> {
        STOP.store(false, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESETHAND,
            SigSet::empty(),
        );
        let mut guard = Self {
            previous: Vec::new(),
        };
        for signal in SIGNALS {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            let previous = unsafe { sigaction(signal, &action) }.map_err(io::Error::from)?;
            guard.previous.push((signal, previous));
        }
        Ok(guard)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (signal, previous) in self.previous.drain(..) {
            // SAFETY: puts back the handler that was installed before ours.
            let _ = unsafe { sigaction(signal, &previous) };
        }
    }
}
