//! One client connection: wait for a frame, read it against the read timeout, pace it, have
//! it run (`requests.rs`), write the reply against the write timeout.
//!
//! Invariants: a bad frame gets an error reply, never a panic or a silent close; when the
//! connection ends, the anonymous objects it created are freed and its run forgotten; no peer holds the thread
//! longer than the idle, read or write timeout of [`super::limits::Limits`].

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::limits::Limits;
use super::log::{log_debug, log_uid};
use super::peer::Peer;
use super::requests::handle;
use super::shared::Shared;
use super::timed::{self, DeadlineReader, DeadlineWriter, Ready};
use crate::proto::{Frame, ProtoError, Reply, Request};

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
    shared.registry.uids.disconnect(peer.uid, &shared.limits());
    log_debug!("client {} gone", peer.conn);
}

/// The request loop; returns why it ended when that is worth a log line.
fn serve_frames(shared: &Shared, stream: &UnixStream, peer: &Peer) -> Option<String> {
    loop {
        let limits = shared.limits();
        match timed::wait_readable(stream, limits.idle_timeout()) {
            Ok(Ready::Readable) => {}
            // Closing it would free its anonymous objects, the data of a program that may
            // just be sleeping (`swapctl run`): such a connection is never idle.
            Ok(Ready::Idle) if shared.registry.holds_anonymous(peer.conn) => {}
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
    let wait = shared.registry.uids.pace(peer.uid, limits);
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

/// Free the anonymous objects of a closed connection, and forget its run (`swapctl run`'s
/// program exited or was killed: its objects go with it).
fn release(shared: &Shared, peer: &Peer) {
    shared.runs.remove(peer.conn);
    let n = shared.registry.release(peer.conn, &shared.limits());
    if n > 0 {
        log_debug!("client {}: freed {n} anonymous objects", peer.conn);
    }
}
