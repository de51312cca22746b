//! `swapctl status` (the whole snapshot in words) and `swapctl frag` (FreeBSD's
//! `vm.swap_fragmentation`).

use std::fmt::Write;

use pager::{DeviceState, DeviceStats, FragStats, PagerStats, PoolStats};

use super::{device_name, page_size};
use crate::units::human;

fn pool(name: &str, p: &PoolStats) -> String {
    format!("{name} {}/{} ({} waits)", p.in_use, p.max, p.waits)
}

fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn state(d: &DeviceStats) -> String {
    match d.state {
        DeviceState::Active => "active".into(),
        DeviceState::Draining { moved, total } => format!("draining {moved}/{total}"),
        DeviceState::Failed => "failed".into(),
        DeviceState::Failing => "failing".into(),
        DeviceState::Reconnecting { down_ms } => format!("reconnecting ({})", since(down_ms)),
    }
}

/// A duration in milliseconds as `1.2s` or `3m 04s`.
fn since(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60)
    }
}

/// The indented line under a device with its last error and how long ago it was.
fn last_error(d: &DeviceStats) -> Option<String> {
    let e = d.last_error.as_ref()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_millis() as u64);
    Some(format!(
        "  last error {} ago: {}",
        since(now.saturating_sub(e.at_unix_ms)),
        e.what
    ))
}

/// The human form of `status`: one labelled line per aspect, then one line per device.
///
/// One piece: the page's lines in the order they print, each a few `writeln!`s.
pub fn status(s: &PagerStats) -> String {
    let ps = page_size(s);
    let t = &s.tunables;
    let c = &s.counters;
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "uptime      {}   engine {}",
        uptime(s.uptime_ms),
        s.engine
    );
    let _ = writeln!(
        out,
        "swap        total {}  used {}  free {}  bad {} pages",
        human(s.total_pages * ps),
        human(s.used_pages * ps),
        human(s.free_pages * ps),
        s.bad_pages
    );
    let _ = writeln!(
        out,
        "hysteresis  {} (low water {} free pages, high water {})",
        s.hysteresis.label(),
        t.nswap_lowat,
        t.nswap_hiwat
    );
    let _ = writeln!(
        out,
        "tunables    interleave {}  nswbuf {}  swap_async_max {}  max_cluster {}  checksum {}",
        t.interleave, t.nswbuf, t.swap_async_max, t.max_cluster, t.checksum
    );
    let _ = writeln!(
        out,
        "pbufs       {}  {}  {}",
        pool("read", &s.pbufs.read),
        pool("sync write", &s.pbufs.sync_write),
        pool("async write", &s.pbufs.async_write)
    );
    let _ = writeln!(
        out,
        "paging      swapin {} ({} pages)  swapout {} ({} pages)  intrans waits {}",
        c.swapin, c.pages_in, c.swapout, c.pages_out, c.intrans_waits
    );
    let _ = writeln!(
        out,
        "errors      alloc failures {}  read errors {}  write errors {}  events {}",
        c.alloc_failures, c.read_errors, c.write_errors, c.events
    );
    let _ = writeln!(
        out,
        "integrity   corrupt pages {}  write retries {}  async writes lost {}",
        c.corrupt_pages, c.write_retries, c.async_write_failures
    );
    let _ = writeln!(
        out,
        "objects     {} ({} named)  metadata {}",
        s.objects,
        s.named_objects,
        human(s.meta_bytes)
    );
    for d in &s.devices {
        let _ = writeln!(
            out,
            "device {}  {}  prio {}  {}{}  used {}/{}  bad {}  corrupt {}  in flight {}  reads {}  writes {}  \
             read p99 {}  write p99 {}",
            device_name(d),
            state(d),
            d.priority,
            d.kind,
            flags(d),
            d.used_pages,
            d.total_pages,
            d.bad_pages,
            d.corrupt,
            d.io.in_flight,
            d.io.reads,
            d.io.writes,
            p99(d.io.reads, d.io.read_latency.p99_us),
            p99(d.io.writes, d.io.write_latency.p99_us)
        );
        if let Some(line) = last_error(d) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// The open and swapon flags after the kind: ` direct` (O_DIRECT), ` discard` (its data
/// pages were discarded at swapon).
fn flags(d: &pager::DeviceStats) -> String {
    let mut f = String::new();
    if d.direct_io {
        f.push_str(" direct");
    }
    if d.discard {
        f.push_str(" discard");
    }
    f
}

/// A p99 latency, or `-` when there was no I/O to measure (as `top` shows it): `0us` would
/// claim a measurement.
fn p99(ios: u64, us: u64) -> String {
    if ios == 0 {
        "-".into()
    } else {
        format!("{us}us")
    }
}

/// FreeBSD's `blist_stats` text, built from the numbers when the pager left `text` empty.
fn frag_text(f: &FragStats) -> String {
    if !f.text.is_empty() {
        let mut t = f.text.clone();
        if !t.ends_with('\n') {
            t.push('\n');
        }
        return t;
    }
    let mut out = String::new();
    let _ = writeln!(out, "number of maximal free ranges: {}", f.free_ranges);
    let _ = writeln!(out, "largest free range: {}", f.largest);
    let _ = writeln!(out, "average maximal free range size: {}", f.average);
    let _ = writeln!(out, "number of maximal free ranges of different sizes:");
    let _ = writeln!(out, "               count  |  size range");
    let _ = writeln!(out, "               -----  |  ----------");
    for (lo, hi, count) in &f.buckets {
        if lo == hi {
            let _ = writeln!(out, "{count:>20}  |  {lo}");
        } else {
            let _ = writeln!(out, "{count:>20}  |  {lo} to {hi}");
        }
    }
    out
}

/// `vm.swap_fragmentation`: a "Free space on device" block per device, or only `only`.
/// Returns `None` when `only` names no device that is on.
pub fn frag(s: &PagerStats, only: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let mut any = false;
    for d in &s.devices {
        if only.is_some_and(|o| o != d.path) {
            continue;
        }
        any = true;
        let _ = writeln!(out, "Free space on device {}:", device_name(d));
        out.push_str(&frag_text(&d.frag));
    }
    (any || only.is_none()).then_some(out)
}

/// `frag --json`: each device's free ranges, in pages, as `frag` prints them; `None` when
/// `only` names no device that is on.
pub fn frag_json(s: &PagerStats, only: Option<&str>) -> Option<String> {
    let devices: Vec<_> = s
        .devices
        .iter()
        .filter(|d| only.is_none_or(|o| o == d.path))
        .map(|d| {
            let f = &d.frag;
            let classes: Vec<_> = f
                .buckets
                .iter()
                .map(|(lo, hi, count)| serde_json::json!({ "min": lo, "max": hi, "count": count }))
                .collect();
            serde_json::json!({
                "name": device_name(d),
                "free_pages": d.free_pages,
                "free_ranges": f.free_ranges,
                "largest": f.largest,
                "average": f.average,
                "classes": classes,
            })
        })
        .collect();
    if only.is_some() && devices.is_empty() {
        return None;
    }
    Some(super::list::pretty(
        &serde_json::json!({ "swapdevices": devices }),
    ))
}
