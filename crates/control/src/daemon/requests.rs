//! One function per request kind: who may run it, its checks, and what it does on the
//! backend and the registry.
//!
//! Invariants: a request only ever touches objects of its peer's uid; what a uid holds is
//! counted against its quotas in the registry and uncounted exactly once; page data is
//! admitted against `max_swap_pages_per_uid` before it is written.

use std::path::Path;
use std::sync::Arc;

use device::PAGE_SIZE;
use pager::PagerStats;

use super::backend::{BackendError, BackendObject};
use super::log::{log_info, log_uid};
use super::peer::Peer;
use super::shared::Shared;
use crate::proto::{
    ConfigDevice, ErrorKind, FailReason, MAX_PAGES, MAX_PINDEX, MAX_SYNC_RUNS, ProcessReport,
    PutStatus, Reply, Request, lost_runs,
};

fn backend_error(e: BackendError) -> Reply {
    match e {
        BackendError::NotFound(m) => Reply::error(ErrorKind::NotFound, m),
        e @ (BackendError::Pager(_) | BackendError::Failed(_)) => {
            Reply::error(ErrorKind::Failed, e.to_string())
        }
    }
}

/// Wire object `id` if it belongs to `uid`. Another uid's object answers exactly like a
/// missing one: its existence is not disclosed.
fn lookup(shared: &Shared, uid: u32, id: u64) -> Result<Arc<dyn BackendObject>, Reply> {
    shared
        .registry
        .lookup(uid, id)
        .ok_or_else(|| Reply::error(ErrorKind::NotFound, format!("object {id}: no such object")))
}

/// Re-read the swap pages object `id` holds and charge the difference to its uid.
fn recount(shared: &Shared, id: u64) {
    shared.registry.recount(id, &shared.limits());
}

/// Check a page range of a data request: 1..=MAX_PAGES pages, all below MAX_PINDEX (so no
/// index arithmetic downstream can overflow).
fn check_range(pindex: u64, count: u64, max: u64) -> Result<usize, Reply> {
    if count == 0 || count > max {
        return Err(Reply::error(
            ErrorKind::Malformed,
            format!("count {count} is outside 1..={max}"),
        ));
    }
    if pindex >= MAX_PINDEX || MAX_PINDEX - pindex < count {
        return Err(Reply::error(
            ErrorKind::Malformed,
            format!("pages {pindex}..+{count} go past the last page index {MAX_PINDEX}"),
        ));
    }
    Ok(count as usize)
}

pub(crate) fn handle(
    shared: &Shared,
    peer: &Peer,
    req: Request,
    data: Vec<u8>,
) -> (Reply, Vec<u8>) {
    if req.is_privileged() && !shared.is_admin(peer.uid) {
        log_uid!(
            Warn,
            peer.uid,
            "client {} (uid {}): refused {}: needs root or the daemon's user",
            peer.conn,
            peer.uid,
            req.op()
        );
        return (
            Reply::error(
                ErrorKind::Permission,
                "permission denied: needs root or the daemon's user",
            ),
            Vec::new(),
        );
    }
    match run(shared, peer, req, data) {
        Ok(r) => r,
        Err(reply) => (reply, Vec::new()),
    }
}

type Answer = Result<(Reply, Vec<u8>), Reply>;

fn ok(r: Reply) -> Answer {
    Ok((r, Vec::new()))
}

/// One function per request kind.
fn run(shared: &Shared, peer: &Peer, req: Request, data: Vec<u8>) -> Answer {
    match req {
        Request::Stats { frag } => stats(shared, peer, frag),
        Request::Config => config(shared),
        Request::SwapOn {
            path,
            priority,
            discard,
        } => swapon(shared, peer, &path, priority, discard),
        Request::SwapOff { path, force } => swapoff(shared, peer, &path, force),
        Request::Set { name, value } => set(shared, peer, &name, value),
        Request::Create { handle } => create(shared, peer, handle),
        Request::Destroy { object } => destroy(shared, peer, object),
        Request::PutPages {
            object,
            pindex,
            count,
            sync,
        } => putpages(shared, peer, object, pindex, count, sync, &data),
        Request::GetPages {
            object,
            pindex,
            count,
        } => getpages(shared, peer, object, pindex, count),
        Request::HasPage { object, pindex } => {
            check_range(pindex, 1, 1)?;
            let obj = lookup(shared, peer.uid, object)?;
            let (has, before, after) = obj.haspage(pindex);
            ok(Reply::Has { has, before, after })
        }
        Request::FreeSpace {
            object,
            pindex,
            count,
        } => {
            check_range(pindex, count, MAX_PINDEX)?;
            let obj = lookup(shared, peer.uid, object)?;
            obj.freespace(pindex, count);
            recount(shared, object);
            ok(Reply::Ok)
        }
        Request::Sync { object } => sync(shared, peer, object),
        Request::Report(r) => report(shared, peer, r),
    }
}

/// `sync`: the pages of `object` (of every object this connection created, without one)
/// whose async writes failed since the last `sync`, each reported once, as runs; at most
/// [`MAX_SYNC_RUNS`] per reply, `more` when others wait.
fn sync(shared: &Shared, peer: &Peer, object: Option<u64>) -> Answer {
    let objects = match object {
        Some(o) => vec![(o, lookup(shared, peer.uid, o)?)],
        None => shared.registry.of_connection(peer.uid, peer.conn),
    };
    let mut lost = Vec::new();
    let mut more = false;
    for (wire, obj) in objects {
        let budget = MAX_SYNC_RUNS - lost.len();
        if budget == 0 {
            more = true;
            break;
        }
        let (pages, left) = obj.sync(budget);
        more |= left;
        lost.extend(lost_runs(wire, &pages));
        if !pages.is_empty() {
            // Lost pages hold no swap any more.
            recount(shared, wire);
            log_uid!(
                Warn,
                peer.uid,
                "client {} (uid {}): object {wire}: {} pages whose async writes failed on every swap device reported by sync",
                peer.conn,
                peer.uid,
                pages.len()
            );
        }
    }
    ok(Reply::Synced { lost, more })
}

fn stats(shared: &Shared, peer: &Peer, frag: bool) -> Answer {
    let only = (!shared.is_admin(peer.uid)).then_some(peer.uid);
    let uids = shared
        .registry
        .uids
        .usage(only, |u| shared.is_admin(u), &shared.limits());
    let processes = shared.runs.usage(&shared.registry, only);
    ok(Reply::Stats {
        stats: Box::new(PagerStats::clone(&shared.stats(peer.uid, frag))),
        uids,
        processes,
    })
}

/// `report`: a program run with `swapctl run` says how it is doing; its connection is shown
/// as a run from now on. A report the daemon refuses (its command too long) changes
/// nothing: a run keeps its last good report, a connection that was none stays none.
fn report(shared: &Shared, peer: &Peer, report: ProcessReport) -> Answer {
    if let Err(why) = report.check() {
        log_uid!(
            Warn,
            peer.uid,
            "client {} (uid {}): {why}",
            peer.conn,
            peer.uid
        );
        return Err(Reply::error(ErrorKind::Malformed, why));
    }
    shared.runs.report(peer, report);
    ok(Reply::Ok)
}

fn config(shared: &Shared) -> Answer {
    ok(Reply::Config {
        devices: shared
            .config()
            .devices
            .iter()
            .map(|d| ConfigDevice {
                path: d.path.display().to_string(),
                priority: d.priority,
                discard: d.discard,
                noauto: d.noauto,
            })
            .collect(),
    })
}

fn swapon(
    shared: &Shared,
    peer: &Peer,
    path: &str,
    priority: Option<i32>,
    discard: bool,
) -> Answer {
    let config = shared.config();
    let entry = config.device(Path::new(path));
    let priority = priority.or(entry.map(|e| e.priority)).unwrap_or(-1);
    let discard = discard || entry.is_some_and(|e| e.discard);
    let result = shared.backend.swapon(Path::new(path), priority, discard);
    shared.stats_changed();
    match result {
        Ok(()) => {
            log_info!("swapon {path} priority {priority} (uid {})", peer.uid);
            ok(Reply::Ok)
        }
        Err(e) => {
            log_info!("swapon {path} (uid {}) failed: {e}", peer.uid);
            Err(backend_error(e))
        }
    }
}

fn swapoff(shared: &Shared, peer: &Peer, path: &str, force: bool) -> Answer {
    let forced = if force { " --force" } else { "" };
    log_info!("swapoff{forced} {path} (uid {}) started", peer.uid);
    // What went wrong on the area, looked at before it goes: why pages are lost, if any are.
    let why = shared
        .backend
        .stats()
        .devices
        .into_iter()
        .find(|d| d.path == path)
        .and_then(|d| d.last_error)
        .map(|e| e.what);
    let result = shared.backend.swapoff(Path::new(path), force);
    shared.stats_changed();
    match result {
        Ok(lost) => {
            let why = why.filter(|_| lost > 0);
            match &why {
                Some(w) => log_info!("swapoff {path} done ({lost} pages lost: {w})"),
                None => log_info!("swapoff {path} done ({lost} pages lost)"),
            }
            // A swapoff that lost pages (a forced one, or one of an area cut short: only
            // the pages past the cut are lost) says how many and why; one that lost none
            // answers `ok` as it always has.
            ok(if force || lost > 0 {
                Reply::Value { value: lost, why }
            } else {
                Reply::Ok
            })
        }
        Err(e) => {
            log_info!("swapoff {path} failed: {e}");
            Err(backend_error(e))
        }
    }
}

fn set(shared: &Shared, peer: &Peer, name: &str, value: u64) -> Answer {
    if name != "swap_async_max" {
        return Err(Reply::error(
            ErrorKind::NotFound,
            format!("{name}: no such tunable (tunables: swap_async_max)"),
        ));
    }
    let v = shared.backend.set_swap_async_max(value);
    shared.stats_changed();
    log_info!("swap_async_max = {v} (asked {value}, uid {})", peer.uid);
    ok(Reply::Value {
        value: v,
        why: None,
    })
}

fn create(shared: &Shared, peer: &Peer, handle: Option<String>) -> Answer {
    let limits = shared.limits();
    if let Some(h) = &handle {
        if h.len() > limits.max_handle_len as usize {
            return Err(Reply::error(
                ErrorKind::Quota,
                format!(
                    "a handle of {} bytes is over the limit of {} (max_handle_len)",
                    h.len(),
                    limits.max_handle_len
                ),
            ));
        }
        if let Some(id) = shared.registry.named(peer.uid, h) {
            return ok(Reply::Object { object: id });
        }
    }
    shared
        .registry
        .uids
        .add_object(peer.uid, &limits)
        .map_err(|m| Reply::error(ErrorKind::Quota, m))?;
    let obj = match shared.backend.create() {
        Ok(o) => o,
        Err(e) => {
            shared.registry.uids.remove_object(peer.uid, 0, &limits);
            return Err(backend_error(e));
        }
    };
    // Two clients may race to create the same named object: the first is kept.
    let id = shared
        .registry
        .insert(peer.uid, peer.conn, handle, obj, &limits);
    ok(Reply::Object { object: id })
}

fn destroy(shared: &Shared, peer: &Peer, object: u64) -> Answer {
    lookup(shared, peer.uid, object)?;
    shared.registry.destroy(peer.uid, object, &shared.limits());
    ok(Reply::Ok)
}

/// Page out; with a swap-page quota, only as many pages as the uid may still take are
/// admitted (reserved in the registry before they are written, and counted as the object's
/// once they land), the rest answer `fail` with reason `quota`. (A rewrite of a page already
/// on swap would not grow the uid's usage, but telling it apart would cost a lookup per
/// page: at the quota, rewrites fail too.)
fn putpages(
    shared: &Shared,
    peer: &Peer,
    object: u64,
    pindex: u64,
    count: u32,
    sync: bool,
    data: &[u8],
) -> Answer {
    let n = check_range(pindex, u64::from(count), u64::from(MAX_PAGES))?;
    if data.len() != n * PAGE_SIZE {
        return Err(Reply::error(
            ErrorKind::Malformed,
            format!(
                "put_pages of {n} pages carries {} bytes of data",
                data.len()
            ),
        ));
    }
    let obj = lookup(shared, peer.uid, object)?;
    let limits = shared.limits();
    let allowed = shared.registry.admit(peer.uid, n as u64, &limits) as usize;
    let mut pages = if allowed > 0 {
        let landed = shared
            .registry
            .landed(peer.uid, object, allowed as u64, limits.clone());
        obj.putpages(pindex, &data[..allowed * PAGE_SIZE], sync, landed)
    } else {
        recount(shared, object);
        Vec::new()
    };
    let reason = (allowed < n).then_some(FailReason::Quota);
    pages.resize(n, PutStatus::Fail);
    if reason.is_some() {
        log_uid!(
            Info,
            peer.uid,
            "client {} (uid {}): {} pages over max_swap_pages_per_uid refused",
            peer.conn,
            peer.uid,
            n - allowed
        );
    }
    ok(Reply::Put { pages, reason })
}

fn getpages(shared: &Shared, peer: &Peer, object: u64, pindex: u64, count: u32) -> Answer {
    let n = check_range(pindex, u64::from(count), u64::from(MAX_PAGES))?;
    let obj = lookup(shared, peer.uid, object)?;
    let mut out = vec![0u8; n * PAGE_SIZE];
    let (pages, errors) = obj.getpages(pindex, &mut out);
    Ok((Reply::Get { pages, errors }, out))
}
