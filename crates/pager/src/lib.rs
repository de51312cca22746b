//! pager: the swap pager. Work in progress: see docs/ARCHITECTURE.md.

pub mod stats;

pub use stats::{
    Counters, DeviceState, DeviceStats, FragStats, Hysteresis, PagerStats, PbufStats, PoolStats,
    Tunables,
};
