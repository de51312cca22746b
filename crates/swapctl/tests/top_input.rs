//! Keys of `swapctl top`: what each one does to the state and what it asks the loop to do.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use swapctl::top::fixture::{self, Fixture};
use swapctl::top::input::{Action, handle_event, handle_key};
use swapctl::top::state::{INTERVAL_MAX, INTERVAL_MIN, SortColumn, State};

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(state: &mut State, code: KeyCode) -> Action {
    handle_key(state, &key(code))
}

fn ch(state: &mut State, c: char) -> Action {
    press(state, KeyCode::Char(c))
}

fn selected_path(state: &State) -> String {
    state.selected_device().unwrap().path.clone()
}

#[test]
fn q_and_ctrl_c_quit_even_over_the_help_overlay() {
    let mut state = fixture::state(Fixture::Normal);
    assert_eq!(ch(&mut state, 'q'), Action::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(handle_key(&mut state, &ctrl_c), Action::Quit);
    state.help = true;
    assert_eq!(ch(&mut state, 'q'), Action::Quit);
    assert_eq!(handle_key(&mut state, &ctrl_c), Action::Quit);
}

#[test]
fn help_opens_with_question_mark_and_closes_with_esc_or_question_mark() {
    let mut state = fixture::state(Fixture::Normal);
    assert_eq!(ch(&mut state, '?'), Action::Redraw);
    assert!(state.help);
    assert_eq!(press(&mut state, KeyCode::Esc), Action::Redraw);
    assert!(!state.help);
    ch(&mut state, '?');
    assert_eq!(ch(&mut state, '?'), Action::Redraw);
    assert!(!state.help);
}

#[test]
fn keys_behind_the_help_overlay_do_nothing() {
    let mut state = fixture::state(Fixture::Normal);
    state.help = true;
    let before = (state.sort, state.selected, state.frozen, state.interval);
    for c in ['s', 'j', 'f', '+', '-', 'a', 'A'] {
        assert_eq!(ch(&mut state, c), Action::None, "key {c}");
    }
    assert_eq!(
        before,
        (state.sort, state.selected, state.frozen, state.interval)
    );
    assert!(state.help);
}

#[test]
fn tab_j_and_down_walk_the_devices_forward_and_wrap() {
    let mut state = fixture::state(Fixture::Normal);
    assert_eq!(selected_path(&state), "/dev/loop0");
    assert_eq!(press(&mut state, KeyCode::Tab), Action::Redraw);
    assert_eq!(selected_path(&state), "/dev/loop1");
    ch(&mut state, 'j');
    assert_eq!(selected_path(&state), "/var/tmp/swapkit-spill.img");
    press(&mut state, KeyCode::Down);
    assert_eq!(selected_path(&state), "/dev/loop0");
}

#[test]
fn shift_tab_k_and_up_walk_the_devices_backward_and_wrap() {
    let mut state = fixture::state(Fixture::Normal);
    press(&mut state, KeyCode::BackTab);
    assert_eq!(selected_path(&state), "/var/tmp/swapkit-spill.img");
    ch(&mut state, 'k');
    assert_eq!(selected_path(&state), "/dev/loop1");
    press(&mut state, KeyCode::Up);
    assert_eq!(selected_path(&state), "/dev/loop0");
}

#[test]
fn s_cycles_every_sort_column_and_the_selection_stays_on_its_device() {
    let mut state = fixture::state(Fixture::Normal);
    ch(&mut state, 'j');
    let chosen = selected_path(&state);
    let mut seen = vec![state.sort];
    for _ in 0..6 {
        assert_eq!(ch(&mut state, 's'), Action::Redraw);
        assert_eq!(selected_path(&state), chosen);
        seen.push(state.sort);
    }
    assert_eq!(seen.first(), seen.last());
    seen.pop();
    seen.sort_by_key(|s| format!("{s:?}"));
    seen.dedup();
    assert_eq!(seen.len(), 6, "every column once");
}

#[test]
fn sorting_by_used_puts_the_fullest_device_first() {
    let mut state = fixture::state(Fixture::Normal);
    while state.sort != SortColumn::Used {
        ch(&mut state, 's');
    }
    let stats = state.stats.as_ref().unwrap();
    let used: Vec<f64> = state
        .device_order()
        .iter()
        .map(|&i| stats.devices[i].used_pages as f64 / stats.devices[i].total_pages as f64)
        .collect();
    assert!(used.windows(2).all(|w| w[0] >= w[1]), "{used:?}");
}

#[test]
fn f_toggles_freeze_and_reschedules_the_poll() {
    let mut state = fixture::state(Fixture::Normal);
    assert_eq!(ch(&mut state, 'f'), Action::Reschedule);
    assert!(state.frozen);
    assert_eq!(ch(&mut state, 'f'), Action::Reschedule);
    assert!(!state.frozen);
}

#[test]
fn plus_and_minus_stay_within_a_tenth_of_a_second_and_a_minute() {
    let mut state = fixture::state(Fixture::Normal);
    assert_eq!(ch(&mut state, '-'), Action::Reschedule);
    assert!(state.interval < Duration::from_secs(1));
    for _ in 0..20 {
        ch(&mut state, '-');
    }
    assert_eq!(state.interval, INTERVAL_MIN);
    assert!(
        state.message.as_ref().unwrap().is_error,
        "says it is at the limit"
    );
    let mut last = state.interval;
    for _ in 0..20 {
        ch(&mut state, '+');
        assert!(state.interval >= last);
        last = state.interval;
    }
    assert_eq!(state.interval, INTERVAL_MAX);
}

#[test]
fn an_interval_between_steps_moves_to_the_neighbouring_steps() {
    let mut state = State::new("test", Duration::from_millis(1_500), true);
    ch(&mut state, '+');
    assert_eq!(state.interval, Duration::from_secs(2));
    let mut state = State::new("test", Duration::from_millis(1_500), true);
    ch(&mut state, '-');
    assert_eq!(state.interval, Duration::from_secs(1));
    let state = State::new("test", Duration::from_millis(5), true);
    assert_eq!(
        state.interval, INTERVAL_MIN,
        "-d below the floor is clamped"
    );
}

#[test]
fn a_and_upper_a_ask_for_one_step_of_swap_async_max() {
    let mut state = fixture::state(Fixture::Normal);
    let current = state.stats.as_ref().unwrap().tunables.swap_async_max;
    assert_eq!(ch(&mut state, 'a'), Action::SetAsyncMax(current - 1));
    assert_eq!(ch(&mut state, 'A'), Action::SetAsyncMax(current + 1));
}

#[test]
fn swap_async_max_is_not_asked_past_its_limits_and_the_message_says_why() {
    let mut state = fixture::state(Fixture::Normal);
    let stats = state.stats.as_mut().unwrap();
    stats.tunables.swap_async_max = 1;
    assert_eq!(ch(&mut state, 'a'), Action::Redraw);
    assert!(state.message.as_ref().unwrap().text.contains("minimum"));

    let stats = state.stats.as_mut().unwrap();
    stats.tunables.swap_async_max = stats.tunables.nswbuf / 2;
    assert_eq!(ch(&mut state, 'A'), Action::Redraw);
    assert!(state.message.as_ref().unwrap().text.contains("maximum"));
}

#[test]
fn swap_async_max_is_not_asked_when_read_only_or_disconnected() {
    let mut state = fixture::state(Fixture::Normal);
    state.allow_tuning = false;
    assert_eq!(ch(&mut state, 'A'), Action::Redraw);
    assert!(state.message.as_ref().unwrap().text.contains("read-only"));

    let mut state = fixture::state(Fixture::Disconnected);
    assert_eq!(ch(&mut state, 'A'), Action::Redraw);
    assert!(
        state
            .message
            .as_ref()
            .unwrap()
            .text
            .contains("not connected")
    );

    let mut state = fixture::state(Fixture::NeverConnected);
    assert_eq!(ch(&mut state, 'a'), Action::Redraw);
    assert!(state.message.as_ref().unwrap().is_error);
}

#[test]
fn esc_clears_the_message() {
    let mut state = fixture::state(Fixture::Normal);
    ch(&mut state, 's');
    assert!(state.message.is_some());
    assert_eq!(press(&mut state, KeyCode::Esc), Action::Redraw);
    assert!(state.message.is_none());
    assert_eq!(press(&mut state, KeyCode::Esc), Action::None);
}

#[test]
fn keys_with_ctrl_or_alt_do_nothing_but_ctrl_c() {
    let mut state = fixture::state(Fixture::Normal);
    for modifiers in [KeyModifiers::CONTROL, KeyModifiers::ALT] {
        for c in ['a', 's', 'q', 'f'] {
            let key = KeyEvent::new(KeyCode::Char(c), modifiers);
            assert_eq!(
                handle_key(&mut state, &key),
                Action::None,
                "{modifiers:?}-{c}"
            );
        }
    }
    assert!(!state.frozen);
}

#[test]
fn key_releases_are_ignored_and_resizes_redraw() {
    let mut state = fixture::state(Fixture::Normal);
    let mut release = key(KeyCode::Char('q'));
    release.kind = KeyEventKind::Release;
    assert_eq!(handle_key(&mut state, &release), Action::None);
    assert_eq!(
        handle_event(&mut state, &Event::Resize(100, 30)),
        Action::Redraw
    );
    assert_eq!(handle_event(&mut state, &Event::FocusGained), Action::None);
}
