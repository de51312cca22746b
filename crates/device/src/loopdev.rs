//! Loop devices: attach a file as a block device, detach it, list what is attached.
//!
//! Attaching asks `/dev/loop-control` for a free device (`LOOP_CTL_GET_FREE`, which makes a
//! new one when none is free) and configures it in one `LOOP_CONFIGURE` call: direct I/O,
//! 4096-byte logical blocks, autoclear, optionally read-only. Kernels before 5.8 lack
//! `LOOP_CONFIGURE`; there we fall back to `LOOP_SET_FD` + `LOOP_SET_STATUS64` +
//! `LOOP_SET_BLOCK_SIZE` + `LOOP_SET_DIRECT_IO`. When several processes attach at once,
//! another may take "our" free device first (`EBUSY`) or remove it (`ENXIO`): we ask for
//! another one and retry.
//!
//! The ioctls are written here with `nix` and `repr(C)` copies of `struct loop_info64` and
//! `struct loop_config` (`include/uapi/linux/loop.h`): the `loopdev` crates generate their
//! bindings with bindgen (libclang at build time) and know neither `LOOP_CONFIGURE` nor the
//! block size.
//!
//! [`LoopDevice`] is a guard: it detaches on drop (also when a test panics) unless
//! [`LoopDevice::persist`] was called. Invariant: we only ever detach devices we attached,
//! except through [`detach_path`], whose caller names the device.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::DeviceError;
use crate::nbd::uri::is_uri;
use crate::storage::id::{self as storage, StorageId};

const LOOP_CONTROL: &str = "/dev/loop-control";
const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;
/// The loop driver's block major number.
const LOOP_MAJOR: u64 = 7;
/// How often attach asks for another free device after losing one to a racing attach.
const BUSY_RETRIES: u32 = 64;

/// `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

impl LoopInfo64 {
    fn zeroed() -> LoopInfo64 {
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }

    /// Status for a file: its name (cut to 63 bytes, for `losetup -a`) and `flags`.
    fn for_file(file: &Path, flags: u32) -> LoopInfo64 {
        let mut info = LoopInfo64::zeroed();
        let name = file.as_os_str().as_bytes();
        let n = name.len().min(LO_NAME_SIZE - 1);
        info.lo_file_name[..n].copy_from_slice(&name[..n]);
        info.lo_flags = flags;
        info
    }
}

nix::ioctl_write_int_bad!(loop_set_fd, 0x4C00);
nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);
nix::ioctl_write_ptr_bad!(loop_set_status64, 0x4C04, LoopInfo64);
nix::ioctl_read_bad!(loop_get_status64, 0x4C05, LoopInfo64);
nix::ioctl_write_int_bad!(loop_set_direct_io, 0x4C08);
nix::ioctl_write_int_bad!(loop_set_block_size, 0x4C09);
nix::ioctl_write_ptr_bad!(loop_configure, 0x4C0A, LoopConfig);
nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);

/// How to attach a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopOptions {
    /// The loop driver reads and writes the file with `O_DIRECT` (no double caching).
    pub direct_io: bool,
    /// Logical block size of the device: 4096 makes every I/O whole pages.
    pub block_size: u32,
    /// The kernel detaches the device when its last user closes it.
    pub autoclear: bool,
    pub read_only: bool,
}

impl Default for LoopOptions {
    fn default() -> LoopOptions {
        LoopOptions {
            direct_io: true,
            block_size: 4096,
            autoclear: true,
            read_only: false,
        }
    }
}

/// One attached loop device, as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopInfo {
    /// `/dev/loopN`.
    pub path: PathBuf,
    /// The file behind it (the kernel appends ` (deleted)` when it was removed).
    pub backing_file: PathBuf,
    pub direct_io: bool,
    pub autoclear: bool,
    pub read_only: bool,
    pub block_size: u32,
}

/// An attached loop device; detaches it on drop unless [`LoopDevice::persist`] was called.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    /// Held open: with autoclear, the device lives at least as long as this guard.
    dev: File,
    backing: PathBuf,
    attached: bool,
}

impl LoopDevice {
    /// Attaches `file` to a free loop device configured as `opts` says. A file that has a
    /// loop device already is refused ([`DeviceError::AlreadyAttached`], naming it): two
    /// devices on one file invite swapping on both ([`LoopDevice::attach_shared`] is the
    /// explicit way to get a second one).
    pub fn attach(file: impl AsRef<Path>, opts: &LoopOptions) -> Result<LoopDevice, DeviceError> {
        Self::attach_with(file.as_ref(), opts, false, false)
    }

    /// Like [`LoopDevice::attach`], also when `file` has a loop device already.
    pub fn attach_shared(
        file: impl AsRef<Path>,
        opts: &LoopOptions,
    ) -> Result<LoopDevice, DeviceError> {
        Self::attach_with(file.as_ref(), opts, false, true)
    }

    /// Like [`LoopDevice::attach`], but always through the pre-5.8 ioctls (`LOOP_SET_FD`,
    /// `LOOP_SET_STATUS64`, ...), so the fallback path is tested on new kernels too.
    pub fn attach_legacy(
        file: impl AsRef<Path>,
        opts: &LoopOptions,
    ) -> Result<LoopDevice, DeviceError> {
        Self::attach_with(file.as_ref(), opts, true, false)
    }

    fn attach_with(
        file: &Path,
        opts: &LoopOptions,
        legacy: bool,
        shared: bool,
    ) -> Result<LoopDevice, DeviceError> {
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(!opts.read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(file)
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => DeviceError::NotFound { path: file.into() },
                _ => DeviceError::Loop {
                    path: file.into(),
                    what: "open backing file",
                    source,
                },
            })?;
        if !shared {
            refuse_attached(file)?;
        }
        let backing_name = std::fs::canonicalize(file).unwrap_or_else(|_| file.into());
        let control = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(LOOP_CONTROL)
            .map_err(|source| DeviceError::Loop {
                path: LOOP_CONTROL.into(),
                what: "open",
                source,
            })?;
        let mut next_free = || {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
            let number = unsafe { loop_ctl_get_free(control.as_raw_fd()) }.map_err(|e| {
                DeviceError::Loop {
                    path: LOOP_CONTROL.into(),
                    what: "get free device",
                    source: e.into(),
                }
            })?;
            Ok((PathBuf::from(format!("/dev/loop{number}")), number as u64))
        };
        attach_first_free(&backing, &backing_name, opts, legacy, &mut next_free)
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file behind the device (canonical path).
    pub fn backing_file(&self) -> &Path {
        &self.backing
    }

    /// What the kernel says about this device now.
    pub fn info(&self) -> Result<LoopInfo, DeviceError> {
        info(&self.path)
    }

    /// Detaches now, reporting failure (drop detaches too, silently).
    pub fn detach(mut self) -> Result<(), DeviceError> {
        self.attached = false;
        clear_fd(&self.dev, &self.path)
    }

    /// Leaves the device attached after the guard is gone and returns its path. Autoclear
    /// is switched off first, or the kernel would detach it as soon as we close it.
    pub fn persist(mut self) -> PathBuf {
        self.attached = false;
        let mut status = LoopInfo64::zeroed();
        // SAFETY: LOOP_GET_STATUS64 fills the struct, which is valid and repr(C).
        if unsafe { loop_get_status64(self.dev.as_raw_fd(), &mut status) }.is_ok()
            && status.lo_flags & LO_FLAGS_AUTOCLEAR != 0
        {
            status.lo_flags &= !LO_FLAGS_AUTOCLEAR;
            // SAFETY: LOOP_SET_STATUS64 reads the struct, which is valid and repr(C).
            let _ = unsafe { loop_set_status64(self.dev.as_raw_fd(), &status) };
        }
        self.path.clone()
    }
}

/// Binds `backing` to the first device `next_free` offers that takes it.
///
/// Another process may take or remove a free device between `LOOP_CTL_GET_FREE` and our
/// `open`/configure: a device another attach took answers `EBUSY`, one that was removed
/// meanwhile `ENXIO` (at `open`, or at configure when it is being deleted). Both mean "lost
/// the race": ask for another free device, up to [`BUSY_RETRIES`] times. Any other error
/// is final.
fn attach_first_free(
    backing: &File,
    backing_name: &Path,
    opts: &LoopOptions,
    legacy: bool,
    next_free: &mut dyn FnMut() -> Result<(PathBuf, u64), DeviceError>,
) -> Result<LoopDevice, DeviceError> {
    let lost_race = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENXIO));
    let mut last_lost = None;
    for _ in 0..BUSY_RETRIES {
        let (path, number) = next_free()?;
        let dev = match open_loop_node(&path, number) {
            Ok(dev) => dev,
            Err(DeviceError::Loop { source, .. }) if lost_race(&source) => {
                last_lost = Some(source);
                continue;
            }
            Err(e) => return Err(e),
        };
        match configure(&dev, backing, backing_name, opts, legacy) {
            Ok(()) => {
                return Ok(LoopDevice {
                    path,
                    dev,
                    backing: backing_name.to_owned(),
                    attached: true,
                });
            }
            Err(e) if lost_race(&e) => last_lost = Some(e),
            Err(source) => {
                return Err(DeviceError::Loop {
                    path,
                    what: "configure",
                    source,
                });
            }
        }
    }
    let source = last_lost.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EBUSY));
    Err(DeviceError::Loop {
        path: LOOP_CONTROL.into(),
        what: "attach (every free device was taken)",
        source,
    })
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if self.attached {
            let _ = clear_fd(&self.dev, &self.path);
        }
    }
}

/// Opens `/dev/loopN`, making the node when the container's `/dev` lacks it.
fn open_loop_node(path: &Path, number: u64) -> Result<File, DeviceError> {
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dev = nix::sys::stat::makedev(LOOP_MAJOR, number);
            let perm = nix::sys::stat::Mode::from_bits_truncate(0o660);
            nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFBLK, perm, dev).map_err(
                |e| DeviceError::Loop {
                    path: path.into(),
                    what: "create device node",
                    source: e.into(),
                },
            )?;
            open()
        }
        other => other,
    }
    .map_err(|source| DeviceError::Loop {
        path: path.into(),
        what: "open",
        source,
    })
}

/// Binds `backing` to the loop device `dev` with `LOOP_CONFIGURE`, or the older ioctls
/// where it is missing (or `legacy` asks for them).
fn configure(
    dev: &File,
    backing: &File,
    name: &Path,
    opts: &LoopOptions,
    legacy: bool,
) -> io::Result<()> {
    let mut flags = 0;
    if opts.read_only {
        flags |= LO_FLAGS_READ_ONLY;
    }
    if opts.autoclear {
        flags |= LO_FLAGS_AUTOCLEAR;
    }
    if opts.direct_io {
        flags |= LO_FLAGS_DIRECT_IO;
    }
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: opts.block_size,
        info: LoopInfo64::for_file(name, flags),
        reserved: [0; 8],
    };
    if legacy {
        return configure_legacy(dev, backing, name, opts, flags);
    }
    // SAFETY: LOOP_CONFIGURE reads the struct, which is valid and repr(C); the fd is open.
    match unsafe { loop_configure(dev.as_raw_fd(), &config) } {
        Ok(_) => Ok(()),
        Err(nix::Error::EINVAL | nix::Error::ENOTTY) => {
            configure_legacy(dev, backing, name, opts, flags)
        }
        Err(e) => Err(e.into()),
    }
}

/// The pre-5.8 way: bind, then set status, block size and direct I/O one by one. A failure
/// after binding unbinds again, so no half-configured device is left behind.
fn configure_legacy(
    dev: &File,
    backing: &File,
    name: &Path,
    opts: &LoopOptions,
    flags: u32,
) -> io::Result<()> {
    let fd = dev.as_raw_fd();
    // SAFETY: LOOP_SET_FD takes the backing descriptor, which is open.
    unsafe { loop_set_fd(fd, backing.as_raw_fd()) }?;
    let rest = || -> nix::Result<()> {
        let info = LoopInfo64::for_file(name, flags & (LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY));
        // SAFETY: LOOP_SET_STATUS64 reads the struct, which is valid and repr(C).
        unsafe { loop_set_status64(fd, &info) }?;
        // SAFETY: LOOP_SET_BLOCK_SIZE takes an integer.
        unsafe { loop_set_block_size(fd, opts.block_size as libc::c_int) }?;
        if opts.direct_io {
            // SAFETY: LOOP_SET_DIRECT_IO takes an integer.
            unsafe { loop_set_direct_io(fd, 1) }?;
        }
        Ok(())
    };
    rest().map_err(|e| {
        // SAFETY: LOOP_CLR_FD takes no argument.
        let _ = unsafe { loop_clr_fd(fd) };
        e.into()
    })
}

fn clear_fd(dev: &File, path: &Path) -> Result<(), DeviceError> {
    // SAFETY: LOOP_CLR_FD takes no argument. With other openers the kernel defers the detach
    // to their last close.
    unsafe { loop_clr_fd(dev.as_raw_fd()) }
        .map(|_| ())
        .map_err(|e| DeviceError::Loop {
            path: path.into(),
            what: "detach",
            source: e.into(),
        })
}

/// `Ok` when loop devices can be attached here; `Err(why)` otherwise (not root, no
/// `/dev/loop-control`, a container without the loop driver).
pub fn available() -> Result<(), String> {
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(LOOP_CONTROL)
        .map_err(|e| format!("{LOOP_CONTROL}: {e}"))?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument.
    unsafe { loop_ctl_get_free(control.as_raw_fd()) }
        .map_err(|e| format!("{LOOP_CONTROL}: get free device: {e}"))?;
    Ok(())
}

/// Every attached loop device, sorted by number.
pub fn list() -> Result<Vec<LoopInfo>, DeviceError> {
    let sys_block = Path::new("/sys/block");
    let entries = std::fs::read_dir(sys_block).map_err(|source| DeviceError::Loop {
        path: sys_block.into(),
        what: "list",
        source,
    })?;
    let mut numbers: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("loop")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    Ok(numbers
        .into_iter()
        .filter_map(|n| info(Path::new(&format!("/dev/loop{n}"))).ok())
        .collect())
}

/// What sysfs says about one attached loop device (`/dev/loopN`).
pub fn info(dev: &Path) -> Result<LoopInfo, DeviceError> {
    let name = dev.file_name().unwrap_or(OsStr::new(""));
    let sys = Path::new("/sys/block").join(name);
    let read = |rel: &str| {
        std::fs::read_to_string(sys.join(rel)).map(|s| s.trim_end_matches('\n').to_owned())
    };
    let backing = read("loop/backing_file").map_err(|source| DeviceError::Loop {
        path: dev.into(),
        what: "read backing file (not attached?)",
        source,
    })?;
    let flag = |rel: &str| read(rel).is_ok_and(|s| s.trim() == "1");
    Ok(LoopInfo {
        path: dev.into(),
        backing_file: backing.into(),
        direct_io: flag("loop/dio"),
        autoclear: flag("loop/autoclear"),
        read_only: flag("ro"),
        block_size: read("queue/logical_block_size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(512),
    })
}

/// What a loop device stands on: its backing file's identity and where in it the device
/// starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backing {
    pub(crate) id: StorageId,
    pub(crate) offset: u64,
}

/// The backing storage of the loop device open as `dev` (`LOOP_GET_STATUS64`): the backing
/// block device's `rdev` when it has one, else the file's `(lo_device, lo_inode)`, which the
/// kernel encodes as `stat` does. `None` when nothing is attached.
pub(crate) fn backing_of(dev: &File) -> Option<Backing> {
    let mut status = LoopInfo64::zeroed();
    // SAFETY: LOOP_GET_STATUS64 fills the struct, which is valid and repr(C).
    unsafe { loop_get_status64(dev.as_raw_fd(), &mut status) }.ok()?;
    let id = if status.lo_rdevice != 0 {
        StorageId::Block {
            rdev: status.lo_rdevice,
        }
    } else {
        StorageId::File {
            dev: status.lo_device,
            ino: status.lo_inode,
        }
    };
    Some(Backing {
        id,
        offset: status.lo_offset,
    })
}

/// Every identity the local `path` stands for: its own, and for a loop device its backing
/// file's. Opens a loop device read-only for an instant (no `O_EXCL`) to ask for its status.
pub(crate) fn identify(path: &Path) -> Result<Vec<StorageId>, DeviceError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DeviceError::NotFound { path: path.into() },
        _ => DeviceError::io(path, "stat", 0, e),
    })?;
    let own = storage::id_of(&meta);
    let mut ids = vec![own];
    if storage::is_loop(own) {
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| DeviceError::io(path, "open", 0, e))?;
        if let Some(backing) = backing_of(&dev) {
            ids.push(backing.id);
        }
    }
    Ok(ids)
}

/// The attached loop devices (`/dev/loopN`) whose backing file is one of `ids`, found
/// through sysfs without opening any device. A backing file that was deleted or that this
/// mount namespace cannot see is not found.
pub fn attached_over(ids: &[StorageId]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let number: u64 = name.to_str()?.strip_prefix("loop")?.parse().ok()?;
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let meta = std::fs::metadata(backing.trim_end_matches('\n')).ok()?;
            ids.contains(&storage::id_of(&meta))
                .then(|| (number, PathBuf::from(format!("/dev/loop{number}"))))
        })
        .collect();
    found.sort_unstable();
    found.into_iter().map(|(_, path)| path).collect()
}

/// The loop devices attached to `file` (by identity: whatever path they were attached by).
pub fn attached_to(file: &Path) -> Result<Vec<PathBuf>, DeviceError> {
    if is_uri(file) {
        return Ok(Vec::new());
    }
    Ok(attached_over(&identify(file)?))
}

/// Refuses `file` when a loop device is attached to it already
/// ([`DeviceError::AlreadyAttached`], naming the first such device).
pub fn refuse_attached(file: &Path) -> Result<(), DeviceError> {
    match attached_to(file)?.into_iter().next() {
        Some(device) => Err(DeviceError::AlreadyAttached {
            path: file.into(),
            device,
        }),
        None => Ok(()),
    }
}

/// Detaches the loop device `dev` (`LOOP_CLR_FD`). Only for devices the caller attached.
pub fn detach_path(dev: &Path) -> Result<(), DeviceError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dev)
        .map_err(|source| DeviceError::Loop {
            path: dev.into(),
            what: "open",
            source,
        })?;
    clear_fd(&file, dev)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A major number no driver registers here: opening such a node gives `ENXIO`, exactly
    /// what a loop device removed between `LOOP_CTL_GET_FREE` and `open` gives.
    const UNREGISTERED_MAJOR: u64 = 240;

    /// A 64-page file in a new temporary directory, or `None` (and a line saying so)
    /// where loop devices are unavailable.
    fn scratch_file(name: &str) -> Option<(tempfile::TempDir, PathBuf)> {
        if let Err(why) = available() {
            println!("skipped: loop devices unavailable ({why})");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("swapkit-test-")
            .tempdir()
            .unwrap();
        let file = dir.path().join(name);
        File::create(&file)
            .unwrap()
            .set_len(64 * crate::PAGE_SIZE as u64)
            .unwrap();
        Some((dir, file))
    }

    /// Defect 5 of issue 11: the first "free" device vanished before we opened it. Attach
    /// must ask for another one instead of failing.
    #[test]
    fn a_free_device_that_vanishes_before_open_is_skipped() {
        let Some((dir, file)) = scratch_file("swapkit-vanish") else {
            return;
        };
        let gone = dir.path().join("swapkit-gone-loop");
        let dev = nix::sys::stat::makedev(UNREGISTERED_MAJOR, 0);
        let perm = nix::sys::stat::Mode::from_bits_truncate(0o600);
        if let Err(e) = nix::sys::stat::mknod(&gone, nix::sys::stat::SFlag::S_IFBLK, perm, dev) {
            println!("skipped: cannot make a device node ({e})");
            return;
        }
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .unwrap();
        let control = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(LOOP_CONTROL)
            .unwrap();
        let mut offered = 0;
        let mut next_free = || {
            offered += 1;
            if offered == 1 {
                return Ok((gone.clone(), 0));
            }
            // SAFETY: LOOP_CTL_GET_FREE takes no argument.
            let n = unsafe { loop_ctl_get_free(control.as_raw_fd()) }.unwrap();
            Ok((PathBuf::from(format!("/dev/loop{n}")), n as u64))
        };
        let attached = attach_first_free(
            &backing,
            &file,
            &LoopOptions::default(),
            false,
            &mut next_free,
        );
        let dev = attached.unwrap();
        // At least 2: a test running beside this one may take a free device first.
        assert!(
            offered >= 2,
            "the vanished device was skipped, a next one taken"
        );
        assert_eq!(dev.info().unwrap().backing_file, file);
        dev.detach().unwrap();
    }

    /// A second device on a file that has one is refused, naming the first, unless asked
    /// for with `attach_shared`; the refusal leaves nothing attached.
    #[test]
    fn a_file_with_a_loop_device_gets_a_second_only_when_shared() {
        let Some((_dir, file)) = scratch_file("swapkit-twice") else {
            return;
        };
        let first = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
        for refused in [
            LoopDevice::attach(&file, &LoopOptions::default()),
            LoopDevice::attach_legacy(&file, &LoopOptions::default()),
        ] {
            match refused {
                Err(DeviceError::AlreadyAttached { device, .. }) => {
                    assert_eq!(device, first.path())
                }
                other => panic!("a second device was not refused: {other:?}"),
            }
        }
        assert_eq!(attached_to(&file).unwrap(), vec![first.path().to_owned()]);
        let second = LoopDevice::attach_shared(&file, &LoopOptions::default()).unwrap();
        assert_eq!(attached_to(&file).unwrap().len(), 2);
        second.detach().unwrap();
        first.detach().unwrap();
    }
}
