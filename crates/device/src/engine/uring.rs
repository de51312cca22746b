//! The io_uring back end: one ring, a submitter thread that batches queued requests into
//! it, and a reaper thread that waits for completions and runs the callbacks.
//!
//! Ownership: each in-flight request is a boxed [`Op`] whose pointer is the SQE's
//! `user_data`; the box (with its buffer and an `Arc` of its area, so the fd stays open)
//! belongs to the kernel from push to CQE, and the reaper takes it back exactly once.
//! Only the submitter touches the submission queue and only the reaper the completion
//! queue, which is what `submission_shared`/`completion_shared` require.
//!
//! Flow control: the submitter counts free slots (SQEs in flight, at most `entries`), so
//! the submission queue never overflows and the completion queue (twice as large) never
//! drops. The request channel is unbounded: a callback on the reaper may submit again
//! without ever waiting for the reaper itself.
//!
//! A short read or write goes back to the submitter for the rest; `EINTR`/`EAGAIN` are
//! retried; a read that hits the end of the device is an error. Injected latency is a
//! linked `IORING_OP_TIMEOUT` (with `ETIME_SUCCESS`, Linux 5.16) in front of the I/O, and an
//! injected error replaces the I/O with a `NOP` that completes with it, so every callback
//! runs on the reaper.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use io_uring::{IoUring, opcode, squeue, types};

use super::{EngineConfig, IoOp, Job};
use crate::{DeviceError, PAGE_SIZE, SwapArea, sys};

/// `user_data` of the NOP that tells the reaper to stop (never a valid pointer).
const SHUTDOWN: u64 = 1;
/// `user_data` of an injected-latency timeout.
const DELAY: u64 = 2;
/// `IORING_ENTER_GETEVENTS` (uapi, stable).
const ENTER_GETEVENTS: u32 = 1;
/// Registered file slots when `register_files` is on.
const FILE_SLOTS: u32 = 64;
/// How often the submitter wakes to release registered files of closed areas.
const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// One request in flight.
struct Op {
    job: Job,
    /// Bytes already transferred (short I/O continues from here).
    done: usize,
    /// Injected latency, kept alive while its timeout SQE is queued.
    delay: types::Timespec,
}

/// From the reaper to the submitter.
enum Msg {
    /// A short or interrupted I/O to continue; it keeps its slot.
    Again(Box<Op>),
    /// Slots released by completed requests.
    Freed(usize),
}

pub(crate) struct Uring {
    /// `None` only while dropping: closing it tells the submitter to drain and stop.
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Uring {
    /// Sets up the ring and proves it works with one NOP round trip (seccomp may allow
    /// `io_uring_setup` and refuse the rest), then starts the two threads.
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
        let registered =
            config.register_files && ring.submitter().register_files_sparse(FILE_SLOTS).is_ok();
        let ring = Arc::new(ring);
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let (again_tx, again_rx) = crossbeam_channel::unbounded::<Msg>();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(fail("start thread"))
        };
        let mut submitter = Submitter {
            ring: Arc::clone(&ring),
            entries: entries as usize,
            free: entries as usize,
            files: None,
        };
        if registered {
            submitter.files = Some(vec![None; FILE_SLOTS as usize]);
        }
        let reaper_ring = Arc::clone(&ring);
        let reaper = spawn(
            "swapkit-reaper",
            Box::new(move || reap(&reaper_ring, &again_tx)),
        )?;
        let submit = spawn(
            "swapkit-submit",
            Box::new(move || submitter.run(&rx, &again_rx)),
        )?;
        Ok(Uring {
            tx: Some(tx),
            threads: vec![submit, reaper],
        })
    }

    pub(crate) fn submit(&self, job: Job) {
        let Some(tx) = &self.tx else { return };
        if let Err(crossbeam_channel::SendError(job)) = tx.send(job) {
            job.finish(Err(DeviceError::Engine {
                what: "io_uring submitter stopped".into(),
                source: io::Error::from(io::ErrorKind::BrokenPipe),
            }));
        }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        self.tx = None;
        // Dropped from one of our own callbacks: joining would wait for ourselves. The
        // threads still drain and stop on their own once the channel is closed.
        if super::on_engine_thread(&self.threads) {
            return;
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct Submitter {
    ring: Arc<IoUring>,
    entries: usize,
    /// SQEs that may still be put in flight.
    free: usize,
    /// Registered file table: which area each slot belongs to (`None`: registration off).
    files: Option<Vec<Option<Weak<SwapArea>>>>,
}

impl Submitter {
    /// Takes requests while there are free slots, pushes them, submits the batch; stops once
    /// the request channel is closed and everything in flight has completed.
    fn run(mut self, rx: &Receiver<Job>, again: &Receiver<Msg>) {
        let ring = Arc::clone(&self.ring);
        // SAFETY: this thread is the only one that ever makes a SubmissionQueue.
        let mut sq = unsafe { ring.submission_shared() };
        let mut open = true;
        loop {
            self.sweep_files();
            if !open && self.free == self.entries {
                let nop = opcode::Nop::new().build().user_data(SHUTDOWN);
                // SAFETY: a NOP references no memory; the queue is empty (nothing in flight).
                let _ = unsafe { sq.push(&nop) };
                sq.sync();
                self.submit_all();
                return;
            }
            let wait = if self.files.is_some() {
                SWEEP_EVERY
            } else {
                Duration::from_secs(3600)
            };
            if open && self.free >= 2 {
                crossbeam_channel::select! {
                    recv(rx) -> job => match job {
                        Ok(job) => self.push_new(&mut sq, job),
                        Err(_) => open = false,
                    },
                    recv(again) -> msg => match msg {
                        Ok(msg) => self.handle(&mut sq, msg),
                        Err(_) => return,
                    },
                    default(wait) => {}
                }
            } else {
                match again.recv_timeout(wait) {
                    Ok(msg) => self.handle(&mut sq, msg),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            while let Ok(msg) = again.try_recv() {
                self.handle(&mut sq, msg);
            }
            while open && self.free >= 2 {
                match rx.try_recv() {
                    Ok(job) => self.push_new(&mut sq, job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            sq.sync();
            self.submit_all();
        }
    }

    fn handle(&mut self, sq: &mut squeue::SubmissionQueue<'_>, msg: Msg) {
        match msg {
            Msg::Freed(n) => self.free += n,
            Msg::Again(op) => self.push_op(sq, op, None),
        }
    }

    /// Decides a new request's fate (fault injection), then queues it, behind a timeout
    /// when latency is injected. Takes one or two slots.
    fn push_new(&mut self, sq: &mut squeue::SubmissionQueue<'_>, mut job: Job) {
        let mut delay = Duration::ZERO;
        if job.error.is_none() {
            let area = Arc::clone(&job.area);
            let (op, page, pages) = (job.req.op, job.req.page, job.req.buf.pages() as u64);
            delay = area.faults().latency();
            if let Some(e) = area.faults().check(op, page, pages) {
                job.error = Some(DeviceError::io(area.path(), op.name(), page, e));
            }
        }
        self.free -= 1;
        let op = Box::new(Op {
            job,
            done: 0,
            delay: delay.into(),
        });
        let delay = if delay.is_zero() {
            None
        } else {
            self.free -= 1;
            Some(())
        };
        self.push_op(sq, op, delay);
    }

    /// Pushes the SQE(s) of `op` (its slot is already counted), ownership going to the kernel.
    fn push_op(
        &mut self,
        sq: &mut squeue::SubmissionQueue<'_>,
        mut op: Box<Op>,
        delay: Option<()>,
    ) {
        let area = Arc::clone(&op.job.area);
        let fixed = self.file_slot(&area);
        let mut entries = Vec::with_capacity(2);
        if delay.is_some() {
            let timeout = opcode::Timeout::new(&op.delay).flags(types::TimeoutFlags::ETIME_SUCCESS);
            entries.push(
                timeout
                    .build()
                    .user_data(DELAY)
                    .flags(squeue::Flags::IO_LINK),
            );
        }
        let len = op.job.req.buf.len() - op.done;
        // Wrapping: a refused request (a NOP below) may name any page.
        let offset = op
            .job
            .req
            .page
            .wrapping_mul(PAGE_SIZE as u64)
            .wrapping_add(op.done as u64);
        // SAFETY: done < buf.len(), so the pointer stays inside the buffer.
        let ptr = unsafe { op.job.req.buf.as_mut_ptr().add(op.done) };
        let (op_code, is_nop) = (op.job.req.op, op.job.error.is_some());
        let user_data = Box::into_raw(op) as u64;
        let entry = match (is_nop, op_code, fixed) {
            (true, _, _) => opcode::Nop::new().build(),
            (false, IoOp::Read, Some(i)) => opcode::Read::new(types::Fixed(i), ptr, len as u32)
                .offset(offset)
                .build(),
            (false, IoOp::Read, None) => {
                opcode::Read::new(types::Fd(area.file().as_raw_fd()), ptr, len as u32)
                    .offset(offset)
                    .build()
            }
            (false, IoOp::Write, Some(i)) => opcode::Write::new(types::Fixed(i), ptr, len as u32)
                .offset(offset)
                .build(),
            (false, IoOp::Write, None) => {
                opcode::Write::new(types::Fd(area.file().as_raw_fd()), ptr, len as u32)
                    .offset(offset)
                    .build()
            }
        };
        entries.push(entry.user_data(user_data));
        // SAFETY: the buffer, the timespec and the area's fd live in the boxed Op (and its
        // Arc) until the reaper takes the box back from this user_data.
        if unsafe { sq.push_multiple(&entries) }.is_err() {
            // Cannot happen with slots counted; if it does, fail the request, not the engine.
            // SAFETY: the push failed, so the kernel never saw user_data: the box is ours.
            let op = unsafe { Box::from_raw(user_data as *mut Op) };
            self.free += entries.len();
            op.job.finish(Err(DeviceError::Engine {
                what: "io_uring submission queue full".into(),
                source: io::Error::from_raw_os_error(libc::EBUSY),
            }));
        }
    }

    /// Hands queued SQEs to the kernel, retrying while it is briefly busy.
    fn submit_all(&self) {
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

    /// The registered-file index of `area`, registering it in a free slot if needed.
    fn file_slot(&mut self, area: &Arc<SwapArea>) -> Option<u32> {
        let files = self.files.as_mut()?;
        let mine = |w: &Weak<SwapArea>| std::ptr::eq(w.as_ptr(), Arc::as_ptr(area));
        if let Some(i) = files.iter().position(|s| s.as_ref().is_some_and(mine)) {
            return Some(i as u32);
        }
        let i = files.iter().position(|s| s.is_none())?;
        self.ring
            .submitter()
            .register_files_update(i as u32, &[area.file().as_raw_fd()])
            .ok()?;
        files[i] = Some(Arc::downgrade(area));
        Some(i as u32)
    }

    /// Unregisters the files of areas that are gone, so the kernel closes them (an `O_EXCL`
    /// device must become free when its area is dropped).
    fn sweep_files(&mut self) {
        let Some(files) = self.files.as_mut() else {
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

/// Waits for completions and finishes requests until the shutdown NOP arrives.
fn reap(ring: &IoUring, again: &Sender<Msg>) {
    let mut batch: Vec<(u64, i32)> = Vec::new();
    loop {
        // SAFETY: to_submit = 0 with GETEVENTS only waits; no argument is passed.
        if let Err(e) = unsafe {
            ring.submitter()
                .enter::<libc::sigset_t>(0, 1, ENTER_GETEVENTS, None)
        } && !matches!(
            e.raw_os_error(),
            Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
        ) {
            std::thread::sleep(Duration::from_millis(1));
        }
        batch.clear();
        // SAFETY: this thread is the only one that ever makes a CompletionQueue.
        batch.extend(unsafe { ring.completion_shared() }.map(|c| (c.user_data(), c.result())));
        let mut freed = 0;
        let mut stop = false;
        for &(user_data, result) in &batch {
            match user_data {
                SHUTDOWN => stop = true,
                DELAY => freed += 1,
                ptr => {
                    // SAFETY: every other user_data is a Box<Op> pointer pushed by the
                    // submitter, and the kernel posts one CQE per SQE.
                    let op = unsafe { Box::from_raw(ptr as *mut Op) };
                    freed += complete(op, result, again);
                }
            }
        }
        if freed > 0 {
            let _ = again.send(Msg::Freed(freed));
        }
        if stop {
            return;
        }
    }
}

/// Handles one I/O's CQE: finishes it, or sends it back for the rest of a short transfer.
/// Returns the slots it released (0 when it goes back).
fn complete(mut op: Box<Op>, result: i32, again: &Sender<Msg>) -> usize {
    if let Some(e) = op.job.error.take() {
        op.job.finish(Err(e));
        return 1;
    }
    let len = op.job.req.buf.len();
    let outcome = if result < 0 {
        match -result {
            libc::EINTR | libc::EAGAIN => None,
            errno => Some(Err(io::Error::from_raw_os_error(errno))),
        }
    } else if result == 0 {
        let what = op.job.req.op.name();
        Some(Err(sys::short(what, op.done, len)))
    } else {
        op.done += result as usize;
        if op.done >= len { Some(Ok(())) } else { None }
    };
    match outcome {
        Some(result) => {
            let area = Arc::clone(&op.job.area);
            let (name, page) = (op.job.req.op.name(), op.job.req.page);
            op.job
                .finish(result.map_err(|e| DeviceError::io(area.path(), name, page, e)));
            1
        }
        None => match again.send(Msg::Again(op)) {
            Ok(()) => 0,
            Err(crossbeam_channel::SendError(Msg::Again(op))) => {
                op.job.finish(Err(DeviceError::Engine {
                    what: "io_uring submitter stopped during a short transfer".into(),
                    source: io::Error::from(io::ErrorKind::BrokenPipe),
                }));
                1
            }
            Err(_) => 1,
        },
    }
}
