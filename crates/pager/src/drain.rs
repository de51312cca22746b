//! One swapoff pass: every block on the draining area is read back and rewritten
//! elsewhere, with reads and writes overlapping.
//!
//! The pass gathers, across all objects, the runs of pages contiguous both in the object
//! and on the area (at most `max_cluster` pages), sorts them by block so the area is read
//! front to back, and keeps up to [`Core::drain_depth`] cluster I/Os in flight: a finished read is
//! written at once, asynchronously, to a fresh run elsewhere from the same pbuf, and a
//! finished write is installed. All bookkeeping runs on the swapoff thread; completions
//! only send on a channel, so no lock is ever taken on an engine thread here.
//!
//! Guarantees, as in the sequential drain: each cluster read is registered with its object
//! (`ObjState::begin_read`) from just before it is submitted until it completes, so a
//! block freed meanwhile is parked only while that read is in flight and never reused
//! under it; blocks the clients free elsewhere go back at once, not at the end of the
//! pass. No lock is held while the pass waits for a completion or a pbuf. A move is installed only for pages still mapping the old block (a page
//! rewritten by its owner is not moved, its new block is freed); a failed write
//! quarantines its block and the run is rewritten synchronously with retries; on an error
//! nothing more is submitted, but everything in flight is waited for and installed before
//! the pass returns, so no block is lost or doubled.

use std::sync::Arc;

use crossbeam_channel::Sender;
use device::{DeviceError, IoOp, IoRequest, PageBuf};

use crate::config::{DeviceId, SwapoffOptions, SwapoffReport};
use crate::core::{Core, bump};
use crate::error::PagerError;
use crate::integrity;
use crate::object::{ObjectInner, Objects};
use crate::objstate::Lost;
use crate::space::Loc;

/// The fewest cluster I/Os a swapoff keeps in flight, however small `nswbuf`.
const MIN_DEPTH: usize = 4;

/// A run of `len` pages of object `obj` from `p0`, on the area from global block `b0`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    obj: usize,
    p0: u64,
    b0: u64,
    len: u64,
}

/// A completion, sent from an engine thread to the swapoff thread.
enum Done {
    Read {
        i: usize,
        buf: PageBuf,
        result: Result<(), DeviceError>,
    },
    Write {
        i: usize,
        blk: u64,
        dev: DeviceId,
        buf: PageBuf,
        result: Result<(), DeviceError>,
    },
}

/// The state of one pass.
struct Pass<'a> {
    objs: Vec<Arc<ObjectInner>>,
    chunks: Vec<Chunk>,
    loc: Loc,
    dev: DeviceId,
    report: &'a mut SwapoffReport,
    progress: &'a mut dyn FnMut(u64, u64),
}

/// `chunks` with each one that crosses area page `cut` (the first page past the end of
/// the area's file) split there, so the part before it is read and moved on its own.
fn split_at_cut(chunks: Vec<Chunk>, first: u64, cut: u64) -> Vec<Chunk> {
    let mut out = Vec::with_capacity(chunks.len() + 1);
    for c in chunks {
        let page = c.b0 - first + 1;
        if page < cut && page + c.len > cut {
            let head = cut - page;
            out.push(Chunk { len: head, ..c });
            out.push(Chunk {
                p0: c.p0 + head,
                b0: c.b0 + head,
                len: c.len - head,
                ..c
            });
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits `(pindex, block)` pairs (ascending pindex) into runs contiguous in both, of at
/// most `max` pages: each is one read.
pub(crate) fn clusters(pairs: &[(u64, u64)], max: u64) -> Vec<&[(u64, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=pairs.len() {
        let split = i == pairs.len()
            || pairs[i].0 != pairs[i - 1].0 + 1
            || pairs[i].1 != pairs[i - 1].1 + 1
            || (i - start) as u64 >= max;
        if split {
            out.push(&pairs[start..i]);
            start = i;
        }
    }
    out
}

impl Core {
    /// Cluster I/Os (reads plus the writes made from them) one swapoff keeps in flight: a
    /// quarter of `nswbuf` (64 by default), within what the read pbuf pool grants. Half of
    /// them are reads of the draining area, so that one device sees the queue depth it
    /// needs to stream (the sweep of issue #13: QD 16-32) while the other half are writes
    /// spread over the other areas. A fixed 16 left the drain at about half the device's
    /// best read.
    pub(crate) fn drain_depth(&self) -> usize {
        (self.tun.nswbuf / 4).max(MIN_DEPTH as u64) as usize
    }

    /// One pass over all objects (see the module doc). Returns how many pages it found
    /// on `dev`; on an error, returns it once all I/O of the pass has ended.
    pub(crate) fn drain_pass(
        &self,
        objects: &Objects,
        dev: DeviceId,
        failed: bool,
        opts: SwapoffOptions,
        report: &mut SwapoffReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, PagerError> {
        let Some(mut pass) = self.gather(objects, dev, report, progress) else {
            return Ok(0);
        };
        let found = pass.chunks.iter().map(|c| c.len).sum();
        if failed {
            for i in 0..pass.chunks.len() {
                let lost = self.drop_run(&pass, i, Lost::Dropped { device: dev });
                pass.report.lost += lost;
                self.finish(&mut pass);
            }
            Ok(found)
        } else {
            self.pipeline(&mut pass, opts).map(|()| found)
        }
    }

    /// Finds every run on `dev`. Nothing is registered yet: each run's read is, when it
    /// is submitted.
    fn gather<'a>(
        &self,
        objects: &Objects,
        dev: DeviceId,
        report: &'a mut SwapoffReport,
        progress: &'a mut dyn FnMut(u64, u64),
    ) -> Option<Pass<'a>> {
        let mut objs = Vec::new();
        let mut chunks = Vec::new();
        let mut loc = None;
        for obj in objects.live() {
            let st = obj.st.lock();
            let space = self.space.lock();
            // Only this swapoff removes the area; still, never leave a reader behind.
            let Some(idx) = space.index(dev) else { break };
            let a = &space.areas[idx];
            let pairs: Vec<(u64, u64)> = st
                .meta
                .iter()
                .map(|(p, b)| (p, u64::from(b)))
                .filter(|&(_, b)| a.contains(b))
                .collect();
            if pairs.is_empty() {
                continue;
            }
            loc.get_or_insert_with(|| Loc {
                dev,
                area: Arc::clone(&a.area),
                first: a.first,
                blocks: a.blocks,
                page: 1,
            });
            drop(space);
            drop(st);
            let k = objs.len();
            for c in clusters(&pairs, self.tun.max_cluster) {
                chunks.push(Chunk {
                    obj: k,
                    p0: c[0].0,
                    b0: c[0].1,
                    len: c.len() as u64,
                });
            }
            objs.push(obj);
        }
        chunks.sort_unstable_by_key(|c| c.b0);
        let loc = loc?;
        if let Some(cut) = loc.area.shrunk_pages() {
            chunks = split_at_cut(chunks, loc.first, cut);
        }
        Some(Pass {
            objs,
            chunks,
            loc,
            dev,
            report,
            progress,
        })
    }

    /// Runs the reads and writes of a pass, [`Core::drain_depth`] at a time. A read pbuf is waited
    /// for only when none of ours is held (so we never wait on ourselves). On an error
    /// nothing more is submitted, but everything in flight is seen through.
    fn pipeline(&self, pass: &mut Pass<'_>, opts: SwapoffOptions) -> Result<(), PagerError> {
        let (tx, rx) = crossbeam_channel::unbounded::<Done>();
        let mut next = 0;
        let mut busy = 0;
        let mut err: Option<PagerError> = None;
        let depth = self.drain_depth();
        loop {
            while err.is_none() && next < pass.chunks.len() && busy < depth {
                let len = pass.chunks[next].len as usize;
                let buf = if busy == 0 {
                    Some(self.read_pool.acquire(len))
                } else {
                    self.read_pool.try_acquire(len)
                };
                let Some(buf) = buf else { break };
                self.submit_read(pass, next, buf, &tx);
                busy += 1;
                next += 1;
            }
            if busy == 0 {
                break;
            }
            let Ok(done) = rx.recv() else { break };
            let still_busy = match done {
                Done::Read { i, buf, result } => {
                    self.read_done(pass, i, buf, result, opts, &mut err, &tx)
                }
                Done::Write {
                    i,
                    blk,
                    dev,
                    buf,
                    result,
                } => {
                    self.moved(pass, i, blk, dev, buf, result, &mut err);
                    false
                }
            };
            if !still_busy {
                busy -= 1;
                self.finish(pass);
            }
        }
        err.map_or(Ok(()), Err)
    }

    /// Registers chunk `i`'s read with its object and submits it into `buf`.
    fn submit_read(&self, pass: &Pass<'_>, i: usize, buf: PageBuf, tx: &Sender<Done>) {
        let c = pass.chunks[i];
        pass.objs[c.obj].st.lock().begin_read(c.b0, c.len);
        let req = IoRequest {
            tag: c.p0,
            op: IoOp::Read,
            page: c.b0 - pass.loc.first + 1,
            buf,
        };
        let tx = tx.clone();
        self.submit(&pass.loc.area, req, move |c| {
            let _ = tx.send(Done::Read {
                i,
                buf: c.buf,
                result: c.result,
            });
        });
    }

    /// Chunk `i` was read: checks its pages and writes it elsewhere (returns `true` while
    /// that write is in flight). A read error fails the pass (the first error is kept),
    /// or with `force` drops the chunk's pages.
    #[allow(clippy::too_many_arguments)]
    fn read_done(
        &self,
        pass: &mut Pass<'_>,
        i: usize,
        buf: PageBuf,
        result: Result<(), DeviceError>,
        opts: SwapoffOptions,
        err: &mut Option<PagerError>,
        tx: &Sender<Done>,
    ) -> bool {
        let c = pass.chunks[i];
        self.end_read(&pass.objs[c.obj], c.b0, c.len);
        bump(&self.counters.swapin, 1);
        match result {
            Ok(()) if err.is_none() => {
                bump(&self.counters.pages_in, c.len);
                pass.report.lost += self.check_chunk(pass, i, buf.as_slice());
                match self.write_run(pass, i, buf, tx) {
                    Ok(in_flight) => return in_flight,
                    Err(e) => *err = Some(e),
                }
            }
            Ok(()) => self.read_pool.release(buf),
            Err(e) => {
                self.read_pool.release(buf);
                self.io_error(pass.dev, &e, false);
                let cut = pass.loc.area.shrunk_pages();
                let page = c.b0 - pass.loc.first + 1;
                if matches!(e, DeviceError::Shrunk { .. }) && cut.is_some_and(|cut| page >= cut) {
                    // Past the cut of the area's file: gone, force or not.
                    let why = Lost::Truncated { device: pass.dev };
                    pass.report.lost += self.drop_run(pass, i, why);
                } else if matches!(e, DeviceError::Shrunk { .. }) {
                    // Across a cut first seen during the pass: the next pass splits it
                    // there and moves the part before it.
                } else if opts.force {
                    pass.report.lost += self.drop_run(pass, i, Lost::Dropped { device: pass.dev });
                } else if err.is_none() {
                    *err = Some(PagerError::SwapoffRead {
                        path: pass.loc.area.path().to_owned(),
                        object: pass.objs[c.obj].name(),
                        pindex: c.p0,
                        source: e,
                    });
                }
            }
        }
        false
    }

    /// Chunk `i` was written at `blk` on `dev`: installs it, or after a failed write
    /// quarantines the run and rewrites the chunk synchronously with retries.
    #[allow(clippy::too_many_arguments)]
    fn moved(
        &self,
        pass: &mut Pass<'_>,
        i: usize,
        blk: u64,
        dev: DeviceId,
        buf: PageBuf,
        result: Result<(), DeviceError>,
        err: &mut Option<PagerError>,
    ) {
        let c = pass.chunks[i];
        bump(&self.counters.swapout, 1);
        bump(&self.counters.pages_out, c.len);
        match result {
            Ok(()) => {
                self.space.lock().write_result(dev, true);
                pass.report.moved += self.install(pass, i, blk);
            }
            Err(e) => {
                self.io_error(dev, &e, true);
                self.space.lock().quarantine(blk, c.len);
                let path = pass.loc.area.path();
                match self.rewrite(&pass.objs[c.obj], c.p0, c.b0, buf.as_slice(), path) {
                    Ok(moved) => pass.report.moved += moved,
                    Err(e) => {
                        err.get_or_insert(e);
                    }
                }
            }
        }
        self.read_pool.release(buf);
    }
}

impl Core {
    /// Allocates a run for chunk `i` and submits its write from `buf` (the read's pbuf).
    /// Returns `true` when the write is in flight. When only a shorter run is free, the
    /// chunk is rewritten synchronously instead (split over several runs) and `buf` is
    /// released.
    fn write_run(
        &self,
        pass: &mut Pass<'_>,
        i: usize,
        buf: PageBuf,
        tx: &Sender<Done>,
    ) -> Result<bool, PagerError> {
        let c = pass.chunks[i];
        let run = self.space.lock().alloc(c.len);
        let short = match run {
            Some(run) if run.len == c.len => Some(run),
            Some(run) => {
                self.space.lock().free(run.blk, run.len);
                None
            }
            None => None,
        };
        if let Some(run) = short {
            let req = IoRequest {
                tag: c.p0,
                op: IoOp::Write,
                page: run.page,
                buf,
            };
            let (tx, blk, dev) = (tx.clone(), run.blk, run.dev);
            self.submit(&run.area, req, move |c| {
                let _ = tx.send(Done::Write {
                    i,
                    blk,
                    dev,
                    buf: c.buf,
                    result: c.result,
                });
            });
            return Ok(true);
        }
        let result = self.rewrite(
            &pass.objs[c.obj],
            c.p0,
            c.b0,
            buf.as_slice(),
            pass.loc.area.path(),
        );
        self.read_pool.release(buf);
        pass.report.moved += result?;
        Ok(false)
    }

    /// Checks chunk `i`'s pages, just read into `data`, against their checksums. A page
    /// that still maps the block it was read from and fails is dropped from its object and
    /// marked lost (corrupt), so that later reads of it are an error, and its old block is
    /// released; `install` then finds it gone and frees its new block. Returns how many.
    fn check_chunk(&self, pass: &Pass<'_>, i: usize, data: &[u8]) -> u64 {
        let c = pass.chunks[i];
        let obj = &pass.objs[c.obj];
        // The checksums of the pages that still map the blocks read, taken under the lock;
        // the data is checked after it is let go.
        let want: Vec<Option<u32>> = {
            let st = obj.st.lock();
            if !st.meta.has_checksums() {
                return 0;
            }
            (0..c.len)
                .map(|k| {
                    let p = c.p0 + k;
                    st.maps(p, c.b0 + k).then(|| st.meta.checksum(p)).flatten()
                })
                .collect()
        };
        let bad = integrity::bad_pages(data, &want);
        if !bad.contains(&true) {
            return 0;
        }
        let mut st = obj.st.lock();
        let mut space = self.space.lock();
        let mut n = 0;
        for (k, _) in bad.iter().enumerate().filter(|(_, b)| **b) {
            let (p, old) = (c.p0 + k as u64, c.b0 + k as u64);
            let page = old - pass.loc.first + 1;
            let why = Lost::Corrupt {
                device: pass.dev,
                page,
            };
            // Rewritten or freed meanwhile: nothing of it is lost.
            if st.drop_lost(&mut space, p, old, why) {
                n += 1;
            }
        }
        drop(space);
        drop(st);
        self.corrupt(pass.dev, bad.iter().filter(|&&b| b).count() as u64);
        n
    }

    /// Installs chunk `i` written at `blk`: each page still mapping its old block gets
    /// the new one, with its checksum (the old is released); the others' new blocks are
    /// freed. Returns pages moved.
    fn install(&self, pass: &Pass<'_>, i: usize, blk: u64) -> u64 {
        let c = pass.chunks[i];
        let mut st = pass.objs[c.obj].st.lock();
        let mut space = self.space.lock();
        st.install_moved(&mut space, c.p0, c.b0, blk, c.len)
    }

    /// Drops chunk `i`'s pages that still map their block on the area (forced swapoff of
    /// unreadable blocks, or blocks past a cut in the area's file) and marks them lost,
    /// saying `why`. Returns how many were lost.
    fn drop_run(&self, pass: &Pass<'_>, i: usize, why: Lost) -> u64 {
        let c = pass.chunks[i];
        let mut st = pass.objs[c.obj].st.lock();
        let mut space = self.space.lock();
        (0..c.len)
            .filter(|&k| st.drop_lost(&mut space, c.p0 + k, c.b0 + k, why))
            .count() as u64
    }

    /// Chunk `i` is done: reports progress.
    fn finish(&self, pass: &mut Pass<'_>) {
        let done = pass.report.moved + pass.report.lost;
        let total = {
            let mut space = self.space.lock();
            let idx = space.index(pass.dev);
            match idx.and_then(|i| space.areas[i].draining.as_mut()) {
                Some(d) => {
                    d.moved = done;
                    d.total = d.total.max(done);
                    d.total
                }
                None => done,
            }
        };
        (pass.progress)(done, total);
    }
}
