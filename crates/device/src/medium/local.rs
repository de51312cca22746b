//! The local medium: a block device or regular file, opened for paging (or formatting),
//! with its identities, its ownership (an `O_EXCL` open or an OFD lock, see
//! [`crate::storage`]) and, for a loop device, its backing file held open.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::options::{AreaId, AreaKind, DirectIo, OpenOptions};
use crate::buf::PageBuf;
use crate::error::DeviceError;
use crate::storage::{self, StorageId};
use crate::{PAGE_SIZE, loopdev, sys};

/// An opened block device or regular file.
#[derive(Debug)]
pub struct Local {
    path: PathBuf,
    pub(super) file: File,
    pub(super) kind: AreaKind,
    pub(super) id: AreaId,
    /// Every identity the storage has: its own first, then a loop device's backing file.
    pub(super) ids: Vec<StorageId>,
    /// A loop device's backing file, held open for its lock and its size.
    backing: Option<BackingFile>,
    pub(super) size_bytes: u64,
    pub(super) direct: bool,
}

/// How mkswap opens: buffered, as the one owner of the storage.
const EXCLUSIVE: OpenOptions = OpenOptions {
    direct: DirectIo::Off,
    exclusive: true,
    read_only: false,
};

/// How much of the start an open reads to find the header: enough to spot a 64 KiB-page
/// signature.
pub(super) const HEADER_PROBE_BYTES: u64 = 65536;

impl Local {
    /// Opens `path` for paging (see [`open_raw`]) and reads its first pages (up to
    /// [`HEADER_PROBE_BYTES`]; `None` when it holds less than one page).
    pub(super) fn open(
        path: &Path,
        opts: &OpenOptions,
    ) -> Result<(Local, Option<PageBuf>), DeviceError> {
        let mut local = open_raw(path, opts)?;
        let probe = read_probe(&local);
        let page0 = match probe {
            // Some filesystems accept O_DIRECT at open and refuse it at the first read. The
            // first open goes before the second: it holds the O_EXCL claim and the lock.
            Err(e)
                if local.direct
                    && opts.direct == DirectIo::Auto
                    && e.raw_os_error() == Some(libc::EINVAL) =>
            {
                drop(local);
                local = open_raw(
                    path,
                    &OpenOptions {
                        direct: DirectIo::Off,
                        ..opts.clone()
                    },
                )?;
                read_probe(&local)
            }
            other => other,
        }
        .map_err(|e| DeviceError::io(path, "read header", 0, e))?;
        Ok((local, page0))
    }

    /// Opens `path` to write a header on, buffered and as its one owner; with `pages`, a
    /// regular file that is missing or shorter is created or extended first.
    pub(super) fn format(path: &Path, pages: Option<u64>) -> Result<Local, DeviceError> {
        if let Some(pages) = pages {
            prepare_file(path, pages)?;
        }
        open_raw(path, &EXCLUSIVE)
    }

    /// Reads `buf.len()` bytes at byte `offset`.
    pub(super) fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        sys::read_full(&self.file, buf, offset)
    }

    /// Writes `buf` at byte `offset`.
    pub(super) fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        sys::write_full(&self.file, buf, offset)
    }

    /// `BLKDISCARD` on a block device; on a file a punched hole, allocated again (unwritten,
    /// reads as zeroes) so that a later write cannot run out of space. `Ok(false)` where
    /// the storage cannot discard.
    pub(super) fn discard(&self, offset: u64, len: u64) -> io::Result<bool> {
        let result = match self.kind {
            AreaKind::BlockDevice => sys::discard_block(&self.file, offset, len),
            AreaKind::Nbd => Ok(()),
            AreaKind::File => sys::punch_hole(&self.file, offset, len).and_then(|()| {
                let (offset, len) = (offset as i64, len as i64);
                let keep = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
                nix::fcntl::fallocate(&self.file, keep, offset, len).map_err(io::Error::from)
            }),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOTTY)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A file area's blocks, allocated for the `bytes` the area spans (see [`allocate`]).
    pub(super) fn prepare(&self, bytes: u64, read_only: bool) -> Result<(), DeviceError> {
        if self.kind == AreaKind::File && !read_only {
            allocate(&self.file, &self.path, bytes)?;
        }
        Ok(())
    }

    /// A loop device's backing file, when it could be opened.
    pub(super) fn backing_path(&self) -> Option<&Path> {
        self.backing.as_ref().map(|b| b.path.as_path())
    }

    /// The file whose size bounds the medium (its own, or a loop device's backing file),
    /// its path and where the medium starts in it.
    pub(super) fn bounding_file(&self) -> Option<(&File, &Path, u64)> {
        match (&self.kind, &self.backing) {
            (AreaKind::File, _) => Some((&self.file, &self.path, 0)),
            (AreaKind::BlockDevice, Some(b)) => Some((&b.file, &b.path, b.offset)),
            (AreaKind::BlockDevice | AreaKind::Nbd, None) | (AreaKind::Nbd, Some(_)) => None,
        }
    }
}

/// The file behind a loop device, opened by the path sysfs gives and checked to be the
/// inode the device uses.
#[derive(Debug)]
struct BackingFile {
    file: File,
    path: PathBuf,
    /// Where the device starts in the file (`lo_offset`).
    offset: u64,
    /// Opened read-only (it holds a read lock then).
    read_only: bool,
}

/// Opens `path` for paging: checks what it is, takes `O_EXCL` on block devices, tries
/// `O_DIRECT` as asked, and learns the size. Every refusal has its own error variant.
///
/// With `opts.exclusive` it also makes the caller the storage's one owner (see
/// [`crate::storage`]): storage the kernel swaps on or a busy loop device stands on is
/// refused naming that other path, and a regular file or a loop device's backing file gets
/// an OFD lock that lives as long as the returned device.
fn open_raw(path: &Path, opts: &OpenOptions) -> Result<Local, DeviceError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DeviceError::NotFound { path: path.into() },
        _ => DeviceError::io(path, "stat", 0, e),
    })?;
    let kind = kind_of(path, &meta)?;
    // (`kind_of` never gives `Nbd`: URIs open as a remote medium.)
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
    Ok(Local {
        path: path.into(),
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
fn read_probe(local: &Local) -> io::Result<Option<PageBuf>> {
    let pages = (local.size_bytes.min(HEADER_PROBE_BYTES) / PAGE_SIZE as u64) as usize;
    if pages == 0 {
        return Ok(None);
    }
    let mut buf = PageBuf::new(pages);
    local.read_at(0, buf.as_mut_slice())?;
    Ok(Some(buf))
}

/// Creates a missing regular file, or extends a shorter one, to `pages` pages.
fn prepare_file(path: &Path, pages: u64) -> Result<(), DeviceError> {
    let bytes = pages.saturating_mul(PAGE_SIZE as u64);
    let meta = match std::fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(DeviceError::io(path, "stat", 0, e)),
    };
    if meta
        .as_ref()
        .is_some_and(|m| !m.is_file() || m.len() >= bytes)
    {
        return Ok(());
    }
    // An existing file is only grown by its one owner: not under a live area.
    let file = match meta {
        Some(_) => open_raw(path, &EXCLUSIVE)?.file,
        None => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| DeviceError::io(path, "create", 0, e))?,
    };
    file.set_len(bytes)
        .map_err(|e| DeviceError::io(path, "resize", 0, e))
}
