//! The subscribers of [`PagerEvent`]s: the space announces hysteresis and device changes
//! through it, `Pager::subscribe` adds a receiver. Its own module so that `space` (below
//! `core`) does not reach up into `core` for it.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::io::PagerEvent;

/// The subscribers of [`PagerEvent`]s. A leaf lock: sending never blocks.
#[derive(Debug, Default)]
pub(crate) struct Events {
    subs: Mutex<Vec<Sender<PagerEvent>>>,
    pub count: AtomicU64,
}

impl Events {
    pub(crate) fn emit(&self, ev: PagerEvent) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.subs.lock().retain(|tx| tx.send(ev.clone()).is_ok());
    }

    pub(crate) fn subscribe(&self) -> crossbeam_channel::Receiver<PagerEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.subs.lock().push(tx);
        rx
    }
}
