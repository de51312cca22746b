//! The one error type of the crate: every variant names the path it failed on, and its
//! `Display` is a single line (`swapctl` prints it as `swapctl: <error>`).

use std::io;
use std::path::PathBuf;

use crate::header::HeaderError;

/// What went wrong with a swap area, a loop device or the I/O engine.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{}: no such file or device", path.display())]
    NotFound { path: PathBuf },

    #[error("{}: is a directory, not a block device or a regular file", path.display())]
    IsDirectory { path: PathBuf },

    /// A character device, a FIFO, a socket: nothing we can page to.
    #[error("{}: is a {what}, not a block device or a regular file", path.display())]
    NotBlockOrFile { path: PathBuf, what: &'static str },

    #[error("{}: read-only; a swap area must be writable", path.display())]
    ReadOnly { path: PathBuf },

    /// `O_EXCL` on a block device failed with `EBUSY`.
    #[error("{}: device in use (mounted, kernel swap, or another daemon)", path.display())]
    InUse { path: PathBuf },

    /// The storage is in use under another name: a loop device held exclusively on the
    /// same file (mounted, swapped on by the kernel or another pager).
    #[error("{}: in use as {}", path.display(), other.display())]
    InUseAs { path: PathBuf, other: PathBuf },

    /// The kernel swaps on this storage (`/proc/swaps` lists `other`).
    #[error("{}: in use by the kernel's swap as {}", path.display(), other.display())]
    KernelSwap { path: PathBuf, other: PathBuf },

    /// Another swapkit pager, daemon or mkswap holds the storage's lock (an OFD lock on
    /// `file`: the file itself, or a loop device's backing file).
    #[error("{}: in use by a swapkit pager or mkswap ({} is locked)", path.display(), file.display())]
    Locked { path: PathBuf, file: PathBuf },

    /// `swapctl loop attach` of a file that already has a loop device, without `--shared`.
    #[error("{}: already attached as {}", path.display(), device.display())]
    AlreadyAttached { path: PathBuf, device: PathBuf },

    /// The file behind a live area (the area's own file, or a loop device's backing file)
    /// is now shorter than the area: what was past its end is gone, and reads there would
    /// return zeroes. Every I/O that reaches past the cut fails from then on.
    #[error("{}: backing file {} shrank to {size_bytes} bytes, the area needs {needed_bytes}", path.display(), file.display())]
    Shrunk {
        path: PathBuf,
        file: PathBuf,
        size_bytes: u64,
        needed_bytes: u64,
    },

    #[error("{}: too small: {size_bytes} bytes, {why} needs {needed_bytes}", path.display())]
    TooSmall {
        path: PathBuf,
        size_bytes: u64,
        needed_bytes: u64,
        why: &'static str,
    },

    #[error("{}: not a swap area; run `swapctl mkswap`", path.display())]
    NoHeader { path: PathBuf },

    #[error("{}: {source}", path.display())]
    Header { path: PathBuf, source: HeaderError },

    /// A request for pages outside `1..=last_page`, or for no pages at all.
    #[error("{}: pages {page}..+{count} outside the data pages 1..={last_page}", path.display())]
    OutOfRange {
        path: PathBuf,
        page: u64,
        count: u64,
        last_page: u64,
    },

    /// The device cannot do whole-page I/O (logical block size), or a buffer is not page sized.
    #[error("{}: {what}", path.display())]
    Unaligned { path: PathBuf, what: String },

    /// `DirectIo::Require` on a filesystem without `O_DIRECT` (tmpfs, for example).
    #[error("{}: O_DIRECT is not supported here (direct I/O was required)", path.display())]
    NoDirectIo { path: PathBuf },

    /// mkswap found another signature on the device and `force` was not given.
    #[error("{}: holds {} {what} signature; use --force to overwrite it", path.display(), article(what))]
    HasSignature { path: PathBuf, what: &'static str },

    /// The cause with its errno's name first (`EIO: Input/output error (os error 5)`).
    #[error("{}: {op} at page {page} failed: {}", path.display(), with_errno(source))]
    Io {
        path: PathBuf,
        op: &'static str,
        page: u64,
        source: io::Error,
    },

    /// The device answered `ENXIO`: it is gone (unplugged, loop device detached).
    #[error("{}: device vanished (ENXIO) during {op} at page {page}", path.display())]
    Vanished {
        path: PathBuf,
        op: &'static str,
        page: u64,
    },

    #[error("{}: loop device {what}: {source}", path.display())]
    Loop {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },

    /// A remote (NBD) area could not be reached or used: bad URI, no libnbd, no server.
    #[error("{}: {what}", path.display())]
    Remote { path: PathBuf, what: String },

    /// The I/O engine could not start or was asked for something it cannot do.
    #[error("I/O engine: {what}: {source}")]
    Engine { what: String, source: io::Error },
}

/// "a" or "an" before a signature's name ([`crate::mkswap::foreign_signature`]), as it is
/// read aloud: an ext2/3/4, an iso9660, an xfs and an ntfs (spelled out), a btrfs, a LUKS.
fn article(what: &str) -> &'static str {
    if what.starts_with(['a', 'e', 'i', 'o', 'u', 'x', 'n']) {
        "an"
    } else {
        "a"
    }
}

impl DeviceError {
    /// The error of an I/O `op` at `page` of `path`: `ENXIO` becomes [`DeviceError::Vanished`].
    pub fn io(path: impl Into<PathBuf>, op: &'static str, page: u64, source: io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENXIO) {
            DeviceError::Vanished { path, op, page }
        } else {
            DeviceError::Io {
                path,
                op,
                page,
                source,
            }
        }
    }

    /// The error of a wait for a completion whose callback was dropped without running
    /// (an engine thread died): the one wording every waiter uses.
    pub fn completion_lost() -> Self {
        DeviceError::Engine {
            what: "completion lost (engine thread died)".into(),
            source: io::Error::other("callback dropped"),
        }
    }

    /// The errno behind this error, when there is one (tests and the pager's error policy).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            DeviceError::Io { source, .. }
            | DeviceError::Loop { source, .. }
            | DeviceError::Engine { source, .. } => source.raw_os_error(),
            DeviceError::Vanished { .. } => Some(libc::ENXIO),
            _ => None,
        }
    }
}

/// The symbolic name of an errno an I/O on swap storage may end with (`EIO`, `ENOSPC`,
/// `ECONNRESET`, ...), for the admin's lines; `None` for 0 and the rest.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EIO => "EIO",
        libc::ENOSPC => "ENOSPC",
        libc::ENXIO => "ENXIO",
        libc::ENODEV => "ENODEV",
        libc::EROFS => "EROFS",
        libc::EDQUOT => "EDQUOT",
        libc::EFBIG => "EFBIG",
        libc::EINVAL => "EINVAL",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EAGAIN => "EAGAIN",
        libc::EPIPE => "EPIPE",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENOENT => "ENOENT",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ESTALE => "ESTALE",
        _ => return None,
    })
}

/// `e` with the name of its errno first, where it has one the admin should recognise.
pub fn with_errno(e: &io::Error) -> String {
    match e.raw_os_error().and_then(errno_name) {
        Some(name) => format!("{name}: {e}"),
        None => e.to_string(),
    }
}
