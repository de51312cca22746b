//! What every session shares: the backend, the config as last loaded, the registry of the
//! objects served (with the per-uid counts), the runs, the cached `stats` snapshots, shutdown.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use pager::PagerStats;

use super::Shutdown;
use super::backend::Backend;
use super::limits::Limits;
use super::registry::Registry;
use super::runs::Runs;
use crate::config::Config;

/// A snapshot and when it was taken.
type CachedStats = (Instant, Arc<PagerStats>);

/// What every session shares.
pub struct Shared {
    pub backend: Arc<dyn Backend>,
    /// The config file as last (re)loaded: devices and limits. SIGHUP swaps it.
    pub config: RwLock<Arc<Config>>,
    /// The objects served and the per-uid counts: the one registry.
    pub registry: Arc<Registry>,
    /// The programs running on the swap space (`swapctl run`): connections that reported.
    pub runs: Runs,
    /// The daemon's effective uid: it may run privileged requests, as root may.
    pub daemon_uid: u32,
    /// The last `stats` snapshot without and with fragmentation, shared by non-root
    /// monitors for `stats_max_age_ms`.
    stats_cache: Mutex<[Option<CachedStats>; 2]>,
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("daemon_uid", &self.daemon_uid)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(backend: Arc<dyn Backend>, config: Config, daemon_uid: u32) -> Shared {
        Shared {
            backend,
            config: RwLock::new(Arc::new(config)),
            registry: Arc::default(),
            runs: Runs::default(),
            daemon_uid,
            stats_cache: Mutex::new([None, None]),
            shutdown: Shutdown::default(),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read())
    }

    pub fn limits(&self) -> Limits {
        self.config.read().limits.clone()
    }

    /// Root and the daemon's own user: privileged, and exempt from the connection quota
    /// and from pacing.
    pub fn is_admin(&self, uid: u32) -> bool {
        uid == 0 || uid == self.daemon_uid
    }

    /// A fresh snapshot for an admin; for anyone else one at most `stats_max_age_ms` old,
    /// so any number of monitors take the pager's locks at most once per period.
    /// With `frag`, the snapshot carries each device's fragmentation (cached apart).
    pub(super) fn stats(&self, uid: u32, frag: bool) -> Arc<PagerStats> {
        let fetch = || {
            if frag {
                self.backend.stats_with_frag()
            } else {
                self.backend.stats()
            }
        };
        let max_age = self.limits().stats_max_age();
        if !self.is_admin(uid) {
            let mut cache = self.stats_cache.lock();
            let slot = &mut cache[usize::from(frag)];
            if let Some((at, s)) = slot.as_ref()
                && at.elapsed() <= max_age
            {
                return Arc::clone(s);
            }
            let s = Arc::new(fetch());
            *slot = Some((Instant::now(), Arc::clone(&s)));
            return s;
        }
        Arc::new(fetch())
    }

    /// Forget the cached snapshot: a device came or went, or a tunable changed.
    pub(super) fn stats_changed(&self) {
        *self.stats_cache.lock() = [None, None];
    }
}
