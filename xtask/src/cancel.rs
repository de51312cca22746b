//! Ctrl-C and friends: turn SIGINT / SIGTERM / SIGHUP into a polite cancel flag, and a second
//! one into a forced exit that still undoes what matters.
//!
//! `install()` registers the three signals with `signal-hook` (the crate the daemon and the
//! TUI use too) and starts one thread that reads them off its pipe. Handlers are installed
//! with `SA_RESTART`, and the few waits that can still see `EINTR` (the io_uring reaper's)
//! retry, so no I/O fails because a signal came in.
//!
//! - The first signal sets the flag; the workloads poll it (`check()`), return
//!   [`Error::Interrupted`](crate::error::Error::Interrupted), and the guards tear everything
//!   down on the way out (loop devices detached, pager swapped off, backing files removed).
//! - A second signal means "now": the thread runs every cleanup still registered with
//!   [`on_forced_exit`], most recent first, and exits 130. Loop devices are attached with
//!   autoclear, so the kernel detaches them when the process's descriptors close.
//!
//! This module knows nothing of what is cleaned up: each owner (the workbench's directory,
//! the kernel baseline's `swapon`, the demo's children) registers its own closure and
//! forgets it again, by dropping the returned guard, once it has undone the thing itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::Error;

static CANCELLED: AtomicBool = AtomicBool::new(false);

type Cleanup = Arc<dyn Fn() + Send + Sync>;

/// The registered cleanups, oldest first, by id.
static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The demo's background children by pid, for [`register_child`].
static CHILDREN: Mutex<Vec<(u32, OnForcedExit)>> = Mutex::new(Vec::new());

/// A lock that a panic elsewhere does not make unusable: the lists stay valid whatever
/// panicked while holding them (every change is one push or one retain).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Register the signals and start the thread that handles them. Call first thing in `main`.
pub fn install() -> Result<(), Error> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Setup(format!("cannot handle signals: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                on_signal(sig);
            }
        })
        .map_err(|e| Error::Setup(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

fn on_signal(sig: i32) {
    let name = signal_name(sig);
    if !CANCELLED.swap(true, Ordering::SeqCst) {
        eprintln!("\nxtask: {name}: stopping and cleaning up (press Ctrl-C again to force)");
        return;
    }
    eprintln!("\nxtask: {name} again: undoing what is registered and exiting now");
    force_cleanup();
    std::process::exit(130);
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.to_string())
}

/// Runs every registered cleanup, most recent first (what was set up last is undone first:
/// children stopped, then kernel swap off our devices, then our files removed). The list is
/// copied out first, so a cleanup may itself take the lock.
fn force_cleanup() {
    let cleanups: Vec<Cleanup> = lock(&CLEANUPS).iter().map(|(_, c)| Arc::clone(c)).collect();
    for cleanup in cleanups.iter().rev() {
        cleanup();
    }
}

/// Has the user asked us to stop?
pub fn cancelled() -> bool {
    CANCELLED.load(Ordering::Relaxed)
}

/// `Err(Interrupted)` once the user asked us to stop: poll this in every long loop.
pub fn check() -> Result<(), Error> {
    if cancelled() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// A cleanup a forced exit runs, registered until this guard is dropped. Its owner drops it
/// once it has undone the thing itself (or knows there is nothing left to undo).
#[derive(Debug)]
#[must_use = "the cleanup is forgotten as soon as the guard is dropped"]
pub struct OnForcedExit {
    id: u64,
}

/// Register `cleanup` for a forced exit (a second Ctrl-C). It runs on the signal thread
/// while other threads may still be running: it must not wait for them or take their
/// locks, only undo something outside the process (a file, a swapon, a child).
pub fn on_forced_exit(cleanup: impl Fn() + Send + Sync + 'static) -> OnForcedExit {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&CLEANUPS).push((id, Arc::new(cleanup)));
    OnForcedExit { id }
}

impl Drop for OnForcedExit {
    fn drop(&mut self) {
        lock(&CLEANUPS).retain(|(id, _)| *id != self.id);
    }
}

/// Remember a background child a forced exit must stop with SIGTERM (it runs in its own
/// process group, so the terminal's Ctrl-C does not reach it).
pub fn register_child(pid: u32) {
    let guard = on_forced_exit(move || {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    });
    lock(&CHILDREN).push((pid, guard));
}

/// Forget it again once its guard has stopped it.
pub fn unregister_child(pid: u32) {
    let gone: Vec<_> = {
        let mut children = lock(&CHILDREN);
        let (gone, kept) = std::mem::take(&mut *children)
            .into_iter()
            .partition(|(p, _)| *p == pid);
        *children = kept;
        gone
    };
    // Dropped outside the CHILDREN lock: the guards take the CLEANUPS lock.
    drop(gone);
}

/// For `Command::pre_exec`: start the child with SIGINT/SIGTERM/SIGHUP unblocked. xtask
/// itself blocks none of them (their handlers, which `exec` resets to the default, do the
/// work), so this only matters when xtask was started with them blocked.
///
/// Only calls `pthread_sigmask`, which is async-signal-safe, as `pre_exec` requires.
pub fn restore_in_child() -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test that registers cleanups: `force_cleanup` runs all of them.
    #[test]
    fn a_forced_exit_runs_what_is_registered_newest_first_and_nothing_forgotten() {
        static ORDER: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let first = on_forced_exit(|| lock(&ORDER).push("first"));
        let forgotten = on_forced_exit(|| lock(&ORDER).push("forgotten"));
        let last = on_forced_exit(|| lock(&ORDER).push("last"));
        drop(forgotten);
        force_cleanup();
        assert_eq!(*lock(&ORDER), ["last", "first"]);
        drop((first, last));
        lock(&ORDER).clear();
        force_cleanup();
        assert!(lock(&ORDER).is_empty());
    }
}
