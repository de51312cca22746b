//! Memory by address: a region's own anonymous mapping ([`Mapping`]: `MAP_NORESERVE`, huge
//! pages off, since a fault must be one 4 KiB page, and left out of `fork` children, which
//! would see it without its fault handler), and the calls on page memory that are not
//! userfaultfd ioctls ([`Calls`]: dropping pages, the poison fallback), with `mincore(2)`
//! and `/proc/self/pagemap` for what the kernel has.

use std::io;
use std::sync::Arc;

use device::PAGE_SIZE;

use crate::inject::{UffdFaults, Whole};

/// A region's own mapping: made `MAP_NORESERVE`, huge pages off and left out of `fork`
/// children, unmapped on drop (after the region's space let go of it).
#[derive(Debug)]
pub(crate) struct Mapping {
    pub base: u64,
    pub len: u64,
}

impl Mapping {
    pub fn new(len: u64) -> io::Result<Mapping> {
        let p = anonymous(len)?;
        let map = Mapping {
            base: p as u64,
            len,
        };
        advise(map.base, len, libc::MADV_NOHUGEPAGE)?;
        advise(map.base, len, libc::MADV_DONTFORK)?;
        Ok(map)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; the region hands out no
        // reference that outlives it.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len as usize) };
    }
}

/// `madvise(2)` on `addr..addr + len` of this process.
pub(crate) fn advise(addr: u64, len: u64, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: the advices used here change no memory that Rust references other than by
    // dropping page contents on purpose (pages the space owns at that moment); an address
    // that is not mapped makes the call fail, nothing more.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len as usize, advice) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calls on page memory by address that are not userfaultfd ioctls: dropping pages,
/// the poison fallback, and the kernel's view for `verify`. Holds the pidfd for
/// `process_madvise(2)` on ourselves and the injected failures.
#[derive(Debug)]
pub(crate) struct Calls {
    /// Failures to inject into `drop_pages` and `forbid`, for tests.
    faults: Option<Arc<UffdFaults>>,
    /// A pidfd of this process, for `process_madvise(2)` on ourselves ([`Calls::drop_runs`]);
    /// `None` where the kernel has none or refuses `MADV_DONTNEED` through it.
    pidfd: std::sync::Mutex<Option<std::os::fd::OwnedFd>>,
    /// The pidfd's number as opened (for closing it in a fork child, where no lock may be
    /// taken).
    pidfd_raw: Option<std::os::fd::RawFd>,
}

/// Most ranges one `process_madvise(2)` takes (`IOV_MAX`).
const IOV_MAX: usize = 1024;

impl Calls {
    pub fn new(faults: Option<Arc<UffdFaults>>) -> Calls {
        use std::os::fd::AsRawFd;
        let pidfd = own_pidfd();
        Calls {
            faults,
            pidfd_raw: pidfd.as_ref().map(|fd| fd.as_raw_fd()),
            pidfd: std::sync::Mutex::new(pidfd),
        }
    }

    /// The pidfd's number as opened, if one was (for closing it in a fork child).
    pub fn pidfd_raw(&self) -> Option<std::os::fd::RawFd> {
        self.pidfd_raw
    }

    fn injected(&self, which: Whole) -> io::Result<()> {
        match self.faults.as_ref().and_then(|f| f.whole(which)) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    /// Drops `len` bytes of pages at `addr`: the next access is a missing fault again. On an
    /// error none of them may be taken as dropped.
    pub fn drop_pages(&self, addr: u64, len: u64) -> io::Result<()> {
        self.injected(Whole::DontNeed)?;
        advise(addr, len, libc::MADV_DONTNEED)
    }

    /// Drops the runs `(addr, bytes)`, in the order given, with as few TLB flushes
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
                for &(addr, len) in &runs[at..] {
                    if self.drop_pages(addr, len).is_err() {
                        return dropped;
                    }
                    dropped += len / PAGE_SIZE as u64;
                }
                return dropped;
            };
            dropped += pages;
            if pages < batch.iter().map(|r| r.1).sum::<u64>() / PAGE_SIZE as u64 {
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
            .map(|&(addr, len)| libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: len as usize,
            })
            .collect();
        use std::os::fd::AsRawFd;
        // SAFETY: the iovecs name pages of this process that the caller owns (the evictor:
        // write-protected, their bytes copied out), which Rust holds no reference into;
        // process_madvise(2) reads them and drops those pages.
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

    /// Makes the page at `addr` inaccessible (the poison fallback of kernels before 6.6:
    /// SIGSEGV).
    pub fn forbid(&self, addr: u64) -> io::Result<()> {
        self.injected(Whole::Poison)?;
        // SAFETY: one page of this process the caller owns; mprotect(2) changes only its
        // protection.
        let rc = unsafe { libc::mprotect(addr as *mut libc::c_void, PAGE_SIZE, libc::PROT_NONE) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Which pages of `addr..addr + len` the kernel has in memory now (`mincore(2)`): one
/// flag per page, for checking the page table against the kernel's.
pub(crate) fn present(addr: u64, len: u64) -> io::Result<Vec<bool>> {
    let pages = (len / PAGE_SIZE as u64) as usize;
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore(2) writes one byte per page of the range into `vec`, which has them.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len as usize, vec.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(vec.into_iter().map(|b| b & 1 != 0).collect())
}

/// Which pages of `addr..addr + len` the kernel holds data for: present or on its own
/// swap (`/proc/self/pagemap`, bits 63 and 62). A page of neither reads as zeroes.
pub(crate) fn has_data(addr: u64, len: u64) -> io::Result<Vec<bool>> {
    use std::os::unix::fs::FileExt;
    let pages = len / PAGE_SIZE as u64;
    let file = std::fs::File::open("/proc/self/pagemap")?;
    let mut out = Vec::with_capacity(pages as usize);
    let mut buf = vec![0u8; 8 * 4096];
    let mut at = 0;
    while at < pages {
        let n = (pages - at).min(4096);
        let bytes = &mut buf[..(n * 8) as usize];
        file.read_exact_at(bytes, (addr / PAGE_SIZE as u64 + at) * 8)?;
        for e in bytes.chunks_exact(8) {
            let v = u64::from_le_bytes(e.try_into().unwrap_or([0; 8]));
            out.push(v & (3 << 62) != 0);
        }
        at += n;
    }
    Ok(out)
}

/// Copies the page at `addr` of this process into `dst` (one page) with
/// `process_vm_readv(2)`: memory the program may unmap or move at any moment fails the
/// call (`EFAULT`) instead of faulting the reading thread. Returns whether it was read.
pub(crate) fn read_page(addr: u64, dst: *mut u8) -> bool {
    let local = libc::iovec {
        iov_base: dst.cast(),
        iov_len: PAGE_SIZE,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: PAGE_SIZE,
    };
    // SAFETY: `dst` is one writable page the caller owns; the remote side is only read by
    // the kernel, which checks it.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == PAGE_SIZE as isize
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
