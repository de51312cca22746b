//! What `swapctl run` tells the library, through the environment it starts the program
//! with. The variables stay set, so a program the paged program `exec`s is paged the same
//! way (and counted as a process of its own).

use std::path::PathBuf;

/// The daemon's control socket.
pub const SOCKET: &str = "SWAPKIT_SOCKET";
/// Most bytes of paged memory resident at once.
pub const LIMIT: &str = "SWAPKIT_LIMIT";
/// Smallest mapping paged, in bytes.
pub const MIN_MAPPING: &str = "SWAPKIT_MIN_MAPPING";
/// `1`: a setup failure ends the program instead of leaving it unpaged.
pub const STRICT: &str = "SWAPKIT_STRICT";

const PAGE: u64 = 4096;
/// Without `SWAPKIT_MIN_MAPPING`: 1 MiB, malloc's mmap'd chunks and arenas and up.
const DEFAULT_MIN_MAPPING: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub socket: PathBuf,
    /// Bytes, a whole number of pages, at least 16 pages.
    pub limit: u64,
    /// Bytes, a whole number of pages.
    pub min_mapping: u64,
    pub strict: bool,
}

impl Settings {
    /// Reads the settings through `var` (the environment, or a test's map). `Ok(None)`:
    /// the library was loaded without `swapctl run` (no socket named): it stays out of the
    /// way.
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Option<Settings>, String> {
        let Some(socket) = var(SOCKET).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let number = |name: &str| -> Result<Option<u64>, String> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?} is not a number of bytes")),
            }
        };
        let limit = number(LIMIT)?.ok_or_else(|| format!("{LIMIT} is not set"))?;
        let limit = limit / PAGE * PAGE;
        if limit < 16 * PAGE {
            return Err(format!("{LIMIT} must be at least 64 KiB"));
        }
        let min_mapping = number(MIN_MAPPING)?
            .unwrap_or(DEFAULT_MIN_MAPPING)
            .next_multiple_of(PAGE)
            .max(PAGE);
        Ok(Some(Settings {
            socket: PathBuf::from(socket),
            limit,
            min_mapping,
            strict: var(STRICT).is_some_and(|v| v == "1"),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<Settings>, String> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::read(|k| env.get(k).cloned())
    }

    #[test]
    fn without_a_socket_the_library_stays_out_of_the_way() {
        assert_eq!(read(&[(LIMIT, "1")]), Ok(None));
    }

    #[test]
    fn sizes_are_whole_pages() {
        let s = read(&[
            (SOCKET, "/run/s"),
            (LIMIT, "1000000"),
            (MIN_MAPPING, "5000"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.limit, 999_424);
        assert_eq!(s.min_mapping, 8192);
        assert!(!s.strict);
        let s = read(&[(SOCKET, "/run/s"), (LIMIT, "1048576"), (STRICT, "1")])
            .unwrap()
            .unwrap();
        assert_eq!(s.min_mapping, 1 << 20);
        assert!(s.strict);
    }

    #[test]
    fn a_bad_value_is_one_line() {
        let e = read(&[(SOCKET, "/run/s"), (LIMIT, "1G")]).unwrap_err();
        assert_eq!(e, "SWAPKIT_LIMIT=\"1G\" is not a number of bytes");
        assert!(read(&[(SOCKET, "/s")]).unwrap_err().contains("not set"));
        assert!(
            read(&[(SOCKET, "/s"), (LIMIT, "4096")])
                .unwrap_err()
                .contains("64 KiB")
        );
    }
}
