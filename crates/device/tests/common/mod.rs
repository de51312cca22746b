//! Shared test fixtures: scratch directories named `swapkit-*`, swap areas on loop devices
//! (plain files where loop devices are unavailable, saying why), and the leak check.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use device::{LoopDevice, LoopOptions, MkswapOptions, PAGE_SIZE};
use tempfile::TempDir;

/// A temporary directory whose name contains `swapkit` (CI greps for leaks).
pub fn scratch() -> TempDir {
    tempfile::Builder::new()
        .prefix("swapkit-test-")
        .tempdir()
        .unwrap()
}

/// A zero-filled file of `pages` pages in `dir`.
pub fn backing_file(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let path = dir.join(format!("swapkit-{name}"));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(pages * PAGE_SIZE as u64)
        .unwrap();
    path
}

/// Where a test's swap area lives: a loop device over a file, or the file itself.
pub struct Target {
    pub path: PathBuf,
    pub loop_dev: Option<LoopDevice>,
    pub file: PathBuf,
}

impl Target {
    pub fn is_loop(&self) -> bool {
        self.loop_dev.is_some()
    }
}

/// A loop device over a new `pages`-page file when loop devices work, else the file.
pub fn target(dir: &Path, name: &str, pages: u64) -> Target {
    let file = backing_file(dir, name, pages);
    match device::loopdev::available() {
        Ok(()) => {
            let dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
            Target {
                path: dev.path().to_owned(),
                loop_dev: Some(dev),
                file,
            }
        }
        Err(why) => {
            println!(
                "loop devices unavailable ({why}); using the plain file {}",
                file.display()
            );
            Target {
                path: file.clone(),
                loop_dev: None,
                file,
            }
        }
    }
}

/// Like [`target`], with a swap header written on it.
pub fn swap_target(dir: &Path, name: &str, pages: u64) -> Target {
    let t = target(dir, name, pages);
    device::mkswap(&t.path, &MkswapOptions::default()).unwrap();
    t
}

/// Loop devices whose backing file lies under `dir`.
pub fn loops_under(dir: &Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    device::loopdev::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.backing_file.starts_with(&dir))
        .map(|l| l.path)
        .collect()
}

/// Fails when any loop device still points into `dir`. A detach while someone else (udev's
/// blkid probe) holds the device open completes at their close, so allow a few seconds.
pub fn assert_no_loop_under(dir: &Path) {
    let mut left = loops_under(dir);
    for _ in 0..100 {
        if left.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = loops_under(dir);
    }
    assert!(left.is_empty(), "loop devices leaked: {left:?}");
}

/// Loop devices available, or `None` after printing why the test is skipped.
pub fn loop_or_skip(test: &str) -> Option<()> {
    match device::loopdev::available() {
        Ok(()) => Some(()),
        Err(why) => {
            println!("{test}: loop devices unavailable ({why}); skipped");
            None
        }
    }
}

/// A page of bytes that names its page and a generation, so misplaced data shows.
pub fn pattern(page: u64, generation: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; PAGE_SIZE];
    let mut x = page.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ generation.wrapping_mul(0xbf58_476d_1ce4_e5b9)
        | 1;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    bytes
}
