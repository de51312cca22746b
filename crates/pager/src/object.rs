//! Objects: the seed's `OBJT_SWAP` objects, each with its swap metadata under its own lock,
//! listed in [`Objects`] and found again by handle when named (`swap_pager_alloc`), and
//! freed with their last handle (`swap_pager_dealloc`).
//!
//! An object points at the [`Core`] (the swap space its blocks come from) and at the
//! [`Objects`] that list it; neither points back at objects but weakly, through
//! `Objects`, which lives here with them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::config::Checksum;
use crate::core::Core;
use crate::objlock::StateLock;
use crate::objstate::ObjState;

/// A swap-backed object: a sparse array of pages indexed by `pindex`. Cheap to clone;
/// dropping the last clone deallocates it and frees all its swap (`swap_pager_dealloc`).
#[derive(Clone)]
pub struct Object {
    pub(crate) inner: Arc<ObjectInner>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("id", &self.inner.id)
            .field("handle", &self.inner.handle)
            .field("size_pages", &self.inner.size)
            .finish_non_exhaustive()
    }
}

impl Object {
    /// The pager-wide id of this object (unique while the pager lives).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The handle of a named object.
    pub fn handle(&self) -> Option<&str> {
        self.inner.handle.as_deref()
    }

    /// The object's size in pages (given at allocation; bounds `copy` and `strategy`).
    pub fn size_pages(&self) -> u64 {
        self.inner.size
    }

    /// Pages that hold a swap block.
    pub fn swapped_pages(&self) -> u64 {
        self.inner.st.lock().meta.pages()
    }

    /// Whether two handles are the same object.
    pub fn same(&self, other: &Object) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

pub(crate) struct ObjectInner {
    pub id: u64,
    pub handle: Option<String>,
    pub size: u64,
    pub core: Arc<Core>,
    pub objects: Arc<Objects>,
    pub st: StateLock,
    /// Signalled when a pending write completes or is cancelled, and when reads end.
    pub cond: Condvar,
}

impl fmt::Debug for ObjectInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectInner")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ObjectInner {
    /// "name" or "#id", for messages.
    pub(crate) fn name(&self) -> String {
        match &self.handle {
            Some(h) => h.clone(),
            None => format!("#{}", self.id),
        }
    }
}

impl Drop for ObjectInner {
    /// `swap_pager_dealloc`: out of the lists first so lookups fail, then every block
    /// freed. In-flight I/O holds a reference, so none is running here.
    fn drop(&mut self) {
        {
            let mut reg = self.objects.lock();
            // Uncounted together with unlisting, so `verify` sees both or neither.
            self.st.uncount();
            reg.all.remove(&self.id);
            reg.unname(self);
        }
        let st = self.st.get_mut();
        let mut space = self.core.space.lock();
        st.meta.clear(|_, b| space.free(u64::from(b), 1));
        for b in st.deferred.drain(..) {
            space.free(u64::from(b), 1);
        }
    }
}

/// Live objects: all of them (for swapoff and stats) and the named ones by handle (the
/// seed's `swap_pager_object_list` / `NOBJLIST`). Weak references: the registry never
/// keeps an object alive. A leaf lock, never held while an object is dropped.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub all: HashMap<u64, Weak<ObjectInner>>,
    pub named: HashMap<String, Weak<ObjectInner>>,
}

impl Registry {
    /// Takes `obj`'s handle out of the named list, if the handle still names it.
    fn unname(&mut self, obj: &ObjectInner) {
        let Some(h) = &obj.handle else { return };
        let me: *const ObjectInner = obj;
        if self
            .named
            .get(h)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), me))
        {
            self.named.remove(h);
        }
    }
}

/// The registry of one pager's objects, and the ids it hands out.
#[derive(Debug)]
pub(crate) struct Objects {
    reg: Mutex<Registry>,
    next: AtomicU64,
}

impl Default for Objects {
    fn default() -> Objects {
        Objects {
            reg: Mutex::new(Registry::default()),
            next: AtomicU64::new(1),
        }
    }
}

impl Objects {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry> {
        self.reg.lock()
    }

    /// `swap_pager_alloc`: a named object is found again by its handle; otherwise a new
    /// object of `core` is registered (weakly: the registry never keeps it alive).
    pub(crate) fn alloc(
        self: &Arc<Objects>,
        core: &Arc<Core>,
        handle: Option<&str>,
        size: u64,
    ) -> Object {
        let mut reg = self.reg.lock();
        if let Some(h) = handle
            && let Some(inner) = reg.named.get(h).and_then(|w| w.upgrade())
        {
            return Object { inner };
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(ObjectInner {
            id,
            handle: handle.map(str::to_owned),
            size,
            core: Arc::clone(core),
            objects: Arc::clone(self),
            st: StateLock::new(
                ObjState::new(core.tun.checksum != Checksum::None),
                Arc::clone(&core.meta_bytes),
            ),
            cond: Condvar::new(),
        });
        reg.all.insert(id, Arc::downgrade(&inner));
        if let Some(h) = handle {
            reg.named.insert(h.to_owned(), Arc::downgrade(&inner));
        }
        Object { inner }
    }

    /// `vm_pager_object_lookup`: an object being dropped is no longer found.
    pub(crate) fn lookup(&self, handle: &str) -> Option<Object> {
        let reg = self.reg.lock();
        let inner = reg.named.get(handle)?.upgrade()?;
        drop(reg);
        Some(Object { inner })
    }

    /// Every live object, strongly held: for walks that must not hold the registry lock.
    pub(crate) fn live(&self) -> Vec<Arc<ObjectInner>> {
        let reg = self.reg.lock();
        let objs: Vec<_> = reg.all.values().filter_map(|w| w.upgrade()).collect();
        drop(reg);
        objs
    }

    /// How many objects are listed, and how many of them are named.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let reg = self.reg.lock();
        (reg.all.len() as u64, reg.named.len() as u64)
    }

    /// A named `obj` can no longer be looked up (a `copy` that destroys its source).
    pub(crate) fn unname(&self, obj: &ObjectInner) {
        self.reg.lock().unname(obj);
    }
}
