//! `swapctl run [--limit SIZE] [--min-mapping SIZE] [--strict] -- PROG [ARGS...]`: run an
//! unmodified program with its large private anonymous mappings paged to the daemon's swap
//! space, by a preload library (`crates/preload`, `libswapkit_preload.so`) that talks to
//! the daemon itself.
//!
//! What this command does is only the setup: it checks that the daemon answers and has swap
//! on (a program is never started half paged: no daemon is exit 8, no swap exit 4), finds
//! the library, then replaces itself with the program (`exec`), with the library in
//! `LD_PRELOAD` and its settings in `SWAPKIT_*` variables ([`environment`]). From then on
//! signals, the terminal and the exit status are the program's own; swapctl is gone.
//!
//! Invariants: nothing is printed on success (the program's output is all there is); every
//! failure before the exec is one line and an exit status of the table; the program never
//! inherits a `SWAPKIT_STRICT` that `--strict` did not ask for.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use control::client::{Client, ClientError};

use crate::cli::RunArgs;
use crate::output::CliError;
use crate::output::exit::{self, EX_FAILURE, EX_SYSERR};

/// The variable naming the preload library, before any other place is looked at.
pub const PRELOAD_ENV: &str = "SWAPKIT_PRELOAD";
/// The preload library's file name, as `cargo build -p preload` makes it.
pub const PRELOAD_NAME: &str = "libswapkit_preload.so";
/// Where the library is looked for after `$SWAPKIT_PRELOAD`, relative to the directory of
/// the running `swapctl`: beside it (cargo's `target/<profile>/`), then an installed tree's
/// `lib/swapkit/` (`/usr/local/bin/swapctl` -> `/usr/local/lib/swapkit/`). `""` is the
/// directory itself.
pub const PRELOAD_DIRS: [&str; 2] = ["", "../lib/swapkit"];

const PAGE: u64 = device::PAGE_SIZE as u64;

pub fn run(a: &RunArgs) -> Result<i32, CliError> {
    let socket =
        std::path::absolute(&a.socket.socket).map_err(|e| CliError::usage("run --socket", e))?;
    let limit = match a.limit {
        Some(l) => l,
        None => default_limit()?,
    };
    if limit < PAGE {
        return Err(CliError::usage(
            "run --limit",
            format!("{limit} bytes is less than a page ({PAGE} bytes)"),
        ));
    }
    if a.min_mapping < PAGE {
        return Err(CliError::usage(
            "run --min-mapping",
            format!("{} bytes is less than a page ({PAGE} bytes)", a.min_mapping),
        ));
    }
    daemon_ready(&socket)?;
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned));
    let library = find_preload(std::env::var_os(PRELOAD_ENV), exe_dir.as_deref())
        .map_err(|why| CliError::new("run", why).with_code(EX_SYSERR))?;
    let Some((program, args)) = a.command.split_first() else {
        return Err(CliError::usage("run", "no program to run"));
    };
    let settings = Settings {
        library: &library,
        socket: &socket,
        limit,
        min_mapping: a.min_mapping,
        strict: a.strict,
    };
    let mut command = std::process::Command::new(program);
    command.args(args);
    for (name, value) in environment(&settings, std::env::var_os("LD_PRELOAD").as_deref()) {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
    // Only returns when the program could not be run. (std resets the signal mask and
    // SIGPIPE, which swapctl ignores, before the exec: the program starts as from a shell.)
    let e = command.exec();
    Err(CliError::new(
        format!("run: {}", program.to_string_lossy()),
        cannot_run(program, &e),
    )
    .with_code(EX_SYSERR))
}

/// Why `program` could not be run, the way a shell says it.
fn cannot_run(program: &OsStr, e: &std::io::Error) -> String {
    let on_path = !program.as_bytes().contains(&b'/');
    if e.kind() == std::io::ErrorKind::NotFound && on_path {
        "command not found (looked on $PATH)".into()
    } else {
        e.to_string()
    }
}

/// `--limit`'s default: a quarter of the machine's memory, in whole pages.
fn default_limit() -> Result<u64, CliError> {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let quarter = system.total_memory() / 4 / PAGE * PAGE;
    if quarter == 0 {
        return Err(CliError::usage(
            "run",
            "cannot read this machine's memory size: give --limit",
        ));
    }
    Ok(quarter)
}

/// The daemon at `socket` answers `stats` and has swap on: else one line, exit 8 (no
/// daemon, no answer) or 4 (no swap on), and the program is not run at all.
fn daemon_ready(socket: &Path) -> Result<(), CliError> {
    let no_daemon = |why: String| {
        CliError::new("run", format!("no daemon at {}: {why}", socket.display()))
            .with_code(EX_SYSERR)
    };
    let failed = |e: ClientError| match e {
        ClientError::Connect { source, .. } => no_daemon(source.to_string()),
        ClientError::Timeout { after, .. } => no_daemon(format!(
            "it did not answer within {} s",
            after.as_secs_f64()
        )),
        e @ (ClientError::Permission { .. } | ClientError::Daemon { .. }) => {
            let code = exit::of_client(&e);
            CliError::new("run", e).with_code(code)
        }
        e => no_daemon(e.to_string()),
    };
    let stats = Client::connect(socket)
        .map_err(failed)?
        .stats()
        .map_err(failed)?;
    if stats.devices.is_empty() || stats.total_pages == 0 {
        return Err(CliError::new(
            "run",
            format!(
                "no swap is on at {} (swapctl on DEVICE first): the program would not be paged",
                socket.display()
            ),
        )
        .with_code(EX_FAILURE));
    }
    Ok(())
}

/// The preload library: `env` (`$SWAPKIT_PRELOAD`) when set, which must then exist; else
/// the first of [`PRELOAD_DIRS`] under `exe_dir` that holds [`PRELOAD_NAME`]. Errors say
/// where it looked and how to get one. The path is absolute and fit for `LD_PRELOAD`.
pub fn find_preload(env: Option<OsString>, exe_dir: Option<&Path>) -> Result<PathBuf, String> {
    let found = match env.filter(|e| !e.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(format!(
                    "no preload library at {} (${PRELOAD_ENV}): {}",
                    p.display(),
                    if p.exists() {
                        "not a file"
                    } else {
                        "no such file"
                    }
                ));
            }
            std::path::absolute(&p).unwrap_or(p)
        }
        None => {
            let looked: Vec<PathBuf> = exe_dir
                .map(|d| {
                    PRELOAD_DIRS
                        .iter()
                        .map(|sub| d.join(sub).join(PRELOAD_NAME))
                        .collect()
                })
                .unwrap_or_default();
            match looked.iter().find(|p| p.is_file()) {
                Some(p) => std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()),
                None => {
                    let places: Vec<String> =
                        looked.iter().map(|p| p.display().to_string()).collect();
                    return Err(format!(
                        "no preload library: ${PRELOAD_ENV} is not set and {PRELOAD_NAME} is not at {} \
                         (build it with `cargo build -p preload`, or set ${PRELOAD_ENV})",
                        if places.is_empty() {
                            "the swapctl executable's directory".to_owned()
                        } else {
                            places.join(" or ")
                        }
                    ));
                }
            }
        }
    };
    // The dynamic loader splits LD_PRELOAD at spaces and colons.
    if found
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| *b == b' ' || *b == b':')
    {
        return Err(format!(
            "the preload library's path {} holds a space or a colon, which LD_PRELOAD cannot carry",
            found.display()
        ));
    }
    Ok(found)
}

/// What the program is told: the library, the daemon and the settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub library: &'a Path,
    /// Absolute.
    pub socket: &'a Path,
    /// Bytes.
    pub limit: u64,
    /// Bytes.
    pub min_mapping: u64,
    pub strict: bool,
}

/// The variables set in (`Some`) or removed from (`None`) the program's environment:
/// `LD_PRELOAD` (the library before `ld_preload`, the one already set, unless that holds it
/// already), `SWAPKIT_SOCKET`, `SWAPKIT_LIMIT` and `SWAPKIT_MIN_MAPPING` (bytes), and
/// `SWAPKIT_STRICT=1` with `--strict` (removed without, so a variable left in the shell does
/// not decide).
pub fn environment(
    s: &Settings<'_>,
    ld_preload: Option<&OsStr>,
) -> Vec<(&'static str, Option<OsString>)> {
    let lib = s.library.as_os_str();
    let preload = match ld_preload.filter(|p| !p.is_empty()) {
        Some(old)
            if old
                .as_bytes()
                .split(|b| *b == b':' || *b == b' ')
                .any(|e| e == lib.as_bytes()) =>
        {
            old.to_owned()
        }
        Some(old) => {
            let mut v = lib.to_owned();
            v.push(":");
            v.push(old);
            v
        }
        None => lib.to_owned(),
    };
    vec![
        ("LD_PRELOAD", Some(preload)),
        ("SWAPKIT_SOCKET", Some(s.socket.as_os_str().to_owned())),
        ("SWAPKIT_LIMIT", Some(s.limit.to_string().into())),
        (
            "SWAPKIT_MIN_MAPPING",
            Some(s.min_mapping.to_string().into()),
        ),
        ("SWAPKIT_STRICT", s.strict.then(|| "1".into())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(library: &'a Path, strict: bool) -> Settings<'a> {
        Settings {
            library,
            socket: Path::new("/run/swapkit/swapctl.sock"),
            limit: 1 << 30,
            min_mapping: 1 << 20,
            strict,
        }
    }

    fn value(env: &[(&'static str, Option<OsString>)], name: &str) -> Option<String> {
        env.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_ref().map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn the_library_goes_first_in_ld_preload_and_the_settings_in_bytes() {
        let lib = Path::new("/opt/swapkit/libswapkit_preload.so");
        let env = environment(&settings(lib, false), None);
        assert_eq!(value(&env, "LD_PRELOAD").unwrap(), lib.to_str().unwrap());
        assert_eq!(value(&env, "SWAPKIT_LIMIT").unwrap(), "1073741824");
        assert_eq!(value(&env, "SWAPKIT_MIN_MAPPING").unwrap(), "1048576");
        assert_eq!(
            value(&env, "SWAPKIT_SOCKET").unwrap(),
            "/run/swapkit/swapctl.sock"
        );
        // Without --strict the variable is removed, not left as the shell had it.
        assert!(
            env.iter()
                .any(|(n, v)| *n == "SWAPKIT_STRICT" && v.is_none())
        );
        let env = environment(&settings(lib, true), Some(OsStr::new("/usr/lib/libfoo.so")));
        assert_eq!(
            value(&env, "LD_PRELOAD").unwrap(),
            "/opt/swapkit/libswapkit_preload.so:/usr/lib/libfoo.so"
        );
        assert_eq!(value(&env, "SWAPKIT_STRICT").unwrap(), "1");
        let twice = "/usr/lib/libfoo.so /opt/swapkit/libswapkit_preload.so";
        let env = environment(&settings(lib, false), Some(OsStr::new(twice)));
        assert_eq!(value(&env, "LD_PRELOAD").unwrap(), twice, "already there");
    }

    #[test]
    fn the_library_is_looked_for_in_the_env_then_beside_swapctl_then_in_lib() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let lib = dir.path().join("lib/swapkit");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        let err = find_preload(None, Some(&bin)).unwrap_err();
        assert!(
            err.contains(&bin.join(PRELOAD_NAME).display().to_string())
                && err.contains("cargo build -p preload"),
            "{err}"
        );
        std::fs::write(lib.join(PRELOAD_NAME), b"").unwrap();
        let found = find_preload(None, Some(&bin)).unwrap();
        assert_eq!(
            found,
            std::fs::canonicalize(lib.join(PRELOAD_NAME)).unwrap()
        );
        std::fs::write(bin.join(PRELOAD_NAME), b"").unwrap();
        assert_eq!(
            find_preload(None, Some(&bin)).unwrap(),
            std::fs::canonicalize(bin.join(PRELOAD_NAME)).unwrap()
        );
        // The variable wins, and must name a file.
        let other = dir.path().join("other.so");
        std::fs::write(&other, b"").unwrap();
        assert_eq!(
            find_preload(Some(other.clone().into()), Some(&bin)).unwrap(),
            other
        );
        let err = find_preload(Some(dir.path().join("nope.so").into()), Some(&bin)).unwrap_err();
        assert!(
            err.contains("nope.so") && err.contains("SWAPKIT_PRELOAD"),
            "{err}"
        );
        let spaced = dir.path().join("a b.so");
        std::fs::write(&spaced, b"").unwrap();
        assert!(
            find_preload(Some(spaced.into()), None)
                .unwrap_err()
                .contains("space")
        );
    }
}
