//! The pbuf pools: how many cluster I/Os of each kind may be in flight (the seed's
//! `nsw_rcount`, `nsw_wcount_sync`, `nsw_wcount_async`, taken with `getpbuf`).
//!
//! A pbuf is a permit plus a page-aligned [`PageBuf`] the cluster is copied into, as the
//! seed's pbufs have their own KVA. A caller that finds its pool empty blocks until a pbuf
//! is released, and the wait is counted. Buffers are allocated on first use and a few are
//! kept for reuse; the engine needs a buffer of exactly the cluster's size, so the cache
//! is keyed by size.

use device::PageBuf;
use parking_lot::{Condvar, Mutex};

use crate::stats::PoolStats;

/// One pool of pbufs.
#[derive(Debug)]
pub(crate) struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
}

#[derive(Debug)]
struct PoolState {
    in_use: u64,
    max: u64,
    waits: u64,
    cache: Vec<PageBuf>,
    cached_pages: usize,
    cache_cap_pages: usize,
}

impl Pool {
    /// A pool of `max` pbufs (at least 1) that keeps up to `cache_cap_pages` pages of
    /// released buffers for reuse.
    pub(crate) fn new(max: u64, cache_cap_pages: usize) -> Pool {
        Pool {
            state: Mutex::new(PoolState {
                in_use: 0,
                max: max.max(1),
                waits: 0,
                cache: Vec::new(),
                cached_pages: 0,
                cache_cap_pages,
            }),
            freed: Condvar::new(),
        }
    }

    /// Takes a pbuf of `pages` pages (`getpbuf`), blocking while the pool is empty. The
    /// buffer's content is whatever it last held: callers overwrite all of it.
    pub(crate) fn acquire(&self, pages: usize) -> PageBuf {
        self.take(pages, true)
            .unwrap_or_else(|| PageBuf::new(pages))
    }

    /// Takes a pbuf if one is free at once (for callers that already hold pbufs in flight
    /// and must not wait on themselves).
    pub(crate) fn try_acquire(&self, pages: usize) -> Option<PageBuf> {
        self.take(pages, false)
    }

    /// The body of both: a permit (waiting for one if `wait`, counted; else `None` when
    /// there is none), then a cached buffer of the size or a new one. Only `None` without
    /// `wait`.
    fn take(&self, pages: usize, wait: bool) -> Option<PageBuf> {
        let mut st = self.state.lock();
        if st.in_use >= st.max {
            if !wait {
                return None;
            }
            st.waits += 1;
            while st.in_use >= st.max {
                self.freed.wait(&mut st);
            }
        }
        st.in_use += 1;
        let cached = st.cache.iter().position(|b| b.pages() == pages);
        let buf = cached.map(|i| st.cache.swap_remove(i));
        if let Some(b) = &buf {
            st.cached_pages -= b.pages();
        }
        drop(st);
        Some(buf.unwrap_or_else(|| PageBuf::new(pages)))
    }

    /// Returns a pbuf (`relpbuf`) and wakes one waiter.
    pub(crate) fn release(&self, buf: PageBuf) {
        let mut st = self.state.lock();
        st.in_use = st.in_use.saturating_sub(1);
        if buf.pages() > 0 {
            if st.cached_pages + buf.pages() > st.cache_cap_pages && !st.cache.is_empty() {
                let old = st.cache.remove(0);
                st.cached_pages -= old.pages();
            }
            if st.cached_pages + buf.pages() <= st.cache_cap_pages {
                st.cached_pages += buf.pages();
                st.cache.push(buf);
            }
        }
        drop(st);
        self.freed.notify_one();
    }

    /// Changes the limit. Raising it wakes waiters at once; lowering it takes effect as
    /// pbufs in use are released (the seed's `nsw_wcount_async_max` adjustment).
    pub(crate) fn set_max(&self, max: u64) {
        self.state.lock().max = max.max(1);
        self.freed.notify_all();
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let st = self.state.lock();
        PoolStats {
            in_use: st.in_use,
            max: st.max,
            waits: st.waits,
        }
    }
}
