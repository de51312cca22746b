//! The program's pages in the daemon's swap space: a [`region::Store`] over the control
//! socket.
//!
//! One object, created anonymous on the library's main connection (so the daemon frees it
//! when the program ends, however it ends), holds every paged page, at the page index the
//! region gives it. Reads are made by the faulting handler thread itself on a connection
//! of its own from a small pool (a fault waits for its read anyway; sharing one
//! connection would queue every fault behind the others); writes go to writer threads,
//! each with its own connection, so the evictor hands over a cluster and goes on. A
//! request carries at most [`control::proto::MAX_PAGES`] pages; longer runs are split.
//!
//! A connection that fails is dropped and the call reports the error: a read becomes the
//! toucher's `SIGBUS`, a write leaves the page resident and dirty. The next call connects
//! anew, so a restarted daemon is found again (the pages it held are lost with it, and
//! reading them is an error, never zeroes).

use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use control::client::{Client, ClientError};
use control::proto::{GetStatus, MAX_PAGES, PutStatus};
use crossbeam_channel::{Receiver, Sender};
use region::pager::{AsyncDone, PageResult};
use region::{Store, StoreError};

use crate::threads;

const PAGE: usize = 4096;
/// Writer threads (each a connection): two keep one cluster on the wire while the next
/// is handed over.
const WRITERS: usize = 2;
/// Clusters handed over and not yet taken by a writer; the evictor waits beyond.
const QUEUED: usize = 16;

/// Connections whose descriptors a fork child can close (handlers, writers, the odd
/// control call); more than that still work, their copies just stay open in a child.
const MOST_CONNECTIONS: usize = 64;

/// One async write: the run's first page, its bytes, whom to tell.
type Put = (u64, Vec<u8>, Box<dyn FnOnce(AsyncDone) + Send>);

#[derive(Debug)]
pub struct Remote {
    socket: PathBuf,
    object: u64,
    idle: Mutex<Vec<Client>>,
    puts: Sender<Put>,
    /// The descriptors of the open connections (0: free slot), for a fork child to close
    /// its copies of them; lock-free, since the child cannot take a lock a thread of the
    /// parent held.
    fds: [AtomicI32; MOST_CONNECTIONS],
}

impl Remote {
    /// A store for `object` on the daemon at `socket`, with its writer threads started.
    pub fn start(socket: PathBuf, object: u64) -> std::io::Result<std::sync::Arc<Remote>> {
        let (tx, rx) = crossbeam_channel::bounded::<Put>(QUEUED);
        let remote = std::sync::Arc::new(Remote {
            socket,
            object,
            idle: Mutex::new(Vec::new()),
            puts: tx,
            fds: [const { AtomicI32::new(0) }; MOST_CONNECTIONS],
        });
        for i in 0..WRITERS {
            let (r, rx) = (std::sync::Arc::downgrade(&remote), rx.clone());
            threads::spawn(&format!("swapkit-put{i}"), move || writer(r, rx))?;
        }
        Ok(remote)
    }

    /// Runs `f` on a pooled connection (connecting one if none is idle); a connection that
    /// failed is not put back. A pooled connection that fails other than by the daemon's
    /// answer may just have been closed by the daemon while it idled (its idle timeout):
    /// `f` runs once more on a new one. Every call here may be repeated (a get, a put of
    /// the same bytes, a free).
    fn with_client<T>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(c) = pooled {
            match self.call_on(c, &f) {
                Err(e) if !matches!(e, ClientError::Daemon { .. }) => {}
                done => return done,
            }
        }
        let c = Client::connect(&self.socket)?;
        self.note_fd(c.as_raw_fd(), true);
        self.call_on(c, &f)
    }

    /// Runs `f` on `c`; puts `c` back in the pool unless it failed.
    fn call_on<T>(
        &self,
        mut c: Client,
        f: &impl Fn(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let r = f(&mut c);
        match &r {
            Ok(_) | Err(ClientError::Daemon { .. }) => {
                self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(c)
            }
            Err(_) => self.note_fd(c.as_raw_fd(), false),
        }
        r
    }

    /// Notes an open connection's descriptor (`open`), or forgets a closing one.
    fn note_fd(&self, fd: i32, open: bool) {
        let (from, to) = if open { (0, fd) } else { (fd, 0) };
        for slot in &self.fds {
            if slot
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// In a fork child: closes this process's copies of the parent's connections (the
    /// parent's stay open through its own), touching no lock. The store must not be used
    /// afterwards.
    pub fn close_in_child(&self) {
        for slot in &self.fds {
            let fd = slot.swap(0, Ordering::AcqRel);
            if fd > 0 {
                // SAFETY: a descriptor this store opened; nothing in the child uses it.
                unsafe { libc::close(fd) };
            }
        }
    }

    fn put_run(&self, start: u64, data: &[u8]) -> Vec<PageResult> {
        let mut out = Vec::with_capacity(data.len() / PAGE);
        for (k, chunk) in data.chunks(MAX_PAGES as usize * PAGE).enumerate() {
            let at = start + (k * MAX_PAGES as usize) as u64;
            let n = chunk.len() / PAGE;
            match self.with_client(|c| c.putpages(self.object, at, chunk.to_vec(), true)) {
                Ok(st) if st.len() == n => out.extend(st.iter().map(|s| match s {
                    PutStatus::Ok => PageResult::Ok,
                    PutStatus::Fail => PageResult::Fail,
                    PutStatus::Error => PageResult::Error,
                })),
                // A quota refused is a full swap space for this program.
                Err(ClientError::Daemon {
                    kind: control::proto::ErrorKind::Quota,
                    ..
                }) => out.extend(std::iter::repeat_n(PageResult::Fail, n)),
                _ => out.extend(std::iter::repeat_n(PageResult::Error, n)),
            }
        }
        out
    }
}

fn writer(remote: std::sync::Weak<Remote>, rx: Receiver<Put>) {
    while let Ok((start, data, done)) = rx.recv() {
        let Some(r) = remote.upgrade() else { return };
        let results = r.put_run(start, &data);
        done(AsyncDone {
            object: r.object,
            start,
            results,
        });
    }
}

fn io_error(e: ClientError) -> StoreError {
    StoreError::new(format!("swapkit daemon: {e}"))
}

impl Store for Remote {
    fn getpages(
        &self,
        pindex: u64,
        max_behind: u64,
        max_ahead: u64,
        out: &mut [u8],
    ) -> Result<Range<u64>, StoreError> {
        let most = u64::from(MAX_PAGES) - 1;
        let ahead = max_ahead.min(most);
        let behind = max_behind.min(most - ahead);
        let first = pindex - behind;
        let count = (behind + 1 + ahead) as u32;
        let (pages, data, errors) = self
            .with_client(|c| c.getpages_explained(self.object, first, count))
            .map_err(io_error)?;
        let me = behind as usize;
        match pages[me] {
            GetStatus::Ok => {}
            GetStatus::Absent => {
                return Err(StoreError::new(format!(
                    "page {pindex}: the daemon holds no copy of it"
                )));
            }
            GetStatus::Error => {
                let why = errors
                    .iter()
                    .find(|e| e.pindex == pindex)
                    .map_or_else(|| "a read error".to_owned(), |e| e.error.clone());
                return Err(StoreError::new(format!("page {pindex}: {why}")));
            }
        }
        let ok = |k: usize| pages[k] == GetStatus::Ok;
        let lo = (0..=me).rev().take_while(|&k| ok(k)).last().unwrap_or(me);
        let hi = (me..pages.len())
            .take_while(|&k| ok(k))
            .last()
            .unwrap_or(me);
        // `out` starts at pindex - max_behind; the run starts at first + lo.
        let skip = (max_behind - behind) as usize + lo;
        out[skip * PAGE..(skip + hi - lo + 1) * PAGE]
            .copy_from_slice(&data[lo * PAGE..(hi + 1) * PAGE]);
        Ok(first + lo as u64..first + hi as u64 + 1)
    }

    fn putpages_async(&self, start: u64, data: Vec<u8>, done: Box<dyn FnOnce(AsyncDone) + Send>) {
        if let Err(crossbeam_channel::SendError((start, data, done))) =
            self.puts.send((start, data, done))
        {
            // No writer left (they only stop with the store): answer here.
            let n = data.len() / PAGE;
            done(AsyncDone {
                object: self.object,
                start,
                results: vec![PageResult::Error; n],
            });
        }
    }

    fn freespace(&self, pindex: u64, count: u64) {
        // A free that does not reach the daemon leaves its blocks allocated until the
        // object goes with the program: space, never data, is lost.
        let _ = self.with_client(|c| c.freespace(self.object, pindex, count));
    }

    fn free_pages(&self) -> Option<u64> {
        self.with_client(|c| c.stats()).ok().map(|s| s.free_pages)
    }
}
