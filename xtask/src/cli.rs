//! The command line: `cargo xtask bench ...` and `cargo xtask demo`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use device::units::parse_size;

/// swapkit's developer tasks: the benchmark on real loop devices, and the demo.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure the pager on loop devices against the same devices raw, and write a report.
    Bench(BenchArgs),
    /// Start a daemon on temporary devices, run a load against it and open `swapctl top`.
    Demo(DemoArgs),
    /// Internal: the memory-hungry child of `bench --kernel-baseline`.
    #[command(hide = true)]
    KernelChild {
        #[arg(long)]
        pages: u64,
    },
    /// Internal: the kernel side of the region bench (`bench --only region`).
    #[command(hide = true)]
    MemChild {
        #[arg(long)]
        pages: u64,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Small devices and short phases: about a minute or two in all.
    #[arg(long)]
    pub quick: bool,
    /// How many devices to create.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub devices: Option<u32>,
    /// Size of each device, e.g. `64M`, `1G`, `512MiB` [default: 1G, or 64M with --quick].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Where to create the backing files [default: a fresh temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also run fio on the same devices, if it is installed.
    #[arg(long)]
    pub fio: bool,
    /// Also measure the kernel's own swap on the same devices (root only).
    #[arg(long)]
    pub kernel_baseline: bool,
    /// Run only these workloads (the raw baselines always run).
    #[arg(long, value_name = "WORKLOAD", num_args = 1.., value_enum)]
    pub only: Vec<Workload>,
    /// Where to write the JSON, markdown and plots [default: benchmarks/results with
    /// --name, else benchmarks/results/latest, which git ignores].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Name of the result files, `<out>/<name>.json` [default: `quick` or `full`]. Only a
    /// run given --name writes beside the committed reference runs (and may replace one).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Use plain files even where loop devices are available.
    #[arg(long)]
    pub files: bool,
    /// Remote swap areas over NBD instead (`nbdkit memory` exports on loopback TCP):
    /// see `xtask/src/nbd.rs`.
    #[arg(long)]
    pub nbd: bool,
    /// The region bench's resident limit L (its data set is 4 × L) [default: 512M, or 32M
    /// with --quick; at most an eighth of all swap].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub region_limit: Option<u64>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many devices the daemon gets.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub devices: u32,
    /// Size of each device.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub size: u64,
    /// Where to create the backing files [default: a fresh temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The workloads `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Workload {
    PageoutSeq,
    PageinSeq,
    PageinRand,
    Mixed,
    Interleave,
    Fragmentation,
    Swapoff,
    Micro,
    /// The region bench: a `region::Region` against the kernel's swap in a memory cgroup.
    Region,
    /// `swapctl run` of python3 against the kernel's swap in a memory cgroup (issue 25);
    /// only with `--only run`: it builds the release swapctl and preload library and takes
    /// minutes.
    Run,
}

impl Workload {
    pub const ALL: [Workload; 9] = [
        Workload::PageoutSeq,
        Workload::PageinSeq,
        Workload::PageinRand,
        Workload::Mixed,
        Workload::Interleave,
        Workload::Fragmentation,
        Workload::Swapoff,
        Workload::Micro,
        Workload::Region,
    ];
}

/// The settings a run uses, after defaults and `--quick` are applied.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub devices: u32,
    pub size: u64,
    pub dir: Option<PathBuf>,
    pub fio: bool,
    pub kernel_baseline: bool,
    pub workloads: Vec<Workload>,
    pub out: PathBuf,
    pub name: String,
    pub files: bool,
    pub region_limit: Option<u64>,
}

impl BenchArgs {
    /// Apply the defaults: 4 devices of 1 GiB, or of 64 MiB with `--quick`.
    pub fn plan(&self) -> Plan {
        let quick = self.quick;
        let mut workloads = if self.only.is_empty() {
            Workload::ALL.to_vec()
        } else {
            self.only.clone()
        };
        workloads.sort();
        workloads.dedup();
        Plan {
            quick,
            devices: self.devices.unwrap_or(4),
            size: self.size.unwrap_or(if quick { 64 << 20 } else { 1 << 30 }),
            dir: self.dir.clone(),
            fio: self.fio,
            kernel_baseline: self.kernel_baseline,
            workloads,
            // Without --name a run never replaces the committed reference files.
            out: self.out.clone().unwrap_or_else(|| match &self.name {
                Some(_) => results_dir(),
                None => results_dir().join("latest"),
            }),
            name: self
                .name
                .clone()
                .unwrap_or_else(|| if quick { "quick" } else { "full" }.to_string()),
            files: self.files,
            region_limit: self.region_limit,
        }
    }
}

impl Plan {
    pub fn runs(&self, w: Workload) -> bool {
        self.workloads.contains(&w)
    }
}

/// `benchmarks/results` of the workspace this xtask was built from, without `..` in it.
pub fn results_dir() -> PathBuf {
    let xtask = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask
        .parent()
        .unwrap_or(xtask)
        .join("benchmarks")
        .join("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_defaults_to_four_small_devices() {
        let cli = Cli::parse_from(["cargo xtask", "bench", "--quick"]);
        let Command::Bench(args) = cli.command else {
            panic!("not bench")
        };
        let plan = args.plan();
        assert_eq!(
            (plan.devices, plan.size, plan.name.as_str()),
            (4, 64 << 20, "quick")
        );
        assert_eq!(plan.workloads.len(), Workload::ALL.len());
        // Not over the committed reference run, and no `..` in the printed paths.
        assert!(
            plan.out.ends_with("benchmarks/results/latest"),
            "{:?}",
            plan.out
        );
        let up = std::path::Component::ParentDir;
        assert!(!plan.out.components().any(|c| c == up), "{:?}", plan.out);
    }

    #[test]
    fn only_a_named_run_writes_beside_the_reference_runs() {
        let cli = Cli::parse_from(["cargo xtask", "bench", "--name", "full"]);
        let Command::Bench(args) = cli.command else {
            panic!("not bench")
        };
        let plan = args.plan();
        assert!(plan.out.ends_with("benchmarks/results"), "{:?}", plan.out);
        assert_eq!(plan.name, "full");
    }

    #[test]
    fn only_keeps_the_named_workloads() {
        let cli = Cli::parse_from(["cargo xtask", "bench", "--only", "swapoff", "pagein-rand"]);
        let Command::Bench(args) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(
            args.plan().workloads,
            vec![Workload::PageinRand, Workload::Swapoff]
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
