//! What a piece of storage *is*, whatever path names it: [`StorageId`]. A leaf: the loop
//! devices, the media and the ownership rules all name storage by it.

use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// The loop driver's block major number.
const LOOP_MAJOR: u64 = 7;

/// What a piece of storage is, independent of the path that names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum StorageId {
    /// A block device, by `st_rdev`.
    Block { rdev: u64 },
    /// A regular file, by `(st_dev, st_ino)`.
    File { dev: u64, ino: u64 },
    /// A remote NBD export, by a hash of its server and export name (`nbd::NbdUri`).
    Remote { key: u64 },
}

impl fmt::Display for StorageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StorageId::Block { rdev } => write!(
                f,
                "block device {}:{}",
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev)
            ),
            StorageId::File { dev, ino } => write!(
                f,
                "file {} on {}:{}",
                ino,
                nix::sys::stat::major(dev),
                nix::sys::stat::minor(dev)
            ),
            StorageId::Remote { key } => write!(f, "NBD export {key:016x}"),
        }
    }
}

/// Whether two id sets share any storage.
pub fn overlap(a: &[StorageId], b: &[StorageId]) -> bool {
    a.iter().any(|id| b.contains(id))
}

/// The id of what `meta` describes (a block device or anything else by its inode).
pub(crate) fn id_of(meta: &std::fs::Metadata) -> StorageId {
    if meta.file_type().is_block_device() {
        StorageId::Block { rdev: meta.rdev() }
    } else {
        StorageId::File {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Whether `id` is a loop device (whole device; partitions have another major).
pub(crate) fn is_loop(id: StorageId) -> bool {
    matches!(id, StorageId::Block { rdev } if nix::sys::stat::major(rdev) == LOOP_MAJOR)
}
