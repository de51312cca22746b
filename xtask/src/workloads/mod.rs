//! The workloads through the pager, in-process. Each takes a [`Rig`] (a pager swapped on to
//! some of the bench's devices) and returns figures; none asserts a speed.
//!
//! Data is never zero and every page carries a stamp (its object and page index) in its
//! first bytes, so every read is also checked: a workload that reads back a wrong page fails
//! with an error instead of reporting a fast, wrong figure.

pub mod fragmentation;
pub mod interleave;
pub mod mem;
pub mod random;
pub mod stream;
pub mod swapoff;

use std::path::PathBuf;
use std::time::Duration;

use pager::{Object, Pager, PagerConfig, SwaponOptions};

use crate::error::Error;

pub const PAGE: usize = device::PAGE_SIZE;

/// A pager on some devices. Dropping it drops the pager, which closes the areas.
#[derive(Debug)]
pub struct Rig {
    pub pager: Pager,
    pub devices: Vec<pager::DeviceId>,
}

impl Rig {
    /// A pager with the seed's defaults but `interleave`, swapped on to `paths`.
    pub fn new(paths: &[PathBuf], interleave: u64) -> Result<Rig, Error> {
        Rig::with_config(
            paths,
            PagerConfig {
                interleave,
                ..PagerConfig::default()
            },
        )
    }

    /// A pager with `cfg`, swapped on to `paths`.
    pub fn with_config(paths: &[PathBuf], cfg: PagerConfig) -> Result<Rig, Error> {
        // The previous rig's devices may still be closing (see `setup::wait_free`).
        crate::setup::wait_all_free(paths);
        let pager = Pager::new(cfg)?;
        let mut devices = Vec::new();
        for p in paths {
            devices.push(pager.swapon(p, SwaponOptions::default())?);
        }
        Ok(Rig { pager, devices })
    }

    pub fn usable_pages(&self) -> u64 {
        self.pager.stats().total_pages
    }
}

/// How big and how long each workload is: `--quick` or the full run.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Pages per object of the streaming workloads.
    pub object_pages: u64,
    /// Share of all swap the streaming data set fills.
    pub data_fraction: f64,
    /// Time of each random / mixed / churn phase.
    pub phase: Duration,
    /// The same for each interleave cell.
    pub cell_min_time: Duration,
    /// Data set of one interleave cell, per device, in pages (a quarter for interleave 1).
    pub interleave_pages_per_device: u64,
    /// How often each raw, fio and streaming workload is repeated (its figure is the
    /// median; the JSON keeps them all).
    pub repetitions: usize,
    /// The fixed work of each random raw / fio run, in 4 KiB reads.
    pub rand_ops: u64,
    /// The fixed work of each sequential fio run, in bytes.
    pub fio_seq_bytes: u64,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                object_pages: 1024,
                data_fraction: 0.5,
                phase: Duration::from_secs(1),
                cell_min_time: Duration::from_millis(500),
                interleave_pages_per_device: 8192,
                repetitions: 3,
                rand_ops: 4096,
                fio_seq_bytes: 128 << 20,
            }
        } else {
            Sizes {
                object_pages: 4096,
                data_fraction: 0.5,
                phase: Duration::from_secs(5),
                cell_min_time: Duration::from_secs(2),
                interleave_pages_per_device: 32768,
                repetitions: 3,
                rand_ops: 32768,
                fio_seq_bytes: 1 << 30,
            }
        }
    }
}

/// The objects a workload pages, with enough bookkeeping to check what comes back.
#[derive(Debug)]
pub struct DataSet {
    pub objects: Vec<Object>,
    pub object_pages: u64,
}

impl DataSet {
    /// `count` objects of `object_pages` pages each, none on swap yet.
    pub fn alloc(rig: &Rig, count: u64, object_pages: u64) -> DataSet {
        let objects = (0..count)
            .map(|_| rig.pager.alloc_object(None, object_pages))
            .collect::<Vec<_>>();
        DataSet {
            objects,
            object_pages,
        }
    }

    /// The streaming workloads' data set: objects of `sizes.object_pages` pages that fill
    /// `sizes.data_fraction` of the rig's usable swap (at least one object).
    pub fn streaming(rig: &Rig, sizes: &Sizes) -> DataSet {
        let pages = (rig.usable_pages() as f64 * sizes.data_fraction) as u64;
        DataSet::alloc(rig, (pages / sizes.object_pages).max(1), sizes.object_pages)
    }

    pub fn pages(&self) -> u64 {
        self.objects.len() as u64 * self.object_pages
    }

    pub fn bytes(&self) -> u64 {
        self.pages() * PAGE as u64
    }
}

/// Fill `buf` (whole pages) with the content of pages `start..` of object number `obj`:
/// a stamp, then a non-zero pattern.
pub fn stamp(buf: &mut [u8], obj: u64, start: u64) {
    for (i, page) in buf.chunks_mut(PAGE).enumerate() {
        let pindex = start + i as u64;
        page[..8].copy_from_slice(&obj.to_le_bytes());
        page[8..16].copy_from_slice(&pindex.to_le_bytes());
        let fill = (obj as u8).wrapping_mul(31) ^ (pindex as u8) | 1;
        page[16..].fill(fill);
    }
}

/// Rewrite only the stamps of `buf` (whole pages, already [`stamp`]ed once) for pages
/// `start..` of object number `obj`: what [`verify`] checks, without refilling the bodies.
pub fn restamp(buf: &mut [u8], obj: u64, start: u64) {
    for (i, page) in buf.chunks_mut(PAGE).enumerate() {
        page[..8].copy_from_slice(&obj.to_le_bytes());
        page[8..16].copy_from_slice(&(start + i as u64).to_le_bytes());
    }
}

/// Check the stamps of pages `start..` of object number `obj` in `buf`; the first wrong
/// page index, if any.
pub fn verify(buf: &[u8], obj: u64, start: u64) -> Option<u64> {
    for (i, page) in buf.chunks(PAGE).enumerate() {
        let pindex = start + i as u64;
        let ok = page[..8] == obj.to_le_bytes() && page[8..16] == pindex.to_le_bytes();
        if !ok {
            return Some(pindex);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_pages_verify_and_others_do_not() {
        let mut b = vec![0u8; 3 * PAGE];
        stamp(&mut b, 7, 10);
        assert_eq!(verify(&b, 7, 10), None);
        assert_eq!(verify(&b, 7, 11), Some(11));
        assert_eq!(verify(&b, 8, 10), Some(10));
        assert!(b.iter().skip(16).take(PAGE - 16).all(|&x| x != 0));
        restamp(&mut b, 9, 20);
        assert_eq!(verify(&b, 9, 20), None);
        assert_eq!(verify(&b, 7, 10), Some(10));
        assert!(
            b[16..PAGE].iter().all(|&x| x != 0),
            "the body stays non-zero"
        );
    }
}
