//! `tidemark diff`: the differential flamegraph of two profiles.

use super::{load, warn_truncated, write_output, DiffArgs};
use anyhow::Context as _;

use crate::analysis::views::diff_flamegraph_view;
use crate::render::flamegraph::{write_diff, FlamegraphOptions};

pub(super) fn diff(a: &DiffArgs) -> anyhow::Result<u8> {
    super::output::check_option(a.output.as_deref(), "the differential flamegraph")?;
    let base = load(&a.base, &a.load)?;
    warn_truncated(&base, &a.base);
    let new = load(&a.new, &a.load)?;
    warn_truncated(&new, &a.new);
    let metric = a.metric;
    for (p, path) in [(&base, &a.base), (&new, &a.new)] {
        metric
            .check_available(p)
            .with_context(|| path.display().to_string())?;
    }
    let out = a.output.clone().unwrap_or_else(|| {
        let stem = |p: &std::path::Path| {
            p.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        a.new.with_file_name(format!(
            "{}-vs-{}.{}.diff.svg",
            stem(&a.new),
            stem(&a.base),
            metric.name()
        ))
    });
    let title = format!(
        "{}: {} vs {}",
        metric.title(),
        a.new.display(),
        a.base.display()
    );
    let empty = format!("{} has no {} to show", a.new.display(), metric.name());
    let min_width = crate::render::flamegraph::inferno_options("", None, "", false).min_width;
    let view = diff_flamegraph_view(&base, &new, metric, &title, &empty, min_width)
        .context("cannot draw the differential flamegraph")?;
    let mut svg = Vec::new();
    write_diff(&view, &FlamegraphOptions::default(), &mut svg)
        .context("cannot draw the differential flamegraph")?;
    write_output(&out, &svg)?;
    if out.as_os_str() != "-" {
        eprintln!(
            "tidemark: differential flamegraph written to {}",
            out.display()
        );
    }
    Ok(super::EXIT_OK)
}
