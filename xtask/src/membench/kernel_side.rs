//! The kernel's side of the region bench: the memory workloads on plain anonymous memory
//! in a child process (`xtask mem-child`) inside a memory cgroup limited to `L`, with
//! kernel swap on the bench's devices.
//!
//! The parent turns swap on (fresh headers, one priority: `kernel::KernelSwap`), creates
//! the cgroup (`kernel::Cgroup`), starts the child and moves it into the cgroup before it
//! touches any memory, then sends it one [`mem::Phase`] per line (JSON) and reads one
//! [`mem::Outcome`] per line back. The child maps its memory, runs each phase with the same
//! code the region side runs ([`mem::measure`]) and counts its own major faults
//! (`getrusage`: `ru_majflt`) and CPU. Dropping the [`KernelMem`] kills the child, removes
//! the cgroup and swaps the devices off again, in that order, on every way out.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use crate::error::Error;
use crate::kernel::{Cgroup, ChildProcess, KernelSwap};
use crate::workloads::mem;

/// One kernel run: swap on, a cgroup, a child with `pages` of memory.
#[derive(Debug)]
pub struct KernelMem {
    // Field order is drop order: the child first, then its cgroup, then the swap.
    child: MemChild,
    cgroup: Cgroup,
    _swap: KernelSwap,
}

impl KernelMem {
    pub fn start(paths: &[PathBuf], pages: u64, limit_bytes: u64) -> Result<KernelMem, Error> {
        let swap = KernelSwap::on_all(paths)?;
        let cgroup = Cgroup::create(limit_bytes)?;
        let child = MemChild::spawn(pages)?;
        cgroup.add(child.0.pid())?;
        Ok(KernelMem {
            child,
            cgroup,
            _swap: swap,
        })
    }

    /// Runs `phase` in the child; its outcome, with the cgroup's own count of major
    /// faults beside the child's (`pgmajfault` of `memory.stat`).
    pub fn run(&mut self, phase: &mem::Phase) -> Result<(mem::Outcome, u64), Error> {
        crate::cancel::check()?;
        let before = self.cgroup.stat("pgmajfault");
        let out = self.child.run(phase)?;
        Ok((out, self.cgroup.stat("pgmajfault").saturating_sub(before)))
    }
}

/// The region bench's kernel-side child (`xtask mem-child`).
#[derive(Debug)]
struct MemChild(ChildProcess);

impl MemChild {
    fn spawn(pages: u64) -> Result<MemChild, Error> {
        ChildProcess::spawn("mem-child", pages, "memory child").map(MemChild)
    }

    fn run(&mut self, phase: &mem::Phase) -> Result<mem::Outcome, Error> {
        let line = serde_json::to_string(phase)
            .map_err(|e| Error::Setup(format!("serialising a phase: {e}")))?;
        let reply = self.0.ask(&line)?;
        serde_json::from_str(&reply).map_err(|_| {
            Error::workload(
                "region bench (kernel side)",
                format!(
                    "the child process stopped at {:?} (killed by the OOM killer?)",
                    phase.kind
                ),
            )
        })
    }
}

/// The child's side: map `pages` of anonymous memory (no huge pages, as the region), then
/// run each phase read from stdin and print its outcome; exit on end of input.
pub fn child_main(pages: u64) -> Result<(), Error> {
    let len = pages as usize * device::PAGE_SIZE;
    let map = Anon::new(len)?;
    let mem = map.words();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let phase: mem::Phase = serde_json::from_str(&line)
            .map_err(|e| Error::Setup(format!("mem-child: bad phase {line:?}: {e}")))?;
        let outcome = mem::measure(mem, &phase, &own_major_faults, &|| false);
        let text = serde_json::to_string(&outcome)
            .map_err(|e| Error::Setup(format!("serialising an outcome: {e}")))?;
        writeln!(out, "{text}").map_err(|e| Error::io("writing", "stdout", e))?;
        out.flush().map_err(|e| Error::io("writing", "stdout", e))?;
    }
    Ok(())
}

/// This process's major faults so far (every thread).
fn own_major_faults() -> u64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_majflt.max(0) as u64
}

/// Private anonymous memory, `MAP_NORESERVE`, huge pages off; unmapped on drop.
struct Anon {
    base: *mut libc::c_void,
    len: usize,
}

impl Anon {
    fn new(len: usize) -> Result<Anon, Error> {
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::io(
                "mapping",
                "anonymous memory",
                std::io::Error::last_os_error(),
            ));
        }
        let map = Anon { base, len };
        // SAFETY: advice on our own mapping; failure only leaves huge pages possible.
        unsafe { libc::madvise(base, len, libc::MADV_NOHUGEPAGE) };
        Ok(map)
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page aligned, `len` bytes long and lives as long as
        // `self`; `AtomicU64` has the layout of `u64` and any bit pattern is valid.
        unsafe { std::slice::from_raw_parts(self.base.cast::<AtomicU64>(), self.len / 8) }
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping we made; no reference to it outlives `self`.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
