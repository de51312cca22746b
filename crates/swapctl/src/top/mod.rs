//! `swapctl top`: the live terminal view of a swap space.
//!
//! It polls a [`StatsSource`] (the daemon's socket, or anything else that can hand out
//! [`pager::PagerStats`]) every refresh interval and draws: the swap totals and hysteresis
//! state, one row per device with a usage bar, the selected device's free-range histogram,
//! the pbuf pools, paging throughput and latency, and the programs running on the swap space
//! (`swapctl run`) when there are any.
//!
//! Three parts, as in ratatui's templates and `bottom`: [`state`] (plain data: what is shown),
//! [`render`] (a pure function of the state into a frame, one function per panel) and [`input`]
//! (keys to actions). Polling and the terminal live here and in `terminal`; nothing else
//! touches either, so every view renders from a [`fixture`] in tests.
//!
//! Invariants: the terminal is restored on every way out (return, error, panic, SIGTERM /
//! SIGINT / SIGHUP, the terminal hanging up); a failing source never ends the loop, it shows
//! "disconnected — retrying" and keeps polling; the source runs on its own thread, so neither
//! keys nor signals ever wait for it; the loop sleeps in the kernel between ticks, never
//! spins; the refresh interval stays in 0.1 s..=60 s.
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
//! top::run(Fixed, TopOptions::default())?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod daemon_source;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod input;
pub mod render;
pub mod state;
mod terminal;

pub use daemon_source::DaemonSource;

use std::io;
use std::time::{Duration, Instant};

use control::proto::ProcessUsage;
use crossbeam_channel::{Receiver, Sender};
use crossterm::event;

use input::Action;
use state::{Message, State, SystemMemory};

/// Where `top` gets its figures: the daemon's socket client, or a fake in tests.
pub trait StatsSource {
    /// One snapshot; `Err` says why none could be had (shown on screen, then retried).
    fn fetch(&mut self) -> Result<pager::PagerStats, String>;
    /// One snapshot with the programs running on the swap space (`swapctl run`), what `top`
    /// polls; a source that knows no programs has none (the default).
    fn fetch_with_processes(&mut self) -> Result<(pager::PagerStats, Vec<ProcessUsage>), String> {
        self.fetch().map(|stats| (stats, Vec::new()))
    }
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

/// The longest the loop sleeps before it looks at signals, the terminal and the clock again.
const TICK: Duration = Duration::from_millis(100);
/// How long a message stays on the bottom line.
const MESSAGE_TTL: Duration = Duration::from_secs(5);

/// What the event loop asks of the poller thread.
enum Ask {
    Fetch,
    SetAsyncMax(u64),
}

/// What the poller thread answers.
enum Answer {
    Fetched(Result<Box<(pager::PagerStats, Vec<ProcessUsage>)>, String>),
    Set(u64, Result<u64, String>),
    /// The source panicked: the payload, re-raised on the TUI's thread once the terminal is
    /// restored.
    Panicked(Box<dyn std::any::Any + Send>),
}

/// Run the TUI on the current terminal until `q`, Ctrl-C, a stop signal, or the terminal
/// going away (a hang-up, EOF or EIO on the tty).
///
/// The source runs on a thread of its own (the poller), so a slow or hung daemon never
/// freezes the keys, and a stop is never held up by a call in progress: the loop leaves the
/// poller behind. Errors are terminal errors only (the source's errors are shown, not
/// returned); the terminal is restored before this returns, whichever way it returns. A panic
/// in the source is re-raised here after the terminal is restored.
pub fn run<S: StatsSource + Send + 'static>(source: S, opts: TopOptions) -> io::Result<()> {
    let mut state = State::new(opts.source.clone(), opts.interval, opts.allow_tuning);
    let mut probe = SystemProbe::new(opts.system_memory);
    let _signals = terminal::SignalGuard::install()?;
    let tty = terminal::Tty::open();
    let (ask, answers) = start_poller(source)?;
    let mut guard = terminal::TerminalGuard::enter()?;
    let keys = start_input()?;
    let channels = Channels {
        ask: &ask,
        answers: &answers,
        keys: &keys,
    };
    let result = event_loop(&channels, &mut state, &mut probe, &tty, guard.terminal());
    drop(guard);
    match result {
        Ok(Exit::Done) => Ok(()),
        Ok(Exit::Panicked(payload)) => std::panic::resume_unwind(payload),
        Err(e) if terminal::is_gone_error(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Start the poller: it owns the source and answers each [`Ask`] in turn. It ends when the
/// event loop drops its sender, after the call in progress.
fn start_poller<S: StatsSource + Send + 'static>(
    mut source: S,
) -> io::Result<(Sender<Ask>, Receiver<Answer>)> {
    let (ask_tx, ask_rx) = crossbeam_channel::unbounded::<Ask>();
    let (ans_tx, ans_rx) = crossbeam_channel::unbounded::<Answer>();
    std::thread::Builder::new()
        .name("top-poller".into())
        .spawn(move || {
            for ask in ask_rx {
                let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match ask {
                    Ask::Fetch => Answer::Fetched(source.fetch_with_processes().map(Box::new)),
                    Ask::SetAsyncMax(n) => Answer::Set(n, source.set_swap_async_max(n)),
                }));
                let answer = answer.unwrap_or_else(Answer::Panicked);
                let stop = matches!(answer, Answer::Panicked(_));
                if ans_tx.send(answer).is_err() || stop {
                    return;
                }
            }
        })?;
    Ok((ask_tx, ans_rx))
}

/// Read terminal events on a thread of their own: crossterm's reader can spin or block on a
/// terminal that hung up, and the event loop must still see the stop flag and the hang-up.
/// The thread ends after the first error, or when the event loop is gone.
fn start_input() -> io::Result<Receiver<io::Result<Option<event::Event>>>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("top-input".into())
        .spawn(move || {
            loop {
                // `None` each quiet tick: a send that fails tells us the event loop is gone.
                let next = match event::poll(TICK) {
                    Ok(false) => Ok(None),
                    Ok(true) => event::read().map(Some),
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                if tx.send(next).is_err() || failed {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// The event loop's three channels: requests to the poller, its answers, terminal events.
struct Channels<'a> {
    ask: &'a Sender<Ask>,
    answers: &'a Receiver<Answer>,
    keys: &'a Receiver<io::Result<Option<event::Event>>>,
}

enum Exit {
    Done,
    Panicked(Box<dyn std::any::Any + Send>),
}

/// Draw, wait for a key, an answer or the next poll, act; until quit, a stop signal or the
/// terminal going away. At most one fetch is outstanding: a slow source lowers the refresh
/// rate instead of piling up requests.
fn event_loop(
    ch: &Channels<'_>,
    state: &mut State,
    probe: &mut SystemProbe,
    tty: &terminal::Tty,
    terminal: &mut terminal::Term,
) -> io::Result<Exit> {
    let mut next_poll = Instant::now();
    let mut fetching = false;
    let mut dirty = true;
    let mut shown_message: Option<(Message, Instant)> = None;
    loop {
        if terminal::stop_requested() || tty.gone() {
            return Ok(Exit::Done);
        }
        if Instant::now() >= next_poll {
            if !state.frozen && !fetching {
                fetching = ch.ask.send(Ask::Fetch).is_ok();
            }
            next_poll = Instant::now() + state.interval;
        }
        expire_message(state, &mut shown_message, &mut dirty);
        if dirty {
            terminal.draw(|frame| render::draw(frame, state))?;
            dirty = false;
        }
        let wait = next_poll
            .saturating_duration_since(Instant::now())
            .min(TICK);
        // Sleeps in the kernel until a key, an answer or the tick: never spins.
        crossbeam_channel::select! {
            recv(ch.keys) -> event => {
                // The input thread is gone only after reporting an error.
                let Ok(event) = event else { return Ok(Exit::Done) };
                let Some(event) = event? else { continue };
                match input::handle_event(state, &event) {
                    Action::None => {}
                    Action::Redraw => dirty = true,
                    Action::Reschedule => {
                        dirty = true;
                        next_poll = Instant::now();
                    }
                    Action::SetAsyncMax(n) => {
                        let _ = ch.ask.send(Ask::SetAsyncMax(n));
                    }
                    Action::Quit => return Ok(Exit::Done),
                }
            }
            recv(ch.answers) -> answer => {
                match answer {
                    Ok(answer) => {
                        if let Some(exit) = take_answer(answer, state, probe, &mut fetching) {
                            return Ok(exit);
                        }
                        dirty = true;
                    }
                    // The poller ended without a panic report: nothing left to show.
                    Err(_) => return Ok(Exit::Done),
                }
            }
            default(wait) => {}
        }
    }
}

/// Apply one answer of the poller; `Some` ends the loop (the source panicked).
fn take_answer(
    answer: Answer,
    state: &mut State,
    probe: &mut SystemProbe,
    fetching: &mut bool,
) -> Option<Exit> {
    match answer {
        Answer::Fetched(r) => {
            *fetching = false;
            match r {
                Ok(answer) => {
                    let (stats, processes) = *answer;
                    for p in &processes {
                        state
                            .users
                            .entry(p.uid)
                            .or_insert_with(|| crate::format::user_name(p.uid));
                    }
                    state.apply_with_processes(stats, processes);
                }
                Err(err) => state.poll_failed(err),
            }
            if let Some(memory) = probe.sample() {
                state.system = Some(memory);
            }
        }
        Answer::Set(n, r) => show_set(state, n, r),
        Answer::Panicked(p) => return Some(Exit::Panicked(p)),
    }
    None
}

/// Show the outcome of `a` / `A`: the new value shows at once (before the next poll), so
/// pressing twice steps twice.
fn show_set(state: &mut State, n: u64, r: Result<u64, String>) {
    match r {
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
