//! One client connection: wait for a frame, read it against the read timeout, check who may do
//! it, pace it, run it on the backend, write the reply against the write timeout.
//!
//! Invariants: a bad frame gets an error reply, never a panic or a silent close; the session
//! only ever touches objects of its peer's uid; what a uid holds is counted against its quotas
//! (`uids.rs`) and uncounted exactly once; when the connection ends, the anonymous
//! objects it created are freed; no peer holds the thread longer than the idle, read or write
//! timeout of [`super::limits::Limits`].

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use device::PAGE_SIZE;
use pager::PagerStats;

use super::Shutdown;
use super::backend::{Backend, BackendError};
use super::limits::Limits;
use super::log::{log_debug, log_info, log_uid};
use super::timed::{self, DeadlineReader, DeadlineWriter, Ready};
use super::uids::Uids;
use crate::config::Config;
use crate::proto::{
    ConfigDevice, ErrorKind, FailReason, Frame, MAX_PAGES, MAX_PINDEX, MAX_SYNC_RUNS, ProtoError,
    PutStatus, Reply, Request, lost_runs,
};

/// An object as the daemon tracks it: whose it is, what keeps it alive, and the swap pages
/// it held when last looked at (what its uid is charged).
#[derive(Debug)]
struct Owned {
    uid: u32,
    backend: u64,
    handle: Option<String>,
    conn: u64,
    pages: u64,
}

/// Every object served, by wire id. Wire ids are never reused, so a stale id from a closed
/// connection can never reach someone else's new object.
#[derive(Debug, Default)]
pub struct ObjectTable {
    next: u64,
    by_id: HashMap<u64, Owned>,
    named: HashMap<(u32, String), u64>,
}

/// A snapshot and when it was taken.
type CachedStats = (Instant, Arc<PagerStats>);

/// What every session shares.
pub struct Shared {
    pub backend: Arc<dyn Backend>,
    /// The config file as last (re)loaded: devices and limits. SIGHUP swaps it.
    pub config: RwLock<Arc<Config>>,
    pub objects: Mutex<ObjectTable>,
    pub uids: Uids,
    /// The daemon's effective uid: it may run privileged requests, as root may.
    pub daemon_uid: u32,
    /// The last `stats` snapshot without and with fragmentation, shared by non-root
    /// monitors for `stats_max_age_ms`.
    stats_cache: Mutex<[Option<CachedStats>; 2]>,
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("daemon_uid", &self.daemon_uid)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(backend: Arc<dyn Backend>, config: Config, daemon_uid: u32) -> Shared {
        Shared {
            backend,
            config: RwLock::new(Arc::new(config)),
            objects: Mutex::new(ObjectTable::default()),
            uids: Uids::default(),
            daemon_uid,
            stats_cache: Mutex::new([None, None]),
            shutdown: Shutdown::default(),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read())
    }

    pub fn limits(&self) -> Limits {
        self.config.read().limits.clone()
    }

    /// Root and the daemon's own user: privileged, and exempt from the connection quota
    /// and from pacing.
    pub fn is_admin(&self, uid: u32) -> bool {
        uid == 0 || uid == self.daemon_uid
    }

    /// A fresh snapshot for an admin; for anyone else one at most `stats_max_age_ms` old,
    /// so any number of monitors take the pager's locks at most once per period.
    /// With `frag`, the snapshot carries each device's fragmentation (cached apart).
    fn stats(&self, uid: u32, frag: bool) -> Arc<PagerStats> {
        let fetch = || {
            if frag {
                self.backend.stats_with_frag()
            } else {
                self.backend.stats()
            }
        };
        let max_age = self.limits().stats_max_age();
        if !self.is_admin(uid) {
            let mut cache = self.stats_cache.lock();
            let slot = &mut cache[usize::from(frag)];
            if let Some((at, s)) = slot.as_ref()
                && at.elapsed() <= max_age
            {
                return Arc::clone(s);
            }
            let s = Arc::new(fetch());
            *slot = Some((Instant::now(), Arc::clone(&s)));
            return s;
        }
        Arc::new(fetch())
    }

    /// Forget the cached snapshot: a device came or went, or a tunable changed.
    fn stats_changed(&self) {
        *self.stats_cache.lock() = [None, None];
    }
}

/// The peer of one connection, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
    pub conn: u64,
}

pub fn peer_of(stream: &UnixStream, conn: u64) -> std::io::Result<Peer> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?;
    Ok(Peer {
        uid: cred.uid(),
        pid: cred.pid(),
        conn,
    })
}

fn backend_error(e: BackendError) -> Reply {
    match e {
        BackendError::NotFound(m) => Reply::error(ErrorKind::NotFound, m),
        e @ (BackendError::Pager(_) | BackendError::Failed(_)) => {
            Reply::error(ErrorKind::Failed, e.to_string())
        }
    }
}

/// Write `reply` whole within the write timeout, or report why not.
fn send(
    stream: &UnixStream,
    reply: &Reply,
    data: Vec<u8>,
    limits: &Limits,
) -> Result<(), ProtoError> {
    let mut w = DeadlineWriter {
        stream,
        deadline: Instant::now() + limits.write_timeout(),
    };
    reply.frame(data).write_to(&mut w)
}

/// Serve `stream` until the peer closes it, the daemon shuts its read side, a time limit
/// passes, or a frame breaks the stream's framing. The caller counted the connection
/// against the uid's quota; this uncounts it.
pub fn serve(shared: &Shared, stream: UnixStream, peer: Peer) {
    log_debug!(
        "client {} (uid {}, pid {}) connected",
        peer.conn,
        peer.uid,
        peer.pid
    );
    let why = serve_frames(shared, &stream, &peer);
    if let Some(why) = why {
        log_uid!(
            Info,
            peer.uid,
            "client {} (uid {}): {why}; closing",
            peer.conn,
            peer.uid
        );
    }
    release(shared, &peer);
    shared.uids.disconnect(peer.uid, &shared.limits());
    log_debug!("client {} gone", peer.conn);
}

/// The request loop; returns why it ended when that is worth a log line.
fn serve_frames(shared: &Shared, stream: &UnixStream, peer: &Peer) -> Option<String> {
    loop {
        let limits = shared.limits();
        match timed::wait_readable(stream, limits.idle_timeout()) {
            Ok(Ready::Readable) => {}
            Ok(Ready::Idle) => {
                return Some(format!(
                    "idle for {} s",
                    limits.idle_timeout().as_secs_f64()
                ));
            }
            Err(e) => return Some(format!("waiting for a request: {e}")),
        }
        let mut r = DeadlineReader {
            stream,
            deadline: Instant::now() + limits.read_timeout(),
        };
        let frame = match Frame::read_from(&mut r) {
            Ok(f) => f,
            Err(ProtoError::Closed) => return None,
            Err(ProtoError::Io(e)) if timed::is_timeout(&e) => {
                return Some(format!(
                    "a request did not arrive whole within {} s",
                    limits.read_timeout().as_secs_f64()
                ));
            }
            Err(ProtoError::Io(e)) => {
                log_debug!("client {}: {e}", peer.conn);
                return None;
            }
            Err(ProtoError::Incomplete(_)) => {
                return Some("closed in the middle of a request".into());
            }
            Err(e) => {
                // Bad magic, version or size: answer in words, then drop the connection,
                // since what follows cannot be framed.
                let _ = send(
                    stream,
                    &Reply::error(e.reply_kind(), e.to_string()),
                    Vec::new(),
                    &limits,
                );
                return Some(e.to_string());
            }
        };
        let (reply, data) = match Request::decode(&frame) {
            Ok(req) => {
                log_debug!("client {} (uid {}): {}", peer.conn, peer.uid, req.op());
                if !pace(shared, peer, &req, &limits) {
                    return None;
                }
                handle(shared, peer, req, frame.data)
            }
            Err(e) => {
                log_uid!(
                    Warn,
                    peer.uid,
                    "client {} (uid {}): {e}",
                    peer.conn,
                    peer.uid
                );
                (Reply::error(e.reply_kind(), e.to_string()), Vec::new())
            }
        };
        match send(stream, &reply, data, &limits) {
            Ok(()) => {}
            Err(ProtoError::Io(e)) if timed::is_timeout(&e) => {
                return Some(format!(
                    "did not read its reply within {} s",
                    limits.write_timeout().as_secs_f64()
                ));
            }
            Err(_) => return None,
        }
    }
}

/// Make a control request of a non-admin wait for its uid's token (page transfers are not
/// paced: they are the work the daemon is for). Returns false if the daemon began shutting
/// down meanwhile.
fn pace(shared: &Shared, peer: &Peer, req: &Request, limits: &Limits) -> bool {
    if req.is_page_transfer() || shared.is_admin(peer.uid) {
        return true;
    }
    let wait = shared.uids.pace(peer.uid, limits);
    let end = Instant::now() + wait;
    // In slices, so shutdown is never held up by a paced client.
    while Instant::now() < end {
        if shared.shutdown.is_set() {
            return false;
        }
        std::thread::sleep(
            end.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        );
    }
    true
}

/// Free the anonymous objects of a closed connection.
fn release(shared: &Shared, peer: &Peer) {
    let gone: Vec<Owned> = {
        let mut t = shared.objects.lock();
        let ids: Vec<u64> = t
            .by_id
            .iter()
            .filter(|(_, o)| o.conn == peer.conn && o.handle.is_none())
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| t.by_id.remove(id)).collect()
    };
    let limits = shared.limits();
    for o in &gone {
        shared.backend.destroy(o.backend);
        shared.uids.remove_object(o.uid, o.pages, &limits);
    }
    if !gone.is_empty() {
        log_debug!(
            "client {}: freed {} anonymous objects",
            peer.conn,
            gone.len()
        );
    }
}

/// The backend id of wire object `id` if it belongs to `uid`. Another uid's object answers
/// exactly like a missing one: its existence is not disclosed.
fn lookup(shared: &Shared, uid: u32, id: u64) -> Result<u64, Reply> {
    match shared.objects.lock().by_id.get(&id) {
        Some(o) if o.uid == uid => Ok(o.backend),
        _ => Err(Reply::error(
            ErrorKind::NotFound,
            format!("object {id}: no such object"),
        )),
    }
}

/// Re-read the swap pages object `id` holds and charge the difference to its uid.
fn recount(shared: &Shared, id: u64) {
    let mut t = shared.objects.lock();
    let Some(o) = t.by_id.get_mut(&id) else {
        return;
    };
    let now = shared.backend.swapped_pages(o.backend);
    let before = std::mem::replace(&mut o.pages, now);
    let uid = o.uid;
    drop(t);
    shared
        .uids
        .pages_changed(uid, before, now, &shared.limits());
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
            let id = lookup(shared, peer.uid, object)?;
            let (has, before, after) = shared.backend.haspage(id, pindex);
            ok(Reply::Has { has, before, after })
        }
        Request::FreeSpace {
            object,
            pindex,
            count,
        } => {
            check_range(pindex, count, MAX_PINDEX)?;
            let id = lookup(shared, peer.uid, object)?;
            shared.backend.freespace(id, pindex, count);
            recount(shared, object);
            ok(Reply::Ok)
        }
        Request::Sync { object } => sync(shared, peer, object),
    }
}

/// `sync`: the pages of `object` (of every object this connection created, without one)
/// whose async writes failed since the last `sync`, each reported once, as runs; at most
/// [`MAX_SYNC_RUNS`] per reply, `more` when others wait.
fn sync(shared: &Shared, peer: &Peer, object: Option<u64>) -> Answer {
    let ids: Vec<(u64, u64)> = match object {
        Some(o) => vec![(o, lookup(shared, peer.uid, o)?)],
        None => {
            let t = shared.objects.lock();
            let mut v: Vec<(u64, u64)> = t
                .by_id
                .iter()
                .filter(|(_, o)| o.conn == peer.conn && o.uid == peer.uid)
                .map(|(id, o)| (*id, o.backend))
                .collect();
            v.sort_unstable();
            v
        }
    };
    let mut lost = Vec::new();
    let mut more = false;
    for (wire, id) in ids {
        let budget = MAX_SYNC_RUNS - lost.len();
        if budget == 0 {
            more = true;
            break;
        }
        let (pages, left) = shared.backend.sync(id, budget);
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
        .uids
        .usage(only, |u| shared.is_admin(u), &shared.limits());
    ok(Reply::Stats {
        stats: Box::new(PagerStats::clone(&shared.stats(peer.uid, frag))),
        uids,
    })
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
    let result = shared.backend.swapoff(Path::new(path), force);
    shared.stats_changed();
    match result {
        Ok(lost) => {
            log_info!("swapoff {path} done ({lost} pages lost)");
            // A forced swapoff says how many pages it dropped; a plain one loses none
            // (it fails instead), and answers `ok` as it always has.
            ok(if force {
                Reply::Value { value: lost }
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
    ok(Reply::Value { value: v })
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
        if let Some(id) = shared.objects.lock().named.get(&(peer.uid, h.clone())) {
            return ok(Reply::Object { object: *id });
        }
    }
    shared
        .uids
        .add_object(peer.uid, &limits)
        .map_err(|m| Reply::error(ErrorKind::Quota, m))?;
    let backend = match shared.backend.create() {
        Ok(b) => b,
        Err(e) => {
            shared.uids.remove_object(peer.uid, 0, &limits);
            return Err(backend_error(e));
        }
    };
    let mut t = shared.objects.lock();
    // Two clients may race to create the same named object: keep the first.
    if let Some(h) = &handle
        && let Some(id) = t.named.get(&(peer.uid, h.clone())).copied()
    {
        drop(t);
        shared.backend.destroy(backend);
        shared.uids.remove_object(peer.uid, 0, &limits);
        return ok(Reply::Object { object: id });
    }
    t.next += 1;
    let id = t.next;
    if let Some(h) = &handle {
        t.named.insert((peer.uid, h.clone()), id);
    }
    t.by_id.insert(
        id,
        Owned {
            uid: peer.uid,
            backend,
            handle,
            conn: peer.conn,
            pages: 0,
        },
    );
    ok(Reply::Object { object: id })
}

fn destroy(shared: &Shared, peer: &Peer, object: u64) -> Answer {
    lookup(shared, peer.uid, object)?;
    let gone = {
        let mut t = shared.objects.lock();
        let o = t.by_id.remove(&object);
        if let Some(h) = o.as_ref().and_then(|o| o.handle.clone()) {
            t.named.remove(&(peer.uid, h));
        }
        o
    };
    if let Some(o) = gone {
        shared.backend.destroy(o.backend);
        shared.uids.remove_object(o.uid, o.pages, &shared.limits());
    }
    ok(Reply::Ok)
}

/// Page out; with a swap-page quota, only as many pages as the uid may still take are
/// written, the rest answer `fail` with reason `quota`. (A rewrite of a page already on swap
/// would not grow the uid's usage, but telling it apart would cost a lookup per page: at the
/// quota, rewrites fail too.)
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
    let id = lookup(shared, peer.uid, object)?;
    let limits = shared.limits();
    let allowed = shared.uids.page_allowance(peer.uid, &limits).min(n as u64) as usize;
    let mut pages = if allowed > 0 {
        shared
            .backend
            .putpages(id, pindex, &data[..allowed * PAGE_SIZE], sync)
    } else {
        Vec::new()
    };
    let reason = (allowed < n).then_some(FailReason::Quota);
    pages.resize(n, PutStatus::Fail);
    if limits.max_swap_pages_per_uid.is_some() || allowed > 0 {
        recount(shared, object);
    }
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
    let id = lookup(shared, peer.uid, object)?;
    let mut out = vec![0u8; n * PAGE_SIZE];
    let (pages, errors) = shared.backend.getpages_explained(id, pindex, &mut out);
    Ok((Reply::Get { pages, errors }, out))
}
