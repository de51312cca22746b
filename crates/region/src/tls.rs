//! Where glibc keeps the calling thread's dynamic thread vector (DTV): the small array
//! every access to a shared library's thread-local variables reads first
//! (`__tls_get_addr`). glibc allocates it with the program's `malloc`, so it lives in the
//! program's heap, among pages a space may adopt. A space's own thread touching its DTV
//! on a page the space evicted would fault and wait for a handler, which may be itself: so
//! a space notes its threads' DTVs ([`crate::Space::own_memory`]) for whoever adopts
//! memory to leave out.
//!
//! The layout is glibc's (`sysdeps/x86_64/nptl/tls.h`, `elf/dl-tls.c`): the thread
//! pointer (`%fs` base) points at the TCB, whose second word is the DTV pointer; the DTV
//! was `calloc(len + 2, 16)` and the pointer is to its second entry, the first holding
//! `len`. Only x86_64 is read; elsewhere nothing is noted (documented as a limit).
//!
//! Also here: [`spawn_quiet`], how a space's threads (and the preload's) start.

/// The page-rounded address range `(start, end)` of the calling thread's DTV allocation,
/// when it can be read here.
pub fn thread_dtv_range() -> Option<(u64, u64)> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    {
        let dtv: u64;
        // SAFETY: reads the second word of the thread's TCB, which glibc's x86_64 TLS ABI
        // puts at %fs:8 in every thread; it changes nothing.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[8]", out(reg) dtv, options(nostack, readonly, preserves_flags));
        }
        if dtv < 16 || !dtv.is_multiple_of(8) {
            return None;
        }
        // SAFETY: `dtv` points one entry into glibc's live DTV allocation, whose first
        // entry (16 bytes before) holds the number of entries.
        let len = unsafe { std::ptr::read_volatile((dtv - 16) as *const u64) };
        if len == 0 || len > 1 << 20 {
            return None;
        }
        let start = dtv - 16;
        let end = dtv + (len + 1) * 16;
        const PAGE: u64 = device::PAGE_SIZE as u64;
        Some((start / PAGE * PAGE, end.div_ceil(PAGE) * PAGE))
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Starts a thread with every signal blocked (the caller's mask is put back after): a
/// signal of the program must never be delivered to one of ours, whose code it does not
/// know about. Faults the kernel raises synchronously (a bad access) still come through.
/// The space's threads start this way, and so do the preload's own.
pub fn spawn_quiet(
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // SAFETY: sigset_t is plain data, filled by sigfillset before use; pthread_sigmask
    // reads `all` and writes the old mask into `old`, which outlives the calls.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let h = std::thread::Builder::new().name(name).spawn(body);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        h
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn a_threads_dtv_is_found_and_is_not_its_stack() {
        let Some((lo, hi)) = super::thread_dtv_range() else {
            return;
        };
        assert!(lo < hi && hi - lo <= 64 << 10, "{lo:#x}..{hi:#x}");
        // Inside a mapping of this process's (listed in its maps), not on the stack.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let inside = maps.lines().any(|l| {
            let r = l.split_whitespace().next().unwrap_or("");
            let (a, b) = r.split_once('-').unwrap_or(("0", "0"));
            let (a, b) = (
                u64::from_str_radix(a, 16).unwrap_or(0),
                u64::from_str_radix(b, 16).unwrap_or(0),
            );
            a <= lo && hi <= b
        });
        assert!(inside, "{lo:#x}..{hi:#x} is in no mapping");
        let other = std::thread::spawn(super::thread_dtv_range).join().unwrap();
        assert!(other.is_some(), "a spawned thread has a DTV too");
        let here = 0u8;
        let sp = std::ptr::addr_of!(here) as u64;
        assert!(!(lo..hi).contains(&sp));
    }
}
