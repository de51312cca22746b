//! The region's side of the region bench: the memory workloads on a [`region::Region`]
//! with `resident_limit = L` over a pager on the bench's devices, in this process.

use std::path::PathBuf;

use pager::PagerConfig;
use region::{Region, RegionConfig, RegionMonitor, RegionStats};

use crate::error::Error;
use crate::workloads::{Rig, mem};

/// One region run: a pager on the devices and a region of `pages` with limit `L`.
#[derive(Debug)]
pub struct RegionMem {
    // Field order is drop order: the region (which frees its swap) before its pager.
    region: Region,
    monitor: RegionMonitor,
    _rig: Rig,
}

impl RegionMem {
    pub fn start(paths: &[PathBuf], cfg: RegionConfig) -> Result<RegionMem, Error> {
        let rig = Rig::with_config(paths, PagerConfig::default())?;
        let region = Region::new(&rig.pager, cfg)
            .map_err(|e| Error::workload("region bench (region side)", e))?;
        let monitor = region.monitor();
        Ok(RegionMem {
            region,
            monitor,
            _rig: rig,
        })
    }

    /// Runs `phase` on the region; major faults are the region's (faults served from swap).
    pub fn run(&mut self, phase: &mem::Phase) -> Result<mem::Outcome, Error> {
        crate::cancel::check()?;
        let monitor = self.monitor.clone();
        let faults = move || monitor.stats().major_faults;
        let cancelled = crate::cancel::cancelled;
        Ok(mem::measure(
            self.region.as_atomic_u64s(),
            phase,
            &faults,
            &cancelled,
        ))
    }

    pub fn stats(&self) -> RegionStats {
        self.monitor.stats()
    }
}
