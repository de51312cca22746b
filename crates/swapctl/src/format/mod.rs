//! Output of `list`, `summary`, `status` and `frag`: pure functions from a
//! [`pager::PagerStats`] snapshot (and `status`'s per-uid usage and processes) to text or JSON, so every layout is snapshot-tested from
//! fixtures without a daemon.

mod list;
mod processes;
mod status;
pub mod table;
mod usage;

pub use list::{
    ListOptions, ShowColumn, bsd_json, bsd_list, bsd_total, list_json, list_show, list_show_json,
    list_table, pretty, proc_swaps, total_json,
};
pub use processes::{COMMAND_WIDTH, command, processes, user_name};
pub use status::{frag, frag_json, status};
pub use usage::usage;

use pager::{DeviceStats, PagerStats};

/// Bytes per page of a snapshot (4096 if the snapshot leaves it out).
fn page_size(stats: &PagerStats) -> u64 {
    if stats.page_size == 0 {
        device::PAGE_SIZE as u64
    } else {
        stats.page_size
    }
}

/// The short name of a device for tables: its path.
fn device_name(d: &DeviceStats) -> &str {
    &d.path
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
