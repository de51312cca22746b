//! End to end, issue #22: a remote area's server is SIGKILLed under a verifying
//! `swapctl load` through the real daemon, then restarted. The admin sees it at once (the
//! area `reconnecting` in `list` and `status` with the cause as its last error, one log
//! line naming the area and the cause; one when it is back); a read of a page on it is
//! answered within the bound (`read-wait`) with an explicit error that says why, while the
//! load goes on on the other areas and never sees "did not answer"; no page reads back
//! wrong; once the server is back its pages read again. On both engines. Skips, saying so,
//! where libnbd or nbdkit is missing.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Devices, stderr, stdout};
use control::client::Client;
use control::proto::{GetStatus, PutStatus};
use device::PAGE_SIZE;
use device::nbd::server::{self, Backend, Listen, Server};

const MIB: u64 = 1 << 20;
/// The bound on a read of a page on a lost server, set in the area's URI.
const READ_WAIT: Duration = Duration::from_secs(2);
/// Slack on top of a bound, for a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

fn can_run() -> bool {
    let why = server::missing(&["nbdkit"]);
    if let Some(why) = &why {
        println!("SKIP: {why}");
    }
    why.is_none()
}

/// Whether `text` names why a killed server's connection ended (its socket read the end,
/// or was reset: which one depends on when the kill lands).
fn names_cause(text: &str) -> bool {
    text.contains("EOF") || text.contains("ECONNRESET")
}

fn n(report: &serde_json::Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or(0)
}

/// Polls `f` every 20 ms until it holds or `limit` passed; how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_server_is_shown_answered_in_time_and_read_again_on_io_uring() {
    killed_under_load("io_uring");
}

#[test]
fn a_killed_server_is_shown_answered_in_time_and_read_again_on_threads() {
    killed_under_load("threads");
}

/// The scenario of the file's doc with the daemon on `engine`.
///
/// One piece: the scenario's steps in order, as the module doc tells them.
fn killed_under_load(engine: &str) {
    if !can_run() {
        return;
    }
    // Declared before the daemon, so they go after it.
    let devs = Devices::new(&[24 * MIB]);
    let dir = devs.dir.path();
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let file = dir.join(format!("swapkit-remote-{name}.img"));
        std::fs::File::create(&file)
            .unwrap()
            .set_len(16 * MIB)
            .unwrap();
        servers.push(
            Server::start(
                Backend::NbdkitFile { file },
                Listen::Unix(dir.join(format!("{name}.sock"))),
                "swap",
                None,
            )
            .unwrap(),
        );
    }
    let uris: Vec<String> = servers
        .iter()
        .map(|s| format!("{}&read-wait={}", s.uri(), READ_WAIT.as_secs()))
        .collect();
    let log = dir.join("daemon.log");
    let config = format!("[daemon]\nengine = \"{engine}\"\n");
    let d = Daemon::start_opts(&config, &[], Some(&log), None);
    for a in [devs.path(0), &uris[0], &uris[1]] {
        d.ok(&["mkswap", a]);
    }
    // The area to lose has the highest priority: every page goes there while it is up.
    d.ok(&["on", "-p", "5", &uris[0]]);
    d.ok(&["on", "-p", "1", &uris[1], devs.path(0)]);

    // Pages of our own on the area to lose, to read while it is gone and after.
    let mut c = Client::connect(&d.socket).unwrap();
    let probe = c.create(Some("probe")).unwrap();
    let data: Vec<u8> = (0..16 * PAGE_SIZE)
        .map(|i| (i / PAGE_SIZE) as u8 ^ 0x5a)
        .collect();
    let st = c.putpages(probe, 0, data.clone(), true).unwrap();
    assert!(st.iter().all(|s| *s == PutStatus::Ok), "{st:?}");

    let load = d.spawn(&[
        "load",
        "--verify",
        "--json",
        "--objects",
        "4",
        "--size",
        "2M",
        "--threads",
        "2",
        "--duration",
        "8s",
        "--pattern",
        "mixed",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    servers[0].kill();
    let killed = Instant::now();

    // Shown at once: the state and the cause.
    let seen = within(Duration::from_secs(1) + SLACK, || {
        d.ok(&["list"])
            .contains(&format!("{} (reconnecting)", uris[0]))
    });
    let seen = seen.unwrap_or_else(|| panic!("not shown reconnecting: {}", d.ok(&["list"])));
    eprintln!("{engine}: shown reconnecting {seen:?} after the kill");
    let status = d.ok(&["status"]);
    let line = status
        .lines()
        .skip_while(|l| !l.contains(&uris[0]))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        line.contains("reconnecting")
            && line.contains("last error")
            && line.contains("connection lost")
            && names_cause(&line),
        "{status}"
    );
    let json = d.ok(&["list", "--json"]);
    assert!(
        json.contains("reconnecting") && json.contains("last_error"),
        "{json}"
    );

    // A read of a page on it is answered within the bound, with the reason.
    let t0 = Instant::now();
    let (st, back, errors) = c.getpages_explained(probe, 0, 4).unwrap();
    let took = t0.elapsed();
    eprintln!("{engine}: a read on the lost area answered in {took:?}");
    assert!(took <= READ_WAIT + SLACK, "{took:?}");
    assert_eq!(st, vec![GetStatus::Error; 4]);
    assert!(back.iter().all(|&b| b == 0));
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].error.contains(&uris[0])
            && errors[0].error.contains("read at page")
            && errors[0].error.contains("ENOTCONN"),
        "{errors:?}"
    );
    // Everything else still answers.
    d.ok(&["list"]);

    // Back: the server restarted with its data; the area reconnects by itself.
    std::thread::sleep(Duration::from_millis(1500));
    servers[0].restart().unwrap();
    let back_in = within(Duration::from_secs(10), || {
        !d.ok(&["list"]).contains("(reconnecting)")
    });
    assert!(
        back_in.is_some(),
        "still reconnecting: {}",
        d.ok(&["status"])
    );
    let (st, back) = c.getpages(probe, 0, 16).unwrap();
    assert_eq!(st, vec![GetStatus::Ok; 16]);
    assert!(back == data, "the probe pages read back other bytes");

    let out = load.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("did not answer"), "{err}");
    let r: serde_json::Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("load report ({e}): {}\n{err}", stdout(&out)));
    assert_eq!(n(&r, "wrong_pages"), 0, "{r}");
    assert!(n(&r, "verified_pages") > 0, "{r}");
    eprintln!("{engine}: load {r}, {:?} after the kill", killed.elapsed());

    // The daemon said so, once each way, naming the area and the cause.
    let text = std::fs::read_to_string(&log).unwrap();
    let lost: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("lost its connection"))
        .collect();
    assert_eq!(lost.len(), 1, "{text}");
    assert!(lost[0].contains(&uris[0]) && names_cause(lost[0]), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&uris[0]) && l.contains("connected again")),
        "{text}"
    );
    drop(c);
    drop(d);
}
