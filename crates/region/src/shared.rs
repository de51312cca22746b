//! What the handler threads, the prefetch thread, the evictor and the [`crate::Space`]
//! handle share: the bookkeeping ([`Book`], which monitors keep too), the memory and its
//! userfaultfd ([`Mem`]), the store, the settings and the stop flags.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use std::collections::VecDeque;

use parking_lot::{Mutex, MutexGuard};

use crate::book::Book;
use crate::state::{Mem, Table};
use crate::store::Store;
use crate::streams::Streams;
use crate::uffd::Fault;

pub(crate) struct Shared {
    pub book: Arc<Book>,
    pub mem: Mem,
    pub store: Arc<dyn Store>,
    pub limit: u64,
    pub streams: Streams,
    pub evict_batch: u64,
    /// Slots of the inactive cache ([`Shared::inactive_slots`] of the limit).
    pub inactive_slots: u64,
    /// Zeroed pages (read-around plus one, at most [`MAX_FRESH`]) copied into memory never
    /// written when a store faults on it.
    pub zeros: Vec<u8>,
    /// How long a fault waits for room under the limit before it gets `SIGBUS`.
    pub room_wait: Duration,
    pub stop: AtomicBool,
    /// Handler threads still serving faults; the last one to die fails the region.
    pub handlers_alive: AtomicUsize,
    /// Whether the long wait for room was logged (once per region).
    pub room_logged: AtomicBool,
    /// The evictor's thread id (0 until it runs): a missing fault of the evictor on a page
    /// it is moving is the program having dropped the page (see `fault.rs`).
    pub evictor_tid: AtomicU32,
    /// Forks being prepared ([`crate::Space::prepare_fork`]): while above 0 the evictor
    /// and prefetch stand still and faults do not wait for room.
    pub paused: AtomicUsize,
    /// Don't refuse room to a page of adopted memory beyond what the store has free.
    pub overcommit: bool,
    /// Drops of the evictor in progress whose `REMOVE` events must be read: while it is
    /// above 0, handlers that wait on the table read messages meanwhile (`fault.rs`).
    pub dropping: AtomicUsize,
    /// Taken to read a message, and held while an event read is handled: a fault read
    /// after an event is served after it (the program goes on once the event is read).
    pub reader: Mutex<()>,
    /// Faults read by a handler while it waited on the table, for the next free handler.
    pub backlog: Mutex<VecDeque<Fault>>,
    /// An eventfd in every handler's epoll, written when a fault goes to the backlog.
    pub backlog_fd: OwnedFd,
    /// A fault failed: the handler reads every waiting message before it goes on (see
    /// `fault.rs`, `drain_all`).
    pub drain_wanted: AtomicBool,
    /// The last address a fault came from that is in no segment, and how often in a row.
    pub stray: Mutex<(u64, u32)>,
}

/// The most never-written pages one fault maps at once.
pub const MAX_FRESH: u64 = 32;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Table> {
        self.book.lock()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Slots of the inactive cache: half the limit (at least one).
    pub fn inactive_slots(limit: u64) -> u64 {
        (limit / 2).max(1)
    }

    /// Pages the evictor keeps free below the limit, so faults seldom wait for room.
    pub fn headroom(&self) -> u64 {
        (self.limit / 8).clamp(1, self.evict_batch.max(1))
    }

    /// The evictor starts when resident pages pass this.
    pub fn watermark(&self) -> u64 {
        self.limit.saturating_sub(self.headroom())
    }

    pub fn evictor_tid(&self) -> u32 {
        self.evictor_tid.load(Ordering::Acquire)
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire) > 0
    }

    /// Wakes whoever waits on a change of the page table.
    pub fn notify(&self) {
        self.book.changed.notify_all();
    }
}
