//! The `swapctl` binary: parse, run, print one error line, exit.

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use swapctl::cli::Cli;
use swapctl::output::exit::{EX_OK, EX_USAGE};

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(EX_OK);
            }
            eprintln!("swapctl: {}", usage_line(&e, &args));
            std::process::exit(EX_USAGE);
        }
    };
    match swapctl::commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("swapctl: {e}");
            std::process::exit(if e.code == 0 { 1 } else { e.code });
        }
    }
}

/// A clap error as `<what>: <why>`: the command (or `usage`), then clap's first line
/// without its `error: ` and with where to look for help.
fn usage_line(e: &clap::Error, args: &[std::ffi::OsString]) -> String {
    let sub = args
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| !a.starts_with('-'))
        .filter(|a| {
            use clap::CommandFactory;
            Cli::command().find_subcommand(a).is_some()
        });
    // clap's message runs up to the first blank line (a list of missing arguments is
    // indented below its first line): joined into one line.
    let rendered = e.render().to_string();
    let body: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let first = body.join(" ");
    let mut why = first.strip_prefix("error: ").unwrap_or(&first).to_owned();
    if why.is_empty() {
        why = "invalid arguments".into();
    }
    if let Some(ContextValue::String(s)) = e.get(ContextKind::SuggestedArg) {
        why.push_str(&format!(" (did you mean '{s}'?)"));
    }
    match sub {
        Some(s) => format!("{s}: {why} (see 'swapctl {s} --help')"),
        None => format!("usage: {why} (see 'swapctl --help')"),
    }
}
