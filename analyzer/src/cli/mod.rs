//! The `tidemark` command line: parse → call the library → write → exit code.
//!
//! Parsed flags ([`Cli`]) hold what the user typed; each command resolves them into what it runs
//! with. Exit codes: 0 ok, 1 a check failed, 2 an error (`tidemark run` passes on the command's
//! own status).

mod flamegraph;
mod run;
mod summary;

pub use run::{find_beside_exe, parse_interval_ms, PRELOAD_LIB, WORKLOAD_BIN};

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::analysis::DEFAULT_TOP_N;
use crate::load::{load_path, LoadOptions};
use crate::model::Profile;
use crate::render::Metric;

/// Default of `tidemark run --interval`.
pub const DEFAULT_INTERVAL: &str = "10ms";
/// [`DEFAULT_INTERVAL`] in ms.
pub const DEFAULT_INTERVAL_MS: u64 = 10;
/// Default output directory of `tidemark run` with no command.
pub const DEFAULT_WORKLOAD_DIR: &str = "tidemark-out";
/// How long the built-in workload runs, ms.
pub const DEFAULT_WORKLOAD_DURATION_MS: u64 = 2000;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: a check failed.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit status: an error.
pub const EXIT_ERROR: u8 = 2;

/// tidemark: memory and allocator profiler for native Linux programs.
#[derive(Debug, Parser)]
#[command(
    name = "tidemark",
    version,
    about = "Memory and allocator profiler for native Linux programs",
    long_about = None
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a program under the recorder and write a profile (no command: the built-in workload).
    Run(RunArgs),
    /// Print the headline numbers of a profile: allocations, peak, leaks, temporaries, top sites.
    Summary(SummaryArgs),
    /// Draw a flamegraph (SVG) or write folded stacks of one metric.
    Flamegraph(FlamegraphArgs),
}

/// How profiles are loaded.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Do not read binaries for symbols (symbols embedded in the profile are still used).
    #[arg(long)]
    pub no_symbolize: bool,
}

impl LoadArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            symbolize: !self.no_symbolize,
            progress: true,
        }
    }
}

/// `tidemark summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many allocation sites to list.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TOP_N)]
    pub top: usize,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The profile (.tmk).
    pub profile: PathBuf,
}

/// The `--metric` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Requested bytes over every allocation call.
    Allocated,
    /// Allocation calls.
    Allocations,
    /// Live bytes at the global peak.
    Peak,
    /// Bytes still live at the end.
    Leaked,
    /// Temporary allocations.
    Temporary,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Metric {
        match m {
            MetricArg::Allocated => Metric::Allocated,
            MetricArg::Allocations => Metric::Allocations,
            MetricArg::Peak => Metric::Peak,
            MetricArg::Leaked => Metric::Leaked,
            MetricArg::Temporary => Metric::Temporary,
        }
    }
}

/// `tidemark flamegraph`.
#[derive(Debug, Args)]
pub struct FlamegraphArgs {
    /// What the widths measure.
    #[arg(long, value_enum, default_value_t = MetricArg::Allocated)]
    pub metric: MetricArg,
    /// Draw an icicle graph (roots at the top).
    #[arg(long)]
    pub inverted: bool,
    /// Write folded stacks (`main;f;g 1024`) instead of SVG.
    #[arg(long)]
    pub folded: bool,
    /// Output file, `-` for stdout. Default: `<profile stem>.<metric>.svg` (or `.folded`) next to
    /// the profile.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The profile (.tmk).
    pub profile: PathBuf,
}

/// The `--unwind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnwindArg {
    /// DWARF call frame information: correct without frame pointers (Rust release, Debian libc).
    Dwarf,
    /// Frame pointers: faster, correct only when every frame keeps them.
    Fp,
}

impl UnwindArg {
    /// The value of `TIDEMARK_UNWIND`.
    pub fn env_value(self) -> &'static str {
        match self {
            UnwindArg::Dwarf => "dwarf",
            UnwindArg::Fp => "fp",
        }
    }
}

/// `tidemark run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where to write the profile. Default: `tidemark.<exe>.<pid>.tmk` in the current directory
    /// (`<pid>` is tidemark's). With no command: the output directory (default `tidemark-out`).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Timeline sampling interval (`10ms`, `1s`, or a number of ms).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_INTERVAL, value_parser = parse_interval_ms)]
    pub interval: u64,
    /// Stack unwinding mode of the recorder.
    #[arg(long, value_enum, default_value_t = UnwindArg::Dwarf)]
    pub unwind: UnwindArg,
    /// The program and its arguments (after `--`). None: profile the built-in workload.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Runs a parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(a) => run::run(&a),
        Command::Summary(a) => summary::summary(&a),
        Command::Flamegraph(a) => flamegraph::flamegraph(&a),
    }
}

/// Loads a profile for a command, with progress and the context the error message needs.
fn load(profile: &std::path::Path, args: &LoadArgs) -> anyhow::Result<Profile> {
    Ok(load_path(profile, &args.options())?)
}

/// Prints the truncation warning on stderr, for outputs that go elsewhere.
fn warn_truncated(p: &Profile, path: &std::path::Path) {
    if let Some(t) = &p.truncated {
        eprintln!(
            "tidemark: warning: {} is truncated ({}, at byte {}); numbers cover the recorded \
             part only",
            path.display(),
            t.reason,
            t.offset
        );
    }
}

/// True when `e` (or its cause chain) is a broken pipe: the reader went away, which is success.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<crate::render::RenderError>()
                .is_some_and(|r| matches!(r, crate::render::RenderError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod tests;
