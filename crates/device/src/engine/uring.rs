//! The io_uring back end: one ring, submitted to directly by the callers, and one reaper
//! thread that waits for completions and runs the callbacks.
//!
//! Submission: [`Uring::submit`] decides the request's fate (fault injection), takes the
//! submission lock, pushes the SQE(s), publishes the tail, drops the lock and enters the
//! kernel itself. There is no submitter thread: a request costs the caller one syscall and
//! no hand-off. One refinement: the kernel delivers an I/O's completion work to the thread
//! that entered it, waking that thread if it sleeps elsewhere (a caller blocked on a
//! channel, say) before the reaper can see the CQE. So while the reaper is awake (running
//! callbacks), callers leave their SQEs to it: it enters them after the current callback
//! (or in its next wait), the completions come back to the thread that waits for them, and
//! the caller skips the syscall. (A submitter thread between callers and ring measured
//! worse: an extra hand-off per I/O, plus that second wake-up.)
//!
//! Ownership: each in-flight request is a boxed [`Op`] whose pointer is the SQE's
//! `user_data`; the box (with its buffer and an `Arc` of its area, so the fd stays open)
//! belongs to the kernel from push to CQE, and the reaper takes it back exactly once.
//! [`Shared::sq`] is the only way to a `SubmissionQueue` (what `submission_shared`
//! requires) and only the reaper makes a `CompletionQueue` (`completion_shared`).
//!
//! Flow control: slots count SQEs in flight (at most `entries`), so the submission queue
//! never overflows and the completion queue (twice as large) never drops. A caller that
//! finds no free slot waits for the reaper to release some: the back-pressure the engine
//! promises. The reaper itself cannot wait for itself, so a callback that submits into a
//! full ring parks its request in the backlog, which the reaper pushes first as slots
//! come back. No request is ever refused for want of room.
//!
//! A short read or write is continued by the reaper in its own slot; `EINTR`/`EAGAIN` are
//! retried; a read that hits the end of the device is an error.
//!
//! A request belongs, in the kernel, to the thread that entered it. When that thread exits
//! before the kernel has issued the I/O (one waiting behind an injected-latency timeout,
//! or punted to a kernel worker), the kernel cancels it (`ECANCELED`) or fails it
//! (`EFAULT`: the exiting thread's memory is no longer reachable). Our buffers are always
//! valid, so the reaper, which lives as long as the engine, issues such a request again
//! (at most [`REISSUE_MAX`] times; what was left of an injected latency is skipped). A caller's exit itself waits in the kernel for its
//! I/Os that are already at the device. Injected latency is a
//! linked `IORING_OP_TIMEOUT` (with `ETIME_SUCCESS`, Linux 5.16) in front of the I/O, and
//! an injected error or a refused request becomes a `NOP` that completes with it, so every
//! callback runs on the reaper.
//!
//! Registered files (optional): the first I/O on an area registers its fd in a free slot
//! (saving an fd lookup per I/O); the reaper releases the slots of areas that are gone
//! within about two [`SWEEP_EVERY`] (its wait has that timeout while any slot is taken), so
//! an `O_EXCL` device becomes free again shortly after its area is dropped.
//!
//! `IORING_SETUP_SINGLE_ISSUER`/`DEFER_TASKRUN` are not used: many threads submit.
//! `COOP_TASKRUN` is not either: it stops the kernel from waking a submitter that sleeps
//! outside the ring (in a channel, say) to post its completions, which would stall them.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::EngineConfig;
use super::job::{
    IfStuck, IoCompletion, IoRequest, Job, Mem, Peer, blocking_mem, lent_local, on_engine_thread,
    submit_wait_local,
};
use crate::area::SwapArea;
use crate::error::DeviceError;
use crate::op::IoOp;
use crate::{PAGE_SIZE, sys};

/// `user_data` of the NOP that tells the reaper to stop (never a valid pointer).
const SHUTDOWN: u64 = 1;
/// `user_data` of an injected-latency timeout.
const DELAY: u64 = 2;
/// Registered file slots when `register_files` is on.
const FILE_SLOTS: u32 = 64;
/// Reissues of a request cancelled by its submitting thread's exit, before giving up.
const REISSUE_MAX: u8 = 3;
/// How soon a registered file is released after its area is dropped.
const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// One request in flight.
struct Op {
    job: Job,
    /// Bytes already transferred (short I/O continues from here).
    done: usize,
    /// Injected latency, read by the kernel when the timeout SQE in front is submitted.
    /// `None` for no latency, and for the rest of a short transfer.
    delay: Option<types::Timespec>,
    /// Times the I/O was issued again after its submitting thread exited.
    reissued: u8,
}

impl Op {
    /// SQEs (slots) the op takes when first pushed.
    fn slots(&self) -> usize {
        1 + usize::from(self.delay.is_some())
    }
}

/// What the submission lock guards.
struct SqState {
    /// SQEs that may still be put in flight.
    free: usize,
    /// Ops submitted from callbacks while the ring was full, in order; each needs
    /// `op.slots()` slots.
    backlog: VecDeque<Box<Op>>,
    /// Registered file table: which area each slot belongs to (`None`: registration off).
    files: Option<Vec<Option<Weak<SwapArea>>>>,
    /// The engine is being dropped: once nothing is in flight, the reaper is told to stop.
    closing: bool,
    /// The shutdown NOP is queued.
    stopped: bool,
}

/// The ring and its submission state, shared by the callers and the reaper.
struct Shared {
    ring: IoUring,
    sq: Mutex<SqState>,
    /// Signalled when the reaper releases slots, for callers waiting on a full ring.
    slots: Condvar,
    entries: usize,
    /// The reaper's thread, to tell its callbacks from other callers.
    reaper: OnceLock<ThreadId>,
    /// The reaper is between waits: it will enter the ring again before it sleeps, so a
    /// caller may leave its SQEs for it (set by the reaper when it wakes, cleared under
    /// the submission lock before it waits).
    reaper_awake: AtomicBool,
    /// SQEs were left for the reaper; it enters them after the callback it is running.
    pending: AtomicBool,
}

pub(crate) struct Uring {
    shared: Arc<Shared>,
    /// `None` once joined (or detached when dropped from a callback).
    reaper: Option<JoinHandle<()>>,
}

impl Uring {
    /// Sets up the ring and proves it works with one NOP round trip (seccomp may allow
    /// `io_uring_setup` and refuse the rest), then starts the reaper.
    pub(crate) fn new(config: &EngineConfig) -> Result<Uring, DeviceError> {
        let entries = config.ring_entries.clamp(8, 4096).next_power_of_two();
        let fail = |what: &str| {
            let what = format!("io_uring {what}");
            move |source: io::Error| DeviceError::Engine { what, source }
        };
        let mut ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .build(entries)
            .map_err(fail("setup"))?;
        let nop = opcode::Nop::new().build().user_data(SHUTDOWN);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop) }
            .map_err(|_| fail("probe")(io::Error::other("queue full")))?;
        ring.submit_and_wait(1).map_err(fail("probe"))?;
        if ring.completion().next().is_none() {
            return Err(fail("probe")(io::Error::other("no completion")));
        }
        // The sweep needs a wait with a timeout (EXT_ARG, Linux 5.11).
        let registered = config.register_files
            && ring.params().is_feature_ext_arg()
            && ring.submitter().register_files_sparse(FILE_SLOTS).is_ok();
        let shared = Arc::new(Shared {
            ring,
            sq: Mutex::new(SqState {
                free: entries as usize,
                backlog: VecDeque::new(),
                files: registered.then(|| vec![None; FILE_SLOTS as usize]),
                closing: false,
                stopped: false,
            }),
            slots: Condvar::new(),
            entries: entries as usize,
            reaper: OnceLock::new(),
            reaper_awake: AtomicBool::new(false),
            pending: AtomicBool::new(false),
        });
        let theirs = Arc::clone(&shared);
        let reaper = std::thread::Builder::new()
            .name("swapkit-reaper".into())
            .spawn(move || reap(&theirs))
            .map_err(fail("start thread"))?;
        // Set before `new` returns, so before any callback can submit.
        let _ = shared.reaper.set(reaper.thread().id());
        Ok(Uring {
            shared,
            reaper: Some(reaper),
        })
    }
}

/// The synchronous I/O on io_uring: on the caller's own ring, or `pread`/`pwrite` where
/// it cannot be set up.
fn on_own_ring(
    area: &SwapArea,
    page: u64,
    mem: &mut Mem<'_>,
    if_stuck: IfStuck,
) -> (Result<(), DeviceError>, bool) {
    wait_on_own_ring(area, page, mem, if_stuck)
        .unwrap_or_else(|| (blocking_mem(area, page, mem), false))
}

impl Peer for Uring {
    fn submit_wait(&self, area: &Arc<SwapArea>, req: IoRequest) -> IoCompletion {
        submit_wait_local(area, req, &on_own_ring)
    }

    fn lent(&self, area: &Arc<SwapArea>, page: u64, mem: Mem<'_>) -> Result<(), DeviceError> {
        lent_local(area, page, mem, &on_own_ring)
    }

    /// Queues `job` in the ring and hands it to the kernel, on the caller's thread; or, when
    /// the reaper is awake, leaves it to the reaper, which enters it within one callback's
    /// time. Blocks only while the ring is full, and never on the reaper (a callback): there
    /// the request waits in the backlog instead.
    fn submit(&self, job: Job) {
        let shared = &*self.shared;
        let op = prepare(job);
        let need = op.slots();
        let mut st = shared.sq.lock();
        if st.stopped {
            // Unreachable in practice: `stopped` comes from dropping the last handle, after
            // which only callbacks could submit, and they have all run. Still honour `done`.
            drop(st);
            return op.job.finish(Err(DeviceError::Engine {
                what: "io_uring engine stopped".into(),
                source: io::Error::from(io::ErrorKind::BrokenPipe),
            }));
        }
        // Behind a backlog, wait too: the reaper pushes the backlog first, in order.
        while st.free < need || !st.backlog.is_empty() {
            if shared.on_reaper() {
                st.backlog.push_back(op);
                return;
            }
            shared.slots.wait(&mut st);
        }
        st.free -= need;
        shared.push(&mut st, op);
        let leave = shared.reaper_awake.load(Ordering::SeqCst);
        if leave {
            shared.pending.store(true, Ordering::SeqCst);
        }
        drop(st);
        if !leave {
            shared.enter();
        }
    }
}

impl Drop for Uring {
    /// Lets every queued request complete, then stops the reaper. No request can be
    /// submitted any more (this was the last handle), but callbacks still run and short
    /// transfers still continue until the ring is empty.
    fn drop(&mut self) {
        let shared = &*self.shared;
        let mut st = shared.sq.lock();
        st.closing = true;
        shared.stop_if_idle(&mut st);
        drop(st);
        shared.enter();
        let Some(reaper) = self.reaper.take() else {
            return;
        };
        // Dropped from one of our own callbacks: joining would wait for ourselves. The
        // reaper still drains and stops on its own.
        if on_engine_thread(std::slice::from_ref(&reaper)) {
            return;
        }
        let _ = reaper.join();
    }
}

/// Boxes a new request and decides its fate: an injected fault turns it into a NOP that
/// completes with the error; injected latency puts a timeout in front of it. A refused
/// request (already carrying its error) is neither delayed nor counted by the injector.
fn prepare(mut job: Job) -> Box<Op> {
    let mut delay = Duration::ZERO;
    if job.error.is_none() {
        let area = Arc::clone(&job.area);
        let (op, page, pages) = (job.req.op, job.req.page, job.req.buf.pages() as u64);
        delay = area.faults().latency();
        if let Some(e) = area.faults().check(op, page, pages) {
            job.error = Some(DeviceError::io(area.path(), op.name(), page, e));
        }
    }
    Box::new(Op {
        job,
        done: 0,
        reissued: 0,
        delay: (!delay.is_zero()).then(|| delay.into()),
    })
}

impl Shared {
    fn on_reaper(&self) -> bool {
        self.reaper.get() == Some(&std::thread::current().id())
    }

    /// Pushes the SQE(s) of `op` (its slots already taken) and publishes them; ownership
    /// of the box goes to the kernel. Called with the submission lock held: the guard is
    /// what makes this the only `SubmissionQueue`.
    fn push(&self, st: &mut MutexGuard<'_, SqState>, mut op: Box<Op>) {
        let area = Arc::clone(&op.job.area);
        let fixed = self.file_slot(st, &area);
        let mut entries = Vec::with_capacity(2);
        if let Some(delay) = &op.delay {
            let timeout = opcode::Timeout::new(delay).flags(types::TimeoutFlags::ETIME_SUCCESS);
            entries.push(
                timeout
                    .build()
                    .user_data(DELAY)
                    .flags(squeue::Flags::IO_LINK),
            );
        }
        let len = (op.job.req.buf.len() - op.done) as u32;
        // Wrapping: a refused request (a NOP below) may name any page.
        let offset = op
            .job
            .req
            .page
            .wrapping_mul(PAGE_SIZE as u64)
            .wrapping_add(op.done as u64);
        // The rest of the buffer; empty (and never touched) for a refused request, which
        // becomes a NOP below.
        let ptr = op
            .job
            .req
            .buf
            .as_mut_slice()
            .get_mut(op.done..)
            .unwrap_or_default()
            .as_mut_ptr();
        let (op_code, is_nop) = (op.job.req.op, op.job.error.is_some());
        // Only a local medium's I/O comes here; -1 (`EBADF`) were it not.
        let fd = area.medium().file().map_or(-1, AsRawFd::as_raw_fd);
        let user_data = Box::into_raw(op) as u64;
        let entry = match (is_nop, op_code, fixed) {
            (true, _, _) => opcode::Nop::new().build(),
            (false, IoOp::Read, Some(i)) => opcode::Read::new(types::Fixed(i), ptr, len)
                .offset(offset)
                .build(),
            (false, IoOp::Read, None) => opcode::Read::new(types::Fd(fd), ptr, len)
                .offset(offset)
                .build(),
            (false, IoOp::Write, Some(i)) => opcode::Write::new(types::Fixed(i), ptr, len)
                .offset(offset)
                .build(),
            (false, IoOp::Write, None) => opcode::Write::new(types::Fd(fd), ptr, len)
                .offset(offset)
                .build(),
        };
        entries.push(entry.user_data(user_data));
        // SAFETY: we hold the submission lock, so no other SubmissionQueue exists.
        let mut sq = unsafe { self.ring.submission_shared() };
        // SAFETY: the buffer, the timespec and the area's fd live in the boxed Op (and its
        // Arc) until the reaper takes the box back from this user_data.
        let pushed = unsafe { sq.push_multiple(&entries) };
        sq.sync();
        drop(sq);
        if pushed.is_err() {
            // Cannot happen with slots counted; if it does, fail the request, not the engine.
            // SAFETY: the push failed, so the kernel never saw user_data: the box is ours.
            let op = unsafe { Box::from_raw(user_data as *mut Op) };
            st.free += entries.len();
            op.job.finish(Err(DeviceError::Engine {
                what: "io_uring submission queue full".into(),
                source: io::Error::from_raw_os_error(libc::EBUSY),
            }));
        }
    }

    /// Queues the shutdown NOP once the engine is closing and nothing is in flight or
    /// waiting. Lock held.
    fn stop_if_idle(&self, st: &mut SqState) {
        if !st.closing || st.stopped || st.free != self.entries || !st.backlog.is_empty() {
            return;
        }
        let nop = opcode::Nop::new().build().user_data(SHUTDOWN);
        // SAFETY: we hold the submission lock, so no other SubmissionQueue exists.
        let mut sq = unsafe { self.ring.submission_shared() };
        // SAFETY: a NOP references no memory; nothing is in flight, so there is room.
        let _ = unsafe { sq.push(&nop) };
        sq.sync();
        st.stopped = true;
    }

    /// Hands the published SQEs to the kernel (anyone's: entering is serialised by the
    /// kernel), retrying while it is briefly short of resources.
    fn enter(&self) {
        loop {
            match self.ring.submitter().submit() {
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) =>
                {
                    std::thread::sleep(Duration::from_micros(50));
                }
                _ => return,
            }
        }
    }

    /// The registered-file index of `area`, registering it in a free slot if needed
    /// (`None`: registration off, or the table is full). Lock held.
    fn file_slot(&self, st: &mut SqState, area: &Arc<SwapArea>) -> Option<u32> {
        let files = st.files.as_mut()?;
        let mine = |w: &Weak<SwapArea>| std::ptr::eq(w.as_ptr(), Arc::as_ptr(area));
        if let Some(i) = files.iter().position(|s| s.as_ref().is_some_and(mine)) {
            return Some(i as u32);
        }
        let i = files.iter().position(|s| s.is_none())?;
        self.ring
            .submitter()
            .register_files_update(i as u32, &[area.medium().file()?.as_raw_fd()])
            .ok()?;
        files[i] = Some(Arc::downgrade(area));
        Some(i as u32)
    }

    /// Unregisters the files of areas that are gone, so the kernel closes them (an `O_EXCL`
    /// device must become free when its area is dropped). No op can use such a slot: an
    /// op holds an `Arc` of its area. Lock held.
    fn sweep_files(&self, st: &mut SqState) {
        let Some(files) = st.files.as_mut() else {
            return;
        };
        for (i, slot) in files.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|w| w.strong_count() == 0)
                && self
                    .ring
                    .submitter()
                    .register_files_update(i as u32, &[-1])
                    .is_ok()
            {
                *slot = None;
            }
        }
    }
}

/// The reaper: waits for completions, runs the callbacks (without the lock), then under
/// the lock gives back the slots, continues short transfers, pushes the backlog and wakes
/// callers waiting for room; stops at the shutdown NOP.
fn reap(shared: &Shared) {
    let mut batch: Vec<(u64, i32)> = Vec::new();
    let mut again: Vec<Box<Op>> = Vec::new();
    let mut last_sweep = Instant::now();
    // Whether any file is registered: then the wait times out, for the sweep.
    let mut timed = false;
    loop {
        wait(shared, timed);
        shared.reaper_awake.store(true, Ordering::SeqCst);
        batch.clear();
        // SAFETY: this thread is the only one that ever makes a CompletionQueue.
        batch.extend(
            unsafe { shared.ring.completion_shared() }.map(|c| (c.user_data(), c.result())),
        );
        let (freed, stop) = run_callbacks(shared, &batch, &mut again);
        if stop {
            // Release registered files now rather than when the ring's memory goes.
            let _ = shared.ring.submitter().unregister_files();
            return;
        }
        let sweep = timed && last_sweep.elapsed() >= SWEEP_EVERY;
        timed = give_back(shared, freed, &mut again, sweep);
        if sweep {
            last_sweep = Instant::now();
        }
    }
}

/// The reaper's wait for at least one completion, at most [`SWEEP_EVERY`] when `timed`.
/// Also submits whatever is published and not yet entered, like the rest of a short
/// transfer pushed by [`give_back`]. Errors are retried by the caller's loop.
fn wait(shared: &Shared, timed: bool) {
    let ring = &shared.ring;
    let waited = if timed {
        let timeout = types::Timespec::from(SWEEP_EVERY);
        let args = types::SubmitArgs::new().timespec(&timeout);
        ring.submitter().submit_with_args(1, &args)
    } else {
        ring.submitter().submit_and_wait(1)
    };
    if let Err(e) = waited
        && !matches!(
            e.raw_os_error(),
            Some(libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ETIME)
        )
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs the callbacks of one batch of CQEs, without the lock. Ops with a transfer left
/// go to `again`. Returns the slots freed and whether the shutdown NOP was among them.
// Boxed ops: a box's address is the op's `user_data` while the kernel holds it.
#[allow(clippy::vec_box)]
fn run_callbacks(shared: &Shared, batch: &[(u64, i32)], again: &mut Vec<Box<Op>>) -> (usize, bool) {
    let mut freed = 0;
    let mut stop = false;
    for &(user_data, result) in batch {
        match user_data {
            SHUTDOWN => stop = true,
            DELAY => freed += 1,
            ptr => {
                // SAFETY: every other user_data is a Box<Op> pointer pushed by
                // `Shared::push`, and the kernel posts one CQE per SQE.
                let op = unsafe { Box::from_raw(ptr as *mut Op) };
                match complete(op, result) {
                    Some(op) => again.push(op),
                    None => freed += 1,
                }
                if shared.pending.swap(false, Ordering::SeqCst) {
                    shared.enter();
                }
            }
        }
    }
    (freed, stop)
}

/// Under the lock: gives back `freed` slots, pushes the short transfers in `again` and as
/// much of the backlog as now fits, sweeps dead files when `sweep`, queues the shutdown NOP
/// when closing and idle; then hands entering back to callers and wakes those waiting for
/// room. Returns whether the next wait must time out (files are registered).
#[allow(clippy::vec_box)]
fn give_back(shared: &Shared, freed: usize, again: &mut Vec<Box<Op>>, sweep: bool) -> bool {
    let mut st = shared.sq.lock();
    st.free += freed;
    for op in again.drain(..) {
        shared.push(&mut st, op);
    }
    let waiting = st.backlog.len();
    while let Some(need) = st.backlog.front().map(|op| op.slots()) {
        if st.free < need {
            break;
        }
        st.free -= need;
        if let Some(op) = st.backlog.pop_front() {
            shared.push(&mut st, op);
        }
    }
    let room = freed > 0 || st.backlog.len() < waiting;
    if sweep {
        shared.sweep_files(&mut st);
    }
    shared.stop_if_idle(&mut st);
    let timed = st
        .files
        .as_ref()
        .is_some_and(|f| f.iter().any(Option::is_some));
    // From here on callers enter their own SQEs; the wait enters those left so far.
    shared.reaper_awake.store(false, Ordering::SeqCst);
    shared.pending.store(false, Ordering::SeqCst);
    drop(st);
    if room {
        shared.slots.notify_all();
    }
    timed
}

/// Handles one I/O's CQE: finishes it (running its callback), or hands it back for the
/// rest of a short or interrupted transfer, which keeps its slot.
fn complete(mut op: Box<Op>, result: i32) -> Option<Box<Op>> {
    // Whatever happens next, the timeout in front (if any) has fired and is gone.
    op.delay = None;
    if let Some(e) = op.job.error.take() {
        op.job.finish(Err(e));
        return None;
    }
    let len = op.job.req.buf.len();
    let outcome = if result < 0 {
        match -result {
            libc::EINTR | libc::EAGAIN => None,
            libc::ECANCELED | libc::EFAULT if op.reissued < REISSUE_MAX => {
                op.reissued += 1;
                None
            }
            errno => Some(Err(io::Error::from_raw_os_error(errno))),
        }
    } else if result == 0 {
        let what = op.job.req.op.name();
        Some(Err(sys::short(what, op.done, len)))
    } else {
        op.done += result as usize;
        if op.done >= len { Some(Ok(())) } else { None }
    };
    let Some(result) = outcome else {
        return Some(op);
    };
    let area = Arc::clone(&op.job.area);
    let (name, page) = (op.job.req.op.name(), op.job.req.page);
    op.job
        .finish(result.map_err(|e| DeviceError::io(area.path(), name, page, e)));
    None
}

/// Entries of a caller's own ring ([`wait_on_own_ring`]): one I/O at a time.
const OWN_ENTRIES: u32 = 4;

thread_local! {
    /// This thread's own small ring for [`wait_on_own_ring`], made on first use. `None`
    /// when it could not be set up (the caller falls back to `pread`/`pwrite`).
    static OWN: std::cell::RefCell<Option<IoUring>> = const { std::cell::RefCell::new(None) };
}

/// Does one I/O of `mem` at `page` on the calling thread's own ring and waits for it there:
/// the caller submits and reaps its own completion in one `io_uring_enter`, as fio does at
/// queue depth 1 (no reaper, no hand-off). A sync `pread` would do the same on paper, but
/// on loop devices with direct I/O it measured a tail of milliseconds (p99 ~4 ms against
/// io_uring's ~70 µs with fio on the same device), so the io_uring engine waits on a ring.
///
/// `None` when this thread has no ring (setup refused): the caller does the I/O with
/// `pread`/`pwrite` instead. Otherwise the result, and whether `mem` must be leaked: the
/// ring failed with the I/O perhaps still in flight (never seen) and `if_stuck` is
/// [`IfStuck::Leak`]; with [`IfStuck::Wait`] this waits for such an I/O to end instead (see
/// [`wait_out`]). The range was checked by the caller; injected latency and faults and
/// short transfers are handled as on the engine's own path.
fn wait_on_own_ring(
    area: &SwapArea,
    page: u64,
    mem: &mut Mem<'_>,
    if_stuck: IfStuck,
) -> Option<(Result<(), DeviceError>, bool)> {
    OWN.with(|cell| {
        let mut own = cell.try_borrow_mut().ok()?;
        if own.is_none() {
            *own = own_ring();
        }
        let ring = own.as_mut()?;
        let op = mem.op();
        let (ptr, len) = mem.raw();
        let pages = (len / PAGE_SIZE) as u64;
        let delay = area.faults().latency();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if let Some(e) = area.faults().check(op, page, pages) {
            return Some((Err(DeviceError::io(area.path(), op.name(), page, e)), false));
        }
        // Only a local medium's I/O comes here; -1 (`EBADF`) were it not.
        let fd = area.medium().file().map_or(-1, AsRawFd::as_raw_fd);
        let offset = page * PAGE_SIZE as u64;
        // SAFETY: `ptr..ptr+len` is `mem`, borrowed for this call; `transfer` returns only
        // once the kernel is done with it, except with `Failed::Ring`, handled below.
        let (result, leak) = match unsafe { transfer(ring, fd, op, offset, ptr, len) } {
            Ok(()) => (Ok(()), false),
            Err(Failed::Io(e)) => (Err(e), false),
            Err(Failed::NotIssued(e)) => {
                // The SQE is still in the ring, unsubmitted: drop the ring with it (nothing
                // was issued, so the memory is free) and make a new one next time.
                *own = None;
                (Err(e), false)
            }
            Err(Failed::Ring(e)) => {
                // The I/O may still be in the kernel's hands: neither the memory nor the
                // ring may be freed until it ends.
                let ended = if_stuck == IfStuck::Wait && wait_out(ring);
                if let Some(ring) = own.take() {
                    std::mem::forget(ring);
                }
                (Err(e), !ended)
            }
        };
        Some((
            result.map_err(|e| DeviceError::io(area.path(), op.name(), page, e)),
            leak,
        ))
    })
}

/// How long [`wait_out`] waits for an I/O on a failed ring before it aborts.
const WAIT_OUT: Duration = Duration::from_secs(60);

/// Waits for the one I/O on `ring` (whose last enter failed) to complete, retrying every
/// millisecond. Memory lent by a caller must not be written once the call returns, and
/// there is no way to take an issued I/O back, so an I/O that does not end within
/// [`WAIT_OUT`] aborts the process rather than let the kernel write into memory that is no
/// longer the I/O's. Returns `true` once the I/O has ended.
fn wait_out(ring: &mut IoUring) -> bool {
    let since = Instant::now();
    loop {
        if ring.submit_and_wait(1).is_ok() && ring.completion().next().is_some() {
            return true;
        }
        if since.elapsed() > WAIT_OUT {
            eprintln!("swapkit: an io_uring read or write into lent memory never ended; aborting");
            std::process::abort();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A new ring for this thread alone. Only this thread ever submits to it or waits on it, so
/// it may be `SINGLE_ISSUER` + `DEFER_TASKRUN` (Linux 6.1; as fio sets up its rings): the
/// completion work runs when the waiter enters the kernel, instead of a signal-style
/// task-work wake-up. Plain where the kernel refuses those flags.
fn own_ring() -> Option<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(OWN_ENTRIES)
        .or_else(|_| IoUring::new(OWN_ENTRIES))
        .ok()
}

/// Why [`transfer`] failed.
enum Failed {
    /// The I/O failed; the ring is idle and fine.
    Io(io::Error),
    /// The ring failed before the kernel took the SQE: nothing is in flight, but the SQE is
    /// still queued, so the ring must not be entered again.
    NotIssued(io::Error),
    /// The ring itself failed while an I/O may be in flight.
    Ring(io::Error),
}

/// All of `len` bytes at `ptr` to or from byte `offset` of `fd`, one SQE at a time on
/// `ring` (idle on entry and on return, except after [`Failed::Ring`]); short transfers
/// continue, `EINTR`/`EAGAIN` retry.
///
/// # Safety
/// `ptr..ptr+len` must be valid for the I/O (written by a read, read by a write) until this
/// returns, and after [`Failed::Ring`] until the ring's I/O has ended (the caller leaks or
/// waits).
unsafe fn transfer(
    ring: &mut IoUring,
    fd: i32,
    op: IoOp,
    offset: u64,
    ptr: *mut u8,
    len: usize,
) -> Result<(), Failed> {
    let mut done = 0usize;
    while done < len {
        // SAFETY: `done < len`, so the pointer stays inside the caller's memory.
        let at_ptr = unsafe { ptr.add(done) };
        let (n, at) = ((len - done) as u32, offset + done as u64);
        let sqe = match op {
            IoOp::Read => opcode::Read::new(types::Fd(fd), at_ptr, n)
                .offset(at)
                .build(),
            IoOp::Write => opcode::Write::new(types::Fd(fd), at_ptr, n)
                .offset(at)
                .build(),
        };
        // SAFETY: the memory outlives the I/O (this function's contract): we wait for its
        // CQE below before returning; `fd` is kept open by the caller's `Arc` of the area.
        if unsafe { ring.submission().push(&sqe) }.is_err() {
            // The ring is idle between I/Os, so this cannot happen; nothing was queued.
            return Err(Failed::Io(io::Error::other("own ring full")));
        }
        let result = loop {
            match ring.submit_and_wait(1) {
                Ok(_) => {
                    if let Some(c) = ring.completion().next() {
                        break c.result();
                    }
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) => {}
                // An enter that fails has submitted nothing: if the SQE is still queued,
                // the kernel never saw it.
                Err(e) if !ring.submission().is_empty() => return Err(Failed::NotIssued(e)),
                Err(e) => return Err(Failed::Ring(e)),
            }
        };
        match result {
            r if r < 0 && matches!(-r, libc::EINTR | libc::EAGAIN) => {}
            r if r < 0 => return Err(Failed::Io(io::Error::from_raw_os_error(-r))),
            0 => return Err(Failed::Io(sys::short(op.name(), done, len))),
            r => done += r as usize,
        }
    }
    Ok(())
}
