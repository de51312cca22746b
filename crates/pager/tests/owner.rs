//! One owner per piece of storage (issue 11 §2): a pager refuses a swapon of storage it
//! already swaps on under any name — the same path, a symlink, a hard link, a bind mount, a
//! loop device and its backing file, two loop devices on one file — naming the other path;
//! and a second pager in the same process (OFD locks conflict between open file
//! descriptions, not only between processes) is refused until the first lets go. Both
//! engines. Loop devices, links and mounts made here are removed again, also on failure.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::{area, tempdir};
use device::{DeviceError, EngineKind, LoopDevice, LoopOptions};
use pager::{Pager, PagerConfig, PagerError, SwapoffOptions, SwaponOptions};

fn pagers() -> Vec<Pager> {
    [EngineKind::IoUring, EngineKind::ThreadPool]
        .into_iter()
        .filter_map(|engine| {
            Pager::new(PagerConfig {
                engine,
                ..common::config(32)
            })
            .map_err(|e| println!("{engine:?} unavailable: {e}"))
            .ok()
        })
        .collect()
}

/// `p` refuses `path` because it swaps on the same storage as `other`, and says so ("already
/// on" when `other` is `path` itself).
fn assert_in_use_as(p: &Pager, path: &Path, other: &Path) {
    let err = p.swapon(path, SwaponOptions::default()).unwrap_err();
    assert!(
        matches!(&err, PagerError::AlreadyOn { other: o, .. } if o == other),
        "{err}"
    );
    let message = err.to_string();
    let why = if path == other {
        "already on".to_owned()
    } else {
        format!("in use as {}", other.display())
    };
    assert!(
        message.starts_with(&format!("{}: {why} (swap device ", path.display())),
        "{message}"
    );
}

/// A loop device over `file`, or `None` (with a note) where loop devices are unavailable.
fn attach(file: &Path) -> Option<LoopDevice> {
    match device::loopdev::available() {
        Ok(()) => Some(LoopDevice::attach(file, &LoopOptions::default()).unwrap()),
        Err(why) => {
            println!("loop devices unavailable ({why}); skipped");
            None
        }
    }
}

#[test]
fn the_same_file_by_another_name_is_refused_naming_the_area() {
    let dir = tempdir();
    let a = area(dir.path(), "a", 64);
    let symlink = dir.path().join("swapkit-symlink");
    std::os::unix::fs::symlink(&a, &symlink).unwrap();
    let hardlink = dir.path().join("swapkit-hardlink");
    std::fs::hard_link(&a, &hardlink).unwrap();
    for p in pagers() {
        p.swapon(&a, SwaponOptions::default()).unwrap();
        assert_in_use_as(&p, &a, &a);
        assert_in_use_as(&p, &symlink, &a);
        assert_in_use_as(&p, &hardlink, &a);
        assert_eq!(p.devices().len(), 1);
    }
}

/// A bind mount of a file onto another file; unmounted on drop (also when the test fails).
struct BindMount(PathBuf);

impl BindMount {
    fn new(source: &Path, target: &Path) -> Option<BindMount> {
        std::fs::File::create(target).unwrap();
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
        let (src, dst) = (c(source), c(target));
        // SAFETY: the strings are NUL-terminated and live across the call; the other
        // arguments may be null for a bind mount.
        let rc = unsafe {
            nix::libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                nix::libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            println!(
                "bind mount refused ({}); skipped",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(BindMount(target.to_owned()))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let dst = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that lives across the call.
        unsafe { nix::libc::umount2(dst.as_ptr(), nix::libc::MNT_DETACH) };
    }
}

#[test]
fn a_bind_mount_of_the_file_is_refused_naming_the_area() {
    let dir = tempdir();
    let a = area(dir.path(), "a", 64);
    let Some(mount) = BindMount::new(&a, &dir.path().join("swapkit-bound")) else {
        return;
    };
    for p in pagers() {
        p.swapon(&mount.0, SwaponOptions::default()).unwrap();
        assert_in_use_as(&p, &a, &mount.0);
    }
    drop(mount);
}

#[test]
fn a_loop_device_and_its_backing_file_are_one_storage() {
    let dir = tempdir();
    let file = area(dir.path(), "a", 64);
    let Some(dev) = attach(&file) else { return };
    for p in pagers() {
        // The device first, then its file.
        let id = p.swapon(dev.path(), SwaponOptions::default()).unwrap();
        assert_in_use_as(&p, &file, dev.path());
        p.swapoff(id, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        // The file first, then the device.
        p.swapon(&file, SwaponOptions::default()).unwrap();
        assert_in_use_as(&p, dev.path(), &file);
    }
    dev.detach().unwrap();
}

#[test]
fn two_loop_devices_on_one_file_are_one_storage() {
    let dir = tempdir();
    let file = area(dir.path(), "a", 64);
    let Some(first) = attach(&file) else { return };
    let second = LoopDevice::attach_shared(&file, &LoopOptions::default()).unwrap();
    for p in pagers() {
        p.swapon(first.path(), SwaponOptions::default()).unwrap();
        assert_in_use_as(&p, second.path(), first.path());
    }
    drop((first, second));
}

/// Two pagers in one process stand for two daemons: the storage's lock (O_EXCL on block
/// devices, an OFD lock on files and on a loop device's backing file) refuses the second
/// until the first swaps off.
#[test]
fn a_second_pager_is_refused_until_the_first_lets_go() {
    let dir = tempdir();
    let file = area(dir.path(), "a", 64);
    let dev = attach(&file);
    let first = Pager::new(common::config(32)).unwrap();
    for second in pagers() {
        // A file area.
        let id = first.swapon(&file, SwaponOptions::default()).unwrap();
        let err = second.swapon(&file, SwaponOptions::default()).unwrap_err();
        assert!(
            matches!(&err, PagerError::Device(DeviceError::Locked { file: f, .. }) if *f == file),
            "{err}"
        );
        if let Some(dev) = &dev {
            // A loop device over the first pager's file: its backing file is locked.
            let err = second
                .swapon(dev.path(), SwaponOptions::default())
                .unwrap_err();
            assert!(
                matches!(&err, PagerError::Device(DeviceError::Locked { file: f, .. }) if *f == file),
                "{err}"
            );
        }
        first
            .swapoff(id, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();
        let id2 = second.swapon(&file, SwaponOptions::default()).unwrap();
        second
            .swapoff(id2, SwapoffOptions::default(), &mut |_, _| {})
            .unwrap();

        if let Some(dev) = &dev {
            // A loop device area: the same device (O_EXCL) and its file (the busy device).
            let id = first.swapon(dev.path(), SwaponOptions::default()).unwrap();
            let err = second
                .swapon(dev.path(), SwaponOptions::default())
                .unwrap_err();
            assert!(
                matches!(&err, PagerError::Device(DeviceError::InUse { .. })),
                "{err}"
            );
            let err = second.swapon(&file, SwaponOptions::default()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{}: in use as {}", file.display(), dev.path().display())
            );
            first
                .swapoff(id, SwapoffOptions::default(), &mut |_, _| {})
                .unwrap();
        }
    }
    drop(first);
    if let Some(dev) = dev {
        dev.detach().unwrap();
    }
}

/// Issue 11 §3, issue 22: storage that shrinks under a live area (its file, or a loop
/// device's backing file, truncated) gives read errors past the cut, never zeroes, and
/// the pages before it still read, on both engines.
#[test]
fn a_truncated_area_gives_read_errors_past_the_cut_never_zeroes() {
    let dir = tempdir();
    let file = area(dir.path(), "cut-file", 64);
    let img = area(dir.path(), "cut-loop", 64);
    let dev = attach(&img);
    let mut targets = vec![(file.clone(), file)];
    if let Some(dev) = &dev {
        targets.push((dev.path().to_owned(), img.clone()));
    }
    for (path, backing) in targets {
        for p in pagers() {
            // Whole again (the previous round cut it), with a fresh header.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&backing)
                .unwrap()
                .set_len(64 * device::PAGE_SIZE as u64)
                .unwrap();
            device::mkswap(&path, &device::MkswapOptions::default()).unwrap();
            let id = p.swapon(&path, SwaponOptions::default()).unwrap();
            let obj = p.alloc_object(None, 32);
            let res = p.putpages(&obj, 0, &common::pages(0, 32), pager::PutMode::Sync);
            assert!(res.iter().all(|r| *r == pager::PageResult::Ok), "{res:?}");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&backing)
                .unwrap()
                .set_len(8 * device::PAGE_SIZE as u64)
                .unwrap();
            let mut out = vec![0u8; device::PAGE_SIZE];
            // Before the cut (area page 3): intact. Past it (page 21): an error that says so
            // (or, where the loop driver zero-fills, the checksum's), never zeroes.
            p.getpages(&obj, 2, 0, 0, &mut out).unwrap();
            assert!(out == common::page(2));
            let err = p.getpages(&obj, 20, 0, 0, &mut out).unwrap_err();
            let line = err.to_string();
            assert!(
                line.contains("shrank to 32768 bytes") || line.contains("checksum mismatch"),
                "{line}"
            );
            assert!(out.iter().all(|&b| b == 0), "no data handed out");
            drop(obj);
            let _ = p.swapoff(id, SwapoffOptions { force: true }, &mut |_, _| {});
        }
    }
    drop(dev);
}
