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

use crate::PAGE_SIZE;
use crate::buf::PageBuf;
use crate::error::DeviceError;
use crate::header::{MAX_BAD_PAGES, MIN_USABLE_PAGES, SwapHeader};
use crate::medium::Medium;

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

/// Pages read to look for other signatures: btrfs keeps its superblock at 64 KiB.
pub(crate) const SIGNATURE_PROBE_PAGES: usize = 17;

/// Writes a swap header on `path` and returns it. `path` may be an NBD URI: the export's
/// size is the device's, and `pages` cannot grow it.
pub fn mkswap(path: impl AsRef<Path>, opts: &MkswapOptions) -> Result<SwapHeader, DeviceError> {
    let path = path.as_ref();
    let medium = Medium::format(path, opts.pages)?;
    // `medium` holds the storage (its lock) until the header is written.
    write_header(path, opts, &medium)
}

/// The body of mkswap on the medium the caller holds: the size and signature checks, the
/// header (with bad pages when `opts.check`), written and synced.
fn write_header(
    path: &Path,
    opts: &MkswapOptions,
    medium: &Medium,
) -> Result<SwapHeader, DeviceError> {
    let size_bytes = medium.size_bytes();
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
        .sync_all()
        .map_err(|e| DeviceError::io(path, "sync", 0, e))?;
    Ok(header)
}

/// Reads every data page; those that fail are bad. Stops counting past what the header holds.
fn scan_bad_pages(medium: &Medium, last_page: u32) -> Vec<u32> {
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
