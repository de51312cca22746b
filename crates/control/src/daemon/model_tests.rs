//! The daemon over the real pager against the daemon over the in-memory model: random data
//! requests through `session::handle`, every reply compared. Swap areas are plain files.

use std::sync::Arc;

use proptest::prelude::*;

use device::PAGE_SIZE;

use super::backend::{Backend, MemoryBackend};
use super::pager_backend::{PagerBackend, PagerSettings};
use super::peer::Peer;
use super::requests;
use super::shared::Shared;
use crate::config::Config;
use crate::proto::{Reply, Request};

#[derive(Debug, Clone)]
enum Op {
    Create(bool),
    Destroy(usize),
    Put {
        obj: usize,
        pindex: u64,
        count: u32,
        fill: u8,
        sync: bool,
    },
    Get {
        obj: usize,
        pindex: u64,
        count: u32,
    },
    Has {
        obj: usize,
        pindex: u64,
    },
    Free {
        obj: usize,
        pindex: u64,
        count: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => any::<bool>().prop_map(Op::Create),
        1 => (0usize..4).prop_map(Op::Destroy),
        5 => (0usize..4, 0u64..64, 1u32..9, any::<u8>(), any::<bool>())
            .prop_map(|(obj, pindex, count, fill, sync)| Op::Put { obj, pindex, count, fill, sync }),
        4 => (0usize..4, 0u64..64, 1u32..9).prop_map(|(obj, pindex, count)| Op::Get { obj, pindex, count }),
        2 => (0usize..4, 0u64..70).prop_map(|(obj, pindex)| Op::Has { obj, pindex }),
        1 => (0usize..4, 0u64..64, 1u64..16).prop_map(|(obj, pindex, count)| Op::Free { obj, pindex, count }),
    ]
}

fn shared(backend: Arc<dyn Backend>) -> Shared {
    Shared::new(backend, Config::default(), 0)
}

/// The reply with what may differ between pager and model removed: `has_page`'s neighbour
/// counts depend on where the allocator put the pages.
fn comparable(r: Reply) -> Reply {
    match r {
        Reply::Has { has, .. } => Reply::Has {
            has,
            before: 0,
            after: 0,
        },
        r => r,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_daemon_over_the_pager_answers_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::Builder::new().prefix("swapkit-model").tempdir().unwrap();
        let area = dir.path().join("swapkit-area.img");
        device::mkswap::mkswap(&area, &device::mkswap::MkswapOptions { pages: Some(1024), ..Default::default() }).unwrap();
        let real_backend = Arc::new(PagerBackend::start(&PagerSettings::default()).unwrap());
        real_backend.swapon(&area, 0, false).unwrap();
        let real = shared(real_backend.clone());
        let model = shared(Arc::new(MemoryBackend::new(1 << 20)));
        let peer = Peer { uid: 1000, pid: 1, conn: 1 };
        let mut objects: Vec<u64> = Vec::new();
        for op in ops {
            let id = |i: usize| objects.get(i % objects.len().max(1)).copied().unwrap_or(999);
            let (req, data) = match op {
                Op::Create(named) => (Request::Create { handle: named.then(|| format!("h{}", objects.len() % 2)) }, vec![]),
                Op::Destroy(i) => (Request::Destroy { object: id(i) }, vec![]),
                Op::Put { obj, pindex, count, fill, sync } => (
                    Request::PutPages { object: id(obj), pindex, count, sync },
                    (0..count as usize * PAGE_SIZE).map(|b| fill.wrapping_add((b / 512) as u8)).collect(),
                ),
                Op::Get { obj, pindex, count } => (Request::GetPages { object: id(obj), pindex, count }, vec![]),
                Op::Has { obj, pindex } => (Request::HasPage { object: id(obj), pindex }, vec![]),
                Op::Free { obj, pindex, count } => (Request::FreeSpace { object: id(obj), pindex, count }, vec![]),
            };
            let (r1, d1) = requests::handle(&real, &peer, req.clone(), data.clone());
            let (r2, d2) = requests::handle(&model, &peer, req.clone(), data);
            if let (Request::Destroy { object }, Reply::Ok) = (&req, &r1) {
                objects.retain(|o| o != object);
            }
            if let Reply::Object { object } = r1
                && !objects.contains(&object)
            {
                objects.push(object);
            }
            prop_assert_eq!(comparable(r1), comparable(r2), "after {:?}", req);
            prop_assert!(d1 == d2, "page data differs after {:?}", req);
        }
        // Every object destroyed: no swap block may stay allocated.
        for o in objects {
            let (r, _) = requests::handle(&real, &peer, Request::Destroy { object: o }, vec![]);
            prop_assert_eq!(r, Reply::Ok);
        }
        // An async write's completion lets go of its object a moment after `wait_async`
        // returns, so the last blocks come back shortly after: wait for them, boundedly.
        real_backend.flush();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while real_backend.stats().used_pages != 0 && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        prop_assert_eq!(real_backend.stats().used_pages, 0, "blocks leaked");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any request at all, with any data, from the owner or a stranger: an answer, never a
    /// panic, over both backends.
    #[test]
    fn any_request_gets_an_answer_and_never_a_panic(
        reqs in proptest::collection::vec(
            (crate::proto::tests::any_request(), 0usize..3, any::<bool>()), 1..20),
    ) {
        let dir = tempfile::Builder::new().prefix("swapkit-fuzz").tempdir().unwrap();
        let area = dir.path().join("swapkit-area.img");
        device::mkswap::mkswap(&area, &device::mkswap::MkswapOptions { pages: Some(256), ..Default::default() }).unwrap();
        let real_backend = Arc::new(PagerBackend::start(&PagerSettings::default()).unwrap());
        real_backend.swapon(&area, 0, false).unwrap();
        let backends: [Arc<dyn Backend>; 2] = [real_backend, Arc::new(MemoryBackend::new(100))];
        for b in backends {
            let s = shared(b);
            // Objects 1 and 2 exist, so ids in requests sometimes hit.
            for _ in 0..2 {
                requests::handle(&s, &Peer { uid: 1000, pid: 1, conn: 1 }, Request::Create { handle: None }, vec![]);
            }
            for (req, pages, stranger) in &reqs {
                let mut req = req.clone();
                // Swapping on arbitrary paths is not what this test is about.
                if matches!(req, Request::SwapOn { .. } | Request::SwapOff { .. }) {
                    req = Request::Stats { frag: false };
                }
                // Bias toward requests that pass validation: known objects, indices near
                // and below the limit, data that matches the count.
                match &mut req {
                    Request::PutPages { object, pindex, count, .. } => {
                        *object %= 4;
                        *pindex %= crate::proto::MAX_PINDEX + 64;
                        *count = *pages as u32;
                    }
                    Request::GetPages { object, pindex, count } => {
                        *object %= 4;
                        *pindex %= crate::proto::MAX_PINDEX + 64;
                        *count %= 70;
                    }
                    Request::HasPage { object, pindex } | Request::FreeSpace { object, pindex, .. } => {
                        *object %= 4;
                        *pindex %= crate::proto::MAX_PINDEX + 64;
                    }
                    _ => {}
                }
                let uid = if *stranger { 1001 } else { 1000 };
                let _ = requests::handle(&s, &Peer { uid, pid: 1, conn: 1 }, req, vec![0u8; pages * PAGE_SIZE]);
            }
        }
    }
}
