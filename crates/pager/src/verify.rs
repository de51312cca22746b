//! A consistency check of the whole pager, for tests and debugging: the allocators and
//! every object's metadata must agree.

use std::collections::HashSet;

use crate::config::DeviceId;
use crate::core::Core;
use crate::object::ObjectInner;

impl Core {
    /// Checks, per area, `avail + used + quarantined + filled == usable`; that every block
    /// in any object's metadata or parked list is allocated in its area's blist and held
    /// by one page only; and, when no I/O is in flight, that the blocks held equal `used`.
    pub(crate) fn verify(&self) -> Result<(), String> {
        let idle = *self.async_batches.lock() == 0;
        let mut objects = self.objects();
        objects.sort_by_key(|o| o.id);
        let guards: Vec<_> = objects.iter().map(|o| (o, o.st.lock())).collect();
        let space = self.space.lock();
        for a in &space.areas {
            let sum = a.avail() + a.used + a.quarantined + a.filled;
            if sum != a.usable() {
                return Err(format!(
                    "device {}: avail {} + used {} + quarantined {} + filled {} = {sum} != usable {}",
                    a.id,
                    a.avail(),
                    a.used,
                    a.quarantined,
                    a.filled,
                    a.usable()
                ));
            }
        }
        let mut quiet = idle;
        let mut seen = HashSet::new();
        let mut held = vec![0u64; space.areas.len()];
        for (obj, st) in &guards {
            quiet &= st.pending.is_empty() && st.reads.is_empty();
            if let Some(p) = st.lost.keys().find(|&&p| st.meta.lookup(p).is_some()) {
                return Err(format!(
                    "object {} page {p}: marked lost but mapped",
                    name(obj)
                ));
            }
            let blocks = st.meta.iter().map(|(p, b)| (Some(p), b));
            let parked = st.deferred.iter().map(|&b| (None, b));
            for (p, b) in blocks.chain(parked) {
                let b = u64::from(b);
                let where_ = || format!("object {} page {p:?} block {b}", name(obj));
                let Some(i) = space.areas.iter().position(|a| a.contains(b)) else {
                    return Err(format!("{}: owned by no device", where_()));
                };
                let a = &space.areas[i];
                let stashed = a
                    .stash
                    .is_some_and(|(d, len)| (d..d + len).contains(&(b - a.first)));
                if a.blist.is_free(b - a.first) || stashed {
                    return Err(format!("{}: free in device {}'s blist", where_(), a.id));
                }
                if !seen.insert(b) {
                    return Err(format!("{}: used twice", where_()));
                }
                held[i] += 1;
            }
        }
        if quiet {
            for (a, &h) in space.areas.iter().zip(&held) {
                if h != a.used {
                    return Err(format!(
                        "device {}: objects hold {h} blocks but {} are used",
                        a.id, a.used
                    ));
                }
            }
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
