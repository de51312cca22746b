//! The commands that talk to a running daemon: on, off, list, summary, status, frag, set, top.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pager::DeviceState;

use super::{CliError, print};
use crate::cli::{
    FragArgs, ListArgs, OffArgs, OnArgs, SetArgs, StatusArgs, SummaryArgs, TopArgs, UnitArgs,
};
use crate::client::{Client, ClientError};
use crate::format::{self, ListOptions, ShowColumn};
use crate::proto::ErrorKind;
use crate::units::SizeUnit;

/// util-linux swapoff's exit status bits.
pub const EX_FAILURE: i32 = 4;
pub const EX_SYSERR: i32 = 8;
pub const EX_USAGE: i32 = 16;
pub const EX_ALLERR: i32 = 32;
pub const EX_SOMEOK: i32 = 64;

fn unit(u: &UnitArgs) -> SizeUnit {
    if u.human {
        SizeUnit::Human
    } else if u.mega {
        SizeUnit::Mega
    } else if u.giga {
        SizeUnit::Giga
    } else if u.bytes {
        SizeUnit::Bytes
    } else {
        SizeUnit::Kilo
    }
}

fn connect(socket: &Path, cmd: &'static str) -> Result<Client, CliError> {
    Client::connect(socket).map_err(daemon_err(cmd))
}

/// A failed call of command `cmd` as one line: `swapctl: list: the daemon at PATH did not
/// answer within 5 s`. Connection failures say what they say without the command.
fn daemon_err(cmd: &'static str) -> impl Fn(ClientError) -> CliError {
    move |e| match e {
        ClientError::Connect { .. } | ClientError::Permission { .. } => CliError::from(e),
        e => CliError::new(cmd, e),
    }
}

/// The daemon needs absolute paths: it does not share our working directory.
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned())
}

/// The exit bit for one device's failure, as util-linux swapoff classifies it.
fn failure_bits(e: &ClientError) -> i32 {
    match e.kind() {
        Some(ErrorKind::Permission) => EX_USAGE,
        Some(_) => EX_FAILURE,
        None => EX_SYSERR,
    }
}

/// The daemon's message without a leading `PATH: ` we already print.
fn without_path(path: &str, e: &ClientError) -> String {
    let m = e.to_string();
    let m = m.strip_prefix("swapoff ").unwrap_or(&m);
    m.strip_prefix(path)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(m)
        .to_owned()
}

/// Combine per-device results; with `all`, add "all failed" or "some failed" as swapoff -a does.
fn exit_status(bits: i32, failed: usize, total: usize, all: bool) -> i32 {
    let mut s = bits;
    if all && failed > 0 {
        s |= if failed == total {
            EX_ALLERR
        } else {
            EX_SOMEOK
        };
    }
    s
}

pub fn on(a: &OnArgs) -> Result<i32, CliError> {
    let mut c = connect(&a.socket.socket, "on")?;
    let targets: Vec<(String, Option<i32>)> = if a.all {
        let on: Vec<String> = c
            .stats()
            .map_err(daemon_err("on"))?
            .devices
            .into_iter()
            .map(|d| d.path)
            .collect();
        c.config()
            .map_err(daemon_err("on"))?
            .into_iter()
            .filter(|d| !d.noauto && !on.contains(&d.path))
            .map(|d| (d.path, a.priority))
            .collect()
    } else {
        a.devices
            .iter()
            .map(|d| (absolute(d).display().to_string(), a.priority))
            .collect()
    };
    let (mut bits, mut failed) = (0, 0);
    for (path, prio) in &targets {
        if let Err(e) = c.swapon(path, *prio, a.discard) {
            eprintln!("swapctl: {path}: swapon failed: {}", without_path(path, &e));
            bits |= failure_bits(&e);
            failed += 1;
        }
    }
    Ok(exit_status(bits, failed, targets.len(), a.all))
}

/// Show a bar on stderr while `path` drains, from a second connection's stats.
fn progress(socket: PathBuf, path: String, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut c) = Client::connect(&socket) else {
            return;
        };
        let mut shown = false;
        while !done.load(Ordering::Relaxed) {
            if let Ok(s) = c.stats()
                && let Some(DeviceState::Draining { moved, total }) =
                    s.devices.iter().find(|d| d.path == path).map(|d| d.state)
            {
                let width = 30u64;
                let fill = (moved * width)
                    .checked_div(total)
                    .unwrap_or(width)
                    .min(width);
                eprint!(
                    "\r{path}: moving pages [{}{}] {moved}/{total}",
                    "#".repeat(fill as usize),
                    " ".repeat((width - fill) as usize)
                );
                shown = true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if shown {
            eprint!("\r\x1b[2K");
        }
    })
}

pub fn off(a: &OffArgs) -> Result<i32, CliError> {
    let mut c = match Client::connect(&a.socket.socket) {
        Ok(c) => c,
        Err(e) => return Err(daemon_err("off")(e).with_code(EX_SYSERR)),
    };
    let stats = c
        .stats()
        .map_err(|e| daemon_err("off")(e).with_code(EX_SYSERR))?;
    let targets: Vec<String> = if a.all {
        stats.devices.iter().map(|d| d.path.clone()).collect()
    } else {
        a.devices
            .iter()
            .map(|d| absolute(d).display().to_string())
            .collect()
    };
    let bar = !a.quiet && std::io::stderr().is_terminal();
    let (mut bits, mut failed) = (0, 0);
    for path in &targets {
        let done = Arc::new(AtomicBool::new(false));
        let shower =
            bar.then(|| progress(a.socket.socket.clone(), path.clone(), Arc::clone(&done)));
        let result = c.swapoff(path);
        done.store(true, Ordering::Relaxed);
        if let Some(t) = shower {
            let _ = t.join();
        }
        if let Err(e) = result {
            eprintln!(
                "swapctl: {path}: swapoff failed: {}",
                without_path(path, &e)
            );
            bits |= failure_bits(&e);
            failed += 1;
        }
    }
    Ok(exit_status(bits, failed, targets.len(), a.all))
}

pub fn list(a: &ListArgs) -> Result<i32, CliError> {
    let stats = connect(&a.socket.socket, "list")?
        .stats()
        .map_err(daemon_err("list"))?;
    let opts = ListOptions {
        unit: unit(&a.unit),
        noheadings: a.noheadings,
        raw: a.raw,
    };
    let text = if a.json {
        format::list_json(&stats)
    } else if let Some(cols) = &a.show {
        let cols = ShowColumn::parse_list(cols).map_err(|e| CliError::new("list --show", e))?;
        format::list_show(&stats, &cols, &opts)
    } else {
        format::list_table(&stats, &opts)
    };
    print(&text);
    Ok(0)
}

pub fn summary(a: &SummaryArgs) -> Result<i32, CliError> {
    let stats = connect(&a.socket.socket, "summary")?
        .stats()
        .map_err(daemon_err("summary"))?;
    print(&format::summary(&stats, unit(&a.unit)));
    Ok(0)
}

pub fn status(a: &StatusArgs) -> Result<i32, CliError> {
    let (stats, uids) = connect(&a.socket.socket, "status")?
        .stats_and_usage()
        .map_err(daemon_err("status"))?;
    if a.json {
        // The snapshot as before, with the per-uid usage beside it when there is any.
        let mut value = serde_json::to_value(&stats).map_err(|e| CliError::new("status", e))?;
        if !uids.is_empty()
            && let Some(map) = value.as_object_mut()
        {
            let u = serde_json::to_value(&uids).map_err(|e| CliError::new("status", e))?;
            map.insert("uids".into(), u);
        }
        let text = serde_json::to_string_pretty(&value).map_err(|e| CliError::new("status", e))?;
        print(&(text + "\n"));
    } else {
        print(&(format::status(&stats) + &format::usage(&uids)));
    }
    Ok(0)
}

pub fn frag(a: &FragArgs) -> Result<i32, CliError> {
    let stats = connect(&a.socket.socket, "frag")?
        .stats_with_frag()
        .map_err(daemon_err("frag"))?;
    let only = a
        .device
        .as_deref()
        .map(|d| absolute(d).display().to_string());
    match format::frag(&stats, only.as_deref()) {
        Some(text) => {
            print(&text);
            Ok(0)
        }
        None => Err(CliError::new(
            only.unwrap_or_default(),
            "not a swap device that is on",
        )),
    }
}

pub fn set(a: &SetArgs) -> Result<i32, CliError> {
    let mut c = connect(&a.socket.socket, "set")?;
    let v = c
        .set("swap_async_max", a.value)
        .map_err(|e| CliError::new("set swap_async_max", e))?;
    print(&format!("swap_async_max: {v}\n"));
    Ok(0)
}

pub fn top(a: &TopArgs) -> Result<i32, CliError> {
    if !std::io::stdout().is_terminal() {
        return Err(CliError::new(
            "top",
            "stdout is not a terminal (try `swapctl status --json`)",
        ));
    }
    if !a.delay.is_finite() || a.delay <= 0.0 {
        return Err(CliError::new(
            "top",
            "-d needs a positive number of seconds",
        ));
    }
    let source = crate::client::DaemonSource::new(&a.socket.socket);
    let opts = crate::top::TopOptions {
        interval: Duration::from_secs_f64(a.delay.clamp(0.1, 60.0)),
        source: a.socket.socket.display().to_string(),
        ..Default::default()
    };
    crate::top::run(source, opts).map_err(|e| CliError::new("top", e))?;
    Ok(0)
}
