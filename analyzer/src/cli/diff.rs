//! `tidemark diff`: the differential flamegraph of two profiles.

use super::{load, warn_truncated, write_output, DiffArgs};
use anyhow::Context as _;

use crate::render::{diff, folded};

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
    let before = folded(&base, metric);
    let after = folded(&new, metric);
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
    let svg = diff::differential_svg(&before, &after, &title, metric.count_name())
        .map_err(|e| anyhow::anyhow!("cannot draw the differential flamegraph: {e}"))?;
    let svg = if svg.is_empty() {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\"><text x=\"10\" y=\"25\">{} has no {} to show</text></svg>\n",
            crate::report::html_escape(&a.new.display().to_string()),
            metric.name()
        )
    } else {
        svg
    };
    write_output(&out, svg.as_bytes())?;
    if out.as_os_str() != "-" {
        eprintln!(
            "tidemark: differential flamegraph written to {}",
            out.display()
        );
    }
    Ok(super::EXIT_OK)
}
