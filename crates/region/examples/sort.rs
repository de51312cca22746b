//! Sorts an array of random 64-bit numbers larger than the memory it may use, in a region
//! over loop devices (plain files when loop devices are unavailable), checks the result and
//! prints the region's stats.
//!
//! ```text
//! cargo run --release -p region --example sort -- [MiB of data (256)] [resident MiB (32)] [devices (2)]
//! ```
//!
//! The swap files live in a temp dir whose name contains `swapkit`; they are deleted as
//! soon as the pager holds them open, and the loop devices are attached with autoclear, so
//! even Ctrl-C or a kill leaves nothing behind.

use std::error::Error;
use std::time::Instant;

use device::{LoopDevice, LoopOptions, MkswapOptions};
use pager::{Pager, PagerConfig, SwaponOptions};
use region::{Region, RegionConfig};

const MIB: u64 = 1 << 20;

fn arg(i: usize, default: u64) -> Result<u64, Box<dyn Error>> {
    match std::env::args().nth(i) {
        Some(a) => Ok(a.parse().map_err(|e| format!("argument {i} ({a}): {e}"))?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let data_mib = arg(1, 256)?;
    let limit_mib = arg(2, 32)?;
    let devices = arg(3, 2)?.max(1);
    let pager = Pager::new(PagerConfig::default())?;
    let dir = tempfile::Builder::new()
        .prefix("swapkit-region-sort")
        .tempdir()?;
    let loops = device::loopdev::available();
    if let Err(why) = &loops {
        println!("loop devices unavailable ({why}); paging to plain files");
    }
    // Twice the data, spread over the devices, plus room for the header.
    let pages = (2 * data_mib * MIB / 4096).div_ceil(devices) + 64;
    let mut attached = Vec::new();
    for i in 0..devices {
        let file = dir.path().join(format!("swapkit-sort-{i}.img"));
        device::mkswap(
            &file,
            &MkswapOptions {
                pages: Some(pages),
                ..MkswapOptions::default()
            },
        )?;
        if loops.is_ok() {
            let dev = LoopDevice::attach(&file, &LoopOptions::default())?;
            pager.swapon(dev.path(), SwaponOptions::default())?;
            attached.push(dev);
        } else {
            pager.swapon(&file, SwaponOptions::default())?;
        }
        std::fs::remove_file(&file)?;
    }
    let mut region = Region::new(
        &pager,
        RegionConfig {
            len: data_mib * MIB,
            resident_limit: limit_mib * MIB,
            ..RegionConfig::default()
        },
    )?;
    let monitor = region.monitor();
    let words = region.as_mut_u64s();
    let start = Instant::now();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for w in words.iter_mut() {
        // xorshift64*: cheap, good enough to shuffle.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *w = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
    }
    let filled = start.elapsed();
    words.sort_unstable();
    let sorted = start.elapsed() - filled;
    if let Some(i) = words.windows(2).position(|w| w[0] > w[1]) {
        return Err(format!("not sorted at word {i}").into());
    }
    let total = start.elapsed();
    println!(
        "{} MiB of u64 sorted with {} MiB resident on {} device(s) ({}): fill {:.2?}, sort {:.2?}, total {:.2?}",
        data_mib,
        limit_mib,
        devices,
        if loops.is_ok() { "loop" } else { "files" },
        filled,
        sorted,
        total
    );
    println!("{}", monitor.stats());
    drop(region);
    pager.verify()?;
    Ok(())
}
