//! `cargo xtask`: swapkit's developer tasks (matklad's xtask pattern).
//!
//! - `cargo xtask bench [--quick]` creates backing files and loop devices (plain files where
//!   loop devices are unavailable), measures the raw devices and then the pager on them in the
//!   same run, prints a table and writes JSON, markdown and SVG plots under
//!   `benchmarks/results/`. See `benchmarks/README.md` for what each workload means.
//! - `cargo xtask demo` starts a `swapctl daemon` on temporary devices, runs a `swapctl load`
//!   against it and opens `swapctl top`; quitting the TUI tears everything down.
//!
//! Invariants: everything a run creates (backing files, loop devices, swap areas, child
//! processes) is owned by a guard and removed on every way out: success, error, panic and
//! Ctrl-C (see `cancel`). It never touches a loop device or file it did not create.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod cancel;
mod cli;
mod cpu;
mod demo;
mod error;
mod fio;
mod kernel;
mod latency;
mod machine;
mod membench;
mod micro;
mod nbd;
mod perf;
mod progress;
mod raw;
mod report;
mod results;
mod runbench;
mod setup;
mod workloads;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::Error;

fn main() {
    let code = match run() {
        Ok(()) => 0,
        Err(Error::Interrupted) => {
            eprintln!("xtask: interrupted; everything created was removed");
            130
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run() -> Result<(), Error> {
    let cli = Cli::parse();
    if let Command::KernelChild { pages } = cli.command {
        // No signal thread here: the child dies on the terminal's Ctrl-C like any process.
        return kernel::child_main(pages);
    }
    if let Command::MemChild { pages } = cli.command {
        return membench::child_main(pages);
    }
    cancel::install()?;
    match cli.command {
        Command::Bench(args) if args.nbd => nbd::run(&args.plan()),
        Command::Bench(args) => bench::run(&args.plan()),
        Command::Demo(args) => demo::run(&args),
        Command::KernelChild { .. } | Command::MemChild { .. } => Ok(()),
    }
}
