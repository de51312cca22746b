//! What a pager is built with and what its device operations take and return.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The pager's id for one swap area, stable from `swapon` to `swapoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceId(pub u32);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The tunables of [`crate::Pager::new`], with the seed's defaults. Serializable (missing
/// fields take their defaults) so a daemon can read it from a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PagerConfig {
    /// Blocks taken from one device before the allocator moves to the next device of the
    /// same priority (the seed's `dmmax`, 32). `0` fills a device before the next.
    pub interleave: u64,
    /// Total pbufs (`nswbuf`, 256): reads get `(nswbuf+1)/2`, sync writes `(nswbuf+3)/4`.
    pub nswbuf: u64,
    /// In-flight async write clusters per swap area in service (4), clamped to
    /// `1..=nswbuf/2`; the async pool holds this many per area, at most `nswbuf/2` in all
    /// (see `Pager::set_swap_async_max`).
    pub swap_async_max: u64,
    /// Free blocks below which swap is "almost full" (128).
    pub nswap_lowat: u64,
    /// Free blocks above which "almost full" clears again (512).
    pub nswap_hiwat: u64,
    /// Largest cluster of one I/O, in pages (32), at least 1.
    pub max_cluster: u64,
    /// Which I/O engine to run (`Auto`: io_uring where the kernel allows it).
    pub engine: device::EngineKind,
    /// The checksum kept in memory beside each page's block and checked on every read
    /// (`"crc32c"`, the default, or `"none"`).
    pub checksum: Checksum,
    /// The largest swap area `swapon` accepts, in bytes: one whose header claims more is
    /// refused before its allocator (about 2 bits per page) is built, so storage that
    /// claims any size (a remote server, a sparse file) cannot make the pager allocate
    /// unbounded memory. Default [`default_max_area_bytes`].
    pub max_area_bytes: u64,
}

/// The default largest area: 16 times the machine's memory (an allocator of 1/1024 of it),
/// at least 16 GiB, at most the 16 TiB that `u32` block numbers can address.
pub fn default_max_area_bytes() -> u64 {
    const GIB: u64 = 1 << 30;
    let most = (u64::from(u32::MAX) + 1) * device::PAGE_SIZE as u64;
    device::units::physical_memory()
        .map_or(most, |m| m.saturating_mul(16))
        .clamp(16 * GIB, most)
}

/// How pages are checked end to end: each page written gets a checksum, kept in the
/// object's metadata in memory (never on the storage, where a stale or misdirected page
/// would carry a matching one), and every read of the page is checked against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    /// CRC32C (Castagnoli), with the CPU's CRC instructions where it has them: 4 bytes
    /// per page of metadata.
    #[default]
    Crc32c,
    /// No checksum: storage that returns other bytes goes unnoticed.
    None,
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Checksum::Crc32c => "crc32c",
            Checksum::None => "none",
        })
    }
}

impl Default for PagerConfig {
    fn default() -> PagerConfig {
        PagerConfig {
            interleave: 32,
            nswbuf: 256,
            swap_async_max: 4,
            nswap_lowat: 128,
            nswap_hiwat: 512,
            max_cluster: 32,
            engine: device::EngineKind::Auto,
            checksum: Checksum::Crc32c,
            max_area_bytes: default_max_area_bytes(),
        }
    }
}

/// How [`crate::Pager::swapon`] adds an area.
#[derive(Debug, Clone, Default)]
pub struct SwaponOptions {
    /// Higher is used first (as on Linux and NetBSD); equal priorities interleave.
    pub priority: i32,
    /// Discard (TRIM) the whole area's data pages when it is added.
    pub discard: bool,
    /// How the area is opened (direct I/O, `O_EXCL`).
    pub open: device::OpenOptions,
}

/// How [`crate::Pager::swapoff`] removes an area.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwapoffOptions {
    /// Remove the area even if pages on it cannot be read back: those pages are dropped
    /// from their objects and counted in [`SwapoffReport::lost`]. Needed for a failed device.
    pub force: bool,
}

/// What a finished [`crate::Pager::swapoff`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapoffReport {
    /// Pages read back and rewritten on other areas.
    pub moved: u64,
    /// Pages dropped because they could not be read (forced swapoff only: such a page
    /// reads as [`crate::PagerError::Dropped`] after) or failed their checksum (any
    /// swapoff: such a page reads as [`crate::PagerError::Corrupt`] after).
    pub lost: u64,
    /// Passes over all objects until none held a block on the area.
    pub passes: u64,
}
