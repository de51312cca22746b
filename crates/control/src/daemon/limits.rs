//! What one peer may cost the daemon: time limits per connection, quotas per uid and the pace
//! of control requests. The config file's `[limits]` table; every field has a default, and
//! SIGHUP re-reads them (a new limit applies to the next request, not to one in progress).
//!
//! Root (and the daemon's own uid) is exempt from the connection quota and from pacing, so an
//! admin can always get in and look; the other quotas apply to everyone, since they only
//! bound what one uid may keep.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Once the first byte of a frame arrived, the whole frame must arrive within this.
    pub read_timeout_ms: u64,
    /// A connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// A reply that cannot be written within this drops the client (the whole reply, not
    /// each `write`).
    pub write_timeout_ms: u64,
    /// Connections open at once per non-root uid.
    pub max_connections_per_uid: u32,
    /// Connections open at once in all (root is let in past it).
    pub max_connections: u32,
    /// Named objects per uid (they outlive connections).
    pub max_objects_per_uid: u32,
    /// Longest handle of a named object, in bytes.
    pub max_handle_len: u32,
    /// Swap pages in use per uid, like cgroup `memory.swap.max`; none means unlimited.
    pub max_swap_pages_per_uid: Option<u64>,
    /// Control requests (all but page transfers) per second per non-root uid.
    pub control_rate: f64,
    /// Control requests a non-root uid may send at once before pacing starts.
    pub control_burst: u32,
    /// How old a `stats` snapshot served to a non-root uid may be, in milliseconds: a
    /// snapshot takes the pager's locks, so monitors share one per period.
    pub stats_max_age_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            write_timeout_ms: 30_000,
            max_connections_per_uid: 64,
            max_connections: 1024,
            max_objects_per_uid: 4096,
            max_handle_len: 256,
            max_swap_pages_per_uid: None,
            control_rate: 50.0,
            control_burst: 100,
            stats_max_age_ms: 100,
        }
    }
}

impl Limits {
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms.max(1))
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(1))
    }
    pub fn stats_max_age(&self) -> Duration {
        Duration::from_millis(self.stats_max_age_ms)
    }

    /// The fields that differ from `old`, as `name old -> new` for the reload log line.
    pub fn changes(&self, old: &Limits) -> Vec<String> {
        let (a, b) = match (toml::Table::try_from(old), toml::Table::try_from(self)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Vec::new(),
        };
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                let show =
                    |v: Option<&toml::Value>| v.map_or("unlimited".into(), |v| v.to_string());
                format!("{k} {} -> {}", show(a.get(k)), show(b.get(k)))
            })
            .collect()
    }
}
