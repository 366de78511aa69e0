//! Human units (`1.5 KiB`, `3.1µs`, `1,234`): the one formatting of numbers every stage uses for
//! text meant for people (analysis verdict reasons, renderers, CLI messages). Depends on nothing.

/// Bytes in binary units: `0 B`, `512 B`, `1.5 KiB`, `12.3 MiB`.
///
/// ```
/// use tidemark_analyzer::render::units::bytes;
/// assert_eq!(bytes(512), "512 B");
/// assert_eq!(bytes(1536), "1.5 KiB");
/// assert_eq!(bytes(12_897_485), "12.3 MiB");
/// ```
pub fn bytes(n: u64) -> String {
    human_bytes(n as f64)
}

/// [`bytes`] for any value, negative or fractional (slopes, deltas, means): `-1.5 KiB/s` style.
///
/// ```
/// use tidemark_analyzer::render::units::human_bytes;
/// assert_eq!(human_bytes(1536.0), "1.5 KiB");
/// assert_eq!(human_bytes(-2048.0), "-2.0 KiB");
/// ```
pub fn human_bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let sign = if v < 0.0 { "-" } else { "" };
    let mut x = v.abs();
    if x < 1024.0 {
        return format!("{sign}{x:.0} B");
    }
    x /= 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    if x >= 100.0 {
        format!("{sign}{x:.0} {}", UNITS[unit])
    } else {
        format!("{sign}{x:.1} {}", UNITS[unit])
    }
}

/// A short count for rates and axes: `950`, `1.2k`, `3.4M`, `1.0G`.
pub fn human_count(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Nanoseconds: `850ns`, `3.1µs`, `4.2ms`, `1.25s`.
pub fn human_nanos(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}µs", v / 1e3)
    } else {
        format!("{v:.0}ns")
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration given in ms: `850 ms`, `2.03 s`, `3 min 12 s`.
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// `part` as a percentage of `whole`, one decimal: `9.7%`.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(duration_ms(2030), "2.03 s");
        assert_eq!(duration_ms(192_000), "3 min 12 s");
        assert_eq!(percent(1, 3), "33.3%");
    }
}
