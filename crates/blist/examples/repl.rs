//! The blist debug REPL: FreeBSD's `subr_blist.c` debug language on standard input, so that
//! one script gives byte-identical standard output here and in FreeBSD's stand-alone build.
//!
//! `cargo run -p blist --example repl -- [blocks]` (default 4096). Commands, one per line
//! (only the first character names the command, as in FreeBSD):
//!
//! - `a min max`: allocate; prints `    R=<first in hex>, c=<length>` (`R=8000000000000000`,
//!   FreeBSD's SWAPBLK_NONE, and the requested min on failure)
//! - `f hexblk n`: free; `l hexblk n`: fill, prints `    n=<blocks that were free>`
//! - `r n`: resize, freeing new blocks; prints the creation lines, then the tree (FreeBSD's
//!   `r` falls through to `p`, and the prompt keeps showing the size given at start)
//! - `p`: the tree; `s`: the stats; `h` or `?`: help; `q`: quit
//!
//! Anything malformed prints `?`. Where FreeBSD would stop on an assertion (a double free, a
//! range out of bounds, an allocation size out of limits) this prints the error on standard
//! error, or `?` for a bad allocation size, and goes on.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use blist::{Blist, MAX_ALLOC};

/// FreeBSD's SWAPBLK_NONE, printed for a failed allocation.
const SWAPBLK_NONE: u64 = 1 << 63;

const HELP: &str = "p          -print\n\
                    s          -stats\n\
                    a %d %d    -allocate\n\
                    f %x %d    -free\n\
                    l %x %d    -fill\n\
                    r %d       -resize\n\
                    h/?        -help\n\
                    q          -quit\n";

fn main() -> ExitCode {
    let mut size: u64 = 4096;
    for arg in std::env::args().skip(1) {
        if arg.starts_with('-') {
            eprintln!("Bad option: {arg}");
            return ExitCode::FAILURE;
        }
        match parse_c_integer(&arg) {
            Some(n) if (1..=blist::MAX_BLOCKS).contains(&n) => size = n,
            _ => {
                eprintln!(
                    "repl: {arg:?} is not a block count within 1..={}",
                    blist::MAX_BLOCKS
                );
                return ExitCode::FAILURE;
            }
        }
    }
    match run(
        size,
        io::stdin().lock(),
        &mut io::stdout().lock(),
        &mut io::stderr(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("repl: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the session: create, free everything, then one prompt and one command per line.
/// Standard output goes to `out`, the complaints FreeBSD would panic with to `err`.
pub fn run(
    size: u64,
    input: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<()> {
    let mut bl = Blist::new(size);
    write!(out, "{}", bl.creation_banner())?;
    bl.free(0, size).map_err(io::Error::other)?;
    let mut lines = input.lines();
    loop {
        write!(out, "{}/{}/{}> ", bl.avail(), size, bl.span())?;
        out.flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        let (command, args) = match line.char_indices().nth(1) {
            Some((at, _)) => (line.as_bytes()[0], &line[at..]),
            None => (line.bytes().next().unwrap_or(b'\n'), ""),
        };
        match command {
            b'r' | b'p' => {
                if command == b'r' {
                    match scan_dec(args).map(|(n, _)| n) {
                        Some(n) if n >= 1 && n as u64 <= blist::MAX_BLOCKS => {
                            bl.resize(n as u64, true);
                            write!(out, "{}", bl.creation_banner())?;
                        }
                        _ => writeln!(out, "?")?,
                    }
                }
                write!(out, "{}", bl.tree_dump())?;
            }
            b's' => write!(out, "{}", bl.stats())?,
            b'a' => match scan_dec(args).and_then(|(min, rest)| Some((min, scan_dec(rest)?.0))) {
                Some((min, max)) if (1..=MAX_ALLOC as i64).contains(&min) && min <= max => {
                    let (first, count) = bl
                        .alloc_range(min as u64, max as u64)
                        .unwrap_or((SWAPBLK_NONE, min as u64));
                    writeln!(out, "    R={first:08x}, c={count:08}")?;
                }
                _ => writeln!(out, "?")?,
            },
            b'f' | b'l' => match scan_range(args) {
                Some((start, count)) if command == b'f' => {
                    if let Err(e) = bl.free(start, count) {
                        writeln!(err, "repl: {e}")?;
                    }
                }
                Some((start, count)) => match bl.fill(start, count) {
                    Ok(n) => writeln!(out, "    n={n}")?,
                    Err(e) => writeln!(err, "repl: {e}")?,
                },
                None => writeln!(out, "?")?,
            },
            b'?' | b'h' => write!(out, "{HELP}")?,
            b'q' => break,
            _ => writeln!(out, "?")?,
        }
    }
    out.flush()
}

/// `%llx %d` as C's sscanf reads it: a hex block (optional `0x`), then a decimal count.
/// Negative values are refused (FreeBSD would stop on an assertion).
fn scan_range(s: &str) -> Option<(u64, u64)> {
    let (start, rest) = scan_int(s, 16)?;
    let (count, _) = scan_dec(rest)?;
    Some((u64::try_from(start).ok()?, u64::try_from(count).ok()?))
}

fn scan_dec(s: &str) -> Option<(i64, &str)> {
    scan_int(s, 10)
}

/// One integer as C's sscanf `%d` / `%x` reads it: leading white space, an optional sign, (for
/// hex) an optional `0x`, then at least one digit; the rest of the text is returned.
fn scan_int(s: &str, radix: u32) -> Option<(i64, &str)> {
    let s = s.trim_start();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let s = if radix == 16 {
        s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .filter(|r| r.starts_with(|c: char| c.is_ascii_hexdigit()))
            .unwrap_or(s)
    } else {
        s
    };
    let digits = s.find(|c: char| !c.is_digit(radix)).unwrap_or(s.len());
    if digits == 0 {
        return None;
    }
    let value = i64::from_str_radix(&s[..digits], radix).ok()?;
    Some((if negative { -value } else { value }, &s[digits..]))
}

/// The command-line size as C's `strtoll(arg, NULL, 0)` reads it: `0x` hex, `0` octal, else
/// decimal.
fn parse_c_integer(arg: &str) -> Option<u64> {
    let arg = arg.trim();
    if let Some(hex) = arg.strip_prefix("0x").or_else(|| arg.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if arg.len() > 1 && arg.starts_with('0') {
        u64::from_str_radix(&arg[1..], 8).ok()
    } else {
        arg.parse().ok()
    }
}
