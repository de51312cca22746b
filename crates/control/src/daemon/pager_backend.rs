//! The real backend: a `pager::Pager` behind the socket.
//!
//! Each object served is a [`PagerObject`]: a `pager::Object` handle (the daemon's registry
//! holds it; dropping it frees the object's swap, the seed's `swap_pager_dealloc`), with a
//! count of its async puts in flight, so `sync` waits for that object's writes only (not
//! for every client's, which under load may never all be idle at once).

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use pager::{
    DeviceId, Object, PageResult, Pager, PagerConfig, PagerError, PagerStats, PutMode,
    SwapoffOptions, SwaponOptions,
};

use super::backend::{Backend, BackendError, BackendObject, Landed, take_runs};
use super::integrity;
use crate::proto::{GetStatus, PageError, PutStatus};

/// Pager settings resolved from flags and the config file; `None` takes the pager's default.
#[derive(Debug, Clone, Default)]
pub struct PagerSettings {
    pub interleave: Option<u64>,
    pub nswbuf: Option<u64>,
    pub swap_async_max: Option<u64>,
    pub engine: Option<crate::config::EngineName>,
    pub checksum: Option<pager::Checksum>,
    pub max_area_bytes: Option<u64>,
}

/// Objects have no size on the wire; this bounds only `copy` and `strategy`, which the
/// protocol does not offer.
const OBJECT_PAGES: u64 = u32::MAX as u64;

#[derive(Debug)]
pub struct PagerBackend {
    pager: Pager,
}

/// One object served: its handle, its async puts in flight, and the failures `sync` took
/// from the pager but has not reported yet (a reply carries at most so many).
#[derive(Debug)]
struct PagerObject {
    pager: Pager,
    obj: Object,
    inflight: Arc<Inflight>,
    unreported: Mutex<Vec<u64>>,
}

/// Async puts of one object whose completion callback has not run yet.
#[derive(Debug, Default)]
struct Inflight {
    n: Mutex<u64>,
    idle: Condvar,
}

impl Inflight {
    fn start(&self) {
        *self.n.lock() += 1;
    }

    /// Called from the pager's completion callback: it takes only this object's counter,
    /// which no one holds while waiting for I/O (the pager's lock rule).
    fn done(&self) {
        let mut n = self.n.lock();
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.idle.notify_all();
        }
    }

    fn wait_idle(&self) {
        let mut n = self.n.lock();
        while *n > 0 {
            self.idle.wait(&mut n);
        }
    }
}

impl PagerBackend {
    /// A new pager with `s` over the defaults, served.
    pub fn start(s: &PagerSettings) -> Result<PagerBackend, PagerError> {
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
        if let Some(e) = s.engine {
            cfg.engine = e.kind();
        }
        if let Some(c) = s.checksum {
            cfg.checksum = c;
        }
        if let Some(m) = s.max_area_bytes {
            cfg.max_area_bytes = m;
        }
        let pager = Pager::new(cfg)?;
        if let Some(v) = s.swap_async_max {
            pager.set_swap_async_max(v);
        }
        Ok(PagerBackend::new(pager))
    }

    /// Serve a pager the caller made (and may keep using: `Pager` is a shared handle).
    /// Its events and corrupt reads are logged from now on (`integrity`).
    pub fn new(pager: Pager) -> PagerBackend {
        integrity::watch(&pager);
        PagerBackend { pager }
    }

    /// The area `path` names: the one swapped on by that path, else the one on the same
    /// storage (`device::storage`), so `swapctl off FILE` finds the area swapped on as the
    /// loop device attached to FILE. The pager refuses overlapping areas: at most one.
    fn area_of(&self, path: &Path) -> Option<DeviceId> {
        if let Some(dev) = self.pager.device_id(path) {
            return Some(dev);
        }
        let ids = device::storage::identify(path).ok()?;
        self.pager.devices().into_iter().find(|&dev| {
            self.pager
                .area(dev)
                .is_some_and(|a| device::storage::overlap(a.storage(), &ids))
        })
    }

    /// A new object of the pager, served.
    fn object(&self) -> PagerObject {
        PagerObject {
            pager: self.pager.clone(),
            obj: self.pager.alloc_object(None, OBJECT_PAGES),
            inflight: Arc::default(),
            unreported: Mutex::default(),
        }
    }
}

impl Backend for PagerBackend {
    fn stats(&self) -> PagerStats {
        self.pager.stats()
    }

    fn stats_with_frag(&self) -> PagerStats {
        self.pager.stats_with_frag()
    }

    fn swapon(&self, path: &Path, priority: i32, discard: bool) -> Result<(), BackendError> {
        let opts = SwaponOptions {
            priority,
            discard,
            ..Default::default()
        };
        self.pager
            .swapon(path, opts)
            .map(|_| ())
            .map_err(BackendError::from)
    }

    fn swapoff(&self, path: &Path, force: bool) -> Result<u64, BackendError> {
        let dev = self.area_of(path).ok_or_else(|| {
            BackendError::NotFound(format!("{}: not a swap device that is on", path.display()))
        })?;
        self.pager
            .swapoff(dev, SwapoffOptions { force }, &mut |_, _| {})
            .map(|report| report.lost)
            .map_err(BackendError::from)
    }

    fn set_swap_async_max(&self, n: u64) -> u64 {
        self.pager.set_swap_async_max(n)
    }

    fn create(&self) -> Result<Arc<dyn BackendObject>, BackendError> {
        Ok(Arc::new(self.object()))
    }

    fn flush(&self) {
        self.pager.wait_async();
    }
}

impl BackendObject for PagerObject {
    fn id(&self) -> u64 {
        self.obj.id()
    }

    fn putpages(&self, pindex: u64, data: &[u8], sync: bool, landed: Landed) -> Vec<PutStatus> {
        let (mode, after) = if sync {
            (PutMode::Sync, Some(landed))
        } else {
            // The batch's callback runs exactly once, when its last cluster is final.
            self.inflight.start();
            let inflight = Arc::clone(&self.inflight);
            let done = Box::new(move |_| {
                inflight.done();
                landed();
            });
            (PutMode::Async(Some(done)), None)
        };
        let st = self
            .pager
            .putpages(&self.obj, pindex, data, mode)
            .into_iter()
            .map(|r| match r {
                PageResult::Ok | PageResult::Pend => PutStatus::Ok,
                PageResult::Fail => PutStatus::Fail,
                PageResult::Error => PutStatus::Error,
            })
            .collect();
        if let Some(landed) = after {
            landed();
        }
        st
    }

    /// The pager's `getpages_each`: one read per run contiguous on swap, each page read
    /// once and a corrupt page counted once. A page that fails gets the pager's error line
    /// as its reason.
    fn getpages(&self, pindex: u64, out: &mut [u8]) -> (Vec<GetStatus>, Vec<PageError>) {
        let mut errors = Vec::new();
        let st = self
            .pager
            .getpages_each(&self.obj, pindex, out)
            .into_iter()
            .zip(pindex..)
            .map(|(r, p)| match r {
                Ok(true) => GetStatus::Ok,
                Ok(false) => GetStatus::Absent,
                // Corrupt, lost with a failed async write or a forced swapoff, or an I/O
                // error: an explicit error (the pager wiped the page), never the bytes.
                Err(e) => {
                    if let PagerError::Corrupt { device, block, .. } = &e {
                        integrity::corrupt_read(&self.pager, *device, *block);
                    }
                    errors.push(PageError {
                        pindex: p,
                        error: e.to_string(),
                    });
                    GetStatus::Error
                }
            })
            .collect();
        (st, errors)
    }

    fn haspage(&self, pindex: u64) -> (bool, u64, u64) {
        match self.pager.haspage(&self.obj, pindex) {
            Some((before, after)) => (true, before, after),
            None => (false, 0, 0),
        }
    }

    fn freespace(&self, pindex: u64, count: u64) {
        self.pager.freespace(&self.obj, pindex, count);
    }

    fn sync(&self, max_runs: usize) -> (Vec<u64>, bool) {
        self.inflight.wait_idle();
        let mut pending = self.unreported.lock();
        pending.extend(self.pager.take_async_failures(&self.obj));
        pending.sort_unstable();
        pending.dedup();
        let taken = take_runs(&mut pending, max_runs);
        (taken, !pending.is_empty())
    }

    fn swapped_pages(&self) -> u64 {
        self.obj.swapped_pages()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineName;
    use device::PAGE_SIZE;

    /// A refusal of the pager reaches the daemon as the pager's error, matchable down to the
    /// device's, not as a string; the client is told the same one line.
    #[test]
    fn a_pager_refusal_keeps_its_error_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.img");
        let backend = PagerBackend::new(Pager::new(PagerConfig::default()).unwrap());
        let err = backend.swapon(&missing, 0, false).unwrap_err();
        assert!(
            matches!(
                err,
                BackendError::Pager(PagerError::Device(device::DeviceError::NotFound { .. }))
            ),
            "{err:?}"
        );
        let pager_line = Pager::new(PagerConfig::default())
            .unwrap()
            .swapon(&missing, SwaponOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(err.to_string(), pager_line);
    }

    /// Garbage over a quarter of an area's pages (every fourth), then one read-back of
    /// everything in 64-page requests, as a client does: each bad page is an error with its
    /// reason, counted corrupt once, and each run contiguous on swap is read once. Before,
    /// the backend read on from the page after a corrupt one, so a run was read and its bad
    /// pages counted again for every bad page before them. On both engines.
    #[test]
    fn a_read_back_counts_each_corrupt_page_once_and_reads_each_run_once() {
        use std::os::unix::fs::FileExt;
        const PAGES: u64 = 256;
        for engine in [EngineName::Threads, EngineName::IoUring] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("swapkit-garbage.img");
            let opts = device::mkswap::MkswapOptions {
                pages: Some(PAGES + 64),
                ..Default::default()
            };
            device::mkswap::mkswap(&file, &opts).unwrap();
            let settings = PagerSettings {
                engine: Some(engine),
                ..Default::default()
            };
            let Ok(backend) = PagerBackend::start(&settings) else {
                println!("skipped {engine:?}: the engine does not start here");
                continue;
            };
            backend.swapon(&file, 0, false).unwrap();
            let obj = backend.object();
            let data: Vec<u8> = (0..PAGES as usize * PAGE_SIZE)
                .map(|i| (i / PAGE_SIZE) as u8 | 1)
                .collect();
            let st = obj.putpages(0, &data, true, Box::new(|| {}));
            assert!(st.iter().all(|s| *s == PutStatus::Ok), "{st:?}");
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            let bad: Vec<u64> = (0..PAGES).filter(|p| p % 4 == 1).collect();
            for &p in &bad {
                let (_, at) = backend.pager.locate(&obj.obj, p).unwrap();
                f.write_all_at(&[0xee; PAGE_SIZE], at * PAGE_SIZE as u64)
                    .unwrap();
            }
            f.sync_all().unwrap();
            let before = backend.stats().counters;
            let mut errors = Vec::new();
            for first in (0..PAGES).step_by(64) {
                let mut out = vec![0u8; 64 * PAGE_SIZE];
                let (st, why) = obj.getpages(first, &mut out);
                for (k, s) in st.iter().enumerate() {
                    let p = first + k as u64;
                    let at = k * PAGE_SIZE..(k + 1) * PAGE_SIZE;
                    if bad.contains(&p) {
                        assert_eq!(*s, GetStatus::Error, "{engine:?} page {p}");
                        assert!(out[at].iter().all(|&b| b == 0), "{engine:?} page {p}");
                    } else {
                        assert_eq!(*s, GetStatus::Ok, "{engine:?} page {p}");
                        assert!(out[at] == data[p as usize * PAGE_SIZE..][..PAGE_SIZE]);
                    }
                }
                errors.extend(why);
            }
            let after = backend.stats().counters;
            let corrupt = after.corrupt_pages - before.corrupt_pages;
            let reads = after.swapin - before.swapin;
            println!("{engine:?}: corrupt +{corrupt}, {reads} reads");
            assert_eq!(corrupt, bad.len() as u64, "{engine:?}: counted once each");
            // One read per run: 32-page clusters, so 8 runs.
            assert_eq!(reads, PAGES / 32, "{engine:?}: each run read once");
            assert_eq!(
                errors.iter().map(|e| e.pindex).collect::<Vec<_>>(),
                bad,
                "{engine:?}"
            );
            assert!(
                errors.iter().all(|e| e.error.contains("checksum mismatch")),
                "{errors:?}"
            );
            drop(obj);
        }
    }

    /// `swapctl off FILE` of an area swapped on as the loop device attached to FILE finds
    /// it by storage identity, on both engines; a file that backs no area is not found.
    #[test]
    fn swapoff_of_a_file_finds_the_area_on_its_loop_device() {
        use device::loopdev::{self, LoopDevice, LoopOptions};
        if let Err(why) = loopdev::available() {
            println!("skipped: loop devices unavailable ({why})");
            return;
        }
        let dir = tempfile::Builder::new()
            .prefix("swapkit-test-")
            .tempdir()
            .unwrap();
        let file = dir.path().join("swapkit-off-by-file");
        let other = dir.path().join("swapkit-unrelated");
        std::fs::write(&other, b"x").unwrap();
        // A plain file area beside it takes the pages the swapoff moves.
        let spare = dir.path().join("swapkit-spare");
        for f in [&file, &spare] {
            let opts = device::mkswap::MkswapOptions {
                pages: Some(256),
                ..Default::default()
            };
            device::mkswap::mkswap(f, &opts).unwrap();
        }
        let dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
        for engine in [EngineName::Threads, EngineName::IoUring] {
            let settings = PagerSettings {
                engine: Some(engine),
                ..Default::default()
            };
            let Ok(backend) = PagerBackend::start(&settings) else {
                println!("skipped {engine:?}: the engine does not start here");
                continue;
            };
            backend.swapon(dev.path(), 10, false).unwrap();
            backend.swapon(&spare, 0, false).unwrap();
            let obj = backend.create().unwrap();
            let st = obj.putpages(0, &vec![5u8; 4 * PAGE_SIZE], true, Box::new(|| {}));
            assert!(st.iter().all(|s| *s == PutStatus::Ok), "{st:?}");
            assert!(matches!(
                backend.swapoff(&other, false),
                Err(BackendError::NotFound(_))
            ));
            assert_eq!(backend.stats().devices[0].used_pages, 4);
            backend.swapoff(&file, false).unwrap();
            let left = backend.stats().devices;
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].path, spare.display().to_string());
            let mut back = vec![0u8; 4 * PAGE_SIZE];
            let (st, _) = obj.getpages(0, &mut back);
            assert!(st.iter().all(|s| *s == GetStatus::Ok), "{st:?}");
            assert!(back.iter().all(|b| *b == 5));
            drop(obj);
            backend.swapoff(&spare, false).unwrap();
        }
        dev.detach().unwrap();
    }
}
