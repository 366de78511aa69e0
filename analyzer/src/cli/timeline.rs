//! `tidemark timeline`: pressure curves as SVG panels, or the raw series as CSV.

use anyhow::Context;

use super::{load, warn_truncated, write_output, TimelineArgs};
use crate::model::Profile;
use crate::render::{curves, timeline};

/// The title `tidemark timeline` gives the SVG: the program's name, and a warning when the
/// profile is truncated.
pub fn timeline_title(p: &Profile) -> String {
    let mut title = format!(
        "tidemark timeline: {}",
        p.header
            .cmdline
            .first()
            .cloned()
            .unwrap_or_else(|| p.header.exe.clone())
    );
    if p.truncated.is_some() {
        title.push_str(" (TRUNCATED profile)");
    }
    title
}

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
    let body = if a.csv {
        curves::csv(&p)
    } else {
        timeline::render_svg(
            &timeline_title(&p),
            &curves::panels(&p, a.limit),
            timeline::DEFAULT_WIDTH_PX,
        )
        .context("cannot draw the timeline")?
    };
    write_output(&out, body.as_bytes())?;
    if out.as_os_str() != "-" {
        eprintln!(
            "tidemark: timeline ({} samples) written to {}",
            p.samples.len(),
            out.display()
        );
    }
    Ok(super::EXIT_OK)
}
