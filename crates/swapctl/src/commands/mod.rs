//! Running a parsed command line: each command turns into calls on the client, the daemon or
//! the device crate, and every failure into one [`CliError`] line with an exit code.

mod admin;
mod bsd;
mod devices;
mod man;
mod run;
mod serve;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::output::{CliError, print};

/// FreeBSD's options and the commands exclude each other (`swapctl -l list` is an error), but
/// clap's bash script offers the commands after `swapctl -l ` too: past the first word, keep
/// only the options (the commands follow them in the word list, `mkswap` first).
fn bash_no_commands_after_options(script: &str) -> String {
    let head = "        swapctl)\n            opts=\"";
    let Some(at) = script.find(head) else {
        return script.to_owned();
    };
    let Some(eol) = script[at + head.len()..].find('\n') else {
        return script.to_owned();
    };
    let cut = at + head.len() + eol + 1;
    format!(
        "{}            [[ ${{COMP_CWORD}} -gt 1 ]] && opts=\"${{opts%% mkswap *}}\"\n{}",
        &script[..cut],
        &script[cut..]
    )
}

/// Run `cli`; `Ok(code)` is the exit status of a command that reports through it
/// (`off`, `on`), 0 for the others.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    let Some(command) = cli.command else {
        if cli.bsd.any_action() {
            return bsd::run(&cli.bsd);
        }
        if cli.bsd.unit.human {
            // `swapctl -h` alone: the help util-linux users expect.
            let mut cmd = Cli::command();
            print(&format!("{}\n", cmd.render_help()));
            return Ok(0);
        }
        return Err(CliError::usage(
            "usage",
            "a command or one of -a, -d, -A, -U, -l, -s is required (swapctl --help lists them)",
        ));
    };
    match command {
        Command::Mkswap(a) => devices::mkswap(&a),
        Command::Loop(c) => devices::loop_command(c.command),
        Command::Daemon(a) => serve::daemon(a),
        Command::On(a) => admin::on(&a),
        Command::Off(a) => admin::off(&a),
        Command::List(a) => admin::list(&a),
        Command::Summary(a) => admin::summary(&a),
        Command::Status(a) => admin::status(&a),
        Command::Frag(a) => admin::frag(&a),
        Command::Set(a) => admin::set(&a),
        Command::Load(a) => crate::load::run(&a),
        Command::Top(a) => admin::top(&a),
        Command::Run(a) => run::run(&a),
        Command::Completions(a) => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "swapctl", &mut buf);
            let mut text = String::from_utf8_lossy(&buf).into_owned();
            if a.shell == clap_complete::Shell::Bash {
                text = bash_no_commands_after_options(&text);
            }
            print(&text);
            Ok(0)
        }
        Command::Man(a) => man::run(&a),
    }
}
