//! One owner per piece of storage (issue 11 §2) at the device layer: what a path stands for
//! (`storage::identify`), the lock a live area holds (a second open, a symlink, a hard link,
//! a loop device over the file, mkswap — `force` or not — are refused while it lives, and
//! allowed once it is gone), busy loop devices named as the other user, and which loop
//! devices a file has. Loop devices made here are detached again, also on failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use device::loopdev::{self, LoopDevice, LoopOptions};
use device::storage::{self, StorageId};
use device::{DeviceError, MkswapOptions, OpenOptions, SwapArea};

fn open(path: &Path) -> Result<SwapArea, DeviceError> {
    SwapArea::open(path, &OpenOptions::default())
}

fn mkswap_force(path: &Path) -> Result<device::SwapHeader, DeviceError> {
    device::mkswap(
        path,
        &MkswapOptions {
            force: true,
            ..Default::default()
        },
    )
}

fn assert_locked(result: Result<impl std::fmt::Debug, DeviceError>, path: &Path, file: &Path) {
    let err = result.unwrap_err();
    assert!(
        matches!(&err, DeviceError::Locked { path: p, file: f } if p == path && f == file),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: in use by a swapkit pager or mkswap ({} is locked)",
            path.display(),
            file.display()
        )
    );
}

#[test]
fn a_file_area_is_locked_under_every_name_until_it_is_closed() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "locked", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let symlink = dir.path().join("swapkit-sym");
    std::os::unix::fs::symlink(&file, &symlink).unwrap();
    let hardlink = dir.path().join("swapkit-hard");
    std::fs::hard_link(&file, &hardlink).unwrap();
    assert_eq!(
        storage::identify(&symlink).unwrap(),
        storage::identify(&file).unwrap()
    );

    let area = open(&file).unwrap();
    assert_eq!(area.storage(), storage::identify(&hardlink).unwrap());
    assert_locked(open(&file), &file, &file);
    assert_locked(open(&symlink), &symlink, &symlink);
    assert_locked(open(&hardlink), &hardlink, &hardlink);
    assert_locked(
        device::mkswap(&file, &MkswapOptions::default()),
        &file,
        &file,
    );
    assert_locked(mkswap_force(&hardlink), &hardlink, &hardlink);
    // Growing the file is refused too, before anything is written.
    let grow = MkswapOptions {
        pages: Some(128),
        ..Default::default()
    };
    assert_locked(device::mkswap(&file, &grow), &file, &file);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 64 * 4096);

    drop(area);
    open(&hardlink).unwrap();
    mkswap_force(&symlink).unwrap();
}

#[test]
fn a_loop_device_stands_for_its_backing_file_too() {
    let Some(()) = common::loop_or_skip("a_loop_device_stands_for_its_backing_file_too") else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "ids", 64);
    let dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
    let ids = storage::identify(dev.path()).unwrap();
    let file_ids = storage::identify(&file).unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(matches!(ids[0], StorageId::Block { .. }));
    assert_eq!(ids[1], file_ids[0], "LOOP_GET_STATUS64 agrees with stat");
    assert!(storage::overlap(&ids, &file_ids));
    assert_eq!(
        loopdev::attached_to(&file).unwrap(),
        vec![dev.path().to_owned()]
    );
    drop(dev);
    assert!(loopdev::attached_to(&file).unwrap().is_empty());
    common::assert_no_loop_under(dir.path());
}

/// An area on a loop device holds the device (`O_EXCL`) and its backing file (the lock):
/// the file, the device and a second device on the file are all refused, naming the user.
#[test]
fn an_area_on_a_loop_device_owns_the_device_and_its_file() {
    let Some(()) = common::loop_or_skip("an_area_on_a_loop_device_owns_the_device_and_its_file")
    else {
        return;
    };
    let dir = common::scratch();
    let t = common::swap_target(dir.path(), "owned", 64);
    let other = LoopDevice::attach_shared(&t.file, &LoopOptions::default()).unwrap();
    let area = open(&t.path).unwrap();

    for result in [open(&t.file).map(|_| ()), mkswap_force(&t.file).map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: in use as {}", t.file.display(), t.path.display())
        );
    }
    let err = open(other.path()).unwrap_err();
    assert!(
        matches!(&err, DeviceError::InUseAs { other: o, .. } if o == &t.path),
        "{err}"
    );
    let err = mkswap_force(&t.path).unwrap_err();
    assert!(matches!(err, DeviceError::InUse { .. }), "{err}");

    drop(area);
    drop(open(other.path()).unwrap());
    drop((other, t));
    common::assert_no_loop_under(dir.path());
}

/// A file area's lock also covers the file when it is reached through a loop device.
#[test]
fn a_loop_device_over_a_locked_file_is_refused() {
    let Some(()) = common::loop_or_skip("a_loop_device_over_a_locked_file_is_refused") else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "filearea", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
    let area = open(&file).unwrap();
    let canonical = std::fs::canonicalize(&file).unwrap();
    assert_locked(open(dev.path()), dev.path(), &canonical);
    assert_locked(mkswap_force(dev.path()), dev.path(), &canonical);
    drop(area);
    drop(open(dev.path()).unwrap());
    drop(dev);
    common::assert_no_loop_under(dir.path());
}

/// A read-only open (inspection) takes a read lock: it excludes writers, not other readers.
#[test]
fn read_only_opens_share_and_exclude_writers() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "ro", 64);
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let ro = OpenOptions {
        read_only: true,
        ..Default::default()
    };
    let a = SwapArea::open(&file, &ro).unwrap();
    let b = SwapArea::open(&file, &ro).unwrap();
    assert_locked(open(&file), &file, &file);
    drop((a, b));
    open(&file).unwrap();
}

/// A file the kernel swaps on; `swapoff` on drop, also when the test fails.
struct KernelSwap(std::ffi::CString);

impl KernelSwap {
    fn on(path: &Path) -> Option<KernelSwap> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that lives across the call.
        if unsafe { libc::swapon(c.as_ptr(), 0) } != 0 {
            println!(
                "the kernel refused swapon ({}); skipped",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(KernelSwap(c))
    }
}

impl Drop for KernelSwap {
    fn drop(&mut self) {
        // SAFETY: a NUL-terminated path that lives across the call.
        unsafe { libc::swapoff(self.0.as_ptr()) };
    }
}

/// Storage the kernel swaps on (`/proc/swaps`) is refused by name, `force` or not.
#[test]
fn a_file_the_kernel_swaps_on_is_refused() {
    let dir = common::scratch();
    let file = dir.path().join("swapkit-kernel.swap");
    // Written out: the kernel refuses swap files with holes.
    std::fs::write(&file, vec![0u8; 64 * device::PAGE_SIZE]).unwrap();
    device::mkswap(&file, &MkswapOptions::default()).unwrap();
    let Some(on) = KernelSwap::on(&file) else {
        return;
    };
    let expect = format!(
        "{}: in use by the kernel's swap as {}",
        file.display(),
        file.display()
    );
    assert_eq!(open(&file).unwrap_err().to_string(), expect);
    assert_eq!(mkswap_force(&file).unwrap_err().to_string(), expect);
    drop(on);
    open(&file).unwrap();
}
