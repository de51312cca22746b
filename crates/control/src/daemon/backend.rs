//! What the daemon serves: a [`Backend`] is the swap space behind the socket, and its
//! objects are [`BackendObject`]s, held by the daemon's one registry (`registry.rs`). The
//! real one wraps a `pager::Pager` (see `pager_backend.rs`); [`MemoryBackend`] keeps pages
//! in memory and is the reference model the protocol tests run against.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use device::PAGE_SIZE;
use pager::PagerStats;

use crate::proto::{GetStatus, PageError, PutStatus};

/// Why a backend refused. Its `Display` is the one line the client is told.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No such thing to act on (a swapoff of a path that is not on).
    #[error("{0}")]
    NotFound(String),
    /// The pager refused or failed: its error, cause and all.
    #[error(transparent)]
    Pager(#[from] pager::PagerError),
    /// A refusal of a backend that is not the pager (the in-memory model).
    #[error("{0}")]
    Failed(String),
}

/// The swap space as the daemon sees it. Implementations are thread-safe: one thread
/// serves each client.
pub trait Backend: Send + Sync + 'static {
    fn stats(&self) -> PagerStats;

    /// The same with each device's fragmentation filled in (costs a free-list walk).
    fn stats_with_frag(&self) -> PagerStats {
        self.stats()
    }

    fn swapon(&self, path: &Path, priority: i32, discard: bool) -> Result<(), BackendError>;

    /// Move every page off `path`, then detach it. Blocks until done. `force` removes a
    /// failed device, dropping its pages. Returns how many pages were lost (dropped unread,
    /// or failing their checksum): 0 unless something could not be moved.
    fn swapoff(&self, path: &Path, force: bool) -> Result<u64, BackendError>;

    /// Set `swap_async_max`; returns the clamped value in force.
    fn set_swap_async_max(&self, n: u64) -> u64;

    /// A new object. The daemon's registry holds the only handle: dropping it frees the
    /// object and its swap (the seed's `swap_pager_dealloc`).
    fn create(&self) -> Result<Arc<dyn BackendObject>, BackendError>;

    /// Wait for async writes still in flight (called once at shutdown).
    fn flush(&self) {}
}

/// Called once the pages of one put are final (written or failed): before `putpages`
/// returns for a sync put, from the write's completion for an async one. It must not
/// block: it may run on an I/O completion thread.
pub type Landed = Box<dyn FnOnce() + Send>;

/// One object of a [`Backend`], as the daemon's registry holds it.
pub trait BackendObject: Send + Sync {
    /// The backend's own id of the object (for logs and tests).
    fn id(&self) -> u64;

    /// Page out whole pages of `data` at `pindex`; `landed` runs when they are final.
    fn putpages(&self, pindex: u64, data: &[u8], sync: bool, landed: Landed) -> Vec<PutStatus>;

    /// Page in `out.len() / PAGE_SIZE` pages at `pindex` into `out`, with why each page
    /// that is `Error` failed (the protocol's `errors`; empty where the backend knows no
    /// reasons).
    fn getpages(&self, pindex: u64, out: &mut [u8]) -> (Vec<GetStatus>, Vec<PageError>);

    /// (has, contiguous before, contiguous after).
    fn haspage(&self, pindex: u64) -> (bool, u64, u64);

    /// Drop the swap copies of `count` pages from `pindex`.
    fn freespace(&self, pindex: u64, count: u64);

    /// Pages that hold swap (what the owner's uid is charged against its quota once its
    /// puts have landed).
    fn swapped_pages(&self) -> u64;

    /// Wait for the async puts in flight, then take the pages whose async writes failed
    /// on every area since the last `sync` (ascending, each once), at most as many as form
    /// `max_runs` runs of consecutive pages; `true` if more wait for the next call. Like
    /// `fsync`: each failure is reported once.
    fn sync(&self, max_runs: usize) -> (Vec<u64>, bool);
}

/// Take from `pages` (ascending) the prefix that forms at most `max_runs` runs of consecutive
/// pages; returns it and leaves the rest in `pages`.
pub fn take_runs(pages: &mut Vec<u64>, max_runs: usize) -> Vec<u64> {
    let mut runs = 0;
    let mut cut = pages.len();
    for (i, p) in pages.iter().enumerate() {
        if i == 0 || pages[i - 1] + 1 != *p {
            if runs == max_runs {
                cut = i;
                break;
            }
            runs += 1;
        }
    }
    let rest = pages.split_off(cut);
    std::mem::replace(pages, rest)
}

/// An in-memory swap space of `capacity` pages with named devices that hold no data: enough
/// to test the daemon's protocol, permissions and lifetimes without block devices.
#[derive(Debug)]
pub struct MemoryBackend {
    inner: Arc<Mutex<Memory>>,
}

/// An object of a [`MemoryBackend`]: its pages live in the backend's table until it is
/// dropped.
#[derive(Debug)]
struct MemoryObject {
    id: u64,
    mem: Arc<Mutex<Memory>>,
}

#[derive(Debug, Default)]
struct Memory {
    capacity: u64,
    next: u64,
    objects: HashMap<u64, HashMap<u64, Vec<u8>>>,
    devices: Vec<(String, i32)>,
    async_max: u64,
    /// Pages `lose_async` marked, per object, for the next `sync`.
    lost: HashMap<u64, Vec<u64>>,
}

impl MemoryBackend {
    pub fn new(capacity: u64) -> MemoryBackend {
        MemoryBackend {
            inner: Arc::new(Mutex::new(Memory {
                capacity,
                async_max: 4,
                ..Default::default()
            })),
        }
    }
}

impl MemoryBackend {
    /// Make pages of `object` behave like pages whose async write failed everywhere: they
    /// are dropped (reads answer `error`) and reported by the next `sync`.
    pub fn lose_async(&self, object: u64, pages: &[u64]) {
        let mut m = self.inner.lock();
        if let Some(o) = m.objects.get_mut(&object) {
            for p in pages {
                o.insert(*p, Vec::new());
            }
        }
        m.lost.entry(object).or_default().extend_from_slice(pages);
    }
}

impl Memory {
    fn used(&self) -> u64 {
        self.objects.values().map(|o| o.len() as u64).sum()
    }
}

impl Backend for MemoryBackend {
    fn stats(&self) -> PagerStats {
        let m = self.inner.lock();
        let used = m.used();
        PagerStats {
            page_size: PAGE_SIZE as u64,
            engine: "memory".into(),
            total_pages: m.capacity,
            used_pages: used,
            free_pages: m.capacity - used,
            objects: m.objects.len() as u64,
            devices: m
                .devices
                .iter()
                .map(|(p, prio)| pager::DeviceStats {
                    path: p.clone(),
                    priority: *prio,
                    kind: "file".into(),
                    ..Default::default()
                })
                .collect(),
            tunables: pager::Tunables {
                swap_async_max: m.async_max,
                nswbuf: 128,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn swapon(&self, path: &Path, priority: i32, _discard: bool) -> Result<(), BackendError> {
        let mut m = self.inner.lock();
        let p = path.display().to_string();
        if m.devices.iter().any(|(d, _)| *d == p) {
            return Err(BackendError::Failed(format!("{p}: already on")));
        }
        m.devices.push((p, priority));
        Ok(())
    }

    fn swapoff(&self, path: &Path, _force: bool) -> Result<u64, BackendError> {
        let mut m = self.inner.lock();
        let p = path.display().to_string();
        let before = m.devices.len();
        m.devices.retain(|(d, _)| *d != p);
        if m.devices.len() == before {
            return Err(BackendError::NotFound(format!(
                "{p}: not a swap device that is on"
            )));
        }
        Ok(0)
    }

    fn set_swap_async_max(&self, n: u64) -> u64 {
        let mut m = self.inner.lock();
        m.async_max = n.clamp(1, 64);
        m.async_max
    }

    fn create(&self) -> Result<Arc<dyn BackendObject>, BackendError> {
        let mut m = self.inner.lock();
        m.next += 1;
        let id = m.next;
        m.objects.insert(id, HashMap::new());
        Ok(Arc::new(MemoryObject {
            id,
            mem: Arc::clone(&self.inner),
        }))
    }
}

impl Drop for MemoryObject {
    fn drop(&mut self) {
        let mut m = self.mem.lock();
        m.objects.remove(&self.id);
        m.lost.remove(&self.id);
    }
}

impl BackendObject for MemoryObject {
    fn id(&self) -> u64 {
        self.id
    }

    /// Final at once: `landed` runs before it returns.
    fn putpages(&self, pindex: u64, data: &[u8], _sync: bool, landed: Landed) -> Vec<PutStatus> {
        let mut m = self.mem.lock();
        let mut out = Vec::new();
        for (i, page) in data.chunks(PAGE_SIZE).enumerate() {
            let full = m.used() >= m.capacity;
            let Some(o) = m.objects.get_mut(&self.id) else {
                out.push(PutStatus::Error);
                continue;
            };
            let key = pindex + i as u64;
            if full && !o.contains_key(&key) {
                out.push(PutStatus::Fail);
            } else {
                o.insert(key, page.to_vec());
                out.push(PutStatus::Ok);
            }
        }
        drop(m);
        landed();
        out
    }

    fn getpages(&self, pindex: u64, out: &mut [u8]) -> (Vec<GetStatus>, Vec<PageError>) {
        let m = self.mem.lock();
        let st = out
            .chunks_mut(PAGE_SIZE)
            .enumerate()
            .map(|(i, page)| {
                match m
                    .objects
                    .get(&self.id)
                    .and_then(|o| o.get(&(pindex + i as u64)))
                {
                    Some(p) if p.is_empty() => GetStatus::Error,
                    Some(p) => {
                        page.copy_from_slice(p);
                        GetStatus::Ok
                    }
                    None => GetStatus::Absent,
                }
            })
            .collect();
        (st, Vec::new())
    }

    fn haspage(&self, pindex: u64) -> (bool, u64, u64) {
        let m = self.mem.lock();
        let Some(o) = m.objects.get(&self.id) else {
            return (false, 0, 0);
        };
        if !o.contains_key(&pindex) {
            return (false, 0, 0);
        }
        let before = (1..=pindex)
            .take_while(|d| o.contains_key(&(pindex - d)))
            .count() as u64;
        let after = (1..).take_while(|d| o.contains_key(&(pindex + d))).count() as u64;
        (true, before, after)
    }

    fn sync(&self, max_runs: usize) -> (Vec<u64>, bool) {
        let mut m = self.mem.lock();
        let Some(lost) = m.lost.get_mut(&self.id) else {
            return (Vec::new(), false);
        };
        lost.sort_unstable();
        lost.dedup();
        let taken = take_runs(lost, max_runs);
        (taken, !lost.is_empty())
    }

    fn swapped_pages(&self) -> u64 {
        self.mem
            .lock()
            .objects
            .get(&self.id)
            .map_or(0, |o| o.len() as u64)
    }

    fn freespace(&self, pindex: u64, count: u64) {
        if let Some(o) = self.mem.lock().objects.get_mut(&self.id) {
            o.retain(|p, _| !(pindex..pindex.saturating_add(count)).contains(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::take_runs;

    #[test]
    fn take_runs_cuts_at_a_run_boundary() {
        let mut pages = vec![1, 2, 3, 7, 8, 10];
        assert_eq!(take_runs(&mut pages, 2), vec![1, 2, 3, 7, 8]);
        assert_eq!(pages, vec![10]);
        assert_eq!(take_runs(&mut pages, 2), vec![10]);
        assert!(pages.is_empty());
        let mut pages = vec![4, 5];
        assert!(take_runs(&mut pages, 0).is_empty());
        assert_eq!(pages, vec![4, 5]);
    }
}
