//! A region in one call over a swap file of its own (`Region::with_temp_swap`): it pages,
//! its file is gone from the temp dir at once, and its stats print as the README shows.

#![allow(clippy::unwrap_used)]

mod common;

use region::{Region, RegionConfig};

/// This process's temp swap files still in the temp dir.
fn left_behind() -> Vec<String> {
    let mine = format!("swapkit-region-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&mine))
        .collect()
}

#[test]
fn a_region_over_a_temp_swap_file_pages_and_leaves_no_file() {
    if !common::uffd_usable() {
        return;
    }
    let mut region = match Region::with_temp_swap(RegionConfig {
        len: 4096 * 4096,
        resident_limit: 512 * 4096,
        ..RegionConfig::default()
    }) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(left_behind().is_empty(), "{:?}", left_behind());
    let words = region.as_mut_u64s();
    for (i, w) in words.iter_mut().enumerate() {
        *w = i as u64;
    }
    assert!(words.iter().enumerate().all(|(i, &w)| w == i as u64));
    let stats = region.stats();
    assert!(stats.evictions_dirty > 0, "{stats:?}");
    assert!(stats.major_faults > 0, "{stats:?}");
    let text = stats.to_string();
    eprintln!("{text}");
    assert!(text.starts_with(&format!(
        "{} of 4096 pages resident (limit 512)",
        stats.resident
    )));
    assert!(text.contains(&format!("major_faults {},", stats.major_faults)));
    assert!(text.contains("fault latency p50 "));
    assert!(
        !text.contains("read_errors"),
        "no trouble, no trouble line: {text}"
    );
}
