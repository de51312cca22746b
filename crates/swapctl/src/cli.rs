//! The command line: every command, flag and help text, as clap derive definitions.
//!
//! The man page (`swapctl man`) and the shell completions (`swapctl completions`) are generated
//! from these same definitions, so a flag added here is documented everywhere at once.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::units::{parse_duration, parse_size};

/// mkswap's positional size: a bare number is 1K-blocks (util-linux), `64M` a size.
fn parse_blocks(text: &str) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = text.parse().map_err(|e| format!("{text}: {e}"))?;
        return n
            .checked_mul(1024)
            .ok_or_else(|| format!("{text}: too large"));
    }
    parse_size(text).map_err(|e| e.to_string())
}

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
    disable_help_flag = true,
    args_conflicts_with_subcommands = true,
    after_help = AFTER_HELP,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// FreeBSD swapctl's options, when no command is given
    #[command(flatten)]
    pub bsd: BsdArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

const AFTER_HELP: &str = "Start with `swapctl mkswap`, then `swapctl daemon`, `swapctl on`, \
`swapctl list`.\n\n-h: without a command, `-h` means human-readable sizes as in FreeBSD's \
swapctl (and in `list`/`summary`); `swapctl -h` alone and `--help` print this help. In the \
other commands `-h` is help, as in util-linux.";

const AFTER_LONG_HELP: &str = "Start with `swapctl mkswap`, then `swapctl daemon`, `swapctl on`, \
`swapctl list`.\n\nFreeBSD's swapctl forms work as they do there: `swapctl -a DEV` (with \
NetBSD's `-p PRIO`), `-d DEV`, `-A` (every config-file device), `-U` (every device), `-l` \
(`Device: 1kB-blocks Used:`), `-s` (`Total: N M`), and the units `-h`, `-k`, `-m`, `-g`.\n\n\
-h: without a command, `-h` means human-readable sizes as in FreeBSD's swapctl (and in \
`list`/`summary`); `swapctl -h` alone and `--help` print this help. In the other commands \
`-h` is help, as in util-linux.\n\n\
Exit status (every command; bits combine, as in swapoff(8)): 0 success, 2 not enough free \
swap to move the data off, 4 the operation failed, 8 another system error (no daemon, no \
answer), 16 usage error or permission denied, 32 with -a/-A/-U every device failed, 64 some \
failed.";

/// The command-less form: FreeBSD's `swapctl [-AghklmsU] [-a DEV...] [-d DEV...]`, with
/// NetBSD's `-p PRIO` for `-a`/`-A`.
#[derive(Debug, Clone, Args)]
pub struct BsdArgs {
    /// Print help (`-h` is "human" here, as in FreeBSD)
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Start swapping on DEVICE... (swapctl -a, swapon)
    #[arg(short = 'a', value_name = "DEVICE", num_args = 1..,
          conflicts_with_all = ["remove", "add_all", "remove_all", "list", "summary"])]
    pub add: Vec<PathBuf>,
    /// Stop swapping on DEVICE..., moving its data off (swapctl -d, swapoff)
    #[arg(short = 'd', value_name = "DEVICE", num_args = 1..,
          conflicts_with_all = ["add_all", "remove_all", "list", "summary"])]
    pub remove: Vec<PathBuf>,
    /// Start swapping on every config-file device not marked noauto (swapctl -A, swapon -a)
    #[arg(short = 'A', conflicts_with_all = ["remove_all", "list", "summary"])]
    pub add_all: bool,
    /// Stop swapping on every device (swapctl -U, swapoff -a)
    #[arg(short = 'U', conflicts_with_all = ["list", "summary"])]
    pub remove_all: bool,
    /// List the devices: `Device: 1kB-blocks Used:`
    #[arg(short = 'l')]
    pub list: bool,
    /// Print the totals: `Total: SIZE USED`
    #[arg(short = 's')]
    pub summary: bool,
    /// With -l or -s: print JSON (sizes in bytes), as `list --json` and `summary --json`
    #[arg(long)]
    pub json: bool,
    /// Priority of the devices -a or -A adds (NetBSD swapctl -p): higher is used first
    #[arg(short = 'p', value_name = "PRIO", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1..=32767))]
    pub priority: Option<i32>,
    #[command(flatten)]
    pub unit: UnitArgs,
    #[command(flatten)]
    pub socket: SocketArg,
}

impl BsdArgs {
    /// Whether any action was asked for (`-h` and the units alone are none).
    pub fn any_action(&self) -> bool {
        !self.add.is_empty()
            || !self.remove.is_empty()
            || self.add_all
            || self.remove_all
            || self.list
            || self.summary
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a Linux-compatible swap header on a device or file
    #[command(
        long_about = "Write a Linux-compatible swap header (SWAPSPACE2) on DEVICE. \
    Refuses a device that is in use (mounted, swapped on by the kernel, held by a daemon, or a file \
    under a loop device in use), even with --force, and one that holds a filesystem signature unless \
    --force is given."
    )]
    Mkswap(MkswapArgs),
    /// Attach, detach and list loop devices for swap (direct I/O, 4096-byte blocks)
    Loop(LoopArgs),
    /// Host the swap pager and serve the control socket
    Daemon(DaemonArgs),
    /// Start swapping on devices (swapon)
    #[command(
        long_about = "Start swapping on DEVICE (swapon). Without devices and without -a it shows \
    the devices that are on, as bare `swapon` does (`--show`'s table; nothing when none is on).",
        after_help = "Exit status: 0 success, 4 failed, 8 system error (no daemon), 16 usage or \
    permission, 32 all failed (-a), 64 some failed (-a); see `swapctl man on`."
    )]
    On(OnArgs),
    /// Move data off devices and stop swapping on them (swapoff)
    #[command(
        long_about = "Move every page off DEVICE and stop swapping on it. The exit status \
    follows util-linux swapoff: 0 success, 2 not enough free swap to move the data, 4 failure, \
    8 system error, 16 usage or permission, 32 all failed, 64 some failed (bits may combine)."
    )]
    Off(OffArgs),
    /// List swap devices with their usage (swapinfo, swapon --show)
    #[command(disable_help_flag = true)]
    List(ListArgs),
    /// Print the totals line (FreeBSD swapctl -s)
    #[command(disable_help_flag = true)]
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
    /// Run a program with its large private memory paged to the swap space
    #[command(
        override_usage = "swapctl run [OPTIONS] [--] PROG [ARGS]...",
        long_about = "Run PROG with ARGS, its large private anonymous mappings paged to the \
    daemon's swap space by a preload library (libswapkit_preload.so): at most --limit of them \
    stays in memory, the rest lives on swap. swapctl first makes sure the daemon answers and has \
    swap on, then becomes the program (exec): its signals, terminal and exit status are its own. \
    `swapctl status` and `swapctl top` show it while it runs; its swap is freed when it exits.",
        after_help = "The preload library is $SWAPKIT_PRELOAD, else libswapkit_preload.so beside \
    the swapctl executable, else ../lib/swapkit/ from there (build it with `cargo build -p \
    preload`). Exit status: the program's own once it runs; before that 4 no swap is on, 8 no \
    daemon, no preload library or a program that cannot be run, 16 usage; see `swapctl man run`."
    )]
    Run(RunArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Show a man page (roff when stdout is no terminal), or write them all with --dir
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    #[command(flatten)]
    pub help: HelpFlag,
    /// The page: swapctl (the default), a command (`on`, `loop`...) or `swapctl.toml`
    #[arg(conflicts_with = "dir")]
    pub page: Option<String>,
    /// Write every page under the man directory DIR: swapctl.1 and swapctl-COMMAND.1 in
    /// DIR/man1, swapctl.toml.5 in DIR/man5 (a DIR ending in man1 stands for its parent)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `-h`/`--help` of the commands, as in util-linux. The top level turns clap's help flag
/// off (there `-h` is FreeBSD's "human"), and clap turns it off for every command with it:
/// each command puts it back with this.
#[derive(Debug, Clone, Args)]
pub struct HelpFlag {
    /// Print help
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
}

/// Where to find the daemon; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct SocketArg {
    /// The daemon's control socket
    #[arg(long, value_name = "PATH", env = "SWAPKIT_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct MkswapArgs {
    #[command(flatten)]
    pub help: HelpFlag,
    /// Block device or file to prepare
    pub device: PathBuf,
    /// Use only the first SIZE of the device (e.g. 64M; 1K-blocks when bare, as in util-linux)
    #[arg(value_name = "SIZE", value_parser = parse_blocks, conflicts_with = "pages")]
    pub size: Option<u64>,
    /// Page size check: swapkit's pages are 4096 bytes, anything else is refused
    #[arg(short = 'p', long = "pagesize", value_name = "BYTES")]
    pub pagesize: Option<u64>,
    /// Say what is being done
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Volume label (up to 16 bytes; a longer one is truncated, with a warning)
    #[arg(short = 'L', long)]
    pub label: Option<String>,
    /// UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx); random when not given
    #[arg(short = 'U', long)]
    pub uuid: Option<String>,
    /// Use only the first N pages (header page included); more than the device holds is refused
    #[arg(long, value_name = "N")]
    pub pages: Option<u64>,
    /// Read the whole area first and record unreadable pages as bad
    #[arg(short = 'c', long)]
    pub check: bool,
    /// Overwrite a filesystem signature (never storage in use)
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LoopArgs {
    #[command(flatten)]
    pub help: HelpFlag,
    #[command(subcommand)]
    pub command: LoopCommand,
}

#[derive(Debug, Subcommand)]
pub enum LoopCommand {
    /// Attach FILE to a free loop device and print its path; it stays until `loop detach`
    Attach {
        #[command(flatten)]
        help: HelpFlag,
        /// Backing file
        file: PathBuf,
        /// Grow (or create) the file to SIZE first, e.g. 256M; a larger file is refused, never
        /// shrunk
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
    /// Detach a loop device (one in use is refused)
    Detach {
        #[command(flatten)]
        help: HelpFlag,
        /// The loop device, e.g. /dev/loop3
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        device: Option<PathBuf>,
        /// Every loop device swapctl attached (backing file made by `loop attach`, direct
        /// I/O, no autoclear) that nothing uses; never other programs' devices
        #[arg(short = 'a', short_alias = 'D', long = "all", alias = "detach-all")]
        all: bool,
    },
    /// List attached loop devices and their backing files
    List {
        #[command(flatten)]
        help: HelpFlag,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub help: HelpFlag,
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

/// `--discard`'s policies, as util-linux names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscardPolicy {
    /// Discard freed pages (not supported: refused with a reason)
    Pages,
    /// Discard the whole area once at swapon (what swapkit does)
    Once,
}

#[derive(Debug, Args)]
pub struct OnArgs {
    #[command(flatten)]
    pub help: HelpFlag,
    #[command(flatten)]
    pub socket: SocketArg,
    /// Devices or files holding a swap header
    #[arg(conflicts_with = "all")]
    pub devices: Vec<PathBuf>,
    /// Every device of the daemon's config file not marked noauto
    #[arg(short, long)]
    pub all: bool,
    /// Priority -1..32767: higher is used first [default: from the config file, else -1]
    #[arg(short, long, value_name = "PRIO", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1..=32767))]
    pub priority: Option<i32>,
    /// Discard (TRIM) the whole area once at swapon; `pages` (freed pages) is not supported
    #[arg(short, long, value_name = "POLICY", num_args = 0..=1, require_equals = true,
          default_missing_value = "once")]
    pub discard: Option<DiscardPolicy>,
    /// Silently skip devices that do not exist
    #[arg(short = 'e', long)]
    pub ifexists: bool,
    /// Accepted for util-linux: swapkit's pages are always 4096 bytes, nothing to fix
    #[arg(short = 'f', long)]
    pub fixpgsz: bool,
    /// Say what is being done
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print the devices in /proc/swaps' layout (swapon -s)
    #[arg(short = 's', long, conflicts_with_all = ["devices", "all", "show"])]
    pub summary: bool,
    /// Show the devices that are on, with COLUMNS from NAME,TYPE,SIZE,USED,PRIO,UUID,LABEL,DISCARD
    #[arg(long, value_name = "COLUMNS", num_args = 0..=1, require_equals = true,
          default_missing_value = "NAME,TYPE,SIZE,USED,PRIO", conflicts_with_all = ["devices", "all"])]
    pub show: Option<String>,
    /// Sizes in bytes instead of human units
    #[arg(long)]
    pub bytes: bool,
    #[command(flatten)]
    pub script: ScriptArgs,
}

/// The scripting flags of `swapon --show`, shared by `on` and `list`.
#[derive(Debug, Clone, Args)]
pub struct ScriptArgs {
    /// Print JSON (with --show: only its columns)
    #[arg(long)]
    pub json: bool,
    /// Leave out the heading line
    #[arg(long)]
    pub noheadings: bool,
    /// No column alignment: fields separated by one space
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct OffArgs {
    #[command(flatten)]
    pub help: HelpFlag,
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
    /// Say what is being done
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Remove a failed device (a dead remote area, a vanished disk) even though its pages
    /// cannot be read: they are dropped, read as errors after, and counted as lost
    #[arg(long)]
    pub force: bool,
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
    /// swapon --show columns; COLUMNS from NAME,TYPE,SIZE,USED,PRIO,UUID,LABEL,DISCARD
    #[arg(long, value_name = "COLUMNS", num_args = 0..=1, require_equals = true,
          default_missing_value = "NAME,TYPE,SIZE,USED,PRIO")]
    pub show: Option<String>,
    #[command(flatten)]
    pub script: ScriptArgs,
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
    /// Print JSON: size, used and avail in bytes, and the number of devices
    #[arg(long)]
    pub json: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub help: HelpFlag,
    #[command(flatten)]
    pub socket: SocketArg,
    /// Print the full snapshot as JSON, each device's fragmentation included
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FragArgs {
    #[command(flatten)]
    pub help: HelpFlag,
    #[command(flatten)]
    pub socket: SocketArg,
    /// Only this device
    pub device: Option<PathBuf>,
    /// Print JSON: each device's free ranges (in pages) and their size classes
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub help: HelpFlag,
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
    pub help: HelpFlag,
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
    /// Check every page read against what was written; exit 4 on the first mismatch
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
    pub help: HelpFlag,
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
pub struct RunArgs {
    #[command(flatten)]
    pub help: HelpFlag,
    #[command(flatten)]
    pub socket: SocketArg,
    /// The most of the program's paged memory kept in memory, e.g. 2G [default: a quarter of
    /// this machine's memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub limit: Option<u64>,
    /// The smallest private anonymous mapping that is paged; smaller ones stay the kernel's
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1M")]
    pub min_mapping: u64,
    /// Refuse to run the program when paging cannot be set up inside it, instead of running
    /// it unpaged with a warning
    #[arg(long)]
    pub strict: bool,
    /// The program, found on $PATH as a shell would, and its arguments (after `--`, or after
    /// the first word that is no option of run)
    #[arg(value_name = "PROG", required = true, num_args = 1.., trailing_var_arg = true)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[command(flatten)]
    pub help: HelpFlag,
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
        let cli = Cli::try_parse_from(["swapctl", "list", "-h", "--show=NAME,SIZE"]).unwrap();
        let Some(Command::List(args)) = cli.command else {
            panic!("not list")
        };
        assert!(args.unit.human);
        assert_eq!(args.show.as_deref(), Some("NAME,SIZE"));
        let cli = Cli::try_parse_from(["swapctl", "list", "--show"]).unwrap();
        let Some(Command::List(args)) = cli.command else {
            panic!("not list")
        };
        assert_eq!(args.show.as_deref(), Some("NAME,TYPE,SIZE,USED,PRIO"));
    }

    #[test]
    fn freebsd_forms_parse_without_a_command() {
        let cli = Cli::try_parse_from(["swapctl", "-lh"]).unwrap();
        assert!(cli.command.is_none() && cli.bsd.list && cli.bsd.unit.human);
        let cli = Cli::try_parse_from(["swapctl", "-a", "/dev/a", "/dev/b", "-p", "5"]).unwrap();
        assert_eq!(cli.bsd.add.len(), 2);
        assert_eq!(cli.bsd.priority, Some(5));
        assert!(Cli::try_parse_from(["swapctl", "-a", "/dev/a", "-d", "/dev/b"]).is_err());
        assert!(Cli::try_parse_from(["swapctl", "-l", "list"]).is_err());
    }

    #[test]
    fn on_priority_is_linux_range_and_bare_on_is_fine() {
        assert!(Cli::try_parse_from(["swapctl", "on"]).is_ok());
        assert!(Cli::try_parse_from(["swapctl", "on", "-a"]).is_ok());
        assert!(Cli::try_parse_from(["swapctl", "on", "/dev/loop0", "-p", "-1"]).is_ok());
        assert!(Cli::try_parse_from(["swapctl", "on", "/dev/loop0", "-p", "-2"]).is_err());
        assert!(Cli::try_parse_from(["swapctl", "on", "/dev/loop0", "-p", "32768"]).is_err());
        assert!(Cli::try_parse_from(["swapctl", "on", "/dev/loop0", "--discard=pages"]).is_ok());
    }

    #[test]
    fn run_takes_the_program_and_its_options_after_its_own() {
        let cli = Cli::try_parse_from([
            "swapctl", "run", "--limit", "512M", "--", "sort", "-S", "4G",
        ])
        .unwrap();
        let Some(Command::Run(a)) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.limit, Some(512 << 20));
        assert_eq!(a.min_mapping, 1 << 20);
        assert_eq!(a.command, ["sort", "-S", "4G"]);
        let cli = Cli::try_parse_from(["swapctl", "run", "--strict", "ls", "-l"]).unwrap();
        let Some(Command::Run(a)) = cli.command else {
            panic!("not run")
        };
        assert!(a.strict && a.limit.is_none());
        assert_eq!(a.command, ["ls", "-l"]);
        assert!(Cli::try_parse_from(["swapctl", "run"]).is_err());
        assert!(Cli::try_parse_from(["swapctl", "run", "--limit", "lots", "ls"]).is_err());
    }

    #[test]
    fn mkswap_size_is_kib_blocks_when_bare() {
        assert_eq!(parse_blocks("1024"), Ok(1 << 20));
        assert_eq!(parse_blocks("1M"), Ok(1 << 20));
    }
}
