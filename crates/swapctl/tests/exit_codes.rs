//! End to end, docs/swapctl.md's exit-status table for every command: the real binary,
//! without a daemon (8), with bad arguments (16, one line `swapctl: <what>: <why>`), with
//! an operation the daemon or the device refuses (4), no room to move data off (2), and
//! `-a`'s all (32) and some (64) failed.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::Path;

use common::{Daemon, Devices, stderr};
use control::client::Client;
use device::PAGE_SIZE;

const MIB: u64 = 1 << 20;

/// Run without a daemon behind `$SWAPKIT_SOCKET`.
fn run_alone(args: &[&str]) -> std::process::Output {
    common::swapctl_env(args, Path::new("/nonexistent/swapkit-exit.sock"))
}

fn assert_one_line(args: &[&str], out: &std::process::Output) {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("swapctl: "), "{args:?}: {err}");
}

#[test]
fn no_daemon_is_a_system_error_for_every_client_command() {
    for args in [
        &["on", "/dev/null"][..],
        &["off", "/dev/null"],
        &["list"],
        &["summary"],
        &["status"],
        &["frag"],
        &["set", "swap_async_max", "2"],
        &["load", "--duration", "1s"],
        &["-l"],
        &["-s"],
        &["-a", "/dev/null"],
        &["-d", "/dev/null"],
        &["-A"],
        &["-U"],
        &["on"],
        &["on", "-s"],
    ] {
        let out = run_alone(args);
        assert_eq!(out.status.code(), Some(8), "{args:?}: {}", stderr(&out));
        assert_one_line(args, &out);
        assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
    }
}

#[test]
fn usage_errors_exit_16_with_one_line_for_every_command() {
    for args in [
        &[][..],
        &["-x"],
        &["nosuchcommand"],
        &["mkswap"],
        &["mkswap", "/dev/null", "-p", "8192"],
        &["loop"],
        &["loop", "attach"],
        &["loop", "detach"],
        &["daemon", "--bogus"],
        &["on", "-p", "99999", "/dev/null"],
        &["on", "--discard=pages", "/dev/null"],
        &["off"],
        &["list", "--show=NOPE"],
        &["list", "--show="],
        &["summary", "--bogus"],
        &["status", "--bogus"],
        &["frag", "a", "b"],
        &["set", "nope", "1"],
        &["set", "swap_async_max", "x"],
        &["load", "--duration", "forever"],
        &["top", "-d", "x"],
        &["completions", "nosh"],
        &["man", "nosuchpage"],
        &["-p", "5", "-l"],
    ] {
        let out = run_alone(args);
        assert_eq!(out.status.code(), Some(16), "{args:?}: {}", stderr(&out));
        assert_one_line(args, &out);
    }
    // Help and version are not errors.
    for args in [&["--help"][..], &["--version"], &["on", "--help"]] {
        assert_eq!(run_alone(args).status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn usage_errors_suggest_the_command_and_name_the_subcommand() {
    for (args, want) in [
        (
            &["lsit"][..],
            "swapctl: usage: unrecognized subcommand 'lsit' (did you mean 'list'?) (see 'swapctl --help')\n",
        ),
        (
            &["loop", "lsit"],
            "swapctl: loop: unrecognized subcommand 'lsit' (did you mean 'list'?) (see 'swapctl loop --help')\n",
        ),
        (
            &["loop", "list", "-a"],
            "swapctl: loop list: unexpected argument '-a' found (see 'swapctl loop list --help')\n",
        ),
    ] {
        let out = run_alone(args);
        assert_eq!(out.status.code(), Some(16), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), want, "{args:?}");
    }
}

/// Permission denied is 16, as the table says: `loop attach` by a user who is not root.
#[test]
fn loop_attach_without_permission_exits_16() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run swapctl as another user");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("swapkit-perm")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.path().join("swapkit-a.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    // nobody: may read and write the file, not /dev/loop-control.
    for args in [
        vec!["loop", "attach", file.to_str().unwrap()],
        vec!["loop", "attach", file.to_str().unwrap(), "--size", "32M"],
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(&args)
            .env("SWAPKIT_STATE_DIR", dir.path())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(16), "{args:?}: {}", stderr(&out));
        assert_one_line(&["loop", "attach"], &out);
    }
    // A file nobody may open: 16 too.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["loop", "attach", file.to_str().unwrap(), "--size", "32M"])
        .env("SWAPKIT_STATE_DIR", dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ermission denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn failed_operations_exit_4_and_no_room_exits_2() {
    let devs = Devices::new(&[16 * MIB]);
    let d = Daemon::start(&[]);
    let none = devs.dir.path().join("none");
    // mkswap: a device smaller than asked for.
    let out = common::swapctl_env(&["mkswap", devs.path(0), "--pages", "999999"], &none);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_one_line(&["mkswap"], &out);
    let out = common::swapctl_env(&["mkswap", devs.path(0)], &none);
    assert!(out.status.success(), "{}", stderr(&out));
    // on: not a swap area; off, -d and frag: not on.
    let plain = devs.dir.path().join("plain");
    std::fs::write(&plain, vec![0u8; 1 << 20]).unwrap();
    for args in [
        &["on", plain.to_str().unwrap()][..],
        &["off", devs.path(0)],
        &["-d", devs.path(0)],
        &["frag", devs.path(0)],
    ] {
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert_one_line(args, &out);
    }
    // The only device holding data cannot go: 2, with -a also 32 (every device failed).
    d.ok(&["on", devs.path(0)]);
    let mut c = Client::connect(&d.socket).unwrap();
    let o = c.create(Some("held")).unwrap();
    let st = c.putpages(o, 0, vec![7u8; 16 * PAGE_SIZE], true).unwrap();
    assert!(
        st.iter().all(|s| *s == control::proto::PutStatus::Ok),
        "{st:?}"
    );
    let out = d.run(&["off", devs.path(0)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // The figures of "no room" with their units.
    assert!(
        stderr(&out).ends_with("not enough free swap: need 16 pages (64K), have 0 (0B)\n"),
        "{}",
        stderr(&out)
    );
    let out = d.run(&["off", "-a"]);
    assert_eq!(out.status.code(), Some(2 | 32), "{}", stderr(&out));
    let out = d.run(&["-U"]);
    assert_eq!(out.status.code(), Some(2 | 32), "{}", stderr(&out));
    c.destroy(o).unwrap();
    d.ok(&["off", "-a"]);
}

#[test]
fn a_path_that_is_not_utf8_is_named_as_such_not_as_missing() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::Builder::new()
        .prefix("swapkit-utf8")
        .tempdir()
        .unwrap();
    let name = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"swap-\xff.img"));
    std::fs::write(&name, b"").unwrap();
    for cmd in ["on", "off", "frag"] {
        let out = std::process::Command::new(common::BIN)
            .arg(cmd)
            .arg(&name)
            .env("SWAPKIT_SOCKET", dir.path().join("none.sock"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(16), "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not valid UTF-8"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
}
