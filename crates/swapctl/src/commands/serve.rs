//! `swapctl daemon`: resolve settings (flags over config file over defaults), bind the
//! socket, start the pager, serve until SIGTERM/SIGINT (SIGHUP reloads the config file).

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{DEFAULT_CONFIG, DEFAULT_SOCKET, DaemonArgs};
use crate::output::CliError;
use control::config::Config;
use control::daemon::log::{self, Level};
use control::daemon::pager_backend::{PagerBackend, PagerSettings};
use control::daemon::{Daemon, DaemonOptions, Shutdown, handle_signals};

pub fn daemon(a: DaemonArgs) -> Result<i32, CliError> {
    let (path, must_exist) = match &a.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    // One line `swapctl: config: FILE: line L, column C: what`, then toml's excerpt with
    // its caret, whose column only holds when printed as toml drew it.
    let config = Config::load(&path, must_exist).map_err(|e| match e.detail() {
        Some(detail) => CliError::new("config", format!("{e}\n{detail}")),
        None => CliError::new("config", e),
    })?;
    let d = &config.daemon;
    let level = match &a.log_level {
        Some(l) => Level::parse(l).map_err(|e| CliError::new("--log-level", e))?,
        None => d.log_level.unwrap_or(Level::Info),
    };
    log::set_level(level);
    let socket = a
        .socket
        .clone()
        .or(d.socket.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let settings = PagerSettings {
        interleave: a.interleave.or(d.interleave),
        nswbuf: a.nswbuf.or(d.nswbuf),
        swap_async_max: a.async_max.or(d.swap_async_max),
        engine: d.engine,
        checksum: d.checksum,
        max_area_bytes: d.max_area.map(|s| s.0),
    };
    let shutdown = Shutdown::default();
    let bound = Daemon::bind(DaemonOptions {
        socket: socket.clone(),
        socket_group: a.socket_group.clone().or(d.socket_group.clone()),
        config: config.clone(),
        config_path: Some((path, must_exist)),
        log_level_flag: a.log_level.is_some(),
        auto_on: !a.no_auto,
    })
    .map_err(|e| CliError::new("daemon", e))?;
    // Handlers go in right after the bind: from then on no signal but SIGKILL leaves the
    // socket file behind.
    if let Err(e) = handle_signals(shutdown.clone(), bound.reload_flag(), &socket) {
        let _ = std::fs::remove_file(&socket);
        return Err(CliError::new("signals", e));
    }
    let backend = match PagerBackend::start(&settings) {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(CliError::new("pager", e));
        }
    };
    bound
        .serve(Arc::new(backend), shutdown)
        .map_err(|e| CliError::new("daemon", e))?;
    Ok(0)
}
