//! A monitor that outlives its region keeps only the bookkeeping: the memory, the
//! inactive cache, the userfaultfd and the swap go when the region drops. Alone in its
//! test binary, so no other region's descriptors or mappings are counted.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;

use region::{Region, RegionConfig};

fn userfaultfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|l| l.to_string_lossy().contains("userfaultfd"))
        .count()
}

/// Whether `/proc/self/maps` has a mapping starting at `addr`.
fn mapped_at(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let start = format!("{addr:x}-");
    maps.lines().any(|l| l.starts_with(&start))
}

#[test]
fn a_monitor_after_the_region_dropped_keeps_no_memory_no_descriptor_no_swap() {
    if !common::uffd_usable() {
        return;
    }
    for engine in common::ENGINES {
        let dir = common::tempdir();
        let Some(pager) = common::pager(dir.path(), engine, 1, 4096) else {
            continue;
        };
        let before = userfaultfds();
        let mut region = Region::new(
            &pager,
            RegionConfig {
                len: 2048 * 4096,
                resident_limit: 512 * 4096,
                ..RegionConfig::default()
            },
        )
        .unwrap();
        let base = region.as_ptr() as usize;
        let mem = region.as_atomic_u64s();
        for p in 0..2048 {
            mem[p * 512].store(p as u64 + 1, Ordering::Relaxed);
        }
        let monitor = region.monitor();
        assert_eq!(userfaultfds(), before + 1);
        assert!(mapped_at(base));
        assert!(pager.stats().used_pages > 0);
        drop(region);
        assert_eq!(
            userfaultfds(),
            before,
            "the userfaultfd outlived the region"
        );
        assert!(!mapped_at(base), "the region's memory outlived it");
        assert_eq!(pager.stats().used_pages, 0);
        let st = monitor.stats();
        assert_eq!(st.resident, 0, "{st:?}");
        assert!(st.zero_fills >= 2048, "the counters stay: {st:?}");
        assert!((0..2048).all(|p| !monitor.is_resident(p)));
    }
}
