//! The daemon's signals, with `signal-hook`: no signal short of SIGKILL leaves the socket file
//! behind.
//!
//! - SIGTERM, SIGINT and every other signal whose default is to terminate (SIGQUIT, SIGALRM,
//!   SIGXCPU, ...) trigger the orderly [`Shutdown`];
//! - SIGHUP asks for a reload of the config file (the accept loop does it);
//! - SIGUSR1, SIGUSR2 and SIGPIPE are ignored;
//! - the fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP), real or sent
//!   with `kill`, cannot be survived: a last-resort handler unlinks the socket and lets the
//!   signal's default action run.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::signal::*;
use signal_hook::iterator::Signals;

use super::Shutdown;
use super::log::{log_debug, log_info};

/// Signals that end the daemon the orderly way.
const STOP: &[i32] = &[
    SIGTERM,
    SIGINT,
    SIGQUIT,
    SIGALRM,
    SIGVTALRM,
    SIGPROF,
    SIGXCPU,
    SIGXFSZ,
    SIGIO,
    libc::SIGPWR,
    libc::SIGSTKFLT,
];
/// Signals that are ignored.
const IGNORED: &[i32] = &[SIGUSR1, SIGUSR2, SIGPIPE];
/// Signals that cannot be survived; the socket is unlinked before the default action.
const FATAL: &[i32] = &[SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP];

/// The socket's path for the fatal-signal handler, set once before the handler exists.
static SOCKET: OnceLock<CString> = OnceLock::new();

/// Install every handler and start the thread that turns signals into `shutdown` and
/// `reload`. Call it before binding `socket`.
pub fn install(shutdown: Shutdown, reload: Arc<AtomicBool>, socket: &Path) -> std::io::Result<()> {
    if let Ok(c) = CString::new(socket.as_os_str().as_bytes()) {
        let _ = SOCKET.set(c);
    }
    for &sig in FATAL {
        // SAFETY: the action only calls unlink, signal and raise, all async-signal-safe, and
        // reads a OnceLock that was set before the handler was installed.
        unsafe { signal_hook_registry::register_unchecked(sig, fatal) }?;
    }
    let mut wanted = vec![SIGHUP];
    wanted.extend_from_slice(STOP);
    wanted.extend_from_slice(IGNORED);
    let mut signals = Signals::new(&wanted)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let name = signal_hook::low_level::signal_name(sig).unwrap_or("signal");
                if sig == SIGHUP {
                    log_info!("{name}: reloading the config file");
                    reload.store(true, Ordering::SeqCst);
                } else if IGNORED.contains(&sig) {
                    log_debug!("{name}: ignored");
                } else {
                    log_info!("{name}: shutting down");
                    shutdown.trigger();
                }
            }
        })?;
    Ok(())
}

fn fatal(info: &libc::siginfo_t) {
    if let Some(path) = SOCKET.get() {
        // SAFETY: unlink of a NUL-terminated path that lives for the whole process.
        unsafe { libc::unlink(path.as_ptr()) };
    }
    // SAFETY: back to the default action and re-raise: async-signal-safe calls only.
    unsafe {
        libc::signal(info.si_signo, libc::SIG_DFL);
        libc::raise(info.si_signo);
    }
}
