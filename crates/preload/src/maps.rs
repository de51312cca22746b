//! Which of the program's mappings to page: read from `/proc/self/maps`.
//!
//! malloc gets its big chunks and arenas from `mmap` and `brk` inside the C library, by
//! calls no preload library can interpose, so the library does not watch the calls: it
//! reads the kernel's list of mappings and takes every private anonymous, readable and
//! writable mapping of at least the minimum size (the heap included), except the
//! library's own memory (its allocator's reservation, its threads' stacks, the region's
//! cache) and the main thread's stack (`[stack]` grows down; a userfaultfd does not serve
//! the growth).

const PAGE: u64 = 4096;

/// One mapping worth paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
}

/// The memory of `maps` (the text of `/proc/self/maps`) to page: the mappings that are
/// private anonymous, `rw`, at least `min_len` bytes, not the stack, and contain none of
/// `own_points` (addresses on the library's threads' stacks), less the parts `own` covers
/// (half-open ranges of the library's own memory, rounded out to pages: its allocator, the
/// region's cache, its threads' DTVs in the heap). A mapping cut by `own` gives its pieces.
pub fn candidates(maps: &str, min_len: u64, own: &[(u64, u64)], own_points: &[u64]) -> Vec<Vma> {
    let mut own: Vec<(u64, u64)> = own
        .iter()
        .map(|&(lo, hi)| (lo / PAGE * PAGE, hi.div_ceil(PAGE) * PAGE))
        .collect();
    own.sort_unstable();
    maps.lines()
        .filter_map(parse)
        .filter(|(v, perms, anon_name)| {
            perms.starts_with("rw")
                && perms.ends_with('p')
                && *anon_name
                && v.end - v.start >= min_len
        })
        .map(|(v, _, _)| v)
        .filter(|v| !own_points.iter().any(|&a| v.start <= a && a < v.end))
        .flat_map(|v| without(v, &own))
        .collect()
}

/// `v` less the sorted ranges `own`: the pieces left, in order.
fn without(v: Vma, own: &[(u64, u64)]) -> Vec<Vma> {
    let mut out = Vec::new();
    let mut at = v.start;
    for &(lo, hi) in own {
        if hi <= at || lo >= v.end {
            continue;
        }
        if lo > at {
            out.push(Vma { start: at, end: lo });
        }
        at = at.max(hi);
    }
    if at < v.end {
        out.push(Vma {
            start: at,
            end: v.end,
        });
    }
    out
}

/// A line's range, permissions, and whether it is anonymous memory a program allocated
/// (no file, inode 0, no name or `[heap]` or an `[anon:...]` name).
fn parse(line: &str) -> Option<(Vma, &str, bool)> {
    let mut f = line.split_ascii_whitespace();
    let range = f.next()?;
    let perms = f.next()?;
    let _offset = f.next()?;
    let _dev = f.next()?;
    let inode = f.next()?;
    let name = f.next();
    let (lo, hi) = range.split_once('-')?;
    let start = u64::from_str_radix(lo, 16).ok()?;
    let end = u64::from_str_radix(hi, 16).ok()?;
    let anon = inode == "0"
        && match name {
            None => true,
            Some(n) => n == "[heap]" || n.starts_with("[anon:"),
        };
    Some((Vma { start, end }, perms, anon))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234 /usr/bin/prog
55d0c1000000-55d0c1400000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000200000 rw-p 00000000 00:00 0
7f0000200000-7f0000210000 rw-p 00000000 00:00 0
7f0000300000-7f0000500000 rw-s 00000000 00:01 77 /dev/zero (deleted)
7f0000500000-7f0000700000 r--p 00000000 00:00 0
7f0000700000-7f0000900000 rw-p 00001000 08:01 99 /usr/lib/libc.so.6
7f0000900000-7f0000b00000 rw-p 00000000 00:00 0 [anon:arena]
7f0000b00000-7f0000d00000 rw-p 00000000 00:00 0
7f0000d00000-7f0000f00000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00400000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn takes_big_private_anonymous_writable_mappings_only() {
        let got = candidates(MAPS, 1 << 20, &[], &[]);
        let starts: Vec<u64> = got.iter().map(|v| v.start).collect();
        assert_eq!(
            starts,
            [
                0x55d0c1000000,
                0x7f0000000000,
                0x7f0000900000,
                0x7f0000b00000,
                0x7f0000d00000
            ]
        );
    }

    #[test]
    fn leaves_the_librarys_own_memory_alone() {
        // A whole mapping, two pieces of the heap (a DTV inside, rounded out to its page),
        // and a thread's stack.
        let own = [
            (0x7f0000b00000, 0x7f0000d00000),
            (0x55d0c1000010, 0x55d0c1000020),
            (0x55d0c1100000, 0x55d0c1101000),
        ];
        let points = [0x7f0000d00000 + 0x1234];
        let got = candidates(MAPS, 1 << 20, &own, &points);
        let v = |start, end| Vma { start, end };
        assert_eq!(
            got,
            [
                v(0x55d0c1001000, 0x55d0c1100000),
                v(0x55d0c1101000, 0x55d0c1400000),
                v(0x7f0000000000, 0x7f0000200000),
                v(0x7f0000900000, 0x7f0000b00000),
            ]
        );
    }

    #[test]
    fn a_garbled_line_is_skipped() {
        let got = candidates("zz-yy rw-p 0 0 0\n\n7f-", 0, &[], &[]);
        assert!(got.is_empty());
    }
}
