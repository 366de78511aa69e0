//! Flamegraphs from folded lines, and differential flamegraphs of two folded profiles
//! (inferno's differential mode: widths from the new profile, red grew, blue shrank).

use inferno::flamegraph::{self, color::BasicPalette, Options, Palette};

/// Draws a flamegraph of folded lines (`"a;b;c N"`, any order); empty input gives an empty
/// string.
pub fn folded_svg(
    lines: &[String],
    title: &str,
    subtitle: Option<String>,
    count_name: &str,
) -> Result<String, String> {
    if lines.is_empty() {
        return Ok(String::new());
    }
    let mut sorted: Vec<&str> = lines.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut opts = Options::default();
    opts.title = title.to_owned();
    opts.subtitle = subtitle;
    opts.count_name = count_name.to_owned();
    opts.colors = Palette::Basic(BasicPalette::Mem);
    opts.deterministic = true;
    let mut out = Vec::new();
    flamegraph::from_lines(&mut opts, sorted, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The differential folded lines (`"a;b;c BEFORE AFTER"`) of two folded profiles, sorted.
pub fn differential_lines(before: &[String], after: &[String]) -> Result<Vec<String>, String> {
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        before.join("\n").as_bytes(),
        after.join("\n").as_bytes(),
        &mut diff,
    )
    .map_err(|e| e.to_string())?;
    let mut lines: Vec<String> = String::from_utf8_lossy(&diff)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    Ok(lines)
}

/// A differential flamegraph: widths from `after`, colour by the change from `before`. Empty when
/// `after` has nothing.
pub fn differential_svg(
    before: &[String],
    after: &[String],
    title: &str,
    count_name: &str,
) -> Result<String, String> {
    if after.is_empty() {
        return Ok(String::new());
    }
    let lines = differential_lines(before, after)?;
    folded_svg(
        &lines,
        title,
        Some("widths: new profile · red grew, blue shrank".to_owned()),
        count_name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differential_has_two_columns_and_colours() {
        let before = vec!["main;a 100".to_owned(), "main;b 50".to_owned()];
        let after = vec!["main;a 10".to_owned(), "main;c 90".to_owned()];
        let lines = differential_lines(&before, &after).unwrap();
        assert!(lines.contains(&"main;a 100 10".to_owned()), "{lines:?}");
        assert!(lines.contains(&"main;c 0 90".to_owned()), "{lines:?}");
        let svg = differential_svg(&before, &after, "t", "bytes").unwrap();
        assert!(svg.contains("<svg"));
        assert!(svg.contains("main"));
        assert!(differential_svg(&before, &[], "t", "bytes")
            .unwrap()
            .is_empty());
    }
}
