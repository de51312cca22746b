//! Snapshots of every output layout, rendered from the fixtures.

use super::fixture::{one_device, three_runs, two_devices};
use super::*;
use crate::units::SizeUnit;

macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots/swapctl"),
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

fn opts(unit: SizeUnit) -> ListOptions {
    ListOptions {
        unit,
        ..Default::default()
    }
}

#[test]
fn list_prints_swapinfo_layout_with_a_total_row() {
    snap!(
        "list_kilo",
        list_table(&two_devices(), &opts(SizeUnit::Kilo))
    );
    snap!(
        "list_human",
        list_table(&two_devices(), &opts(SizeUnit::Human))
    );
    snap!(
        "list_mega",
        list_table(&two_devices(), &opts(SizeUnit::Mega))
    );
    snap!(
        "list_bytes",
        list_table(&two_devices(), &opts(SizeUnit::Bytes))
    );
}

#[test]
fn list_has_no_total_row_for_one_device() {
    let text = list_table(&one_device(), &opts(SizeUnit::Kilo));
    assert!(!text.contains("Total"));
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn list_noheadings_and_raw_are_for_scripts() {
    let o = ListOptions {
        unit: SizeUnit::Kilo,
        noheadings: true,
        raw: true,
    };
    snap!("list_raw", list_table(&two_devices(), &o));
}

#[test]
fn list_show_prints_swapon_columns() {
    let all = ShowColumn::parse_list("NAME,TYPE,SIZE,USED,PRIO,UUID,LABEL").unwrap();
    snap!(
        "list_show_all",
        list_show(&two_devices(), &all, &opts(SizeUnit::Kilo))
    );
    let some = ShowColumn::parse_list("name,size").unwrap();
    snap!(
        "list_show_bytes",
        list_show(&two_devices(), &some, &opts(SizeUnit::Bytes))
    );
    assert!(ShowColumn::parse_list("NAME,COLOR").is_err());
}

#[test]
fn discard_is_a_column_only_when_asked_for() {
    let d = ShowColumn::parse_list("NAME,DISCARD").unwrap();
    snap!(
        "list_show_discard",
        list_show(&two_devices(), &d, &opts(SizeUnit::Kilo))
    );
    let json: serde_json::Value =
        serde_json::from_str(&list_show_json(&two_devices(), &d, true)).unwrap();
    assert_eq!(json["swapdevices"][0]["discard"], true);
    assert_eq!(json["swapdevices"][1]["discard"], false);
    let all = ShowColumn::parse_list("NAME,TYPE,SIZE,USED,PRIO,UUID,LABEL").unwrap();
    assert!(!list_show(&two_devices(), &all, &opts(SizeUnit::Kilo)).contains("DISCARD"));
    let status = status(&two_devices());
    assert!(status.contains("block direct discard"), "status:\n{status}");
    assert!(list_json(&two_devices()).contains("\"discard\": true"));
}

#[test]
fn list_json_has_bytes_for_every_device() {
    snap!("list_json", list_json(&two_devices()));
}

#[test]
fn freebsd_list_and_total_in_every_unit() {
    let mut text = String::new();
    for u in [
        SizeUnit::Kilo,
        SizeUnit::Mega,
        SizeUnit::Giga,
        SizeUnit::Human,
        SizeUnit::Bytes,
    ] {
        text.push_str(&bsd_list(&two_devices(), u));
        text.push_str(&bsd_total(&two_devices(), u));
    }
    snap!("bsd_list_total", text);
}

#[test]
fn proc_swaps_layout_for_swapon_s() {
    snap!("proc_swaps", proc_swaps(&two_devices()));
}

#[test]
fn show_json_has_only_the_columns_asked_for() {
    let cols = ShowColumn::parse_list("NAME,SIZE").unwrap();
    snap!(
        "list_show_json",
        list_show_json(&two_devices(), &cols, false) + &list_show_json(&two_devices(), &cols, true)
    );
    assert!(ShowColumn::parse_list("").is_err());
}

#[test]
fn status_shows_every_aspect() {
    snap!("status", status(&two_devices()));
}

#[test]
fn status_shows_the_programs_running_on_swapkit() {
    let user = |uid: u32| match uid {
        0 => "root".to_string(),
        1000 => "alice".to_string(),
        n => n.to_string(),
    };
    let text = processes(&three_runs(), 4096, user);
    snap!("status_processes", text.clone());
    assert!(
        !text.contains('\u{1b}') && !text.contains("evil\n"),
        "{text}"
    );
    assert_eq!(processes(&[], 4096, user), "");
}

#[test]
fn frag_prints_freebsd_text_per_device() {
    snap!("frag", frag(&two_devices(), None).unwrap());
    assert!(
        frag(&two_devices(), Some("/dev/loop0"))
            .unwrap()
            .contains("loop0")
    );
    assert!(frag(&two_devices(), Some("/dev/nope")).is_none());
}

#[test]
fn list_and_status_name_a_failing_area_and_its_corrupt_pages() {
    let mut stats = two_devices();
    stats.devices[0].state = pager::DeviceState::Failing;
    stats.devices[0].corrupt = 3;
    let list = list_table(&stats, &opts(SizeUnit::Kilo));
    assert!(
        list.contains("/dev/loop0 (failing) (3 corrupt)"),
        "list:\n{list}"
    );
    let status = status(&stats);
    assert!(
        status.contains("device /dev/loop0  failing") && status.contains("corrupt 3"),
        "status:\n{status}"
    );
}

#[test]
fn status_shows_a_dash_for_the_latency_of_a_device_without_io() {
    let mut stats = two_devices();
    stats.devices[1].io.reads = 0;
    stats.devices[1].io.writes = 0;
    let text = status(&stats);
    assert!(text.contains("read p99 -  write p99 -"), "status:\n{text}");
}
