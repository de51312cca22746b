//! Issue #12, one test per row of its table: the attacks, as a non-root member of the socket
//! group where it matters, against the real `swapctl daemon` binary.
//!
//! The attacker runs in a child process under a throwaway user ([`common::users`]): this
//! test binary itself, re-run with `SWAPKIT_ATTACK` set so that only [`attacker`] acts. Tests
//! that need root to create that user skip with a message otherwise.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::users::Throwaway;
use common::{Daemon, Devices, stderr, stdout};
use control::client::Client;
use control::proto::{FailReason, PutStatus, Request};
use nix::sys::signal::Signal;

const ATTACK: &str = "SWAPKIT_ATTACK";
const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The attacker (in the child process).

/// In the child: run the attack named by `SWAPKIT_ATTACK`; report on stdout. Otherwise nothing.
#[test]
fn attacker() {
    let Ok(mode) = std::env::var(ATTACK) else {
        return;
    };
    let socket = std::path::PathBuf::from(std::env::var("SWAPKIT_SOCKET").unwrap());
    let arg: usize = std::env::var("SWAPKIT_ATTACK_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    match mode.as_str() {
        "idle" => idle_connections(&socket, arg),
        "stats" => stats_spam(&socket, arg),
        "objects" => many_objects(&socket, arg),
        "log" => log_flood(&socket, arg),
        _ => panic!("unknown attack {mode}"),
    }
}

fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// Open `n` connections and hold them; every other one sends half a header. Prints `ready`,
/// then holds them until killed.
fn idle_connections(socket: &Path, n: usize) {
    raise_nofile();
    let mut held = Vec::new();
    for i in 0..n {
        if let Ok(mut s) = UnixStream::connect(socket) {
            if i % 2 == 1 {
                let _ = s.write_all(b"SWPK\x01\x00\x01");
            }
            held.push(s);
        }
    }
    println!("ready {}", held.len());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// `n` clients asking for `stats` as fast as the daemon answers, until killed.
fn stats_spam(socket: &Path, n: usize) {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let socket = socket.to_owned();
            std::thread::spawn(move || {
                loop {
                    if let Ok(mut c) = Client::connect(&socket) {
                        while c.stats().is_ok() {}
                    }
                }
            })
        })
        .collect();
    println!("ready");
    std::io::stdout().flush().unwrap();
    for t in threads {
        let _ = t.join();
    }
}

/// Create `n` named objects, then one with a 200 KB handle; print what happened as
/// `created N refused KIND long KIND`.
fn many_objects(socket: &Path, n: usize) {
    let mut c = Client::connect(socket).unwrap();
    let mut created = 0;
    let mut refused = String::from("none");
    for i in 0..n {
        match c.create(Some(&format!("obj-{i}"))) {
            Ok(_) => created += 1,
            Err(e) => {
                refused = format!("{:?}", e.kind());
                break;
            }
        }
    }
    let long = match c.create(Some(&"h".repeat(200_000))) {
        Ok(_) => "created".to_string(),
        Err(e) => format!("{:?}", e.kind()),
    };
    println!("created {created} refused {refused} long {long}");
}

/// Flood the log: `n` requests of an unknown op on one connection, then `n / 10` connections
/// that each send bad magic.
fn log_flood(socket: &Path, n: usize) {
    let mut c = Client::connect(socket).unwrap();
    let bad = control::proto::Frame::new(
        control::proto::FrameKind::Request,
        format!("{{\"op\":\"{}\"}}", "x".repeat(1000)).into_bytes(),
        Vec::new(),
    )
    .encode();
    for _ in 0..n {
        let _ = c.call_raw(&bad);
    }
    for _ in 0..n / 10 {
        if let Ok(mut s) = UnixStream::connect(socket) {
            let _ = s.write_all(&[b'X'; 16]);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
    println!("done");
}

// ---------------------------------------------------------------------------------------------
// The tests (in the parent).

/// This test binary as the throwaway user, in the socket's group, running `mode`.
fn attack(user: &Throwaway, d: &Daemon, mode: &str, n: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "attacker", "--nocapture", "--test-threads=1"])
        .env(ATTACK, mode)
        .env("SWAPKIT_ATTACK_N", n.to_string())
        .env("SWAPKIT_SOCKET", &d.socket)
        .uid(user.uid)
        .gid(user.gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait for the attacker's first line with `word`; returns the line from `word` on.
fn read_line_starting(child: &mut Child, word: &str) -> String {
    use std::io::BufRead;
    let out = child.stdout.as_mut().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    loop {
        let line = lines.next().expect("the attacker ended early").unwrap();
        // libtest may have written "test attacker ... " on the same line.
        if let Some(at) = line.find(word) {
            return line[at..].to_owned();
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn group_daemon(user: &Throwaway, config: &str, log: Option<&Path>, nofile: Option<u64>) -> Daemon {
    Daemon::start_opts(config, &["--socket-group", &user.name], log, nofile)
}

/// Row 1: idle connections and half headers from one group member no longer lock anyone
/// out: an admin's `list` answers within 2 s during 2,000 of them, the daemon's descriptors
/// and memory stay bounded, and the half headers are dropped after the read timeout.
#[test]
fn idle_connections_of_one_user_do_not_lock_out_the_admin() {
    let Some(user) = Throwaway::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let d = group_daemon(
        &user,
        "[limits]\nread_timeout_ms = 1000\n",
        Some(&log),
        None,
    );
    let (fds0, rss0) = d.fds_and_rss();
    let mut a = Killed(attack(&user, &d, "idle", 2000));
    read_line_starting(&mut a.0, "ready");
    let start = Instant::now();
    let out = d.run(&["list"]);
    let took = start.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took < Duration::from_secs(2), "list took {took:?}");
    let (fds, rss) = d.fds_and_rss();
    // 64 connections of the user, two descriptors each, and the daemon's own.
    assert!(fds < fds0 + 2 * 64 + 16, "{fds0} -> {fds} descriptors");
    assert!(rss < rss0 + 64 * 1024, "{rss0} -> {rss} KiB resident");
    // The half headers are cut after the read timeout: of the 64 connections the quota let
    // in, the 32 idle ones stay (for the idle timeout, 5 min).
    let want = format!("uid {:<6} 32/64", user.uid);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let status = d.ok(&["status"]);
        if status.contains(&want) {
            break;
        }
        assert!(Instant::now() < end, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.len() < 16 * 1024, "{} bytes of log", text.len());
}

/// Row 2: with the common 1,024 open-file limit (hard too), a group member that the quota
/// lets open as many connections as it likes still cannot run the daemon out of descriptors:
/// clients past the reserve are told "too many clients", root still gets in, and the accept
/// loop does not flood the log.
#[test]
fn the_descriptor_reserve_answers_too_many_clients_and_lets_root_in() {
    let Some(user) = Throwaway::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let config = "[limits]\nmax_connections_per_uid = 100000\nmax_connections = 100000\n";
    let d = group_daemon(&user, config, Some(&log), Some(1024));
    let mut a = Killed(attack(&user, &d, "idle", 2000));
    read_line_starting(&mut a.0, "ready");
    // A client past the reserve is answered, not left hanging.
    let mut c = Client::connect(&d.socket).unwrap();
    let (fds, _) = d.fds_and_rss();
    assert!(fds < 1024, "{fds} descriptors");
    assert!(c.stats().is_ok(), "root is let in past the clients' share");
    let start = Instant::now();
    let out = d.run(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    std::thread::sleep(Duration::from_secs(1));
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(lines < 100, "{lines} log lines");
}

/// A refused non-root client gets a reply in words.
#[test]
fn a_refused_client_is_told_too_many_clients() {
    let Some(user) = Throwaway::create() else {
        return;
    };
    let config = "[limits]\nmax_connections_per_uid = 100000\nmax_connections = 10\n";
    let d = group_daemon(&user, config, None, None);
    let mut a = Killed(attack(&user, &d, "idle", 20));
    read_line_starting(&mut a.0, "ready");
    // Root is let in past max_connections; a refusal reads as one line.
    let mut c = Client::connect(&d.socket).unwrap();
    assert!(c.stats().is_ok());
    let out = Command::new(common::BIN)
        .args(["list", "--socket", d.socket()])
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("too many clients"),
        "{}",
        stderr(&out)
    );
}

/// A connection that sends `n` requests for 64 pages (256 KiB of reply each) of a new
/// object and never reads a reply; with the client that made the object (keep it, so the
/// object lives).
fn unread_gets(socket: &std::path::Path, n: usize) -> (Client, UnixStream) {
    let mut c = Client::connect(socket).unwrap();
    let obj = c.create(None).unwrap();
    let mut s = UnixStream::connect(socket).unwrap();
    // Object ids are per uid: root's object is ours on this connection too.
    let get = Request::GetPages {
        object: obj,
        pindex: 0,
        count: 64,
    }
    .frame(Vec::new())
    .encode();
    for _ in 0..n {
        s.write_all(&get).unwrap();
    }
    (c, s)
}

/// Row 3: a client that never reads its replies is dropped after the write timeout for the
/// whole reply, and SIGTERM does not wait for it.
#[test]
fn a_client_that_never_reads_is_dropped_and_sigterm_does_not_wait() {
    let mut d = Daemon::start_with_config("[limits]\nwrite_timeout_ms = 1000\n", &[]);
    let (_c, mut s) = unread_gets(&d.socket, 200);
    std::thread::sleep(Duration::from_secs(3));
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let replies = got.len() / (64 * 4096);
    assert!(replies < 200, "all {replies} replies came: never dropped");

    // Now one that never reads while the daemon shuts down (default 30 s write timeout).
    let mut d2 = Daemon::start(&[]);
    let (c2, s2) = unread_gets(&d2.socket, 20);
    std::thread::sleep(Duration::from_millis(200));
    d2.signal(Signal::SIGTERM);
    assert!(
        d2.wait_within(Duration::from_secs(2)).is_some(),
        "SIGTERM took over 2 s with a client that does not read"
    );
    assert!(!d2.socket.exists());
    drop((c2, s2));
    d.signal(Signal::SIGTERM);
    assert!(d.wait_within(Duration::from_secs(10)).is_some());
}

fn load_mib_per_s(d: &Daemon) -> f64 {
    let out = d.run(&[
        "load",
        "--json",
        "--duration",
        "3s",
        "--threads",
        "2",
        "--objects",
        "4",
        "--size",
        "4M",
        "--pattern",
        "mixed",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["mib_per_s_out"].as_f64().unwrap() + v["mib_per_s_in"].as_f64().unwrap()
}

/// Row 4: four non-root clients sending `stats` as fast as they can cut a concurrent paging
/// load's throughput by at most 10%. The machine is shared, so runs alternate, and the best
/// of three ratios counts (a ratio, never an absolute speed).
#[test]
fn stats_spam_from_four_clients_costs_paging_at_most_ten_percent() {
    let Some(user) = Throwaway::create() else {
        return;
    };
    let devs = Devices::new(&[64 * MIB]);
    let config = std::env::var("SWAPKIT_SPAM_CONFIG").unwrap_or_default();
    let d = group_daemon(&user, &config, None, None);
    d.ok(&["mkswap", devs.path(0)]);
    d.ok(&["on", devs.path(0)]);
    let mut best = 0.0f64;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let quiet = load_mib_per_s(&d);
        let mut a = Killed(attack(&user, &d, "stats", 4));
        read_line_starting(&mut a.0, "ready");
        let spammed = load_mib_per_s(&d);
        drop(a);
        let ratio = spammed / quiet;
        seen.push(format!("{spammed:.1}/{quiet:.1}"));
        best = best.max(ratio);
        if best >= 0.9 {
            break;
        }
    }
    eprintln!("paging MiB/s under stats spam / without: {seen:?}");
    assert!(best >= 0.9, "paging under stats spam / without: {seen:?}");
}

/// Row 5: one user's named objects are bounded (4,096) and so are handles (256 bytes), and
/// the daemon's memory stays flat. Pacing is lifted here to keep the test short.
#[test]
fn objects_and_handles_of_one_user_are_bounded() {
    let Some(user) = Throwaway::create() else {
        return;
    };
    let d = group_daemon(&user, "[limits]\ncontrol_rate = 1000000.0\n", None, None);
    let (_, rss0) = d.fds_and_rss();
    let mut a = Killed(attack(&user, &d, "objects", 5000));
    let line = read_line_starting(&mut a.0, "created");
    assert_eq!(line, "created 4096 refused Some(Quota) long Some(Quota)");
    let _ = a.0.wait();
    let (_, rss) = d.fds_and_rss();
    assert!(rss < rss0 + 32 * 1024, "{rss0} -> {rss} KiB resident");
    // Named objects outlive the connection, and `status` shows them against the quota.
    let want = format!("uid {:<6} 0/64          4096/4096", user.uid);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let status = d.ok(&["status"]);
        if status.contains(&want) {
            break;
        }
        assert!(Instant::now() < end, "{status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Row 5, swap pages: a put over the uid's quota fails with reason `quota`.
#[test]
fn a_put_over_the_swap_page_quota_fails_with_reason_quota() {
    let devs = Devices::new(&[16 * MIB]);
    let d = Daemon::start_with_config("[limits]\nmax_swap_pages_per_uid = 10\n", &[]);
    d.ok(&["mkswap", devs.path(0)]);
    d.ok(&["on", devs.path(0)]);
    let mut c = Client::connect(&d.socket).unwrap();
    let o = c.create(None).unwrap();
    let (pages, reason) = c.putpages_why(o, 0, vec![7u8; 8 * 4096], true).unwrap();
    assert_eq!(pages, vec![PutStatus::Ok; 8]);
    assert_eq!(reason, None);
    let (pages, reason) = c.putpages_why(o, 8, vec![7u8; 4 * 4096], true).unwrap();
    assert_eq!(
        pages,
        [
            PutStatus::Ok,
            PutStatus::Ok,
            PutStatus::Fail,
            PutStatus::Fail
        ]
    );
    assert_eq!(reason, Some(FailReason::Quota));
    // Freeing gives the room back.
    c.freespace(o, 0, 4).unwrap();
    let (pages, reason) = c.putpages_why(o, 10, vec![7u8; 4 * 4096], true).unwrap();
    assert_eq!(pages, vec![PutStatus::Ok; 4], "{reason:?}");
    let status = d.ok(&["status"]);
    assert!(status.contains("10/10"), "{status}");
}

/// Row 6: one user flooding the log with bad requests leaves it under 64 KiB.
#[test]
fn one_user_cannot_flood_the_log() {
    let Some(user) = Throwaway::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let d = group_daemon(&user, "", Some(&log), None);
    let mut a = Killed(attack(&user, &d, "log", 20_000));
    read_line_starting(&mut a.0, "done");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.len() < 64 * 1024, "{} bytes of log", text.len());
    assert!(
        text.lines().all(|l| l.len() <= 512),
        "a line over 512 bytes"
    );
    drop(d);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("more like this"), "{text}");
}

/// Row 7: SIGHUP reloads the config file, SIGUSR1/2 are ignored, and every terminating signal
/// but SIGKILL leaves no socket file behind.
#[test]
fn signals_reload_are_ignored_or_leave_no_socket() {
    let d = Daemon::start(&[]);
    let cfg = d.dir.path().join("swapctl.toml");
    std::fs::write(
        &cfg,
        "[[device]]\npath = \"/dev/swapkit-test\"\nnoauto = true\n",
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let devices = Client::connect(&d.socket).unwrap().config().unwrap();
        if devices.iter().any(|x| x.path == "/dev/swapkit-test") {
            break;
        }
        assert!(Instant::now() < end, "SIGHUP did not reload the devices");
        std::thread::sleep(Duration::from_millis(50));
    }
    for sig in [Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGPIPE] {
        d.signal(sig);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(Client::connect(&d.socket).unwrap().stats().is_ok());
    drop(d);

    for sig in [
        Signal::SIGQUIT,
        Signal::SIGALRM,
        Signal::SIGXCPU,
        Signal::SIGSEGV,
        Signal::SIGABRT,
        Signal::SIGBUS,
    ] {
        let mut d = Daemon::start(&[]);
        d.signal(sig);
        assert!(
            d.wait_within(Duration::from_secs(5)).is_some(),
            "{sig}: still running"
        );
        assert!(!d.socket.exists(), "{sig} left the socket behind");
    }
}

/// Clients: permission denied names the socket's owner, group and mode; a daemon that does
/// not answer is one line with the time waited.
#[test]
fn client_failures_are_one_clear_line() {
    let Some(user) = Throwaway::create() else {
        return;
    };
    let d = Daemon::start(&[]);
    let out = Command::new(common::BIN)
        .args(["list", "--socket", d.socket()])
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("permission denied")
            && err.contains("owner root")
            && err.contains("mode 0600"),
        "{err}"
    );
    assert!(!err.contains("is `swapctl daemon` running"), "{err}");

    // A stopped daemon: connect succeeds (the kernel queues it), the reply never comes.
    d.signal(Signal::SIGSTOP);
    let start = Instant::now();
    let out = d.run(&["list"]);
    d.signal(Signal::SIGCONT);
    let err = stderr(&out);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        err.trim(),
        format!(
            "swapctl: list: the daemon at {} did not answer within 5 s",
            d.socket()
        )
    );
}
