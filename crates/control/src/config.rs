//! The daemon's config file (TOML): daemon settings and the devices to swap on.
//!
//! ```toml
//! [daemon]
//! socket = "/run/swapkit/swapctl.sock"
//! interleave = 32
//!
//! [[device]]
//! path = "/dev/loop0"
//! priority = 10
//! ```
//!
//! Every field is optional except a device's `path`; unknown keys and unknown values of the
//! typed fields (`log_level`, `engine`, `checksum`) are refused at parse time, with the file's line, so
//! that a typo does not silently change nothing. Command-line flags win over the file. The
//! `[limits]` table (time limits, per-uid quotas, pacing) is described in `docs/protocol.md`;
//! SIGHUP re-reads it, with the devices and `log_level`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::daemon::limits::Limits;
use crate::daemon::log::Level;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceEntry>,
}

/// The I/O engine, as the config file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineName {
    Auto,
    #[serde(alias = "io-uring", alias = "uring")]
    IoUring,
    #[serde(alias = "thread")]
    Threads,
}

impl EngineName {
    /// The engine the pager is started with.
    pub fn kind(self) -> device::EngineKind {
        match self {
            EngineName::Auto => device::EngineKind::Auto,
            EngineName::IoUring => device::EngineKind::IoUring,
            EngineName::Threads => device::EngineKind::ThreadPool,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    pub socket: Option<PathBuf>,
    /// Group given access to the socket (mode 0660).
    pub socket_group: Option<String>,
    pub interleave: Option<u64>,
    pub nswbuf: Option<u64>,
    pub swap_async_max: Option<u64>,
    /// error, warn, info or debug.
    pub log_level: Option<Level>,
    /// I/O engine: auto, io_uring or threads.
    pub engine: Option<EngineName>,
    /// Page checksums kept in memory and checked on every read: `"crc32c"` (the pager's
    /// default) or `"none"`. Another value is a parse error, never a silent default.
    pub checksum: Option<pager::Checksum>,
    /// The largest swap area `on` accepts (`"4T"`, or bytes); a larger one is refused
    /// before its allocator is built. Default: 16 times the memory, at least 16G.
    pub max_area: Option<ByteSize>,
}

/// A size in the config file: bytes, or text with a unit (`"512G"`, `"4T"`); text that is
/// no size is a parse error with the file's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(t) => device::units::parse_size(&t)
                .map(ByteSize)
                .map_err(|e| serde::de::Error::custom(format!("`{t}` is no size: {e}"))),
        }
    }
}

/// One `[[device]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    pub path: PathBuf,
    #[serde(default = "default_priority")]
    pub priority: i32,
    #[serde(default)]
    pub discard: bool,
    /// Not swapped on at daemon start nor by `swapctl on -a`.
    #[serde(default)]
    pub noauto: bool,
}

fn default_priority() -> i32 {
    -1
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Displayed in one line (`file: line L, column C: what`), for the daemon's log;
    /// `snippet` is toml's picture of the spot, for a terminal ([`ConfigError::detail`]).
    #[error("{path}: {message}")]
    Parse {
        path: PathBuf,
        message: String,
        snippet: String,
    },
}

impl ConfigError {
    /// The lines to print below the one-line error on a terminal: toml's excerpt of the
    /// file with the caret under the spot, as toml drew it (joining it into the first
    /// line, as the log must, moves the caret away from the column it points at).
    pub fn detail(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { snippet, .. } if !snippet.is_empty() => Some(snippet),
            _ => None,
        }
    }
}

/// toml's error text is a header (`TOML parse error at line L, column C`), an excerpt in a
/// `|` gutter with a caret line, then the message: keep the header's place and the message
/// on one line, and the excerpt verbatim.
fn parse_error(e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let full = e.to_string();
    let is_gutter = |l: &&str| {
        let t = l.trim_start_matches(|c: char| c == ' ' || c.is_ascii_digit());
        t.starts_with('|') && l.len() > t.len()
    };
    let snippet: Vec<&str> = full.lines().skip(1).take_while(is_gutter).collect();
    let at = e.span().map(|span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        format!("line {line}, column {column}: ")
    });
    ConfigError::Parse {
        path: path.to_owned(),
        message: format!(
            "{}{}",
            at.unwrap_or_default(),
            e.message().replace('\n', " ").trim()
        ),
        snippet: snippet.join("\n"),
    }
}

impl Config {
    /// Parse config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| parse_error(&e, text, path))
    }

    /// Read `path`. With `must_exist` false a missing file is an empty config: that is how
    /// the default path behaves when the admin has not written one.
    pub fn load(path: &Path, must_exist: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The devices swapped on at start and by `on -a`.
    pub fn auto_devices(&self) -> impl Iterator<Item = &DeviceEntry> {
        self.devices.iter().filter(|d| !d.noauto)
    }

    /// The entry for `path`, if the file lists it.
    pub fn device(&self, path: &Path) -> Option<&DeviceEntry> {
        self.devices.iter().find(|d| d.path == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[daemon]
socket = "/run/swapkit/swapctl.sock"
socket_group = "swapkit"
interleave = 32
nswbuf = 128
swap_async_max = 8
log_level = "info"

[[device]]
path = "/dev/loop0"
priority = 10
discard = true

[[device]]
path = "/var/swap/swapkit-1"
noauto = true
"#;

    #[test]
    fn example_config_parses_with_defaults() {
        let c = Config::parse(EXAMPLE, Path::new("x.toml")).unwrap();
        assert_eq!(c.daemon.interleave, Some(32));
        assert_eq!(c.devices.len(), 2);
        assert_eq!(c.devices[1].priority, -1);
        assert!(!c.devices[1].discard);
        let auto: Vec<_> = c.auto_devices().map(|d| d.path.clone()).collect();
        assert_eq!(auto, vec![PathBuf::from("/dev/loop0")]);
    }

    #[test]
    fn unknown_keys_are_refused_in_one_line() {
        let err = Config::parse("[daemon]\ninterleve = 3\n", Path::new("c.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("c.toml: "), "{msg}");
        assert!(msg.contains("interleve"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn a_typo_in_a_typed_value_fails_at_parse_time_with_the_line() {
        let err = Config::parse("[daemon]\n\nengine = \"io_urin\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("io_urin"), "{err}");
        let err = Config::parse("[daemon]\nlog_level = \"verbose\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        let c = Config::parse(
            "[daemon]\nengine = \"threads\"\nlog_level = \"warn\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.daemon.engine, Some(EngineName::Threads));
        assert_eq!(c.daemon.log_level, Some(Level::Warn));
    }

    #[test]
    fn the_caret_stays_under_the_spot() {
        let text = "[daemon]\n\nengine = \"io_urin\"\n";
        let err = Config::parse(text, Path::new("c.toml")).unwrap_err();
        let line = err.to_string();
        assert!(
            line.starts_with("c.toml: line 3, column 10: ") && line.contains("io_urin"),
            "{line}"
        );
        let detail = err.detail().expect("an excerpt");
        let lines: Vec<&str> = detail.lines().collect();
        let src = lines
            .iter()
            .find(|l| l.contains("engine ="))
            .expect("the line");
        let caret = lines.iter().find(|l| l.contains('^')).expect("a caret");
        let bar = src.find('|').unwrap();
        assert_eq!(caret.find('|'), Some(bar), "same gutter:\n{detail}");
        assert_eq!(
            caret.find('^').unwrap() - bar,
            src.find("\"io_urin").unwrap() - bar,
            "caret under the value:\n{detail}"
        );
        assert!(!detail.contains("TOML parse error"), "{detail}");
    }

    #[test]
    fn max_area_is_a_size_in_bytes_or_with_a_unit() {
        let c = Config::parse("[daemon]\nmax_area = \"4T\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.daemon.max_area, Some(ByteSize(4 << 40)));
        let c = Config::parse("[daemon]\nmax_area = 65536\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.daemon.max_area, Some(ByteSize(65536)));
        let err = Config::parse("[daemon]\nmax_area = \"lots\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains("lots"), "{err}");
    }

    #[test]
    fn checksum_is_typed() {
        let c = Config::parse("[daemon]\nchecksum = \"none\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.daemon.checksum, Some(pager::Checksum::None));
        let c = Config::parse("[daemon]\nchecksum = \"crc32c\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.daemon.checksum, Some(pager::Checksum::Crc32c));
        assert_eq!(Config::default().daemon.checksum, None);
        let err = Config::parse("[daemon]\n\nchecksum = \"crc32\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("crc32"), "{err}");
    }

    #[test]
    fn limits_have_the_documented_defaults_and_parse() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.write_timeout_ms, 30_000);
        assert_eq!(c.limits.max_connections_per_uid, 64);
        assert_eq!(c.limits.max_swap_pages_per_uid, None);
        let c = Config::parse(
            "[limits]\nidle_timeout_ms = 1000\nmax_swap_pages_per_uid = 10\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.limits.idle_timeout_ms, 1000);
        assert_eq!(c.limits.max_swap_pages_per_uid, Some(10));
        assert_eq!(c.limits.read_timeout_ms, 10_000);
    }

    #[test]
    fn a_missing_default_file_is_an_empty_config() {
        let c = Config::load(Path::new("/nonexistent/swapkit.toml"), false).unwrap();
        assert_eq!(c, Config::default());
        assert!(Config::load(Path::new("/nonexistent/swapkit.toml"), true).is_err());
    }
}
