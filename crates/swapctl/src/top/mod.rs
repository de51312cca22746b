//! `swapctl top`: the live terminal view of a swap space.
//!
//! It polls a [`StatsSource`] (the daemon's socket, or anything else that can hand out
//! [`pager::PagerStats`]) every refresh interval and draws: the swap totals and hysteresis
//! state, one row per device with a usage bar, the selected device's free-range histogram,
//! the pbuf pools, paging throughput and latency.
//!
//! Three parts, as in ratatui's templates and `bottom`: [`state`] (plain data: what is shown),
//! [`render`] (a pure function of the state into a frame, one function per panel) and [`input`]
//! (keys to actions). Polling and the terminal live here and in `terminal`; nothing else
//! touches either, so every view renders from a [`fixture`] in tests.
//!
//! Invariants: the terminal is restored on every way out (return, error, panic, SIGTERM /
//! SIGINT / SIGHUP); a failing source never ends the loop, it shows "disconnected — retrying"
//! and keeps polling; the refresh interval stays in 0.1 s..=60 s.
//!
//! ```no_run
//! use swapctl::top::{self, StatsSource, TopOptions};
//!
//! struct Fixed;
//! impl StatsSource for Fixed {
//!     fn fetch(&mut self) -> Result<pager::PagerStats, String> {
//!         Ok(top::fixture::fixture(top::fixture::Fixture::Normal))
//!     }
//!     fn set_swap_async_max(&mut self, n: u64) -> Result<u64, String> {
//!         Ok(n)
//!     }
//! }
//! top::run(&mut Fixed, TopOptions::default())?;
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod fixture;
pub mod input;
pub mod render;
pub mod state;
mod terminal;

use std::io;
use std::time::{Duration, Instant};

use crossterm::event;

use input::Action;
use state::{Message, State, SystemMemory};

/// Where `top` gets its figures: the daemon's socket client, or a fake in tests.
pub trait StatsSource {
    /// One snapshot; `Err` says why none could be had (shown on screen, then retried).
    fn fetch(&mut self) -> Result<pager::PagerStats, String>;
    /// Ask for `swap_async_max = n`; `Ok` carries the value now in force (the pager clamps).
    fn set_swap_async_max(&mut self, n: u64) -> Result<u64, String>;
}

/// How `top` starts.
#[derive(Debug, Clone)]
pub struct TopOptions {
    /// Time between polls, clamped to 0.1 s..=60 s.
    pub interval: Duration,
    /// What the source is (the socket path), shown in the title bar.
    pub source: String,
    /// Whether `a` / `A` may change `swap_async_max`; `false` for a read-only view.
    pub allow_tuning: bool,
    /// Whether to read the machine's memory and kernel swap with `sysinfo` each poll.
    pub system_memory: bool,
}

impl Default for TopOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            source: "swapkit".to_string(),
            allow_tuning: true,
            system_memory: true,
        }
    }
}

/// The longest the loop sleeps before it looks at signals and the clock again.
const TICK: Duration = Duration::from_millis(100);
/// How long a message stays on the bottom line.
const MESSAGE_TTL: Duration = Duration::from_secs(5);

/// Run the TUI on the current terminal until `q`, Ctrl-C or a stop signal.
///
/// Errors are terminal errors only (the source's errors are shown, not returned); the terminal
/// is restored before this returns, whichever way it returns.
pub fn run(source: &mut dyn StatsSource, opts: TopOptions) -> io::Result<()> {
    let mut state = State::new(opts.source.clone(), opts.interval, opts.allow_tuning);
    let mut probe = SystemProbe::new(opts.system_memory);
    let _signals = terminal::SignalGuard::install()?;
    let mut guard = terminal::TerminalGuard::enter()?;
    poll(source, &mut state, &mut probe);
    let result = event_loop(source, &mut state, &mut probe, guard.terminal());
    drop(guard);
    result
}

/// Draw, wait for a key or the next poll, act; until quit or a stop signal.
fn event_loop(
    source: &mut dyn StatsSource,
    state: &mut State,
    probe: &mut SystemProbe,
    terminal: &mut terminal::Term,
) -> io::Result<()> {
    let mut next_poll = Instant::now() + state.interval;
    let mut dirty = true;
    let mut shown_message: Option<(Message, Instant)> = None;
    loop {
        if terminal::stop_requested() {
            return Ok(());
        }
        expire_message(state, &mut shown_message, &mut dirty);
        if dirty {
            terminal.draw(|frame| render::draw(frame, state))?;
            dirty = false;
        }
        let wait = next_poll
            .saturating_duration_since(Instant::now())
            .min(TICK);
        if event::poll(wait)? {
            let event = event::read()?;
            match input::handle_event(state, &event) {
                Action::None => {}
                Action::Redraw => dirty = true,
                Action::Reschedule => {
                    dirty = true;
                    next_poll = Instant::now();
                }
                Action::SetAsyncMax(n) => {
                    set_async_max(source, state, n);
                    dirty = true;
                }
                Action::Quit => return Ok(()),
            }
        }
        if Instant::now() >= next_poll {
            if !state.frozen {
                poll(source, state, probe);
                dirty = true;
            }
            next_poll = Instant::now() + state.interval;
        }
    }
}

/// Fetch one snapshot into the state, and the machine's memory beside it.
fn poll(source: &mut dyn StatsSource, state: &mut State, probe: &mut SystemProbe) {
    match source.fetch() {
        Ok(stats) => state.apply(stats),
        Err(err) => state.poll_failed(err),
    }
    if let Some(memory) = probe.sample() {
        state.system = Some(memory);
    }
}

/// Carry out `a` / `A`: the new value shows at once (before the next poll), so pressing twice
/// steps twice.
fn set_async_max(source: &mut dyn StatsSource, state: &mut State, n: u64) {
    match source.set_swap_async_max(n) {
        Ok(now) => {
            if let Some(stats) = &mut state.stats {
                stats.tunables.swap_async_max = now;
                stats.pbufs.async_write.max = now;
            }
            state.set_message(format!("swap_async_max is now {now}"), false);
        }
        Err(err) => state.set_message(format!("cannot set swap_async_max to {n}: {err}"), true),
    }
}

/// Clear a message once it has been on screen for [`MESSAGE_TTL`].
fn expire_message(state: &mut State, shown: &mut Option<(Message, Instant)>, dirty: &mut bool) {
    match (&state.message, shown.as_ref()) {
        (None, _) => *shown = None,
        (Some(m), Some((seen, since))) if m == seen => {
            if since.elapsed() >= MESSAGE_TTL {
                state.message = None;
                *shown = None;
                *dirty = true;
            }
        }
        (Some(m), _) => *shown = Some((m.clone(), Instant::now())),
    }
}

/// The machine's memory and kernel swap, read with `sysinfo` (or not at all).
struct SystemProbe(Option<sysinfo::System>);

impl SystemProbe {
    fn new(enabled: bool) -> Self {
        Self(enabled.then(sysinfo::System::new))
    }

    fn sample(&mut self) -> Option<SystemMemory> {
        let system = self.0.as_mut()?;
        system.refresh_memory();
        Some(SystemMemory {
            mem_total: system.total_memory(),
            mem_used: system.used_memory(),
            swap_total: system.total_swap(),
            swap_used: system.used_swap(),
        })
    }
}
