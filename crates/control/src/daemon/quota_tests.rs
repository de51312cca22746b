//! `max_swap_pages_per_uid` with async puts in flight: a backend whose async writes land
//! only when the test says so, as the pager's do when their completions come.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use device::PAGE_SIZE;

use super::backend::{Backend, BackendError, BackendObject, Landed, MemoryBackend};
use super::limits::Limits;
use super::peer::Peer;
use super::requests;
use super::shared::Shared;
use crate::config::Config;
use crate::proto::{FailReason, GetStatus, PageError, PutStatus, Reply, Request};

/// The async puts not landed yet, in order.
type Queue = Arc<Mutex<Vec<Box<dyn FnOnce() + Send>>>>;

/// Async puts wait in `queue` until [`Gated::land`]: until then the pages are not the
/// object's (as a pager page is not before its write completes).
struct Gated {
    inner: MemoryBackend,
    queue: Queue,
}

struct GatedObject {
    inner: Arc<dyn BackendObject>,
    queue: Queue,
}

impl Gated {
    fn land(&self) {
        let queued = std::mem::take(&mut *self.queue.lock());
        for f in queued {
            f();
        }
    }
}

impl Backend for Gated {
    fn stats(&self) -> pager::PagerStats {
        self.inner.stats()
    }
    fn swapon(&self, p: &Path, prio: i32, d: bool) -> Result<(), BackendError> {
        self.inner.swapon(p, prio, d)
    }
    fn swapoff(&self, p: &Path, force: bool) -> Result<u64, BackendError> {
        self.inner.swapoff(p, force)
    }
    fn set_swap_async_max(&self, n: u64) -> u64 {
        self.inner.set_swap_async_max(n)
    }
    fn create(&self) -> Result<Arc<dyn BackendObject>, BackendError> {
        Ok(Arc::new(GatedObject {
            inner: self.inner.create()?,
            queue: Arc::clone(&self.queue),
        }))
    }
}

impl BackendObject for GatedObject {
    fn id(&self) -> u64 {
        self.inner.id()
    }
    fn putpages(&self, pindex: u64, data: &[u8], sync: bool, landed: Landed) -> Vec<PutStatus> {
        if sync {
            return self.inner.putpages(pindex, data, sync, landed);
        }
        let n = data.len() / PAGE_SIZE;
        let (inner, data) = (Arc::clone(&self.inner), data.to_vec());
        self.queue.lock().push(Box::new(move || {
            inner.putpages(pindex, &data, false, landed);
        }));
        vec![PutStatus::Ok; n]
    }
    fn getpages(&self, pindex: u64, out: &mut [u8]) -> (Vec<GetStatus>, Vec<PageError>) {
        self.inner.getpages(pindex, out)
    }
    fn haspage(&self, pindex: u64) -> (bool, u64, u64) {
        self.inner.haspage(pindex)
    }
    fn freespace(&self, pindex: u64, count: u64) {
        self.inner.freespace(pindex, count)
    }
    fn swapped_pages(&self) -> u64 {
        self.inner.swapped_pages()
    }
    fn sync(&self, max_runs: usize) -> (Vec<u64>, bool) {
        self.inner.sync(max_runs)
    }
}

const QUOTA: u64 = 100;

/// What a uid holds on swap once everything in flight has landed.
fn held(s: &Shared, peer: &Peer, objects: &[u64]) -> u64 {
    objects
        .iter()
        .map(|&o| {
            let r = requests::handle(
                s,
                peer,
                Request::GetPages {
                    object: o,
                    pindex: 0,
                    count: 64,
                },
                vec![],
            );
            let Reply::Get { pages, .. } = r.0 else {
                panic!("{r:?}")
            };
            let more = requests::handle(
                s,
                peer,
                Request::GetPages {
                    object: o,
                    pindex: 64,
                    count: 64,
                },
                vec![],
            );
            let Reply::Get { pages: more, .. } = more.0 else {
                panic!("{more:?}")
            };
            pages
                .iter()
                .chain(&more)
                .filter(|p| **p == GetStatus::Ok)
                .count() as u64
        })
        .sum()
}

/// Four async puts of 64 pages by one uid with a quota of 100, on two connections, before
/// any lands: the quota is counted as they are admitted, so 64 + 36 are taken and the rest
/// refused (`quota`), and once all have landed the uid holds 100 pages, not 256. Before,
/// the quota was checked against the pages already landed, so every put passed and the
/// uid held its in-flight pages beyond the quota (256 of 100).
#[test]
fn a_uid_cannot_exceed_its_swap_quota_with_async_puts_in_flight() {
    let gated = Arc::new(Gated {
        inner: MemoryBackend::new(1 << 20),
        queue: Arc::default(),
    });
    let config = Config {
        limits: Limits {
            max_swap_pages_per_uid: Some(QUOTA),
            ..Limits::default()
        },
        ..Config::default()
    };
    let s = Shared::new(gated.clone(), config, 0);
    let mut objects = Vec::new();
    let mut refused = 0;
    for conn in [1, 2] {
        let peer = Peer {
            uid: 1000,
            pid: 1,
            conn,
        };
        let Reply::Object { object } =
            requests::handle(&s, &peer, Request::Create { handle: None }, vec![]).0
        else {
            panic!("create")
        };
        objects.push(object);
        for pindex in [0, 64] {
            let put = Request::PutPages {
                object,
                pindex,
                count: 64,
                sync: false,
            };
            let (r, _) = requests::handle(&s, &peer, put, vec![1u8; 64 * PAGE_SIZE]);
            let Reply::Put { pages, reason } = r else {
                panic!("{r:?}")
            };
            let failed = pages.iter().filter(|p| **p == PutStatus::Fail).count();
            assert_eq!(reason.is_some(), failed > 0);
            assert!(reason.is_none_or(|r| r == FailReason::Quota));
            refused += failed as u64;
        }
    }
    gated.land();
    let peer = Peer {
        uid: 1000,
        pid: 1,
        conn: 1,
    };
    let holds = held(&s, &peer, &objects[..1]) + held(&s, &Peer { conn: 2, ..peer }, &objects[1..]);
    println!("quota {QUOTA}: held {holds} after landing, {refused} of 256 refused");
    assert_eq!(holds, QUOTA, "the uid holds more than its quota");
    assert_eq!(refused, 256 - QUOTA);
    let usage = s.registry.uids.usage(None, |_| false, &s.limits());
    assert_eq!(usage[0].swap_pages, QUOTA, "{usage:?}");
}
