//! A region in one call, over a swap file of its own: for tests, examples and first steps,
//! where setting up swap areas is not the point. [`crate::Region::with_temp_swap`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use device::{MkswapOptions, PAGE_SIZE};
use pager::{Pager, PagerConfig, SwaponOptions};

use crate::{Region, RegionConfig, RegionError};

/// The swap file's pages: what does not fit under the limit, an eighth more (the
/// allocator's clusters leave gaps), and the header.
fn swap_pages(cfg: &RegionConfig) -> u64 {
    let pages = cfg.len.div_ceil(PAGE_SIZE as u64);
    let limit = cfg.resident_limit.div_ceil(PAGE_SIZE as u64).min(pages);
    let out = pages - limit;
    out + out / 8 + 64
}

/// A name in the temp dir no other region of this or another process uses.
fn temp_path() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("swapkit-region-{}-{n}.swap", std::process::id()))
}

/// Deletes the file when dropped: once the pager holds it open, or on the way out of an
/// error.
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Region {
    /// A region over a swap file of its own in the temp dir (`$TMPDIR`, else `/tmp`),
    /// sized for `cfg` (`len - resident_limit`, an eighth more), on a pager with the
    /// default settings. The file is deleted as soon as the pager holds it open, so
    /// nothing is left behind, also on a crash; its space is freed when the region drops.
    ///
    /// ```no_run
    /// use region::{Region, RegionConfig};
    /// let mut region = Region::with_temp_swap(RegionConfig {
    ///     len: 256 << 20,
    ///     resident_limit: 32 << 20,
    ///     ..RegionConfig::default()
    /// })?;
    /// region.as_mut_u64s().fill(7);
    /// println!("{}", region.stats());
    /// # Ok::<(), region::RegionError>(())
    /// ```
    pub fn with_temp_swap(cfg: RegionConfig) -> Result<Region, RegionError> {
        let pager = Pager::new(PagerConfig::default())?;
        let path = temp_path();
        let unlink = Unlink(path.clone());
        let opts = MkswapOptions {
            pages: Some(swap_pages(&cfg)),
            ..MkswapOptions::default()
        };
        device::mkswap(&path, &opts).map_err(|source| RegionError::TempSwap {
            path: path.clone(),
            source,
        })?;
        pager.swapon(&path, SwaponOptions::default())?;
        drop(unlink);
        Region::new(&pager, cfg)
    }
}
