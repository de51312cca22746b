//! Keys to actions: htop/bottom conventions.
//!
//! Handling a key only changes [`State`] and says what the caller must do next ([`Action`]);
//! it never talks to the daemon. That keeps every key testable without a terminal or socket.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::State;

/// What the event loop does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed on screen.
    None,
    /// State changed: draw again.
    Redraw,
    /// The refresh interval or the frozen flag changed: reschedule the poll (and draw).
    Reschedule,
    /// Ask the daemon to set `swap_async_max` to this value, then draw.
    SetAsyncMax(u64),
    Quit,
}

/// Map one terminal event to an action. Resizes redraw; mouse and focus events are ignored.
pub fn handle_event(state: &mut State, event: &Event) -> Action {
    match event {
        Event::Key(key) => handle_key(state, key),
        Event::Resize(..) => Action::Redraw,
        _ => Action::None,
    }
}

/// Map one key press to an action, changing `state` on the way.
///
/// While the help overlay is open only `Esc` / `?` (close it) and the quit keys act, so a key
/// pressed to dismiss help does not also re-sort or retune behind it. Key releases and repeats
/// (reported by some terminals) are ignored, so one press is one action; so are keys held with
/// Ctrl (but Ctrl-C) or Alt.
pub fn handle_key(state: &mut State, key: &KeyEvent) -> Action {
    if key.kind != KeyEventKind::Press {
        return Action::None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return Action::Quit;
    }
    // Ctrl-A or Alt-s are not our keys: better nothing than a surprise retune.
    if ctrl || key.modifiers.contains(KeyModifiers::ALT) {
        return Action::None;
    }
    if state.help {
        return match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Esc | KeyCode::Char('?') => {
                state.help = false;
                Action::Redraw
            }
            _ => Action::None,
        };
    }
    match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => {
            state.help = true;
            Action::Redraw
        }
        KeyCode::Esc => {
            if state.message.take().is_some() {
                Action::Redraw
            } else {
                Action::None
            }
        }
        KeyCode::Tab | KeyCode::Down | KeyCode::Char('j') => {
            state.select_relative(1);
            Action::Redraw
        }
        KeyCode::BackTab | KeyCode::Up | KeyCode::Char('k') => {
            state.select_relative(-1);
            Action::Redraw
        }
        KeyCode::Char('f') => {
            state.frozen = !state.frozen;
            let text = if state.frozen {
                "display frozen: press f to resume"
            } else {
                "display resumed"
            };
            state.set_message(text, false);
            Action::Reschedule
        }
        KeyCode::Char('+') | KeyCode::Char('=') => {
            change_interval(state, State::interval_up, "slowest")
        }
        KeyCode::Char('-') | KeyCode::Char('_') => {
            change_interval(state, State::interval_down, "fastest")
        }
        KeyCode::Char('s') => {
            state.sort = state.sort.next();
            let text = format!("sorted by {}", state.sort.label());
            state.set_message(text, false);
            Action::Redraw
        }
        KeyCode::Char('a') => tune_async_max(state, -1),
        KeyCode::Char('A') => tune_async_max(state, 1),
        _ => Action::None,
    }
}

fn change_interval(state: &mut State, step: fn(&mut State) -> bool, limit: &str) -> Action {
    if step(state) {
        let text = format!("refresh every {:.1} s", state.interval.as_secs_f64());
        state.set_message(text, false);
    } else {
        let text = format!(
            "refresh is already the {limit}: every {:.1} s",
            state.interval.as_secs_f64()
        );
        state.set_message(text, true);
    }
    Action::Reschedule
}

/// `a` / `A`: one step down or up of `swap_async_max`, inside the pager's `1..=nswbuf/2`.
///
/// The request goes out only when it can succeed as far as we know; otherwise the message line
/// says why not (tuning disabled, no daemon, already at the limit), so a key never does nothing
/// silently.
fn tune_async_max(state: &mut State, step: i64) -> Action {
    if !state.allow_tuning {
        state.set_message(
            "swap_async_max is read-only here (top was started with --read-only)",
            true,
        );
        return Action::Redraw;
    }
    let tunables = match (&state.stats, state.is_connected()) {
        (Some(stats), true) => stats.tunables,
        _ => {
            state.set_message(
                "cannot change swap_async_max: not connected to the daemon",
                true,
            );
            return Action::Redraw;
        }
    };
    let current = tunables.swap_async_max;
    let limit = (tunables.nswbuf / 2).max(1);
    if step < 0 && current <= 1 {
        state.set_message("swap_async_max is already at its minimum, 1", true);
        return Action::Redraw;
    }
    if step > 0 && current >= limit {
        let text = format!("swap_async_max is already at its maximum, {limit} (nswbuf/2)");
        state.set_message(text, true);
        return Action::Redraw;
    }
    let target = if step < 0 { current - 1 } else { current + 1 };
    Action::SetAsyncMax(target)
}
