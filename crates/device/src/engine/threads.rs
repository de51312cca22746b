//! The thread-pool back end: N workers taking jobs from one channel and doing blocking
//! `pread`/`pwrite`. Its queue depth is its number of workers.

use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use std::sync::Arc;

use super::job::{
    IfStuck, IoCompletion, IoRequest, Job, Mem, Peer, blocking_mem, lent_local, on_engine_thread,
    run_blocking, submit_wait_local,
};
use crate::area::SwapArea;
use crate::error::DeviceError;

pub(crate) struct ThreadPool {
    /// `None` only while dropping: closing the channel tells the workers to finish.
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    pub(crate) fn new(threads: usize) -> Result<ThreadPool, DeviceError> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let rx: Receiver<Job> = rx.clone();
            let worker = std::thread::Builder::new()
                .name(format!("swapkit-io-{i}"))
                .spawn(move || {
                    for job in rx {
                        run_blocking(job);
                    }
                })
                .map_err(|source| DeviceError::Engine {
                    what: "start I/O thread".into(),
                    source,
                })?;
            workers.push(worker);
        }
        Ok(ThreadPool {
            tx: Some(tx),
            workers,
        })
    }
}

/// The synchronous I/O of the thread pool: `pread`/`pwrite` on the caller's thread.
fn blocking(
    area: &SwapArea,
    page: u64,
    mem: &mut Mem<'_>,
    _: IfStuck,
) -> (Result<(), DeviceError>, bool) {
    (blocking_mem(area, page, mem), false)
}

impl Peer for ThreadPool {
    /// Queues a job. The channel is unbounded, so this never blocks.
    fn submit(&self, job: Job) {
        let Some(tx) = &self.tx else { return };
        if let Err(crossbeam_channel::SendError(job)) = tx.send(job) {
            // Every worker is gone (they only stop when we drop): still honour the callback.
            job.finish(Err(DeviceError::Engine {
                what: "thread pool stopped".into(),
                source: io::Error::from(io::ErrorKind::BrokenPipe),
            }));
        }
    }

    fn submit_wait(&self, area: &Arc<SwapArea>, req: IoRequest) -> IoCompletion {
        submit_wait_local(area, req, &blocking)
    }

    fn lent(&self, area: &Arc<SwapArea>, page: u64, mem: Mem<'_>) -> Result<(), DeviceError> {
        lent_local(area, page, mem, &blocking)
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.tx = None;
        // Dropped from one of our own callbacks: joining would wait for ourselves. The
        // threads still drain and stop on their own once the channel is closed.
        if on_engine_thread(&self.workers) {
            return;
        }
        for thread in self.workers.drain(..) {
            let _ = thread.join();
        }
    }
}
