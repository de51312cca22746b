//! `pagein-rand` and `mixed`: single pages at random over the data set, the shape of a
//! working set that no longer fits in memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pager::{PageResult, PutMode};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{DataSet, PAGE, Rig, stamp, verify};
use crate::cancel;
use crate::error::Error;
use crate::latency::Recorder;
use crate::progress::Progress;
use crate::results::Figure;

/// What one worker does at each step.
#[derive(Debug, Clone, Copy)]
struct Mix {
    /// Percent of steps that write (a sync single-page putpages) instead of reading.
    write_percent: u32,
}

/// Run `threads` workers over `ds` for `time`: each step picks a random page of a random
/// object and reads it (getpages without read-ahead, stamp checked) or rewrites it
/// (sync putpages: a new block, the old one freed). One latency per call.
fn run(
    rig: &Rig,
    ds: &DataSet,
    threads: usize,
    time: Duration,
    mix: Mix,
    name: &'static str,
    label: &str,
) -> Result<(u64, f64, Recorder, Recorder), Error> {
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let progress = Progress::start(label, time.as_millis() as u64);
    let start = Instant::now();
    let results: Vec<Result<(Recorder, Recorder), Error>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let (stop, ops) = (&stop, &ops);
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(0x7a9d ^ t as u64);
                    let (mut reads, mut writes) = (Recorder::new(), Recorder::new());
                    // Page-aligned, as a program holding pages has it.
                    let mut page_buf = device::PageBuf::new(1);
                    let buf: &mut [u8] = page_buf.as_mut_slice();
                    while !stop.load(Ordering::Relaxed) {
                        let i = rng.random_range(0..ds.objects.len());
                        let pindex = rng.random_range(0..ds.object_pages);
                        let obj = &ds.objects[i];
                        let write = rng.random_range(0..100) < mix.write_percent;
                        let t0 = Instant::now();
                        // Only the pager call is timed, not the stamping or the check.
                        let outcome = if write {
                            stamp(&mut *buf, i as u64, pindex);
                            let r = rig.pager.putpages(obj, pindex, buf, PutMode::Sync);
                            writes.record(t0.elapsed());
                            written(&r, name, i, pindex)
                        } else {
                            let got = rig.pager.getpages(obj, pindex, 0, 0, &mut *buf);
                            reads.record(t0.elapsed());
                            got.map_err(Error::from)
                                .and_then(|_| read_back(buf, name, i, pindex))
                        };
                        if let Err(e) = outcome {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((reads, writes))
                })
            })
            .collect();
        // The timer: the workers only poll a flag.
        while start.elapsed() < time && !cancel::cancelled() && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            progress.add(20);
        }
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::workload(name, "a worker panicked")))
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    drop(progress);
    let (mut reads, mut writes) = (Recorder::new(), Recorder::new());
    for r in results {
        let (rd, wr) = r?;
        reads.merge(&rd);
        writes.merge(&wr);
    }
    cancel::check()?;
    Ok((ops.load(Ordering::Relaxed), seconds, reads, writes))
}

/// `Ok` when the sync rewrite of object `i`'s page `pindex` took.
fn written(r: &[PageResult], name: &'static str, i: usize, pindex: u64) -> Result<(), Error> {
    if r.first() == Some(&PageResult::Ok) {
        Ok(())
    } else {
        Err(Error::workload(
            name,
            format!("rewriting object {i} page {pindex}: {r:?}"),
        ))
    }
}

/// `Ok` when `page` holds the stamp of object `i`'s page `pindex`.
fn read_back(page: &[u8], name: &'static str, i: usize, pindex: u64) -> Result<(), Error> {
    match verify(page, i as u64, pindex) {
        None => Ok(()),
        Some(_) => Err(Error::workload(
            name,
            format!("object {i} page {pindex} read back wrong data"),
        )),
    }
}

/// `pagein-rand-<threads>t`: random single-page getpages, no read-ahead.
pub fn pagein_rand(
    rig: &Rig,
    ds: &DataSet,
    threads: usize,
    time: Duration,
) -> Result<Figure, Error> {
    let id = format!("pagein-rand-{threads}t");
    let (ops, secs, reads, _) = run(
        rig,
        ds,
        threads,
        time,
        Mix { write_percent: 0 },
        "pagein-rand",
        &id,
    )?;
    Ok(Figure::new(
        &id,
        format!("getpages of one random page, no read-ahead, {threads} threads"),
        ops * PAGE as u64,
        ops,
        secs,
    )
    .with_shape(threads as u32, 1)
    .with_latency(reads.summary()))
}

/// `mixed`: 70% random single-page reads, 30% sync single-page rewrites. Returns the whole
/// figure (latency of both kinds) and the reads and writes apart.
pub fn mixed(
    rig: &Rig,
    ds: &DataSet,
    threads: usize,
    time: Duration,
) -> Result<Vec<Figure>, Error> {
    let (ops, secs, reads, writes) = run(
        rig,
        ds,
        threads,
        time,
        Mix { write_percent: 30 },
        "mixed",
        "mixed 70/30",
    )?;
    let mut all = reads.clone();
    all.merge(&writes);
    let what = format!("70% getpages / 30% sync putpages of one random page, {threads} threads");
    let part = |id: &str, r: &Recorder, what: &str| {
        Figure::new(id, what, r.count() * PAGE as u64, r.count(), secs)
            .with_shape(threads as u32, 1)
            .with_latency(r.summary())
    };
    Ok(vec![
        Figure::new("mixed", what, ops * PAGE as u64, ops, secs)
            .with_shape(threads as u32, 1)
            .with_latency(all.summary()),
        part("mixed-reads", &reads, "the reads of mixed"),
        part(
            "mixed-writes",
            &writes,
            "the writes of mixed (sync putpages of one page)",
        ),
    ])
}
