//! Flamegraph SVGs (inferno) of the call-tree views: [`write()`] for one metric's
//! [`FoldedView`], [`write_diff`] for a [`DiffView`]. Both go through one inferno options
//! builder ([`inferno_options`]) and draw the one placeholder when there is nothing to show.

use std::io::Write;

use inferno::flamegraph::color::{BasicPalette, Palette};
use inferno::flamegraph::{self, Direction, Options};

use super::placeholder::write_empty_svg;
use super::RenderError;
use crate::analysis::views::{DiffView, FoldedView};

/// How a flamegraph is drawn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlamegraphOptions {
    /// An icicle graph (root on top). Default: `false`.
    pub inverted: bool,
}

/// inferno's options as every tidemark flamegraph uses them: the `Mem` palette, deterministic
/// colours, `count_name` after each value, root at the bottom unless `inverted`.
pub fn inferno_options(
    title: &str,
    subtitle: Option<&str>,
    count_name: &str,
    inverted: bool,
) -> Options<'static> {
    let mut opts = Options::default();
    opts.title = title.to_owned();
    opts.subtitle = subtitle.map(str::to_owned);
    opts.count_name = count_name.to_owned();
    opts.colors = Palette::Basic(BasicPalette::Mem);
    opts.deterministic = true;
    opts.direction = if inverted {
        Direction::Inverted
    } else {
        Direction::Straight
    };
    opts
}

/// Draws `lines` (sorted, as the views give them: inferno needs its input sorted) with the
/// view's titles, or the placeholder when there are none.
fn draw<W: Write>(
    lines: &[String],
    title: &str,
    subtitle: Option<&str>,
    count_name: &str,
    empty_message: &str,
    o: &FlamegraphOptions,
    mut out: W,
) -> Result<(), RenderError> {
    if lines.is_empty() {
        return write_empty_svg(out, title, subtitle, empty_message);
    }
    let mut opts = inferno_options(title, subtitle, count_name, o.inverted);
    // The views give their lines sorted by stack: stacks that share a prefix are together,
    // which is all inferno's merge needs (its own sort of 4 MB of lines was a tenth of it).
    opts.no_sort = true;
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut out)?;
    Ok(())
}

/// Writes the flamegraph of one metric's call tree as SVG.
pub fn write<W: Write>(v: &FoldedView, o: &FlamegraphOptions, out: W) -> Result<(), RenderError> {
    draw(
        &v.lines,
        &v.title,
        v.subtitle.as_deref(),
        &v.count_name,
        &v.empty_message,
        o,
        out,
    )
}

/// Writes a differential flamegraph as SVG: widths from the new profile, red grew, blue shrank.
pub fn write_diff<W: Write>(
    v: &DiffView,
    o: &FlamegraphOptions,
    out: W,
) -> Result<(), RenderError> {
    draw(
        &v.lines,
        &v.title,
        v.subtitle.as_deref(),
        &v.count_name,
        &v.empty_message,
        o,
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::views::diff_view;

    #[test]
    fn differential_svg_has_colours_and_an_empty_one_says_so() {
        let before = vec!["main;a 100".to_owned(), "main;b 50".to_owned()];
        let after = vec!["main;a 10".to_owned(), "main;c 90".to_owned()];
        let v = diff_view(&before, &after, "t", "bytes", "nothing").unwrap();
        let mut svg = Vec::new();
        write_diff(&v, &FlamegraphOptions::default(), &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<svg"));
        assert!(svg.contains("main"));
        let v = diff_view(&before, &[], "t", "bytes", "new.tmk has no <bytes>").unwrap();
        let mut svg = Vec::new();
        write_diff(&v, &FlamegraphOptions::default(), &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("new.tmk has no &lt;bytes&gt;"), "{svg}");
    }
}
