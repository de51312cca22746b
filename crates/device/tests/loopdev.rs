//! Loop devices: attach with the asked configuration, list and query, detach, persist,
//! detach on panic, concurrent attaches, and nothing leaked.

#![allow(clippy::unwrap_used)]

mod common;

use device::loopdev::{self, LoopDevice, LoopOptions};
use device::{DeviceError, PAGE_SIZE};

#[test]
fn attach_configures_direct_io_4k_blocks_and_autoclear() {
    let Some(()) = common::loop_or_skip("attach_configures_direct_io_4k_blocks_and_autoclear")
    else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "cfg", 256);
    let dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
    let info = dev.info().unwrap();
    assert_eq!(info.path, dev.path());
    assert_eq!(info.backing_file, std::fs::canonicalize(&file).unwrap());
    assert_eq!(info.block_size, 4096);
    assert!(info.direct_io, "{info:?}");
    assert!(info.autoclear && !info.read_only);
    assert!(loopdev::list().unwrap().contains(&info));
    dev.detach().unwrap();
    common::assert_no_loop_under(dir.path());
}

#[test]
fn the_legacy_ioctls_configure_the_same_device() {
    let Some(()) = common::loop_or_skip("the_legacy_ioctls_configure_the_same_device") else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "legacy", 64);
    let dev = LoopDevice::attach_legacy(&file, &LoopOptions::default()).unwrap();
    let info = dev.info().unwrap();
    assert_eq!(
        (
            info.direct_io,
            info.block_size,
            info.autoclear,
            info.read_only
        ),
        (true, 4096, true, false)
    );
    drop(dev);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn attach_honours_read_only_buffered_and_512_byte_blocks() {
    let Some(()) = common::loop_or_skip("attach_honours_read_only_buffered_and_512_byte_blocks")
    else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "opts", 64);
    let opts = LoopOptions {
        direct_io: false,
        block_size: 512,
        autoclear: false,
        read_only: true,
    };
    let dev = LoopDevice::attach(&file, &opts).unwrap();
    let info = dev.info().unwrap();
    assert_eq!(
        (
            info.direct_io,
            info.block_size,
            info.autoclear,
            info.read_only
        ),
        (false, 512, false, true)
    );
    drop(dev);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn the_guard_detaches_when_a_test_panics() {
    let Some(()) = common::loop_or_skip("the_guard_detaches_when_a_test_panics") else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "panic", 64);
    let result = std::panic::catch_unwind(|| {
        let _dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
        assert_eq!(common::loops_under(dir.path()).len(), 1);
        panic!("boom");
    });
    assert!(result.is_err());
    common::assert_no_loop_under(dir.path());
}

#[test]
fn a_persisted_device_outlives_its_guard_until_detached_by_path() {
    let Some(()) =
        common::loop_or_skip("a_persisted_device_outlives_its_guard_until_detached_by_path")
    else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "persist", 64);
    let dev = LoopDevice::attach(&file, &LoopOptions::default()).unwrap();
    let path = dev.persist();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let info = loopdev::info(&path).unwrap();
    assert!(!info.autoclear, "persist switches autoclear off");
    loopdev::detach_path(&path).unwrap();
    common::assert_no_loop_under(dir.path());
}

#[test]
fn concurrent_attaches_each_get_their_own_device() {
    let Some(()) = common::loop_or_skip("concurrent_attaches_each_get_their_own_device") else {
        return;
    };
    let dir = common::scratch();
    let files: Vec<_> = (0..6)
        .map(|i| common::backing_file(dir.path(), &format!("race-{i}"), 64))
        .collect();
    let devs: Vec<LoopDevice> = std::thread::scope(|s| {
        let hs: Vec<_> = files
            .iter()
            .map(|f| s.spawn(move || LoopDevice::attach(f, &LoopOptions::default()).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut paths: Vec<_> = devs.iter().map(|d| d.path().to_owned()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 6);
    for d in &devs {
        let backing = d.info().unwrap().backing_file;
        assert_eq!(backing, d.backing_file());
    }
    drop(devs);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn data_written_through_the_device_lands_in_the_file() {
    let Some(()) = common::loop_or_skip("data_written_through_the_device_lands_in_the_file") else {
        return;
    };
    let dir = common::scratch();
    let t = common::swap_target(dir.path(), "through", 64);
    let area = device::SwapArea::open(&t.path, &device::OpenOptions::default()).unwrap();
    assert!(area.direct_io());
    let buf = device::PageBuf::from_bytes(&common::pattern(7, 1));
    area.write_pages(7, &buf).unwrap();
    area.sync().unwrap();
    drop(area);
    let bytes = std::fs::read(&t.file).unwrap();
    assert_eq!(
        &bytes[7 * PAGE_SIZE..8 * PAGE_SIZE],
        common::pattern(7, 1).as_slice()
    );
    drop(t);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn attaching_a_missing_file_is_refused() {
    let dir = common::scratch();
    let err =
        LoopDevice::attach(dir.path().join("swapkit-none"), &LoopOptions::default()).unwrap_err();
    assert!(matches!(err, DeviceError::NotFound { .. }), "{err}");
}

#[test]
fn detaching_a_device_that_is_not_attached_is_an_error() {
    let Some(()) = common::loop_or_skip("detaching_a_device_that_is_not_attached_is_an_error")
    else {
        return;
    };
    let err = loopdev::info(std::path::Path::new("/dev/swapkit-no-such-loop")).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "/dev/swapkit-no-such-loop: loop device read backing file (not attached?)"
        ),
        "{err}"
    );
    let err = loopdev::detach_path(std::path::Path::new("/dev/swapkit-no-such-loop")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/dev/swapkit-no-such-loop: loop device open:"),
        "{err}"
    );
}
