//! `tidemark export`: one profile in the formats other viewers read.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::{output, warn_truncated, LoadArgs, EXIT_OK};
use crate::analysis::Metric;
use crate::load::{load_path, LoadOptions};
use crate::render::export::{
    check_options, export as write_export, At, ExportFormat, ExportOptions,
};

/// The `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Gzipped pprof profile.proto (go tool pprof, Pyroscope, Parca).
    Pprof,
    /// Firefox Profiler processed JSON (profiler.firefox.com → Load a profile from file).
    Firefox,
    /// DHAT JSON (valgrind's dh_view.html).
    Dhat,
    /// Folded stacks of one metric (any flamegraph tool).
    Folded,
    /// tidemark JSON: the summary plus per-stack aggregates (schema in docs/usage.md).
    Json,
}

impl From<FormatArg> for ExportFormat {
    fn from(f: FormatArg) -> ExportFormat {
        match f {
            FormatArg::Pprof => ExportFormat::Pprof,
            FormatArg::Firefox => ExportFormat::Firefox,
            FormatArg::Dhat => ExportFormat::Dhat,
            FormatArg::Folded => ExportFormat::Folded,
            FormatArg::Json => ExportFormat::Json,
        }
    }
}

/// The `--at` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AtArg {
    /// In use at the end of the profile (the leaks).
    End,
    /// In use at the instant of the global peak.
    Peak,
}

/// `tidemark export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// folded: the metric (default allocated); pprof: the default sample type (peak and leaked
    /// also choose the in-use instant). The other formats carry every metric.
    #[arg(long, value_enum)]
    pub metric: Option<Metric>,
    /// pprof: the instant of the inuse_* sample types (default end).
    #[arg(long, value_enum)]
    pub at: Option<AtArg>,
    /// Output file (`-`: stdout). Text formats are gzipped when the name ends in `.gz`; pprof
    /// is always gzipped. An existing regular file is replaced atomically.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The profile (.tmk).
    pub profile: PathBuf,
}

pub(super) fn export(a: &ExportArgs) -> anyhow::Result<u8> {
    let format = ExportFormat::from(a.format);
    let opts = ExportOptions {
        metric: a.metric,
        at: a.at.map(|at| match at {
            AtArg::End => At::End,
            AtArg::Peak => At::Peak,
        }),
    };
    check_options(format, &opts)?;
    let to_stdout = a.output.as_os_str() == "-";
    if to_stdout && !format.is_text() && std::io::stdout().is_terminal() {
        bail!("--format {format} is binary (gzip): write it to a file with -o FILE, or pipe it");
    }
    if !to_stdout {
        output::check_target(&a.output, "the export")?;
    }
    let load_opts = LoadOptions {
        block_groups: format.needs_block_groups(),
        ..a.load.options()?
    };
    let p = load_path(&a.profile, &load_opts)?;
    warn_truncated(&p, &a.profile);
    let gzip = format.is_text() && a.output.extension().is_some_and(|e| e == "gz");
    output::write_to(&a.output, "the export", |w| {
        encode(w, gzip, |w| write_export(&p, format, &opts, w))
    })?;
    if to_stdout {
        return Ok(EXIT_OK);
    }
    eprintln!("tidemark: wrote {}", a.output.display());
    Ok(EXIT_OK)
}

/// Runs `f` on `out`, through gzip when asked, and flushes.
fn encode<W: Write>(
    out: W,
    gzip: bool,
    f: impl FnOnce(&mut dyn Write) -> Result<(), crate::render::export::ExportError>,
) -> anyhow::Result<()> {
    if gzip {
        let mut gz = GzEncoder::new(out, Compression::default());
        f(&mut gz)?;
        gz.finish()?.flush()?;
    } else {
        let mut out = out;
        f(&mut out)?;
        out.flush()?;
    }
    Ok(())
}
