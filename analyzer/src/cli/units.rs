//! Parsing of sizes, counts and rates given on the command line.

/// Parses a size: plain bytes (`4096`), IEC (`64KiB`, `1.5MiB`, `2GiB`, and `K`/`M`/`G` as their
/// short forms) or SI (`64kB`, `1.5MB`, `2GB`). Case-insensitive; a `B` may be left out.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 4096, 64KiB, 1.5GB, 512MiB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" | "ki" => 1024.0,
        "m" | "mib" | "mi" => 1024.0 * 1024.0,
        "g" | "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" | "ti" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "{s:?}: unknown size unit {other:?} (use B, KiB, MiB, GiB, kB, MB or GB)"
            ))
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a memory limit: a size ([`parse_size`]) that must carry its unit. A bare `12` would be
/// twelve bytes, never what was meant by a memory limit.
pub fn parse_limit(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "{s:?} has no unit: write e.g. {t}MiB or {t}GB (or {t}B if bytes are meant)"
        ));
    }
    parse_size(s)
}

/// Parses a count: `2000000`, `2M`, `1.5k`, `3G` (SI multiples: k = 1000).
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a count (examples: 5000, 2M, 1.5k)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok((v * mult).round() as u64)
}

/// Parses a growth rate: a size per second (`1MiB/s`, `500kB/s`; the `/s` may be left out).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("/sec"))
        .unwrap_or(t);
    parse_size(t).map(|b| b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size(" 2 KiB "), Ok(2048));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn counts_and_rates() {
        assert_eq!(parse_count("2M"), Ok(2_000_000));
        assert_eq!(parse_count("1.5k"), Ok(1500));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert!(parse_count("x").is_err());
        assert_eq!(parse_rate("1MiB/s"), Ok(1048576.0));
        assert_eq!(parse_rate("500kB"), Ok(500_000.0));
    }
}
