//! `swapctl top` over a built-in fixture instead of a daemon: try the TUI anywhere.
//!
//! ```text
//! cargo run -p swapctl --example top_fixture -- [normal|almost_full|full|draining|disconnected|never_connected]
//!     [--interval SECS] [--panic-at POLL]
//! ```
//! `--panic-at` makes the source panic on that poll, to see the terminal restored.

use std::process::ExitCode;
use std::time::Duration;

use swapctl::top::fixture::{Fixture, FixtureSource};
use swapctl::top::{self, TopOptions};

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok((source, opts)) => match top::run(source, opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("top_fixture: terminal: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("top_fixture: {err}");
            ExitCode::from(2)
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<(FixtureSource, TopOptions), String> {
    let mut kind = Fixture::Normal;
    let mut panic_at = None;
    let mut opts = TopOptions {
        source: "fixture".to_string(),
        ..TopOptions::default()
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--interval" | "-d" => {
                let value = args.next().ok_or("--interval needs seconds")?;
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("--interval {value}: not a number of seconds"))?;
                if !(secs.is_finite() && secs > 0.0) {
                    return Err(format!("--interval {value}: must be positive"));
                }
                opts.interval = Duration::from_secs_f64(secs.min(3600.0));
            }
            "--panic-at" => {
                let value = args.next().ok_or("--panic-at needs a poll number")?;
                panic_at = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--panic-at {value}: not a number"))?,
                );
            }
            name => {
                kind = Fixture::ALL
                    .into_iter()
                    .find(|k| k.name() == name)
                    .ok_or_else(|| format!("{name}: unknown fixture"))?;
            }
        }
    }
    opts.source = format!("fixture:{}", kind.name());
    let mut source = FixtureSource::new(kind);
    source.panic_at = panic_at;
    Ok((source, opts))
}
