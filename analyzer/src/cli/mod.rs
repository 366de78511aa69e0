//! The `tidemark` command line: parse → call the library → write → exit code.
//!
//! Parsed flags ([`Cli`]) hold what the user typed; each command resolves them into what it runs
//! with. Exit codes: 0 ok, 1 a check failed, 2 an error (`tidemark run` passes on the command's
//! own status).

mod check;
mod checks;
mod demo;
mod demo_stack;
mod diff;
mod export;
mod flamegraph;
mod images;
mod launcher;
pub mod output;
mod report;
mod run;
mod summary;
mod timeline;
pub mod units;
mod view;

pub use demo::WORKLOAD_BIN;
pub use launcher::{find_beside_exe, PRELOAD_LIB};
pub use run::parse_interval_ms;
pub use timeline::timeline_title;
pub use view::ViewArgs;

use std::ffi::OsString;
use std::path::PathBuf;

use std::sync::OnceLock;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::analysis::suppress::Suppressions;
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
    #[command(
        after_help = "Examples:\n  tidemark run -- ./server --port 8080          # profile written to tidemark.server.<pid>.tmk\n  tidemark run -o app.tmk --limit 512MiB -- ./app\n  tidemark run                                   # the built-in workloads, every output in tidemark-out/"
    )]
    Run(RunArgs),
    /// Print the headline numbers of a profile: allocations, peak, leaks, temporaries, top sites.
    #[command(
        after_help = "Examples:\n  tidemark summary app.tmk\n  tidemark summary --top 20 --sort leaked app.tmk\n  tidemark summary --json app.tmk > app.json"
    )]
    Summary(SummaryArgs),
    /// Draw a flamegraph (SVG) or write folded stacks of one metric.
    #[command(
        after_help = "Examples:\n  tidemark flamegraph app.tmk                    # allocated bytes, app.allocated.svg\n  tidemark flamegraph --metric leaked -o leaked.svg app.tmk\n  tidemark flamegraph --folded --metric peak app.tmk > peak.folded"
    )]
    Flamegraph(FlamegraphArgs),
    /// Draw the pressure curves over time (SVG panels), or write them as CSV.
    #[command(
        after_help = "Examples:\n  tidemark timeline app.tmk -o curves.svg\n  tidemark timeline --csv app.tmk -o curves.csv"
    )]
    Timeline(TimelineArgs),
    /// Compare scenarios (each one or more runs) in one HTML, Markdown or JSON report.
    #[command(
        after_help = "Examples:\n  tidemark report before=base.*.tmk after=new.*.tmk -o report.html\n  tidemark report a.tmk b.tmk -o report.md"
    )]
    Report(ReportArgs),
    /// Draw the differential flamegraph of two profiles (red grew, blue shrank).
    #[command(after_help = "Example:\n  tidemark diff base.tmk new.tmk -o diff.svg")]
    Diff(DiffArgs),
    /// Check a profile against budgets: exit 0 within budget, 1 over budget, 2 on error.
    #[command(
        after_help = "Example:\n  tidemark check app.tmk --max-peak 64MiB --max-leaked 0 --max-allocations 2M"
    )]
    Check(CheckArgs),
    /// Export a profile for other viewers: pprof, Firefox Profiler, DHAT, folded stacks, JSON.
    #[command(
        after_help = "Examples:\n  tidemark export --format pprof -o heap.pb.gz app.tmk     # go tool pprof -top heap.pb.gz\n  tidemark export --format firefox -o app.json.gz app.tmk  # profiler.firefox.com\n  tidemark export --format dhat -o dhat.json app.tmk       # valgrind's dh_view.html"
    )]
    Export(export::ExportArgs),
    /// Write one self-contained interactive HTML page: timeline with a selectable time range,
    /// flamegraph, tables, histograms, threads.
    View(ViewArgs),
}

/// `tidemark timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Output file, `-` for stdout. Default: `<profile stem>.timeline.svg` (or `.csv`) next to
    /// the profile.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the raw series as CSV, one named column per series, instead of SVG.
    #[arg(long)]
    pub csv: bool,
    /// Memory limit to draw and project against (`512MiB`, `1GB`; a unit is required); default:
    /// the one given at record time, else the cgroup's memory.max.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_limit)]
    pub limit: Option<u64>,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The profile (.tmk).
    pub profile: PathBuf,
}

/// Report output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML page.
    Html,
    /// Markdown, fit for a pull-request comment.
    Md,
    /// JSON (schema in docs/report.md).
    Json,
}

/// `tidemark report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The scenario compared against. Default: the first label.
    #[arg(long, value_name = "LABEL")]
    pub baseline: Option<String>,
    /// Output file (`-` for stdout). Default: `report.html`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format. Default: from the output's extension (.html, .md, .json).
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// `LABEL=PROFILE` or `PROFILE`; a label may name several runs (`before=base.*.tmk`,
    /// expanded by tidemark). Bare profiles are labelled by their file stem without a run
    /// number.
    #[arg(required = true, value_name = "[LABEL=]PROFILE")]
    pub profiles: Vec<String>,
}

/// `tidemark diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// What the widths measure.
    #[arg(long, value_enum, default_value_t = Metric::Allocated)]
    pub metric: Metric,
    /// Output file (`-` for stdout). Default: `<new>-vs-<base>.<metric>.diff.svg` next to NEW.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The baseline profile.
    pub base: PathBuf,
    /// The new profile.
    pub new: PathBuf,
}

/// `tidemark check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Largest allowed peak heap (`64MiB`, `1.5GB`, bytes).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    pub max_peak: Option<u64>,
    /// Largest allowed leaked bytes (live at the end).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    pub max_leaked: Option<u64>,
    /// Largest allowed number of allocation calls (`2M`, `5000`).
    #[arg(long, value_name = "COUNT", value_parser = units::parse_count)]
    pub max_allocations: Option<u64>,
    /// Largest allowed number of temporary allocations.
    #[arg(long, value_name = "COUNT", value_parser = units::parse_count)]
    pub max_temporary: Option<u64>,
    /// Largest allowed growth slope of the live heap (`1MiB/s`).
    #[arg(long, value_name = "RATE", value_parser = units::parse_rate)]
    pub max_growth: Option<f64>,
    /// Largest allowed peak RSS.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    pub max_rss: Option<u64>,
    /// Fail when the leak verdict says the heap grows without bound.
    #[arg(long)]
    pub no_leak: bool,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The profile (.tmk).
    pub profile: PathBuf,
}

/// How profiles are loaded.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Do not read binaries for symbols (symbols embedded in the profile are still used).
    #[arg(long)]
    pub no_symbolize: bool,
    /// Count blocks live at the end whose allocation stack has a frame matching a pattern of
    /// FILE as runtime-owned, not leaked (one function-name pattern per line, `*` wildcards,
    /// `#` comments; docs/usage.md).
    #[arg(long, value_name = "FILE")]
    pub suppressions: Option<PathBuf>,
    /// Drop the built-in rules that count the C runtime's own blocks (loader, locale,
    /// per-thread DTV, libstdc++'s emergency pool) as runtime-owned: every block live at the end
    /// is then leaked.
    #[arg(long)]
    pub no_default_suppressions: bool,
}

impl LoadArgs {
    fn options(&self) -> anyhow::Result<LoadOptions> {
        let mut suppressions = if self.no_default_suppressions {
            Suppressions::none()
        } else {
            Suppressions::builtin()
        };
        if let Some(file) = &self.suppressions {
            suppressions.add_file(file)?;
        }
        Ok(LoadOptions {
            symbolize: !self.no_symbolize,
            progress: true,
            suppressions,
            ..LoadOptions::default()
        })
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
    /// What the sites are ordered by.
    #[arg(long, value_enum, default_value_t = summary::SortArg::Allocated)]
    pub sort: summary::SortArg,
    /// Under each listed site, its N heaviest call paths (callers merged, innermost first).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub backtrace: usize,
    /// Largest block counted as "could live on the stack" in the escape section (profiles
    /// recorded with `tidemark run --escape`): `4KiB`, `512B`, `1MiB`.
    #[arg(long, value_name = "SIZE", default_value = "4KiB", value_parser = units::parse_limit)]
    pub stack_threshold: u64,
    /// Loading options.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The profile (.tmk).
    pub profile: PathBuf,
}

/// `--metric` takes the metrics with a value per stack ([`Metric::per_stack`]), named and
/// described by the metric table.
impl ValueEnum for Metric {
    fn value_variants<'a>() -> &'a [Self] {
        static PER_STACK: OnceLock<Vec<Metric>> = OnceLock::new();
        PER_STACK.get_or_init(|| Metric::per_stack().collect())
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.def().help))
    }
}

/// `tidemark flamegraph`.
#[derive(Debug, Args)]
pub struct FlamegraphArgs {
    /// What the widths measure.
    #[arg(long, value_enum, default_value_t = Metric::Allocated)]
    pub metric: Metric,
    /// Draw an icicle graph (roots at the top).
    #[arg(long)]
    pub inverted: bool,
    /// Write folded stacks (`main;f;g 1024`) instead of SVG.
    #[arg(long)]
    pub folded: bool,
    /// Keep the Rust runtime's start-up frames (`_start`, `std::rt::lang_start…`,
    /// `catch_unwind…`) instead of folding them into one `[Rust runtime]` frame.
    #[arg(long)]
    pub keep_runtime_frames: bool,
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

/// The `--allocator` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AllocatorArg {
    /// glibc's malloc (what the program would use anyway).
    System,
    /// The jemalloc bundled in the preload library.
    Jemalloc,
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
    /// Memory limit (`512MiB`, `1GB`; a unit is required): recorded in the profile, drawn on the
    /// timeline, and the base of time-to-limit; the live trace shows the heap's share of it.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_limit)]
    pub limit: Option<u64>,
    /// Print one line per second on stderr while the program runs (heap, growth, RSS, limit,
    /// allocation rate, allocator p99 latency).
    #[arg(long)]
    pub trace: bool,
    /// Record frame addresses with every allocation and free: escape classes per allocation
    /// site ("could live on the stack") and per-thread stack peaks in `summary`
    /// (docs/metrics.md).
    #[arg(long)]
    pub escape: bool,
    /// The allocator behind the program's malloc: glibc's, or the bundled jemalloc.
    #[arg(long, value_enum, default_value_t = AllocatorArg::System)]
    pub allocator: AllocatorArg,
    /// jemalloc options (`dirty_decay_ms:0,narenas:2`); needs `--allocator jemalloc`.
    #[arg(long, value_name = "CONF", requires = "allocator")]
    pub malloc_conf: Option<String>,
    /// Also sample on-CPU stacks of every thread (SIGPROF timers on each thread's CPU clock):
    /// `--metric cpu` in flamegraph, export, summary and reports.
    #[arg(long)]
    pub cpu: bool,
    /// CPU samples per second of each thread's CPU time (implies `--cpu`).
    #[arg(long, value_name = "HZ", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub cpu_hz: Option<u64>,
    /// Run the command N times; the profiles are numbered (`-o base.tmk` → `base.1.tmk` …
    /// `base.N.tmk`), ready for `tidemark report`.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
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
    launcher::ignore_file_size_signal();
    match cli.command {
        Command::Run(a) => run::run(&a),
        Command::Summary(a) => summary::summary(&a),
        Command::Flamegraph(a) => flamegraph::flamegraph(&a),
        Command::Timeline(a) => timeline::timeline(&a),
        Command::Report(a) => report::report(&a),
        Command::Diff(a) => diff::diff(&a),
        Command::Check(a) => check::check(&a),
        Command::Export(a) => export::export(&a),
        Command::View(a) => view::view(&a),
    }
}

/// Writes `bytes` to `path` (`-` is stdout) through [`output::write_to`].
fn write_output(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    output::write_atomically(path, bytes, "the output")
}

/// Loads a profile for a command, with progress and the context the error message needs.
fn load(profile: &std::path::Path, args: &LoadArgs) -> anyhow::Result<Loaded> {
    check_profile_input(profile)?;
    Ok(Loaded(Some(load_path(profile, &args.options()?)?)))
}

/// A profile a command loaded: freed on a thread of its own once the command is done with it
/// (the command's output is not held up by milliseconds of returning memory).
struct Loaded(Option<Profile>);

impl Loaded {
    /// The profile itself, to keep.
    fn into_inner(mut self) -> Profile {
        self.0.take().expect("taken only once")
    }
}

impl std::ops::Deref for Loaded {
    type Target = Profile;
    fn deref(&self) -> &Profile {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            crate::load::drop_in_background(p);
        }
    }
}

/// Refuses a profile path that is not a regular file (a FIFO with no writer would block the open
/// forever; a device or directory is no profile), before opening it. A symbolic link to a
/// regular file is read.
fn check_profile_input(profile: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(profile).map_err(|error| crate::load::LoadError::Io {
        path: profile.to_owned(),
        error,
    })?;
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    let kind = if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    anyhow::bail!(
        "{} is {kind}, not a profile file: tidemark reads profiles from regular files (.tmk); \
         save the stream to a file first",
        profile.display()
    )
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
