//! What `swapctl top` shows: plain data, changed by the poll step and by keys, read by render.
//!
//! Nothing here touches the terminal, the socket or the clock: the poll step hands in
//! snapshots and system figures, input handling flips flags, and rendering only reads. That is
//! what lets every view be rendered from a fixture in a test.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use control::proto::ProcessUsage;
use pager::{DeviceStats, PagerStats};

/// The fastest refresh `+` or `-d` may ask for.
pub const INTERVAL_MIN: Duration = Duration::from_millis(100);
/// The slowest refresh.
pub const INTERVAL_MAX: Duration = Duration::from_secs(60);
/// The steps `+` and `-` walk through; a `-d` value between two steps snaps to the next one.
const INTERVAL_STEPS_MS: [u64; 11] = [
    100, 200, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 30_000, 60_000,
];
/// Rate samples kept for the sparklines: ten minutes at the default 1 s refresh.
pub const HISTORY_LEN: usize = 600;

/// The device table's sort order; `s` cycles through them in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortColumn {
    /// Swapon order, as the pager lists them.
    #[default]
    Swapon,
    Name,
    /// Highest priority first, as the allocator prefers them.
    Priority,
    /// Fullest first (by fraction used).
    Used,
    /// Busiest first.
    ReadsPerSec,
    WritesPerSec,
}

impl SortColumn {
    pub fn next(self) -> Self {
        match self {
            Self::Swapon => Self::Name,
            Self::Name => Self::Priority,
            Self::Priority => Self::Used,
            Self::Used => Self::ReadsPerSec,
            Self::ReadsPerSec => Self::WritesPerSec,
            Self::WritesPerSec => Self::Swapon,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Swapon => "swapon order",
            Self::Name => "name",
            Self::Priority => "priority",
            Self::Used => "used",
            Self::ReadsPerSec => "reads/s",
            Self::WritesPerSec => "writes/s",
        }
    }
}

/// Whether the last poll reached the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Connection {
    /// No poll has finished yet.
    #[default]
    Connecting,
    Connected,
    /// The last `failures` polls failed; the newest said `error`. Polling goes on.
    Disconnected {
        error: String,
        failures: u64,
    },
}

/// The machine's own memory and the kernel's swap, in bytes (from `sysinfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemMemory {
    pub mem_total: u64,
    pub mem_used: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

/// The one-line message under the panels: what a key did, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub is_error: bool,
}

/// Rates of one device, per second, from the last two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeviceRates {
    /// Read I/Os (clusters) per second.
    pub reads: f64,
    pub writes: f64,
}

/// Rates from the last two snapshots, per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    pub pages_in: f64,
    pub pages_out: f64,
    /// By device id.
    pub devices: BTreeMap<u32, DeviceRates>,
}

/// Recent rates, oldest first, rounded to whole units per second for the sparklines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub pages_in: VecDeque<u64>,
    pub pages_out: VecDeque<u64>,
    /// Per device id: (reads/s, writes/s).
    pub devices: BTreeMap<u32, (VecDeque<u64>, VecDeque<u64>)>,
}

impl History {
    fn push(ring: &mut VecDeque<u64>, value: f64) {
        if ring.len() == HISTORY_LEN {
            ring.pop_front();
        }
        ring.push_back(value.round() as u64);
    }

    /// The newest `n` samples of a ring, oldest first (what a sparkline `n` cells wide shows).
    pub fn tail(ring: &VecDeque<u64>, n: usize) -> Vec<u64> {
        ring.iter()
            .skip(ring.len().saturating_sub(n))
            .copied()
            .collect()
    }
}

/// Everything one frame shows. Built by [`State::new`], fed by [`State::apply`] and
/// [`State::poll_failed`], changed by `input::handle_key`.
#[derive(Debug, Clone)]
pub struct State {
    /// The newest snapshot; kept (and shown dimmed) while disconnected.
    pub stats: Option<PagerStats>,
    pub rates: Rates,
    pub history: History,
    /// The selected device, by id, so the selection follows it when the sort order changes.
    pub selected: Option<u32>,
    pub sort: SortColumn,
    /// `f`: the display stops changing (and the poll step stops fetching).
    pub frozen: bool,
    pub interval: Duration,
    pub help: bool,
    pub connection: Connection,
    pub message: Option<Message>,
    pub system: Option<SystemMemory>,
    /// What we talk to (the socket path), for the title line.
    pub source: String,
    /// Whether `a` / `A` may change `swap_async_max`.
    pub allow_tuning: bool,
    /// The programs running on the swap space (`swapctl run`), as the newest poll had them.
    pub processes: Vec<ProcessUsage>,
    /// Faults per second of each of them, by pid, from the last two polls.
    pub fault_rates: BTreeMap<i32, f64>,
    /// Login names of the uids shown, looked up by the poll step (render never asks the
    /// system).
    pub users: BTreeMap<u32, String>,
}

impl State {
    pub fn new(source: impl Into<String>, interval: Duration, allow_tuning: bool) -> Self {
        Self {
            stats: None,
            rates: Rates::default(),
            history: History::default(),
            selected: None,
            sort: SortColumn::default(),
            frozen: false,
            interval: clamp_interval(interval),
            help: false,
            connection: Connection::Connecting,
            message: None,
            system: None,
            source: source.into(),
            allow_tuning,
            processes: Vec::new(),
            fault_rates: BTreeMap::new(),
            users: BTreeMap::new(),
        }
    }

    /// Take a new snapshot with the programs running on the swap space: their faults per
    /// second against the previous poll (by the daemon's clock, as [`State::apply`]: a
    /// restarted daemon starts the rates over, a poll at the same uptime changes only the
    /// figures), then the snapshot itself.
    pub fn apply_with_processes(&mut self, stats: PagerStats, processes: Vec<ProcessUsage>) {
        match &self.stats {
            Some(prev) if stats.uptime_ms < prev.uptime_ms => self.fault_rates.clear(),
            Some(prev) if stats.uptime_ms > prev.uptime_ms => {
                let secs = (stats.uptime_ms - prev.uptime_ms) as f64 / 1000.0;
                self.fault_rates = fault_rates(&self.processes, &processes, secs);
            }
            _ => self
                .fault_rates
                .retain(|pid, _| processes.iter().any(|p| p.pid == *pid)),
        }
        self.processes = processes;
        self.apply(stats);
    }

    /// The name to show for `uid`: its login name if the poll step found one, else the number.
    pub fn user(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    /// Take a new snapshot: compute rates against the previous one and record them.
    ///
    /// Rates use the daemon's own clock (`uptime_ms`), so they do not drift when a poll is late
    /// and a test can feed snapshots without sleeping. A snapshot whose uptime went backwards
    /// comes from a restarted daemon: the history starts over rather than showing a spike; a
    /// single counter that shrank reads as 0 (see [`compute_rates`]). A snapshot with the same
    /// uptime changes nothing but the figures (no rate over zero seconds).
    pub fn apply(&mut self, stats: PagerStats) {
        self.connection = Connection::Connected;
        match &self.stats {
            Some(prev) if stats.uptime_ms < prev.uptime_ms => {
                self.rates = Rates::default();
                self.history = History::default();
            }
            Some(prev) if stats.uptime_ms > prev.uptime_ms => {
                let rates = compute_rates(prev, &stats);
                History::push(&mut self.history.pages_in, rates.pages_in);
                History::push(&mut self.history.pages_out, rates.pages_out);
                self.history
                    .devices
                    .retain(|id, _| rates.devices.contains_key(id));
                for (id, r) in &rates.devices {
                    let (reads, writes) = self.history.devices.entry(*id).or_default();
                    History::push(reads, r.reads);
                    History::push(writes, r.writes);
                }
                self.rates = rates;
            }
            _ => {}
        }
        self.stats = Some(stats);
        self.fix_selection();
    }

    /// Record a failed poll; the last snapshot stays so the screen keeps its shape.
    pub fn poll_failed(&mut self, error: impl Into<String>) {
        let failures = match &self.connection {
            Connection::Disconnected { failures, .. } => failures + 1,
            _ => 1,
        };
        self.connection = Connection::Disconnected {
            error: error.into(),
            failures,
        };
    }

    pub fn set_message(&mut self, text: impl Into<String>, is_error: bool) {
        self.message = Some(Message {
            text: text.into(),
            is_error,
        });
    }

    pub fn is_connected(&self) -> bool {
        self.connection == Connection::Connected
    }

    /// Indices into `stats.devices` in display order (by `sort`, ties in swapon order).
    pub fn device_order(&self) -> Vec<usize> {
        let Some(stats) = &self.stats else {
            return Vec::new();
        };
        let devices = &stats.devices;
        let mut order: Vec<usize> = (0..devices.len()).collect();
        let rate = |d: &DeviceStats| self.rates.devices.get(&d.id).copied().unwrap_or_default();
        match self.sort {
            SortColumn::Swapon => {}
            SortColumn::Name => order.sort_by(|&a, &b| devices[a].path.cmp(&devices[b].path)),
            SortColumn::Priority => order.sort_by_key(|&i| std::cmp::Reverse(devices[i].priority)),
            SortColumn::Used => order.sort_by(|&a, &b| {
                used_fraction(&devices[b]).total_cmp(&used_fraction(&devices[a]))
            }),
            SortColumn::ReadsPerSec => {
                order.sort_by(|&a, &b| rate(&devices[b]).reads.total_cmp(&rate(&devices[a]).reads))
            }
            SortColumn::WritesPerSec => order.sort_by(|&a, &b| {
                rate(&devices[b])
                    .writes
                    .total_cmp(&rate(&devices[a]).writes)
            }),
        }
        order
    }

    pub fn selected_device(&self) -> Option<&DeviceStats> {
        let stats = self.stats.as_ref()?;
        let id = self.selected?;
        stats.devices.iter().find(|d| d.id == id)
    }

    /// Move the selection `step` rows in display order, wrapping around.
    pub fn select_relative(&mut self, step: isize) {
        let order = self.device_order();
        let Some(stats) = &self.stats else { return };
        if order.is_empty() {
            return;
        }
        let current = order
            .iter()
            .position(|&i| Some(stats.devices[i].id) == self.selected)
            .unwrap_or(0);
        let n = order.len() as isize;
        let next = (current as isize + step).rem_euclid(n) as usize;
        self.selected = Some(stats.devices[order[next]].id);
    }

    /// Keep the selection on a device that exists: the first in display order if it went away.
    fn fix_selection(&mut self) {
        if self.selected_device().is_some() {
            return;
        }
        let order = self.device_order();
        self.selected = self
            .stats
            .as_ref()
            .and_then(|s| order.first().map(|&i| s.devices[i].id));
    }

    /// `+`: the next slower refresh step. Returns whether it changed.
    pub fn interval_up(&mut self) -> bool {
        let ms = self.interval.as_millis() as u64;
        let next = INTERVAL_STEPS_MS.iter().copied().find(|&s| s > ms);
        self.set_interval_ms(next)
    }

    /// `-`: the next faster refresh step. Returns whether it changed.
    pub fn interval_down(&mut self) -> bool {
        let ms = self.interval.as_millis() as u64;
        let next = INTERVAL_STEPS_MS.iter().rev().copied().find(|&s| s < ms);
        self.set_interval_ms(next)
    }

    fn set_interval_ms(&mut self, ms: Option<u64>) -> bool {
        match ms {
            Some(ms) => {
                self.interval = Duration::from_millis(ms);
                true
            }
            None => false,
        }
    }
}

/// Clamp a requested refresh interval into `INTERVAL_MIN..=INTERVAL_MAX`.
pub fn clamp_interval(interval: Duration) -> Duration {
    interval.clamp(INTERVAL_MIN, INTERVAL_MAX)
}

/// Fraction of a device's usable blocks that are in use, 0 for an empty device.
pub fn used_fraction(d: &DeviceStats) -> f64 {
    if d.total_pages == 0 {
        0.0
    } else {
        d.used_pages as f64 / d.total_pages as f64
    }
}

/// Faults per second of each program in `cur` over `secs` seconds since `prev`, by pid. A
/// program new since `prev`, or whose total went down (another program under a reused pid),
/// reads 0; so does anything over zero seconds.
pub fn fault_rates(prev: &[ProcessUsage], cur: &[ProcessUsage], secs: f64) -> BTreeMap<i32, f64> {
    cur.iter()
        .map(|p| {
            let rate = match prev.iter().find(|q| q.pid == p.pid) {
                Some(q) if secs > 0.0 => p.faults.saturating_sub(q.faults) as f64 / secs,
                _ => 0.0,
            };
            (p.pid, rate)
        })
        .collect()
}

/// Per-second rates between two snapshots of the same daemon (`cur` strictly newer).
///
/// A counter that went down (a device removed and re-added under the same id) yields 0 for
/// that counter rather than wrapping. Devices only in `cur` have no rate yet and read 0.
pub fn compute_rates(prev: &PagerStats, cur: &PagerStats) -> Rates {
    let secs = cur.uptime_ms.saturating_sub(prev.uptime_ms) as f64 / 1000.0;
    let per_sec = |a: u64, b: u64| {
        if secs > 0.0 {
            b.saturating_sub(a) as f64 / secs
        } else {
            0.0
        }
    };
    let devices = cur
        .devices
        .iter()
        .map(|d| {
            let rates = match prev.devices.iter().find(|p| p.id == d.id) {
                Some(p) => DeviceRates {
                    reads: per_sec(p.io.reads, d.io.reads),
                    writes: per_sec(p.io.writes, d.io.writes),
                },
                None => DeviceRates::default(),
            };
            (d.id, rates)
        })
        .collect();
    Rates {
        pages_in: per_sec(prev.counters.pages_in, cur.counters.pages_in),
        pages_out: per_sec(prev.counters.pages_out, cur.counters.pages_out),
        devices,
    }
}
