//! preload: `swapctl run`'s library, loaded into an unmodified program with `LD_PRELOAD`,
//! which pages the program's large private anonymous mappings through the swapkit daemon.
//!
//! # How it works
//! When the dynamic loader maps the library, before the program's `main`, a constructor
//! (`.init_array`) reads the settings `swapctl run` put in the environment
//! ([`settings`]), connects to the daemon, creates one anonymous object for the program's
//! pages and starts a [`region::Space`] whose pages live in that object ([`remote`]).
//! Then a scanner thread ([`agent`]) reads `/proc/self/maps` every few milliseconds and
//! hands every private anonymous mapping of at least the minimum size to the space
//! ([`maps`]): the region's handler threads serve its faults, write its cold pages to the
//! daemon and read them back, keeping at most the limit resident. `munmap`, `mremap` and
//! `madvise` reach the region as userfaultfd events; a `fork` brings every page back in
//! first (the kernel gives the child the memory without the region), and the child runs
//! unpaged until it `exec`s ([`agent::after_fork_child`] says why); `exec` starts afresh
//! (the variables stay set), and the old image's connections close with it, which frees
//! its swap.
//!
//! # Never a danger to its host
//! - The library's Rust code allocates from its own reservation ([`arena`]), never with
//!   the program's `malloc`, and the scanner never hands that memory, nor the stacks of
//!   the library's threads, to the region.
//! - Every thread the library starts blocks every signal ([`threads`]).
//! - A setup that fails leaves the program running unpaged, with one line on standard
//!   error; with `SWAPKIT_STRICT=1` (`swapctl run --strict`) the program is not run: one
//!   line, exit status 8. A panic in setup is caught and treated the same.
//! - Loaded without `swapctl run` (no `SWAPKIT_SOCKET`), it does nothing at all.

pub mod agent;
pub mod arena;
pub mod maps;
pub mod remote;
pub mod settings;
pub mod threads;

#[global_allocator]
pub static ARENA: arena::Arena = arena::Arena::new();

/// Writes `line` and a newline to standard error in one `write(2)`, with no lock (a fork
/// child may have inherited Rust's stderr lock taken).
pub fn say(line: &str) {
    let mut b = Vec::with_capacity(line.len() + 1);
    b.extend_from_slice(line.as_bytes());
    b.push(b'\n');
    // SAFETY: writes the buffer's initialised bytes to descriptor 2.
    unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
}

/// A setup that failed: one line, then the program runs unpaged, or (strict) ends with
/// status 8.
pub fn failed(strict: bool, why: &str) {
    if strict {
        say(&format!("swapkit: {why}"));
        // SAFETY: ends the process at once, as intended: nothing of the program has run.
        unsafe { libc::_exit(8) };
    }
    say(&format!("swapkit: {why}; the program runs unpaged"));
}

/// Runs when the library is loaded (see the crate doc). Skipped in the crate's own test
/// binaries, which link the library as an rlib.
extern "C" fn on_load() {
    let started = std::panic::catch_unwind(agent::start);
    match started {
        Ok(Ok(true)) => {
            // SAFETY: registers plain functions; they run in the forking thread.
            unsafe {
                libc::pthread_atfork(
                    Some(agent::before_fork),
                    Some(agent::after_fork_parent),
                    Some(agent::after_fork_child),
                )
            };
        }
        Ok(Ok(false)) => {}
        Ok(Err((strict, why))) => failed(strict, &why),
        Err(_) => failed(
            std::env::var(settings::STRICT).is_ok_and(|v| v == "1"),
            "setting up panicked",
        ),
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;
