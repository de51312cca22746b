//! Rates and history of `swapctl top`: computed from successive snapshots on the daemon's
//! clock, and never negative or huge when the daemon restarts.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use std::time::Duration;

use pager::{DeviceStats, PagerStats};
use proptest::prelude::*;
use swapctl::top::fixture::{self, Fixture};
use swapctl::top::state::{Connection, HISTORY_LEN, State, compute_rates};

fn snapshot(uptime_ms: u64, pages_in: u64, pages_out: u64, reads: u64, writes: u64) -> PagerStats {
    let mut s = PagerStats {
        uptime_ms,
        page_size: 4096,
        ..PagerStats::default()
    };
    s.counters.pages_in = pages_in;
    s.counters.pages_out = pages_out;
    s.devices.push(DeviceStats {
        id: 7,
        path: "/dev/loop7".to_string(),
        io: device::AreaStats {
            reads,
            writes,
            ..device::AreaStats::default()
        },
        total_pages: 100,
        ..DeviceStats::default()
    });
    s
}

fn fresh() -> State {
    State::new("test", Duration::from_secs(1), true)
}

#[test]
fn rates_are_the_counter_deltas_over_the_daemons_elapsed_time() {
    let mut state = fresh();
    state.apply(snapshot(10_000, 0, 0, 0, 0));
    state.apply(snapshot(12_000, 1_000, 4_000, 30, 10));
    assert_eq!(state.rates.pages_in, 500.0);
    assert_eq!(state.rates.pages_out, 2_000.0);
    let device = state.rates.devices[&7];
    assert_eq!((device.reads, device.writes), (15.0, 5.0));
    assert_eq!(
        state.history.pages_out.iter().copied().collect::<Vec<_>>(),
        [2_000]
    );
    let (reads, writes) = &state.history.devices[&7];
    assert_eq!((reads[0], writes[0]), (15, 5));
}

#[test]
fn the_first_snapshot_has_no_rates_and_no_history() {
    let mut state = fresh();
    state.apply(snapshot(10_000, 500, 500, 5, 5));
    assert_eq!(state.rates.pages_in, 0.0);
    assert!(state.history.pages_in.is_empty());
    assert_eq!(state.connection, Connection::Connected);
}

#[test]
fn a_repeated_snapshot_adds_no_sample() {
    let mut state = fresh();
    state.apply(snapshot(10_000, 0, 0, 0, 0));
    state.apply(snapshot(11_000, 100, 100, 1, 1));
    state.apply(snapshot(11_000, 100, 100, 1, 1));
    assert_eq!(state.history.pages_in.len(), 1);
    assert_eq!(state.rates.pages_in, 100.0);
}

#[test]
fn a_restarted_daemon_starts_the_history_over() {
    let mut state = fresh();
    state.apply(snapshot(10_000, 0, 0, 0, 0));
    state.apply(snapshot(11_000, 100, 100, 1, 1));
    state.apply(snapshot(500, 3, 3, 0, 0));
    assert!(state.history.pages_in.is_empty());
    assert_eq!(state.rates.pages_in, 0.0);
    state.apply(snapshot(1_500, 103, 3, 0, 0));
    assert_eq!(state.rates.pages_in, 100.0);
}

#[test]
fn a_shrinking_counter_reads_as_zero_not_a_wrap() {
    let prev = snapshot(1_000, 100, 100, 50, 50);
    let cur = snapshot(2_000, 90, 200, 10, 60);
    let rates = compute_rates(&prev, &cur);
    assert_eq!(rates.pages_in, 0.0);
    assert_eq!(rates.pages_out, 100.0);
    assert_eq!(rates.devices[&7].reads, 0.0);
}

#[test]
fn a_new_device_has_zero_rates_until_its_second_snapshot() {
    let prev = snapshot(1_000, 0, 0, 0, 0);
    let mut cur = snapshot(2_000, 0, 0, 10, 10);
    cur.devices.push(DeviceStats {
        id: 8,
        io: device::AreaStats {
            reads: 1_000,
            ..device::AreaStats::default()
        },
        ..DeviceStats::default()
    });
    let rates = compute_rates(&prev, &cur);
    assert_eq!(rates.devices[&8].reads, 0.0);
    assert_eq!(rates.devices[&7].reads, 10.0);
}

#[test]
fn the_history_keeps_only_the_newest_samples() {
    let mut state = fresh();
    for t in 0..(HISTORY_LEN as u64 + 50) {
        state.apply(snapshot(t * 1000, t * t, 0, 0, 0));
    }
    assert_eq!(state.history.pages_in.len(), HISTORY_LEN);
    // The newest sample is the last second's rate: t^2 - (t-1)^2 = 2t - 1.
    let t = HISTORY_LEN as u64 + 49;
    assert_eq!(*state.history.pages_in.back().unwrap(), 2 * t - 1);
}

#[test]
fn a_failed_poll_keeps_the_figures_and_counts_failures() {
    let mut state = fixture::state(Fixture::Normal);
    state.poll_failed("boom");
    state.poll_failed("bang");
    assert!(state.stats.is_some());
    assert_eq!(
        state.connection,
        Connection::Disconnected {
            error: "bang".to_string(),
            failures: 2
        }
    );
    state.apply(fixture::fixture(Fixture::Normal));
    assert!(state.is_connected());
}

#[test]
fn the_selection_moves_to_the_first_device_when_its_device_goes_away() {
    let mut state = fixture::state(Fixture::Normal);
    state.select_relative(1);
    let gone = state.selected.unwrap();
    let mut stats = fixture::fixture(Fixture::Normal);
    stats.uptime_ms += 1_000;
    stats.devices.retain(|d| d.id != gone);
    state.apply(stats);
    assert_eq!(state.selected, Some(0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model: each step's rate is the counter delta over the uptime delta, and the
    /// history holds one rounded sample per step with a later uptime.
    #[test]
    fn rates_match_a_model_of_deltas_over_elapsed_time(
        steps in prop::collection::vec((0u64..5_000, 0u64..100_000, 0u64..100_000), 1..40)
    ) {
        let mut state = fresh();
        let (mut uptime, mut pin, mut pout) = (1_000u64, 0u64, 0u64);
        state.apply(snapshot(uptime, pin, pout, 0, 0));
        let mut model: Vec<f64> = Vec::new();
        for (dt, din, dout) in steps {
            uptime += dt;
            pin += din;
            pout += dout;
            state.apply(snapshot(uptime, pin, pout, 0, 0));
            if dt > 0 {
                let expected = din as f64 * 1000.0 / dt as f64;
                prop_assert!((state.rates.pages_in - expected).abs() < 1e-6 * expected.max(1.0));
                model.push(expected);
                let expected_out = dout as f64 * 1000.0 / dt as f64;
                prop_assert!((state.rates.pages_out - expected_out).abs() < 1e-6 * expected_out.max(1.0));
            }
        }
        let history: Vec<u64> = state.history.pages_in.iter().copied().collect();
        prop_assert_eq!(history.len(), model.len());
        // Rounded to whole pages per second: a rate of exactly x.5 may go either way,
        // depending on how the division rounds in floating point.
        for (sample, expected) in history.iter().zip(&model) {
            prop_assert!((*sample as f64 - expected).abs() <= 0.5 + 1e-6, "{} vs {}", sample, expected);
        }
    }
}

fn program(pid: i32, faults: u64) -> control::proto::ProcessUsage {
    control::proto::ProcessUsage {
        pid,
        faults,
        ..Default::default()
    }
}

/// Issue 25: a program's faults per second come from the delta of its `faults` total between
/// two polls, on the daemon's clock; a new program, a reused pid whose total went down and a
/// restarted daemon read 0, never a spike.
#[test]
fn faults_per_second_are_the_delta_of_each_programs_total() {
    let mut s = fresh();
    s.apply_with_processes(snapshot(1_000, 0, 0, 0, 0), vec![program(10, 100)]);
    assert_eq!(s.fault_rates.get(&10), None, "no rate from one poll");
    s.apply_with_processes(
        snapshot(3_000, 0, 0, 0, 0),
        vec![program(10, 700), program(11, 5_000)],
    );
    assert_eq!(s.fault_rates[&10], 300.0);
    assert_eq!(s.fault_rates[&11], 0.0, "new since the last poll");
    s.apply_with_processes(snapshot(4_000, 0, 0, 0, 0), vec![program(10, 50)]);
    assert_eq!(s.fault_rates[&10], 0.0, "a total that went down");
    assert_eq!(s.fault_rates.get(&11), None, "gone with its program");
    s.apply_with_processes(snapshot(500, 0, 0, 0, 0), vec![program(10, 90)]);
    assert!(s.fault_rates.is_empty(), "a restarted daemon starts over");
    assert_eq!(s.processes, vec![program(10, 90)]);
}
