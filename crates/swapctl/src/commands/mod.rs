//! Running a parsed command line: each command turns into calls on the client, the daemon or
//! the device crate, and every failure into one [`CliError`] line with an exit code.

mod admin;
mod devices;
mod serve;

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::client::ClientError;

/// A command's failure: printed as `swapctl: <message>`, exits with `code`.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    pub fn new(what: impl std::fmt::Display, why: impl std::fmt::Display) -> CliError {
        CliError {
            message: format!("{what}: {why}"),
            code: 1,
        }
    }

    pub fn with_code(mut self, code: i32) -> CliError {
        self.code = code;
        self
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        match &e {
            ClientError::Connect { .. } | ClientError::Permission { .. } => CliError {
                message: e.to_string(),
                code: 1,
            },
            _ => CliError::new("daemon", e),
        }
    }
}

/// Write to stdout; a closed pipe (`swapctl list | head -1`) is not an error.
pub(crate) fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Run `cli`; `Ok(code)` is the exit status of a command that reports through it
/// (`off`, `on`), 0 for the others.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Mkswap(a) => devices::mkswap(&a),
        Command::Loop(c) => devices::loop_command(c),
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
        Command::Completions(a) => {
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "swapctl", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(|e| CliError::new("man", e))?;
            print(&String::from_utf8_lossy(&buf));
            Ok(0)
        }
    }
}
