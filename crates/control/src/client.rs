//! The client side of the protocol: one connection to the daemon, one request at a time.
//!
//! Every command that talks to the daemon goes through [`Client::call`]; the typed helpers
//! below turn error replies into [`ClientError::Daemon`] with the daemon's words.
//!
//! No call waits forever: connecting gives up after [`CONNECT_TIMEOUT`] (a daemon whose
//! backlog is full, or that is stopped), and a reply must come within [`REPLY_TIMEOUT`]
//! ([`DATA_TIMEOUT`] for page transfers and swapon; swapoff, which moves every page off a
//! device, has none). Each failure is one line naming the socket.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use device::PAGE_SIZE;
use pager::PagerStats;

use crate::proto::{
    ConfigDevice, ErrorKind, FailReason, Frame, GetStatus, LostRun, PageError, ProcessReport,
    ProcessUsage, ProtoError, PutStatus, Reply, Request, UidUsage,
};

/// A `stats` answer whole: the pager's snapshot, the per-uid usage and the programs running
/// on the swap space (`swapctl run`), as far as the daemon shows them to us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub stats: PagerStats,
    pub uids: Vec<UidUsage>,
    pub processes: Vec<ProcessUsage>,
}

/// A `get_pages` answer: a status per page, the pages' data, and why each `error` page
/// failed.
pub type Explained = (Vec<GetStatus>, Vec<u8>, Vec<PageError>);

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a control request's reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a page transfer's or a swapon's reply may take.
pub const DATA_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source} (is `swapctl daemon` running?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The socket exists but we may not connect: says whose it is.
    #[error("permission denied on {path} ({detail})")]
    Permission { path: PathBuf, detail: String },
    #[error("the daemon at {path} did not answer within {} s", secs(.after))]
    Timeout { path: PathBuf, after: Duration },
    #[error("{0}")]
    Proto(#[from] ProtoError),
    /// The daemon answered with an error.
    #[error("{message}")]
    Daemon { kind: ErrorKind, message: String },
    #[error("unexpected reply from the daemon: {0}")]
    Unexpected(String),
}

fn secs(d: &Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// "owner root, group swapkit, mode 0660; you are uid 1000 (groups 1000, 27)": what an admin
/// needs to see why a connect was refused.
fn socket_access(path: &Path) -> String {
    let Ok(m) = std::fs::metadata(path) else {
        return "cannot read its owner and mode".into();
    };
    let user = nix::unistd::User::from_uid(m.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| m.uid().to_string(), |u| u.name);
    let group = nix::unistd::Group::from_gid(m.gid().into())
        .ok()
        .flatten()
        .map_or_else(|| m.gid().to_string(), |g| g.name);
    let groups = nix::unistd::getgroups()
        .map(|g| {
            g.iter()
                .map(|g| g.as_raw().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mode = m.permissions().mode() & 0o7777;
    let advice = if mode & 0o060 == 0o060 {
        format!("ask an admin to add you to group {group}")
    } else {
        "only its owner may connect (start the daemon with --socket-group to share it)".into()
    };
    format!(
        "owner {user}, group {group}, mode {mode:04o}; you are uid {} (groups {groups}): {advice}",
        nix::unistd::getuid()
    )
}

/// Connect without waiting forever: a Unix socket whose daemon does not accept (its backlog
/// is full, or it is stopped) makes a blocking connect hang, so connect non-blocking and
/// retry until `timeout`.
fn connect_within(path: &Path, timeout: Duration) -> Result<UnixStream, ClientError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let io = |e: nix::errno::Errno| std::io::Error::from(e);
    let err = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::PermissionDenied => ClientError::Permission {
            path: path.to_owned(),
            detail: socket_access(path),
        },
        _ => ClientError::Connect {
            path: path.to_owned(),
            source,
        },
    };
    let addr = UnixAddr::new(path).map_err(|e| err(io(e)))?;
    let end = Instant::now() + timeout;
    loop {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| err(io(e)))?;
        match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream.set_nonblocking(false).map_err(err)?;
                return Ok(stream);
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {
                if Instant::now() >= end {
                    return Err(ClientError::Timeout {
                        path: path.to_owned(),
                        after: timeout,
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(err(io(e))),
        }
    }
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
    path: PathBuf,
    /// The reply timeout of control requests (`None`: wait forever).
    timeout: Option<Duration>,
}

/// The connection's descriptor: for a process that forks and must close its child's copy
/// (`swapctl run`'s preload library).
impl std::os::fd::AsRawFd for Client {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.stream)
    }
}

fn unexpected(r: Reply) -> ClientError {
    ClientError::Unexpected(format!("{r:?}").chars().take(200).collect())
}

impl Client {
    /// Connect within [`CONNECT_TIMEOUT`].
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        Ok(Client {
            stream: connect_within(path, CONNECT_TIMEOUT)?,
            path: path.to_owned(),
            timeout: Some(REPLY_TIMEOUT),
        })
    }

    /// Change the reply timeout of control requests (`None`: wait forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The reply timeout for `req`.
    fn timeout_for(&self, req: &Request) -> Option<Duration> {
        match req {
            Request::SwapOff { .. } => None,
            Request::SwapOn { .. } => self.timeout.map(|t| t.max(DATA_TIMEOUT)),
            r if r.is_page_transfer() => self.timeout.map(|t| t.max(DATA_TIMEOUT)),
            _ => self.timeout,
        }
    }

    /// Send one request and wait for its reply. An error reply becomes `Err(Daemon)`.
    pub fn call(&mut self, req: &Request, data: Vec<u8>) -> Result<(Reply, Vec<u8>), ClientError> {
        let timeout = self.timeout_for(req);
        let timed_out = |e: ProtoError, path: &Path| match e {
            ProtoError::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                ClientError::Timeout {
                    path: path.to_owned(),
                    after: timeout.unwrap_or_default(),
                }
            }
            e => ClientError::Proto(e),
        };
        let _ = self.stream.set_read_timeout(timeout);
        let _ = self.stream.set_write_timeout(timeout);
        let sent = req.frame(data).write_to(&mut self.stream);
        let frame = match sent {
            Ok(()) => Frame::read_from(&mut self.stream).map_err(|e| timed_out(e, &self.path))?,
            // A daemon that refused us (too many clients) answered and closed before our
            // request went out: its words are waiting to be read; prefer them to EPIPE.
            Err(ProtoError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                Frame::read_from(&mut self.stream).map_err(|_| ProtoError::Io(e))?
            }
            Err(e) => return Err(timed_out(e, &self.path)),
        };
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
        Ok(self.stats_and_usage()?.0)
    }

    /// The snapshot with each device's fragmentation (`swapctl frag`, top's panel).
    pub fn stats_with_frag(&mut self) -> Result<PagerStats, ClientError> {
        match self.call(&Request::Stats { frag: true }, Vec::new())?.0 {
            Reply::Stats { stats, .. } => Ok(*stats),
            r => Err(unexpected(r)),
        }
    }

    /// The snapshot and the per-uid usage the daemon shows us (every uid's for root).
    pub fn stats_and_usage(&mut self) -> Result<(PagerStats, Vec<UidUsage>), ClientError> {
        self.snapshot(false).map(|s| (s.stats, s.uids))
    }

    /// The whole `stats` answer: snapshot (with each device's fragmentation when `frag`),
    /// per-uid usage and the programs running on the swap space.
    pub fn snapshot(&mut self, frag: bool) -> Result<Snapshot, ClientError> {
        match self.call(&Request::Stats { frag }, Vec::new())?.0 {
            Reply::Stats {
                stats,
                uids,
                processes,
            } => Ok(Snapshot {
                stats: *stats,
                uids,
                processes,
            }),
            r => Err(unexpected(r)),
        }
    }

    /// Say how the program on this connection is doing (`swapctl run`'s preload library,
    /// about once a second): from then on the daemon shows this connection as a run, with
    /// its objects, until it closes.
    pub fn report(&mut self, report: &ProcessReport) -> Result<(), ClientError> {
        self.expect_ok(Request::Report(report.clone()))
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

    /// Swap `path` off; returns the pages a forced swapoff dropped (0 otherwise, and from
    /// a daemon that does not count them).
    pub fn swapoff(&mut self, path: &str, force: bool) -> Result<u64, ClientError> {
        self.swapoff_report(path, force).map(|(lost, _)| lost)
    }

    /// As [`Client::swapoff`], with why pages were lost (the area's last error), when any
    /// were.
    pub fn swapoff_report(
        &mut self,
        path: &str,
        force: bool,
    ) -> Result<(u64, Option<String>), ClientError> {
        let request = Request::SwapOff {
            path: path.into(),
            force,
        };
        match self.call(&request, Vec::new())?.0 {
            Reply::Ok => Ok((0, None)),
            Reply::Value { value, why } => Ok((value, why)),
            r => Err(unexpected(r)),
        }
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
            Reply::Value { value, .. } => Ok(value),
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
        Ok(self.putpages_why(object, pindex, data, sync)?.0)
    }

    /// [`Client::putpages`], with the reason of `fail` pages when it is not a full swap space.
    pub fn putpages_why(
        &mut self,
        object: u64,
        pindex: u64,
        data: Vec<u8>,
        sync: bool,
    ) -> Result<(Vec<PutStatus>, Option<FailReason>), ClientError> {
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
            Reply::Put { pages, reason } if pages.len() == count as usize => Ok((pages, reason)),
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
        self.getpages_explained(object, pindex, count)
            .map(|(pages, data, _)| (pages, data))
    }

    /// [`Client::getpages`] with the reason of each page that read as an error.
    pub fn getpages_explained(
        &mut self,
        object: u64,
        pindex: u64,
        count: u32,
    ) -> Result<Explained, ClientError> {
        match self.call(
            &Request::GetPages {
                object,
                pindex,
                count,
            },
            Vec::new(),
        )? {
            (Reply::Get { pages, errors }, data)
                if pages.len() == count as usize && data.len() == count as usize * PAGE_SIZE =>
            {
                Ok((pages, data, errors))
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

    /// One `sync` of `object` (of every object this connection created, with `None`): the
    /// runs of pages whose async writes failed since the last `sync`, and whether more wait.
    pub fn sync_once(&mut self, object: Option<u64>) -> Result<(Vec<LostRun>, bool), ClientError> {
        match self.call(&Request::Sync { object }, Vec::new())?.0 {
            Reply::Synced { lost, more } => Ok((lost, more)),
            r => Err(unexpected(r)),
        }
    }

    /// Wait for the async puts in flight of `object` (every object of this connection with
    /// `None`) and return every page whose write failed since the last `sync`, as
    /// `(object, pindex)` ascending: the daemon's `fsync`.
    pub fn sync(&mut self, object: Option<u64>) -> Result<Vec<(u64, u64)>, ClientError> {
        let mut out = Vec::new();
        loop {
            let (lost, more) = self.sync_once(object)?;
            for r in lost {
                out.extend((r.pindex..r.pindex.saturating_add(r.count)).map(|p| (r.object, p)));
            }
            if !more {
                break;
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
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
