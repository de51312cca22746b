//! End to end, `mkswap` and `loop` as util-linux users expect them: the positional size,
//! `-p`, `-v`, refusing more pages than the device holds (never growing it), the label
//! warning, insecure permissions, "too small" with the asked-for size; `loop detach` of a
//! device in use, `loop detach -a` for our own devices only, and a failed
//! `loop attach --create` leaving no file.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{stderr, stdout};
use device::loopdev::{self, LoopDevice, LoopOptions};

const MIB: u64 = 1 << 20;

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// `swapctl ARGS` with its loop registry in `state`.
fn swapctl(args: &[&str], state: &Path) -> Output {
    Command::new(common::BIN)
        .args(args)
        .env("SWAPKIT_SOCKET", state.join("none.sock"))
        .env("SWAPKIT_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn file(dir: &Path, name: &str, len: u64, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(len).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn mkswap_takes_util_linux_arguments_and_never_grows_the_file() {
    let dir = tempdir("swapkit-mkswap");
    let f = file(dir.path(), "swapkit-a.img", 16 * MIB, 0o600);
    let fs = f.to_str().unwrap();
    // A bare positional size is 1K-blocks: 8192 of them, 8 MiB, header page included.
    let out = swapctl(&["mkswap", "-v", "-p", "4096", fs, "8192"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("({} bytes)", 8 * MIB - 4096)),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("writing a swap header"),
        "{}",
        stderr(&out)
    );
    // More pages than the file holds: refused, the file keeps its size.
    let out = swapctl(&["mkswap", fs, "--pages", "999999"], dir.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("asked for 999999 pages"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 16 * MIB);
    // A long label is cut to 16 bytes, with util-linux's warning.
    let out = swapctl(&["mkswap", fs, "-L", "a-label-longer-than-16"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Label was truncated"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("LABEL=a-label-longer-t,"),
        "{}",
        stdout(&out)
    );
    // A file others may read: a warning, and it goes on.
    let open = file(dir.path(), "swapkit-b.img", 4 * MIB, 0o644);
    let out = swapctl(&["mkswap", open.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("insecure permissions 0644"),
        "{}",
        stderr(&out)
    );
    // A missing file with a size is made, mode 0600, with no permission warning.
    let new = dir.path().join("swapkit-new.img");
    let out = swapctl(
        &["mkswap", new.to_str().unwrap(), "--pages", "64"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let m = std::fs::metadata(&new).unwrap();
    assert_eq!(
        (m.len(), m.permissions().mode() & 0o777),
        (64 * 4096, 0o600)
    );
    // Too small: the message quotes what was asked for, not the file's size.
    let out = swapctl(&["mkswap", fs, "16K"], dir.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("asked for 16K"), "{}", stderr(&out));
}

#[test]
fn a_failed_loop_attach_create_leaves_no_file() {
    let dir = tempdir("swapkit-attach");
    let f = dir.path().join("swapkit-huge.img");
    // Larger than ext4 or any file system here allows: set_len fails after the create.
    let out = swapctl(
        &[
            "loop",
            "attach",
            f.to_str().unwrap(),
            "--create",
            "--size",
            "8000000T",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!f.exists(), "the created file was left behind");
}

#[test]
fn loop_attach_size_never_shrinks_a_larger_file_and_says_so() {
    let dir = tempdir("swapkit-attach");
    let f = file(dir.path(), "swapkit-big.img", 32 * MIB, 0o600);
    let out = swapctl(
        &[
            "loop",
            "attach",
            f.to_str().unwrap(),
            "--create",
            "--size",
            "16M",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "swapctl: {}: is 32M, larger than --size 16M (a file is never shrunk: leave out --size to attach it as it is)\n",
            f.display()
        )
    );
    assert_eq!(stdout(&out), "", "nothing was attached");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 32 * MIB);
}

#[test]
fn mkswap_names_a_filesystem_signature_with_its_article() {
    use std::os::unix::fs::FileExt;
    let dir = tempdir("swapkit-mkswap");
    let f = file(dir.path(), "swapkit-ext4.img", 4 * MIB, 0o600);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .write_all_at(&[0x53, 0xef], 1080)
        .unwrap();
    let out = swapctl(&["mkswap", f.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "swapctl: {}: holds an ext2/3/4 signature; use --force to overwrite it\n",
            f.display()
        )
    );
}

/// Our devices and their files. On drop, detaches those still bound to our file (a freed
/// number may already be another program's device), so a failing test leaves nothing.
struct Attached(Vec<(PathBuf, PathBuf)>);

fn bound_to(dev: &Path, file: &Path) -> bool {
    loopdev::info(dev).is_ok_and(|i| i.backing_file == file)
}

impl Drop for Attached {
    fn drop(&mut self) {
        for (d, f) in &self.0 {
            if bound_to(d, f) {
                let _ = loopdev::detach_path(d);
            }
        }
    }
}

#[test]
fn loop_detach_refuses_a_device_in_use_and_dash_a_takes_ours_only() {
    if let Err(why) = loopdev::available() {
        println!("skipped: loop devices unavailable ({why})");
        return;
    }
    let dir = tempdir("swapkit-detach");
    let mut ours = Attached(Vec::new());
    for name in ["swapkit-x.img", "swapkit-y.img"] {
        let f = dir.path().join(name);
        let out = swapctl(
            &[
                "loop",
                "attach",
                f.to_str().unwrap(),
                "--create",
                "--size",
                "4M",
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        // Into the guard first, so a failed assertion below still detaches it.
        let canon = std::fs::canonicalize(&f).unwrap();
        ours.0.push((PathBuf::from(stdout(&out).trim()), canon));
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "loop attach --create made a {mode:o} file");
    }
    // Not ours: attached here, not by swapctl. `detach -a` must leave it alone.
    let other_file = file(dir.path(), "swapkit-other.img", 4 * MIB, 0o600);
    let opts = LoopOptions {
        direct_io: false,
        block_size: 4096,
        autoclear: true,
        read_only: false,
    };
    let other = LoopDevice::attach(&other_file, &opts).unwrap();
    // In use (held exclusively, as a mount or a swap daemon does): refused, and it stays.
    let (busy, busy_file) = &ours.0[0];
    let (free, free_file) = &ours.0[1];
    let hold = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(busy)
        .unwrap();
    let out = swapctl(&["loop", "detach", busy.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(bound_to(busy, busy_file), "the busy device went away");
    // -a while one is busy: the other of ours goes, "some failed".
    let out = swapctl(&["loop", "detach", "-a"], dir.path());
    assert_eq!(out.status.code(), Some(4 | 64), "{}", stderr(&out));
    assert!(!bound_to(free, free_file), "ours stayed attached");
    drop(hold);
    let out = swapctl(&["loop", "detach", "-D"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!bound_to(busy, busy_file), "ours stayed attached");
    assert_eq!(
        other.info().unwrap().backing_file,
        std::fs::canonicalize(&other_file).unwrap(),
        "detach -a took a device that is not ours"
    );
    other.detach().unwrap();
}
