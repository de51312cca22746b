//! The arguments and results of page I/O: how `putpages` runs, what each page got, and the
//! block-device style requests of `strategy`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of one page of `putpages` (the seed's `rtvals[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PageResult {
    /// Written: the page is on swap and its previous copy, if any, was freed.
    Ok,
    /// Async write in flight; the completion reports the final result. Like `Ok`, an
    /// acknowledgement: should the write fail on every area, later reads of the page are
    /// an error, never an older copy (see [`crate::Pager::take_async_failures`]).
    Pend,
    /// No swap space: nothing was written, the previous copy (if any) is kept.
    Fail,
    /// The write failed on every healthy area: the previous copy (if any) is kept, the
    /// blocks are quarantined. A write that fails on one area is retried at once on
    /// another, so this means no area could take it.
    Error,
}

/// The completion of one asynchronous `putpages` call, delivered once when every cluster
/// of it has completed (or at once, from `putpages`, when nothing was submitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncDone {
    /// The object's id ([`crate::Object::id`]).
    pub object: u64,
    /// The first page index of the call.
    pub start: u64,
    /// Final result per page: `Ok`, `Fail` or `Error` (never `Pend`).
    pub results: Vec<PageResult>,
}

/// The callback of an async `putpages`, run exactly once. It usually runs on an engine
/// thread, but on the caller's thread, before `putpages` returns, when every cluster was
/// done (or failed to get swap) by then. Keep it short and do not call blocking pager
/// operations from it: completions queue behind it (send on a channel instead).
pub type AsyncCallback = Box<dyn FnOnce(AsyncDone) + Send + 'static>;

/// How `putpages` runs (the seed's `sync` flag).
pub enum PutMode {
    /// Wait until every cluster is written; no result is `Pend`.
    Sync,
    /// Return once the clusters are submitted (`Pend`), bounded by `swap_async_max`
    /// in-flight clusters; the callback, if any, gets the final results.
    Async(Option<AsyncCallback>),
}

impl fmt::Debug for PutMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutMode::Sync => f.write_str("Sync"),
            PutMode::Async(cb) => write!(f, "Async(callback: {})", cb.is_some()),
        }
    }
}

/// A block-device request over an object for `strategy` (FreeBSD's `struct bio`). Offsets
/// and lengths are bytes and must be multiples of the page size.
#[derive(Debug)]
pub enum Bio<'a> {
    /// Fill `buf` from `offset`; pages without swap read as zeroes.
    Read { offset: u64, buf: &'a mut [u8] },
    /// Write `data` at `offset`, allocating swap where needed.
    Write { offset: u64, data: &'a [u8] },
    /// Free the swap behind `len` bytes at `offset`.
    Delete { offset: u64, len: u64 },
}

/// Something a monitor should know, sent to every [`crate::Pager::subscribe`]r.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PagerEvent {
    /// Free swap fell below `nswap_lowat` (the seed's "out of swap space" warning).
    AlmostFull { free: u64 },
    /// Free swap rose above `nswap_hiwat`.
    NotAlmostFull { free: u64 },
    /// An allocation failed: swap is exhausted (`swap_pager_full`).
    Full,
    /// Free swap is back at or above `nswap_lowat`.
    NotFull { free: u64 },
    /// A swap area was added.
    DeviceAdded { id: u32, path: String },
    /// A device failed (vanished): its blocks read as errors, writes go elsewhere.
    DeviceFailed { id: u32, path: String },
    /// A device's writes kept failing (`errors` in a row): it gets no new allocations; its
    /// pages are still read, and `swapoff` drains it.
    DeviceFailing { id: u32, path: String, errors: u32 },
    /// A remote area that was failing is back in service: its connection was made again.
    DeviceRevived { id: u32, path: String },
    /// The file behind an area was cut short to `size_bytes`: the area is failing (no new
    /// pages); what is below the cut still reads and swapoff drains it, the pages past it
    /// are lost.
    DeviceShrunk {
        id: u32,
        path: String,
        size_bytes: u64,
    },
    /// A remote area lost its last connection (`cause`: `EOF`, `ECONNRESET`, a timeout...):
    /// it gets no writes and its reads wait a bounded time while it reconnects.
    DeviceDisconnected {
        id: u32,
        path: String,
        cause: String,
    },
    /// A remote area's connection is made again.
    DeviceReconnected { id: u32, path: String },
    /// An I/O on an area failed: `error` says the operation, the page and the cause
    /// (errno or NBD error). Monitors rate-limit these (one per failed I/O).
    IoError {
        id: u32,
        path: String,
        error: String,
    },
    /// A swap area was removed; `lost` pages could not be moved (forced swapoff).
    DeviceRemoved {
        id: u32,
        path: String,
        moved: u64,
        lost: u64,
    },
}
