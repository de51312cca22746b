//! How long one frame of `swapctl top` takes to render: every fixture at three terminal sizes,
//! drawn into ratatui's `TestBackend` (layout, widgets, and the diff against the last frame).
//!
//! Self-timed (`harness = false`): `cargo bench -p swapctl --bench top_render`. A frame must take
//! well under a millisecond, so a 0.1 s refresh costs the machine nothing noticeable.

use std::hint::black_box;
use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use swapctl::top::fixture::{self, Fixture};
use swapctl::top::render;

const FRAMES: u32 = 2_000;
const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{:<16} {:>8} {:>10}", "fixture", "size", "µs/frame");
    let mut worst: f64 = 0.0;
    for kind in Fixture::ALL {
        let mut state = fixture::state(kind);
        for (w, h) in SIZES {
            let mut terminal = Terminal::new(TestBackend::new(w, h))?;
            // Warm up: the first frame sizes the buffers.
            terminal.draw(|frame| render::draw(frame, &state))?;
            let start = Instant::now();
            for i in 0..FRAMES {
                // Alternate the selection so successive frames differ, as they do live.
                state.select_relative(if i % 2 == 0 { 1 } else { -1 });
                terminal.draw(|frame| render::draw(frame, black_box(&state)))?;
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(FRAMES);
            worst = worst.max(micros);
            println!(
                "{:<16} {:>8} {:>10.1}",
                kind.name(),
                format!("{w}x{h}"),
                micros
            );
        }
    }
    println!("worst: {worst:.1} µs/frame");
    Ok(())
}
