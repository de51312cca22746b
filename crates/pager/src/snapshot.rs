//! `Pager::stats`: the snapshot monitors read, built from the space, the pools, the
//! counters and each area's own I/O statistics.
//!
//! Monitoring must be cheap for the paging it watches (issue #12): under the space lock,
//! which every completion takes, the snapshot only copies each area's counters and an
//! `Arc` of it; the device's I/O statistics, its header, the UUID text and the totals are
//! built after the lock is released. Object counts and metadata bytes are running
//! counters, so no object lock is taken at all. Fragmentation walks an area's whole free
//! list, so it is computed only when asked for ([`Core::stats_with_frag`],
//! [`Core::frag`]), one area per lock hold.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use device::SwapArea;
use device::units::format_uuid;

use crate::config::DeviceId;
use crate::core::Core;
use crate::object::Objects;
use crate::space::Area;
use crate::stats::{
    DeviceState, DeviceStats, FragStats, LastError, PagerStats, PbufStats, Tunables,
};
use device::nbd::LinkState;

/// What the snapshot copies of one area under the space lock: counters only.
struct AreaCopy {
    id: DeviceId,
    area: Arc<SwapArea>,
    priority: i32,
    discard: bool,
    state: DeviceState,
    first: u64,
    total: u64,
    used: u64,
    free: u64,
    bad: u64,
    corrupt: u64,
    last_error: Option<crate::stats::LastError>,
}

impl AreaCopy {
    fn of(a: &Area) -> AreaCopy {
        let state = if a.failed {
            DeviceState::Failed
        } else if let Some(d) = &a.draining {
            DeviceState::Draining {
                moved: d.moved,
                total: d.total,
            }
        } else if a.failing {
            DeviceState::Failing
        } else {
            DeviceState::Active
        };
        AreaCopy {
            id: a.id,
            area: Arc::clone(&a.area),
            priority: a.priority,
            discard: a.discard,
            state,
            first: a.first,
            total: a.usable(),
            used: a.used,
            free: if a.allocatable() { a.avail() } else { 0 },
            bad: a.header_bad + a.quarantined,
            corrupt: a.corrupt,
            last_error: a.last_error.clone(),
        }
    }

    /// The state and last error a monitor shows: a remote area's connection has its say
    /// (`Reconnecting`, or `Failed` once it is dead) unless the area is already failed or
    /// draining; its last connection error while it is down, else the newer of that and its
    /// last I/O error.
    fn link(&self) -> (DeviceState, Option<LastError>) {
        let Some(remote) = self.area.remote() else {
            return (self.state, self.last_error.clone());
        };
        let link = remote.link();
        let state = match (self.state, link.state) {
            (DeviceState::Failed | DeviceState::Draining { .. }, _) | (_, LinkState::Connected) => {
                self.state
            }
            (_, LinkState::Dead) => DeviceState::Failed,
            (_, LinkState::Reconnecting { down }) => DeviceState::Reconnecting {
                down_ms: down.as_millis() as u64,
            },
        };
        // While it is down, why it is down is the news (an I/O failing meanwhile only
        // says "not connected").
        let down = link.state != LinkState::Connected;
        let conn = link.last_error.map(|e| LastError::at(e.at, e.what));
        let last = match (self.last_error.clone(), conn) {
            (Some(a), Some(b)) => Some(if down || b.at_unix_ms > a.at_unix_ms {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        };
        (state, last)
    }

    /// The monitor's view, built with no lock held.
    fn into_stats(self) -> DeviceStats {
        let io = self.area.stats();
        let header = self.area.header();
        let (state, last_error) = self.link();
        DeviceStats {
            id: self.id.0,
            path: self.area.path().display().to_string(),
            priority: self.priority,
            state,
            kind: match self.area.kind() {
                device::AreaKind::BlockDevice => "block".into(),
                device::AreaKind::File => "file".into(),
                device::AreaKind::Nbd => "nbd".into(),
            },
            direct_io: self.area.direct_io(),
            discard: self.discard,
            uuid: format_uuid(&header.uuid),
            label: header.label.clone(),
            first_block: self.first,
            size_bytes: self.area.size_bytes(),
            total_pages: self.total,
            used_pages: self.used,
            free_pages: self.free,
            bad_pages: self.bad,
            io,
            corrupt: self.corrupt,
            last_error,
            frag: FragStats::default(),
        }
    }
}

impl Core {
    /// The snapshot, with `frag` left empty: the space lock is held only to copy each
    /// area's counters; the registry lock (a leaf paging never takes) only to count.
    pub(crate) fn stats(&self, objects: &Objects) -> PagerStats {
        let (copies, hysteresis, free_pages) = {
            let space = self.space.lock();
            let copies: Vec<AreaCopy> = space.areas.iter().map(AreaCopy::of).collect();
            (copies, space.hyst, space.free_blocks())
        };
        let devices: Vec<DeviceStats> = copies.into_iter().map(AreaCopy::into_stats).collect();
        let (object_count, named_objects) = objects.counts();
        PagerStats {
            uptime_ms: self.started.elapsed().as_millis() as u64,
            page_size: device::PAGE_SIZE as u64,
            engine: self.engine().kind().to_string(),
            total_pages: devices.iter().map(|d| d.total_pages).sum(),
            used_pages: devices.iter().map(|d| d.used_pages).sum(),
            free_pages,
            bad_pages: devices.iter().map(|d| d.bad_pages).sum(),
            hysteresis,
            tunables: Tunables {
                interleave: self.tun.interleave,
                nswbuf: self.tun.nswbuf,
                swap_async_max: self.async_max.load(Ordering::Relaxed),
                max_cluster: self.tun.max_cluster,
                nswap_lowat: self.tun.lowat,
                nswap_hiwat: self.tun.hiwat,
                checksum: self.tun.checksum,
            },
            pbufs: PbufStats {
                read: self.read_pool.stats(),
                sync_write: self.sync_pool.stats(),
                async_write: self.async_pool.stats(),
            },
            counters: self
                .counters
                .snapshot(self.events.count.load(Ordering::Relaxed)),
            devices,
            objects: object_count,
            named_objects,
            meta_bytes: self.meta_bytes.load(Ordering::Relaxed),
        }
    }

    /// [`Core::stats`] with every area's `frag` filled in (each area's free list walked
    /// under its own hold of the space lock, so paging waits for one walk at a time).
    pub(crate) fn stats_with_frag(&self, objects: &Objects) -> PagerStats {
        let mut s = self.stats(objects);
        for d in &mut s.devices {
            if let Some(f) = self.frag(DeviceId(d.id)) {
                d.frag = f;
            }
        }
        s
    }

    /// Area `dev`'s free-space fragmentation, or `None` if it is not on. Only the blist
    /// summary is taken under the lock; the text is formatted after.
    pub(crate) fn frag(&self, dev: DeviceId) -> Option<FragStats> {
        let s = {
            let space = self.space.lock();
            let idx = space.index(dev)?;
            space.areas[idx].blist.stats()
        };
        Some(FragStats {
            free_ranges: s.ranges,
            largest: s.largest,
            average: s.average,
            buckets: s.buckets().filter(|&(_, _, n)| n > 0).collect(),
            text: s.to_string(),
        })
    }
}
