//! The client side of the protocol: one connection to the daemon, one request at a time.
//!
//! Every command that talks to the daemon goes through [`Client::call`]; the typed helpers
//! below turn error replies into [`ClientError::Daemon`] with the daemon's words.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use device::PAGE_SIZE;
use pager::PagerStats;

use crate::proto::{
    ConfigDevice, ErrorKind, Frame, GetStatus, ProtoError, PutStatus, Reply, Request,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source} (is `swapctl daemon` running?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Proto(#[from] ProtoError),
    /// The daemon answered with an error.
    #[error("{message}")]
    Daemon { kind: ErrorKind, message: String },
    #[error("unexpected reply from the daemon: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The daemon's error kind, if the daemon answered.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Daemon { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

fn unexpected(r: Reply) -> ClientError {
    ClientError::Unexpected(format!("{r:?}").chars().take(200).collect())
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Client { stream })
    }

    /// Send one request and wait for its reply. An error reply becomes `Err(Daemon)`.
    pub fn call(&mut self, req: &Request, data: Vec<u8>) -> Result<(Reply, Vec<u8>), ClientError> {
        req.frame(data).write_to(&mut self.stream)?;
        let frame = Frame::read_from(&mut self.stream)?;
        match Reply::decode(&frame)? {
            Reply::Error { kind, message } => Err(ClientError::Daemon { kind, message }),
            reply => Ok((reply, frame.data)),
        }
    }

    /// Send raw bytes and read one reply frame: for tests of the daemon's defences.
    pub fn call_raw(&mut self, bytes: &[u8]) -> Result<Reply, ClientError> {
        use std::io::Write;
        self.stream.write_all(bytes).map_err(ProtoError::Io)?;
        let frame = Frame::read_from(&mut self.stream)?;
        Ok(Reply::decode(&frame)?)
    }

    pub fn stats(&mut self) -> Result<PagerStats, ClientError> {
        match self.call(&Request::Stats, Vec::new())?.0 {
            Reply::Stats { stats } => Ok(*stats),
            r => Err(unexpected(r)),
        }
    }

    pub fn config(&mut self) -> Result<Vec<ConfigDevice>, ClientError> {
        match self.call(&Request::Config, Vec::new())?.0 {
            Reply::Config { devices } => Ok(devices),
            r => Err(unexpected(r)),
        }
    }

    fn expect_ok(&mut self, req: Request) -> Result<(), ClientError> {
        match self.call(&req, Vec::new())?.0 {
            Reply::Ok => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    pub fn swapon(
        &mut self,
        path: &str,
        priority: Option<i32>,
        discard: bool,
    ) -> Result<(), ClientError> {
        self.expect_ok(Request::SwapOn {
            path: path.into(),
            priority,
            discard,
        })
    }

    pub fn swapoff(&mut self, path: &str) -> Result<(), ClientError> {
        self.expect_ok(Request::SwapOff { path: path.into() })
    }

    /// Set a tunable; returns the value in force after clamping.
    pub fn set(&mut self, name: &str, value: u64) -> Result<u64, ClientError> {
        match self
            .call(
                &Request::Set {
                    name: name.into(),
                    value,
                },
                Vec::new(),
            )?
            .0
        {
            Reply::Value { value } => Ok(value),
            r => Err(unexpected(r)),
        }
    }

    pub fn create(&mut self, handle: Option<&str>) -> Result<u64, ClientError> {
        match self
            .call(
                &Request::Create {
                    handle: handle.map(Into::into),
                },
                Vec::new(),
            )?
            .0
        {
            Reply::Object { object } => Ok(object),
            r => Err(unexpected(r)),
        }
    }

    pub fn destroy(&mut self, object: u64) -> Result<(), ClientError> {
        self.expect_ok(Request::Destroy { object })
    }

    /// Page out `data` (whole pages) at `pindex`.
    pub fn putpages(
        &mut self,
        object: u64,
        pindex: u64,
        data: Vec<u8>,
        sync: bool,
    ) -> Result<Vec<PutStatus>, ClientError> {
        let count = (data.len() / PAGE_SIZE) as u32;
        match self
            .call(
                &Request::PutPages {
                    object,
                    pindex,
                    count,
                    sync,
                },
                data,
            )?
            .0
        {
            Reply::Put { pages } if pages.len() == count as usize => Ok(pages),
            r => Err(unexpected(r)),
        }
    }

    /// Page in `count` pages at `pindex`: a status per page and `count` pages of data.
    pub fn getpages(
        &mut self,
        object: u64,
        pindex: u64,
        count: u32,
    ) -> Result<(Vec<GetStatus>, Vec<u8>), ClientError> {
        match self.call(
            &Request::GetPages {
                object,
                pindex,
                count,
            },
            Vec::new(),
        )? {
            (Reply::Get { pages }, data)
                if pages.len() == count as usize && data.len() == count as usize * PAGE_SIZE =>
            {
                Ok((pages, data))
            }
            (r, _) => Err(unexpected(r)),
        }
    }

    /// Whether swap holds the page, with contiguous pages before and after it.
    pub fn haspage(&mut self, object: u64, pindex: u64) -> Result<(bool, u64, u64), ClientError> {
        match self
            .call(&Request::HasPage { object, pindex }, Vec::new())?
            .0
        {
            Reply::Has { has, before, after } => Ok((has, before, after)),
            r => Err(unexpected(r)),
        }
    }

    /// Drop the swap copies of `count` pages from `pindex`.
    pub fn freespace(&mut self, object: u64, pindex: u64, count: u64) -> Result<(), ClientError> {
        self.expect_ok(Request::FreeSpace {
            object,
            pindex,
            count,
        })
    }
}

/// `swapctl top`'s source: a client that reconnects when the daemon restarts, so the TUI
/// shows the error and recovers instead of exiting.
#[derive(Debug)]
pub struct DaemonSource {
    socket: PathBuf,
    client: Option<Client>,
}

impl DaemonSource {
    pub fn new(socket: &Path) -> DaemonSource {
        DaemonSource {
            socket: socket.to_owned(),
            client: None,
        }
    }

    fn with<T>(&mut self, f: impl Fn(&mut Client) -> Result<T, ClientError>) -> Result<T, String> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.socket).map_err(|e| e.to_string())?);
        }
        let Some(c) = self.client.as_mut() else {
            return Err("not connected".into());
        };
        match f(c) {
            Ok(v) => Ok(v),
            // The daemon answered: the connection is fine.
            Err(e @ ClientError::Daemon { .. }) => Err(e.to_string()),
            Err(e) => {
                self.client = None;
                Err(e.to_string())
            }
        }
    }
}

impl crate::top::StatsSource for DaemonSource {
    fn fetch(&mut self) -> Result<PagerStats, String> {
        self.with(Client::stats)
    }

    fn set_swap_async_max(&mut self, n: u64) -> Result<u64, String> {
        self.with(|c| c.set("swap_async_max", n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_of_another_version_is_named_in_the_error() {
        let dir = tempfile::Builder::new()
            .prefix("swapkit-ver")
            .tempdir()
            .unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut head = [0u8; crate::proto::HEADER_LEN];
            s.read_exact(&mut head).unwrap();
            let mut reply = Reply::Ok.frame(Vec::new()).encode();
            reply[4..6].copy_from_slice(&2u16.to_le_bytes());
            s.write_all(&reply).unwrap();
        });
        let err = Client::connect(&path).unwrap().stats().unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            "peer speaks protocol version 2, this swapctl speaks 1"
        );
    }
}
