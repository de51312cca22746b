//! `swapctl status`'s per-uid section: what each uid holds of the daemon against its quotas.

use std::fmt::Write;

use control::proto::UidUsage;

fn of(n: u64, max: Option<u64>) -> String {
    match max {
        Some(m) => format!("{n}/{m}"),
        None => format!("{n} (no limit)"),
    }
}

/// One line per uid: connections, objects and swap pages, each as `used/limit`. Empty when
/// no uid holds anything (the daemon leaves the section out of its reply then).
pub fn usage(uids: &[UidUsage]) -> String {
    let mut out = String::new();
    if uids.is_empty() {
        return out;
    }
    let _ = writeln!(out, "per uid     connections   objects   swap pages");
    for u in uids {
        let _ = writeln!(
            out,
            "  uid {:<6} {:<13} {:<9} {}",
            u.uid,
            of(u64::from(u.connections), u.max_connections.map(u64::from)),
            of(u64::from(u.objects), Some(u64::from(u.max_objects))),
            of(u.swap_pages, u.max_swap_pages)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_per_uid_with_its_limits() {
        let text = usage(&[
            UidUsage {
                uid: 0,
                connections: 2,
                max_connections: None,
                objects: 0,
                max_objects: 4096,
                swap_pages: 0,
                max_swap_pages: None,
            },
            UidUsage {
                uid: 1000,
                connections: 64,
                max_connections: Some(64),
                objects: 12,
                max_objects: 4096,
                swap_pages: 300,
                max_swap_pages: Some(1000),
            },
        ]);
        assert_eq!(
            text,
            "per uid     connections   objects   swap pages\n\
             \x20 uid 0      2 (no limit)  0/4096    0 (no limit)\n\
             \x20 uid 1000   64/64         12/4096   300/1000\n"
        );
        assert_eq!(usage(&[]), "");
    }
}
