//! Sizes on the command line and in tables: parsing `64M`, `1GiB`, `4096`, and printing the
//! human form that `swapon --show` and `swapinfo -h` use (`1G`, `1.5G`, `512M`, `0B`).

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

/// util-linux's `size_to_human_string`: the largest power of 1024 that keeps the number at
/// least 1, one decimal when it is not whole (rounded), and a one-letter suffix.
pub fn human(bytes: u64) -> String {
    const SUFFIX: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    let mut exp = 0;
    while exp + 1 < SUFFIX.len() && bytes >> (10 * (exp + 1)) > 0 {
        exp += 1;
    }
    if exp == 0 {
        return format!("{bytes}B");
    }
    let unit = 1u128 << (10 * exp);
    let whole = u128::from(bytes) / unit;
    let tenths = ((u128::from(bytes) % unit) * 10 + unit / 2) / unit;
    let (whole, tenths) = if tenths == 10 {
        (whole + 1, 0)
    } else {
        (whole, tenths)
    };
    if tenths == 0 {
        format!("{whole}{}", SUFFIX[exp])
    } else {
        format!("{whole}.{tenths}{}", SUFFIX[exp])
    }
}

/// Parse a size: a number with an optional suffix `K`, `M`, `G`, `T` (powers of 1024, also
/// written `KiB`, `MB`, ...) or `B`. `"64M"` is 67108864.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("{text:?} is not a size (try 4096, 64M or 1G)"));
    }
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is too large"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown size suffix {suffix:?} (use K, M, G or T)"
            ));
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

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
    fn human_matches_util_linux() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1K");
        assert_eq!(human(1536), "1.5K");
        assert_eq!(human(64 << 20), "64M");
        assert_eq!(human((1 << 30) - 1), "1024M");
        assert_eq!(human(3 << 29), "1.5G");
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("16777216T").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10").unwrap().as_secs(), 10);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
