//! Sizes on the command line and in tables: parsing `64M`, `1GiB`, `4096`, and printing the
//! human form that `swapon --show` and `swapinfo -h` use (`1G`, `1.5G`, `512M`, `0B`); both
//! come from `device::units`. Durations are parsed here.

/// The unit a table prints sizes in (`swapctl list -h/-k/-m/-g/--bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SizeUnit {
    /// 1024-byte blocks, swapinfo's default.
    #[default]
    Kilo,
    Mega,
    Giga,
    Bytes,
    /// Powers of 1024 with a suffix, as `swapon --show` prints them.
    Human,
}

impl SizeUnit {
    /// The heading of a size column in swapinfo's layout.
    pub fn heading(self) -> &'static str {
        match self {
            SizeUnit::Kilo => "1K-blocks",
            SizeUnit::Mega => "1M-blocks",
            SizeUnit::Giga => "1G-blocks",
            SizeUnit::Bytes => "Bytes",
            SizeUnit::Human => "Size",
        }
    }

    /// `bytes` in this unit. Block units round down, as swapinfo does.
    pub fn format(self, bytes: u64) -> String {
        match self {
            SizeUnit::Kilo => (bytes >> 10).to_string(),
            SizeUnit::Mega => (bytes >> 20).to_string(),
            SizeUnit::Giga => (bytes >> 30).to_string(),
            SizeUnit::Bytes => bytes.to_string(),
            SizeUnit::Human => human(bytes),
        }
    }
}

// One implementation of each for the whole tree, in the lowest crate that needs them.
pub use device::units::{human, parse_size};

/// Parse a duration: a number with `ms`, `s`, `m` or `h` (seconds when bare).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 10s, 500ms or 2m)"))?;
    let secs = match suffix.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("{text:?}: unknown duration unit {other:?}")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10").unwrap().as_secs(), 10);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
