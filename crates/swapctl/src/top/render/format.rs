//! Short human figures for narrow columns: sizes, counts, rates, latencies, durations.

/// Bytes as `swapinfo -h` shows them: `0B`, `512B`, `4.0K`, `12M`, `1.5G`. At most 5 columns.
/// Below 10 units always with one decimal, so a column of figures lines up.
pub fn bytes(n: u64) -> String {
    let s = device::units::Scaled::of(n);
    match (s.exp(), s.rounded(10)) {
        (0, _) => format!("{n}B"),
        (_, t) if t < 100 => format!("{}.{}{}", t / 10, t % 10, s.letter()),
        _ => format!("{}{}", s.rounded(1), s.letter()),
    }
}

/// A count in at most 5 columns: `987`, `12345`, `123k`, `1.2M`.
pub fn count(n: u64) -> String {
    if n < 100_000 {
        n.to_string()
    } else {
        si(n as f64)
    }
}

/// A count in at most 4 columns: `987`, `1.2k`, `12k`, `123k`, `1.2M`.
pub fn short_count(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        si(n as f64)
    }
}

/// A rate per second in at most 5 columns; below 10 with one decimal so a slow trickle is not `0`.
pub fn rate(r: f64) -> String {
    if r <= 0.0 {
        "0".to_string()
    } else if r < 10.0 {
        format!("{r:.1}")
    } else if r < 10_000.0 {
        format!("{r:.0}")
    } else {
        si(r)
    }
}

fn si(mut value: f64) -> String {
    const UNITS: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value < 9.95 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// Microseconds as a latency: `850µs`, `1.3ms`, `42ms`, `2.1s`; `-` when nothing was measured.
pub fn micros(us: u64, measured: bool) -> String {
    if !measured {
        "-".to_string()
    } else if us < 1000 {
        format!("{us}µs")
    } else if us < 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else if us < 1_000_000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{:.1}s", us as f64 / 1_000_000.0)
    }
}

/// An uptime: `45s`, `12m05s`, `1h02m`, `3d04h`.
pub fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A refresh interval: `0.1 s`, `1 s`, `2.5 s`.
pub fn interval(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 1e-9 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// Fit `s` into `width` columns, cutting from the left (`…/loop0`): the end of a path names it.
pub fn fit_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let tail: String = s.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

/// A device's path in `width` columns: whole if it fits, else its last component (the file
/// or device name, which is what tells devices apart), cut from the left if even that is long.
pub fn device_name(path: &str, width: usize) -> String {
    if path.chars().count() <= width {
        path.to_string()
    } else {
        fit_left(short_name(path), width)
    }
}

/// The name a device goes by in narrow places: its path's last component.
pub fn short_name(path: &str) -> &str {
    path.rsplit('/').find(|p| !p.is_empty()).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_fit_their_columns() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(4096), "4.0K");
        assert_eq!(bytes(1 << 30), "1.0G");
        assert_eq!(bytes(512 << 20), "512M");
        assert_eq!(count(99_999), "99999");
        assert_eq!(count(123_456), "123k");
        assert_eq!(short_count(1_234), "1.2k");
        assert_eq!(short_count(999_999), "1.0M");
        assert_eq!(rate(0.26), "0.3");
        assert_eq!(rate(12_345.0), "12k");
        assert_eq!(micros(850, true), "850µs");
        assert_eq!(micros(1_260, true), "1.3ms");
        assert_eq!(micros(0, false), "-");
        assert_eq!(uptime(3_723_000), "1h02m");
        assert_eq!(interval(std::time::Duration::from_millis(100)), "0.1 s");
        assert_eq!(fit_left("/var/tmp/swapkit.img", 8), "…kit.img");
        assert_eq!(short_name("/dev/loop0"), "loop0");
        assert_eq!(device_name("/dev/loop0", 10), "/dev/loop0");
        assert_eq!(
            device_name("/tmp/swapkit-x/swapkit-a.img", 16),
            "swapkit-a.img"
        );
        assert_eq!(device_name("/tmp/swapkit-x/swapkit-a.img", 8), "…t-a.img");
    }
}
