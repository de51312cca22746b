//! The medium an area lives on, and the one place that knows there is more than one kind.
//!
//! A [`Medium`] is a [`Local`] block device or regular file, or a [`Remote`] NBD export. It
//! is opened once (its identities taken, its ownership held, its first pages read), owned
//! by its [`SwapArea`](crate::SwapArea), and answers the byte-level operations everything
//! above needs whatever it is: reads and writes that may touch page 0 (the header, mkswap),
//! discard, sync, its size and identity. The engine matches on it once, to hand an I/O to
//! the peer that serves the medium (io_uring or the thread pool for a local one, the
//! export's own connections for a remote one).
//!
//! A new medium (a compressed tier, say) is a new variant here with its own module beside
//! `local` and `nbd`, and an engine peer for its I/O: nothing else matches on the kind.

mod local;
pub(crate) mod options;

use std::fs::File;
use std::io;
use std::path::Path;

use local::HEADER_PROBE_BYTES;
pub use local::Local;
use options::{AreaId, AreaKind, OpenOptions};

use crate::PAGE_SIZE;
use crate::buf::PageBuf;
use crate::error::DeviceError;
use crate::nbd::Remote;
use crate::nbd::uri::is_uri;
use crate::storage::{self, StorageId};

/// Where an area's pages are stored.
#[derive(Debug)]
pub enum Medium {
    /// A block device or regular file on this machine.
    Local(Local),
    /// An export on an NBD server, through its own connections.
    Remote(Export),
}

/// A remote medium: the connections to one export, and its identities (taken from the URI:
/// NBD has no lock, so the pager refuses the same export twice by them).
#[derive(Debug)]
pub struct Export {
    remote: Remote,
    id: AreaId,
    ids: Vec<StorageId>,
}

impl Export {
    /// Connects to the export `path` names (see [`Remote`]).
    fn open(path: &Path, read_only: bool) -> Result<Export, DeviceError> {
        let remote = Remote::open(path, read_only)?;
        let ids = storage::remote_ids(remote.uri());
        let id = AreaId {
            dev: 0,
            ino: remote.uri().storage_key(),
        };
        Ok(Export { remote, id, ids })
    }

    /// The export's connections.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }
}

impl Medium {
    /// Opens what `path` names for paging (an NBD URI or a local path) and reads its first
    /// pages, where the header is; `None` when it holds less than one page.
    pub(crate) fn open(
        path: &Path,
        opts: &OpenOptions,
    ) -> Result<(Medium, Option<PageBuf>), DeviceError> {
        if !is_uri(path) {
            let (local, page0) = Local::open(path, opts)?;
            return Ok((Medium::Local(local), page0));
        }
        // No lock: NBD has none; the pager refuses the same export twice by its identity.
        let medium = Medium::Remote(Export::open(path, opts.read_only)?);
        let pages = (medium.size_bytes().min(HEADER_PROBE_BYTES) / PAGE_SIZE as u64) as usize;
        if pages == 0 {
            return Ok((medium, None));
        }
        let mut buf = PageBuf::new(pages);
        medium
            .read_at(0, &mut buf)
            .map_err(|e| DeviceError::io(path, "read header", 0, e))?;
        Ok((medium, Some(buf)))
    }

    /// Opens what `path` names to write a header on, as its one owner (see
    /// [`crate::mkswap`]): a local one buffered, and with `pages` a regular file created or
    /// extended to that size; a remote export as it is (`pages` cannot grow it).
    pub(crate) fn format(path: &Path, pages: Option<u64>) -> Result<Medium, DeviceError> {
        if is_uri(path) {
            return Ok(Medium::Remote(Export::open(path, false)?));
        }
        Ok(Medium::Local(Local::format(path, pages)?))
    }

    /// The connections of a remote medium.
    pub fn remote(&self) -> Option<&Remote> {
        match self {
            Medium::Local(_) => None,
            Medium::Remote(e) => Some(&e.remote),
        }
    }

    /// Whether a blocking I/O sleeps the area's injected latency first: not on a remote
    /// medium, whose I/O is its connections' (they serve many requests and cannot sleep for
    /// one).
    pub(crate) fn sleeps_injected_latency(&self) -> bool {
        match self {
            Medium::Local(_) => true,
            Medium::Remote(_) => false,
        }
    }

    /// The file a local medium's I/O goes to; `None` for a remote one.
    pub(crate) fn file(&self) -> Option<&File> {
        match self {
            Medium::Local(l) => Some(&l.file),
            Medium::Remote(_) => None,
        }
    }

    pub fn kind(&self) -> AreaKind {
        match self {
            Medium::Local(l) => l.kind,
            Medium::Remote(_) => AreaKind::Nbd,
        }
    }

    pub fn id(&self) -> AreaId {
        match self {
            Medium::Local(l) => l.id,
            Medium::Remote(e) => e.id,
        }
    }

    /// Every identity of the storage: its own first, then for a loop device its backing
    /// file's; an export's, one per spelling of its server.
    pub fn storage(&self) -> &[StorageId] {
        match self {
            Medium::Local(l) => &l.ids,
            Medium::Remote(e) => &e.ids,
        }
    }

    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        match self {
            Medium::Local(l) => l.size_bytes,
            Medium::Remote(e) => e.remote.size_bytes(),
        }
    }

    /// Whether `O_DIRECT` is in use (never on a remote medium).
    pub fn direct_io(&self) -> bool {
        match self {
            Medium::Local(l) => l.direct,
            Medium::Remote(_) => false,
        }
    }

    /// A loop device's backing file (the path sysfs gives), when it could be opened.
    pub fn backing_file(&self) -> Option<&Path> {
        match self {
            Medium::Local(l) => l.backing_path(),
            Medium::Remote(_) => None,
        }
    }

    /// Reads `buf` at byte `offset` (page 0 included), blocking.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut PageBuf) -> io::Result<()> {
        match self {
            Medium::Local(l) => l.read_at(offset, buf.as_mut_slice()),
            Medium::Remote(e) => e.remote.read_at(offset, buf),
        }
    }

    /// Writes `buf` at byte `offset` (page 0 included), blocking.
    pub(crate) fn write_at(&self, offset: u64, buf: &PageBuf) -> io::Result<()> {
        match self {
            Medium::Local(l) => l.write_at(offset, buf.as_slice()),
            Medium::Remote(e) => e.remote.write_at(offset, buf),
        }
    }

    /// Makes written data durable: `fdatasync`, or NBD `FLUSH`.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        match self {
            Medium::Local(l) => l.file.sync_data(),
            Medium::Remote(e) => e.remote.flush(),
        }
    }

    /// Makes everything written durable, metadata included (mkswap): `fsync`, or NBD
    /// `FLUSH`.
    pub(crate) fn sync_all(&self) -> io::Result<()> {
        match self {
            Medium::Local(l) => l.file.sync_all(),
            Medium::Remote(e) => e.remote.flush(),
        }
    }

    /// Tells the storage that `len` bytes at `offset` hold nothing; `Ok(false)` where it
    /// cannot be told (discarding is advice).
    pub(crate) fn discard(&self, offset: u64, len: u64) -> io::Result<bool> {
        match self {
            Medium::Local(l) => l.discard(offset, len),
            Medium::Remote(e) => e.remote.trim(offset, len),
        }
    }

    /// Readies a freshly opened medium for an area spanning `bytes`: a file area's blocks
    /// are allocated (unless `read_only`).
    pub(crate) fn prepare(&self, bytes: u64, read_only: bool) -> Result<(), DeviceError> {
        match self {
            Medium::Local(l) => l.prepare(bytes, read_only),
            Medium::Remote(_) => Ok(()),
        }
    }

    /// The file whose size bounds a local medium (its own, or a loop device's backing
    /// file), its path and where the medium starts in it; `None` where no file bounds it.
    pub(crate) fn bounding_file(&self) -> Option<(&File, &Path, u64)> {
        match self {
            Medium::Local(l) => l.bounding_file(),
            Medium::Remote(_) => None,
        }
    }
}
