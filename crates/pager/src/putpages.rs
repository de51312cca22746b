//! `putpages`: pageout in clusters to freshly allocated swap (`swap_pager_putpages`,
//! `swp_pager_async_iodone`).
//!
//! Each cluster: allocate a run (largest first, halving, trimmed at the stripe end), take a
//! pbuf of the sync or async pool, copy the pages in, mark them pending in the object,
//! submit the write. The completion, on an engine thread, installs each page's new block
//! if that write is still the page's newest and frees the old block; a failed write keeps
//! the old block and quarantines the new one. Nothing is locked across the I/O.

use std::sync::Arc;

use device::{IoCompletion, IoOp, IoRequest, PAGE_SIZE};
use parking_lot::{Condvar, Mutex};

use crate::core::{Core, bump};
use crate::io::{AsyncCallback, AsyncDone, PageResult, PutMode};
use crate::object::ObjectInner;
use crate::space::Run;

/// One `putpages` call: the results of its pages and the clusters still in flight.
struct Batch {
    st: Mutex<BatchState>,
    done: Condvar,
}

struct BatchState {
    results: Vec<PageResult>,
    /// Clusters in flight, plus one for the submitter until it has submitted them all.
    remaining: u64,
    callback: Option<AsyncCallback>,
    finished: bool,
}

/// A cluster write in flight.
struct Cluster {
    run: Run,
    /// Index of its first page in the batch.
    offset: u64,
    /// Its first page index in the object.
    pindex: u64,
    seq: u64,
}

impl Core {
    /// `swap_pager_putpages` (see [`crate::Pager::putpages`]). Per cluster: allocate (the
    /// space lock only), take a pbuf (may block: counted), copy, mark the pages pending
    /// with a fresh sequence (the object lock only), submit with no lock held. The
    /// submitter holds one count of the batch until every cluster is out, so a batch
    /// cannot finish while clusters are still being submitted.
    pub(crate) fn putpages(
        self: &Arc<Core>,
        obj: &Arc<ObjectInner>,
        start: u64,
        data: &[u8],
        mode: PutMode,
    ) -> Vec<PageResult> {
        assert!(
            data.len().is_multiple_of(PAGE_SIZE),
            "putpages: {} bytes of data are not whole pages",
            data.len()
        );
        let n = (data.len() / PAGE_SIZE) as u64;
        let (is_async, callback) = match mode {
            PutMode::Sync => (false, None),
            PutMode::Async(cb) => (true, cb),
        };
        let mut results = vec![PageResult::Fail; n as usize];
        let batch = Arc::new(Batch {
            st: Mutex::new(BatchState {
                results: results.clone(),
                remaining: 1,
                callback,
                finished: false,
            }),
            done: Condvar::new(),
        });
        if is_async {
            *self.async_batches.lock() += 1;
        }
        let pool = if is_async {
            &self.async_pool
        } else {
            &self.sync_pool
        };
        let mut i = 0;
        while i < n {
            let want = self.tun.max_cluster.min(n - i);
            let Some(run) = self.space.lock().alloc(want) else {
                bump(&self.counters.alloc_failures, want);
                i += want;
                continue;
            };
            let len = run.len;
            let mut buf = pool.acquire(len as usize);
            let bytes = (i as usize * PAGE_SIZE)..((i + len) as usize * PAGE_SIZE);
            buf.as_mut_slice().copy_from_slice(&data[bytes]);
            let pindex = start + i;
            let seq = {
                let mut st = obj.st.lock();
                // One write per page at a time (the seed's busy page): a page's previous
                // write must have completed, so its result is installed before this one
                // can supersede it and a failure of this one never drops it. The wait
                // holds no lock (the condvar releases the object's).
                if (pindex..pindex + len).any(|p| st.pending.contains_key(&p)) {
                    bump(&self.counters.intrans_waits, 1);
                    while (pindex..pindex + len).any(|p| st.pending.contains_key(&p)) {
                        obj.cond.wait(&mut st);
                    }
                }
                let seq = st.next_seq;
                st.next_seq += 1;
                for p in pindex..pindex + len {
                    st.pending.insert(p, seq);
                }
                seq
            };
            results[i as usize..(i + len) as usize].fill(PageResult::Pend);
            batch.st.lock().remaining += 1;
            bump(&self.counters.swapout, 1);
            bump(&self.counters.pages_out, len);
            let area = Arc::clone(&run.area);
            let req = IoRequest {
                tag: seq,
                op: IoOp::Write,
                page: run.page,
                buf,
            };
            let cluster = Cluster {
                run,
                offset: i,
                pindex,
                seq,
            };
            let (core, obj, batch) = (Arc::clone(self), Arc::clone(obj), Arc::clone(&batch));
            self.submit(&area, req, move |c| {
                core.write_done(obj, &batch, cluster, is_async, c)
            });
            i += len;
        }
        self.batch_part_done(&batch, obj.id, start, is_async);
        if is_async {
            return results;
        }
        let mut st = batch.st.lock();
        while !st.finished {
            batch.done.wait(&mut st);
        }
        std::mem::take(&mut st.results)
    }

    /// The completion of one cluster write (`swp_pager_async_iodone` for writes). It
    /// lets go of the object before it reports the cluster done, so that once `putpages`
    /// (or `wait_async`) returns no engine thread keeps the object alive.
    fn write_done(
        &self,
        obj: Arc<ObjectInner>,
        batch: &Arc<Batch>,
        cl: Cluster,
        is_async: bool,
        c: IoCompletion,
    ) {
        let pool = if is_async {
            &self.async_pool
        } else {
            &self.sync_pool
        };
        pool.release(c.buf);
        let ok = c.result.is_ok();
        if let Err(e) = &c.result {
            self.io_error(cl.run.dev, e, true);
        }
        {
            let mut st = obj.st.lock();
            let mut space = self.space.lock();
            for k in 0..cl.run.len {
                let p = cl.pindex + k;
                let blk = cl.run.blk + k;
                let newest = st.pending.get(&p) == Some(&cl.seq);
                if newest {
                    st.pending.remove(&p);
                }
                if !ok {
                    space.quarantine(blk, 1);
                } else if newest {
                    if let Some(old) = st.meta.insert(p, blk as u32) {
                        st.release(&mut space, old);
                    }
                } else {
                    // Superseded or cancelled while in flight: nobody has seen this block.
                    space.free(blk, 1);
                }
            }
        }
        obj.cond.notify_all();
        let result = if ok {
            PageResult::Ok
        } else {
            PageResult::Error
        };
        {
            let mut st = batch.st.lock();
            let range = cl.offset as usize..(cl.offset + cl.run.len) as usize;
            st.results[range].fill(result);
        }
        let id = obj.id;
        drop(obj);
        self.batch_part_done(batch, id, cl.pindex - cl.offset, is_async);
    }

    /// One cluster (or the submitter) is done; the last one finishes the batch: wakes the
    /// sync caller, or runs the async callback and lets `wait_async` go.
    fn batch_part_done(&self, batch: &Batch, object: u64, start: u64, is_async: bool) {
        let mut st = batch.st.lock();
        st.remaining -= 1;
        if st.remaining > 0 {
            return;
        }
        st.finished = true;
        if !is_async {
            drop(st);
            batch.done.notify_all();
            return;
        }
        let callback = st.callback.take();
        let results = std::mem::take(&mut st.results);
        drop(st);
        if let Some(cb) = callback {
            cb(AsyncDone {
                object,
                start,
                results,
            });
        }
        let mut n = self.async_batches.lock();
        *n -= 1;
        if *n == 0 {
            self.async_idle.notify_all();
        }
    }
}
