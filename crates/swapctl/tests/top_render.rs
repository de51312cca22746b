//! Every view of `swapctl top`, rendered from fixed fixtures into a test terminal and kept as
//! insta snapshots under `snapshots/top/`.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use swapctl::top::fixture::{self, Fixture};
use swapctl::top::render;
use swapctl::top::state::State;

/// The sizes every fixture is drawn at: the classic terminal, a roomy one, a narrow one.
const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (60, 20)];

fn render(state: &State, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| render::draw(frame, state)).unwrap();
    terminal.backend().clone()
}

fn snapshot(name: &str, backend: &TestBackend) {
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots/top"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, backend);
    });
}

#[test]
fn every_fixture_renders_at_every_size() {
    for kind in Fixture::ALL {
        let state = fixture::state(kind);
        for (w, h) in SIZES {
            snapshot(&format!("{}_{w}x{h}", kind.name()), &render(&state, w, h));
        }
    }
}

#[test]
fn help_overlay_renders_over_the_panels() {
    let mut state = fixture::state(Fixture::Normal);
    state.help = true;
    for (w, h) in SIZES {
        snapshot(&format!("help_{w}x{h}"), &render(&state, w, h));
    }
}

#[test]
fn frozen_sorted_and_selected_views_render() {
    let mut state = fixture::state(Fixture::Normal);
    state.frozen = true;
    state.sort = swapctl::top::state::SortColumn::Used;
    state.select_relative(1);
    state.set_message("display frozen: press f to resume", false);
    snapshot("frozen_sorted_80x24", &render(&state, 80, 24));

    let mut state = fixture::state(Fixture::Normal);
    state.set_message("cannot set swap_async_max to 33: permission denied", true);
    snapshot("error_message_80x24", &render(&state, 80, 24));
}

/// Issue 25: the programs running on the swap space (`swapctl run`) get a panel under the
/// devices, with their faults per second and their read errors in red; without any the
/// layout is the one above.
#[test]
fn the_processes_panel_shows_each_program_run_on_swapkit() {
    use ratatui::style::Color;
    let state = fixture::state_with_processes(Fixture::Normal);
    for (w, h) in [(80, 24), (120, 40)] {
        snapshot(&format!("processes_{w}x{h}"), &render(&state, w, h));
    }
    let backend = render(&state, 120, 40);
    find(&backend, "Processes (3)");
    find(&backend, "postgres -D /var/lib/postgresql/16/main");
    let (_, row) = find(&backend, "sort --buffer-size");
    let (x, y) = find(&backend, "RdErr");
    let errors = &backend.buffer()[(x + 4, row)];
    assert_eq!((errors.symbol(), errors.fg), ("2", Color::Red), "row {y}");
    let plain = render(&fixture::state(Fixture::Normal), 80, 24);
    assert!(std::panic::catch_unwind(|| find(&plain, "Processes")).is_err());
}

#[test]
fn a_tiny_terminal_asks_for_room_instead_of_drawing_garbage() {
    let state = fixture::state(Fixture::Normal);
    snapshot("tiny_20x6", &render(&state, 20, 6));
}

/// Find the first cell of `text` on screen.
fn find(backend: &TestBackend, text: &str) -> (u16, u16) {
    let buffer = backend.buffer();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        if let Some(byte) = line.find(text) {
            let x = line[..byte].chars().count() as u16;
            return (x, y);
        }
    }
    panic!("{text:?} not on screen");
}

#[test]
fn the_hysteresis_state_is_green_yellow_or_red() {
    use ratatui::style::Color;
    let cases = [
        (Fixture::Normal, " ok ", Color::Green),
        (Fixture::AlmostFull, " almost full ", Color::Yellow),
        (Fixture::Full, " full ", Color::Red),
    ];
    for (kind, label, color) in cases {
        let backend = render(&fixture::state(kind), 80, 24);
        let (x, y) = find(&backend, &format!("state {label}"));
        let cell = &backend.buffer()[(x + 7, y)];
        let shown = if color == Color::Green {
            cell.fg
        } else {
            cell.bg
        };
        assert_eq!(shown, color, "{label}");
    }
}

#[test]
fn stale_figures_are_dimmed_while_disconnected() {
    use ratatui::style::Color;
    let backend = render(&fixture::state(Fixture::Disconnected), 80, 24);
    let (x, y) = find(&backend, "/dev/loop1");
    assert_eq!(backend.buffer()[(x, y)].fg, Color::DarkGray);
    let backend = render(&fixture::state(Fixture::Normal), 80, 24);
    let (x, y) = find(&backend, "/dev/loop1");
    assert_ne!(backend.buffer()[(x, y)].fg, Color::DarkGray);
}

#[test]
fn the_selected_device_row_is_highlighted_and_drives_the_lower_panels() {
    use ratatui::style::Modifier;
    let mut state = fixture::state(Fixture::Normal);
    state.select_relative(1);
    let backend = render(&state, 80, 24);
    let (x, y) = find(&backend, "/dev/loop1");
    assert!(
        backend.buffer()[(x, y)]
            .modifier
            .contains(Modifier::REVERSED)
    );
    find(&backend, "Free ranges of loop1");
    find(&backend, "loop1 latency");
}

#[test]
fn a_failed_device_says_so_in_red_in_its_bar() {
    use ratatui::style::Color;
    let mut state = fixture::state(Fixture::Normal);
    let stats = state.stats.as_mut().unwrap();
    stats.devices[2].state = pager::DeviceState::Failed;
    let backend = render(&state, 80, 24);
    let (x, y) = find(&backend, "FAILED");
    assert_eq!(backend.buffer()[(x, y)].fg, Color::Red);
    let (_, name_row) = find(&backend, "spill.img");
    assert_eq!(y, name_row, "on the failed device's row");
}

#[test]
fn more_devices_than_rows_scroll_to_keep_the_selection_visible() {
    let mut state = fixture::state(Fixture::Normal);
    let stats = state.stats.as_mut().unwrap();
    let template = stats.devices[0].clone();
    for id in 3..12 {
        let mut d = template.clone();
        d.id = id;
        d.path = format!("/dev/loop{id}");
        stats.devices.push(d);
    }
    for _ in 0..11 {
        state.select_relative(1);
    }
    let backend = render(&state, 80, 24);
    find(&backend, "/dev/loop11");
    find(&backend, "Total");
    find(&backend, "Free ranges of loop11");
}

/// Issue #22: a remote area whose server is gone shows RECONNECTING, and the bottom line
/// says why (its last error) instead of the keys.
#[test]
fn a_reconnecting_area_shows_its_state_and_last_error() {
    let mut state = fixture::state(Fixture::Normal);
    let stats = state.stats.as_mut().unwrap();
    let d = &mut stats.devices[0];
    d.state = pager::DeviceState::Reconnecting { down_ms: 1500 };
    d.last_error = Some(pager::LastError {
        at_unix_ms: 1,
        what: "connection lost: EOF: the server closed the connection; reconnecting: \
               ECONNREFUSED: connect: Connection refused"
            .into(),
    });
    snapshot("reconnecting_80x24", &render(&state, 80, 24));
}
