//! `swapoff`: an area goes while paging goes on (`swapon.rs` adds one).
//!
//! swapoff follows what FreeBSD later built (`swapoff_one` + `swap_pager_swapoff`): stop
//! allocating on the area (its blist is filled), then walk every object for blocks on it,
//! read them back in clusters and rewrite them elsewhere, pass after pass until no object
//! holds one and no I/O or parked block uses it, then remove it. A page rewritten by its
//! owner meanwhile is simply not moved (its new copy is already elsewhere): each move is
//! installed only if the page still maps the old block. One pass is in `drain.rs`: runs
//! sorted by block, reads and writes overlapping.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device::{IoOp, IoRequest, PAGE_SIZE, SwapArea};

use crate::config::{DeviceId, SwapoffOptions, SwapoffReport};
use crate::core::Core;
use crate::error::PagerError;
use crate::io::PagerEvent;
use crate::object::{ObjectInner, Objects};
use crate::space::Drain;

/// How long swapoff waits for blocks that no object maps (I/O in flight, parked for
/// readers) to be released before it gives up.
const STUCK: Duration = Duration::from_secs(60);

/// How long swapoff waits for short-lived references to a removed area to go.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How often a failed cluster rewrite is retried on fresh blocks before swapoff gives up.
const REWRITE_TRIES: u32 = 4;

impl Core {
    /// See [`crate::Pager::swapoff`]. Passes over all objects until a pass finds no page
    /// on the area and the area's `used` count is zero (writes in flight and blocks
    /// parked for readers end on their own). Any error puts the area back in service.
    pub(crate) fn swapoff(
        &self,
        objects: &Objects,
        dev: DeviceId,
        opts: SwapoffOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SwapoffReport, PagerError> {
        let (path, failed) = self.start_drain(dev, opts)?;
        let mut report = SwapoffReport::default();
        let mut idle_since: Option<(u64, Instant)> = None;
        loop {
            report.passes += 1;
            let mut found = 0;
            match self.drain_pass(objects, dev, failed, opts, &mut report, progress) {
                Ok(n) => found += n,
                Err(e) => {
                    self.abort_drain(dev);
                    return Err(e);
                }
            }
            if found > 0 {
                continue;
            }
            let busy = {
                let space = self.space.lock();
                space.index(dev).map(|i| space.areas[i].used).unwrap_or(0)
            };
            if busy == 0 {
                break;
            }
            // Writes allocated before the drain began, or blocks parked for readers: they
            // end on their own. A count that does not move for long is a bug; give up
            // rather than hang.
            match idle_since {
                Some((n, since)) if n == busy && since.elapsed() > STUCK => {
                    self.abort_drain(dev);
                    return Err(PagerError::Stuck { path, blocks: busy });
                }
                Some((n, _)) if n == busy => {}
                _ => idle_since = Some((busy, Instant::now())),
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let area = {
            let mut space = self.space.lock();
            let idx = space
                .index(dev)
                .ok_or(PagerError::NoSuchDevice { id: dev.0 })?;
            let area = space.areas.remove(idx);
            space.sizecheck();
            self.retune_async(&space);
            area
        };
        close(area.area);
        self.events.emit(PagerEvent::DeviceRemoved {
            id: dev.0,
            path: path.display().to_string(),
            moved: report.moved,
            lost: report.lost,
        });
        Ok(report)
    }

    /// Checks that swapoff can start and marks the area draining: its free blocks are
    /// filled (remembered, to give them back if swapoff fails).
    fn start_drain(
        &self,
        dev: DeviceId,
        opts: SwapoffOptions,
    ) -> Result<(std::path::PathBuf, bool), PagerError> {
        let mut space = self.space.lock();
        let idx = space
            .index(dev)
            .ok_or(PagerError::NoSuchDevice { id: dev.0 })?;
        let have: u64 = space
            .areas
            .iter()
            .enumerate()
            .filter(|(i, a)| *i != idx && a.allocatable())
            .map(|(_, a)| a.avail())
            .sum();
        let a = &mut space.areas[idx];
        let path = a.area.path().to_owned();
        if a.draining.is_some() {
            return Err(PagerError::Busy { path });
        }
        // A failed area holding no page has nothing to read or drop: a plain swapoff
        // removes it, as the warning that it failed says.
        if a.failed && a.used > 0 && !opts.force {
            return Err(PagerError::DeviceFailed {
                path,
                pages: a.used,
            });
        }
        if !a.failed && a.used > have {
            return Err(PagerError::NotEnoughSpace {
                path,
                need: a.used,
                have,
            });
        }
        a.unstash();
        let refill: Vec<(u64, u64)> = a.blist.free_ranges().collect();
        for &(start, len) in &refill {
            a.filled += a.blist.fill(start, len).unwrap_or(0);
        }
        a.draining = Some(Drain {
            moved: 0,
            total: a.used,
            refill,
        });
        let failed = a.failed;
        space.sizecheck();
        self.retune_async(&space);
        Ok((path, failed))
    }

    /// Puts a draining area back in service after a failed swapoff.
    fn abort_drain(&self, dev: DeviceId) {
        let mut space = self.space.lock();
        let Some(idx) = space.index(dev) else { return };
        let a = &mut space.areas[idx];
        if let Some(drain) = a.draining.take() {
            for (start, len) in drain.refill {
                let freed = a.blist.free(start, len);
                debug_assert!(freed.is_ok(), "refill of a filled range: {freed:?}");
            }
            a.filled = 0;
        }
        space.sizecheck();
        self.retune_async(&space);
    }

    /// Writes one cluster read from the draining area to fresh blocks elsewhere and
    /// installs each page whose metadata still holds the old block. Returns pages moved.
    pub(crate) fn rewrite(
        &self,
        obj: &ObjectInner,
        p0: u64,
        b0: u64,
        data: &[u8],
        path: &Path,
    ) -> Result<u64, PagerError> {
        let len = (data.len() / PAGE_SIZE) as u64;
        let mut moved = 0;
        let mut off = 0;
        let mut tries = 0;
        while off < len {
            let run = self.space.lock().alloc(len - off);
            let Some(run) = run else {
                let have = self.space.lock().free_blocks();
                return Err(PagerError::NotEnoughSpace {
                    path: path.to_owned(),
                    need: len - off,
                    have,
                });
            };
            let bytes = off as usize * PAGE_SIZE..(off + run.len) as usize * PAGE_SIZE;
            let src = &data[bytes];
            // `data` is a read pbuf, page-aligned: written from directly, on this thread.
            let result = if device::Engine::lendable(src) {
                self.engine().write_from(&run.area, run.page, src)
            } else {
                let mut buf = self.sync_pool.acquire(run.len as usize);
                buf.as_mut_slice().copy_from_slice(src);
                let req = IoRequest {
                    tag: p0 + off,
                    op: IoOp::Write,
                    page: run.page,
                    buf,
                };
                let (buf, result) = self.submit_wait(&run.area, req);
                self.sync_pool.release(buf);
                result
            };
            crate::core::bump(&self.counters.swapout, 1);
            crate::core::bump(&self.counters.pages_out, run.len);
            if let Err(e) = result {
                self.io_error(run.dev, &e, true);
                self.space.lock().quarantine(run.blk, run.len);
                tries += 1;
                if tries >= REWRITE_TRIES {
                    return Err(PagerError::Write {
                        object: obj.name(),
                        pindex: p0 + off,
                        source: Some(e),
                    });
                }
                continue;
            }
            self.space.lock().write_result(run.dev, true);
            let mut st = obj.st.lock();
            let mut space = self.space.lock();
            moved += st.install_moved(&mut space, p0 + off, b0 + off, run.blk, run.len);
            drop(space);
            drop(st);
            off += run.len;
        }
        Ok(moved)
    }
}

/// Drops the last reference to a removed area, so its file is closed before swapoff
/// returns. Others may hold one for a moment: an engine thread finishing the last I/O (it
/// drops its job's reference after running the callback that woke us), a reader between
/// its read and its return. None can take a new one (the area left `space`), so wait for
/// them, briefly, rather than let the file close at some later time.
fn close(area: Arc<SwapArea>) {
    let deadline = Instant::now() + CLOSE_WAIT;
    while Arc::strong_count(&area) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(50));
    }
    drop(area);
}
