//! `Pager::stats`: the snapshot monitors read, built from the space, the pools, the
//! counters and each area's own I/O statistics.

use std::sync::atomic::Ordering;

use device::units::format_uuid;

use crate::core::Core;
use crate::space::Area;
use crate::stats::{DeviceState, DeviceStats, FragStats, PagerStats, PbufStats, Tunables};

impl Core {
    /// The snapshot: the space under its lock once, then each object's metadata size under
    /// its own lock, never both at once.
    pub(crate) fn stats(&self) -> PagerStats {
        let (devices, hysteresis, free_pages) = {
            let space = self.space.lock();
            let devices: Vec<DeviceStats> = space.areas.iter().map(device_stats).collect();
            (devices, space.hyst, space.free_blocks())
        };
        let objects = self.objects();
        let named_objects = objects.iter().filter(|o| o.handle.is_some()).count() as u64;
        let meta_bytes = objects
            .iter()
            .map(|o| o.st.lock().meta.memory_bytes() as u64)
            .sum();
        let object_count = objects.len() as u64;
        drop(objects);
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
            meta_bytes,
        }
    }
}

fn device_stats(a: &Area) -> DeviceStats {
    let io = a.area.stats();
    let header = a.area.header();
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
    DeviceStats {
        id: a.id.0,
        path: a.area.path().display().to_string(),
        priority: a.priority,
        state,
        kind: match a.area.kind() {
            device::AreaKind::BlockDevice => "block".into(),
            device::AreaKind::File => "file".into(),
        },
        direct_io: a.area.direct_io(),
        uuid: format_uuid(&header.uuid),
        label: header.label.clone(),
        first_block: a.first,
        size_bytes: a.area.size_bytes(),
        total_pages: a.usable(),
        used_pages: a.used,
        free_pages: if a.allocatable() { a.avail() } else { 0 },
        bad_pages: a.header_bad + a.quarantined,
        in_flight: io.in_flight,
        reads: io.reads,
        writes: io.writes,
        pages_read: io.pages_read,
        pages_written: io.pages_written,
        read_errors: io.read_errors,
        write_errors: io.write_errors,
        corrupt: a.corrupt,
        read_latency: io.read_latency,
        write_latency: io.write_latency,
        frag: frag_stats(&a.blist),
    }
}

fn frag_stats(b: &blist::Blist) -> FragStats {
    let s = b.stats();
    FragStats {
        free_ranges: s.ranges,
        largest: s.largest,
        average: s.average,
        buckets: s.buckets().filter(|&(_, _, n)| n > 0).collect(),
        text: s.to_string(),
    }
}
