//! The programs running on the swap space (`swapctl run`): each connection that sent a
//! `report` is a *run*, kept here with its peer's pid and uid (`SO_PEERCRED`), when it first
//! reported and its last report, until the connection closes.
//!
//! What the daemon holds for a run (its objects, their swap pages) is not kept here: it is
//! read from the registry by connection when a `stats` asks ([`Runs::usage`]), so a run finds
//! the objects its connection created before its first report too, and they are gone with
//! the connection (the registry frees anonymous objects when it closes).
//!
//! Invariants: a run is one connection, so runs are bounded by the connection quotas; a
//! report is taken only when it passed [`ProcessReport::check`], and its command is cleaned
//! of control characters before it is stored; nothing in a report is used but to be shown.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

use super::log::{log_debug, log_uid};
use super::peer::Peer;
use super::registry::Registry;
use crate::proto::{ProcessReport, ProcessUsage, clean_command};

/// One run: who, since when, and what it last said.
#[derive(Debug, Clone)]
struct Run {
    pid: i32,
    uid: u32,
    first: Instant,
    report: ProcessReport,
}

/// Every run, by connection.
#[derive(Debug, Default)]
pub struct Runs {
    map: Mutex<HashMap<u64, Run>>,
}

impl Runs {
    /// Take `report` from `peer`'s connection (checked by the caller): the connection is a run
    /// from its first report on. A first report and new read errors are logged.
    pub fn report(&self, peer: &Peer, mut report: ProcessReport) {
        report.command = clean_command(&report.command);
        let (command, read_errors) = (report.command.clone(), report.read_errors);
        let before = {
            let mut map = self.map.lock();
            let before = map.get(&peer.conn).map(|r| (r.first, r.report.read_errors));
            let run = Run {
                pid: peer.pid,
                uid: peer.uid,
                first: before.map_or_else(Instant::now, |(first, _)| first),
                report,
            };
            map.insert(peer.conn, run);
            before.map(|(_, errors)| errors)
        };
        match before {
            None => log_uid!(
                Info,
                peer.uid,
                "client {} (uid {}, pid {}) runs on swapkit: {command}",
                peer.conn,
                peer.uid,
                peer.pid
            ),
            Some(b) if read_errors > b => log_uid!(
                Warn,
                peer.uid,
                "pid {} (uid {}, {command}): {} more pages could not be read (SIGBUS), {read_errors} in all",
                peer.pid,
                peer.uid,
                read_errors - b
            ),
            Some(_) => {}
        }
    }

    /// Forget the run of closed connection `conn`, if it was one.
    pub fn remove(&self, conn: u64) {
        if let Some(r) = self.map.lock().remove(&conn) {
            log_debug!("client {conn}: the run of pid {} ended", r.pid);
        }
    }

    /// Every run, or only `only` uid's, by pid, with what the registry holds for each
    /// (objects of its connection, their swap pages read now).
    pub fn usage(&self, registry: &Registry, only: Option<u32>) -> Vec<ProcessUsage> {
        let runs: Vec<(u64, Run)> = self
            .map
            .lock()
            .iter()
            .filter(|(_, r)| only.is_none_or(|u| u == r.uid))
            .map(|(c, r)| (*c, r.clone()))
            .collect();
        // The registry and the objects are read outside this table's lock.
        let conns: HashMap<u64, u32> = runs.iter().map(|(c, r)| (*c, r.uid)).collect();
        let mut objects = registry.of_connections(&conns);
        let mut out: Vec<ProcessUsage> = runs
            .into_iter()
            .map(|(conn, r)| {
                let objects = objects.remove(&conn).unwrap_or_default();
                let swapped = objects
                    .iter()
                    .map(|o| o.swapped_pages())
                    .fold(0u64, u64::saturating_add);
                let p = r.report;
                ProcessUsage {
                    pid: r.pid,
                    uid: r.uid,
                    command: p.command,
                    objects: u32::try_from(objects.len()).unwrap_or(u32::MAX),
                    swapped_pages: swapped,
                    resident_pages: p.resident_pages,
                    limit_pages: p.limit_pages,
                    faults: p.faults,
                    major_faults: p.major_faults,
                    pages_in: p.pages_in,
                    pages_out: p.pages_out,
                    read_errors: p.read_errors,
                    since: r.first.elapsed().as_secs(),
                }
            })
            .collect();
        out.sort_by_key(|p| (p.pid, p.uid));
        out
    }
}
