//! One owner per piece of storage: what a path *is*, whatever names it, and who else uses it.
//!
//! A path stands for one or more [`StorageId`]s: a block device for its `st_rdev`, a regular
//! file for its `(st_dev, st_ino)` (so a symlink, a hard link and a bind mount of a file all
//! have the file's id), and a loop device also for its backing file's `(device, inode)` as
//! `LOOP_GET_STATUS64` reports it (or the backing block device's `rdev`). Two paths name
//! overlapping storage when their id sets [`overlap`]: `/dev/loop5` and its backing
//! `/tmp/a.img`, or two loop devices on one file.
//!
//! Ownership across processes is a lock held as long as the storage is open for paging or
//! being formatted (see `medium::local`):
//! - block devices are opened `O_EXCL`, as the kernel's own swapon and mounts do;
//! - regular files, and a loop device's backing file, carry an OFD write lock
//!   (`F_OFD_SETLK` over the whole file). OFD locks belong to the open file description, not
//!   to the process, so two opens in one process conflict too (POSIX `fcntl` locks would
//!   not), and they go away with the last close, also when the process dies.
//!
//! Before taking the storage, `check_idle` refuses storage the kernel swaps on
//! (`/proc/swaps`) and storage a loop device in use (held `O_EXCL`: mounted, kernel swap,
//! another pager) stands on, naming that other path.
//!
//! Never: take a lock or an exclusive open on storage the caller did not name (the probe of
//! a loop device over the same file opens it `O_EXCL` for an instant only when its backing
//! file *is* the caller's storage).

pub(crate) mod id;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::DeviceError;
use crate::loopdev;
use crate::nbd::uri::{NbdUri, is_uri};

pub use id::{StorageId, overlap};
pub(crate) use id::{id_of, is_loop};

/// Every identity `path` stands for: its own, and for a loop device its backing file's
/// (see `loopdev::identify`); an NBD URI stands for its export (no connection made).
pub fn identify(path: &Path) -> Result<Vec<StorageId>, DeviceError> {
    if !is_uri(path) {
        return loopdev::identify(path);
    }
    let text = path.to_str().ok_or_else(|| DeviceError::Remote {
        path: path.into(),
        what: "URI is not UTF-8".into(),
    })?;
    let uri = NbdUri::parse(text).map_err(|e| DeviceError::Remote {
        path: path.into(),
        what: e.to_string(),
    })?;
    Ok(remote_ids(&uri))
}

/// The identities of the export `uri` names: one per spelling of its server.
pub(crate) fn remote_ids(uri: &NbdUri) -> Vec<StorageId> {
    uri.identity()
        .into_iter()
        .map(|key| StorageId::Remote { key })
        .collect()
}

/// Refuses storage that is in use outside this open: swapped on by the kernel, or under a
/// loop device that someone holds exclusively. `path` is what the caller opens, `ids` what
/// it stands for ([`identify`]); a loop device is not its own other user.
pub(crate) fn check_idle(path: &Path, ids: &[StorageId]) -> Result<(), DeviceError> {
    for swap in kernel_swaps() {
        if identify(&swap).is_ok_and(|theirs| overlap(ids, &theirs)) {
            return Err(DeviceError::KernelSwap {
                path: path.into(),
                other: swap,
            });
        }
    }
    let own = ids.first().copied();
    for dev in loopdev::attached_over(ids) {
        let theirs = std::fs::metadata(&dev).map(|m| id_of(&m)).ok();
        if theirs.is_none() || theirs == own {
            continue;
        }
        if held_exclusively(&dev) {
            return Err(DeviceError::InUseAs {
                path: path.into(),
                other: dev,
            });
        }
    }
    Ok(())
}

/// Whether someone holds the block device `dev` with `O_EXCL` (mounted, kernel swap, a
/// pager): our own `O_EXCL` open fails with `EBUSY`. The probe closes at once.
fn held_exclusively(dev: &Path) -> bool {
    let probe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_EXCL | libc::O_NONBLOCK)
        .open(dev);
    matches!(probe, Err(e) if e.raw_os_error() == Some(libc::EBUSY))
}

/// The paths in `/proc/swaps` (the kernel's swap areas); none when it cannot be read.
pub fn kernel_swaps() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/swaps")
        .map(|text| parse_proc_swaps(&text))
        .unwrap_or_default()
}

/// The first column of each line after the header, with the kernel's octal escapes
/// (`\040` for a space) undone.
fn parse_proc_swaps(text: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    text.lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| PathBuf::from(std::ffi::OsString::from_vec(unescape(name.as_bytes()))))
        .collect()
}

fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let octal = s
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (s[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// How long [`lock`] keeps trying before it calls the storage locked. An OFD lock lives as
/// long as any descriptor of its open file description, and a process that forks copies
/// every descriptor into the child until the child's `exec` closes them: so right after
/// a previous owner in this process let go (a `mkswap`, a swapoff), a fork elsewhere in
/// the process can keep its lock alive for a moment. A real second owner holds it for
/// far longer than this.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);

/// Takes the whole-file OFD lock on `file` (a write lock, or a read lock when it is open
/// read-only), retrying a conflict for [`LOCK_PATIENCE`]: a conflict that outlasts it is
/// [`DeviceError::Locked`] for `path`, naming `locked` (the file itself, or a loop
/// device's backing file).
pub(crate) fn lock(
    file: &File,
    read_only: bool,
    path: &Path,
    locked: &Path,
) -> Result<(), DeviceError> {
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match try_lock(file, read_only, path, locked) {
            Err(DeviceError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// One attempt of [`lock`], without waiting.
fn try_lock(file: &File, read_only: bool, path: &Path, locked: &Path) -> Result<(), DeviceError> {
    // SAFETY: flock is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if read_only {
        libc::F_RDLCK
    } else {
        libc::F_WRLCK
    } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start = l_len = 0: the whole file, however it grows; l_pid must be 0 for OFD locks.
    match nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => Ok(()),
        Err(nix::Error::EAGAIN | nix::Error::EACCES) => Err(DeviceError::Locked {
            path: path.into(),
            file: locked.into(),
        }),
        // A filesystem without locks (some network filesystems) cannot be guarded; paging
        // there still works, as it did before locks.
        Err(nix::Error::ENOLCK | nix::Error::EOPNOTSUPP | nix::Error::EINVAL) => Ok(()),
        Err(e) => Err(DeviceError::io(path, "lock", 0, e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_swaps_names_are_unescaped() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /dev/vda2                               partition\t1048572\t\t0\t\t-2\n\
                    /tmp/a\\040b.img                         file\t\t1020\t\t0\t\t-3\n";
        assert_eq!(
            parse_proc_swaps(text),
            vec![PathBuf::from("/dev/vda2"), PathBuf::from("/tmp/a b.img")]
        );
        assert_eq!(unescape(b"a\\\\b\\0"), b"a\\\\b\\0".to_vec());
    }

    #[test]
    fn overlap_is_any_shared_id() {
        let f = StorageId::File { dev: 1, ino: 2 };
        let b = StorageId::Block { rdev: 7 << 8 };
        assert!(overlap(&[b, f], &[f]));
        assert!(!overlap(&[b], &[f]));
        assert!(is_loop(b) && !is_loop(f));
    }
}
