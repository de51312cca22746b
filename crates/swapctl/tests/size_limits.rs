//! End to end, issue #22: what storage claims to be cannot make the daemon allocate without
//! bound. An NBD export of 2^62 bytes: `mkswap` says what it capped the area to, and `on`
//! is refused in one line (the largest area allowed by default scales with the machine's
//! memory) without the daemon's memory growing; a configured `max_area` refuses a local area
//! above it and takes one below. On both engines. The export part skips, saying so, where
//! libnbd or nbdkit is missing.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Daemon, Devices, stderr};
use device::nbd::server::{self, Backend, Listen, Server};

const MIB: u64 = 1 << 20;

#[test]
fn a_huge_export_is_capped_by_mkswap_and_refused_by_on_on_io_uring() {
    huge_export("io_uring");
}

#[test]
fn a_huge_export_is_capped_by_mkswap_and_refused_by_on_on_threads() {
    huge_export("threads");
}

fn huge_export(engine: &str) {
    if let Some(why) = server::missing(&["nbdkit"]) {
        println!("SKIP: {why}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("swapkit-huge")
        .tempdir()
        .unwrap();
    let s = Server::start(
        Backend::NbdkitMemory { bytes: 1 << 62 },
        Listen::Unix(dir.path().join("huge.sock")),
        "swap",
        None,
    )
    .unwrap();
    let uri = s.uri();
    let config = format!("[daemon]\nengine = \"{engine}\"\n");
    let d = Daemon::start_with_config(&config, &[]);
    let out = d.run(&["mkswap", &uri]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("capped to 16T") && err.contains(&uri),
        "mkswap did not say what it capped: {err}"
    );
    let (_, rss_before) = d.fds_and_rss();
    let out = d.run(&["on", &uri]);
    let (_, rss_after) = d.fds_and_rss();
    assert!(!out.status.success(), "a 16 TiB area was taken");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&uri) && err.contains("larger than the largest allowed"),
        "{err}"
    );
    // Its allocator alone would have been about 1 GiB.
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!("{engine}: daemon RSS {rss_before} KiB -> {rss_after} KiB");
    assert!(grew < 64 * 1024, "the daemon grew by {grew} KiB");
    assert_eq!(d.ok(&["list", "--noheadings"]), "");
}

#[test]
fn a_configured_max_area_refuses_a_larger_area_and_takes_a_smaller_one() {
    let devs = Devices::new(&[32 * MIB, 8 * MIB]);
    let d = Daemon::start_with_config("[daemon]\nmax_area = \"16M\"\n", &[]);
    for i in 0..2 {
        d.ok(&["mkswap", devs.path(i)]);
    }
    let out = d.run(&["on", devs.path(0)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(devs.path(0)) && err.contains("largest allowed here (16M"),
        "{err}"
    );
    d.ok(&["on", devs.path(1)]);
    let list = d.ok(&["list", "--noheadings"]);
    assert!(
        list.contains(devs.path(1)) && !list.contains(devs.path(0)),
        "{list}"
    );
    d.ok(&["off", devs.path(1)]);
}
