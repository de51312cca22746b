//! How long one frame of `swapctl top` takes to render: every fixture at three terminal sizes,
//! drawn into ratatui's `TestBackend` (layout, widgets, and the diff against the last frame).
//!
//! Self-timed (`harness = false`): `cargo bench -p swapctl --bench top_render`. A frame must take
//! well under a millisecond, so a 0.1 s refresh costs the machine nothing noticeable.
//!
//! Three figures per line: wall-clock time and CPU time of this thread for a whole
//! `Terminal::draw` (our render plus ratatui's diff and backend write), and the CPU time of our
//! render alone (into the frame, no diff). On a shared machine the wall clock also counts the
//! time other processes held the core; the CPU time is the cost.

use std::hint::black_box;
use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use swapctl::top::fixture::{self, Fixture};
use swapctl::top::render;

const FRAMES: u32 = 2_000;
const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

/// CPU time this thread has used, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{:<16} {:>8} {:>12} {:>12} {:>14}",
        "fixture", "size", "wall µs/fr", "cpu µs/fr", "render cpu µs"
    );
    let mut worst: f64 = 0.0;
    for kind in Fixture::ALL {
        let mut state = fixture::state(kind);
        for (w, h) in SIZES {
            let mut terminal = Terminal::new(TestBackend::new(w, h))?;
            // Warm up: the first frame sizes the buffers.
            terminal.draw(|frame| render::draw(frame, &state))?;
            let start = Instant::now();
            let cpu_start = thread_cpu_seconds();
            for i in 0..FRAMES {
                // Alternate the selection so successive frames differ, as they do live.
                state.select_relative(if i % 2 == 0 { 1 } else { -1 });
                terminal.draw(|frame| render::draw(frame, black_box(&state)))?;
            }
            let wall = start.elapsed().as_secs_f64() * 1e6 / f64::from(FRAMES);
            let cpu = (thread_cpu_seconds() - cpu_start) * 1e6 / f64::from(FRAMES);
            worst = worst.max(cpu);

            let render_start = thread_cpu_seconds();
            for i in 0..FRAMES {
                state.select_relative(if i % 2 == 0 { 1 } else { -1 });
                terminal.current_buffer_mut().reset();
                let mut frame = terminal.get_frame();
                render::draw(&mut frame, black_box(&state));
            }
            let render = (thread_cpu_seconds() - render_start) * 1e6 / f64::from(FRAMES);
            println!(
                "{:<16} {:>8} {:>12.1} {:>12.1} {:>14.1}",
                kind.name(),
                format!("{w}x{h}"),
                wall,
                cpu,
                render
            );
        }
    }
    println!("worst: {worst:.1} µs of CPU per frame");
    Ok(())
}
