//! Binding the control socket: a stale socket from a dead daemon is replaced, a live one is
//! refused, and the new socket is mode 0600 (0660 with a group) from the moment it exists.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, umask};
use nix::unistd::{Group, chown};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("a daemon already runs on {0}")]
    Live(PathBuf),
    #[error("{0}: exists and is not a socket; not replacing it")]
    NotSocket(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{group}: no such group")]
    NoGroup { group: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Bind `path`. Whether a socket file left behind is stale is decided by connecting to it:
/// a refused connection means nobody listens, so it is removed. With `group`, the socket is
/// handed to that group and opened to it (0660).
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, SocketError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(SocketError::Live(path.to_owned())),
            Err(e)
                if e.kind() == ErrorKind::ConnectionRefused || e.kind() == ErrorKind::NotFound =>
            {
                std::fs::remove_file(path).map_err(io(path))?;
            }
            Err(e) => return Err(io(path)(e)),
        },
        Ok(_) => return Err(SocketError::NotSocket(path.to_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io(dir))?;
    }
    let gid = match group {
        Some(g) => Some(
            Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| SocketError::NoGroup {
                    group: g.to_owned(),
                })?
                .gid,
        ),
        None => None,
    };
    // The umask makes the socket 0600 at birth: no window where others could connect.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(io(path))?;
    if let Some(gid) = gid {
        chown(path, None, Some(gid)).map_err(|e| io(path)(e.into()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io(path))?;
    }
    Ok(listener)
}
