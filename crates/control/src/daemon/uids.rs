//! Per-uid accounting: connections, objects and swap pages held or reserved against the
//! quotas of [`Limits`], and the token bucket that paces each uid's control requests.
//!
//! Invariants: a count goes up only after its check passed under the same lock, so two
//! connections of one uid racing cannot both take the last slot; every increment has exactly
//! one decrement (connection end, object destroy or release), so counts never drift; an entry
//! whose counts are all zero is removed, so the table is bounded by live holders.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::limits::Limits;
use crate::proto::UidUsage;

#[derive(Debug, Clone, Copy)]
struct Usage {
    connections: u32,
    objects: u32,
    pages: u64,
    /// The token bucket: tokens left (negative: requests already promised a later slot)
    /// at `refilled`.
    tokens: f64,
    refilled: Instant,
}

impl Usage {
    fn new(limits: &Limits) -> Usage {
        Usage {
            connections: 0,
            objects: 0,
            pages: 0,
            tokens: f64::from(limits.control_burst),
            refilled: Instant::now(),
        }
    }

    /// Whether the entry can go: nothing held, and the bucket full again (so dropping it
    /// forgets no debt).
    fn idle(&self, limits: &Limits) -> bool {
        self.connections == 0
            && self.objects == 0
            && self.pages == 0
            && self.tokens + self.refilled.elapsed().as_secs_f64() * limits.control_rate
                >= f64::from(limits.control_burst)
    }
}

#[derive(Debug, Default)]
pub struct Uids {
    map: Mutex<HashMap<u32, Usage>>,
}

impl Uids {
    fn with<T>(&self, uid: u32, limits: &Limits, f: impl FnOnce(&mut Usage) -> T) -> T {
        let mut map = self.map.lock();
        let u = map.entry(uid).or_insert_with(|| Usage::new(limits));
        let out = f(u);
        if u.idle(limits) {
            map.remove(&uid);
        }
        out
    }

    /// Count a new connection of `uid` unless it is over its quota (`exempt`: root).
    pub fn connect(&self, uid: u32, exempt: bool, limits: &Limits) -> Result<(), String> {
        self.with(uid, limits, |u| {
            if !exempt && u.connections >= limits.max_connections_per_uid {
                return Err(format!(
                    "too many connections for uid {uid} ({} open, max_connections_per_uid)",
                    u.connections
                ));
            }
            u.connections += 1;
            Ok(())
        })
    }

    pub fn disconnect(&self, uid: u32, limits: &Limits) {
        self.with(uid, limits, |u| {
            u.connections = u.connections.saturating_sub(1)
        });
    }

    /// Count a new object of `uid` unless it holds `max_objects_per_uid` already.
    pub fn add_object(&self, uid: u32, limits: &Limits) -> Result<(), String> {
        self.with(uid, limits, |u| {
            if u.objects >= limits.max_objects_per_uid {
                return Err(format!(
                    "uid {uid} holds {} objects already (max_objects_per_uid)",
                    u.objects
                ));
            }
            u.objects += 1;
            Ok(())
        })
    }

    /// Forget one object of `uid` that held `pages` swap pages.
    pub fn remove_object(&self, uid: u32, pages: u64, limits: &Limits) {
        self.with(uid, limits, |u| {
            u.objects = u.objects.saturating_sub(1);
            u.pages = u.pages.saturating_sub(pages);
        });
    }

    /// Reserves up to `n` swap pages for a put by `uid`: as many as its
    /// `max_swap_pages_per_uid` still allows (all `n` without one), checked and counted
    /// under one hold of the lock, so racing puts of one uid cannot both take the last
    /// pages. Returns how many; give them back with `pages_changed(uid, reserved, 0, ..)`.
    pub fn reserve_pages(&self, uid: u32, n: u64, limits: &Limits) -> u64 {
        self.with(uid, limits, |u| {
            let allowed = match limits.max_swap_pages_per_uid {
                None => n,
                Some(max) => max.saturating_sub(u.pages).min(n),
            };
            u.pages += allowed;
            allowed
        })
    }

    /// An object of `uid` went from `before` to `after` swap pages.
    pub fn pages_changed(&self, uid: u32, before: u64, after: u64, limits: &Limits) {
        if before == after {
            return;
        }
        self.with(uid, limits, |u| {
            u.pages = (u.pages + after).saturating_sub(before);
        });
    }

    /// Take one control-request token of `uid`; returns how long the request must wait for
    /// it (zero within the burst). A request that must wait still takes its token now, so
    /// concurrent connections of one uid queue up behind each other instead of all waking
    /// at once: together they get `control_rate` per second, not more.
    pub fn pace(&self, uid: u32, limits: &Limits) -> Duration {
        if limits.control_rate <= 0.0 || !limits.control_rate.is_finite() {
            return Duration::ZERO;
        }
        self.with(uid, limits, |u| {
            let now = Instant::now();
            let burst = f64::from(limits.control_burst.max(1));
            let earned = now.duration_since(u.refilled).as_secs_f64() * limits.control_rate;
            u.tokens = (u.tokens + earned).min(burst);
            u.refilled = now;
            u.tokens -= 1.0;
            if u.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-u.tokens / limits.control_rate)
            }
        })
    }

    /// Usage of every uid holding something, or of `only` that uid.
    pub fn usage(
        &self,
        only: Option<u32>,
        exempt: impl Fn(u32) -> bool,
        limits: &Limits,
    ) -> Vec<UidUsage> {
        let map = self.map.lock();
        let mut out: Vec<UidUsage> = map
            .iter()
            .filter(|(uid, _)| only.is_none_or(|o| o == **uid))
            .filter(|(_, u)| u.connections + u.objects > 0 || u.pages > 0)
            .map(|(uid, u)| UidUsage {
                uid: *uid,
                connections: u.connections,
                max_connections: (!exempt(*uid)).then_some(limits.max_connections_per_uid),
                objects: u.objects,
                max_objects: limits.max_objects_per_uid,
                swap_pages: u.pages,
                max_swap_pages: limits.max_swap_pages_per_uid,
            })
            .collect();
        out.sort_by_key(|u| u.uid);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_quota_holds_and_exempts_root() {
        let l = Limits {
            max_connections_per_uid: 2,
            ..Limits::default()
        };
        let t = Uids::default();
        assert!(t.connect(1000, false, &l).is_ok());
        assert!(t.connect(1000, false, &l).is_ok());
        assert!(t.connect(1000, false, &l).is_err());
        for _ in 0..5 {
            assert!(t.connect(0, true, &l).is_ok());
        }
        t.disconnect(1000, &l);
        assert!(t.connect(1000, false, &l).is_ok());
    }

    #[test]
    fn the_table_forgets_a_uid_that_holds_nothing() {
        let l = Limits::default();
        let t = Uids::default();
        t.connect(7, false, &l).unwrap();
        t.add_object(7, &l).unwrap();
        t.pages_changed(7, 0, 5, &l);
        assert_eq!(t.usage(None, |_| false, &l)[0].swap_pages, 5);
        t.disconnect(7, &l);
        t.remove_object(7, 5, &l);
        assert!(t.map.lock().is_empty());
    }

    #[test]
    fn pacing_lets_a_burst_through_then_spaces_requests() {
        let l = Limits {
            control_rate: 10.0,
            control_burst: 3,
            ..Limits::default()
        };
        let t = Uids::default();
        for _ in 0..3 {
            assert_eq!(t.pace(5, &l), Duration::ZERO);
        }
        let w1 = t.pace(5, &l);
        let w2 = t.pace(5, &l);
        assert!(
            w1 > Duration::from_millis(50) && w1 <= Duration::from_millis(100),
            "{w1:?}"
        );
        assert!(w2 > w1 + Duration::from_millis(50), "{w1:?} {w2:?}");
    }
}
