//! The pager's one error type: each variant says what failed and on which device or object.

use std::path::PathBuf;

use device::DeviceError;

/// What went wrong in a pager operation. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum PagerError {
    /// The configuration cannot work (for example `max_cluster = 0`).
    #[error("invalid pager configuration: {what}")]
    Config { what: String },

    /// Opening an area, starting the engine, or an I/O failed in the device layer.
    #[error(transparent)]
    Device(#[from] DeviceError),

    /// The storage is already swapped on by this pager, under this path (`already on`) or
    /// `other`.
    #[error("{}: {}", path.display(), already_on_text(path, other, *id))]
    AlreadyOn {
        path: PathBuf,
        other: PathBuf,
        id: u32,
    },

    /// The area's swap header has the UUID of an area already on: the same storage reached
    /// another way (a relay, a copy of the URI the identity cannot see through).
    #[error("{}: in use as {} (swap device {id}): the same swap header UUID {uuid}", path.display(), other.display())]
    SameUuid {
        path: PathBuf,
        other: PathBuf,
        id: u32,
        uuid: String,
    },

    /// Global block numbers are `u32` (16 TiB of 4 KiB pages).
    #[error("{}: {pages} more pages would not fit u32 block numbers (free numbering from {first})", path.display())]
    TooBig {
        path: PathBuf,
        pages: u64,
        first: u64,
    },

    /// A swapon of an area larger than `PagerConfig::max_area_bytes` (its header says so):
    /// refused before its allocator is built.
    #[error("{}: a swap area of {} is larger than the largest allowed here ({}; the daemon's max_area)", path.display(), device::units::human(*bytes), device::units::human(*max))]
    AreaTooLarge { path: PathBuf, bytes: u64, max: u64 },

    /// A swapon of storage that has room for the header only.
    #[error("{}: swap area has no data pages", path.display())]
    NoDataPages { path: PathBuf },

    #[error("no swap device {id}")]
    NoSuchDevice { id: u32 },

    #[error("swapoff {}: already being removed", path.display())]
    Busy { path: PathBuf },

    /// `swapoff` checks up front that the other areas can hold the area's pages.
    #[error("swapoff {}: not enough free swap: need {need} pages ({}), have {have} ({})", path.display(), pages_text(*need), pages_text(*have))]
    NotEnoughSpace { path: PathBuf, need: u64, have: u64 },

    /// A failed device can only be removed by a forced swapoff, which drops its pages.
    #[error("swapoff {}: device failed; {pages} pages on it cannot be read (force drops them)", path.display())]
    DeviceFailed { path: PathBuf, pages: u64 },

    /// A page could not be read back during a swapoff without force; the area stays on.
    #[error("swapoff {}: page of object {object} at {pindex} could not be read: {source}; the device stays on", path.display())]
    SwapoffRead {
        path: PathBuf,
        object: String,
        pindex: u64,
        source: DeviceError,
    },

    /// swapoff found no page left on the area, yet blocks on it stayed in use.
    #[error("swapoff {}: {blocks} blocks stay in use with no page on them; the device stays on", path.display())]
    Stuck { path: PathBuf, blocks: u64 },

    /// `getpages` of a page that has no swap block (the seed's `VM_PAGER_FAIL`).
    #[error("object {object}: page {pindex} is not on swap")]
    NotOnSwap { object: String, pindex: u64 },

    /// A read failed (the seed's `VM_PAGER_ERROR`): never reported as zeroes.
    #[error("object {object}: reading page {pindex} failed: {source}")]
    Read {
        object: String,
        pindex: u64,
        source: DeviceError,
    },

    /// The page's checksum did not match what was read (storage returned other bytes: a
    /// truncated or overwritten backing file, a lost or misdirected write). The bytes are
    /// never returned. `device` and `block` (the area's page, as `Pager::locate`) say where.
    #[error(
        "object {object}: page {pindex} is corrupt on swap device {device} block {block} (checksum mismatch)"
    )]
    Corrupt {
        object: String,
        pindex: u64,
        device: crate::DeviceId,
        block: u64,
    },

    /// The page's last write was async (acknowledged with `Pend`) and failed on every area:
    /// its bytes are gone, and the older copy is not handed out in their place.
    #[error(
        "object {object}: page {pindex} was lost: its last (async) write failed on every swap device"
    )]
    WriteLost { object: String, pindex: u64 },

    /// A forced swapoff removed the device that held the page while it could not be read
    /// (`SwapoffReport::lost` counted it): its bytes are gone.
    #[error("object {object}: page {pindex} was lost with swap device {device} (forced swapoff)")]
    Dropped {
        object: String,
        pindex: u64,
        device: crate::DeviceId,
    },

    /// The file behind the area that held the page was truncated below it; a swapoff
    /// (`SwapoffReport::lost` counted it) found it gone: its bytes are gone.
    #[error(
        "object {object}: page {pindex} was lost: the backing file of swap device {device} was truncated below it"
    )]
    Truncated {
        object: String,
        pindex: u64,
        device: crate::DeviceId,
    },

    /// A write failed on every area that could take it (a `strategy` write, a swapoff
    /// rewrite); the page keeps its previous copy. `source` is the last device error, when
    /// one is known (`putpages` reports only `PageResult::Error` per page).
    #[error("object {object}: writing page {pindex} failed")]
    Write {
        object: String,
        pindex: u64,
        #[source]
        source: Option<DeviceError>,
    },

    /// No swap space for a page (`reserve` or a `strategy` write).
    #[error("object {object}: no swap space for page {pindex}")]
    NoSpace { object: String, pindex: u64 },

    /// `strategy` with an offset or length that is not a multiple of the page size (`EINVAL`).
    #[error("object {object}: I/O at byte {offset} of {len} bytes is not page aligned (EINVAL)")]
    Unaligned {
        object: String,
        offset: u64,
        len: u64,
    },

    /// A request past the object's size, or a buffer of the wrong length.
    #[error("object {object}: {what}")]
    BadRequest { object: String, what: String },
}

/// A count of pages as a size, for messages: `256M`.
fn pages_text(pages: u64) -> String {
    device::units::human(pages.saturating_mul(device::PAGE_SIZE as u64))
}

/// The reason of [`PagerError::AlreadyOn`]: "already on" when it is on under the same
/// path, else the name it is on as.
fn already_on_text(path: &std::path::Path, other: &std::path::Path, id: u32) -> String {
    // As spelled: `Path`'s own equality reads `a//b` and `a/./b` as `a/b`, and an alias of an
    // NBD socket spelled so must name the area it is on as.
    if path.as_os_str() == other.as_os_str() {
        format!("already on (swap device {id})")
    } else {
        format!("in use as {} (swap device {id})", other.display())
    }
}
