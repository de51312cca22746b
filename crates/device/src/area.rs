//! `SwapArea`: one opened [`Medium`] (a block device, a regular file or a remote export)
//! holding a swap header, with its counters and fault injector. The engine does the
//! asynchronous I/O; the area knows where the data pages are and refuses, each with its own
//! message, anything it cannot page to. It never asks what its medium is: the medium
//! answers for itself.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::PAGE_SIZE;
use crate::buf::PageBuf;
use crate::error::DeviceError;
use crate::fault::FaultInjector;
use crate::header::{HeaderError, SwapHeader};
use crate::medium::Medium;
use crate::nbd::Remote;
use crate::op::IoOp;
use crate::stats::Counters;
use crate::storage::StorageId;

pub use crate::medium::options::{AreaId, AreaKind, DirectIo, OpenOptions};
pub use crate::stats::{AreaStats, LatencySummary};

/// One swap area: a medium with a valid header, shared as `Arc<SwapArea>`.
///
/// Invariant: data I/O only touches pages `1..=last_page`; page 0 (the header) is read once
/// by [`SwapArea::open`] and never read or written through the data path.
#[derive(Debug)]
pub struct SwapArea {
    path: PathBuf,
    /// What the pages are stored on, and the only thing that knows its kind.
    medium: Medium,
    header: SwapHeader,
    /// Sorted bad pages, for `is_bad`.
    bad: Vec<u64>,
    counters: Counters,
    faults: FaultInjector,
    /// The size the backing file was found to have shrunk to, or [`NOT_SHRUNK`]. Once set it
    /// stays: the pages past the cut are gone even if the file grows again.
    shrunk_to: AtomicU64,
    /// When the backing file's size is to be looked at next, in milliseconds since `opened`
    /// (see `settle`).
    next_size_check: AtomicU64,
    opened: Instant,
}

/// `shrunk_to` of an area whose backing file was never seen shorter than the area.
const NOT_SHRUNK: u64 = u64::MAX;

/// How often at most a successful I/O looks at the backing file's size (`SwapArea::settle`).
pub const SIZE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl SwapArea {
    /// Opens a swap area. The header is required and checked against the device's size.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<SwapArea, DeviceError> {
        let path = path.as_ref();
        let (medium, page0) = Medium::open(path, opts)?;
        SwapArea::with_header(path, medium, page0, opts)
    }

    /// The area over `medium` once its first pages are read: checks the header.
    fn with_header(
        path: &Path,
        medium: Medium,
        page0: Option<PageBuf>,
        opts: &OpenOptions,
    ) -> Result<SwapArea, DeviceError> {
        let Some(page0) = page0 else {
            return Err(DeviceError::NoHeader { path: path.into() });
        };
        let header = match SwapHeader::read(page0.as_slice()) {
            Ok(h) => h,
            Err(HeaderError::NoSignature) => {
                return Err(DeviceError::NoHeader { path: path.into() });
            }
            Err(source) => {
                return Err(DeviceError::Header {
                    path: path.into(),
                    source,
                });
            }
        };
        if header.check_fits(medium.size_bytes()).is_err() {
            return Err(DeviceError::TooSmall {
                path: path.into(),
                size_bytes: medium.size_bytes(),
                needed_bytes: (u64::from(header.last_page) + 1) * PAGE_SIZE as u64,
                why: "its swap header",
            });
        }
        medium.prepare(area_bytes(&header), opts.read_only)?;
        let bad = header.bad_pages.iter().map(|&b| u64::from(b)).collect();
        Ok(SwapArea {
            path: path.into(),
            medium,
            header,
            bad,
            counters: Counters::new(),
            faults: FaultInjector::new(),
            shrunk_to: AtomicU64::new(NOT_SHRUNK),
            next_size_check: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }

    /// Every identity of the storage (see [`crate::storage`]): its own first, then for a
    /// loop device its backing file's. Two areas whose identities overlap share storage.
    pub fn storage(&self) -> &[StorageId] {
        self.medium.storage()
    }

    /// A loop device's backing file (the path sysfs gives), when it could be opened.
    pub fn backing_file(&self) -> Option<&Path> {
        self.medium.backing_file()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> AreaId {
        self.medium.id()
    }

    pub fn kind(&self) -> AreaKind {
        self.medium.kind()
    }

    /// Whether `O_DIRECT` is in use.
    pub fn direct_io(&self) -> bool {
        self.medium.direct_io()
    }

    pub fn header(&self) -> &SwapHeader {
        &self.header
    }

    /// Size of the device or file in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.medium.size_bytes()
    }

    /// Data pages are `1..=last_page`.
    pub fn last_page(&self) -> u64 {
        u64::from(self.header.last_page)
    }

    /// Data pages minus the bad pages.
    pub fn usable_pages(&self) -> u64 {
        self.header.usable_pages()
    }

    /// Whether the header lists `page` as bad.
    pub fn is_bad(&self, page: u64) -> bool {
        self.bad.binary_search(&page).is_ok()
    }

    /// A snapshot of the counters (cheap: atomics and two short locks).
    pub fn stats(&self) -> AreaStats {
        self.counters.snapshot()
    }

    /// Copies of the read and write latency histograms (microseconds), for CDF plots.
    pub fn latency_histograms(&self) -> (Histogram<u64>, Histogram<u64>) {
        self.counters.histograms()
    }

    /// The fault injector consulted before every I/O on this area.
    pub fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    /// Tells the storage that `count` pages from `page` hold nothing (`BLKDISCARD` on block
    /// devices, a punched hole in files). Storage that cannot discard is not an error:
    /// discarding is advice. A file gets the punched range allocated again (unwritten, reads
    /// as zeroes), so a file area keeps its blocks: a later write there cannot run out of
    /// space.
    pub fn discard(&self, page: u64, count: u64) -> Result<(), DeviceError> {
        self.check_range(page, count)?;
        let (offset, len) = (page * PAGE_SIZE as u64, count * PAGE_SIZE as u64);
        match self.medium.discard(offset, len) {
            Ok(true) => {
                self.counters.discarded();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(DeviceError::io(&self.path, "discard", page, e)),
        }
    }

    /// Reads `buf.pages()` pages from `page`, blocking, without an engine.
    pub fn read_pages(&self, page: u64, buf: &mut PageBuf) -> Result<(), DeviceError> {
        let pages = buf.pages() as u64;
        self.accounted(IoOp::Read, page, pages, || {
            self.issue(IoOp::Read, page, pages, |medium, offset| {
                medium.read_at(offset, buf)
            })
        })
    }

    /// Writes `buf.pages()` pages at `page`, blocking, without an engine.
    pub fn write_pages(&self, page: u64, buf: &PageBuf) -> Result<(), DeviceError> {
        let pages = buf.pages() as u64;
        self.accounted(IoOp::Write, page, pages, || {
            self.issue(IoOp::Write, page, pages, |medium, offset| {
                medium.write_at(offset, buf)
            })
        })
    }

    /// Flushes written data to stable storage (`fdatasync`, NBD `FLUSH`).
    pub fn sync(&self) -> Result<(), DeviceError> {
        self.medium
            .sync_data()
            .map_err(|e| DeviceError::io(&self.path, "sync", 0, e))
    }

    /// One synchronous I/O of `pages` pages at `page`, the way every blocking path does it:
    /// the area's injected latency (where the medium sleeps it) and fault first, then
    /// `io(medium, byte offset)`; an error names the area, the operation and the page
    /// (`ENXIO` becomes `Vanished`). No range check and no accounting: the engine does both
    /// around a job, and `read_pages`/`write_pages` around their own call.
    pub(crate) fn issue(
        &self,
        op: IoOp,
        page: u64,
        pages: u64,
        io: impl FnOnce(&Medium, u64) -> io::Result<()>,
    ) -> Result<(), DeviceError> {
        let latency = self.faults.latency();
        if !latency.is_zero() && self.medium.sleeps_injected_latency() {
            std::thread::sleep(latency);
        }
        let result = match self.faults.check(op, page, pages) {
            Some(e) => Err(e),
            None => io(&self.medium, page * PAGE_SIZE as u64),
        };
        result.map_err(|e| DeviceError::io(&self.path, op.name(), page, e))
    }

    /// Range check and accounting around one synchronous I/O `io`.
    fn accounted(
        &self,
        op: IoOp,
        page: u64,
        pages: u64,
        io: impl FnOnce() -> Result<(), DeviceError>,
    ) -> Result<(), DeviceError> {
        self.check_range(page, pages)?;
        let start = Instant::now();
        self.counters.begin();
        let result = self.settle(io(), page, pages);
        self.counters
            .end(op, pages, result.is_ok(), start.elapsed());
        result
    }

    /// The connections of a remote (NBD) area; `None` for local ones.
    pub fn remote(&self) -> Option<&Remote> {
        self.medium.remote()
    }

    /// What the area's pages are stored on.
    pub fn medium(&self) -> &Medium {
        &self.medium
    }

    /// Every finished I/O on the area passes here (the engines' and the blocking path's):
    /// when the file behind the area (its own, or a loop device's backing file) is now
    /// shorter than the area and the I/O of `count` pages from `page` reaches past its end,
    /// the I/O fails with [`DeviceError::Shrunk`], whatever it returned; the pages before
    /// the cut are intact and their I/O goes on (their checksums decide). A loop device
    /// zero-fills reads past its backing file's end and a write past a file's end
    /// re-extends it with holes, so without this check a truncated file would hand back
    /// zeroes as data.
    ///
    /// The size is looked at after a failed I/O and otherwise at most every
    /// [`SIZE_CHECK_EVERY`] (the fast path costs an atomic load and a clock read, no
    /// `fstat`); in between, a read past a fresh cut returns zeroes that only the pager's
    /// checksums catch. Once seen, the cut stays ([`SwapArea::shrunk_pages`]).
    pub(crate) fn settle(
        &self,
        result: Result<(), DeviceError>,
        page: u64,
        count: u64,
    ) -> Result<(), DeviceError> {
        if matches!(result, Err(DeviceError::OutOfRange { .. })) {
            return result;
        }
        let Some((file, name, offset)) = self.medium.bounding_file() else {
            return result;
        };
        let needed_bytes = offset.saturating_add(area_bytes(&self.header));
        let mut size_bytes = self.shrunk_to.load(Ordering::Relaxed);
        if size_bytes == NOT_SHRUNK {
            let now = self.opened.elapsed().as_millis() as u64;
            if result.is_ok() && now < self.next_size_check.load(Ordering::Relaxed) {
                return result;
            }
            self.next_size_check
                .store(now + SIZE_CHECK_EVERY.as_millis() as u64, Ordering::Relaxed);
            match file.metadata() {
                Ok(m) if m.len() < needed_bytes => {
                    size_bytes = m.len();
                    self.shrunk_to.store(size_bytes, Ordering::Relaxed);
                }
                _ => return result,
            }
        }
        let end =
            offset.saturating_add(page.saturating_add(count).saturating_mul(PAGE_SIZE as u64));
        if end <= size_bytes {
            return result;
        }
        Err(DeviceError::Shrunk {
            path: self.path.clone(),
            file: name.to_owned(),
            size_bytes,
            needed_bytes,
        })
    }

    /// Once the file behind the area was seen shorter than the area: how many of its pages
    /// (header included) are still inside the file. Data pages below it are intact; those
    /// at or past it are gone and their I/O fails ([`DeviceError::Shrunk`]). `None` while
    /// no cut was seen.
    pub fn shrunk_pages(&self) -> Option<u64> {
        let size = self.shrunk_to.load(Ordering::Relaxed);
        if size == NOT_SHRUNK {
            return None;
        }
        let offset = self.medium.bounding_file().map_or(0, |(_, _, o)| o);
        Some(size.saturating_sub(offset) / PAGE_SIZE as u64)
    }

    /// Looks at the backing file's size now (the slow path: after a read that failed its
    /// checksum, which a fresh cut explains); returns [`SwapArea::shrunk_pages`].
    pub fn check_shrunk(&self) -> Option<u64> {
        self.next_size_check.store(0, Ordering::Relaxed);
        let _ = self.settle(Err(DeviceError::completion_lost()), 0, 0);
        self.shrunk_pages()
    }

    /// `Ok` when `count >= 1` pages from `page` are all data pages (`1..=last_page`).
    pub fn check_range(&self, page: u64, count: u64) -> Result<(), DeviceError> {
        let last_page = self.last_page();
        let end = page.checked_add(count);
        if page == 0 || count == 0 || end.is_none_or(|end| end - 1 > last_page) {
            return Err(DeviceError::OutOfRange {
                path: self.path.clone(),
                page,
                count,
                last_page,
            });
        }
        Ok(())
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Bytes the area spans on its storage: the header page and the data pages.
fn area_bytes(header: &SwapHeader) -> u64 {
    (u64::from(header.last_page) + 1) * PAGE_SIZE as u64
}
