//! The raw baselines: the bench's devices measured directly through the device crate's I/O
//! engine, with the shapes the pager produces. They are the physical limit every pager figure
//! is divided by, taken in the same run on the same devices.
//!
//! One driver thread keeps `queue_depth` I/Os in flight across all devices at once: sequential
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

struct Done {
    submitted: Instant,
    completion: IoCompletion,
}

/// Run `op` with `pattern` at `queue_depth` over `areas` until the budget is spent.
///
/// Returns only once every I/O it submitted has completed, also on error or Ctrl-C, so no
/// buffer is still in the engine's hands when the caller moves on.
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
    let pages = match pattern {
        Pattern::Sequential { pages } | Pattern::Random { pages } => pages.max(1),
    };
    let io_bytes = (pages * device::PAGE_SIZE) as u64;
    let (tx, rx) = mpsc::channel::<Done>();
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut cursors: Vec<u64> = vec![1; areas.len()];
    let mut next_area = 0usize;
    // The next (area, page) to touch, or None when this area is too small for one I/O.
    let mut pick = |rng: &mut SmallRng| -> Option<(usize, u64)> {
        let a = match pattern {
            Pattern::Sequential { .. } => {
                let a = next_area;
                next_area = (next_area + 1) % areas.len();
                a
            }
            Pattern::Random { .. } => rng.random_range(0..areas.len()),
        };
        let last = areas[a].last_page();
        if last < pages as u64 {
            return None;
        }
        let page = match pattern {
            Pattern::Sequential { .. } => {
                if cursors[a] + pages as u64 - 1 > last {
                    cursors[a] = 1;
                }
                let p = cursors[a];
                cursors[a] += pages as u64;
                p
            }
            Pattern::Random { .. } => rng.random_range(1..=last - pages as u64 + 1),
        };
        Some((a, page))
    };
    let submit = |area: usize, page: u64, buf: PageBuf| {
        let tx = tx.clone();
        let submitted = Instant::now();
        let req = IoRequest {
            tag: area as u64,
            op,
            page,
            buf,
        };
        engine.submit(
            &areas[area],
            req,
            Box::new(move |completion| {
                let _ = tx.send(Done {
                    submitted,
                    completion,
                });
            }),
        );
    };

    let progress = Progress::start(label, budget.bytes);
    let mut latency = Recorder::new();
    let (mut bytes, mut ops, mut issued_bytes) = (0u64, 0u64, 0u64);
    let mut in_flight = 0usize;
    let mut failure: Option<Error> = None;
    let start = Instant::now();
    for _ in 0..queue_depth.max(1) {
        let Some((a, page)) = pick(&mut rng) else {
            return Err(Error::workload("raw", "devices too small for one cluster"));
        };
        submit(a, page, filled(pages));
        in_flight += 1;
        issued_bytes += io_bytes;
    }
    while in_flight > 0 {
        let Ok(done) = rx.recv() else { break };
        in_flight -= 1;
        let Done {
            submitted,
            completion,
        } = done;
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
        if more && let Some((a, page)) = pick(&mut rng) {
            submit(a, page, completion.buf);
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
    pub seq_bytes: u64,
    /// Sequential runs last at least this long (passes repeat).
    pub seq_min_time: Duration,
    pub rand_time: Duration,
    /// Also `raw-seq-read-1dev` (the limit of a swapoff), over this many bytes.
    pub one_device_bytes: Option<u64>,
}

/// Open the areas, run the baselines, close the areas again (the pager opens them
/// exclusively afterwards, so the caller must drop the engine, which may still hold the
/// areas of its last completions, before it starts a pager).
pub fn baselines(
    engine: &Engine,
    paths: &[std::path::PathBuf],
    plan: &RawPlan,
) -> Result<Vec<Figure>, Error> {
    let opts = device::OpenOptions::default();
    crate::setup::wait_all_free(paths);
    let areas = paths
        .iter()
        .map(|p| SwapArea::open(p, &opts).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let seq = Budget {
        bytes: plan.seq_bytes,
        min_time: plan.seq_min_time,
        max_time: Duration::from_secs(120),
    };
    let rand = Budget {
        bytes: 0,
        min_time: plan.rand_time,
        max_time: plan.rand_time,
    };
    let qd = plan.seq_queue_depth;
    let cl = plan.cluster_pages;
    let kib = cl * device::PAGE_SIZE / 1024;
    let mut out = Vec::new();
    let m = drive(
        engine,
        &areas,
        IoOp::Write,
        Pattern::Sequential { pages: cl },
        qd,
        seq,
        "raw seq write",
    )?;
    out.push(m.figure(
        "raw-seq-write",
        &format!("sequential {kib} KiB writes, round-robin over all devices"),
        qd as u32,
    ));
    let m = drive(
        engine,
        &areas,
        IoOp::Read,
        Pattern::Sequential { pages: cl },
        qd,
        seq,
        "raw seq read",
    )?;
    out.push(m.figure(
        "raw-seq-read",
        &format!("sequential {kib} KiB reads, round-robin over all devices"),
        qd as u32,
    ));
    for depth in [1usize, 16] {
        let m = drive(
            engine,
            &areas,
            IoOp::Read,
            Pattern::Random { pages: 1 },
            depth,
            rand,
            &format!("raw rand read QD{depth}"),
        )?;
        out.push(m.figure(
            &format!("raw-rand-read-qd{depth}"),
            "random 4 KiB reads over all devices",
            depth as u32,
        ));
    }
    if let Some(bytes) = plan.one_device_bytes {
        // One device front to back at the sequential depth: the limit of a swapoff drain.
        let one = Budget { bytes, ..seq };
        let m = drive(
            engine,
            &areas[..1],
            IoOp::Read,
            Pattern::Sequential { pages: cl },
            qd,
            one,
            "raw seq read, 1 device",
        )?;
        out.push(m.figure(
            "raw-seq-read-1dev",
            &format!("sequential {kib} KiB reads of one device"),
            qd as u32,
        ));
    }
    Ok(out)
}
