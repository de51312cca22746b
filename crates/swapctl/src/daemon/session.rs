//! One client connection: read a frame, check who may do it, run it on the backend, reply.
//!
//! Invariants: a bad frame gets an error reply, never a panic or a silent close; the session
//! only ever touches objects of its peer's uid; when the connection ends, the anonymous
//! objects it created are freed.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use device::PAGE_SIZE;

use super::backend::{Backend, BackendError};
use super::log::{log_debug, log_info, log_warn};
use crate::config::Config;
use crate::proto::{
    ConfigDevice, ErrorKind, Frame, MAX_PAGES, MAX_PINDEX, ProtoError, Reply, Request,
};

/// An object as the daemon tracks it: whose it is and what keeps it alive.
#[derive(Debug)]
struct Owned {
    uid: u32,
    backend: u64,
    handle: Option<String>,
    conn: u64,
}

/// Every object served, by wire id. Wire ids are never reused, so a stale id from a closed
/// connection can never reach someone else's new object.
#[derive(Debug, Default)]
pub struct ObjectTable {
    next: u64,
    by_id: HashMap<u64, Owned>,
    named: HashMap<(u32, String), u64>,
}

/// What every session shares.
pub struct Shared {
    pub backend: Arc<dyn Backend>,
    pub config: Config,
    pub objects: Mutex<ObjectTable>,
    /// The daemon's effective uid: it may run privileged requests, as root may.
    pub daemon_uid: u32,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("daemon_uid", &self.daemon_uid)
            .finish_non_exhaustive()
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
        BackendError::Failed(m) => Reply::error(ErrorKind::Failed, m),
    }
}

/// Serve `stream` until the peer closes it, the daemon shuts its read side, or a frame
/// breaks the stream's framing.
pub fn serve(shared: &Shared, mut stream: UnixStream, peer: Peer) {
    log_debug!(
        "client {} (uid {}, pid {}) connected",
        peer.conn,
        peer.uid,
        peer.pid
    );
    loop {
        let frame = match Frame::read_from(&mut stream) {
            Ok(f) => f,
            Err(ProtoError::Closed) => break,
            Err(ProtoError::Io(e)) => {
                log_debug!("client {}: {e}", peer.conn);
                break;
            }
            Err(ProtoError::Incomplete(_)) => break,
            Err(e) => {
                // Bad magic, version or size: answer in words, then drop the connection,
                // since what follows cannot be framed.
                log_warn!("client {} (uid {}): {e}; closing", peer.conn, peer.uid);
                let _ = Reply::error(e.reply_kind(), e.to_string())
                    .frame(Vec::new())
                    .write_to(&mut stream);
                break;
            }
        };
        let (reply, data) = match Request::decode(&frame) {
            Ok(req) => {
                log_debug!("client {} (uid {}): {req:?}", peer.conn, peer.uid);
                handle(shared, &peer, req, frame.data)
            }
            Err(e) => {
                log_warn!("client {} (uid {}): {e}", peer.conn, peer.uid);
                (Reply::error(e.reply_kind(), e.to_string()), Vec::new())
            }
        };
        if reply.frame(data).write_to(&mut stream).is_err() {
            break;
        }
    }
    release(shared, &peer);
    log_debug!("client {} gone", peer.conn);
}

/// Free the anonymous objects of a closed connection.
fn release(shared: &Shared, peer: &Peer) {
    let gone: Vec<u64> = {
        let mut t = shared.objects.lock();
        let ids: Vec<u64> = t
            .by_id
            .iter()
            .filter(|(_, o)| o.conn == peer.conn && o.handle.is_none())
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .filter_map(|id| t.by_id.remove(id))
            .map(|o| o.backend)
            .collect()
    };
    for b in &gone {
        shared.backend.destroy(*b);
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
    if req.is_privileged() && peer.uid != 0 && peer.uid != shared.daemon_uid {
        log_warn!("client {} (uid {}): refused {:?}", peer.conn, peer.uid, req);
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

fn run(
    shared: &Shared,
    peer: &Peer,
    req: Request,
    data: Vec<u8>,
) -> Result<(Reply, Vec<u8>), Reply> {
    let b = &shared.backend;
    let ok = |r: Reply| Ok((r, Vec::new()));
    match req {
        Request::Stats => ok(Reply::Stats {
            stats: Box::new(b.stats()),
        }),
        Request::Config => ok(Reply::Config {
            devices: shared
                .config
                .devices
                .iter()
                .map(|d| ConfigDevice {
                    path: d.path.display().to_string(),
                    priority: d.priority,
                    discard: d.discard,
                    noauto: d.noauto,
                })
                .collect(),
        }),
        Request::SwapOn {
            path,
            priority,
            discard,
        } => {
            let entry = shared.config.device(Path::new(&path));
            let priority = priority.or(entry.map(|e| e.priority)).unwrap_or(-1);
            let discard = discard || entry.is_some_and(|e| e.discard);
            b.swapon(Path::new(&path), priority, discard)
                .map_err(backend_error)?;
            log_info!("swapon {path} priority {priority} (uid {})", peer.uid);
            ok(Reply::Ok)
        }
        Request::SwapOff { path } => {
            log_info!("swapoff {path} (uid {}) started", peer.uid);
            b.swapoff(Path::new(&path)).map_err(backend_error)?;
            log_info!("swapoff {path} done");
            ok(Reply::Ok)
        }
        Request::Set { name, value } => {
            if name != "swap_async_max" {
                return Err(Reply::error(
                    ErrorKind::NotFound,
                    format!("{name}: no such tunable (tunables: swap_async_max)"),
                ));
            }
            let v = b.set_swap_async_max(value);
            log_info!("swap_async_max = {v} (asked {value}, uid {})", peer.uid);
            ok(Reply::Value { value: v })
        }
        Request::Create { handle } => {
            if let Some(h) = &handle
                && let Some(id) = shared.objects.lock().named.get(&(peer.uid, h.clone()))
            {
                return ok(Reply::Object { object: *id });
            }
            let backend = b.create().map_err(backend_error)?;
            let mut t = shared.objects.lock();
            // Two clients may race to create the same named object: keep the first.
            if let Some(h) = &handle
                && let Some(id) = t.named.get(&(peer.uid, h.clone())).copied()
            {
                drop(t);
                b.destroy(backend);
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
                },
            );
            ok(Reply::Object { object: id })
        }
        Request::Destroy { object } => {
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
                b.destroy(o.backend);
            }
            ok(Reply::Ok)
        }
        Request::PutPages {
            object,
            pindex,
            count,
            sync,
        } => {
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
            ok(Reply::Put {
                pages: b.putpages(id, pindex, &data, sync),
            })
        }
        Request::GetPages {
            object,
            pindex,
            count,
        } => {
            let n = check_range(pindex, u64::from(count), u64::from(MAX_PAGES))?;
            let id = lookup(shared, peer.uid, object)?;
            let mut out = vec![0u8; n * PAGE_SIZE];
            let pages = b.getpages(id, pindex, &mut out);
            Ok((Reply::Get { pages }, out))
        }
        Request::HasPage { object, pindex } => {
            check_range(pindex, 1, 1)?;
            let id = lookup(shared, peer.uid, object)?;
            let (has, before, after) = b.haspage(id, pindex);
            ok(Reply::Has { has, before, after })
        }
        Request::FreeSpace {
            object,
            pindex,
            count,
        } => {
            check_range(pindex, count, MAX_PINDEX)?;
            let id = lookup(shared, peer.uid, object)?;
            b.freespace(id, pindex, count);
            ok(Reply::Ok)
        }
    }
}
