//! Folded stacks (`main;f;g 1024`) of one metric, root first, sorted, one line per distinct
//! stack ([`crate::render::folded()`]): what inferno, Brendan Gregg's `flamegraph.pl`, speedscope
//! and most flamegraph tools read.

use std::io::Write;

use super::ExportError;
use crate::model::Profile;
use crate::render::{folded, Metric};

/// Writes the folded lines of `metric`.
pub fn write<W: Write>(p: &Profile, metric: Metric, mut out: W) -> Result<(), ExportError> {
    for line in folded(p, metric) {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
