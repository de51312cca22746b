//! End to end, issue #22: an area whose backing file is cut short under live data keeps the
//! pages before the cut; `swapctl off` moves them to the other area and says how many pages
//! were lost past the cut, and why (the area's last error). On both engines.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::PathBuf;

use common::{Daemon, Devices};
use control::client::Client;
use control::proto::{GetStatus, PutStatus};

const MIB: u64 = 1 << 20;
const PAGE: usize = 4096;
/// Pages put: more than the cut area keeps (1 MiB of data pages) plus what the other holds.
const PAGES: u64 = 3000;
/// Pages a request carries (the daemon takes at most 64).
const CHUNK: u64 = 50;

fn page(p: u64) -> Vec<u8> {
    let mut b = vec![0u8; PAGE];
    for (i, w) in b.chunks_mut(8).enumerate() {
        w.copy_from_slice(&(p << 32 | i as u64 | 1).to_le_bytes());
    }
    b
}

fn truncated_area_off(engine: &str) {
    let devs = Devices::new(&[16 * MIB, 16 * MIB]);
    let config = format!("[daemon]\nengine = \"{engine}\"\ninterleave = 32\n");
    let d = Daemon::start_with_config(&config, &[]);
    for i in 0..2 {
        d.ok(&["mkswap", devs.path(i)]);
        d.ok(&["on", devs.path(i)]);
    }
    let mut c = Client::connect(&d.socket).unwrap();
    let obj = c.create(None).unwrap();
    for chunk in 0..PAGES / CHUNK {
        let data: Vec<u8> = (chunk * CHUNK..(chunk + 1) * CHUNK)
            .flat_map(page)
            .collect();
        let st = c.putpages(obj, chunk * CHUNK, data, true).unwrap();
        assert!(st.iter().all(|s| *s == PutStatus::Ok), "{st:?}");
    }
    // Keep the header and 1 MiB of data pages of area 1.
    let backing: PathBuf = devs.dir.path().join("swapkit-dev1.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&backing)
        .unwrap();
    f.set_len(MIB + PAGE as u64).unwrap();
    f.sync_all().unwrap();
    drop(f);
    // Reading every page meets the cut: pages past it are errors (or fail their checksum
    // through a loop device that reads zeroes), the others come back right.
    let mut bad_before = 0;
    for chunk in 0..PAGES / CHUNK {
        let (st, data) = c.getpages(obj, chunk * CHUNK, CHUNK as u32).unwrap();
        for (k, s) in st.iter().enumerate() {
            let p = chunk * CHUNK + k as u64;
            match s {
                GetStatus::Ok => assert_eq!(data[k * PAGE..(k + 1) * PAGE], page(p)[..]),
                _ => bad_before += 1,
            }
        }
    }
    assert!(bad_before > 0, "no page was past the cut");
    let out = d.ok(&["off", devs.path(1)]);
    eprintln!("{engine}: {bad_before} pages unreadable; off said: {out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{}: ", devs.path(1))))
        .unwrap_or_else(|| panic!("off said nothing of lost pages: {out:?}"));
    let lost: u64 = line[devs.path(1).len() + 2..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(lost > 0 && lost <= bad_before, "{line}");
    assert!(line.contains(" pages lost: "), "no reason given: {line}");
    // Everything that was readable before is readable after, from the other area.
    let mut good_after = 0;
    for chunk in 0..PAGES / CHUNK {
        let (st, data) = c.getpages(obj, chunk * CHUNK, CHUNK as u32).unwrap();
        for (k, s) in st.iter().enumerate() {
            if *s == GetStatus::Ok {
                let p = chunk * CHUNK + k as u64;
                assert_eq!(data[k * PAGE..(k + 1) * PAGE], page(p)[..], "page {p}");
                good_after += 1;
            }
        }
    }
    assert_eq!(
        good_after,
        PAGES - bad_before,
        "pages before the cut were lost"
    );
}

#[test]
fn an_area_cut_short_goes_off_keeping_its_intact_pages_and_saying_why_the_rest_were_lost_on_io_uring()
 {
    truncated_area_off("io_uring");
}

#[test]
fn an_area_cut_short_goes_off_keeping_its_intact_pages_and_saying_why_the_rest_were_lost_on_threads()
 {
    truncated_area_off("threads");
}
