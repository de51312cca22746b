//! `sync` over a real socket with the in-memory backend: failed async writes are reported
//! once, per object or per connection, as runs, in several replies when there are many; the
//! pages read as errors, never as data.

use std::sync::Arc;

use device::PAGE_SIZE;

use super::tests::start;
use super::*;
use crate::client::{Client, ClientError};
use crate::proto::{ErrorKind, GetStatus, MAX_SYNC_RUNS};

#[test]
fn sync_reports_each_lost_page_once_and_the_pages_read_as_errors() {
    let backend = Arc::new(MemoryBackend::new(1000));
    let d = start(backend.clone());
    let mut c = Client::connect(&d.socket).unwrap();
    // One daemon, one creator: wire ids and backend ids are handed out alike.
    let a = c.create(None).unwrap();
    let b = c.create(Some("named")).unwrap();
    for o in [a, b] {
        c.putpages(o, 0, vec![7u8; 8 * PAGE_SIZE], false).unwrap();
    }
    assert!(c.sync(None).unwrap().is_empty());
    backend.lose_async(a, &[1, 2, 3, 6]);
    backend.lose_async(b, &[0]);
    assert_eq!(c.sync(Some(b)).unwrap(), vec![(b, 0)]);
    assert_eq!(c.sync(None).unwrap(), vec![(a, 1), (a, 2), (a, 3), (a, 6)]);
    assert!(c.sync(None).unwrap().is_empty(), "reported twice");
    let (st, data) = c.getpages(a, 0, 8).unwrap();
    assert_eq!(st[0], GetStatus::Ok);
    assert_eq!(st[1], GetStatus::Error);
    assert_eq!(st[6], GetStatus::Error);
    assert!(data[PAGE_SIZE..4 * PAGE_SIZE].iter().all(|b| *b == 0));
    // A page written again is data again.
    c.putpages(a, 1, vec![9u8; PAGE_SIZE], true).unwrap();
    let (st, data) = c.getpages(a, 1, 1).unwrap();
    assert_eq!((st[0], data[0]), (GetStatus::Ok, 9));
}

#[test]
fn sync_without_an_object_covers_this_connections_objects_only() {
    let backend = Arc::new(MemoryBackend::new(1000));
    let d = start(backend.clone());
    let mut c1 = Client::connect(&d.socket).unwrap();
    let mut c2 = Client::connect(&d.socket).unwrap();
    let o1 = c1.create(None).unwrap();
    let o2 = c2.create(None).unwrap();
    backend.lose_async(o1, &[4]);
    backend.lose_async(o2, &[5]);
    assert_eq!(c2.sync(None).unwrap(), vec![(o2, 5)]);
    assert_eq!(c1.sync(None).unwrap(), vec![(o1, 4)]);
    // An object that does not exist (or is another uid's: the same answer) is not found.
    assert!(matches!(
        c1.sync(Some(999)),
        Err(ClientError::Daemon {
            kind: ErrorKind::NotFound,
            ..
        })
    ));
}

#[test]
fn many_lost_runs_come_in_several_replies_and_none_is_dropped() {
    let backend = Arc::new(MemoryBackend::new(100_000));
    let d = start(backend.clone());
    let mut c = Client::connect(&d.socket).unwrap();
    let o = c.create(None).unwrap();
    // Every other page: as many runs as pages.
    let lost: Vec<u64> = (0..(MAX_SYNC_RUNS as u64 + 10)).map(|i| 2 * i).collect();
    backend.lose_async(o, &lost);
    let (first, more) = c.sync_once(Some(o)).unwrap();
    assert_eq!(first.len(), MAX_SYNC_RUNS);
    assert!(more);
    let rest = c.sync(Some(o)).unwrap();
    assert_eq!(rest.len(), 10);
    assert_eq!(rest[0], (o, 2 * MAX_SYNC_RUNS as u64));
    assert!(!c.sync_once(Some(o)).unwrap().1);
}
