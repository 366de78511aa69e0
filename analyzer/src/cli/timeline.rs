//! `tidemark timeline`: pressure curves as SVG panels, or the raw series as CSV.

use anyhow::Context;

use super::{load, warn_truncated, write_output, TimelineArgs};
/// The title `tidemark timeline` gives the SVG (part of the timeline view).
pub use crate::analysis::views::timeline_title;
use crate::analysis::views::{timeline_columns, timeline_view};
use crate::render::timeline;

pub(super) fn timeline(a: &TimelineArgs) -> anyhow::Result<u8> {
    super::output::check_option(a.output.as_deref(), "the timeline")?;
    let p = load(&a.profile, &a.load)?;
    warn_truncated(&p, &a.profile);
    let ext = if a.csv { "csv" } else { "svg" };
    let out = a.output.clone().unwrap_or_else(|| {
        let stem = a
            .profile
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        a.profile.with_file_name(format!("{stem}.timeline.{ext}"))
    });
    let mut body = Vec::new();
    if a.csv {
        timeline::write_csv(
            &timeline_columns(&p),
            &timeline::CsvOptions::default(),
            &mut body,
        )
        .context("cannot write the timeline")?;
    } else {
        timeline::write(
            &timeline_view(&p, a.limit),
            &timeline::ChartOptions::default(),
            &mut body,
        )
        .context("cannot draw the timeline")?;
    }
    write_output(&out, &body)?;
    if out.as_os_str() != "-" {
        eprintln!(
            "tidemark: timeline ({} samples) written to {}",
            p.samples.len(),
            out.display()
        );
    }
    Ok(super::EXIT_OK)
}
