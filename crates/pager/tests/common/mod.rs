//! Helpers shared by the pager's integration tests: swap areas in a temp dir (names contain
//! `swapkit`, so CI can spot leaks), a pager with small tunables, page patterns.

#![allow(dead_code, clippy::unwrap_used)]

pub mod model;

use std::path::{Path, PathBuf};

use device::{MkswapOptions, PAGE_SIZE};
use pager::{Pager, PagerConfig};

/// A temp dir whose name contains `swapkit`; removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("swapkit-pager-test")
        .tempdir()
        .unwrap()
}

/// A swap area file of `pages` pages (header included) in `dir`.
pub fn area(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let path = dir.join(format!("swapkit-{name}.swap"));
    let opts = MkswapOptions {
        pages: Some(pages),
        ..MkswapOptions::default()
    };
    device::mkswap(&path, &opts).unwrap();
    path
}

/// Small pools and clusters so tests reach every limit quickly; threads engine (cheap to
/// start once per proptest case).
pub fn config(interleave: u64) -> PagerConfig {
    PagerConfig {
        interleave,
        nswbuf: 16,
        swap_async_max: 4,
        nswap_lowat: 16,
        nswap_hiwat: 32,
        max_cluster: 8,
        engine: device::EngineKind::ThreadPool,
        checksum: pager::Checksum::Crc32c,
        max_area_bytes: pager::default_max_area_bytes(),
    }
}

pub fn pager(interleave: u64) -> Pager {
    Pager::new(config(interleave)).unwrap()
}

/// Both engines, for tests that run on each.
pub const ENGINES: [device::EngineKind; 2] =
    [device::EngineKind::ThreadPool, device::EngineKind::IoUring];

/// [`pager`] on a chosen engine.
pub fn pager_on(engine: device::EngineKind, interleave: u64) -> Pager {
    Pager::new(PagerConfig {
        engine,
        ..config(interleave)
    })
    .unwrap()
}

/// A page full of a pattern unique to `tag`.
pub fn page(tag: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE_SIZE];
    for (i, chunk) in p.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64).to_le_bytes());
    }
    p
}

/// `n` pages with tags `tag0, tag0+1, ...`.
pub fn pages(tag0: u64, n: u64) -> Vec<u8> {
    (0..n).flat_map(|k| page(tag0 + k)).collect()
}
