//! `swapon`: an area comes while paging goes on. It is opened, checked against the areas
//! already on (the same storage, the same header UUID) and given its range of global
//! block numbers and its blist.

use std::path::Path;
use std::sync::Arc;

use blist::Blist;
use device::{PAGE_SIZE, SwapArea};

use crate::config::{DeviceId, SwaponOptions};
use crate::core::Core;
use crate::error::PagerError;
use crate::io::PagerEvent;
use crate::space::{Area, FileKey};

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
        if let Some(err) = too_big(path, self.space.lock().place(blocks), blocks) {
            return Err(err);
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
        if let Some(err) = too_big(path, first, blocks) {
            return Err(err);
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

/// The refusal of an area of `blocks` pages placed at global block `first` whose block
/// numbers would not fit `u32`.
fn too_big(path: &Path, first: u64, blocks: u64) -> Option<PagerError> {
    (first + blocks > u64::from(u32::MAX) + 1).then(|| PagerError::TooBig {
        path: path.to_owned(),
        pages: blocks,
        first,
    })
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
