//! The one "empty graph" placeholder: a small SVG saying there is nothing to draw, used wherever
//! a graph has no data (a flamegraph of a metric with no values, a differential flamegraph of an
//! empty profile, a timeline without samples).

use std::io::Write;

use super::xml::escape;
use super::RenderError;

/// Writes a 1200×110 SVG with `title`, `subtitle` and `message`, centred.
pub fn write_empty_svg<W: Write>(
    mut out: W,
    title: &str,
    subtitle: Option<&str>,
    message: &str,
) -> Result<(), RenderError> {
    writeln!(
        out,
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="1200" height="110" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="100%" height="100%" fill="#eeeeee"/>
<text x="600" y="24" font-size="17" font-family="Verdana" text-anchor="middle">{}</text>
<text x="600" y="50" font-size="12" font-family="Verdana" text-anchor="middle">{}</text>
<text x="600" y="80" font-size="14" font-family="Verdana" text-anchor="middle">{}</text>
</svg>"##,
        escape(title),
        escape(subtitle.unwrap_or("")),
        escape(message)
    )?;
    Ok(())
}
