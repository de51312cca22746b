//! `swapctl run`'s per-process view (issue 25): a connection that reports is shown with its
//! peer's pid and uid and what its connection holds, to its uid and to root, until it closes;
//! a hostile report is refused in one line and changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::peer::Peer;
use super::requests;
use super::shared::Shared;
use super::tests::start;
use super::*;
use crate::client::Client;
use crate::proto::{MAX_COMMAND_LEN, ProcessReport, ProcessUsage, Reply, Request};

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn report(command: &str, faults: u64) -> ProcessReport {
    ProcessReport {
        command: command.into(),
        resident_pages: 100,
        limit_pages: 256,
        faults,
        major_faults: faults / 2,
        pages_in: 9,
        pages_out: 12,
        read_errors: 0,
    }
}

fn processes(c: &mut Client) -> Vec<ProcessUsage> {
    c.snapshot(false).unwrap().processes
}

#[test]
fn a_report_makes_a_run_shown_with_its_pid_and_uid_until_its_connection_closes() {
    let backend = Arc::new(MemoryBackend::new(100));
    let d = start(backend.clone());
    let mut admin = Client::connect(&d.socket).unwrap();
    let mut run = Client::connect(&d.socket).unwrap();
    // The objects come before the first report, as the preload makes them.
    let object = run.create(None).unwrap();
    run.putpages(object, 0, vec![3u8; 3 * device::PAGE_SIZE], true)
        .unwrap();
    assert!(processes(&mut admin).is_empty(), "no report, no run");
    run.report(&report("sort -S 4G big.txt", 10)).unwrap();
    // A second connection of the same process pages too; it is no run of its own.
    let mut other = Client::connect(&d.socket).unwrap();
    other
        .putpages(object, 3, vec![4u8; device::PAGE_SIZE], true)
        .unwrap();
    run.report(&report("sort -S 4G big.txt", 30)).unwrap();
    let shown = processes(&mut admin);
    assert_eq!(shown.len(), 1, "{shown:?}");
    let p = &shown[0];
    assert_eq!(p.pid, std::process::id() as i32);
    assert_eq!(p.uid, nix::unistd::getuid().as_raw());
    assert_eq!(p.command, "sort -S 4G big.txt");
    assert_eq!((p.objects, p.swapped_pages), (1, 4));
    assert_eq!((p.faults, p.major_faults, p.resident_pages), (30, 15, 100));
    assert_eq!((p.limit_pages, p.pages_in, p.pages_out), (256, 9, 12));
    // The program exits (or is killed): its connection closes, the run and its objects go.
    drop(run);
    assert!(
        wait_until(|| processes(&mut admin).is_empty() && backend.stats().objects == 0),
        "the run or its objects outlived its connection: {:?}",
        processes(&mut admin)
    );
}

#[test]
fn a_hostile_report_gets_one_line_and_changes_nothing() {
    let d = start(Arc::new(MemoryBackend::new(100)));
    let mut admin = Client::connect(&d.socket).unwrap();
    let mut c = Client::connect(&d.socket).unwrap();
    // Before any good report: refused, and the connection is no run.
    let huge = "x".repeat(MAX_COMMAND_LEN + 1);
    let err = c.report(&report(&huge, 1)).unwrap_err();
    assert_eq!(
        err.kind(),
        Some(crate::proto::ErrorKind::Malformed),
        "{err}"
    );
    assert_eq!(err.to_string().lines().count(), 1);
    assert!(err.to_string().len() < 200, "{err}");
    assert!(processes(&mut admin).is_empty());
    // After a good one: a bad one leaves the good one shown.
    c.report(&report("db --serve", 5)).unwrap();
    let good = processes(&mut admin);
    assert!(c.report(&report(&huge, 99)).is_err());
    for json in [
        r#"{"op":"report","faults":"lots"}"#,
        r#"{"op":"report","command":["a","b"]}"#,
        r#"{"op":"report","resident_pages":-4}"#,
        r#"{"op":"report","read_errors":1e99}"#,
    ] {
        let frame = crate::proto::Frame::new(
            crate::proto::FrameKind::Request,
            json.as_bytes().to_vec(),
            vec![],
        );
        match c.call_raw(&frame.encode()).unwrap() {
            Reply::Error { kind, message } => {
                assert_eq!(kind, crate::proto::ErrorKind::Malformed, "{json}");
                assert_eq!(message.lines().count(), 1, "{message}");
            }
            r => panic!("{json} was taken: {r:?}"),
        }
    }
    let without_age = |mut v: Vec<ProcessUsage>| {
        v.iter_mut().for_each(|p| p.since = 0);
        v
    };
    assert_eq!(without_age(processes(&mut admin)), without_age(good));
    // The connection still serves, and absurd figures are shown as they came.
    let absurd = ProcessReport {
        command: "evil\x1b[2J\nrm -rf".into(),
        resident_pages: u64::MAX,
        faults: u64::MAX,
        ..Default::default()
    };
    c.report(&absurd).unwrap();
    let p = &processes(&mut admin)[0];
    assert_eq!(p.resident_pages, u64::MAX);
    assert_eq!(
        p.command, "evil?[2J?rm -rf",
        "control characters are cleaned"
    );
    assert!(c.stats().is_ok());
}

fn shared() -> Shared {
    Shared::new(Arc::new(MemoryBackend::new(10)), Config::default(), 0)
}

fn stats_of(s: &Shared, uid: u32) -> Vec<ProcessUsage> {
    let peer = Peer {
        uid,
        pid: 1,
        conn: 900 + u64::from(uid),
    };
    match requests::handle(s, &peer, Request::Stats { frag: false }, vec![]).0 {
        Reply::Stats { processes, .. } => processes,
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_uid_sees_its_own_runs_and_root_sees_every_one() {
    let s = shared();
    for (uid, pid, conn) in [(1000, 77, 5), (1001, 88, 6)] {
        let peer = Peer { uid, pid, conn };
        let (r, _) = requests::handle(&s, &peer, Request::Report(report("x", 1)), vec![]);
        assert_eq!(r, Reply::Ok);
    }
    // Two objects made on the first run's connection, one by the same uid elsewhere.
    for conn in [5, 5, 7] {
        let peer = Peer {
            uid: 1000,
            pid: 77,
            conn,
        };
        let (r, _) = requests::handle(&s, &peer, Request::Create { handle: None }, vec![]);
        assert!(matches!(r, Reply::Object { .. }), "{r:?}");
    }
    let pids = |v: Vec<ProcessUsage>| v.iter().map(|p| p.pid).collect::<Vec<_>>();
    let objects = |v: Vec<ProcessUsage>| v.iter().map(|p| p.objects).collect::<Vec<_>>();
    assert_eq!(objects(stats_of(&s, 0)), [2, 0]);
    assert_eq!(pids(stats_of(&s, 0)), [77, 88]);
    assert_eq!(pids(stats_of(&s, 1000)), [77]);
    assert_eq!(pids(stats_of(&s, 1001)), [88]);
    assert!(stats_of(&s, 1002).is_empty());
    s.runs.remove(5);
    assert_eq!(pids(stats_of(&s, 0)), [88]);
}
