//! End to end with a remote area: `swapctl mkswap nbd://...`, `on` from the command line
//! and from the config file, `list`/`status` naming the URI, `off`, and the one-line
//! refusals. Against `nbdkit memory` on a Unix socket and on loopback TCP; skips, saying
//! so, where libnbd or nbdkit is missing (`.ci/run` installs them).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Daemon, stderr};
use device::nbd::server::{self, Backend, Listen, Server};

fn can_run() -> bool {
    let why = server::missing(&["nbdkit"]);
    if let Some(why) = &why {
        println!("SKIP: {why}");
    }
    why.is_none()
}

#[test]
fn mkswap_on_list_status_and_off_take_a_uri() {
    if !can_run() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("swapkit-nbd")
        .tempdir()
        .unwrap();
    let unix = Server::start(
        Backend::NbdkitMemory { bytes: 8 << 20 },
        Listen::Unix(dir.path().join("a.sock")),
        "swap",
        None,
    )
    .unwrap();
    let port = server::free_port().unwrap();
    let tcp = Server::start(
        Backend::NbdkitMemory { bytes: 8 << 20 },
        Listen::Tcp(([127, 0, 0, 1], port).into()),
        "swap",
        None,
    )
    .unwrap();
    let (a, b) = (unix.uri(), tcp.uri());
    // The TCP one is in the config file, with our own parameters in its URI.
    let b_cfg = format!("{b}?request-timeout=10&connect-timeout=5");
    let config = format!("[[device]]\npath = \"{b_cfg}\"\npriority = 3\n");
    let d = Daemon::start_with_config(&config, &[]);
    let out = d.run(&["mkswap", "-L", "far", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d.run(&["mkswap", &b_cfg]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.ok(&["on", &a, "-p", "7"]);
    d.ok(&["on", "--all"]);
    let list = d.ok(&["list", "--show=NAME,TYPE,PRIO,LABEL", "--noheadings"]);
    assert!(
        list.contains(&a) && list.contains("nbd") && list.contains("far"),
        "{list}"
    );
    assert!(list.contains(&b_cfg), "{list}");
    let status = d.ok(&["status"]);
    assert!(status.contains("nbd"), "{status}");
    // The same export again, by another URI: refused in one line.
    let again = format!("{a}&connections=1");
    let out = d.run(&["on", &again]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("in use as {a}")),
        "{}",
        stderr(&out)
    );
    d.ok(&["off", &a]);
    d.ok(&["off", &b_cfg]);
    assert_eq!(d.ok(&["list", "--noheadings"]), "");
    // No server there: one line naming the URI.
    let dead = format!(
        "nbd://127.0.0.1:{}/x?connect-timeout=1",
        server::free_port().unwrap()
    );
    let out = d.run(&["on", &dead]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn off_force_of_a_dead_remote_area_reports_its_pages_lost() {
    use control::client::Client;
    use control::proto::GetStatus;
    use device::PAGE_SIZE;
    if !can_run() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("swapkit-nbd")
        .tempdir()
        .unwrap();
    let mut s = Server::start(
        Backend::NbdkitMemory { bytes: 8 << 20 },
        Listen::Unix(dir.path().join("dead.sock")),
        "swap",
        None,
    )
    .unwrap();
    let uri = format!("{}&request-timeout=1&dead-after=1", s.uri());
    let d = Daemon::start(&[]);
    d.ok(&["mkswap", &uri]);
    d.ok(&["on", &uri]);
    let mut c = Client::connect(&d.socket).unwrap();
    let o = c.create(Some("far")).unwrap();
    let st = c.putpages(o, 0, vec![7u8; 24 * PAGE_SIZE], true).unwrap();
    assert!(
        st.iter().all(|s| *s == control::proto::PutStatus::Ok),
        "{st:?}"
    );
    s.kill();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // A read finds the server gone for longer than dead-after: the area is failed.
    let read = |c: &mut Client| c.getpages(o, 0, 1).unwrap().0[0];
    assert_eq!(read(&mut c), GetStatus::Error);
    let list = d.ok(&["status"]);
    assert!(list.contains("failed"), "{list}");
    let out = d.run(&["off", &uri]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("force drops them"),
        "{}",
        stderr(&out)
    );
    let out = d.ok(&["off", "--force", &uri]);
    // How many, and why: the area's last error (the lost connection).
    assert!(
        out.starts_with(&format!("{uri}: 24 pages lost: connection lost")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(
        read(&mut c),
        GetStatus::Error,
        "a lost page reads as an error"
    );
    assert_eq!(d.ok(&["list", "--noheadings"]), "");
}

#[test]
fn without_libnbd_a_uri_fails_in_one_line_saying_what_to_install() {
    let out = std::process::Command::new(common::BIN)
        .args(["mkswap", "nbd://127.0.0.1/swap"])
        .env(device::nbd::LIB_ENV, "/nonexistent/libnbd.so.0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(
        err,
        "swapctl: nbd://127.0.0.1/swap: nbd areas need libnbd.so.0: apt-get install libnbd0\n"
    );
}
