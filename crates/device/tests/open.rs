//! Opening swap areas and mkswap: what is accepted, and every refusal with its message.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::process::Command;

use device::{
    AreaKind, DeviceError, DirectIo, LoopDevice, LoopOptions, MkswapOptions, OpenOptions,
    PAGE_SIZE, PageBuf, SwapArea, mkswap,
};

fn open(path: &std::path::Path) -> Result<SwapArea, DeviceError> {
    SwapArea::open(path, &OpenOptions::default())
}

#[test]
fn a_file_with_a_header_opens_with_its_geometry() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "geo", 300);
    let mut h = device::SwapHeader::new(299);
    h.bad_pages = vec![5, 6];
    let mut page = vec![0u8; PAGE_SIZE];
    h.write(&mut page);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .write_all_at(&page, 0)
        .unwrap();
    let area = open(&file).unwrap();
    assert_eq!(area.kind(), AreaKind::File);
    assert_eq!(area.size_bytes(), 300 * PAGE_SIZE as u64);
    assert_eq!(area.last_page(), 299);
    assert_eq!(area.usable_pages(), 297);
    assert!(area.is_bad(5) && area.is_bad(6) && !area.is_bad(7));
    // /tmp is a real filesystem here: O_DIRECT is expected to be in use.
    println!("direct I/O: {}", area.direct_io());
}

#[test]
fn direct_io_off_is_honoured() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "buffered", 64);
    mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = SwapArea::open(
        &file,
        &OpenOptions {
            direct: DirectIo::Off,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!area.direct_io());
}

#[test]
fn tmpfs_falls_back_to_buffered_io_or_refuses_when_direct_is_required() {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        println!("no /dev/shm; skipped");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("swapkit-test-")
        .tempdir_in(shm)
        .unwrap();
    let file = common::backing_file(dir.path(), "tmpfs", 64);
    mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file).unwrap();
    println!("tmpfs: direct I/O {}", area.direct_io());
    // One owner at a time: the area's lock would refuse the second open.
    drop(area);
    let required = SwapArea::open(
        &file,
        &OpenOptions {
            direct: DirectIo::Require,
            ..Default::default()
        },
    );
    match required {
        // Linux 6.6+ tmpfs accepts O_DIRECT.
        Ok(a) => assert!(a.direct_io()),
        Err(e) => assert_eq!(
            e.to_string(),
            format!(
                "{}: O_DIRECT is not supported here (direct I/O was required)",
                file.display()
            )
        ),
    }
}

#[test]
fn a_missing_path_is_refused() {
    let dir = common::scratch();
    let path = dir.path().join("swapkit-missing");
    let err = open(&path).unwrap_err();
    assert!(matches!(err, DeviceError::NotFound { .. }));
    assert_eq!(
        err.to_string(),
        format!("{}: no such file or device", path.display())
    );
}

#[test]
fn a_directory_is_refused() {
    let dir = common::scratch();
    let err = open(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: is a directory, not a block device or a regular file",
            dir.path().display()
        )
    );
}

#[test]
fn a_character_device_is_refused() {
    let err = open(std::path::Path::new("/dev/null")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/dev/null: is a character device, not a block device or a regular file"
    );
}

#[test]
fn a_header_less_file_is_refused() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "blank", 64);
    let err = open(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: not a swap area; run `swapctl mkswap`", file.display())
    );
    let empty = common::backing_file(dir.path(), "empty", 0);
    assert!(matches!(open(&empty), Err(DeviceError::NoHeader { .. })));
}

#[test]
fn a_bad_header_is_refused_with_its_reason() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "old", 64);
    let mut page = vec![0u8; PAGE_SIZE];
    page[PAGE_SIZE - 10..].copy_from_slice(b"SWAP-SPACE");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .write_all_at(&page, 0)
        .unwrap();
    let err = open(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: old-style swap area (SWAP-SPACE, version 0) is not supported; run `swapctl mkswap`",
            file.display()
        )
    );
}

#[test]
fn a_file_smaller_than_its_header_says_is_refused() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "shrunk", 256);
    mkswap(&file, &MkswapOptions::default()).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(128 * PAGE_SIZE as u64)
        .unwrap();
    let err = open(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: too small: 524288 bytes, its swap header needs 1048576",
            file.display()
        )
    );
}

/// Sets the immutable attribute (root cannot write such a file), undone on drop.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: &std::path::Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_file_is_refused() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "ro", 64);
    mkswap(&file, &MkswapOptions::default()).unwrap();
    let Some(_guard) = Immutable::set(&file) else {
        println!("chattr +i unavailable here; skipped");
        return;
    };
    let err = open(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: read-only; a swap area must be writable",
            file.display()
        )
    );
    // Opening read-only on purpose works.
    assert!(
        SwapArea::open(
            &file,
            &OpenOptions {
                read_only: true,
                ..Default::default()
            }
        )
        .is_ok()
    );
}

#[test]
fn a_read_only_block_device_is_refused() {
    let Some(()) = common::loop_or_skip("a_read_only_block_device_is_refused") else {
        return;
    };
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "rodev", 64);
    mkswap(&file, &MkswapOptions::default()).unwrap();
    let dev = LoopDevice::attach(
        &file,
        &LoopOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    let err = open(dev.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: read-only; a swap area must be writable",
            dev.path().display()
        )
    );
    drop(dev);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn a_block_device_held_by_another_opener_is_in_use() {
    let Some(()) = common::loop_or_skip("a_block_device_held_by_another_opener_is_in_use") else {
        return;
    };
    let dir = common::scratch();
    let t = common::swap_target(dir.path(), "busy", 64);
    let first = open(&t.path).unwrap();
    assert_eq!(first.kind(), AreaKind::BlockDevice);
    assert_eq!(first.last_page(), 63);
    let err = open(&t.path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: device in use (mounted, kernel swap, or another daemon)",
            t.path.display()
        )
    );
    let err = mkswap(
        &t.path,
        &MkswapOptions {
            force: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, DeviceError::InUse { .. }));
    // Without O_EXCL (inspection) it opens.
    assert!(
        SwapArea::open(
            &t.path,
            &OpenOptions {
                exclusive: false,
                ..Default::default()
            }
        )
        .is_ok()
    );
    drop(first);
    assert!(open(&t.path).is_ok());
    drop(t);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn mkswap_refuses_a_filesystem_signature_unless_forced() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "ext4", 64);
    // The ext2/3/4 superblock magic at byte 1080.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .write_all_at(&[0x53, 0xef], 1080)
        .unwrap();
    let err = mkswap(&file, &MkswapOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: holds an ext2/3/4 signature; use --force to overwrite it",
            file.display()
        )
    );
    assert!(
        mkswap(
            &file,
            &MkswapOptions {
                force: true,
                ..Default::default()
            }
        )
        .is_ok()
    );
    assert!(open(&file).is_ok());
}

#[test]
fn mkswap_rewrites_an_existing_swap_area_without_force() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "twice", 64);
    let a = mkswap(&file, &MkswapOptions::default()).unwrap();
    let b = mkswap(&file, &MkswapOptions::default()).unwrap();
    assert_ne!(a.uuid, b.uuid);
    assert_eq!(open(&file).unwrap().header().uuid, b.uuid);
}

#[test]
fn mkswap_refuses_a_device_too_small_for_ten_pages() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "tiny", 10);
    let err = mkswap(&file, &MkswapOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: too small: 40960 bytes, a swap area needs 45056",
            file.display()
        )
    );
}

#[test]
fn mkswap_creates_a_missing_file_of_the_asked_size() {
    let dir = common::scratch();
    let file = dir.path().join("swapkit-new");
    let h = mkswap(
        &file,
        &MkswapOptions {
            pages: Some(100),
            label: Some("new".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(h.last_page, 99);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        100 * PAGE_SIZE as u64
    );
    assert_eq!(open(&file).unwrap().header().label, "new");
}

#[test]
fn mkswap_refuses_a_size_larger_than_the_device() {
    let Some(()) = common::loop_or_skip("mkswap_refuses_a_size_larger_than_the_device") else {
        return;
    };
    let dir = common::scratch();
    let t = common::target(dir.path(), "small", 64);
    let err = mkswap(
        &t.path,
        &MkswapOptions {
            pages: Some(65),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: too small: 262144 bytes, the requested size needs 266240",
            t.path.display()
        )
    );
    drop(t);
    common::assert_no_loop_under(dir.path());
}

#[test]
fn mkswap_check_finds_no_bad_pages_on_a_healthy_file() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "check", 64);
    let h = mkswap(
        &file,
        &MkswapOptions {
            check: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(h.bad_pages.is_empty());
}

#[test]
fn data_pages_exclude_page_zero_and_pages_past_the_end() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "range", 64);
    mkswap(&file, &MkswapOptions::default()).unwrap();
    let area = open(&file).unwrap();
    let mut buf = PageBuf::new(1);
    let err = area.read_pages(0, &mut buf).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: pages 0..+1 outside the data pages 1..=63",
            file.display()
        )
    );
    assert!(matches!(
        area.write_pages(63, &PageBuf::new(2)),
        Err(DeviceError::OutOfRange { .. })
    ));
    assert!(matches!(
        area.write_pages(5, &PageBuf::new(0)),
        Err(DeviceError::OutOfRange { .. })
    ));
    assert!(area.write_pages(63, &PageBuf::new(1)).is_ok());
    assert_eq!(
        area.stats().write_errors,
        0,
        "refused requests are not device errors"
    );
}

/// Issue 11 §3: a file area keeps its blocks allocated (`fallocate` at open), so a write
/// cannot fail for want of space later; the size does not change.
#[test]
fn a_sparse_file_area_is_allocated_at_open() {
    use std::os::unix::fs::MetadataExt;
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "sparse", 256);
    mkswap(&file, &MkswapOptions::default()).unwrap();
    let before = std::fs::metadata(&file).unwrap();
    assert!(
        before.blocks() * 512 < 16 * PAGE_SIZE as u64,
        "sparse to start with"
    );
    let area = open(&file).unwrap();
    let after = std::fs::metadata(&file).unwrap();
    assert_eq!(after.len(), before.len());
    assert!(
        after.blocks() * 512 >= 256 * PAGE_SIZE as u64,
        "{} bytes allocated",
        after.blocks() * 512
    );
    // A discard (at swapon, or of freed ranges) gives the data up, not the blocks.
    area.discard(1, 255).unwrap();
    let discarded = std::fs::metadata(&file).unwrap();
    assert!(
        discarded.blocks() * 512 >= 256 * PAGE_SIZE as u64,
        "{} bytes allocated after a discard",
        discarded.blocks() * 512
    );
    drop(area);
}
