//! A consistency check of the whole pager, for tests and debugging: the allocators and
//! every object's metadata must agree.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::DeviceId;
use crate::core::Core;
use crate::object::{ObjectInner, Objects};
use crate::objlock::StateGuard;

/// What [`crate::Pager::verify`] found wrong: a bug in the pager, never in its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "device {device}: avail {avail} + used {used} + quarantined {quarantined} + filled {filled} != usable {usable}"
    )]
    Accounting {
        device: DeviceId,
        avail: u64,
        used: u64,
        quarantined: u64,
        filled: u64,
        usable: u64,
    },
    #[error("{0}: owned by no device")]
    Unowned(Where),
    #[error("{0}: free in device {1}'s blist")]
    Free(Where, DeviceId),
    #[error("{0}: used twice")]
    UsedTwice(Where),
    #[error("object {object} page {pindex}: marked lost but mapped")]
    LostButMapped { object: String, pindex: u64 },
    #[error("metadata bytes counted {counted}, but the objects hold {held}")]
    MetaBytes { counted: u64, held: u64 },
    #[error("device {device}: objects hold {held} blocks but {used} are used")]
    Held {
        device: DeviceId,
        held: u64,
        used: u64,
    },
}

/// A block found in an object: in its metadata at `pindex`, or parked (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    pub object: String,
    pub pindex: Option<u64>,
    pub block: u64,
}

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pindex {
            Some(p) => write!(f, "object {} page {p} block {}", self.object, self.block),
            None => write!(f, "object {} parked block {}", self.object, self.block),
        }
    }
}

impl Core {
    /// Checks, per area, `avail + used + quarantined + filled == usable`; that every block
    /// in any object's metadata or parked list is allocated in its area's blist and held
    /// by one page only; and, when no I/O is in flight, that the blocks held equal `used`.
    pub(crate) fn verify(&self, registry: &Objects) -> Result<(), VerifyError> {
        let idle = *self.async_batches.lock() == 0;
        let mut objects = registry.live();
        objects.sort_by_key(|o| o.id);
        let guards: Vec<_> = objects.iter().map(|o| (o, o.st.lock())).collect();
        let space = self.space.lock();
        for a in &space.areas {
            let sum = a.avail() + a.used + a.quarantined + a.filled;
            if sum != a.usable() {
                return Err(VerifyError::Accounting {
                    device: a.id,
                    avail: a.avail(),
                    used: a.used,
                    quarantined: a.quarantined,
                    filled: a.filled,
                    usable: a.usable(),
                });
            }
        }
        let mut quiet = idle;
        let mut seen = HashSet::new();
        let mut held = vec![0u64; space.areas.len()];
        for (obj, st) in &guards {
            quiet &= st.pending.is_empty() && st.reads.is_empty();
            if let Some(p) = st.lost.keys().find(|&&p| st.meta.lookup(p).is_some()) {
                return Err(VerifyError::LostButMapped {
                    object: name(obj),
                    pindex: *p,
                });
            }
            let blocks = st.meta.iter().map(|(p, b)| (Some(p), b));
            let parked = st.deferred.iter().map(|&b| (None, b));
            for (p, b) in blocks.chain(parked) {
                let b = u64::from(b);
                let at = || Where {
                    object: name(obj),
                    pindex: p,
                    block: b,
                };
                let Some(i) = space.areas.iter().position(|a| a.contains(b)) else {
                    return Err(VerifyError::Unowned(at()));
                };
                let a = &space.areas[i];
                let stashed = a
                    .stash
                    .is_some_and(|(d, len)| (d..d + len).contains(&(b - a.first)));
                if a.blist.is_free(b - a.first) || stashed {
                    return Err(VerifyError::Free(at(), a.id));
                }
                if !seen.insert(b) {
                    return Err(VerifyError::UsedTwice(at()));
                }
                held[i] += 1;
            }
        }
        self.verify_meta_bytes(registry, &guards)?;
        if quiet {
            for (a, &h) in space.areas.iter().zip(&held) {
                if h != a.used {
                    return Err(VerifyError::Held {
                        device: a.id,
                        held: h,
                        used: a.used,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks the running count of metadata bytes (`objlock`) against the objects, all
    /// locked by the caller. Exact only when the registry lists just those objects: an
    /// object is uncounted under the registry lock as it is unlisted, and created ones
    /// are listed before they are used; otherwise it checks nothing.
    fn verify_meta_bytes(
        &self,
        registry: &Objects,
        guards: &[(&Arc<ObjectInner>, StateGuard<'_>)],
    ) -> Result<(), VerifyError> {
        let mut held = 0;
        for (_, st) in guards {
            let bytes = st.meta.memory_bytes() as u64;
            if st.accounted != bytes {
                return Err(VerifyError::MetaBytes {
                    counted: st.accounted,
                    held: bytes,
                });
            }
            held += bytes;
        }
        let reg = registry.lock();
        let same = reg.all.len() == guards.len()
            && guards.iter().all(|(o, _)| reg.all.contains_key(&o.id));
        let counted = self.meta_bytes.load(Ordering::Relaxed);
        drop(reg);
        if same && counted != held {
            return Err(VerifyError::MetaBytes { counted, held });
        }
        Ok(())
    }

    /// Where page `pindex` of `obj` is on swap: its area and the area's page.
    pub(crate) fn locate(&self, obj: &ObjectInner, pindex: u64) -> Option<(DeviceId, u64)> {
        let st = obj.st.lock();
        let blk = st.meta.lookup(pindex)?;
        let loc = self.space.lock().resolve(u64::from(blk))?;
        Some((loc.dev, loc.page))
    }
}

fn name(obj: &ObjectInner) -> String {
    obj.name()
}
