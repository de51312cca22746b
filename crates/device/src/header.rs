//! The swap header in page 0, byte for byte the layout util-linux `mkswap` writes and the
//! Linux kernel reads (`union swap_header` in `include/linux/swap.h`):
//!
//! | offset | field |
//! |---|---|
//! | 0..1024 | boot bits, left zero |
//! | 1024 | `version` (u32, 1) |
//! | 1028 | `last_page` (u32): the last page index of the area |
//! | 1032 | `nr_badpages` (u32) |
//! | 1036 | `uuid[16]` |
//! | 1052 | `volume_name[16]`, NUL-padded |
//! | 1536 | `badpages[nr_badpages]` (u32 each) |
//! | `PAGE_SIZE - 10` | `SWAPSPACE2` |
//!
//! Integers are host-endian, as mkswap writes them. Parsing never panics, whatever the bytes.

use crate::PAGE_SIZE;

const VERSION_OFFSET: usize = 1024;
const LAST_PAGE_OFFSET: usize = 1028;
const NR_BADPAGES_OFFSET: usize = 1032;
const UUID_OFFSET: usize = 1036;
const LABEL_OFFSET: usize = 1052;
const LABEL_LEN: usize = 16;
const BADPAGES_OFFSET: usize = 1536;
const MAGIC_LEN: usize = 10;
const MAGIC: &[u8; MAGIC_LEN] = b"SWAPSPACE2";
const OLD_MAGIC: &[u8; MAGIC_LEN] = b"SWAP-SPACE";

/// The most bad pages the list in page 0 can hold (637 at 4 KiB pages).
pub const MAX_BAD_PAGES: usize = (PAGE_SIZE - BADPAGES_OFFSET - MAGIC_LEN) / 4;

/// The fewest usable pages a swap area may have (util-linux's `MIN_SWAP_PAGES`).
pub const MIN_USABLE_PAGES: u64 = 10;

/// Other page sizes whose signature we recognise, to say so instead of "not a swap area".
const OTHER_PAGE_SIZES: [usize; 4] = [8192, 16384, 32768, 65536];

/// Why page 0 is not a header we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header page is {len} bytes, need {PAGE_SIZE}")]
    Short { len: usize },

    #[error("not a swap area; run `swapctl mkswap`")]
    NoSignature,

    #[error("old-style swap area (SWAP-SPACE, version 0) is not supported; run `swapctl mkswap`")]
    OldSignature,

    #[error("swap area made for {page_size}-byte pages; this system uses {PAGE_SIZE}")]
    PageSize { page_size: usize },

    #[error("swap header of the other byte order (made on a machine of the other endianness)")]
    ByteOrder,

    #[error("unsupported swap header version {version} (expected 1)")]
    Version { version: u32 },

    #[error("{count} bad pages listed, at most {MAX_BAD_PAGES} fit in the header")]
    TooManyBadPages { count: u32 },

    #[error("bad page {page} is outside the data pages 1..={last_page}")]
    BadPageOutOfRange { page: u32, last_page: u32 },

    #[error("only {usable} usable pages, a swap area needs at least {MIN_USABLE_PAGES}")]
    TooFewPages { usable: u64 },

    #[error("last page {last_page} is past the end of the device ({device_pages} pages)")]
    PastEnd { last_page: u32, device_pages: u64 },
}

/// The fields of a swap header that mean something to us.
///
/// Invariant after [`SwapHeader::read`]: every bad page is in `1..=last_page`, there are
/// at most [`MAX_BAD_PAGES`] of them, and at least [`MIN_USABLE_PAGES`] pages are usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapHeader {
    /// The last page index of the area: data pages are `1..=last_page`.
    pub last_page: u32,
    /// Pages never to be used, each in `1..=last_page`.
    pub bad_pages: Vec<u32>,
    pub uuid: [u8; 16],
    /// At most 16 bytes are stored; [`SwapHeader::write`] cuts a longer label at a char boundary.
    pub label: String,
}

impl SwapHeader {
    /// A header for an area whose last page is `last_page`: a random (version 4) uuid,
    /// an empty label, no bad pages.
    pub fn new(last_page: u32) -> SwapHeader {
        SwapHeader {
            last_page,
            bad_pages: Vec::new(),
            uuid: random_uuid(),
            label: String::new(),
        }
    }

    /// Parses page 0. `page` must hold at least `PAGE_SIZE` bytes; when it holds more (up to
    /// 64 KiB), a header made for a larger page size is recognised and reported as such.
    pub fn read(page: &[u8]) -> Result<SwapHeader, HeaderError> {
        if page.len() < PAGE_SIZE {
            return Err(HeaderError::Short { len: page.len() });
        }
        let magic = &page[PAGE_SIZE - MAGIC_LEN..PAGE_SIZE];
        if magic == OLD_MAGIC {
            return Err(HeaderError::OldSignature);
        }
        if magic != MAGIC {
            for size in OTHER_PAGE_SIZES {
                if page.len() >= size && &page[size - MAGIC_LEN..size] == MAGIC {
                    return Err(HeaderError::PageSize { page_size: size });
                }
            }
            return Err(HeaderError::NoSignature);
        }
        let version = u32_at(page, VERSION_OFFSET);
        if version != 1 {
            if version.swap_bytes() == 1 {
                return Err(HeaderError::ByteOrder);
            }
            return Err(HeaderError::Version { version });
        }
        let last_page = u32_at(page, LAST_PAGE_OFFSET);
        let count = u32_at(page, NR_BADPAGES_OFFSET);
        if count as usize > MAX_BAD_PAGES {
            return Err(HeaderError::TooManyBadPages { count });
        }
        let mut bad_pages = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let bad = u32_at(page, BADPAGES_OFFSET + 4 * i);
            if bad == 0 || bad > last_page {
                return Err(HeaderError::BadPageOutOfRange {
                    page: bad,
                    last_page,
                });
            }
            bad_pages.push(bad);
        }
        bad_pages.sort_unstable();
        bad_pages.dedup();
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&page[UUID_OFFSET..UUID_OFFSET + 16]);
        let name = &page[LABEL_OFFSET..LABEL_OFFSET + LABEL_LEN];
        let end = name.iter().position(|&b| b == 0).unwrap_or(LABEL_LEN);
        let label = String::from_utf8_lossy(&name[..end]).into_owned();
        let header = SwapHeader {
            last_page,
            bad_pages,
            uuid,
            label,
        };
        let usable = header.usable_pages();
        if usable < MIN_USABLE_PAGES {
            return Err(HeaderError::TooFewPages { usable });
        }
        Ok(header)
    }

    /// Fills `page` (at least `PAGE_SIZE` bytes; only the first page is touched) with this
    /// header, zeroing everything else in it, as mkswap does. At most [`MAX_BAD_PAGES`] bad
    /// pages are written; the label is cut to 16 bytes.
    pub fn write(&self, page: &mut [u8]) {
        let Some(page) = page.get_mut(..PAGE_SIZE) else {
            return;
        };
        page.fill(0);
        put_u32(page, VERSION_OFFSET, 1);
        put_u32(page, LAST_PAGE_OFFSET, self.last_page);
        let bad = &self.bad_pages[..self.bad_pages.len().min(MAX_BAD_PAGES)];
        put_u32(page, NR_BADPAGES_OFFSET, bad.len() as u32);
        page[UUID_OFFSET..UUID_OFFSET + 16].copy_from_slice(&self.uuid);
        let label = self.label_bytes();
        page[LABEL_OFFSET..LABEL_OFFSET + label.len()].copy_from_slice(label);
        for (i, &b) in bad.iter().enumerate() {
            put_u32(page, BADPAGES_OFFSET + 4 * i, b);
        }
        page[PAGE_SIZE - MAGIC_LEN..].copy_from_slice(MAGIC);
    }

    /// Pages that can hold data: `last_page` minus the bad pages (page 0 is the header).
    pub fn usable_pages(&self) -> u64 {
        u64::from(self.last_page).saturating_sub(self.bad_pages.len() as u64)
    }

    /// Checks that the area fits a device of `device_bytes` bytes.
    pub fn check_fits(&self, device_bytes: u64) -> Result<(), HeaderError> {
        let device_pages = device_bytes / PAGE_SIZE as u64;
        if u64::from(self.last_page) >= device_pages {
            return Err(HeaderError::PastEnd {
                last_page: self.last_page,
                device_pages,
            });
        }
        Ok(())
    }

    /// The uuid in the usual 8-4-4-4-12 hex form.
    pub fn uuid_string(&self) -> String {
        format_uuid(&self.uuid)
    }

    /// The label bytes as stored: at most 16, cut at a char boundary.
    fn label_bytes(&self) -> &[u8] {
        let mut end = self.label.len().min(LABEL_LEN);
        while !self.label.is_char_boundary(end) {
            end -= 1;
        }
        &self.label.as_bytes()[..end]
    }
}

// The text forms live with the other text helpers; re-exported where the header is.
pub use crate::units::{format_uuid, parse_uuid};

/// A random version-4 uuid from the kernel's generator; when that fails (no `/dev/urandom`
/// in a chroot), one made from the clock and the pid, which is unique enough for a label.
fn random_uuid() -> [u8; 16] {
    let mut uuid = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut uuid))
        .is_ok();
    if !filled {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        uuid = mixed.to_le_bytes();
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

fn u32_at(page: &[u8], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&page[offset..offset + 4]);
    u32::from_ne_bytes(b)
}

fn put_u32(page: &mut [u8], offset: usize, value: u32) {
    page[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
}
