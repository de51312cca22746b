//! End to end, issue #22: an I/O error keeps its cause up to the admin. The storage answers
//! `EIO` to every read (`nbdkit`'s error filter, switched on by a trigger file): the client
//! gets `error` for the page with the reason (the area, the operation, the page and `EIO`),
//! the daemon logs it (once per burst) naming the area, and `status` and `list --json` show
//! it as the area's last error. On both engines. Skips, saying so, where libnbd or nbdkit
//! is missing.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Daemon, Devices};
use control::client::Client;
use control::proto::{GetStatus, PutStatus};
use device::PAGE_SIZE;
use device::nbd::server::{self, Backend, Listen, Server};

const MIB: u64 = 1 << 20;

#[test]
fn an_injected_eio_names_its_errno_and_area_in_the_reply_log_and_status_on_io_uring() {
    eio_is_explained("io_uring");
}

#[test]
fn an_injected_eio_names_its_errno_and_area_in_the_reply_log_and_status_on_threads() {
    eio_is_explained("threads");
}

fn eio_is_explained(engine: &str) {
    if let Some(why) = server::missing(&["nbdkit"]) {
        println!("SKIP: {why}");
        return;
    }
    // Declared before the daemon, so they go after it.
    let devs = Devices::new(&[8 * MIB]);
    let dir = devs.dir.path();
    let file = dir.join("swapkit-eio.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(8 * MIB)
        .unwrap();
    let trigger = dir.join("eio-now");
    let s = Server::start(
        Backend::NbdkitFileReadErrors {
            file,
            trigger: trigger.clone(),
        },
        Listen::Unix(dir.join("eio.sock")),
        "swap",
        None,
    )
    .unwrap();
    let uri = s.uri();
    let log = dir.join("daemon.log");
    let config = format!("[daemon]\nengine = \"{engine}\"\n");
    let d = Daemon::start_opts(&config, &[], Some(&log), None);
    d.ok(&["mkswap", &uri]);
    d.ok(&["on", &uri]);
    let mut c = Client::connect(&d.socket).unwrap();
    let o = c.create(None).unwrap();
    let st = c.putpages(o, 0, vec![3u8; 4 * PAGE_SIZE], true).unwrap();
    assert_eq!(st, vec![PutStatus::Ok; 4]);
    let (st, _) = c.getpages(o, 0, 4).unwrap();
    assert_eq!(st, vec![GetStatus::Ok; 4], "reads work before the trigger");

    std::fs::write(&trigger, b"").unwrap();
    let (st, data, errors) = c.getpages_explained(o, 0, 2).unwrap();
    assert_eq!(st, vec![GetStatus::Error; 2]);
    assert!(data.iter().all(|&b| b == 0));
    assert_eq!(errors.len(), 2, "{errors:?}");
    for (i, e) in errors.iter().enumerate() {
        assert_eq!(e.pindex, i as u64);
        assert!(
            e.error.contains(&uri) && e.error.contains("read at page") && e.error.contains("EIO"),
            "{e:?}"
        );
    }

    // status: the area's last error, with what, where and why.
    let status = d.ok(&["status"]);
    let last = status
        .lines()
        .skip_while(|l| !l.starts_with(&format!("device {uri}")))
        .nth(1)
        .unwrap_or_default();
    assert!(
        last.contains("last error") && last.contains("read at page") && last.contains("EIO"),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&d.ok(&["list", "--json"])).unwrap();
    let what = json["swapdevices"][0]["last_error"]["what"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(what.contains("EIO"), "{json}");

    // The log: a line naming the area and the errno.
    std::fs::remove_file(&trigger).unwrap();
    let (st, _) = c.getpages(o, 0, 4).unwrap();
    assert_eq!(
        st,
        vec![GetStatus::Ok; 4],
        "reads work again without the trigger"
    );
    drop(c);
    drop(d);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("I/O error") && l.contains(&uri) && l.contains("EIO")),
        "{text}"
    );
    drop(s);
}
