//! The anonymous mapping behind a region: created `MAP_NORESERVE`, huge pages off (a fault
//! must be one 4 KiB page) and left out of `fork` children (a child would see the region
//! without its fault handler, reading holes as zeroes); unmapped on drop.

use std::io;
use std::sync::Arc;

use device::PAGE_SIZE;

use crate::inject::{UffdFaults, Whole};

#[derive(Debug)]
pub(crate) struct Mapping {
    pub base: u64,
    pub len: u64,
    /// Failures to inject into `drop_pages` and `forbid`, for tests.
    faults: Option<Arc<UffdFaults>>,
    /// A pidfd of this process, for `process_madvise(2)` on ourselves ([`Mapping::drop_runs`]);
    /// `None` where the kernel has none or refuses `MADV_DONTNEED` through it.
    pidfd: std::sync::Mutex<Option<std::os::fd::OwnedFd>>,
}

/// Most ranges one `process_madvise(2)` takes (`IOV_MAX`).
const IOV_MAX: usize = 1024;

impl Mapping {
    pub fn new(len: u64, faults: Option<Arc<UffdFaults>>) -> io::Result<Mapping> {
        let p = anonymous(len)?;
        let map = Mapping {
            base: p as u64,
            len,
            faults,
            pidfd: std::sync::Mutex::new(own_pidfd()),
        };
        map.advise(0, len, libc::MADV_NOHUGEPAGE)?;
        map.advise(0, len, libc::MADV_DONTFORK)?;
        Ok(map)
    }

    fn advise(&self, offset: u64, len: u64, advice: libc::c_int) -> io::Result<()> {
        debug_assert!(offset + len <= self.len);
        // SAFETY: the range lies inside our own mapping; the advices used here change no
        // memory that Rust references other than by dropping page contents on purpose.
        let rc = unsafe {
            libc::madvise(
                (self.base + offset) as *mut libc::c_void,
                len as usize,
                advice,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn injected(&self, which: Whole) -> io::Result<()> {
        match self.faults.as_ref().and_then(|f| f.whole(which)) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    /// Drops the pages `first..first+n`: the next access is a missing fault again. On an
    /// error none of them may be taken as dropped.
    pub fn drop_pages(&self, first: u64, n: u64) -> io::Result<()> {
        self.injected(Whole::DontNeed)?;
        self.advise(
            first * PAGE_SIZE as u64,
            n * PAGE_SIZE as u64,
            libc::MADV_DONTNEED,
        )
    }

    /// Drops the runs `(first, len)` of pages, in the order given, with as few TLB flushes
    /// as the kernel allows: one `process_madvise(2)` on ourselves for up to `IOV_MAX`
    /// runs (since 6.15 the kernel flushes once per call there, where `madvise(2)` flushes
    /// once per run: an IPI to every other CPU running the program, per run), else one
    /// `madvise` per run. Returns how many pages, counted run by run from the first, were
    /// dropped: the kernel stops at a failing run, and what it did before stays done.
    pub fn drop_runs(&self, runs: &[(u64, u64)]) -> u64 {
        let mut dropped = 0;
        let mut at = 0;
        while at < runs.len() {
            let batch = &runs[at..(at + IOV_MAX).min(runs.len())];
            let Some(pages) = self.drop_batch(batch) else {
                // No process_madvise here: one madvise a run.
                for &(first, len) in &runs[at..] {
                    if self.drop_pages(first, len).is_err() {
                        return dropped;
                    }
                    dropped += len;
                }
                return dropped;
            };
            dropped += pages;
            if pages < batch.iter().map(|r| r.1).sum::<u64>() {
                return dropped;
            }
            at += batch.len();
        }
        dropped
    }

    /// One `process_madvise(MADV_DONTNEED)` over `batch`: the pages dropped, or `None`
    /// when the call is not to be had here (it is then not tried again).
    fn drop_batch(&self, batch: &[(u64, u64)]) -> Option<u64> {
        if self.injected(Whole::DontNeed).is_err() {
            return Some(0);
        }
        let mut guard = self.pidfd.lock().unwrap_or_else(|e| e.into_inner());
        let pidfd = guard.as_ref()?;
        let iov: Vec<libc::iovec> = batch
            .iter()
            .map(|&(first, len)| libc::iovec {
                iov_base: (self.base + first * PAGE_SIZE as u64) as *mut libc::c_void,
                iov_len: (len * PAGE_SIZE as u64) as usize,
            })
            .collect();
        use std::os::fd::AsRawFd;
        // SAFETY: the iovecs name ranges inside our own mapping; process_madvise(2) reads
        // them and drops those pages of this process, which Rust holds no reference into
        // (the evictor owns them: write-protected, their bytes copied out).
        let n = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                pidfd.as_raw_fd(),
                iov.as_ptr(),
                iov.len(),
                libc::MADV_DONTNEED,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EINVAL | libc::EPERM | libc::EBADF)
            ) {
                *guard = None;
                return None;
            }
            return Some(0);
        }
        Some(n as u64 / PAGE_SIZE as u64)
    }

    /// Makes page `p` inaccessible (the poison fallback of kernels before 6.6: SIGSEGV).
    pub fn forbid(&self, p: u64) -> io::Result<()> {
        self.injected(Whole::Poison)?;
        // SAFETY: one page inside our own mapping.
        let rc = unsafe {
            libc::mprotect(
                (self.base + p * PAGE_SIZE as u64) as *mut libc::c_void,
                PAGE_SIZE,
                libc::PROT_NONE,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Which pages the kernel has in memory now (`mincore(2)`): one flag per page, for
    /// checking the page table against the kernel's.
    pub fn present(&self) -> io::Result<Vec<bool>> {
        let pages = (self.len / PAGE_SIZE as u64) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is our own mapping; `vec` has one byte per page of it.
        let rc = unsafe {
            libc::mincore(
                self.base as *mut libc::c_void,
                self.len as usize,
                vec.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(vec.into_iter().map(|b| b & 1 != 0).collect())
    }

    pub fn page_addr(&self, p: u64) -> u64 {
        self.base + p * PAGE_SIZE as u64
    }
}

/// A fresh private anonymous mapping of `len` bytes, `MAP_NORESERVE` (untouched pages cost
/// nothing); the caller unmaps it.
pub(crate) fn anonymous(len: u64) -> io::Result<*mut libc::c_void> {
    let size = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p)
}

/// A pidfd of this process (`pidfd_open(2)`, 5.3), or `None`.
fn own_pidfd() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) with our own pid and no flags; returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor nothing else owns; it fits a RawFd (the kernel made it).
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) })
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; the region hands out no
        // reference that outlives it.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len as usize) };
    }
}
