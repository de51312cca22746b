//! The swap space: every area's blist behind one lock, global block numbers, allocation by
//! priority and interleave, and the seed's hysteresis (`swp_pager_getswapspace`,
//! `swp_pager_freeswapspace`, `swp_sizecheck`).
//!
//! Global block numbers: area `a` owns `a.first .. a.first + a.blocks`, where block
//! `a.first + d` is the area's data page `d + 1` (page 0 is the header). Between two areas
//! at least one number stays unowned, so blocks contiguous in number are on one area.
//! Stripes (`interleave`) are counted from each area's first data page, so a sequential
//! pageout puts pages 0–31 on the first area, 32–63 on the next, as the seed's `dmmax`.

use std::collections::HashMap;
use std::sync::Arc;

use blist::Blist;
use device::SwapArea;

use crate::config::DeviceId;
use crate::events::Events;
use crate::io::PagerEvent;
use crate::stats::Hysteresis;

/// Write errors in a row after which an area is marked failing: a few, so one bad block
/// does not take an area out, but a full file system or a dying disk does quickly.
pub const FAILING_AFTER: u32 = 3;

/// How a swap area is identified before it is opened: `(true, rdev)` for a block device,
/// `(false, dev, ino)` for a file. Two paths to one device give the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub block: bool,
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub(crate) fn of(path: &std::path::Path) -> Option<FileKey> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::metadata(path).ok()?;
        if md.file_type().is_block_device() {
            Some(FileKey {
                block: true,
                dev: md.rdev(),
                ino: 0,
            })
        } else {
            Some(FileKey {
                block: false,
                dev: md.dev(),
                ino: md.ino(),
            })
        }
    }
}

/// A swapoff in progress on an area.
#[derive(Debug, Clone, Default)]
pub(crate) struct Drain {
    pub moved: u64,
    pub total: u64,
    /// The ranges that were free when the blist was filled: freed again if swapoff aborts.
    pub refill: Vec<(u64, u64)>,
}

/// One swap area in the space.
#[derive(Debug)]
pub(crate) struct Area {
    pub id: DeviceId,
    pub area: Arc<SwapArea>,
    pub key: Option<FileKey>,
    pub priority: i32,
    /// Added with discard (TRIM of its data pages at swapon): shown by `Pager::stats`.
    pub discard: bool,
    /// Global block number of data page 1.
    pub first: u64,
    /// Data pages (`last_page`): blist blocks.
    pub blocks: u64,
    pub blist: Blist,
    pub draining: Option<Drain>,
    pub failed: bool,
    /// Its writes kept failing ([`FAILING_AFTER`] in a row): no new allocations.
    pub failing: bool,
    /// Write errors since its last successful write.
    pub write_errors_in_row: u32,
    /// Pages read from it that failed their checksum.
    pub corrupt: u64,
    /// Blocks holding a page, reserved, being written, or parked for a reader.
    pub used: u64,
    /// Blocks whose write failed: allocated forever, never handed out again.
    pub quarantined: u64,
    /// Bad pages listed in the header: never freed into the blist.
    pub header_bad: u64,
    /// Blocks made unavailable by a swapoff's fill.
    pub filled: u64,
    /// The tail of a run trimmed at a stripe end, `(first data block, len)`: allocated in
    /// the blist but free, and handed out before the blist is asked again. The seed's
    /// first-fit blist gave a freed tail out next by itself; ours allocates next-fit from
    /// a cursor already past it, so without this the area's next run would start after a
    /// hole, reach the stripe end early and rotate too soon.
    pub stash: Option<(u64, u64)>,
    /// A remote area's `reconnects()` when it was marked failing (see `Space::revive`).
    pub failing_at: u64,
    /// Its last failed I/O: what, and when.
    pub last_error: Option<crate::stats::LastError>,
}

impl Area {
    /// New pages may go here: in service, and for a remote area, connected (a write must
    /// not wait for a server that is not there).
    pub(crate) fn allocatable(&self) -> bool {
        self.draining.is_none()
            && !self.failed
            && !self.failing
            && self
                .area
                .remote()
                .is_none_or(device::nbd::Remote::connected)
    }

    pub(crate) fn contains(&self, blk: u64) -> bool {
        blk >= self.first && blk < self.first + self.blocks
    }

    /// Free blocks: the blist's plus the stashed tail.
    pub(crate) fn avail(&self) -> u64 {
        self.blist.avail() + self.stash.map_or(0, |(_, len)| len)
    }

    /// Gives the stashed tail back to the blist (before a swapoff fills it).
    pub(crate) fn unstash(&mut self) {
        if let Some((d, len)) = self.stash.take() {
            let freed = self.blist.free(d, len);
            debug_assert!(freed.is_ok(), "the stash was allocated");
        }
    }

    /// Usable blocks: data pages minus the header's bad pages.
    pub(crate) fn usable(&self) -> u64 {
        self.blocks - self.header_bad
    }
}

/// Where one block lives, resolved under the space lock for an I/O outside it.
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    pub dev: DeviceId,
    pub area: Arc<SwapArea>,
    pub first: u64,
    pub blocks: u64,
    /// The area's page of the block.
    pub page: u64,
}

/// A run of blocks just allocated on one area.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub blk: u64,
    pub len: u64,
    pub dev: DeviceId,
    pub area: Arc<SwapArea>,
    pub page: u64,
}

/// All areas and the allocator state. Lives behind `Core::space`.
#[derive(Debug)]
pub(crate) struct Space {
    pub areas: Vec<Area>,
    /// Per priority: the area the next allocation tries first.
    rotor: HashMap<i32, DeviceId>,
    pub interleave: u64,
    lowat: u64,
    hiwat: u64,
    pub hyst: Hysteresis,
    pub next_id: u32,
    events: Arc<Events>,
}

impl Space {
    pub(crate) fn new(interleave: u64, lowat: u64, hiwat: u64, events: Arc<Events>) -> Space {
        Space {
            areas: Vec::new(),
            rotor: HashMap::new(),
            interleave,
            lowat,
            hiwat,
            hyst: Hysteresis::default(),
            next_id: 0,
            events,
        }
    }

    pub(crate) fn index(&self, dev: DeviceId) -> Option<usize> {
        self.areas.iter().position(|a| a.id == dev)
    }

    fn index_of_block(&self, blk: u64) -> Option<usize> {
        self.areas.iter().position(|a| a.contains(blk))
    }

    /// Free blocks the allocator can hand out (the seed's `vm_swap_size`).
    pub(crate) fn free_blocks(&self) -> u64 {
        self.areas
            .iter()
            .filter(|a| a.allocatable())
            .map(Area::avail)
            .sum()
    }

    /// The lowest first block number where `blocks` more blocks fit with a one-block gap
    /// on each side of every existing area.
    pub(crate) fn place(&self, blocks: u64) -> u64 {
        let mut ranges: Vec<(u64, u64)> = self.areas.iter().map(|a| (a.first, a.blocks)).collect();
        ranges.sort_unstable();
        let mut candidate = 0;
        for (first, len) in ranges {
            if candidate + blocks < first {
                break;
            }
            candidate = candidate.max(first + len + 1);
        }
        candidate
    }

    /// Where `blk` lives.
    pub(crate) fn resolve(&self, blk: u64) -> Option<Loc> {
        let a = &self.areas[self.index_of_block(blk)?];
        Some(Loc {
            dev: a.id,
            area: Arc::clone(&a.area),
            first: a.first,
            blocks: a.blocks,
            page: blk - a.first + 1,
        })
    }

    /// Whether `blk` can be read in one I/O with the block of `loc`: same area and, with an
    /// interleave, the same stripe (the seed's `(blk ^ iblk) & dmmax_mask` test).
    pub(crate) fn same_stripe(&self, loc: &Loc, blk: u64) -> bool {
        if blk < loc.first || blk >= loc.first + loc.blocks {
            return false;
        }
        let base = loc.page - 1;
        self.interleave == 0 || (blk - loc.first) / self.interleave == base / self.interleave
    }

    /// Allocates a run of 1 to `n` blocks (`swp_pager_getswapspace` with the halving of
    /// `swap_pager_putpages`). Priorities are tried highest first; inside one, the areas in
    /// rotation from the rotor, each blist asked for the largest run first (`min` from `n`
    /// halving to 1). A request never asks for more than one stripe, and a run that starts
    /// inside a stripe is trimmed at its end (the tail freed again, as the seed's
    /// `(blk ^ (blk + n)) & dmmax_mask` test); the rotor moves on once a stripe is used up.
    /// On failure "full" is set and announced once.
    pub(crate) fn alloc(&mut self, n: u64) -> Option<Run> {
        self.alloc_avoiding(n, &[])
    }

    /// [`Space::alloc`] on any area but those in `avoid` (where a write of the same data
    /// just failed). Failing over to another priority is fine: the data must land.
    pub(crate) fn alloc_avoiding(&mut self, n: u64, avoid: &[DeviceId]) -> Option<Run> {
        debug_assert!(n >= 1);
        self.revive();
        let n = if self.interleave > 0 {
            n.min(self.interleave)
        } else {
            n
        };
        let ok = |a: &Area| a.allocatable() && !avoid.contains(&a.id);
        let mut prios: Vec<i32> = self
            .areas
            .iter()
            .filter(|a| ok(a))
            .map(|a| a.priority)
            .collect();
        prios.sort_unstable_by(|a, b| b.cmp(a));
        prios.dedup();
        for prio in prios {
            let group: Vec<usize> = (0..self.areas.len())
                .filter(|&i| ok(&self.areas[i]) && self.areas[i].priority == prio)
                .collect();
            let start = if self.interleave == 0 {
                0
            } else {
                self.rotor
                    .get(&prio)
                    .and_then(|id| group.iter().position(|&i| self.areas[i].id == *id))
                    .unwrap_or(0)
            };
            for k in 0..group.len() {
                let pos = (start + k) % group.len();
                let idx = group[pos];
                let next = self.areas[group[(pos + 1) % group.len()]].id;
                if let Some((d, len)) = self.areas[idx].stash {
                    let k = len.min(n);
                    self.areas[idx].stash = (k < len).then_some((d + k, len - k));
                    // The whole stash taken and more wanted: the free blocks right after
                    // it, up to the stripe's end, join the run, so a write continuing the
                    // stash is one I/O, not the stash and then a second run from the blist.
                    let more = if k == len {
                        self.extend_stash(idx, d + len, n - k)
                    } else {
                        0
                    };
                    return Some(self.take(idx, d, k + more, prio, next));
                }
                let mut min = n.min(blist::MAX_ALLOC);
                loop {
                    if let Some((d, len)) = self.areas[idx].blist.alloc_range(min, n) {
                        return Some(self.take(idx, d, len, prio, next));
                    }
                    if min == 1 {
                        break;
                    }
                    min /= 2;
                }
            }
        }
        // A retry that avoids some areas failing says nothing about swap being full.
        if avoid.is_empty() && !self.hyst.full {
            self.hyst.full = true;
            self.events.emit(PagerEvent::Full);
            if !self.hyst.almost_full {
                self.hyst.almost_full = true;
                self.events.emit(PagerEvent::AlmostFull {
                    free: self.free_blocks(),
                });
            }
        }
        None
    }

    /// Takes from `areas[idx]`'s blist up to `want` blocks from data block `from` on that
    /// are free one after another and inside `from`'s stripe (the run a stash ended at
    /// `from` continues into); returns how many.
    fn extend_stash(&mut self, idx: usize, from: u64, want: u64) -> u64 {
        let il = self.interleave;
        let area = &mut self.areas[idx];
        let stripe_end = match from.checked_div(il) {
            Some(_) if from.is_multiple_of(il) => return 0,
            Some(stripe) => (stripe + 1) * il,
            None => u64::MAX,
        };
        let end = from.saturating_add(want).min(stripe_end).min(area.blocks);
        let free = (from..end).take_while(|&b| area.blist.is_free(b)).count() as u64;
        if free > 0 {
            let filled = area.blist.fill(from, free);
            debug_assert_eq!(filled.ok(), Some(free), "checked free");
        }
        free
    }

    /// Books a run the blist (or the stash) of `areas[idx]` gave: trims it at the stripe
    /// end, keeping the tail as the area's stash, counts it used, moves the rotor of
    /// `prio` to `next` if the stripe is used up.
    fn take(&mut self, idx: usize, d: u64, len: u64, prio: i32, next: DeviceId) -> Run {
        let il = self.interleave;
        let area = &mut self.areas[idx];
        let mut len = len;
        if let Some(stripe) = d.checked_div(il) {
            let stripe_end = (stripe + 1) * il;
            if d + len > stripe_end {
                let keep = stripe_end - d;
                // Only a blist run can cross (the stash starts at a stripe start and is
                // shorter than a stripe), and the blist is asked only with no stash left.
                debug_assert!(area.stash.is_none(), "a second stash");
                area.unstash();
                area.stash = Some((d + keep, len - keep));
                len = keep;
            }
        }
        area.used += len;
        let run = Run {
            blk: area.first + d,
            len,
            dev: area.id,
            area: Arc::clone(&area.area),
            page: d + 1,
        };
        let here = area.id;
        if il > 0 {
            let rotor = if (d + len).is_multiple_of(il) {
                next
            } else {
                here
            };
            self.rotor.insert(prio, rotor);
        }
        self.sizecheck();
        run
    }

    /// Returns blocks to their area's blist (`swp_pager_freeswapspace`).
    pub(crate) fn free(&mut self, blk: u64, n: u64) {
        let Some(idx) = self.index_of_block(blk) else {
            debug_assert!(false, "free of block {blk} owned by no area");
            return;
        };
        let area = &mut self.areas[idx];
        let freed = area.blist.free(blk - area.first, n);
        debug_assert!(freed.is_ok(), "double free of block {blk}: {freed:?}");
        if freed.is_ok() {
            area.used -= n;
        }
        self.sizecheck();
    }

    /// Takes blocks whose write failed out of use for good: they stay allocated in the
    /// blist and count as bad (the quarantine the seed wished it could do).
    pub(crate) fn quarantine(&mut self, blk: u64, n: u64) {
        if let Some(idx) = self.index_of_block(blk) {
            let area = &mut self.areas[idx];
            area.used -= n;
            area.quarantined += n;
        }
    }

    /// Marks an area failed (it vanished): no more allocations on it. Announced once.
    pub(crate) fn mark_failed(&mut self, dev: DeviceId) {
        let Some(idx) = self.index(dev) else { return };
        let area = &mut self.areas[idx];
        if !area.failed {
            area.failed = true;
            let ev = PagerEvent::DeviceFailed {
                id: dev.0,
                path: area.area.path().display().to_string(),
            };
            self.events.emit(ev);
            self.sizecheck();
        }
    }

    /// Marks an area whose backing file shrank to `size_bytes` failing (no new allocations;
    /// what is below the cut still reads, and swapoff drains it), once, with an event.
    pub(crate) fn mark_shrunk(&mut self, dev: DeviceId, size_bytes: u64) {
        let Some(idx) = self.index(dev) else { return };
        let area = &mut self.areas[idx];
        if area.failing || area.failed {
            return;
        }
        area.failing = true;
        let ev = PagerEvent::DeviceShrunk {
            id: dev.0,
            path: area.area.path().display().to_string(),
            size_bytes,
        };
        self.events.emit(ev);
        self.sizecheck();
    }

    /// Records a write's outcome on `dev`: a success resets its count of errors in a row;
    /// the [`FAILING_AFTER`]th error in a row marks it failing (no new allocations), once,
    /// with an event. Only swapoff and swapon bring it back (and, for a remote area, its
    /// connection made again: `revive`).
    pub(crate) fn write_result(&mut self, dev: DeviceId, ok: bool) {
        let Some(idx) = self.index(dev) else { return };
        let area = &mut self.areas[idx];
        if ok {
            area.write_errors_in_row = 0;
            return;
        }
        area.write_errors_in_row = area.write_errors_in_row.saturating_add(1);
        if area.write_errors_in_row >= FAILING_AFTER && !area.failing && !area.failed {
            area.failing = true;
            area.failing_at = area.area.remote().map_or(0, |r| r.reconnects());
            let ev = PagerEvent::DeviceFailing {
                id: dev.0,
                path: area.area.path().display().to_string(),
                errors: area.write_errors_in_row,
            };
            self.events.emit(ev);
            self.sizecheck();
        }
    }

    /// Puts back in service a remote (NBD) area marked failing whose connection has been
    /// made again since: its write errors were the server's absence, and the server is
    /// back (with its data, or reads would fail). Local areas stay failing until swapoff.
    /// One flag test per area when none is failing; the async pool follows at its next
    /// retune.
    fn revive(&mut self) {
        let mut revived = Vec::new();
        for a in &mut self.areas {
            if a.failing
                && !a.failed
                && a.area
                    .remote()
                    .is_some_and(|r| r.reconnects() != a.failing_at)
            {
                a.failing = false;
                a.write_errors_in_row = 0;
                revived.push(PagerEvent::DeviceRevived {
                    id: a.id.0,
                    path: a.area.path().display().to_string(),
                });
            }
        }
        if !revived.is_empty() {
            for ev in revived {
                self.events.emit(ev);
            }
            self.sizecheck();
        }
    }

    /// Counts `n` pages of `dev` that failed their checksum.
    pub(crate) fn count_corrupt(&mut self, dev: DeviceId, n: u64) {
        if let Some(idx) = self.index(dev) {
            self.areas[idx].corrupt += n;
        }
    }

    /// The seed's `swp_sizecheck`: below `nswap_lowat` free blocks "almost full" is set;
    /// at or above it "full" clears, and above `nswap_hiwat` "almost full" clears too.
    /// Each change is announced once. No area in service (before the first swapon, while
    /// the last ones are being removed, after) is neither full nor almost full: there is
    /// nothing to fill, so the state clears without an event.
    pub(crate) fn sizecheck(&mut self) {
        if self.areas.iter().all(|a| a.draining.is_some()) {
            self.hyst.full = false;
            self.hyst.almost_full = false;
            return;
        }
        let free = self.free_blocks();
        if free < self.lowat {
            if !self.hyst.almost_full {
                self.hyst.almost_full = true;
                self.events.emit(PagerEvent::AlmostFull { free });
            }
        } else {
            if self.hyst.full {
                self.hyst.full = false;
                self.events.emit(PagerEvent::NotFull { free });
            }
            if free > self.hiwat && self.hyst.almost_full {
                self.hyst.almost_full = false;
                self.events.emit(PagerEvent::NotAlmostFull { free });
            }
        }
    }
}
