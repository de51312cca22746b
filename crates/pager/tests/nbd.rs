//! Remote (NBD) areas in the pager, against `nbdkit memory` on Unix sockets and loopback
//! TCP: swapon, paging with verification, swapoff draining remote → local and local →
//! remote, discard at swapon, the same export refused twice, and a dead remote area
//! removed with `force` losing its pages. On both engines: the local areas use the engine;
//! a remote area has its own I/O path (its connections), whichever engine runs.
//!
//! Skips, saying so, where libnbd or nbdkit is missing (`.ci/run` installs them).

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::time::Duration;

use common::{ENGINES, area, page, pager_on, pages, tempdir};
use device::PAGE_SIZE;
use device::nbd::server::{self, Backend, Listen, Server};
use pager::{DeviceState, PageResult, PagerError, PutMode, SwapoffOptions, SwaponOptions};

fn can_run() -> bool {
    let why = server::missing(&["nbdkit"]);
    if let Some(why) = &why {
        println!("SKIP: {why}");
    }
    why.is_none()
}

/// An `nbdkit memory` export of `pages` pages with a swap header.
fn remote(listen: Listen, pages: u64) -> Server {
    let s = Server::start(
        Backend::NbdkitMemory {
            bytes: pages * PAGE_SIZE as u64,
        },
        listen,
        "swap",
        None,
    )
    .unwrap();
    device::mkswap(s.uri(), &device::MkswapOptions::default()).unwrap();
    s
}

fn check_all(p: &pager::Pager, obj: &pager::Object, tag0: u64, n: u64) {
    let mut out = vec![0u8; PAGE_SIZE];
    for i in 0..n {
        p.getpages(obj, i, 0, 0, &mut out).unwrap();
        assert_eq!(out, page(tag0 + i), "page {i}");
    }
}

#[test]
fn paging_and_swapoff_both_ways_between_remote_and_local() {
    if !can_run() {
        return;
    }
    for engine in ENGINES {
        let dir = tempdir();
        let port = server::free_port().unwrap();
        let listens = [
            Listen::Unix(dir.path().join("swapkit-nbd.sock")),
            Listen::Tcp(([127, 0, 0, 1], port).into()),
        ];
        for listen in listens {
            let s = remote(listen, 256);
            let p = pager_on(engine, 0);
            let local = p
                .swapon(&area(dir.path(), "local", 256), SwaponOptions::default())
                .unwrap();
            // Higher priority: the remote area is filled first.
            let opts = SwaponOptions {
                priority: 5,
                discard: true,
                ..SwaponOptions::default()
            };
            let uri = s.uri();
            let r = p.swapon(uri.as_ref(), opts).unwrap();
            assert_eq!(p.device_id(uri.as_ref()), Some(r));
            assert_eq!(p.area(r).unwrap().stats().discards, 1, "discard at swapon");
            let obj = p.alloc_object(None, 200);
            assert_eq!(
                p.putpages(&obj, 0, &pages(1000, 150), PutMode::Sync),
                vec![PageResult::Ok; 150]
            );
            let st = p.stats();
            let dev = st.devices.iter().find(|d| d.id == r.0).unwrap();
            assert_eq!(dev.kind, "nbd");
            assert_eq!(dev.path, uri);
            assert_eq!(
                dev.used_pages, 150,
                "{engine:?}: the remote area comes first"
            );
            check_all(&p, &obj, 1000, 150);
            // Remote → local.
            let report = p
                .swapoff(r, SwapoffOptions::default(), &mut |_, _| {})
                .unwrap();
            assert_eq!(report.moved, 150);
            assert_eq!(report.lost, 0);
            check_all(&p, &obj, 1000, 150);
            // Local → remote (the export still holds its header).
            let r = p.swapon(uri.as_ref(), SwaponOptions::default()).unwrap();
            let report = p
                .swapoff(local, SwapoffOptions::default(), &mut |_, _| {})
                .unwrap();
            assert_eq!(report.moved, 150);
            check_all(&p, &obj, 1000, 150);
            let st = p.stats();
            assert_eq!(st.devices.len(), 1);
            assert_eq!(st.devices[0].id, r.0);
            p.verify().unwrap();
        }
    }
}

#[test]
fn the_same_export_is_refused_twice_by_any_uri() {
    if !can_run() {
        return;
    }
    let dir = tempdir();
    let s = remote(Listen::Unix(dir.path().join("swapkit-twice.sock")), 64);
    let p = pager_on(device::EngineKind::ThreadPool, 0);
    p.swapon(s.uri().as_ref(), SwaponOptions::default())
        .unwrap();
    let other = format!("{}&connections=1", s.uri());
    let err = p
        .swapon(other.as_ref(), SwaponOptions::default())
        .unwrap_err();
    assert!(matches!(err, PagerError::AlreadyOn { .. }), "{err}");
}

/// Issue #22: every other spelling of an export that is on is refused in one line naming
/// the area already on: the host by name, in short form or IPv4-mapped; the export name
/// percent-encoded; the socket path with `//`, `/./` or through a symlink; and a relay in
/// front of the same server, which no URI can see through, by the header's UUID. On both
/// engines.
#[test]
fn every_alias_of_an_export_that_is_on_is_refused_naming_the_area() {
    if !can_run() {
        return;
    }
    for engine in ENGINES {
        let dir = tempdir();
        let port = server::free_port().unwrap();
        let tcp = remote(Listen::Tcp(([127, 0, 0, 1], port).into()), 64);
        let sock = dir.path().join("swapkit-alias.sock");
        let unix = remote(Listen::Unix(sock.clone()), 64);
        let link = dir.path().join("swapkit-link.sock");
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        let relay =
            server::DelayRelay::start(([127, 0, 0, 1], port).into(), Duration::ZERO).unwrap();
        let p = pager_on(engine, 0);
        let (t, u) = (tcp.uri(), unix.uri());
        p.swapon(t.as_ref(), SwaponOptions::default()).unwrap();
        p.swapon(u.as_ref(), SwaponOptions::default()).unwrap();
        let d = dir.path().display();
        let aliases = [
            (format!("nbd://localhost:{port}/swap"), &t),
            (format!("nbd://127.1:{port}/swap"), &t),
            (format!("nbd://[::ffff:127.0.0.1]:{port}/swap"), &t),
            (format!("nbd://127.0.0.1:{port}/%73wap"), &t),
            (
                format!("nbd+unix:///swap?socket={d}//swapkit-alias.sock"),
                &u,
            ),
            (
                format!("nbd+unix:///swap?socket={d}/./swapkit-alias.sock"),
                &u,
            ),
            (format!("nbd+unix:///swap?socket={}", link.display()), &u),
            (format!("nbd://127.0.0.1:{}/swap", relay.port()), &t),
        ];
        for (alias, on) in &aliases {
            let err = p
                .swapon(alias.as_ref(), SwaponOptions::default())
                .unwrap_err();
            let line = err.to_string();
            assert!(
                matches!(
                    err,
                    PagerError::AlreadyOn { .. } | PagerError::SameUuid { .. }
                ),
                "{engine:?} {alias}: {line}"
            );
            assert!(line.contains(&format!("in use as {on}")), "{line}");
            assert_eq!(line.lines().count(), 1, "{line}");
        }
        assert_eq!(p.stats().devices.len(), 2, "{engine:?}");
    }
}

#[test]
fn a_dead_remote_area_fails_and_force_off_reports_its_pages_lost() {
    if !can_run() {
        return;
    }
    for engine in ENGINES {
        let dir = tempdir();
        let mut s = remote(Listen::Unix(dir.path().join("swapkit-dead.sock")), 128);
        let p = pager_on(engine, 0);
        p.swapon(&area(dir.path(), "local", 128), SwaponOptions::default())
            .unwrap();
        let uri = format!("{}&request-timeout=1&dead-after=1", s.uri());
        let opts = SwaponOptions {
            priority: 5,
            ..SwaponOptions::default()
        };
        let r = p.swapon(uri.as_ref(), opts).unwrap();
        let obj = p.alloc_object(None, 64);
        p.putpages(&obj, 0, &pages(7, 40), PutMode::Sync);
        s.kill();
        std::thread::sleep(Duration::from_millis(2500));
        let mut out = vec![0u8; PAGE_SIZE];
        let err = p.getpages(&obj, 3, 0, 0, &mut out).unwrap_err();
        assert!(matches!(err, PagerError::Read { .. }), "{err}");
        let state = |p: &pager::Pager| {
            let st = p.stats();
            st.devices.iter().find(|d| d.id == r.0).unwrap().state
        };
        assert_eq!(state(&p), DeviceState::Failed, "{engine:?}");
        // Writes go to the local area meanwhile.
        assert_eq!(
            p.putpages(&obj, 50, &pages(90, 4), PutMode::Sync),
            vec![PageResult::Ok; 4]
        );
        let err = p
            .swapoff(r, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap_err();
        assert!(matches!(err, PagerError::DeviceFailed { .. }), "{err}");
        let report = p
            .swapoff(r, SwapoffOptions { force: true }, &mut |_, _| {})
            .unwrap();
        assert_eq!(report.lost, 40, "{engine:?}");
        let err = p.getpages(&obj, 3, 0, 0, &mut out).unwrap_err();
        assert!(matches!(err, PagerError::Dropped { .. }), "{err}");
        p.getpages(&obj, 50, 0, 0, &mut out).unwrap();
        assert_eq!(out, page(90));
    }
}

#[test]
fn a_remote_area_whose_server_is_away_takes_no_writes_and_is_back_once_it_returns() {
    if !can_run() {
        return;
    }
    for engine in ENGINES {
        let dir = tempdir();
        let file = dir.path().join("swapkit-persist.img");
        std::fs::File::create(&file)
            .unwrap()
            .set_len(512 * PAGE_SIZE as u64)
            .unwrap();
        let mut s = Server::start(
            Backend::NbdkitFile { file },
            Listen::Unix(dir.path().join("swapkit-back.sock")),
            "",
            None,
        )
        .unwrap();
        let uri = format!("{}&request-timeout=0.3&dead-after=60", s.uri());
        device::mkswap(&uri, &device::MkswapOptions::default()).unwrap();
        let p = pager_on(engine, 0);
        p.swapon(&area(dir.path(), "local", 512), SwaponOptions::default())
            .unwrap();
        let opts = SwaponOptions {
            priority: 5,
            ..SwaponOptions::default()
        };
        let r = p.swapon(uri.as_ref(), opts).unwrap();
        let events = p.subscribe();
        let obj = p.alloc_object(None, 256);
        p.putpages(&obj, 0, &pages(1, 16), PutMode::Sync);
        let state = |p: &pager::Pager| {
            let st = p.stats();
            let d = st.devices.iter().find(|d| d.id == r.0).unwrap();
            (d.state, d.used_pages)
        };
        s.kill();
        // Writes meant for it land on the local area at once (a write racing the break
        // fails there and is retried): none waits for the server, and it is shown
        // reconnecting, with the cause as its last error.
        for k in 0..4 {
            let at = 16 + 8 * k;
            assert_eq!(
                p.putpages(&obj, at, &pages(100 + at, 8), PutMode::Sync),
                vec![PageResult::Ok; 8]
            );
        }
        assert!(
            matches!(state(&p).0, DeviceState::Reconnecting { .. }),
            "{engine:?}: {:?}",
            state(&p)
        );
        let st = p.stats();
        let d = st.devices.iter().find(|d| d.id == r.0).unwrap();
        let last = d.last_error.as_ref().expect("no last error");
        eprintln!("{engine:?}: last error {last:?}");
        assert!(
            last.what.contains("connection lost: EOF"),
            "{engine:?}: {last:?}"
        );
        s.restart().unwrap();
        // Its connection is made again in the background and new pages go to it again (it
        // has the higher priority).
        let mut back = false;
        for i in 0..100 {
            p.putpages(&obj, 100 + i, &page(500 + i), PutMode::Sync);
            if state(&p).0 == DeviceState::Active {
                back = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            back,
            "{engine:?}: still out of service after the server returned"
        );
        let seen: Vec<_> = events.try_iter().collect();
        for want in ["DeviceDisconnected", "DeviceReconnected"] {
            assert!(
                seen.iter().any(|e| format!("{e:?}").starts_with(want)),
                "{engine:?}: no {want} event in {seen:?}"
            );
        }
        let used = state(&p).1;
        p.putpages(&obj, 200, &pages(900, 16), PutMode::Sync);
        assert!(state(&p).1 >= used + 16, "{engine:?}: no new pages on it");
        check_all(&p, &obj, 1, 16);
        p.verify().unwrap();
    }
}
