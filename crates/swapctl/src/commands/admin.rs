//! The commands that talk to a running daemon: on, off, list, summary, status, frag, set, top.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pager::DeviceState;

use crate::cli::{
    DiscardPolicy, FragArgs, ListArgs, OffArgs, OnArgs, ScriptArgs, SetArgs, StatusArgs,
    SummaryArgs, TopArgs, UnitArgs,
};
use crate::format::{self, ListOptions, ShowColumn};
use crate::output::exit;
use crate::output::{CliError, print};
use crate::units::SizeUnit;
use control::client::{Client, ClientError};

pub(super) fn unit(u: &UnitArgs) -> SizeUnit {
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

pub(super) fn connect(socket: &Path, cmd: &'static str) -> Result<Client, CliError> {
    Client::connect(socket).map_err(daemon_err(cmd))
}

/// A failed call of command `cmd` as one line: `swapctl: list: the daemon at PATH did not
/// answer within 5 s`. Connection failures say what they say without the command.
pub(super) fn daemon_err(cmd: &'static str) -> impl Fn(ClientError) -> CliError {
    move |e| match e {
        ClientError::Connect { .. } | ClientError::Permission { .. } => CliError::from(e),
        e => {
            let code = exit::of_client(&e);
            CliError::new(cmd, e).with_code(code)
        }
    }
}

/// Whether a device exists, for `--ifexists`: an NBD URI is taken to (the swapon says).
fn exists(p: &Path) -> bool {
    device::nbd::is_uri(p) || p.exists()
}

/// The daemon needs absolute paths (an NBD URI stays as it is): it does not share our
/// working directory. A path that
/// is not valid UTF-8 cannot cross the protocol (JSON strings): refused by name, as a usage
/// error, rather than reported as "no such file" later.
fn absolute(p: &Path) -> Result<String, CliError> {
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    abs.to_str().map(str::to_owned).ok_or_else(|| {
        CliError::usage(
            p.to_string_lossy(),
            "the path is not valid UTF-8 (rename it, or use a symlink with a UTF-8 name)",
        )
    })
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

/// What `on` does, from `swapctl on` or `swapctl -a/-A`.
pub(super) struct OnPlan<'a> {
    pub socket: &'a Path,
    pub devices: &'a [PathBuf],
    pub all: bool,
    pub priority: Option<i32>,
    pub discard: bool,
    pub ifexists: bool,
    pub verbose: bool,
}

pub fn on(a: &OnArgs) -> Result<i32, CliError> {
    if a.summary {
        let stats = connect(&a.socket.socket, "on")?
            .stats()
            .map_err(daemon_err("on"))?;
        print(&format::proc_swaps(&stats));
        return Ok(0);
    }
    if a.devices.is_empty() && !a.all {
        // Bare `swapon` shows the table, as `swapon --show` does.
        let cols = a.show.as_deref().unwrap_or("NAME,TYPE,SIZE,USED,PRIO");
        let unit = if a.bytes {
            SizeUnit::Bytes
        } else {
            SizeUnit::Human
        };
        return show(&a.socket.socket, "on", cols, &a.script, unit);
    }
    if a.discard == Some(DiscardPolicy::Pages) {
        return Err(CliError::usage(
            "on --discard=pages",
            "not supported: swapkit discards a whole area once, at swapon (--discard or --discard=once)",
        ));
    }
    on_devices(&OnPlan {
        socket: &a.socket.socket,
        devices: &a.devices,
        all: a.all,
        priority: a.priority,
        discard: a.discard.is_some(),
        ifexists: a.ifexists,
        verbose: a.verbose,
    })
}

pub(super) fn on_devices(p: &OnPlan<'_>) -> Result<i32, CliError> {
    let mut targets: Vec<String> = Vec::new();
    for d in p.devices {
        if p.ifexists && !device::nbd::is_uri(d) && std::fs::symlink_metadata(d).is_err() {
            continue;
        }
        targets.push(absolute(d)?);
    }
    let mut c = connect(p.socket, "on")?;
    if p.all {
        let on: Vec<String> = c
            .stats()
            .map_err(daemon_err("on"))?
            .devices
            .into_iter()
            .map(|d| d.path)
            .collect();
        targets = c
            .config()
            .map_err(daemon_err("on"))?
            .into_iter()
            .filter(|d| !d.noauto && !on.contains(&d.path))
            .filter(|d| !p.ifexists || exists(Path::new(&d.path)))
            .map(|d| d.path)
            .collect();
    }
    let (mut bits, mut failed) = (0, 0);
    for path in &targets {
        if p.verbose {
            print(&format!("swapon {path}\n"));
        }
        if let Err(e) = c.swapon(path, p.priority, p.discard) {
            eprintln!("swapctl: {path}: swapon failed: {}", without_path(path, &e));
            bits |= exit::of_client(&e);
            failed += 1;
        }
    }
    Ok(exit::combine(bits, failed, targets.len(), p.all))
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
    off_forced(
        &a.socket.socket,
        &a.devices,
        a.all,
        (a.quiet, a.verbose),
        a.force,
    )
}

pub(super) fn off_devices(
    socket: &Path,
    devices: &[PathBuf],
    all: bool,
    quiet: bool,
    verbose: bool,
) -> Result<i32, CliError> {
    off_forced(socket, devices, all, (quiet, verbose), false)
}

/// `off`; with `force`, a failed device is removed too and its pages reported lost (all
/// it held: a failed device's pages cannot be read).
fn off_forced(
    socket: &Path,
    devices: &[PathBuf],
    all: bool,
    (quiet, verbose): (bool, bool),
    force: bool,
) -> Result<i32, CliError> {
    let targets_given = devices
        .iter()
        .map(|d| absolute(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut c = connect(socket, "off")?;
    let stats = c.stats().map_err(daemon_err("off"))?;
    let targets: Vec<String> = if all {
        stats.devices.iter().map(|d| d.path.clone()).collect()
    } else {
        targets_given
    };
    let bar = !quiet && std::io::stderr().is_terminal();
    let (mut bits, mut failed) = (0, 0);
    for path in &targets {
        if verbose {
            print(&format!("swapoff {path}\n"));
        }
        let done = Arc::new(AtomicBool::new(false));
        let shower = bar.then(|| progress(socket.to_owned(), path.clone(), Arc::clone(&done)));
        let result = c.swapoff_report(path, force);
        done.store(true, Ordering::Relaxed);
        match &result {
            Ok((lost @ 1.., Some(why))) => {
                let why = why.strip_prefix(&format!("{path}: ")).unwrap_or(why);
                print(&format!("{path}: {lost} pages lost: {why}\n"))
            }
            Ok((lost @ 1.., None)) => print(&format!("{path}: {lost} pages lost\n")),
            _ => {}
        }
        let result = result.map(|(lost, _)| lost);
        if let Some(t) = shower {
            let _ = t.join();
        }
        if let Err(e) = result {
            eprintln!(
                "swapctl: {path}: swapoff failed: {}",
                without_path(path, &e)
            );
            bits |= exit::of_client(&e);
            failed += 1;
        }
    }
    Ok(exit::combine(bits, failed, targets.len(), all))
}

/// `swapon --show[=COLS]` for `on` and `list`: nothing at all when no device is on, as
/// swapon prints it; with `--json` only the columns asked for.
fn show(
    socket: &Path,
    cmd: &'static str,
    cols: &str,
    script: &ScriptArgs,
    unit: SizeUnit,
) -> Result<i32, CliError> {
    let cols = ShowColumn::parse_list(cols).map_err(|e| CliError::usage("--show", e))?;
    let stats = connect(socket, cmd)?.stats().map_err(daemon_err(cmd))?;
    if stats.devices.is_empty() {
        return Ok(0);
    }
    let opts = ListOptions {
        unit,
        noheadings: script.noheadings,
        raw: script.raw,
    };
    let text = if script.json {
        format::list_show_json(&stats, &cols, unit == SizeUnit::Bytes)
    } else {
        format::list_show(&stats, &cols, &opts)
    };
    print(&text);
    Ok(0)
}

pub fn list(a: &ListArgs) -> Result<i32, CliError> {
    if let Some(cols) = &a.show {
        let u = match unit(&a.unit) {
            SizeUnit::Kilo => SizeUnit::Human,
            u => u,
        };
        return show(&a.socket.socket, "list", cols, &a.script, u);
    }
    let stats = connect(&a.socket.socket, "list")?
        .stats()
        .map_err(daemon_err("list"))?;
    let opts = ListOptions {
        unit: unit(&a.unit),
        noheadings: a.script.noheadings,
        raw: a.script.raw,
    };
    let text = if a.script.json {
        format::list_json(&stats)
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
    if a.json {
        print(&format::pretty(&format::total_json(&stats)));
    } else {
        print(&format::bsd_total(&stats, unit(&a.unit)));
    }
    Ok(0)
}

/// `status`: the snapshot in words, then each uid's usage and the programs running on the
/// swap space (`swapctl run`) when there are any; `--json` the same as one object.
pub fn status(a: &StatusArgs) -> Result<i32, CliError> {
    // With --json, the full snapshot: with each device's fragmentation, which the plain one
    // leaves empty (it must stay cheap for monitors).
    let snap = connect(&a.socket.socket, "status")?
        .snapshot(a.json)
        .map_err(daemon_err("status"))?;
    if a.json {
        // The snapshot as before, with the per-uid usage and the processes beside it when
        // there are any.
        fn json(v: &impl serde::Serialize) -> Result<serde_json::Value, CliError> {
            serde_json::to_value(v).map_err(|e| CliError::new("status", e))
        }
        let mut value = json(&snap.stats)?;
        if let Some(map) = value.as_object_mut() {
            if !snap.uids.is_empty() {
                map.insert("uids".into(), json(&snap.uids)?);
            }
            if !snap.processes.is_empty() {
                map.insert("processes".into(), json(&snap.processes)?);
            }
        }
        let text = serde_json::to_string_pretty(&value).map_err(|e| CliError::new("status", e))?;
        print(&(text + "\n"));
    } else {
        let page_size = snap.stats.page_size.max(1);
        print(
            &(format::status(&snap.stats)
                + &format::usage(&snap.uids)
                + &format::processes(&snap.processes, page_size, format::user_name)),
        );
    }
    Ok(0)
}

pub fn frag(a: &FragArgs) -> Result<i32, CliError> {
    let only = a.device.as_deref().map(absolute).transpose()?;
    let stats = connect(&a.socket.socket, "frag")?
        .stats_with_frag()
        .map_err(daemon_err("frag"))?;
    let text = if a.json {
        format::frag_json(&stats, only.as_deref())
    } else {
        format::frag(&stats, only.as_deref())
    };
    match text {
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
    let v = c.set("swap_async_max", a.value).map_err(|e| {
        let code = exit::of_client(&e);
        CliError::new("set swap_async_max", e).with_code(code)
    })?;
    if v == a.value {
        print(&format!("swap_async_max: {v}\n"));
    } else {
        print(&format!(
            "swap_async_max: clamped to {v} (asked for {}; it must be 1..=nswbuf/2)\n",
            a.value
        ));
    }
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
        return Err(CliError::usage(
            "top",
            "-d needs a positive number of seconds",
        ));
    }
    let source = crate::top::DaemonSource::new(&a.socket.socket);
    let opts = crate::top::TopOptions {
        interval: Duration::from_secs_f64(a.delay.clamp(0.1, 60.0)),
        source: a.socket.socket.display().to_string(),
        ..Default::default()
    };
    crate::top::run(source, opts).map_err(|e| CliError::new("top", e))?;
    Ok(0)
}
