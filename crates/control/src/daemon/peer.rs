//! Who is at the other end of a connection: its uid and pid from `SO_PEERCRED`, which
//! every permission and quota is checked against.

use std::os::unix::net::UnixStream;

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
