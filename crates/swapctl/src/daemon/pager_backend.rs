//! The real backend: a `pager::Pager` behind the socket.
//!
//! The daemon's object table maps wire ids to the ids handed out here; this file keeps the
//! `pager::Object` handles alive (dropping the last one frees the object's swap, the seed's
//! `swap_pager_dealloc`).

use std::collections::HashMap;
use std::path::Path;

use parking_lot::Mutex;

use device::PAGE_SIZE;
use pager::{
    Object, PageResult, Pager, PagerConfig, PagerError, PagerStats, PutMode, SwapoffOptions,
    SwaponOptions,
};

use super::backend::{Backend, BackendError};
use crate::proto::{GetStatus, PutStatus};

/// Pager settings resolved from flags and the config file; `None` takes the pager's default.
#[derive(Debug, Clone, Default)]
pub struct PagerSettings {
    pub interleave: Option<u64>,
    pub nswbuf: Option<u64>,
    pub swap_async_max: Option<u64>,
    pub engine: Option<crate::config::EngineName>,
}

/// Objects have no size on the wire; this bounds only `copy` and `strategy`, which the
/// protocol does not offer.
const OBJECT_PAGES: u64 = u32::MAX as u64;

#[derive(Debug)]
pub struct PagerBackend {
    pager: Pager,
    objects: Mutex<HashMap<u64, Object>>,
}

impl PagerBackend {
    pub fn start(s: &PagerSettings) -> Result<PagerBackend, String> {
        let mut cfg = PagerConfig::default();
        if let Some(v) = s.interleave {
            cfg.interleave = v;
        }
        if let Some(v) = s.nswbuf {
            cfg.nswbuf = v;
        }
        if let Some(v) = s.swap_async_max {
            cfg.swap_async_max = v;
        }
        if let Some(e) = &s.engine {
            cfg.engine = e.as_str().parse().map_err(|e| format!("engine {e}"))?;
        }
        let pager = Pager::new(cfg).map_err(|e| e.to_string())?;
        if let Some(v) = s.swap_async_max {
            pager.set_swap_async_max(v);
        }
        Ok(PagerBackend {
            pager,
            objects: Mutex::default(),
        })
    }

    fn object(&self, id: u64) -> Option<Object> {
        self.objects.lock().get(&id).cloned()
    }
}

fn failed(e: PagerError) -> BackendError {
    BackendError::Failed(e.to_string())
}

impl Backend for PagerBackend {
    fn stats(&self) -> PagerStats {
        self.pager.stats()
    }

    fn swapon(&self, path: &Path, priority: i32, discard: bool) -> Result<(), BackendError> {
        let opts = SwaponOptions {
            priority,
            discard,
            ..Default::default()
        };
        self.pager.swapon(path, opts).map(|_| ()).map_err(failed)
    }

    fn swapoff(&self, path: &Path) -> Result<(), BackendError> {
        let dev = self.pager.device_id(path).ok_or_else(|| {
            BackendError::NotFound(format!("{}: not a swap device that is on", path.display()))
        })?;
        self.pager
            .swapoff(dev, SwapoffOptions::default(), &mut |_, _| {})
            .map(|_| ())
            .map_err(failed)
    }

    fn set_swap_async_max(&self, n: u64) -> u64 {
        self.pager.set_swap_async_max(n)
    }

    fn create(&self) -> Result<u64, BackendError> {
        let o = self
            .pager
            .alloc_object(None, OBJECT_PAGES)
            .map_err(failed)?;
        let id = o.id();
        self.objects.lock().insert(id, o);
        Ok(id)
    }

    fn destroy(&self, object: u64) {
        // Dropped outside the map's lock: freeing an object's swap takes the pager's locks.
        let gone = self.objects.lock().remove(&object);
        drop(gone);
    }

    fn putpages(&self, object: u64, pindex: u64, data: &[u8], sync: bool) -> Vec<PutStatus> {
        let Some(o) = self.object(object) else {
            return vec![PutStatus::Error; data.len() / PAGE_SIZE];
        };
        let mode = if sync {
            PutMode::Sync
        } else {
            PutMode::Async(None)
        };
        self.pager
            .putpages(&o, pindex, data, mode)
            .into_iter()
            .map(|r| match r {
                PageResult::Ok | PageResult::Pend => PutStatus::Ok,
                PageResult::Fail => PutStatus::Fail,
                PageResult::Error => PutStatus::Error,
            })
            .collect()
    }

    /// One pager `getpages` per run: each call reads the first page not yet had and as many
    /// swap-contiguous pages after it as fit, so a sequential range costs one I/O per run.
    fn getpages(&self, object: u64, pindex: u64, out: &mut [u8]) -> Vec<GetStatus> {
        let n = (out.len() / PAGE_SIZE) as u64;
        let mut st = vec![GetStatus::Absent; n as usize];
        let Some(o) = self.object(object) else {
            return st;
        };
        let mut i = 0u64;
        while i < n {
            let dst = &mut out[i as usize * PAGE_SIZE..];
            match self.pager.getpages(&o, pindex + i, 0, n - i - 1, dst) {
                Ok(r) => {
                    let end = r.end.saturating_sub(pindex).clamp(i + 1, n);
                    st[i as usize..end as usize].fill(GetStatus::Ok);
                    i = end;
                }
                Err(PagerError::NotOnSwap { .. }) => i += 1,
                Err(_) => {
                    st[i as usize] = GetStatus::Error;
                    dst[..PAGE_SIZE].fill(0);
                    i += 1;
                }
            }
        }
        st
    }

    fn haspage(&self, object: u64, pindex: u64) -> (bool, u64, u64) {
        match self
            .object(object)
            .and_then(|o| self.pager.haspage(&o, pindex))
        {
            Some((before, after)) => (true, before, after),
            None => (false, 0, 0),
        }
    }

    fn freespace(&self, object: u64, pindex: u64, count: u64) {
        if let Some(o) = self.object(object) {
            self.pager.freespace(&o, pindex, count);
        }
    }

    fn swapped_pages(&self, object: u64) -> u64 {
        self.object(object).map_or(0, |o| o.swapped_pages())
    }

    fn flush(&self) {
        self.pager.wait_async();
    }
}
