//! `swapctl` without a command: FreeBSD's `swapctl [-AghklmsU] [-a DEV...] [-d DEV...]`,
//! with NetBSD's `-p PRIO`. Adding and removing are `on` and `off`; `-l` and `-s` print
//! FreeBSD's layouts (`Device: 1kB-blocks Used:`, `Total: SIZE USED`).

use super::admin::{self, OnPlan};
use crate::cli::BsdArgs;
use crate::format;
use crate::output::{CliError, print};

pub fn run(a: &BsdArgs) -> Result<i32, CliError> {
    let socket = &a.socket.socket;
    if a.json && !a.list && !a.summary {
        return Err(CliError::usage("--json", "only with -l or -s"));
    }
    if a.priority.is_some() && a.add.is_empty() && !a.add_all {
        return Err(CliError::usage("-p", "only with -a or -A"));
    }
    if !a.add.is_empty() || a.add_all {
        return admin::on_devices(&OnPlan {
            socket,
            devices: &a.add,
            all: a.add_all,
            priority: a.priority,
            discard: false,
            ifexists: false,
            verbose: false,
        });
    }
    if !a.remove.is_empty() || a.remove_all {
        return admin::off_devices(socket, &a.remove, a.remove_all, false, false);
    }
    // -l and/or -s: list first, then the totals, as FreeBSD prints them.
    let stats = admin::connect(socket, "swapctl")?
        .stats()
        .map_err(admin::daemon_err("swapctl"))?;
    if a.json {
        print(&format::bsd_json(&stats, a.list, a.summary));
        return Ok(0);
    }
    let unit = admin::unit(&a.unit);
    let mut text = String::new();
    if a.list {
        text.push_str(&format::bsd_list(&stats, unit));
    }
    if a.summary {
        text.push_str(&format::bsd_total(&stats, unit));
    }
    print(&text);
    Ok(0)
}
