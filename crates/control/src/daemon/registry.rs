//! The one registry of the objects the daemon serves: each one's backend handle, whose it
//! is, which connection made it, its handle if named, and what its uid is charged for it,
//! with the per-uid counts of [`Uids`] beside them.
//!
//! Invariants: wire ids are never reused, so a stale id from a closed connection can never
//! reach someone else's new object; an object is found only by its own uid; the registry
//! holds the only handle of each object (dropping it frees the object's swap). Swap pages
//! are counted at admission: a put reserves the pages its uid may still take before it
//! runs, under the same lock as the quota check, and gives the reservation back only once
//! its pages have landed and the object is recounted. So a uid never holds more than
//! `max_swap_pages_per_uid`, whatever it has in flight and on however many connections.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::backend::{BackendObject, Landed};
use super::limits::Limits;
use super::uids::Uids;

/// An object as the daemon tracks it: whose it is, what keeps it alive, and the swap pages
/// it held when last looked at (what its uid is charged once its puts have landed).
struct Owned {
    uid: u32,
    obj: Arc<dyn BackendObject>,
    handle: Option<String>,
    conn: u64,
    pages: u64,
}

#[derive(Default)]
struct Table {
    next: u64,
    by_id: HashMap<u64, Owned>,
    named: HashMap<(u32, String), u64>,
}

/// Every object served, by wire id, and the per-uid counts.
#[derive(Default)]
pub struct Registry {
    table: Mutex<Table>,
    pub uids: Uids,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("objects", &self.table.lock().by_id.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The wire id of `uid`'s object named `handle`.
    pub fn named(&self, uid: u32, handle: &str) -> Option<u64> {
        self.table
            .lock()
            .named
            .get(&(uid, handle.to_owned()))
            .copied()
    }

    /// Lists `obj`, made for `uid` on connection `conn` (the caller counted it with
    /// [`Uids::add_object`]), and returns its wire id. When another connection of the uid
    /// listed an object of the same `handle` meanwhile, that one is kept: `obj` is dropped,
    /// its count taken back, and the first one's id returned.
    pub fn insert(
        &self,
        uid: u32,
        conn: u64,
        handle: Option<String>,
        obj: Arc<dyn BackendObject>,
        limits: &Limits,
    ) -> u64 {
        let mut t = self.table.lock();
        if let Some(h) = &handle
            && let Some(id) = t.named.get(&(uid, h.clone())).copied()
        {
            drop(t);
            drop(obj);
            self.uids.remove_object(uid, 0, limits);
            return id;
        }
        t.next += 1;
        let id = t.next;
        if let Some(h) = &handle {
            t.named.insert((uid, h.clone()), id);
        }
        let owned = Owned {
            uid,
            obj,
            handle,
            conn,
            pages: 0,
        };
        t.by_id.insert(id, owned);
        id
    }

    /// Wire object `id` if it belongs to `uid`. Another uid's object answers exactly like
    /// a missing one: its existence is not disclosed.
    pub fn lookup(&self, uid: u32, id: u64) -> Option<Arc<dyn BackendObject>> {
        match self.table.lock().by_id.get(&id) {
            Some(o) if o.uid == uid => Some(Arc::clone(&o.obj)),
            _ => None,
        }
    }

    /// The objects connection `conn` of `uid` created, by wire id.
    pub fn of_connection(&self, uid: u32, conn: u64) -> Vec<(u64, Arc<dyn BackendObject>)> {
        let t = self.table.lock();
        let mut v: Vec<_> = t
            .by_id
            .iter()
            .filter(|(_, o)| o.conn == conn && o.uid == uid)
            .map(|(id, o)| (*id, Arc::clone(&o.obj)))
            .collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        v
    }

    /// The objects each of `conns` (connection -> its uid) created, in one pass over the
    /// table (a `stats` joins every run with its objects: one pass, whatever their number).
    pub fn of_connections(
        &self,
        conns: &HashMap<u64, u32>,
    ) -> HashMap<u64, Vec<Arc<dyn BackendObject>>> {
        let t = self.table.lock();
        let mut out: HashMap<u64, Vec<Arc<dyn BackendObject>>> = HashMap::new();
        for o in t.by_id.values() {
            if conns.get(&o.conn) == Some(&o.uid) {
                out.entry(o.conn).or_default().push(Arc::clone(&o.obj));
            }
        }
        out
    }

    /// Unlists `uid`'s object `id` and frees it (outside the lock: freeing takes the
    /// backend's locks).
    pub fn destroy(&self, uid: u32, id: u64, limits: &Limits) {
        let gone = {
            let mut t = self.table.lock();
            let o = t.by_id.remove(&id);
            if let Some(h) = o.as_ref().and_then(|o| o.handle.clone()) {
                t.named.remove(&(uid, h));
            }
            o
        };
        if let Some(o) = gone {
            let (uid, pages) = (o.uid, o.pages);
            drop(o);
            self.uids.remove_object(uid, pages, limits);
        }
    }

    /// Whether connection `conn` holds anonymous objects (its closing frees them).
    pub fn holds_anonymous(&self, conn: u64) -> bool {
        self.table
            .lock()
            .by_id
            .values()
            .any(|o| o.conn == conn && o.handle.is_none())
    }

    /// Frees the anonymous objects of closed connection `conn`; returns how many.
    pub fn release(&self, conn: u64, limits: &Limits) -> usize {
        let gone: Vec<Owned> = {
            let mut t = self.table.lock();
            let ids: Vec<u64> = t
                .by_id
                .iter()
                .filter(|(_, o)| o.conn == conn && o.handle.is_none())
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| t.by_id.remove(id)).collect()
        };
        let n = gone.len();
        for o in gone {
            let (uid, pages) = (o.uid, o.pages);
            drop(o);
            self.uids.remove_object(uid, pages, limits);
        }
        n
    }

    /// Re-reads the swap pages object `id` holds and charges the difference to its uid.
    pub fn recount(&self, id: u64, limits: &Limits) {
        let mut t = self.table.lock();
        let Some(o) = t.by_id.get_mut(&id) else {
            return;
        };
        let now = o.obj.swapped_pages();
        let before = std::mem::replace(&mut o.pages, now);
        let uid = o.uid;
        drop(t);
        self.uids.pages_changed(uid, before, now, limits);
    }

    /// Admits a put of `n` pages by `uid`: reserves as many as its quota still allows
    /// (all of them without a quota) and returns that number. The reservation is given
    /// back by the put's [`Registry::landed`].
    pub fn admit(&self, uid: u32, n: u64, limits: &Limits) -> u64 {
        self.uids.reserve_pages(uid, n, limits)
    }

    /// What runs when a put of `reserved` admitted pages to object `id` of `uid` has
    /// landed: the object is recounted (its new pages charged), then the reservation is
    /// given back, so the uid's count never dips below what it holds meanwhile.
    pub fn landed(self: &Arc<Self>, uid: u32, id: u64, reserved: u64, limits: Limits) -> Landed {
        let me = Arc::clone(self);
        Box::new(move || {
            me.recount(id, &limits);
            me.uids.pages_changed(uid, reserved, 0, &limits);
        })
    }
}
