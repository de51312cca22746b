//! Sizes and UUIDs as text: the one place that parses `64M` and `xxxxxxxx-xxxx-...`, and the
//! one place that scales a byte count to a power of 1024. Every crate above (`pager`'s
//! snapshots, `swapctl`'s tables and TUI, `xtask`'s reports) prints through here, so two
//! screens never disagree on what `1.5G` means.

/// Why a size or UUID given as text was refused. Each message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{0:?} is not a size (try 4096, 64M or 1G)")]
    NotASize(String),
    #[error("{text:?}: unknown size suffix {suffix:?} (use K, M, G or T)")]
    UnknownSuffix { text: String, suffix: String },
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?} is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    NotAUuid(String),
}

/// Parses a size: a number with an optional suffix `K`, `M`, `G`, `T` (powers of 1024, as
/// `losetup` and `dd` read them; also written `KiB`, `MB`, ...) or `B`. `"64M"` is 67108864.
pub fn parse_size(text: &str) -> Result<u64, TextError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(TextError::NotASize(text.to_owned()));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| TextError::TooLarge(text.to_owned()))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(TextError::UnknownSuffix {
                text: text.to_owned(),
                suffix: suffix.to_owned(),
            });
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| TextError::TooLarge(text.to_owned()))
}

/// A byte count scaled to the largest power of 1024 that keeps it at least 1 (`exp` 0 is
/// plain bytes, 1 is KiB, ... 6 is EiB), with exact integer rounding, so that `1023.96 MiB`
/// rounds to `1024M` the way util-linux prints it and never to `1024.0M` nor `1.0G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaled {
    bytes: u64,
    exp: u32,
}

impl Scaled {
    /// One-letter suffixes by power of 1024: `B`, `K`, `M`, `G`, `T`, `P`, `E`.
    pub const LETTERS: [&'static str; 7] = ["B", "K", "M", "G", "T", "P", "E"];

    pub fn of(bytes: u64) -> Scaled {
        let mut exp = 0;
        while exp + 1 < Self::LETTERS.len() as u32 && bytes >> (10 * (exp + 1)) > 0 {
            exp += 1;
        }
        Scaled { bytes, exp }
    }

    /// The power of 1024: 0 for plain bytes.
    pub fn exp(&self) -> u32 {
        self.exp
    }

    /// The one-letter suffix of [`Scaled::exp`].
    pub fn letter(&self) -> &'static str {
        Self::LETTERS[self.exp as usize]
    }

    /// The count in this unit times `per_unit` (10 for tenths), rounded half up.
    pub fn rounded(&self, per_unit: u64) -> u128 {
        let unit = 1u128 << (10 * self.exp);
        (u128::from(self.bytes) * u128::from(per_unit) + unit / 2) / unit
    }

    /// `whole` or `whole.tenth` (one decimal only when it is not whole).
    pub fn tenths_text(&self) -> String {
        let t = self.rounded(10);
        if t.is_multiple_of(10) {
            format!("{}", t / 10)
        } else {
            format!("{}.{}", t / 10, t % 10)
        }
    }
}

/// util-linux's `size_to_human_string`, as `swapon --show` and `swapinfo -h` print sizes:
/// `0B`, `1023B`, `1K`, `1.5K`, `64M`, `1024M` (for 1 GiB minus a byte), `1.5G`.
pub fn human(bytes: u64) -> String {
    let s = Scaled::of(bytes);
    if s.exp() == 0 {
        return format!("{bytes}B");
    }
    format!("{}{}", s.tenths_text(), s.letter())
}

/// The same figure with IEC units and a space, for prose and reports: `64 MiB`, `1.5 GiB`,
/// `512 B`.
pub fn human_iec(bytes: u64) -> String {
    let s = Scaled::of(bytes);
    if s.exp() == 0 {
        return format!("{bytes} B");
    }
    format!("{} {}iB", s.tenths_text(), s.letter())
}

/// Formats a UUID as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lower-case hex).
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(hex_digit(b >> 4));
        s.push(hex_digit(b & 0xf));
    }
    s
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// Parses a UUID written as 32 hex digits, with or without dashes, in either case.
pub fn parse_uuid(text: &str) -> Result<[u8; 16], TextError> {
    let digits: Vec<u32> = text
        .chars()
        .filter(|&c| c != '-')
        .map(|c| c.to_digit(16))
        .collect::<Option<_>>()
        .ok_or_else(|| TextError::NotAUuid(text.to_owned()))?;
    if digits.len() != 32 {
        return Err(TextError::NotAUuid(text.to_owned()));
    }
    let mut uuid = [0u8; 16];
    for (b, pair) in uuid.iter_mut().zip(digits.chunks(2)) {
        *b = (pair[0] << 4 | pair[1]) as u8;
    }
    Ok(uuid)
}

/// The machine's physical memory in bytes (`sysconf(_SC_PHYS_PAGES)`), for limits that
/// scale with it; `None` where it cannot be told.
pub fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| (pages as u64).saturating_mul(size as u64))
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
        assert_eq!(human(u64::MAX), "16E");
    }

    #[test]
    fn iec_text_has_units_and_a_space() {
        assert_eq!(human_iec(512), "512 B");
        assert_eq!(human_iec(64 << 20), "64 MiB");
        assert_eq!(human_iec(3 << 29), "1.5 GiB");
        // 1.04 GiB is "1 GiB", never "1.0 GiB".
        assert_eq!(human_iec((1 << 30) + (40 << 20)), "1 GiB");
    }

    #[test]
    fn rounding_is_exact_and_half_up() {
        // 12.46 MiB: tenths round to 125, whole rounds to 12 (no double rounding).
        let s = Scaled::of(12 * (1 << 20) + 482_345);
        assert_eq!((s.exp(), s.letter()), (2, "M"));
        assert_eq!(s.rounded(10), 125);
        assert_eq!(s.rounded(1), 12);
        assert_eq!(Scaled::of(25 << 19).rounded(1), 13);
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size(" 2k "), Ok(2048));
        assert_eq!(parse_size("M"), Err(TextError::NotASize("M".into())));
        assert!(matches!(
            parse_size("12Q"),
            Err(TextError::UnknownSuffix { .. })
        ));
        assert!(parse_size("99999999999999999999").is_err());
        assert_eq!(
            parse_size("16777216T"),
            Err(TextError::TooLarge("16777216T".into()))
        );
    }

    #[test]
    fn uuids_round_trip_through_text() {
        let t = "5e3c7b1a-0d2f-4e6a-9b8c-1f2e3d4c5b6a";
        assert_eq!(parse_uuid(t).map(|u| format_uuid(&u)), Ok(t.to_owned()));
        assert_eq!(
            parse_uuid("5E3C7B1A0D2F4E6A9B8C1F2E3D4C5B6A").map(|u| format_uuid(&u)),
            Ok(t.to_owned())
        );
        assert!(parse_uuid("5e3c7b1a").is_err());
        assert!(parse_uuid("zz3c7b1a-0d2f-4e6a-9b8c-1f2e3d4c5b6a").is_err());
        // `u8::from_str_radix` takes a sign: "+f" must not pass for a hex pair.
        assert!(parse_uuid("+f3c7b1a-0d2f-4e6a-9b8c-1f2e3d4c5b6a").is_err());
    }
}
