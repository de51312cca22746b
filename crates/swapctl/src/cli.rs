//! The command line: every command, flag and help text, as clap derive definitions.
//!
//! The man page (`swapctl man`) and the shell completions (`swapctl completions`) are generated
//! from these same definitions, so a flag added here is documented everywhere at once.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::units::{parse_duration, parse_size};

/// Where the daemon listens when neither `--socket` nor `$SWAPKIT_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/swapkit/swapctl.sock";
/// The config file the daemon reads when `--config` is not given (only if it exists).
pub const DEFAULT_CONFIG: &str = "/etc/swapkit/swapctl.toml";

#[derive(Debug, Parser)]
#[command(
    name = "swapctl",
    version,
    about = "Administer a swapkit swap space",
    long_about = "Administer a swapkit swap space: prepare devices (mkswap, loop), run the \
daemon that hosts the swap pager, turn devices on and off, look at usage and fragmentation, \
tune it live, and push load through it.\n\nCommands that talk to the daemon find it on \
--socket, $SWAPKIT_SOCKET or /run/swapkit/swapctl.sock.",
    propagate_version = true,
    after_help = "Start with `swapctl mkswap`, then `swapctl daemon`, `swapctl on`, `swapctl list`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a Linux-compatible swap header on a device or file
    Mkswap(MkswapArgs),
    /// Attach, detach and list loop devices for swap (direct I/O, 4096-byte blocks)
    #[command(subcommand)]
    Loop(LoopCommand),
    /// Host the swap pager and serve the control socket
    Daemon(DaemonArgs),
    /// Start swapping on devices (swapon)
    On(OnArgs),
    /// Move data off devices and stop swapping on them (swapoff)
    Off(OffArgs),
    /// List swap devices with their usage (swapinfo, swapon --show)
    #[command(short_flag = 'l', disable_help_flag = true)]
    List(ListArgs),
    /// Print the totals line (swapctl -s)
    #[command(short_flag = 's', disable_help_flag = true)]
    Summary(SummaryArgs),
    /// Print counters, pbuf pools, hysteresis, objects and metadata memory
    Status(StatusArgs),
    /// Print each device's free-space fragmentation (vm.swap_fragmentation)
    Frag(FragArgs),
    /// Change a live tunable (swap_async_max)
    Set(SetArgs),
    /// Page data through the daemon and measure it; --verify checks every page read
    Load(LoadArgs),
    /// Live terminal view of the swap space
    Top(TopArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout
    Man,
}

/// Where to find the daemon; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct SocketArg {
    /// The daemon's control socket
    #[arg(long, value_name = "PATH", env = "SWAPKIT_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Write a Linux-compatible swap header (SWAPSPACE2) on DEVICE. \
Refuses a device that is in use (mounted, swapped on by the kernel, held by a daemon, or a file \
under a loop device in use), even with --force, and one that holds a filesystem signature unless \
--force is given."
)]
pub struct MkswapArgs {
    /// Block device or file to prepare
    pub device: PathBuf,
    /// Volume label (up to 16 bytes)
    #[arg(short = 'L', long)]
    pub label: Option<String>,
    /// UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx); random when not given
    #[arg(short = 'U', long)]
    pub uuid: Option<String>,
    /// Use only the first N pages (header page included)
    #[arg(long, value_name = "N")]
    pub pages: Option<u64>,
    /// Read the whole area first and record unreadable pages as bad
    #[arg(short = 'c', long)]
    pub check: bool,
    /// Overwrite a filesystem signature (never storage in use)
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum LoopCommand {
    /// Attach FILE to a free loop device and print its path; it stays until `loop detach`
    Attach {
        /// Backing file
        file: PathBuf,
        /// Grow (or create) the file to SIZE first, e.g. 256M
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
        /// Create the file if it does not exist (needs --size)
        #[arg(long, requires = "size")]
        create: bool,
        /// Attach even when FILE already has a loop device (two devices on one file are
        /// one storage: swapkit swaps on one of them at most)
        #[arg(long)]
        shared: bool,
    },
    /// Detach a loop device
    Detach {
        /// The loop device, e.g. /dev/loop3
        device: PathBuf,
    },
    /// List attached loop devices and their backing files
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Listen on this socket (a stale one is replaced, a live one refused)
    #[arg(long, value_name = "PATH", env = "SWAPKIT_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Config file (TOML) [default: /etc/swapkit/swapctl.toml if it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Open the socket to this group (mode 0660 instead of 0600)
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Blocks taken from one device before moving to the next of the same priority
    #[arg(long, value_name = "N")]
    pub interleave: Option<u64>,
    /// Number of pbufs (in-flight cluster I/Os)
    #[arg(long, value_name = "N")]
    pub nswbuf: Option<u64>,
    /// Limit on in-flight async write clusters (clamped to 1..=nswbuf/2)
    #[arg(long, value_name = "N")]
    pub async_max: Option<u64>,
    /// Log level on stderr: error, warn, info, debug
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Do not swap on the config file's devices at start
    #[arg(long)]
    pub no_auto: bool,
}

#[derive(Debug, Args)]
pub struct OnArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Devices or files holding a swap header
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub devices: Vec<PathBuf>,
    /// Every device of the daemon's config file not marked noauto
    #[arg(short, long)]
    pub all: bool,
    /// Priority: higher is used first [default: from the config file, else -1]
    #[arg(short, long, value_name = "PRIO", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Discard (TRIM) freed blocks
    #[arg(short, long)]
    pub discard: bool,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Move every page off DEVICE and stop swapping on it. The exit status \
follows util-linux swapoff: 0 success, 4 failure, 8 system error, 16 usage, 32 all failed, \
64 some failed (bits may combine)."
)]
pub struct OffArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub devices: Vec<PathBuf>,
    /// Every device that is on
    #[arg(short, long)]
    pub all: bool,
    /// No progress bar, even on a terminal
    #[arg(short, long)]
    pub quiet: bool,
}

/// The unit flags of `list` and `summary`, swapinfo-style.
#[derive(Debug, Clone, Args)]
pub struct UnitArgs {
    /// Human-readable sizes (1.5G)
    #[arg(short = 'h', long, group = "unit")]
    pub human: bool,
    /// 1024-byte blocks (the default)
    #[arg(short = 'k', group = "unit")]
    pub kilo: bool,
    /// 1M blocks
    #[arg(short = 'm', group = "unit")]
    pub mega: bool,
    /// 1G blocks
    #[arg(short = 'g', group = "unit")]
    pub giga: bool,
    /// Sizes in bytes
    #[arg(long, group = "unit")]
    pub bytes: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub unit: UnitArgs,
    /// swapon --show columns; COLUMNS from NAME,TYPE,SIZE,USED,PRIO,UUID,LABEL
    #[arg(long, value_name = "COLUMNS", num_args = 0..=1, require_equals = true,
          default_missing_value = "NAME,TYPE,SIZE,USED,PRIO")]
    pub show: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Leave out the heading line
    #[arg(long)]
    pub noheadings: bool,
    /// No column alignment: fields separated by one space
    #[arg(long)]
    pub raw: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub unit: UnitArgs,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Print the full snapshot as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FragArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Only this device
    pub device: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// The tunable
    pub name: Tunable,
    /// The new value (clamped; the value in force is printed)
    pub value: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Tunable {
    /// Limit on in-flight async write clusters, 1..=nswbuf/2
    #[value(name = "swap_async_max")]
    SwapAsyncMax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// Each thread writes its objects front to back, then reads them back in order
    Seq,
    /// Random pages of random objects, half writes, half reads
    Random,
    /// Sequential runs at random places, a third of them reads
    Mixed,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Objects to create
    #[arg(long, default_value_t = 4)]
    pub objects: u64,
    /// Size of each object, e.g. 16M
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    pub size: u64,
    /// Access pattern
    #[arg(long, value_enum, default_value_t = Pattern::Mixed)]
    pub pattern: Pattern,
    /// Client threads, each with its own connection
    #[arg(long, default_value_t = 2)]
    pub threads: u64,
    /// How long to run, e.g. 10s, 2m
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Pages per request (1..=32)
    #[arg(long, default_value_t = 8)]
    pub cluster: u32,
    /// Check every page read against what was written; exit 1 on the first mismatch
    #[arg(long)]
    pub verify: bool,
    /// Async writes (bounded by swap_async_max) instead of sync ones
    #[arg(long = "async")]
    pub async_writes: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    /// Seed of the random patterns
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Refresh interval in seconds
    #[arg(
        short = 'd',
        long = "delay",
        value_name = "SECS",
        default_value_t = 1.0
    )]
    pub delay: f64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn list_takes_swapinfo_unit_flags_and_show_columns() {
        let cli = Cli::try_parse_from(["swapctl", "-l", "-h", "--show=NAME,SIZE"]).unwrap();
        let Command::List(args) = cli.command else {
            panic!("not list")
        };
        assert!(args.unit.human);
        assert_eq!(args.show.as_deref(), Some("NAME,SIZE"));
        let cli = Cli::try_parse_from(["swapctl", "list", "--show"]).unwrap();
        let Command::List(args) = cli.command else {
            panic!("not list")
        };
        assert_eq!(args.show.as_deref(), Some("NAME,TYPE,SIZE,USED,PRIO"));
    }

    #[test]
    fn on_needs_devices_or_all() {
        assert!(Cli::try_parse_from(["swapctl", "on"]).is_err());
        assert!(Cli::try_parse_from(["swapctl", "on", "-a"]).is_ok());
        assert!(Cli::try_parse_from(["swapctl", "on", "/dev/loop0", "-p", "-2"]).is_ok());
    }
}
