//! Exports: one profile handed to the viewers people already use.
//!
//! | format | module | read by |
//! |---|---|---|
//! | `pprof` | [`pprof`] | `go tool pprof`, pprof's web UI, Pyroscope, Parca (gzipped `profile.proto`) |
//! | `firefox` | [`firefox`] | the Firefox Profiler (processed format, via `fxprof-processed-profile`) |
//! | `dhat` | [`dhat`] | `dh_view.html` (valgrind's DHAT viewer; the `dhat` crate writes the same) |
//! | `folded` | [`folded`] | any flamegraph tool (`stack;frames value` lines) |
//! | `json` | [`json`] | scripts (the summary plus per-stack aggregates; schema in docs/usage.md) |
//!
//! Every exporter reads the model's views (the per-stack aggregates, the summary, the block
//! groups and the timeline); none reads records. A new measured quantity (CPU samples, say) is one
//! more column in [`pprof`]'s sample types and one more [`Metric`] for [`folded`].

pub mod dhat;
pub mod firefox;
pub mod folded;
pub mod json;
pub mod pprof;
pub mod pprof_cpu;

use std::fmt;
use std::io::{self, Write};

use crate::model::Profile;
use crate::render::Metric;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// Gzipped `profile.proto`.
    Pprof,
    /// Firefox Profiler processed-format JSON.
    Firefox,
    /// DHAT JSON (`dhatFileVersion` 2).
    Dhat,
    /// Folded stacks of one metric.
    Folded,
    /// tidemark's own JSON: summary plus per-stack aggregates.
    Json,
}

impl ExportFormat {
    /// Every format, in CLI order.
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Pprof,
        ExportFormat::Firefox,
        ExportFormat::Dhat,
        ExportFormat::Folded,
        ExportFormat::Json,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Pprof => "pprof",
            ExportFormat::Firefox => "firefox",
            ExportFormat::Dhat => "dhat",
            ExportFormat::Folded => "folded",
            ExportFormat::Json => "json",
        }
    }

    /// True when the format needs [`crate::model::Profile::block_groups`] (load with
    /// [`crate::load::LoadOptions::block_groups`]).
    pub fn needs_block_groups(self) -> bool {
        matches!(self, ExportFormat::Firefox | ExportFormat::Dhat)
    }

    /// True for text formats (fit for a terminal); pprof is binary (gzip).
    pub fn is_text(self) -> bool {
        !matches!(self, ExportFormat::Pprof)
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which instant "in use" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum At {
    /// The end of the profile (what is still live: the leaks).
    #[default]
    End,
    /// The instant of the global peak.
    Peak,
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportOptions {
    /// The metric: the only one for `folded` (default [`Metric::Allocated`]); the default sample
    /// type for `pprof` (`peak` and `leaked` choose the in-use instant too); not accepted by the
    /// other formats, which carry every metric. Default: `None`.
    pub metric: Option<Metric>,
    /// The in-use instant of `pprof` ([`At::End`] unless the metric says `peak`). Not accepted by
    /// the other formats. Default: `None`.
    pub at: Option<At>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] io::Error),
    /// The options do not apply to the format.
    #[error("{0}")]
    Options(String),
    /// The profile does not have the metric asked for.
    #[error(transparent)]
    Unavailable(#[from] crate::analysis::MetricUnavailable),
    /// The profile was loaded without a view the format needs (a library caller's mistake).
    #[error("the {format} export needs the profile loaded with LoadOptions::block_groups")]
    MissingBlockGroups {
        /// The format.
        format: ExportFormat,
    },
}

/// Writes `p` in `format` to `out`.
pub fn export<W: Write>(
    p: &Profile,
    format: ExportFormat,
    opts: &ExportOptions,
    out: W,
) -> Result<(), ExportError> {
    check_options(format, opts)?;
    if let Some(m) = opts.metric {
        m.check_available(p)?;
    }
    if format.needs_block_groups() && p.block_groups.is_none() {
        return Err(ExportError::MissingBlockGroups { format });
    }
    match format {
        ExportFormat::Pprof if opts.metric == Some(Metric::Cpu) => pprof_cpu::write(p, out),
        ExportFormat::Pprof => pprof::write(p, &pprof::PprofOptions::resolve(opts)?, out),
        ExportFormat::Firefox => firefox::write(p, out),
        ExportFormat::Dhat => dhat::write(p, out),
        ExportFormat::Folded => folded::write(p, opts.metric.unwrap_or(Metric::Allocated), out),
        ExportFormat::Json => json::write(p, out),
    }
}

/// Checks that `opts` apply to `format` (what [`export`] checks first), so a command line can
/// refuse them before loading a profile.
pub fn check_options(format: ExportFormat, opts: &ExportOptions) -> Result<(), ExportError> {
    if format == ExportFormat::Pprof && opts.metric == Some(Metric::Cpu) {
        if opts.at.is_some() {
            return Err(ExportError::Options(
                "--at picks the in-use instant of a heap profile; a CPU profile (--metric cpu) \
                 has none: drop --at"
                    .into(),
            ));
        }
    } else if format == ExportFormat::Pprof {
        pprof::PprofOptions::resolve(opts)?;
    }
    let takes_metric = matches!(format, ExportFormat::Pprof | ExportFormat::Folded);
    if let (false, Some(m)) = (takes_metric, opts.metric) {
        return Err(ExportError::Options(format!(
            "--metric {m} does not apply to --format {format}, which carries every metric; \
             drop --metric (it selects the folded metric or pprof's default sample type)"
        )));
    }
    if format != ExportFormat::Pprof && opts.at.is_some() {
        return Err(ExportError::Options(format!(
            "--at applies to --format pprof only (its in-use sample types); for --format \
             {format} drop --at{}",
            if format == ExportFormat::Folded {
                " and use --metric peak or --metric leaked"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// The marker frame shown above a stack's outermost frame in every export's call tree
/// (`[truncated]`, `[unwinding stopped]`; [`crate::analysis::stack_roots`]).
fn root_marker_of(p: &Profile, s: &crate::model::StackStats) -> Option<&'static str> {
    let mut names: Vec<&str> = p.stack_frames(s.stack).map(|f| p.str(f.function)).collect();
    names.reverse();
    crate::analysis::stack_roots::root_marker(&names, s.truncated)
}

#[cfg(test)]
mod tests;
