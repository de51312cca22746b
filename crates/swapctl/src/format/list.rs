//! `swapctl list` (swapinfo's table, or `swapon --show` columns), FreeBSD's `swapctl -l/-s`
//! layouts (also `summary`) and `/proc/swaps`' (`on -s`).

use std::str::FromStr;

use pager::{DeviceState, PagerStats};
use serde_json::json;

use super::table::{Align, render};
use super::{device_name, page_size};
use crate::units::{SizeUnit, human};

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub unit: SizeUnit,
    pub noheadings: bool,
    pub raw: bool,
}

/// A `swapon --show` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowColumn {
    Name,
    Type,
    Size,
    Used,
    Prio,
    Uuid,
    Label,
    /// Whether the area was added with discard: shown only when asked for, as util-linux
    /// shows `--show=DISCARD` only when named.
    Discard,
}

impl FromStr for ShowColumn {
    type Err = String;
    fn from_str(s: &str) -> Result<ShowColumn, String> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "NAME" => ShowColumn::Name,
            "TYPE" => ShowColumn::Type,
            "SIZE" => ShowColumn::Size,
            "USED" => ShowColumn::Used,
            "PRIO" => ShowColumn::Prio,
            "UUID" => ShowColumn::Uuid,
            "LABEL" => ShowColumn::Label,
            "DISCARD" => ShowColumn::Discard,
            _ => {
                return Err(format!(
                    "unknown column {s:?} (columns: NAME,TYPE,SIZE,USED,PRIO,UUID,LABEL,DISCARD)"
                ));
            }
        })
    }
}

impl ShowColumn {
    /// Parse `NAME,SIZE,...`.
    pub fn parse_list(text: &str) -> Result<Vec<ShowColumn>, String> {
        let cols: Vec<ShowColumn> = text
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        if cols.is_empty() {
            return Err("no columns (columns: NAME,TYPE,SIZE,USED,PRIO,UUID,LABEL,DISCARD)".into());
        }
        Ok(cols)
    }

    fn heading(self) -> &'static str {
        match self {
            ShowColumn::Name => "NAME",
            ShowColumn::Type => "TYPE",
            ShowColumn::Size => "SIZE",
            ShowColumn::Used => "USED",
            ShowColumn::Prio => "PRIO",
            ShowColumn::Uuid => "UUID",
            ShowColumn::Label => "LABEL",
            ShowColumn::Discard => "DISCARD",
        }
    }

    fn align(self) -> Align {
        match self {
            ShowColumn::Size | ShowColumn::Used | ShowColumn::Prio => Align::Right,
            _ => Align::Left,
        }
    }
}

/// `swapon`'s TYPE: "partition" for block devices, "file" for files, "nbd" for remote
/// areas (which the kernel's swapon does not have).
fn swap_type(kind: &str) -> &'static str {
    match kind {
        "block" => "partition",
        "nbd" => "nbd",
        _ => "file",
    }
}

fn percent(used: u64, total: u64) -> String {
    if total == 0 {
        return "0%".into();
    }
    format!("{}%", u128::from(used) * 100 / u128::from(total))
}

/// swapinfo's table: Device, Size, Used, Avail, Capacity, Priority; a Total row when there
/// are two devices or more. Sizes are usable swap (header and bad pages excluded).
pub fn list_table(stats: &PagerStats, opts: &ListOptions) -> String {
    let ps = page_size(stats);
    let unit = opts.unit;
    let mut rows = Vec::new();
    if !opts.noheadings {
        rows.push(
            [
                "Device",
                unit.heading(),
                "Used",
                "Avail",
                "Capacity",
                "Priority",
            ]
            .map(String::from)
            .to_vec(),
        );
    }
    let (mut total, mut used, mut avail) = (0u64, 0u64, 0u64);
    for d in &stats.devices {
        let name = match d.state {
            DeviceState::Active => device_name(d).to_owned(),
            DeviceState::Draining { .. } => format!("{} (draining)", device_name(d)),
            DeviceState::Failed => format!("{} (failed)", device_name(d)),
            DeviceState::Failing => format!("{} (failing)", device_name(d)),
            DeviceState::Reconnecting { .. } => format!("{} (reconnecting)", device_name(d)),
        };
        let name = if d.corrupt > 0 {
            format!("{name} ({} corrupt)", d.corrupt)
        } else {
            name
        };
        rows.push(vec![
            name,
            unit.format(d.total_pages * ps),
            unit.format(d.used_pages * ps),
            unit.format(d.free_pages * ps),
            percent(d.used_pages, d.total_pages),
            d.priority.to_string(),
        ]);
        total += d.total_pages;
        used += d.used_pages;
        avail += d.free_pages;
    }
    if stats.devices.len() >= 2 {
        rows.push(vec![
            "Total".into(),
            unit.format(total * ps),
            unit.format(used * ps),
            unit.format(avail * ps),
            percent(used, total),
            String::new(),
        ]);
    }
    use Align::{Left, Right};
    render(&rows, &[Left, Right, Right, Right, Right, Right], opts.raw)
}

/// `swapon --show=COLUMNS`. Sizes are human unless the unit says bytes (`--bytes`), as in
/// swapon; block units are honoured too.
pub fn list_show(stats: &PagerStats, columns: &[ShowColumn], opts: &ListOptions) -> String {
    let ps = page_size(stats);
    let unit = if opts.unit == SizeUnit::Kilo {
        SizeUnit::Human
    } else {
        opts.unit
    };
    let mut rows = Vec::new();
    if !opts.noheadings {
        rows.push(columns.iter().map(|c| c.heading().to_owned()).collect());
    }
    for d in &stats.devices {
        rows.push(
            columns
                .iter()
                .map(|c| match c {
                    ShowColumn::Name => device_name(d).to_owned(),
                    ShowColumn::Type => swap_type(&d.kind).to_owned(),
                    ShowColumn::Size => unit.format(d.total_pages * ps),
                    ShowColumn::Used => unit.format(d.used_pages * ps),
                    ShowColumn::Prio => d.priority.to_string(),
                    ShowColumn::Uuid => d.uuid.clone(),
                    ShowColumn::Label => d.label.clone(),
                    ShowColumn::Discard => if d.discard { "yes" } else { "no" }.to_owned(),
                })
                .collect(),
        );
    }
    let align: Vec<Align> = columns.iter().map(|c| c.align()).collect();
    render(&rows, &align, opts.raw)
}

/// `list --json`: every device with sizes in bytes, under `swapdevices` as swapon does;
/// `last_error` only where there is one.
pub fn list_json(stats: &PagerStats) -> String {
    let ps = page_size(stats);
    let devices: Vec<_> = stats
        .devices
        .iter()
        .map(|d| {
            let mut v = json!({
                "name": d.path,
                "type": swap_type(&d.kind),
                "size": d.total_pages * ps,
                "used": d.used_pages * ps,
                "avail": d.free_pages * ps,
                "bad": d.bad_pages * ps,
                "prio": d.priority,
                "uuid": d.uuid,
                "label": d.label,
                "discard": d.discard,
                "state": d.state,
            });
            if let Some(e) = &d.last_error {
                v["last_error"] = json!(e);
            }
            v
        })
        .collect();
    let mut text =
        serde_json::to_string_pretty(&json!({ "swapdevices": devices })).unwrap_or_default();
    text.push('\n');
    text
}

/// `swapon --show=COLUMNS --json`: only the columns asked for, keyed by their lower-case
/// names as swapon does; sizes are numbers of bytes with `--bytes`, else human strings.
pub fn list_show_json(stats: &PagerStats, columns: &[ShowColumn], bytes: bool) -> String {
    let ps = page_size(stats);
    let size = |n: u64| {
        if bytes {
            json!(n * ps)
        } else {
            json!(human(n * ps))
        }
    };
    let devices: Vec<_> = stats
        .devices
        .iter()
        .map(|d| {
            let mut row = serde_json::Map::new();
            for c in columns {
                let v = match c {
                    ShowColumn::Name => json!(device_name(d)),
                    ShowColumn::Type => json!(swap_type(&d.kind)),
                    ShowColumn::Size => size(d.total_pages),
                    ShowColumn::Used => size(d.used_pages),
                    ShowColumn::Prio => json!(d.priority),
                    ShowColumn::Uuid => json!(d.uuid),
                    ShowColumn::Label => json!(d.label),
                    ShowColumn::Discard => json!(d.discard),
                };
                row.insert(c.heading().to_ascii_lowercase(), v);
            }
            serde_json::Value::Object(row)
        })
        .collect();
    let mut text =
        serde_json::to_string_pretty(&json!({ "swapdevices": devices })).unwrap_or_default();
    text.push('\n');
    text
}

/// FreeBSD's heading of a size column and the width of its fields (`hlen`).
fn bsd_heading(unit: SizeUnit) -> &'static str {
    match unit {
        SizeUnit::Kilo => "1kB-blocks",
        SizeUnit::Mega => "1MB-blocks",
        SizeUnit::Giga => "1GB-blocks",
        SizeUnit::Bytes | SizeUnit::Human => "Bytes",
    }
}

const BSD_HLEN: usize = 10;

fn bsd_line(first: &str, size: &str, used: &str) -> String {
    format!("{first:<13} {size:>BSD_HLEN$} {used:>BSD_HLEN$}\n")
}

/// FreeBSD `swapctl -l`: `Device:`, the size column in the unit, `Used:`; sizes are
/// usable swap, as everywhere in swapctl.
pub fn bsd_list(stats: &PagerStats, unit: SizeUnit) -> String {
    let ps = page_size(stats);
    let mut out = bsd_line("Device:", bsd_heading(unit), "Used:");
    for d in &stats.devices {
        out.push_str(&bsd_line(
            device_name(d),
            &unit.format(d.total_pages * ps),
            &unit.format(d.used_pages * ps),
        ));
    }
    out
}

/// FreeBSD `swapctl -s`: `Total:` with the size and the used space in the unit.
pub fn bsd_total(stats: &PagerStats, unit: SizeUnit) -> String {
    let ps = page_size(stats);
    bsd_line(
        "Total:",
        &unit.format(stats.total_pages * ps),
        &unit.format(stats.used_pages * ps),
    )
}

/// `summary --json` (and `swapctl -s --json`): the totals line in bytes.
pub fn total_json(stats: &PagerStats) -> serde_json::Value {
    let ps = page_size(stats);
    json!({
        "size": stats.total_pages * ps,
        "used": stats.used_pages * ps,
        "avail": stats.free_pages * ps,
        "devices": stats.devices.len(),
    })
}

/// `swapctl -l --json` and `-s --json` (both together): `list --json`'s `swapdevices`
/// and `summary --json`'s `total`, in one object.
pub fn bsd_json(stats: &PagerStats, list: bool, summary: bool) -> String {
    let mut map = serde_json::Map::new();
    if list
        && let Ok(serde_json::Value::Object(l)) =
            serde_json::from_str::<serde_json::Value>(&list_json(stats))
    {
        map.extend(l);
    }
    if summary {
        map.insert("total".into(), total_json(stats));
    }
    pretty(&serde_json::Value::Object(map))
}

/// A JSON value as the commands print it: pretty, one newline at the end.
pub fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// `swapon -s`: the layout of Linux's `/proc/swaps` (sizes in KiB, tabs as the kernel puts
/// them).
pub fn proc_swaps(stats: &PagerStats) -> String {
    let ps = page_size(stats);
    let mut out = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    for d in &stats.devices {
        let name = device_name(d);
        let pad = 40usize.saturating_sub(name.len()).max(1);
        let kind = match d.kind.as_str() {
            "block" => "partition",
            "nbd" => "nbd\t",
            _ => "file\t",
        };
        let size = (d.total_pages * ps) >> 10;
        let used = (d.used_pages * ps) >> 10;
        out.push_str(&format!(
            "{name}{}{kind}\t{size}\t{}{used}\t{}{}\n",
            " ".repeat(pad),
            if size < 10_000_000 { "\t" } else { "" },
            if used < 10_000_000 { "\t" } else { "" },
            d.priority
        ));
    }
    out
}
