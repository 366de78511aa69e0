//! Renderers: they draw the views of [`crate::analysis`] and compute nothing of their own.
//!
//! Every renderer has the same shape, `write(&View, &Options, impl Write) -> Result<(),
//! RenderError>`:
//!
//! | renderer | view | options |
//! |---|---|---|
//! | [`flamegraph::write`] | [`FoldedView`](crate::analysis::views::FoldedView) | [`flamegraph::FlamegraphOptions`] |
//! | [`flamegraph::write_diff`] | [`DiffView`](crate::analysis::views::DiffView) | [`flamegraph::FlamegraphOptions`] |
//! | [`timeline::write`] | [`TimelineView`](crate::analysis::views::TimelineView) | [`timeline::ChartOptions`] |
//! | [`timeline::write_csv`] | [`TimelineColumns`](crate::analysis::views::TimelineColumns) | [`timeline::CsvOptions`] |
//! | [`text::write`] | [`Summary`](crate::analysis::Summary) | [`text::TextOptions`] |
//! | [`text::write_json`] | [`Summary`](crate::analysis::Summary) | [`text::JsonOptions`] |
//! | [`crate::report::markdown::write`], [`crate::report::html::write`] | [`Report`](crate::analysis::views::Report) (+ its inputs for HTML) | their options |
//! | [`view::write_view`], [`export::export`] | the loaded profile (the page and the exports aggregate it their own way) | their options |
//!
//! They share one inferno options builder ([`flamegraph::inferno_options`]), one XML/HTML
//! escaper ([`xml::escape`]), one empty-graph placeholder ([`placeholder::write_empty_svg`]) and
//! one error type ([`RenderError`]).

pub mod escape;
pub mod export;
pub mod flamegraph;
pub mod placeholder;
pub mod text;
pub mod timeline;
pub mod xml;
/// Human units, kept at their old path: [`crate::units`].
pub use crate::units;
pub mod view;

pub use text::{summary_text, summary_text_by, write_summary_json};

use std::io::{self, Write};

pub use crate::analysis::metric::{Metric, UnknownMetric};
use crate::analysis::views::FoldedError;
/// The call-tree views, kept at their old paths: [`crate::analysis::views`].
pub use crate::analysis::views::{folded, folded_to_sites, folded_with};
use crate::analysis::MetricUnavailable;
use crate::model::Profile;

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] io::Error),
    /// The profile does not have the metric asked for.
    #[error(transparent)]
    Unavailable(#[from] MetricUnavailable),
    /// The metric is measured on the whole profile only: it has no per-stack values to draw.
    #[error("{0} is measured on the whole profile only: no per-stack values to draw")]
    NotPerStack(Metric),
    /// A chart could not be drawn (plotters' error, as text: its type is generic over the
    /// drawing backend).
    #[error("cannot draw the chart: {0}")]
    Chart(String),
}

impl From<FoldedError> for RenderError {
    fn from(e: FoldedError) -> Self {
        match e {
            FoldedError::Unavailable(u) => RenderError::Unavailable(u),
            FoldedError::NotPerStack(m) => RenderError::NotPerStack(m),
            FoldedError::Merge(io) => RenderError::Io(io),
        }
    }
}

/// Renders an inferno flamegraph of `m` (an icicle graph when `inverted`) as SVG into `out`:
/// [`analysis::views::folded_view`](crate::analysis::views::folded_view) drawn by
/// [`flamegraph::write`].
///
/// A metric with nothing to show (no leaks, say) gives a small SVG that says so.
/// The Rust runtime's start-up frames are folded into one `[Rust runtime]` frame
/// ([`flamegraph_svg_with`] keeps them).
pub fn flamegraph_svg<W: Write>(
    p: &Profile,
    m: Metric,
    inverted: bool,
    out: W,
) -> Result<(), RenderError> {
    flamegraph_svg_with(p, m, inverted, false, out)
}

/// [`flamegraph_svg`], keeping the Rust runtime's start-up frames when `keep_runtime_frames`.
pub fn flamegraph_svg_with<W: Write>(
    p: &Profile,
    m: Metric,
    inverted: bool,
    keep_runtime_frames: bool,
    out: W,
) -> Result<(), RenderError> {
    let min_width = flamegraph::inferno_options("", None, "", inverted).min_width;
    let view = crate::analysis::views::flamegraph_view(p, m, keep_runtime_frames, min_width)?;
    flamegraph::write(&view, &flamegraph::FlamegraphOptions { inverted }, out)
}

#[cfg(test)]
mod tests;
