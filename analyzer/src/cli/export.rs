//! `tidemark export`: one profile in the formats other viewers read.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::{warn_truncated, LoadArgs, EXIT_OK};
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
        check_target(&a.output)?;
    }
    let load_opts = LoadOptions {
        block_groups: format.needs_block_groups(),
        ..a.load.options()?
    };
    let p = load_path(&a.profile, &load_opts)?;
    warn_truncated(&p, &a.profile);
    let gzip = format.is_text() && a.output.extension().is_some_and(|e| e == "gz");
    if to_stdout {
        let out = BufWriter::new(std::io::stdout().lock());
        write_to(out, gzip, |w| write_export(&p, format, &opts, w))?;
        return Ok(EXIT_OK);
    }
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let tmp = temp_path(&a.output);
    let result = File::create(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))
        .and_then(|f| {
            write_to(BufWriter::new(f), gzip, |w| {
                write_export(&p, format, &opts, w)
            })
        })
        .and_then(|()| {
            std::fs::rename(&tmp, &a.output)
                .with_context(|| format!("cannot move {} into place", tmp.display()))
        });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp); // best effort: the error below is what matters
        return Err(e.context(format!("cannot write {}", a.output.display())));
    }
    eprintln!("tidemark: wrote {}", a.output.display());
    Ok(EXIT_OK)
}

/// Runs `f` on `out`, through gzip when asked, and flushes.
fn write_to<W: Write>(
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

/// Refuses an output that exists and is not a regular file (a directory, a device, a FIFO).
fn check_target(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => bail!(
            "{} exists and is not a regular file; choose another -o (or `-o -` for stdout)",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// A temporary file beside `path` (same directory, so the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".to_owned());
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}
