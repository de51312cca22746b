//! How a command reports: [`CliError`] (one `swapctl: <message>` line and an exit code from
//! [`exit`]) and [`print()`] for stdout. Its own module so that everything that runs a command
//! ([`crate::commands`], [`crate::load`]) uses it without depending on the others.

pub mod exit;

use std::io::Write;

use control::client::ClientError;

/// A command's failure: printed as `swapctl: <message>`, exits with `code` (a bit of
/// [`exit::TABLE`]: [`exit::EX_FAILURE`] unless said otherwise).
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    pub fn new(what: impl std::fmt::Display, why: impl std::fmt::Display) -> CliError {
        CliError {
            message: format!("{what}: {why}"),
            code: exit::EX_FAILURE,
        }
    }

    /// A usage error: exit status [`exit::EX_USAGE`].
    pub fn usage(what: impl std::fmt::Display, why: impl std::fmt::Display) -> CliError {
        CliError::new(what, why).with_code(exit::EX_USAGE)
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
        let code = exit::of_client(&e);
        match &e {
            ClientError::Connect { .. } | ClientError::Permission { .. } => CliError {
                message: e.to_string(),
                code,
            },
            _ => CliError::new("daemon", e).with_code(code),
        }
    }
}

/// Write to stdout; a closed pipe (`swapctl list | head -1`) is not an error.
pub fn print(text: &str) {
    if cfg!(test) {
        // The unit tests that run a command (`load`) print where the harness captures it.
        print!("{text}");
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
