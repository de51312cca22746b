//! The small operations on an object's swap: `unswapped`, `freespace`, `reserve`, `copy`
//! (`swap_pager_unswapped`, `swap_pager_freespace`, `swap_pager_reserve`,
//! `swap_pager_copy`).

use crate::core::Core;
use crate::error::PagerError;
use crate::object::ObjectInner;
use crate::objstate::{Lost, ObjState};

impl Core {
    /// `swap_pager_freespace` (and `unswapped` with `n = 1`): the blocks go back to the
    /// allocator (or wait for readers), writes in flight on the range are cancelled.
    pub(crate) fn freespace(&self, obj: &ObjectInner, start: u64, n: u64) {
        let mut st = obj.st.lock();
        st.cancel_pending(start, n);
        let mut space = self.space.lock();
        st.free_range(&mut space, start, n);
        drop(space);
        drop(st);
        obj.cond.notify_all();
    }

    /// `swap_pager_reserve`: blocks for every page of the range, all or nothing. They are
    /// allocated first (largest runs, as putpages) and installed only if all were found;
    /// otherwise everything is given back and nothing changed.
    pub(crate) fn reserve(&self, obj: &ObjectInner, start: u64, n: u64) -> Result<(), PagerError> {
        let mut st = obj.st.lock();
        let mut space = self.space.lock();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut got = 0;
        while got < n {
            let want = self.tun.max_cluster.min(n - got);
            match space.alloc(want) {
                Some(run) => {
                    runs.push((run.blk, run.len));
                    got += run.len;
                }
                None => {
                    for (blk, len) in runs {
                        space.free(blk, len);
                    }
                    return Err(PagerError::NoSpace {
                        object: obj.name(),
                        pindex: start + got,
                    });
                }
            }
        }
        st.cancel_pending(start, n);
        st.clear_lost(start, n);
        let mut p = start;
        for (blk, len) in runs {
            for b in blk..blk + len {
                if let Some(old) = st.meta.insert(p, b as u32) {
                    st.release(&mut space, old);
                }
                p += 1;
            }
        }
        drop(space);
        drop(st);
        obj.cond.notify_all();
        Ok(())
    }

    /// `swap_pager_copy`: `src`'s blocks at `offset + i` fill `dst`'s holes at `i` for
    /// `i < dst.size`; where `dst` has a block (or a write in flight) `src`'s is freed.
    /// `destroy_source` frees the rest of `src` and unlists it. Waits until no read of
    /// `src` and no write to the pages it gives is in flight (the seed: "may block if
    /// paging is still in progress on the source"), since their blocks change owner.
    /// It waits holding no lock but the source's: a completion of a write to `dst` takes
    /// `dst`'s lock, and holding it here stalled every completion behind that one.
    ///
    /// One piece: the wait and the moves of blocks happen under one hold of the source's lock.
    pub(crate) fn copy(&self, src: &ObjectInner, dst: &ObjectInner, offset: u64, destroy: bool) {
        if src.id == dst.id {
            return;
        }
        if destroy {
            src.objects.unname(src);
        }
        let end = offset.saturating_add(dst.size);
        let busy = |s: &ObjState| {
            !s.reads.is_empty()
                || s.pending
                    .keys()
                    .any(|p| destroy || (offset..end).contains(p))
        };
        // The lock rule: wait with the source's lock only (a completion of a write to
        // `dst` needs `dst`'s lock), then take both in id order and look again.
        let (mut s, mut d) = loop {
            {
                let mut s = src.st.lock();
                while busy(&s) {
                    s.wait(&src.cond);
                }
            }
            let (s, d) = if src.id < dst.id {
                let s = src.st.lock();
                (s, dst.st.lock())
            } else {
                let d = dst.st.lock();
                (src.st.lock(), d)
            };
            if !busy(&s) {
                break (s, d);
            }
        };
        let moving: Vec<(u64, u32)> = s.meta.range(offset..end).collect();
        let mut space = self.space.lock();
        for (sp, blk) in moving {
            let crc = s.meta.checksum(sp);
            s.meta.pop(sp);
            let i = sp - offset;
            if d.meta.lookup(i).is_some() || d.pending.contains_key(&i) || d.lost.contains_key(&i) {
                space.free(u64::from(blk), 1);
            } else {
                // Metadata only: the checksum goes with its block.
                d.meta.insert_checked(i, blk, crc);
            }
        }
        // A lost page stays lost in its new place: a read there is an error, not a hole.
        let lost: Vec<(u64, Lost)> = s
            .lost
            .iter()
            .filter(|(p, _)| (offset..end).contains(*p))
            .map(|(&p, &l)| (p, l))
            .collect();
        for (sp, why) in lost {
            s.lost.remove(&sp);
            let i = sp - offset;
            if d.meta.lookup(i).is_none() && !d.pending.contains_key(&i) {
                d.lost.insert(i, why);
            }
        }
        if destroy {
            s.lost.clear();
            let mut rest = Vec::new();
            s.meta.clear(|_, b| rest.push(b));
            for b in rest {
                space.free(u64::from(b), 1);
            }
        }
        drop(space);
        drop(s);
        drop(d);
        src.cond.notify_all();
        dst.cond.notify_all();
    }
}
