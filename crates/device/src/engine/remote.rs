//! The NBD peer: a remote area's I/O goes to its export's own connections, whichever back
//! end the engine runs. The connections know nothing of the engine: a [`Job`] reaches them
//! as a [`Pending`] request.

use std::io;
use std::sync::Arc;

use super::job::{IoCompletion, IoRequest, Job, Mem, Peer, lendable, mem_bytes, unaligned};
use crate::PAGE_SIZE;
use crate::area::SwapArea;
use crate::buf::PageBuf;
use crate::error::DeviceError;
use crate::nbd::{Pending, Remote};

impl Pending for Job {
    fn refusal(&mut self, pages: u64) -> Option<DeviceError> {
        if let Some(e) = self.error.take() {
            return Some(e);
        }
        let e = self
            .area
            .faults()
            .check(self.req.op, self.req.page, pages)?;
        Some(self.error(e))
    }

    fn finish(mut self: Box<Self>, buf: PageBuf, result: Result<(), DeviceError>) {
        self.req.buf = buf;
        Job::finish(*self, result);
    }

    fn error(&self, e: io::Error) -> DeviceError {
        DeviceError::io(self.area.path(), self.req.op.name(), self.req.page, e)
    }
}

impl Peer for Remote {
    /// The job's callback runs on a connection thread.
    fn submit(&self, mut job: Job) {
        let buf = std::mem::replace(&mut job.req.buf, PageBuf::new(0));
        let (op, page) = (job.req.op, job.req.page);
        Remote::submit(self, op, page, buf, Box::new(job));
    }

    /// Submits to the connections and waits.
    fn submit_wait(&self, area: &Arc<SwapArea>, req: IoRequest) -> IoCompletion {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (tag, op, page) = (req.tag, req.op, req.page);
        let done = Box::new(move |c| {
            let _ = tx.send(c);
        });
        Peer::submit(self, Job::new(area, req, done));
        rx.recv().unwrap_or_else(|_| IoCompletion {
            tag,
            op,
            page,
            buf: PageBuf::new(0),
            result: Err(DeviceError::completion_lost()),
            latency: std::time::Duration::ZERO,
        })
    }

    /// The connection threads send and receive from engine buffers only (they outlive a
    /// caller that gives up on a broken connection), so the bytes go through one with a
    /// copy.
    fn lent(&self, area: &Arc<SwapArea>, page: u64, mem: Mem<'_>) -> Result<(), DeviceError> {
        let bytes = mem_bytes(&mem);
        if !lendable(bytes) {
            return Err(unaligned(area, bytes.len()));
        }
        let mut buf = PageBuf::new(bytes.len() / PAGE_SIZE);
        let op = mem.op();
        if let Mem::Write(data) = &mem {
            buf.as_mut_slice().copy_from_slice(data);
        }
        let req = IoRequest {
            tag: 0,
            op,
            page,
            buf,
        };
        let done = self.submit_wait(area, req);
        done.result?;
        if let Mem::Read(out) = mem {
            out.copy_from_slice(done.buf.as_slice());
        }
        Ok(())
    }
}
