//! `getpages` and `haspage`: pagein with read-behind/read-ahead in one I/O
//! (`swap_pager_getpages`, `swap_pager_haspage`), and the cluster read that `strategy` and
//! `swapoff` share.

use std::ops::Range;
use std::sync::Arc;

use device::{DeviceError, IoOp, IoRequest, PAGE_SIZE};

use crate::core::{Core, bump};
use crate::error::PagerError;
use crate::integrity;
use crate::object::ObjectInner;
use crate::objlock::StateGuard;
use crate::objstate::{Lost, ObjState};
use crate::space::{Loc, Space};

/// A read planned under the object lock: `len` pages from `pindex`, on one area from `page`.
#[derive(Debug, Clone)]
pub(crate) struct ReadRun {
    pub pindex: u64,
    pub len: u64,
    /// Global block of the run's first page.
    pub blk: u64,
    pub loc: Loc,
}

impl Core {
    /// Waits while page `pindex` has a write in flight (the seed sleeps on
    /// `PG_SWAPINPROG`), counting the wait as `intrans`.
    pub(crate) fn wait_intrans(&self, obj: &ObjectInner, st: &mut StateGuard<'_>, pindex: u64) {
        if st.pending.contains_key(&pindex) {
            bump(&self.counters.intrans_waits, 1);
            while st.pending.contains_key(&pindex) {
                st.wait(&obj.cond);
            }
        }
    }

    /// The run around `pindex` (which has block `blk`) that one I/O can read: neighbours
    /// whose blocks continue `blk` backwards and forwards, on the same area and stripe,
    /// with no write in flight, at most `max_cluster` pages in all (the seed's `reqpage`
    /// scan in `swap_pager_getpages`). Read-behind is given up first when it is too long.
    pub(crate) fn plan_run(
        &self,
        st: &ObjState,
        space: &Space,
        pindex: u64,
        blk: u64,
        max_behind: u64,
        max_ahead: u64,
    ) -> Option<ReadRun> {
        let loc = space.resolve(blk)?;
        // A file cut short under the area: a run that starts before the cut stops at it, so
        // the intact pages read (one past it fails, and alone).
        let cut = loc.area.shrunk_pages().unwrap_or(u64::MAX);
        let before_cut = |b: u64| loc.page >= cut || b - loc.first + 1 < cut;
        let fits = |p: Option<u64>, b: Option<u64>| match (p, b) {
            (Some(p), Some(b)) => {
                space.same_stripe(&loc, b)
                    && before_cut(b)
                    && st.meta.lookup(p).map(u64::from) == Some(b)
                    && !st.pending.contains_key(&p)
            }
            _ => false,
        };
        let room = self.tun.max_cluster.saturating_sub(1);
        let mut ahead = 0;
        while ahead < max_ahead.min(room) {
            let k = ahead + 1;
            if !fits(pindex.checked_add(k), blk.checked_add(k)) {
                break;
            }
            ahead = k;
        }
        let mut behind = 0;
        while behind < max_behind.min(room - ahead).min(pindex) {
            let k = behind + 1;
            if !fits(pindex.checked_sub(k), blk.checked_sub(k)) {
                break;
            }
            behind = k;
        }
        let first = blk - behind;
        let loc = Loc {
            page: loc.page - behind,
            ..loc
        };
        debug_assert_eq!(loc.page, first - loc.first + 1);
        Some(ReadRun {
            pindex: pindex - behind,
            len: behind + 1 + ahead,
            blk: first,
            loc,
        })
    }

    /// Reads a planned run into `out` (`len` pages) and checks each page against `crcs`:
    /// returns, per page, whether it failed. Counts the read; marks the area failed if it
    /// vanished. On an error, `out` may hold part of the read: the caller wipes it.
    ///
    /// Page-aligned `out` (what a pager's client holds: pages) is read into directly on the
    /// caller's thread ([`device::Engine::read_into`]): no pbuf and no copy, and the
    /// checksums are computed once, over the bytes the caller gets. Other memory cannot take
    /// `O_DIRECT` I/O: the run goes through a read pbuf and each page is checked as it is
    /// copied out ([`integrity::copy_checked`]).
    pub(crate) fn read_run(
        &self,
        run: &ReadRun,
        out: &mut [u8],
        crcs: &[Option<u32>],
    ) -> Result<Vec<bool>, DeviceError> {
        if device::Engine::lendable(out) {
            let result = self.engine().read_into(&run.loc.area, run.loc.page, out);
            bump(&self.counters.swapin, 1);
            return match result {
                Ok(()) => {
                    bump(&self.counters.pages_in, run.len);
                    Ok(integrity::bad_pages(out, crcs))
                }
                Err(e) => {
                    self.io_error(run.loc.dev, &e, false);
                    Err(e)
                }
            };
        }
        let buf = self.read_pool.acquire(run.len as usize);
        let req = IoRequest {
            tag: run.pindex,
            op: IoOp::Read,
            page: run.loc.page,
            buf,
        };
        let (buf, result) = self.submit_wait(&run.loc.area, req);
        bump(&self.counters.swapin, 1);
        let result = match result {
            Ok(()) => {
                bump(&self.counters.pages_in, run.len);
                Ok(integrity::copy_checked(out, buf.as_slice(), crcs))
            }
            Err(e) => {
                self.io_error(run.loc.dev, &e, false);
                Err(e)
            }
        };
        self.read_pool.release(buf);
        result
    }

    /// Ends a read of `len` blocks from `first` registered with `ObjState::begin_read`.
    /// The space lock only when blocks are parked (they are parked under the object's
    /// lock, held here): most reads end without it.
    pub(crate) fn end_read(&self, obj: &ObjectInner, first: u64, len: u64) {
        let mut st = obj.st.lock();
        if st.deferred.is_empty() {
            st.forget_read(first, len);
        } else {
            let mut space = self.space.lock();
            st.end_read(&mut space, first, len);
        }
        drop(st);
        obj.cond.notify_all();
    }

    /// Under the object lock: waits out a write in flight on the page, plans the run
    /// around it and registers as a reader (so no block of the run is freed and reused
    /// under the read); returns the run and its pages' checksums. The caller reads with no
    /// lock, then `finish_read`s.
    ///
    /// One piece: the wait, the plan and the reader's registration happen under one hold of
    /// the object lock, which a split would have to hand across functions.
    fn plan_read(
        &self,
        obj: &ObjectInner,
        pindex: u64,
        max_behind: u64,
        max_ahead: u64,
    ) -> Result<(ReadRun, Vec<Option<u32>>), PagerError> {
        let mut st = obj.st.lock();
        self.wait_intrans(obj, &mut st, pindex);
        if let Some(&why) = st.lost.get(&pindex) {
            return Err(lost_error(obj, pindex, why));
        }
        let not_on_swap = || PagerError::NotOnSwap {
            object: obj.name(),
            pindex,
        };
        let blk = st.meta.lookup(pindex).ok_or_else(not_on_swap)?;
        let space = self.space.lock();
        let run = self
            .plan_run(&st, &space, pindex, u64::from(blk), max_behind, max_ahead)
            .ok_or_else(not_on_swap)?;
        drop(space);
        st.begin_read(run.blk, run.len);
        let crcs = checksums(&st, run.pindex, run.len);
        Ok((run, crcs))
    }

    /// Reads a planned run into `dst` (its `len` pages), ends the read's registration, and
    /// applies the integrity check: a page whose bytes do not match its checksum is wiped
    /// and never returned, counted corrupt once here; a failed read wipes all of `dst`.
    /// Returns, per page, whether it failed its check.
    fn read_checked(
        &self,
        obj: &ObjectInner,
        run: &ReadRun,
        dst: &mut [u8],
        crcs: &[Option<u32>],
    ) -> Result<Vec<bool>, DeviceError> {
        let result = self.read_run(run, dst, crcs);
        self.end_read(obj, run.blk, run.len);
        let bad = result.inspect_err(|_| {
            // Never leave part of a failed read behind as if it were data.
            dst.fill(0);
        })?;
        let nbad = bad.iter().filter(|&&b| b).count() as u64;
        if nbad > 0 {
            self.corrupt(run.loc.dev, nbad);
            for (page, _) in dst
                .chunks_exact_mut(PAGE_SIZE)
                .zip(&bad)
                .filter(|(_, b)| **b)
            {
                page.fill(0);
            }
        }
        Ok(bad)
    }

    /// `swap_pager_getpages` (see [`crate::Pager::getpages`]): plan the run around the
    /// page and read it with no lock held; the wanted page failing its check is the error,
    /// a neighbour failing just ends the run short of it.
    pub(crate) fn getpages(
        &self,
        obj: &Arc<ObjectInner>,
        pindex: u64,
        max_behind: u64,
        max_ahead: u64,
        out: &mut [u8],
    ) -> Result<Range<u64>, PagerError> {
        let window = max_behind.saturating_add(1).saturating_add(max_ahead);
        if max_behind > pindex || (out.len() as u64) != window.saturating_mul(PAGE_SIZE as u64) {
            return Err(PagerError::BadRequest {
                object: obj.name(),
                what: format!(
                    "getpages of page {pindex} with {max_behind} behind and {max_ahead} ahead needs \
                     {window} pages of buffer and at least {max_behind} pages before it; got {} bytes",
                    out.len()
                ),
            });
        }
        let (run, crcs) = self.plan_read(obj, pindex, max_behind, max_ahead)?;
        let skip = (run.pindex - (pindex - max_behind)) as usize * PAGE_SIZE;
        let dst = &mut out[skip..skip + run.len as usize * PAGE_SIZE];
        let bad = self
            .read_checked(obj, &run, dst, &crcs)
            .map_err(|source| PagerError::Read {
                object: obj.name(),
                pindex,
                source,
            })?;
        let want = (pindex - run.pindex) as usize;
        if bad[want] {
            return Err(PagerError::Corrupt {
                object: obj.name(),
                pindex,
                device: run.loc.dev,
                block: run.loc.page + want as u64,
            });
        }
        let lo = bad[..want].iter().rposition(|&b| b).map_or(0, |i| i + 1);
        let hi = bad[want..]
            .iter()
            .position(|&b| b)
            .map_or(bad.len(), |i| want + i);
        Ok(run.pindex + lo as u64..run.pindex + hi as u64)
    }

    /// Reads every page of `pindex..pindex + out.len() / PAGE_SIZE` (see
    /// [`crate::Pager::getpages_each`]): one read per run contiguous on swap, each page
    /// read once and a page failing its check counted once, however many of the run fail
    /// (reading on from the page after a bad one would read, and count, the rest of its
    /// run again). A read that fails is the error of its first page; the pages after it
    /// are tried again in a run of their own (the failure may be one block's).
    pub(crate) fn getpages_each(
        &self,
        obj: &Arc<ObjectInner>,
        pindex: u64,
        out: &mut [u8],
    ) -> Vec<Result<bool, PagerError>> {
        let n = (out.len() / PAGE_SIZE) as u64;
        let mut results = Vec::with_capacity(n as usize);
        while (results.len() as u64) < n {
            let i = results.len() as u64;
            let p = pindex + i;
            let at = i as usize * PAGE_SIZE;
            let (run, crcs) = match self.plan_read(obj, p, 0, n - i - 1) {
                Ok(planned) => planned,
                Err(PagerError::NotOnSwap { .. }) => {
                    results.push(Ok(false));
                    continue;
                }
                Err(e) => {
                    out[at..at + PAGE_SIZE].fill(0);
                    results.push(Err(e));
                    continue;
                }
            };
            let dst = &mut out[at..at + run.len as usize * PAGE_SIZE];
            match self.read_checked(obj, &run, dst, &crcs) {
                Ok(bad) => results.extend(bad.iter().enumerate().map(|(k, &b)| {
                    if b {
                        Err(PagerError::Corrupt {
                            object: obj.name(),
                            pindex: p + k as u64,
                            device: run.loc.dev,
                            block: run.loc.page + k as u64,
                        })
                    } else {
                        Ok(true)
                    }
                })),
                Err(source) => results.push(Err(PagerError::Read {
                    object: obj.name(),
                    pindex: p,
                    source,
                })),
            }
        }
        results
    }

    /// `swap_pager_haspage`: contiguous neighbours up to `max_cluster/2 - 1` each way (the
    /// seed's `SWB_NPAGES/2`), not limited to a stripe (getpages does that). Waits for a
    /// write in flight on the page, so a page just put is seen.
    pub(crate) fn haspage(&self, obj: &ObjectInner, pindex: u64) -> Option<(u64, u64)> {
        let mut st = obj.st.lock();
        self.wait_intrans(obj, &mut st, pindex);
        let reach = (self.tun.max_cluster / 2).saturating_sub(1);
        st.meta.contiguous(pindex, reach.min(pindex), reach)
    }
}

/// The checksums of pages `pindex..pindex+len` (`None` where there is nothing to check).
pub(crate) fn checksums(st: &ObjState, pindex: u64, len: u64) -> Vec<Option<u32>> {
    if !st.meta.has_checksums() {
        return vec![None; len as usize];
    }
    (pindex..pindex + len)
        .map(|p| st.meta.checksum(p))
        .collect()
}

/// The error a read of a page marked lost gets.
pub(crate) fn lost_error(obj: &ObjectInner, pindex: u64, why: Lost) -> PagerError {
    match why {
        Lost::WriteFailed => PagerError::WriteLost {
            object: obj.name(),
            pindex,
        },
        Lost::Corrupt { device, page } => PagerError::Corrupt {
            object: obj.name(),
            pindex,
            device,
            block: page,
        },
        Lost::Dropped { device } => PagerError::Dropped {
            object: obj.name(),
            pindex,
            device,
        },
        Lost::Truncated { device } => PagerError::Truncated {
            object: obj.name(),
            pindex,
            device,
        },
    }
}
