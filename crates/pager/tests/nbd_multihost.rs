//! "Multi-host": two remote areas on two NBD servers, each in a network namespace of its
//! own (a veth pair per namespace), striped with interleave 32, under a verifying load
//! from several threads; one server is killed mid-run and restarted on its persistent
//! file. Wanted: 0 wrong pages, every error counted, after the restart every page whose
//! last write was acknowledged reads back right (the server came back with its data), and
//! the restarted host back in service. On both engines.
//!
//! The network: the namespace end of each veth pair gets `fe80::2` (added inside the
//! namespace only, `nodad`); the host end keeps only the link-local address the kernel
//! gives every interface, so nothing is configured outside the namespaces. This kernel
//! has no `sch_netem`, so the delay is a small TCP relay of the test's own on loopback
//! (`127.0.0.1:port` → `[fe80::2%host-end]:10809`) that holds every chunk from the server
//! 100 µs before passing it on: 100 µs more per round trip. Deleting a namespace deletes
//! its veth pair.
//!
//! Skips, saying so, without root, `ip netns`, libnbd or nbdkit/qemu-nbd.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::net::{SocketAddr, SocketAddrV6};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{ENGINES, page, pager_on};
use device::PAGE_SIZE;
use device::nbd::server::{self, Backend, DelayRelay, Listen, Server};
use pager::{PageResult, PutMode, SwaponOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DELAY: Duration = Duration::from_micros(100);
const NBD_PORT: u16 = 10809;

/// A network namespace with a veth pair into it; deleted (with the pair) on drop.
struct Netns {
    name: String,
    host_if: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    fn create(tag: &str) -> Option<Netns> {
        let id = std::process::id() % 100_000;
        let name = format!("swapkit-{tag}-{id}");
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns {
            name,
            host_if: format!("swk{tag}{id}h"),
        };
        let peer = format!("swk{tag}{id}n");
        let dad = format!("net.ipv6.conf.{}.accept_dad=0", ns.host_if);
        let ok = ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]) && ip(&["link", "set", &peer, "netns", &ns.name])
            && Command::new("sysctl")
                .args(["-qw", &dad])
                .status()
                .is_ok_and(|s| s.success())
            && ip(&["link", "set", &ns.host_if, "up"])
            && ip(&["-n", &ns.name, "link", "set", "lo", "up"])
            && ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                "fe80::2/64",
                "dev",
                &peer,
                "nodad",
            ])
            && ip(&["-n", &ns.name, "link", "set", &peer, "up"]);
        ok.then_some(ns)
    }

    /// The server's address as seen from here: link-local, scoped to our end of the pair.
    fn server_addr(&self) -> SocketAddr {
        let index = std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", self.host_if))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        SocketAddrV6::new("fe80::2".parse().unwrap(), NBD_PORT, 0, index).into()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.name]);
        // Deleting the namespace deletes the pair; this only matters if it was never moved.
        ip(&["link", "del", &self.host_if]);
    }
}

/// Every page's expected tag: `u64::MAX` while unknown (its last write failed).
const UNKNOWN: u64 = u64::MAX;

/// One piece: two hosts are set up, loaded, one is killed and restarted, and the result is
/// checked, as one scenario that reads top to bottom (the load and the check are functions).
#[test]
fn two_remote_hosts_striped_with_one_killed_and_restarted() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: needs root (network namespaces)");
        return;
    }
    if let Some(why) = server::missing(&["nbdkit", "qemu-nbd"]) {
        println!("SKIP: {why}");
        return;
    }
    for engine in ENGINES {
        let dir = common::tempdir();
        let Some(ns_a) = Netns::create("a") else {
            println!("SKIP: cannot create network namespaces (ip netns add)");
            return;
        };
        let Some(ns_b) = Netns::create("b") else {
            println!("SKIP: cannot create network namespaces (ip netns add)");
            return;
        };
        let any: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, NBD_PORT).into();
        let (file_a, file_b) = (dir.path().join("a.img"), dir.path().join("b.img"));
        for f in [&file_a, &file_b] {
            std::fs::File::create(f).unwrap().set_len(8 << 20).unwrap();
        }
        // One host serves with nbdkit, the other with qemu-nbd, both on files.
        let mut server_a = Server::start(
            Backend::NbdkitFile { file: file_a },
            Listen::Tcp(any),
            "swap",
            Some(&ns_a.name),
        )
        .unwrap();
        let server_b = Server::start(
            Backend::QemuNbd { file: file_b },
            Listen::Tcp(any),
            "swap",
            Some(&ns_b.name),
        )
        .unwrap();
        let (relay_a, relay_b) = (
            DelayRelay::start(ns_a.server_addr(), DELAY).unwrap(),
            DelayRelay::start(ns_b.server_addr(), DELAY).unwrap(),
        );
        let params = "request-timeout=3&dead-after=60&connect-timeout=2";
        let uri_a = format!("nbd://127.0.0.1:{}/swap?{params}", relay_a.port());
        let uri_b = format!("nbd://127.0.0.1:{}/swap?{params}", relay_b.port());
        for uri in [&uri_a, &uri_b] {
            device::mkswap(uri, &device::MkswapOptions::default()).unwrap();
        }
        let p = Arc::new(pager_on(engine, 32));
        let a = p.swapon(uri_a.as_ref(), SwaponOptions::default()).unwrap();
        p.swapon(uri_b.as_ref(), SwaponOptions::default()).unwrap();

        let wrong = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let done_ops = Arc::new(AtomicU64::new(0));
        let start = Arc::new(Barrier::new(THREADS as usize + 1));
        let mut workers = Vec::new();
        for t in 0..THREADS {
            let (p, wrong, errors, done_ops, start) = (
                Arc::clone(&p),
                Arc::clone(&wrong),
                Arc::clone(&errors),
                Arc::clone(&done_ops),
                Arc::clone(&start),
            );
            workers.push(std::thread::spawn(move || {
                start.wait();
                verifying_load(
                    &p,
                    t,
                    &Tally {
                        wrong,
                        errors,
                        done_ops,
                    },
                )
            }));
        }
        start.wait();
        // Mid-run: host a's server dies (SIGKILL) and comes back on its file.
        while done_ops.load(Ordering::Relaxed) < THREADS * OPS / 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        server_a.kill();
        std::thread::sleep(Duration::from_millis(500));
        server_a.restart().unwrap();
        let finished: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        // After the restart every acknowledged page reads back right.
        let checked = check_all(&p, &finished, &wrong);
        // Host a is back in service (if its write errors had marked it failing): writes
        // reach it again.
        let state_a = || {
            let st = p.stats();
            st.devices.iter().find(|d| d.id == a.0).unwrap().state
        };
        let (obj0, _) = &finished[0];
        for i in 0..100 {
            if state_a() == pager::DeviceState::Active {
                break;
            }
            p.putpages(obj0, PAGES - 1, &page(i), PutMode::Sync);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(state_a(), pager::DeviceState::Active, "{engine:?}");
        let st = p.stats();
        let dev_a = st.devices.iter().find(|d| d.id == a.0).unwrap();
        println!(
            "{engine:?}: {checked} pages checked, {} wrong, {} errors seen by the load; \
             pager: {} read errors, {} write errors; host a is {:?}",
            wrong.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            st.counters.read_errors,
            st.counters.write_errors,
            dev_a.state,
        );
        assert_eq!(wrong.load(Ordering::Relaxed), 0, "{engine:?}: wrong pages");
        assert!(checked > 0);
        // The kill was noticed (else the test proved nothing about it).
        let area_a = p.area(a).unwrap();
        assert!(
            area_a.remote().is_some_and(|r| r.reconnects() > 0),
            "{engine:?}: host a's connections were never remade"
        );
        drop(area_a);
        drop(finished);
        drop(p);
        drop((relay_a, relay_b, server_a, server_b));
        drop((ns_a, ns_b));
    }
}

const THREADS: u64 = 3;
const PAGES: u64 = 192;
const OPS: u64 = 600;

/// What the load threads count together.
struct Tally {
    wrong: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    done_ops: Arc<AtomicU64>,
}

/// One thread of the load: `OPS` random puts (1-8 pages) and single-page gets on an object of
/// its own, each get checked against the last acknowledged put. Returns the object and each
/// page's expected tag.
fn verifying_load(p: &pager::Pager, t: u64, tally: &Tally) -> (pager::Object, Vec<u64>) {
    let obj = p.alloc_object(None, PAGES);
    let mut expect = vec![UNKNOWN; PAGES as usize];
    let mut rng = SmallRng::seed_from_u64(t);
    let mut out = vec![0u8; PAGE_SIZE];
    for op in 0..OPS {
        tally.done_ops.fetch_add(1, Ordering::Relaxed);
        let at = rng.random_range(0..PAGES - 8);
        if op < 40 || rng.random_bool(0.5) {
            let n = rng.random_range(1..=8u64);
            let tag0 = (t << 40) | (op << 8);
            let data: Vec<u8> = (0..n).flat_map(|k| page(tag0 + k)).collect();
            let results = p.putpages(&obj, at, &data, PutMode::Sync);
            for (k, r) in results.iter().enumerate() {
                let slot = &mut expect[(at + k as u64) as usize];
                if *r == PageResult::Ok {
                    *slot = tag0 + k as u64;
                } else {
                    *slot = UNKNOWN;
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            let want = expect[at as usize];
            if want == UNKNOWN {
                // Never written, or its last write failed: nothing to check.
                continue;
            }
            match p.getpages(&obj, at, 0, 0, &mut out) {
                Ok(_) if out != page(want) => {
                    tally.wrong.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    (obj, expect)
}

/// Reads every acknowledged page of every object back, counting wrong ones in `wrong`;
/// returns how many were checked. A read error fails the test: after the restart all hosts
/// serve.
fn check_all(p: &pager::Pager, finished: &[(pager::Object, Vec<u64>)], wrong: &AtomicU64) -> u64 {
    let mut out = vec![0u8; PAGE_SIZE];
    let mut checked = 0;
    for (obj, expect) in finished {
        for (i, &want) in expect.iter().enumerate() {
            if want == UNKNOWN {
                continue;
            }
            p.getpages(obj, i as u64, 0, 0, &mut out).unwrap();
            if out != page(want) {
                wrong.fetch_add(1, Ordering::Relaxed);
            }
            checked += 1;
        }
    }
    checked
}
