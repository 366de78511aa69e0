//! `tidemark flamegraph`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::output::{check_target, write_to};
use super::{load, warn_truncated, FlamegraphArgs, EXIT_OK};
use crate::render::{flamegraph_svg_with, folded_with, Metric};

/// `<dir>/<stem>.<metric>.<ext>` next to the profile.
pub(super) fn default_output(profile: &Path, metric: Metric, folded: bool) -> PathBuf {
    let stem = profile
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile".to_owned());
    let ext = if folded { "folded" } else { "svg" };
    profile.with_file_name(format!("{stem}.{}.{ext}", metric.name()))
}

pub(super) fn flamegraph(a: &FlamegraphArgs) -> anyhow::Result<u8> {
    let metric = a.metric;
    let target = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&a.profile, metric, a.folded));
    let to_stdout = target.as_os_str() == "-";
    if !to_stdout {
        // Before the (possibly long) load: a special file at the path is refused up front.
        check_target(&target, "the flamegraph")?;
    }
    let p = load(&a.profile, &a.load)?;
    metric
        .check_available(&p)
        .with_context(|| a.profile.display().to_string())?;
    warn_truncated(&p, &a.profile);
    write_to(&target, "the flamegraph", |out| {
        if a.folded {
            for line in folded_with(&p, metric, a.keep_runtime_frames) {
                writeln!(out, "{line}")?;
            }
        } else {
            flamegraph_svg_with(&p, metric, a.inverted, a.keep_runtime_frames, out)?;
        }
        Ok(())
    })?;
    if !to_stdout {
        eprintln!("tidemark: wrote {}", target.display());
    }
    Ok(EXIT_OK)
}
