//! `PageBuf`: whole pages of memory aligned to `PAGE_SIZE`, as `O_DIRECT` and io_uring need.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::NonNull;

use crate::PAGE_SIZE;

/// `pages` pages of zero-initialised memory, aligned to 4096 bytes.
///
/// Owned and moved through the engine with each request (never shared while an I/O runs),
/// so the kernel may write into it while no Rust reference to it exists. A `PageBuf` of
/// zero pages exists (the engine refuses it) and allocates nothing.
pub struct PageBuf {
    ptr: NonNull<u8>,
    pages: usize,
}

// SAFETY: a PageBuf owns its memory exclusively, like a Box<[u8]>.
unsafe impl Send for PageBuf {}
// SAFETY: shared references only give out `&[u8]`.
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// A zeroed buffer of `pages` pages. Aborts on allocation failure, like `Vec`.
    pub fn new(pages: usize) -> PageBuf {
        let Some(layout) = Self::layout(pages) else {
            return PageBuf {
                ptr: NonNull::dangling(),
                pages: 0,
            };
        };
        // SAFETY: the layout has a non-zero size (pages >= 1).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        PageBuf { ptr, pages }
    }

    /// A buffer holding a copy of `bytes`, rounded up to whole pages with zeroes.
    pub fn from_bytes(bytes: &[u8]) -> PageBuf {
        let mut buf = PageBuf::new(bytes.len().div_ceil(PAGE_SIZE));
        buf.as_mut_slice()[..bytes.len()].copy_from_slice(bytes);
        buf
    }

    /// The layout of `pages` pages, `None` for zero pages or an impossible size.
    fn layout(pages: usize) -> Option<Layout> {
        if pages == 0 {
            return None;
        }
        let size = pages.checked_mul(PAGE_SIZE)?;
        Layout::from_size_align(size, PAGE_SIZE).ok()
    }

    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Length in bytes: `pages() * PAGE_SIZE`.
    pub fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len() bytes (or dangling with len 0), initialised (zeroed),
        // and borrowed immutably through &self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    /// Page `i` of the buffer. Panics when `i >= pages()`, like slice indexing.
    pub fn page(&self, i: usize) -> &[u8] {
        &self.as_slice()[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
    }

    /// Page `i` of the buffer, writable. Panics when `i >= pages()`, like slice indexing.
    pub fn page_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.as_mut_slice()[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.pages) {
            // SAFETY: allocated in new() with this very layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

impl Clone for PageBuf {
    fn clone(&self) -> PageBuf {
        let mut copy = PageBuf::new(self.pages);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl PartialEq for PageBuf {
    fn eq(&self, other: &PageBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for PageBuf {}

impl fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBuf")
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}
