//! `strategy`: an object as a block device (`swap_pager_strategy`, FreeBSD's `md -t swap`).
//!
//! READ fills pages without swap with zeroes (the seed's zero-fill shortcut) and reads the
//! rest in clusters contiguous in swap; WRITE allocates, through `putpages`, so a failed
//! write keeps the page's previous copy; DELETE frees. Anything not page aligned is refused
//! with `EINVAL` before anything is done, as the seed does.

use std::sync::Arc;

use device::{DeviceError, IoCompletion, IoOp, IoRequest, PAGE_SIZE};

use crate::integrity;

use crate::core::{Core, bump};
use crate::error::PagerError;
use crate::getpages::ReadRun;
use crate::io::{Bio, PageResult, PutMode};
use crate::object::ObjectInner;

/// Reads in flight at once for one `strategy` call (the seed's `getchainbuf` limit).
const CHAIN: usize = 4;

impl Core {
    /// `swap_pager_strategy` (see [`crate::Pager::strategy`]): alignment and bounds are
    /// checked before anything is done, then the request goes to freespace, putpages or
    /// [`Core::read_range`].
    pub(crate) fn strategy(
        self: &Arc<Core>,
        obj: &Arc<ObjectInner>,
        bio: Bio<'_>,
    ) -> Result<(), PagerError> {
        let (offset, len) = match &bio {
            Bio::Read { offset, buf } => (*offset, buf.len() as u64),
            Bio::Write { offset, data } => (*offset, data.len() as u64),
            Bio::Delete { offset, len } => (*offset, *len),
        };
        let ps = PAGE_SIZE as u64;
        if offset % ps != 0 || len % ps != 0 {
            return Err(PagerError::Unaligned {
                object: obj.name(),
                offset,
                len,
            });
        }
        let (start, n) = (offset / ps, len / ps);
        if start.checked_add(n).is_none_or(|end| end > obj.size) {
            return Err(PagerError::BadRequest {
                object: obj.name(),
                what: format!(
                    "I/O at byte {offset} of {len} bytes ends past the object's {} pages",
                    obj.size
                ),
            });
        }
        match bio {
            Bio::Delete { .. } => {
                self.freespace(obj, start, n);
                Ok(())
            }
            Bio::Write { data, .. } => {
                let results = self.putpages(obj, start, data, PutMode::Sync);
                match results.iter().position(|r| *r != PageResult::Ok) {
                    None => Ok(()),
                    Some(i) if results[i] == PageResult::Fail => Err(PagerError::NoSpace {
                        object: obj.name(),
                        pindex: start + i as u64,
                    }),
                    Some(i) => Err(PagerError::Write {
                        object: obj.name(),
                        pindex: start + i as u64,
                        source: None,
                    }),
                }
            }
            Bio::Read { buf, .. } => self.read_range(obj, start, n, buf),
        }
    }

    /// Reads pages `start..start+n` into `buf`: zeroes where there is no block, one I/O per
    /// run contiguous in swap. Waits first for writes in flight on the range.
    fn read_range(
        &self,
        obj: &ObjectInner,
        start: u64,
        n: u64,
        buf: &mut [u8],
    ) -> Result<(), PagerError> {
        buf.fill(0);
        let end = start + n;
        let runs = {
            let mut st = obj.st.lock();
            if st.pending.keys().any(|p| (start..end).contains(p)) {
                bump(&self.counters.intrans_waits, 1);
                while st.pending.keys().any(|p| (start..end).contains(p)) {
                    st.wait(&obj.cond);
                }
            }
            // A page whose acknowledged bytes are gone reads as an error, not as zeroes.
            let lost = st
                .lost
                .iter()
                .filter(|(p, _)| (start..end).contains(*p))
                .min_by_key(|(p, _)| **p);
            if let Some((&p, &why)) = lost {
                return Err(crate::getpages::lost_error(obj, p, why));
            }
            let space = self.space.lock();
            let mut runs = Vec::new();
            let mut p = start;
            while p < end {
                let Some(data) = st.meta.seek_data(p).filter(|&d| d < end) else {
                    break;
                };
                let Some(blk) = st.meta.lookup(data) else {
                    break;
                };
                let run = self.plan_run(&st, &space, data, u64::from(blk), 0, end - 1 - data);
                let Some(run) = run else {
                    return Err(PagerError::NotOnSwap {
                        object: obj.name(),
                        pindex: data,
                    });
                };
                p = run.pindex + run.len;
                runs.push(run);
            }
            drop(space);
            for run in &runs {
                st.begin_read(run.blk, run.len);
            }
            let crcs: Vec<_> = runs
                .iter()
                .map(|r| crate::getpages::checksums(&st, r.pindex, r.len))
                .collect();
            (runs, crcs)
        };
        let (runs, crcs) = runs;
        if runs.is_empty() {
            return Ok(());
        }
        let result = self.read_chain(obj, &runs, &crcs, start, buf);
        for run in &runs {
            self.end_read(obj, run.blk, run.len);
        }
        result
    }

    /// Reads planned runs into `buf` (which starts at page `start`) with up to `CHAIN`
    /// reads in flight, like the seed's `getchainbuf`/`waitchainbuf`. A pbuf is waited
    /// for only while none of ours is in flight, so even a pool of one cannot deadlock
    /// against itself. Each run's pages are checked against `crcs` (a page that fails is
    /// wiped from `buf`). On an error no more reads are started; the first error is
    /// returned: a read error with the run's first page, or the first corrupt page.
    fn read_chain(
        &self,
        obj: &ObjectInner,
        runs: &[ReadRun],
        crcs: &[Vec<Option<u32>>],
        start: u64,
        buf: &mut [u8],
    ) -> Result<(), PagerError> {
        let (tx, rx) = crossbeam_channel::unbounded::<IoCompletion>();
        let (mut next, mut inflight) = (0, 0);
        let mut first_err = None;
        while (next < runs.len() && first_err.is_none()) || inflight > 0 {
            while next < runs.len() && inflight < CHAIN && first_err.is_none() {
                let run = &runs[next];
                let pages = run.len as usize;
                let pbuf = if inflight == 0 {
                    Some(self.read_pool.acquire(pages))
                } else {
                    self.read_pool.try_acquire(pages)
                };
                let Some(pbuf) = pbuf else { break };
                let tx = tx.clone();
                let req = IoRequest {
                    tag: next as u64,
                    op: IoOp::Read,
                    page: run.loc.page,
                    buf: pbuf,
                };
                self.submit(&run.loc.area, req, move |c| {
                    let _ = tx.send(c);
                });
                inflight += 1;
                next += 1;
            }
            let Ok(c) = rx.recv() else {
                return Err(PagerError::Read {
                    object: obj.name(),
                    pindex: start,
                    source: DeviceError::completion_lost(),
                });
            };
            inflight -= 1;
            let run = &runs[c.tag as usize];
            bump(&self.counters.swapin, 1);
            match c.result {
                Ok(()) => {
                    bump(&self.counters.pages_in, run.len);
                    let at = (run.pindex - start) as usize * PAGE_SIZE;
                    let dst = &mut buf[at..at + run.len as usize * PAGE_SIZE];
                    let bad = integrity::copy_checked(dst, c.buf.as_slice(), &crcs[c.tag as usize]);
                    if let Some(k) = bad.iter().position(|&b| b) {
                        let n = bad.iter().filter(|&&b| b).count();
                        self.corrupt(run.loc.dev, n as u64);
                        for (page, _) in dst.chunks_exact_mut(PAGE_SIZE).zip(&bad).filter(|p| *p.1)
                        {
                            page.fill(0);
                        }
                        first_err.get_or_insert(PagerError::Corrupt {
                            object: obj.name(),
                            pindex: run.pindex + k as u64,
                            device: run.loc.dev,
                            block: run.loc.page + k as u64,
                        });
                    }
                }
                Err(e) => {
                    self.io_error(run.loc.dev, &e, false);
                    first_err.get_or_insert(PagerError::Read {
                        object: obj.name(),
                        pindex: run.pindex,
                        source: e,
                    });
                }
            }
            self.read_pool.release(c.buf);
        }
        first_err.map_or(Ok(()), Err)
    }
}
