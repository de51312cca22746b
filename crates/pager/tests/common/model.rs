//! The reference model for the property tests: every object a `HashMap<pindex, Val>`, and
//! a harness that applies one random operation to the pager and to the model and compares
//! every answer. With `faults`, operations that inject I/O errors join in, and answers may
//! be errors where a fault could explain them; pages reported OK must still read back.

use std::collections::HashMap;
use std::path::PathBuf;

use device::PAGE_SIZE;
use pager::{
    Bio, DeviceId, Object, PageResult, Pager, PagerError, PutMode, SwapoffOptions, SwaponOptions,
};
use proptest::prelude::*;

use super::{area, page, pages};

pub const OBJECTS: usize = 3;
pub const OBJ_PAGES: u64 = 48;
pub const AREA_PAGES: [u64; 4] = [41, 61, 81, 33];

/// What the model knows of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    /// Written with this tag: reads must return `page(tag)`.
    Tag(u64),
    /// Reserved, or hit by a failed multi-page write: any content, maybe not on swap.
    Unknown,
    /// Its last write was async (acknowledged with `Pend`) and failed on every area: every
    /// read must be an error (`WriteLost`), never an older copy.
    Lost,
}

#[derive(Debug, Clone)]
pub enum Op {
    Put {
        obj: usize,
        start: u64,
        n: u64,
        asynch: bool,
    },
    Get {
        obj: usize,
        p: u64,
        behind: u64,
        ahead: u64,
    },
    Has {
        obj: usize,
        p: u64,
    },
    Free {
        obj: usize,
        start: u64,
        n: u64,
    },
    Unswap {
        obj: usize,
        p: u64,
    },
    Reserve {
        obj: usize,
        start: u64,
        n: u64,
    },
    Copy {
        src: usize,
        dst: usize,
        offset: u64,
        destroy: bool,
    },
    Dealloc {
        obj: usize,
    },
    SRead {
        obj: usize,
        start: u64,
        n: u64,
    },
    SWrite {
        obj: usize,
        start: u64,
        n: u64,
    },
    SDelete {
        obj: usize,
        start: u64,
        n: u64,
    },
    Swapon {
        area: usize,
        priority: i32,
    },
    Swapoff {
        area: usize,
        force: bool,
    },
    SetAsync {
        n: u64,
    },
    Wait,
    FailWrites {
        area: usize,
        start: u64,
        len: u64,
    },
    FailReads {
        area: usize,
        start: u64,
        len: u64,
    },
    FailAfter {
        area: usize,
        ios: u64,
    },
    Vanish {
        area: usize,
    },
    Clear {
        area: usize,
    },
}

fn range() -> impl Strategy<Value = (u64, u64)> {
    (0..OBJ_PAGES).prop_flat_map(|s| (Just(s), 1..=(OBJ_PAGES - s).min(20)))
}

pub fn op(faults: bool) -> impl Strategy<Value = Op> {
    let o = 0..OBJECTS;
    let a = 0..AREA_PAGES.len();
    let p = 0..OBJ_PAGES;
    let plain = prop_oneof![
        6 => (o.clone(), range(), any::<bool>()).prop_map(|(obj, (start, n), asynch)| Op::Put { obj, start, n, asynch }),
        5 => (o.clone(), p.clone(), 0..6u64, 0..6u64).prop_map(|(obj, p, b, a)| Op::Get { obj, p, behind: b.min(p), ahead: a }),
        1 => (o.clone(), p.clone()).prop_map(|(obj, p)| Op::Has { obj, p }),
        1 => (o.clone(), range()).prop_map(|(obj, (start, n))| Op::Free { obj, start, n }),
        1 => (o.clone(), p.clone()).prop_map(|(obj, p)| Op::Unswap { obj, p }),
        1 => (o.clone(), range()).prop_map(|(obj, (start, n))| Op::Reserve { obj, start, n }),
        1 => (o.clone(), o.clone(), 0..8u64, any::<bool>()).prop_map(|(src, dst, offset, destroy)| Op::Copy { src, dst, offset, destroy }),
        1 => o.clone().prop_map(|obj| Op::Dealloc { obj }),
        2 => (o.clone(), range()).prop_map(|(obj, (start, n))| Op::SRead { obj, start, n }),
        2 => (o.clone(), range()).prop_map(|(obj, (start, n))| Op::SWrite { obj, start, n }),
        1 => (o.clone(), range()).prop_map(|(obj, (start, n))| Op::SDelete { obj, start, n }),
        1 => (a.clone(), 0..2i32).prop_map(|(area, priority)| Op::Swapon { area, priority }),
        1 => (a.clone(), any::<bool>()).prop_map(move |(area, force)| Op::Swapoff { area, force: force && faults }),
        1 => (0..12u64).prop_map(|n| Op::SetAsync { n }),
        1 => Just(Op::Wait),
    ];
    if !faults {
        return plain.boxed();
    }
    let fault = prop_oneof![
        2 => (a.clone(), 1..80u64, 1..8u64).prop_map(|(area, start, len)| Op::FailWrites { area, start, len }),
        2 => (a.clone(), 1..80u64, 1..8u64).prop_map(|(area, start, len)| Op::FailReads { area, start, len }),
        1 => (a.clone(), 0..20u64).prop_map(|(area, ios)| Op::FailAfter { area, ios }),
        1 => a.clone().prop_map(|area| Op::Vanish { area }),
        3 => a.prop_map(|area| Op::Clear { area }),
    ];
    prop_oneof![8 => plain, 1 => fault].boxed()
}

/// A pager with its areas, objects and model.
pub struct Harness {
    pub pager: Pager,
    _dir: tempfile::TempDir,
    pub areas: Vec<(PathBuf, Option<DeviceId>)>,
    /// Areas with faults armed (or failed), where errors are expected.
    pub faulty: Vec<bool>,
    pub objs: Vec<Object>,
    pub model: Vec<HashMap<u64, Val>>,
    pub tag: u64,
    pub faults: bool,
}

impl Harness {
    /// A pager on `engine` with areas 0 and 1 on, and the objects.
    pub fn new(interleave: u64, faults: bool, engine: device::EngineKind) -> Harness {
        let dir = super::tempdir();
        let pager = Pager::new(pager::PagerConfig {
            engine,
            ..super::config(interleave)
        })
        .unwrap();
        let mut areas = Vec::new();
        for (i, &size) in AREA_PAGES.iter().enumerate() {
            let path = area(dir.path(), &format!("m{i}"), size);
            let id = if i < 2 {
                Some(pager.swapon(&path, SwaponOptions::default()).unwrap())
            } else {
                None
            };
            areas.push((path, id));
        }
        let objs = (0..OBJECTS)
            .map(|_| pager.alloc_object(None, OBJ_PAGES))
            .collect();
        Harness {
            pager,
            _dir: dir,
            faulty: vec![false; areas.len()],
            areas,
            objs,
            model: vec![HashMap::new(); OBJECTS],
            tag: 1,
            faults,
        }
    }

    fn any_faulty(&self) -> bool {
        self.faulty.iter().any(|&f| f)
    }

    fn next_tags(&mut self, n: u64) -> u64 {
        let t = self.tag;
        self.tag += n;
        t
    }

    /// Checks a page the pager returned against the model.
    fn check_page(
        &self,
        obj: usize,
        p: u64,
        got: &[u8],
        absent_reads_zero: bool,
    ) -> Result<(), TestCaseError> {
        match self.model[obj].get(&p) {
            Some(Val::Tag(t)) => prop_assert!(
                got == page(*t).as_slice(),
                "object {obj} page {p}: wrong data (want tag {t})"
            ),
            Some(Val::Unknown) => {}
            Some(Val::Lost) => prop_assert!(
                false,
                "object {obj} page {p}: its async write failed everywhere, yet it read back"
            ),
            None if absent_reads_zero => prop_assert!(
                got.iter().all(|&b| b == 0),
                "object {obj} page {p}: not zeroes"
            ),
            None => prop_assert!(false, "object {obj} page {p}: read although not on swap"),
        }
        Ok(())
    }

    /// One piece: one match arm per operation, each checked against the model.
    pub fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let p = self.pager.clone();
        match *op {
            Op::Put {
                obj,
                start,
                n,
                asynch,
            } => {
                let t = self.next_tags(n);
                let data = pages(t, n);
                if asynch && self.faults {
                    let (tx, rx) = crossbeam_channel::unbounded();
                    let cb = Box::new(move |d| tx.send(d).unwrap());
                    let pend = p.putpages(&self.objs[obj], start, &data, PutMode::Async(Some(cb)));
                    let done = rx.recv().unwrap();
                    prop_assert_eq!(done.results.len(), pend.len());
                    self.apply_put(obj, start, t, &done.results, true);
                } else {
                    let mode = if asynch {
                        PutMode::Async(None)
                    } else {
                        PutMode::Sync
                    };
                    // Sync puts alternate between page-aligned memory, written from
                    // directly, and a `Vec`, copied through a pbuf: both paths, one model.
                    let aligned = device::PageBuf::from_bytes(&data);
                    let src = if !asynch && t.is_multiple_of(2) {
                        aligned.as_slice()
                    } else {
                        &data[..]
                    };
                    let res = p.putpages(&self.objs[obj], start, src, mode);
                    if !self.faults {
                        prop_assert!(
                            !res.contains(&PageResult::Error),
                            "error without faults: {res:?}"
                        );
                    }
                    self.apply_put(obj, start, t, &res, false);
                }
            }
            Op::Get {
                obj,
                p: pi,
                behind,
                ahead,
            } => {
                let mut out = vec![0u8; (behind + 1 + ahead) as usize * PAGE_SIZE];
                match p.getpages(&self.objs[obj], pi, behind, ahead, &mut out) {
                    Ok(r) => {
                        prop_assert!(r.contains(&pi));
                        for q in r {
                            let at = (q + behind - pi) as usize * PAGE_SIZE;
                            self.check_page(obj, q, &out[at..at + PAGE_SIZE], false)?;
                        }
                    }
                    Err(PagerError::NotOnSwap { .. }) => {
                        let v = self.model[obj].get(&pi);
                        prop_assert!(
                            v.is_none() || v == Some(&Val::Unknown),
                            "page {pi} of {obj} lost: {v:?}"
                        );
                    }
                    Err(e @ PagerError::Read { .. }) => prop_assert!(self.any_faulty(), "{e}"),
                    Err(e @ (PagerError::WriteLost { .. } | PagerError::Dropped { .. })) => {
                        let v = self.model[obj].get(&pi);
                        prop_assert!(
                            matches!(v, Some(Val::Lost | Val::Unknown)),
                            "page {pi} of {obj} ({v:?}): {e}"
                        );
                    }
                    Err(e) => prop_assert!(false, "getpages: {e}"),
                }
            }
            Op::Has { obj, p: pi } => {
                let has = p.haspage(&self.objs[obj], pi).is_some();
                match self.model[obj].get(&pi) {
                    Some(Val::Tag(_)) => prop_assert!(has, "haspage {obj}/{pi}"),
                    None | Some(Val::Lost) => prop_assert!(!has, "haspage {obj}/{pi}"),
                    Some(Val::Unknown) => {}
                }
            }
            Op::Free { obj, start, n } | Op::SDelete { obj, start, n } => {
                if matches!(op, Op::Free { .. }) {
                    p.freespace(&self.objs[obj], start, n);
                } else {
                    let bio = Bio::Delete {
                        offset: start * PAGE_SIZE as u64,
                        len: n * PAGE_SIZE as u64,
                    };
                    p.strategy(&self.objs[obj], bio).unwrap();
                }
                for q in start..start + n {
                    self.model[obj].remove(&q);
                }
            }
            Op::Unswap { obj, p: pi } => {
                p.unswapped(&self.objs[obj], pi);
                self.model[obj].remove(&pi);
            }
            Op::Reserve { obj, start, n } => {
                if p.reserve(&self.objs[obj], start, n).is_ok() {
                    for q in start..start + n {
                        self.model[obj].insert(q, Val::Unknown);
                    }
                }
            }
            Op::Copy {
                src,
                dst,
                offset,
                destroy,
            } => {
                p.copy(&self.objs[src], &self.objs[dst], offset, destroy);
                if src != dst {
                    for i in 0..OBJ_PAGES {
                        let s = self.model[src].remove(&(i + offset));
                        match (self.model[dst].get(&i).copied(), s) {
                            (Some(Val::Tag(_) | Val::Lost), _) | (_, None) => {}
                            (None, Some(v)) => {
                                self.model[dst].insert(i, v);
                            }
                            (Some(Val::Unknown), Some(_)) => {}
                        }
                    }
                    if destroy {
                        self.model[src].clear();
                    }
                }
            }
            Op::Dealloc { obj } => {
                self.objs[obj] = p.alloc_object(None, OBJ_PAGES);
                self.model[obj].clear();
            }
            Op::SRead { obj, start, n } => {
                let mut buf = vec![7u8; n as usize * PAGE_SIZE];
                let bio = Bio::Read {
                    offset: start * PAGE_SIZE as u64,
                    buf: &mut buf,
                };
                match p.strategy(&self.objs[obj], bio) {
                    Ok(()) => {
                        for q in start..start + n {
                            let at = (q - start) as usize * PAGE_SIZE;
                            self.check_page(obj, q, &buf[at..at + PAGE_SIZE], true)?;
                        }
                    }
                    Err(e @ PagerError::Read { .. }) => prop_assert!(self.any_faulty(), "{e}"),
                    Err(
                        e @ (PagerError::WriteLost { pindex, .. }
                        | PagerError::Dropped { pindex, .. }),
                    ) => {
                        let v = self.model[obj].get(&pindex);
                        prop_assert!(
                            matches!(v, Some(Val::Lost | Val::Unknown)),
                            "page {pindex} of {obj} ({v:?}): {e}"
                        );
                    }
                    Err(e) => prop_assert!(false, "strategy read: {e}"),
                }
            }
            Op::SWrite { obj, start, n } => {
                let t = self.next_tags(n);
                let bio = Bio::Write {
                    offset: start * PAGE_SIZE as u64,
                    data: &pages(t, n),
                };
                match p.strategy(&self.objs[obj], bio) {
                    Ok(()) => {
                        for k in 0..n {
                            self.model[obj].insert(start + k, Val::Tag(t + k));
                        }
                    }
                    Err(e) => {
                        let ok = matches!(e, PagerError::NoSpace { .. })
                            || (self.any_faulty() && matches!(e, PagerError::Write { .. }));
                        prop_assert!(ok, "strategy write: {e}");
                        for k in 0..n {
                            let v = self.model[obj].entry(start + k).or_insert(Val::Unknown);
                            *v = Val::Unknown;
                        }
                    }
                }
            }
            Op::Swapon { area, priority } => {
                if self.areas[area].1.is_none() {
                    let opts = SwaponOptions {
                        priority,
                        ..SwaponOptions::default()
                    };
                    let id = p.swapon(&self.areas[area].0, opts).unwrap();
                    self.areas[area].1 = Some(id);
                    self.faulty[area] = false;
                }
            }
            Op::Swapoff { area, force } => {
                if let Some(id) = self.areas[area].1 {
                    if force {
                        self.pager.wait_async();
                        self.mark_unknown_on(id);
                    }
                    match p.swapoff(id, SwapoffOptions { force }, &mut |_, _| {}) {
                        Ok(_) => {
                            self.areas[area].1 = None;
                            self.faulty[area] = false;
                        }
                        Err(PagerError::NotEnoughSpace { .. }) => {}
                        Err(e) => prop_assert!(self.faults, "swapoff: {e}"),
                    }
                }
            }
            Op::SetAsync { n } => {
                let got = p.set_swap_async_max(n);
                prop_assert_eq!(got, n.clamp(1, 8));
            }
            Op::Wait => p.wait_async(),
            Op::FailWrites { area, start, len } => {
                self.arm(area, |f| f.fail_writes(start..start + len))
            }
            Op::FailReads { area, start, len } => {
                self.arm(area, |f| f.fail_reads(start..start + len))
            }
            Op::FailAfter { area, ios } => self.arm(area, |f| f.fail_after(ios)),
            Op::Vanish { area } => self.arm(area, |f| f.vanish()),
            Op::Clear { area } => {
                if let Some(a) = self.areas[area].1.and_then(|id| self.pager.area(id)) {
                    a.faults().clear();
                    let failed = self.pager.stats().devices.iter().any(|d| {
                        d.path == a.path().display().to_string()
                            && d.state == pager::DeviceState::Failed
                    });
                    self.faulty[area] = failed;
                }
            }
        }
        if let Err(e) = self.pager.verify() {
            prop_assert!(false, "after {op:?}: {e}");
        }
        Ok(())
    }

    fn arm(&mut self, area: usize, f: impl FnOnce(&device::FaultInjector)) {
        if let Some(a) = self.areas[area].1.and_then(|id| self.pager.area(id)) {
            f(a.faults());
            self.faulty[area] = true;
        }
    }

    /// Before a forced swapoff: the pages on the area may be lost.
    fn mark_unknown_on(&mut self, dev: DeviceId) {
        for (i, m) in self.model.iter_mut().enumerate() {
            for (&q, v) in m.iter_mut() {
                if self
                    .pager
                    .locate(&self.objs[i], q)
                    .is_some_and(|(d, _)| d == dev)
                {
                    *v = Val::Unknown;
                }
            }
        }
    }

    /// `res` are final results of an async put when `asynch_final`: an `Error` there was
    /// acknowledged (`Pend`) first, so the page is lost, not back at its older copy.
    fn apply_put(
        &mut self,
        obj: usize,
        start: u64,
        t: u64,
        res: &[PageResult],
        asynch_final: bool,
    ) {
        for (k, r) in res.iter().enumerate() {
            let k = k as u64;
            match r {
                PageResult::Ok | PageResult::Pend => {
                    self.model[obj].insert(start + k, Val::Tag(t + k));
                }
                PageResult::Error if asynch_final => {
                    self.model[obj].insert(start + k, Val::Lost);
                }
                _ => {}
            }
        }
    }

    /// The end of a case: faults off, failed areas removed by force, then every page the
    /// model knows must read back exactly, and dropping the objects frees every block.
    pub fn finish(mut self) -> Result<(), TestCaseError> {
        self.pager.wait_async();
        for (_, id) in &self.areas {
            if let Some(a) = id.and_then(|id| self.pager.area(id)) {
                a.faults().clear();
            }
        }
        let failed: Vec<DeviceId> = self
            .pager
            .stats()
            .devices
            .iter()
            .filter(|d| d.state == pager::DeviceState::Failed)
            .map(|d| DeviceId(d.id))
            .collect();
        for id in failed {
            self.mark_unknown_on(id);
            self.pager
                .swapoff(id, SwapoffOptions { force: true }, &mut |_, _| {})
                .unwrap();
        }
        self.faulty.iter_mut().for_each(|f| *f = false);
        self.pager
            .verify()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for obj in 0..OBJECTS {
            let mut keys: Vec<u64> = self.model[obj].keys().copied().collect();
            keys.sort_unstable();
            for q in keys {
                self.apply(&Op::Get {
                    obj,
                    p: q,
                    behind: 0,
                    ahead: 0,
                })?;
            }
        }
        let p = self.pager.clone();
        self.objs.clear();
        prop_assert_eq!(
            p.stats().used_pages,
            0,
            "blocks left after every object was dropped"
        );
        p.verify().map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(())
    }
}

/// Both engines, for every suite: io_uring runs completions on one reaper thread, which
/// the thread pool's many workers can hide (a callback blocked on a lock stalls them all).
pub fn engine() -> impl Strategy<Value = device::EngineKind> {
    prop_oneof![
        Just(device::EngineKind::ThreadPool),
        Just(device::EngineKind::IoUring)
    ]
}

/// Proptest cases: `PROPTEST_CASES` or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
