//! What a medium is and how to open it: a leaf the media, the area and mkswap share.

/// Whether to open with `O_DIRECT` (bypassing the page cache, as swap must to measure and
/// to not double-cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirectIo {
    /// `O_DIRECT` when the filesystem supports it, buffered I/O otherwise (tmpfs).
    #[default]
    Auto,
    /// `O_DIRECT` or a [`DeviceError::NoDirectIo`](crate::DeviceError::NoDirectIo) error.
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
