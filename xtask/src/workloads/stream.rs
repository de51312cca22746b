//! `pageout-seq` and `pagein-seq`: whole objects out in 32-page async clusters, and back in
//! with read-ahead, the shapes of a process being swapped out and in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pager::{PageResult, PutMode};

use super::{DataSet, PAGE, Rig, restamp, stamp, verify};
use crate::cancel;
use crate::error::Error;
use crate::latency::Recorder;
use crate::progress::Progress;
use crate::results::Figure;

/// Page out every object of `ds` with one async `putpages` of the whole object each, from one
/// thread, then wait for the writes. The pager cuts each call into `max_cluster` clusters and
/// keeps at most `swap_async_max` of them in flight: the raw baseline runs at that depth.
///
/// Passes repeat (each page rewritten to a new block, the old one freed) until `min_time`.
/// Fails if any page got no space or failed to write: a figure over lost data is no figure.
pub fn pageout_seq(
    rig: &Rig,
    ds: &DataSet,
    id: &str,
    queue_depth: u32,
    min_time: Duration,
) -> Result<Figure, Error> {
    let progress = Progress::start(id, ds.bytes());
    let bad = Arc::new(AtomicU64::new(0));
    // Page-aligned, as a program holding pages has them: reads land in it directly.
    let mut page_buf = device::PageBuf::new(ds.object_pages as usize);
    let buf: &mut [u8] = page_buf.as_mut_slice();
    // The non-zero body once; each object then rewrites only the stamps, so the phase's
    // CPU is the pager's and not the bench filling 16 MiB per call (9% of it in a profile).
    stamp(&mut *buf, 0, 0);
    let mut latency = Recorder::new();
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut calls = 0u64;
    let work = ds.objects.iter().enumerate().cycle().enumerate();
    for (n, (i, obj)) in work {
        let pass_done = n > 0 && n % ds.objects.len() == 0;
        if cancel::cancelled() || (pass_done && start.elapsed() >= min_time) {
            break;
        }
        restamp(&mut *buf, i as u64, 0);
        let b = Arc::clone(&bad);
        let done: pager::AsyncCallback = Box::new(move |d: pager::AsyncDone| {
            let n = d.results.iter().filter(|r| **r != PageResult::Ok).count();
            b.fetch_add(n as u64, Ordering::Relaxed);
        });
        let t = Instant::now();
        let res = rig.pager.putpages(obj, 0, buf, PutMode::Async(Some(done)));
        latency.record(t.elapsed());
        let failed = res
            .iter()
            .filter(|r| matches!(r, PageResult::Fail | PageResult::Error))
            .count();
        if failed > 0 {
            rig.pager.wait_async();
            return Err(Error::workload(
                "pageout-seq",
                format!("{failed} pages of object {i} got no swap or failed to write"),
            ));
        }
        progress.add(buf.len() as u64);
        bytes += buf.len() as u64;
        calls += 1;
    }
    rig.pager.wait_async();
    let seconds = start.elapsed().as_secs_f64();
    drop(progress);
    cancel::check()?;
    let bad = bad.load(Ordering::Relaxed);
    if bad > 0 {
        return Err(Error::workload(
            "pageout-seq",
            format!("{bad} pages failed to write"),
        ));
    }
    Ok(Figure::new(
        id,
        format!(
            "async putpages of whole {}-page objects, clusters of up to 32 pages",
            ds.object_pages
        ),
        bytes,
        calls,
        seconds,
    )
    .with_shape(1, queue_depth)
    .with_latency(latency.summary()))
}

/// Read every object of `ds` back, front to back, with getpages of one page plus up to 31
/// pages of read-ahead, from `threads` threads taking whole objects in turn. Every page's
/// stamp is checked. Passes repeat until `min_time`.
pub fn pagein_seq(
    rig: &Rig,
    ds: &DataSet,
    threads: usize,
    id: &str,
    min_time: Duration,
) -> Result<Figure, Error> {
    let max_ahead = rig.pager.stats().tunables.max_cluster.max(1) - 1;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let reader = Reader {
        rig,
        ds,
        max_ahead,
        calls: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        progress: Progress::start(id, ds.bytes()),
    };
    let start = Instant::now();
    let results: Vec<Result<Recorder, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut latency = Recorder::new();
                    let mut page_buf = device::PageBuf::new(max_ahead as usize + 1);
                    let buf: &mut [u8] = page_buf.as_mut_slice();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let first_pass = n < ds.objects.len();
                        if (!first_pass && start.elapsed() >= min_time)
                            || stop.load(Ordering::Relaxed)
                            || cancel::cancelled()
                        {
                            return Ok(latency);
                        }
                        let i = n % ds.objects.len();
                        if let Err(e) = reader.read_object(i, &mut *buf, &mut latency) {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::workload("pagein-seq", "a reader thread panicked"))
                })
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let Reader {
        calls,
        bytes,
        progress,
        ..
    } = reader;
    drop(progress);
    let mut latency = Recorder::new();
    for r in results {
        latency.merge(&r?);
    }
    cancel::check()?;
    Ok(Figure::new(
        id,
        format!("getpages with up to {max_ahead} pages of read-ahead, {threads} threads"),
        bytes.into_inner(),
        calls.into_inner(),
        seconds,
    )
    .with_shape(threads as u32, 1)
    .with_latency(latency.summary()))
}

/// What the reader threads of [`pagein_seq`] share: the data set and the tallies.
struct Reader<'a> {
    rig: &'a Rig,
    ds: &'a DataSet,
    max_ahead: u64,
    calls: AtomicU64,
    bytes: AtomicU64,
    progress: Progress,
}

impl Reader<'_> {
    /// Reads object `i` front to back with getpages of one page plus up to `max_ahead`, into
    /// `buf` (room for `max_ahead + 1` pages), and checks every page's stamp.
    fn read_object(&self, i: usize, buf: &mut [u8], latency: &mut Recorder) -> Result<(), Error> {
        let (obj, pages) = (&self.ds.objects[i], self.ds.object_pages);
        let mut pindex = 0;
        while pindex < pages {
            let ahead = self.max_ahead.min(pages - 1 - pindex);
            let out = &mut buf[..(ahead as usize + 1) * PAGE];
            let t = Instant::now();
            let got = self.rig.pager.getpages(obj, pindex, 0, ahead, out);
            latency.record(t.elapsed());
            let n = got?.end.saturating_sub(pindex).max(1);
            if let Some(bad) = verify(&out[..n as usize * PAGE], i as u64, pindex) {
                return Err(Error::workload(
                    "pagein-seq",
                    format!("object {i} page {bad} read back wrong data"),
                ));
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(n * PAGE as u64, Ordering::Relaxed);
            self.progress.add(n * PAGE as u64);
            pindex += n;
        }
        Ok(())
    }
}
