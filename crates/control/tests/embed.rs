//! A program that embeds the pager serves the control socket from its own process with this
//! crate alone: its own pager (a file area), its own objects beside the clients', the daemon
//! on a thread of its own, stopped by the program. On both engines.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use control::client::Client;
use control::daemon::pager_backend::PagerBackend;
use control::daemon::{Daemon, DaemonOptions};
use control::proto::{GetStatus, PutStatus};
use device::PAGE_SIZE;
use device::mkswap::{MkswapOptions, mkswap};
use pager::{PageResult, Pager, PagerConfig, PutMode, SwaponOptions};

#[test]
fn an_embedder_serves_its_own_pager_and_keeps_using_it() {
    for engine in [device::EngineKind::ThreadPool, device::EngineKind::IoUring] {
        let dir = tempfile::Builder::new()
            .prefix("swapkit-embed")
            .tempdir()
            .unwrap();
        let area = dir.path().join("area.img");
        let opts = MkswapOptions {
            pages: Some(512),
            ..Default::default()
        };
        mkswap(&area, &opts).unwrap();
        let cfg = PagerConfig {
            engine,
            ..Default::default()
        };
        let Ok(pager) = Pager::new(cfg) else {
            println!("skipped {engine:?}: the engine does not start here");
            continue;
        };
        pager.swapon(&area, SwaponOptions::default()).unwrap();

        // The program's own object, paged out before and after the daemon starts.
        let mine = pager.alloc_object(Some("embedder"), 8);
        let page = vec![0x5au8; PAGE_SIZE];
        assert_eq!(
            pager.putpages(&mine, 0, &page, PutMode::Sync),
            vec![PageResult::Ok]
        );
        let socket = dir.path().join("pager.sock");
        control::daemon::log::to_test_harness();
        let server = Daemon::bind(DaemonOptions::new(&socket))
            .unwrap()
            .spawn(Arc::new(PagerBackend::new(pager.clone())))
            .unwrap();

        // A client sees the program's pager: its area, its object, its pages.
        let mut c = Client::connect(server.socket()).unwrap();
        let stats = c.stats().unwrap();
        assert_eq!(stats.engine, pager.stats().engine);
        assert_eq!(stats.devices.len(), 1);
        assert_eq!(stats.devices[0].path, area.display().to_string());
        assert_eq!(stats.used_pages, 1);

        // The client's pages go to the same swap, and come back.
        let theirs = c.create(None).unwrap();
        let st = c
            .putpages(theirs, 0, vec![7u8; 4 * PAGE_SIZE], true)
            .unwrap();
        assert_eq!(st, vec![PutStatus::Ok; 4]);
        assert_eq!(pager.stats().used_pages, 5);
        let (st, data) = c.getpages(theirs, 0, 4).unwrap();
        assert_eq!(st, vec![GetStatus::Ok; 4]);
        assert!(data.iter().all(|b| *b == 7));

        // The program goes on with its own object meanwhile.
        assert_eq!(
            pager.putpages(&mine, 1, &page, PutMode::Sync),
            vec![PageResult::Ok]
        );
        let mut back = vec![0u8; PAGE_SIZE];
        pager.getpages(&mine, 1, 0, 0, &mut back).unwrap();
        assert_eq!(back, page);

        // Stopping the server frees what its clients held and removes the socket; the
        // program's pager and object stay.
        drop(c);
        server.stop().unwrap();
        assert!(!socket.exists());
        assert_eq!(pager.stats().used_pages, 2);
        pager.verify().unwrap();
    }
}
