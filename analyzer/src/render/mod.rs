//! Renderers: folded stacks, inferno flamegraph SVG, the text and JSON summary.
//!
//! Folded lines are the only thing the flamegraph stage shares with the model (as in inferno:
//! `collapse` → folded text → `flamegraph`).

pub mod curves;
pub mod diff;
pub mod escape;
pub mod export;
mod text;
pub mod timeline;
pub mod units;
pub mod view;

pub use text::{summary_text, summary_text_by, write_summary_json};

use std::collections::BTreeMap;
use std::io::{self, Write};

use inferno::flamegraph::color::{BasicPalette, Palette};
use inferno::flamegraph::{self, Direction, Options};

pub use crate::analysis::metric::{Metric, UnknownMetric};
use crate::analysis::{MetricUnavailable, Unit};
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
}

/// The folded line of a recorded stack, root → leaf, its root end shown by the one rule of
/// [`crate::analysis::stack_roots`]: a stack cut at the recorder's frame limit starts with
/// `[truncated]`, one that stopped unwinding before a thread or process entry with
/// `[unwinding stopped]`, so partial stacks gather under one marked root instead of passing for
/// separate roots; unless `keep_runtime_frames`, the Rust runtime's start-up frames are one
/// `[Rust runtime]` frame.
fn stack_line(p: &Profile, s: &crate::model::StackStats, keep_runtime_frames: bool) -> String {
    let names = crate::analysis::stack_roots::display_names(p, s, keep_runtime_frames);
    if names.is_empty() {
        return crate::analysis::UNKNOWN_FUNCTION.to_owned();
    }
    names.join(";")
}

/// Like [`folded`], with each stack cut at its allocation site: the allocator plumbing inside the
/// site (`alloc`, `RawVec::grow`, `operator new`, …) is left out, so the leaf of every line is the
/// site (docs/metrics.md). Comparisons use these lines: their leaves are the sites.
pub fn folded_to_sites(p: &Profile, m: Metric) -> Vec<String> {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.stack_stats {
        let v = m.of(&s.counts);
        if v == 0 {
            continue;
        }
        let frames: Vec<&crate::model::Frame> = p.stack_frames(s.stack).collect();
        let site = crate::analysis::site_index(p, s.stack);
        let mut names: Vec<&str> = frames[site..].iter().map(|f| p.str(f.function)).collect();
        names.reverse();
        if let Some(marker) = crate::analysis::stack_roots::root_marker(&names, s.truncated) {
            names.insert(0, marker);
        }
        let line = if names.is_empty() {
            crate::analysis::UNKNOWN_FUNCTION.to_owned()
        } else {
            names.join(";")
        };
        let e = lines.entry(line).or_default();
        *e = e.saturating_add(v);
    }
    lines
        .into_iter()
        .map(|(stack, v)| format!("{stack} {v}"))
        .collect()
}

/// Folded stacks for `m`, root first (`main;f;g 1024`), one line per distinct stack, sorted,
/// stacks with a zero value left out; every frame kept (the Rust runtime's too), root markers
/// as [`crate::analysis::stack_roots`] says.
pub fn folded(p: &Profile, m: Metric) -> Vec<String> {
    folded_with(p, m, true)
}

/// [`folded`], with the Rust runtime's start-up frames folded into one `[Rust runtime]` frame
/// unless `keep_runtime_frames` (what `tidemark flamegraph` draws by default).
pub fn folded_with(p: &Profile, m: Metric, keep_runtime_frames: bool) -> Vec<String> {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.stack_stats {
        let v = m.of(&s.counts);
        if v == 0 {
            continue;
        }
        let e = lines
            .entry(stack_line(p, s, keep_runtime_frames))
            .or_default();
        *e = e.saturating_add(v);
    }
    lines
        .into_iter()
        .map(|(stack, v)| format!("{stack} {v}"))
        .collect()
}

/// The title and subtitle of a flamegraph of `p`.
fn titles(p: &Profile, m: Metric) -> (String, Option<String>) {
    let exe = p
        .header
        .exe
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("profile");
    let title = format!("{} — {exe} (pid {})", m.title(), p.header.pid);
    let total = p
        .stack_stats
        .iter()
        .fold(0u64, |t, s| t.saturating_add(m.of(&s.counts)));
    let total = match m.unit() {
        Unit::Bytes => units::bytes(total),
        _ => format!("{} {}", units::count(total), m.count_name()),
    };
    let mut sub = format!("total {total}");
    if let Some(t) = &p.truncated {
        sub = format!(
            "WARNING: truncated profile ({}); numbers cover the recorded part only — {sub}",
            t.reason
        );
    }
    (title, Some(sub))
}

/// Renders an inferno flamegraph of `m` (an icicle graph when `inverted`) as SVG into `out`, the
/// Rust runtime's start-up frames folded into one frame ([`flamegraph_svg_with`] keeps them).
///
/// A metric with nothing to show (no leaks, say) gives a small SVG that says so.
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
    mut out: W,
) -> Result<(), RenderError> {
    if !m.is_per_stack() {
        return Err(RenderError::NotPerStack(m));
    }
    m.check_available(p)?;
    let lines = folded_with(p, m, keep_runtime_frames);
    let (title, subtitle) = titles(p, m);
    if lines.is_empty() {
        return empty_svg(
            &mut out,
            &title,
            &format!("no {} in this profile", m.title().to_lowercase()),
            subtitle.as_deref(),
        );
    }
    let mut opts = Options::default();
    opts.title = title;
    opts.subtitle = subtitle;
    opts.count_name = m.count_name().to_owned();
    opts.colors = Palette::Basic(BasicPalette::Mem);
    opts.deterministic = true;
    opts.direction = if inverted {
        Direction::Inverted
    } else {
        Direction::Straight
    };
    let lines = fit_in_u64(lines);
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut out)?;
    Ok(())
}

/// Folded lines whose values add up within `u64` (inferno sums them): a damaged profile can hold
/// per-stack values near `u64::MAX`; they are then scaled down alike (real profiles never need
/// it: 2^64 bytes is 16 EiB).
fn fit_in_u64(lines: Vec<String>) -> Vec<String> {
    let value = |l: &str| -> u64 {
        l.rsplit_once(' ')
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let total: u128 = lines.iter().map(|l| u128::from(value(l))).sum();
    if total <= u128::from(u64::MAX) {
        return lines;
    }
    let divisor = total.div_ceil(u128::from(u64::MAX)) as u64;
    lines
        .iter()
        .map(|l| match l.rsplit_once(' ') {
            Some((stack, _)) => format!("{stack} {}", value(l) / divisor),
            None => l.clone(),
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn empty_svg<W: Write>(
    out: &mut W,
    title: &str,
    message: &str,
    subtitle: Option<&str>,
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
        xml_escape(title),
        xml_escape(subtitle.unwrap_or("")),
        xml_escape(message)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
