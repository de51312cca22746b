//! The text formats FreeBSD prints, held by snapshots: `blist_stats` (the `Display` of
//! `BlistStats`), and a REPL session (creation lines, prompt, every command's answer).

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use blist::{Blist, BlistStats};

// The REPL example, compiled in to drive its session loop directly.
#[allow(dead_code)]
#[path = "../examples/repl.rs"]
mod repl;

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!(
            {
                snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots/blist"),
                prepend_module_to_snapshot => false,
            },
            { insta::assert_snapshot!($name, $value) }
        )
    };
}

#[test]
fn stats_of_a_fragmented_list_print_as_freebsd() {
    let mut bl = Blist::new(1 << 20);
    // Ranges of 1, 2, 3, 4, 7, 7, 100, 100 000 and 20 000 000-ish: classes "1", "2", "3 to 4",
    // "5 to 7", "89 to 143", and a last class bounded by the largest range.
    let mut at = 0;
    for len in [1, 2, 3, 4, 7, 7, 100, 100_000, 200_000, 300_000] {
        bl.free(at, len).unwrap();
        at += len + 1;
    }
    snapshot!("stats_fragmented", bl.stats().to_string());
}

#[test]
fn stats_with_one_range_in_the_top_class_print_the_largest_alone() {
    let mut bl = Blist::new(4096);
    bl.free(0, 1).unwrap();
    bl.free(2, 4000).unwrap();
    snapshot!("stats_one_top", bl.stats().to_string());
}

#[test]
fn stats_with_nothing_free_print_a_zero_line() {
    let stats = Blist::new(100).stats();
    assert_eq!(stats, BlistStats::default());
    snapshot!("stats_empty", stats.to_string());
}

#[test]
fn the_running_mean_truncates_like_c() {
    // 1, 2, 2: the mean steps 1 -> 1 (err 1) -> 1 (err 2 % 3 = 2): an integer, not 1.67.
    let stats = BlistStats::from_ranges([(0, 1), (2, 2), (5, 2)]);
    assert_eq!(stats.average, 1);
    // 10, 1, 1, 1: 10 -> 6 (err -1) -> 4 (err 0) -> 4, since -3 / 4 is 0 in C, not -1. The
    // true mean is 3.25: the text must show FreeBSD's 4.
    let stats = BlistStats::from_ranges([(0, 10), (11, 1), (13, 1), (15, 1)]);
    assert_eq!(stats.average, 4);
    assert_eq!(
        stats.buckets().collect::<Vec<_>>(),
        vec![(1, 1, 3), (8, 10, 1)]
    );
}

#[test]
fn a_repl_session_prints_freebsd_text() {
    let script = "a 1 1\na 4 16\na 60 64\na 64 64\na 5 3\nl 10 20\nf 0 1\nf 100 5\n\
                  s\np\nr 5000\na 64 200\ns\nbogus\nh\nq\nnot reached\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    repl::run(300, script.as_bytes(), &mut out, &mut err).unwrap();
    snapshot!("repl_session", String::from_utf8(out).unwrap());
    snapshot!("repl_session_stderr", String::from_utf8(err).unwrap());
}
