//! Every view of `swapctl top`, rendered from fixed fixtures into a test terminal and kept as
//! insta snapshots under `snapshots/top/`.

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
