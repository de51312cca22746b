//! `interleave`: sequential pageout and pagein on 1, 2, 4 devices × interleave 1, 32, 0,
//! each cell on a fresh pager, to show how striping scales.

use std::path::PathBuf;

use super::stream::{pagein_seq, pageout_seq};
use super::{DataSet, Rig, Sizes};
use crate::cancel;
use crate::error::Error;
use crate::results::InterleaveCell;

pub const INTERLEAVES: [u64; 3] = [1, 32, 0];
pub const DEVICE_COUNTS: [usize; 3] = [1, 2, 4];

/// Every cell that the bench's device count allows. `readers` is the pagein thread count
/// (the pager's `swap_async_max`, as for `pagein-seq`).
pub fn matrix(
    paths: &[PathBuf],
    sizes: &Sizes,
    readers: usize,
) -> Result<Vec<InterleaveCell>, Error> {
    let mut cells = Vec::new();
    for &n in DEVICE_COUNTS.iter().filter(|&&n| n <= paths.len()) {
        for &il in &INTERLEAVES {
            cancel::check()?;
            cells.push(cell(&paths[..n], il, sizes, readers)?);
        }
    }
    Ok(cells)
}

fn cell(
    paths: &[PathBuf],
    interleave: u64,
    sizes: &Sizes,
    readers: usize,
) -> Result<InterleaveCell, Error> {
    let rig = Rig::new(paths, interleave)?;
    // Interleave 1 cuts every cluster to one page: a quarter of the data tells as much.
    let per_device = if interleave == 1 {
        sizes.interleave_pages_per_device / 4
    } else {
        sizes.interleave_pages_per_device
    };
    let object_pages = sizes.object_pages.min(per_device);
    let want = per_device * paths.len() as u64;
    // Never more than 3/4 of the swap, whatever the sizes: the cell measures speed, not a
    // full swap space.
    let pages = want.min(rig.usable_pages() * 3 / 4);
    let ds = DataSet::alloc(&rig, (pages / object_pages).max(1), object_pages);
    let label = format!("{} dev, interleave {interleave}", paths.len());
    let qd = rig.pager.stats().tunables.swap_async_max as u32;
    let out = pageout_seq(&rig, &ds, &format!("{label}: out"), qd, sizes.cell_min_time)?;
    let pages_per_device = rig
        .pager
        .stats()
        .devices
        .iter()
        .map(|d| d.used_pages)
        .collect();
    let inn = pagein_seq(
        &rig,
        &ds,
        readers,
        &format!("{label}: in"),
        sizes.cell_min_time,
    )?;
    drop(ds);
    Ok(InterleaveCell {
        devices: paths.len() as u32,
        interleave,
        pageout_mib_s: out.mib_s,
        pagein_mib_s: inn.mib_s,
        pages_per_device,
    })
}
