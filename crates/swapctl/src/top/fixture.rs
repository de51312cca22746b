//! Fixed swap spaces for tests, snapshots, the render benchmark and the demo example.
//!
//! Every value is computed from integers so a fixture renders the same on every machine.

use std::time::Duration;

use device::LatencySummary;
use pager::{
    Counters, DeviceState, DeviceStats, FragStats, Hysteresis, PagerStats, PbufStats, PoolStats,
    Tunables,
};

use control::proto::ProcessUsage;

use super::StatsSource;
use super::state::{State, SystemMemory, fault_rates};

/// Which situation a fixture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixture {
    /// Three devices about a third used, steady paging.
    Normal,
    /// Used space past the low-water mark: hysteresis says "almost full".
    AlmostFull,
    /// No free space left: "full", allocation failures counted.
    Full,
    /// The second device is being swapped off, 40% moved.
    Draining,
    /// The daemon went away after a while: the last figures stay, dimmed, under a banner.
    Disconnected,
    /// The daemon was never reached.
    NeverConnected,
}

impl Fixture {
    pub const ALL: [Fixture; 6] = [
        Fixture::Normal,
        Fixture::AlmostFull,
        Fixture::Full,
        Fixture::Draining,
        Fixture::Disconnected,
        Fixture::NeverConnected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fixture::Normal => "normal",
            Fixture::AlmostFull => "almost_full",
            Fixture::Full => "full",
            Fixture::Draining => "draining",
            Fixture::Disconnected => "disconnected",
            Fixture::NeverConnected => "never_connected",
        }
    }
}

const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;
/// Snapshots fed into a fixture state, one per second.
const SAMPLES: u64 = 180;

/// The snapshot of `kind` at its last sample.
pub fn fixture(kind: Fixture) -> PagerStats {
    snapshot(kind, SAMPLES)
}

/// The snapshot of `kind` at second `t` of its (endless) paging pattern.
pub fn fixture_at(kind: Fixture, t: u64) -> PagerStats {
    snapshot(kind, t)
}

/// A [`StatsSource`] that plays a fixture, one second of it per poll: for demos, the PTY smoke
/// test and anyone trying `top` without a daemon.
///
/// `NeverConnected` always fails; `Disconnected` fails from its fifth poll on, as a daemon
/// that went away. `swap_async_max` changes stick, clamped to `1..=nswbuf/2` as the pager does.
#[derive(Debug, Clone)]
pub struct FixtureSource {
    kind: Fixture,
    polls: u64,
    async_max: Option<u64>,
    /// Panic in the poll with this number (counting from 1): tests the terminal restore.
    pub panic_at: Option<u64>,
}

impl FixtureSource {
    pub fn new(kind: Fixture) -> Self {
        Self {
            kind,
            polls: 0,
            async_max: None,
            panic_at: None,
        }
    }
}

impl StatsSource for FixtureSource {
    fn fetch(&mut self) -> Result<PagerStats, String> {
        self.polls += 1;
        if self.panic_at == Some(self.polls) {
            panic!("fixture source: panic requested at poll {}", self.polls);
        }
        let gone = match self.kind {
            Fixture::NeverConnected => true,
            Fixture::Disconnected => self.polls >= 5,
            _ => false,
        };
        if gone {
            return Err(
                "connect /run/swapkit/swapkit.sock: Connection refused (os error 111)".into(),
            );
        }
        let mut stats = snapshot(self.kind, SAMPLES + self.polls);
        if let Some(n) = self.async_max {
            stats.tunables.swap_async_max = n;
            stats.pbufs.async_write.max = n;
            stats.pbufs.async_write.in_use = stats.pbufs.async_write.in_use.min(n);
        }
        Ok(stats)
    }

    fn set_swap_async_max(&mut self, n: u64) -> Result<u64, String> {
        let limit = (snapshot(self.kind, 0).tunables.nswbuf / 2).max(1);
        let n = n.clamp(1, limit);
        self.async_max = Some(n);
        Ok(n)
    }
}

/// A [`State`] that has seen `kind`'s snapshots for three minutes, so rates and sparklines
/// are filled; the system memory is fixed.
pub fn state(kind: Fixture) -> State {
    let mut state = State::new("/run/swapkit/swapkit.sock", Duration::from_secs(1), true);
    state.system = Some(SystemMemory {
        mem_total: 16 * GIB,
        mem_used: 6 * GIB + 300 * (1 << 20),
        swap_total: 2 * GIB,
        swap_used: 0,
    });
    match kind {
        Fixture::NeverConnected => {
            for _ in 0..3 {
                state.poll_failed(
                    "connect /run/swapkit/swapkit.sock: No such file or directory (os error 2)",
                );
            }
        }
        _ => {
            for t in 0..=SAMPLES {
                state.apply(snapshot(kind, t));
            }
        }
    }
    if kind == Fixture::Disconnected {
        state
            .poll_failed("read /run/swapkit/swapkit.sock: Connection reset by peer (os error 104)");
        state.poll_failed("connect /run/swapkit/swapkit.sock: Connection refused (os error 111)");
    }
    state
}

/// Three programs running on the swap space (`swapctl run`) at second `t`: a database held
/// at its limit and faulting steadily, a sort that met two unreadable pages, and a small
/// tool that has not paged yet.
pub fn processes_at(t: u64) -> Vec<ProcessUsage> {
    let db_faults = 400_000 + t * 1_250 + wave(t, 30, 600);
    vec![
        ProcessUsage {
            pid: 4121,
            uid: 0,
            command: "postgres -D /var/lib/postgresql/16/main".into(),
            objects: 3,
            swapped_pages: 180_224 + t * 10,
            resident_pages: 65_536,
            limit_pages: 65_536,
            faults: db_faults,
            major_faults: db_faults / 3,
            pages_in: db_faults / 3,
            pages_out: 200_000 + t * 40,
            read_errors: 0,
            since: 3_600 + t,
        },
        ProcessUsage {
            pid: 30_077,
            uid: 1000,
            command: "sort --buffer-size=6G --parallel=2 -o /var/tmp/sorted.txt /var/tmp/huge.txt"
                .into(),
            objects: 1,
            swapped_pages: 12_800,
            resident_pages: 4_100,
            limit_pages: 262_144,
            faults: 17_000 + t * 3,
            major_faults: 300,
            pages_in: 300,
            pages_out: 12_900,
            read_errors: 2,
            since: 42 + t,
        },
        ProcessUsage {
            pid: 30_412,
            uid: 1000,
            command: "python3 train.py --epochs 3".into(),
            objects: 1,
            swapped_pages: 0,
            resident_pages: 900,
            limit_pages: 262_144,
            faults: 900,
            major_faults: 0,
            pages_in: 0,
            pages_out: 0,
            read_errors: 0,
            since: t.min(5),
        },
    ]
}

/// `kind`'s [`state`] with the three programs of [`processes_at`] running on the swap space,
/// their faults per second over its last second, and their users' names.
pub fn state_with_processes(kind: Fixture) -> State {
    let mut state = state(kind);
    state.processes = processes_at(SAMPLES);
    state.fault_rates = fault_rates(&processes_at(SAMPLES - 1), &state.processes, 1.0);
    state.users = [(0, "root"), (1000, "alice")]
        .into_iter()
        .map(|(uid, name)| (uid, name.to_string()))
        .collect();
    state
}

/// A triangle wave in `0..=amplitude` with the given period, from integers only.
fn wave(t: u64, period: u64, amplitude: u64) -> u64 {
    let phase = t % period;
    let half = period / 2;
    let up = if phase < half { phase } else { period - phase };
    up * amplitude / half.max(1)
}

/// Pages written and read per second at second `t`: a steady pageout with bursts of pagein.
fn paging_rates(t: u64) -> (u64, u64) {
    let out = 1_800 + wave(t, 60, 2_400) + wave(t, 7, 300);
    let pin = 400 + wave(t + 20, 45, 1_600) + wave(t, 5, 200);
    (out, pin)
}

/// Cumulative (pages out, pages in) up to second `t`.
fn paging_totals(t: u64) -> (u64, u64) {
    (0..t).fold((0, 0), |(o, i), s| {
        let (ro, ri) = paging_rates(s);
        (o + ro, i + ri)
    })
}

/// The fraction of space used, in per mille, for each kind.
fn used_permille(kind: Fixture) -> [u64; 3] {
    match kind {
        Fixture::Normal | Fixture::Disconnected | Fixture::NeverConnected => [352, 341, 87],
        Fixture::AlmostFull => [951, 948, 802],
        Fixture::Full => [1000, 1000, 1000],
        Fixture::Draining => [512, 390, 140],
    }
}

/// One piece: a literal snapshot, field by field.
fn snapshot(kind: Fixture, t: u64) -> PagerStats {
    let (out_total, in_total) = paging_totals(t);
    let permille = used_permille(kind);
    let specs: [(&str, i32, u64, &str); 3] = [
        ("/dev/loop0", 10, GIB, "block"),
        ("/dev/loop1", 10, GIB, "block"),
        ("/var/tmp/swapkit-spill.img", -1, GIB / 2, "file"),
    ];
    let mut first_block = 0;
    let devices: Vec<DeviceStats> = specs
        .iter()
        .enumerate()
        .map(|(i, &(path, priority, size_bytes, kind_name))| {
            let total_pages = size_bytes / PAGE - 1 - if i == 2 { 3 } else { 0 };
            let bad_pages = if i == 2 { 3 } else { 0 };
            let used_pages = total_pages * permille[i] / 1000;
            let share = [45u64, 40, 15][i];
            let state = if kind == Fixture::Draining && i == 1 {
                DeviceState::Draining {
                    moved: used_pages * 2 / 5,
                    total: used_pages,
                }
            } else {
                DeviceState::Active
            };
            let free_pages = match state {
                DeviceState::Draining { .. } => 0,
                _ => total_pages - used_pages,
            };
            let d = DeviceStats {
                id: i as u32,
                path: path.to_string(),
                priority,
                state,
                kind: kind_name.to_string(),
                direct_io: true,
                discard: false,
                uuid: format!("6c1d8a3e-0000-4000-8000-00000000000{i}"),
                label: format!("swapkit{i}"),
                first_block,
                size_bytes,
                total_pages,
                used_pages,
                free_pages,
                bad_pages,
                io: device::AreaStats {
                    in_flight: [3, 1, 0][i],
                    reads: in_total * share / 100 / 6,
                    writes: out_total * share / 100 / 24,
                    pages_read: in_total * share / 100,
                    pages_written: out_total * share / 100,
                    read_errors: 0,
                    write_errors: 0,
                    read_latency: latency(180 + 40 * i as u64, in_total * share / 600),
                    write_latency: latency(420 + 90 * i as u64, out_total * share / 2400),
                    discards: 0,
                },
                corrupt: 0,
                last_error: None,
                frag: frag(free_pages, i as u64),
            };
            first_block += total_pages + 1;
            d
        })
        .collect();
    let total_pages: u64 = devices.iter().map(|d| d.total_pages).sum();
    let used_pages: u64 = devices.iter().map(|d| d.used_pages).sum();
    let bad_pages: u64 = devices.iter().map(|d| d.bad_pages).sum();
    let free_pages: u64 = devices.iter().map(|d| d.free_pages).sum();
    let hysteresis = match kind {
        Fixture::AlmostFull => Hysteresis {
            almost_full: true,
            full: false,
        },
        Fixture::Full => Hysteresis {
            almost_full: true,
            full: true,
        },
        _ => Hysteresis::default(),
    };
    let nswbuf = 256;
    let swap_async_max = 32;
    let full = kind == Fixture::Full;
    PagerStats {
        uptime_ms: 3_723_000 + t * 1000,
        page_size: PAGE,
        engine: "io_uring".to_string(),
        total_pages,
        used_pages,
        free_pages,
        bad_pages,
        hysteresis,
        tunables: Tunables {
            interleave: 32,
            nswbuf,
            swap_async_max,
            max_cluster: 32,
            nswap_lowat: total_pages / 32,
            nswap_hiwat: total_pages / 16,
            checksum: pager::Checksum::Crc32c,
        },
        pbufs: PbufStats {
            read: PoolStats {
                in_use: 3 + wave(t, 9, 8),
                max: nswbuf / 2,
                waits: 0,
            },
            sync_write: PoolStats {
                in_use: wave(t, 4, 2),
                max: nswbuf / 2,
                waits: 2,
            },
            async_write: PoolStats {
                in_use: if full { 0 } else { 20 + wave(t, 6, 12) },
                max: swap_async_max,
                waits: 1_204 + t * 3,
            },
        },
        counters: Counters {
            swapin: in_total / 6,
            swapout: out_total / 24,
            pages_in: in_total,
            pages_out: out_total,
            intrans_waits: t * 2,
            alloc_failures: if full { 5_120 + t * 40 } else { 0 },
            read_errors: 0,
            write_errors: 0,
            corrupt_pages: 0,
            write_retries: 0,
            async_write_failures: 0,
            events: match kind {
                Fixture::AlmostFull => 1,
                Fixture::Full => 2,
                _ => 0,
            },
        },
        devices,
        objects: 48,
        named_objects: 6,
        meta_bytes: used_pages * 4 + 48 * 512,
    }
}

fn latency(p50: u64, count: u64) -> LatencySummary {
    LatencySummary {
        count,
        mean_us: (p50 + p50 / 4) as f64,
        p50_us: p50,
        p99_us: p50 * 7,
        p999_us: p50 * 23,
        max_us: p50 * 61,
    }
}

/// A plausible free-space histogram for `free` blocks: many small ranges and a long tail.
fn frag(free: u64, seed: u64) -> FragStats {
    if free == 0 {
        return FragStats {
            text: "no free space\n".to_string(),
            ..FragStats::default()
        };
    }
    // Fibonacci size classes [F(k), F(k+1) - 1], as blist stats reports them.
    let mut classes = Vec::new();
    let (mut lo, mut hi) = (1u64, 2u64);
    while lo <= free {
        classes.push((lo, hi - 1));
        (lo, hi) = (hi, lo + hi);
    }
    let mut buckets: Vec<(u64, u64, u64)> = Vec::new();
    let mut remaining = free;
    for (k, &(lo, hi)) in classes.iter().enumerate() {
        let k = k as u64;
        // Counts fall off with size; a few classes are empty, as on a real device.
        let count = (900 + 37 * seed) >> (k / 2 + (k + seed) % 3);
        if count == 0 || (k + seed) % 7 == 5 {
            continue;
        }
        // Keep at least half the space for the one long range at the end.
        if count * hi > remaining / 2 {
            break;
        }
        remaining -= count * lo;
        buckets.push((lo, hi, count));
    }
    // What is left is one long free range (the untouched end of the device).
    let largest = remaining;
    match classes
        .iter()
        .find(|(lo, hi)| (*lo..=*hi).contains(&largest))
    {
        Some(&(lo, hi)) => match buckets.iter_mut().find(|b| b.0 == lo) {
            Some(b) => b.2 += 1,
            None => buckets.push((lo, hi, 1)),
        },
        None => buckets.push((largest, largest, 1)),
    }
    buckets.sort_unstable();
    let free_ranges: u64 = buckets.iter().map(|b| b.2).sum();
    let average = free / free_ranges.max(1);
    let text = buckets
        .iter()
        .map(|(lo, hi, n)| format!("{lo:>8} - {hi:>8}: {n}\n"))
        .collect();
    FragStats {
        free_ranges,
        largest,
        average,
        buckets,
        text,
    }
}
