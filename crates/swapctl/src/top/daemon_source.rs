//! `top`'s source over the control socket: a [`control::client::Client`] that reconnects.

use std::path::{Path, PathBuf};

use control::client::{Client, ClientError};
use control::proto::ProcessUsage;
use pager::PagerStats;

use super::StatsSource;

/// `swapctl top`'s source: a client that reconnects when the daemon restarts, so the TUI
/// shows the error and recovers instead of exiting.
#[derive(Debug)]
pub struct DaemonSource {
    socket: PathBuf,
    client: Option<Client>,
}

impl DaemonSource {
    pub fn new(socket: &Path) -> DaemonSource {
        DaemonSource {
            socket: socket.to_owned(),
            client: None,
        }
    }

    fn with<T>(&mut self, f: impl Fn(&mut Client) -> Result<T, ClientError>) -> Result<T, String> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.socket).map_err(|e| e.to_string())?);
        }
        let Some(c) = self.client.as_mut() else {
            return Err("not connected".into());
        };
        match f(c) {
            Ok(v) => Ok(v),
            // The daemon answered: the connection is fine.
            Err(e @ ClientError::Daemon { .. }) => Err(e.to_string()),
            Err(e) => {
                self.client = None;
                Err(e.to_string())
            }
        }
    }
}

impl StatsSource for DaemonSource {
    /// With fragmentation: the TUI shows it in its own panel.
    fn fetch(&mut self) -> Result<PagerStats, String> {
        self.with(Client::stats_with_frag)
    }

    /// The same, with the programs running on the swap space, in one request.
    fn fetch_with_processes(&mut self) -> Result<(PagerStats, Vec<ProcessUsage>), String> {
        self.with(|c| c.snapshot(true).map(|s| (s.stats, s.processes)))
    }

    fn set_swap_async_max(&mut self, n: u64) -> Result<u64, String> {
        self.with(|c| c.set("swap_async_max", n))
    }
}
