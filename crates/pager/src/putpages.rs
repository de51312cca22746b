//! `putpages`: pageout in clusters to freshly allocated swap (`swap_pager_putpages`,
//! `swp_pager_async_iodone`).
//!
//! Each cluster: allocate a run (largest first, halving, trimmed at the stripe end), take a
//! pbuf of the sync or async pool, copy the pages in and compute their checksums, wait for
//! any write of those pages still in flight (one write per page at a time), mark them
//! pending in the object, submit the write. The completion, on an engine thread, installs
//! each page's new block and checksum if that write is still the page's newest and frees
//! the old block; a failed write quarantines its blocks and sends the pages at once to
//! other areas from the pbuf, which it keeps until every page is resolved. Nothing is
//! locked across an I/O, and no completion waits.
//!
//! A synchronous call whose data is whole, page-aligned pages (what a pager's client holds)
//! takes no pbuf and copies nothing: the caller's memory is stable until the call returns,
//! so each cluster is written straight from it on the caller's thread
//! ([`device::Engine::write_from`]), its checksums computed over the caller's bytes, and
//! its result (retries included, from the same memory) handled there by the same code as a
//! completion, one cluster after the other, as the seed's sync pageout waits for each
//! cluster (`bwait`) before the next. Async calls keep the pbuf: their caller may reuse
//! its memory as soon as `putpages` returns.

use std::sync::Arc;

use device::{DeviceError, IoCompletion, IoOp, IoRequest, PAGE_SIZE, PageBuf};
use parking_lot::{Condvar, Mutex};

use crate::config::{Checksum, DeviceId};
use crate::core::{Core, bump};
use crate::integrity;
use crate::io::{AsyncCallback, AsyncDone, PageResult, PutMode};
use crate::object::ObjectInner;
use crate::objstate::{Lost, free_blocks};
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

/// One cluster of a `putpages` call, from its first write until every page of it is
/// written somewhere or has failed everywhere. The first write goes out from the pbuf; if
/// it fails, the pbuf (which the write left intact) is the source of the retries, which
/// go to other areas in runs of whatever length they can get, each from its own buffer.
struct Write {
    obj_id: u64,
    batch: Arc<Batch>,
    /// Index of its first page in the batch, and in the object.
    offset: u64,
    pindex: u64,
    seq: u64,
    /// The pages' checksums (empty without checksums).
    crcs: Vec<u32>,
    is_async: bool,
    st: Mutex<WriteState>,
}

struct WriteState {
    /// The object, until the cluster's last page is resolved: then the resolver lets go of
    /// it before it reports the cluster done, so once `putpages` (or `wait_async`) returns
    /// no engine thread keeps the object alive.
    obj: Option<Arc<ObjectInner>>,
    /// The pbuf with the data, once the first write has handed it back.
    source: Option<PageBuf>,
    /// Pages not yet written or given up.
    left: u64,
    /// Areas where a write of this cluster failed: retries avoid them.
    failed_on: Vec<DeviceId>,
}

/// One write of part of a cluster: pages `k..k + run.len` of it on `run`.
struct Piece {
    k: u64,
    run: Run,
    first: bool,
}

impl Core {
    /// `swap_pager_putpages` (see [`crate::Pager::putpages`]). Per cluster: allocate (the
    /// space lock only), take a pbuf (may block: counted) and copy (neither for a sync call
    /// from page-aligned memory, written from it by `write_direct`), mark the pages pending
    /// with a fresh sequence (the object lock only), submit with no lock held. The
    /// submitter holds one count of the batch until every cluster is out, so a batch
    /// cannot finish while clusters are still being submitted.
    ///
    /// One piece: every step of a cluster shares the batch count, the pbuf and the lock order
    /// above; split, each part would need all of that state passed in.
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
        // The caller's memory is stable until a sync call returns: lend it to the writes.
        // Only for a call of at most one cluster: the direct writes go one after the other,
        // where a longer call through pbufs keeps up to nswbuf/4 clusters in flight.
        let direct = !is_async && n <= self.tun.max_cluster && device::Engine::lendable(data);
        let checksum = self.tun.checksum != Checksum::None;
        let mut i = 0;
        while i < n {
            let want = self.tun.max_cluster.min(n - i);
            let Some(run) = self.space.lock().alloc(want) else {
                bump(&self.counters.alloc_failures, want);
                i += want;
                continue;
            };
            let len = run.len;
            let bytes = (i as usize * PAGE_SIZE)..((i + len) as usize * PAGE_SIZE);
            let (buf, crcs) = if direct {
                (None, integrity::crcs(&data[bytes], checksum))
            } else {
                let mut buf = pool.acquire(len as usize);
                // One pass: each page's checksum while the page is hot from its copy.
                let crcs = integrity::copy_crcs(buf.as_mut_slice(), &data[bytes], checksum);
                (Some(buf), crcs)
            };
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
                        st.wait(&obj.cond);
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
            let write = Arc::new(Write {
                obj_id: obj.id,
                batch: Arc::clone(&batch),
                offset: i,
                pindex,
                seq,
                crcs,
                is_async,
                st: Mutex::new(WriteState {
                    obj: Some(Arc::clone(obj)),
                    source: None,
                    left: len,
                    failed_on: Vec::new(),
                }),
            });
            let piece = Piece {
                k: 0,
                run,
                first: true,
            };
            match buf {
                Some(buf) => self.submit_piece(write, piece, buf),
                None => self.write_direct(&write, piece, data),
            }
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

    /// Submits one piece of a cluster write from `buf`. No lock may be held: the
    /// completion may run before this returns.
    fn submit_piece(self: &Arc<Core>, w: Arc<Write>, piece: Piece, buf: PageBuf) {
        bump(&self.counters.swapout, 1);
        bump(&self.counters.pages_out, piece.run.len);
        let area = Arc::clone(&piece.run.area);
        let req = IoRequest {
            tag: w.seq,
            op: IoOp::Write,
            page: piece.run.page,
            buf,
        };
        let core = Arc::clone(self);
        self.submit(&area, req, move |c| core.piece_done(w, piece, c));
    }

    /// Writes one piece of a synchronous cluster straight from the caller's `data` (the
    /// whole call's pages) on the caller's thread, and handles its result as [`Self::piece_done`]
    /// does a completion: the retries of a failed write go out the same way, from the same
    /// memory, until every page of the piece is written or given up.
    fn write_direct(self: &Arc<Core>, w: &Arc<Write>, piece: Piece, data: &[u8]) {
        let mut todo = vec![piece];
        while let Some(piece) = todo.pop() {
            bump(&self.counters.swapout, 1);
            bump(&self.counters.pages_out, piece.run.len);
            let at = (w.offset + piece.k) as usize * PAGE_SIZE;
            let bytes = &data[at..at + piece.run.len as usize * PAGE_SIZE];
            let result = self
                .engine()
                .write_from(&piece.run.area, piece.run.page, bytes);
            todo.extend(self.piece_result(w, piece, result));
        }
    }

    /// The completion of one piece from a pbuf (`swp_pager_async_iodone` for writes), on an
    /// engine thread: the pbuf (which a write leaves intact) is kept as the source of any
    /// retries, each of which goes out from a buffer of its own. It never waits and submits
    /// with no lock held.
    fn piece_done(self: &Arc<Core>, w: Arc<Write>, piece: Piece, c: IoCompletion) {
        if piece.first {
            w.st.lock().source = Some(c.buf);
        }
        let retries = self.piece_result(&w, piece, c.result);
        if retries.is_empty() {
            return;
        }
        let bufs: Vec<PageBuf> = {
            let st = w.st.lock();
            debug_assert!(st.source.is_some(), "a retry before the first write ended");
            retries
                .iter()
                .map(|piece| {
                    let mut buf = PageBuf::new(piece.run.len as usize);
                    if let Some(src) = &st.source {
                        let (at, n) = (piece.k as usize, piece.run.len as usize);
                        let bytes = at * PAGE_SIZE..(at + n) * PAGE_SIZE;
                        buf.as_mut_slice().copy_from_slice(&src.as_slice()[bytes]);
                    }
                    buf
                })
                .collect()
        };
        for (piece, buf) in retries.into_iter().zip(bufs) {
            self.submit_piece(Arc::clone(&w), piece, buf);
        }
    }

    /// The result of one piece's write, from either path. Written: each page whose newest
    /// write this is gets its new block (and checksum), and its old block is freed. Failed:
    /// the blocks are quarantined and the pages go out again at once to other areas (§3 of
    /// issue #11): the retry pieces are returned for the caller to write from its source.
    /// Only pages no area can take fail: a sync page keeps its previous copy, an async one
    /// (already acknowledged with `Pend`) loses it and is marked so that reads of it are an
    /// error.
    fn piece_result(
        &self,
        w: &Arc<Write>,
        piece: Piece,
        result: Result<(), DeviceError>,
    ) -> Vec<Piece> {
        let dev = piece.run.dev;
        let (k, n) = (piece.k, piece.run.len);
        if let Err(e) = &result {
            self.io_error(dev, e, true);
        } else {
            self.install_pieces(w, k, n, &piece.run);
            self.piece_resolved(Arc::clone(w), k, n, PageResult::Ok);
            return Vec::new();
        }
        self.space.lock().quarantine(piece.run.blk, n);
        // Retry pages k..k+n elsewhere, in runs of whatever length the other areas give.
        let mut retries = Vec::new();
        let mut given_up = None;
        {
            let mut st = w.st.lock();
            if !st.failed_on.contains(&dev) {
                st.failed_on.push(dev);
            }
            let mut at = k;
            while at < k + n {
                let run = self.space.lock().alloc_avoiding(k + n - at, &st.failed_on);
                let Some(run) = run else {
                    given_up = Some(at);
                    break;
                };
                let len = run.len;
                retries.push(Piece {
                    k: at,
                    run,
                    first: false,
                });
                at += len;
            }
        }
        bump(&self.counters.write_retries, retries.len() as u64);
        if let Some(at) = given_up {
            // The retries' pages are still unresolved, so this cannot end the cluster.
            self.give_up(w, at, k + n - at);
            self.piece_resolved(Arc::clone(w), at, k + n - at, PageResult::Error);
        }
        retries
    }

    /// Installs pages `k..k+n` of a cluster written on `run`: for each page whose newest
    /// write this is, the new block (and checksum) replaces the old, which is freed; a
    /// page superseded or freed meanwhile gives its new block back. The area's count of
    /// write errors in a row starts again.
    fn install_pieces(&self, w: &Write, k: u64, n: u64, run: &Run) {
        let Some(obj) = w.st.lock().obj.clone() else {
            self.space.lock().write_result(run.dev, true);
            return;
        };
        let blk = run.blk;
        let mut st = obj.st.lock();
        // The metadata is changed under the object's lock alone; the space lock, which
        // every completion and allocation takes, only for the error count and the frees,
        // coalesced (a pageout over fresh pages frees nothing).
        let mut free = Vec::new();
        for j in 0..n {
            let p = w.pindex + k + j;
            let b = blk + j;
            if st.pending.get(&p) == Some(&w.seq) {
                st.pending.remove(&p);
                st.lost.remove(&p);
                let crc = w.crcs.get((k + j) as usize).copied();
                if let Some(old) = st.meta.insert_checked(p, b as u32, crc) {
                    st.release_into(old, &mut free);
                }
            } else {
                // Superseded or cancelled while in flight: nobody has seen this block.
                free.push(b);
            }
        }
        let mut space = self.space.lock();
        space.write_result(run.dev, true);
        free_blocks(&mut space, &mut free);
    }

    /// Pages `k..k+n` of a cluster could go to no area. A sync write leaves the previous
    /// copy in place (the caller sees `Error`); an async one was acknowledged, so the
    /// previous copy is dropped and the page marked lost (reads fail until it is written
    /// again), and the failure is recorded for `take_async_failures`.
    fn give_up(&self, w: &Write, k: u64, n: u64) {
        let Some(obj) = w.st.lock().obj.clone() else {
            return;
        };
        let mut st = obj.st.lock();
        let mut space = self.space.lock();
        for j in 0..n {
            let p = w.pindex + k + j;
            if st.pending.get(&p) != Some(&w.seq) {
                continue;
            }
            st.pending.remove(&p);
            if w.is_async {
                if let Some(old) = st.meta.pop(p) {
                    st.release(&mut space, old);
                }
                st.lost.insert(p, Lost::WriteFailed);
                st.async_failures.push(p);
                bump(&self.counters.async_write_failures, 1);
            }
        }
    }

    /// Pages `k..k+n` of a cluster have their final result. The last pages of the cluster
    /// give the pbuf back, wake waiters on the object and count the cluster done in its
    /// batch (after letting go of the object, so that once `putpages` or `wait_async`
    /// returns no engine thread keeps it alive).
    fn piece_resolved(&self, w: Arc<Write>, k: u64, n: u64, result: PageResult) {
        {
            let mut st = w.batch.st.lock();
            let from = (w.offset + k) as usize;
            st.results[from..from + n as usize].fill(result);
        }
        let (source, obj) = {
            let mut st = w.st.lock();
            st.left -= n;
            if st.left > 0 {
                return;
            }
            (st.source.take(), st.obj.take())
        };
        if let Some(buf) = source {
            let pool = if w.is_async {
                &self.async_pool
            } else {
                &self.sync_pool
            };
            pool.release(buf);
        }
        if let Some(obj) = obj {
            obj.cond.notify_all();
        }
        let (batch, id, start, is_async) = (
            Arc::clone(&w.batch),
            w.obj_id,
            w.pindex - w.offset,
            w.is_async,
        );
        drop(w);
        self.batch_part_done(&batch, id, start, is_async);
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
