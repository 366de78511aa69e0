//! `tidemark flamegraph`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{load, warn_truncated, FlamegraphArgs, EXIT_OK};
use crate::render::{flamegraph_svg, folded, Metric};

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
    let metric = Metric::from(a.metric);
    let p = load(&a.profile, &a.load)?;
    warn_truncated(&p, &a.profile);
    let target = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&a.profile, metric, a.folded));
    let to_stdout = target.as_os_str() == "-";
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let f =
            File::create(&target).with_context(|| format!("cannot create {}", target.display()))?;
        Box::new(BufWriter::new(f))
    };
    if a.folded {
        for line in folded(&p, metric) {
            writeln!(out, "{line}")?;
        }
    } else {
        flamegraph_svg(&p, metric, a.inverted, &mut out)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", target.display()))?;
    if !to_stdout {
        eprintln!("tidemark: wrote {}", target.display());
    }
    Ok(EXIT_OK)
}
