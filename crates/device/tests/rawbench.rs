//! The raw measurement functions of `cargo bench -p device` (bench code, included from
//! `benches/rawbench/`): they run, count, and keep off page 0.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../benches/rawbench/mod.rs"]
mod rawbench;

use std::sync::Arc;
use std::time::Duration;

use device::{Engine, EngineKind, MkswapOptions, OpenOptions, SwapArea};
use rawbench::RawSpec;

#[test]
fn each_standard_workload_runs_its_io_budget_on_each_engine_in_every_mode() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "raw", 512);
    let header = device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = Arc::new(SwapArea::open(&file, &OpenOptions::default()).unwrap());
    let mut kinds = vec![EngineKind::ThreadPool];
    if Engine::new(EngineKind::IoUring).is_ok() {
        kinds.push(EngineKind::IoUring);
    }
    for kind in kinds {
        let engine = Arc::new(Engine::new(kind).unwrap());
        let mut results = Vec::new();
        for spec in rawbench::standard_suite(Duration::from_secs(30)) {
            let spec = RawSpec {
                max_ios: 40,
                ..spec
            };
            let r = rawbench::run(&engine, &area, &spec).unwrap();
            assert_eq!(r.ios, 40, "{}", spec.name);
            assert_eq!(r.bytes, 40 * spec.pages_per_io as u64 * 4096);
            assert_eq!(r.engine, kind.to_string());
            assert_eq!(r.latency.count, 40);
            results.push(r);
            let r = rawbench::run_chained(&engine, &area, &spec).unwrap();
            assert_eq!(r.ios, 40, "chained {}", spec.name);
            assert_eq!(r.bytes, 40 * spec.pages_per_io as u64 * 4096);
            assert_eq!(r.engine, format!("{kind}/cb"));
            assert_eq!(r.latency.count, 40);
            results.push(r);
            let r = rawbench::run_waiting(&engine, &area, &spec).unwrap();
            assert_eq!(r.ios, 40, "waiting {}", spec.name);
            assert_eq!(r.bytes, 40 * spec.pages_per_io as u64 * 4096);
            assert_eq!(r.engine, format!("{kind}/wait"));
            assert_eq!(r.latency.count, 40);
        }
        let table = rawbench::table(&results);
        assert_eq!(table.lines().count(), 9);
        assert!(
            table.contains("seq-write-128k-qd4") && table.contains("rand-read-4k-qd16"),
            "{table}"
        );
    }
    drop(area);
    // The header in page 0 survived every write workload.
    assert_eq!(
        SwapArea::open(&file, &OpenOptions::default())
            .unwrap()
            .header()
            .uuid,
        header.uuid
    );
}
