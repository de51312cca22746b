//! The results model: every figure of a run, and the machine it ran on. Serialised as
//! `benchmarks/results/<name>.json`; the table, the markdown and the plots read only this.

use serde::{Deserialize, Serialize};

use device::units::human_iec;

use crate::latency::LatencyStats;
use crate::machine::Machine;

/// Bumped when a field changes meaning.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    pub name: String,
    /// RFC 3339, UTC.
    pub started_utc: String,
    pub seconds: f64,
    pub quick: bool,
    pub setup: SetupInfo,
    pub machine: Machine,
    /// The raw devices through the device engine: the physical limit.
    pub raw: Vec<Figure>,
    /// The same shapes through the pager.
    pub pager: Vec<Figure>,
    /// Each pager figure next to its raw baseline.
    pub comparisons: Vec<Comparison>,
    pub interleave: Vec<InterleaveCell>,
    pub fragmentation: Option<Fragmentation>,
    pub swapoff: Option<Swapoff>,
    /// fio on the same devices (`--fio`).
    pub fio: Vec<Figure>,
    /// The kernel's own swap on the same devices (`--kernel-baseline`).
    pub kernel: Vec<Figure>,
    /// The region bench (`--only region`): `region-mem-*` on a `region::Region`,
    /// `kernel-mem-*` on the same workloads under the kernel's swap.
    #[serde(default)]
    pub memory: Vec<Figure>,
    /// How the region bench ran.
    #[serde(default)]
    pub memory_setup: Option<MemSetup>,
    /// The blist / swmeta micro-benchmarks, summarised.
    pub micro: Vec<Micro>,
    /// What was skipped or degraded, and why. Shown in every output.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SetupInfo {
    /// "loop" or "files".
    pub mode: String,
    /// Why files were used, when they were.
    pub why_files: Option<String>,
    /// "io_uring" or "threads".
    pub engine: String,
    pub devices: Vec<DeviceInfo>,
    pub backing_dir: String,
    /// The pager's tunables for the main workloads.
    pub interleave: u64,
    pub max_cluster: u64,
    pub swap_async_max: u64,
    pub nswbuf: u64,
}

impl SetupInfo {
    /// The report's first line: what the figures were measured on.
    pub fn headline(&self) -> String {
        let n = self.devices.len();
        let size = self.devices.first().map_or(0, |d| d.size_bytes);
        let what = match self.mode.as_str() {
            "loop" => format!(
                "{n} loop devices (direct I/O, 4096-byte blocks) of {} each",
                human_iec(size)
            ),
            _ => format!(
                "{n} plain files of {} each (NOT loop devices: {})",
                human_iec(size),
                self.why_files.as_deref().unwrap_or("requested")
            ),
        };
        format!("{what}, {} engine, in {}", self.engine, self.backing_dir)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub path: String,
    pub backing_file: String,
    pub size_bytes: u64,
    pub direct_io: bool,
}

/// One measured shape of I/O.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figure {
    /// Stable id: `raw-seq-write`, `pageout-seq`, `pagein-rand-8t`, ...
    pub id: String,
    /// One line: what was done.
    pub what: String,
    pub threads: u32,
    /// I/Os kept in flight (per thread for synchronous callers: 1).
    pub queue_depth: u32,
    /// Bytes moved by the measured phase.
    pub bytes: u64,
    /// Operations (I/Os for raw, calls for the pager).
    pub ops: u64,
    pub seconds: f64,
    pub mib_s: f64,
    pub iops: f64,
    pub latency: Option<LatencyStats>,
    /// User + system CPU seconds of the phase (getrusage of the bench; fio's usr + sys).
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// `cpu_seconds` per GiB moved.
    #[serde(default)]
    pub cpu_s_per_gib: Option<f64>,
    /// Every repetition of a repeated workload, in the order they ran; the figure's own
    /// numbers are those of the median one (by MiB/s, or IOPS when no bytes move).
    #[serde(default)]
    pub repetitions: Vec<Rep>,
    /// (max − min) / median of the repetitions' MiB/s (IOPS), in percent.
    #[serde(default)]
    pub spread_pct: Option<f64>,
    /// Page faults that read from swap during the phase (the region bench).
    #[serde(default)]
    pub major_faults: Option<u64>,
}

/// One repetition of a figure, as the JSON keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rep {
    pub bytes: u64,
    pub ops: u64,
    pub seconds: f64,
    pub mib_s: f64,
    pub iops: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub cpu_seconds: Option<f64>,
    #[serde(default)]
    pub major_faults: Option<u64>,
}

impl Figure {
    pub fn new(id: &str, what: impl Into<String>, bytes: u64, ops: u64, seconds: f64) -> Figure {
        let secs = seconds.max(1e-9);
        Figure {
            id: id.to_string(),
            what: what.into(),
            threads: 1,
            queue_depth: 1,
            bytes,
            ops,
            seconds,
            mib_s: bytes as f64 / (1u64 << 20) as f64 / secs,
            iops: ops as f64 / secs,
            latency: None,
            cpu_seconds: None,
            cpu_s_per_gib: None,
            repetitions: Vec::new(),
            spread_pct: None,
            major_faults: None,
        }
    }

    /// With the major faults the phase took.
    pub fn with_major_faults(mut self, n: u64) -> Figure {
        self.major_faults = Some(n);
        self
    }

    /// With the CPU seconds the phase took.
    pub fn with_cpu(mut self, cpu_seconds: f64) -> Figure {
        self.cpu_seconds = Some(cpu_seconds);
        self.cpu_s_per_gib = crate::cpu::per_gib(cpu_seconds, self.bytes);
        self
    }

    /// The figure to report for repetitions of one workload: the median one (by MiB/s, or
    /// IOPS when no bytes move), keeping every repetition and their spread. `None` for none.
    pub fn median_of(reps: Vec<Figure>) -> Option<Figure> {
        let key = |f: &Figure| if f.bytes > 0 { f.mib_s } else { f.iops };
        let all: Vec<Rep> = reps.iter().map(Figure::rep).collect();
        let mut sorted = reps;
        sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
        let (lo, hi) = (key(sorted.first()?), key(sorted.last()?));
        let mut median = sorted.swap_remove(sorted.len() / 2);
        let mid = key(&median);
        median.spread_pct = (mid > 0.0).then(|| (hi - lo) / mid * 100.0);
        median.repetitions = all;
        Some(median)
    }

    fn rep(&self) -> Rep {
        Rep {
            bytes: self.bytes,
            ops: self.ops,
            seconds: self.seconds,
            mib_s: self.mib_s,
            iops: self.iops,
            p50_us: self.p(50.0),
            p99_us: self.p(99.0),
            cpu_seconds: self.cpu_seconds,
            major_faults: self.major_faults,
        }
    }

    pub fn with_shape(mut self, threads: u32, queue_depth: u32) -> Figure {
        self.threads = threads;
        self.queue_depth = queue_depth;
        self
    }

    pub fn with_latency(mut self, l: LatencyStats) -> Figure {
        self.latency = Some(l);
        self
    }

    pub fn p(&self, p: f64) -> Option<u64> {
        self.latency.as_ref().map(|l| l.at(p))
    }
}

/// Which number of a figure a comparison looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    MibS,
    Iops,
    P99Us,
    P50Us,
    /// CPU seconds per GiB moved.
    CpuPerGib,
    /// Major faults per 1000 operations (touches).
    MajorFaultsPerKTouch,
}

impl Metric {
    pub fn unit(self) -> &'static str {
        match self {
            Metric::MibS => "MiB/s",
            Metric::Iops => "IOPS",
            Metric::P99Us => "p99 µs",
            Metric::P50Us => "p50 µs",
            Metric::CpuPerGib => "CPU s/GiB",
            Metric::MajorFaultsPerKTouch => "major faults / 1k touches",
        }
    }

    /// For throughput more is better; for latency less is.
    pub fn higher_is_better(self) -> bool {
        !matches!(
            self,
            Metric::P99Us | Metric::P50Us | Metric::CpuPerGib | Metric::MajorFaultsPerKTouch
        )
    }

    pub fn of(self, f: &Figure) -> f64 {
        match self {
            Metric::MibS => f.mib_s,
            Metric::Iops => f.iops,
            Metric::P99Us => f.p(99.0).unwrap_or(0) as f64,
            Metric::P50Us => f.p(50.0).unwrap_or(0) as f64,
            Metric::CpuPerGib => f.cpu_s_per_gib.unwrap_or(0.0),
            Metric::MajorFaultsPerKTouch => {
                f.major_faults.unwrap_or(0) as f64 * 1000.0 / f.ops.max(1) as f64
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub workload: String,
    pub baseline: String,
    /// What the baseline stands for: `same shape` (the best of our raw engine and fio at
    /// the workload's own depth), `any QD ≤ 32` (the best of the whole sweep), `fio` (fio
    /// itself), `kernel`, or `engine` (our raw engine against fio).
    #[serde(default)]
    pub basis: String,
    pub metric: Metric,
    pub value: f64,
    pub base: f64,
    /// value / base.
    pub ratio: f64,
    /// The target for this ratio (≥ for throughput, ≤ for latency), if it sets one.
    pub target: Option<f64>,
    pub met: Option<bool>,
}

impl Comparison {
    /// The same with its basis named.
    pub fn on(mut self, basis: &str) -> Comparison {
        self.basis = basis.to_owned();
        self
    }

    pub fn new(work: &Figure, base: &Figure, metric: Metric, target: Option<f64>) -> Comparison {
        let value = metric.of(work);
        let b = metric.of(base);
        let ratio = if b > 0.0 { value / b } else { 0.0 };
        let met = target.map(|t| {
            if metric.higher_is_better() {
                ratio >= t
            } else {
                ratio <= t
            }
        });
        Comparison {
            workload: work.id.clone(),
            baseline: base.id.clone(),
            basis: String::new(),
            metric,
            value,
            base: b,
            ratio,
            target,
            met,
        }
    }
}

/// How the region bench ran (`--only region`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemSetup {
    /// `L`: the region's `resident_limit` and the kernel child's cgroup memory limit.
    pub limit_bytes: u64,
    /// The data set, 4 × L.
    pub data_bytes: u64,
    pub repetitions: usize,
    pub region_config: Option<region::RegionConfig>,
    /// `vm.page-cluster` and `vm.swappiness` of the kernel side.
    pub kernel_page_cluster: Option<u64>,
    pub kernel_swappiness: Option<u64>,
    /// The region's counters at the end of each repetition.
    pub region_stats: Vec<region::RegionStats>,
    /// The kernel child's cgroup `pgmajfault` per phase, one per repetition (beside its
    /// `ru_majflt` in the figures).
    pub cgroup_pgmajfault: std::collections::BTreeMap<String, Vec<u64>>,
}

/// One cell of the interleave matrix.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InterleaveCell {
    pub devices: u32,
    /// 0: fill one device before the next.
    pub interleave: u64,
    pub pageout_mib_s: f64,
    pub pagein_mib_s: f64,
    /// Pages that landed on each device (how the stripe spread them).
    pub pages_per_device: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fragmentation {
    /// Fill level reached before the churn, in percent of all usable pages.
    pub fill_percent: f64,
    pub churn_ops: u64,
    pub churn_seconds: f64,
    /// Pages per putpages cluster during the churn: (cluster size, how many clusters).
    pub cluster_sizes: Vec<(u64, u64)>,
    pub alloc_failures: u64,
    pub before: Vec<FragSnapshot>,
    pub after: Vec<FragSnapshot>,
}

/// A blist's free-space picture of one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FragSnapshot {
    pub device: String,
    pub free_pages: u64,
    pub free_ranges: u64,
    pub largest: u64,
    pub average: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Swapoff {
    pub device: String,
    pub bytes: u64,
    pub seconds: f64,
    pub mib_s: f64,
    pub pages_lost: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Micro {
    pub crate_name: String,
    /// (benchmark, ns per iteration or the crate's own unit, as printed).
    pub lines: Vec<(String, String)>,
    /// Where to read more when we did not run it.
    pub link: Option<String>,
    /// The crate's own benchmark tables (markdown lines), copied from its README.
    #[serde(default)]
    pub tables: Vec<String>,
}

/// One progress line per finished figure, on stderr (every bench part prints its figures
/// so as it measures them).
pub fn line(f: &Figure) {
    let lat = f.p(99.0).map_or(String::new(), |p99| {
        format!(", p50 {} µs, p99 {p99} µs", f.p(50.0).unwrap_or(0))
    });
    let spread = f
        .spread_pct
        .map_or(String::new(), |s| format!(", spread {s:.0}%"));
    let cpu = f
        .cpu_s_per_gib
        .map_or(String::new(), |c| format!(", {c:.2} CPU s/GiB"));
    eprintln!(
        "  {:<28} {:>8.1} MiB/s {:>9.0} IOPS{lat}{spread}{cpu}",
        f.id, f.mib_s, f.iops
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_ratios_are_met_when_lower() {
        let mut a = Figure::new("a", "", 0, 1, 1.0);
        let mut b = Figure::new("b", "", 0, 1, 1.0);
        let lat = |p99| LatencyStats {
            percentiles: vec![crate::latency::Percentile { p: 99.0, us: p99 }],
            ..Default::default()
        };
        a.latency = Some(lat(110));
        b.latency = Some(lat(100));
        let c = Comparison::new(&a, &b, Metric::P99Us, Some(1.25));
        assert!((c.ratio - 1.1).abs() < 1e-9);
        assert_eq!(c.met, Some(true));
    }

    #[test]
    fn the_median_repetition_is_reported_and_every_one_kept() {
        let reps = [300u64, 100, 200]
            .iter()
            .map(|&mib| Figure::new("w", "", mib << 20, 1, 1.0).with_cpu(1.0))
            .collect();
        let f = Figure::median_of(reps).unwrap();
        assert!((f.mib_s - 200.0).abs() < 1e-9);
        let kept: Vec<f64> = f.repetitions.iter().map(|r| r.mib_s.round()).collect();
        assert_eq!(kept, [300.0, 100.0, 200.0]);
        assert!((f.spread_pct.unwrap() - 100.0).abs() < 1e-9);
        assert!((f.cpu_s_per_gib.unwrap() - 5.12).abs() < 1e-9);
        assert!(Figure::median_of(Vec::new()).is_none());
    }

    #[test]
    fn throughput_ratios_are_met_when_higher() {
        let a = Figure::new("a", "", 80 << 20, 1, 1.0);
        let b = Figure::new("b", "", 100 << 20, 1, 1.0);
        let c = Comparison::new(&a, &b, Metric::MibS, Some(0.9));
        assert_eq!(c.met, Some(false));
    }
}
