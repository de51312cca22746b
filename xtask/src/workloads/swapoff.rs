//! `swapoff`: page a data set out over all devices, then time draining the first device
//! onto the others, and read everything back to prove nothing was lost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pager::SwapoffOptions;

use super::stream::{pagein_seq, pageout_seq};
use super::{DataSet, PAGE, Rig, Sizes};
use crate::error::Error;
use crate::progress::Progress;
use crate::results::Swapoff;

pub fn drain(paths: &[PathBuf], sizes: &Sizes, readers: usize) -> Result<Swapoff, Error> {
    if paths.len() < 2 {
        return Err(Error::skipped(
            "swapoff",
            "needs at least 2 devices (--devices 2)",
        ));
    }
    let rig = Rig::new(paths, 32)?;
    let ds = DataSet::streaming(&rig, sizes);
    let qd = rig.pager.stats().tunables.swap_async_max as u32;
    pageout_seq(&rig, &ds, "swapoff: filling", qd, Duration::ZERO)?;
    let victim = rig.devices[0];
    let stats = rig.pager.stats();
    let dev = stats
        .devices
        .iter()
        .find(|d| d.id == victim.0)
        .ok_or_else(|| Error::workload("swapoff", "the first device vanished from stats"))?;
    let (path, held) = (dev.path.clone(), dev.used_pages);
    let progress = Progress::start("swapoff: draining", held.max(1));
    let mut last = 0;
    let start = Instant::now();
    let report = rig
        .pager
        .swapoff(victim, SwapoffOptions::default(), &mut |moved, _total| {
            progress.add(moved.saturating_sub(last));
            last = moved;
        })?;
    let seconds = start.elapsed().as_secs_f64();
    drop(progress);
    // Every page must still read back with its own stamp.
    pagein_seq(&rig, &ds, readers, "swapoff: verifying", Duration::ZERO)?;
    let bytes = report.moved * PAGE as u64;
    Ok(Swapoff {
        device: path,
        bytes,
        seconds,
        mib_s: bytes as f64 / (1u64 << 20) as f64 / seconds.max(1e-9),
        pages_lost: report.lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_device_is_a_skip_not_a_failure() {
        let r = drain(&[PathBuf::from("/nonexistent")], &Sizes::new(true), 4);
        assert!(
            matches!(
                r,
                Err(Error::Skipped {
                    workload: "swapoff",
                    ..
                })
            ),
            "{r:?}"
        );
    }
}
