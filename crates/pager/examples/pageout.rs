//! Pages 1 GiB out to swap and back in, on loop devices it creates (plain files when loop
//! devices are unavailable), and prints the throughput of each direction.
//!
//! ```text
//! cargo run --release -p pager --example pageout -- [MiB (1024)] [devices (2)] [checksum (crc32c)] [swap_async_max (4)]
//! ```
//!
//! The third argument, `none`, turns page checksums off, to see what they cost. The fourth
//! sets `swap_async_max` (the pager's default, 4, unless given).
//!
//! The backing files live in a temp dir whose name contains `swapkit`. Everything is torn
//! down on success, on error and on Ctrl-C (which stops the run between clusters); the loop
//! devices are attached with autoclear, so even a kill leaves none behind.

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use device::{LoopDevice, LoopOptions, MkswapOptions, PAGE_SIZE};
use pager::{PageResult, Pager, PagerConfig, PutMode, SwaponOptions};

/// Set by Ctrl-C (through signal-hook, as the daemon, the TUI and xtask do).
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// Ctrl-C sets `STOP`; the run checks it between clusters and unwinds normally.
fn catch_ctrl_c() -> Result<(), Box<dyn Error>> {
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&STOP))?;
    Ok(())
}

fn stopped() -> Result<(), Box<dyn Error>> {
    if STOP.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    Ok(())
}

/// The swap devices of the run; dropping it detaches the loop devices.
struct Devices {
    paths: Vec<PathBuf>,
    loops: Vec<LoopDevice>,
}

fn make_devices(dir: &std::path::Path, count: u64, pages: u64) -> Result<Devices, Box<dyn Error>> {
    let mut devs = Devices {
        paths: Vec::new(),
        loops: Vec::new(),
    };
    let loops = device::loopdev::available();
    if let Err(why) = &loops {
        println!("loop devices unavailable ({why}); paging to plain files");
    }
    for i in 0..count {
        let file = dir.join(format!("swapkit-pageout-{i}.img"));
        device::mkswap(
            &file,
            &MkswapOptions {
                pages: Some(pages),
                ..MkswapOptions::default()
            },
        )?;
        if loops.is_ok() {
            let dev = LoopDevice::attach(&file, &LoopOptions::default())?;
            devs.paths.push(dev.path().to_owned());
            devs.loops.push(dev);
        } else {
            devs.paths.push(file);
        }
    }
    Ok(devs)
}

/// A page that names itself: its index in the first 8 bytes, a pattern after.
fn fill_page(buf: &mut [u8], pindex: u64) {
    buf[..8].copy_from_slice(&pindex.to_le_bytes());
    buf[8..].fill((pindex % 251) as u8);
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs.max(1e-9)
}

/// One piece: the example reads top to bottom: write, read back, report.
fn run(p: &Pager, total_pages: u64) -> Result<(), Box<dyn Error>> {
    let obj = p.alloc_object(Some("pageout"), total_pages);
    let cluster = 32u64;
    let mut buf = vec![0u8; cluster as usize * PAGE_SIZE];
    let failed = std::sync::Arc::new(AtomicBool::new(false));
    let t = Instant::now();
    for start in (0..total_pages).step_by(cluster as usize) {
        stopped()?;
        let n = cluster.min(total_pages - start);
        for k in 0..n {
            fill_page(
                &mut buf[k as usize * PAGE_SIZE..(k as usize + 1) * PAGE_SIZE],
                start + k,
            );
        }
        let flag = std::sync::Arc::clone(&failed);
        let done = Box::new(move |d: pager::AsyncDone| {
            if d.results.iter().any(|r| *r != PageResult::Ok) {
                flag.store(true, Ordering::Relaxed);
            }
        });
        let res = p.putpages(
            &obj,
            start,
            &buf[..n as usize * PAGE_SIZE],
            PutMode::Async(Some(done)),
        );
        if res.contains(&PageResult::Fail) {
            return Err(format!("swap full at page {start}").into());
        }
    }
    p.wait_async();
    let out_secs = t.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) {
        return Err("a pageout write failed".into());
    }
    let bytes = total_pages * PAGE_SIZE as u64;
    println!(
        "paged out {} MiB in {out_secs:.2} s: {:.0} MiB/s",
        bytes >> 20,
        mib_per_s(bytes, out_secs)
    );

    let readers = 4u64;
    let t = Instant::now();
    let bad = std::thread::scope(|s| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let obj = obj.clone();
                s.spawn(move || -> Result<u64, String> {
                    let mut out = vec![0u8; cluster as usize * PAGE_SIZE];
                    let mut bad = 0;
                    let mut start = r * cluster;
                    while start < total_pages {
                        let end = (start + cluster).min(total_pages);
                        let mut i = start;
                        while i < end {
                            if STOP.load(Ordering::Relaxed) {
                                return Err("interrupted".into());
                            }
                            let ahead = end - 1 - i;
                            let window = &mut out[..(ahead as usize + 1) * PAGE_SIZE];
                            let got = p
                                .getpages(&obj, i, 0, ahead, window)
                                .map_err(|e| e.to_string())?;
                            for q in got.clone() {
                                let at = (q - i) as usize * PAGE_SIZE;
                                if window[at..at + 8] != q.to_le_bytes() {
                                    bad += 1;
                                }
                            }
                            i = got.end;
                        }
                        start += readers * cluster;
                    }
                    Ok(bad)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "reader panicked".to_string())?)
            .sum::<Result<u64, String>>()
    })?;
    let in_secs = t.elapsed().as_secs_f64();
    println!(
        "paged in  {} MiB in {in_secs:.2} s: {:.0} MiB/s ({readers} readers)",
        bytes >> 20,
        mib_per_s(bytes, in_secs)
    );
    if bad > 0 {
        return Err(format!("{bad} pages came back wrong").into());
    }
    let s = p.stats();
    println!(
        "engine {}, {} devices, {} write clusters, {} read clusters, pbuf waits: read {} async {}",
        s.engine,
        s.devices.len(),
        s.counters.swapout,
        s.counters.swapin,
        s.pbufs.read.waits,
        s.pbufs.async_write.waits
    );
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let count: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2).max(1);
    let checksum = match args.next().as_deref() {
        Some("none") => pager::Checksum::None,
        _ => pager::Checksum::Crc32c,
    };
    let async_max: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(PagerConfig::default().swap_async_max);
    let result = (|| -> Result<(), Box<dyn Error>> {
        catch_ctrl_c()?;
        let dir = tempfile::Builder::new()
            .prefix("swapkit-pageout")
            .tempdir()?;
        let total_pages = mib * 256;
        // Room for the data, a stripe of slack per device and the header.
        let per_device = total_pages.div_ceil(count) + total_pages / 8 / count + 64;
        let devs = make_devices(dir.path(), count, per_device)?;
        let p = Pager::new(PagerConfig {
            swap_async_max: async_max,
            checksum,
            ..PagerConfig::default()
        })?;
        for path in &devs.paths {
            p.swapon(path, SwaponOptions::default())?;
        }
        println!(
            "{} MiB over {} devices: {:?} (swap_async_max {async_max}, checksum {checksum})",
            mib, count, devs.paths
        );
        let result = run(&p, total_pages);
        drop(p);
        for dev in devs.loops {
            dev.detach()?;
        }
        result
    })();
    if let Err(e) = result {
        eprintln!("pageout: {e}");
        std::process::exit(1);
    }
}
