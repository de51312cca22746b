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
}

impl Mapping {
    pub fn new(len: u64, faults: Option<Arc<UffdFaults>>) -> io::Result<Mapping> {
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
        let map = Mapping {
            base: p as u64,
            len,
            faults,
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

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; the region hands out no
        // reference that outlives it.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len as usize) };
    }
}
