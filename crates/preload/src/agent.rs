//! The library's life inside the program: set up when the library loads, a scanner that
//! hands new mappings to the region, and the `fork` handlers.
//!
//! There is one agent per process image. It holds the main connection (the object is
//! created on it, so the daemon frees the program's swap when that connection closes: at
//! exit, SIGKILL or `exec`), the store and the region's [`Space`].

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::client::Client;
use control::proto::ProcessReport;
use region::{Space, SpaceConfig};

use crate::remote::Remote;
use crate::settings::Settings;
use crate::{ARENA, maps, say, threads};

/// How often the scanner looks for new mappings. A mapping the program fills faster than
/// this is paged down by the evictor once found: the limit can be passed by what the
/// program allocates and touches within one period.
const SCAN_EVERY: Duration = Duration::from_millis(20);

/// How often the daemon hears the program's counters (its process view).
const REPORT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Agent {
    settings: Settings,
    /// The main connection: holds the object, carries the reports.
    main: Mutex<Client>,
    /// The program's command line, as the daemon shows it.
    command: String,
    remote: Arc<Remote>,
    space: Space,
    /// Set while a fork is being prepared: the scanner adopts nothing.
    paused: AtomicBool,
    /// Mappings the region refused (the first one logged).
    pub refused: AtomicU64,
    /// The piece whose adoption failed at the last scan: a failure counts only when the
    /// same piece fails again at the next (the program may have unmapped or shrunk it
    /// between the scan and the adoption: the heap shrinks under `free`).
    failed_last: Mutex<Option<(u64, u64)>>,
}

/// The running agent, or null (not set up, or set up failed: the program runs unpaged).
static AGENT: AtomicPtr<Agent> = AtomicPtr::new(std::ptr::null_mut());

fn agent() -> Option<&'static Agent> {
    let p = AGENT.load(Ordering::Acquire);
    // SAFETY: a non-null pointer is a leaked `Box<Agent>` that is never freed (a fork
    // child forgets it and sets a new one; no thread of the parent's exists there).
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Sets the agent up from the environment. `Ok(false)`: not asked to (no `swapctl run`).
pub fn start() -> Result<bool, (bool, String)> {
    let settings = match Settings::read(|k| std::env::var(k).ok()) {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(false),
        Err(why) => return Err((true, why)),
    };
    let strict = settings.strict;
    let agent = set_up(settings).map_err(|why| (strict, why))?;
    AGENT.store(Box::into_raw(Box::new(agent)), Ordering::Release);
    threads::spawn("swapkit-scan", scan_loop).map_err(|e| (strict, format!("scanner: {e}")))?;
    Ok(true)
}

fn set_up(settings: Settings) -> Result<Agent, String> {
    let socket = &settings.socket;
    let mut main =
        Client::connect(socket).map_err(|e| format!("no daemon at {}: {e}", socket.display()))?;
    let object = main
        .create(None)
        .map_err(|e| format!("creating the program's object: {e}"))?;
    let remote = Remote::start(socket.clone(), object).map_err(|e| format!("writer: {e}"))?;
    let cfg = SpaceConfig {
        resident_limit: settings.limit,
        ..SpaceConfig::default()
    };
    let store: Arc<dyn region::Store> = remote.clone();
    // The space's threads block every signal themselves (`region::tls::spawn_quiet`).
    let space = Space::new(store, cfg).map_err(|e| format!("userfaultfd: {e}"))?;
    Ok(Agent {
        settings,
        main: Mutex::new(main),
        command: command_line(),
        remote,
        space,
        paused: AtomicBool::new(false),
        refused: AtomicU64::new(0),
        failed_last: Mutex::new(None),
    })
}

fn scan_loop() {
    let mut reported = Instant::now() - REPORT_EVERY;
    loop {
        let Some(a) = agent() else { return };
        if !a.paused.load(Ordering::Acquire) {
            scan(a);
        }
        if reported.elapsed() >= REPORT_EVERY {
            report(a);
            reported = Instant::now();
        }
        std::thread::sleep(SCAN_EVERY);
    }
}

/// The most bytes of the command line a report carries: the daemon refuses a report whose
/// command passes [`control::proto::MAX_COMMAND_LEN`], and shows about this much.
const COMMAND_MOST: usize = 200;

/// `/proc/self/cmdline`, its arguments joined by spaces, cut to [`COMMAND_MOST`] bytes.
fn command_line() -> String {
    joined(&std::fs::read("/proc/self/cmdline").unwrap_or_default())
}

/// The NUL-separated arguments of `raw` joined by spaces, cut to [`COMMAND_MOST`] bytes at
/// a character boundary.
fn joined(raw: &[u8]) -> String {
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let mut line = words.join(" ");
    if line.len() > COMMAND_MOST {
        let mut cut = COMMAND_MOST;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

/// Tells the daemon the program's counters. A report that fails is not retried: the next
/// one carries the totals.
fn report(a: &Agent) {
    let s = a.space.stats();
    let r = ProcessReport {
        command: a.command.clone(),
        resident_pages: s.resident,
        limit_pages: s.resident_limit,
        faults: s.major_faults + s.zero_fills + s.hint_faults,
        major_faults: s.major_faults,
        pages_in: s.pages_in,
        pages_out: s.evictions_dirty,
        read_errors: s.read_errors,
    };
    let _ = a.main.lock().unwrap_or_else(|e| e.into_inner()).report(&r);
}

/// One look at the program's mappings: adopts every candidate part not adopted yet.
fn scan(a: &Agent) {
    let Ok(text) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let mut own: Vec<(u64, u64)> = ARENA.range().into_iter().collect();
    own.extend(a.space.own_memory());
    own.extend(threads::dtv_ranges());
    let mut points = threads::stack_points();
    points.extend(a.space.thread_stack_points());
    let mut failed = None;
    for v in maps::candidates(&text, a.settings.min_mapping, &own, &points) {
        if a.space.covered(v.start, v.end - v.start) {
            continue;
        }
        let Err(e) = a.space.adopt(v.start, v.end - v.start) else {
            continue;
        };
        let piece = (v.start, v.end);
        let again = *a.failed_last.lock().unwrap_or_else(|e| e.into_inner()) == Some(piece);
        if again && a.refused.fetch_add(1, Ordering::Relaxed) == 0 {
            say(&format!(
                "swapkit: not paging {:#x}-{:#x}: {e}",
                v.start, v.end
            ));
        }
        failed.get_or_insert(piece);
    }
    *a.failed_last.lock().unwrap_or_else(|e| e.into_inner()) = failed;
}

/// The fork guard between the prepare handler and the parent's (the child forgets it).
static FORK_GUARD: AtomicPtr<region::ForkGuard> = AtomicPtr::new(std::ptr::null_mut());

/// `pthread_atfork` prepare: every page with data is brought back in and eviction stops,
/// so the child, which the kernel gives the parent's memory without the region, reads
/// every byte; then the allocator's lock is taken so the child does not inherit it held.
pub extern "C" fn before_fork() {
    if let Some(a) = agent() {
        a.paused.store(true, Ordering::Release);
        let g = a.space.prepare_fork();
        if let Err(e) = g.check() {
            say(&format!(
                "swapkit: fork: {e}; the child cannot read those pages (SIGSEGV there)"
            ));
        }
        FORK_GUARD.store(Box::into_raw(Box::new(g)), Ordering::Release);
    }
    ARENA.hold();
}

/// `pthread_atfork` parent: eviction and scanning go on.
pub extern "C" fn after_fork_parent() {
    ARENA.release();
    let g = FORK_GUARD.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !g.is_null() {
        // SAFETY: set by `before_fork` from `Box::into_raw`, taken once here.
        drop(unsafe { Box::from_raw(g) });
    }
    if let Some(a) = agent() {
        a.paused.store(false, Ordering::Release);
    }
}

/// `pthread_atfork` child: the parent's agent is let go of (its threads do not exist
/// here; its connections and userfaultfd are the parent's: this process's copies are
/// closed, nothing is sent), and the child runs unpaged, its memory all in (the prepare
/// handler brought every page back) until it `exec`s, when the library loads afresh.
///
/// The child gets no agent of its own because the locks of the libraries the agent uses
/// (parking_lot's global table of parked threads among them) are copied in whatever
/// state the parent's threads held them at the fork: a new agent's threads could wait
/// for ever on a lock held by a thread that does not exist here. Most children `exec`
/// at once (shells, `subprocess`); one that does not keeps its inherited memory resident.
pub extern "C" fn after_fork_child() {
    ARENA.release();
    threads::forget_stacks();
    let g = FORK_GUARD.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !g.is_null() {
        // SAFETY: the parent's guard, copied into the child's memory; read, then leaked
        // (its drop would restart an evictor that does not exist here).
        let g = unsafe { &*g };
        if let Err(e) = g.check() {
            // Pages the parent could not bring in would read as zeroes here: they fault
            // instead, never passing zeroes off as the program's data.
            for &addr in &e.addrs {
                // SAFETY: one page of this process's memory, made inaccessible.
                unsafe { libc::mprotect(addr as *mut libc::c_void, 4096, libc::PROT_NONE) };
            }
        }
    }
    let old = AGENT.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: the leaked agent of the parent; no other thread exists in the child.
        let old = unsafe { Box::from_raw(old) };
        let Agent {
            main,
            remote,
            space,
            ..
        } = *old;
        // Taken apart without locking: the lock may have been held by a thread of the
        // parent's when it forked.
        let main = main.into_inner().unwrap_or_else(|e| e.into_inner());
        // SAFETY: closes this process's copy of the parent's main connection (the
        // parent's stays open through its own descriptor).
        unsafe { libc::close(main.as_raw_fd()) };
        std::mem::forget(main);
        remote.close_in_child();
        std::mem::forget(remote);
        space.forget_in_child();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_is_joined_and_cut_to_what_the_daemon_takes() {
        assert_eq!(joined(b"python3\0-c\0print(1)\0"), "python3 -c print(1)");
        // A long script, with a two-byte character across the cut.
        let mut raw = b"python3\0-c\0".to_vec();
        raw.extend(std::iter::repeat_n(b'x', COMMAND_MOST - 12));
        raw.extend("ééé".as_bytes());
        raw.extend(std::iter::repeat_n(b'y', 4000));
        let line = joined(&raw);
        assert!(
            line.len() <= COMMAND_MOST && line.len() >= COMMAND_MOST - 1,
            "{}",
            line.len()
        );
        assert!(line.len() <= control::proto::MAX_COMMAND_LEN);
        assert!(line.ends_with('é') || line.ends_with('x'));
    }
}
