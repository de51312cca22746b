//! `swapon` and `swapoff`: areas come and go while paging goes on.
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

use blist::Blist;
use device::{IoOp, IoRequest, PAGE_SIZE, SwapArea};

use crate::config::{DeviceId, SwapoffOptions, SwapoffReport, SwaponOptions};
use crate::core::Core;
use crate::error::PagerError;
use crate::io::PagerEvent;
use crate::object::ObjectInner;
use crate::space::{Area, Drain, FileKey};

/// How long swapoff waits for blocks that no object maps (I/O in flight, parked for
/// readers) to be released before it gives up.
const STUCK: Duration = Duration::from_secs(60);

/// How long swapoff waits for short-lived references to a removed area to go.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How often a failed cluster rewrite is retried on fresh blocks before swapoff gives up.
const REWRITE_TRIES: u32 = 4;

/// Turns a remote area's connection changes into pager events (on its connection thread:
/// emitting only sends on channels).
fn link_listener(
    events: &Arc<crate::events::Events>,
    id: DeviceId,
    path: &Path,
) -> device::nbd::Listener {
    let events = Arc::clone(events);
    let path = path.display().to_string();
    Arc::new(move |ev: &device::nbd::LinkEvent| {
        let ev = match ev {
            device::nbd::LinkEvent::Lost { cause } => PagerEvent::DeviceDisconnected {
                id: id.0,
                path: path.clone(),
                cause: cause.clone(),
            },
            device::nbd::LinkEvent::Back => PagerEvent::DeviceReconnected {
                id: id.0,
                path: path.clone(),
            },
        };
        events.emit(ev);
    })
}

impl Core {
    /// See [`crate::Pager::swapon`]. The area is opened and its blist built outside the
    /// space lock; duplicates and the `u32` limit are checked again under it, since
    /// another swapon may have run meanwhile.
    ///
    /// Duplicates are storage that overlaps an area's ([`device::storage`]: the same block
    /// device or file by any path, a loop device and its backing file, two loop devices on
    /// one file). They are looked for before opening, since the open's own lock would
    /// refuse them without naming the area that holds the storage.
    pub(crate) fn swapon(&self, path: &Path, opts: SwaponOptions) -> Result<DeviceId, PagerError> {
        let key = FileKey::of(path);
        let ids = device::storage::identify(path)?;
        if let Some(err) = in_use(&self.space.lock().areas, path, &ids) {
            return Err(err);
        }
        let area = Arc::new(SwapArea::open(path, &opts.open)?);
        let blocks = area.last_page();
        if blocks == 0 {
            return Err(PagerError::NoDataPages {
                path: path.to_owned(),
            });
        }
        let bytes = (blocks + 1).saturating_mul(PAGE_SIZE as u64);
        if bytes > self.tun.max_area_bytes {
            return Err(PagerError::AreaTooLarge {
                path: path.to_owned(),
                bytes,
                max: self.tun.max_area_bytes,
            });
        }
        // Refuse an area that cannot get block numbers before building its blist (which
        // costs about 2 bits per page); checked again under the lock below.
        let first = self.space.lock().place(blocks);
        if first + blocks > u64::from(u32::MAX) + 1 {
            return Err(PagerError::TooBig {
                path: path.to_owned(),
                pages: blocks,
                first,
            });
        }
        if opts.discard {
            // Best effort, as swapon(8): a device without discard still swaps.
            let _ = area.discard(1, blocks);
        }
        let (blist, header_bad) = build_blist(&area, blocks);
        let mut space = self.space.lock();
        if let Some(err) = in_use(&space.areas, path, area.storage()) {
            return Err(err);
        }
        if let Some(err) = same_uuid(&space.areas, path, &area) {
            return Err(err);
        }
        let first = space.place(blocks);
        if first + blocks > u64::from(u32::MAX) + 1 {
            return Err(PagerError::TooBig {
                path: path.to_owned(),
                pages: blocks,
                first,
            });
        }
        let id = DeviceId(space.next_id);
        space.next_id += 1;
        space.areas.push(Area {
            id,
            area: Arc::clone(&area),
            key,
            priority: opts.priority,
            discard: opts.discard,
            first,
            blocks,
            blist,
            draining: None,
            failed: false,
            failing: false,
            write_errors_in_row: 0,
            failing_at: 0,
            corrupt: 0,
            used: 0,
            quarantined: 0,
            header_bad,
            filled: 0,
            stash: None,
            last_error: None,
        });
        space.sizecheck();
        self.retune_async(&space);
        drop(space);
        if let Some(remote) = area.remote() {
            remote.listen(Some(link_listener(&self.events, id, path)));
        }
        self.events.emit(PagerEvent::DeviceAdded {
            id: id.0,
            path: path.display().to_string(),
        });
        Ok(id)
    }

    fn find_key(&self, key: Option<FileKey>) -> Option<DeviceId> {
        let key = key?;
        let space = self.space.lock();
        space
            .areas
            .iter()
            .find(|a| a.key == Some(key))
            .map(|a| a.id)
    }

    pub(crate) fn device_id(&self, path: &Path) -> Option<DeviceId> {
        if device::nbd::is_uri(path) {
            // A remote area by its export (server and export name), whatever the URI's
            // other parameters.
            let ids = device::storage::identify(path).ok()?;
            let space = self.space.lock();
            let a = space.areas.iter();
            return a
                .filter(|a| device::storage::overlap(a.area.storage(), &ids))
                .map(|a| a.id)
                .next();
        }
        self.find_key(FileKey::of(path))
    }

    /// See [`crate::Pager::swapoff`]. Passes over all objects until a pass finds no page
    /// on the area and the area's `used` count is zero (writes in flight and blocks
    /// parked for readers end on their own). Any error puts the area back in service.
    pub(crate) fn swapoff(
        &self,
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
            match self.drain_pass(dev, failed, opts, &mut report, progress) {
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
            for k in 0..run.len {
                let p = p0 + off + k;
                let old = (b0 + off + k) as u32;
                let new = run.blk + k;
                if st.meta.lookup(p) == Some(old) {
                    let crc = st.meta.checksum(p);
                    st.meta.insert_checked(p, new as u32, crc);
                    st.release(&mut space, old);
                    moved += 1;
                } else {
                    space.free(new, 1);
                }
            }
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

/// Splits `(pindex, block)` pairs (ascending pindex) into runs contiguous in both, of at
/// most `max` pages: each is one read.
pub(crate) fn clusters(pairs: &[(u64, u64)], max: u64) -> Vec<&[(u64, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=pairs.len() {
        let split = i == pairs.len()
            || pairs[i].0 != pairs[i - 1].0 + 1
            || pairs[i].1 != pairs[i - 1].1 + 1
            || (i - start) as u64 >= max;
        if split {
            out.push(&pairs[start..i]);
            start = i;
        }
    }
    out
}

/// A blist over the area's data pages (block `d` = page `d + 1`) with every page free but
/// the header's bad ones. Returns it with the number of bad pages.
fn build_blist(area: &SwapArea, blocks: u64) -> (Blist, u64) {
    let mut blist = Blist::new(blocks);
    let mut bad: Vec<u64> = area
        .header()
        .bad_pages
        .iter()
        .map(|&p| u64::from(p))
        .filter(|&p| p >= 1 && p <= blocks)
        .collect();
    bad.sort_unstable();
    bad.dedup();
    let mut next = 1;
    for &b in &bad {
        if b > next {
            let freed = blist.free(next - 1, b - next);
            debug_assert!(freed.is_ok());
        }
        next = b + 1;
    }
    if next <= blocks {
        let freed = blist.free(next - 1, blocks - next + 1);
        debug_assert!(freed.is_ok());
    }
    (blist, bad.len() as u64)
}

/// The refusal of an area whose header UUID is an area's already on (an all-zero UUID, as
/// some other mkswap writes, says nothing).
fn same_uuid(areas: &[Area], path: &Path, area: &SwapArea) -> Option<PagerError> {
    let uuid = area.header().uuid;
    if uuid == [0; 16] {
        return None;
    }
    let a = areas.iter().find(|a| a.area.header().uuid == uuid)?;
    Some(PagerError::SameUuid {
        path: path.to_owned(),
        other: a.area.path().to_owned(),
        id: a.id.0,
        uuid: device::units::format_uuid(&uuid),
    })
}

/// The refusal of a swapon of `path` (standing for storage `ids`) when an area in `areas`
/// already uses any of that storage, naming that area's path.
fn in_use(areas: &[Area], path: &Path, ids: &[device::StorageId]) -> Option<PagerError> {
    let a = areas
        .iter()
        .find(|a| device::storage::overlap(a.area.storage(), ids))?;
    Some(PagerError::AlreadyOn {
        path: path.to_owned(),
        other: a.area.path().to_owned(),
        id: a.id.0,
    })
}
