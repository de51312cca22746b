//! The shared state behind a [`crate::Pager`] handle and every [`crate::Object`]: the
//! engine, the swap space, the pbuf pools, counters and events. It knows nothing of
//! objects: their registry is `object::Objects`, beside them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use device::{DeviceError, Engine, IoCompletion, IoRequest, PageBuf, SwapArea};
use parking_lot::{Condvar, Mutex};

use crate::config::PagerConfig;
use crate::events::Events;
use crate::pbuf::Pool;
use crate::space::Space;
use crate::stats::Counters;

/// The tunables fixed at creation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tun {
    pub interleave: u64,
    pub nswbuf: u64,
    pub max_cluster: u64,
    pub lowat: u64,
    pub hiwat: u64,
    pub checksum: crate::config::Checksum,
    pub max_area_bytes: u64,
}

/// Event counters, bumped without a lock.
#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    pub swapin: AtomicU64,
    pub swapout: AtomicU64,
    pub pages_in: AtomicU64,
    pub pages_out: AtomicU64,
    pub intrans_waits: AtomicU64,
    pub alloc_failures: AtomicU64,
    pub read_errors: AtomicU64,
    pub write_errors: AtomicU64,
    pub corrupt_pages: AtomicU64,
    pub write_retries: AtomicU64,
    pub async_write_failures: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl AtomicCounters {
    pub(crate) fn snapshot(&self, events: u64) -> Counters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            swapin: g(&self.swapin),
            swapout: g(&self.swapout),
            pages_in: g(&self.pages_in),
            pages_out: g(&self.pages_out),
            intrans_waits: g(&self.intrans_waits),
            alloc_failures: g(&self.alloc_failures),
            read_errors: g(&self.read_errors),
            write_errors: g(&self.write_errors),
            corrupt_pages: g(&self.corrupt_pages),
            write_retries: g(&self.write_retries),
            async_write_failures: g(&self.async_write_failures),
            events,
        }
    }
}

/// The pager's shared state. Lock order: object -> space -> events; the object registry
/// and the pools are leaves.
#[derive(Debug)]
pub(crate) struct Core {
    pub tun: Tun,
    /// The last reference to the core may go away inside a completion callback, on an
    /// engine thread: the engine itself then does not join its own thread (the one guard
    /// for that lives in the engine, `device::engine::on_engine_thread`).
    engine: Engine,
    pub space: Mutex<Space>,
    pub read_pool: Pool,
    pub sync_pool: Pool,
    pub async_pool: Pool,
    pub async_max: AtomicU64,
    /// Async `putpages` calls whose callbacks have not run yet.
    pub async_batches: Mutex<u64>,
    pub async_idle: Condvar,
    pub counters: AtomicCounters,
    pub events: Arc<Events>,
    pub started: Instant,
    /// Heap bytes of every object's metadata, kept by the object locks (`objlock`).
    pub meta_bytes: Arc<AtomicU64>,
}

impl Core {
    /// The pools as `swap_pager_swap_init` sizes them: reads `(nswbuf+1)/2`, sync writes
    /// `(nswbuf+3)/4`, async writes `swap_async_max` (clamped) per area in service (see
    /// [`async_total`]; resized by swapon, swapoff and `set_swap_async_max`).
    pub(crate) fn new(cfg: &PagerConfig, engine: Engine) -> Core {
        let events = Arc::new(Events::default());
        let max_cluster = cfg.max_cluster as usize;
        let async_max = clamp_async(cfg.swap_async_max, cfg.nswbuf);
        Core {
            tun: Tun {
                interleave: cfg.interleave,
                nswbuf: cfg.nswbuf,
                max_cluster: cfg.max_cluster,
                lowat: cfg.nswap_lowat,
                hiwat: cfg.nswap_hiwat,
                checksum: cfg.checksum,
                max_area_bytes: cfg.max_area_bytes,
            },
            engine,
            space: Mutex::new(Space::new(
                cfg.interleave,
                cfg.nswap_lowat,
                cfg.nswap_hiwat,
                Arc::clone(&events),
            )),
            read_pool: Pool::new(cfg.nswbuf.div_ceil(2).max(1), max_cluster * 16),
            sync_pool: Pool::new(cfg.nswbuf.div_ceil(4), max_cluster * 16),
            async_pool: Pool::new(async_max, max_cluster * 16),
            async_max: AtomicU64::new(async_max),
            async_batches: Mutex::new(0),
            async_idle: Condvar::new(),
            counters: AtomicCounters::default(),
            events,
            started: Instant::now(),
            meta_bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Queues one I/O; `done` runs on an engine thread. Never call with a lock held: a
    /// completion may run before this returns.
    pub(crate) fn submit(
        &self,
        area: &Arc<SwapArea>,
        req: IoRequest,
        done: impl FnOnce(IoCompletion) + Send + 'static,
    ) {
        self.engine.submit(area, req, Box::new(done));
    }

    /// One I/O, done and waited for on the caller's thread ([`Engine::submit_wait`]): the
    /// caller reaps its own completion, with no hand-off through an engine thread and no
    /// wake-up. That hand-off (reaper to channel to caller) was most of a QD-1 page-in's
    /// latency and CPU beyond the device's (issue #13). Never from a completion callback:
    /// it would block that engine thread for the I/O.
    pub(crate) fn submit_wait(
        &self,
        area: &Arc<SwapArea>,
        req: IoRequest,
    ) -> (PageBuf, Result<(), DeviceError>) {
        let c = self.engine.submit_wait(area, req);
        (c.buf, c.result)
    }

    /// Counts an I/O error, keeps it as the area's last error and announces it
    /// ([`PagerEvent::IoError`](crate::PagerEvent), with its cause), and marks the area
    /// failed when the device vanished; a write error also counts toward marking the area
    /// failing (see `Space::write_result`).
    pub(crate) fn io_error(&self, dev: crate::DeviceId, err: &DeviceError, write: bool) {
        bump(
            if write {
                &self.counters.write_errors
            } else {
                &self.counters.read_errors
            },
            1,
        );
        let what = crate::integrity::describe(err);
        let mut space = self.space.lock();
        if let Some(i) = space.index(dev) {
            let a = &mut space.areas[i];
            a.last_error = Some(crate::stats::LastError::now(what.clone()));
            let ev = crate::io::PagerEvent::IoError {
                id: dev.0,
                path: a.area.path().display().to_string(),
                error: what,
            };
            self.events.emit(ev);
        }
        if matches!(err, DeviceError::Vanished { .. }) {
            space.mark_failed(dev);
        }
        if let DeviceError::Shrunk { size_bytes, .. } = err {
            space.mark_shrunk(dev, *size_bytes);
        }
        if write {
            space.write_result(dev, false);
        }
        // An area out of service (failed or failing) takes no more writes: its share
        // of async pbufs goes. Cheap, and only on errors.
        self.retune_async(&space);
    }

    /// Sizes the async pool for the areas in `space` (which the caller holds locked, so
    /// concurrent swapon, swapoff and `set_swap_async_max` apply in one order; the pool's
    /// lock is a leaf). Lowering takes effect as writes complete.
    pub(crate) fn retune_async(&self, space: &Space) {
        let areas = space.areas.iter().filter(|a| a.allocatable()).count() as u64;
        let per_area = self.async_max.load(Ordering::Relaxed);
        self.async_pool
            .set_max(async_total(per_area, areas, self.tun.nswbuf));
    }

    /// Counts `n` pages of area `dev` that failed their checksum. A backing file cut short
    /// explains them: its size is looked at now (the slow path), and the area marked
    /// failing if it shrank.
    pub(crate) fn corrupt(&self, dev: crate::DeviceId, n: u64) {
        bump(&self.counters.corrupt_pages, n);
        let mut space = self.space.lock();
        space.count_corrupt(dev, n);
        let area = space.index(dev).map(|i| Arc::clone(&space.areas[i].area));
        drop(space);
        if let Some(pages) = area.and_then(|a| a.check_shrunk()) {
            let mut space = self.space.lock();
            space.mark_shrunk(dev, pages * device::PAGE_SIZE as u64);
            self.retune_async(&space);
        }
    }
}

/// The seed's clamp of `swap_async_max`: at most `nswbuf / 2`, at least 1.
pub(crate) fn clamp_async(n: u64, nswbuf: u64) -> u64 {
    n.min(nswbuf / 2).max(1)
}

/// The async write pbufs for `per_area` clusters in flight on each of `areas` areas in
/// service, bounded as the seed bounds `nsw_wcount_async_max`: at most `nswbuf / 2` in
/// all (the other half is for reads), at least 1.
///
/// Why per area: one global 4 (the seed's default, for one disk) left a striped pageout
/// over four devices with one cluster in flight per device, each idle while its next
/// cluster waited for a pbuf (issue #13). Striping spreads consecutive clusters over the
/// areas of a priority, so `per_area × areas` pbufs give each device about `per_area`
/// writes in flight, the queue depth one device needs, whatever the number of devices.
pub(crate) fn async_total(per_area: u64, areas: u64, nswbuf: u64) -> u64 {
    per_area.saturating_mul(areas.max(1)).min(nswbuf / 2).max(1)
}
