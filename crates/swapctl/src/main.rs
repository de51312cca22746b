//! The `swapctl` binary: parse, run, print one error line, exit.

use clap::Parser;

use swapctl::cli::Cli;

/// util-linux swapoff's exit status for a usage error.
const SWAPOFF_EX_USAGE: i32 = 16;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let off = args.get(1).is_some_and(|a| a == "off");
            std::process::exit(if off && e.use_stderr() {
                SWAPOFF_EX_USAGE
            } else {
                e.exit_code()
            });
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
