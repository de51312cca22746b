//! `SwapArea`: one opened block device or regular file holding a swap header, with its
//! counters and fault injector. The engine does the asynchronous I/O; the area knows where
//! the data pages are and refuses, each with its own message, anything it cannot page to.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::engine::IoOp;
use crate::error::DeviceError;
use crate::fault::FaultInjector;
use crate::header::{HeaderError, SwapHeader};
use crate::stats::Counters;
use crate::{PAGE_SIZE, PageBuf, sys};

pub use crate::stats::{AreaStats, LatencySummary};

/// Whether to open with `O_DIRECT` (bypassing the page cache, as swap must to measure and
/// to not double-cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirectIo {
    /// `O_DIRECT` when the filesystem supports it, buffered I/O otherwise (tmpfs).
    #[default]
    Auto,
    /// `O_DIRECT` or a [`DeviceError::NoDirectIo`] error.
    Require,
    /// Buffered I/O.
    Off,
}

/// How to open a swap area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    pub direct: DirectIo,
    /// Open block devices with `O_EXCL`, so one that is mounted or in use is refused.
    pub exclusive: bool,
    /// Open for reading only (inspection tools); writes then fail.
    pub read_only: bool,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            direct: DirectIo::Auto,
            exclusive: true,
            read_only: false,
        }
    }
}

/// What backs an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AreaKind {
    BlockDevice,
    File,
}

/// Identity of the storage behind an area: `st_rdev` (and `ino` 0) for block devices,
/// `(st_dev, st_ino)` for files. Two paths naming the same storage have the same id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AreaId {
    pub dev: u64,
    pub ino: u64,
}

/// An opened device or file, before any header is looked at (shared with mkswap).
#[derive(Debug)]
pub(crate) struct RawDevice {
    pub(crate) file: File,
    pub(crate) kind: AreaKind,
    pub(crate) id: AreaId,
    pub(crate) size_bytes: u64,
    pub(crate) direct: bool,
}

/// Opens `path` for paging: checks what it is, takes `O_EXCL` on block devices, tries
/// `O_DIRECT` as asked, and learns the size. Every refusal has its own error variant.
pub(crate) fn open_raw(path: &Path, opts: &OpenOptions) -> Result<RawDevice, DeviceError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DeviceError::NotFound { path: path.into() },
        _ => DeviceError::io(path, "stat", 0, e),
    })?;
    let kind = kind_of(path, &meta)?;
    let id = match kind {
        AreaKind::BlockDevice => AreaId {
            dev: meta.rdev(),
            ino: 0,
        },
        AreaKind::File => AreaId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
    };
    let want_direct = opts.direct != DirectIo::Off;
    let exclusive = opts.exclusive && kind == AreaKind::BlockDevice;
    let mut direct = want_direct;
    let file = match open_file(path, opts.read_only, exclusive, direct) {
        Err(e)
            if direct
                && opts.direct == DirectIo::Auto
                && e.raw_os_error() == Some(libc::EINVAL) =>
        {
            direct = false;
            open_file(path, opts.read_only, exclusive, false)
        }
        other => other,
    };
    let file = file.map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => DeviceError::InUse { path: path.into() },
        // EROFS: read-only filesystem or device; EPERM: an immutable file. (EACCES, a
        // permission problem, stays an I/O error saying so.)
        Some(libc::EROFS | libc::EPERM) if !opts.read_only => {
            DeviceError::ReadOnly { path: path.into() }
        }
        Some(libc::EINVAL) if direct => DeviceError::NoDirectIo { path: path.into() },
        Some(libc::ENOENT) => DeviceError::NotFound { path: path.into() },
        _ => DeviceError::io(path, "open", 0, e),
    })?;
    let size_bytes = match kind {
        AreaKind::File => meta.len(),
        AreaKind::BlockDevice => {
            let size = sys::block_size_bytes(&file)
                .map_err(|e| DeviceError::io(path, "BLKGETSIZE64", 0, e))?;
            let lbs = sys::logical_block_size(&file)
                .map_err(|e| DeviceError::io(path, "BLKSSZGET", 0, e))?;
            if lbs == 0 || lbs as usize > PAGE_SIZE || !PAGE_SIZE.is_multiple_of(lbs as usize) {
                return Err(DeviceError::Unaligned {
                    path: path.into(),
                    what: format!(
                        "logical block size {lbs} does not divide the {PAGE_SIZE}-byte page"
                    ),
                });
            }
            if !opts.read_only && sys::block_read_only(&file).unwrap_or(false) {
                return Err(DeviceError::ReadOnly { path: path.into() });
            }
            size
        }
    };
    Ok(RawDevice {
        file,
        kind,
        id,
        size_bytes,
        direct,
    })
}

/// Block device or regular file; anything else is refused with what it is.
fn kind_of(path: &Path, meta: &Metadata) -> Result<AreaKind, DeviceError> {
    let ft = meta.file_type();
    let what = if ft.is_file() {
        return Ok(AreaKind::File);
    } else if ft.is_block_device() {
        return Ok(AreaKind::BlockDevice);
    } else if ft.is_dir() {
        return Err(DeviceError::IsDirectory { path: path.into() });
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(DeviceError::NotBlockOrFile {
        path: path.into(),
        what,
    })
}

fn open_file(path: &Path, read_only: bool, exclusive: bool, direct: bool) -> io::Result<File> {
    let mut flags = libc::O_CLOEXEC;
    if exclusive {
        flags |= libc::O_EXCL;
    }
    if direct {
        flags |= libc::O_DIRECT;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .custom_flags(flags)
        .open(path)
}

/// One swap area: a device or file with a valid header, shared as `Arc<SwapArea>`.
///
/// Invariant: data I/O only touches pages `1..=last_page`; page 0 (the header) is read once
/// by [`SwapArea::open`] and never read or written through the data path.
#[derive(Debug)]
pub struct SwapArea {
    path: PathBuf,
    raw: RawDevice,
    header: SwapHeader,
    /// Sorted bad pages, for `is_bad`.
    bad: Vec<u64>,
    counters: Counters,
    faults: FaultInjector,
}

/// How much of the start we read to find the header: enough to spot a 64 KiB-page signature.
const HEADER_PROBE_BYTES: u64 = 65536;

impl SwapArea {
    /// Opens a swap area. The header is required and checked against the device's size.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<SwapArea, DeviceError> {
        let path = path.as_ref();
        let mut raw = open_raw(path, opts)?;
        let page0 = match read_probe(&raw) {
            // Some filesystems accept O_DIRECT at open and refuse it at the first read.
            Err(e)
                if raw.direct
                    && opts.direct == DirectIo::Auto
                    && e.raw_os_error() == Some(libc::EINVAL) =>
            {
                raw = open_raw(
                    path,
                    &OpenOptions {
                        direct: DirectIo::Off,
                        ..opts.clone()
                    },
                )?;
                read_probe(&raw)
            }
            other => other,
        }
        .map_err(|e| DeviceError::io(path, "read header", 0, e))?;
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
        if header.check_fits(raw.size_bytes).is_err() {
            return Err(DeviceError::TooSmall {
                path: path.into(),
                size_bytes: raw.size_bytes,
                needed_bytes: (u64::from(header.last_page) + 1) * PAGE_SIZE as u64,
                why: "its swap header",
            });
        }
        let bad = header.bad_pages.iter().map(|&b| u64::from(b)).collect();
        Ok(SwapArea {
            path: path.into(),
            raw,
            header,
            bad,
            counters: Counters::new(),
            faults: FaultInjector::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> AreaId {
        self.raw.id
    }

    pub fn kind(&self) -> AreaKind {
        self.raw.kind
    }

    /// Whether `O_DIRECT` is in use.
    pub fn direct_io(&self) -> bool {
        self.raw.direct
    }

    pub fn header(&self) -> &SwapHeader {
        &self.header
    }

    /// Size of the device or file in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.raw.size_bytes
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
    /// discarding is advice.
    pub fn discard(&self, page: u64, count: u64) -> Result<(), DeviceError> {
        self.check_range(page, count)?;
        let (offset, len) = (page * PAGE_SIZE as u64, count * PAGE_SIZE as u64);
        let result = match self.raw.kind {
            AreaKind::BlockDevice => sys::discard_block(&self.raw.file, offset, len),
            AreaKind::File => sys::punch_hole(&self.raw.file, offset, len),
        };
        match result {
            Ok(()) => {
                self.counters.discarded();
                Ok(())
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOTTY)) => Ok(()),
            Err(e) => Err(DeviceError::io(&self.path, "discard", page, e)),
        }
    }

    /// Reads `buf.pages()` pages from `page`, blocking, without an engine.
    pub fn read_pages(&self, page: u64, buf: &mut PageBuf) -> Result<(), DeviceError> {
        self.blocking_io(IoOp::Read, page, buf.pages() as u64, |file, offset| {
            sys::read_full(file, buf.as_mut_slice(), offset)
        })
    }

    /// Writes `buf.pages()` pages at `page`, blocking, without an engine.
    pub fn write_pages(&self, page: u64, buf: &PageBuf) -> Result<(), DeviceError> {
        self.blocking_io(IoOp::Write, page, buf.pages() as u64, |file, offset| {
            sys::write_full(file, buf.as_slice(), offset)
        })
    }

    /// Flushes written data to stable storage (`fdatasync`).
    pub fn sync(&self) -> Result<(), DeviceError> {
        self.raw
            .file
            .sync_data()
            .map_err(|e| DeviceError::io(&self.path, "sync", 0, e))
    }

    /// The checks, fault injection and accounting around one synchronous I/O.
    fn blocking_io(
        &self,
        op: IoOp,
        page: u64,
        pages: u64,
        io: impl FnOnce(&File, u64) -> io::Result<()>,
    ) -> Result<(), DeviceError> {
        self.check_range(page, pages)?;
        let start = Instant::now();
        self.counters.begin();
        let latency = self.faults.latency();
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let result = match self.faults.check(op, page, pages) {
            Some(e) => Err(e),
            None => io(&self.raw.file, page * PAGE_SIZE as u64),
        };
        self.counters
            .end(op, pages, result.is_ok(), start.elapsed());
        result.map_err(|e| DeviceError::io(&self.path, op.name(), page, e))
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

    pub(crate) fn file(&self) -> &File {
        &self.raw.file
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Reads the start of the device (up to 64 KiB, whole pages); `None` when it holds less
/// than one page.
fn read_probe(raw: &RawDevice) -> io::Result<Option<PageBuf>> {
    let pages = (raw.size_bytes.min(HEADER_PROBE_BYTES) / PAGE_SIZE as u64) as usize;
    if pages == 0 {
        return Ok(None);
    }
    let mut buf = PageBuf::new(pages);
    sys::read_full(&raw.file, buf.as_mut_slice(), 0)?;
    Ok(Some(buf))
}
