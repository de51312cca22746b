//! The library's own threads: started with every signal blocked (a signal the program
//! sends itself is the program's, and must land on one of its own threads), and each
//! noting an address on its stack and where its DTV is (glibc keeps it in the program's
//! heap), so the scanner never hands memory the library runs on to the region (a thread
//! faulting on it would wait for the handlers, which may be waiting for it).

use std::sync::atomic::{AtomicU64, Ordering};

/// Most threads of the library's own noted at once (handlers, evictor, writers, scanner).
const MOST: usize = 64;

/// Addresses on the library's threads' stacks; 0 = free slot. Fixed and lock-free: noted
/// from the threads themselves, read by the scanner.
static STACK_POINTS: [AtomicU64; MOST] = [const { AtomicU64::new(0) }; MOST];

/// The library's threads' DTVs (`region::tls`): glibc keeps them in the program's heap.
static DTVS: [(AtomicU64, AtomicU64); MOST] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; MOST];

/// Notes the calling thread's DTV range.
pub fn note_dtv() {
    let Some((lo, hi)) = region::tls::thread_dtv_range() else {
        return;
    };
    for (a, b) in &DTVS {
        if a.compare_exchange(0, lo, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            b.store(hi, Ordering::Release);
            return;
        }
    }
}

/// The DTV ranges noted so far.
pub fn dtv_ranges() -> Vec<(u64, u64)> {
    DTVS.iter()
        .map(|(a, b)| (a.load(Ordering::Acquire), b.load(Ordering::Acquire)))
        .filter(|&(a, b)| a != 0 && b > a)
        .collect()
}

/// Notes an address on the calling thread's stack.
pub fn note_stack() {
    let here = 0u8;
    let at = std::ptr::addr_of!(here) as u64;
    for slot in &STACK_POINTS {
        if slot
            .compare_exchange(0, at, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// The addresses noted so far.
pub fn stack_points() -> Vec<u64> {
    STACK_POINTS
        .iter()
        .map(|s| s.load(Ordering::Acquire))
        .filter(|&a| a != 0)
        .collect()
}

/// Forgets every noted stack and DTV (in a fork child: those threads do not exist there).
pub fn forget_stacks() {
    for s in &STACK_POINTS {
        s.store(0, Ordering::Release);
    }
    for (a, b) in &DTVS {
        a.store(0, Ordering::Release);
        b.store(0, Ordering::Release);
    }
}

/// Starts a library thread named `name` running `f`: signals blocked, stack noted.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    region::tls::spawn_quiet(name.to_owned(), move || {
        note_stack();
        note_dtv();
        f()
    })
    .map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_library_thread_blocks_every_signal_and_notes_its_stack() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn("t", move || {
            // SAFETY: reads the calling thread's mask into a local set.
            let blocked = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
                libc::sigismember(&set, libc::SIGTERM) == 1
                    && libc::sigismember(&set, libc::SIGUSR1) == 1
            };
            let here = 0u8;
            let _ = tx.send((blocked, std::ptr::addr_of!(here) as u64));
        })
        .unwrap();
        let (blocked, sp) = rx.recv().unwrap();
        assert!(blocked);
        assert!(
            stack_points().iter().any(|&a| a.abs_diff(sp) < 64 << 10),
            "{sp:#x} {:?}",
            stack_points()
        );
        // The caller's own mask is as it was.
        // SAFETY: as above.
        let caller_blocked = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
            libc::sigismember(&set, libc::SIGTERM) == 1
        };
        assert!(!caller_blocked);
    }
}
