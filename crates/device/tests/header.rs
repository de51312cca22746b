//! The swap header: round trips, every refusal, compatibility with util-linux, and
//! parsing that never panics.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use device::header::{MAX_BAD_PAGES, format_uuid, parse_uuid};
use device::{HeaderError, MkswapOptions, PAGE_SIZE, SwapHeader};
use proptest::prelude::*;

fn page_of(h: &SwapHeader) -> Vec<u8> {
    let mut page = vec![0xffu8; PAGE_SIZE];
    h.write(&mut page);
    page
}

#[test]
fn written_header_reads_back_equal() {
    let mut h = SwapHeader::new(1000);
    h.label = "swapkit".into();
    h.bad_pages = vec![3, 7, 999];
    assert_eq!(SwapHeader::read(&page_of(&h)).unwrap(), h);
    assert_eq!(h.usable_pages(), 997);
}

#[test]
fn header_fields_sit_at_the_mkswap_offsets() {
    let mut h = SwapHeader::new(0x0102_0304);
    h.uuid = [0xab; 16];
    h.label = "lbl".into();
    h.bad_pages = vec![5];
    let page = page_of(&h);
    assert!(page[..1024].iter().all(|&b| b == 0));
    assert_eq!(&page[1024..1028], &1u32.to_ne_bytes());
    assert_eq!(&page[1028..1032], &0x0102_0304u32.to_ne_bytes());
    assert_eq!(&page[1032..1036], &1u32.to_ne_bytes());
    assert_eq!(&page[1036..1052], &[0xab; 16]);
    assert_eq!(&page[1052..1056], b"lbl\0");
    assert_eq!(&page[1536..1540], &5u32.to_ne_bytes());
    assert_eq!(&page[PAGE_SIZE - 10..], b"SWAPSPACE2");
}

#[test]
fn new_headers_get_distinct_version4_uuids() {
    let (a, b) = (SwapHeader::new(100), SwapHeader::new(100));
    assert_ne!(a.uuid, b.uuid);
    assert_eq!(a.uuid[6] >> 4, 4);
    assert_eq!(parse_uuid(&format_uuid(&a.uuid)), Ok(a.uuid));
}

#[test]
fn long_label_is_cut_to_16_bytes_at_a_char_boundary() {
    let mut h = SwapHeader::new(100);
    h.label = "ééééééééé".into(); // 18 bytes
    assert_eq!(SwapHeader::read(&page_of(&h)).unwrap().label, "éééééééé");
}

#[test]
fn a_zero_page_is_not_a_swap_area() {
    let err = SwapHeader::read(&[0u8; PAGE_SIZE]).unwrap_err();
    assert_eq!(err, HeaderError::NoSignature);
    assert_eq!(err.to_string(), "not a swap area; run `swapctl mkswap`");
}

#[test]
fn a_short_page_is_refused() {
    let err = SwapHeader::read(&[0u8; 100]).unwrap_err();
    assert_eq!(err.to_string(), "header page is 100 bytes, need 4096");
}

#[test]
fn the_old_swap_space_signature_is_refused() {
    let mut page = vec![0u8; PAGE_SIZE];
    page[PAGE_SIZE - 10..].copy_from_slice(b"SWAP-SPACE");
    let err = SwapHeader::read(&page).unwrap_err();
    assert_eq!(
        err.to_string(),
        "old-style swap area (SWAP-SPACE, version 0) is not supported; run `swapctl mkswap`"
    );
}

#[test]
fn a_header_for_64k_pages_is_refused_as_such() {
    let mut bytes = vec![0u8; 65536];
    bytes[65536 - 10..].copy_from_slice(b"SWAPSPACE2");
    let err = SwapHeader::read(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "swap area made for 65536-byte pages; this system uses 4096"
    );
}

#[test]
fn a_header_of_the_other_byte_order_is_refused() {
    let mut page = page_of(&SwapHeader::new(100));
    page[1024..1028].copy_from_slice(&1u32.swap_bytes().to_ne_bytes());
    assert_eq!(SwapHeader::read(&page).unwrap_err(), HeaderError::ByteOrder);
}

#[test]
fn an_unknown_version_is_refused() {
    let mut page = page_of(&SwapHeader::new(100));
    page[1024..1028].copy_from_slice(&2u32.to_ne_bytes());
    let err = SwapHeader::read(&page).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported swap header version 2 (expected 1)"
    );
}

#[test]
fn more_bad_pages_than_fit_are_refused() {
    assert_eq!(MAX_BAD_PAGES, 637);
    let mut page = page_of(&SwapHeader::new(10_000));
    page[1032..1036].copy_from_slice(&638u32.to_ne_bytes());
    let err = SwapHeader::read(&page).unwrap_err();
    assert_eq!(
        err.to_string(),
        "638 bad pages listed, at most 637 fit in the header"
    );
}

#[test]
fn a_bad_page_out_of_range_is_refused() {
    let mut h = SwapHeader::new(100);
    h.bad_pages = vec![101];
    let err = SwapHeader::read(&page_of(&h)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad page 101 is outside the data pages 1..=100"
    );
    h.bad_pages = vec![0];
    assert!(matches!(
        SwapHeader::read(&page_of(&h)),
        Err(HeaderError::BadPageOutOfRange { page: 0, .. })
    ));
}

#[test]
fn fewer_than_ten_usable_pages_are_refused() {
    let mut h = SwapHeader::new(11);
    h.bad_pages = vec![1, 2];
    let err = SwapHeader::read(&page_of(&h)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "only 9 usable pages, a swap area needs at least 10"
    );
}

#[test]
fn a_header_past_the_device_end_does_not_fit() {
    let h = SwapHeader::new(100);
    assert!(h.check_fits(101 * PAGE_SIZE as u64).is_ok());
    let err = h.check_fits(100 * PAGE_SIZE as u64).unwrap_err();
    assert_eq!(
        err.to_string(),
        "last page 100 is past the end of the device (100 pages)"
    );
}

proptest! {
    #[test]
    fn parsing_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..PAGE_SIZE + 64)) {
        let _ = SwapHeader::read(&bytes);
    }

    #[test]
    fn parsing_never_panics_on_signed_pages(
        fields in proptest::collection::vec(any::<u32>(), 4),
        bad in proptest::collection::vec(any::<u32>(), 0..700),
    ) {
        // A valid signature with arbitrary fields reaches every check past the signature.
        let mut page = vec![0u8; PAGE_SIZE];
        page[PAGE_SIZE - 10..].copy_from_slice(b"SWAPSPACE2");
        page[1024..1028].copy_from_slice(&(fields[0] % 3).to_ne_bytes());
        page[1028..1032].copy_from_slice(&fields[1].to_ne_bytes());
        page[1032..1036].copy_from_slice(&(fields[2] % 700).to_ne_bytes());
        for (i, b) in bad.iter().take(637).enumerate() {
            page[1536 + 4 * i..1540 + 4 * i].copy_from_slice(&b.to_ne_bytes());
        }
        if let Ok(h) = SwapHeader::read(&page) {
            prop_assert!(h.bad_pages.iter().all(|&b| b >= 1 && b <= h.last_page));
            prop_assert!(h.usable_pages() >= 10);
        }
    }

    #[test]
    fn any_valid_header_round_trips(
        last in 20u32..u32::MAX,
        bad in proptest::collection::btree_set(1u32..20, 0..10),
        uuid in any::<[u8; 16]>(),
        label in "[a-zA-Z0-9_-]{0,16}",
    ) {
        let h = SwapHeader { last_page: last, bad_pages: bad.into_iter().collect(), uuid, label };
        prop_assert_eq!(SwapHeader::read(&page_of(&h)).unwrap(), h);
    }
}

/// Runs a util-linux tool; `None` (printing why) when it is not installed.
fn run(tool: &str, args: &[&str]) -> Option<String> {
    match Command::new(tool).args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            println!("{tool} not runnable ({e}); util-linux check skipped");
            None
        }
    }
}

#[test]
fn util_linux_mkswap_output_parses_to_its_label_and_uuid() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "ul-mkswap", 256);
    let uuid = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
    let file_s = file.to_str().unwrap();
    if run("mkswap", &["-L", "x", "-U", uuid, file_s]).is_none() {
        return;
    }
    let mut page = vec![0u8; PAGE_SIZE];
    std::io::Read::read_exact(&mut std::fs::File::open(&file).unwrap(), &mut page).unwrap();
    let h = SwapHeader::read(&page).unwrap();
    assert_eq!(h.label, "x");
    assert_eq!(h.uuid_string(), uuid);
    assert_eq!(h.last_page, 255);
    assert!(h.bad_pages.is_empty());
}

#[test]
fn our_header_is_a_swap_area_to_blkid_and_swaplabel() {
    let dir = common::scratch();
    let file = common::backing_file(dir.path(), "ours", 256);
    let uuid = parse_uuid("0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9").unwrap();
    let opts = MkswapOptions {
        label: Some("swapkit-lbl".into()),
        uuid: Some(uuid),
        ..Default::default()
    };
    device::mkswap(&file, &opts).unwrap();
    let file_s = file.to_str().unwrap();
    let Some(blkid) = run("blkid", &["-p", "-o", "export", file_s]) else {
        return;
    };
    assert!(blkid.lines().any(|l| l == "TYPE=swap"), "{blkid}");
    assert!(blkid.lines().any(|l| l == "LABEL=swapkit-lbl"), "{blkid}");
    assert!(
        blkid
            .lines()
            .any(|l| l == "UUID=0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"),
        "{blkid}"
    );
    let Some(label) = run("swaplabel", &[file_s]) else {
        return;
    };
    assert!(label.contains("LABEL: swapkit-lbl"), "{label}");
    assert!(
        label.contains("UUID:  0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"),
        "{label}"
    );
}
