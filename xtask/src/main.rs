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
#![allow(dead_code)] // Until the bench is wired to the device and pager crates.

mod cancel;
mod cli;
mod demo;
mod error;
mod fio;
mod kernel;
mod latency;
mod machine;
mod micro;
mod progress;
mod raw;
mod report;
mod results;
mod setup;

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
    cancel::install()?;
    match cli.command {
        Command::Bench(args) => {
            let plan = args.plan();
            let wb = setup::Workbench::create(&setup::Want {
                devices: plan.devices,
                size: plan.size,
                parent: plan.dir.clone(),
                force_files: plan.files,
                tag: "swapkit-bench",
            })?;
            eprintln!("{:?}", wb);
            let engine = device::Engine::new(device::EngineKind::Auto)?;
            let figs = raw::baselines(
                &engine,
                &wb.paths(),
                &raw::RawPlan {
                    seq_queue_depth: 4,
                    cluster_pages: 32,
                    seq_bytes: plan.size * plan.devices as u64,
                    rand_time: std::time::Duration::from_secs(2),
                },
            )?;
            for f in &figs {
                eprintln!(
                    "{} {:.1} MiB/s {:.0} IOPS p99 {:?}",
                    f.id,
                    f.mib_s,
                    f.iops,
                    f.p(99.0)
                );
            }
            drop(engine);
            if plan.kernel_baseline {
                let k = kernel::run(
                    &wb.paths(),
                    plan.size * plan.devices as u64 / 2,
                    plan.size / 2,
                )?;
                for f in &k.figures {
                    eprintln!(
                        "{} {:.1} MiB/s {:.3} s: {}",
                        f.id, f.mib_s, f.seconds, f.what
                    );
                }
            }
            Ok(())
        }
        Command::Demo(args) => demo::run(&args),
        Command::KernelChild { .. } => Ok(()),
    }
}
