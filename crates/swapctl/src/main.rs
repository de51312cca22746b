//! The `swapctl` binary: parse, run, print one error line, exit.

use clap::Parser;

fn main() {
    let cli = swapctl::cli::Cli::parse();
    match swapctl::commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("swapctl: {e}");
            std::process::exit(if e.code == 0 { 1 } else { e.code });
        }
    }
}
