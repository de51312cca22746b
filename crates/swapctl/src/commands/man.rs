//! `swapctl man`: the man pages, generated from the clap definitions plus the sections clap
//! does not know (EXIT STATUS, FILES, ENVIRONMENT, SEE ALSO), and `swapctl.toml(5)` written
//! here by hand. `swapctl man [PAGE]` prints one page (through `man` on a terminal); `--dir
//! DIR` writes them all under DIR's `man1` and `man5`.

use std::io::IsTerminal;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, DEFAULT_CONFIG, DEFAULT_SOCKET, ManArgs};
use crate::output::exit::TABLE;
use crate::output::{CliError, print};

/// Every page: (file name, roff text).
pub fn pages() -> Result<Vec<(String, String)>, CliError> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = vec![("swapctl.1".to_owned(), page(&cmd, None)?)];
    for sub in cmd.get_subcommands() {
        let name = format!("swapctl-{}", sub.get_name());
        out.push((format!("{name}.1"), page(sub, Some(&name))?));
    }
    out.push(("swapctl.toml.5".to_owned(), config_page()));
    Ok(out)
}

fn page(cmd: &clap::Command, name: Option<&str>) -> Result<String, CliError> {
    let mut man = clap_mangen::Man::new(cmd.clone())
        .source(format!("swapctl {}", env!("CARGO_PKG_VERSION")))
        .manual("swapkit");
    if let Some(n) = name {
        man = man.title(n.to_ascii_uppercase());
    }
    let mut buf = Vec::new();
    man.render(&mut buf).map_err(|e| CliError::new("man", e))?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    text.push_str(&common_sections(cmd.get_name()));
    Ok(text)
}

/// Escape text for roff: backslashes, and a leading dot or quote.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn common_sections(name: &str) -> String {
    let mut s = String::from(".SH \"EXIT STATUS\"\n");
    s.push_str(
        "Every swapctl command exits with the bits of util\\-linux swapoff(8); they combine:\n",
    );
    for (code, what) in TABLE {
        s.push_str(&format!(".TP\n{code}\n{}\n", roff(what)));
    }
    if name == "run" {
        s.push_str(
            ".PP\nThat is until the program runs: \\fBrun\\fR replaces itself with it, and from \
             then on the exit status is the program's own (one killed by a signal dies of it, \
             which a shell shows as 128 + the signal). Before, 4 means no swap is on, and 8 no \
             daemon, no preload library, or a program that cannot be run.\n",
        );
    }
    s.push_str(".SH ENVIRONMENT\n.TP\nSWAPKIT_SOCKET\n");
    s.push_str(&format!(
        "The daemon's control socket when \\fB\\-\\-socket\\fR is not given (default {}).\n",
        roff(DEFAULT_SOCKET)
    ));
    if name == "run" {
        s.push_str(
            ".TP\nSWAPKIT_PRELOAD\nThe preload library; when unset, libswapkit_preload.so \
             beside the swapctl executable, else in ../lib/swapkit from there.\n\
             .TP\nLD_PRELOAD\nThe program gets the library first in it, before what was \
             there.\n\
             .TP\nSWAPKIT_LIMIT, SWAPKIT_MIN_MAPPING, SWAPKIT_STRICT\nThe program gets \
             \\fB\\-\\-limit\\fR and \\fB\\-\\-min\\-mapping\\fR in bytes, \
             SWAPKIT_STRICT=1 with \\fB\\-\\-strict\\fR (removed without), and \
             SWAPKIT_SOCKET as an absolute path.\n",
        );
    }
    s.push_str(
        ".TP\nSWAPKIT_STATE_DIR\nWhere \\fBloop attach\\fR records the devices it attached, for \\fBloop detach \\-a\\fR (default /run/swapkit).\n",
    );
    s.push_str(".SH FILES\n");
    s.push_str(&format!(
        ".TP\n{}\nThe daemon's control socket.\n.TP\n{}\nThe daemon's config file, see \\fBswapctl.toml\\fR(5).\n.TP\n/run/swapkit/loops\nThe loop devices \\fBloop attach\\fR made, one \\fIDEVICE\\fR<tab>\\fIFILE\\fR a line.\n",
        roff(DEFAULT_SOCKET),
        roff(DEFAULT_CONFIG)
    ));
    s.push_str(".SH \"SEE ALSO\"\n");
    let mut see = Vec::new();
    if name != "swapctl" {
        see.push("\\fBswapctl\\fR(1)".to_owned());
    }
    see.extend(
        [
            "swapctl.toml(5)",
            "swapon(8)",
            "swapoff(8)",
            "mkswap(8)",
            "losetup(8)",
        ]
        .iter()
        .map(|p| {
            let (n, sec) = p.split_once('(').unwrap_or((p, ")"));
            format!("\\fB{}\\fR({}", roff(n), sec)
        }),
    );
    s.push_str(&see.join(", "));
    s.push('\n');
    s
}

/// `swapctl.toml(5)`: the daemon's config file.
///
/// One piece: the page's roff text, top to bottom.
fn config_page() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        r#".TH SWAPCTL.TOML 5 "" "swapctl {version}"
.SH NAME
swapctl.toml \- the swapkit daemon's config file
.SH SYNOPSIS
{config}
.SH DESCRIPTION
\fBswapctl daemon\fR reads \fB\-\-config\fR FILE, or {config} when it exists. Flags win over the
file. The file is TOML; unknown keys and unknown values of \fBlog_level\fR and \fBengine\fR are
errors, reported with their line. SIGHUP makes the daemon read it again (limits, devices,
\fBlog_level\fR, \fBswap_async_max\fR) and log what changed. A changed device that is on
keeps its priority and discard until its next \fBswapctl on\fR; \fBinterleave\fR,
\fBnswbuf\fR, \fBchecksum\fR, \fBmax_area\fR and the socket settings take effect when the daemon
restarts.
.SH "[daemon]"
.TP
socket = "PATH"
The control socket (default {socket}).
.TP
socket_group = "GROUP"
Open the socket to GROUP: mode 0660 instead of 0600.
.TP
interleave = N
Blocks taken from one device before moving to the next of the same priority.
.TP
nswbuf = N
In\-flight cluster I/Os (pbufs).
.TP
swap_async_max = N
Limit on in\-flight async write clusters, clamped to 1..=nswbuf/2.
.TP
log_level = "LEVEL"
error, warn, info or debug.
.TP
engine = "ENGINE"
auto, io_uring or threads.
.TP
checksum = "KIND"
Page checksums kept in memory and checked on every read, so a page that reads back as other
bytes is an error, never data: crc32c (the default) or none (about 4 bytes of memory less
per page on swap, and no check).
.TP
max_area = "SIZE"
The largest area \fBswapctl on\fR accepts, in bytes or with a unit (4T): a larger one, such as
an NBD export whose server claims an absurd size, is refused before its allocator is built.
Default: 16 times the physical memory, at least 16G.
.SH "[limits]"
Every key is optional; the defaults are shown.
.TP
read_timeout_ms = 10000
A started request must arrive whole within this.
.TP
idle_timeout_ms = 300000
A connection without requests is closed after this.
.TP
write_timeout_ms = 30000
A reply not taken whole within this drops the client.
.TP
max_connections_per_uid = 64
Root and the daemon's user are exempt.
.TP
max_connections = 1024
.TP
max_objects_per_uid = 4096
.TP
max_handle_len = 256
.TP
max_swap_pages_per_uid = N
Unset: unlimited; over it a put fails with reason quota.
.TP
control_rate = 50.0
Control requests per second per non\-root uid.
.TP
control_burst = 100
.TP
stats_max_age_ms = 100
How old a non\-root uid's stats snapshot may be.
.SH "[[device]]"
One table per device the daemon swaps on at start (and \fBswapctl on \-a\fR).
.TP
path = "PATH"
The device or file, holding a swap header (\fBswapctl mkswap\fR).
.TP
priority = N
\-1..32767, higher is used first (default \-1).
.TP
discard = true
Discard (TRIM) freed pages (default false).
.TP
noauto = true
Not at start and not by \fBon \-a\fR; \fBswapctl on PATH\fR still uses its priority.
.SH EXAMPLE
.nf
[daemon]
socket_group = "swapkit"

[[device]]
path = "/dev/loop0"
priority = 10
.fi
.SH "SEE ALSO"
\fBswapctl\fR(1), \fBswapctl\-daemon\fR(1)
"#,
        config = roff(DEFAULT_CONFIG),
        socket = roff(DEFAULT_SOCKET),
    )
}

pub fn run(a: &ManArgs) -> Result<i32, CliError> {
    let all = pages()?;
    if let Some(dir) = &a.dir {
        return write_all(dir, &all);
    }
    let want = match a.page.as_deref() {
        None | Some("swapctl") => "swapctl.1".to_owned(),
        Some("swapctl.toml") => "swapctl.toml.5".to_owned(),
        Some(p) => format!("swapctl-{}.1", p.strip_prefix("swapctl-").unwrap_or(p)),
    };
    match all.into_iter().find(|(n, _)| *n == want) {
        Some((_, text)) => {
            // On a terminal, the page as `man` shows it (as `git help` does); anywhere
            // else, or without `man`, the roff source.
            if !(std::io::stdout().is_terminal() && show_with_man(&text)) {
                print(&text);
            }
            Ok(0)
        }
        None => Err(CliError::usage(
            "man",
            format!(
                "no page {:?} (swapctl, a command name, or swapctl.toml)",
                a.page.as_deref().unwrap_or_default()
            ),
        )),
    }
}

/// Show `text` through `man -l -` (its pager included); false when `man` cannot run or
/// fails, so the caller prints the roff instead.
fn show_with_man(text: &str) -> bool {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("man")
        .args(["-l", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A pager quit early closes the pipe: no error, the page was seen.
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait().is_ok_and(|s| s.success())
}

/// `--dir DIR`: DIR is a man directory (`/usr/local/share/man`), each page goes under the
/// `manN` of its section. A DIR that is itself a section's (`.../man1`) stands for its
/// parent, so section 5 does not land in man1.
fn write_all(dir: &Path, all: &[(String, String)]) -> Result<i32, CliError> {
    let is_section = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("man"))
        .is_some_and(|n| n.len() == 1 && n.bytes().all(|b| b.is_ascii_digit()));
    let root = match dir.parent() {
        Some(parent) if is_section => parent,
        _ => dir,
    };
    let mut written: Vec<String> = Vec::new();
    for (name, text) in all {
        let section = name.rsplit('.').next().unwrap_or("1");
        let sub = root.join(format!("man{section}"));
        let where_ = sub.display().to_string();
        if !written.contains(&where_) {
            std::fs::create_dir_all(&sub).map_err(|e| CliError::new(&where_, e))?;
            written.push(where_);
        }
        let path = sub.join(name);
        std::fs::write(&path, text).map_err(|e| CliError::new(path.display(), e))?;
    }
    print(&format!(
        "{} pages written to {}\n",
        all.len(),
        written.join(" and ")
    ));
    Ok(0)
}
