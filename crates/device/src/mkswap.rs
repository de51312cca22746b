//! `mkswap`: write a swap header on a device or file, like util-linux `mkswap`.
//!
//! Refuses storage in use, whatever `force` says: a block device held `O_EXCL` (mounted,
//! swapped on), a file or a loop device's backing file locked by a swapkit pager (see
//! [`crate::storage`]), storage the kernel swaps on, and a file under a loop device in use.
//! The lock is held while the header is written, so a swapon cannot start meanwhile.
//! Refuses also a device holding another filesystem or partition table signature unless
//! `force`, and a device too small for the 10 usable pages a swap area needs. With `check`, every page is read first and pages that fail are listed
//! as bad in the header (like `mkswap -c`).

use std::io;
use std::path::Path;

use crate::area::{DirectIo, OpenOptions, open_raw};
use crate::header::{MAX_BAD_PAGES, MIN_USABLE_PAGES, SwapHeader};
use crate::{DeviceError, PAGE_SIZE, PageBuf, sys};

/// What `mkswap` should write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MkswapOptions {
    /// At most 16 bytes are stored.
    pub label: Option<String>,
    /// A random one when `None`.
    pub uuid: Option<[u8; 16]>,
    /// Size of the area in pages (header included); the whole device when `None`. A regular
    /// file that is missing or shorter is created or extended to this size.
    pub pages: Option<u64>,
    /// Read every page first and list those that fail as bad.
    pub check: bool,
    /// Overwrite another filesystem's signature.
    pub force: bool,
}

/// How mkswap opens: buffered, as the one owner of the storage.
const EXCLUSIVE: OpenOptions = OpenOptions {
    direct: DirectIo::Off,
    exclusive: true,
    read_only: false,
};

/// Pages read to look for other signatures: btrfs keeps its superblock at 64 KiB.
pub(crate) const SIGNATURE_PROBE_PAGES: usize = 17;

/// Writes a swap header on `path` and returns it. `path` may be an NBD URI: the export's
/// size is the device's, and `pages` cannot grow it.
pub fn mkswap(path: impl AsRef<Path>, opts: &MkswapOptions) -> Result<SwapHeader, DeviceError> {
    let path = path.as_ref();
    if crate::nbd::is_uri(path) {
        return crate::nbd::mkswap(path, opts);
    }
    if let Some(pages) = opts.pages {
        prepare_file(path, pages)?;
    }
    let raw = open_raw(path, &EXCLUSIVE)?;
    // `raw` holds the storage (its lock) until the header is written.
    write_header(path, opts, raw.size_bytes, &LocalMedium(&raw.file))
}

/// What a header is written on: a local device or file, or a remote export.
pub(crate) trait Medium {
    fn read_at(&self, offset: u64, buf: &mut PageBuf) -> io::Result<()>;
    fn write_at(&self, offset: u64, buf: &PageBuf) -> io::Result<()>;
    /// Makes what was written durable.
    fn sync(&self) -> io::Result<()>;
}

/// A local block device or file, opened buffered.
struct LocalMedium<'a>(&'a std::fs::File);

impl Medium for LocalMedium<'_> {
    fn read_at(&self, offset: u64, buf: &mut PageBuf) -> io::Result<()> {
        sys::read_full(self.0, buf.as_mut_slice(), offset)
    }
    fn write_at(&self, offset: u64, buf: &PageBuf) -> io::Result<()> {
        sys::write_full(self.0, buf.as_slice(), offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

/// The body of mkswap on storage of `size_bytes` the caller holds: the size and signature
/// checks, the header (with bad pages when `opts.check`), written and synced.
pub(crate) fn write_header(
    path: &Path,
    opts: &MkswapOptions,
    size_bytes: u64,
    medium: &dyn Medium,
) -> Result<SwapHeader, DeviceError> {
    let device_pages = size_bytes / PAGE_SIZE as u64;
    let pages = opts.pages.unwrap_or(device_pages).min(u64::from(u32::MAX));
    if pages > device_pages || pages < MIN_USABLE_PAGES + 1 {
        let (why, needed_bytes) = if pages > device_pages {
            ("the requested size", pages * PAGE_SIZE as u64)
        } else {
            ("a swap area", (MIN_USABLE_PAGES + 1) * PAGE_SIZE as u64)
        };
        return Err(DeviceError::TooSmall {
            path: path.into(),
            size_bytes,
            needed_bytes,
            why,
        });
    }
    let mut start = PageBuf::new(SIGNATURE_PROBE_PAGES.min(device_pages as usize));
    medium
        .read_at(0, &mut start)
        .map_err(|e| DeviceError::io(path, "read", 0, e))?;
    if let Some(what) = foreign_signature(start.as_slice())
        && !opts.force
    {
        return Err(DeviceError::HasSignature {
            path: path.into(),
            what,
        });
    }
    let last_page = (pages - 1) as u32;
    let mut header = SwapHeader::new(last_page);
    if let Some(uuid) = opts.uuid {
        header.uuid = uuid;
    }
    header.label = opts.label.clone().unwrap_or_default();
    if opts.check {
        header.bad_pages = scan_bad_pages(medium, last_page);
        if header.bad_pages.len() > MAX_BAD_PAGES || header.usable_pages() < MIN_USABLE_PAGES {
            return Err(DeviceError::Io {
                path: path.into(),
                op: "check",
                page: 1,
                source: io::Error::other(format!("{} bad pages found", header.bad_pages.len())),
            });
        }
    }
    let mut page0 = PageBuf::new(1);
    header.write(page0.as_mut_slice());
    medium
        .write_at(0, &page0)
        .map_err(|e| DeviceError::io(path, "write header", 0, e))?;
    medium
        .sync()
        .map_err(|e| DeviceError::io(path, "sync", 0, e))?;
    Ok(header)
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

/// Reads every data page; those that fail are bad. Stops counting past what the header holds.
fn scan_bad_pages(medium: &dyn Medium, last_page: u32) -> Vec<u32> {
    let mut bad = Vec::new();
    let mut buf = PageBuf::new(1);
    for page in 1..=last_page {
        if medium
            .read_at(u64::from(page) * PAGE_SIZE as u64, &mut buf)
            .is_err()
        {
            bad.push(page);
            if bad.len() > MAX_BAD_PAGES {
                break;
            }
        }
    }
    bad
}

/// Names a filesystem, volume or partition-table signature in the first 64 KiB, if any.
/// An old swap signature is not foreign: mkswap rewrites swap areas without asking.
pub fn foreign_signature(start: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| start.get(offset..offset + magic.len()) == Some(magic);
    let known: [(usize, &[u8], &'static str); 11] = [
        (1080, &[0x53, 0xef], "ext2/3/4"),
        (0, b"XFSB", "xfs"),
        (65536 + 64, b"_BHRfS_M", "btrfs"),
        (0, b"LUKS\xba\xbe", "LUKS"),
        (0, b"hsqs", "squashfs"),
        (3, b"NTFS    ", "ntfs"),
        (82, b"FAT32   ", "vfat"),
        (54, b"FAT1", "vfat"),
        (512, b"EFI PART", "GPT partition table"),
        (32769, b"CD001", "iso9660"),
        (510, &[0x55, 0xaa], "DOS partition table"),
    ];
    known
        .iter()
        .find(|(offset, magic, _)| at(*offset, magic))
        .map(|&(_, _, what)| what)
}
