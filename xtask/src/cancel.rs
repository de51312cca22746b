//! Ctrl-C and friends: turn SIGINT / SIGTERM / SIGHUP into a polite cancel flag.
//!
//! `install()` blocks those signals in the calling thread before any other thread exists, so
//! every thread inherits the mask and none is ever interrupted in the middle of an I/O or while
//! holding a lock. One dedicated thread waits for them with `sigwait`:
//!
//! - the first signal sets the flag; the workloads poll it (`check()`), return
//!   [`Error::Interrupted`](crate::error::Error::Interrupted), and the guards tear everything down
//!   on the way out (loop devices detached, pager swapped off, backing files removed);
//! - a second signal means "now": the thread stops the children registered with
//!   [`register_child`], swaps off what [`register_swapon`] recorded, removes what was
//!   registered with [`register_path`] and exits 130. Loop devices are attached with autoclear, so the
//!   kernel detaches them when the process's descriptors close.
//!
//! Child processes (the demo's daemon and TUI) must get the default mask back:
//! [`restore_in_child`] does that in `pre_exec`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use crate::error::Error;

static CANCELLED: AtomicBool = AtomicBool::new(false);
static PATHS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static SWAPONS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set
}

/// Block the signals and start the waiting thread. Call first thing in `main`.
pub fn install() -> Result<(), Error> {
    let set = signals();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::Setup(format!("cannot block signals: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || wait_loop(set))
        .map_err(|e| Error::Setup(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

fn wait_loop(set: SigSet) {
    loop {
        let Ok(sig) = set.wait() else { continue };
        if !CANCELLED.swap(true, Ordering::SeqCst) {
            eprintln!("\nxtask: {sig}: stopping and cleaning up (press Ctrl-C again to force)");
            continue;
        }
        eprintln!("\nxtask: {sig} again: removing backing files and exiting now");
        force_cleanup();
        std::process::exit(130);
    }
}

/// Undo what was registered, most recent first: kernel swap on our devices off, then our
/// files removed. Loop devices go with the process (autoclear).
fn force_cleanup() {
    let children = match CHILDREN.lock() {
        Ok(c) => c.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for pid in children {
        // Our own background children (the demo's daemon and load), by pid.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    let swapons = match SWAPONS.lock() {
        Ok(p) => p.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for p in swapons.iter().rev() {
        let _ = crate::kernel::swapoff(p);
    }
    let paths = match PATHS.lock() {
        Ok(p) => p.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for p in paths.iter().rev() {
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
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

/// Remember a file or directory a forced exit must remove.
pub fn register_path(p: &Path) {
    if let Ok(mut v) = PATHS.lock() {
        v.push(p.to_path_buf());
    }
}

/// Forget it again once the guard that owns it removed it.
pub fn unregister_path(p: &Path) {
    if let Ok(mut v) = PATHS.lock() {
        v.retain(|q| q != p);
    }
}

/// Remember a device we turned the kernel's swap on for: a forced exit swaps it off.
pub fn register_swapon(p: &Path) {
    if let Ok(mut v) = SWAPONS.lock() {
        v.push(p.to_path_buf());
    }
}

pub fn unregister_swapon(p: &Path) {
    if let Ok(mut v) = SWAPONS.lock() {
        v.retain(|q| q != p);
    }
}

/// Remember a background child a forced exit must stop (it runs in its own process group,
/// so the terminal's Ctrl-C does not reach it).
pub fn register_child(pid: u32) {
    if let Ok(mut v) = CHILDREN.lock() {
        v.push(pid);
    }
}

pub fn unregister_child(pid: u32) {
    if let Ok(mut v) = CHILDREN.lock() {
        v.retain(|&p| p != pid);
    }
}

/// For `Command::pre_exec`: give the child the default signal mask back.
///
/// Only calls `pthread_sigmask`, which is async-signal-safe, as `pre_exec` requires.
pub fn restore_in_child() -> std::io::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&signals()), None).map_err(std::io::Error::from)
}
