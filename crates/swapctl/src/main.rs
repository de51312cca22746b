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

/// A clap error as `<what>: <why>`: the command (`loop list` for a subcommand's, or
/// `usage`), then clap's first line without its `error: `, clap's suggestion, and where to
/// look for help.
fn usage_line(e: &clap::Error, args: &[std::ffi::OsString]) -> String {
    let sub = command_path(args);
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
    // clap puts its suggestions in a tip below the blank line, the closest last: that
    // one, in the line.
    let suggested = [ContextKind::SuggestedSubcommand, ContextKind::SuggestedArg]
        .into_iter()
        .find_map(|k| match e.get(k) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) => v.last().cloned(),
            _ => None,
        });
    if let Some(s) = suggested {
        why.push_str(&format!(" (did you mean '{s}'?)"));
    }
    if sub.is_empty() {
        format!("usage: {why} (see 'swapctl --help')")
    } else {
        format!("{sub}: {why} (see 'swapctl {sub} --help')")
    }
}

/// The command and subcommands the arguments name before anything else (`loop list` for
/// `swapctl loop list -a`), empty when the first argument is no command.
fn command_path(args: &[std::ffi::OsString]) -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut path: Vec<String> = Vec::new();
    for a in args.iter().skip(1) {
        let Some(a) = a.to_str().filter(|a| !a.starts_with('-')) else {
            break;
        };
        let Some(next) = cmd.find_subcommand(a) else {
            break;
        };
        path.push(next.get_name().to_owned());
        let next = next.clone();
        cmd = next;
    }
    path.join(" ")
}
