//! `SwapArea`: one opened block device or regular file holding a swap header, with its
//! counters and fault injector. The engine does the asynchronous I/O; the area knows where
//! the data pages are and refuses, each with its own message, anything it cannot page to.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::engine::IoOp;
use crate::error::DeviceError;
use crate::fault::FaultInjector;
use crate::header::{HeaderError, SwapHeader};
use crate::stats::Counters;
use crate::storage::{self, StorageId};
use crate::{PAGE_SIZE, PageBuf, loopdev, sys};

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
    /// Be the storage's one owner (see [`crate::storage`]): block devices are opened with
    /// `O_EXCL`, so one that is mounted or in use is refused; a file, or a loop device's
    /// backing file, gets an OFD lock (a read lock when `read_only`); storage the kernel
    /// swaps on, and a file under a loop device in use, are refused.
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
    /// A remote export over NBD (the area's path is the URI).
    Nbd,
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
    /// Every identity the storage has: its own first, then a loop device's backing file.
    pub(crate) ids: Vec<StorageId>,
    /// A loop device's backing file, held open for its lock and its size.
    pub(crate) backing: Option<BackingFile>,
    pub(crate) size_bytes: u64,
    pub(crate) direct: bool,
}

/// The file behind a loop device, opened by the path sysfs gives and checked to be the
/// inode the device uses.
#[derive(Debug)]
pub(crate) struct BackingFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// Where the device starts in the file (`lo_offset`).
    pub(crate) offset: u64,
    /// Opened read-only (it holds a read lock then).
    pub(crate) read_only: bool,
}

/// Opens `path` for paging: checks what it is, takes `O_EXCL` on block devices, tries
/// `O_DIRECT` as asked, and learns the size. Every refusal has its own error variant.
///
/// With `opts.exclusive` it also makes the caller the storage's one owner (see
/// [`crate::storage`]): storage the kernel swaps on or a busy loop device stands on is
/// refused naming that other path, and a regular file or a loop device's backing file gets
/// an OFD lock that lives as long as the returned device.
pub(crate) fn open_raw(path: &Path, opts: &OpenOptions) -> Result<RawDevice, DeviceError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DeviceError::NotFound { path: path.into() },
        _ => DeviceError::io(path, "stat", 0, e),
    })?;
    let kind = kind_of(path, &meta)?;
    // (`kind_of` never gives `Nbd`: URIs open through `SwapArea::open_remote`.)
    let id = match kind {
        AreaKind::BlockDevice | AreaKind::Nbd => AreaId {
            dev: meta.rdev(),
            ino: 0,
        },
        AreaKind::File => AreaId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
    };
    let exclusive = opts.exclusive && kind == AreaKind::BlockDevice;
    let (file, direct) = open_with_fallback(path, opts, exclusive)?;
    // What was opened, not what the path named a moment before.
    let opened = file
        .metadata()
        .map_err(|e| DeviceError::io(path, "stat", 0, e))?;
    let mut ids = vec![storage::id_of(&opened)];
    let loop_backing = if storage::is_loop(ids[0]) {
        loopdev::backing_of(&file)
    } else {
        None
    };
    ids.extend(loop_backing.map(|b| b.id));
    if opts.exclusive {
        storage::check_idle(path, &ids)?;
    }
    let backing = loop_backing.and_then(|b| open_backing(&meta, b, opts.read_only));
    if opts.exclusive {
        match (&kind, &backing) {
            (AreaKind::File, _) => storage::lock(&file, opts.read_only, path, path)?,
            (AreaKind::BlockDevice | AreaKind::Nbd, Some(b)) => {
                storage::lock(&b.file, b.read_only, path, &b.path)?;
            }
            (AreaKind::BlockDevice | AreaKind::Nbd, None) => {}
        }
    }
    let size_bytes = size_of(path, kind, &file, &meta, opts.read_only)?;
    Ok(RawDevice {
        file,
        kind,
        id,
        ids,
        backing,
        size_bytes,
        direct,
    })
}

/// Opens `path` as `opts` ask: `O_DIRECT` unless off, falling back to buffered I/O where the
/// filesystem refuses it and `opts.direct` is `Auto`. Returns the file and whether it is
/// direct. Each refusal becomes its own error (`InUse`, `ReadOnly`, `NoDirectIo`, ...).
fn open_with_fallback(
    path: &Path,
    opts: &OpenOptions,
    exclusive: bool,
) -> Result<(File, bool), DeviceError> {
    let mut direct = opts.direct != DirectIo::Off;
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
    Ok((file, direct))
}

/// The size in bytes of what was opened: a file's length, or a block device's size once its
/// logical block size is known to divide the page (and it is writable when it must be).
fn size_of(
    path: &Path,
    kind: AreaKind,
    file: &File,
    meta: &Metadata,
    read_only: bool,
) -> Result<u64, DeviceError> {
    match kind {
        AreaKind::File | AreaKind::Nbd => Ok(meta.len()),
        AreaKind::BlockDevice => {
            let size = sys::block_size_bytes(file)
                .map_err(|e| DeviceError::io(path, "BLKGETSIZE64", 0, e))?;
            let lbs = sys::logical_block_size(file)
                .map_err(|e| DeviceError::io(path, "BLKSSZGET", 0, e))?;
            if lbs == 0 || lbs as usize > PAGE_SIZE || !PAGE_SIZE.is_multiple_of(lbs as usize) {
                return Err(DeviceError::Unaligned {
                    path: path.into(),
                    what: format!(
                        "logical block size {lbs} does not divide the {PAGE_SIZE}-byte page"
                    ),
                });
            }
            if !read_only && sys::block_read_only(file).unwrap_or(false) {
                return Err(DeviceError::ReadOnly { path: path.into() });
            }
            Ok(size)
        }
    }
}

/// Opens the backing file of the loop device `meta` describes, by the path sysfs gives,
/// read-write when it can (for a write lock) and else read-only. `None` when it cannot be
/// opened or is no longer the inode the device uses (deleted, replaced, or in another mount
/// namespace): then nothing can open it by that path to conflict with us either.
fn open_backing(
    meta: &Metadata,
    backing: loopdev::Backing,
    read_only: bool,
) -> Option<BackingFile> {
    let StorageId::File { .. } = backing.id else {
        return None;
    };
    let rdev = meta.rdev();
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let sys = format!("/sys/dev/block/{major}:{minor}/loop/backing_file");
    let name = std::fs::read_to_string(sys).ok()?;
    let path = PathBuf::from(name.trim_end_matches('\n'));
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
    };
    let (file, read_only) = match open(!read_only) {
        Ok(f) => (f, read_only),
        Err(_) if !read_only => (open(false).ok()?, true),
        Err(_) => return None,
    };
    let same = file
        .metadata()
        .is_ok_and(|m| storage::id_of(&m) == backing.id);
    same.then_some(BackingFile {
        file,
        path,
        offset: backing.offset,
        read_only,
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
    /// The size the backing file was found to have shrunk to, or [`NOT_SHRUNK`]. Once set it
    /// stays: the pages past the cut are gone even if the file grows again.
    shrunk_to: AtomicU64,
    /// When the backing file's size is to be looked at next, in milliseconds since `opened`
    /// (see `settle`).
    next_size_check: AtomicU64,
    opened: Instant,
    /// The connections of a remote (NBD) area, which does its I/O through them.
    remote: Option<crate::nbd::Remote>,
}

/// `shrunk_to` of an area whose backing file was never seen shorter than the area.
const NOT_SHRUNK: u64 = u64::MAX;

/// How often at most a successful I/O looks at the backing file's size (`SwapArea::settle`).
pub const SIZE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// How much of the start we read to find the header: enough to spot a 64 KiB-page signature.
const HEADER_PROBE_BYTES: u64 = 65536;

impl SwapArea {
    /// Opens a swap area. The header is required and checked against the device's size.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<SwapArea, DeviceError> {
        let path = path.as_ref();
        if crate::nbd::is_uri(path) {
            return SwapArea::open_remote(path, opts);
        }
        let mut raw = open_raw(path, opts)?;
        let probe = read_probe(&raw);
        let page0 = match probe {
            // Some filesystems accept O_DIRECT at open and refuse it at the first read. The
            // first open goes before the second: it holds the O_EXCL claim and the lock.
            Err(e)
                if raw.direct
                    && opts.direct == DirectIo::Auto
                    && e.raw_os_error() == Some(libc::EINVAL) =>
            {
                drop(raw);
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
        SwapArea::with_header(path, raw, page0, opts, None)
    }

    /// Opens the remote export an NBD URI names: its header is read over NBD. No lock:
    /// NBD has none; the pager refuses the same export twice by its identity.
    fn open_remote(path: &Path, opts: &OpenOptions) -> Result<SwapArea, DeviceError> {
        let remote = crate::nbd::Remote::open(path, opts.read_only)?;
        let ids: Vec<StorageId> = remote
            .uri()
            .identity()
            .into_iter()
            .map(|key| StorageId::Remote { key })
            .collect();
        let key = remote.uri().storage_key();
        let raw = RawDevice {
            // Never used for I/O (a remote area's I/O goes to its connections); an open
            // file keeps `file()` total for the engines' types.
            file: File::open("/dev/null").map_err(|e| DeviceError::io(path, "open", 0, e))?,
            kind: AreaKind::Nbd,
            id: AreaId { dev: 0, ino: key },
            ids,
            backing: None,
            size_bytes: remote.size_bytes(),
            direct: false,
        };
        let pages = (raw.size_bytes.min(HEADER_PROBE_BYTES) / PAGE_SIZE as u64) as usize;
        let page0 = if pages == 0 {
            None
        } else {
            let mut buf = PageBuf::new(pages);
            remote
                .read_at(0, &mut buf)
                .map_err(|e| DeviceError::io(path, "read header", 0, e))?;
            Some(buf)
        };
        SwapArea::with_header(path, raw, page0, opts, Some(remote))
    }

    /// The area over `raw` once its first pages are read: checks the header.
    fn with_header(
        path: &Path,
        raw: RawDevice,
        page0: Option<PageBuf>,
        opts: &OpenOptions,
        remote: Option<crate::nbd::Remote>,
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
        if header.check_fits(raw.size_bytes).is_err() {
            return Err(DeviceError::TooSmall {
                path: path.into(),
                size_bytes: raw.size_bytes,
                needed_bytes: (u64::from(header.last_page) + 1) * PAGE_SIZE as u64,
                why: "its swap header",
            });
        }
        if raw.kind == AreaKind::File && !opts.read_only {
            allocate(&raw.file, path, area_bytes(&header))?;
        }
        let bad = header.bad_pages.iter().map(|&b| u64::from(b)).collect();
        Ok(SwapArea {
            path: path.into(),
            raw,
            header,
            bad,
            counters: Counters::new(),
            faults: FaultInjector::new(),
            shrunk_to: AtomicU64::new(NOT_SHRUNK),
            next_size_check: AtomicU64::new(0),
            opened: Instant::now(),
            remote,
        })
    }

    /// Every identity of the storage (see [`crate::storage`]): its own first, then for a
    /// loop device its backing file's. Two areas whose identities overlap share storage.
    pub fn storage(&self) -> &[StorageId] {
        &self.raw.ids
    }

    /// A loop device's backing file (the path sysfs gives), when it could be opened.
    pub fn backing_file(&self) -> Option<&Path> {
        self.raw.backing.as_ref().map(|b| b.path.as_path())
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
    /// discarding is advice. A file gets the punched range allocated again (unwritten, reads
    /// as zeroes), so a file area keeps its blocks: a later write there cannot run out of
    /// space.
    pub fn discard(&self, page: u64, count: u64) -> Result<(), DeviceError> {
        self.check_range(page, count)?;
        let (offset, len) = (page * PAGE_SIZE as u64, count * PAGE_SIZE as u64);
        if let Some(remote) = &self.remote {
            return match remote.trim(offset, len) {
                Ok(true) => {
                    self.counters.discarded();
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(DeviceError::io(&self.path, "discard", page, e)),
            };
        }
        let result = match self.raw.kind {
            AreaKind::BlockDevice => sys::discard_block(&self.raw.file, offset, len),
            AreaKind::Nbd => Ok(()),
            AreaKind::File => sys::punch_hole(&self.raw.file, offset, len).and_then(|()| {
                let (offset, len) = (offset as i64, len as i64);
                let keep = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
                nix::fcntl::fallocate(&self.raw.file, keep, offset, len).map_err(io::Error::from)
            }),
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
        if let Some(remote) = &self.remote {
            let pages = buf.pages() as u64;
            return self.accounted(IoOp::Read, page, pages, || {
                crate::nbd::blocking(self, remote, IoOp::Read, page, buf)
            });
        }
        self.blocking_io(IoOp::Read, page, buf.pages() as u64, |file, offset| {
            sys::read_full(file, buf.as_mut_slice(), offset)
        })
    }

    /// Writes `buf.pages()` pages at `page`, blocking, without an engine.
    pub fn write_pages(&self, page: u64, buf: &PageBuf) -> Result<(), DeviceError> {
        if let Some(remote) = &self.remote {
            let mut copy = buf.clone();
            return self.accounted(IoOp::Write, page, buf.pages() as u64, || {
                crate::nbd::blocking(self, remote, IoOp::Write, page, &mut copy)
            });
        }
        self.blocking_io(IoOp::Write, page, buf.pages() as u64, |file, offset| {
            sys::write_full(file, buf.as_slice(), offset)
        })
    }

    /// Flushes written data to stable storage (`fdatasync`).
    pub fn sync(&self) -> Result<(), DeviceError> {
        if let Some(remote) = &self.remote {
            return remote
                .flush()
                .map_err(|e| DeviceError::io(&self.path, "sync", 0, e));
        }
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
        self.accounted(op, page, pages, || {
            crate::engine::sync_io(self, op, page, pages, io)
        })
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
    pub fn remote(&self) -> Option<&crate::nbd::Remote> {
        self.remote.as_ref()
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
        let Some((file, name, offset)) = self.backing() else {
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
            file: name.clone(),
            size_bytes,
            needed_bytes,
        })
    }

    /// The file behind a local area whose size bounds it (its own, or a loop device's
    /// backing file), its path and where the area starts in it.
    fn backing(&self) -> Option<(&File, &PathBuf, u64)> {
        match (&self.raw.kind, &self.raw.backing) {
            (AreaKind::File, _) => Some((&self.raw.file, &self.path, 0)),
            (AreaKind::BlockDevice, Some(b)) => Some((&b.file, &b.path, b.offset)),
            (AreaKind::BlockDevice | AreaKind::Nbd, None) | (AreaKind::Nbd, Some(_)) => None,
        }
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
        let offset = self.backing().map_or(0, |(_, _, o)| o);
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

    pub(crate) fn file(&self) -> &File {
        &self.raw.file
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Keeps the blocks of a file area allocated (`fallocate`, keeping the size), so a write
/// to it cannot fail for want of space on a full file system. A file system that cannot
/// preallocate is no reason to refuse the area; one without room for it is.
fn allocate(file: &File, path: &Path, bytes: u64) -> Result<(), DeviceError> {
    use nix::fcntl::{FallocateFlags, fallocate};
    let len = i64::try_from(bytes).unwrap_or(i64::MAX);
    match fallocate(file, FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, len) {
        Ok(()) => Ok(()),
        Err(nix::Error::ENOSPC | nix::Error::EDQUOT) => Err(DeviceError::io(
            path,
            "allocate",
            0,
            io::Error::from_raw_os_error(libc::ENOSPC),
        )),
        Err(_) => Ok(()),
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

/// Bytes the area spans on its storage: the header page and the data pages.
fn area_bytes(header: &SwapHeader) -> u64 {
    (u64::from(header.last_page) + 1) * PAGE_SIZE as u64
}
