//! The raw baselines: the bench's devices measured directly through the device crate's I/O
//! engine, with the shapes the pager produces. They are the physical limit every pager figure
//! is divided by, taken in the same run on the same devices.
//!
//! At queue depth 1 the driver waits on each I/O with `Engine::submit_wait` (it reaps its own
//! completion, as fio does). Above that, one driver thread keeps `queue_depth` I/Os in flight across all devices at once: sequential
//! clusters go round-robin over the devices (each with its own cursor, the way interleaved
//! pageout stripes), random reads pick a device and a page at random. Latency is taken from
//! submission to the moment the driver sees the completion, which is what a caller of the
//! pager waiting on the same I/O would see.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use device::{Engine, IoCompletion, IoOp, IoRequest, PageBuf, SwapArea};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cancel;
use crate::error::Error;
use crate::latency::Recorder;
use crate::progress::Progress;
use crate::results::Figure;

/// How the next I/O is chosen.
#[derive(Debug, Clone, Copy)]
pub enum Pattern {
    /// Clusters of `pages` pages, round-robin over the devices, each device read in order.
    Sequential { pages: usize },
    /// `pages`-page I/Os at random pages of random devices.
    Random { pages: usize },
}

/// When to stop: once at least `bytes` were issued and `min_time` has passed, or at
/// `max_time` whatever was done. The minimum time keeps short phases on a fast device from
/// measuring mostly start-up and noise.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub bytes: u64,
    pub min_time: Duration,
    pub max_time: Duration,
}

/// What one run of the driver measured.
#[derive(Debug)]
pub struct Measured {
    pub bytes: u64,
    pub ops: u64,
    pub seconds: f64,
    pub latency: Recorder,
}

impl Measured {
    pub fn figure(&self, id: &str, what: &str, queue_depth: u32) -> Figure {
        Figure::new(id, what, self.bytes, self.ops, self.seconds)
            .with_shape(1, queue_depth)
            .with_latency(self.latency.summary())
    }
}

/// Chooses the (area, first page) of each I/O.
struct Picker<'a> {
    areas: &'a [Arc<SwapArea>],
    pattern: Pattern,
    /// Pages per I/O.
    pages: u64,
    rng: SmallRng,
    /// Sequential: the next page of each area.
    cursors: Vec<u64>,
    /// Sequential: the area of the next I/O.
    next_area: usize,
}

impl<'a> Picker<'a> {
    fn new(areas: &'a [Arc<SwapArea>], pattern: Pattern) -> Picker<'a> {
        let pages = match pattern {
            Pattern::Sequential { pages } | Pattern::Random { pages } => pages.max(1) as u64,
        };
        Picker {
            areas,
            pattern,
            pages,
            rng: SmallRng::seed_from_u64(0x5eed),
            cursors: vec![1; areas.len()],
            next_area: 0,
        }
    }

    /// The next (area, page) to touch, or `None` when the chosen area is too small for one
    /// I/O. Sequential I/Os go round-robin, each area read in order from page 1 and wrapping
    /// before its last data page; random ones pick an area, then a page, uniformly.
    fn next(&mut self) -> Option<(usize, u64)> {
        let a = match self.pattern {
            Pattern::Sequential { .. } => {
                let a = self.next_area;
                self.next_area = (self.next_area + 1) % self.areas.len();
                a
            }
            Pattern::Random { .. } => self.rng.random_range(0..self.areas.len()),
        };
        let last = self.areas[a].last_page();
        if last < self.pages {
            return None;
        }
        let page = match self.pattern {
            Pattern::Sequential { .. } => {
                let cursor = &mut self.cursors[a];
                if *cursor + self.pages - 1 > last {
                    *cursor = 1;
                }
                let p = *cursor;
                *cursor += self.pages;
                p
            }
            Pattern::Random { .. } => self.rng.random_range(1..=last - self.pages + 1),
        };
        Some((a, page))
    }
}

/// A completion as the driver thread sees it, with the time it was submitted.
struct Done {
    submitted: Instant,
    completion: IoCompletion,
}

/// Submits one I/O whose completion goes to the driver's channel.
struct Submitter<'a> {
    engine: &'a Engine,
    areas: &'a [Arc<SwapArea>],
    op: IoOp,
    tx: mpsc::Sender<Done>,
}

impl Submitter<'_> {
    fn submit(&self, area: usize, page: u64, buf: PageBuf) {
        let tx = self.tx.clone();
        let submitted = Instant::now();
        let req = IoRequest {
            tag: area as u64,
            op: self.op,
            page,
            buf,
        };
        let done = move |completion| {
            let _ = tx.send(Done {
                submitted,
                completion,
            });
        };
        self.engine.submit(&self.areas[area], req, Box::new(done));
    }
}

/// Run `op` with `pattern` at `queue_depth` over `areas` until the budget is spent.
///
/// Returns only once every I/O it submitted has completed, also on error or Ctrl-C, so no
/// buffer is still in the engine's hands when the caller moves on.
/// One piece: the first fill and the refill loop share the in-flight count and the byte
/// counters, which split functions would pass back and forth.
pub fn drive(
    engine: &Engine,
    areas: &[Arc<SwapArea>],
    op: IoOp,
    pattern: Pattern,
    queue_depth: usize,
    budget: Budget,
    label: &str,
) -> Result<Measured, Error> {
    if areas.is_empty() {
        return Err(Error::workload("raw", "no devices"));
    }
    if queue_depth <= 1 {
        return drive_waiting(engine, areas, op, pattern, budget, label);
    }
    let mut picker = Picker::new(areas, pattern);
    let io_bytes = picker.pages * device::PAGE_SIZE as u64;
    let (tx, rx) = mpsc::channel::<Done>();
    let submitter = Submitter {
        engine,
        areas,
        op,
        tx,
    };
    let too_small = || Error::workload("raw", "devices too small for one cluster");

    let progress = Progress::start(label, budget.bytes);
    let mut latency = Recorder::new();
    let (mut bytes, mut ops, mut issued_bytes) = (0u64, 0u64, 0u64);
    let mut in_flight = 0usize;
    let mut failure: Option<Error> = None;
    let start = Instant::now();
    for _ in 0..queue_depth.max(1) {
        let Some((a, page)) = picker.next() else {
            failure = Some(too_small());
            break;
        };
        submitter.submit(a, page, filled(picker.pages as usize));
        in_flight += 1;
        issued_bytes += io_bytes;
    }
    // Each completion is counted and, while the budget lasts, its buffer goes straight
    // back out; after the first error or Ctrl-C the rest only drain.
    while in_flight > 0 {
        let Ok(Done {
            submitted,
            completion,
        }) = rx.recv()
        else {
            break;
        };
        in_flight -= 1;
        if let Err(e) = completion.result {
            failure.get_or_insert(Error::from(e));
            continue;
        }
        latency.record(submitted.elapsed());
        bytes += io_bytes;
        ops += 1;
        progress.add(io_bytes);
        let more = failure.is_none()
            && !cancel::cancelled()
            && start.elapsed() < budget.max_time
            && (issued_bytes < budget.bytes || start.elapsed() < budget.min_time);
        if more && let Some((a, page)) = picker.next() {
            submitter.submit(a, page, completion.buf);
            in_flight += 1;
            issued_bytes += io_bytes;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(progress);
    if let Some(e) = failure {
        return Err(e);
    }
    cancel::check()?;
    Ok(Measured {
        bytes,
        ops,
        seconds,
        latency,
    })
}

/// Queue depth 1: one I/O at a time with [`Engine::submit_wait`], so this thread issues
/// each I/O and reaps its own completion (no engine thread, no hand-off), as fio does at
/// `--iodepth=1` and as a pager caller waiting on its page does. Same budget and figures
/// as [`drive`].
fn drive_waiting(
    engine: &Engine,
    areas: &[Arc<SwapArea>],
    op: IoOp,
    pattern: Pattern,
    budget: Budget,
    label: &str,
) -> Result<Measured, Error> {
    let mut picker = Picker::new(areas, pattern);
    let io_bytes = picker.pages * device::PAGE_SIZE as u64;
    let progress = Progress::start(label, budget.bytes);
    let mut latency = Recorder::new();
    let (mut bytes, mut ops) = (0u64, 0u64);
    let mut buf = filled(picker.pages as usize);
    let start = Instant::now();
    while !cancel::cancelled()
        && start.elapsed() < budget.max_time
        && (bytes < budget.bytes || start.elapsed() < budget.min_time)
    {
        let Some((a, page)) = picker.next() else {
            return Err(Error::workload("raw", "devices too small for one cluster"));
        };
        let req = IoRequest {
            tag: a as u64,
            op,
            page,
            buf,
        };
        let t = Instant::now();
        let c = engine.submit_wait(&areas[a], req);
        latency.record(t.elapsed());
        c.result?;
        buf = c.buf;
        bytes += io_bytes;
        ops += 1;
        progress.add(io_bytes);
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(progress);
    cancel::check()?;
    Ok(Measured {
        bytes,
        ops,
        seconds,
        latency,
    })
}

/// A buffer of non-zero data, so writes never look like holes to a clever backing store.
fn filled(pages: usize) -> PageBuf {
    let mut b = PageBuf::new(pages);
    for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
        *x = (i as u8) | 1;
    }
    b
}

/// The raw figures the pager workloads are compared with.
#[derive(Debug, Clone, Copy)]
pub struct RawPlan {
    /// In-flight clusters for the sequential runs: the pager's `swap_async_max`.
    pub seq_queue_depth: usize,
    pub cluster_pages: usize,
    /// The fixed work of each sequential run (passes wrap over the devices).
    pub seq_bytes: u64,
    /// The fixed work of each random run.
    pub rand_bytes: u64,
    /// Each run is repeated this often; its figure is the median (all are kept).
    pub repetitions: usize,
    /// Also `raw-seq-read-1dev` (the limit of a swapoff), over this many bytes.
    pub one_device_bytes: Option<u64>,
}

/// One baseline: a figure `id` from [`drive`] over the first `devices` areas.
struct Run {
    id: String,
    what: String,
    devices: usize,
    op: IoOp,
    pattern: Pattern,
    depth: usize,
    budget: Budget,
}

/// Open the areas, run the baselines, close the areas again (the pager opens them
/// exclusively afterwards, so the caller must drop the engine, which may still hold the
/// areas of its last completions, before it starts a pager).
pub fn baselines(
    engine: &Engine,
    paths: &[std::path::PathBuf],
    plan: &RawPlan,
) -> Result<Vec<Figure>, Error> {
    let raw = RawRig::open(paths, plan, true)?;
    let mut out = Vec::new();
    for id in raw.ids() {
        let mut reps = Vec::new();
        for _ in 0..plan.repetitions.max(1) {
            reps.push(raw.once(engine, &id)?);
        }
        out.extend(Figure::median_of(reps));
    }
    Ok(out)
}

/// The devices opened for the raw baselines of a plan, so that each baseline can run one
/// repetition at a time between other measurements (the main bench interleaves them with
/// fio and the pager, shape by shape).
pub struct RawRig {
    areas: Vec<Arc<SwapArea>>,
    runs: Vec<Run>,
}

impl RawRig {
    /// Opens `paths` for `plan`'s baselines. Not `exclusive`: beside a pager that holds the
    /// devices (block devices are then opened without `O_EXCL`, files without their lock);
    /// a write baseline then overwrites whatever the pager had there, so the caller pages
    /// its data out again afterwards.
    pub fn open(
        paths: &[std::path::PathBuf],
        plan: &RawPlan,
        exclusive: bool,
    ) -> Result<RawRig, Error> {
        let opts = device::OpenOptions {
            exclusive,
            ..device::OpenOptions::default()
        };
        if exclusive {
            crate::setup::wait_all_free(paths);
        }
        let areas = paths
            .iter()
            .map(|p| SwapArea::open(p, &opts).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let runs = runs(plan, areas.len());
        Ok(RawRig { areas, runs })
    }

    /// The ids of the baselines, in the order [`baselines`] runs them.
    pub fn ids(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.id.clone()).collect()
    }

    /// One repetition of the baseline `id`, with the CPU it took.
    pub fn once(&self, engine: &Engine, id: &str) -> Result<Figure, Error> {
        let r = self
            .runs
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::workload("raw", format!("no baseline {id} in this plan")))?;
        let label = r.id.replace('-', " ");
        let (m, cpu) = crate::cpu::measure(|| {
            drive(
                engine,
                &self.areas[..r.devices],
                r.op,
                r.pattern,
                r.depth,
                r.budget,
                &label,
            )
        });
        Ok(m?.figure(&r.id, &r.what, r.depth as u32).with_cpu(cpu))
    }
}

/// The baselines of `plan` over `devices` devices, in the order they run: sequential write
/// and read over all devices, random reads at QD1 and QD16, and one device alone when asked.
fn runs(plan: &RawPlan, devices: usize) -> Vec<Run> {
    // A fixed amount of work each (no minimum time), so repetitions compare like with like;
    // the maximum only guards against a device that has stalled.
    let seq_budget = Budget {
        bytes: plan.seq_bytes,
        min_time: Duration::ZERO,
        max_time: Duration::from_secs(120),
    };
    let rand_budget = Budget {
        bytes: plan.rand_bytes,
        ..seq_budget
    };
    let (qd, cl) = (plan.seq_queue_depth, plan.cluster_pages);
    let kib = cl * device::PAGE_SIZE / 1024;
    let seq = Pattern::Sequential { pages: cl };
    let all = |id: &str, what: String, op, pattern, depth, budget| Run {
        id: id.to_owned(),
        what,
        devices,
        op,
        pattern,
        depth,
        budget,
    };
    let mut runs = vec![
        all(
            "raw-seq-write",
            format!("sequential {kib} KiB writes, round-robin over all devices"),
            IoOp::Write,
            seq,
            qd,
            seq_budget,
        ),
        all(
            "raw-seq-read",
            format!("sequential {kib} KiB reads, round-robin over all devices"),
            IoOp::Read,
            seq,
            qd,
            seq_budget,
        ),
    ];
    for depth in [1usize, 16] {
        runs.push(all(
            &format!("raw-rand-read-qd{depth}"),
            "random 4 KiB reads over all devices".to_owned(),
            IoOp::Read,
            Pattern::Random { pages: 1 },
            depth,
            rand_budget,
        ));
    }
    if let Some(bytes) = plan.one_device_bytes {
        // One device front to back at the sequential depth: the limit of a swapoff drain.
        runs.push(Run {
            devices: 1,
            budget: Budget {
                bytes,
                ..seq_budget
            },
            ..all(
                "raw-seq-read-1dev",
                format!("sequential {kib} KiB reads of one device"),
                IoOp::Read,
                seq,
                qd,
                seq_budget,
            )
        });
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory of swap-area files, removed on drop (also when a test fails).
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("swapkit-xtask-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn area(&self, name: &str, pages: u64) -> Arc<SwapArea> {
            let path = self.0.join(name);
            let opts = device::MkswapOptions {
                pages: Some(pages),
                ..Default::default()
            };
            device::mkswap(&path, &opts).unwrap();
            Arc::new(SwapArea::open(&path, &device::OpenOptions::default()).unwrap())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_device_too_small_for_a_cluster_fails_the_run_only_after_the_rest_completed() {
        let scratch = Scratch::new("raw-small");
        // The first area takes 32-page clusters, the second (15 data pages) cannot.
        let areas = [scratch.area("big", 256), scratch.area("small", 16)];
        let budget = Budget {
            bytes: 1 << 20,
            min_time: Duration::ZERO,
            max_time: Duration::from_secs(60),
        };
        for kind in [device::EngineKind::ThreadPool, device::EngineKind::IoUring] {
            let Ok(engine) = Engine::new(kind) else {
                eprintln!("{kind}: unavailable here, not tested");
                continue;
            };
            let pattern = Pattern::Sequential { pages: 32 };
            let r = drive(&engine, &areas, IoOp::Write, pattern, 4, budget, "test");
            assert!(
                matches!(&r, Err(Error::Workload { why, .. }) if why.contains("too small")),
                "{kind}: {r:?}"
            );
            // The write to the big area was submitted, and had completed by the return.
            let st = areas[0].stats();
            assert_eq!((st.in_flight, st.writes > 0), (0, true), "{kind}");
        }
    }

    #[test]
    fn the_baselines_are_the_figures_the_comparisons_name_in_order() {
        let plan = RawPlan {
            seq_queue_depth: 4,
            cluster_pages: 32,
            seq_bytes: 1 << 20,
            rand_bytes: 3 << 20,
            repetitions: 3,
            one_device_bytes: Some(5 << 20),
        };
        let runs = runs(&plan, 3);
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "raw-seq-write",
                "raw-seq-read",
                "raw-rand-read-qd1",
                "raw-rand-read-qd16",
                "raw-seq-read-1dev"
            ]
        );
        let depths: Vec<usize> = runs.iter().map(|r| r.depth).collect();
        assert_eq!(depths, [4, 4, 1, 16, 4]);
        let devices: Vec<usize> = runs.iter().map(|r| r.devices).collect();
        assert_eq!(devices, [3, 3, 3, 3, 1]);
        assert_eq!(runs[4].budget.bytes, 5 << 20);
        // Fixed work: no minimum time stretches a fast run.
        assert!(runs.iter().all(|r| r.budget.min_time.is_zero()));
        assert_eq!(runs[2].budget.bytes, 3 << 20);
        assert_eq!(runs[0].budget.bytes, 1 << 20);
        let without = RawPlan {
            one_device_bytes: None,
            ..plan
        };
        assert_eq!(super::runs(&without, 3).len(), 4);
    }
}
